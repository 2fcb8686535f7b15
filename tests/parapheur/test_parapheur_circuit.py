"""Parapheur API: circuits of visa and signature on GED documents or uploaded PDFs, checked independently."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pikepdf
from parapheur_kit import Standard, act, folder_of, ged_folder, ok, typology, upload_folder
from sqlalchemy import func, select

import ged.jobs
from parapheur.models import Folder
from parapheur.pades import verify_pdf
from socle.db import new_session
from socle.models import Job

from conftest import (
    Kit,
    assert_problem,
    identity_certificate,
    make_pdf,
    missing,
    pdfsig,
    run_jobs,
    upload_document,
)

OBJECTS = Path(os.environ["SOCLE_DATA_DIR"]) / "objects"
VALID = "Signature is Valid"


def stored_objects() -> set[Path]:
    if not OBJECTS.exists():
        return set()
    return {path for path in OBJECTS.rglob("*") if path.is_file() and ".tmp" not in path.relative_to(OBJECTS).parts}


def create_folder(kit: Kit, subtype_id: str, document_id: str) -> dict[str, Any]:
    body = {"subtype_id": subtype_id, "title": "Délibération n° 7", "ged_document_id": document_id, "send": True}
    response = kit["agent"].post("/parapheur/folders", json=body)
    assert response.status_code == 202, response.text  # the GED answers through the queue
    return response.json()


def upload_pdf(kit: Kit, subtype_id: str, content: bytes, filename: str = "acte.pdf") -> Any:
    return upload_folder(kit, subtype_id, [(filename, content, "application/pdf")])


def folder_count(tenant_id: str) -> int:
    with new_session() as session:
        return session.execute(
            select(func.count()).select_from(Folder).where(Folder.tenant_id == tenant_id)
        ).scalar_one()


def ready_folder(kit: Kit, subtype_id: str, content: bytes) -> tuple[str, str]:
    """A GED document and its folder, in progress: (document id, folder id)."""
    document_id, folder_id = ged_folder(kit, subtype_id, content)
    assert folder_of(kit, folder_id)["status"] == "in_progress"
    return document_id, folder_id


def assert_validly_signed(path: Path, count: int) -> None:
    """poppler and pyHanko agree: ``count`` signatures, each intact and chaining to the maire's certificate."""
    report = pdfsig(path)
    assert report.count(VALID) == count, report
    checks = verify_pdf(path, [identity_certificate()])
    assert len(checks) == count
    assert all(check.intact and check.valid for check in checks), checks
    assert all(check.signer_name == "Dominique Dupont" for check in checks)
    assert checks[-1].covers_whole_document


def qpdf_check(path: Path) -> None:
    if shutil.which("qpdf") is None:
        missing("qpdf n'est pas installé")
    result = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------------------------------------
# The circuit on a GED document


