"""PAdES signing and verification of PDF documents.

Pure domain module: it knows nothing about storage, users or workflows. It signs PDFs with
pyHanko (PAdES baseline B-B, B-T, B-LT and B-LTA, incremental updates) and checks signatures against explicit
trust roots, down to a per-signature validation report.

pyHanko's high-level API runs its own event loop (``asyncio.run``): call these functions from
synchronous code or from a worker thread, never directly inside a running event loop.
"""

from __future__ import annotations

import contextlib
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

import pikepdf
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from PIL import Image
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils import misc as pdf_misc
from pyhanko.pdf_utils.font.api import FontEngine, FontEngineFactory, ShapeResult
from pyhanko.pdf_utils.font.basic import COURIER_META, SimpleFontEngine
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.layout import BoxConstraints
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.pdf_utils.writer import BasePdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.sign.timestamps.requests_client import RequestsHTTPTimeStamper
from pyhanko.sign.validation import add_validation_info, validate_pdf_signature, validate_pdf_timestamp
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.errors import NoDSSFoundError, SignatureValidationError
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel, TimestampSignatureStatus
from pyhanko.stamp import TextStamp, TextStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import ExpiredError, NotYetValidError, PathError, PathValidationError, RevokedError
from pyhanko_certvalidator.fetchers.requests_fetchers import RequestsFetcherBackend
from pyhanko_certvalidator.registry import SimpleCertificateStore
from pyhanko_certvalidator.util import get_pyca_cryptography_hash

from socle.dates import PARIS
from socle.files import atomic_output

# Generous fixed room for the CMS container: it skips pyHanko's dry-run signature (size estimate).
# An RSA-4096 chain of three certificates fits in well under 8 KiB of DER (16 KiB of hex).
SIGNATURE_BYTES_RESERVED = 16384
# Above B-B the container also holds the timestamp token and its authority's certificates.
TIMESTAMPED_BYTES_RESERVED = 32768
# Per request, to the timestamp authority and the revocation responders.
SERVICE_TIMEOUT_SECONDS = 10.0

STAMP_WIDTH = 200
STAMP_HEIGHT = 60
STAMP_MARGIN = 36
STAMP_GAP = 6
# The image sits behind the text, faded so that the text stays readable over it.
STAMP_IMAGE_OPACITY = 0.5
STAMP_IMAGE_MAX_BYTES = 5_000_000
STAMP_IMAGE_MAX_PIXELS = 25_000_000
# 1,200 pixels over a 200-point stamp is over 400 dpi: more is only weight in every signed PDF.
STAMP_IMAGE_MAX_SIDE = 1200
# The stamp's time is Paris time, as everywhere in the interface; the signature's signing time stays UTC.
STAMP_DATE_FORMAT = "%d/%m/%Y à %H:%M (heure de Paris)"
# pyHanko renders the signing time with the style's ``timestamp_format`` in the server's zone: the style asks it
# for this exact form, then writes it as STAMP_DATE_FORMAT (see _ParisTimeStampStyle).
_INSTANT_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
# An article opening a quality (« Le Maire », « L'adjoint délégué »): lowercased after « Pour ».
_ARTICLE = re.compile(r"(?i)(le|la|les)\s+|(l)['’]\s*")

# The PDF header may sit anywhere in the first kilobyte (ISO 32000-1, annex H).
_HEADER_WINDOW = 1024


class PdfError(ValueError):
    """The document cannot be processed; the message (in French) can be shown to a user."""


DAMAGED_PDF = "Le fichier PDF est endommagé ou illisible."  # one message for any unreadable PDF


class IdentityError(ValueError):
    """The signing identity cannot be loaded or created; the message (in French) can be shown."""


class SigningError(ValueError):
    """The signature cannot be made at the requested level; the message (in French) can be shown.

    ``retryable`` is true when an outside service (timestamp authority, OCSP or CRL responder) could not be
    reached: the same signature may succeed later. Nothing is written when this is raised.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


SignatureLevel = Literal["B-B", "B-T", "B-LT", "B-LTA"]
LEVELS: tuple[SignatureLevel, ...] = ("B-B", "B-T", "B-LT", "B-LTA")


@dataclass(frozen=True)
class PdfInfo:
    page_count: int
    signature_count: int


@dataclass(frozen=True)
class StampPlacement:
    """Where the visible stamp goes, in PDF points (1/72 inch) from the visible page's lower-left corner.

    ``page`` is 1-based, -1 meaning the last page. With ``x`` or ``y`` left to None, that coordinate is chosen
    automatically: bottom-right of the page, successive stamps stacked upwards.
    """

    page: int = -1
    x: float | None = None
    y: float | None = None
    width: float = STAMP_WIDTH
    height: float = STAMP_HEIGHT


@dataclass(frozen=True)
class SignatureRequest:
    """What to sign and how: the stamp's wording (``role``, ``on_behalf_of``, ``stamp_image``) and place."""

    signer_name: str
    reason: str
    location: str | None = None
    field_name: str | None = None
    visible: bool = True
    level: SignatureLevel = "B-B"
    role: str | None = None  # the signer's own quality (« Premier adjoint »)
    on_behalf_of: str | None = None  # under a delegation, who is replaced: their quality (« Le Maire ») or name
    stamp_image: bytes | None = None
    placement: StampPlacement = StampPlacement()


@dataclass(frozen=True)
class TrustServices:
    """The outside services that signatures above B-B rely on.

    ``trust_roots`` (DER) anchor the validation of the signer's chain when validation data is embedded
    (B-LT, B-LTA); by default, the self-signed certificates found in the identity's own chain.
    """

    tsa_url: str | None = None
    trust_roots: tuple[bytes, ...] = ()
    timeout: float = SERVICE_TIMEOUT_SECONDS


@dataclass(frozen=True)
class SignatureCheck:
    field_name: str
    signer_name: str
    intact: bool
    valid: bool
    covers_whole_document: bool
    signing_time: datetime | None


@dataclass(frozen=True)
class _PdfFacts:
    info: PdfInfo
    filled_field_names: frozenset[str]
    page_boxes: tuple[tuple[float, float, float, float], ...]  # visible area (crop box) of each page
    certification: int | None  # DocMDP /P of the author's certification signature, if the document has one

    @property
    def last_page_box(self) -> tuple[float, float, float, float]:
        return self.page_boxes[-1]


# --------------------------------------------------------------------------- inspection


def inspect_pdf(path: Path) -> PdfInfo:
    """Check that ``path`` is a readable, unencrypted PDF with pages; count its signatures."""
    return _examine(path).info


