"""PAdES baseline levels B-B to B-LTA against the local test PKI (certomancer), cross-checked with pdfsig."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation.dss import DocumentSecurityStore
from testpki import PKCS12_PASSPHRASE, TestPki, closed_port_url

from parapheur.pades import (
    LEVELS,
    SignatureLevel,
    SignatureRequest,
    SigningError,
    SigningIdentity,
    TrustServices,
    inspect_pdf,
    sign_pdf,
    validation_report,
)

from conftest import make_pdf, pdfsig

VALID = "Signature is Valid"


def signature_blocks(report: str) -> list[str]:
    """pdfsig's report cut into one block per signature (document timestamps included)."""
    return report.split("Signature #")[1:]


def embedded_data(path: Path) -> tuple[int, int, int]:
    """(OCSP responses, CRLs, document timestamps) that the PDF carries."""
    with path.open("rb") as stream:
        reader = PdfFileReader(stream, strict=False)
        timestamps = len(reader.embedded_timestamp_signatures)
        if "/DSS" not in reader.root:
            return 0, 0, timestamps
        dss = DocumentSecurityStore.read_dss(reader)
        return len(dss.ocsps), len(dss.crls), timestamps


def request(level: SignatureLevel, field_name: str | None = None) -> SignatureRequest:
    return SignatureRequest(
        "Camille Martin", "Délibération n° 12", location="Mairie", level=level, field_name=field_name
    )


@pytest.fixture(scope="module")
def signer(pki: TestPki) -> SigningIdentity:
    return SigningIdentity.from_pkcs12(pki.pkcs12("signer"), PKCS12_PASSPHRASE)


@pytest.fixture(scope="module")
def services(pki: TestPki) -> TrustServices:
    return TrustServices(tsa_url=pki.tsa_url, trust_roots=(pki.root_der,), timeout=5)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "acte.pdf"
    path.write_bytes(make_pdf())
    return path


# --------------------------------------------------------------------------- each level


@pytest.mark.parametrize("level", LEVELS)
def test_each_level_is_valid_and_reached(
    level: SignatureLevel, pki: TestPki, signer: SigningIdentity, services: TrustServices, source: Path
) -> None:
    signed = source.with_name(f"signe-{level}.pdf")
    sign_pdf(source, signed, signer, request(level), services)

    assert VALID in signature_blocks(pdfsig(signed))[0]
    ocsps, crls, document_timestamps = embedded_data(signed)
    long_term = level in ("B-LT", "B-LTA")
    assert (ocsps > 0 and crls > 0) is long_term
    assert document_timestamps == (1 if level == "B-LTA" else 0)
    assert inspect_pdf(signed).signature_count == 1  # a document timestamp is nobody's signature

    # No fetching: from B-LT on, the embedded data alone proves the certificate was not revoked.
    [report] = validation_report(signed, [pki.root_der], allow_fetching=False)
    assert report.level == level
    assert report.valid and report.intact and report.chain_trusted and report.covers_whole_document
    assert (report.timestamp_time is not None) is (level != "B-B")
    assert report.revocation == ("good" if long_term else "unknown")
    assert report.signer_name == "Camille Martin"
    assert f"valide (niveau PAdES {level})" in report.summary


@pytest.mark.parametrize("level", ["B-B", "B-T"])
def test_short_term_levels_get_their_revocation_status_online(
    level: SignatureLevel, pki: TestPki, signer: SigningIdentity, services: TrustServices, source: Path
) -> None:
    signed = source.with_name("signe.pdf")
    sign_pdf(source, signed, signer, request(level), services)

    [report] = validation_report(signed, [pki.root_der], allow_fetching=True)
    assert (report.revocation, report.level, report.valid) == ("good", level, True)


