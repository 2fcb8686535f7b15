"""Parapheur API: circuits of visa and signature on GED documents or uploaded PDFs, checked independently."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pikepdf
from sqlalchemy import func, select

import ged.jobs
from parapheur.models import Folder
from parapheur.pades import verify_pdf
from socle.auth import create_user, get_tenant
from socle.db import new_session, transaction
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
VISA_THEN_SIGN = [{"kind": "visa", "actor": "agent"}, {"kind": "signature", "actor": "maire"}]
SIGN_ONLY = [{"kind": "signature", "actor": "maire"}]


def stored_objects() -> set[Path]:
    if not OBJECTS.exists():
        return set()
    return {path for path in OBJECTS.rglob("*") if path.is_file() and ".tmp" not in path.relative_to(OBJECTS).parts}


def create_folder(kit: Kit, document_id: str, circuit: list[dict[str, str]] = VISA_THEN_SIGN) -> dict[str, Any]:
    response = kit["agent"].post(
        "/parapheur/folders", json={"title": "Délibération n° 7", "ged_document_id": document_id, "circuit": circuit}
    )
    assert response.status_code == 202, response.text  # the GED answers through the queue
    return response.json()


def upload_folder(kit: Kit, content: bytes, circuit: Any = SIGN_ONLY, filename: str = "acte.pdf") -> Any:
    return kit["agent"].post(
        "/parapheur/folders/upload",
        files={"file": (filename, content, "application/pdf")},
        data={"title": "Arrêté du maire", "circuit": circuit if isinstance(circuit, str) else json.dumps(circuit)},
    )


def folder_of(kit: Kit, folder_id: str) -> dict[str, Any]:
    response = kit["agent"].get(f"/parapheur/folders/{folder_id}")
    assert response.status_code == 200, response.text
    return response.json()


def folder_count(tenant_id: str) -> int:
    with new_session() as session:
        return session.execute(
            select(func.count()).select_from(Folder).where(Folder.tenant_id == tenant_id)
        ).scalar_one()


def ready_folder(kit: Kit, content: bytes, circuit: list[dict[str, str]] = VISA_THEN_SIGN) -> tuple[str, str]:
    """A GED document and its folder, in progress: (document id, folder id)."""
    document = upload_document(kit["agent"], content)
    folder = create_folder(kit, document["id"], circuit)
    assert folder["status"] == "awaiting_document"
    run_jobs()
    assert folder_of(kit, folder["id"])["status"] == "in_progress"
    return document["id"], folder["id"]


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
    document_id, folder_id = ready_folder(kit, pdf_bytes)
    folder = folder_of(kit, folder_id)
    assert folder["current_step"] == 0 and folder["ged_document_id"] == document_id
    assert folder["document_sha256"] == hashlib.sha256(pdf_bytes).hexdigest()
    assert kit["agent"].get(f"/parapheur/folders/{folder_id}/document").content == pdf_bytes

    visa = kit["agent"].post(f"/parapheur/folders/{folder_id}/visa", json={"comment": "Vu"})
    assert visa.status_code == 200, visa.text
    assert visa.json()["current_step"] == 1 and visa.json()["status"] == "in_progress"
    assert visa.json()["steps"][0]["status"] == "done" and visa.json()["steps"][0]["acted_by"] == "agent"
    assert visa.json()["steps"][0]["comment"] == "Vu"

    signed = kit["maire"].post(f"/parapheur/folders/{folder_id}/sign", json={})
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
    assert version["comment"] == "Signé par maire"
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


def test_two_signatures_are_both_valid(kit: Kit, tmp_path: Path) -> None:
    circuit = [*VISA_THEN_SIGN, {"kind": "signature", "actor": "maire"}]
    document_id, folder_id = ready_folder(kit, make_pdf("Convention", pages=2), circuit)
    assert kit["agent"].post(f"/parapheur/folders/{folder_id}/visa").status_code == 200
    first = kit["maire"].post(f"/parapheur/folders/{folder_id}/sign")
    assert first.status_code == 200 and first.json()["status"] == "in_progress" and first.json()["current_step"] == 2
    run_jobs()
    assert kit["agent"].get(f"/ged/documents/{document_id}").json()["current_version"] == 1  # not finished yet

    second = kit["maire"].post(f"/parapheur/folders/{folder_id}/sign", json={"comment": "Deuxième signature"})
    assert second.status_code == 200 and second.json()["status"] == "completed"
    run_jobs()

    current = kit["agent"].get(f"/ged/documents/{document_id}").json()
    assert current["current_version"] == 2 and current["current"]["comment"] == "Signé par maire, maire"
    path = tmp_path / "deux-signatures.pdf"
    path.write_bytes(kit["agent"].get(f"/ged/documents/{document_id}/content").content)
    assert_validly_signed(path, 2)
    checks = verify_pdf(path, [identity_certificate()])
    assert checks[0].covers_whole_document  # later revision only adds a signature
    assert {check.field_name for check in checks} == {"Signature1", "Signature2"}
    qpdf_check(path)
    with pikepdf.open(path) as pdf:
        assert len(pdf.pages) == 2


def test_signed_version_is_stored_once_however_often_the_job_runs(kit: Kit, pdf_bytes: bytes) -> None:
    document_id, folder_id = ready_folder(kit, pdf_bytes, SIGN_ONLY)
    assert kit["maire"].post(f"/parapheur/folders/{folder_id}/sign").status_code == 200
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
    _, folder_id = ready_folder(kit, pdf_bytes)
    # Step 0 is the agent's visa.
    assert_problem(kit["maire"].post(f"/parapheur/folders/{folder_id}/visa"), 403)
    assert_problem(kit["maire"].post(f"/parapheur/folders/{folder_id}/sign"), 403)
    assert_problem(kit["archiviste"].post(f"/parapheur/folders/{folder_id}/reject", json={"reason": "non"}), 403)
    assert_problem(kit["agent"].post(f"/parapheur/folders/{folder_id}/sign"), 409)  # the agent's step is a visa
    assert kit["agent"].post(f"/parapheur/folders/{folder_id}/visa").status_code == 200
    # Step 1 is the maire's signature.
    body = assert_problem(kit["maire"].post(f"/parapheur/folders/{folder_id}/visa"), 409)
    assert "signature" in body["detail"]
    assert_problem(kit["agent"].post(f"/parapheur/folders/{folder_id}/visa"), 403)
    folder = folder_of(kit, folder_id)
    assert folder["status"] == "in_progress" and folder["current_step"] == 1
    assert folder["steps"][1]["status"] == "pending"


def test_reject_needs_a_reason_then_ends_the_folder(kit: Kit, pdf_bytes: bytes) -> None:
    _, folder_id = ready_folder(kit, pdf_bytes)
    assert_problem(kit["agent"].post(f"/parapheur/folders/{folder_id}/reject", json={}), 422)
    assert_problem(kit["agent"].post(f"/parapheur/folders/{folder_id}/reject", json={"reason": ""}), 422)
    body = assert_problem(kit["agent"].post(f"/parapheur/folders/{folder_id}/reject", json={"reason": "   "}), 422)
    assert "motif" in body["detail"]
    assert folder_of(kit, folder_id)["status"] == "in_progress"

    rejected = kit["agent"].post(f"/parapheur/folders/{folder_id}/reject", json={"reason": "Montant erroné"})
    assert rejected.status_code == 200, rejected.text
    folder = rejected.json()
    assert folder["status"] == "rejected" and folder["rejection_reason"] == "Montant erroné"
    assert folder["steps"][0]["status"] == "rejected" and folder["steps"][0]["acted_by"] == "agent"

    assert_problem(kit["agent"].post(f"/parapheur/folders/{folder_id}/visa"), 409)
    assert_problem(kit["maire"].post(f"/parapheur/folders/{folder_id}/sign"), 409)
    assert_problem(kit["agent"].post(f"/parapheur/folders/{folder_id}/reject", json={"reason": "encore"}), 409)
    assert [item["id"] for item in kit["agent"].get("/parapheur/folders", params={"status": "rejected"}).json()] == [
        folder_id
    ]


def test_signer_without_identity_gets_409_and_the_folder_waits(make_kit: Callable[..., Kit], pdf_bytes: bytes) -> None:
    kit = make_kit(with_identity=False)
    created = upload_folder(kit, pdf_bytes, SIGN_ONLY)
    assert created.status_code == 201, created.text
    folder_id = created.json()["id"]
    body = assert_problem(kit["maire"].post(f"/parapheur/folders/{folder_id}/sign"), 409)
    assert "identité" in body["detail"]
    folder = folder_of(kit, folder_id)
    assert folder["status"] == "in_progress" and folder["current_step"] == 0
    assert folder["steps"][0]["status"] == "pending" and folder["steps"][0]["acted_by"] is None
    assert folder["document_sha256"] == hashlib.sha256(pdf_bytes).hexdigest()


# --------------------------------------------------------------------------------------------------------
# Uploaded PDFs


def test_direct_upload_then_signature(kit: Kit, tmp_path: Path) -> None:
    content = make_pdf("Arrêté n° 2026-15")
    created = upload_folder(kit, content, [{"kind": "visa", "actor": "agent"}, *SIGN_ONLY], filename="arrêté.pdf")
    assert created.status_code == 201, created.text
    folder = created.json()
    assert folder["status"] == "in_progress" and folder["source"] == "upload" and folder["ged_document_id"] is None
    assert folder["document_filename"] == "arrêté.pdf" and folder["current_step"] == 0
    assert folder["document_sha256"] == hashlib.sha256(content).hexdigest()
    assert kit["agent"].get(f"/parapheur/folders/{folder['id']}/document").content == content

    assert kit["agent"].post(f"/parapheur/folders/{folder['id']}/visa").status_code == 200
    signed = kit["maire"].post(f"/parapheur/folders/{folder['id']}/sign").json()
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
    before = stored_objects()
    for name, (content, expected) in broken_pdfs(tmp_path).items():
        body = assert_problem(upload_folder(kit, content, filename=f"{name}.pdf"), 422)
        assert expected in body["detail"], (name, body)
    assert folder_count(kit.tenant_id) == 0
    assert kit["agent"].get("/parapheur/folders").json() == []
    assert stored_objects() == before


def test_invalid_circuits_are_refused(kit: Kit, pdf_bytes: bytes) -> None:
    document = upload_document(kit["agent"], pdf_bytes)
    before = stored_objects()
    for circuit in ("pas du json", "[]", '[{"kind": "tampon", "actor": "maire"}]', '{"kind": "visa"}'):
        assert_problem(upload_folder(kit, make_pdf("circuit"), circuit), 422)
    unknown = [{"kind": "visa", "actor": "agent"}, {"kind": "signature", "actor": "inconnu"}]
    body = assert_problem(upload_folder(kit, make_pdf("acteur inconnu"), unknown), 422)
    assert "inconnu" in body["detail"]
    response = kit["agent"].post(
        "/parapheur/folders", json={"title": "x", "ged_document_id": document["id"], "circuit": unknown}
    )
    assert "inconnu" in assert_problem(response, 422)["detail"]
    empty = kit["agent"].post(
        "/parapheur/folders", json={"title": "x", "ged_document_id": document["id"], "circuit": []}
    )
    assert_problem(empty, 422)
    assert folder_count(kit.tenant_id) == 0
    assert stored_objects() == before
    run_jobs()
    assert kit["agent"].get(f"/ged/documents/{document['id']}").json()["current_version"] == 1


def test_actor_of_another_tenant_is_unknown(make_kit: Callable[..., Kit], pdf_bytes: bytes) -> None:
    kit, other = make_kit(with_identity=False), make_kit(with_identity=False)
    with transaction() as session:
        create_user(session, get_tenant(session, other.slug), "directrice", "Claude Roux", ["agent"])
    # A user of another collectivité cannot be put in a circuit, even by name.
    body = assert_problem(upload_folder(kit, pdf_bytes, [{"kind": "visa", "actor": "directrice"}]), 422)
    assert "directrice" in body["detail"]
    assert folder_count(kit.tenant_id) == 0
    created = upload_folder(other, pdf_bytes, [{"kind": "visa", "actor": "directrice"}])
    assert created.status_code == 201, created.text
    assert kit["agent"].get("/parapheur/folders").json() == []  # and the other tenant's folder stays theirs


# --------------------------------------------------------------------------------------------------------
# GED documents the parapheur cannot use


def test_folder_on_a_ged_document_that_is_not_a_pdf_ends_in_error(kit: Kit) -> None:
    response = kit["agent"].post(
        "/ged/documents",
        files={"file": ("note.txt", b"Note de service\n", "text/plain")},
        data={"title": "Note", "document_type": "note"},
    )
    assert response.status_code == 201, response.text
    folder = create_folder(kit, response.json()["id"])
    run_jobs()
    folder = folder_of(kit, folder["id"])
    assert folder["status"] == "error"
    assert "n'est pas un PDF" in folder["error"]
    assert_problem(kit["agent"].post(f"/parapheur/folders/{folder['id']}/visa"), 409)


def test_folder_on_an_unknown_or_foreign_document_ends_in_error(make_kit: Callable[..., Kit]) -> None:
    kit, other = make_kit(with_identity=False), make_kit(with_identity=False)
    foreign = upload_document(
        other["agent"], make_pdf("Confidentiel"), title="Dossier confidentiel B", filename="b.pdf"
    )
    unknown = create_folder(kit, "00000000-0000-0000-0000-000000000000")
    stolen = create_folder(kit, foreign["id"])
    run_jobs()
    for folder_id in (unknown["id"], stolen["id"]):
        folder = folder_of(kit, folder_id)
        assert folder["status"] == "error"
        assert "introuvable" in folder["error"]
        assert folder["document_sha256"] is None and folder["document_filename"] is None
        raw = kit["agent"].get(f"/parapheur/folders/{folder_id}").text
        assert "confidentiel" not in raw.lower() and foreign["current"]["content"]["sha256"] not in raw
        assert_problem(kit["agent"].get(f"/parapheur/folders/{folder_id}/document"), 404)
        assert_problem(kit["agent"].post(f"/parapheur/folders/{folder_id}/visa"), 409)
    # The other tenant's document is untouched, and the folder is invisible to the other tenant.
    assert other["agent"].get(f"/ged/documents/{foreign['id']}").json()["current_version"] == 1
    assert_problem(other["agent"].get(f"/parapheur/folders/{stolen['id']}"), 404)


def test_unknown_folder_is_404(kit: Kit) -> None:
    unknown = "00000000-0000-0000-0000-000000000000"
    assert_problem(kit["agent"].get(f"/parapheur/folders/{unknown}"), 404)
    assert_problem(kit["agent"].get(f"/parapheur/folders/{unknown}/document"), 404)
    assert_problem(kit["agent"].post(f"/parapheur/folders/{unknown}/visa"), 404)
    assert_problem(kit["maire"].post(f"/parapheur/folders/{unknown}/sign"), 404)
