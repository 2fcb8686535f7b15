"""XAdES-EPES enveloped signatures of PES Aller flows (Hélios, DGFiP), one per bordereau, and their validation.

Pure domain module: paths in, paths and reports out. signxml builds the XML signature and its XAdES signed
properties; the raw RSA/ECDSA operation goes through the identity's pyHanko signer, so a PKCS#11 token signs
like a PKCS#12 key. The signed file is the original one with a ``ds:Signature`` spliced before each
``</Bordereau>``: every other byte, the encoding included, stays as it was (files in an encoding other than
UTF-8, ISO-8859-1 or ASCII are re-serialised instead, with the same canonical content).

XML is parsed without entity expansion, DTD or network access; a DOCTYPE is refused outright.
"""

from __future__ import annotations

import asyncio
import codecs
import copy
from base64 import b64decode, b64encode
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.parsers import expat

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from pyhanko.sign.signers import Signer
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError, RevokedError, ValidationError
from pyhanko_certvalidator.fetchers.requests_fetchers import RequestsFetcherBackend
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.exceptions import SignXMLException
from signxml.xades.xades import (
    XAdESDataObjectFormat,
    XAdESSignatureConfiguration,
    XAdESSignaturePolicy,
    XAdESSigner,
    XAdESVerifier,
)

from parapheur.pades import (
    SERVICE_TIMEOUT_SECONDS,
    RevocationStatus,
    SignatureReport,
    SigningIdentity,
    check_certificate_dates,
)
from socle.files import atomic_output

# The DGFiP's Hélios signature policy, as PES signing tools declare it. The digest is the SHA-1 of the policy
# document, base64, as the DGFiP publishes it (the value Libriciel's iParapheur and Pastell send to Hélios).
HELIOS_POLICY_ID = "urn:oid:1.2.250.1.131.1.5.18.21.1.4"
HELIOS_POLICY_DESCRIPTION = "Politique de signature Helios de la DGFiP"
HELIOS_POLICY_DIGEST = "Jkdb+aba0Hz6+ZPKmKNhPByzQ+Q="
HELIOS_POLICY_URI = "https://portail.dgfip.finances.gouv.fr/documents/PS_Helios_DGFiP.pdf"
PRODUCTION_COUNTRY = "France"

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
_NS = {"ds": DS, "xades": XADES}
_SIGNATURE = f"{{{DS}}}Signature"
# Inclusive C14N 1.0: the canonicalisation every XML signature verifier supports, old ones included.
_C14N = CanonicalizationMethod.CANONICAL_XML_1_0
_CERT_DIGESTS: dict[str, hashes.HashAlgorithm] = {
    DigestAlgorithm.SHA1.value: hashes.SHA1(),
    DigestAlgorithm.SHA256.value: hashes.SHA256(),
    DigestAlgorithm.SHA384.value: hashes.SHA384(),
    DigestAlgorithm.SHA512.value: hashes.SHA512(),
}
# The PES encodings whose bytes expat indexes as they are, so that signatures can be spliced in.
_SPLICEABLE = {"utf-8", "iso8859-1", "ascii"}


class PesError(ValueError):
    """The file is not well-formed XML or not a PES Aller that can be signed; the message is in French."""


# --------------------------------------------------------------------------- reading


def _parse(data: bytes) -> etree._ElementTree:
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_blank_text=False
    )
    try:
        tree = etree.ElementTree(etree.fromstring(data, parser=parser))
    except etree.XMLSyntaxError as exc:
        raise PesError(f"Le fichier n'est pas un XML bien formé (erreur ligne {exc.lineno}).") from exc
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise PesError("Le fichier XML contient une déclaration DOCTYPE : elle est refusée par sécurité.")
    root = tree.getroot()
    if etree.QName(root).localname != "PES_Aller":
        raise PesError(f"Le fichier n'est pas un flux PES Aller (élément racine « {etree.QName(root).localname} »).")
    return tree


def _bordereaux(root: etree._Element) -> list[etree._Element]:
    """The Bordereau elements of the flow's blocks (PES_DepenseAller, PES_RecetteAller…), in document order."""
    return [
        bordereau
        for block in root.iterchildren(etree.Element)
        for bordereau in block.iterchildren(etree.Element)
        if etree.QName(bordereau).localname == "Bordereau"
    ]


def check_pes(path: Path) -> None:
    """Check that ``path`` is what :func:`sign_pes` accepts: well-formed XML, no DOCTYPE, a PES Aller root.

    Parsed without entity expansion nor network access. :raises PesError: in French, what is wrong.
    """
    _read(path)