def _examine(path: Path) -> _PdfFacts:
    _check_header(path)
    try:
        pdf = pikepdf.open(path)
    except pikepdf.PasswordError as exc:
        raise PdfError("Le PDF est protégé par un mot de passe : il ne peut pas être signé.") from exc
    except (pikepdf.PdfError, OSError, ValueError) as exc:
        raise PdfError(DAMAGED_PDF) from exc
    with pdf:
        if pdf.is_encrypted:
            raise PdfError("Le PDF est chiffré : retirez la protection avant de le signer.")
        if len(pdf.pages) == 0:
            raise PdfError("Le PDF ne contient aucune page.")
        _check_signer_can_read(path)
        filled = dict(_filled_signature_fields(pdf))
        # Document timestamps (B-LTA) fill a signature field too, but are nobody's signature.
        signature_count = sum(1 for kind in filled.values() if kind != pikepdf.Name.DocTimeStamp)
        return _PdfFacts(
            info=PdfInfo(page_count=len(pdf.pages), signature_count=signature_count),
            filled_field_names=frozenset(filled),
            page_boxes=tuple(_normalised_box(page.cropbox) for page in pdf.pages),
            certification=_docmdp_permission(pdf),
        )


def _check_header(path: Path) -> None:
    try:
        with path.open("rb") as stream:
            head = stream.read(_HEADER_WINDOW)
    except OSError as exc:
        raise PdfError("Le fichier est introuvable ou illisible.") from exc
    if not head:
        raise PdfError("Le fichier est vide.")
    if b"%PDF-" not in head:
        raise PdfError("Le fichier n'est pas un PDF.")


def _check_signer_can_read(path: Path) -> None:
    # qpdf silently rebuilds a damaged file (truncated, no cross-reference table); pyHanko, which signs by
    # appending to the file as it is, cannot: refuse such a file now rather than when someone signs it.
    with path.open("rb") as stream:
        try:
            # The reader is lazy: resolve the catalogue and the page tree, whose offsets a damaged
            # cross-reference table gets wrong.
            reader = PdfFileReader(stream, strict=False)
            reader.root["/Pages"].get_object()["/Count"]
        except _PARSER_FAILURES as exc:
            raise PdfError(DAMAGED_PDF) from exc


# pyHanko's parser trips on some damaged files with bare Python errors: a startxref that points to an object
# which is not a cross-reference stream fails an ``assert``, for instance.
_PARSER_FAILURES = (pdf_misc.PdfError, ValueError, AssertionError, KeyError, IndexError, TypeError)


def _filled_signature_fields(pdf: pikepdf.Pdf) -> Iterator[tuple[str, object]]:
    """(field name, /Type of its value) for every filled signature field."""
    acroform = pdf.Root.get("/AcroForm")
    if not isinstance(acroform, pikepdf.Dictionary):
        return
    fields_array = acroform.get("/Fields")
    if isinstance(fields_array, pikepdf.Array):
        yield from _walk_fields(fields_array, parent_name="", inherited_type=None, seen=set())


def _walk_fields(
    kids: pikepdf.Array, parent_name: str, inherited_type: pikepdf.Object | None, seen: set[tuple[int, int]]
) -> Iterator[tuple[str, object]]:
    for field in kids:
        if not isinstance(field, pikepdf.Dictionary):
            continue
        # Malformed forms can loop back on themselves.
        if field.is_indirect:
            if field.objgen in seen:
                continue
            seen.add(field.objgen)
        partial = str(field.get("/T", ""))
        name = f"{parent_name}.{partial}" if parent_name and partial else partial or parent_name
        field_type = field.get("/FT", inherited_type)
        children = field.get("/Kids")
        if isinstance(children, pikepdf.Array):
            yield from _walk_fields(children, name, field_type, seen)
        elif field_type == pikepdf.Name.Sig and (value := field.get("/V")) is not None:
            yield name, value.get("/Type") if isinstance(value, pikepdf.Dictionary) else None


def _docmdp_permission(pdf: pikepdf.Pdf) -> int | None:
    """The /P of the document's certification signature (1: no change, 2: forms and signatures, 3: annotations).

    ISO 32000-1, 12.8.2.2: the signature referenced by /Perms /DocMDP carries a /Reference whose DocMDP
    transform parameters hold /P, 2 when absent.
    """
    perms = pdf.Root.get("/Perms")
    signature = perms.get("/DocMDP") if isinstance(perms, pikepdf.Dictionary) else None
    if not isinstance(signature, pikepdf.Dictionary):
        return None
    references = signature.get("/Reference")
    for reference in references if isinstance(references, pikepdf.Array) else []:
        if isinstance(reference, pikepdf.Dictionary) and reference.get("/TransformMethod") == pikepdf.Name.DocMDP:
            params = reference.get("/TransformParams")
            value = params.get("/P", 2) if isinstance(params, pikepdf.Dictionary) else 2
            return value if isinstance(value, int) else 2
    return 2


def _normalised_box(box: pikepdf.Array) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(value) for value in box)
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


# --------------------------------------------------------------------------- identities


def make_self_signed_identity(
    common_name: str, organisation: str, passphrase: bytes, *, valid_days: int = 1095
) -> bytes:
    """Create a fresh RSA-2048 key and a self-signed signing certificate, returned as PKCS#12 bytes.

    The certificate is an end-entity certificate (CA=false) that verifiers use as its own trust root:
    pyHanko accepts it as a trust anchor and poppler reports the signature valid but the issuer untrusted.
    """
    if not passphrase:
        raise IdentityError("La phrase de passe du certificat ne peut pas être vide.")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate = _self_signed_certificate(key, common_name, organisation, valid_days)
    return pkcs12.serialize_key_and_certificates(
        name=common_name.encode("utf-8"),
        key=key,
        cert=certificate,
        cas=None,
        encryption_algorithm=serialization.BestAvailableEncryption(passphrase),
    )


def _self_signed_certificate(
    key: rsa.RSAPrivateKey, common_name: str, organisation: str, valid_days: int
) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = datetime.now(UTC)
    key_id = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=True,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Backdated a little: a verifier whose clock lags must still accept fresh signatures.
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(key_id, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(key_id), critical=False)
        .sign(key, hashes.SHA256())
    )


class _LoadedKeySigner(signers.Signer):
    """pyHanko signer holding a ready-to-use key object.

    pyHanko's SimpleSigner re-parses its DER key on every signature, which reruns the costly RSA
    consistency check; keeping the `cryptography` key object avoids that.
    """

    def __init__(
        self,
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
        certificate: asn1_x509.Certificate,
        others: list[asn1_x509.Certificate],
    ) -> None:
        registry = SimpleCertificateStore.from_certs([certificate, *others])  # type: ignore[no-untyped-call]
        super().__init__(signing_cert=certificate, cert_registry=registry)
        self._key = key

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        digest = get_pyca_cryptography_hash(digest_algorithm)
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(data, padding.PKCS1v15(), digest)
        return self._key.sign(data, ec.ECDSA(digest))


