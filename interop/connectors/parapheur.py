"""The external parapheur connector: sends a document to another socle instance's parapheur, then follows it.

The send is ``POST {url}/parapheur/folders/upload`` (multipart: the document as ``files``, the configured
``subtype_id``, a title from the ``title`` template, ``send``), authenticated by an API token of that
instance (``Authorization: Bearer``). Following is ``GET {url}/parapheur/folders/{id}``.

Never twice: the folder's metadata carries ``socle_envoi``, an id derived from the connector and the
document; before uploading, the folders of that sous-type with that title are listed and one carrying the id
(with the same document SHA-256) *is* the earlier send — e.g. when the answer was lost after the upload.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from string import Template
from typing import Any

import httpx

from interop.connectors.layout import safe_filename
from interop.connectors.mail import template_values
from interop.connectors.sae import FollowResult, excerpt
from interop.connectors.transport import BoundedTransport, download_extensions
from interop.connectors.webdav import http_failure
from socle.errors import Conflict, DigestMismatch, ServiceUnavailable, message
from socle.settings import get_settings
from socle.storage import ObjectStore

MARKER = "socle_envoi"
PAGE = 200
MAX_PAGES = 5
FINISHED = {"completed", "rejected", "withdrawn", "error"}
STATES = {
    "draft": "brouillon (pas encore envoyé dans le circuit)",
    "awaiting_document": "en attente de son document",
    "in_progress": "en cours de circuit",
    "completed": "circuit terminé (signé)",
    "rejected": "rejeté",
    "withdrawn": "retiré par son créateur",
    "error": "en erreur",
}


def send_id(connector: str, object_key: str) -> str:
    """The id written in the folder's metadata: the same for every retry of the same send."""
    return hashlib.sha256(f"{connector}\n{object_key}".encode()).hexdigest()[:32]