def test_visa_then_signature_makes_a_signed_ged_version(kit: Kit, pdf_bytes: bytes, tmp_path: Path) -> None:
    setup = Standard(kit)
    document_id, folder_id = ready_folder(kit, setup.visa_then_sign, pdf_bytes)
    folder = folder_of(kit, folder_id)
    assert folder["current_step"] == 0 and folder["ged_document_id"] == document_id
    assert folder["document_sha256"] == hashlib.sha256(pdf_bytes).hexdigest()
    assert folder["steps"][0]["desks"] == [{"id": setup.secretariat, "name": "Secrétariat"}]
    assert kit["agent"].get(f"/parapheur/folders/{folder_id}/document").content == pdf_bytes

    visa = act(kit, "agent", folder_id, "visa", {"comment": "Vu"})
    assert visa.status_code == 200, visa.text
    assert visa.json()["current_step"] == 1 and visa.json()["status"] == "in_progress"
    step = visa.json()["steps"][0]
    assert step["status"] == "done" and [a["username"] for a in step["acts"]] == ["agent"]
    assert step["acts"][0]["comment"] == "Vu" and step["acts"][0]["desk_id"] == setup.secretariat

    signed = act(kit, "maire", folder_id, "sign")
    assert signed.status_code == 200, signed.text
    folder = signed.json()
    assert folder["status"] == "completed" and folder["current_step"] is None
    assert folder["document_sha256"] != hashlib.sha256(pdf_bytes).hexdigest()

    # The parapheur serves the signed PDF at once.
    signed_pdf = kit["agent"].get(f"/parapheur/folders/{folder_id}/document").content
    assert hashlib.sha256(signed_pdf).hexdigest() == folder["document_sha256"]
    assert signed_pdf.startswith(pdf_bytes)  # incremental update: the original bytes are untouched

    run_jobs()
    current = kit["agent"].get(f"/ged/documents/{document_id}").json()
    assert current["current_version"] == 2
    version = current["current"]
    assert version["origin"] == f"parapheur:{folder_id}"
    assert version["comment"] == "Signé par Dominique Dupont, Maire"  # the signatory's name and quality
    assert version["author"] == "parapheur"
    assert version["title"] == "Délibération n° 1"  # metadata carried over
    assert version["content"]["filename"] == "acte-signe.pdf"
    assert version["content"]["media_type"] == "application/pdf"
    assert version["content"]["sha256"] == folder["document_sha256"]

    path = tmp_path / "signe.pdf"
    path.write_bytes(kit["agent"].get(f"/ged/documents/{document_id}/content").content)
    assert path.read_bytes() == signed_pdf
    assert_validly_signed(path, 1)
    qpdf_check(path)
    assert kit["agent"].get(f"/ged/documents/{document_id}/versions/1/content").content == pdf_bytes

    # The checkers can say no: one changed byte in the signed range breaks the signature.
    tampered = tmp_path / "falsifie.pdf"
    tampered.write_bytes(signed_pdf.replace(b"/MediaBox [ 0 0 595 842 ]", b"/MediaBox [ 0 0 595 843 ]", 1))
    assert tampered.read_bytes() != signed_pdf
    assert VALID not in pdfsig(tampered)
    assert not any(check.intact for check in verify_pdf(tampered, [identity_certificate()]))


def test_ged_folder_kept_as_draft_until_sent(kit: Kit, pdf_bytes: bytes) -> None:
    setup = Standard(kit)
    _, folder_id = ged_folder(kit, setup.visa_then_sign, pdf_bytes, send=False)
    folder = folder_of(kit, folder_id)
    assert folder["status"] == "draft" and folder["current_step"] is None and len(folder["documents"]) == 1
    assert_problem(act(kit, "agent", folder_id, "visa"), 409)
    # Its creator only: a draft is not shown to the circuit before it is sent; an administrator sees it.
    assert_problem(kit["maire"].post(f"/parapheur/folders/{folder_id}/send"), 404)
    assert_problem(kit["admin"].post(f"/parapheur/folders/{folder_id}/send"), 403)
    sent = ok(kit["agent"].post(f"/parapheur/folders/{folder_id}/send"))
    assert sent["status"] == "in_progress" and sent["steps"][0]["status"] == "current" and sent["sent_at"]
    assert_problem(kit["agent"].post(f"/parapheur/folders/{folder_id}/send"), 409)


def test_two_signatures_are_both_valid(kit: Kit, tmp_path: Path) -> None:
    setup = Standard(kit)
    circuit = [
        {"kind": "visa", "desk_ids": [setup.secretariat]},
        {"kind": "signature", "desk_ids": [setup.maire]},
        {"kind": "signature", "desk_ids": [setup.maire]},
    ]
    subtype = typology(kit, circuit, name="Convention")
    document_id, folder_id = ready_folder(kit, subtype, make_pdf("Convention", pages=2))
    assert act(kit, "agent", folder_id, "visa").status_code == 200
    first = act(kit, "maire", folder_id, "sign")
    assert first.status_code == 200 and first.json()["status"] == "in_progress" and first.json()["current_step"] == 2
    run_jobs()
    assert kit["agent"].get(f"/ged/documents/{document_id}").json()["current_version"] == 1  # not finished yet

    second = act(kit, "maire", folder_id, "sign", {"comment": "Deuxième signature"})
    assert second.status_code == 200 and second.json()["status"] == "completed"
    run_jobs()

    current = kit["agent"].get(f"/ged/documents/{document_id}").json()
    assert current["current_version"] == 2 and current["current"]["comment"] == (
        "Signé par Dominique Dupont, Maire ; Dominique Dupont, Maire"
    )
    path = tmp_path / "deux-signatures.pdf"
    path.write_bytes(kit["agent"].get(f"/ged/documents/{document_id}/content").content)
    assert_validly_signed(path, 2)
    checks = verify_pdf(path, [identity_certificate()])
    assert checks[0].covers_whole_document  # later revision only adds a signature
    assert len({check.field_name for check in checks}) == 2
    qpdf_check(path)
    with pikepdf.open(path) as pdf:
        assert len(pdf.pages) == 2


