"""Archive HTTP API: versements, their SEDA packages and their sending."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Response

from archive import service
from archive.schemas import SendIn, TransferIn, TransferOut
from socle.errors import NotFound
from socle.web import PrincipalDep, SessionDep, create_service_app, object_response

router = APIRouter(prefix="/transfers", tags=["versements"])


@router.post("", status_code=202, response_model=TransferOut, summary="Demander un versement de documents de la GED")
def request_transfer(principal: PrincipalDep, session: SessionDep, body: TransferIn) -> TransferOut:
    return TransferOut.of(service.request_transfer(session, principal, body))


@router.get("", response_model=list[TransferOut], summary="Lister les versements")
def list_transfers(
    principal: PrincipalDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[TransferOut]:
    return [TransferOut.of(t) for t in service.list_transfers(session, principal.tenant_id, limit, offset)]


@router.get("/{transfer_id}", response_model=TransferOut, summary="Consulter un versement et son rapport de validation")
def get_transfer(principal: PrincipalDep, session: SessionDep, transfer_id: str) -> TransferOut:
    return TransferOut.of(service.get_transfer(session, principal.tenant_id, transfer_id))


@router.get("/{transfer_id}/sip", summary="Télécharger le paquet SEDA (zip)")
def download_sip(principal: PrincipalDep, session: SessionDep, transfer_id: str) -> Response:
    transfer = service.get_transfer(session, principal.tenant_id, transfer_id)
    if transfer.sip_key is None:
        raise NotFound("le paquet de ce versement n'est pas encore construit")
    return object_response(transfer.sip_key, f"{transfer.message_identifier}.zip", "application/zip")


@router.post("/{transfer_id}/send", status_code=202, response_model=TransferOut, summary="Envoyer par un connecteur")
def send(principal: PrincipalDep, session: SessionDep, transfer_id: str, body: SendIn) -> TransferOut:
    return TransferOut.of(service.send(session, principal, transfer_id, body))


def create_app() -> FastAPI:
    return create_service_app(
        "archive",
        "socle — archives",
        "Versements SEDA : construction, validation et envoi des paquets d'archives.",
        [router],
    )