class ParapheurConnector:
    """Sends to a remote parapheur; ``config`` as :class:`interop.schemas.ParapheurConfig`, ``token`` decrypted."""

    kind = "parapheur"

    def __init__(self, name: str, config: dict[str, Any], secrets: dict[str, str]) -> None:
        self.name, self.config, self.secrets = name, config, secrets
        self.base = str(config["url"]).rstrip("/")

    def deliver(self, store: ObjectStore, object_key: str, filename: str, size: int) -> dict[str, Any]:
        """Create the folder on the other instance (once), sent on its circuit when ``send`` is set.

        :raises Conflict: refused by the other instance (unknown sous-type, bad token, document refused…).
        :raises ServiceUnavailable: unreachable, timeout, 5xx (the job is retried).
        """
        name = safe_filename(filename)
        values = template_values(self.name, name, size, object_key, None)
        title = Template(str(self.config.get("title") or "$filename")).safe_substitute(values)[:500]
        folder = self.create_folder(store, [(object_key, name)], [], title, send_id(self.name, object_key))
        return {
            "connector": self.name,
            "follow": "parapheur",  # the interop service follows the folder until its circuit ends
            "folder_id": folder["id"],
            "status": folder.get("status"),
            "title": folder.get("title", title),
            "url": f"{self.base}/parapheur/folders/{folder['id']}",
            "sha256": object_key,
            "sent_at": datetime.now(UTC).isoformat(),
        }

    def create_folder(
        self,
        store: ObjectStore,
        mains: list[tuple[str, str]],
        annexes: list[tuple[str, str]],
        title: str,
        marker: str,
    ) -> dict[str, Any]:
        """Create one folder (once) with ``mains`` to sign and ``annexes`` joined, each (object key, file name).

        The folder carries ``marker`` in its metadata: a folder of the sous-type with this title, this marker and
        the first main document *is* an earlier creation (an answer lost, a worker killed), and is returned.

        :raises DigestMismatch: a stored object does not match its key.
        :raises Conflict: refused by the other instance. :raises ServiceUnavailable: unreachable, 5xx.
        """
        with self.session() as client:
            folder = self._earlier(client, title, marker, mains[0][0])
            if folder is not None:
                return folder
            form = {
                "subtype_id": str(self.config["subtype_id"]),
                "title": title,
                "metadata": json.dumps({MARKER: marker}),
                "send": "true" if self.config.get("send", True) else "false",
            }
            parts = [("files", _part(store, key, name)) for key, name in mains]
            parts += [("annexes", _part(store, key, name)) for key, name in annexes]
            created: dict[str, Any] = self._call(
                client, "POST", "/parapheur/folders/upload", "création du dossier", data=form, files=parts
            )
            return created

    def fetch_signed(self, folder_id: str) -> list[tuple[dict[str, Any], bytes]]:
        """The main documents of a finished folder in their current (signed) state, in order, each checked
        against the SHA-256 the other instance announces: [(document as listed, content)].

        :raises DigestMismatch: a document received differs from its announced digest.
        :raises Conflict: refused (folder unknown, not readable). :raises ServiceUnavailable: unreachable, 5xx.
        """
        out: list[tuple[dict[str, Any], bytes]] = []
        with self.session() as client:
            folder = self._call(client, "GET", f"/parapheur/folders/{folder_id}", "lecture du dossier signé")
            mains = [doc for doc in folder.get("documents") or [] if doc.get("role", "main") == "main"]
            for doc in sorted(mains, key=lambda item: int(item.get("position") or 0)):
                path = f"/parapheur/folders/{folder_id}/documents/{doc['id']}"
                content = self._download(client, path, f"téléchargement de {doc.get('filename')}")
                if hashlib.sha256(content).hexdigest() != doc.get("current_sha256"):
                    raise DigestMismatch(
                        message(
                            "document %(doc)s reçu du parapheur : empreinte différente de celle annoncée",
                            doc=doc.get("filename"),
                        )
                    )
                out.append((dict(doc), content))
        return out

    def follow(self, receipt: dict[str, Any]) -> FollowResult:
        """Where the folder of ``receipt`` stands on the other instance (finished: signed, rejected…)."""
        with self.session() as client:
            folder = self._call(client, "GET", f"/parapheur/folders/{receipt['folder_id']}", "suivi du dossier")
        status = str(folder.get("status"))
        state = STATES.get(status, status)
        if status == "in_progress" and folder.get("current_step") is not None:
            state = f"{state} (étape {int(folder['current_step']) + 1} sur {len(folder.get('steps') or [])})"
        if status == "rejected" and folder.get("rejection_reason"):
            state = f"{state} : {folder['rejection_reason']}"
        if status == "error" and folder.get("error"):
            state = f"{state} : {folder['error']}"
        documents = [
            {"filename": doc.get("filename"), "sha256": doc.get("sha256"), "current_sha256": doc.get("current_sha256")}
            for doc in folder.get("documents") or []
        ]
        details = {"status": status, "folder_id": folder.get("id"), "documents": documents}
        if status == "in_progress" and folder.get("current_step") is not None:
            details |= {"step": int(folder["current_step"]) + 1, "steps": len(folder.get("steps") or [])}
        if status == "rejected":
            details["reason"] = folder.get("rejection_reason")
        return FollowResult(finished=status in FINISHED, state=state, details=details)

    def test(self) -> str:
        """Check the token and the sous-type: list this sous-type's folders (one) on the other instance."""
        with self.session() as client:
            params = {"subtype_id": str(self.config["subtype_id"]), "limit": "1"}
            self._call(client, "GET", "/parapheur/folders", "lecture des dossiers", params=params)
        return f"parapheur de {self.base} joignable, jeton accepté"

    @contextmanager
    def session(self) -> Iterator[httpx.Client]:
        """An HTTP client for the other instance (token, TLS checked, timeout)."""
        context = ssl.create_default_context(cafile=self.config.get("ca_file") or None)
        headers = {"Authorization": f"Bearer {self.secrets.get('token', '')}", "Accept": "application/json"}
        timeout = httpx.Timeout(float(self.config.get("timeout") or 60))
        with httpx.Client(
            base_url=self.base,
            transport=BoundedTransport(verify=context),  # bounded answers, no link-local address
            timeout=timeout,
            headers=headers,
            follow_redirects=False,
        ) as client:
            yield client

    def _earlier(self, client: httpx.Client, title: str, marker: str, key: str) -> dict[str, Any] | None:
        for page in range(MAX_PAGES):
            params = {"subtype_id": str(self.config["subtype_id"]), "q": title, "limit": str(PAGE)}
            params["offset"] = str(page * PAGE)
            folders = self._call(client, "GET", "/parapheur/folders", "recherche d'un envoi précédent", params=params)
            for folder in folders:
                sent = [doc.get("sha256") for doc in folder.get("documents") or []]
                if (folder.get("metadata") or {}).get(MARKER) == marker and key in sent:
                    return dict(folder)
            if len(folders) < PAGE:
                return None
        return None

    def _download(self, client: httpx.Client, path: str, what: str) -> bytes:
        try:
            # A signed document may be as large as the other instance accepts: more room than an API answer.
            limit = get_settings().max_upload_bytes + 16 * 1024 * 1024
            bounds = download_extensions(limit, client.timeout.read or 60)
            response = client.get(path, headers={"Accept": "*/*"}, extensions=bounds)
        except httpx.TransportError as exc:
            raise http_failure(exc, f"{what}, parapheur {self.base}") from None
        _refuse_failed(response, what)
        return response.content

    def _call(self, client: httpx.Client, method: str, path: str, what: str, **kwargs: Any) -> Any:
        try:
            response = client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise http_failure(exc, f"{what}, parapheur {self.base}") from None
        _refuse_failed(response, what)
        try:
            return response.json()
        except ValueError:
            raise ServiceUnavailable(
                message(
                    "%(what)s : le parapheur n'a pas répondu en JSON (%(response_content)s)",
                    what=what,
                    response_content=excerpt(response.content),
                )
            ) from None


def _part(store: ObjectStore, key: str, filename: str) -> tuple[str, bytes, str]:
    """One file of the upload, read from the store and checked against its key."""
    with store.open(key) as stream:
        data = stream.read()
    if hashlib.sha256(data).hexdigest() != key:
        raise DigestMismatch(message("l'objet %(key)s lu dans le stockage ne correspond pas à son empreinte", key=key))
    name = safe_filename(filename)
    return name, data, mimetypes.guess_type(name)[0] or "application/octet-stream"


def _refuse_failed(response: httpx.Response, what: str) -> None:
    """The parapheur's error (5xx: retried later) or refusal (4xx: reported), with what it said."""
    if response.status_code < 400:
        return
    values = {"what": what, "status": response.status_code, "response": _said(response)}
    if response.status_code >= 500:
        raise ServiceUnavailable(message("%(what)s : erreur %(status)s du parapheur : %(response)s", **values))
    raise Conflict(message("%(what)s : refus %(status)s du parapheur : %(response)s", **values))


def _said(response: httpx.Response) -> str:
    """The other instance's own words: its problem+json ``detail``, or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return excerpt(response.content)
    return str(body.get("detail") or body) if isinstance(body, dict) else excerpt(response.content)