def test_successive_signatures_keep_earlier_ones_valid(
    pki: TestPki, signer: SigningIdentity, services: TrustServices, source: Path
) -> None:
    first = source.with_name("premiere.pdf")
    sign_pdf(source, first, signer, request("B-LTA"), services)
    second = source.with_name("seconde.pdf")
    sign_pdf(first, second, signer, request("B-LT"), services)
    # In place, and at B-B: a timestamped signature would reach B-LT at once, its validation data being
    # already in the document (the same certificate signed before).
    sign_pdf(second, second, signer, request("B-B", field_name="Visa_DGS"), services)

    reports = validation_report(second, [pki.root_der])
    assert [(r.field_name, r.level) for r in reports] == [
        ("Signature1", "B-LTA"),
        ("Signature2", "B-LT"),
        ("Visa_DGS", "B-B"),
    ]
    assert all(r.valid and r.covers_whole_document for r in reports)
    blocks = [block for block in signature_blocks(pdfsig(second)) if "Horodatage de test" not in block]
    assert len(blocks) == 3 and all(VALID in block for block in blocks)


def test_untrusted_root_is_reported(signer: SigningIdentity, services: TrustServices, source: Path) -> None:
    signed = source.with_name("signe.pdf")
    sign_pdf(source, signed, signer, request("B-LT"), services)

    [report] = validation_report(signed, [])
    assert report.intact and not report.chain_trusted and not report.valid
    assert "NON reconnu" in report.summary


# --------------------------------------------------------------------------- bad input


def test_revoked_signer_is_reported_revoked(pki: TestPki, services: TrustServices, source: Path) -> None:
    revoked = SigningIdentity.from_pkcs12(pki.pkcs12("revoked"), PKCS12_PASSPHRASE)
    signed = source.with_name("revoque.pdf")
    # B-T asks no responder while signing: the revocation shows at validation.
    sign_pdf(source, signed, revoked, request("B-T"), services)

    [report] = validation_report(signed, [pki.root_der], allow_fetching=True)
    assert report.revocation == "revoked"
    assert report.revocation_date is not None and report.revocation_date.year == 2025
    assert report.intact and not report.valid
    assert "RÉVOQUÉ depuis le 01/01/2025" in report.summary


def test_revoked_signer_cannot_sign_long_term(pki: TestPki, services: TrustServices, source: Path) -> None:
    revoked = SigningIdentity.from_pkcs12(pki.pkcs12("revoked"), PKCS12_PASSPHRASE)
    destination = source.with_name("revoque.pdf")
    with pytest.raises(
        SigningError, match="« Révoqué Dupont » est révoqué depuis le 01/01/2025 : signature B-LT"
    ) as raised:
        sign_pdf(source, destination, revoked, request("B-LT"), services)
    assert not raised.value.retryable
    assert sorted(p.name for p in source.parent.iterdir()) == ["acte.pdf"]


@pytest.mark.parametrize("level", ["B-B", "B-LTA"])
def test_expired_signer_is_refused_and_nothing_written(
    level: SignatureLevel, pki: TestPki, services: TrustServices, source: Path
) -> None:
    expired = SigningIdentity.from_pkcs12(pki.pkcs12("expired"), PKCS12_PASSPHRASE)
    destination = source.with_name("expire.pdf")
    with pytest.raises(SigningError, match="Expiré Durand a expiré le 01/01/2021"):
        sign_pdf(source, destination, expired, request(level), services)
    assert sorted(p.name for p in source.parent.iterdir()) == ["acte.pdf"]


def test_timestamp_authority_down_is_a_clear_retryable_error(
    pki: TestPki, signer: SigningIdentity, source: Path
) -> None:
    down = TrustServices(tsa_url=closed_port_url(), trust_roots=(pki.root_der,), timeout=2)
    destination = source.with_name("signe.pdf")
    with pytest.raises(SigningError, match="L'autorité d'horodatage ne répond pas") as raised:
        sign_pdf(source, destination, signer, request("B-T"), down)
    assert raised.value.retryable
    assert sorted(p.name for p in source.parent.iterdir()) == ["acte.pdf"]


def test_timestamped_level_needs_a_timestamp_authority(signer: SigningIdentity, source: Path) -> None:
    with pytest.raises(SigningError, match="Aucune autorité d'horodatage"):
        sign_pdf(source, source.with_name("signe.pdf"), signer, request("B-T"), TrustServices())
    assert sorted(p.name for p in source.parent.iterdir()) == ["acte.pdf"]
