"""A folder's page (« dossier »): its document as page images, annexes, metadata, circuit, opinions,
annotations and history, and the acts this user may do now, each a plain POST form (no JavaScript needed).

Which acts are offered is asked of the engine itself (who acts for the current step, whose act the droit de
remords would take back…); the engine checks again when the form is sent, as it does for the API.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from parapheur import circuits, config, filing, identities, pes_summary, report, service, signature_acts, signing
from parapheur.models import Folder, FolderDocument, OpinionRequest, Step
from parapheur.ui_common import files, kept, parapheur_user, text
from parapheur.ui_pages import image_url, page_window
from socle.auth import Principal, Role, get_user_by_id, issue_token
from socle.db import utcnow
from socle.errors import Conflict, Forbidden, InvalidInput, NotFound, SocleError
from socle.files import display_name
from socle.models import User
from socle.ui.sessions import SignedIn
from socle.ui.web import DbDep, FormDep, UserDep, redirect, render, t
from socle.web import content_disposition, object_response

router = APIRouter(include_in_schema=False)

API_PREFIX = "/parapheur"  # where the kit serves the parapheur's API (socle.app)
CARD_TOKEN_LIFETIME = timedelta(minutes=30)  # long enough to find the card and type the PIN, no longer
ACTS = frozenset({"visa", "signature", "reading", "paper_signature"})  # step kinds a person acts on
XML_MEDIA_TYPES = frozenset({"application/xml", "text/xml"})  # a main document that may be a PES Aller


@dataclass
class Possible:
    """What this user may do on the folder now."""

    act: str | None = None  # the current step's act: visa, signature, reading or paper_signature
    acting: bool = False  # acts for a desk of the current step: may also reject, transfer, ask an opinion
    server_key: bool = False  # has a signing identity on the server
    card: bool = False  # the folder can be signed on the agent's machine (PAdES, one main document)
    blocked: str | None = None  # why a desk of theirs cannot act (it already did)
    undo: bool = False
    send: bool = False
    withdraw: bool = False
    resend_link: bool = False  # the current step is an external signature: its link can be sent again
    link_expired: bool = False
    annotate: bool = False
    metadata: bool = False
    retry_filing: bool = False  # the GED could not file the signed document, or was never asked: this user may ask
    paper: bool = False  # the current step may be signed on paper and this user may record it
    paper_self: bool = False  # … for themselves (they act for the step); else only for its signatory
    resume: bool = False  # a rejected folder: a new draft with its documents (service.resume_rejected)
    answers: list[OpinionRequest] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(
            self.acting
            or self.paper
            or self.undo
            or self.send
            or self.withdraw
            or self.resend_link
            or self.answers
            or self.resume
        )


def possible(db: Session, principal: Principal, folder: Folder, opinions: list[OpinionRequest]) -> Possible:
    can = Possible()
    creator = folder.created_by == principal.username
    if folder.status == service.IN_PROGRESS:
        step = folder.steps[folder.current_step]
        try:
            service.acting_actor(db, principal, folder, step)
        except Conflict as exc:
            can.blocked = exc.detail
        except Forbidden:
            pass
        else:
            can.acting = True
            can.act = step.kind if step.kind in ACTS else None
            if step.kind == "signature":
                can.server_key = _has_identity(db, principal)
                can.card = folder.signature_format == signing.PADES and len(folder.main_documents) == 1
        if signature_acts.accepts_paper(folder, step) and not can.blocked:
            can.paper_self = can.acting
            can.paper = can.acting or signature_acts.may_record_for_others(db, principal, folder)
        can.undo = _last_act_is_theirs(principal, folder)
    can.send = creator and folder.status in (service.DRAFT, service.AWAITING) and folder.sent_at is None
    can.withdraw = creator and folder.status not in circuits.ENDED_STATUSES
    current = folder.steps[folder.current_step] if folder.status == service.IN_PROGRESS else None
    if current is not None and current.kind == "external_signature" and current.external_email:
        can.resend_link = creator or Role.ADMIN in principal.roles
        can.link_expired = current.token_expires_at is None or current.token_expires_at <= utcnow()
    can.metadata = (creator and folder.status in (service.DRAFT, service.AWAITING)) or can.acting
    can.annotate = service.may_annotate(db, principal, folder)
    can.retry_filing = filing.may_retry(db, principal, folder)
    can.resume = service.may_resume(db, principal, folder)
    can.answers = [
        opinion
        for opinion in opinions
        if opinion.answered_at is None
        and folder.status == service.IN_PROGRESS  # an ended folder takes no more opinions (service.answer_opinion)
        and principal.username in _members(db, principal, opinion.desk_id)
    ]
    return can


def _has_identity(db: Session, principal: Principal) -> bool:
    try:
        identities.user_identity_row(db, principal.tenant_id, principal.username)
    except Conflict:
        return False
    return True


def _last_act_is_theirs(principal: Principal, folder: Folder) -> bool:
    """The droit de remords' rule (service.undo): their act is the folder's last live one, and undoable."""
    acts = sorted(
        (act for step in folder.steps for act in step.acts if act.undone_at is None), key=lambda act: (act.at, act.id)
    )
    return bool(acts) and acts[-1].username == principal.username and acts[-1].action in service.UNDOABLE


def _members(db: Session, principal: Principal, desk_id: str) -> set[str]:
    try:
        return {member.username for member in config.get_desk(db, principal.tenant_id, desk_id).members}
    except NotFound:
        return set()


def metadata_names(folder: Folder, mandatory: list[str]) -> list[str]:
    """The metadata a form shows, in a stable order: the sous-type's, each step's, then any other given."""
    names = [*mandatory, *(name for step in folder.steps for name in step.mandatory_metadata or [])]
    return list(dict.fromkeys([*names, *(folder.field_values or {})]))


# ---------------------------------------------------------------------------------------------------------
# The page


@router.get("/dossiers/{folder_id}", response_class=HTMLResponse)
def folder_page(
    request: Request,
    db: DbDep,
    user: UserDep,
    folder_id: str,
    debut: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    return _render_folder(request, db, user, folder_id, first_page=debut)


def _render_folder(
    request: Request,
    db: Session,
    user: SignedIn,
    folder_id: str,
    *,
    first_page: int = 1,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status: int = 200,
    card_token: str | None = None,
    card_expires_at: datetime | None = None,
) -> Response:
    principal = parapheur_user(user)
    folder = service.folder_for(db, principal, folder_id)
    subtype = config.get_subtype(db, principal.tenant_id, folder.subtype_id) if folder.subtype_id else None
    opinions = service.opinions_of(db, folder)
    can = possible(db, principal, folder, opinions)
    desks = config.list_desks(db, principal.tenant_id)
    current = folder.steps[folder.current_step] if folder.status == service.IN_PROGRESS else None
    events = service.history(db, principal, folder.id)
    mandatory = list(subtype.mandatory_metadata or []) if subtype else []
    resumed_from, resumed_in = service.resumptions(db, folder)
    required_now = set(current.mandatory_metadata or []) if current else set(mandatory)
    if values is None:
        values = _metadata_values(folder, mandatory) | {"date_signature": service.today().isoformat()}
    mains = folder.main_documents
    paper_signed = {document.paper_scan_id for document in mains if document.paper_scan_id}
    context = {
        "folder": folder,
        "typology": f"{subtype.type.name} / {subtype.name}" if subtype else None,
        "reading_required": bool(subtype and subtype.reading_required),
        "ged_target": subtype.ged_folder if subtype else None,  # where a failed filing is asked again
        "ged_state": filing.state(db, folder),  # what is really so: filed, asked and under way, failed, not asked…
        "signers": service.signers(db, folder),  # by full name and quality, never a username
        "can": can,
        "resumed_from": resumed_from,  # the rejected folder this one resumes
        "resumed_in": resumed_in,  # the new folders that resume this rejected one
        "current": current,
        "desk_names": {desk.id: desk.name for desk in desks},
        "transfer_desks": [(desk.id, desk.name) for desk in desks if not current or desk.id not in current.desk_ids],
        "opinion_desks": [(desk.id, desk.name) for desk in desks],
        "documents": [_document_view(db, folder, document, first_page) for document in mains],
        # A scan that is a main document's signed version is shown as that document, not again among the annexes.
        "others": [
            document for document in folder.documents if document.role != "main" and document.id not in paper_signed
        ],
        "paper_signatories": _paper_signatories(db, principal, current) if can.paper else [],
        "paper_documents": [(document.id, document.filename) for document in mains]
        if can.paper and folder.signature_format == signing.PADES and len(mains) > 1
        else [],
        "metadata": [
            (f"meta-{index}", name, name in required_now)
            for index, name in enumerate(metadata_names(folder, mandatory))
        ],
        "opinions": opinions,
        "annotations": service.visible_annotations(db, principal, folder),
        "events": events,
        "creator": next((event.actor_name for event in events if event.action == "created"), folder.created_by),
        "today": service.today(),
        "is_late": circuits.is_late,
        "card_command": card_command(api_url(request), folder.id, card_token) if card_token else None,
        "card_expires_at": card_expires_at,
        "card_minutes": int(CARD_TOKEN_LIFETIME.total_seconds() // 60),
        "errors": errors or {},
        "values": values,
    }
    return render(request, "parapheur/dossier.html", context, status=status, db=db)


OTHER_SIGNATORY = "autre"  # the signatory select's choice for someone without an account, named in a text field


def _paper_signatories(db: Session, principal: Principal, step: Step | None) -> list[tuple[str, str]]:
    """Whom « who signed the paper » offers besides the user and someone without an account: the members of the
    step's desks that have not signed yet, (username, full name), by name."""
    if step is None:
        return []
    acted = service.acted_desks(step)
    usernames = {
        username
        for desk_id in step.desk_ids
        if desk_id not in acted
        for username in _members(db, principal, desk_id)
        if username != principal.username
    }
    query = select(User.username, User.display_name).where(
        User.tenant_id == principal.tenant_id, User.username.in_(usernames), User.active
    )
    return sorted(((row.username, row.display_name or row.username) for row in db.execute(query)), key=lambda c: c[1])


