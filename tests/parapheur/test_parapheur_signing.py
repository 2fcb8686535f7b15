"""Signing acts through the API: PAdES, CAdES co-signatures, XAdES (PES), degrade then upgrade, bad inputs,
the server seal (PKCS#12 and PKCS#11), paper signature and client-side signing with a smart card."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import signing_helpers
from click.testing import CliRunner
from fastapi.testclient import TestClient
from parapheur_kit import Standard, act, desk, folder_of, ok, sent_folder, typology
from pes import make_pes_aller
from signing_helpers import (
    actions,
    history,
    import_pki_identity,
    import_seal,
    jobs_of,
    make_due,
    object_path,
    save,
    stamp_lines,
)
from softhsm import softhsm
from sqlalchemy import update
from testpki import PKCS12_PASSPHRASE, TestPki, closed_port_url

from parapheur import cades, jobs, pades, xades
from parapheur.card_client import sign_folder_with_card
from parapheur.cli import group
from parapheur.models import SigningIdentity
from socle import secrets
from socle.db import transaction

from conftest import Kit, assert_problem, identity_certificate, make_pdf, missing, pdfsig, run_jobs

VALID = "Signature is Valid"
use_tsa = signing_helpers.use_tsa  # the fixture, shared with the other signing tests
UPGRADE = "parapheur.jobs.upgrade_signature"


def typed(
    kit: Kit, circuit: list[dict[str, Any]], *, level: str = "B-B", signature_format: str = "pades", **sub: Any
) -> str:
    """A type at ``level`` and a sous-type with ``circuit``; returns the sous-type's id."""
    type_body = {
        "name": f"Type {level} {signature_format} {len(circuit)}",
        "signature_format": signature_format,
        "level": level,
    }
    type_id = ok(kit["admin"].post("/parapheur/types", json=type_body), 201)["id"]
    body = {"name": "Sous-type", "circuit": circuit, **sub}
    return str(ok(kit["admin"].post(f"/parapheur/types/{type_id}/subtypes", json=body), 201)["id"])


def current_document(kit: Kit, folder_id: str, tmp_path: Path, index: int = 0) -> Path:
    folder = folder_of(kit, folder_id)
    document = [doc for doc in folder["documents"] if doc["role"] == "main"][index]
    return save(
        tmp_path,
        f"{folder_id}-{document['current_sha256'][:8]}.pdf",
        object_path(document["current_sha256"]).read_bytes(),
    )


def step_of(kit: Kit, folder_id: str) -> int | None:
    return folder_of(kit, folder_id)["current_step"]


# ---------------------------------------------------------------------------------------------------------
# PAdES


def test_a_signature_act_signs_every_main_document_with_the_desk_role(kit: Kit, tmp_path: Path) -> None:
    setup = Standard(kit)
    files = [
        ("acte.pdf", make_pdf("Acte"), "application/pdf"),
        ("annexe-signee.pdf", make_pdf("Plan", 2), "application/pdf"),
    ]
    folder = sent_folder(kit, setup.sign_only, files=files)
    signed = ok(act(kit, "maire", folder["id"], "sign", {"comment": "Bon pour signature"}))

    assert signed["status"] == "completed" and signed["pending_level"] is None
    for index in (0, 1):
        path = current_document(kit, folder["id"], tmp_path, index)
        assert pdfsig(path).count(VALID) == 1
        lines = stamp_lines(path)
        assert lines[:2] == ["Signé par Dominique Dupont", "Maire"] and "Signature : Arrêté du maire" in lines
        checks = pades.verify_pdf(path, [identity_certificate()])
        assert [(c.signer_name, c.intact, c.valid) for c in checks] == [("Dominique Dupont", True, True)]
    act_row = signed["steps"][0]["acts"][0]
    assert act_row["action"] == "signature"
    # The droit de remords knows what each document was before.
    before = {doc["id"]: None for doc in signed["documents"] if doc["role"] == "main"}
    with transaction() as session:
        from parapheur.models import StepAct

        stored = session.get(StepAct, act_row["id"])
        assert stored is not None and stored.previous_keys == before


