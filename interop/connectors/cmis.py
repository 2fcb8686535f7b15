"""The external GED connector: CMIS 1.1 Browser Binding (JSON over HTTP), one document per delivery.

What it uses of the binding (OASIS CMIS 1.1, part 5): the service document (``GET url``, the repositories and
their ``rootFolderUrl``), objects read by path (``GET rootFolderUrl/a/b?cmisselector=object``), their content
(``cmisselector=content``), ``createFolder`` and ``createDocument`` (multipart ``POST`` with ``cmisaction``,
``propertyId[i]``/``propertyValue[i]`` and the ``content`` part), and ``query`` (CMIS SQL).

Never twice: before creating, the document's name is looked up in the folder; a document found there with
the same bytes (SHA-256 of its content) *is* the earlier delivery. When ``checksum_property`` is configured,
the SHA-256 is also written in that property and searched with a query, so a document renamed in the GED
since is still recognised. The same name with different bytes is a conflict (refused, not overwritten).
"""

from __future__ import annotations

import hashlib
import mimetypes
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from interop.connectors.layout import Oversized, safe_filename
from interop.connectors.sae import excerpt
from interop.connectors.transport import BoundedTransport, ResponseTooLarge, download_extensions
from interop.connectors.webdav import http_failure
from socle.errors import Conflict, DigestMismatch, ServiceUnavailable, message
from socle.storage import ObjectStore

CHECKSUM_PREFIX = "sha256:"


def cmis_error(response: httpx.Response, what: str) -> str:
    """The repository's own words: the binding's ``{"exception", "message"}``, or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return f"{what} : HTTP {response.status_code} {excerpt(response.content)}"
    if isinstance(body, dict) and "exception" in body:
        return f"{what} : {body.get('exception')} — {body.get('message') or ''}".rstrip(" —")
    return f"{what} : HTTP {response.status_code} {excerpt(response.content)}"


def prop(obj: dict[str, Any], name: str) -> Any:
    """A property of a Browser Binding object, succinct (``succinctProperties``) or not (``properties``)."""
    if "succinctProperties" in obj:
        return obj["succinctProperties"].get(name)
    found = (obj.get("properties") or {}).get(name)
    return found.get("value") if isinstance(found, dict) else None


class CmisClient:
    """The few Browser Binding calls the connector needs, with French errors (transient or refusals)."""

    def __init__(self, client: httpx.Client, service_url: str) -> None:
        self.client, self.service_url = client, service_url.rstrip("/")

    def call(self, method: str, url: str, what: str, ok: tuple[int, ...] = (200, 201), **kwargs: Any) -> Any:
        """One request; the parsed JSON (None for a 404 when 404 is in ``ok``, bytes for content).

        :raises ServiceUnavailable: network failure, timeout, 5xx, or an answer that is not JSON.
        :raises Conflict: 4xx (refused by the repository).
        """
        try:
            response = self.client.request(method, url, **kwargs)
        except ResponseTooLarge:
            if kwargs.get("extensions"):  # a document read back to compare: larger than ours, so not ours
                raise Oversized(url) from None
            raise
        except httpx.TransportError as exc:
            raise http_failure(exc, f"{what}, GED {url}") from None
        if response.status_code >= 500:
            raise ServiceUnavailable(cmis_error(response, what))
        if response.status_code == 404 and 404 in ok:
            return None
        if response.status_code not in ok:
            raise Conflict(cmis_error(response, what))
        if kwargs.get("params", {}).get("cmisselector") == "content":
            return response.content
        try:
            return response.json()
        except ValueError:
            raise ServiceUnavailable(
                message(
                    "%(what)s : la GED n'a pas répondu en JSON (%(response_content)s)",
                    what=what,
                    response_content=excerpt(response.content),
                )
            ) from None

    def repository(self, repository_id: str | None) -> dict[str, Any]:
        """The repository's info (``rootFolderUrl``, ``repositoryUrl``…): the configured one, or the first."""
        repositories = self.call("GET", self.service_url, "liste des dépôts CMIS")
        if not isinstance(repositories, dict) or not repositories:
            raise ServiceUnavailable(message("la GED n'annonce aucun dépôt CMIS (réponse du point d'accès inattendue)"))
        if repository_id:
            if repository_id not in repositories:
                known = ", ".join(sorted(repositories))
                raise Conflict(
                    message(
                        "dépôt CMIS « %(repository_id)s » inconnu de la GED (dépôts : %(known)s)",
                        repository_id=repository_id,
                        known=known,
                    )
                )
            return dict(repositories[repository_id])
        return dict(next(iter(repositories.values())))

    def object_by_path(self, root_url: str, path: str) -> dict[str, Any] | None:
        params = {"cmisselector": "object", "succinct": "true"}
        found = self.call("GET", _path_url(root_url, path), f"lecture de {path}", (200, 404), params=params)
        return dict(found) if found is not None else None

    def content(self, root_url: str, path: str, max_bytes: int) -> bytes | None:
        """The document's content; None when it holds more than ``max_bytes`` (never read further)."""
        params = {"cmisselector": "content"}
        bounds = download_extensions(max_bytes, self.client.timeout.read or 60)
        try:
            data = self.call("GET", _path_url(root_url, path), f"contenu de {path}", params=params, extensions=bounds)
        except Oversized:
            return None
        return bytes(data)

    def create(self, root_url: str, parent: str, action: str, properties: dict[str, str], **extra: Any) -> Any:
        form: dict[str, str] = {"cmisaction": action, "succinct": "true"}
        for index, (name, value) in enumerate(properties.items()):
            form[f"propertyId[{index}]"], form[f"propertyValue[{index}]"] = name, value
        what = f"création de « {properties.get('cmis:name')} » dans {parent}"
        return self.call("POST", _path_url(root_url, parent), what, (200, 201, 409), data=form, **extra)

    def query(self, repository_url: str, statement: str) -> list[dict[str, Any]]:
        params = {"cmisselector": "query", "q": statement, "succinct": "true", "maxItems": "10"}
        found = self.call("GET", repository_url, "recherche CMIS", params=params)
        return list(found.get("results") or []) if isinstance(found, dict) else []