def api_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + API_PREFIX


def card_command(api: str, folder_id: str, token: str) -> str:
    """The command the agent runs on their machine, card inserted, copied as is: the library and the card are
    found by the command itself (parapheur.card_client.find_card), the PIN is asked there."""
    return (
        f"SOCLE_API_TOKEN={shlex.quote(token)} socle parapheur sign-with-card"
        f" --api {shlex.quote(api)} --folder {shlex.quote(folder_id)}"
    )


def _metadata_values(folder: Folder, mandatory: list[str]) -> dict[str, Any]:
    values = folder.field_values or {}
    names = metadata_names(folder, mandatory)
    return {f"meta-{index}": values.get(name, "") for index, name in enumerate(names)}


def _document_view(db: Session, folder: Folder, document: FolderDocument, first_page: int) -> dict[str, Any]:
    """A main document and the window of its pages shown as images (none for a file that is not a PDF), or the
    summary of a PES Aller (an XML file); and who signed it on paper when its signed version is a paper
    signature's scan."""
    view: dict[str, Any] = {"document": document, "pages": [], "count": 0, "error": None, "pes": None}
    view["size"] = _current_size(document)
    view["paper"] = service.paper_signer(db, folder, document)
    if is_xml(document):
        view["pes"] = pes_summary.summary_of(document.current_key)  # None: not a PES Aller, the usual message
    page_window(view, document, first_page, lambda number: image_url(folder.id, document, number))
    return view


