"""Client-side signing: the key stays on the agent's smart card, the server builds the PAdES signature.

Two steps, with pyHanko's interrupted signing:

1. ``prepare`` (server) writes the PDF with its signature field, stamp and a reserved, zero-filled
   /Contents, and returns ``data_to_sign``: the DER of the CMS signed attributes, which carry the digest of the
   prepared PDF's byte range and the signer's certificate. ``state`` is what step 2 needs; the server keeps it.
2. The card signs ``data_to_sign`` (``sign_with_token``, on the agent's machine). ``finish`` (server) checks the
   signature value against the certificate and the prepared PDF against the state, builds the CMS container
   (with its RFC 3161 timestamp at B-T) and writes it into the reserved region.

Levels: B-B and B-T are made here. B-LT and B-LTA, whose validation data pyHanko cannot gather in interrupted
mode, are reached afterwards by the server with ``pades.upgrade_pdf``: ``prepare`` prepares a B-T signature for
them and says so in ``PreparedSignature.level``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pyhanko.pdf_utils import misc as pdf_misc
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko_certvalidator.registry import SimpleCertificateStore

from parapheur import pades
from parapheur.pades import IdentityError, PdfError, SignatureLevel, SignatureRequest, SigningError, TrustServices
from parapheur.tokens import DIGEST_ALGORITHM, open_pkcs11_identity
from socle.files import atomic_output

_STATE_VERSION = 1


@dataclass(frozen=True)
class PreparedSignature:
    """What ``prepare`` returns: ``data_to_sign`` goes to the card, ``state`` stays with the server.

    ``level`` is the level ``finish`` reaches: the requested one, capped at B-T (the server then upgrades).
    """

    state: bytes  # opaque, JSON-serialisable via base64; the caller stores it between the two calls
    data_to_sign: bytes  # what the card signs (DER of the CMS signed attributes)
    digest_algorithm: str  # "sha256"
    level: SignatureLevel = "B-B"


@dataclass(frozen=True)
class _State:
    """Everything ``finish`` needs, serialised as JSON: the prepared PDF itself is kept by the caller."""

    document_digest: bytes
    reserved_region: tuple[int, int]  # [start, end) of the /Contents hex string, '<' and '>' included
    signed_attributes: bytes
    certificate: bytes
    chain: tuple[bytes, ...]
    level: SignatureLevel
    field_name: str

    def dump(self) -> bytes:
        b64 = _b64encode
        return json.dumps(
            {
                "version": _STATE_VERSION,
                "digest_algorithm": DIGEST_ALGORITHM,
                "document_digest": self.document_digest.hex(),
                "reserved_region": list(self.reserved_region),
                "signed_attributes": b64(self.signed_attributes),
                "certificate": b64(self.certificate),
                "chain": [b64(der) for der in self.chain],
                "level": self.level,
                "field_name": self.field_name,
            }
        ).encode("utf-8")

    @classmethod
    def load(cls, data: bytes) -> _State:
        try:
            raw = json.loads(data)
            if raw["version"] != _STATE_VERSION or raw["digest_algorithm"] != DIGEST_ALGORITHM:
                raise ValueError("unknown state version")
            start, end = (int(value) for value in raw["reserved_region"])
            return cls(
                document_digest=bytes.fromhex(raw["document_digest"]),
                reserved_region=(start, end),
                signed_attributes=_b64decode(raw["signed_attributes"]),
                certificate=_b64decode(raw["certificate"]),
                chain=tuple(_b64decode(der) for der in raw["chain"]),
                level="B-T" if raw["level"] == "B-T" else "B-B",
                field_name=str(raw["field_name"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SigningError("La signature préparée est illisible : recommencez la signature.") from exc


# --------------------------------------------------------------------------- step 1: prepare


def prepare(
    source: Path, prepared_pdf: Path, certificate_der: bytes, chain_der: list[bytes], request: SignatureRequest
) -> PreparedSignature:
    """Write ``prepared_pdf``: ``source`` with the signature field, its stamp and an empty signature container.

    :param certificate_der: the signer's certificate, read from the card by the client.
    :param chain_der: its CA certificates (embedded in the signature), possibly empty.
    :param request: the stamp's wording and the level; B-LT and B-LTA are prepared as B-T (see the module).
    :raises IdentityError: a certificate is not X.509, or its key type is not RSA or ECDSA.
    :raises SigningError: the certificate has expired or is not valid yet.
    :raises PdfError: the document cannot be signed.
    """
    certificate = _load_certificate(certificate_der)
    chain = [_load_certificate(der) for der in chain_der]
    _check_certificate(certificate)
    plan = pades.plan_signature(source, request)
    level: SignatureLevel = "B-B" if request.level == "B-B" else "B-T"
    # No signature value yet: bytes_reserved is given, so pyHanko never needs one to size the container.
    signer = signers.ExternalSigner(certificate, _registry([certificate, *chain]), None)
    pdf_signer = signers.PdfSigner(
        _metadata(request, plan.field_name),
        signer=signer,
        stamp_style=plan.stamp_style,
        new_field_spec=plan.field_spec,
    )
    reserved = pades.SIGNATURE_BYTES_RESERVED if level == "B-B" else pades.TIMESTAMPED_BYTES_RESERVED
    with source.open("rb") as input_stream, atomic_output(prepared_pdf) as output:
        digest, signed_attributes = _run(_digest(pdf_signer, signer, input_stream, output, plan.stamp_params, reserved))
    state = _State(
        document_digest=digest.document_digest,
        reserved_region=(digest.reserved_region_start, digest.reserved_region_end),
        signed_attributes=signed_attributes,
        certificate=certificate.dump(),
        chain=tuple(cert.dump() for cert in chain),
        level=level,
        field_name=plan.field_name,
    )
    return PreparedSignature(state.dump(), signed_attributes, DIGEST_ALGORITHM, level)


def _metadata(request: SignatureRequest, field_name: str) -> signers.PdfSignatureMetadata:
    return signers.PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm=DIGEST_ALGORITHM,
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=request.reason,
        location=request.location,
        name=request.signer_name,
    )


async def _digest(
    pdf_signer: signers.PdfSigner,
    signer: signers.ExternalSigner,
    input_stream: BinaryIO,
    output: BinaryIO,
    stamp_params: dict[str, str],
    bytes_reserved: int,
) -> tuple[PreparedByteRangeDigest, bytes]:
    # Non-strict parsing, as in pades.sign_pdf: common producers' files fail pyHanko's strict mode.
    writer = IncrementalPdfFileWriter(input_stream, strict=False)
    digest, _, _ = await pdf_signer.async_digest_doc_for_signing(
        writer, bytes_reserved=bytes_reserved, appearance_text_params=stamp_params, output=output
    )
    attributes = await signer.signed_attrs(digest.document_digest, DIGEST_ALGORITHM, use_pades=True)
    return digest, attributes.dump()


# --------------------------------------------------------------------------- step 2: the card


def sign_with_token(
    data_to_sign: bytes, module_path: str, token_label: str, pin: str, key_label: str | None = None
) -> tuple[bytes, bytes]:
    """Sign ``data_to_sign`` with the key on a PKCS#11 token; returns (signature value, certificate DER).

    :raises IdentityError: see ``tokens.open_pkcs11_identity`` (wrong PIN, unknown token, no key…).
    :raises SigningError: the token refused to sign.
    """
    with open_pkcs11_identity(module_path, token_label, pin, key_label) as identity:
        return identity.sign_raw(data_to_sign), identity.certificate_der


# --------------------------------------------------------------------------- step 3: finish


def finish(
    prepared_pdf: Path,
    state: bytes,
    signature_value: bytes,
    destination: Path,
    services: TrustServices | None = None,
) -> None:
    """Complete the signature of ``prepared_pdf`` with the card's ``signature_value``, into ``destination``.

    :param services: the timestamp authority, needed when the state's level is B-T.
    :raises SigningError: the signature value does not verify against the certificate over the data to sign;
        the prepared PDF has changed since ``prepare``; the state is unreadable; no timestamp authority is
        configured for B-T; the authority does not answer (``retryable=True``). Nothing is written then.
    :raises PdfError: the prepared PDF is missing.
    """
    prepared = _State.load(state)
    _verify_signature_value(prepared, signature_value)
    attributes = _signed_attributes(prepared)
    try:
        with prepared_pdf.open("rb") as source:
            data = _read_checked(source, prepared)
    except FileNotFoundError as exc:
        raise PdfError("Le PDF préparé pour la signature est introuvable.") from exc
    container = _container(prepared, attributes, signature_value, services or TrustServices())
    start, end = prepared.reserved_region
    region = PreparedByteRangeDigest(prepared.document_digest, start, end)
    with atomic_output(destination) as output:
        output.write(data)
        try:
            region.fill_with_cms(output, container)
        except PyHankoSigningError as exc:
            raise SigningError("La signature est trop volumineuse pour la place réservée dans le PDF.") from exc


def _container(
    prepared: _State, attributes: cms.CMSAttributes, signature_value: bytes, services: TrustServices
) -> cms.ContentInfo:
    """The CMS SignedData around the card's signature value, with its signature timestamp at B-T."""
    certificate = asn1_x509.Certificate.load(prepared.certificate)
    chain = [asn1_x509.Certificate.load(der) for der in prepared.chain]
    signer = signers.ExternalSigner(certificate, _registry([certificate, *chain]), signature_value)
    timestamper = pades.timestamper(prepared.level, services)
    try:
        container: cms.ContentInfo = _run(
            signer.async_sign_prescribed_attributes(DIGEST_ALGORITHM, attributes, timestamper=timestamper)
        )
    except TimestampRequestError as exc:
        raise SigningError(
            f"L'autorité d'horodatage ne répond pas : signature {prepared.level} impossible pour le moment.",
            retryable=True,
        ) from exc
    return container