def test_undoing_a_signature_restores_the_document(kit: Kit, tmp_path: Path) -> None:
    setup = Standard(kit)
    circuit = [{"kind": "signature", "desk_ids": [setup.maire]}, {"kind": "visa", "desk_ids": [setup.secretariat]}]
    folder = sent_folder(kit, typed(kit, circuit))
    received = folder["documents"][0]["sha256"]
    signed = ok(act(kit, "maire", folder["id"], "sign"))
    assert signed["documents"][0]["current_sha256"] != received
    undone = ok(act(kit, "maire", folder["id"], "undo"))
    assert undone["documents"][0]["current_sha256"] == received and undone["current_step"] == 0


# ---------------------------------------------------------------------------------------------------------
# CAdES and XAdES


def test_cades_cosignature_is_one_detached_signature_checked_by_openssl(kit: Kit, pki: TestPki, tmp_path: Path) -> None:
    setup = Standard(kit)
    import_pki_identity(kit, "agent", pki)
    circuit = [{"kind": "signature", "desk_ids": [setup.secretariat, setup.maire], "mode": "all"}]
    subtype = typed(kit, circuit, signature_format="cades")
    content = b"Convention de partenariat\n" * 50
    folder = sent_folder(kit, subtype, files=[("convention.txt", content, "text/plain")])
    ok(act(kit, "agent", folder["id"], "sign"))
    signed = ok(act(kit, "maire", folder["id"], "sign"))
    assert signed["status"] == "completed"

    document = signed["documents"][0]
    assert document["current_sha256"] == document["sha256"]  # the document itself is untouched
    response = kit["agent"].get(f"/parapheur/folders/{folder['id']}/documents/{document['id']}/signature")
    assert response.status_code == 200 and response.headers["content-type"] == "application/pkcs7-signature"
    p7s, source = save(tmp_path, "convention.txt.p7s", response.content), save(tmp_path, "convention.txt", content)

    reports = cades.validate_detached(source, p7s.read_bytes(), [pki.root_der, identity_certificate()])
    assert sorted(r.signer_name for r in reports) == sorted(["Dominique Dupont", reports[0].signer_name])
    assert len(reports) == 2 and all(r.intact and r.valid for r in reports), [r.summary for r in reports]
    if shutil.which("openssl") is None:
        missing("openssl absent")
    result = subprocess.run(
        [
            "openssl",
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            str(p7s),
            "-content",
            str(source),
            "-noverify",
            "-out",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "Verification successful" in result.stderr, result.stderr
    tampered = save(tmp_path, "altered.txt", content + b"!")
    assert not any(r.intact for r in cades.validate_detached(tampered, p7s.read_bytes(), [pki.root_der]))


def test_xades_signs_each_bordereau_of_a_pes(kit: Kit, pki: TestPki, tmp_path: Path) -> None:
    setup = Standard(kit)
    import_pki_identity(kit, "maire", pki)
    subtype = typed(kit, [{"kind": "signature", "desk_ids": [setup.maire]}], signature_format="xades")
    folder = sent_folder(kit, subtype, files=[("pes.xml", make_pes_aller(2), "text/xml")])
    signed = ok(act(kit, "maire", folder["id"], "sign"))
    path = save(tmp_path, "pes-signe.xml", object_path(signed["documents"][0]["current_sha256"]).read_bytes())
    reports = xades.validate_pes(path, [pki.root_der])
    assert len(reports) == 2 and all(r.valid for r in reports), [r.summary for r in reports]
    assert xades.unsigned_bordereaux(path) == []
    if shutil.which("xmlsec1") is None:
        missing("xmlsec1 n'est pas installé : lancez « make system-deps »")
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    root = save(tmp_path, "racine.pem", x509.load_der_x509_certificate(pki.root_der).public_bytes(Encoding.PEM))
    for bordereau in ("BORD-2026-0001", "BORD-2026-0002"):
        command = ["xmlsec1", "--verify", "--id-attr:Id", "Bordereau", "--id-attr:Id",
                   "http://www.w3.org/2000/09/xmldsig#:Signature", "--node-id", f"SIG-{bordereau}",
                   "--trusted-pem", str(root), str(path)]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and "OK" in result.stdout + result.stderr, result.stderr


# ---------------------------------------------------------------------------------------------------------
# Degrade, then upgrade


def test_with_the_tsa_down_the_signature_is_degraded_then_upgraded(
    kit: Kit, pki: TestPki, tmp_path: Path, use_tsa: Callable[[str | None], None], use_env: Callable[..., None]
) -> None:
    use_env(SOCLE_JOB_BACKOFF="3600")  # a failed upgrade waits for its next attempt
    setup = Standard(kit)
    import_pki_identity(kit, "maire", pki)
    subtype = typed(kit, [{"kind": "signature", "desk_ids": [setup.maire]}], level="B-T")
    folder = sent_folder(kit, subtype)

    use_tsa(closed_port_url())
    signed = ok(act(kit, "maire", folder["id"], "sign"))
    assert signed["status"] == "completed" and signed["pending_level"] == "B-T"
    degraded = [e for e in history(folder["id"]) if e.action == "signature_degraded"]
    assert len(degraded) == 1 and "B-B" in (degraded[0].comment or "")
    first = current_document(kit, folder["id"], tmp_path)
    assert [r.level for r in pades.validation_report(first, [pki.root_der])] == ["B-B"]

    run_jobs()  # the TSA is still down: the job fails, to be retried
    (job,) = jobs_of(UPGRADE, folder["id"])
    assert job.status == "pending" and job.attempts == 1 and "horodatage" in (job.last_error or "")
    assert folder_of(kit, folder["id"])["pending_level"] == "B-T"

    use_tsa(pki.tsa_url)
    make_due(UPGRADE, folder["id"])
    run_jobs()
    upgraded = folder_of(kit, folder["id"])
    assert upgraded["pending_level"] is None and jobs_of(UPGRADE, folder["id"])[0].status == "done"
    path = current_document(kit, folder["id"], tmp_path)
    assert [r.level for r in pades.validation_report(path, [pki.root_der])] == ["B-T"]
    assert VALID in pdfsig(path)
    assert "signature_upgraded" in actions(folder["id"])

    # Idempotent: a second run changes nothing.
    key = upgraded["documents"][0]["current_sha256"]
    jobs.upgrade_signature(tenant_id=kit.tenant_id, folder_id=folder["id"])
    assert folder_of(kit, folder["id"])["documents"][0]["current_sha256"] == key


def test_a_degraded_signature_taken_back_owes_nothing_and_no_upgrade_is_claimed(
    kit: Kit, pki: TestPki, use_tsa: Callable[[str | None], None], use_env: Callable[..., None]
) -> None:
    use_env(SOCLE_JOB_BACKOFF="3600")
    setup = Standard(kit)
    import_pki_identity(kit, "maire", pki)
    circuit = [{"kind": "signature", "desk_ids": [setup.maire]}, {"kind": "visa", "desk_ids": [setup.secretariat]}]
    folder = sent_folder(kit, typed(kit, circuit, level="B-T"))
    use_tsa(closed_port_url())
    assert ok(act(kit, "maire", folder["id"], "sign"))["pending_level"] == "B-T"
    undone = ok(act(kit, "maire", folder["id"], "undo"))  # droit de remords: the document is as it was
    assert undone["documents"][0]["current_sha256"] == undone["documents"][0]["sha256"]

    use_tsa(pki.tsa_url)
    make_due(UPGRADE, folder["id"])
    run_jobs()
    assert folder_of(kit, folder["id"])["pending_level"] is None
    assert "signature_upgraded" not in actions(folder["id"])  # no signature left to upgrade: none is claimed


def test_a_degraded_cades_signature_gets_its_timestamp_later(
    kit: Kit, pki: TestPki, tmp_path: Path, use_tsa: Callable[[str | None], None], use_env: Callable[..., None]
) -> None:
    use_env(SOCLE_JOB_BACKOFF="3600")
    setup = Standard(kit)
    import_pki_identity(kit, "maire", pki)
    subtype = typed(kit, [{"kind": "signature", "desk_ids": [setup.maire]}], level="B-T", signature_format="cades")
    content = b"Convention\n" * 100
    folder = sent_folder(kit, subtype, files=[("convention.txt", content, "text/plain")])
    use_tsa(closed_port_url())
    signed = ok(act(kit, "maire", folder["id"], "sign"))
    assert signed["pending_level"] == "B-T"
    source = save(tmp_path, "convention.txt", content)

    def levels() -> list[str | None]:
        document = folder_of(kit, folder["id"])["documents"][0]
        p7s = object_path(document["signature_sha256"]).read_bytes()
        return [r.level for r in cades.validate_detached(source, p7s, [pki.root_der])]

    assert levels() == ["B-B"]
    run_jobs()
    assert folder_of(kit, folder["id"])["pending_level"] == "B-T"
    use_tsa(pki.tsa_url)
    make_due(UPGRADE, folder["id"])
    run_jobs()
    assert folder_of(kit, folder["id"])["pending_level"] is None
    assert levels() == ["B-T"]


# ---------------------------------------------------------------------------------------------------------
# Bad input: a clear error, the folder stays in its step


@pytest.mark.parametrize("label", ["revoked", "expired"])
def test_an_unusable_certificate_leaves_the_folder_in_its_step(
    kit: Kit, pki: TestPki, label: str, use_tsa: Callable[[str | None], None]
) -> None:
    setup = Standard(kit)
    import_pki_identity(kit, "maire", pki, label)
    use_tsa(pki.tsa_url)
    subtype = typed(kit, [{"kind": "signature", "desk_ids": [setup.maire]}], level="B-LT")
    folder = sent_folder(kit, subtype)
    body = assert_problem(act(kit, "maire", folder["id"], "sign"), 422)
    assert ("révoqué" if label == "revoked" else "expiré") in body["detail"]
    after = folder_of(kit, folder["id"])
    assert after["status"] == "in_progress" and after["current_step"] == 0
    assert after["documents"][0]["current_sha256"] == folder["documents"][0]["sha256"]
    assert "signature" not in actions(folder["id"])


def test_a_certified_pdf_forbidding_changes_is_refused_and_nothing_moves(kit: Kit, tmp_path: Path) -> None:
    setup = Standard(kit)
    certified = _certified_pdf(tmp_path)
    folder = sent_folder(kit, setup.sign_only, files=[("certifie.pdf", certified, "application/pdf")])
    body = assert_problem(act(kit, "maire", folder["id"], "sign"), 422)
    assert "certifié" in body["detail"]
    assert folder_of(kit, folder["id"])["current_step"] == 0


def _certified_pdf(tmp_path: Path) -> bytes:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    from conftest import signing_identity

    identity = pades.SigningIdentity.from_pkcs12(*signing_identity())
    source = save(tmp_path, "source.pdf", make_pdf("Certifié"))
    output = tmp_path / "certifie.pdf"
    with source.open("rb") as stream, output.open("wb") as out:
        writer = IncrementalPdfFileWriter(stream)
        metadata = signers.PdfSignatureMetadata(
            field_name="Certification", certify=True, docmdp_permissions=fields.MDPPerm.NO_CHANGES
        )
        signers.PdfSigner(metadata, signer=identity._signer).sign_pdf(writer, output=out)
    return output.read_bytes()


# ---------------------------------------------------------------------------------------------------------
# Server seal (cachet serveur)


def test_a_seal_step_is_signed_by_the_server_with_the_subtype_seal(kit: Kit, pki: TestPki, tmp_path: Path) -> None:
    secretariat = desk(kit, "Secrétariat", ["agent"])
    seal_id = import_seal(kit, pki)
    circuit = [{"kind": "visa", "desk_ids": [secretariat]}, {"kind": "seal"}]
    subtype = typology(kit, circuit, name="Certificat", seal_identity_id=seal_id)
    folder = sent_folder(kit, subtype)
    ok(act(kit, "agent", folder["id"], "visa"))
    assert folder_of(kit, folder["id"])["status"] == "in_progress"
    run_jobs()
    sealed = folder_of(kit, folder["id"])
    assert sealed["status"] == "completed"
    seal_acts = [e for e in history(folder["id"]) if e.action == "seal"]
    assert [(e.actor, e.actor_name) for e in seal_acts] == [("service:parapheur", "Cachet de la mairie")]
    path = current_document(kit, folder["id"], tmp_path)
    assert VALID in pdfsig(path)
    jobs.apply_seal(tenant_id=kit.tenant_id, folder_id=folder["id"], step_id=sealed["steps"][1]["id"])
    assert folder_of(kit, folder["id"])["documents"][0]["current_sha256"] == sealed["documents"][0]["current_sha256"]


def test_a_pkcs11_seal_imported_by_the_cli_signs_and_a_wrong_pin_is_a_clear_error(
    kit: Kit, pki: TestPki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    token = softhsm(pki).signer
    desk(kit, "Secrétariat", ["agent"])  # who creates the folders
    runner = CliRunner()
    wrong = runner.invoke(
        group,
        ["seal-import", "--tenant", kit.slug, "--label", "HSM", "--pkcs11-module", token.module_path,
         "--token-label", token.label, "--key-label", str(token.key_label)],
        env={"SOCLE_SEAL_PIN": "000000"},
    )  # fmt: skip
    assert wrong.exit_code != 0 and "PIN" in str(wrong.exception or wrong.output)
    assert "000000" not in wrong.output
    result = runner.invoke(
        group,
        ["seal-import", "--tenant", kit.slug, "--label", "HSM", "--pkcs11-module", token.module_path,
         "--token-label", token.label, "--key-label", str(token.key_label)],
        env={"SOCLE_SEAL_PIN": token.pin},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    seal_id = result.output.rsplit("identifiant ", 1)[1].strip()
    listed = runner.invoke(group, ["seal-list", "--tenant", kit.slug])
    assert listed.exit_code == 0 and seal_id in listed.output and "HSM" in listed.output
    with transaction() as session:
        row = session.get(SigningIdentity, seal_id)
        assert row is not None and row.kind == "pkcs11" and row.purpose == "seal"
        assert (
            token.pin.encode() not in (row.pin_encrypted or b"")
            and secrets.decrypt(row.pin_encrypted or b"") == token.pin.encode()
        )

    subtype = typology(kit, [{"kind": "seal"}], name="Cachet HSM", seal_identity_id=seal_id)
    folder = sent_folder(kit, subtype)
    run_jobs()
    assert folder_of(kit, folder["id"])["status"] == "completed"
    assert VALID in pdfsig(current_document(kit, folder["id"], tmp_path))

    # The PIN changed on the HSM since: the seal job fails with a clear reason, the folder waits in its step.
    with transaction() as session:
        session.execute(
            update(SigningIdentity)
            .where(SigningIdentity.id == seal_id)
            .values(pin_encrypted=secrets.encrypt(b"111111"))
        )
    second = sent_folder(kit, subtype)
    run_jobs()
    waiting = folder_of(kit, second["id"])
    assert waiting["status"] == "in_progress" and waiting["current_step"] == 0
    assert "PIN" in (waiting["error"] or "") and "111111" not in (waiting["error"] or "")
    assert "seal_failed" in actions(second["id"])
    assert token.pin not in caplog.text and "111111" not in caplog.text and "000000" not in caplog.text
    (job,) = jobs_of("parapheur.jobs.apply_seal", second["id"])
    assert job.status == "failed" and "PIN" in (job.last_error or "") and "111111" not in (job.last_error or "")


# ---------------------------------------------------------------------------------------------------------
# Paper signature


def test_a_paper_signature_keeps_the_scan_and_records_the_act(kit: Kit) -> None:
    setup = Standard(kit)
    subtype = typed(kit, [{"kind": "paper_signature", "desk_ids": [setup.maire]}])
    folder = sent_folder(kit, subtype)
    url = f"/parapheur/folders/{folder['id']}/paper-signature"

    refused = kit["maire"].post(url, files={"file": ("scan.pdf", b"pas un PDF", "application/pdf")})
    assert "PDF" in assert_problem(refused, 422)["detail"] or "pdf" in refused.json()["detail"]
    assert folder_of(kit, folder["id"])["current_step"] == 0
    assert_problem(kit["agent"].post(url, files={"file": ("scan.pdf", make_pdf("Scan"), "application/pdf")}), 403)

    done = ok(
        kit["maire"].post(
            url, files={"file": ("scan.pdf", make_pdf("Scan"), "application/pdf")}, data={"comment": "Signé en séance"}
        )
    )
    assert done["status"] == "completed"
    scans = [doc for doc in done["documents"] if doc["role"] == "scan"]
    assert [scan["filename"] for scan in scans] == ["scan.pdf"]
    (event,) = [e for e in history(folder["id"]) if e.action == "paper_signature"]
    assert event.actor == "maire" and "Signé en séance" in (event.comment or "")


def test_a_paper_signature_taken_back_takes_its_scan_with_it(kit: Kit) -> None:
    setup = Standard(kit)
    subtype = typed(
        kit, [{"kind": "paper_signature", "desk_ids": [setup.maire]}, {"kind": "visa", "desk_ids": [setup.maire]}]
    )
    folder = sent_folder(kit, subtype)
    url = f"/parapheur/folders/{folder['id']}/paper-signature"
    ok(kit["maire"].post(url, files={"file": ("scan-1.pdf", make_pdf("Premier scan"), "application/pdf")}))

    undone = ok(act(kit, "maire", folder["id"], "undo"))
    assert undone["current_step"] == 0 and [doc for doc in undone["documents"] if doc["role"] == "scan"] == []
    again = ok(kit["maire"].post(url, files={"file": ("scan-2.pdf", make_pdf("Second scan"), "application/pdf")}))
    assert [doc["filename"] for doc in again["documents"] if doc["role"] == "scan"] == ["scan-2.pdf"]
    assert [e.comment for e in history(folder["id"]) if e.action == "paper_signature"] == [
        "Signature manuscrite ; scan : scan-1.pdf",
        "Signature manuscrite ; scan : scan-2.pdf",
    ]


# ---------------------------------------------------------------------------------------------------------
# Client-side signing (smart card)


def test_client_side_signing_with_a_card_through_the_api(kit: Kit, pki: TestPki, tmp_path: Path, app: Any) -> None:
    token = softhsm(pki).signer
    setup = Standard(kit)
    folder = sent_folder(kit, setup.sign_only)
    with TestClient(app, base_url="http://parapheur.test") as http:
        signed = sign_folder_with_card(
            "http://parapheur.test/parapheur", kit.tokens["maire"], folder["id"], token.module_path, token.label,
            token.pin, token.key_label, client=http,
        )  # fmt: skip
    assert signed["status"] == "completed"
    path = current_document(kit, folder["id"], tmp_path)
    assert VALID in pdfsig(path)
    checks = pades.verify_pdf(path, [pki.root_der])
    assert len(checks) == 1 and checks[0].intact and checks[0].valid
    assert [e.action for e in history(folder["id"]) if e.action == "signature"] == ["signature"]


def test_a_prepared_signature_serves_once_and_only_its_preparer(kit: Kit, pki: TestPki) -> None:
    token = softhsm(pki).signer
    setup = Standard(kit)
    kit_maire2 = desk(kit, "Maire adjoint", ["agent"])
    circuit = [{"kind": "signature", "desk_ids": [setup.maire, kit_maire2], "mode": "all"}]
    folder = sent_folder(kit, typed(kit, circuit))
    from parapheur.remote import sign_with_token

    certificate = pki.certificate_der("signer")
    import base64

    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    base = f"/parapheur/folders/{folder['id']}/signature"
    prepared = ok(kit["maire"].post(f"{base}/prepare", json={"certificate": b64(certificate)}))
    value, _ = sign_with_token(
        base64.b64decode(prepared["data_to_sign"]), token.module_path, token.label, token.pin, token.key_label
    )
    # Another user cannot use it, even one who may sign at this step.
    assert_problem(kit["agent"].post(f"{base}/finish", json={"id": prepared["id"], "signature": b64(value)}), 403)
    # A value that is not the card's signature of these data is refused, and the preparation stays usable.
    assert_problem(kit["maire"].post(f"{base}/finish", json={"id": prepared["id"], "signature": b64(b"\0" * 256)}), 422)
    ok(kit["maire"].post(f"{base}/finish", json={"id": prepared["id"], "signature": b64(value)}))
    again = kit["maire"].post(f"{base}/finish", json={"id": prepared["id"], "signature": b64(value)})
    assert again.status_code in (409, 403), again.text  # used, and the maire's desk already acted
    assert folder_of(kit, folder["id"])["status"] == "in_progress"
    assert_problem(kit["maire"].post(f"{base}/prepare", json={"certificate": "pas du base64 !"}), 422)


def test_a_card_signature_prepared_for_one_of_two_desks_is_finished_for_that_desk(kit: Kit, pki: TestPki) -> None:
    import base64

    from parapheur.remote import sign_with_token

    token = softhsm(pki).signer
    setup = Standard(kit)
    deputy = desk(kit, "Maire adjoint", ["maire"], "Premier adjoint")  # the maire holds both desks of the step
    circuit = [{"kind": "signature", "desk_ids": [setup.maire, deputy], "mode": "all"}]
    folder = sent_folder(kit, typed(kit, circuit))
    base = f"/parapheur/folders/{folder['id']}/signature"
    body = {"certificate": base64.b64encode(pki.certificate_der("signer")).decode(), "desk_id": deputy}
    prepared = ok(kit["maire"].post(f"{base}/prepare", json=body))
    value, _ = sign_with_token(
        base64.b64decode(prepared["data_to_sign"]), token.module_path, token.label, token.pin, token.key_label
    )
    finish = {"id": prepared["id"], "signature": base64.b64encode(value).decode()}
    done = ok(kit["maire"].post(f"{base}/finish", json=finish))
    [act_done] = [a for a in done["steps"][0]["acts"] if a["action"] == "signature"]
    assert act_done["desk_id"] == deputy  # the desk chosen at preparation, not the first one the maire holds


# ---------------------------------------------------------------------------------------------------------
# Identities: stamp image, secrets kept encrypted


def test_identity_import_with_a_stamp_image_draws_it_and_keeps_secrets_encrypted(
    kit: Kit, pki: TestPki, tmp_path: Path
) -> None:
    from io import BytesIO

    from PIL import Image

    image = BytesIO()
    Image.new("RGB", (120, 40), (20, 60, 160)).save(image, format="PNG")
    stamp = save(tmp_path, "tampon.png", image.getvalue())
    p12 = save(tmp_path, "maire.p12", pki.pkcs12("signer"))
    runner = CliRunner()
    bad = runner.invoke(
        group,
        ["identity-import", "--tenant", kit.slug, "--user", "maire", "--pkcs12", str(p12), "--stamp-image", str(p12)],
        env={"PKCS12_PASSPHRASE": PKCS12_PASSPHRASE.decode()},
    )
    assert bad.exit_code != 0 and "image" in str(bad.exception)
    result = runner.invoke(
        group,
        ["identity-import", "--tenant", kit.slug, "--user", "maire", "--pkcs12", str(p12), "--stamp-image", str(stamp)],
        env={"PKCS12_PASSPHRASE": PKCS12_PASSPHRASE.decode()},
    )
    assert result.exit_code == 0, result.output
    assert PKCS12_PASSPHRASE.decode() not in result.output
    with transaction() as session:
        from sqlalchemy import select

        row = session.execute(
            select(SigningIdentity).where(
                SigningIdentity.tenant_id == kit.tenant_id, SigningIdentity.username == "maire"
            )
        ).scalar_one()
        assert row.stamp_image == image.getvalue() and PKCS12_PASSPHRASE not in (row.passphrase_encrypted or b"")

    setup = Standard(kit)
    folder = sent_folder(kit, setup.sign_only)
    ok(act(kit, "maire", folder["id"], "sign"))
    path = current_document(kit, folder["id"], tmp_path)
    assert VALID in pdfsig(path)
    import pikepdf

    with pikepdf.open(path) as pdf:
        images = [
            obj for obj in pdf.objects if isinstance(obj, pikepdf.Stream) and obj.get("/Subtype") == pikepdf.Name.Image
        ]
    assert images, "the stamp image is drawn in the signature's appearance"


def test_an_expired_preparation_is_refused(kit: Kit, pki: TestPki) -> None:
    import base64
    from datetime import timedelta

    from parapheur.models import PreparedSignature
    from socle.db import utcnow

    setup = Standard(kit)
    folder = sent_folder(kit, setup.sign_only)
    base = f"/parapheur/folders/{folder['id']}/signature"
    b64 = base64.b64encode(pki.certificate_der("signer")).decode()
    prepared = ok(kit["maire"].post(f"{base}/prepare", json={"certificate": b64}))
    with transaction() as session:
        session.execute(
            update(PreparedSignature)
            .where(PreparedSignature.id == prepared["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    body = assert_problem(kit["maire"].post(f"{base}/finish", json={"id": prepared["id"], "signature": "AAAA"}), 409)
    assert "expiré" in body["detail"]
    assert folder_of(kit, folder["id"])["current_step"] == 0


def test_an_encrypted_pdf_never_reaches_a_signature_step(kit: Kit, tmp_path: Path) -> None:
    """Refused when deposited, with the reason: no folder waits on a PDF the parapheur could not sign."""
    import pikepdf

    source = save(tmp_path, "clair.pdf", make_pdf("Confidentiel"))
    encrypted = tmp_path / "chiffre.pdf"
    with pikepdf.open(source) as pdf:
        pdf.save(encrypted, encryption=pikepdf.Encryption(owner="proprietaire", user="lecteur"))
    setup = Standard(kit)
    from parapheur_kit import upload_folder

    response = upload_folder(kit, setup.sign_only, files=[("chiffre.pdf", encrypted.read_bytes(), "application/pdf")])
    body = assert_problem(response, 422)
    assert "chiffre.pdf" in body["detail"]
