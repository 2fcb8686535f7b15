"""An As@lae simulator: ``POST /sedaMessages``, chunked uploads, and the reply URLs by originMessageIdentifier.

The Acknowledgement is there as soon as the transfer is received; the ArchiveTransferReply after
``pending_checks`` looks at its URL. Authentication: HTTP basic or bearer token, as configured. Scenario knobs:
:class:`interop.simulators.common.Scenario` (endpoints ``send``, ``chunk``, ``acknowledgement``, ``reply``).

Chunked upload, as Pastell's As@lae REST connector does it: ``POST /sedaMessages`` with the manifest and
``send_chunked_attachments=true`` answers ``chunk_session_identifier`` and ``chunk_security_identifier``; then each
piece goes to ``POST /sedaAttachmentsChunkFiles`` (``chunk_content`` and the session, ``file_name``,
``number_of_chunks``, ``chunk_index`` from 1). What As@lae answers to a piece is not published: this simulator
answers 200 (JSON) to each piece, and 201 with the transfer's ``id`` once the last one completes the archive — only
then is the transfer received (Acknowledgement, duplicate detection). A piece sent again replaces the one it
repeats; a piece for a transfer already received is answered 409; an unknown session 404. Faults for the pieces:
endpoint ``chunk`` (the next piece, whichever) or ``chunk:N`` (piece N only).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from interop.simulators.common import (
    PlatformState,
    Received,
    SipError,
    acknowledgement,
    apply_fault,
    control,
    manifest_of_zip,
    new_operation_id,
    read_manifest,
    read_units,
    transfer_reply,
)

# Codes of the SEDA reply code list as As@lae writes them: 000 accepted; 300 rejected (the simulator's choice
# among the rejection codes).
REPLY_CODES = ("000", "300")


@dataclass(frozen=True)
class Credentials:
    username: str = "socle"
    password: str = "socle"
    token: str | None = None

    def accepts(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and self.token:
            return secrets.compare_digest(value, self.token)
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return secrets.compare_digest(user, self.username) and secrets.compare_digest(password, self.password)
        return False


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"code": status, "message": message}, status_code=status)


@dataclass
class ChunkSession:
    """A chunked upload in progress: the manifest first, then the archive's pieces by index."""

    security: str
    manifest: bytes
    message_identifier: str
    number_of_chunks: int | None = None
    chunks: dict[int, bytes] = field(default_factory=dict)
    posts: list[int] = field(default_factory=list)  # every piece received, repeats included (for tests)
    complete: bool = False