def _verify_signature_value(prepared: _State, signature_value: bytes) -> None:
    """The card's value must verify against the prepared certificate, over exactly the data to sign."""
    public_key = x509.load_der_x509_certificate(prepared.certificate).public_key()
    digest = hashes.SHA256()
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature_value, prepared.signed_attributes, padding.PKCS1v15(), digest)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature_value, prepared.signed_attributes, ec.ECDSA(digest))
        else:
            raise InvalidSignature
    except (InvalidSignature, ValueError) as exc:
        raise SigningError(
            "La valeur de signature reçue ne correspond pas au certificat du signataire : "
            "la carte utilisée n'est pas celle dont le certificat a été présenté, ou les données signées diffèrent."
        ) from exc


def _signed_attributes(prepared: _State) -> cms.CMSAttributes:
    # The state is the server's own, but a mix-up between two prepared signatures must not go unnoticed.
    attributes = cms.CMSAttributes.load(prepared.signed_attributes)
    digests = [attr["values"][0].native for attr in attributes if attr["type"].native == "message_digest"]
    if digests != [prepared.document_digest]:
        raise SigningError("La signature préparée est incohérente : recommencez la signature.")
    return attributes


def _read_checked(source: BinaryIO, prepared: _State) -> bytes:
    """The prepared PDF, checked against the digest of the byte range and the still-empty reserved region."""
    data = source.read()
    start, end = prepared.reserved_region
    placeholder = data[start:end]
    empty = len(placeholder) >= 2 and placeholder[:1] == b"<" and placeholder[-1:] == b">"
    empty = empty and not placeholder[1:-1].strip(b"0")
    digest = hashlib.sha256()
    digest.update(data[:start])
    digest.update(data[end:])
    if not (0 < start < end <= len(data) and empty and digest.digest() == prepared.document_digest):
        raise SigningError(
            "Le PDF préparé a été modifié depuis la préparation de la signature : recommencez la signature."
        )
    return data


