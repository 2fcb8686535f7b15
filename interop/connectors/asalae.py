"""The As@lae connector: the REST « sedaMessages » interface.

Protocol (as As@lae's clients use it):

- ``POST /sedaMessages``, multipart: ``seda_message`` = the manifest (the ArchiveTransfer), ``attachments`` = the
  archive (the SIP zip);
- the replies, once As@lae has them, at
  ``/sedaMessages/sequence:ArchiveTransfer/message:{Acknowledgement|ArchiveTransferReply}/
  originOrganizationIdentification:{org}/originMessageIdentifier:{id}`` (404 until then).

The Acknowledgement URL also answers « does As@lae already have this transfer? » before a send is made again.
Authentication: HTTP basic (user + password) or a bearer token; optionally a TLS client certificate.

Large archives (above the connector's ``chunk_size``, in bytes) go in pieces, the way Pastell's As@lae REST
connector sends them (the protocol is not otherwise published):

- ``POST /sedaMessages`` with ``seda_message`` and ``send_chunked_attachments=true`` (no attachment): As@lae
  answers ``chunk_session_identifier`` and ``chunk_security_identifier`` (a version without them cannot take
  pieces: refused, said plainly);
- each piece: ``POST /sedaAttachmentsChunkFiles`` with ``chunk_content`` and ``session_identifier``,
  ``security_identifier``, ``number_of_files`` = ``file_index`` = 1, ``file_name``, ``compression_algorithm``,
  ``number_of_chunks``, ``chunk_index`` (from 1).

The protocol has no « which pieces do you have? »: a piece that fails (5xx, timeout, HTML page) is sent again
within the same session (``chunk_retries`` times); the session and the next piece are kept in this process, so
a retried job resumes where the last one stopped. A new process opens a new session and sends every piece again:
As@lae receives the transfer only with its last piece, so the archive is still received once — and before any
new send, the Acknowledgement URL is asked whether As@lae already has it.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO
from urllib.parse import quote

from interop.connectors.sae import (
    FollowResult,
    SaeRefused,
    SaeUnavailable,
    SipInfo,
    excerpt,
    http_client,
    parse_xml,
    read_sip,
    request,
)
from socle.errors import InvalidInput, message
from socle.storage import ObjectStore

SEND = "/sedaMessages"
CHUNK = "/sedaAttachmentsChunkFiles"
# As@lae's name for the archive's format in a chunked send (Pastell sends TARGZ for its tar.gz; ours is a zip).
COMPRESSION = "ZIP"
DEFAULT_CHUNK_RETRIES = 3
REPLY = (
    "/sedaMessages/sequence:ArchiveTransfer/message:{message}/"
    "originOrganizationIdentification:{org}/originMessageIdentifier:{id}"
)
ACKNOWLEDGEMENT, TRANSFER_REPLY = "Acknowledgement", "ArchiveTransferReply"
PROBE_IDENTIFIER = "socle-test-de-connexion"


def reply_path(message: str, organization: str, message_identifier: str) -> str:
    return REPLY.format(message=message, org=quote(organization, safe=""), id=quote(message_identifier, safe=""))


@dataclass
class ChunkUpload:
    """A chunked send under way: As@lae's session and the next piece to send."""

    session: str
    security: str
    total: int
    next_index: int = 1
    resumed_from: int | None = None


