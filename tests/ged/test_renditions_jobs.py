"""GED renditions, for real: pdftotext, OCRmyPDF (French), pdftoppm, PDF/A-2b checked with pikepdf and qpdf;
idempotent jobs, damaged files, a missing OCR, a store that does not answer, rights on the routes."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from PIL import Image, ImageDraw, ImageFont
from sqlalchemy import select

from ged import renditions
from ged.models import Document, SearchEntry, Version
from ged.terms import term_of
from socle import queue
from socle.db import transaction
from socle.models import AuditEntry, Job

from conftest import Kit, S3Server, assert_problem, make_pdf, run_jobs, signing_identity, socle_command

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
QPDF = shutil.which("qpdf") or "qpdf"  # resolved once: one test narrows PATH
LINES = ["Délibération du conseil municipal", "Budget primitif de la commune"]


def text_pdf(lines: list[str] = LINES) -> bytes:
    """A one-page PDF with a real text layer (Helvetica, WinAnsi: accents included)."""
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    page = pdf.pages[0]
    font = pikepdf.Dictionary(
        Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica,
        Encoding=pikepdf.Name.WinAnsiEncoding,
    )  # fmt: skip
    page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
    shown = [b"BT /F1 18 Tf 72 %d Td (%s) Tj ET\n" % (760 - 30 * i, s.encode("cp1252")) for i, s in enumerate(lines)]
    body = b"".join(shown)
    page.Contents = pdf.make_stream(body)
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def scanned_page(lines: list[str] = LINES) -> Image.Image:
    """Text drawn on a white A4 page at 200 dpi, as a scanner would give it."""
    image = Image.new("L", (1654, 2339), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 56)
    for i, line in enumerate(lines):
        draw.text((150, 250 + 110 * i), line, font=font, fill=0)
    return image


def scanned_pdf() -> bytes:
    """An image-only PDF (no text layer): what OCR is for."""
    out = io.BytesIO()
    scanned_page().save(out, "PDF", resolution=200.0)
    return out.getvalue()


def png_bytes() -> bytes:
    out = io.BytesIO()
    scanned_page().save(out, "PNG", dpi=(200, 200))
    return out.getvalue()


def schedule_again(document_id: str) -> None:
    """What GA's service does after each content version; a second call must enqueue nothing more."""
    with transaction() as session:
        document = session.get(Document, document_id)
        assert document is not None
        renditions.schedule(session, document, document.current)


def rendition_jobs(document_id: str) -> list[Job]:
    with transaction() as session:
        version_ids = session.execute(select(Version.id).where(Version.document_id == document_id)).scalars().all()
        keys = [f"ged.{kind}:{vid}" for vid in version_ids for kind in ("text", "preview", "pdfa")]
        jobs = session.execute(select(Job).where(Job.key.in_(keys))).scalars().all()
        session.expunge_all()
        return list(jobs)


def upload_and_render(client: Any, content: bytes, filename: str, media_type: str = "application/pdf") -> str:
    response = client.post(
        "/ged/documents",
        files={"file": (filename, content, media_type)},
        data={"title": "Délibération budgétaire", "document_type": "deliberation"},
    )
    assert response.status_code == 201, response.text
    document_id: str = response.json()["id"]
    schedule_again(document_id)
    run_jobs()
    return document_id


def state(client: Any, document_id: str) -> dict[str, Any]:
    response = client.get(f"/ged/documents/{document_id}/renditions")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return image.size