def _form_int(form: FormData, name: str) -> int | None:
    value = form.get(name)
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def create_app(state: PlatformState | None = None, credentials: Credentials | None = None) -> Starlette:
    """The simulator's ASGI application (``app.state.platform`` for a test to look inside)."""
    platform, allowed = state or PlatformState(), credentials or Credentials()
    sessions: dict[str, ChunkSession] = {}

    def register(manifest_bytes: bytes, size: int) -> Received | JSONResponse:
        """Receive a complete transfer once (under the platform's lock): 409 for a MessageIdentifier seen before."""
        fields, units = read_manifest(manifest_bytes), read_units(manifest_bytes)
        identifier = fields["message_identifier"]
        platform.sends[identifier] = platform.sends.get(identifier, 0) + 1
        if identifier in platform.transfers:
            return _error(409, f"transfert déjà reçu : {identifier} (doublon)")
        received = Received(
            operation_id=new_operation_id(),
            received_at=datetime.now(UTC),
            verdict=platform.scenario.verdict,
            size=size,
            message_identifier=identifier,
            version=fields["version"],
            transferring_agency=fields["transferring_agency"],
            archival_agency=fields["archival_agency"],
            units=units,
        )
        platform.transfers[identifier] = received
        return received

    def unauthorised(request: Request) -> Response | None:
        platform.requests.append(f"{request.method} {request.url.path}")
        if not allowed.accepts(request.headers.get("Authorization", "")):
            return Response(b"Authentification requise", status_code=401, headers={"WWW-Authenticate": "Basic"})
        return None

    async def send(request: Request) -> Response:
        if (refusal := unauthorised(request)) is not None:
            return refusal
        form = await request.form(max_part_size=1024 * 1024 * 1024)
        manifest, archive = form.get("seda_message"), form.get("attachments")
        fault = await apply_fault(platform, "send")
        if fault is not None and fault.status_code != 599:
            return fault
        if isinstance(manifest, UploadFile) and form.get("send_chunked_attachments") == "true":
            return await open_session(await manifest.read())
        if not isinstance(manifest, UploadFile) or not isinstance(archive, UploadFile):
            return _error(400, "champs seda_message et attachments requis")
        manifest_bytes, archive_bytes = await manifest.read(), await archive.read()
        try:
            if manifest_of_zip(archive_bytes) != manifest_bytes:
                return _error(400, "le bordereau ne correspond pas à celui de l'archive")
            with platform.lock:
                received = register(manifest_bytes, len(archive_bytes))
        except SipError as exc:
            return _error(400, str(exc))
        if isinstance(received, JSONResponse):
            return received
        if fault is not None:  # accept_then_timeout
            await asyncio.sleep(platform.scenario.hang_seconds)
        return JSONResponse({"id": received.operation_id, "message": "Transfert reçu"}, status_code=201)

    async def open_session(manifest_bytes: bytes) -> Response:
        """The manifest alone opens a chunked upload; the transfer is received with its last piece."""
        try:
            identifier = read_manifest(manifest_bytes)["message_identifier"]
        except SipError as exc:
            return _error(400, str(exc))
        with platform.lock:
            if identifier in platform.transfers:
                platform.sends[identifier] = platform.sends.get(identifier, 0) + 1
                return _error(409, f"transfert déjà reçu : {identifier} (doublon)")
            session_id, security = uuid.uuid4().hex, secrets.token_hex(16)
            sessions[session_id] = ChunkSession(security, manifest_bytes, identifier)
        return JSONResponse({"chunk_session_identifier": session_id, "chunk_security_identifier": security})

    async def chunk(request: Request) -> Response:
        if (refusal := unauthorised(request)) is not None:
            return refusal
        form = await request.form(max_part_size=1024 * 1024 * 1024)
        content = form.get("chunk_content")
        index, total = _form_int(form, "chunk_index"), _form_int(form, "number_of_chunks")
        with platform.lock:  # a fault for this piece (« chunk:3 »), else the next one for any piece
            endpoint = f"chunk:{index}" if platform.scenario.faults.get(f"chunk:{index}") else "chunk"
        fault = await apply_fault(platform, endpoint)
        if fault is not None and fault.status_code != 599:
            return fault
        if not isinstance(content, UploadFile) or index is None or total is None or not 1 <= index <= total:
            return _error(400, "chunk_content, chunk_index (à partir de 1) et number_of_chunks requis")
        if _form_int(form, "number_of_files") not in (None, 1) or _form_int(form, "file_index") not in (None, 1):
            return _error(400, "un seul fichier d'archive par transfert (number_of_files = file_index = 1)")
        data = await content.read()
        with platform.lock:
            upload = sessions.get(str(form.get("session_identifier") or ""))
            if upload is None:
                return _error(404, "session d'envoi par morceaux inconnue")
            if not secrets.compare_digest(str(form.get("security_identifier") or ""), upload.security):
                return _error(403, "identifiant de sécurité de la session invalide")
            upload.posts.append(index)
            if upload.complete:  # a piece repeated after the transfer was received: not a new send
                return _error(409, f"transfert déjà reçu : {upload.message_identifier} (doublon)")
            if upload.number_of_chunks not in (None, total):
                return _error(400, f"number_of_chunks différent de celui annoncé ({upload.number_of_chunks})")
            upload.number_of_chunks, upload.chunks[index] = total, data
            answer = complete(upload) if len(upload.chunks) == total else None
        if fault is not None:  # accept_then_timeout: the piece is kept, the answer never comes
            await asyncio.sleep(platform.scenario.hang_seconds)
        if answer is not None:
            return answer
        return JSONResponse({"chunk_index": index, "received": len(upload.chunks), "number_of_chunks": total})

    def complete(upload: ChunkSession) -> JSONResponse:
        """The last piece: the archive is whole, checked against the manifest, and the transfer received."""
        archive = b"".join(upload.chunks[index] for index in sorted(upload.chunks))
        try:
            if manifest_of_zip(archive) != upload.manifest:
                return _error(400, "le bordereau ne correspond pas à celui de l'archive reconstituée")
            received = register(upload.manifest, len(archive))
        except SipError as exc:
            return _error(400, str(exc))
        upload.complete = True
        if isinstance(received, JSONResponse):
            return received
        return JSONResponse({"id": received.operation_id, "message": "Transfert reçu"}, status_code=201)

    async def reply(request: Request) -> Response:
        if (refusal := unauthorised(request)) is not None:
            return refusal
        message = request.path_params["message"]
        if message not in ("Acknowledgement", "ArchiveTransferReply"):
            return _error(404, f"message inconnu : {message}")
        fault = await apply_fault(platform, "acknowledgement" if message == "Acknowledgement" else "reply")
        if fault is not None:
            return fault
        with platform.lock:
            received = platform.transfers.get(request.path_params["id"])
            if received is None or received.transferring_agency != request.path_params["org"]:
                return _error(404, "aucun transfert pour ce service versant et cet identifiant")
            if message == "Acknowledgement":
                return Response(acknowledgement(received, "As@lae"), media_type="application/xml")
            received.checks += 1
            if received.checks <= platform.scenario.pending_checks:
                return _error(404, "réponse pas encore disponible")
            corrected = platform.scenario.corrected_verdict
        if corrected is not None:  # As@lae replaced its reply: the corrected one is served at the same address
            answer = transfer_reply(replace(received, verdict=corrected), "As@lae", REPLY_CODES, revision=2)
            return Response(answer, media_type="application/xml")
        return Response(transfer_reply(received, "As@lae", REPLY_CODES), media_type="application/xml")

    async def simulator(request: Request) -> Response:
        return await control(request, platform)

    app = Starlette(
        routes=[
            Route("/sedaMessages", send, methods=["POST"]),
            Route("/sedaAttachmentsChunkFiles", chunk, methods=["POST"]),
            Route(
                "/sedaMessages/sequence:ArchiveTransfer/message:{message}/"
                "originOrganizationIdentification:{org}/originMessageIdentifier:{id}",
                reply,
                methods=["GET"],
            ),
            Route("/_simulateur", simulator, methods=["GET"]),
            Route("/_simulateur/scenario", simulator, methods=["PUT"]),
        ]
    )
    app.state.platform = platform
    app.state.chunk_sessions = sessions
    return app