def _read(path: Path) -> tuple[bytes, etree._ElementTree]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PesError("Le fichier PES est introuvable ou illisible.") from exc
    return data, _parse(data)


# --------------------------------------------------------------------------- signing


def sign_pes(
    source: Path, destination: Path, identity: SigningIdentity, *, role: str | None = None, city: str | None = None
) -> int:
    """Sign every bordereau of the PES Aller ``source`` (XAdES-EPES enveloped, Hélios policy) into ``destination``.

    Each ``Bordereau`` receives its own ``ds:Signature`` referencing its ``Id``, with the signing time, the
    signing certificate, the Hélios signature policy, ``role`` as claimed role and ``city`` as production
    place. ``destination`` (which may be ``source``) appears atomically; returns the number of bordereaux.

    :raises PesError: malformed XML, not a PES Aller, no bordereau, a bordereau without Id or already signed.
    :raises SigningError: the certificate is expired or not yet valid.
    """
    data, tree = _read(source)
    bordereaux = _signable_bordereaux(tree.getroot())
    check_certificate_dates(identity)
    key = _IdentityKey(identity)
    chain = _certificate_chain(identity)
    signatures = [_sign_bordereau(bordereau, key, chain, role, city) for bordereau in bordereaux]
    signed = _spliced(data, tree, signatures) or _reserialised(tree, bordereaux, signatures)
    with atomic_output(destination) as out:
        out.write(signed)
    return len(bordereaux)


def _signable_bordereaux(root: etree._Element) -> list[etree._Element]:
    bordereaux = _bordereaux(root)
    if not bordereaux:
        raise PesError("Le flux PES ne contient aucun bordereau à signer.")
    for number, bordereau in enumerate(bordereaux, start=1):
        bordereau_id = bordereau.get("Id")
        if not bordereau_id:
            raise PesError(f"Le bordereau n° {number} n'a pas d'attribut Id : il ne peut pas être signé.")
        if bordereau.find("ds:Signature", _NS) is not None:
            raise PesError(f"Le bordereau {bordereau_id} est déjà signé.")
    return bordereaux


class _IdentityKey:
    """The private-key object signxml signs with, delegating the raw operation to the identity's signer.

    signxml calls ``key.sign(data, padding=…, algorithm=…)`` (RSA) or ``key.sign(data, signature_algorithm=…)``
    (ECDSA) and reads ``key_size`` for ECDSA; pyHanko's signer hashes with SHA-256 and pads (PKCS#1 v1.5) itself.
    """

    def __init__(self, identity: SigningIdentity) -> None:
        self._signer: Signer = identity._signer
        self._public_key = x509.load_der_x509_certificate(identity.certificate_der).public_key()
        self.is_ec = isinstance(self._public_key, ec.EllipticCurvePublicKey)
        self.key_size: int = getattr(self._public_key, "key_size", 0)

    def public_key(self) -> Any:
        return self._public_key

    def sign(self, data: bytes, *args: object, **kwargs: object) -> bytes:
        return asyncio.run(self._signer.async_sign_raw(data, "sha256"))


def _certificate_chain(identity: SigningIdentity) -> list[x509.Certificate]:
    """The signing certificate first, then the intermediate authorities the identity carries (not the roots)."""
    signing = x509.load_der_x509_certificate(identity.certificate_der)
    others = [
        x509.load_der_x509_certificate(cert.dump())
        for cert in identity._signer.cert_registry
        if cert.self_signed == "no" and cert.dump() != identity.certificate_der
    ]
    return [signing, *others]


