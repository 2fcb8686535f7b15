"""What the two SAE connectors (Vitam, As@lae) share: safe XML, the SIP's identifier, HTTP and TLS, errors.

Every XML document received from a platform goes through :func:`parse_xml`: no DTD, no entity expansion, no
network access, a size limit. An answer that is not what the protocol promises (an HTML error page, malformed
XML, a 5xx, a timeout) is a *transient* failure: the job is retried. A refusal (4xx) is not.
"""

from __future__ import annotations

import ssl
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from lxml import etree

from interop.connectors.transport import BoundedTransport, DestinationRefused, RemoteMisbehaved, ResponseTooSlow
from socle.errors import InvalidInput, ServiceUnavailable, SocleError, message
from socle.storage import ObjectStore

MAX_XML_BYTES = 20 * 1024 * 1024
MANIFEST_NAME = "manifest.xml"
SEDA_NAMESPACE_PREFIX = "fr:gouv:culture:archivesdefrance:seda:v"


class SaeUnavailable(ServiceUnavailable):
    """The platform did not answer as its protocol says (5xx, timeout, HTML page, bad XML): try again later."""


class SaeRefused(SocleError):
    """The platform refused the request (4xx): trying again with the same input will not help."""

    status = 409


@dataclass
class FollowResult:
    """Where an operation stands on the platform, and the SEDA messages obtained so far (raw XML)."""

    finished: bool
    state: str
    acknowledgement: bytes | None = None
    reply: bytes | None = None
    details: dict[str, Any] = field(default_factory=dict)


def parse_xml(data: bytes, what: str) -> etree._Element:
    """Parse XML from a platform without DTD, entities or network; raise SaeUnavailable when it is not XML.

    :param data: the bytes received. :param what: what they should be, for the error message (French).
    :raises SaeUnavailable: empty, too large, HTML, malformed, or carrying a DTD.
    """
    if len(data) > MAX_XML_BYTES:
        raise SaeUnavailable(
            message("%(what)s : réponse trop volumineuse (%(data_count)s octets)", what=what, data_count=len(data))
        )
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        raise SaeUnavailable(
            message(
                "%(what)s : la plateforme a répondu une page HTML au lieu de XML (%(response_excerpt)s)",
                what=what,
                response_excerpt=excerpt(data),
            )
        )
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise SaeUnavailable(message("%(what)s : XML mal formé (%(exc)s)", what=what, exc=exc)) from None
    if root.getroottree().docinfo.doctype:
        raise SaeUnavailable(message("%(what)s : XML refusé, il déclare un DTD", what=what))
    return root


def seda_text(root: etree._Element, name: str) -> str | None:
    """The text of the first descendant named ``name`` in the SEDA namespace of ``root``."""
    found = root.find(f".//{{{etree.QName(root).namespace}}}{name}")
    return found.text.strip() if found is not None and found.text else None


def excerpt(data: bytes, limit: int = 300) -> str:
    """A printable start of a platform's answer, kept in error messages (the platform's own words)."""
    text = data[:limit].decode("utf-8", "replace")
    return " ".join(text.split())


@dataclass(frozen=True)
class SipInfo:
    message_identifier: str
    version: str
    manifest: bytes
    transferring_agency: str | None
    archival_agency: str | None


def read_sip(store: ObjectStore, object_key: str) -> SipInfo:
    """Read the SIP's manifest: its MessageIdentifier is the stable key of the send.

    :raises InvalidInput: not a zip, no manifest.xml, not a SEDA ArchiveTransfer.
    """
    with store.local_path(object_key) as path:
        try:
            with zipfile.ZipFile(path) as archive:
                manifest = archive.read(MANIFEST_NAME)
        except (zipfile.BadZipFile, KeyError):
            raise InvalidInput(message("le paquet à verser n'est pas un zip SEDA avec manifest.xml")) from None
    try:
        root = parse_xml(manifest, "bordereau du paquet")
    except SaeUnavailable as exc:
        raise InvalidInput(exc.detail) from None
    namespace = etree.QName(root).namespace or ""
    identifier = seda_text(root, "MessageIdentifier")
    if etree.QName(root).localname != "ArchiveTransfer" or not namespace.startswith(SEDA_NAMESPACE_PREFIX):
        raise InvalidInput(message("le bordereau du paquet n'est pas un ArchiveTransfer SEDA"))
    if not identifier:
        raise InvalidInput(message("le bordereau du paquet n'a pas de MessageIdentifier"))
    return SipInfo(
        message_identifier=identifier,
        version=namespace.removeprefix(SEDA_NAMESPACE_PREFIX),
        manifest=manifest,
        transferring_agency=_agency(root, "TransferringAgency"),
        archival_agency=_agency(root, "ArchivalAgency"),
    )