def is_xml(document: FolderDocument) -> bool:
    media_type = document.media_type.split(";")[0].strip().lower()
    return media_type in XML_MEDIA_TYPES or document.filename.lower().endswith(".xml")


def _current_size(document: FolderDocument) -> int | None:
    """The size of the document as it stands: the signed copy's, kept with it when it was stored; for a copy
    signed before sizes were kept, the store tells it (a file's metadata, not its content); unknown if the store
    cannot say (the page shows no size then)."""
    if not document.signed_key:
        return document.size
    try:
        return service.signed_size(document)
    except SocleError:
        return None


# ---------------------------------------------------------------------------------------------------------
# Acts: each a POST form; on a refusal the page comes back with the reason next to the field, input kept


def _attempt(
    request: Request,
    db: Session,
    user: SignedIn,
    folder_id: str,
    form: Any,
    field_name: str | None,
    act: Callable[[Principal], object],
    message: str,
) -> Response:
    principal = parapheur_user(user)
    service.folder_for(db, principal, folder_id)  # a folder this user may not see: the 404 page, nothing else
    try:
        act(principal)
    except SocleError as exc:
        db.rollback()
        target = field_name if field_name and isinstance(exc, InvalidInput | NotFound) else "form"
        if exc.status == 413 and field_name:
            target = field_name
        return _render_folder(
            request, db, user, folder_id, errors={target: exc.detail}, values=kept(form), status=exc.status
        )
    return redirect(f"/dossiers/{folder_id}", db=db, user=user, message=message)


