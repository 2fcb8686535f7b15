"""Parapheur HTTP API: configuration (desks, delegations, typologies), folders and the acts on them."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, FastAPI, File, Form, Query, Response, UploadFile
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from parapheur import api_identities, api_signing, config, filing, service
from parapheur.models import Folder
from parapheur.schemas import (
    ActionIn,
    AnnotationIn,
    AnnotationOut,
    DelegationIn,
    DelegationOut,
    DeskIn,
    DeskOut,
    DeskPatch,
    DeskRef,
    EventOut,
    ExternalSignerIn,
    FolderDetailOut,
    FolderIn,
    FolderOut,
    MemberIn,
    MetadataIn,
    OpinionAnswerIn,
    OpinionIn,
    OpinionOut,
    RejectIn,
    SubtypeIn,
    SubtypeOut,
    SubtypePatch,
    TransferIn,
    TrustAnchorOut,
    TypeIn,
    TypeOut,
    TypePatch,
    ValidationOut,
)
from socle.auth import Principal
from socle.db import utcnow
from socle.errors import InvalidInput
from socle.files import display_name
from socle.web import ANY_FILE, PrincipalDep, SessionDep, create_service_app, file_responses, object_response

router = APIRouter(prefix="/folders", tags=["dossiers"])
desks = APIRouter(prefix="/desks", tags=["bureaux"])
delegations = APIRouter(prefix="/delegations", tags=["délégations"])
typologies = APIRouter(tags=["typologies"])
validations = APIRouter(prefix="/validations", tags=["validation"])
trust = APIRouter(prefix="/trust-anchors", tags=["liste de confiance"])
_CERTIFICATES_MAX = 1024 * 1024
_SIGNERS = TypeAdapter(list[ExternalSignerIn])
_Out = TypeVar("_Out", bound=FolderOut)


def folder_out(session: Session, folder: Folder) -> FolderOut:
    """A folder with its steps' desk names."""
    return _with_desks(session, folder.tenant_id, FolderOut.of(folder))


def _with_desks(session: Session, tenant_id: str, out: _Out) -> _Out:
    names = config.desk_names(session, tenant_id)
    for step in out.steps:
        step.desks = [DeskRef(id=desk_id, name=names.get(desk_id, "?")) for desk_id in step.desk_ids]
    return out


# ---------------------------------------------------------------------------------------------------------
# Desks


@desks.post("", status_code=201, response_model=DeskOut, summary="Créer un bureau (administrateur)")
def create_desk(principal: PrincipalDep, session: SessionDep, body: DeskIn) -> DeskOut:
    desk = config.create_desk(session, principal, body.name, body.description, body.stamp_role, body.members)
    return DeskOut.of(desk)


@desks.get("", response_model=list[DeskOut], summary="Lister les bureaux")
def list_desks(principal: PrincipalDep, session: SessionDep) -> list[DeskOut]:
    return [DeskOut.of(desk) for desk in config.list_desks(session, principal.tenant_id)]


@desks.get("/{desk_id}", response_model=DeskOut, summary="Consulter un bureau")
def get_desk(principal: PrincipalDep, session: SessionDep, desk_id: str) -> DeskOut:
    return DeskOut.of(config.get_desk(session, principal.tenant_id, desk_id))


@desks.patch("/{desk_id}", response_model=DeskOut, summary="Modifier un bureau (administrateur)")
def update_desk(principal: PrincipalDep, session: SessionDep, desk_id: str, body: DeskPatch) -> DeskOut:
    changes = body.model_dump(exclude_unset=True)
    return DeskOut.of(config.update_desk(session, principal, desk_id, changes))


@desks.delete("/{desk_id}", status_code=204, summary="Supprimer un bureau inutilisé (administrateur)")
def delete_desk(principal: PrincipalDep, session: SessionDep, desk_id: str) -> Response:
    config.delete_desk(session, principal, desk_id)
    return Response(status_code=204)