def _path_url(root_url: str, path: str) -> str:
    parts = [quote(part, safe="") for part in path.strip("/").split("/") if part]
    return root_url.rstrip("/") + ("/" + "/".join(parts) if parts else "")


class CmisConnector:
    """Creates documents in an external GED; ``config`` as :class:`interop.schemas.CmisConfig`."""

    def __init__(self, name: str, config: dict[str, Any], secrets: dict[str, str]) -> None:
        self.name, self.config, self.secrets = name, config, secrets
        self.folder = "/" + str(config.get("folder") or "/").strip("/")

    def deliver(self, store: ObjectStore, object_key: str, filename: str, size: int) -> dict[str, Any]:
        """Create the document in the configured folder, unless this very document is already there.

        :raises Conflict: another document has this name in the folder, or the repository refused.
        :raises ServiceUnavailable: the GED is unreachable or answered 5xx (the job is retried).
        """
        name = safe_filename(filename)
        with self.session() as cmis:
            info = cmis.repository(self.config.get("repository_id"))
            root_url, repository_url = str(info["rootFolderUrl"]), str(info["repositoryUrl"])
            folder_id = self._ensure_folder(cmis, root_url)
            path = f"{self.folder.rstrip('/')}/{name}"
            found = self._earlier(cmis, root_url, repository_url, path, folder_id, object_key, size)
            if found is None:
                with store.open(object_key) as stream:
                    data = stream.read()
                if hashlib.sha256(data).hexdigest() != object_key:
                    raise DigestMismatch(
                        message(
                            "l'objet %(object_key)s lu dans le stockage ne correspond pas à son empreinte",
                            object_key=object_key,
                        )
                    )
                found = self._create(cmis, root_url, repository_url, path, folder_id, name, data)
        return {
            "connector": self.name,
            "repository": info.get("repositoryId"),
            "object_id": prop(found, "cmis:objectId"),
            "path": path,
            "name": prop(found, "cmis:name") or name,
            "size": size,
            "sha256": object_key,
            "delivered_at": datetime.now(UTC).isoformat(),
        }

    def test(self) -> str:
        """Read the repository's info and the folder (created if missing and allowed)."""
        with self.session() as cmis:
            info = cmis.repository(self.config.get("repository_id"))
            self._ensure_folder(cmis, str(info["rootFolderUrl"]))
        repository = info.get("repositoryName") or info.get("repositoryId")
        return f"GED CMIS joignable : dépôt « {repository} », dossier {self.folder}"

    @contextmanager
    def session(self) -> Iterator[CmisClient]:
        """An HTTP client for the GED (basic authentication, TLS checked, timeout)."""
        context = ssl.create_default_context(cafile=self.config.get("ca_file") or None)
        username = self.config.get("username")
        auth = httpx.BasicAuth(username, self.secrets.get("password") or "") if username else None
        timeout = httpx.Timeout(float(self.config.get("timeout") or 60))
        transport = BoundedTransport(verify=context)  # bounded answers, no link-local address
        with httpx.Client(transport=transport, timeout=timeout, auth=auth, follow_redirects=False) as client:
            yield CmisClient(client, str(self.config["url"]))

    def _ensure_folder(self, cmis: CmisClient, root_url: str) -> str:
        """The destination folder's id, each missing level created when ``create_folders`` allows it."""
        current = "/"
        found = cmis.object_by_path(root_url, "/")
        if found is None:
            raise Conflict(message("la GED ne trouve pas son dossier racine"))
        for part in [part for part in self.folder.split("/") if part]:
            below = f"{current.rstrip('/')}/{part}"
            child = cmis.object_by_path(root_url, below)
            if child is None:
                if not self.config.get("create_folders", True):
                    raise Conflict(
                        message("le dossier %(below)s n'existe pas dans la GED (création désactivée)", below=below)
                    )
                properties = {"cmis:objectTypeId": "cmis:folder", "cmis:name": part}
                cmis.create(root_url, current, "createFolder", properties)
                child = cmis.object_by_path(root_url, below)  # also covers a folder created meanwhile (409)
                if child is None:
                    raise ServiceUnavailable(
                        message("le dossier %(below)s créé reste introuvable dans la GED", below=below)
                    )
            if prop(child, "cmis:baseTypeId") != "cmis:folder":
                raise Conflict(message("%(below)s n'est pas un dossier dans la GED", below=below))
            current, found = below, child
        return str(prop(found, "cmis:objectId"))

    def _earlier(
        self, cmis: CmisClient, root_url: str, repository_url: str, path: str, folder_id: str, key: str, size: int
    ) -> dict[str, Any] | None:
        """The document of an earlier delivery (same bytes), if the GED has it; a different one is a conflict."""
        existing = cmis.object_by_path(root_url, path)
        if existing is not None:
            length = prop(existing, "cmis:contentStreamLength")
            content = cmis.content(root_url, path, size) if length in (None, size) else None
            if content is not None and hashlib.sha256(content).hexdigest() == key:
                return existing
            raise Conflict(message("un autre document porte déjà le nom %(path)s dans la GED", path=path))
        checksum = self.config.get("checksum_property")
        if checksum:
            statement = (
                f"SELECT * FROM cmis:document WHERE {checksum} = '{CHECKSUM_PREFIX}{key}' "
                f"AND IN_FOLDER('{folder_id.replace(chr(39), chr(39) * 2)}')"
            )
            results = cmis.query(repository_url, statement)
            if results:
                return results[0]
        return None

    def _create(
        self, cmis: CmisClient, root_url: str, repository_url: str, path: str, folder_id: str, name: str, data: bytes
    ) -> dict[str, Any]:
        properties = {"cmis:objectTypeId": str(self.config.get("object_type") or "cmis:document"), "cmis:name": name}
        if self.config.get("checksum_property"):
            properties[str(self.config["checksum_property"])] = CHECKSUM_PREFIX + hashlib.sha256(data).hexdigest()
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        created = cmis.create(
            root_url, self.folder, "createDocument", properties, files={"content": (name, data, media_type)}
        )
        if isinstance(created, dict) and "exception" in created:  # 409: the name was taken meanwhile
            key = hashlib.sha256(data).hexdigest()
            found = self._earlier(cmis, root_url, repository_url, path, folder_id, key, len(data))
            if found is None:
                raise Conflict(
                    message(
                        "la GED refuse le document : %(ged_error)s",
                        ged_error=created.get("message") or created["exception"],
                    )
                )
            return found
        if not isinstance(created, dict) or not prop(created, "cmis:objectId"):
            raise ServiceUnavailable(message("la GED n'a pas renvoyé le document créé (cmis:objectId absent)"))
        return created
