"""GED HTTP API: translates requests into use cases (ged.service) and results into JSON."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, File, Form, Query, Response, UploadFile
from pydantic import ValidationError

from ged import (
    access,
    api_ingest,
    api_renditions,
    api_search,
    cmis,
    groups,
    holds,
    ingest,
    plan,
    retention,
    service,
    types,
)
from ged.models import Folder, Group, Hold
from ged.schemas import (
    DecisionIn,
    DeliveryAccepted,
    DeliveryIn,
    DocumentList,
    DocumentOut,
    DocumentTypeIn,
    DocumentTypeOut,
    DocumentTypePatch,
    EliminationIn,
    EliminationOut,
    FilingIn,
    FolderContents,
    FolderIn,
    FolderOut,
    FolderPatch,
    GroupIn,
    GroupOut,
    HoldDocumentsIn,
    HoldIn,
    HoldOut,
    HoldReleaseIn,
    MemberIn,
    Metadata,
    MetadataPatch,
    PermissionIn,
    PermissionOut,
    PurgeOut,
    RetentionItem,
    RetentionList,
    VersionOut,
)
from socle.auth import Role
from socle.errors import InvalidInput, message
from socle.validation_messages import french_message
from socle.web import ANY_FILE, PrincipalDep, SessionDep, create_service_app, file_responses, object_response

router = APIRouter(prefix="/documents", tags=["documents"])


def _checked_file(upload: UploadFile) -> tuple[str, str]:
    """The sent file's name and media type, checked as every other way in checks them (CMIS, resumable
    uploads, the web pages): a name that could be a path or has control characters, an empty file, a declared
    type the bytes contradict are refused, never cleaned or relabelled.

    :raises InvalidInput: bad name, empty file; UnsupportedMediaType: the bytes are not of the declared type.
    """
    filename = ingest.check_filename(upload.filename or "document")
    head = upload.file.read(4096)
    upload.file.seek(0)
    if not head:
        raise InvalidInput(message("le fichier est vide"))  # said before a type check that would find nothing
    return filename, ingest.checked_media_type(head, upload.content_type, filename)


def _field_values(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        values = json.loads(raw)
    except ValueError:
        raise InvalidInput('field_values : objet JSON attendu, ex. {"montant": "1200.50"}') from None
    if not isinstance(values, dict):
        raise InvalidInput('field_values : objet JSON attendu, ex. {"montant": "1200.50"}')
    return values


@router.post("", status_code=201, response_model=DocumentOut, summary="Déposer un document")
def upload_document(
    principal: PrincipalDep,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="Le fichier")],
    title: Annotated[str, Form()],
    document_type: Annotated[str | None, Form(description="Libellé du type ; par défaut le code du type")] = None,
    type: Annotated[str | None, Form(description="Code du type de document (champs typés, DUA)")] = None,
    date: Annotated[date | None, Form()] = None,
    tags: Annotated[list[str] | None, Form()] = None,
    folder_id: Annotated[str | None, Form(description="Dossier du plan de classement")] = None,
    field_values: Annotated[str | None, Form(description="Champs typés, objet JSON")] = None,
) -> DocumentOut:
    try:
        metadata = Metadata(
            title=title,
            document_type=document_type or None,
            type=type or None,
            date=date,
            tags=tags or [],
            folder_id=folder_id or None,
            field_values=_field_values(field_values),
        )
    except ValidationError as exc:
        raise InvalidInput("; ".join(french_message(error) for error in exc.errors())) from None
    # Rights, folder and type checked before any byte is stored; the values again in create_document.
    service.check_can_create(session, principal, metadata)
    session.rollback()
    filename, media_type = _checked_file(file)
    stored = service.store_upload(file.file)
    document = service.create_document(session, principal, stored, filename, media_type, metadata)
    return DocumentOut.of(document)


@router.get("", response_model=DocumentList, summary="Lister les documents")
def list_documents(
    principal: PrincipalDep,
    session: SessionDep,
    document_type: Annotated[str | None, Query(max_length=100)] = None,
    type: Annotated[str | None, Query(max_length=100, description="Code du type de document")] = None,
    folder_id: Annotated[str | None, Query(max_length=36)] = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> DocumentList:
    documents, total = service.list_documents(
        session,
        principal,
        document_type=document_type,
        type_code=type,
        folder_id=folder_id,
        tag=tag,
        limit=limit,
        offset=offset,
    )
    return DocumentList(items=[DocumentOut.of(document) for document in documents], total=total)


@router.get("/{document_id}", response_model=DocumentOut, summary="Consulter un document")
def get_document(principal: PrincipalDep, session: SessionDep, document_id: str) -> DocumentOut:
    return DocumentOut.of(service.read_document(session, principal, document_id))


@router.patch("/{document_id}", response_model=DocumentOut, summary="Modifier les métadonnées (nouvelle version)")
def update_metadata(
    principal: PrincipalDep, session: SessionDep, document_id: str, patch: MetadataPatch
) -> DocumentOut:
    return DocumentOut.of(service.update_metadata(session, principal, document_id, patch))


@router.delete("/{document_id}", response_model=DocumentOut, summary="Mettre un document à la corbeille")
def trash_document(principal: PrincipalDep, session: SessionDep, document_id: str) -> DocumentOut:
    return DocumentOut.of(service.trash_document(session, principal, document_id))


@router.post("/{document_id}/restore", response_model=DocumentOut, summary="Restaurer un document de la corbeille")
def restore_document(principal: PrincipalDep, session: SessionDep, document_id: str) -> DocumentOut:
    return DocumentOut.of(service.restore_document(session, principal, document_id))


@router.put("/{document_id}/folder", response_model=DocumentOut, summary="Classer un document dans un dossier")
def file_document(principal: PrincipalDep, session: SessionDep, document_id: str, body: FilingIn) -> DocumentOut:
    return DocumentOut.of(service.file_document(session, principal, document_id, body.folder_id))


@router.post(
    "/{document_id}/versions", status_code=201, response_model=DocumentOut, summary="Déposer une nouvelle version"
)
def upload_version(
    principal: PrincipalDep, session: SessionDep, document_id: str, file: Annotated[UploadFile, File()]
) -> DocumentOut:
    # 404, 403 or 409 before storing anything
    service.check_writable(session, principal, service.read_document(session, principal, document_id))
    session.rollback()
    filename, media_type = _checked_file(file)
    stored = service.store_upload(file.file)
    document = service.add_content_version(session, principal, document_id, stored, filename, media_type)
    return DocumentOut.of(document)


@router.get("/{document_id}/versions", response_model=list[VersionOut], summary="Historique des versions")
def list_versions(principal: PrincipalDep, session: SessionDep, document_id: str) -> list[VersionOut]:
    document = service.read_document(session, principal, document_id)
    return [VersionOut.of(version) for version in document.versions]


@router.get("/{document_id}/versions/{number}", response_model=VersionOut, summary="Une version")
def get_version(principal: PrincipalDep, session: SessionDep, document_id: str, number: int) -> VersionOut:
    document = service.read_document(session, principal, document_id)
    return VersionOut.of(service.get_version(document, number))


@router.get(
    "/{document_id}/content",
    summary="Télécharger la version courante",
    response_class=Response,
    responses=file_responses(ANY_FILE, description="Le contenu de la version courante, du type du fichier déposé"),
)
def download(principal: PrincipalDep, session: SessionDep, document_id: str) -> Response:
    document = service.read_document(session, principal, document_id)
    version = service.readable_content(document, document.current)
    return object_response(version.object_key, version.filename, version.media_type)


@router.get(
    "/{document_id}/versions/{number}/content",
    summary="Télécharger une version",
    response_class=Response,
    responses=file_responses(ANY_FILE, description="Le contenu de cette version, du type du fichier déposé"),
)
def download_version(principal: PrincipalDep, session: SessionDep, document_id: str, number: int) -> Response:
    document = service.read_document(session, principal, document_id)
    version = service.readable_content(document, service.get_version(document, number))
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


# ---------------------------------------------------------------------------------------------------------
# Trash

trash_router = APIRouter(prefix="/trash", tags=["corbeille"])


@trash_router.get("", response_model=DocumentList, summary="Documents à la corbeille")
def list_trash(
    principal: PrincipalDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> DocumentList:
    documents, total = service.list_trash(session, principal, limit=limit, offset=offset)
    return DocumentList(items=[DocumentOut.of(document) for document in documents], total=total)


@trash_router.post("/purge", response_model=PurgeOut, summary="Purger la corbeille (délai passé)")
def purge_trash(principal: PrincipalDep, session: SessionDep) -> PurgeOut:
    principal.require(Role.ADMIN)
    report = retention.purge(session, principal.tenant_id, actor=principal.actor)
    return PurgeOut(purged=report.purged, kept=report.kept)


# ---------------------------------------------------------------------------------------------------------
# Document types

types_router = APIRouter(prefix="/types", tags=["types de documents"])


@types_router.get("", response_model=list[DocumentTypeOut], summary="Types de documents")
def list_types(principal: PrincipalDep, session: SessionDep) -> list[DocumentTypeOut]:
    return [DocumentTypeOut.of(t) for t in types.list_types(session, principal.tenant_id)]


@types_router.post("", status_code=201, response_model=DocumentTypeOut, summary="Créer un type (admin)")
def create_type(principal: PrincipalDep, session: SessionDep, body: DocumentTypeIn) -> DocumentTypeOut:
    return DocumentTypeOut.of(types.create_type(session, principal, body))


@types_router.get("/{type_id}", response_model=DocumentTypeOut, summary="Un type de documents")
def get_type(principal: PrincipalDep, session: SessionDep, type_id: str) -> DocumentTypeOut:
    return DocumentTypeOut.of(types.get_type(session, principal.tenant_id, type_id))


@types_router.patch("/{type_id}", response_model=DocumentTypeOut, summary="Faire évoluer un type (admin, gestion)")
def update_type(principal: PrincipalDep, session: SessionDep, type_id: str, body: DocumentTypePatch) -> DocumentTypeOut:
    return DocumentTypeOut.of(types.update_type(session, principal, type_id, body))


@types_router.delete("/{type_id}", status_code=204, summary="Supprimer un type inutilisé (admin)")
def delete_type(principal: PrincipalDep, session: SessionDep, type_id: str) -> Response:
    types.delete_type(session, principal, type_id)
    return Response(status_code=204)


@types_router.get("/{type_id}/permissions", response_model=list[PermissionOut], summary="Droits sur un type")
def type_permissions(principal: PrincipalDep, session: SessionDep, type_id: str) -> list[PermissionOut]:
    types.get_type(session, principal.tenant_id, type_id)
    return [PermissionOut.of(p) for p in groups.permissions(session, principal.tenant_id, "type", type_id)]


@types_router.put(
    "/{type_id}/permissions", response_model=list[PermissionOut], summary="Fixer les droits (admin, gestion)"
)
def set_type_permissions(
    principal: PrincipalDep, session: SessionDep, type_id: str, body: list[PermissionIn]
) -> list[PermissionOut]:
    return [PermissionOut.of(p) for p in groups.set_permissions(session, principal, "type", type_id, body)]


# ---------------------------------------------------------------------------------------------------------
# Classification plan

folders_router = APIRouter(prefix="/plan", tags=["plan de classement"])


def _folder_out(folder: Folder, hidden: set[str]) -> FolderOut:
    """A folder as its reader may see it: no id of a folder above it that they may not read (``hidden``), in
    ``parent_id`` (null, as at the top of the plan) nor in ``path`` (which then starts below it)."""
    out = FolderOut.of(folder)
    if folder.parent_id is not None and hidden:
        out.parent_id = None if folder.parent_id in hidden else folder.parent_id
        out.path = "/".join(access.visible_path(folder.path, hidden))
    return out


def _contents(
    session: SessionDep, principal: PrincipalDep, folder_id: str | None, limit: int, offset: int
) -> FolderContents:
    folder = None
    # At the top of the plan no folder has a parent to hide: no rights pass for the root listing.
    hidden = access.hidden_folder_ids(session, principal) if folder_id is not None else set()
    if folder_id is not None:
        access.require_folder(session, principal, folder_id, "read")
        folder = _folder_out(plan.get_folder(session, principal.tenant_id, folder_id), hidden)
    children = [_folder_out(f, hidden) for f in plan.children(session, principal, folder_id)]
    if folder_id is None:
        return FolderContents(folder=None, children=children, documents=DocumentList(items=[], total=0))
    documents, total = service.list_documents(session, principal, folder_id=folder_id, limit=limit, offset=offset)
    listed = DocumentList(items=[DocumentOut.of(d) for d in documents], total=total)
    return FolderContents(folder=folder, children=children, documents=listed)


@folders_router.get("", response_model=FolderContents, summary="Racine du plan de classement")
def root_folders(principal: PrincipalDep, session: SessionDep) -> FolderContents:
    return _contents(session, principal, None, 0, 0)


@folders_router.post("", status_code=201, response_model=FolderOut, summary="Créer un dossier")
def create_folder(principal: PrincipalDep, session: SessionDep, body: FolderIn) -> FolderOut:
    folder = plan.create_folder(session, principal, body)
    return _folder_out(folder, access.hidden_folder_ids(session, principal))


@folders_router.get("/{folder_id}", response_model=FolderContents, summary="Un dossier : sous-dossiers et documents")
def get_folder(
    principal: PrincipalDep,
    session: SessionDep,
    folder_id: str,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> FolderContents:
    return _contents(session, principal, folder_id, limit, offset)


@folders_router.patch("/{folder_id}", response_model=FolderOut, summary="Renommer ou déplacer un dossier")
def update_folder(principal: PrincipalDep, session: SessionDep, folder_id: str, body: FolderPatch) -> FolderOut:
    folder = plan.update_folder(session, principal, folder_id, body)
    return _folder_out(folder, access.hidden_folder_ids(session, principal))


@folders_router.delete("/{folder_id}", status_code=204, summary="Supprimer un dossier vide")
def delete_folder(principal: PrincipalDep, session: SessionDep, folder_id: str) -> Response:
    plan.delete_folder(session, principal, folder_id)
    return Response(status_code=204)


@folders_router.get("/{folder_id}/permissions", response_model=list[PermissionOut], summary="Droits sur un dossier")
def folder_permissions(principal: PrincipalDep, session: SessionDep, folder_id: str) -> list[PermissionOut]:
    access.require_folder(session, principal, folder_id, "read")
    return [PermissionOut.of(p) for p in groups.permissions(session, principal.tenant_id, "folder", folder_id)]


@folders_router.put("/{folder_id}/permissions", response_model=list[PermissionOut], summary="Fixer les droits")
def set_folder_permissions(
    principal: PrincipalDep, session: SessionDep, folder_id: str, body: list[PermissionIn]
) -> list[PermissionOut]:
    return [PermissionOut.of(p) for p in groups.set_permissions(session, principal, "folder", folder_id, body)]


# ---------------------------------------------------------------------------------------------------------
# Groups

groups_router = APIRouter(prefix="/groups", tags=["groupes"])


def _group_out(group: Group) -> GroupOut:
    return GroupOut(id=group.id, name=group.name, members=[m.username for m in group.members])


@groups_router.get("", response_model=list[GroupOut], summary="Groupes")
def list_groups(principal: PrincipalDep, session: SessionDep) -> list[GroupOut]:
    return [_group_out(g) for g in groups.list_groups(session, principal.tenant_id)]


@groups_router.post("", status_code=201, response_model=GroupOut, summary="Créer un groupe (admin)")
def create_group(principal: PrincipalDep, session: SessionDep, body: GroupIn) -> GroupOut:
    return _group_out(groups.create_group(session, principal, body.name))


@groups_router.get("/{group_id}", response_model=GroupOut, summary="Un groupe")
def get_group(principal: PrincipalDep, session: SessionDep, group_id: str) -> GroupOut:
    return _group_out(groups.get_group(session, principal.tenant_id, group_id))


@groups_router.delete("/{group_id}", status_code=204, summary="Supprimer un groupe (admin)")
def delete_group(principal: PrincipalDep, session: SessionDep, group_id: str) -> Response:
    groups.delete_group(session, principal, group_id)
    return Response(status_code=204)


@groups_router.post("/{group_id}/members", response_model=GroupOut, summary="Ajouter un membre (admin)")
def add_member(principal: PrincipalDep, session: SessionDep, group_id: str, body: MemberIn) -> GroupOut:
    return _group_out(groups.add_member(session, principal, group_id, body.username))


@groups_router.delete("/{group_id}/members/{username}", response_model=GroupOut, summary="Retirer un membre (admin)")
def remove_member(principal: PrincipalDep, session: SessionDep, group_id: str, username: str) -> GroupOut:
    return _group_out(groups.remove_member(session, principal, group_id, username))


# ---------------------------------------------------------------------------------------------------------
# Holds, retention, eliminations

holds_router = APIRouter(prefix="/holds", tags=["gels"])


def _hold_out(session: SessionDep, hold: Hold) -> HoldOut:
    fields = {name: getattr(hold, name) for name in HoldOut.model_fields if name != "document_ids"}
    return HoldOut(**fields, document_ids=holds.held_document_ids(session, hold.id))


@holds_router.get("", response_model=list[HoldOut], summary="Gels")
def list_holds(principal: PrincipalDep, session: SessionDep, active: bool = False) -> list[HoldOut]:
    principal.require(Role.ARCHIVISTE)
    return [_hold_out(session, h) for h in holds.list_holds(session, principal.tenant_id, active_only=active)]


@holds_router.post("", status_code=201, response_model=HoldOut, summary="Créer un gel (archiviste)")
def create_hold(principal: PrincipalDep, session: SessionDep, body: HoldIn) -> HoldOut:
    return _hold_out(session, holds.create_hold(session, principal, body.name, body.reason))


@holds_router.get("/{hold_id}", response_model=HoldOut, summary="Un gel")
def get_hold(principal: PrincipalDep, session: SessionDep, hold_id: str) -> HoldOut:
    principal.require(Role.ARCHIVISTE)
    return _hold_out(session, holds.get_hold(session, principal.tenant_id, hold_id))


@holds_router.post("/{hold_id}/documents", response_model=HoldOut, summary="Geler des documents")
def hold_documents(principal: PrincipalDep, session: SessionDep, hold_id: str, body: HoldDocumentsIn) -> HoldOut:
    return _hold_out(session, holds.add_documents(session, principal, hold_id, body.document_ids))


@holds_router.delete("/{hold_id}/documents/{document_id}", response_model=HoldOut, summary="Retirer un document")
def unhold_document(principal: PrincipalDep, session: SessionDep, hold_id: str, document_id: str) -> HoldOut:
    return _hold_out(session, holds.remove_document(session, principal, hold_id, document_id))


@holds_router.post("/{hold_id}/release", response_model=HoldOut, summary="Lever un gel, avec sa raison")
def release_hold(principal: PrincipalDep, session: SessionDep, hold_id: str, body: HoldReleaseIn) -> HoldOut:
    return _hold_out(session, holds.release_hold(session, principal, hold_id, body.reason))


retention_router = APIRouter(tags=["conservation"])


@retention_router.get("/retention", response_model=RetentionList, summary="Documents en fin de DUA (archiviste)")
def retention_view(
    principal: PrincipalDep,
    session: SessionDep,
    state: Annotated[str, Query(description="reached, to_transfer ou to_eliminate")] = "reached",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> RetentionList:
    rows, total = retention.retention_list(session, principal, state, limit=limit, offset=offset)
    items = [
        RetentionItem(document=DocumentOut.of(d), type_code=t.code, final_action=t.final_action, held_by=held)
        for d, t, held in rows
    ]
    return RetentionList(state=state, items=items, total=total)


@retention_router.get("/eliminations", response_model=list[EliminationOut], summary="Éliminations")
def list_eliminations(principal: PrincipalDep, session: SessionDep, status: str | None = None) -> list[EliminationOut]:
    return [EliminationOut.of(e) for e in retention.list_eliminations(session, principal, status)]


@retention_router.post("/eliminations", status_code=201, response_model=EliminationOut, summary="Proposer")
def propose_elimination(principal: PrincipalDep, session: SessionDep, body: EliminationIn) -> EliminationOut:
    elimination = retention.propose_elimination(session, principal, body.document_ids, body.comment)
    session.commit()
    return EliminationOut.of(elimination)


@retention_router.get("/eliminations/{elimination_id}", response_model=EliminationOut, summary="Une élimination")
def get_elimination(principal: PrincipalDep, session: SessionDep, elimination_id: str) -> EliminationOut:
    principal.require(Role.ARCHIVISTE)
    return EliminationOut.of(retention.get_elimination(session, principal.tenant_id, elimination_id))


@retention_router.post("/eliminations/{elimination_id}/approve", response_model=EliminationOut, summary="Approuver")
def approve_elimination(
    principal: PrincipalDep, session: SessionDep, elimination_id: str, body: DecisionIn | None = None
) -> EliminationOut:
    comment = body.comment if body else None
    return EliminationOut.of(retention.decide_elimination(session, principal, elimination_id, True, comment))


@retention_router.post("/eliminations/{elimination_id}/refuse", response_model=EliminationOut, summary="Refuser")
def refuse_elimination(
    principal: PrincipalDep, session: SessionDep, elimination_id: str, body: DecisionIn | None = None
) -> EliminationOut:
    comment = body.comment if body else None
    return EliminationOut.of(retention.decide_elimination(session, principal, elimination_id, False, comment))


@retention_router.post("/eliminations/{elimination_id}/execute", response_model=EliminationOut, summary="Exécuter")
def execute_elimination(principal: PrincipalDep, session: SessionDep, elimination_id: str) -> EliminationOut:
    return EliminationOut.of(retention.carry_out_elimination(session, principal, elimination_id))


def create_app() -> FastAPI:
    return create_service_app(
        "ged",
        "socle — GED",
        "Gestion électronique des documents : documents versionnés et leurs métadonnées.",
        [
            router,
            trash_router,
            types_router,
            folders_router,
            groups_router,
            holds_router,
            retention_router,
            api_renditions.router,
            api_ingest.router,
            cmis.router,
            api_search.router,
        ],
    )