def _agency(root: etree._Element, name: str) -> str | None:
    namespace = etree.QName(root).namespace
    found = root.find(f"{{{namespace}}}{name}/{{{namespace}}}Identifier")
    return found.text.strip() if found is not None and found.text else None


@contextmanager
def http_client(
    config: dict[str, Any], secrets: dict[str, str], headers: dict[str, str], auth: tuple[str, str] | None = None
) -> Iterator[httpx.Client]:
    """An HTTP client for the platform: CA file, optional TLS client certificate, timeout, headers.

    The client key is decrypted only here, written to a private temporary file for the time it takes OpenSSL
    to load it, then removed.
    """
    context = ssl.create_default_context(cafile=config.get("ca_file") or None)
    certificate, key = config.get("client_certificate"), secrets.get("client_key")
    if certificate:
        with tempfile.TemporaryDirectory(prefix="socle-tls-") as folder:
            cert_path, key_path = Path(folder) / "cert.pem", Path(folder) / "key.pem"
            cert_path.write_text(certificate)
            key_path.touch(mode=0o600)
            key_path.write_text(key or "")
            try:
                context.load_cert_chain(cert_path, key_path if key else None)
            except ssl.SSLError as exc:
                raise InvalidInput(
                    message("certificat client ou clé illisible : %(ssl_reason)s", ssl_reason=exc.reason or exc)
                ) from None
    timeout = httpx.Timeout(float(config.get("timeout") or 60))
    # Bounded answers (size, total time), no redirect followed, no link-local address: see transport.py.
    with httpx.Client(
        base_url=str(config["url"]).rstrip("/"),
        transport=BoundedTransport(verify=context),
        timeout=timeout,
        headers=headers,
        auth=auth,
        follow_redirects=False,
    ) as client:
        yield client


def certificate_refused(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind a transport error (unknown authority, another name), if any."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
        cause = cause.__cause__ or cause.__context__
    return cause


def request(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """Send one request; network failures and 5xx become SaeUnavailable, 4xx SaeRefused (platform's words kept).

    404 is returned as is: for the reply URLs it means « not there yet ».
    """
    try:
        response = client.request(method, url, **kwargs)
    except DestinationRefused as exc:
        raise SaeRefused(
            message("%(detail)s (%(method)s %(url)s)", detail=exc.detail, method=method, url=url)
        ) from None
    except (RemoteMisbehaved, ResponseTooSlow) as exc:
        raise SaeUnavailable(
            message("plateforme : %(detail)s (%(method)s %(url)s)", detail=exc.detail, method=method, url=url)
        ) from None
    except httpx.TimeoutException:
        raise SaeUnavailable(
            message("délai dépassé en attendant la plateforme (%(method)s %(url)s)", method=method, url=url)
        ) from None
    except httpx.TransportError as exc:
        refused = certificate_refused(exc)
        if refused is not None:  # the platform answered with a certificate we do not trust: retrying won't help
            raise SaeRefused(
                message(
                    "certificat de la plateforme refusé (%(refused_verify_message)s) ; vérifier "
                    "ca_file ou l'adresse (%(method)s %(url)s)",
                    refused_verify_message=refused.verify_message,
                    method=method,
                    url=url,
                )
            ) from None
        raise SaeUnavailable(
            message("plateforme injoignable (%(method)s %(url)s) : %(exc)s", method=method, url=url, exc=exc)
        ) from None
    said = excerpt(response.content)
    if response.status_code >= 500:
        raise SaeUnavailable(
            message(
                "erreur %(response_status_code)s de la plateforme (%(method)s %(url)s) : %(said)s",
                response_status_code=response.status_code,
                method=method,
                url=url,
                said=said,
            )
        )
    if response.status_code >= 400 and response.status_code not in (404, 409):
        raise SaeRefused(
            message(
                "refus %(response_status_code)s de la plateforme (%(method)s %(url)s) : %(said)s",
                response_status_code=response.status_code,
                method=method,
                url=url,
                said=said,
            )
        )
    return response


def sip_stream(store: ObjectStore, object_key: str) -> Iterator[bytes]:
    """The SIP's bytes in chunks: a large package is streamed, never read whole into memory."""
    with store.open(object_key) as stream:
        while chunk := stream.read(1024 * 1024):
            yield chunk
