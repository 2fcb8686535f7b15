"""GED HTTP API: translates requests into use cases (ged.service) and results into JSON."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, FastAPI, File, Form, Query, Response, UploadFile
from pydantic import ValidationError

from ged import service
from ged.schemas import (
    DeliveryAccepted,
    DeliveryIn,
    DocumentList,
    DocumentOut,
    Metadata,
    MetadataPatch,
    VersionOut,
)
from socle.errors import InvalidInput
from socle.web import PrincipalDep, SessionDep, create_service_app, object_response

router = APIRouter(prefix="/documents", tags=["documents"])


def _media_type(upload: UploadFile) -> str:
    head = upload.file.read(1024)
    upload.file.seek(0)
    return service.sniff_media_type(head, upload.content_type)


@router.post("", status_code=201, response_model=DocumentOut, summary="Déposer un document")
def upload_document(
    principal: PrincipalDep,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="Le fichier")],
    title: Annotated[str, Form()],
    document_type: Annotated[str, Form()],
    date: Annotated[date | None, Form()] = None,
    tags: Annotated[list[str] | None, Form()] = None,
) -> DocumentOut:
    try:
        metadata = Metadata(title=title, document_type=document_type, date=date, tags=tags or [])
    except ValidationError as exc:
        raise InvalidInput("; ".join(error["msg"] for error in exc.errors())) from None
    media_type = _media_type(file)
    stored = service.store_upload(file.file)
    document = service.create_document(session, principal, stored, file.filename or "document", media_type, metadata)
    return DocumentOut.of(document)


@router.get("", response_model=DocumentList, summary="Lister les documents")
def list_documents(
    principal: PrincipalDep,
    session: SessionDep,
    document_type: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> DocumentList:
    documents, total = service.list_documents(
        session, principal.tenant_id, document_type=document_type, limit=limit, offset=offset
    )
    return DocumentList(items=[DocumentOut.of(document) for document in documents], total=total)


@router.get("/{document_id}", response_model=DocumentOut, summary="Consulter un document")
def get_document(principal: PrincipalDep, session: SessionDep, document_id: str) -> DocumentOut:
    return DocumentOut.of(service.get_document(session, principal.tenant_id, document_id))


@router.patch("/{document_id}", response_model=DocumentOut, summary="Modifier les métadonnées (nouvelle version)")
def update_metadata(
    principal: PrincipalDep, session: SessionDep, document_id: str, patch: MetadataPatch
) -> DocumentOut:
    return DocumentOut.of(service.update_metadata(session, principal, document_id, patch))


@router.post(
    "/{document_id}/versions", status_code=201, response_model=DocumentOut, summary="Déposer une nouvelle version"
)
def upload_version(
    principal: PrincipalDep, session: SessionDep, document_id: str, file: Annotated[UploadFile, File()]
) -> DocumentOut:
    service.get_document(session, principal.tenant_id, document_id)  # 404 before storing anything
    session.rollback()
    media_type = _media_type(file)
    stored = service.store_upload(file.file)
    document = service.add_content_version(
        session, principal, document_id, stored, file.filename or "document", media_type
    )
    return DocumentOut.of(document)


@router.get("/{document_id}/versions", response_model=list[VersionOut], summary="Historique des versions")
def list_versions(principal: PrincipalDep, session: SessionDep, document_id: str) -> list[VersionOut]:
    document = service.get_document(session, principal.tenant_id, document_id)
    return [VersionOut.of(version) for version in document.versions]


@router.get("/{document_id}/versions/{number}", response_model=VersionOut, summary="Une version")
def get_version(principal: PrincipalDep, session: SessionDep, document_id: str, number: int) -> VersionOut:
    document = service.get_document(session, principal.tenant_id, document_id)
    return VersionOut.of(service.get_version(document, number))


@router.get("/{document_id}/content", summary="Télécharger la version courante")
def download(principal: PrincipalDep, session: SessionDep, document_id: str) -> Response:
    version = service.get_document(session, principal.tenant_id, document_id).current
    return object_response(version.object_key, version.filename, version.media_type)


@router.get("/{document_id}/versions/{number}/content", summary="Télécharger une version")
def download_version(principal: PrincipalDep, session: SessionDep, document_id: str, number: int) -> Response:
    version = service.get_version(service.get_document(session, principal.tenant_id, document_id), number)
    return object_response(version.object_key, version.filename, version.media_type)


@router.post(
    "/{document_id}/deliver",
    status_code=202,
    response_model=DeliveryAccepted,
    summary="Déposer la version courante par un connecteur",
)
def deliver(principal: PrincipalDep, session: SessionDep, document_id: str, body: DeliveryIn) -> DeliveryAccepted:
    version = service.request_delivery(session, principal, document_id, body.connector)
    return DeliveryAccepted(document_id=document_id, version=version.number, connector=body.connector)


def create_app() -> FastAPI:
    return create_service_app(
        "ged",
        "socle — GED",
        "Gestion électronique des documents : documents versionnés et leurs métadonnées.",
        [router],
    )
