"""The HTTP transport every HTTP connector uses: a remote side that misbehaves cannot hold a worker or its memory.

httpx's own timeout counts the wait for *each* read: a server that sends one byte every few seconds (« slowloris »)
or an endless body never trips it, and ``response.content`` keeps whatever arrives. :class:`BoundedTransport`
wraps httpx's transport and, for every response:

- refuses a body larger than a limit (20 Mo by default; a request may give another one in its extensions,
  ``max_bytes``, for a document it downloads), as soon as ``Content-Length`` announces it or the bytes pass it;
- refuses a body that takes longer than a deadline (by default the client's read timeout, counted from the
  headers; a download may give its own, ``deadline``);
- asks for uncompressed answers (``Accept-Encoding: identity``) and refuses a compressed one: 20 Mo of gzip
  could hold gigabytes;
- refuses, before connecting, a host whose address is link-local (169.254.0.0/16, fe80::/10: the cloud
  metadata services) or unspecified (0.0.0.0, ::), whatever name leads to it; and connects to an address it
  checked, never to a second resolution's answer (a name that resolves to an allowed address for the check
  and to the metadata service for the connection: « DNS rebinding »); a name that does not resolve is
  « nom introuvable » (retried), never left to the connection's own resolution. The name is looked up in the
  ASCII form the request carries (IDNA 2008). TLS still checks the certificate against the name (SNI and host
  name verification use it, not the address).

Redirects are never followed by the connectors' clients (``follow_redirects=False``); the one page whose protocol
redirects (S²LOW's prefecture documents) follows it itself, to the same scheme, host and port only.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx

from socle.errors import message

MAX_RESPONSE_BYTES = 20 * 1024 * 1024
DEFAULT_DEADLINE = 60.0  # seconds, when the client has no read timeout
MIN_DOWNLOAD_RATE = 64 * 1024  # bytes per second: the slowest a download may be before it is abandoned
LIMIT = "socle.max_bytes"  # request extension: the largest body accepted for this request
DEADLINE = "socle.deadline"  # request extension: seconds allowed for this request's body


class RemoteMisbehaved(httpx.ReadError):
    """The answer broke a bound (too large, too slow, compressed): ``detail`` says which, in French."""

    def __init__(self, detail: str, request: httpx.Request) -> None:
        super().__init__(detail, request=request)
        self.detail = detail


class ResponseTooLarge(RemoteMisbehaved):
    """The body is larger than the request's limit."""


class ResponseTooSlow(httpx.ReadTimeout):
    """The body did not arrive within its deadline (a server trickling bytes)."""

    def __init__(self, detail: str, request: httpx.Request) -> None:
        super().__init__(detail, request=request)
        self.detail = detail


class DestinationRefused(httpx.ConnectError):
    """The host resolves to an address no connector may reach (link-local, unspecified): not retried."""

    def __init__(self, detail: str, request: httpx.Request | None = None) -> None:
        super().__init__(detail, request=request)
        self.detail = detail


def forbidden_address(address: str) -> bool:
    """Whether no connector may connect to ``address`` (an IP): link-local (metadata services) or unspecified."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_link_local or ip.is_unspecified or ip.is_multicast


class NameNotFound(httpx.ConnectError):
    """The host name does not resolve (now): nothing was sent; retried like any unreachable platform."""

    def __init__(self, detail: str, request: httpx.Request | None = None) -> None:
        super().__init__(detail, request=request)
        self.detail = detail


def resolve_destination(host: str, port: int) -> list[str]:
    """The addresses ``host`` may be reached at, in the resolver's order, each checked (never empty).

    :param host: an address, or a name in its ASCII form (IDNA 2008, as httpx's ``raw_host``): the name the
        certificate and the Host header carry, not the one Python's IDNA 2003 codec would make of it.
    :raises DestinationRefused: when one of them is forbidden, with a French message naming the host.
    :raises NameNotFound: the name does not resolve. Connecting by name instead would let the connection's own
        resolution, which nothing checked, choose the address (« DNS rebinding »).
    """
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        addresses = [host]
    except ValueError:
        addresses = _resolve(host, port)
    refused = [address for address in addresses if forbidden_address(address)]
    if refused:
        raise DestinationRefused(
            message(
                "adresse refusée : %(host)s mène à %(address)s (lien local ou non spécifiée, "
                "comme le service de métadonnées d'un hébergeur)",
                host=host,
                address=refused[0],
            )
        )
    return addresses


def _resolve(host: str, port: int) -> list[str]:
    """The name's addresses, in the resolver's order. :raises NameNotFound: none (or a name it cannot take)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        found = []
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    if not addresses:
        raise NameNotFound(message("nom introuvable : %(host)s (résolution DNS sans réponse)", host=host))
    return addresses


class _BoundedStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, request: httpx.Request, limit: int, deadline: float) -> None:
        self._inner, self._request, self._limit, self._deadline = inner, request, limit, deadline

    def __iter__(self) -> Iterator[bytes]:
        received = 0
        started = time.monotonic()
        for chunk in self._inner:
            received += len(chunk)
            if received > self._limit:
                raise ResponseTooLarge(too_large(self._limit), self._request)
            if time.monotonic() - started > self._deadline:
                raise ResponseTooSlow(
                    message(
                        "réponse trop lente : %(received)s octets en %(seconds)s s, abandonnée",
                        received=received,
                        seconds=round(self._deadline),
                    ),
                    self._request,
                )
            yield chunk

    def close(self) -> None:
        self._inner.close()