def _missing(
    request: Request, db: Session, user: SignedIn, folder_id: str, form: Any, name: str, message: str
) -> Response:
    errors = {name: message}
    return _render_folder(request, db, user, folder_id, errors=errors, values=kept(form), status=422)


@router.post("/dossiers/{folder_id}/viser", response_class=HTMLResponse)
def visa(request: Request, db: DbDep, user: UserDep, form: FormDep, folder_id: str) -> Response:
    comment = text(form, "commentaire_visa") or None
    return _attempt(
        request,
        db,
        user,
        folder_id,
        form,
        "commentaire_visa",
        lambda who: service.visa(db, who, folder_id, comment),
        t(request, "Dossier visé."),
    )


@router.post("/dossiers/{folder_id}/signer", response_class=HTMLResponse)
def sign(request: Request, db: DbDep, user: UserDep, form: FormDep, folder_id: str) -> Response:
    comment = text(form, "commentaire_signature") or None
    return _attempt(
        request,
        db,
        user,
        folder_id,
        form,
        "commentaire_signature",
        lambda who: service.sign(db, who, folder_id, comment),
        t(request, "Dossier signé."),
    )


@router.post("/dossiers/{folder_id}/lire", response_class=HTMLResponse)
def read(request: Request, db: DbDep, user: UserDep, form: FormDep, folder_id: str) -> Response:
    comment = text(form, "commentaire_lecture") or None
    return _attempt(
        request,
        db,
        user,
        folder_id,
        form,
        "commentaire_lecture",
        lambda who: service.read_step(db, who, folder_id, comment),
        t(request, "Lecture enregistrée."),
    )


@router.post("/dossiers/{folder_id}/rejeter", response_class=HTMLResponse)
def reject(request: Request, db: DbDep, user: UserDep, form: FormDep, folder_id: str) -> Response:
    reason = text(form, "motif")
    if not reason:
        return _missing(request, db, user, folder_id, form, "motif", t(request, "Indiquez le motif du rejet."))
    return _attempt(
        request,
        db,
        user,
        folder_id,
        form,
        "motif",
        lambda who: service.reject(db, who, folder_id, reason),
        t(request, "Dossier rejeté."),
    )


@router.post("/dossiers/{folder_id}/remords", response_class=HTMLResponse)
def undo(request: Request, db: DbDep, user: UserDep, form: FormDep, folder_id: str) -> Response:
    return _attempt(
        request,
        db,
        user,
        folder_id,
        form,
        None,
        lambda who: service.undo(db, who, folder_id),
        t(request, "Votre dernière action est reprise (droit de remords)."),
    )


