"""Tests of PAdES signing and verification, cross-checked with poppler's pdfsig and qpdf."""

import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pikepdf
import pytest
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers

from parapheur.pades import (
    IdentityError,
    PdfError,
    PdfInfo,
    SignatureRequest,
    SigningIdentity,
    inspect_pdf,
    make_self_signed_identity,
    sign_pdf,
    verify_pdf,
)

from conftest import missing

PASSPHRASE = b"phrase-de-passe-de-test"
VALID = "Signature is Valid"
CONTENT_MARKER = b"(Bonjour)"


# --------------------------------------------------------------------------- helpers


def require_tool(tool: str, package: str) -> str:
    """Path of an external checker; without it, conftest's ``missing`` (fails in CI, skips elsewhere)."""
    path = shutil.which(tool)
    if path is None:
        missing(f"{package} ({tool}) n'est pas installé : lancez « make system-deps »")
    assert path is not None
    return path


def pdfsig(path: Path) -> str:
    # pdfsig's exit status reflects certificate trust too, which is expected to fail for self-signed
    # certificates: only its report matters here.
    result = subprocess.run(
        [require_tool("pdfsig", "poppler-utils"), str(path)], capture_output=True, text=True, check=False
    )
    return result.stdout + result.stderr


def qpdf_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("qpdf", "qpdf"), "--check", str(path)], capture_output=True, text=True, check=False
    )


def write_pdf(path: Path, pages: int = 1, **save_options: object) -> Path:
    pdf = pikepdf.new()
    name = pikepdf.Name
    font = pikepdf.Dictionary(Type=name.Font, Subtype=name.Type1, BaseFont=name.Helvetica)
    for _ in range(pages):
        page = pdf.add_blank_page(page_size=(595, 842))
        page.obj.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
        page.obj.Contents = pdf.make_stream(b"BT /F1 24 Tf 72 720 Td " + CONTENT_MARKER + b" Tj ET")
    # Uncompressed streams so that tests can find and alter the page text in the file bytes.
    pdf.save(path, compress_streams=False, **save_options)
    return path


def leftovers(folder: Path, expected: set[str]) -> set[str]:
    return {p.name for p in folder.iterdir()} - expected


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def identity() -> SigningIdentity:
    return SigningIdentity.from_pkcs12(
        make_self_signed_identity("Marie Dupont", "Commune de Saint-Test", PASSPHRASE), PASSPHRASE
    )


@pytest.fixture(scope="module")
def second_identity() -> SigningIdentity:
    data = make_self_signed_identity("Jean Martin", "Commune", b"autre")
    return SigningIdentity.from_pkcs12(data, b"autre")


@pytest.fixture(scope="module")
def unrelated() -> bytes:
    data = make_self_signed_identity("Inconnu", "Ailleurs", b"x")
    return SigningIdentity.from_pkcs12(data, b"x").certificate_der


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_pdf(tmp_path / "acte.pdf", pages=2)


@pytest.fixture
def request_() -> SignatureRequest:
    reason = "Signature de la délibération"
    return SignatureRequest(signer_name="Marie Dupont", reason=reason, location="Mairie")


@pytest.fixture
def signed(source: Path, identity: SigningIdentity, request_: SignatureRequest) -> Path:
    destination = source.with_name("acte-signe.pdf")
    sign_pdf(source, destination, identity, request_)
    return destination


# --------------------------------------------------------------------------- inspection


def test_inspect_counts_pages_and_filled_signatures(source: Path, signed: Path) -> None:
    assert inspect_pdf(source) == PdfInfo(page_count=2, signature_count=0)
    assert inspect_pdf(signed) == PdfInfo(page_count=2, signature_count=1)


# --------------------------------------------------------------------------- signing


def test_signature_is_valid_for_pdfsig(signed: Path) -> None:
    report = pdfsig(signed)
    assert VALID in report
    assert "ETSI.CAdES.detached" in report
    assert "SHA-256" in report


def test_verify_requires_a_trusted_root(signed: Path, identity: SigningIdentity, unrelated: bytes) -> None:
    [trusted] = verify_pdf(signed, [identity.certificate_der])
    assert (trusted.field_name, trusted.signer_name) == ("Signature1", "Marie Dupont")
    assert trusted.intact and trusted.valid and trusted.covers_whole_document
    assert trusted.signing_time is not None

    [untrusted] = verify_pdf(signed, [unrelated])
    assert untrusted.intact
    assert not untrusted.valid