def too_large(limit: int) -> str:
    return message("réponse trop volumineuse (plus de %(limit)s octets), abandonnée", limit=limit)


class BoundedTransport(httpx.BaseTransport):
    """httpx's transport with the bounds above; ``verify`` and other options are httpx.HTTPTransport's."""

    def __init__(self, *, limit: int = MAX_RESPONSE_BYTES, **options: Any) -> None:
        self._inner = httpx.HTTPTransport(**options)
        self._limit = limit

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme not in ("http", "https"):
            raise DestinationRefused(
                message(
                    "adresse refusée : seuls http:// et https:// sont permis (%(scheme)s)", scheme=request.url.scheme
                ),
                request,
            )
        host = _ascii_host(request)
        try:
            addresses = resolve_destination(host, request.url.port or (443 if request.url.scheme == "https" else 80))
        except DestinationRefused as exc:
            raise DestinationRefused(exc.detail, request) from None
        except NameNotFound as exc:
            raise NameNotFound(exc.detail, request) from None
        request.headers["Accept-Encoding"] = "identity"
        limit = int(request.extensions.get(LIMIT) or self._limit)
        timeout = request.extensions.get("timeout") or {}
        deadline = float(request.extensions.get(DEADLINE) or timeout.get("read") or DEFAULT_DEADLINE)
        response = self._send_to_checked_address(request, addresses)
        try:
            encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise RemoteMisbehaved(
                    message("réponse compressée (%(encoding)s) alors qu'elle ne devait pas l'être", encoding=encoding),
                    request,
                )
            length = response.headers.get("Content-Length", "")
            if length.strip().isdigit() and int(length) > limit:
                raise ResponseTooLarge(too_large(limit), request)
        except BaseException:
            response.close()
            raise
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_BoundedStream(response.stream, request, limit, deadline),
            extensions=response.extensions,
        )

    def _send_to_checked_address(self, request: httpx.Request, addresses: list[str]) -> httpx.Response:
        """Send ``request`` to the first of ``addresses`` that takes the connection (the next one is tried only
        when a connection is refused, unreachable or timed out: nothing was sent). The Host header stays the
        name; the client sets the original request on the response (its URL, for redirects and messages)."""
        host = _ascii_host(request)
        if addresses == [host]:
            return self._inner.handle_request(request)  # an address given as such
        extensions = dict(request.extensions)
        if request.url.scheme == "https":
            extensions["sni_hostname"] = host  # the certificate is checked against the name, in its ASCII form
        for address in addresses[:-1]:
            try:
                return self._inner.handle_request(self._to_address(request, address, extensions))
            except (httpx.ConnectError, httpx.ConnectTimeout):  # a timeout on connect: nothing sent either
                continue
        return self._inner.handle_request(self._to_address(request, addresses[-1], extensions))

    @staticmethod
    def _to_address(request: httpx.Request, address: str, extensions: dict[str, Any]) -> httpx.Request:
        return httpx.Request(
            request.method,
            request.url.copy_with(host=address),
            headers=request.headers,
            stream=request.stream,
            extensions=extensions,
        )

    def close(self) -> None:
        self._inner.close()


def _ascii_host(request: httpx.Request) -> str:
    """The host as sent (Host header): an address without brackets, or a name in its IDNA 2008 ASCII form.
    ``url.host`` gives a name in Unicode, which the resolver would encode otherwise (IDNA 2003: « ß » → « ss »)."""
    return request.url.raw_host.decode("ascii")


def download_extensions(max_bytes: int, timeout: float) -> dict[str, Any]:
    """Extensions for a request that downloads a document of up to ``max_bytes``: its limit and a deadline that
    grows with the size (the client's timeout, plus the time the bytes take at :data:`MIN_DOWNLOAD_RATE`)."""
    return {LIMIT: max_bytes, DEADLINE: timeout + max_bytes / MIN_DOWNLOAD_RATE}


def failure_detail(exc: httpx.TransportError) -> str | None:
    """The French detail of a bound this transport enforced, else None (an ordinary network failure)."""
    if isinstance(exc, RemoteMisbehaved | ResponseTooSlow | DestinationRefused | NameNotFound):
        return exc.detail
    return None