def test_signed_version_is_stored_once_however_often_the_job_runs(kit: Kit, pdf_bytes: bytes) -> None:
    setup = Standard(kit)
    document_id, folder_id = ready_folder(kit, setup.sign_only, pdf_bytes)
    assert act(kit, "maire", folder_id, "sign").status_code == 200
    with new_session() as session:
        job = session.execute(select(Job).where(Job.key == f"ged.signed:{folder_id}")).scalar_one()
        arguments = dict(job.arguments)
    ged.jobs.store_signed_version(**arguments)
    ged.jobs.store_signed_version(**arguments)
    run_jobs()  # the queued job runs a third time
    versions = kit["agent"].get(f"/ged/documents/{document_id}/versions").json()
    assert [version["number"] for version in versions] == [1, 2]
    assert versions[1]["origin"] == f"parapheur:{folder_id}"


# --------------------------------------------------------------------------------------------------------
# Who may act, and when


def test_acting_out_of_turn_is_refused(kit: Kit, pdf_bytes: bytes) -> None:
    setup = Standard(kit)
    _, folder_id = ready_folder(kit, setup.visa_then_sign, pdf_bytes)
    # Step 0 is the Secrétariat's visa.
    assert_problem(act(kit, "maire", folder_id, "visa"), 403)
    assert_problem(act(kit, "maire", folder_id, "sign"), 403)
    assert_problem(act(kit, "archiviste", folder_id, "reject", {"reason": "non"}), 404)  # outside the circuit
    assert_problem(act(kit, "agent", folder_id, "sign"), 409)  # the agent's step is a visa
    assert act(kit, "agent", folder_id, "visa").status_code == 200
    # Step 1 is the Maire's signature.
    body = assert_problem(act(kit, "maire", folder_id, "visa"), 409)
    assert "signature" in body["detail"]
    assert_problem(act(kit, "agent", folder_id, "visa"), 403)
    folder = folder_of(kit, folder_id)
    assert folder["status"] == "in_progress" and folder["current_step"] == 1
    assert folder["steps"][1]["status"] == "current" and folder["steps"][1]["acts"] == []


def test_reject_needs_a_reason_then_ends_the_folder(kit: Kit, pdf_bytes: bytes) -> None:
    setup = Standard(kit)
    _, folder_id = ready_folder(kit, setup.visa_then_sign, pdf_bytes)
    assert_problem(act(kit, "agent", folder_id, "reject", {}), 422)
    assert_problem(act(kit, "agent", folder_id, "reject", {"reason": ""}), 422)
    body = assert_problem(act(kit, "agent", folder_id, "reject", {"reason": "   "}), 422)
    assert "motif" in body["detail"]
    assert folder_of(kit, folder_id)["status"] == "in_progress"

    rejected = act(kit, "agent", folder_id, "reject", {"reason": "Montant erroné"})
    assert rejected.status_code == 200, rejected.text
    folder = rejected.json()
    assert folder["status"] == "rejected" and folder["rejection_reason"] == "Montant erroné"
    assert folder["steps"][0]["status"] == "rejected"
    assert [(a["username"], a["action"]) for a in folder["steps"][0]["acts"]] == [("agent", "reject")]

    assert_problem(act(kit, "agent", folder_id, "visa"), 409)
    assert_problem(act(kit, "maire", folder_id, "sign"), 409)
    assert_problem(act(kit, "agent", folder_id, "reject", {"reason": "encore"}), 409)
    listed = kit["agent"].get("/parapheur/folders", params={"status": "rejected"}).json()
    assert [item["id"] for item in listed] == [folder_id]


def test_signer_without_identity_gets_409_and_the_folder_waits(make_kit: Callable[..., Kit], pdf_bytes: bytes) -> None:
    kit = make_kit(with_identity=False)
    setup = Standard(kit)
    created = upload_pdf(kit, setup.sign_only, pdf_bytes)
    assert created.status_code == 201, created.text
    folder_id = created.json()["id"]
    body = assert_problem(act(kit, "maire", folder_id, "sign"), 409)
    assert "identité" in body["detail"]
    folder = folder_of(kit, folder_id)
    assert folder["status"] == "in_progress" and folder["current_step"] == 0
    assert folder["steps"][0]["status"] == "current" and folder["steps"][0]["acts"] == []
    assert folder["document_sha256"] == hashlib.sha256(pdf_bytes).hexdigest()
    history = ok(kit["agent"].get(f"/parapheur/folders/{folder_id}/history"))
    assert "signature" not in [event["action"] for event in history]


