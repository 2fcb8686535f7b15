"""Degrade, then upgrade: raising signed PDFs from B-B or B-T to B-T, B-LT, B-LTA against the local test PKI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pikepdf
import pytest
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from testpki import PKCS12_PASSPHRASE, TestPki, closed_port_url, running_pki

from parapheur.pades import (
    PdfError,
    SignatureLevel,
    SignatureRequest,
    SigningError,
    SigningIdentity,
    TrustServices,
    sign_pdf,
    upgrade_pdf,
    validation_report,
)

from conftest import make_pdf, pdfsig

VALID = "Signature is Valid"


def request(level: SignatureLevel, field_name: str | None = None) -> SignatureRequest:
    return SignatureRequest("Camille Martin", "Délibération n° 12", level=level, field_name=field_name)


def signer_blocks(path: Path) -> list[str]:
    """pdfsig's blocks for the signatures proper (it cannot check document timestamps)."""
    return [block for block in pdfsig(path).split("Signature #")[1:] if "Horodatage de test" not in block]


def files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


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


def signed_at(level: SignatureLevel, source: Path, signer: SigningIdentity, services: TrustServices) -> Path:
    destination = source.with_name(f"signe-{level}.pdf")
    sign_pdf(source, destination, signer, request(level), services)
    return destination


# --------------------------------------------------------------------------- upgrades


@pytest.mark.parametrize(
    ("start", "target"),
    [("B-B", "B-T"), ("B-B", "B-LT"), ("B-B", "B-LTA"), ("B-T", "B-LT"), ("B-T", "B-LTA"), ("B-LT", "B-LTA")],
)
def test_upgrade_reaches_the_target_and_keeps_the_signature_valid(
    start: SignatureLevel,
    target: SignatureLevel,
    pki: TestPki,
    signer: SigningIdentity,
    services: TrustServices,
    source: Path,
) -> None:
    signed = signed_at(start, source, signer, services)
    [before] = validation_report(signed, [pki.root_der])
    assert before.level == start
    upgraded = source.with_name("complete.pdf")

    assert upgrade_pdf(signed, upgraded, target, services) == target

    assert upgraded.read_bytes().startswith(signed.read_bytes())  # incremental: the signed revision untouched
    [block] = signer_blocks(upgraded)
    assert VALID in block
    # Offline: from B-LT on, the document alone proves the certificate was good at the timestamped time.
    [after] = validation_report(upgraded, [pki.root_der], allow_fetching=False)
    assert after.level == target
    assert after.valid and after.covers_whole_document
    assert after.timestamp_time is not None
    assert after.revocation == ("unknown" if target == "B-T" else "good")
    assert f"valide (niveau PAdES {target})" in after.summary


def test_upgrade_in_place_of_several_signatures(
    pki: TestPki, signer: SigningIdentity, services: TrustServices, source: Path
) -> None:
    document = signed_at("B-B", source, signer, services)
    sign_pdf(document, document, signer, request("B-T", field_name="Visa_DGS"), services)
    sign_pdf(document, document, signer, request("B-B", field_name="Signature_maire"), services)

    assert upgrade_pdf(document, document, "B-LTA", services) == "B-LTA"

    reports = validation_report(document, [pki.root_der])
    assert [(r.field_name, r.level, r.valid) for r in reports] == [
        ("Signature1", "B-LTA", True),
        ("Visa_DGS", "B-LTA", True),
        ("Signature_maire", "B-LTA", True),
    ]
    blocks = signer_blocks(document)
    assert len(blocks) == 3 and all(VALID in block for block in blocks)
    assert files(source.parent) == {source.name, document.name}


def test_document_already_at_the_target_is_left_as_it_is(
    signer: SigningIdentity, services: TrustServices, source: Path
) -> None:
    signed = signed_at("B-LT", source, signer, services)
    content = signed.read_bytes()
    copy = source.with_name("copie.pdf")

    assert upgrade_pdf(signed, copy, "B-T", services) == "B-LT"
    assert upgrade_pdf(signed, signed, "B-LT", services) == "B-LT"
    assert copy.read_bytes() == content and signed.read_bytes() == content


