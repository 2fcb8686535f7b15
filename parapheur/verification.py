"""Checking any signed file the parapheur produces: which validator it needs, and certificates as given.

A PDF is checked as PAdES, a DER CMS structure as a detached CAdES signature (with the file it signs), an XML
document as a PES with XAdES signatures on its bordereaux. Pure domain module: paths in, reports out.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from parapheur import cades, pades, xades
from socle.errors import InvalidInput, message


def signed_file_kind(path: Path) -> str:
    """``cades``, ``xades`` or ``pades``, from the file's first bytes (never from its name)."""
    with path.open("rb") as stream:
        head = stream.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] == b"\x30":  # DER SEQUENCE: a CMS signature
        return "cades"
    if head[:1] == b"<":
        return "xades"
    return "pades"


def reports_for(
    path: Path, roots: list[bytes], *, data_file: Path | None = None, online: bool = False
) -> tuple[list[pades.SignatureReport], list[str]]:
    """The reports of the file's signatures, and French notes on what is missing (an unsigned bordereau).

    ``data_file`` is the file a detached CAdES signature signs. ``online`` lets the validators ask the
    revocation responders; otherwise they use what the file embeds.

    :raises InvalidInput: the file cannot be read as what it looks like, or a detached signature has no data.
    """
    kind = "cades" if data_file is not None else signed_file_kind(path)
    try:
        if kind == "cades":
            if data_file is None:
                raise InvalidInput(message("signature CAdES détachée : joignez aussi le fichier signé"))
            return cades.validate_detached(data_file, path.read_bytes(), roots, allow_fetching=online), []
        if kind == "xades":
            notes = [f"Bordereau « {bordereau} » : NON SIGNÉ." for bordereau in xades.unsigned_bordereaux(path)]
            return xades.validate_pes(path, roots, allow_fetching=online), notes
        return pades.validation_report(path, roots, allow_fetching=online), []
    except (pades.PdfError, xades.PesError) as exc:
        raise InvalidInput(str(exc)) from None


def load_certificates(data: bytes, name: str) -> list[x509.Certificate]:
    """Certificates from PEM (one or several) or DER bytes.

    :raises InvalidInput: not an X.509 certificate.
    """
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise InvalidInput(message("%(name)s n'est pas un certificat X.509 (PEM ou DER).", name=name)) from None


def der(certificate: x509.Certificate) -> bytes:
    """The certificate in DER."""
    return certificate.public_bytes(Encoding.DER)
