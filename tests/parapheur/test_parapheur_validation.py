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

from parapheur.pades import SignatureRequest, SigningIdentity, TrustServices, sign_pdf
from parapheur.service import import_identity
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
    # The timestamp is there, but its authority is not in the tenant's trust roots (only the identities'
    # certificates, until the tenant trust list exists): it proves nothing, hence level B-B.
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