# --------------------------------------------------------------------------- helpers


def _load_certificate(der: bytes) -> asn1_x509.Certificate:
    try:
        certificate = asn1_x509.Certificate.load(der)
        certificate.native  # noqa: B018 — parses it whole: a truncated certificate fails here, not later
    except (ValueError, TypeError) as exc:
        raise IdentityError("Le certificat fourni n'est pas un certificat X.509 valide (DER).") from exc
    if certificate.public_key.algorithm not in ("rsa", "ec"):
        raise IdentityError("Seules les clés RSA et ECDSA sont prises en charge pour signer.")
    return certificate


def _check_certificate(certificate: asn1_x509.Certificate) -> None:
    now = datetime.now(UTC)
    name = certificate.subject.human_friendly
    if certificate.not_valid_after < now:
        raise SigningError(f"Le certificat de {name} a expiré le {certificate.not_valid_after:%d/%m/%Y}.")
    if certificate.not_valid_before > now:
        raise SigningError(
            f"Le certificat de {name} n'est valable qu'à partir du {certificate.not_valid_before:%d/%m/%Y}."
        )


def _registry(certificates: list[asn1_x509.Certificate]) -> SimpleCertificateStore:
    store: SimpleCertificateStore = SimpleCertificateStore.from_certs(certificates)  # type: ignore[no-untyped-call]
    return store


def _run(coroutine: Any) -> Any:
    try:
        return asyncio.run(coroutine)
    except PyHankoSigningError as exc:
        raise PdfError(f"La préparation de la signature a échoué : {exc}") from exc
    except pdf_misc.PdfError as exc:
        raise PdfError(pades.DAMAGED_PDF) from exc


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError("not base64") from exc


__all__ = ["PreparedSignature", "finish", "prepare", "sign_with_token"]
