"""A Vitam simulator: ingest-external, operation status, ArchiveTransferReply, logbook search.

Answers like Vitam's external API (see ``interop.connectors.vitam`` for the protocol): 202 + X-Request-Id on an
ingest, X-Global-Execution-State/Status on HEAD of an operation, the ArchiveTransferReply once the operation is
completed. Vitam gives no separate Acknowledgement. Scenario knobs: :class:`interop.simulators.common.Scenario`.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from interop.simulators.common import (
    PlatformState,
    Received,
    SipError,
    apply_fault,
    control,
    manifest_of_zip,
    new_operation_id,
    read_manifest,
    read_units,
    transfer_reply,
)

REPLY_CODES = ("OK", "KO")  # Vitam's ReplyCode values (also WARNING and FATAL, not simulated)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"httpCode": status, "code": str(status), "message": message}, status_code=status)


def create_app(state: PlatformState | None = None) -> Starlette:
    """The simulator's ASGI application; ``state`` lets a test look inside (``app.state.platform``)."""
    platform = state or PlatformState()

    def tenant_missing(request: Request) -> Response | None:
        if not request.headers.get("X-Tenant-Id", "").isdigit():
            return _error(412, "en-tête X-Tenant-Id absent ou invalide")
        platform.requests.append(f"{request.method} {request.url.path}")
        return None

    async def ingest(request: Request) -> Response:
        if (refusal := tenant_missing(request)) is not None:
            return refusal
        if not request.headers.get("X-Context-Id") or request.headers.get("X-Action") not in ("RESUME", "NEXT"):
            return _error(412, "en-têtes X-Context-Id et X-Action requis")
        body = await request.body()
        fault = await apply_fault(platform, "send")
        if fault is not None and fault.status_code != 599:
            return fault
        try:
            manifest = manifest_of_zip(body)
            fields, units = read_manifest(manifest), read_units(manifest)
        except SipError as exc:
            return _error(400, str(exc))
        identifier = fields["message_identifier"]
        with platform.lock:
            platform.sends[identifier] = platform.sends.get(identifier, 0) + 1
            if identifier in platform.transfers:
                return _error(409, f"transfert déjà reçu : MessageIdentifier {identifier} (doublon)")
            received = Received(
                operation_id=new_operation_id(),
                received_at=datetime.now(UTC),
                verdict=platform.scenario.verdict,
                size=len(body),
                message_identifier=identifier,
                version=fields["version"],
                transferring_agency=fields["transferring_agency"],
                archival_agency=fields["archival_agency"],
                units=units,
            )
            platform.transfers[identifier] = received
        if fault is not None:  # accept_then_timeout: received, but the client never hears back
            await asyncio.sleep(platform.scenario.hang_seconds)
        return Response(status_code=202, headers={"X-Request-Id": received.operation_id})

    async def operation(request: Request) -> Response:
        if (refusal := tenant_missing(request)) is not None:
            return refusal
        fault = await apply_fault(platform, "status")
        if fault is not None:
            return Response(status_code=fault.status_code)
        with platform.lock:
            received = platform.by_operation(request.path_params["id"])
            if received is None:
                return Response(status_code=404)
            received.checks += 1
            running = received.checks <= platform.scenario.pending_checks
        if running:
            headers = {"X-Global-Execution-State": "RUNNING", "X-Global-Execution-Status": "STARTED"}
            return Response(status_code=202, headers=headers)
        status = "OK" if received.verdict == "OK" else "KO"
        headers = {"X-Global-Execution-State": "COMPLETED", "X-Global-Execution-Status": status}
        return Response(status_code=200, headers=headers)

    async def reply(request: Request) -> Response:
        if (refusal := tenant_missing(request)) is not None:
            return refusal
        fault = await apply_fault(platform, "reply")
        if fault is not None:
            return fault
        with platform.lock:
            received = platform.by_operation(request.path_params["id"])
            if received is None or received.checks <= platform.scenario.pending_checks:
                return _error(404, "réponse non disponible")
        return Response(transfer_reply(received, "Vitam", REPLY_CODES), media_type="application/xml")

    async def logbook(request: Request) -> Response:
        if (refusal := tenant_missing(request)) is not None:
            return refusal
        if request.method == "POST" and request.headers.get("X-Http-Method-Override", "").upper() != "GET":
            return _error(405, "POST sans X-Http-Method-Override: GET")
        fault = await apply_fault(platform, "search")
        if fault is not None:
            return fault
        try:
            wanted = _ob_id_in(json.loads(await request.body() or b"{}"))
        except (ValueError, TypeError):
            return _error(400, "requête DSL illisible")
        with platform.lock:
            found = [t for t in platform.transfers.values() if wanted is None or t.message_identifier == wanted]
        results = [
            {"evId": t.operation_id, "evIdProc": t.operation_id, "evTypeProc": "INGEST", "obIdIn": t.message_identifier}
            for t in found
        ]
        hits = {"total": len(results), "size": len(results)}
        return JSONResponse({"httpCode": 200, "$hits": hits, "$results": results})

    async def status(request: Request) -> Response:
        fault = await apply_fault(platform, "status")
        return fault if fault is not None else Response(status_code=204)

    async def simulator(request: Request) -> Response:
        return await control(request, platform)

    app = Starlette(
        routes=[
            Route("/ingest-external/v1/ingests", ingest, methods=["POST"]),
            Route("/ingest-external/v1/ingests/{id}/archivetransferreply", reply, methods=["GET"]),
            Route("/admin-external/v1/operations/{id}", operation, methods=["HEAD", "GET"]),
            Route("/access-external/v1/logbookoperations", logbook, methods=["GET", "POST"]),
            Route("/ingest-external/v1/status", status, methods=["GET"]),
            Route("/_simulateur", simulator, methods=["GET"]),
            Route("/_simulateur/scenario", simulator, methods=["PUT"]),
        ]
    )
    app.state.platform = platform
    return app


def _ob_id_in(query: Any) -> str | None:
    """The MessageIdentifier looked for in a DSL query ({"$eq": {"obIdIn": …}}, possibly inside $and)."""
    if isinstance(query, dict):
        equal = query.get("$eq")
        if isinstance(equal, dict) and "obIdIn" in equal:
            return str(equal["obIdIn"])
        for value in query.values():
            if (found := _ob_id_in(value)) is not None:
                return found
    if isinstance(query, list):
        for value in query:
            if (found := _ob_id_in(value)) is not None:
                return found
    return None