class _HeliosSigner(XAdESSigner):
    """signxml's XAdES signer with the properties a Hélios signature carries.

    signxml writes SigningCertificateV2 and a SignaturePolicyIdentifier without qualifier; Hélios signatures
    use SigningCertificate (XAdES 1.3.2), the policy's URL and the production place.
    """

    def __init__(self, signature_id: str, key: _IdentityKey, role: str | None, city: str | None) -> None:
        super().__init__(
            signature_policy=XAdESSignaturePolicy(
                Identifier=HELIOS_POLICY_ID,
                Description=HELIOS_POLICY_DESCRIPTION,
                DigestMethod=DigestAlgorithm.SHA1,
                DigestValue=HELIOS_POLICY_DIGEST,
            ),
            claimed_roles=[role] if role else None,
            data_object_format=XAdESDataObjectFormat(Description="Bordereau PES", MimeType="text/xml"),
            signature_algorithm=SignatureMethod.ECDSA_SHA256 if key.is_ec else SignatureMethod.RSA_SHA256,
            digest_algorithm=DigestAlgorithm.SHA256,
            c14n_algorithm=_C14N,
        )
        self.signature_id = signature_id
        self.city = city
        # Runs first: the signed properties' Id and Target are derived from the signature's Id.
        self.signature_annotators.insert(0, self._set_signature_id)

    def _set_signature_id(self, sig_root: etree._Element, signing_settings: object) -> None:
        sig_root.set("Id", self.signature_id)

    def add_signing_certificate(
        self, signed_signature_properties: etree._Element, sig_root: etree._Element, signing_settings: Any
    ) -> None:
        certificate: x509.Certificate = signing_settings.cert_chain[0]
        signing_certificate = etree.SubElement(signed_signature_properties, f"{{{XADES}}}SigningCertificate")
        cert = etree.SubElement(signing_certificate, f"{{{XADES}}}Cert")
        digest = etree.SubElement(cert, f"{{{XADES}}}CertDigest")
        etree.SubElement(digest, f"{{{DS}}}DigestMethod", Algorithm=DigestAlgorithm.SHA256.value)
        etree.SubElement(digest, f"{{{DS}}}DigestValue").text = _b64(certificate.fingerprint(hashes.SHA256()))
        issuer_serial = etree.SubElement(cert, f"{{{XADES}}}IssuerSerial")
        etree.SubElement(issuer_serial, f"{{{DS}}}X509IssuerName").text = certificate.issuer.rfc4514_string()
        etree.SubElement(issuer_serial, f"{{{DS}}}X509SerialNumber").text = str(certificate.serial_number)

    def add_signature_policy_identifier(
        self, signed_signature_properties: etree._Element, sig_root: etree._Element, signing_settings: Any
    ) -> None:
        super().add_signature_policy_identifier(signed_signature_properties, sig_root, signing_settings)
        policy_id = signed_signature_properties.find("xades:SignaturePolicyIdentifier/xades:SignaturePolicyId", _NS)
        assert policy_id is not None
        qualifier = etree.SubElement(
            etree.SubElement(policy_id, f"{{{XADES}}}SigPolicyQualifiers"), f"{{{XADES}}}SigPolicyQualifier"
        )
        etree.SubElement(qualifier, f"{{{XADES}}}SPURI").text = HELIOS_POLICY_URI

    def add_signature_production_place(
        self, signed_signature_properties: etree._Element, sig_root: etree._Element, signing_settings: Any
    ) -> None:
        if not self.city:
            return
        place = etree.SubElement(signed_signature_properties, f"{{{XADES}}}SignatureProductionPlace")
        etree.SubElement(place, f"{{{XADES}}}City").text = self.city
        etree.SubElement(place, f"{{{XADES}}}CountryName").text = PRODUCTION_COUNTRY


def _b64(data: bytes) -> str:
    return b64encode(data).decode("ascii")


def _standalone(bordereau: etree._Element) -> etree._Element:
    """A copy of ``bordereau`` in a small document of its own, canonically equivalent where it matters.

    Its ancestors are recreated empty, with their attributes and namespace declarations: the canonical form of
    the bordereau and of a signature inside it is then the same as in the whole flow, while signxml, which
    copies the document it works on several times per signature, only copies this one bordereau.
    """
    parent = bordereau.getparent()
    assert parent is not None
    root = parent.getparent()
    assert root is not None
    shell = etree.Element(root.tag, attrib=dict(root.attrib), nsmap=root.nsmap)
    block = etree.SubElement(shell, parent.tag, attrib=dict(parent.attrib), nsmap=parent.nsmap)
    block.append(copy.deepcopy(bordereau))
    return shell


def _sign_bordereau(
    bordereau: etree._Element, key: _IdentityKey, chain: list[x509.Certificate], role: str | None, city: str | None
) -> etree._Element:
    """The ds:Signature of one bordereau, made on a standalone copy of it."""
    bordereau_id = bordereau.get("Id", "")
    signature_id = f"SIG-{bordereau_id}"
    document = _standalone(bordereau)
    # signxml puts the signature where it finds this placeholder: last child of the bordereau, no tail.
    etree.SubElement(document[0][0], _SIGNATURE, Id="placeholder", nsmap={"ds": DS})
    signed_copy = _HeliosSigner(signature_id, key, role, city).sign(
        document,
        key=key,  # type: ignore[arg-type]  # duck-typed: signxml only calls sign() on it
        cert=chain,
        reference_uri=f"#{bordereau_id}",
        always_add_key_value=False,
    )
    signature = signed_copy[0][0][-1]
    assert signature.tag == _SIGNATURE and signature.get("Id") == signature_id
    return signature


