"""Validation reports of signed PDFs: the ``socle parapheur verify`` command and ``POST /parapheur/validations``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from testpki import PKCS12_PASSPHRASE, TestPki

from parapheur.identities import import_identity
from parapheur.pades import SignatureRequest, SigningIdentity, TrustServices, sign_pdf
from socle.auth import get_tenant
from socle.db import transaction

from conftest import Kit, assert_problem, make_pdf, signing_identity, socle_command

SPOOL = Path(os.environ["SOCLE_DATA_DIR"]) / "tmp"


@pytest.fixture(scope="module")
def long_term_pdf(pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PDF signed at B-LT by the test PKI's signer."""
    folder = tmp_path_factory.mktemp("validation")
    source = folder / "acte.pdf"
    source.write_bytes(make_pdf())
    signer = SigningIdentity.from_pkcs12(pki.pkcs12("signer"), PKCS12_PASSPHRASE)
    services = TrustServices(tsa_url=pki.tsa_url, trust_roots=(pki.root_der,))
    signed = folder / "acte-signe.pdf"
    sign_pdf(source, signed, signer, SignatureRequest("Camille Martin", "Arrêté", level="B-LT"), services)
    return signed


@pytest.fixture(scope="module")
def root_pem(pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trust") / "racine.pem"
    path.write_bytes(x509.load_der_x509_certificate(pki.root_der).public_bytes(Encoding.PEM))
    return path


def validate(kit: Kit, content: bytes, filename: str = "acte-signe.pdf") -> Any:
    return kit["agent"].post("/parapheur/validations", files={"file": (filename, content, "application/pdf")})


def spooled_uploads() -> list[Path]:
    return list(SPOOL.glob(".upload-*")) if SPOOL.exists() else []


# --------------------------------------------------------------------------- CLI


def test_cli_reports_a_valid_signature(long_term_pdf: Path, root_pem: Path) -> None:
    result = socle_command("parapheur", "verify", str(long_term_pdf), "--trust", str(root_pem))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Signature « Signature1 » de Camille Martin : valide (niveau PAdES B-LT)" in result.stdout
    assert "Traceback" not in result.stderr


def test_cli_exits_1_when_a_signature_is_not_valid(long_term_pdf: Path) -> None:
    result = socle_command("parapheur", "verify", str(long_term_pdf), "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["valid"] is False
    [signature] = report["signatures"]
    assert signature["chain_trusted"] is False and signature["intact"] is True
    assert "Traceback" not in result.stderr


def test_cli_refuses_a_file_that_is_not_a_pdf(tmp_path: Path) -> None:
    path = tmp_path / "note.pdf"
    path.write_text("ceci n'est pas un PDF")
    result = socle_command("parapheur", "verify", str(path))
    assert result.returncode == 1
    assert "n'est pas un PDF" in result.stderr and "Traceback" not in result.stderr


# --------------------------------------------------------------------------- API


def test_api_trusts_the_tenant_signing_identities(kit: Kit, pki: TestPki, long_term_pdf: Path) -> None:
    # The PKI's signer becomes one of the tenant's identities: its certificate is then trusted.
    with transaction() as session:
        import_identity(session, get_tenant(session, kit.slug), "agent", pki.pkcs12("signer"), PKCS12_PASSPHRASE)

    response = validate(kit, long_term_pdf.read_bytes())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["valid"] is True and body["signature_count"] == 1 and body["filename"] == "acte-signe.pdf"
    [signature] = body["signatures"]
    assert signature["signer"] == "Camille Martin"
    assert signature["chain_trusted"] is True and signature["intact"] is True
    # The timestamp is there, but its authority is not on the tenant's trust list (empty here; the identities'
    # own certificates are trusted): it proves nothing, hence level B-B.
    assert signature["timestamp_time"] and signature["level"] == "B-B"
    assert signature["summary"].startswith("Signature « Signature1 » de Camille Martin : valide")
    assert spooled_uploads() == []


def test_api_reports_an_unknown_signer_as_not_valid(kit: Kit, long_term_pdf: Path) -> None:
    response = validate(kit, long_term_pdf.read_bytes())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["valid"] is False
    assert body["signatures"][0]["chain_trusted"] is False


def test_api_validates_what_the_parapheur_signed(kit: Kit, tmp_path: Path) -> None:
    source = tmp_path / "acte.pdf"
    source.write_bytes(make_pdf())
    signed = tmp_path / "signe.pdf"
    identity = SigningIdentity.from_pkcs12(*signing_identity())  # the tenant's "maire"
    sign_pdf(source, signed, identity, SignatureRequest("Dominique Dupont", "Arrêté"))

    body = validate(kit, signed.read_bytes()).json()
    assert body["valid"] is True
    assert body["signatures"][0]["level"] == "B-B"


def test_api_refuses_a_file_that_is_not_a_pdf(kit: Kit) -> None:
    response = validate(kit, b"PK\x03\x04 une archive", filename="archive.pdf")
    body = assert_problem(response, 422)
    assert "n'est pas un PDF" in body["detail"]
    assert spooled_uploads() == []


def test_api_without_signatures_is_not_valid(kit: Kit) -> None:
    body = validate(kit, make_pdf()).json()
    assert (body["valid"], body["signature_count"], body["signatures"]) == (False, 0, [])


# ---------------------------------------------------------------------------------------------------------
# The tenant's trust list, and the other formats (PES with XAdES, detached CAdES)


def add_trust(kit: Kit, content: bytes, user: str = "admin", filename: str = "racine.pem") -> Any:
    return kit[user].post("/parapheur/trust-anchors", files={"file": (filename, content, "application/x-pem-file")})


def test_the_trust_list_anchors_chains_and_timestamps(kit: Kit, root_pem: Path, long_term_pdf: Path) -> None:
    assert validate(kit, long_term_pdf.read_bytes()).json()["valid"] is False

    added = add_trust(kit, root_pem.read_bytes())
    assert added.status_code == 201, added.text
    [anchor] = added.json()
    assert "CN=" in anchor["subject"] and len(anchor["sha256"]) == 64
    assert add_trust(kit, root_pem.read_bytes()).json()[0]["id"] == anchor["id"]  # known: kept once

    [signature] = validate(kit, long_term_pdf.read_bytes()).json()["signatures"]
    # The PKI's root anchors both the signer and the timestamp authority: the embedded data now count.
    assert signature["chain_trusted"] is True and signature["level"] == "B-LT"
    assert signature["signature_format"] == "PAdES"

    assert kit["admin"].delete(f"/parapheur/trust-anchors/{anchor['id']}").status_code == 204
    assert kit["admin"].get("/parapheur/trust-anchors").json() == []
    assert validate(kit, long_term_pdf.read_bytes()).json()["valid"] is False


def test_the_trust_list_is_the_administrators_and_the_tenants_own(
    make_kit: Any, root_pem: Path, tmp_path: Path
) -> None:
    mine, theirs = make_kit(with_identity=False), make_kit(with_identity=False)
    assert_problem(add_trust(mine, root_pem.read_bytes(), user="agent"), 403)
    body = assert_problem(add_trust(mine, b"pas un certificat", filename="faux.pem"), 422)
    assert "n'est pas un certificat X.509" in body["detail"]
    [anchor] = add_trust(mine, root_pem.read_bytes()).json()
    assert theirs["admin"].get("/parapheur/trust-anchors").json() == []
    assert_problem(theirs["admin"].delete(f"/parapheur/trust-anchors/{anchor['id']}"), 404)


def test_api_validates_a_signed_pes_and_a_detached_cades_signature(
    kit: Kit, pki: TestPki, root_pem: Path, tmp_path: Path
) -> None:
    from pes import make_pes_aller

    from parapheur import cades, xades

    signer = SigningIdentity.from_pkcs12(pki.pkcs12("signer"), PKCS12_PASSPHRASE)
    add_trust(kit, root_pem.read_bytes())
    pes = tmp_path / "pes.xml"
    pes.write_bytes(make_pes_aller(bordereaux=2))
    signed_pes = tmp_path / "pes-signe.xml"
    assert xades.sign_pes(pes, signed_pes, signer) == 2

    body = (
        kit["agent"]
        .post("/parapheur/validations", files={"file": ("pes-signe.xml", signed_pes.read_bytes(), "text/xml")})
        .json()
    )
    assert body["valid"] is True and body["signature_count"] == 2 and body["notes"] == []
    assert {signature["signature_format"] for signature in body["signatures"]} == {"XAdES"}

    # An unsigned PES says which bordereaux are missing their signature, and is not valid.
    body = kit["agent"].post("/parapheur/validations", files={"file": ("pes.xml", pes.read_bytes(), "text/xml")}).json()
    assert body["valid"] is False and len(body["notes"]) == 2 and "NON SIGNÉ" in body["notes"][0]

    data = tmp_path / "budget.ods"
    data.write_bytes(b"un tableur du budget primitif" * 100)
    p7s = cades.sign_detached(data, signer)
    files = {"file": ("budget.ods.p7s", p7s, "application/pkcs7-signature"), "data": ("budget.ods", data.read_bytes())}
    body = kit["agent"].post("/parapheur/validations", files=files).json()
    assert body["valid"] is True and body["signatures"][0]["signature_format"] == "CAdES"
    files["data"] = ("budget.ods", data.read_bytes() + b"!")
    body = kit["agent"].post("/parapheur/validations", files=files).json()
    assert body["valid"] is False and body["signatures"][0]["intact"] is False

    without_data = kit["agent"].post("/parapheur/validations", files={"file": ("budget.ods.p7s", p7s)})
    assert "joignez aussi le fichier signé" in assert_problem(without_data, 422)["detail"]
    assert spooled_uploads() == []