def test_timestamp_of_an_upgrade_counts_as_b_t_only_over_earlier_signatures(
    pki: TestPki, signer: SigningIdentity, services: TrustServices, source: Path
) -> None:
    document = signed_at("B-B", source, signer, services)
    upgrade_pdf(document, document, "B-T", services)
    # Signed after the document timestamp: nothing proves when.
    sign_pdf(document, document, signer, request("B-B", field_name="Tardive"), services)

    reports = validation_report(document, [pki.root_der])
    assert [(r.field_name, r.level) for r in reports] == [("Signature1", "B-T"), ("Tardive", "B-B")]
    assert reports[1].timestamp_time is None


def test_certified_document_can_still_be_upgraded(
    pki: TestPki, signer: SigningIdentity, services: TrustServices, source: Path
) -> None:
    # ETSI EN 319 142-1 lets validation data and document timestamps follow even a "no changes" certification.
    certified = source.with_name("certifie.pdf")
    certify(source, certified, signer, fields.MDPPerm.NO_CHANGES)

    assert upgrade_pdf(certified, certified, "B-LTA", services) == "B-LTA"
    [report] = validation_report(certified, [pki.root_der])
    assert report.valid and report.covers_whole_document and report.level == "B-LTA"
    assert VALID in signer_blocks(certified)[0]


def certify(source: Path, destination: Path, signer: SigningIdentity, permission: fields.MDPPerm) -> None:
    """A certification (author) signature made with pyHanko directly, as another product would."""
    metadata = signers.PdfSignatureMetadata(
        field_name="Certification", certify=True, docmdp_permissions=permission, md_algorithm="sha256"
    )
    with source.open("rb") as stream, destination.open("wb") as output:
        writer = IncrementalPdfFileWriter(stream, strict=False)
        signers.PdfSigner(metadata, signer=signer._signer).sign_pdf(writer, output=output)


# --------------------------------------------------------------------------- failures


def test_timestamp_authority_down_is_retryable_and_leaves_the_source(
    pki: TestPki, signer: SigningIdentity, source: Path, services: TrustServices
) -> None:
    signed = signed_at("B-B", source, signer, services)
    content = signed.read_bytes()
    down = TrustServices(tsa_url=closed_port_url(), trust_roots=(pki.root_der,), timeout=2)

    for target in ("B-T", "B-LTA"):
        with pytest.raises(SigningError, match=f"L'autorité d'horodatage ne répond pas.*niveau {target}") as raised:
            upgrade_pdf(signed, signed, target, down)
        assert raised.value.retryable
    assert signed.read_bytes() == content
    assert files(source.parent) == {source.name, signed.name}


def test_revocation_responders_down_is_retryable(pki: TestPki, source: Path) -> None:
    with running_pki() as gone:
        identity = SigningIdentity.from_pkcs12(gone.pkcs12("signer"), PKCS12_PASSPHRASE)
        gone_root = gone.root_der
    # That PKI's OCSP and CRL responders are now down; the timestamp authority in use (and its PKI) still up.
    services = TrustServices(tsa_url=pki.tsa_url, trust_roots=(gone_root, pki.root_der), timeout=2)
    signed = source.with_name("signe.pdf")

    with pytest.raises(SigningError, match=r"\(OCSP, CRL\) sont inaccessibles : signature B-LT") as raised:
        sign_pdf(source, signed, identity, request("B-LT"), services)
    assert raised.value.retryable
    # Degraded: B-T needs no responder; the upgrade, which does, fails the same way.
    sign_pdf(source, signed, identity, request("B-T"), services)
    content = signed.read_bytes()
    with pytest.raises(SigningError, match=r"\(OCSP, CRL\) sont inaccessibles") as raised:
        upgrade_pdf(signed, source.with_name("complete.pdf"), "B-LT", services)
    assert raised.value.retryable
    assert signed.read_bytes() == content
    assert files(source.parent) == {source.name, signed.name}