@router.post("/dossiers/{folder_id}/transferer", response_class=HTMLResponse)
def transfer(request: Request, db: DbDep, user: UserDep, form: FormDep, folder_id: str) -> Response:
    desk_id = text(form, "bureau_transfert", 36)
    comment = text(form, "commentaire_transfert") or None
    if not desk_id:
        return _missing(
            request, db, user, folder_id, form, "bureau_transfert", t(request, "Choisissez le bureau destinataire.")
        )
    return _attempt(
        request,
        db,
        user,
        folder_id,
        form,
        "bureau_transfert",
        lambda who: service.transfer(db, who, folder_id, desk_id, comment),
        t(request, "Dossier transféré."),
    )


@router.post("/dossiers/{folder_id}/avis", response_class=HTMLResponse)
def ask_opinion(request: Request, db: DbDep, user: UserDep, form: FormDep, folder_id: str) -> Response:
    desk_id, question = text(form, "bureau_avis", 36), text(form, "question")
    if not desk_id:
        return _missing(
            request, db, user, folder_id, form, "bureau_avis", t(request, "Choisissez le bureau à consulter.")
        )
    if not question:
        return _missing(request, db, user, folder_id, form, "question", t(request, "Écrivez votre question."))
    return _attempt(
        request,
        db,
        user,
        folder_id,
        form,
        "bureau_avis",
        lambda who: service.ask_opinion(db, who, folder_id, desk_id, question),
        t(request, "Avis demandé."),
    )


@router.post("/dossiers/{folder_id}/avis/{opinion_id}", response_class=HTMLResponse)
def answer_opinion(
    request: Request, db: DbDep, user: UserDep, form: FormDep, folder_id: str, opinion_id: str
) -> Response:
    name = f"reponse-{opinion_id[:36]}"
    answer = text(form, name)
    if not answer:
        return _missing(request, db, user, folder_id, form, name, t(request, "Écrivez votre avis."))
    return _attempt(
        request,
        db,
        user,
        folder_id,
        form,
        name,
        lambda who: service.answer_opinion(db, who, folder_id, opinion_id, answer),
        t(request, "Avis donné."),
    )


@router.post("/dossiers/{folder_id}/annoter", response_class=HTMLResponse)
def annotate(request: Request, db: DbDep, user: UserDep, form: FormDep, folder_id: str) -> Response:
    note, private = text(form, "annotation", 10_000), form.get("privee") == "1"
    if not note:
        return _missing(request, db, user, folder_id, form, "annotation", t(request, "Écrivez l'annotation."))
    return _attempt(
        request,
        db,
        user,
        folder_id,
        form,
        "annotation",
        lambda who: service.annotate(db, who, folder_id, note, not private),
        t(request, "Annotation ajoutée."),
    )


@router.post("/dossiers/{folder_id}/preparer-carte", response_class=HTMLResponse)
def prepare_card(request: Request, db: DbDep, user: UserDep, form: FormDep, folder_id: str) -> Response:
    """Give the agent a personal API token for this folder's card signature, shown once, in the command.

    The token is scoped to the two card-signing calls of this one folder (prepare, finish) and expires after
    CARD_TOKEN_LIFETIME: leaked from a shell history, it can sign nothing else, and only until then. Only its
    hash is kept; it is never put in a URL, and the page that shows it is not cached (no-store).
    """
    principal = parapheur_user(user)
    folder = service.folder_for(db, principal, folder_id)
    if not possible(db, principal, folder, service.opinions_of(db, folder)).card:
        refused = t(request, "Ce dossier n'attend pas votre signature par carte.")
        return _render_folder(request, db, user, folder_id, errors={"form": refused}, status=409)
    expires_at = utcnow() + CARD_TOKEN_LIFETIME
    calls = f"/folders/{folder.id}/signature"  # within the parapheur's API (socle.web.service_path)
    token = issue_token(
        db,
        get_user_by_id(db, principal.tenant_id, principal.user_id),
        f"signature par carte du dossier {folder.id}",
        expires_at=expires_at,
        scope=[f"POST {calls}/prepare", f"POST {calls}/finish"],
        actor=principal.actor,
    )
    db.commit()  # usable as soon as the page shows it
    response = _render_folder(request, db, user, folder_id, card_token=token, card_expires_at=expires_at)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/dossiers/{folder_id}/signature-papier", response_class=HTMLResponse)