def assert_pdfa_2b(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "pdfa.pdf"
    path.write_bytes(data)
    with pikepdf.open(path) as pdf:
        meta = pdf.open_metadata()
        assert meta.get("pdfaid:part") == "2"
        assert meta.get("pdfaid:conformance") == "B"
        intents = pdf.Root.get("/OutputIntents")  # PDF/A's colour promise, with its ICC profile
        assert intents is not None and intents[0].S == "/GTS_PDFA1"
        assert len(intents[0].DestOutputProfile.read_bytes()) > 0
    check = subprocess.run([QPDF, "--check", str(path)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No syntax or stream encoding errors" in check.stdout


# --------------------------------------------------------------------------------------------------------
# PDFs


def test_text_pdf_gets_text_preview_thumbnail_and_pdfa(kit: Kit, tmp_path: Path) -> None:
    client = kit["agent"]
    document_id = upload_and_render(client, text_pdf(), "budget.pdf")

    assert state(client, document_id) == {
        "document_id": document_id,
        "version": 1,
        "text_status": "done",
        "text_message": "texte extrait",
        "text_reason": None,
        "text": True,
        "preview": True,
        "thumbnail": True,
        "pdfa": True,
        "preview_reason": None,
        "pdfa_reason": None,
    }
    text = client.get(f"/ged/documents/{document_id}/text")
    assert text.status_code == 200
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    for line in LINES:
        assert line in text.content.decode("utf-8")
    assert "budget.txt" in text.headers["content-disposition"]

    preview = client.get(f"/ged/documents/{document_id}/preview")
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"
    width, height = png_size(preview.content)
    assert width == renditions.PREVIEW_WIDTH and abs(height - round(1000 * 842 / 595)) <= 1
    thumbnail = client.get(f"/ged/documents/{document_id}/thumbnail")
    assert png_size(thumbnail.content)[0] == renditions.THUMBNAIL_WIDTH

    pdfa = client.get(f"/ged/documents/{document_id}/pdfa")
    assert pdfa.status_code == 200 and pdfa.headers["content-type"] == "application/pdf"
    assert_pdfa_2b(pdfa.content, tmp_path)

    # The text reached the search index (GB's index_document was called after extraction).
    with transaction() as session:
        entry = session.get(SearchEntry, document_id)
        assert entry is not None and term_of("primitif") in entry.terms.split()


def test_scanned_pdf_is_read_by_french_ocr_and_its_pdfa_is_searchable(kit: Kit, tmp_path: Path) -> None:
    client = kit["agent"]
    document_id = upload_and_render(client, scanned_pdf(), "scan.pdf")
    assert state(client, document_id)["text_status"] == "done"
    text = client.get(f"/ged/documents/{document_id}/text").content.decode("utf-8")
    # Accents and the French words come back: Tesseract ran with the French model.
    assert "Délibération du conseil municipal" in text
    assert "Budget primitif" in text

    pdfa = client.get(f"/ged/documents/{document_id}/pdfa").content
    assert_pdfa_2b(pdfa, tmp_path)
    (tmp_path / "copie.pdf").write_bytes(pdfa)
    assert "Budget primitif" in renditions.pdf_text(tmp_path / "copie.pdf")  # OCRmyPDF added the text layer


def test_without_ocrmypdf_the_api_says_ocr_is_unavailable(
    kit: Kit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A PATH with poppler and Ghostscript but no OCRmyPDF: a machine where it was never installed.
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("pdftotext", "pdftoppm", "gs"):
        found = shutil.which(name)
        assert found, f"{name} manque (make system-deps)"
        (tools / name).symlink_to(found)
    monkeypatch.setenv("PATH", str(tools))
    assert not renditions.ocr_available()

    client = kit["agent"]
    document_id = upload_and_render(client, scanned_pdf(), "scan.pdf")
    result = state(client, document_id)
    assert result["text_status"] == "ocr_unavailable"
    assert "OCRmyPDF" in result["text_message"] and "n'est pas installée" in result["text_message"]
    assert result["text"] is False and result["preview"] is True
    problem = assert_problem(client.get(f"/ged/documents/{document_id}/text"), 404)
    assert "reconnaissance de caractères" in problem["detail"]
    assert all(job.status == "done" for job in rendition_jobs(document_id))  # not a failure
    # PDF/A falls back to Ghostscript, still a PDF/A-2b.
    assert_pdfa_2b(client.get(f"/ged/documents/{document_id}/pdfa").content, tmp_path)

    # OCRmyPDF installed afterwards: the operator asks for the text again, once.
    monkeypatch.undo()
    assert renditions.ocr_available()
    for expected in ("1 version(s) remise(s)", "0 version(s) remise(s)"):
        result = socle_command("ged", "redo-text", "--tenant", kit.slug)
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout
    run_jobs()
    assert state(client, document_id)["text_status"] == "done"
    assert "Budget primitif" in client.get(f"/ged/documents/{document_id}/text").content.decode()


def test_blank_pdf_has_empty_text_without_ocr(kit: Kit, tmp_path: Path) -> None:
    client = kit["agent"]
    document_id = upload_and_render(client, make_pdf(pages=2), "vierge.pdf")
    result = state(client, document_id)
    assert result["text_status"] == "done" and result["text"] and result["preview"]
    assert client.get(f"/ged/documents/{document_id}/text").content.strip(b"\n\x0c ") == b""
    pdfa = client.get(f"/ged/documents/{document_id}/pdfa").content
    assert_pdfa_2b(pdfa, tmp_path)
    with pikepdf.open(io.BytesIO(pdfa)) as pdf:  # made by Ghostscript: OCRmyPDF had nothing to read
        assert "ocrmypdf" not in str(pdf.open_metadata().get("pdf:Producer", "")).lower()
        assert "ocrmypdf" not in str(pdf.open_metadata().get("xmp:CreatorTool", "")).lower()


def test_damaged_pdf_fails_once_with_a_french_reason(kit: Kit) -> None:
    client = kit["agent"]
    damaged = b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n" + os.urandom(2000) + b"\n%%EOF\n"
    document_id = upload_and_render(client, damaged, "abime.pdf")

    result = state(client, document_id)
    assert result["text_status"] == "failed"
    assert result["text_message"] == "le texte n'a pas pu être extrait"
    reason = result["text_reason"]
    assert reason == "PDF illisible : structure du fichier endommagée ou format inconnu", reason
    assert result["preview"] is False and result["pdfa"] is False
    assert result["preview_reason"] and result["pdfa_reason"]  # failed, not « en cours »
    jobs = rendition_jobs(document_id)
    assert len(jobs) == 3
    # Recorded, not retried: each job ran once and ended done (no crash loop).
    assert all(job.status == "done" and job.attempts == 1 for job in jobs), [(j.function, j.status) for j in jobs]
    problem = assert_problem(client.get(f"/ged/documents/{document_id}/preview"), 404)
    assert problem["detail"] == "l'aperçu de la version 1 n'est pas (encore) disponible"


def test_signed_pdf_gets_text_and_preview_but_no_pdfa_copy(kit: Kit) -> None:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers

    signer = signers.SimpleSigner.load_pkcs12_data(signing_identity()[0], [], passphrase=signing_identity()[1])
    writer = IncrementalPdfFileWriter(io.BytesIO(text_pdf()))
    signed = signers.sign_pdf(writer, signers.PdfSignatureMetadata(field_name="Signature1"), signer=signer)
    client = kit["agent"]
    document_id = upload_and_render(client, signed.getvalue(), "signe.pdf")

    result = state(client, document_id)
    assert result["text_status"] == "done" and result["preview"] and not result["pdfa"]
    problem = assert_problem(client.get(f"/ged/documents/{document_id}/pdfa"), 404)
    assert problem["detail"] == "la copie PDF/A de la version 1 n'est pas (encore) disponible"
    # Deliberately not made: recorded as skipped, with its cause, never as a failure.
    reason = "Copie PDF/A non faite : le PDF est signé (la convertir invaliderait la signature)"
    assert result["pdfa_reason"] == reason
    with transaction() as session:
        entries = session.execute(
            select(AuditEntry.action, AuditEntry.details).where(
                AuditEntry.object_id == document_id, AuditEntry.action.like("ged.rendition.%")
            )
        ).all()
    assert [(action, details) for action, details in entries] == [
        ("ged.rendition.skipped", {"version": 1, "rendu": "PDF/A", "raison": reason, "cause": renditions.SIGNED})
    ]


# --------------------------------------------------------------------------------------------------------
# Images and other types


def test_image_gets_preview_thumbnail_and_ocr_text_but_no_pdfa(kit: Kit) -> None:
    client = kit["agent"]
    document_id = upload_and_render(client, png_bytes(), "courrier.png", "image/png")
    result = state(client, document_id)
    assert result["text_status"] == "done" and result["preview"] and result["thumbnail"] and not result["pdfa"]
    assert "Budget primitif" in client.get(f"/ged/documents/{document_id}/text").content.decode("utf-8")
    assert png_size(client.get(f"/ged/documents/{document_id}/preview").content)[0] == 1000
    assert png_size(client.get(f"/ged/documents/{document_id}/thumbnail").content)[0] == 200
    problem = assert_problem(client.get(f"/ged/documents/{document_id}/pdfa"), 404)
    assert problem["detail"] == "la copie PDF/A n'existe pas pour ce type de fichier (image/png)"
    assert {job.function for job in rendition_jobs(document_id)} == {"ged.jobs.extract_text", "ged.jobs.make_preview"}


def test_other_types_get_no_rendition(kit: Kit) -> None:
    client = kit["agent"]
    document_id = upload_and_render(client, b"note de service\n", "note.txt", "text/plain")
    result = state(client, document_id)
    assert result["text_status"] == "none"
    assert result["text_message"] == "pas d'extraction de texte pour ce type de fichier"
    assert rendition_jobs(document_id) == []
    assert_problem(client.get(f"/ged/documents/{document_id}/thumbnail"), 404)


# --------------------------------------------------------------------------------------------------------
# Idempotence, retries, limits


def test_renditions_are_made_once_whatever_the_repeats(kit: Kit) -> None:
    client = kit["agent"]
    document_id = upload_and_render(client, text_pdf(), "acte.pdf")
    first = state(client, document_id)
    with transaction() as session:
        before = session.execute(select(Version).where(Version.document_id == document_id)).scalar_one()
        keys = (before.text_key, before.preview_key, before.thumbnail_key, before.pdfa_key)

    schedule_again(document_id)  # asked again: the same three jobs, nothing new
    assert len(rendition_jobs(document_id)) == 3
    for job in rendition_jobs(document_id):  # run again by hand (a second push): nothing changes
        assert queue.execute(job.id) == "skipped"
    renditions.extract_text(kit.tenant_id, document_id, 1)
    renditions.make_preview(kit.tenant_id, document_id, 1)
    renditions.make_pdfa(kit.tenant_id, document_id, 1)
    with transaction() as session:
        after = session.execute(select(Version).where(Version.document_id == document_id)).scalar_one()
        assert (after.text_key, after.preview_key, after.thumbnail_key, after.pdfa_key) == keys
    assert state(client, document_id) == first


def test_new_content_version_gets_its_own_renditions(kit: Kit) -> None:
    client = kit["agent"]
    document_id = upload_and_render(client, text_pdf(), "acte.pdf")
    response = client.post(
        f"/ged/documents/{document_id}/versions",
        files={"file": ("acte-v2.pdf", text_pdf(["Arrêté du maire", "Voirie communale"]), "application/pdf")},
    )
    assert response.status_code == 201, response.text
    schedule_again(document_id)
    run_jobs()
    assert "Voirie communale" in client.get(f"/ged/documents/{document_id}/text").content.decode()
    assert "Budget primitif" in client.get(f"/ged/documents/{document_id}/text?version=1").content.decode()
    assert state(client, document_id)["version"] == 2
    with transaction() as session:
        entry = session.get(SearchEntry, document_id)
        words = entry.terms.split() if entry is not None else []
        assert term_of("voirie") in words and term_of("primitif") not in words


def test_metadata_change_keeps_the_renditions_of_the_same_bytes(kit: Kit) -> None:
    client = kit["agent"]
    document_id = upload_and_render(client, text_pdf(), "acte.pdf")
    first = state(client, document_id)
    response = client.patch(f"/ged/documents/{document_id}", json={"title": "Délibération (titre corrigé)"})
    assert response.status_code == 200, response.text
    schedule_again(document_id)  # for the new version, whose bytes are version 1's
    assert len(rendition_jobs(document_id)) == 3  # no job: the renditions are taken, not made again
    assert state(client, document_id) == {**first, "version": 2}
    assert "Budget primitif" in client.get(f"/ged/documents/{document_id}/text").content.decode()


def test_metadata_change_before_the_jobs_ran_gets_their_renditions(kit: Kit) -> None:
    client = kit["agent"]
    response = client.post(
        "/ged/documents",
        files={"file": ("acte.pdf", text_pdf(), "application/pdf")},
        data={"title": "Délibération", "document_type": "deliberation"},
    )
    document_id = response.json()["id"]
    patched = client.patch(f"/ged/documents/{document_id}", json={"title": "Délibération (titre corrigé)"})
    assert patched.status_code == 200, patched.text
    run_jobs()  # version 1's jobs serve version 2 too: same bytes
    result = state(client, document_id)
    assert result["version"] == 2 and result["text_status"] == "done" and result["preview"] and result["pdfa"]
    with transaction() as session:
        versions = session.execute(select(Version).where(Version.document_id == document_id)).scalars().all()
        assert len({(v.text_key, v.preview_key, v.thumbnail_key, v.pdfa_key) for v in versions}) == 1
        entry = session.get(SearchEntry, document_id)
        assert entry is not None and term_of("primitif") in entry.terms.split()


def test_store_briefly_unreachable_is_retried(kit: Kit, s3_server: S3Server, use_env: Callable[..., None]) -> None:
    env = s3_server.env(f"t{uuid.uuid4().hex[:12]}")
    use_env(**env)
    client = kit["agent"]
    response = client.post(
        "/ged/documents",
        files={"file": ("acte.pdf", text_pdf(), "application/pdf")},
        data={"title": "Délibération", "document_type": "deliberation"},
    )
    assert response.status_code == 201, response.text
    document_id = response.json()["id"]
    schedule_again(document_id)

    # The S3 server goes away (a port where nothing listens): the jobs fail and wait for their next attempt.
    with socket_nobody_listens() as dead:
        use_env(SOCLE_S3_ENDPOINT=dead)
        queue.work_once(["ged"])
    jobs = rendition_jobs(document_id)
    assert {(job.status, job.attempts) for job in jobs} == {("pending", 1)}, [(j.status, j.last_error) for j in jobs]
    assert state(client, document_id)["text_status"] == "pending"

    use_env(**env)  # back: the retries make the renditions
    run_jobs()
    assert {(job.status, job.attempts) for job in rendition_jobs(document_id)} == {("done", 2)}
    result = state(client, document_id)
    assert result["text_status"] == "done" and result["preview"] and result["pdfa"]


@contextmanager
def socket_nobody_listens() -> Iterator[str]:
    """An address on 127.0.0.1 where no server listens, for as long as the block lasts."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused at once
        yield f"127.0.0.1:{bound.getsockname()[1]}"


def test_heavy_tools_are_time_limited() -> None:
    with pytest.raises(renditions.RenditionFailed) as caught:
        renditions.run_tool(["sleep", "5"], timeout=0.3)
    assert caught.value.reason == "sleep : délai de 0 s dépassé"


def test_extracted_text_is_bounded_without_breaking_a_character(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "acte.pdf"
    path.write_bytes(text_pdf())
    assert renditions.pdf_text(path).startswith("Délibération du conseil municipal")
    monkeypatch.setattr(renditions, "MAX_TEXT_BYTES", 2)  # "D" then the first byte of "é"
    assert renditions.pdf_text(path) == "D"


def test_oversized_image_is_refused_not_decoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(renditions, "MAX_IMAGE_PIXELS", 100 * 100)
    path = tmp_path / "grande.png"
    Image.new("L", (200, 200), 255).save(path)
    with pytest.raises(renditions.RenditionFailed) as caught:
        renditions.image_to_pdf(path, tmp_path / "out.pdf")
    assert caught.value.reason == "image trop grande (200 × 200 pixels)"


# --------------------------------------------------------------------------------------------------------
# Rights


def test_routes_check_the_tenant_and_the_version(kit: Kit, make_kit: Callable[..., Kit]) -> None:
    document_id = upload_and_render(kit["agent"], text_pdf(), "acte.pdf")
    other = make_kit(with_identity=False)
    for route in ("renditions", "text", "preview", "thumbnail", "pdfa"):
        assert_problem(other["agent"].get(f"/ged/documents/{document_id}/{route}"), 404)
    assert_problem(kit["agent"].get(f"/ged/documents/{document_id}/preview?version=7"), 404)
    assert_problem(kit["agent"].get(f"/ged/documents/{document_id}/preview?version=0"), 422)


def test_routes_need_the_read_right_on_the_document(kit: Kit) -> None:
    folder = kit["admin"].post("/ged/plan", json={"name": "Ressources humaines", "parent_id": None}).json()
    group = kit["admin"].post("/ged/groups", json={"name": "Lecteurs RH"}).json()
    assert kit["admin"].post(f"/ged/groups/{group['id']}/members", json={"username": "maire"}).status_code == 200
    response = kit["admin"].post(
        "/ged/documents",
        files={"file": ("carriere.pdf", text_pdf(), "application/pdf")},
        data={"title": "Dossier de carrière", "document_type": "deliberation", "folder_id": folder["id"]},
    )
    assert response.status_code == 201, response.text
    document_id = response.json()["id"]
    run_jobs()
    rules = [{"group_id": group["id"], "rights": ["read"]}]
    assert kit["admin"].put(f"/ged/plan/{folder['id']}/permissions", json=rules).status_code == 200

    for route in ("renditions", "text", "preview", "thumbnail", "pdfa"):
        url = f"/ged/documents/{document_id}/{route}"
        assert_problem(kit["agent"].get(url), 404)  # not in the group: the document does not exist for them
        assert kit["maire"].get(url).status_code == 200, route


def test_a_scan_goes_from_the_quick_text_job_to_one_ocr_job_on_the_slow_lane(kit: Kit) -> None:
    client = kit["agent"]
    response = client.post(
        "/ged/documents",
        files={"file": ("scan.pdf", scanned_pdf(), "application/pdf")},
        data={"title": "Courrier scanné", "document_type": "courrier"},
    )
    assert response.status_code == 201, response.text
    document_id = response.json()["id"]
    assert renditions.ocr_available()
    renditions.extract_text(kit.tenant_id, document_id, 1)  # the text job: no text layer, pictures
    renditions.extract_text(kit.tenant_id, document_id, 1)  # run twice (a second push): still one OCR job
    with transaction() as session:
        version = session.execute(select(Version).where(Version.document_id == document_id)).scalar_one()
        asked = session.execute(select(Job).where(Job.key.startswith(f"ged.ocr:{version.id}:"))).scalars().all()
    assert version.text_status == "pending"  # searchable once the OCR job has read it
    assert [job.function for job in asked] == ["ged.jobs.ocr_text"]
    assert queue.messages.BY_FUNCTION[asked[0].function].lane == "renditions"
    assert queue.messages.BY_FUNCTION["ged.jobs.extract_text"].lane is None  # the quick one, on the main queue

    run_jobs()
    assert state(client, document_id)["text_status"] == "done"
    assert "Budget primitif" in client.get(f"/ged/documents/{document_id}/text").content.decode("utf-8")


def test_the_text_job_indexes_the_text_it_extracted_without_reading_it_back(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One object store read less per document (the benchmark's ingest path): the index takes the text as is."""
    from ged import indexing

    read_text = indexing.read_text

    def no_read_back(version: Version) -> str:
        assert version.text_key is None, "the text job read back the text it had just stored"
        return read_text(version)  # the upload's own indexing: no text yet

    monkeypatch.setattr(indexing, "read_text", no_read_back)
    document_id = upload_and_render(kit["agent"], text_pdf(), "budget.pdf")
    with transaction() as session:
        entry = session.get(SearchEntry, document_id)
        assert entry is not None and term_of("primitif") in entry.terms.split()  # from the text, not the title