def test_degrade_then_upgrade_once_the_timestamp_authority_is_back(
    pki: TestPki, signer: SigningIdentity, services: TrustServices, source: Path
) -> None:
    down = TrustServices(tsa_url=closed_port_url(), trust_roots=(pki.root_der,), timeout=2)
    signed = source.with_name("signe.pdf")
    with pytest.raises(SigningError) as raised:
        sign_pdf(source, signed, signer, request("B-LTA"), down)
    assert raised.value.retryable
    sign_pdf(source, signed, signer, request("B-B"), down)  # the level possible now
    with pytest.raises(SigningError) as raised:
        upgrade_pdf(signed, signed, "B-LTA", down)  # the retried job, while the authority is still down
    assert raised.value.retryable

    assert upgrade_pdf(signed, signed, "B-LTA", services) == "B-LTA"  # ... and once it is back
    [report] = validation_report(signed, [pki.root_der])
    assert report.valid and report.level == "B-LTA"


def test_revoked_signer_cannot_be_upgraded_to_long_term(pki: TestPki, services: TrustServices, source: Path) -> None:
    revoked = SigningIdentity.from_pkcs12(pki.pkcs12("revoked"), PKCS12_PASSPHRASE)
    signed = source.with_name("revoque.pdf")
    sign_pdf(source, signed, revoked, request("B-T"), services)

    with pytest.raises(SigningError, match="« Révoqué Dupont » est révoqué depuis le 01/01/2025") as raised:
        upgrade_pdf(signed, signed, "B-LT", services)
    assert not raised.value.retryable


def test_upgrade_needs_a_timestamp_authority(signer: SigningIdentity, services: TrustServices, source: Path) -> None:
    signed = signed_at("B-B", source, signer, services)
    with pytest.raises(SigningError, match="Aucune autorité d'horodatage") as raised:
        upgrade_pdf(signed, signed, "B-T", TrustServices(trust_roots=services.trust_roots))
    assert not raised.value.retryable


@pytest.mark.parametrize("target", ["B-T", "B-LT"])
def test_untrusted_timestamp_authority_is_refused_without_output(
    target: SignatureLevel, pki: TestPki, signer: SigningIdentity, services: TrustServices, source: Path
) -> None:
    signed = signed_at("B-B", source, signer, services)
    content = signed.read_bytes()
    # The signer's chain is trusted (its intermediate CA as anchor), the timestamp authority's is not.
    elsewhere = TrustServices(tsa_url=pki.tsa_url, trust_roots=(pki.certificate_der("interm"),), timeout=5)

    # B-T: the timestamp is added, then found to prove nothing here; B-LT: its chain cannot be validated.
    message = "n'atteindrait que le niveau B-B" if target == "B-T" else "ne se rattache pas à la liste de confiance"
    with pytest.raises(SigningError, match=message) as raised:
        upgrade_pdf(signed, signed, target, elsewhere)
    assert not raised.value.retryable
    assert signed.read_bytes() == content


def _encrypted(path: Path) -> None:
    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        pdf.save(path, encryption=pikepdf.Encryption(owner="proprietaire", user="utilisateur"))


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:300])


@pytest.mark.parametrize(("damage", "message"), [(_encrypted, "mot de passe"), (_truncated, "endommagé")])
def test_unreadable_document_is_refused(
    damage: Callable[[Path], None], message: str, services: TrustServices, source: Path
) -> None:
    damage(source)
    with pytest.raises(PdfError, match=message):
        upgrade_pdf(source, source.with_name("complete.pdf"), "B-LT", services)
    assert files(source.parent) == {source.name}


def test_unsigned_document_is_refused(services: TrustServices, source: Path) -> None:
    with pytest.raises(PdfError, match="aucune signature"):
        upgrade_pdf(source, source.with_name("complete.pdf"), "B-LT", services)
    assert files(source.parent) == {source.name}


def test_altered_signature_is_refused(signer: SigningIdentity, services: TrustServices, source: Path) -> None:
    signed = signed_at("B-B", source, signer, services)
    data = bytearray(signed.read_bytes())
    position = data.index(b"/Title") + 8  # inside the signed revision
    data[position] ^= 0x01
    signed.write_bytes(bytes(data))

    with pytest.raises(PdfError, match="« Signature1 » est altérée"):
        upgrade_pdf(signed, source.with_name("complete.pdf"), "B-T", services)


def test_unknown_level_is_refused(signer: SigningIdentity, services: TrustServices, source: Path) -> None:
    signed = signed_at("B-B", source, signer, services)
    with pytest.raises(ValueError, match="Niveau PAdES inconnu"):
        upgrade_pdf(signed, signed, "B-XL", services)  # type: ignore[arg-type]
