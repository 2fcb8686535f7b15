"""CAdES detached signatures (.p7s) of any file, and their validation.

Pure domain module, like ``pades``: paths in, bytes and reports out. pyHanko builds the CMS SignedData
(signing-certificate-v2 attribute, SHA-256) around the identity's own raw signature, so a PKCS#12 key and a
PKCS#11 token sign the same way. Like pyHanko's high-level API, these functions run their own event loop:
call them from synchronous code or a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path

import requests
from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.sign.timestamps.requests_client import RequestsHTTPTimeStamper
from pyhanko.sign.validation import async_validate_detached_cms
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.status import StandardCMSSignatureStatus
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.fetchers.requests_fetchers import RequestsFetcherBackend

from parapheur.pades import (
    SERVICE_TIMEOUT_SECONDS,
    PdfError,
    SignatureLevel,
    SignatureReport,
    SigningError,
    SigningIdentity,
    TrustServices,
    check_certificate_dates,
    timestamper,
)

FIELD_NAME = "CAdES %d"


def sign_detached(
    source: Path,
    identity: SigningIdentity,
    *,
    level: SignatureLevel = "B-B",
    services: TrustServices | None = None,
) -> bytes:
    """Sign ``source`` (any file) with a detached CAdES signature; return the DER CMS SignedData (a .p7s).

    ``level`` is "B-B", or "B-T" with a signature timestamp from ``services.tsa_url``.

    :raises PdfError: the file cannot be read.
    :raises SigningError: unsupported level, expired certificate, or a timestamp authority that cannot be
        reached (``retryable``).
    """
    if level not in ("B-B", "B-T"):
        raise SigningError(f"Une signature CAdES détachée se fait au niveau B-B ou B-T, pas {level}.")
    check_certificate_dates(identity)
    stamper = timestamper(level, services or TrustServices())
    try:
        stream = source.open("rb")
    except OSError as exc:
        raise PdfError("Le fichier à signer est introuvable ou illisible.") from exc
    try:
        with stream:
            content_info = asyncio.run(
                identity._signer.async_sign_general_data(
                    stream, "sha256", detached=True, use_cades=True, timestamper=stamper
                )
            )
    except (TimestampRequestError, requests.RequestException) as exc:
        raise SigningError(
            f"L'autorité d'horodatage ne répond pas : signature {level} impossible pour le moment.", retryable=True
        ) from exc
    except PyHankoSigningError as exc:
        raise SigningError(f"La signature CAdES a échoué : {exc}") from exc
    return bytes(content_info.dump())


def merge_signatures(existing: bytes, added: bytes) -> bytes:
    """One detached CMS holding the signer infos of both (co-signature): each signer's bytes are kept as is.

    :raises PdfError: either is not a CMS SignedData.
    """
    old, new = _signed_data(existing), _signed_data(added)
    algorithms = list(old["digest_algorithms"])
    for algorithm in new["digest_algorithms"]:
        if all(algorithm.dump() != known.dump() for known in algorithms):
            algorithms.append(algorithm)
    certificates = list(old["certificates"]) if old["certificates"].native is not None else []
    for certificate in new["certificates"] if new["certificates"].native is not None else []:
        if all(certificate.dump() != known.dump() for known in certificates):
            certificates.append(certificate)
    merged = cms.SignedData(
        {
            "version": max(old["version"].native, new["version"].native, key=lambda v: int(v[1:])),
            "digest_algorithms": algorithms,
            "encap_content_info": old["encap_content_info"],
            "certificates": certificates,
            "signer_infos": list(old["signer_infos"]) + list(new["signer_infos"]),
        }
    )
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": merged}).dump())


def add_signature_timestamps(signature: bytes, services: TrustServices) -> bytes:
    """Raise a detached CMS to CAdES B-T: a signature timestamp on each signer info that has none yet.

    :raises PdfError: ``signature`` is not a detached CMS SignedData.
    :raises SigningError: ``retryable`` when no timestamp authority is configured or it does not answer (the
        upgrade job then tries again later).
    """
    signed = _signed_data(signature)
    if not services.tsa_url:
        raise SigningError("Aucune autorité d'horodatage n'est configurée (réglage tsa_url).", retryable=True)
    stamper = RequestsHTTPTimeStamper(services.tsa_url, timeout=services.timeout)  # type: ignore[no-untyped-call]
    infos = []
    for signer in signed["signer_infos"]:
        unsigned = list(signer["unsigned_attrs"]) if signer["unsigned_attrs"].native is not None else []
        if not any(attr["type"].native == "signature_time_stamp_token" for attr in unsigned):
            # RFC 5126, 6.1.1: the token covers the signature value.
            digest = hashlib.sha256(signer["signature"].native).digest()
            try:
                token = asyncio.run(stamper.async_timestamp(digest, "sha256"))
            except (TimestampRequestError, requests.RequestException) as exc:
                raise SigningError(
                    "L'autorité d'horodatage ne répond pas : signature B-T impossible pour le moment.", retryable=True
                ) from exc
            unsigned.append(cms.CMSAttribute({"type": "signature_time_stamp_token", "values": [token]}))
            signer = cms.SignerInfo({**{key: signer[key] for key in _SIGNER_FIELDS}, "unsigned_attrs": unsigned})
        infos.append(signer)
    rebuilt = cms.SignedData({**{key: signed[key] for key in _SIGNED_FIELDS}, "signer_infos": infos})
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": rebuilt}).dump())


_SIGNER_FIELDS = ("version", "sid", "digest_algorithm", "signed_attrs", "signature_algorithm", "signature")
_SIGNED_FIELDS = ("version", "digest_algorithms", "encap_content_info", "certificates")


# --------------------------------------------------------------------------- validation


def validate_detached(
    source: Path, signature: bytes, trust_roots: list[bytes], *, allow_fetching: bool = False
) -> list[SignatureReport]:
    """Report on every signer of the detached CMS ``signature`` over the file ``source``.

    ``trust_roots`` (DER) are the tenant's trust list. Without ``allow_fetching`` nothing leaves the machine and
    the revocation status stays "unknown" (a .p7s carries no revocation data).

    :raises PdfError: ``signature`` is not a CMS SignedData, or ``source`` cannot be read.
    """
    signed_data = _signed_data(signature)
    roots = [asn1_x509.Certificate.load(der) for der in trust_roots]
    reports = []
    for index, signer_info in enumerate(signed_data["signer_infos"], start=1):
        # pyHanko validates the first signer: give it a SignedData holding only this one.
        single = signed_data.copy()
        single["signer_infos"] = cms.SignerInfos([signer_info])
        reports.append(_report(FIELD_NAME % index, source, single, roots, allow_fetching))
    return reports


def _signed_data(signature: bytes) -> cms.SignedData:
    try:
        content_info = cms.ContentInfo.load(signature)
        if content_info["content_type"].native != "signed_data":
            raise ValueError("not signed data")
        signed_data = content_info["content"]
        signed_data["signer_infos"].native  # noqa: B018 -- parse now: asn1crypto is lazy
    except (ValueError, TypeError, KeyError) as exc:
        raise PdfError("Le fichier de signature n'est pas une signature CMS/CAdES (.p7s) lisible.") from exc
    if signed_data["encap_content_info"]["content"].native is not None:
        raise PdfError("La signature CAdES n'est pas détachée : elle contient déjà le document.")
    return signed_data


@dataclass(frozen=True)
class _Checked:
    status: StandardCMSSignatureStatus
    strict: bool  # revocation was checked for every certificate that names a responder


def _report(
    name: str, source: Path, signed_data: cms.SignedData, roots: list[asn1_x509.Certificate], fetch: bool
) -> SignatureReport:
    signer_name = _signer_name(signed_data)
    try:
        checked = _check(source, signed_data, roots, fetch)
    except PdfError:
        raise  # the data file, not the signature, is the problem
    except (SignatureValidationError, ValueError, KeyError):
        return SignatureReport.broken(name, signer_name, "CAdES")
    status = checked.status
    timestamp = status.timestamp_validity
    details = status.revocation_details
    proven = timestamp is not None and timestamp.intact and timestamp.valid and timestamp.trusted
    level: SignatureLevel | None = None
    if status.intact and status.valid:
        level = "B-T" if proven else "B-B"
    return SignatureReport(
        field_name=name,
        signer_name=signer_name,
        signing_time=status.signer_reported_dt,
        intact=status.intact and status.valid,
        chain_trusted=status.trusted or (status.revoked and status.validation_path is not None),
        revocation="revoked" if status.revoked else "good" if checked.strict and status.trusted else "unknown",
        revocation_date=details.revocation_date if details is not None else None,
        timestamp_time=timestamp.timestamp if timestamp is not None and timestamp.intact else None,
        level=level,
        covers_whole_document=status.intact and status.valid,
        signature_format="CAdES",
    )


def _check(source: Path, signed_data: cms.SignedData, roots: list[asn1_x509.Certificate], fetch: bool) -> _Checked:
    status = _validate(source, signed_data, _context(roots, "hard-fail", fetch))
    if status.trusted or status.revoked:
        return _Checked(status, strict=True)
    # Without revocation data the strict pass fails: ask again about the chain alone.
    return _Checked(_validate(source, signed_data, _context(roots, "soft-fail", fetch)), strict=False)


def _context(roots: list[asn1_x509.Certificate], mode: str, fetch: bool) -> ValidationContext:
    # A fresh context per validation: pyHanko caches results inside a context.
    if fetch:
        backend = RequestsFetcherBackend(per_request_timeout=SERVICE_TIMEOUT_SECONDS)
        return ValidationContext(trust_roots=roots, allow_fetching=True, revocation_mode=mode, fetcher_backend=backend)
    # Empty lists: pyHanko refuses a strict context that could never find revocation data otherwise.
    return ValidationContext(trust_roots=roots, allow_fetching=False, revocation_mode=mode, ocsps=[], crls=[])


def _validate(source: Path, signed_data: cms.SignedData, context: ValidationContext) -> StandardCMSSignatureStatus:
    try:
        with source.open("rb") as stream:
            return asyncio.run(async_validate_detached_cms(stream, signed_data, signer_validation_context=context))
    except OSError as exc:
        raise PdfError("Le fichier signé est introuvable ou illisible.") from exc


def _signer_name(signed_data: cms.SignedData) -> str:
    signer_id = signed_data["signer_infos"][0]["sid"]
    for choice in signed_data["certificates"] or []:
        certificate = choice.chosen
        if (
            isinstance(certificate, asn1_x509.Certificate)
            and signer_id.name == "issuer_and_serial_number"
            and certificate.issuer == signer_id.chosen["issuer"]
            and certificate.serial_number == signer_id.chosen["serial_number"].native
        ):
            subject = certificate.subject.native
            return str(subject.get("common_name") or subject.get("organization_name") or "")
    return ""


__all__ = ["add_signature_timestamps", "merge_signatures", "sign_detached", "validate_detached"]