def paper_signature(request: Request, db: DbDep, user: UserDep, form: FormDep, folder_id: str) -> Response:
    """The scan of the signed document: a PDF, or photos of its pages (JPEG, PNG) made into one PDF; signed by the
    user, or by the person chosen (« signataire »: an account of the step's desks, or someone named)."""
    scans = files(form, "scan")
    comment = text(form, "commentaire_papier") or None
    if not scans:
        return _missing(
            request,
            db,
            user,
            folder_id,
            form,
            "scan",
            t(request, "Choisissez le scan du document signé (PDF), ou les photos de ses pages (JPEG, PNG)."),
        )
    chosen, named = text(form, "signataire", 100), text(form, "signataire_nom", 300)
    if chosen == OTHER_SIGNATORY and not named:
        message = t(request, "Indiquez le nom et le prénom de la personne qui a signé le document papier.")
        return _missing(request, db, user, folder_id, form, "signataire_nom", message)
    try:
        signed_on = date.fromisoformat(text(form, "date_signature", 10)) if text(form, "date_signature", 10) else None
    except ValueError:
        message = t(request, "Indiquez la date de la signature (jour, mois, année).")
        return _missing(request, db, user, folder_id, form, "date_signature", message)
    signatory = signature_acts.PaperSignatory(
        username=chosen if chosen and chosen != OTHER_SIGNATORY else None,
        name=named if chosen == OTHER_SIGNATORY else None,
        signed_on=signed_on,
    )
    document_id = text(form, "document", 36) or None
    uploads = [
        service.Upload(scan.file, display_name(scan.filename or "", "signature-papier.pdf"), scan.content_type or "")
        for scan in scans
    ]

    def act(who: Principal) -> object:
        # Refused before any image is decoded when the folder does not wait for this paper signature.
        signature_acts.paper_context(db, who, folder_id, None, signatory)
        db.rollback()  # no lock held while the images are read
        with service.paper_scan(uploads) as (scan, name):
            return signature_acts.paper_signature(
                db, who, folder_id, scan, name, comment, signatory=signatory, document_id=document_id
            )

    return _attempt(request, db, user, folder_id, form, "scan", act, t(request, "Signature papier enregistrée."))


@router.post("/dossiers/{folder_id}/reprendre", response_class=HTMLResponse)
def resume(request: Request, db: DbDep, user: UserDep, form: FormDep, folder_id: str) -> Response:
    """« Reprendre dans un nouveau dossier »: the new draft's page, to correct it and send it."""
    principal = parapheur_user(user)
    service.folder_for(db, principal, folder_id)  # a folder this user may not see: the 404 page, nothing else
    try:
        folder = service.resume_rejected(db, principal, folder_id)
    except SocleError as exc:
        db.rollback()
        return _render_folder(request, db, user, folder_id, errors={"form": exc.detail}, status=exc.status)
    done = t(request, "Nouveau dossier créé en brouillon avec les mêmes documents : corrigez-le, puis envoyez-le.")
    return redirect(f"/dossiers/{folder.id}", db=db, user=user, message=done)


@router.post("/dossiers/{folder_id}/envoyer", response_class=HTMLResponse)
def send(request: Request, db: DbDep, user: UserDep, form: FormDep, folder_id: str) -> Response:
    return _attempt(
        request,
        db,
        user,
        folder_id,
        form,
        None,
        lambda who: service.send(db, who, folder_id),
        t(request, "Dossier envoyé dans son circuit."),
    )


@router.post("/dossiers/{folder_id}/retirer", response_class=HTMLResponse)
def withdraw(request: Request, db: DbDep, user: UserDep, form: FormDep, folder_id: str) -> Response:
    comment = text(form, "commentaire_retrait") or None
    return _attempt(
        request,
        db,
        user,
        folder_id,
        form,
        "commentaire_retrait",
        lambda who: service.withdraw(db, who, folder_id, comment),
        t(request, "Dossier retiré."),
    )