def _spliced(data: bytes, tree: etree._ElementTree, signatures: list[etree._Element]) -> bytes | None:
    """The original bytes with each signature inserted before its ``</Bordereau>``; None if that cannot be done."""
    encoding = tree.docinfo.encoding or "UTF-8"
    if codecs.lookup(encoding).name not in _SPLICEABLE:
        return None
    offsets = _closing_tag_offsets(data)
    if len(offsets) != len(signatures) or any(data[offset : offset + 2] != b"</" for offset in offsets):
        return None
    pieces, start = [], 0
    for offset, signature in zip(offsets, signatures, strict=True):
        pieces += [data[start:offset], etree.tostring(signature, encoding=encoding, xml_declaration=False)]
        start = offset
    pieces.append(data[start:])
    return b"".join(pieces)


def _closing_tag_offsets(data: bytes) -> list[int]:
    """Byte offsets of the closing tags of the bordereaux (elements named Bordereau at depth 3)."""
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    depth, offsets = 0, []

    def start(name: str, attributes: dict[str, str]) -> None:
        nonlocal depth
        depth += 1

    def end(name: str) -> None:
        nonlocal depth
        if depth == 3 and name.rpartition(":")[2] == "Bordereau":
            offsets.append(parser.CurrentByteIndex)
        depth -= 1

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(data, True)
    except expat.ExpatError:
        return []
    return offsets


def _reserialised(
    tree: etree._ElementTree, bordereaux: list[etree._Element], signatures: list[etree._Element]
) -> bytes:
    # Encodings expat cannot index (UTF-16, Windows-1252…): same content, re-serialised by lxml.
    for bordereau, signature in zip(bordereaux, signatures, strict=True):
        bordereau.append(signature)
    return bytes(etree.tostring(tree, encoding=tree.docinfo.encoding or "UTF-8", xml_declaration=True))


# --------------------------------------------------------------------------- validation


def validate_pes(path: Path, trust_roots: list[bytes], *, allow_fetching: bool = False) -> list[SignatureReport]:
    """Report on the signature of every bordereau of the PES file ``path``, in document order.

    A bordereau without signature gets no report (see :func:`unsigned_bordereaux`). Integrity is the XML
    signature over the bordereau; trust and revocation are checked against ``trust_roots`` (DER) now, online
    only with ``allow_fetching``. The level is "B-B" (XAdES-EPES, no timestamp).

    :raises PesError: malformed XML or not a PES Aller.
    """
    _, tree = _read(path)
    roots = [asn1_x509.Certificate.load(der) for der in trust_roots]
    reports = []
    for bordereau in _bordereaux(tree.getroot()):
        for signature in bordereau.findall("ds:Signature", _NS):
            reports.append(_report(_standalone(bordereau), bordereau.get("Id", ""), signature, roots, allow_fetching))
    return reports


def unsigned_bordereaux(path: Path) -> list[str]:
    """Ids of the bordereaux of the PES file ``path`` that carry no signature (Hélios wants them all signed).

    :raises PesError: malformed XML or not a PES Aller.
    """
    _, tree = _read(path)
    return [b.get("Id", "?") for b in _bordereaux(tree.getroot()) if b.find("ds:Signature", _NS) is None]


@dataclass(frozen=True)
class _Trust:
    trusted: bool
    revocation: RevocationStatus
    revocation_date: datetime | None


def _report(
    root: etree._Element, bordereau_id: str, signature: etree._Element, roots: list[asn1_x509.Certificate], fetch: bool
) -> SignatureReport:
    certificates = _embedded_certificates(signature)
    signer = _signing_certificate(signature, certificates)
    signing_time = _signing_time(signature)
    intact = signer is not None and _intact(root, bordereau_id, signer, signing_time)
    trust = (
        _trust(signer, certificates, roots, fetch) if signer is not None and intact else _Trust(False, "unknown", None)
    )
    return SignatureReport(
        field_name=f"Bordereau {bordereau_id}",
        signer_name=_subject_name(signer) if signer is not None else "",
        signing_time=signing_time,
        intact=intact,
        chain_trusted=trust.trusted,
        revocation=trust.revocation,
        revocation_date=trust.revocation_date,
        timestamp_time=None,
        level="B-B" if intact else None,
        covers_whole_document=intact,
        signature_format="XAdES",
    )


