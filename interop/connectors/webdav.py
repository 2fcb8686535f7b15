"""The WebDAV dépôt connector (httpx): deposits laid out as configured (layout.py) in a remote collection.

PUT to a hidden temporary name, then MOVE to the final one with ``Overwrite: F`` (the server refuses with
412 when the name is taken) or ``Overwrite: T`` for a replacement. Collections are made with MKCOL, tested
with PROPFIND (depth 0). Basic authentication; TLS checked against the system's authorities or a CA file.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from interop.connectors.layout import Layout, Oversized, deposit, probe
from interop.connectors.sae import certificate_refused, excerpt
from interop.connectors.transport import (
    BoundedTransport,
    DestinationRefused,
    ResponseTooLarge,
    download_extensions,
    failure_detail,
)
from socle.errors import Conflict, ServiceUnavailable, SocleError, message
from socle.storage import ObjectStore


class WebdavTarget:
    """A WebDAV collection as a layout :class:`~interop.connectors.layout.Target`."""

    def __init__(self, client: httpx.Client, base: str, timeout: float = 60) -> None:
        self.client, self.timeout = client, timeout
        self.base = base.rstrip("/") + "/"  # the collection's URL, ending with a slash

    def url(self, path: str, *, folder: bool = False) -> str:
        """The absolute URL of ``path`` (each segment percent-encoded)."""
        encoded = "/".join(quote(part, safe="") for part in PurePosixPath(path).parts) if path else ""
        return self.base + encoded + ("/" if folder and encoded else "")

    def _send(self, method: str, url: str, ok: tuple[int, ...], **kwargs: Any) -> httpx.Response:
        try:
            response = self.client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise http_failure(exc, f"serveur WebDAV ({method} {url})") from None
        return _checked(response, method, url, ok)

    def exists(self, path: str) -> bool:
        response = self._send("PROPFIND", self.url(path), (207, 200, 404), headers={"Depth": "0"})
        return response.status_code != 404

    def makedirs(self, path: str) -> None:
        # MKCOL makes one level: each missing ancestor is made in turn (405 means « already there »).
        parts = PurePosixPath(path).parts if path else ()
        if not parts:
            self._mkcol(self.base)
        for depth in range(1, len(parts) + 1):
            self._mkcol(self.url("/".join(parts[:depth]), folder=True))

    def _mkcol(self, url: str) -> None:
        response = self._send("MKCOL", url, (201, 405, 301, 409))
        if response.status_code == 409:  # the parent is missing (the configured collection's own parents)
            parent = url.rstrip("/").rsplit("/", 1)[0] + "/"
            if len(urlsplit(parent).path) <= 1:
                _checked(response, "MKCOL", url, ())
            self._mkcol(parent)
            response = self._send("MKCOL", url, (201, 405, 301))
        if response.status_code == 405 and not self._is_collection(url):
            raise Conflict(message("un fichier occupe déjà l'emplacement du dossier WebDAV %(url)s", url=url))

    def _is_collection(self, url: str) -> bool:
        response = self._send("PROPFIND", url, (207, 404), headers={"Depth": "0"})
        return response.status_code == 207 and b"collection" in response.content

    def upload(self, local: Path, path: str) -> None:
        # Streamed with its length declared: some WebDAV servers refuse chunked uploads.
        headers = {"Content-Length": str(local.stat().st_size)}
        with local.open("rb") as stream:
            self._send("PUT", self.url(path), (200, 201, 204), content=_chunks(stream), headers=headers)

    def rename(self, source: str, target: str, *, replace: bool) -> None:
        folder = self._is_collection(self.url(source, folder=True))
        headers = {"Destination": self.url(target, folder=folder), "Overwrite": "T" if replace else "F"}
        response = self._send("MOVE", self.url(source, folder=folder), (201, 204, 412), headers=headers)
        if response.status_code == 412:
            raise FileExistsError(target)

    def remove(self, path: str) -> None:
        self._send("DELETE", self.url(path), (200, 204, 404))

    def download(self, path: str, local: Path, max_bytes: int) -> None:
        extensions = download_extensions(max_bytes, self.timeout)
        try:
            with self.client.stream("GET", self.url(path), extensions=extensions) as response:
                if response.status_code == 404:
                    raise FileNotFoundError(path)
                if response.status_code != 200:
                    response.read()
                    _checked(response, "GET", self.url(path), (200,))
                with local.open("wb") as out:
                    for chunk in response.iter_bytes(1024 * 1024):
                        out.write(chunk)
        except ResponseTooLarge:
            raise Oversized(max_bytes) from None
        except httpx.TransportError as exc:
            raise http_failure(exc, f"serveur WebDAV (GET {self.url(path)})") from None


def http_failure(exc: httpx.TransportError, what: str) -> SocleError:
    """A French error for an HTTP transport failure (shared by the HTTP connectors).

    A certificate the server presents and we do not trust (unknown authority, another name) is a refusal:
    retrying will not change it. A timeout, a refused or cut connection is transient (the job is retried).
    """
    bound = failure_detail(exc)
    if bound is not None:  # refused before connecting (forbidden address), or an answer past its bounds
        kind = Conflict if isinstance(exc, DestinationRefused) else ServiceUnavailable
        return kind(message("%(what)s : %(bound)s", what=what, bound=bound))
    cause = certificate_refused(exc)
    if cause is not None:
        return Conflict(
            message(
                "%(what)s : certificat du serveur refusé (%(cause_verify_message)s) ; vérifier ca_file ou l'adresse",
                what=what,
                cause_verify_message=cause.verify_message,
            )
        )
    if isinstance(exc, httpx.TimeoutException):
        return ServiceUnavailable(message("%(what)s : délai dépassé", what=what))
    return ServiceUnavailable(message("%(what)s : injoignable (%(exc)s)", what=what, exc=exc))


def _checked(response: httpx.Response, method: str, url: str, ok: tuple[int, ...]) -> httpx.Response:
    """The response when its status is expected; else a French error, transient (5xx) or a refusal."""
    if response.status_code in ok:
        return response
    said = excerpt(response.content)
    if response.status_code >= 500:
        raise ServiceUnavailable(
            message(
                "erreur %(response_status_code)s du serveur WebDAV (%(method)s %(url)s) : %(said)s",
                response_status_code=response.status_code,
                method=method,
                url=url,
                said=said,
            )
        )
    if response.status_code in (401, 403):
        raise Conflict(
            message(
                "le serveur WebDAV refuse l'accès (%(response_status_code)s, %(method)s %(url)s)",
                response_status_code=response.status_code,
                method=method,
                url=url,
            )
        )
    raise Conflict(
        message(
            "refus %(response_status_code)s du serveur WebDAV (%(method)s %(url)s) : %(said)s",
            response_status_code=response.status_code,
            method=method,
            url=url,
            said=said,
        )
    )


def _chunks(stream: Any) -> Iterator[bytes]:
    while chunk := stream.read(1024 * 1024):
        yield chunk


class WebdavConnector:
    """Deposits on a WebDAV server; ``config`` as :class:`interop.schemas.WebdavConfig`, secrets decrypted."""

    def __init__(self, name: str, config: dict[str, Any], secrets: dict[str, str]) -> None:
        self.name, self.config, self.secrets = name, config, secrets
        self.layout = Layout.of(config)

    def deliver(self, store: ObjectStore, object_key: str, filename: str, size: int) -> dict[str, Any]:
        """Deposit the object in the collection (created if needed); see :func:`layout.deposit`."""
        with self.session() as target:
            target.makedirs("")
            shown = urlsplit(target.base).path.rstrip("/")
            return deposit(
                target, self.layout, store, object_key, filename, size, connector=self.name, shown_folder=shown
            )

    def test(self) -> str:
        """Create the collection if needed, write and remove a hidden file."""
        with self.session() as target:
            probe(target)
        return f"serveur WebDAV joignable, collection {urlsplit(target.base).path} accessible en écriture"

    @contextmanager
    def session(self) -> Iterator[WebdavTarget]:
        """An HTTP client for the server (basic authentication, TLS checked, timeout)."""
        context = ssl.create_default_context(cafile=self.config.get("ca_file") or None)
        username, password = self.config.get("username"), self.secrets.get("password")
        auth = httpx.BasicAuth(username, password or "") if username else None
        timeout = httpx.Timeout(float(self.config.get("timeout") or 60))
        transport = BoundedTransport(verify=context)
        with httpx.Client(transport=transport, timeout=timeout, auth=auth, follow_redirects=False) as client:
            yield WebdavTarget(client, str(self.config["url"]), float(self.config.get("timeout") or 60))