class _Uploads:
    """The chunked sends under way in this process, by (platform, organization, transfer, archive)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._uploads: dict[tuple[str, ...], ChunkUpload] = {}

    def get(self, key: tuple[str, ...]) -> ChunkUpload | None:
        with self._lock:
            return self._uploads.get(key)

    def put(self, key: tuple[str, ...], upload: ChunkUpload) -> None:
        with self._lock:
            self._uploads[key] = upload

    def forget(self, key: tuple[str, ...]) -> None:
        with self._lock:
            self._uploads.pop(key, None)


UPLOADS = _Uploads()


class AsalaeConnector:
    """Sends SIPs to As@lae and fetches its Acknowledgement and ArchiveTransferReply."""

    kind = "asalae"

    def __init__(self, name: str, config: dict[str, Any], secrets: dict[str, str]) -> None:
        self.name, self.config, self.secrets = name, config, secrets

    def _client(self) -> Any:
        headers: dict[str, str] = {}
        auth: tuple[str, str] | None = None
        if self.secrets.get("token"):
            headers["Authorization"] = f"Bearer {self.secrets['token']}"
        elif self.config.get("username"):
            auth = (str(self.config["username"]), self.secrets.get("password", ""))
        return http_client(self.config, self.secrets, headers, auth)

    def _organization(self, sip: SipInfo) -> str:
        # The transferring agency's identifier, unless the connector names the one As@lae knows it by.
        organization = self.config.get("organization") or sip.transferring_agency
        if not organization:
            raise SaeRefused(message("As@lae : service versant inconnu (ni dans le connecteur, ni dans le bordereau)"))
        return str(organization)

    def deliver(self, store: ObjectStore, object_key: str, filename: str, size: int) -> dict[str, Any]:
        """Send the manifest and the archive; return the receipt (the transfer's identifiers).

        :raises SaeUnavailable: the platform did not answer as expected (retried).
        :raises SaeRefused: the platform refused the transfer.
        """
        sip = read_sip(store, object_key)
        organization = self._organization(sip)
        chunk_size = self.chunk_size()
        if chunk_size and size > chunk_size:
            return self._deliver_in_chunks(store, sip, organization, object_key, filename, size, chunk_size)
        with self._client() as client, store.open(object_key) as archive:
            response = request(
                client,
                "POST",
                SEND,
                files={
                    "seda_message": ("manifest.xml", sip.manifest, "application/xml"),
                    "attachments": (filename, archive, "application/zip"),
                },
            )
            if response.status_code == 409:  # already received: the Acknowledgement tells which transfer it is
                if not self._has(client, organization, sip.message_identifier):
                    raise SaeRefused(
                        message(
                            "As@lae signale un doublon de %(sip_message_identifier)s sans accusé retrouvé",
                            sip_message_identifier=sip.message_identifier,
                        )
                    )
                return self._receipt(sip, organization, None, object_key, size, recovered=True)
            transfer = _transfer_id(response.content)
            # A 200 that is not As@lae's answer (an HTML page from a proxy) proves nothing: the Acknowledgement does.
            if response.status_code not in (200, 201, 202) or (
                transfer is None and not self._has(client, organization, sip.message_identifier)
            ):
                raise SaeUnavailable(
                    message(
                        "As@lae : réponse inattendue à l'envoi (HTTP %(response_status_code)s) : %(response_content)s",
                        response_status_code=response.status_code,
                        response_content=excerpt(response.content),
                    )
                )
        return self._receipt(sip, organization, transfer, object_key, size)

    def chunk_size(self) -> int:
        """The size above which an archive goes in pieces, in bytes (0: never).

        :raises InvalidInput: not a whole number of bytes, or negative.
        """
        value = self.config.get("chunk_size") or 0
        try:
            size = int(value)
        except (TypeError, ValueError):
            size = -1
        if size < 0 or (isinstance(value, float) and not value.is_integer()):
            raise InvalidInput(
                message(
                    "As@lae : taille des morceaux invalide (%(chunk_size)s) : un nombre d'octets, 0 pour aucun",
                    chunk_size=repr(value),
                )
            )
        return size

    def _deliver_in_chunks(
        self,
        store: ObjectStore,
        sip: SipInfo,
        organization: str,
        object_key: str,
        filename: str,
        size: int,
        chunk_size: int,
    ) -> dict[str, Any]:
        """Open a session (or resume this process's one) and send the pieces left; As@lae receives the transfer
        with the last one.

        :raises SaeUnavailable: a piece still failing after ``chunk_retries`` tries (the next run resumes there).
        :raises SaeRefused: As@lae refused the session or a piece, or cannot take pieces.
        """
        key = (str(self.config["url"]), organization, sip.message_identifier, object_key)
        total = max(1, math.ceil(size / chunk_size))
        with self._client() as client, store.local_path(object_key) as path, path.open("rb") as archive:
            upload = UPLOADS.get(key)
            if upload is not None and upload.total == total:
                upload.resumed_from = upload.next_index
            else:
                upload = self._open_session(client, sip, total)
                if upload is None:  # 409: As@lae already has this transfer
                    return self._duplicate(client, sip, organization, object_key, size)
                UPLOADS.put(key, upload)
            transfer: str | None = None
            while upload.next_index <= total:
                try:
                    outcome, transfer = self._send_piece(client, upload, archive, filename, chunk_size)
                except SaeRefused:
                    UPLOADS.forget(key)  # refused: this session is of no further use
                    raise
                if outcome == "duplicate":
                    UPLOADS.forget(key)
                    return self._duplicate(client, sip, organization, object_key, size)
                if outcome == "unknown session":  # expired at As@lae: a new session, every piece again
                    if upload.resumed_from is None:
                        UPLOADS.forget(key)
                        raise SaeUnavailable(
                            message("As@lae ne reconnaît pas la session d'envoi par morceaux qu'il a ouverte")
                        )
                    upload = self._open_session(client, sip, total)
                    if upload is None:
                        UPLOADS.forget(key)
                        return self._duplicate(client, sip, organization, object_key, size)
                    UPLOADS.put(key, upload)
                    continue
                upload.next_index += 1
        UPLOADS.forget(key)
        receipt = self._receipt(sip, organization, transfer, object_key, size)
        receipt |= {"chunks": total, "chunk_size": chunk_size}
        if upload.resumed_from is not None:
            receipt["resumed_from_chunk"] = upload.resumed_from
        return receipt

    def _open_session(self, client: Any, sip: SipInfo, total: int) -> ChunkUpload | None:
        """The manifest alone, asking for a chunked send: As@lae's session, or None when it has the transfer."""
        response = request(
            client,
            "POST",
            SEND,
            files={"seda_message": ("manifest.xml", sip.manifest, "application/xml")},
            data={"send_chunked_attachments": "true"},
        )
        if response.status_code == 409:
            return None
        answer = _json(response.content)
        if response.status_code not in (200, 201) or answer is None:
            raise SaeUnavailable(
                message(
                    "As@lae : réponse inattendue à l'ouverture d'un envoi par morceaux (HTTP "
                    "%(response_status_code)s) : %(response_content)s",
                    response_status_code=response.status_code,
                    response_content=excerpt(response.content),
                )
            )
        session, security = answer.get("chunk_session_identifier"), answer.get("chunk_security_identifier")
        if not session or not security:
            raise SaeRefused(
                message(
                    "cette version d'As@lae ne permet pas l'envoi d'archive par morceaux : mettez « "
                    "chunk_size » à 0 dans le connecteur (%(response_content)s)",
                    response_content=excerpt(response.content),
                )
            )
        return ChunkUpload(str(session), str(security), total)

    def _send_piece(
        self, client: Any, upload: ChunkUpload, archive: BinaryIO, filename: str, chunk_size: int
    ) -> tuple[str, str | None]:
        """Send piece ``upload.next_index``, again within the session while it fails; return what As@lae said
        (« ok », « duplicate », « unknown session ») and the transfer's id when the last piece gives one."""
        archive.seek((upload.next_index - 1) * chunk_size)
        piece = archive.read(chunk_size)
        fields = {
            "session_identifier": upload.session,
            "security_identifier": upload.security,
            "number_of_files": "1",
            "file_index": "1",
            "file_name": filename,
            "compression_algorithm": COMPRESSION,
            "number_of_chunks": str(upload.total),
            "chunk_index": str(upload.next_index),
        }
        tries = max(1, int(self.config.get("chunk_retries") or DEFAULT_CHUNK_RETRIES))
        for attempt in range(1, tries + 1):
            try:
                response = request(
                    client, "POST", CHUNK, data=fields, files={"chunk_content": (filename, piece, "application/zip")}
                )
                if response.status_code == 409:
                    return "duplicate", None
                if response.status_code == 404:
                    return "unknown session", None
                answer = _json(response.content)
                if response.status_code not in (200, 201, 202) or answer is None:
                    raise SaeUnavailable(
                        message(
                            "As@lae : réponse inattendue au morceau %(upload_next_index)s/%(upload_total)s "
                            "(HTTP %(response_status_code)s) : %(response_content)s",
                            upload_next_index=upload.next_index,
                            upload_total=upload.total,
                            response_status_code=response.status_code,
                            response_content=excerpt(response.content),
                        )
                    )
            except SaeUnavailable:
                if attempt == tries:
                    raise
                continue
            return "ok", str(answer["id"]) if answer.get("id") is not None else None
        raise AssertionError("unreachable")  # the loop returns or raises

    def _duplicate(self, client: Any, sip: SipInfo, organization: str, object_key: str, size: int) -> dict[str, Any]:
        """As@lae says it has the transfer: its Acknowledgement must say so too."""
        if not self._has(client, organization, sip.message_identifier):
            raise SaeRefused(
                message(
                    "As@lae signale un doublon de %(sip_message_identifier)s sans accusé retrouvé",
                    sip_message_identifier=sip.message_identifier,
                )
            )
        return self._receipt(sip, organization, None, object_key, size, recovered=True)

    def find_sent(self, store: ObjectStore, object_key: str, size: int) -> dict[str, Any] | None:
        """After an interrupted send: the receipt if As@lae already acknowledged this transfer, else None."""
        sip = read_sip(store, object_key)
        organization = self._organization(sip)
        with self._client() as client:
            if not self._has(client, organization, sip.message_identifier):
                return None
        return self._receipt(sip, organization, None, object_key, size, recovered=True)

    def _has(self, client: Any, organization: str, message_identifier: str) -> bool:
        response = request(client, "GET", reply_path(ACKNOWLEDGEMENT, organization, message_identifier))
        if response.status_code == 404:
            return False
        parse_xml(response.content, "Acknowledgement d'As@lae")
        return True

    def _receipt(
        self,
        sip: SipInfo,
        organization: str,
        transfer: str | None,
        object_key: str,
        size: int,
        *,
        recovered: bool = False,
    ) -> dict[str, Any]:
        receipt: dict[str, Any] = {
            "sae": "asalae",
            "connector": self.name,
            # As@lae files replies by the sender's MessageIdentifier: it is the operation's identifier here.
            "operation_id": transfer or sip.message_identifier,
            "message_identifier": sip.message_identifier,
            "organization": organization,
            "sha256": object_key,
            "size": size,
            "sent_at": datetime.now(UTC).isoformat(),
        }
        if recovered:
            receipt["recovered"] = True
        return receipt

    def follow(self, receipt: dict[str, Any]) -> FollowResult:
        """Fetch the Acknowledgement and the ArchiveTransferReply, whichever As@lae has already.

        :raises SaeUnavailable: no answer, or an answer that is not XML (retried by the policy).
        """
        organization, identifier = str(receipt["organization"]), str(receipt["message_identifier"])
        found: dict[str, bytes] = {}
        with self._client() as client:
            for message in (ACKNOWLEDGEMENT, TRANSFER_REPLY):
                response = request(client, "GET", reply_path(message, organization, identifier))
                if response.status_code == 200:
                    parse_xml(response.content, f"{message} d'As@lae")
                    found[message] = response.content
        reply = found.get(TRANSFER_REPLY)
        state = "réponse reçue" if reply else "accusé reçu" if ACKNOWLEDGEMENT in found else "en attente"
        acknowledgement = found.get(ACKNOWLEDGEMENT)
        return FollowResult(finished=reply is not None, state=state, acknowledgement=acknowledgement, reply=reply)

    def test(self) -> str:
        """Reach the platform and check the credentials: an unknown transfer's reply URL must answer 404."""
        with self._client() as client:
            response = request(client, "GET", reply_path(ACKNOWLEDGEMENT, "socle", PROBE_IDENTIFIER))
        if response.status_code not in (200, 404):
            raise SaeUnavailable(
                message(
                    "As@lae : réponse inattendue (HTTP %(response_status_code)s)",
                    response_status_code=response.status_code,
                )
            )
        return "As@lae joignable, identifiants acceptés"


def _json(content: bytes) -> dict[str, Any] | None:
    """An answer's JSON object, or None when it is not one (an HTML page from a proxy, nothing)."""
    try:
        value = json.loads(content or b"null")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _transfer_id(content: bytes) -> str | None:
    """As@lae's own id of the transfer, when its answer gives one (JSON ``id``); the receipt works without it."""
    value = _json(content)
    return str(value["id"]) if value is not None and value.get("id") is not None else None
