"""Fast CMS containers for bulk PAdES B-B signing: the invariant DER built once, two fields filled per document.

pyHanko rebuilds and re-encodes the whole CMS SignedData (certificates, algorithm identifiers, the
signing-certificate-v2 attribute) in pure Python for every signature, which is most of a B-B signature's
cost. Yet for one signer and one digest algorithm, a PAdES B-B container differs from one document to the
next only by the message digest (a fixed-length OCTET STRING in the signed attributes) and the signature
value (fixed-length for RSA). So the container is produced once by pyHanko itself, with a marker in place of
the digest, and cut around those two fields; each document then costs a few byte concatenations and one
RSA signature over the DER of its signed attributes, as CMS requires (RFC 5652, 5.4). The attributes stay
those of pyHanko's PAdES path: content-type, message-digest, signing-certificate-v2, and no signing-time
(PAdES puts the signing time in the signature dictionary's /M).

Anything outside that case (timestamps, CAdES attributes, ECDSA, dry runs) goes through pyHanko unchanged;
so does the PDF side (field, visible stamp, incremental update), which stays ``pades.sign_pdf``'s.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from asn1crypto import cms
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pyhanko.sign.signers import pdf_cms
from pyhanko.sign.timestamps import TimeStamper

from parapheur.pades import SigningIdentity, _LoadedKeySigner

TEMPLATE_DIGEST_ALGORITHM = "sha256"
_DIGEST_LENGTH = 32
# DER tags of the signed attributes: a SET when signed, [0] IMPLICIT inside the SignerInfo.
_SET_TAG = 0x31
_IMPLICIT_0_TAG = 0xA0


class TemplateError(RuntimeError):
    """The template could not be cut safely out of pyHanko's container (a bug, never a user's error)."""


@dataclass(frozen=True)
class CmsTemplate:
    """A PAdES B-B SignedData cut around its two per-document fields.

    The container is ``head + digest + middle + signature + tail``; the signed attributes, as signed, are
    ``attrs_head + digest + attrs_tail``.
    """

    head: bytes
    middle: bytes
    tail: bytes
    attrs_head: bytes
    attrs_tail: bytes
    signature_length: int

    def container(self, digest: bytes, key: rsa.RSAPrivateKey) -> bytes:
        """DER of the SignedData for a document whose ByteRange digest is ``digest``."""
        if len(digest) != _DIGEST_LENGTH:
            raise TemplateError("message digest of unexpected length")
        signature = key.sign(self.attrs_head + digest + self.attrs_tail, padding.PKCS1v15(), hashes.SHA256())
        if len(signature) != self.signature_length:
            raise TemplateError("signature value of unexpected length")
        return self.head + digest + self.middle + signature + self.tail


def build_template(signer: _LoadedKeySigner, key: rsa.RSAPrivateKey) -> CmsTemplate:
    """Let pyHanko build one PAdES container over a random marker digest, then cut it around that digest
    and around the signature value.

    :raises TemplateError: the marker or the signature is not found exactly once, or does not verify.
    """
    marker = os.urandom(_DIGEST_LENGTH)
    reference = asyncio.run(signer.async_sign(marker, TEMPLATE_DIGEST_ALGORITHM, use_pades=True))
    der = reference.dump()
    signer_info = reference["content"]["signer_infos"][0]
    in_container = signer_info["signed_attrs"].dump()
    signature = signer_info["signature"].native
    # The signature covers the [0] IMPLICIT field of the SignerInfo retagged as a SET (RFC 5652, 5.4).
    if in_container[0] != _IMPLICIT_0_TAG or der.count(in_container) != 1:
        raise TemplateError("signed attributes not found once in the container")
    attrs = bytes([_SET_TAG]) + in_container[1:]
    try:
        key.public_key().verify(signature, attrs, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as exc:
        raise TemplateError("the reference signature does not cover the signed attributes") from exc
    digest_at = _single_offset(der, marker)
    signature_at = _single_offset(der, signature)
    attrs_digest_at = _single_offset(attrs, marker)
    if not digest_at < signature_at or der.find(in_container) > digest_at:
        raise TemplateError("unexpected field order in the container")
    return CmsTemplate(
        head=der[:digest_at],
        middle=der[digest_at + _DIGEST_LENGTH : signature_at],
        tail=der[signature_at + len(signature) :],
        attrs_head=attrs[:attrs_digest_at],
        attrs_tail=attrs[attrs_digest_at + _DIGEST_LENGTH :],
        signature_length=len(signature),
    )


def _single_offset(haystack: bytes, needle: bytes) -> int:
    if haystack.count(needle) != 1:
        raise TemplateError("template field not found exactly once")
    return haystack.find(needle)


class TemplateSigner(_LoadedKeySigner):
    """A pyHanko signer that fills a per-worker template for plain PAdES B-B signatures.

    pyHanko receives an already-parsed ``ContentInfo`` whose ``dump()`` returns the bytes as they are.
    """

    def __init__(self, signer: _LoadedKeySigner, key: rsa.RSAPrivateKey) -> None:
        certificate = signer.signing_cert
        assert certificate is not None  # always set by SigningIdentity.from_pkcs12
        others = [cert for cert in signer.cert_registry if cert.dump() != certificate.dump()]
        super().__init__(key, certificate, others)
        self._rsa_key = key
        self._template = build_template(signer, key)

    async def async_sign(
        self,
        data_digest: bytes,
        digest_algorithm: str,
        dry_run: bool = False,
        use_pades: bool = False,
        timestamper: TimeStamper | None = None,
        signed_attr_settings: pdf_cms.PdfCMSSignedAttributes | None = None,
        is_pdf_sig: bool = True,
        encap_content_info: object = None,
    ) -> cms.ContentInfo:
        plain_pades_bb = (
            use_pades
            and is_pdf_sig
            and not dry_run
            and timestamper is None
            and encap_content_info is None
            and digest_algorithm == TEMPLATE_DIGEST_ALGORITHM
            and (signed_attr_settings is None or signed_attr_settings.cades_signed_attrs is None)
        )
        if not plain_pades_bb:
            return await super().async_sign(
                data_digest,
                digest_algorithm,
                dry_run=dry_run,
                use_pades=use_pades,
                timestamper=timestamper,
                signed_attr_settings=signed_attr_settings,
                is_pdf_sig=is_pdf_sig,
                encap_content_info=encap_content_info,
            )
        return cms.ContentInfo.load(self._template.container(data_digest, self._rsa_key))


def fast_identity(identity: SigningIdentity) -> SigningIdentity:
    """The same identity, signing plain PAdES B-B through a CMS template; ``identity`` itself for keys the
    template does not handle: ECDSA (its signature values vary in length), keys held by a token.

    :raises TemplateError: pyHanko's container could not be cut into a template (a bug).
    """
    signer = identity._signer
    if not isinstance(signer, _LoadedKeySigner) or not isinstance(signer._key, rsa.RSAPrivateKey):
        return identity
    return SigningIdentity(TemplateSigner(signer, signer._key), identity.subject_name, identity.certificate_der)


__all__ = ["CmsTemplate", "TemplateError", "TemplateSigner", "build_template", "fast_identity"]