# --------------------------------------------------------------------------------------------------------
# Uploaded PDFs


def test_direct_upload_then_signature(kit: Kit, tmp_path: Path) -> None:
    setup = Standard(kit)
    content = make_pdf("Arrêté n° 2026-15")
    created = upload_pdf(kit, setup.visa_then_sign, content, filename="arrêté.pdf")
    assert created.status_code == 201, created.text
    folder = created.json()
    assert folder["status"] == "in_progress" and folder["source"] == "upload" and folder["ged_document_id"] is None
    assert [d["filename"] for d in folder["documents"]] == ["arrêté.pdf"] and folder["current_step"] == 0
    assert folder["document_sha256"] == hashlib.sha256(content).hexdigest()
    assert kit["agent"].get(f"/parapheur/folders/{folder['id']}/document").content == content

    assert act(kit, "agent", folder["id"], "visa").status_code == 200
    signed = act(kit, "maire", folder["id"], "sign").json()
    assert signed["status"] == "completed"
    download = kit["agent"].get(f"/parapheur/folders/{folder['id']}/document")
    assert download.status_code == 200 and download.headers["content-type"] == "application/pdf"
    assert hashlib.sha256(download.content).hexdigest() == signed["document_sha256"]
    path = tmp_path / "arrete-signe.pdf"
    path.write_bytes(download.content)
    assert_validly_signed(path, 1)
    with new_session() as session:  # nothing to send to the GED
        assert session.execute(select(Job).where(Job.key == f"ged.signed:{folder['id']}")).first() is None


