"""An As@lae simulator: ``POST /sedaMessages`` and the reply URLs by originMessageIdentifier.

The Acknowledgement is there as soon as the transfer is received; the ArchiveTransferReply after
``pending_checks`` looks at its URL. Authentication: HTTP basic or bearer token, as configured. Scenario knobs:
:class:`interop.simulators.common.Scenario` (endpoints ``send``, ``acknowledgement``, ``reply``).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
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


def create_app(state: PlatformState | None = None, credentials: Credentials | None = None) -> Starlette:
    """The simulator's ASGI application (``app.state.platform`` for a test to look inside)."""
    platform, allowed = state or PlatformState(), credentials or Credentials()

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
        if not isinstance(manifest, UploadFile) or not isinstance(archive, UploadFile):
            return _error(400, "champs seda_message et attachments requis")
        manifest_bytes, archive_bytes = await manifest.read(), await archive.read()
        try:
            fields, units = read_manifest(manifest_bytes), read_units(manifest_bytes)
            if manifest_of_zip(archive_bytes) != manifest_bytes:
                return _error(400, "le bordereau ne correspond pas à celui de l'archive")
        except SipError as exc:
            return _error(400, str(exc))
        identifier = fields["message_identifier"]
        with platform.lock:
            platform.sends[identifier] = platform.sends.get(identifier, 0) + 1
            if identifier in platform.transfers:
                return _error(409, f"transfert déjà reçu : {identifier} (doublon)")
            received = Received(
                operation_id=new_operation_id(),
                received_at=datetime.now(UTC),
                verdict=platform.scenario.verdict,
                size=len(archive_bytes),
                message_identifier=identifier,
                version=fields["version"],
                transferring_agency=fields["transferring_agency"],
                archival_agency=fields["archival_agency"],
                units=units,
            )
            platform.transfers[identifier] = received
        if fault is not None:  # accept_then_timeout
            await asyncio.sleep(platform.scenario.hang_seconds)
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
        return Response(transfer_reply(received, "As@lae", REPLY_CODES), media_type="application/xml")

    async def simulator(request: Request) -> Response:
        return await control(request, platform)

    app = Starlette(
        routes=[
            Route("/sedaMessages", send, methods=["POST"]),
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
    return app