def test_two_successive_signatures_stay_valid(
    signed: Path, identity: SigningIdentity, second_identity: SigningIdentity
) -> None:
    twice = signed.with_name("acte-deux-signatures.pdf")
    sign_pdf(signed, twice, second_identity, SignatureRequest(signer_name="Jean Martin", reason="Visa"))

    checks = verify_pdf(twice, [identity.certificate_der, second_identity.certificate_der])
    assert [(c.field_name, c.signer_name) for c in checks] == [
        ("Signature1", "Marie Dupont"),
        ("Signature2", "Jean Martin"),
    ]
    assert all(c.intact and c.valid and c.covers_whole_document for c in checks)
    assert inspect_pdf(twice).signature_count == 2
    assert pdfsig(twice).count(VALID) == 2
    check = qpdf_check(twice)
    assert check.returncode == 0, check.stdout + check.stderr


def test_tampered_content_is_detected(signed: Path, identity: SigningIdentity) -> None:
    data = bytearray(signed.read_bytes())
    # The page text belongs to the signed revision, far from the signature's /Contents.
    position = data.index(CONTENT_MARKER) + 1
    data[position] ^= 0x01
    signed.write_bytes(bytes(data))

    [check] = verify_pdf(signed, [identity.certificate_der])
    assert not check.intact
    assert not check.valid
    assert VALID not in pdfsig(signed)


def test_accented_reason_is_rendered_in_the_stamp(source: Path, identity: SigningIdentity) -> None:
    reason = "Délibération « budget » — l’assemblée a voté à l'unanimité, 5 € œuvre"
    destination = source.with_name("accents.pdf")
    sign_pdf(source, destination, identity, SignatureRequest(signer_name="Zoé Lefèvre", reason=reason))

    # The stamp font is WinAnsi (cp1252): its text is written there as a hex string.
    expected = reason.encode("cp1252").hex()
    with pikepdf.open(destination) as pdf:
        streams = [obj.read_bytes().lower() for obj in pdf.objects if isinstance(obj, pikepdf.Stream)]
    assert any(expected.encode() in stream for stream in streams)
    assert VALID in pdfsig(destination)


def test_invisible_signature_with_chosen_field_name(
    source: Path, identity: SigningIdentity, request_: SignatureRequest
) -> None:
    destination = source.with_name("invisible.pdf")
    request = SignatureRequest("Marie Dupont", "Visa", field_name="Visa_DGS", visible=False)
    sign_pdf(source, destination, identity, request)

    [check] = verify_pdf(destination, [identity.certificate_der])
    assert check.field_name == "Visa_DGS"
    assert check.valid


def test_signing_an_already_signed_field_is_refused(signed: Path, identity: SigningIdentity) -> None:
    request = SignatureRequest(signer_name="Marie Dupont", reason="Encore", field_name="Signature1")
    destination = signed.with_name("encore.pdf")
    with pytest.raises(PdfError, match="déjà signé"):
        sign_pdf(signed, destination, identity, request)
    assert not destination.exists()


def test_signing_in_place(source: Path, identity: SigningIdentity, request_: SignatureRequest) -> None:
    sign_pdf(source, source, identity, request_)
    [check] = verify_pdf(source, [identity.certificate_der])
    assert check.valid
    assert leftovers(source.parent, {source.name}) == set()


# --------------------------------------------------------------------------- rejected inputs


def _not_a_pdf(path: Path) -> None:
    path.write_bytes(b"PK\x03\x04 ceci est une archive zip")


def _truncated(path: Path) -> None:
    path.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(range(256)) * 4)


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _password_protected(path: Path) -> None:
    write_pdf(path, encryption=pikepdf.Encryption(owner="proprietaire", user="utilisateur"))


def _encrypted_without_user_password(path: Path) -> None:
    write_pdf(path, encryption=pikepdf.Encryption(owner="proprietaire", user=""))


def _no_pages(path: Path) -> None:
    pikepdf.new().save(path)


def _classic_xref(path: Path) -> bytes:
    """A PDF with a plain cross-reference table (no object or xref streams) to damage."""
    write_pdf(path, object_stream_mode=pikepdf.ObjectStreamMode.disable)
    return path.read_bytes()


def _shifted_xref_offsets(path: Path) -> None:
    # Every object's offset is wrong: qpdf rebuilds such a table, an incremental signature cannot rely on it.
    data = _classic_xref(path)
    path.write_bytes(re.sub(rb"(\d{10}) (00000 n)", lambda m: b"%010d %s" % (int(m[1]) + 7, m[2]), data))


def _startxref_to_nowhere(path: Path) -> None:
    data = _classic_xref(path)
    path.write_bytes(re.sub(rb"startxref\s+\d+", b"startxref\n12", data))


def _garbled_xref_keyword(path: Path) -> None:
    path.write_bytes(_classic_xref(path).replace(b"\nxref\n", b"\nxrfe\n"))