def broken_pdfs(tmp_path: Path) -> dict[str, tuple[bytes, str]]:
    good = make_pdf("à casser")
    protected = tmp_path / "protege.pdf"
    with pikepdf.new() as pdf:
        pdf.add_blank_page()
        pdf.save(protected, encryption=pikepdf.Encryption(owner="proprietaire", user="utilisateur"))
    encrypted = tmp_path / "chiffre.pdf"
    with pikepdf.new() as pdf:
        pdf.add_blank_page()
        pdf.save(encrypted, encryption=pikepdf.Encryption(owner="proprietaire", user=""))
    return {
        "texte": (b"Bonjour, ceci est un simple texte.\n", "n'est pas un PDF"),
        "vide": (b"", "vide"),
        "tronque": (good[: len(good) // 2], "endommagé"),
        "casse": (b"%PDF-1.7\n" + os.urandom(2000), "endommagé"),
        "mot-de-passe": (protected.read_bytes(), "mot de passe"),
        "chiffre": (encrypted.read_bytes(), "chiffré"),
    }


def test_unusable_uploads_are_refused_and_leave_nothing(kit: Kit, tmp_path: Path) -> None:
    setup = Standard(kit)
    before = stored_objects()
    for name, (content, expected) in broken_pdfs(tmp_path).items():
        body = assert_problem(upload_pdf(kit, setup.sign_only, content, filename=f"{name}.pdf"), 422)
        assert expected in body["detail"] and f"{name}.pdf" in body["detail"], (name, body)
    # A good main document with a broken one: nothing is kept either.
    mixed = upload_folder(
        kit,
        setup.sign_only,
        [("bon.pdf", make_pdf("bon"), "application/pdf"), ("texte.pdf", b"texte", "application/pdf")],
    )
    assert "texte.pdf" in assert_problem(mixed, 422)["detail"]
    assert folder_count(kit.tenant_id) == 0
    assert kit["agent"].get("/parapheur/folders").json() == []
    assert stored_objects() == before


def test_folders_need_a_known_subtype_and_a_creator_desk(make_kit: Callable[..., Kit], pdf_bytes: bytes) -> None:
    kit, other = make_kit(with_identity=False), make_kit(with_identity=False)
    setup, foreign = Standard(kit), Standard(other)
    document = upload_document(kit["agent"], pdf_bytes)
    before = stored_objects()
    # Another tenant's sous-type is unknown here, by upload or on a GED document.
    assert "introuvable" in assert_problem(upload_pdf(kit, foreign.sign_only, make_pdf("autre")), 404)["detail"]
    body = {"subtype_id": foreign.sign_only, "title": "x", "ged_document_id": document["id"]}
    assert_problem(kit["agent"].post("/parapheur/folders", json=body), 404)
    # The archiviste holds no desk: no folder.
    assert "bureau" in assert_problem(upload_folder(kit, setup.sign_only, user="archiviste"), 403)["detail"]
    # A sous-type reserved to the Maire's desk.
    reserved = typology(
        kit, [{"kind": "visa", "desk_ids": [setup.secretariat]}], name="Réservé", creator_desk_ids=[setup.maire]
    )
    refused = assert_problem(upload_folder(kit, reserved, user="agent"), 403)
    assert "Maire" in refused["detail"]
    assert folder_count(kit.tenant_id) == 0
    assert stored_objects() == before
    assert ok(upload_folder(kit, reserved, user="maire"), 201)["created_by"] == "maire"
    run_jobs()
    assert kit["agent"].get(f"/ged/documents/{document['id']}").json()["current_version"] == 1


def test_upload_forms_are_checked(kit: Kit) -> None:
    setup = Standard(kit)
    for form, expected in (
        ({"metadata": "pas du json"}, "JSON"),
        ({"metadata": "[1]"}, "objet JSON"),
        ({"due_date": "demain"}, "date limite"),
        ({"external_signers": '[{"name": "x"}]'}, "signataires externes"),
    ):
        assert expected in assert_problem(upload_folder(kit, setup.sign_only, **form), 422)["detail"]
    no_file = kit["agent"].post("/parapheur/folders/upload", data={"subtype_id": setup.sign_only, "title": "x"})
    assert_problem(no_file, 422)
    assert folder_count(kit.tenant_id) == 0


# --------------------------------------------------------------------------------------------------------
# GED documents the parapheur cannot use


def test_folder_on_a_ged_document_that_is_not_a_pdf_ends_in_error(kit: Kit) -> None:
    setup = Standard(kit)
    response = kit["agent"].post(
        "/ged/documents",
        files={"file": ("note.txt", b"Note de service\n", "text/plain")},
        data={"title": "Note", "document_type": "note"},
    )
    assert response.status_code == 201, response.text
    folder = create_folder(kit, setup.visa_then_sign, response.json()["id"])
    run_jobs()
    folder = folder_of(kit, folder["id"])
    assert folder["status"] == "error"
    assert "n'est pas un PDF" in folder["error"]
    assert_problem(act(kit, "agent", folder["id"], "visa"), 409)


def test_folder_on_an_unknown_or_foreign_document_ends_in_error(make_kit: Callable[..., Kit]) -> None:
    kit, other = make_kit(with_identity=False), make_kit(with_identity=False)
    setup = Standard(kit)
    foreign = upload_document(
        other["agent"], make_pdf("Confidentiel"), title="Dossier confidentiel B", filename="b.pdf"
    )
    unknown = create_folder(kit, setup.visa_then_sign, "00000000-0000-0000-0000-000000000000")
    stolen = create_folder(kit, setup.visa_then_sign, foreign["id"])
    run_jobs()
    for folder_id in (unknown["id"], stolen["id"]):
        folder = folder_of(kit, folder_id)
        assert folder["status"] == "error"
        assert "introuvable" in folder["error"]
        assert folder["document_sha256"] is None and folder["documents"] == []
        raw = kit["agent"].get(f"/parapheur/folders/{folder_id}").text
        assert "confidentiel" not in raw.lower() and foreign["current"]["content"]["sha256"] not in raw
        assert_problem(kit["agent"].get(f"/parapheur/folders/{folder_id}/document"), 404)
        assert_problem(act(kit, "agent", folder_id, "visa"), 409)
    # The other tenant's document is untouched, and the folder is invisible to the other tenant.
    assert other["agent"].get(f"/ged/documents/{foreign['id']}").json()["current_version"] == 1
    assert_problem(other["agent"].get(f"/parapheur/folders/{stolen['id']}"), 404)


def test_unknown_folder_is_404(kit: Kit) -> None:
    unknown = "00000000-0000-0000-0000-000000000000"
    assert_problem(kit["agent"].get(f"/parapheur/folders/{unknown}"), 404)
    assert_problem(kit["agent"].get(f"/parapheur/folders/{unknown}/document"), 404)
    assert_problem(kit["agent"].get(f"/parapheur/folders/{unknown}/history"), 404)
    assert_problem(act(kit, "agent", unknown, "visa"), 404)
    assert_problem(act(kit, "maire", unknown, "sign"), 404)