class SigningIdentity:
    """A loaded signing key and certificate. Load once, then sign many documents with it."""

    def __init__(self, signer: _LoadedKeySigner, subject_name: str, certificate_der: bytes) -> None:
        self._signer = signer
        self.subject_name = subject_name
        self.certificate_der = certificate_der

    @classmethod
    def from_pkcs12(cls, data: bytes, passphrase: bytes | None) -> SigningIdentity:
        try:
            key, certificate, others = pkcs12.load_key_and_certificates(data, passphrase)
        except (ValueError, TypeError) as exc:
            raise IdentityError(
                "Impossible d'ouvrir le certificat : phrase de passe incorrecte ou fichier PKCS#12 invalide."
            ) from exc
        if certificate is None or key is None:
            raise IdentityError("Le fichier PKCS#12 ne contient pas de clé privée et de certificat.")
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise IdentityError("Seules les clés RSA et ECDSA sont prises en charge pour signer.")
        certificate_der = certificate.public_bytes(serialization.Encoding.DER)
        signer = _LoadedKeySigner(
            key,
            asn1_x509.Certificate.load(certificate_der),
            [asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in others],
        )
        return cls(signer, _common_name(certificate), certificate_der)

    def __repr__(self) -> str:
        return f"SigningIdentity(subject_name={self.subject_name!r})"


def _common_name(certificate: x509.Certificate) -> str:
    for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME):
        attributes = certificate.subject.get_attributes_for_oid(oid)
        if attributes:
            return str(attributes[0].value)
    return certificate.subject.rfc4514_string()


# --------------------------------------------------------------------------- signing


def sign_pdf(
    source: Path,
    destination: Path,
    identity: SigningIdentity,
    request: SignatureRequest,
    services: TrustServices | None = None,
) -> None:
    """Add a PAdES signature (SHA-256) at ``request.level`` to ``source`` as an incremental update.

    B-B needs nothing else; B-T adds an RFC 3161 signature timestamp from ``services.tsa_url``; B-LT also
    embeds the validation data (certificates, OCSP responses, CRLs) in the document security store; B-LTA
    then seals it with a document timestamp. Earlier signatures stay valid. ``destination`` appears
    atomically and only once fully written; it may be ``source`` itself.

    :raises PdfError: the document cannot be signed.
    :raises SigningError: expired certificate, revoked certificate, or a service that cannot be reached.
    """
    check_certificate_dates(identity)
    plan = plan_signature(source, request)
    services = services or TrustServices()
    pdf_signer = signers.PdfSigner(
        _signature_metadata(request, plan.field_name, identity, services),
        signer=identity._signer,
        timestamper=timestamper(request.level, services),
        stamp_style=plan.stamp_style,
        new_field_spec=plan.field_spec,
    )
    with source.open("rb") as input_stream, atomic_output(destination) as output:
        _run_signer(pdf_signer, input_stream, output, request)


@dataclass(frozen=True)
class SignaturePlan:
    """Where and how a new signature goes in a PDF: its field (with the stamp's box) and the stamp's look."""

    field_name: str
    field_spec: fields.SigFieldSpec
    stamp_style: TextStampStyle
    stamp_params: dict[str, str]  # the stamp text's values, given to pyHanko as ``appearance_text_params``


def plan_signature(source: Path, request: SignatureRequest) -> SignaturePlan:
    """Check that ``source`` can take the signature ``request`` describes; choose its field and its stamp.

    Shared by the server-side signature (:func:`sign_pdf`) and the client-side one (``parapheur.remote``).

    :raises PdfError: unreadable, encrypted or certified document, field already signed, stamp off the page,
        unusable stamp image.
    """
    facts = _examine(source)
    _check_can_sign(facts, request)
    field_name = request.field_name or _next_field_name(facts)
    if field_name in facts.filled_field_names:
        raise PdfError(f"Le champ de signature « {field_name} » est déjà signé.")
    return SignaturePlan(
        field_name=field_name,
        field_spec=_field_spec(field_name, request.visible, facts, request.placement),
        stamp_style=_stamp_style(request),
        stamp_params=_stamp_params(request),
    )


def _check_can_sign(facts: _PdfFacts, request: SignatureRequest) -> None:
    # pyHanko would refuse "no changes" too, but in English and only once the signature is being made.
    if facts.certification == 1:
        raise PdfError(
            "Le document est certifié par son auteur et sa certification interdit toute modification : "
            "il ne peut pas recevoir d'autre signature."
        )
    # A certification allows new signatures, not new visible fields (pyHanko's reading of ISO 32000-1,
    # 12.8.2.2): a stamp would make the author's signature report changes it does not allow.
    if facts.certification is not None and request.visible:
        raise PdfError(
            "Le document est certifié par son auteur : un cachet de signature visible invaliderait sa "
            "certification. Signez-le sans cachet visible."
        )


def check_certificate_dates(identity: SigningIdentity) -> None:
    """Refuse a certificate that has expired or is not valid yet, whatever the format (PAdES, CAdES, XAdES).

    pyHanko itself only validates the certificate when it embeds validation data, and a B-B signature made
    with an expired certificate would be worthless. :raises SigningError: in French, with the date.
    """
    certificate = identity._signer.signing_cert
    assert certificate is not None  # always set by SigningIdentity.from_pkcs12
    now = datetime.now(UTC)
    if certificate.not_valid_after < now:
        expiry = certificate.not_valid_after.strftime("%d/%m/%Y")
        raise SigningError(f"Le certificat de signature de {identity.subject_name} a expiré le {expiry}.")
    if certificate.not_valid_before > now:
        start = certificate.not_valid_before.strftime("%d/%m/%Y")
        raise SigningError(
            f"Le certificat de signature de {identity.subject_name} n'est valable qu'à partir du {start}."
        )


def timestamper(level: SignatureLevel, services: TrustServices) -> RequestsHTTPTimeStamper | None:
    """The RFC 3161 client for a signature at ``level``: None at B-B.

    :raises SigningError: a timestamped level and no timestamp authority configured.
    """
    if level == "B-B":
        return None
    if not services.tsa_url:
        raise SigningError(f"Aucune autorité d'horodatage n'est configurée : signature {level} impossible.")
    # The requests-based client, like the revocation fetchers: no aiohttp session to open and close around
    # each of pyHanko's event loops (one per signature).
    return RequestsHTTPTimeStamper(services.tsa_url, timeout=services.timeout)  # type: ignore[no-untyped-call]


def _next_field_name(facts: _PdfFacts) -> str:
    number = facts.info.signature_count + 1
    while f"Signature{number}" in facts.filled_field_names:
        number += 1
    return f"Signature{number}"


def _signature_metadata(
    request: SignatureRequest, field_name: str, identity: SigningIdentity, services: TrustServices
) -> signers.PdfSignatureMetadata:
    long_term = request.level in ("B-LT", "B-LTA")
    return signers.PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=request.reason,
        location=request.location,
        name=request.signer_name,
        embed_validation_info=long_term,
        validation_context=_signing_validation_context(identity, services) if long_term else None,
        use_pades_lta=request.level == "B-LTA",
    )