@router.post("/dossiers/{folder_id}/renvoyer-lien", response_class=HTMLResponse)
def resend_external_link(request: Request, db: DbDep, user: UserDep, form: FormDep, folder_id: str) -> Response:
    return _attempt(
        request,
        db,
        user,
        folder_id,
        form,
        None,
        lambda who: service.resend_external_link(db, who, folder_id),
        t(request, "Nouveau lien envoyé au signataire externe ; l'ancien ne fonctionne plus."),
    )


@router.post("/dossiers/{folder_id}/relancer-classement", response_class=HTMLResponse)
def retry_ged_filing(request: Request, db: DbDep, user: UserDep, form: FormDep, folder_id: str) -> Response:
    return _attempt(
        request,
        db,
        user,
        folder_id,
        form,
        None,
        lambda who: filing.retry(db, who, folder_id),
        t(request, "Classement dans la GED relancé."),
    )


@router.post("/dossiers/{folder_id}/metadonnees", response_class=HTMLResponse)
def set_metadata(request: Request, db: DbDep, user: UserDep, form: FormDep, folder_id: str) -> Response:
    principal = parapheur_user(user)
    folder = service.folder_for(db, principal, folder_id)
    subtype = config.get_subtype(db, principal.tenant_id, folder.subtype_id) if folder.subtype_id else None
    names = metadata_names(folder, list(subtype.mandatory_metadata or []) if subtype else [])
    # A field left blank removes its value; the engine keeps the others as they were.
    changes = {name: text(form, f"meta-{index}") or None for index, name in enumerate(names)}
    field_name = "meta-0" if names else None
    return _attempt(
        request,
        db,
        user,
        folder_id,
        form,
        field_name,
        lambda who: service.set_metadata(db, who, folder_id, changes),
        t(request, "Métadonnées enregistrées."),
    )


# ---------------------------------------------------------------------------------------------------------
# Downloads


@router.get("/dossiers/{folder_id}/documents/{document_id}")
def download(request: Request, db: DbDep, user: UserDep, folder_id: str, document_id: str) -> Response:
    """A document in its current state (signed so far); opening it counts as reading it."""
    document = service.open_document(db, parapheur_user(user), folder_id, document_id)
    return object_response(document.current_key, document.filename, document.media_type)


@router.get("/dossiers/{folder_id}/documents/{document_id}/original")
def download_original(request: Request, db: DbDep, user: UserDep, folder_id: str, document_id: str) -> Response:
    """A document as it was received, before any signature (its paper-signed scan or signed copy replaced it);
    not a reading of its current state."""
    document = service.open_document(db, parapheur_user(user), folder_id, document_id, read=False)
    return object_response(document.key, document.filename, document.media_type)


@router.get("/dossiers/{folder_id}/documents/{document_id}/signature")
def detached_signature(request: Request, db: DbDep, user: UserDep, folder_id: str, document_id: str) -> Response:
    folder = service.folder_for(db, parapheur_user(user), folder_id)
    document = next((doc for doc in folder.documents if doc.id == document_id), None)
    if document is None or document.signature_key is None:
        raise NotFound("ce document n'a pas de signature détachée")
    return object_response(document.signature_key, f"{document.filename}.p7s", "application/pkcs7-signature")


@router.get("/dossiers/{folder_id}/bordereau")
def bordereau(request: Request, db: DbDep, user: UserDep, folder_id: str) -> Response:
    folder = service.folder_for(db, parapheur_user(user), folder_id)
    with signing.scratch_dir() as scratch:
        path = scratch / "bordereau.pdf"
        report.write_bordereau(db, folder, path)
        content = path.read_bytes()
    headers = {"Content-Disposition": content_disposition(f"bordereau-{folder.id}.pdf")}
    return Response(content, media_type="application/pdf", headers=headers)
