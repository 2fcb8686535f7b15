"""The CMS template of bulk signing: same containers as pyHanko's full path, valid for pdfsig and for socle."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.reader import PdfFileReader
from testpki import PKCS12_PASSPHRASE, TestPki

from parapheur.bulk import sign_many
from parapheur.fastsign import TemplateError, TemplateSigner, build_template, fast_identity
from parapheur.pades import (
    SignatureRequest,
    SigningIdentity,
    TrustServices,
    sign_pdf,
    validation_report,
    verify_pdf,
)

from conftest import identity_certificate, make_pdf, pdfsig, signing_identity

REQUEST = SignatureRequest(signer_name="Dominique Dupont", reason="Visa du maire", location="Saint-Test")
PADES_BB_ATTRIBUTES = ["content_type", "message_digest", "signing_certificate_v2"]


def sources(folder: Path, count: int) -> list[Path]:
    folder.mkdir()
    paths = [folder / f"{index:02d}.pdf" for index in range(count)]
    for index, path in enumerate(paths):
        path.write_bytes(make_pdf(f"Arrêté n° {index}", pages=1 + index % 2))
    return paths


def signed_data(path: Path) -> cms.SignedData:
    """The CMS SignedData of the only signature of ``path``."""
    with path.open("rb") as stream:
        [signature] = PdfFileReader(stream, strict=False).embedded_regular_signatures
        return signature.signed_data


def attribute_values(data: cms.SignedData) -> dict[str, bytes]:
    """Signed attributes by name, each as the DER of its values."""
    [signer_info] = data["signer_infos"]
    return {attribute["type"].native: attribute["values"].dump() for attribute in signer_info["signed_attrs"]}


@pytest.fixture(scope="module")
def identity() -> SigningIdentity:
    return SigningIdentity.from_pkcs12(*signing_identity())


@pytest.fixture(scope="module")
def pki_identity(pki: TestPki) -> SigningIdentity:
    return SigningIdentity.from_pkcs12(pki.pkcs12("signer"), PKCS12_PASSPHRASE)


# --------------------------------------------------------------------------- every output valid, both ways


def test_small_batch_through_the_fast_path_is_valid_for_pdfsig_and_socle(tmp_path: Path) -> None:
    paths = sources(tmp_path / "a-signer", 6)
    out = tmp_path / "signes"
    out.mkdir()
    results = list(sign_many(((path, out / path.name) for path in paths), *signing_identity(), REQUEST, workers=2))
    assert sorted((r.destination.name, r.ok, r.error) for r in results) == [(p.name, True, None) for p in paths]
    trusted = [identity_certificate()]
    for path in sorted(out.iterdir()):
        assert "Signature is Valid" in pdfsig(path), path.name
        [check] = verify_pdf(path, trusted)
        assert check.valid and check.covers_whole_document, path.name
        [report] = validation_report(path, trusted)
        assert report.valid and report.level == "B-B", report.summary
        assert list(attribute_values(signed_data(path))) == PADES_BB_ATTRIBUTES


def test_fast_identity_signs_with_its_template_in_process(identity: SigningIdentity, tmp_path: Path) -> None:
    fast = fast_identity(identity)
    assert isinstance(fast._signer, TemplateSigner)
    assert (fast.subject_name, fast.certificate_der) == (identity.subject_name, identity.certificate_der)
    [source] = sources(tmp_path / "a-signer", 1)
    signed = tmp_path / "signe.pdf"
    sign_pdf(source, signed, fast, REQUEST)
    assert "Signature is Valid" in pdfsig(signed)
    [report] = validation_report(signed, [identity.certificate_der])
    assert report.valid and report.signer_name == "Dominique Dupont"


# --------------------------------------------------------------------------- same container as pyHanko's


def test_fast_container_has_the_normal_paths_attributes_and_certificates(
    pki: TestPki, pki_identity: SigningIdentity, tmp_path: Path
) -> None:
    [source] = sources(tmp_path / "a-signer", 1)
    normal, fast = tmp_path / "normal.pdf", tmp_path / "rapide.pdf"
    sign_pdf(source, normal, pki_identity, REQUEST)
    sign_pdf(source, fast, fast_identity(pki_identity), REQUEST)

    expected, actual = signed_data(normal), signed_data(fast)
    expected_attributes, actual_attributes = attribute_values(expected), attribute_values(actual)
    # PAdES B-B: no signing-time among the signed attributes, the time is the dictionary's /M.
    assert list(actual_attributes) == list(expected_attributes) == PADES_BB_ATTRIBUTES
    assert actual_attributes["content_type"] == expected_attributes["content_type"]
    assert actual_attributes["signing_certificate_v2"] == expected_attributes["signing_certificate_v2"]
    # Both sign the same file, but each incremental update has its own /M and /ID: digests differ.
    assert actual_attributes["message_digest"] != expected_attributes["message_digest"]
    [expected_info], [actual_info] = expected["signer_infos"], actual["signer_infos"]
    for field in ("version", "sid", "digest_algorithm", "signature_algorithm", "unsigned_attrs"):
        assert actual_info[field].dump() == expected_info[field].dump(), field
    for field in ("version", "digest_algorithms", "encap_content_info"):
        assert actual[field].dump() == expected[field].dump(), field
    certificates = {choice.chosen.dump() for choice in actual["certificates"]}
    assert certificates == {choice.chosen.dump() for choice in expected["certificates"]}
    assert pki.certificate_der("signer") in certificates and len(certificates) > 1  # the chain travels too
    for path in (normal, fast):
        [report] = validation_report(path, [pki.root_der])
        assert report.valid and report.level == "B-B", report.summary


def test_template_fills_digest_and_signature_per_document(identity: SigningIdentity) -> None:
    key = identity._signer._key
    assert isinstance(key, rsa.RSAPrivateKey)
    template = build_template(identity._signer, key)
    digests = [hashlib.sha256(text).digest() for text in (b"premier", b"second")]
    containers = [cms.ContentInfo.load(template.container(digest, key)) for digest in digests]
    for digest, container in zip(digests, containers, strict=True):
        [signer_info] = container["content"]["signer_infos"]
        attributes = {a["type"].native: a["values"][0].native for a in signer_info["signed_attrs"]}
        assert attributes["message_digest"] == digest
        # The signature covers the DER of the signed attributes as a SET (RFC 5652, 5.4).
        signed = signer_info["signed_attrs"].untag().dump(force=True)
        key.public_key().verify(signer_info["signature"].native, signed, padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(TemplateError):
        template.container(b"court", key)


# --------------------------------------------------------------------------- what stays on pyHanko's path


def test_timestamped_levels_fall_back_to_pyhankos_path(
    pki: TestPki, pki_identity: SigningIdentity, tmp_path: Path
) -> None:
    [source] = sources(tmp_path / "a-signer", 1)
    signed = tmp_path / "signe.pdf"
    services = TrustServices(tsa_url=pki.tsa_url, trust_roots=(pki.root_der,), timeout=5)
    request = SignatureRequest(signer_name="Camille Martin", reason="Délibération", level="B-T")
    sign_pdf(source, signed, fast_identity(pki_identity), request, services)
    assert "Signature is Valid" in pdfsig(signed)
    [report] = validation_report(signed, [pki.root_der])
    assert report.valid and report.level == "B-T" and report.timestamp_time is not None, report.summary


def test_visible_stamp_goes_through_the_fast_path_too(identity: SigningIdentity, tmp_path: Path) -> None:
    [source] = sources(tmp_path / "a-signer", 1)
    signed = tmp_path / "signe.pdf"
    sign_pdf(source, signed, fast_identity(identity), SignatureRequest("Dominique Dupont", "Visa", visible=True))
    assert "Signature is Valid" in pdfsig(signed)
    [report] = validation_report(signed, [identity.certificate_der])
    assert report.valid, report.summary


def test_ecdsa_identity_keeps_the_full_path(tmp_path: Path) -> None:
    data = ecdsa_pkcs12(b"secret")
    identity = SigningIdentity.from_pkcs12(data, b"secret")
    assert fast_identity(identity) is identity
    [source] = sources(tmp_path / "a-signer", 1)
    out = tmp_path / "signes"
    out.mkdir()
    [result] = sign_many([(source, out / source.name)], data, b"secret", REQUEST, workers=1)
    assert result.ok and "Signature is Valid" in pdfsig(result.destination)


def ecdsa_pkcs12(passphrase: bytes) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Agent ECDSA")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return pkcs12.serialize_key_and_certificates(
        b"ecdsa", key, certificate, None, serialization.BestAvailableEncryption(passphrase)
    )