def _signing_validation_context(identity: SigningIdentity, services: TrustServices) -> ValidationContext:
    # hard-fail: a certificate that names a responder must get an answer from it, otherwise the signature
    # would claim B-LT without the data that makes it so.
    return ValidationContext(
        trust_roots=_signing_trust_roots(identity, services),
        other_certs=list(identity._signer.cert_registry),
        allow_fetching=True,
        revocation_mode="hard-fail",
        fetcher_backend=RequestsFetcherBackend(per_request_timeout=services.timeout),
    )


def _signing_trust_roots(identity: SigningIdentity, services: TrustServices) -> list[asn1_x509.Certificate]:
    if services.trust_roots:
        return [asn1_x509.Certificate.load(der) for der in services.trust_roots]
    return _self_signed(identity._signer.cert_registry)


def _field_spec(
    field_name: str, visible: bool, facts: _PdfFacts, placement: StampPlacement = StampPlacement()
) -> fields.SigFieldSpec:
    """The new signature field: invisible, or a stamp at ``placement`` (raises PdfError if off the page)."""
    if not visible:
        return fields.SigFieldSpec(sig_field_name=field_name)
    page_index = _page_index(placement.page, facts.info.page_count)
    box = _stamp_box(facts.page_boxes[page_index], facts.info.signature_count, placement)
    return fields.SigFieldSpec(sig_field_name=field_name, on_page=page_index, box=box)


def _page_index(page: int, page_count: int) -> int:
    if page == -1:
        return page_count - 1
    if not 1 <= page <= page_count:
        raise PdfError(
            f"Le cachet de signature ne peut pas aller en page {page} : le document compte {page_count} page(s)."
        )
    return page - 1