@pytest.mark.parametrize(
    ("make_input", "message"),
    [
        (_not_a_pdf, "n'est pas un PDF"),
        (_truncated, "endommagé"),
        (_empty, "vide"),
        (_password_protected, "mot de passe"),
        (_encrypted_without_user_password, "chiffré"),
        (_no_pages, "aucune page"),
        (_shifted_xref_offsets, "endommagé"),
        (_startxref_to_nowhere, "endommagé"),
        (_garbled_xref_keyword, "endommagé"),
    ],
)
def test_unusable_input_is_refused_without_output(
    tmp_path: Path, identity: SigningIdentity, request_: SignatureRequest, make_input, message: str
) -> None:
    source = tmp_path / "entree.pdf"
    make_input(source)
    destination = tmp_path / "sortie.pdf"

    with pytest.raises(PdfError, match=message):
        inspect_pdf(source)
    with pytest.raises(PdfError, match=message):
        sign_pdf(source, destination, identity, request_)
    with pytest.raises(PdfError, match=message):
        verify_pdf(source, [identity.certificate_der])
    assert leftovers(tmp_path, {"entree.pdf"}) == set()


def test_failure_while_signing_leaves_no_file(
    source: Path, identity: SigningIdentity, request_: SignatureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_signature(*args: object, **kwargs: object) -> bytes:
        raise RuntimeError("carte retirée")

    destination = source.with_name("sortie.pdf")
    destination.write_bytes(b"version precedente")
    monkeypatch.setattr(identity._signer, "async_sign_raw", broken_signature)

    with pytest.raises(RuntimeError, match="carte retirée"):
        sign_pdf(source, destination, identity, request_)
    assert destination.read_bytes() == b"version precedente"
    assert leftovers(source.parent, {source.name, destination.name}) == set()


# --------------------------------------------------------------------------- identities


def test_wrong_passphrase_is_refused() -> None:
    data = make_self_signed_identity("Marie Dupont", "Commune", PASSPHRASE)
    with pytest.raises(IdentityError, match="phrase de passe incorrecte"):
        SigningIdentity.from_pkcs12(data, b"mauvaise")
    with pytest.raises(IdentityError):
        SigningIdentity.from_pkcs12(b"pas un PKCS#12", PASSPHRASE)


def test_identity_exposes_only_public_data(identity: SigningIdentity) -> None:
    assert identity.subject_name == "Marie Dupont"
    assert identity.certificate_der.startswith(b"\x30")
    text = repr(identity)
    assert "Marie Dupont" in text
    assert PASSPHRASE.decode() not in text
    assert "PRIVATE" not in text and "key" not in text.lower()


def test_empty_passphrase_is_refused() -> None:
    with pytest.raises(IdentityError, match="vide"):
        make_self_signed_identity("Marie Dupont", "Commune", b"")


# --------------------------------------------------------------------------- certified documents


def certify(source: Path, destination: Path, identity: SigningIdentity, permission: fields.MDPPerm) -> None:
    """A certification (author) signature made with pyHanko directly, as another product would."""
    metadata = signers.PdfSignatureMetadata(
        field_name="Certification", certify=True, docmdp_permissions=permission, md_algorithm="sha256"
    )
    with source.open("rb") as stream, destination.open("wb") as output:
        signers.PdfSigner(metadata, signer=identity._signer).sign_pdf(
            IncrementalPdfFileWriter(stream, strict=False), output=output
        )


def test_document_certified_against_changes_is_refused_before_signing(
    source: Path, identity: SigningIdentity, request_: SignatureRequest
) -> None:
    certified = source.with_name("certifie.pdf")
    certify(source, certified, identity, fields.MDPPerm.NO_CHANGES)
    destination = source.with_name("signe.pdf")

    with pytest.raises(PdfError, match="certifié par son auteur et sa certification interdit toute modification"):
        sign_pdf(certified, destination, identity, request_)
    assert leftovers(source.parent, {source.name, certified.name}) == set()


@pytest.mark.parametrize("permission", [fields.MDPPerm.FILL_FORMS, fields.MDPPerm.ANNOTATE])
def test_document_certified_for_signatures_gets_them_without_a_stamp(
    permission: fields.MDPPerm, source: Path, identity: SigningIdentity, request_: SignatureRequest
) -> None:
    certified = source.with_name("certifie.pdf")
    certify(source, certified, identity, permission)
    with pytest.raises(PdfError, match="un cachet de signature visible invaliderait sa certification"):
        sign_pdf(certified, certified, identity, request_)

    sign_pdf(certified, certified, identity, replace(request_, visible=False))

    checks = verify_pdf(certified, [identity.certificate_der])
    assert [(c.field_name, c.valid, c.covers_whole_document) for c in checks] == [
        ("Certification", True, True),
        ("Signature2", True, True),  # the certification counts as the first signature
    ]
    assert pdfsig(certified).count(VALID) == 2