def _embedded_certificates(signature: etree._Element) -> list[x509.Certificate]:
    certificates = []
    for node in signature.iterfind("ds:KeyInfo/ds:X509Data/ds:X509Certificate", _NS):
        try:
            certificates.append(x509.load_der_x509_certificate(b64decode(node.text or "")))
        except ValueError:
            continue
    return certificates


def _signing_certificate(signature: etree._Element, certificates: list[x509.Certificate]) -> x509.Certificate | None:
    """The certificate the signed properties designate (by digest), else the first one of the key info."""
    digest = signature.find(".//xades:SignedSignatureProperties/*/xades:Cert/xades:CertDigest", _NS)
    if digest is not None:
        method, value = digest.find("ds:DigestMethod", _NS), digest.find("ds:DigestValue", _NS)
        algorithm = _CERT_DIGESTS.get(method.get("Algorithm", "") if method is not None else "")
        expected = b64decode(value.text or "") if value is not None else b""
        for certificate in certificates:
            if algorithm is not None and certificate.fingerprint(algorithm) == expected:
                return certificate
    return certificates[0] if certificates else None


def _signing_time(signature: etree._Element) -> datetime | None:
    node = signature.find(".//xades:SignedSignatureProperties/xades:SigningTime", _NS)
    try:
        return datetime.fromisoformat((node.text or "").strip().replace("Z", "+00:00")) if node is not None else None
    except ValueError:
        return None


def _intact(root: etree._Element, bordereau_id: str, signer: x509.Certificate, signing_time: datetime | None) -> bool:
    """The signature's value, its references' digests and the bordereau it covers all check out."""
    if "'" in bordereau_id:
        return False  # not a valid xs:ID, and it would break the signature's location below
    config = XAdESSignatureConfiguration(
        location=f".//*[@Id='{bordereau_id}']/",
        # Integrity only: the certificate's validity is the chain check's business, not a reason to say "altered".
        verification_time=signing_time,
    )
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        results = XAdESVerifier().verify(root, x509_cert=signer, expect_config=config, parser=parser)
    except (SignXMLException, ValueError):
        return False
    covered = results[0].signed_xml
    # "See what is signed": the first reference must be the very bordereau holding the signature.
    return covered is not None and etree.QName(covered).localname == "Bordereau" and covered.get("Id") == bordereau_id


def _trust(
    certificate: x509.Certificate, certificates: list[x509.Certificate], roots: list[asn1_x509.Certificate], fetch: bool
) -> _Trust:
    signer = asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))
    others = [
        asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER)) for cert in certificates if cert != certificate
    ]
    try:
        _validate_chain(signer, others, roots, "hard-fail", fetch)
        return _Trust(True, "good", None)
    except RevokedError as exc:
        return _Trust(True, "revoked", exc.revocation_dt)
    except (PathValidationError, PathBuildingError, ValidationError):
        pass
    # Missing revocation data makes the strict validation fail: ask again about the chain alone.
    try:
        _validate_chain(signer, others, roots, "soft-fail", fetch)
        return _Trust(True, "unknown", None)
    except RevokedError as exc:
        return _Trust(True, "revoked", exc.revocation_dt)
    except (PathValidationError, PathBuildingError, ValidationError):
        return _Trust(False, "unknown", None)


def _validate_chain(
    signer: asn1_x509.Certificate,
    others: list[asn1_x509.Certificate],
    roots: list[asn1_x509.Certificate],
    mode: str,
    fetch: bool,
) -> None:
    kwargs: dict[str, Any] = {"trust_roots": roots, "allow_fetching": fetch, "revocation_mode": mode}
    if fetch:
        kwargs["fetcher_backend"] = RequestsFetcherBackend(per_request_timeout=SERVICE_TIMEOUT_SECONDS)
    else:
        kwargs.update(ocsps=[], crls=[])  # pyHanko refuses a strict context that could never find revocation data
    validator = CertificateValidator(signer, others, validation_context=ValidationContext(**kwargs))
    asyncio.run(validator.async_validate_usage({"non_repudiation"}))  # type: ignore[no-untyped-call]


def _subject_name(certificate: x509.Certificate) -> str:
    for oid in (x509.NameOID.COMMON_NAME, x509.NameOID.ORGANIZATION_NAME):
        attributes = certificate.subject.get_attributes_for_oid(oid)
        if attributes:
            return str(attributes[0].value)
    return certificate.subject.rfc4514_string()


__all__ = [
    "HELIOS_POLICY_DIGEST",
    "HELIOS_POLICY_ID",
    "PesError",
    "check_pes",
    "sign_pes",
    "unsigned_bordereaux",
    "validate_pes",
]