def _stamp_box(
    page_box: tuple[float, float, float, float], index: int, placement: StampPlacement = StampPlacement()
) -> tuple[int, int, int, int]:
    """The stamp's rectangle in page coordinates: where ``placement`` says, automatic coordinates filled in.

    Automatic: bottom-right of the visible page area, stacked upwards so that successive stamps don't overlap;
    tiny pages still get a box inside the page. Page rotation (/Rotate) is not taken into account.

    :raises PdfError: a given coordinate puts the stamp outside the page, or a dimension is not positive.
    """
    width, height = placement.width, placement.height
    if not (math.isfinite(width) and math.isfinite(height) and width > 0 and height > 0):
        raise PdfError("Les dimensions du cachet de signature doivent être des nombres positifs.")
    left, bottom, right, top = page_box
    x2 = max(left + 1, right - STAMP_MARGIN)
    rows = max(1, int((top - bottom - 2 * STAMP_MARGIN) // (height + STAMP_GAP)))
    y1 = min(top - 1, bottom + STAMP_MARGIN + (index % rows) * (height + STAMP_GAP))
    auto = (max(left, x2 - width), y1, x2, min(top, y1 + height))
    x1 = auto[0] if placement.x is None else left + placement.x
    y1 = auto[1] if placement.y is None else bottom + placement.y
    box = (x1, y1, x1 + width, y1 + height) if placement.x is not None or placement.y is not None else auto
    inside = left <= box[0] and bottom <= box[1] and box[2] <= right and box[3] <= top
    if not (inside and all(math.isfinite(value) for value in box)):
        raise PdfError(
            f"Le cachet de signature ({_points(width)} × {_points(height)} points à x = {_points(x1 - left)}, "
            f"y = {_points(y1 - bottom)}) sort de la page, qui mesure {_points(right - left)} × "
            f"{_points(top - bottom)} points."
        )
    # pyHanko types the box as integers but writes any number; keep fractions of a point.
    return cast(tuple[int, int, int, int], tuple(round(value, 2) for value in box))


def _points(value: float) -> str:
    return f"{value:g}".replace(".", ",")


class _ParisTimeStampStyle(TextStampStyle):
    """A text stamp whose time (``ts``) is the signing time in Paris, whatever the server's zone.

    pyHanko sets ``ts`` from the signature's signing time, formatted with ``timestamp_format`` in the server's
    local zone, just before creating the stamp: that text, in the exact _INSTANT_FORMAT, is turned into Paris
    time here. The signing time itself (the CMS attribute, the /M entry) is left as pyHanko writes it.
    """

    def create_stamp(self, writer: BasePdfFileWriter, box: BoxConstraints, text_params: dict[str, Any]) -> TextStamp:
        params = dict(text_params)
        if "ts" in params:
            params["ts"] = stamp_time(_instant(params["ts"]))
        return super().create_stamp(writer, box, params)


def _instant(text: str) -> datetime:
    try:
        return datetime.strptime(text, _INSTANT_FORMAT)
    except ValueError:  # no offset: a naive signing time, taken as UTC
        return datetime.strptime(text, _INSTANT_FORMAT.removesuffix("%z")).replace(tzinfo=UTC)


def stamp_time(moment: datetime) -> str:
    """How a stamp shows an aware instant: « 03/12/2026 à 17:38 (heure de Paris) »."""
    return moment.astimezone(PARIS).strftime(STAMP_DATE_FORMAT)


def delegation_line(on_behalf_of: str) -> str:
    """The stamp's line for a signature by delegation: « Pour le Maire, par délégation ».

    ``on_behalf_of`` is the replaced bureau's quality or name. An opening article is lowercased (« Le Maire »
    → « Pour le Maire »); without one, a colon keeps the line readable (« Pour : Maire, par délégation »).
    """
    article = _ARTICLE.match(on_behalf_of)
    if article is None:
        return f"Pour : {on_behalf_of}, par délégation"
    quality = on_behalf_of[article.end() :]
    opening = f"{article[1].lower()} " if article[1] else f"{article[2].lower()}'"
    return f"Pour {opening}{quality}, par délégation"


def _stamp_style(request: SignatureRequest | None = None) -> TextStampStyle:
    """The stamp's look; its text comes from :func:`_stamp_params` (raises PdfError for a bad image)."""
    background = _stamp_background(request.stamp_image) if request is not None and request.stamp_image else None
    return _ParisTimeStampStyle(
        stamp_text=_stamp_template(request),
        timestamp_format=_INSTANT_FORMAT,
        text_box_style=TextBoxStyle(font=_WinAnsiCourierFactory()),
        border_width=1,
        background=background,
        background_opacity=STAMP_IMAGE_OPACITY,
    )


def _stamp_template(request: SignatureRequest | None) -> str:
    # The user's words are interpolation parameters, never part of the template: a "%" in them stays a "%".
    lines = ["Signé par %(signer)s"]
    if request is not None and request.role:
        lines.append("%(role)s")
    if request is not None and request.on_behalf_of:
        lines.append("%(on_behalf_of)s")
    lines += ["%(reason)s", "le %(ts)s"]
    return "\n".join(lines)


def _stamp_params(request: SignatureRequest) -> dict[str, str]:
    """The values of the stamp template's parameters (the date, ``ts``, is pyHanko's)."""
    params = {"signer": request.signer_name, "reason": request.reason}
    if request.role:
        params["role"] = request.role
    if request.on_behalf_of:
        params["on_behalf_of"] = delegation_line(request.on_behalf_of)
    return params


def check_stamp_image(data: bytes) -> None:
    """Check an image meant for the visible stamp (PNG or JPEG, size, pixels), as signing will.

    :raises PdfError: in French, what is wrong with it.
    """
    _stamp_background(data)


def _stamp_background(data: bytes) -> PdfImage:
    """The stamp image, checked and reduced to what a 200-point stamp needs."""
    if len(data) > STAMP_IMAGE_MAX_BYTES:
        raise PdfError(f"L'image du cachet est trop volumineuse ({STAMP_IMAGE_MAX_BYTES // 1_000_000} Mo au plus).")
    unreadable = "L'image du cachet est illisible : fournissez un fichier PNG ou JPEG."
    try:
        image = Image.open(BytesIO(data))  # reads the header only
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise PdfError(unreadable) from exc
    if image.format not in ("PNG", "JPEG"):
        raise PdfError("L'image du cachet doit être au format PNG ou JPEG.")
    if image.width * image.height > STAMP_IMAGE_MAX_PIXELS:
        raise PdfError("L'image du cachet a trop de pixels (25 millions au plus).")
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise PdfError(unreadable) from exc
    image.thumbnail((STAMP_IMAGE_MAX_SIDE, STAMP_IMAGE_MAX_SIDE))
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    return PdfImage(image.convert("RGBA" if has_alpha else "RGB"))


def _run_signer(
    pdf_signer: signers.PdfSigner, input_stream: BinaryIO, output: BinaryIO, request: SignatureRequest
) -> None:
    try:
        # Non-strict parsing: common producers (e.g. Word's hybrid cross-reference files) are rejected
        # by pyHanko's strict mode, although qpdf and viewers read them fine.
        writer = IncrementalPdfFileWriter(input_stream, strict=False)
        pdf_signer.sign_pdf(
            writer,
            bytes_reserved=SIGNATURE_BYTES_RESERVED if request.level == "B-B" else TIMESTAMPED_BYTES_RESERVED,
            appearance_text_params=_stamp_params(request),
            output=output,
        )
    except TimestampRequestError as exc:
        raise SigningError(
            f"L'autorité d'horodatage ne répond pas : signature {request.level} impossible pour le moment.",
            retryable=True,
        ) from exc
    except PyHankoSigningError as exc:
        raise _signing_failure(exc, request.level) from exc
    except pdf_misc.PdfError as exc:
        raise PdfError(DAMAGED_PDF) from exc


def _signing_failure(exc: PyHankoSigningError, level: SignatureLevel) -> Exception:
    """Translate pyHanko's failure, whose cause says why the chain could not be validated."""
    cause = _validation_cause(exc)
    if isinstance(cause, RevokedError):
        return SigningError(_revoked_message(cause, level))
    if isinstance(cause, ExpiredError | NotYetValidError):
        return SigningError("Le certificat du signataire ou de son autorité n'est pas en cours de validité.")
    if isinstance(cause, PathValidationError):
        # Most often a responder (OCSP, CRL) that did not answer: trying again later may work.
        return SigningError(
            f"Les données de validation du certificat (OCSP, CRL) sont inaccessibles : signature {level} "
            "impossible pour le moment.",
            retryable=True,
        )
    if cause is not None:
        return SigningError(
            "Le certificat du signataire ou celui de l'autorité d'horodatage ne se rattache pas à la liste de "
            f"confiance : signature {level} impossible."
        )
    return PdfError(f"La signature du PDF a échoué : {exc}")


def _revoked_message(cause: RevokedError, level: SignatureLevel) -> str:
    since = cause.revocation_dt.astimezone(UTC).strftime("%d/%m/%Y")
    leaf = cause.current_path.leaf
    name = leaf.subject.native.get("common_name") if isinstance(leaf, asn1_x509.Certificate) else None
    whose = f"de « {name} »" if name else "du signataire"
    if not cause.is_ee_cert:
        whose = f"d'une autorité de certification de la chaîne {whose}"
    return f"Le certificat {whose} est révoqué depuis le {since} : signature {level} refusée."


def _validation_cause(exc: BaseException) -> BaseException | None:
    seen: BaseException | None = exc.__cause__ or exc.__context__
    while seen is not None:
        if isinstance(seen, PathValidationError | PathError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


# --------------------------------------------------------------------------- upgrade


def upgrade_pdf(source: Path, destination: Path, target: SignatureLevel, services: TrustServices) -> SignatureLevel:
    """Raise the signatures already in ``source`` towards the PAdES level ``target``; return the level reached.

    A signature without a trusted time gets a document timestamp over it (B-T, as ETSI EN 319 142-1 allows);
    B-LT then adds the validation data (certificates, OCSP responses, CRLs) of every signature and timestamp
    to the document security store; B-LTA seals that data with a further document timestamp. Each step is an
    incremental update: the signatures stay valid. The level reached is the lowest among the document's
    signatures, as :func:`validation_report` sees it offline against ``services.trust_roots`` (by default, the
    self-signed certificates the signatures carry). A document already at ``target`` or above is left as it
    is. ``destination`` appears atomically and may be ``source``; nothing is written on failure.

    :raises PdfError: not a readable PDF, no signature to upgrade, or a broken signature.
    :raises SigningError: no timestamp authority configured, revoked certificate, target not reachable with
        these trust roots; ``retryable`` when the timestamp authority or a revocation responder cannot be
        reached (try again later).
    """
    if target not in LEVELS:
        raise ValueError(f"Niveau PAdES inconnu : {target!r} (attendu : {', '.join(LEVELS)}).")
    _examine(source)
    document = BytesIO(source.read_bytes())
    roots = _upgrade_roots(document, services)
    level = _document_level(document, roots)
    if LEVELS.index(level) >= LEVELS.index(target):
        if destination.resolve() != source.resolve():
            with atomic_output(destination) as output:
                output.write(document.getvalue())
        return level
    _raise_level(document, level, target, roots, services)
    reached = _document_level(document, roots)
    if LEVELS.index(reached) < LEVELS.index(target):
        # Written anyway, a retried job would pile up document timestamps that prove nothing to this verifier.
        raise SigningError(
            f"Le document n'atteindrait que le niveau {reached} au lieu de {target} : le certificat de l'autorité "
            "d'horodatage ou du signataire n'est pas reconnu par la liste de confiance."
        )
    with atomic_output(destination) as output:
        output.write(document.getvalue())
    return reached


def _upgrade_roots(document: BinaryIO, services: TrustServices) -> list[asn1_x509.Certificate]:
    if services.trust_roots:
        return [asn1_x509.Certificate.load(der) for der in services.trust_roots]
    reader = _reader(document)
    carried = [cert for sig in reader.embedded_signatures for cert in [sig.signer_cert, *sig.other_embedded_certs]]
    return _self_signed(carried)


def _self_signed(certificates: Iterable[asn1_x509.Certificate]) -> list[asn1_x509.Certificate]:
    # asn1crypto answers "no", "maybe" or "yes": a non-empty string either way.
    unique = {cert.dump(): cert for cert in certificates if cert.self_signed != "no"}
    return list(unique.values())


def _reader(document: BinaryIO) -> PdfFileReader:
    document.seek(0)
    try:
        return PdfFileReader(document, strict=False)
    except pdf_misc.PdfError as exc:
        raise PdfError(DAMAGED_PDF) from exc


def _document_level(document: BinaryIO, roots: list[asn1_x509.Certificate]) -> SignatureLevel:
    """The lowest PAdES level among the document's signatures, seen offline."""
    document.seek(0)
    reports = _reports(document, roots, allow_fetching=False)
    if not reports:
        raise PdfError("Le document ne porte aucune signature : il n'y a rien à compléter.")
    for report in reports:
        if report.level is None:
            raise PdfError(
                f"La signature « {report.field_name} » est altérée ou invalide : le document ne peut pas être complété."
            )
    return min((report.level for report in reports if report.level is not None), key=LEVELS.index)


def _raise_level(
    document: BytesIO,
    level: SignatureLevel,
    target: SignatureLevel,
    roots: list[asn1_x509.Certificate],
    services: TrustServices,
) -> None:
    long_term = LEVELS.index(target) >= LEVELS.index("B-LT")
    # One context for the whole upgrade: the CRLs and OCSP answers it fetches serve every step.
    context = _fetching_context(roots, services)
    if level == "B-B":
        _add_document_timestamp(document, target, services, context if long_term else None)
    if long_term and level in ("B-B", "B-T"):
        _add_validation_data(document, target, context)
    if target == "B-LTA":
        _add_document_timestamp(document, target, services, context)


def _fetching_context(roots: list[asn1_x509.Certificate], services: TrustServices) -> ValidationContext:
    # hard-fail, as when signing at B-LT: no answer from a responder means no B-LT.
    return ValidationContext(
        trust_roots=roots,
        allow_fetching=True,
        revocation_mode="hard-fail",
        fetcher_backend=RequestsFetcherBackend(per_request_timeout=services.timeout),
    )


def _add_document_timestamp(
    document: BytesIO, target: SignatureLevel, services: TrustServices, context: ValidationContext | None
) -> None:
    """Append a document timestamp; with ``context``, the authority's validation data follows it in the DSS."""
    document_stamper = signers.PdfTimeStamper(timestamper(target, services))  # type: ignore[arg-type]
    document.seek(0)
    with _upgrade_errors(target):
        writer = IncrementalPdfFileWriter(document, strict=False)
        document_stamper.timestamp_pdf(
            writer, "sha256", validation_context=context, bytes_reserved=SIGNATURE_BYTES_RESERVED, in_place=True
        )


def _add_validation_data(document: BytesIO, target: SignatureLevel, context: ValidationContext) -> None:
    """Put in the DSS what validates each signature and each document timestamp (one revision each at most)."""
    names = [signature.field_name for signature in _reader(document).embedded_signatures]
    for name in names:
        # A fresh reader each time: every call appends a revision to the document.
        signature = next(sig for sig in _reader(document).embedded_signatures if sig.field_name == name)
        with _upgrade_errors(target):
            add_validation_info(signature, context, in_place=True)


@contextlib.contextmanager
def _upgrade_errors(target: SignatureLevel) -> Iterator[None]:
    """Translate pyHanko's and the certificate validator's failures into French, retryable or not."""
    try:
        yield
    except TimestampRequestError as exc:
        raise SigningError(
            f"L'autorité d'horodatage ne répond pas : le document ne peut pas être porté au niveau {target} "
            "pour le moment.",
            retryable=True,
        ) from exc
    except PyHankoSigningError as exc:
        raise _signing_failure(exc, target) from exc
    except (PathValidationError, PathError) as exc:
        # Raised bare while gathering validation data: wrap it as pyHanko does when signing.
        wrapped = PyHankoSigningError(str(exc))
        wrapped.__cause__ = exc
        raise _signing_failure(wrapped, target) from exc
    except pdf_misc.PdfError as exc:
        raise PdfError(DAMAGED_PDF) from exc


# --------------------------------------------------------------------------- stamp font


def _to_winansi(text: str) -> bytes:
    """Encode for a WinAnsi font; characters outside it lose their accents, or become "?"."""
    encoded = bytearray()
    for char in text:
        try:
            encoded += char.encode("cp1252")
        except UnicodeEncodeError:
            base = unicodedata.normalize("NFKD", char).encode("cp1252", errors="ignore")
            encoded += base or b"?"
    return bytes(encoded)


class _WinAnsiCourierEngine(SimpleFontEngine):
    """Courier (standard font, nothing embedded) that really encodes text as WinAnsi.

    pyHanko's default simple font declares /WinAnsiEncoding but writes strings in PDFDocEncoding.
    Both agree on ASCII and on Latin-1 letters (é, è, à, ç…), not on French typography such as
    ’ « — … € œ. The only alternative pyHanko offers, an embedded OpenType font, would make a font
    file a hard dependency, hence this small engine.
    """

    def shape(self, txt: str) -> ShapeResult:
        encoded = _to_winansi(txt)
        operators = BytesIO()
        generic.ByteStringObject(encoded).write_to_stream(operators)
        operators.write(b" Tj")
        width = len(encoded) * self.avg_width
        return ShapeResult(graphics_ops=operators.getvalue(), x_advance=width, y_advance=0)


class _WinAnsiCourierFactory(FontEngineFactory):
    def create_font_engine(
        self, writer: BasePdfFileWriter, obj_stream: generic.StreamObject | None = None
    ) -> FontEngine:
        return _WinAnsiCourierEngine(writer, "Courier", 0.6, COURIER_META)


# --------------------------------------------------------------------------- verification


def verify_pdf(path: Path, trust_roots: list[bytes]) -> list[SignatureCheck]:
    """Validate every signature of ``path``; a signature is valid only if it chains to ``trust_roots``."""
    inspect_pdf(path)
    roots = [asn1_x509.Certificate.load(der) for der in trust_roots]
    with path.open("rb") as stream:
        try:
            reader = PdfFileReader(stream, strict=False)
            embedded = list(reader.embedded_regular_signatures)
        except pdf_misc.PdfError as exc:
            raise PdfError(DAMAGED_PDF) from exc
        return [_check_signature(signature, roots) for signature in embedded]


def _check_signature(signature: EmbeddedPdfSignature, roots: list[asn1_x509.Certificate]) -> SignatureCheck:
    # A fresh context per signature: pyHanko caches validation results inside a context.
    context = ValidationContext(trust_roots=roots, allow_fetching=False)
    try:
        status = validate_pdf_signature(signature, signer_validation_context=context)
    except (SignatureValidationError, pdf_misc.PdfError, ValueError):
        # Damaged signature containers or byte ranges: report them as broken, not as a crash.
        return SignatureCheck(
            field_name=signature.field_name,
            signer_name=_embedded_signer_name(signature),
            intact=False,
            valid=False,
            covers_whole_document=False,
            signing_time=None,
        )
    return SignatureCheck(
        field_name=signature.field_name,
        signer_name=_embedded_signer_name(signature),
        intact=status.intact,
        valid=status.intact and status.valid and status.trusted,
        covers_whole_document=_covers_whole_document(status),
        signing_time=status.signer_reported_dt,
    )


# --------------------------------------------------------------------------- validation report

RevocationStatus = Literal["good", "revoked", "unknown"]

_REVOCATION_LABELS: dict[str, str] = {
    "good": "non révoqué",
    "revoked": "RÉVOQUÉ",
    "unknown": "statut de révocation inconnu",
}


@dataclass(frozen=True)
class SignatureReport:
    """What a verifier can say about one signature (of a PDF; the CAdES and XAdES validators report the same).

    ``revocation`` is the signer certificate's status at the signature's timestamp when the document carries
    its own validation data (B-LT and above), now otherwise. ``level`` is the PAdES baseline level the
    signature reaches (in ``signature_format``), None when the signature itself is broken.
    """

    field_name: str
    signer_name: str
    signing_time: datetime | None
    intact: bool
    chain_trusted: bool
    revocation: RevocationStatus
    revocation_date: datetime | None
    timestamp_time: datetime | None
    level: SignatureLevel | None
    covers_whole_document: bool
    signature_format: Literal["PAdES", "CAdES", "XAdES"] = "PAdES"

    @classmethod
    def broken(
        cls, field_name: str, signer_name: str, signature_format: Literal["PAdES", "CAdES", "XAdES"] = "PAdES"
    ) -> SignatureReport:
        """The report of a signature that cannot even be checked (unreadable, altered container)."""
        return cls(
            field_name=field_name,
            signer_name=signer_name,
            signing_time=None,
            intact=False,
            chain_trusted=False,
            revocation="unknown",
            revocation_date=None,
            timestamp_time=None,
            level=None,
            covers_whole_document=False,
            signature_format=signature_format,
        )

    @property
    def valid(self) -> bool:
        # An unknown revocation status does not invalidate: offline, a B-B or B-T signature cannot say more.
        return self.intact and self.chain_trusted and self.revocation != "revoked" and self.covers_whole_document

    @property
    def summary(self) -> str:
        """One French sentence for the user."""
        verdict = "valide" if self.valid else "NON VALIDE"
        level = f" (niveau {self.signature_format} {self.level})" if self.level else ""
        facts = [
            "document intact" if self.intact else "document ALTÉRÉ depuis la signature",
            "certificat reconnu" if self.chain_trusted else "certificat NON reconnu par la liste de confiance",
            _revocation_text(self.revocation, self.revocation_date),
        ]
        if self.timestamp_time is not None:
            facts.append(f"horodatée le {_french_time(self.timestamp_time)}")
        if self.intact and not self.covers_whole_document:
            facts.append("des modifications non autorisées ont suivi la signature")
        return f"Signature « {self.field_name} » de {self.signer_name} : {verdict}{level} ; {', '.join(facts)}."


def _revocation_text(revocation: RevocationStatus, since: datetime | None) -> str:
    if revocation == "revoked" and since is not None:
        return f"certificat RÉVOQUÉ depuis le {_french_time(since)}"
    return _REVOCATION_LABELS[revocation]


def _french_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%d/%m/%Y à %H:%M:%S UTC")


@dataclass(frozen=True)
class _Evidence:
    """What the document and the caller provide to validate its signatures."""

    roots: list[asn1_x509.Certificate]
    dss: DocumentSecurityStore | None
    document_timestamps: list[EmbeddedPdfSignature]
    allow_fetching: bool
    reader: PdfFileReader

    @property
    def has_revocation_data(self) -> bool:
        return self.dss is not None and bool(self.dss.ocsps or self.dss.crls)

    def context(self, mode: str, *, fetch: bool, moment: datetime | None = None) -> ValidationContext:
        # A fresh context per validation: pyHanko caches results (and fetched data) inside a context.
        kwargs: dict[str, object] = {"trust_roots": self.roots, "allow_fetching": fetch, "revocation_mode": mode}
        if fetch:
            kwargs["fetcher_backend"] = RequestsFetcherBackend(per_request_timeout=SERVICE_TIMEOUT_SECONDS)
        if moment is not None:
            # At the proven signing time, validation data gathered right around it is acceptable.
            kwargs.update(moment=moment, retroactive_revinfo=True)
        if self.dss is None:
            # Empty lists, not None: pyHanko refuses a strict context that could never find revocation data,
            # whereas here the strict pass failing is the expected answer ("unknown").
            return ValidationContext(ocsps=[], crls=[], **kwargs)  # type: ignore[arg-type]
        return self.dss.as_validation_context(kwargs)


def validation_report(path: Path, trust_roots: list[bytes], *, allow_fetching: bool = False) -> list[SignatureReport]:
    """Report on every signature of ``path``: integrity, trust, revocation, timestamp and PAdES level.

    ``trust_roots`` (DER) are the tenant's trust list. Without ``allow_fetching`` nothing leaves the machine:
    revocation is then known only from the validation data embedded in the document (B-LT and above).

    :raises PdfError: the file is not a readable PDF.
    """
    inspect_pdf(path)
    roots = [asn1_x509.Certificate.load(der) for der in trust_roots]
    with path.open("rb") as stream:
        return _reports(stream, roots, allow_fetching=allow_fetching)


def _reports(stream: BinaryIO, roots: list[asn1_x509.Certificate], *, allow_fetching: bool) -> list[SignatureReport]:
    try:
        reader = PdfFileReader(stream, strict=False)
        timestamps = list(reader.embedded_timestamp_signatures)
        evidence = _Evidence(roots, _read_dss(reader), timestamps, allow_fetching, reader)
        return [_report(signature, evidence) for signature in reader.embedded_regular_signatures]
    except pdf_misc.PdfError as exc:
        raise PdfError(DAMAGED_PDF) from exc


def _read_dss(reader: PdfFileReader) -> DocumentSecurityStore | None:
    try:
        return DocumentSecurityStore.read_dss(reader)
    except NoDSSFoundError:
        return None


@dataclass(frozen=True)
class _Proof:
    """A trusted timestamp proving that the signature existed at ``time``."""

    time: datetime
    revision: int  # the revision it covers: the signature's own for a signature timestamp


@dataclass(frozen=True)
class _Checked:
    status: PdfSignatureStatus
    strict: bool  # every certificate that names a responder had its revocation checked
    long_term: bool  # ... with the embedded data only, at the timestamped signing time
    proof: _Proof | None


def _report(signature: EmbeddedPdfSignature, evidence: _Evidence) -> SignatureReport:
    try:
        checked = _check(signature, evidence)
    except (SignatureValidationError, pdf_misc.PdfError, ValueError):
        # Damaged signature containers or byte ranges: report them as broken, not as a crash.
        return SignatureReport.broken(signature.field_name, _embedded_signer_name(signature))
    status = checked.status
    timestamp = status.timestamp_validity
    details = status.revocation_details
    return SignatureReport(
        field_name=signature.field_name,
        signer_name=_embedded_signer_name(signature),
        signing_time=status.signer_reported_dt,
        intact=status.intact,
        chain_trusted=status.trusted or (status.revoked and status.validation_path is not None),
        revocation="revoked" if status.revoked else "good" if checked.strict and status.trusted else "unknown",
        revocation_date=details.revocation_date if details is not None else None,
        timestamp_time=_timestamp_time(timestamp, checked.proof),
        level=_level(signature, checked, evidence),
        covers_whole_document=_covers_whole_document(status),
    )


def _timestamp_time(timestamp: TimestampSignatureStatus | None, proof: _Proof | None) -> datetime | None:
    if timestamp is not None and timestamp.intact:
        return timestamp.timestamp
    return proof.time if proof is not None else None


def _check(signature: EmbeddedPdfSignature, evidence: _Evidence) -> _Checked:
    status = _validate(signature, evidence.context("hard-fail", fetch=evidence.allow_fetching))
    proof = _signature_timestamp_proof(signature, status) or _document_timestamp_proof(signature, evidence)
    if proof is not None and evidence.has_revocation_data:
        # B-LT's promise: the embedded data alone validates the signature at its timestamped time, even
        # once the OCSP responses have gone stale or the certificate has expired.
        long_term = _validate(signature, evidence.context("hard-fail", fetch=False, moment=proof.time))
        if long_term.trusted:
            return _Checked(long_term, strict=True, long_term=True, proof=proof)
    if status.trusted or status.revoked:
        return _Checked(status, strict=True, long_term=False, proof=proof)
    # Missing revocation data makes the strict validation fail: ask again about the chain alone.
    lenient = _validate(signature, evidence.context("soft-fail", fetch=evidence.allow_fetching))
    # Offline, the timestamp authority's own revocation status is unknown too: soft-fail trusts its chain.
    proof = proof or _signature_timestamp_proof(signature, lenient)
    return _Checked(lenient, strict=False, long_term=False, proof=proof)


def _validate(signature: EmbeddedPdfSignature, context: ValidationContext) -> PdfSignatureStatus:
    return validate_pdf_signature(signature, signer_validation_context=context)


def _signature_timestamp_proof(signature: EmbeddedPdfSignature, status: PdfSignatureStatus) -> _Proof | None:
    timestamp = status.timestamp_validity
    if timestamp is None or not timestamp.trusted:
        return None
    return _Proof(timestamp.timestamp, signature.signed_revision)


def _document_timestamp_proof(signature: EmbeddedPdfSignature, evidence: _Evidence) -> _Proof | None:
    # ETSI EN 319 142-1 (PAdES-B-T): the trusted time may come from a signature timestamp or from a
    # document timestamp added over the signature later, which is how a B-B signature is upgraded.
    for timestamp in evidence.document_timestamps:
        if timestamp.signed_revision > signature.signed_revision:
            time = _document_timestamp_time(timestamp, evidence)
            if time is not None:
                return _Proof(time, timestamp.signed_revision)
    return None


def _level(signature: EmbeddedPdfSignature, checked: _Checked, evidence: _Evidence) -> SignatureLevel | None:
    status = checked.status
    if not (status.intact and status.valid):
        return None
    if checked.proof is None:
        return "B-B"
    if not checked.long_term:
        return "B-T"
    return "B-LTA" if _sealed_by_document_timestamp(checked.proof, evidence) else "B-LT"


def _sealed_by_document_timestamp(proof: _Proof, evidence: _Evidence) -> bool:
    # A trusted document timestamp after the proof of existence, over a revision that already holds validation
    # data, protects that data (B-LTA). The proving document timestamp itself cannot: the data came after it.
    return any(
        timestamp.signed_revision > proof.revision
        and _holds_revocation_data(evidence.reader, timestamp.signed_revision)
        and _document_timestamp_time(timestamp, evidence) is not None
        for timestamp in evidence.document_timestamps
    )


def _holds_revocation_data(reader: PdfFileReader, revision: int) -> bool:
    dss = reader.get_historical_root(revision).get("/DSS")
    if dss is None:
        return False
    dss = dss.get_object()
    return bool(dss.get("/OCSPs") or dss.get("/CRLs"))


def _document_timestamp_time(timestamp: EmbeddedPdfSignature, evidence: _Evidence) -> datetime | None:
    """The time of a trusted, intact document timestamp; None otherwise."""
    # soft-fail: the timestamp's own revocation data only comes with the next archive timestamp.
    try:
        status = validate_pdf_timestamp(timestamp, validation_context=evidence.context("soft-fail", fetch=False))
    except (SignatureValidationError, pdf_misc.PdfError, ValueError):
        return None
    return status.timestamp if status.trusted and status.intact else None


def _covers_whole_document(status: PdfSignatureStatus) -> bool:
    if status.coverage == SignatureCoverageLevel.ENTIRE_FILE:
        return True
    if status.coverage != SignatureCoverageLevel.ENTIRE_REVISION:
        return False
    # Later revisions are fine if they only add signatures or fill forms.
    level = status.modification_level
    return level is not None and level <= ModificationLevel.FORM_FILLING


def _embedded_signer_name(signature: EmbeddedPdfSignature) -> str:
    try:
        subject = signature.signer_cert.subject.native
    except (ValueError, KeyError, AttributeError):
        subject = {}
    name = subject.get("common_name") or subject.get("organization_name")
    return str(name or signature.sig_object.get("/Name", ""))


__all__ = [
    "LEVELS",
    "IdentityError",
    "PdfError",
    "PdfInfo",
    "RevocationStatus",
    "SignatureCheck",
    "SignatureLevel",
    "SignaturePlan",
    "SignatureReport",
    "SignatureRequest",
    "SigningError",
    "SigningIdentity",
    "StampPlacement",
    "TrustServices",
    "check_certificate_dates",
    "check_stamp_image",
    "inspect_pdf",
    "make_self_signed_identity",
    "plan_signature",
    "sign_pdf",
    "timestamper",
    "upgrade_pdf",
    "validation_report",
    "verify_pdf",
]
