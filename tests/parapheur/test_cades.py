"""CAdES detached signatures (.p7s) of any file, cross-checked with ``openssl cms -verify``, and their validation."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from softhsm import softhsm
from testpki import PKCS12_PASSPHRASE, TestPki, closed_port_url

from parapheur.cades import sign_detached, validate_detached
from parapheur.pades import PdfError, SignatureLevel, SigningError, SigningIdentity, TrustServices
from parapheur.tokens import open_pkcs11_identity

from conftest import missing, socle_command


def openssl_verify(data: Path, signature: Path, root_pem: Path) -> subprocess.CompletedProcess[str]:
    """OpenSSL's independent verdict on a detached CMS signature."""
    if shutil.which("openssl") is None:
        missing("openssl n'est pas installé")
    command = ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(signature)]
    command += ["-content", str(data), "-CAfile", str(root_pem), "-out", "/dev/null"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def signer(pki: TestPki) -> SigningIdentity:
    return SigningIdentity.from_pkcs12(pki.pkcs12("signer"), PKCS12_PASSPHRASE)


@pytest.fixture(scope="module")
def services(pki: TestPki) -> TrustServices:
    return TrustServices(tsa_url=pki.tsa_url, trust_roots=(pki.root_der,), timeout=5)


@pytest.fixture(scope="module")
def root_pem(pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trust") / "racine.pem"
    path.write_bytes(x509.load_der_x509_certificate(pki.root_der).public_bytes(Encoding.PEM))
    return path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "marché-public.csv"
    path.write_bytes("lot;montant\n1;12 500,00 €\n2;3 480,50 €\n".encode() * 200)
    return path


def signed(source: Path, signer: SigningIdentity, level: SignatureLevel, services: TrustServices) -> Path:
    path = source.with_name(source.name + ".p7s")
    path.write_bytes(sign_detached(source, signer, level=level, services=services))
    return path


@pytest.mark.parametrize("level", ["B-B", "B-T"])
def test_detached_signature_verified_by_openssl_and_reported(
    level: SignatureLevel, source: Path, signer: SigningIdentity, services: TrustServices, root_pem: Path, pki: TestPki
) -> None:
    p7s = signed(source, signer, level, services)

    result = openssl_verify(source, p7s, root_pem)
    assert result.returncode == 0, result.stderr
    content_info = cms.ContentInfo.load(p7s.read_bytes())
    assert content_info["content"]["encap_content_info"]["content"].native is None  # detached
    [report] = validate_detached(source, p7s.read_bytes(), [pki.root_der])
    assert report.valid and report.intact and report.chain_trusted
    assert report.field_name == "CAdES 1" and report.signer_name == "Camille Martin"
    assert report.level == level and report.signing_time is not None
    assert (report.timestamp_time is not None) == (level == "B-T")
    assert report.revocation == "unknown"  # offline, and a .p7s carries no revocation data


def test_online_validation_checks_revocation(
    source: Path, signer: SigningIdentity, services: TrustServices, pki: TestPki
) -> None:
    p7s = signed(source, signer, "B-B", services)
    [report] = validate_detached(source, p7s.read_bytes(), [pki.root_der], allow_fetching=True)
    assert report.revocation == "good" and report.valid


def test_modified_data_fails_openssl_and_validation(
    source: Path, signer: SigningIdentity, services: TrustServices, root_pem: Path, pki: TestPki
) -> None:
    p7s = signed(source, signer, "B-T", services)
    source.write_bytes(source.read_bytes().replace(b"12 500,00", b"92 500,00", 1))

    assert openssl_verify(source, p7s, root_pem).returncode != 0
    [report] = validate_detached(source, p7s.read_bytes(), [pki.root_der])
    assert not report.intact and not report.valid and report.level is None
    assert "ALTÉRÉ" in report.summary


def test_untrusted_root_is_reported(source: Path, signer: SigningIdentity, services: TrustServices) -> None:
    p7s = signed(source, signer, "B-B", services)
    [report] = validate_detached(source, p7s.read_bytes(), [])
    assert report.intact and not report.chain_trusted and not report.valid


def test_revoked_signer_is_reported_online(source: Path, services: TrustServices, pki: TestPki) -> None:
    revoked = SigningIdentity.from_pkcs12(pki.pkcs12("revoked"), PKCS12_PASSPHRASE)
    p7s = signed(source, revoked, "B-B", services)
    [report] = validate_detached(source, p7s.read_bytes(), [pki.root_der], allow_fetching=True)
    assert report.intact and report.revocation == "revoked" and not report.valid
    assert report.revocation_date is not None


def test_unreachable_timestamp_authority_is_retryable(source: Path, signer: SigningIdentity) -> None:
    with pytest.raises(SigningError) as caught:
        sign_detached(source, signer, level="B-T", services=TrustServices(tsa_url=closed_port_url(), timeout=2))
    assert caught.value.retryable


@pytest.mark.parametrize(
    ("level", "services", "message"),
    [("B-T", None, "Aucune autorité d'horodatage"), ("B-LT", None, "B-B ou B-T")],
)
def test_levels_that_cannot_be_made_are_refused(
    source: Path, signer: SigningIdentity, level: SignatureLevel, services: TrustServices | None, message: str
) -> None:
    with pytest.raises(SigningError, match=message) as caught:
        sign_detached(source, signer, level=level, services=services)
    assert not caught.value.retryable


def test_expired_certificate_cannot_sign(source: Path, pki: TestPki) -> None:
    expired = SigningIdentity.from_pkcs12(pki.pkcs12("expired"), PKCS12_PASSPHRASE)
    with pytest.raises(SigningError, match="a expiré"):
        sign_detached(source, expired)


@pytest.mark.parametrize("signature", [b"", b"pas une signature", b"\x30\x03\x02\x01\x01"])
def test_unreadable_signature_is_refused(source: Path, signature: bytes) -> None:
    with pytest.raises(PdfError, match="n'est pas une signature CMS/CAdES"):
        validate_detached(source, signature, [])


def test_missing_data_file_is_refused(source: Path, signer: SigningIdentity, services: TrustServices) -> None:
    p7s = signed(source, signer, "B-B", services)
    with pytest.raises(PdfError, match="introuvable"):
        validate_detached(source.with_name("absent.csv"), p7s.read_bytes(), [])


def test_cli_verifies_a_detached_signature(
    source: Path, signer: SigningIdentity, services: TrustServices, root_pem: Path
) -> None:
    p7s = signed(source, signer, "B-T", services)
    # Data file found beside the signature, then given explicitly.
    for extra in ([], ["--data", str(source)]):
        result = socle_command("parapheur", "verify", str(p7s), "--trust", str(root_pem), *extra)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Signature « CAdES 1 » de Camille Martin : valide" in result.stdout

    other = source.with_name("autre.p7s")
    other.write_bytes(p7s.read_bytes())
    result = socle_command("parapheur", "verify", str(other), "--trust", str(root_pem))
    assert result.returncode == 1 and "--data" in result.stderr and "Traceback" not in result.stderr


def test_pkcs11_token_makes_a_detached_signature(pki: TestPki, source: Path, root_pem: Path) -> None:
    token = softhsm(pki).signer
    with open_pkcs11_identity(token.module_path, token.label, token.pin) as card:
        p7s = signed(source, card, "B-T", TrustServices(tsa_url=pki.tsa_url))
    assert openssl_verify(source, p7s, root_pem).returncode == 0
    [report] = validate_detached(source, p7s.read_bytes(), [pki.root_der])
    assert report.valid and report.level == "B-T"