@desks.post("/{desk_id}/members", response_model=DeskOut, summary="Ajouter un membre (administrateur)")
def add_member(principal: PrincipalDep, session: SessionDep, desk_id: str, body: MemberIn) -> DeskOut:
    return DeskOut.of(config.add_member(session, principal, desk_id, body.username))


@desks.delete("/{desk_id}/members/{username}", response_model=DeskOut, summary="Retirer un membre (administrateur)")
def remove_member(principal: PrincipalDep, session: SessionDep, desk_id: str, username: str) -> DeskOut:
    return DeskOut.of(config.remove_member(session, principal, desk_id, username))


@desks.get("/{desk_id}/folders", response_model=list[FolderOut], summary="Corbeille d'un bureau")
def desk_folders(
    principal: PrincipalDep,
    session: SessionDep,
    desk_id: str,
    box: Annotated[str, Query(description="to_act, in_progress, late ou delegated")] = "to_act",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> list[FolderOut]:
    folders = service.desk_folders(session, principal, desk_id, box, limit, offset)
    return [folder_out(session, folder) for folder in folders]


# ---------------------------------------------------------------------------------------------------------
# Delegations


def _delegation_out(delegation: Any, others: list[Any]) -> DelegationOut:
    out = DelegationOut.of(delegation)
    out.active = delegation.starts_at <= utcnow() < delegation.ends_at
    out.overlaps = config.overlapping(delegation, others)
    return out


@delegations.post("", status_code=201, response_model=DelegationOut, summary="Déléguer un bureau")
def create_delegation(principal: PrincipalDep, session: SessionDep, body: DelegationIn) -> DelegationOut:
    delegation = config.create_delegation(
        session, principal, body.from_desk_id, body.to_desk_id, body.starts_at, body.ends_at, body.subtype_ids
    )
    return _delegation_out(delegation, config.list_delegations(session, principal.tenant_id))


@delegations.get("", response_model=list[DelegationOut], summary="Lister les délégations (chevauchements signalés)")
def list_delegations(principal: PrincipalDep, session: SessionDep, desk_id: str | None = None) -> list[DelegationOut]:
    everything = config.list_delegations(session, principal.tenant_id)
    shown = config.list_delegations(session, principal.tenant_id, desk_id) if desk_id else everything
    return [_delegation_out(delegation, everything) for delegation in shown]


@delegations.delete("/{delegation_id}", status_code=204, summary="Supprimer une délégation")
def delete_delegation(principal: PrincipalDep, session: SessionDep, delegation_id: str) -> Response:
    config.delete_delegation(session, principal, delegation_id)
    return Response(status_code=204)


# ---------------------------------------------------------------------------------------------------------
# Types and sous-types


@typologies.post("/types", status_code=201, response_model=TypeOut, summary="Créer un type (administrateur)")
def create_type(principal: PrincipalDep, session: SessionDep, body: TypeIn) -> TypeOut:
    return TypeOut.of(config.create_type(session, principal, body.model_dump()))


@typologies.get("/types", response_model=list[TypeOut], summary="Lister les types")
def list_types(principal: PrincipalDep, session: SessionDep) -> list[TypeOut]:
    return [TypeOut.of(row) for row in config.list_types(session, principal.tenant_id)]


@typologies.get("/types/{type_id}", response_model=TypeOut, summary="Consulter un type")
def get_type(principal: PrincipalDep, session: SessionDep, type_id: str) -> TypeOut:
    return TypeOut.of(config.get_type(session, principal.tenant_id, type_id))


@typologies.patch("/types/{type_id}", response_model=TypeOut, summary="Modifier un type (administrateur)")
def update_type(principal: PrincipalDep, session: SessionDep, type_id: str, body: TypePatch) -> TypeOut:
    return TypeOut.of(config.update_type(session, principal, type_id, body.model_dump(exclude_unset=True)))


@typologies.delete("/types/{type_id}", status_code=204, summary="Supprimer un type sans sous-type")
def delete_type(principal: PrincipalDep, session: SessionDep, type_id: str) -> Response:
    config.delete_type(session, principal, type_id)
    return Response(status_code=204)


@typologies.post("/types/{type_id}/subtypes", status_code=201, response_model=SubtypeOut, summary="Créer un sous-type")
def create_subtype(principal: PrincipalDep, session: SessionDep, type_id: str, body: SubtypeIn) -> SubtypeOut:
    return SubtypeOut.of(config.create_subtype(session, principal, type_id, body.model_dump()))


@typologies.get("/subtypes", response_model=list[SubtypeOut], summary="Lister les sous-types")
def list_subtypes(principal: PrincipalDep, session: SessionDep, type_id: str | None = None) -> list[SubtypeOut]:
    return [SubtypeOut.of(row) for row in config.list_subtypes(session, principal.tenant_id, type_id)]


@typologies.get("/subtypes/{subtype_id}", response_model=SubtypeOut, summary="Consulter un sous-type")
def get_subtype(principal: PrincipalDep, session: SessionDep, subtype_id: str) -> SubtypeOut:
    return SubtypeOut.of(config.get_subtype(session, principal.tenant_id, subtype_id))


@typologies.patch("/subtypes/{subtype_id}", response_model=SubtypeOut, summary="Modifier un sous-type")
def update_subtype(principal: PrincipalDep, session: SessionDep, subtype_id: str, body: SubtypePatch) -> SubtypeOut:
    changes = body.model_dump(exclude_unset=True)
    return SubtypeOut.of(config.update_subtype(session, principal, subtype_id, changes))


@typologies.delete("/subtypes/{subtype_id}", status_code=204, summary="Supprimer un sous-type sans dossier")
def delete_subtype(principal: PrincipalDep, session: SessionDep, subtype_id: str) -> Response:
    config.delete_subtype(session, principal, subtype_id)
    return Response(status_code=204)


# ---------------------------------------------------------------------------------------------------------
# Folders


def _spec(body: FolderIn) -> service.FolderSpec:
    return service.FolderSpec(
        subtype_id=body.subtype_id,
        title=body.title,
        metadata=body.metadata,
        due_date=body.due_date,
        external_signers=[signer.model_dump() for signer in body.external_signers],
        send=body.send,
    )


# 202: the GED sends the document through the queue; the folder then becomes a draft (or starts if sent).
@router.post("", status_code=202, response_model=FolderOut, summary="Créer un dossier sur un document de la GED")
def create_folder(principal: PrincipalDep, session: SessionDep, body: FolderIn) -> FolderOut:
    return folder_out(session, service.create_from_ged(session, principal, _spec(body), body.ged_document_id))


def _json_form(value: str, what: str, default: Any) -> Any:
    if not value.strip():
        return default
    try:
        return json.loads(value)
    except ValueError:
        raise InvalidInput(f"{what} : ce n'est pas du JSON") from None


def _upload_spec(
    subtype_id: str, title: str, metadata: str, due_date: str, external_signers: str, send: bool
) -> service.FolderSpec:
    fields = _json_form(metadata, "métadonnées", {})
    if not isinstance(fields, dict):
        raise InvalidInput("métadonnées : un objet JSON est attendu")
    try:
        signers = _SIGNERS.validate_python(_json_form(external_signers, "signataires externes", []))
    except ValidationError:
        raise InvalidInput('signataires externes : une liste de {"name", "email"} est attendue') from None
    try:
        due = date.fromisoformat(due_date) if due_date.strip() else None
    except ValueError:
        raise InvalidInput("date limite invalide : format AAAA-MM-JJ attendu") from None
    return service.FolderSpec(
        subtype_id=subtype_id,
        title=title,
        metadata=fields,
        due_date=due,
        external_signers=[signer.model_dump() for signer in signers],
        send=send,
    )


@router.post("/upload", status_code=201, response_model=FolderOut, summary="Créer un dossier en déposant ses fichiers")
def create_folder_from_upload(
    principal: PrincipalDep,
    session: SessionDep,
    files: Annotated[list[UploadFile], File(description="Document(s) principal(aux), à signer")],
    subtype_id: Annotated[str, Form(max_length=36)],
    title: Annotated[str, Form(min_length=1, max_length=500)],
    annexes: Annotated[list[UploadFile] | None, File(description="Annexes, jointes sans être signées")] = None,
    metadata: Annotated[str, Form(description="Métadonnées en JSON")] = "",
    due_date: Annotated[str, Form(description="Date limite AAAA-MM-JJ")] = "",
    external_signers: Annotated[str, Form(description='Signataires externes : [{"name", "email"}, …]')] = "",
    send: Annotated[bool, Form(description="Envoyer dès la création")] = False,
    ged_filing: Annotated[bool, Form(description="Classer le document signé dans la GED, circuit terminé")] = False,
) -> FolderOut:
    spec = replace(_upload_spec(subtype_id, title, metadata, due_date, external_signers, send), ged_filing=ged_filing)
    subtype = service.check_spec(session, principal, spec)  # before storing: a refusal leaves nothing
    signature_format = subtype.type.signature_format
    session.rollback()  # no transaction (on SQLite, a lock) held while the files are spooled and checked
    uploads = [_upload(file, "main") for file in files] + [_upload(file, "annex") for file in annexes or []]
    spooled = service.spool_uploads(signature_format, uploads[: len(files)], uploads[len(files) :])
    try:
        folder = service.create_from_upload(session, principal, spec, spooled, uploads)
    finally:
        service.discard(spooled)
    return folder_out(session, folder)


def _upload(file: UploadFile, role: str) -> service.Upload:
    fallback = "document.pdf" if role == "main" else "annexe"
    return service.Upload(
        stream=file.file,
        filename=display_name(file.filename or "", fallback),
        media_type=file.content_type or "application/octet-stream",
    )


@router.get("", response_model=list[FolderOut], summary="Lister les dossiers")
def list_folders(
    principal: PrincipalDep,
    session: SessionDep,
    status: str | None = None,
    subtype_id: str | None = None,
    late: bool = False,
    q: Annotated[str | None, Query(max_length=200, description="Mots du titre")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> list[FolderOut]:
    folders = service.list_folders(
        session,
        principal.tenant_id,
        visible_to=principal,
        status=status,
        subtype_id=subtype_id,
        late=late,
        q=q,
        limit=limit,
        offset=offset,
    )
    return [folder_out(session, folder) for folder in folders]


def _detail(session: Session, principal: Principal, folder: Folder) -> FolderDetailOut:
    out: FolderDetailOut = _with_desks(session, folder.tenant_id, FolderDetailOut.of(folder))
    out.annotations = [AnnotationOut.of(note) for note in service.visible_annotations(session, principal, folder)]
    out.opinions = [OpinionOut.of(opinion) for opinion in service.opinions_of(session, folder)]
    return out


@router.get("/{folder_id}", response_model=FolderDetailOut, summary="Consulter un dossier")
def get_folder(principal: PrincipalDep, session: SessionDep, folder_id: str) -> FolderDetailOut:
    return _detail(session, principal, service.folder_for(session, principal, folder_id))


@router.get("/{folder_id}/history", response_model=list[EventOut], summary="Historique du dossier")
def history(principal: PrincipalDep, session: SessionDep, folder_id: str) -> list[EventOut]:
    return [EventOut.of(event) for event in service.history(session, principal, folder_id)]


_DOCUMENT_FILE = file_responses(ANY_FILE, description="Le document dans son état actuel, du type du fichier déposé")


@router.get(
    "/{folder_id}/document",
    summary="Télécharger le premier document principal, état actuel",
    response_class=Response,
    responses=_DOCUMENT_FILE,
)
def download(principal: PrincipalDep, session: SessionDep, folder_id: str) -> Response:
    document = service.open_document(session, principal, folder_id, None)
    return object_response(document.current_key, document.filename, document.media_type)


@router.get(
    "/{folder_id}/documents/{document_id}",
    summary="Télécharger un document, état actuel (lecture notée)",
    response_class=Response,
    responses=_DOCUMENT_FILE,
)
def download_document(principal: PrincipalDep, session: SessionDep, folder_id: str, document_id: str) -> Response:
    document = service.open_document(session, principal, folder_id, document_id)
    return object_response(document.current_key, document.filename, document.media_type)


@router.post("/{folder_id}/send", response_model=FolderOut, summary="Envoyer le brouillon dans son circuit")
def send(principal: PrincipalDep, session: SessionDep, folder_id: str) -> FolderOut:
    return folder_out(session, service.send(session, principal, folder_id))


@router.patch("/{folder_id}/metadata", response_model=FolderOut, summary="Compléter les métadonnées")
def set_metadata(principal: PrincipalDep, session: SessionDep, folder_id: str, body: MetadataIn) -> FolderOut:
    return folder_out(session, service.set_metadata(session, principal, folder_id, body.metadata))


def _action(body: ActionIn | None) -> tuple[str | None, str | None]:
    return (body.comment, body.desk_id) if body else (None, None)


@router.post("/{folder_id}/visa", response_model=FolderOut, summary="Viser")
def visa(principal: PrincipalDep, session: SessionDep, folder_id: str, body: ActionIn | None = None) -> FolderOut:
    comment, desk_id = _action(body)
    return folder_out(session, service.visa(session, principal, folder_id, comment, desk_id))


@router.post("/{folder_id}/sign", response_model=FolderOut, summary="Signer")
def sign(principal: PrincipalDep, session: SessionDep, folder_id: str, body: ActionIn | None = None) -> FolderOut:
    comment, desk_id = _action(body)
    return folder_out(session, service.sign(session, principal, folder_id, comment, desk_id))


@router.post("/{folder_id}/read", response_model=FolderOut, summary="Marquer lu (étape de lecture)")
def read(principal: PrincipalDep, session: SessionDep, folder_id: str, body: ActionIn | None = None) -> FolderOut:
    comment, desk_id = _action(body)
    return folder_out(session, service.read_step(session, principal, folder_id, comment, desk_id))


@router.post("/{folder_id}/reject", response_model=FolderOut, summary="Rejeter (motif obligatoire)")
def reject(principal: PrincipalDep, session: SessionDep, folder_id: str, body: RejectIn) -> FolderOut:
    return folder_out(session, service.reject(session, principal, folder_id, body.reason, body.desk_id))


@router.post("/{folder_id}/undo", response_model=FolderOut, summary="Droit de remords : reprendre sa dernière action")
def undo(principal: PrincipalDep, session: SessionDep, folder_id: str) -> FolderOut:
    return folder_out(session, service.undo(session, principal, folder_id))


@router.post("/{folder_id}/transfer", response_model=FolderOut, summary="Transférer l'étape à un autre bureau")
def transfer(principal: PrincipalDep, session: SessionDep, folder_id: str, body: TransferIn) -> FolderOut:
    folder = service.transfer(session, principal, folder_id, body.desk_id, body.comment, body.from_desk_id)
    return folder_out(session, folder)


@router.post(
    "/{folder_id}/external-link",
    response_model=FolderOut,
    summary="Renvoyer le lien de signature externe (créateur ou administrateur)",
)
def resend_external_link(principal: PrincipalDep, session: SessionDep, folder_id: str) -> FolderOut:
    return folder_out(session, service.resend_external_link(session, principal, folder_id))


# 202: the GED files the document through the queue; ged_filing_error is null meanwhile, ged_document_id set once filed.
@router.post(
    "/{folder_id}/ged-filing/retry",
    status_code=202,
    response_model=FolderOut,
    summary="Relancer le classement du document signé dans la GED (créateur du dossier ou administrateur)",
)
def retry_ged_filing(principal: PrincipalDep, session: SessionDep, folder_id: str) -> FolderOut:
    return folder_out(session, filing.retry(session, principal, folder_id))


@router.post("/{folder_id}/withdraw", response_model=FolderOut, summary="Retirer le dossier (son créateur)")
def withdraw(principal: PrincipalDep, session: SessionDep, folder_id: str, body: ActionIn | None = None) -> FolderOut:
    return folder_out(session, service.withdraw(session, principal, folder_id, body.comment if body else None))


@router.post(
    "/{folder_id}/copy",
    status_code=201,
    response_model=FolderOut,
    summary="Reprendre un dossier rejeté dans un nouveau brouillon (mêmes titre, métadonnées et documents)",
)
def resume_rejected(principal: PrincipalDep, session: SessionDep, folder_id: str) -> FolderOut:
    return folder_out(session, service.resume_rejected(session, principal, folder_id))


@router.post("/{folder_id}/annotations", status_code=201, response_model=AnnotationOut, summary="Annoter")
def annotate(principal: PrincipalDep, session: SessionDep, folder_id: str, body: AnnotationIn) -> AnnotationOut:
    return AnnotationOut.of(service.annotate(session, principal, folder_id, body.text, body.public))


@router.post("/{folder_id}/opinions", status_code=201, response_model=OpinionOut, summary="Demander un avis")
def ask_opinion(principal: PrincipalDep, session: SessionDep, folder_id: str, body: OpinionIn) -> OpinionOut:
    return OpinionOut.of(service.ask_opinion(session, principal, folder_id, body.desk_id, body.question))


@router.post("/{folder_id}/opinions/{opinion_id}/answer", response_model=OpinionOut, summary="Donner son avis")
def answer_opinion(
    principal: PrincipalDep, session: SessionDep, folder_id: str, opinion_id: str, body: OpinionAnswerIn
) -> OpinionOut:
    return OpinionOut.of(service.answer_opinion(session, principal, folder_id, opinion_id, body.answer))


# ---------------------------------------------------------------------------------------------------------
# Validation


@validations.post("", response_model=ValidationOut, summary="Vérifier les signatures d'un fichier signé")
def validate(
    principal: PrincipalDep,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="Le fichier signé : PDF (PAdES), PES (XAdES) ou signature .p7s")],
    data: Annotated[
        UploadFile | None, File(description="Pour une signature CAdES détachée (.p7s) : le fichier qu'elle signe")
    ] = None,
) -> ValidationOut:
    # A sync route on purpose: pyHanko runs its own event loop (asyncio.run), which needs a worker thread.
    reports, notes = service.validate_upload(session, principal.tenant_id, file.file, data.file if data else None)
    return ValidationOut.of(file.filename, reports, notes)


@trust.get("", response_model=list[TrustAnchorOut], summary="Liste de confiance de la collectivité")
def list_trust_anchors(principal: PrincipalDep, session: SessionDep) -> list[TrustAnchorOut]:
    return [TrustAnchorOut.of(anchor) for anchor in config.trust_anchors(session, principal.tenant_id)]


@trust.post(
    "", status_code=201, response_model=list[TrustAnchorOut], summary="Ajouter des certificats d'autorité (PEM ou DER)"
)
def add_trust_anchors(
    principal: PrincipalDep,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="Certificat(s) d'autorité : PEM (un ou plusieurs) ou DER")],
) -> list[TrustAnchorOut]:
    data = file.file.read(_CERTIFICATES_MAX + 1)
    if len(data) > _CERTIFICATES_MAX:
        raise InvalidInput("fichier de certificats trop gros (1 Mo au plus)")
    anchors = config.add_trust_anchors(session, principal, data, display_name(file.filename or "", "certificat"))
    return [TrustAnchorOut.of(anchor) for anchor in anchors]


@trust.delete("/{anchor_id}", status_code=204, summary="Retirer un certificat de la liste de confiance")
def remove_trust_anchor(principal: PrincipalDep, session: SessionDep, anchor_id: str) -> Response:
    config.remove_trust_anchor(session, principal, anchor_id)
    return Response(status_code=204)


def create_app() -> FastAPI:
    return create_service_app(
        "parapheur",
        "socle — parapheur",
        "Circuits de visa et de signature électronique : bureaux, délégations, typologies, dossiers.",
        [router, desks, delegations, typologies, validations, trust, api_identities.router, *api_signing.ROUTERS],
    )
