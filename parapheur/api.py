"""Parapheur HTTP API."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, FastAPI, File, Form, Query, Response, UploadFile
from pydantic import TypeAdapter, ValidationError

from parapheur import service
from parapheur.schemas import ActionIn, FolderIn, FolderOut, RejectIn, StepIn, ValidationOut
from socle.errors import InvalidInput, NotFound
from socle.files import display_name
from socle.web import PrincipalDep, SessionDep, create_service_app, object_response

router = APIRouter(prefix="/folders", tags=["dossiers"])
validations = APIRouter(prefix="/validations", tags=["validation"])
_CIRCUIT = TypeAdapter(list[StepIn])


# 202: the GED sends the document through the queue; the folder then goes in_progress, or error with the reason.
@router.post("", status_code=202, response_model=FolderOut, summary="Créer un dossier sur un document de la GED")
def create_folder(principal: PrincipalDep, session: SessionDep, body: FolderIn) -> FolderOut:
    return FolderOut.of(service.create_from_ged(session, principal, body.title, body.ged_document_id, body.circuit))


@router.post("/upload", status_code=201, response_model=FolderOut, summary="Créer un dossier en déposant un PDF")
def create_folder_from_upload(
    principal: PrincipalDep,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="Le PDF à faire viser et signer")],
    title: Annotated[str, Form(min_length=1, max_length=500)],
    circuit: Annotated[str, Form(description='Étapes en JSON : [{"kind": "visa", "actor": "…"}, …]')],
) -> FolderOut:
    try:
        steps = _CIRCUIT.validate_python(json.loads(circuit))
    except ValidationError as exc:
        problems = "; ".join(
            f"étape {'.'.join(map(str, e['loc']))} : {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise InvalidInput(f"circuit invalide : {problems}") from None
    except ValueError:
        raise InvalidInput("circuit invalide : ce n'est pas du JSON") from None
    if not steps:
        raise InvalidInput("le circuit doit compter au moins une étape")
    service.check_actors(session, principal.tenant_id, steps)  # before storing: a refusal leaves nothing
    session.rollback()  # no transaction (on SQLite, a lock) held while the upload is spooled and checked
    stored = service.store_pdf_upload(file.file)
    filename = display_name(file.filename or "", "document.pdf")
    folder = service.create_from_upload(session, principal, title, stored, filename, steps)
    return FolderOut.of(folder)


@router.get("", response_model=list[FolderOut], summary="Lister les dossiers")
def list_folders(
    principal: PrincipalDep,
    session: SessionDep,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> list[FolderOut]:
    return [
        FolderOut.of(folder) for folder in service.list_folders(session, principal.tenant_id, status, limit, offset)
    ]


@router.get("/{folder_id}", response_model=FolderOut, summary="Consulter un dossier")
def get_folder(principal: PrincipalDep, session: SessionDep, folder_id: str) -> FolderOut:
    return FolderOut.of(service.get_folder(session, principal.tenant_id, folder_id))


@router.get("/{folder_id}/document", summary="Télécharger le PDF dans son état actuel")
def download(principal: PrincipalDep, session: SessionDep, folder_id: str) -> Response:
    folder = service.get_folder(session, principal.tenant_id, folder_id)
    key = folder.signed_key or folder.document_key
    if key is None:
        raise NotFound("ce dossier n'a pas encore de document")
    return object_response(key, folder.document_filename or "document.pdf", "application/pdf")


@router.post("/{folder_id}/visa", response_model=FolderOut, summary="Viser")
def visa(principal: PrincipalDep, session: SessionDep, folder_id: str, body: ActionIn | None = None) -> FolderOut:
    return FolderOut.of(service.visa(session, principal, folder_id, body.comment if body else None))


@router.post("/{folder_id}/sign", response_model=FolderOut, summary="Signer")
def sign(principal: PrincipalDep, session: SessionDep, folder_id: str, body: ActionIn | None = None) -> FolderOut:
    return FolderOut.of(service.sign(session, principal, folder_id, body.comment if body else None))


@router.post("/{folder_id}/reject", response_model=FolderOut, summary="Rejeter (motif obligatoire)")
def reject(principal: PrincipalDep, session: SessionDep, folder_id: str, body: RejectIn) -> FolderOut:
    return FolderOut.of(service.reject(session, principal, folder_id, body.reason))


@validations.post("", response_model=ValidationOut, summary="Vérifier les signatures d'un PDF")
def validate(
    principal: PrincipalDep,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="Le PDF signé à vérifier")],
) -> ValidationOut:
    # A sync route on purpose: pyHanko runs its own event loop (asyncio.run), which needs a worker thread.
    reports = service.validate_upload(session, principal.tenant_id, file.file)
    return ValidationOut.of(file.filename, reports)


def create_app() -> FastAPI:
    return create_service_app(
        "parapheur",
        "socle — parapheur",
        "Circuits de visa et de signature électronique (PAdES).",
        [router, validations],
    )
