"""The parapheur's workflow engine: folders (dossiers) of a sous-type travel along their circuit of steps.

A folder's life: draft (brouillon; awaiting_document while the GED sends its document) → in_progress (en
cours) when sent → completed, rejected, or withdrawn by its creator; error when its document cannot be used.
Each step waits for desks (bureaux); a user acts for a desk they hold, or for a desk that delegates to one of
theirs. Every act is a StepAct, a FolderEvent (the history) and an entry of the tenant's audit log.
"""

from __future__ import annotations

import mimetypes
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import pikepdf
from PIL import Image, ImageOps
from sqlalchemy import ColumnElement, false, func, or_, select
from sqlalchemy.orm import Session, selectinload

from parapheur import access, circuits, config, events, pades, signing, verification
from parapheur.circuits import Actor
from parapheur.models import (
    Annotation,
    Desk,
    Folder,
    FolderDocument,
    FolderEvent,
    OpinionRequest,
    ReadMark,
    SigningIdentity,
    Step,
    StepAct,
    Subtype,
    TrustAnchor,
    insert_once,
)
from parapheur.report import status_name
from socle import audit, messages
from socle.auth import Principal, Role
from socle.dates import french_date, french_today, spelled_date
from socle.db import new_id, utcnow
from socle.errors import Conflict, Forbidden, InvalidInput, NotFound, SocleError, message
from socle.jsonvalues import check_json
from socle.queue import enqueue
from socle.settings import get_settings
from socle.storage import StoredObject, get_store
from socle.storage.api import Spooled, spool
from socle.storage.ownership import record_held
from socle.text import check_text

DRAFT, AWAITING, IN_PROGRESS = "draft", "awaiting_document", "in_progress"
COMPLETED, REJECTED, WITHDRAWN, ERROR = "completed", "rejected", "withdrawn", "error"
COMPLETING = circuits.COMPLETING_ACTS
# Acts the droit de remords may take back.
UNDOABLE = frozenset({"visa", "signature", "reading", "paper_signature"})
# In a paper signature's previous_keys, beside each document's key before the act: the scan it was signed on paper
# with before (an earlier paper step), under this prefix and the document's id.
PAPER_SCAN_BEFORE = "paper_scan:"
_ACTION_FOR_KIND = {"visa": "visa", "signature": "signature", "reading": "reading"}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# A media type as RFC 6838 names them (type/subtype, no parameters), within FolderDocument.media_type's 100.
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,48}/[a-z0-9][a-z0-9!#$&^_.+-]{0,48}$")
_XML_TYPES = frozenset({"application/xml", "text/xml"})


def today(now: datetime | None = None) -> date:
    """The date due dates are set from and compared with: the Paris one (socle.dates), as the GED's, so that
    between midnight and 2 a.m. in Paris a folder is neither due a day early nor late a day after."""
    return french_date(now) if now is not None else french_today()


# ---------------------------------------------------------------------------------------------------------
# Creating and sending folders


@dataclass(frozen=True)
class FolderSpec:
    """What a new folder is given: its sous-type, title, metadata, due date and external signers."""

    subtype_id: str
    title: str
    metadata: dict[str, Any] = field(default_factory=dict)
    due_date: date | None = None
    external_signers: list[dict[str, str]] = field(default_factory=list)
    send: bool = False
    ged_filing: bool = False  # an uploaded folder: file the signed document in the GED once completed


def check_spec(session: Session, principal: Principal, spec: FolderSpec) -> Subtype:
    """Check a new folder's sous-type, its creator's right and its external signers, before anything is stored.

    Raises NotFound (sous-type), Forbidden (not a member of a creator desk), InvalidInput (external signers).
    """
    check_text(spec.subtype_id, message("sous-type"))
    check_text(spec.title, message("titre"))
    check_metadata(spec.metadata)
    subtype = config.get_subtype(session, principal.tenant_id, spec.subtype_id)
    # A sous-type saved before this rule existed may still sign a PES twice: refused before anything is stored.
    config.check_signature_count(subtype.circuit, subtype.type.signature_format, subtype.name)
    held = config.user_desk_ids(session, principal.tenant_id, principal.username)
    allowed = set(subtype.creator_desk_ids or []) or None
    if not held or (allowed is not None and not held & allowed):
        names = config.desk_names(session, principal.tenant_id)
        wanted = ", ".join(sorted(names.get(desk_id, desk_id) for desk_id in allowed or []))
        raise Forbidden(
            f"vous ne pouvez pas créer de dossier « {subtype.name} » : réservé aux membres des bureaux {wanted}"
            if wanted
            else "vous ne pouvez pas créer de dossier : vous n'êtes membre d'aucun bureau"
        )
    expected = circuits.external_step_count(subtype.circuit)
    if len(spec.external_signers) != expected:
        raise InvalidInput(
            message(
                "le circuit de « %(subtype_name)s » compte %(expected)s signature(s) externe(s) "
                ": %(spec_external_signers_count)s signataire(s) externe(s) donné(s)",
                subtype_name=subtype.name,
                expected=expected,
                spec_external_signers_count=len(spec.external_signers),
            )
        )
    for signer in spec.external_signers:
        if not str(signer.get("name") or "").strip() or not _EMAIL.match(str(signer.get("email") or "")):
            raise InvalidInput(message("signataire externe : un nom et une adresse électronique valide sont requis"))
        check_text(str(signer["name"]), message("nom du signataire externe"))
    return subtype


def check_metadata(values: Any) -> None:
    """Metadata as JSON: an object whose names are one line and whose texts hold no control character, within
    the bounds of a free JSON value (socle.jsonvalues: depth, size, finite numbers).

    A NUL is refused by PostgreSQL; other controls and bidi overrides would break the stamp, mails and exports; a
    value too deep for an answer would make the folder unreadable once stored. Raises InvalidInput naming the field.
    """
    if not isinstance(values, dict):
        raise InvalidInput(message("les métadonnées sont un objet JSON"))
    check_json(values, message("métadonnées"))


def check_comment(comment: str | None, field: str | None = None) -> None:
    """An optional comment: several lines, no control character (InvalidInput naming the field)."""
    if comment is not None:
        check_text(comment, field or message("commentaire"), multiline=True, required=False)


def _new_folder(session: Session, principal: Principal, spec: FolderSpec, subtype: Subtype, source: str) -> Folder:
    if spec.ged_filing and source == "upload" and not subtype.ged_folder:
        # Filed nowhere in the plan, the signed document would be open to every user of the collectivité.
        raise InvalidInput(
            message(
                "le sous-type « %(subtype_name)s » ne désigne aucun dossier de la GED où classer le document "
                "signé : demandez-le à l'administrateur, ou ne demandez pas le classement",
                subtype_name=subtype.name,
            )
        )
    folder = Folder(
        tenant_id=principal.tenant_id,
        title=spec.title,
        source=source,
        status=DRAFT,
        subtype_id=subtype.id,
        signature_format=subtype.type.signature_format,
        signature_level=subtype.type.level,
        field_values=dict(spec.metadata),
        due_date=spec.due_date or _default_due(subtype),
        created_by=principal.username,
        ged_filing=spec.ged_filing and source == "upload",  # a GED folder goes back to its own document
    )
    folder.steps = _steps_from(subtype, spec.external_signers)
    session.add(folder)
    session.flush()
    return folder


def _default_due(subtype: Subtype) -> date | None:
    return today() + timedelta(days=subtype.due_days) if subtype.due_days is not None else None


def _steps_from(subtype: Subtype, external_signers: list[dict[str, str]]) -> list[Step]:
    """The folder's own copy of the sous-type's circuit; external steps get their signers in order."""
    signers = iter(external_signers)
    steps = []
    for position, template in enumerate(subtype.circuit):
        step = Step(
            position=position,
            kind=template["kind"],
            desk_ids=list(template.get("desk_ids") or []),
            mode=template.get("mode") or "all",
            quorum=template.get("quorum"),
            mandatory_metadata=list(template.get("mandatory_metadata") or []),
            status="pending",
            # The sous-type's paper alternative, for its signature steps; never for a PES (XAdES), whose type may
            # have turned to XAdES since the sous-type allowed it.
            paper_allowed=bool(
                template["kind"] == "signature" and subtype.paper_allowed and subtype.type.signature_format != "xades"
            ),
        )
        if step.kind == "external_signature":
            signer = next(signers, {})
            step.external_name, step.external_email = signer.get("name"), signer.get("email")
        steps.append(step)
    return steps


def create_from_ged(session: Session, principal: Principal, spec: FolderSpec, document_id: str) -> Folder:
    """A folder on a GED document: the GED sends the document through the queue (awaiting_document).

    With ``spec.send`` the folder starts as soon as the document arrives. Raises as :func:`check_spec`.
    """
    subtype = check_spec(session, principal, spec)
    folder = _new_folder(session, principal, spec, subtype, source="ged")
    folder.ged_document_id, folder.status = document_id, AWAITING
    if spec.send:
        _check_sendable(subtype, folder, with_documents=False)
        folder.sent_at = utcnow()
    enqueue(
        session,
        messages.GED_SEND_TO_PARAPHEUR,
        key=f"ged.send:{folder.id}",
        tenant_id=principal.tenant_id,
        document_id=document_id,
        folder_id=folder.id,
        username=principal.username,  # the GED sends the document only if this user may read it
    )
    _created(session, principal, folder, document=document_id)
    session.commit()
    return folder


@dataclass(frozen=True)
class Upload:
    """One uploaded file: its stream, the name the user gave it and its media type."""

    stream: BinaryIO
    filename: str
    media_type: str


def spool_uploads(signature_format: str, mains: list[Upload], annexes: list[Upload]) -> list[tuple[Spooled, str]]:
    """Copy every upload to a temporary file and check it (main files must suit the signature format).

    All files are checked before any is stored: a refusal leaves nothing. Returns (spooled file, role) pairs;
    the caller removes the temporary files (:func:`discard`).
    """
    if not mains:
        raise InvalidInput(message("au moins un document principal est requis"))
    settings = get_settings()
    spooled: list[tuple[Spooled, str]] = []
    try:
        for role, uploads in (("main", mains), ("annex", annexes)):
            for upload in uploads:
                check = main_check(signature_format) if role == "main" else _not_empty
                item = spool(
                    upload.stream, settings.data_dir / "tmp", expected_sha256=None, max_size=settings.max_upload_bytes
                )
                spooled.append((item, role))
                _checked(check, item.path, upload.filename)
    except SocleError as exc:
        exc.extra.setdefault("role", role)  # which file was refused: a form shows it next to its field
        exc.extra.setdefault("filename", upload.filename)
        discard(spooled)
        raise
    except BaseException:
        discard(spooled)
        raise
    return spooled


def _checked(check: Any, path: Path, filename: str) -> None:
    try:
        check(path)
    except InvalidInput as exc:
        raise InvalidInput(
            message("« %(filename)s » : %(exc_detail)s", filename=filename, exc_detail=exc.detail)
        ) from None


def discard(spooled: Iterable[tuple[Spooled, str]]) -> None:
    """Remove the temporary files of :func:`spool_uploads`."""
    for item, _ in spooled:
        item.path.unlink(missing_ok=True)


def create_from_upload(
    session: Session,
    principal: Principal,
    spec: FolderSpec,
    files: list[tuple[Spooled, str]],
    uploads: list[Upload],
) -> Folder:
    """A folder with uploaded main documents and annexes (already checked by :func:`spool_uploads`).

    ``files`` and ``uploads`` are in the same order. The folder is a draft, or sent at once with ``spec.send``.
    """
    subtype = check_spec(session, principal, spec)
    store = get_store()
    folder = _new_folder(session, principal, spec, subtype, source="upload")
    for position, ((item, role), upload) in enumerate(zip(files, uploads, strict=True)):
        with item.path.open("rb") as handle:
            stored: StoredObject = store.put(handle)
        folder.documents.append(
            FolderDocument(
                role=role,
                position=position,
                filename=upload.filename,
                media_type=kept_media_type(upload, role, folder.signature_format),
                key=stored.key,
                size=stored.size,
                added_by=principal.username,
            )
        )
    session.flush()
    record_held_documents(session, folder)
    _created(session, principal, folder, documents=[document.key for document in folder.documents])
    if spec.send:
        _send(session, principal, folder, subtype)
    session.commit()
    return folder


def kept_media_type(upload: Upload, role: str, signature_format: str) -> str:
    """The media type a document is kept, and served back, with; never the client's label taken blindly.

    A main document of a PAdES or XAdES folder was checked as a PDF, or as XML: it gets that type. Any other file
    keeps its declared type when well formed (parameters dropped), else one guessed from its name.
    """
    return media_type_for(upload.media_type, upload.filename, role, signature_format)


def media_type_for(declared: str, filename: str, role: str, signature_format: str) -> str:
    """:func:`kept_media_type` for a type declared by a client (an upload) or by the GED (its version's)."""
    declared = declared.split(";", 1)[0].strip().lower()
    if role == "main" and signature_format == "pades":
        return "application/pdf"
    if role == "main" and signature_format == "xades":
        return declared if declared in _XML_TYPES else "application/xml"
    if _MEDIA_TYPE.match(declared):
        return declared
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def record_held_documents(session: Session, folder: Folder) -> None:
    """The folder's tenant holds its documents, their signed copies and detached signatures: it may hand them
    to an interop flow (the kernel's registry, socle.storage.ownership). A signed copy new since also gets its
    size kept (:func:`keep_signed_sizes`). Nothing is committed here."""
    keys = [key for document in folder.documents for key in (document.key, document.signed_key, document.signature_key)]
    record_held(session, folder.tenant_id, *keys, holder="parapheur")
    keep_signed_sizes(folder)


def keep_signed_sizes(folder: Folder) -> None:
    """Keep with each document the size of its signed copy, when not known yet: asked of the store once, as the
    copy is stored (every signing path records its act, :func:`record_act`), not at each view of the folder's
    page. A copy signed before sizes were kept gets its size at the folder's next act. A store that cannot say
    leaves it unknown (the page then asks the store itself): a size to show never stops an act."""
    for document in folder.documents:
        if document.signed_key is None or document.signed_size is not None:
            continue
        try:
            document.signed_size = get_store().size(document.signed_key)
        except SocleError:
            continue


def signed_size(document: FolderDocument) -> int:
    """The size of the document's signed copy: the one kept, or the store's for a copy stored before sizes were
    kept. :raises SocleError: the store cannot say (no such object, store unreachable)."""
    assert document.signed_key is not None
    if document.signed_size is not None:
        return document.signed_size
    return get_store().size(document.signed_key)


def _created(session: Session, principal: Principal, folder: Folder, **details: Any) -> None:
    _event(session, folder, _user(principal), "created", None, details)
    audit_folder(session, folder, principal.actor, "parapheur.folder.created", subtype=folder.subtype_id, **details)


def main_check(signature_format: str) -> Any:
    """The check a main document must pass for this signature format: PDF (PAdES), XML (XAdES), any (CAdES)."""
    return {"pades": _check_pdf_file, "xades": _check_xml_file}.get(signature_format, _not_empty)


def _check_pdf_file(path: Path) -> None:
    try:
        pades.inspect_pdf(path)
    except pades.PdfError as exc:
        raise InvalidInput(str(exc)) from None


def _check_xml_file(path: Path) -> None:
    from parapheur import xades

    _not_empty(path)
    try:
        xades.check_pes(path)  # the signature's own check: refused now rather than at the signature step
    except xades.PesError as exc:
        raise InvalidInput(str(exc)) from None


def _not_empty(path: Path) -> None:
    if path.stat().st_size == 0:
        raise InvalidInput(message("le fichier est vide"))


def send(session: Session, principal: Principal, folder_id: str) -> Folder:
    """Send a draft on its circuit (brouillon → en cours): its creator only.

    A folder still awaiting its GED document is marked sent and starts when the document arrives.
    Raises Forbidden (not the creator), Conflict (not a draft), InvalidInput (mandatory metadata missing,
    no main document).
    """
    folder = folder_for(session, principal, folder_id, for_update=True)
    if folder.created_by != principal.username:
        raise Forbidden(message("seul le créateur du dossier peut l'envoyer"))
    if folder.status not in (DRAFT, AWAITING) or folder.sent_at is not None:
        raise Conflict(
            message(
                "seul un brouillon peut être envoyé (état : %(folder_status)s)",
                folder_status=status_name(folder.status),
            ),
            folder_status=folder.status,
        )
    subtype = _subtype_of(session, folder)
    if folder.status == AWAITING:
        _check_sendable(subtype, folder, with_documents=False)
        folder.sent_at = utcnow()
        _event(session, folder, _user(principal), "send_requested", None, {})
    else:
        _send(session, principal, folder, subtype)
    session.commit()
    return folder


def _subtype_of(session: Session, folder: Folder) -> Subtype:
    if folder.subtype_id is None:
        raise Conflict(message("ce dossier n'a pas de sous-type : il ne peut pas être envoyé"))
    return config.get_subtype(session, folder.tenant_id, folder.subtype_id)


def _check_sendable(subtype: Subtype, folder: Folder, *, with_documents: bool) -> None:
    """What sending needs: the sous-type's current circuit fits the folder, metadata and documents are there.

    Raises InvalidInput (a PES circuit signing twice, metadata or main document missing), Conflict (the circuit
    now asks for another number of external signers than the draft names).
    """
    config.check_signature_count(subtype.circuit, folder.signature_format, subtype.name)
    _check_externals(subtype, folder)
    missing = circuits.missing_metadata(subtype.mandatory_metadata or [], folder.field_values or {})
    if missing:
        raise InvalidInput(
            message("métadonnée(s) obligatoire(s) manquante(s) : %(missing)s", missing=", ".join(missing)),
            missing=missing,
        )
    if with_documents and not folder.main_documents:
        raise InvalidInput(message("le dossier n'a aucun document principal"))


def _draft_externals(folder: Folder) -> list[dict[str, str]]:
    """The external signers the draft names, in circuit order."""
    return [
        {"name": step.external_name or "", "email": step.external_email or ""}
        for step in folder.steps
        if step.kind == "external_signature"
    ]


def _check_externals(subtype: Subtype, folder: Folder) -> None:
    """The draft names one external signer per external step of the sous-type's current circuit.

    A circuit changed since the draft was made (an external step added or removed) cannot be given its signers
    by guess; sending the old circuit instead would silently skip the step the administrator added.
    """
    named, expected = len(_draft_externals(folder)), circuits.external_step_count(subtype.circuit)
    if named != expected:
        raise Conflict(
            message(
                "le circuit du sous-type « %(subtype_name)s » a changé depuis la création de ce brouillon : il "
                "compte désormais %(expected)s signature(s) externe(s), le brouillon désigne %(named)s "
                "signataire(s) externe(s). Vérifiez le circuit, retirez ce brouillon et créez-en un nouveau.",
                subtype_name=subtype.name,
                expected=expected,
                named=named,
            ),
            expected=expected,
            named=named,
        )


def _send(session: Session, principal: Principal | None, folder: Folder, subtype: Subtype) -> None:
    _check_sendable(subtype, folder, with_documents=True)
    # The circuit is copied again at sending: the sous-type's current one applies, external signers kept in order.
    externals = _draft_externals(folder)
    folder.steps.clear()
    session.flush()
    folder.steps.extend(_steps_from(subtype, externals))
    folder.due_date = _due_from_sending(folder, subtype)
    folder.sent_at = folder.sent_at or utcnow()
    actor = _user(principal) if principal else _SERVICE
    _event(session, folder, actor, "sent", None, {})
    audit_folder(session, folder, _audit_actor(actor), "parapheur.folder.sent")
    _start(session, folder)


def _due_from_sending(folder: Folder, subtype: Subtype) -> date | None:
    """The sous-type's delay counts from the sending: a draft kept a week is not late the day it leaves. A date
    other than the default computed at its creation was chosen by its creator, and stays."""
    if subtype.due_days is None or folder.created_at is None:
        return folder.due_date
    default_at_creation = french_date(folder.created_at) + timedelta(days=subtype.due_days)
    return _default_due(subtype) if folder.due_date == default_at_creation else folder.due_date


def _start(session: Session, folder: Folder) -> None:
    folder.status, folder.current_step, folder.updated_at = IN_PROGRESS, 0, utcnow()
    _begin_step(session, folder, folder.steps[0])


def _begin_step(session: Session, folder: Folder, step: Step) -> None:
    step.status, step.started_at, step.completed_at = "current", utcnow(), None
    session.flush()
    events.step_started(session, folder, step)


def attach_document(
    session: Session,
    tenant_id: str,
    folder_id: str,
    *,
    key: str,
    size: int,
    filename: str,
    version: int,
    media_type: str = "application/pdf",
) -> Folder:
    """The GED's answer: the folder gets its main document if it suits the format; sent folders then start."""
    folder = get_folder(session, tenant_id, folder_id, for_update=True)
    if folder.status != AWAITING:
        return folder  # already answered: a second run changes nothing
    folder.ged_version, folder.updated_at = version, utcnow()
    try:
        with get_store().local_path(key) as path:
            main_check(folder.signature_format)(path)
    except InvalidInput as exc:
        folder.status, folder.error = ERROR, exc.detail
    else:
        folder.documents.append(
            FolderDocument(
                role="main",
                position=0,
                filename=filename,
                media_type=media_type_for(media_type, filename, "main", folder.signature_format),
                key=key,
                size=size,
                added_by="service:ged",
            )
        )
        folder.status = DRAFT
        session.flush()
        record_held_documents(session, folder)
        if folder.sent_at is not None:
            try:
                _send(session, None, folder, _subtype_of(session, folder))
            except (InvalidInput, NotFound, Conflict) as exc:
                folder.status, folder.error = ERROR, exc.detail
    _event(session, folder, _GED, "document_attached", None, {"status": folder.status})
    audit_folder(session, folder, "service:ged", "parapheur.folder.document_attached", status=folder.status)
    session.commit()
    return folder


def mark_unavailable(session: Session, tenant_id: str, folder_id: str, reason: str) -> Folder:
    """The GED cannot send the document: the folder ends in error with the reason."""
    folder = get_folder(session, tenant_id, folder_id, for_update=True)
    if folder.status == AWAITING:
        folder.status, folder.error, folder.updated_at = ERROR, reason, utcnow()
        _event(session, folder, _GED, "document_unavailable", reason, {})
        audit_folder(session, folder, "service:ged", "parapheur.folder.document_unavailable", reason=reason)
        session.commit()
    return folder


def set_metadata(session: Session, principal: Principal, folder_id: str, values: dict[str, Any]) -> Folder:
    """Fill in metadata (merged; None removes a key): the creator before sending, the current actors after."""
    check_metadata(values)
    folder = folder_for(session, principal, folder_id, for_update=True)
    if folder.status in (DRAFT, AWAITING):
        if folder.created_by != principal.username:
            raise Forbidden(message("seul le créateur du dossier peut modifier un brouillon"))
    elif folder.status == IN_PROGRESS:
        acting_actor(session, principal, folder, folder.steps[folder.current_step])
    else:
        raise Conflict(
            message("le dossier est clos (état : %(folder_status)s)", folder_status=status_name(folder.status)),
            folder_status=folder.status,
        )
    merged = {**(folder.field_values or {}), **values}
    # Each call is bounded, and so is their sum: the folder's metadata as a whole.
    folder.field_values = check_json(
        {name: value for name, value in merged.items() if value is not None}, message("métadonnées")
    )
    folder.updated_at = utcnow()
    _event(session, folder, _user(principal), "metadata_updated", None, {"fields": sorted(values)})
    audit_folder(session, folder, principal.actor, "parapheur.folder.metadata_updated", fields=sorted(values))
    session.commit()
    return folder


# ---------------------------------------------------------------------------------------------------------
# Who acts


def _user(principal: Principal) -> Actor:
    return Actor(principal.username, principal.display_name)


_SERVICE = Actor("service:parapheur", "Parapheur")
_GED = Actor("service:ged", "GED")


def _live_acts(step: Step) -> list[StepAct]:
    return [act for act in step.acts if act.undone_at is None]


def acted_desks(step: Step) -> set[str | None]:
    """The step's desks that acted already (live acts that count towards it; the replaced desk under a delegation)."""
    return {act.on_behalf_of_desk_id or act.desk_id for act in _live_acts(step) if act.action in COMPLETING}


def acting_actor(
    session: Session, principal: Principal, folder: Folder, step: Step, desk_id: str | None = None
) -> Actor:
    """Which desk of ``step`` this user acts for: one they hold, else one delegating to theirs right now.

    A delegation limited to some sous-types applies only to folders of those. ``desk_id`` picks the step's
    desk to act for when the user could act for several. Desks that already acted are skipped.
    Raises Forbidden (no desk of the step, no delegation), Conflict (their desks already acted).
    """
    held = config.user_desk_ids(session, folder.tenant_id, principal.username)
    acted = acted_desks(step)
    wanted = [d for d in step.desk_ids if desk_id is None or d == desk_id]
    direct = [d for d in wanted if d in held]
    delegating = {
        delegation.from_desk_id: delegation.to_desk_id
        for delegation in config.active_delegations(session, folder.tenant_id)
        if delegation.from_desk_id in wanted
        and delegation.to_desk_id in held
        and delegation.from_desk_id not in direct
        and config.delegation_applies(delegation, folder.subtype_id)
    }
    free = [d for d in direct if d not in acted]
    if free:
        desk = _desk(session, free[0])
        return Actor(principal.username, principal.display_name, desk.id, desk.name, stamp_role=desk.stamp_role)
    free_delegated = [d for d in wanted if d in delegating and d not in acted]
    if free_delegated:
        replaced, own = _desk(session, free_delegated[0]), _desk(session, delegating[free_delegated[0]])
        return Actor(
            principal.username,
            principal.display_name,
            own.id,
            own.name,
            on_behalf_of_desk_id=replaced.id,
            on_behalf_of_name=replaced.name,
            # The stamp gives the signer's own quality; the replaced desk appears as « Pour …, par délégation ».
            stamp_role=own.stamp_role,
        )
    if direct or delegating:
        raise Conflict(message("votre bureau a déjà agi sur cette étape"))
    raise Forbidden(
        message("vous n'êtes membre d'aucun bureau attendu à l'étape en cours (ni délégataire de l'un d'eux)")
    )


def _desk(session: Session, desk_id: str) -> Desk:
    desk = session.get(Desk, desk_id)
    if desk is None:
        raise NotFound(message("bureau %(desk_id)s introuvable", desk_id=desk_id))
    return desk


def current_for(
    session: Session,
    principal: Principal,
    folder_id: str,
    kinds: Iterable[str] | None,
    desk_id: str | None = None,
    *,
    completing: bool = True,
) -> tuple[Folder, Step, Actor]:
    """The folder (locked), its current step and who acts, checked in this order: state, who, step kind, and
    (for an act that counts towards the step) the step's mandatory metadata.

    Raises NotFound, Conflict (not in progress, wrong step kind, desk already acted), Forbidden, InvalidInput.
    """
    if desk_id is not None:
        check_text(desk_id, message("bureau"))  # before any query: PostgreSQL refuses a NUL
    folder = folder_for(session, principal, folder_id, for_update=True)
    if folder.status != IN_PROGRESS:
        raise Conflict(
            message(
                "le dossier n'attend aucune action (état : %(folder_status)s)",
                folder_status=status_name(folder.status),
            ),
            folder_status=folder.status,
        )
    step = folder.steps[folder.current_step]
    actor = acting_actor(session, principal, folder, step, desk_id)
    if kinds is not None and step.kind not in kinds:
        raise Conflict(
            message("l'étape en cours attend : %(step_kind_label)s", step_kind_label=circuits.STEP_KINDS[step.kind]),
            step_kind=step.kind,
        )
    if completing:
        missing = circuits.missing_metadata(step.mandatory_metadata or [], folder.field_values or {})
        if missing:
            raise InvalidInput(
                message(
                    "métadonnée(s) obligatoire(s) pour agir à cette étape : %(missing)s", missing=", ".join(missing)
                ),
                missing=missing,
            )
    return folder, step, actor


# ---------------------------------------------------------------------------------------------------------
# Recording acts


def record_act(
    session: Session,
    folder: Folder,
    step: Step,
    actor: Actor,
    action: str,
    comment: str | None = None,
    previous_keys: dict[str, str | None] | None = None,
    details: dict[str, Any] | None = None,
    act_values: dict[str, Any] | None = None,
) -> StepAct:
    """Record one act on a step (StepAct, history, audit), then complete the step and move on if its rule is met.

    Moving on starts the next step (``events.step_started``) or ends the folder (``events.folder_ended``, and a
    GED folder's signed document is sent back to the GED). ``act_values``: more columns of the act (a paper
    signature's signatory), set before the step may end. Nothing is committed here.
    """
    act = StepAct(
        **(act_values or {}),
        folder_id=folder.id,
        desk_id=actor.desk_id,
        on_behalf_of_desk_id=actor.on_behalf_of_desk_id,
        username=actor.username,
        display_name=actor.display_name,
        action=action,
        comment=comment,
        at=utcnow(),
        previous_keys=previous_keys,
    )
    step.acts.append(act)
    session.flush()
    # Every signing path (server, card, seal, external, paper scan) records its act here, its new keys kept.
    record_held_documents(session, folder)
    if previous_keys:
        _known_to_their_maker(session, folder, actor, previous_keys)
    _event(session, folder, actor, action, comment, {"step": step.position, "act": act.id, **(details or {})})
    audit_folder(
        session,
        folder,
        _audit_actor(actor),
        f"parapheur.{action}",
        step=step.position,
        desk=actor.desk_name,
        on_behalf_of=actor.on_behalf_of_name,
        **(details or {}),
    )
    folder.updated_at = utcnow()
    if action in COMPLETING and circuits.is_complete(step.mode, step.quorum, step.desk_ids, acted_desks(step)):
        _complete_step(session, folder, step, actor)
    return act


def _known_to_their_maker(session: Session, folder: Folder, actor: Actor, changed: Iterable[str]) -> None:
    """The documents a person's act just made (the copy their signature produced, the scan of their paper
    signature) count as read by them in that state: they read the state before (lecture obligatoire) or chose
    to sign it as it was. Opening their own signed copy afterwards is no new reading: no second « Lecture du
    document » in the history, and their next signature of it (a later step) asks no reading again. A reading
    by anyone else, or of a state someone else made, is recorded as before (:func:`open_document`)."""
    if ":" in actor.username:
        return  # the service's seal, an external signer: no user who opens documents here
    changed = set(changed)
    keys = ("folder_id", "username", "document_key")
    for document in folder.documents:
        if document.id in changed:
            values = {"folder_id": folder.id, "username": actor.username, "document_key": document.current_key}
            insert_once(session, ReadMark, values, keys)


def _complete_step(session: Session, folder: Folder, step: Step, actor: Actor) -> None:
    step.status, step.completed_at = "done", utcnow()
    if step.position + 1 < len(folder.steps):
        folder.current_step = step.position + 1
        _begin_step(session, folder, folder.steps[folder.current_step])
        return
    folder.status = COMPLETED
    _event(session, folder, _SERVICE, "completed", None, {})
    audit_folder(session, folder, "service:parapheur", "parapheur.folder.completed")
    send_back_to_ged(session, folder)
    events.folder_ended(session, folder, actor)


def send_back_to_ged(session: Session, folder: Folder) -> None:
    """A GED folder's signed document goes back to the GED as a new version, and an uploaded folder's is filed
    there as a new document when its creator asked for it (``ged_filing``); not while a degraded signature
    still owes its level (the upgrade job sends it once reached: the send-back is keyed by folder, once)."""
    record_held_documents(session, folder)  # a signature raised to its level since the last act (upgrade job)
    main = folder.main_documents
    signed_key = main[0].signed_key if main else None
    if folder.pending_level is not None or not signed_key:
        return  # a detached signature (CAdES) leaves the document as it is
    document = main[0]
    signatories = signatory_usernames(folder)
    if folder.source == "upload" and folder.ged_filing:
        _file_in_ged(session, folder, document, signed_key, signatories)
        return
    if folder.source != "ged" or not folder.ged_document_id:
        return
    enqueue(
        session,
        messages.GED_STORE_SIGNED_VERSION,
        key=send_back_key(folder),
        tenant_id=folder.tenant_id,
        document_id=folder.ged_document_id,
        folder_id=folder.id,
        object_key=signed_key,
        size=signed_size(document),
        filename=signed_name(document.filename),
        signatories=signatories,
        signed_by=[signer.label for signer in signers(session, folder)],
    )


SIGNING_ACTIONS = ("signature", "seal", "external_signature", "paper_signature")


def signatory_usernames(folder: Folder) -> list[str]:
    """Who signed the folder's documents, as the GED keeps them (``signatories``: identifiers, which it resolves to
    names and the archive writes as agents): each signing act's user (or the service's, the external signer's
    own). A paper signature counts for whoever signed by hand, never for who recorded it for them: their username
    when they have an account here, else no one (a name typed for someone without an account is no identifier)."""
    usernames = []
    for act in _signing_acts(folder):
        if act.action == "paper_signature" and act.signatory_name is not None:
            if act.signatory_username:
                usernames.append(act.signatory_username)
            continue
        usernames.append(act.username)
    return usernames


def _signing_acts(folder: Folder) -> list[StepAct]:
    return [act for step in folder.steps for act in _live_acts(step) if act.action in SIGNING_ACTIONS]


@dataclass(frozen=True)
class Signer:
    """One signature of the folder, as people read it: the signatory's full name and quality (their desk's
    « qualité », as the stamp prints it), and for a paper signature the day it was signed and who recorded it."""

    name: str
    quality: str | None
    on_paper: bool = False
    signed_on: date | None = None
    recorded_by: str | None = None  # a paper signature recorded by someone else: their name

    @property
    def person(self) -> str:
        """« Dominique Dupont, Maire »: the name, and the quality when known."""
        return f"{self.name}, {self.quality}" if self.quality else self.name

    @property
    def label(self) -> str:
        """Who signed and how, as the GED's version comment says it (``signed_by``): « Dominique Dupont, Maire »
        for an electronic signature, « Dominique Dupont, Maire (signature papier du 2 décembre 2026) » for a paper
        one, never to be taken for the other."""
        if not self.on_paper:
            return self.person
        if self.signed_on is None:
            return message("%(person)s (signature papier)", person=self.person)
        return message(
            "%(person)s (signature papier du %(date)s)", person=self.person, date=spelled_date(self.signed_on)
        )


def signers(session: Session, folder: Folder) -> list[Signer]:
    """The folder's live signatures, in order, by full name and quality (never a username nor a desk's code): an
    electronic signature by its signer and the quality of the desk they signed from, the server's seal by its
    name, an external signer by the name they were given, a paper signature by whoever signed by hand."""
    desks = _desks_of(session, folder)
    return [_signer(act, desks) for act in _signing_acts(folder)]


def paper_signer(session: Session, folder: Folder, document: FolderDocument) -> Signer | None:
    """Who signed ``document`` on paper, when its signed version comes from a paper signature's scan: the live
    act that made that scan its signed version."""
    if document.paper_scan_id is None:
        return None
    for act in _signing_acts(folder):
        if act.action == "paper_signature" and document.paper_scan_id in (act.previous_keys or {}):
            return _signer(act, _desks_of(session, folder))
    return None


def _desks_of(session: Session, folder: Folder) -> dict[str, Desk]:
    desk_ids = {act.desk_id for act in _signing_acts(folder) if act.desk_id}
    query = select(Desk).where(Desk.tenant_id == folder.tenant_id, Desk.id.in_(desk_ids))
    return {desk.id: desk for desk in session.execute(query).scalars()}


def _signer(act: StepAct, desks: dict[str, Desk]) -> Signer:
    desk = desks.get(act.desk_id or "")
    quality = (desk.stamp_role or desk.name) if desk else None
    if act.action == "seal":
        return Signer(act.display_name, None)
    if act.action == "external_signature":
        return Signer(act.display_name, message("signataire externe"))
    if act.action != "paper_signature":
        return Signer(act.display_name, quality)
    if act.signatory_name is not None:  # recorded by someone else: the act's user is who recorded it
        return Signer(act.signatory_name, quality, True, act.signed_on, act.display_name)
    return Signer(act.display_name, quality, True, act.signed_on)


def filing_key(folder: Folder) -> str:
    """The business key the folder's filing in the GED is asked with (:func:`_file_in_ged`), and asked again with
    (parapheur.filing.retry): one job for one filing, whatever the number of runs."""
    return f"ged.file:{folder.id}"


def send_back_key(folder: Folder) -> str:
    """The business key a GED folder's signed version is sent back with (:func:`send_back_to_ged`)."""
    return f"ged.signed:{folder.id}"


def _file_in_ged(
    session: Session, folder: Folder, document: FolderDocument, signed_key: str, signatories: list[str]
) -> None:
    subtype = session.get(Subtype, folder.subtype_id) if folder.subtype_id else None
    enqueue(
        session,
        messages.GED_FILE_SIGNED_DOCUMENT,
        key=filing_key(folder),
        tenant_id=folder.tenant_id,
        folder_id=folder.id,
        object_key=signed_key,
        size=signed_size(document),
        filename=signed_name(document.filename),
        media_type=document.media_type,
        title=folder.title,
        document_type=subtype.name if subtype else "Parapheur",
        signatories=signatories,
        signed_by=[signer.label for signer in signers(session, folder)],
        ged_folder=subtype.ged_folder if subtype else None,
    )


def record_ged_filing(session: Session, tenant_id: str, folder_id: str, document_id: str) -> Folder:
    """The GED's answer to GED_FILE_SIGNED_DOCUMENT: the folder keeps the id of its document there (once), and no
    longer a failure to file it (one recorded before an operator gave the job another run, ``socle jobs retry``)."""
    folder = get_folder(session, tenant_id, folder_id, for_update=True)
    folder.ged_filing_error = None
    if folder.ged_document_id == document_id:
        session.commit()
        return folder  # already recorded: a second run changes nothing
    folder.ged_document_id = document_id
    _event(session, folder, _GED, "filed_in_ged", None, {"document": document_id})
    audit_folder(session, folder, "service:ged", "parapheur.folder.filed_in_ged", document=document_id)
    session.commit()
    return folder


def record_ged_filing_failed(
    session: Session, tenant_id: str, folder_id: str, reason: str, details: dict[str, Any] | None = None
) -> Folder:
    """The GED's failure to file the signed document: said once in the folder's history (with ``details``) and the
    audit log (the document stays signed in the parapheur, where its creator downloads it)."""
    folder = get_folder(session, tenant_id, folder_id, for_update=True)
    said = session.execute(
        select(FolderEvent.id).where(FolderEvent.folder_id == folder.id, FolderEvent.action == "ged_filing_failed")
    ).first()
    if folder.ged_document_id is None and said is None:
        _event(session, folder, _GED, "ged_filing_failed", reason[:2000], details or {})
        audit_folder(session, folder, "service:ged", "parapheur.folder.ged_filing_failed", reason=reason[:2000])
        session.commit()
    return folder


def signed_name(filename: str) -> str:
    """``acte.pdf`` → ``acte-signe.pdf``."""
    stem, dot, extension = filename.rpartition(".")
    return f"{stem}-signe.{extension}" if dot and stem else f"{filename}-signe"


def _event(
    session: Session, folder: Folder, actor: Actor, action: str, comment: str | None, details: dict[str, Any]
) -> None:
    session.add(FolderEvent.of_act(folder, actor, action, comment, details))


def _audit_actor(actor: Actor) -> str:
    return actor.username if ":" in actor.username else f"user:{actor.username}"


def audit_folder(session: Session, folder: Folder, actor: str, action: str, **details: object) -> None:
    """An audit entry about ``folder`` (its title with it; details that are None left out)."""
    audit.record(
        session,
        tenant_id=folder.tenant_id,
        actor=actor,
        action=action,
        object_type="folder",
        object_id=folder.id,
        details={"title": folder.title, **{k: v for k, v in details.items() if v is not None}},
    )


# ---------------------------------------------------------------------------------------------------------
# Acts on the current step


def visa(
    session: Session, principal: Principal, folder_id: str, comment: str | None, desk_id: str | None = None
) -> Folder:
    """Viser the current visa step. Raises NotFound, Conflict (state, step kind, desk already acted),
    Forbidden (no desk of the step), InvalidInput (the step's mandatory metadata missing)."""
    check_comment(comment)
    folder, step, actor = current_for(session, principal, folder_id, ("visa",), desk_id)
    record_act(session, folder, step, actor, "visa", comment)
    session.commit()
    return folder


def sign(
    session: Session, principal: Principal, folder_id: str, comment: str | None, desk_id: str | None = None
) -> Folder:
    """Sign the current signature step with the user's identity (``signing.sign_documents``).

    When the sous-type requires reading, the user must first have opened every main document in its current
    state. A failing signature (InvalidInput, Conflict, ServiceUnavailable from signing) changes nothing.
    """
    check_comment(comment)
    folder, step, actor = current_for(session, principal, folder_id, ("signature",), desk_id)
    check_read(session, principal, folder)
    previous = signing.sign_documents(session, folder, actor)
    record_act(session, folder, step, actor, "signature", comment, previous_keys=previous)
    session.commit()
    return folder


def check_read(session: Session, principal: Principal, folder: Folder) -> None:
    """Lecture obligatoire: raise Conflict unless the user opened every main document in its current state."""
    subtype = session.get(Subtype, folder.subtype_id) if folder.subtype_id else None
    if subtype is None or not subtype.reading_required:
        return
    read = set(
        session.execute(
            select(ReadMark.document_key).where(
                ReadMark.folder_id == folder.id, ReadMark.username == principal.username
            )
        ).scalars()
    )
    unread = [document.filename for document in folder.main_documents if document.current_key not in read]
    if unread:
        raise Conflict(
            message("lecture obligatoire avant de signer : ouvrez d'abord %(unread)s", unread=", ".join(unread)),
            unread=unread,
        )


def read_step(
    session: Session, principal: Principal, folder_id: str, comment: str | None, desk_id: str | None = None
) -> Folder:
    """Mark the current reading step read (lecture) for one of the user's desks."""
    check_comment(comment)
    folder, step, actor = current_for(session, principal, folder_id, ("reading",), desk_id)
    record_act(session, folder, step, actor, "reading", comment)
    session.commit()
    return folder


def reject(session: Session, principal: Principal, folder_id: str, reason: str, desk_id: str | None = None) -> Folder:
    """Reject the folder at its current step; the reason is required. The folder ends (rejected)."""
    if not reason.strip():
        raise InvalidInput(message("le motif du rejet est obligatoire"))
    check_text(reason, message("motif du rejet"), multiline=True)
    folder, step, actor = current_for(session, principal, folder_id, None, desk_id, completing=False)
    record_act(session, folder, step, actor, "reject", reason)
    step.status, step.completed_at = REJECTED, utcnow()
    folder.status, folder.rejection_reason = REJECTED, reason
    events.folder_ended(session, folder, actor)
    session.commit()
    return folder


def transfer(
    session: Session,
    principal: Principal,
    folder_id: str,
    to_desk_id: str,
    comment: str | None,
    desk_id: str | None = None,
) -> Folder:
    """Hand the current step over to another desk of the tenant, for this folder only (transférer)."""
    check_comment(comment)
    folder, step, actor = current_for(session, principal, folder_id, None, desk_id, completing=False)
    target = config.get_desk(session, principal.tenant_id, to_desk_id)
    replaced = actor.acting_for
    if target.id in step.desk_ids:
        raise Conflict(message("le bureau « %(target_name)s » est déjà attendu à cette étape", target_name=target.name))
    step.desk_ids = [target.id if d == replaced else d for d in step.desk_ids]
    record_act(session, folder, step, actor, "transfer", comment, details={"from_desk": replaced, "to_desk": target.id})
    events.step_started(session, folder, step)  # the new desk is told, as if the step started for it
    session.commit()
    return folder


def undo(session: Session, principal: Principal, folder_id: str) -> Folder:
    """Droit de remords: take back one's own last act while nobody acted on the folder since.

    The step comes back as current (the next one back to pending), a signature's documents are restored.
    Raises Conflict when the folder is closed, the user has no act to take back, or a later act exists.
    """
    folder = folder_for(session, principal, folder_id, for_update=True)
    if folder.status != IN_PROGRESS:
        raise Conflict(
            message(
                "droit de remords impossible : le dossier est clos (état : %(folder_status)s)",
                folder_status=status_name(folder.status),
            )
        )
    acts = sorted(
        ((act, step) for step in folder.steps for act in _live_acts(step)), key=lambda pair: (pair[0].at, pair[0].id)
    )
    own = [index for index, (act, _) in enumerate(acts) if act.username == principal.username]
    if not own:
        raise Conflict(message("droit de remords impossible : vous n'avez pas agi sur ce dossier"))
    act, step = acts[own[-1]]
    if own[-1] != len(acts) - 1:
        raise Conflict(message("droit de remords impossible : un autre acteur a agi depuis votre action"))
    if act.action not in UNDOABLE:
        raise Conflict(
            message(
                "droit de remords impossible : l'action « %(act_action)s » ne se reprend pas", act_action=act.action
            )
        )
    if step.position != folder.current_step:
        following = folder.steps[folder.current_step]
        following.status, following.started_at = "pending", None
        folder.current_step = step.position
        folder.error = None  # the following step's failure (its seal) is no longer the folder's state
    step.status, step.completed_at = "current", None
    act.undone_at = utcnow()
    if act.action == "paper_signature" and act.previous_keys:
        _take_back_paper_scan(folder, act.previous_keys)
    elif act.previous_keys:
        signing.restore_documents(folder, act.previous_keys)
        keep_signed_sizes(folder)  # the copy before, restored: its size again
    actor = Actor(
        principal.username, principal.display_name, act.desk_id, on_behalf_of_desk_id=act.on_behalf_of_desk_id
    )
    _event(session, folder, actor, "undone", None, {"step": step.position, "act": act.id, "action": act.action})
    audit_folder(session, folder, principal.actor, "parapheur.undone", step=step.position, undone_action=act.action)
    folder.updated_at = utcnow()
    session.commit()
    return folder


def _take_back_paper_scan(folder: Folder, previous: dict[str, str | None]) -> None:
    """Undo a paper signature: the scan the act added goes with it (its bytes stay in the store, its filename in
    the history), and signing on paper again does not add a second scan; the document it signed gets back the
    version it had before (unsigned, or signed so far)."""
    taken = {document.id for document in folder.documents if document.role == "scan" and document.id in previous}
    folder.documents[:] = [document for document in folder.documents if document.id not in taken]
    for document in folder.documents:
        if document.id in previous:
            document.signed_key = previous[document.id]
            document.paper_scan_id = previous.get(PAPER_SCAN_BEFORE + document.id)
    keep_signed_sizes(folder)


def withdraw(session: Session, principal: Principal, folder_id: str, comment: str | None) -> Folder:
    """Withdraw a folder (retirer): its creator only, while it has not ended."""
    check_comment(comment)
    folder = folder_for(session, principal, folder_id, for_update=True)
    if folder.created_by != principal.username:
        raise Forbidden(message("seul le créateur du dossier peut le retirer"))
    if folder.status in circuits.ENDED_STATUSES:
        raise Conflict(
            message("le dossier est déjà clos (état : %(folder_status)s)", folder_status=status_name(folder.status)),
            folder_status=folder.status,
        )
    folder.status, folder.updated_at = WITHDRAWN, utcnow()
    actor = _user(principal)
    _event(session, folder, actor, "withdrawn", comment, {})
    audit_folder(session, folder, principal.actor, "parapheur.folder.withdrawn")
    events.folder_ended(session, folder, actor)
    session.commit()
    return folder


RESUMABLE_ROLES = ("main", "annex")  # a paper signature's scan belonged to the rejected circuit: not taken along


def resume_rejected(session: Session, principal: Principal, folder_id: str) -> Folder:
    """« Reprendre dans un nouveau dossier »: a new draft of the rejected folder's sous-type, with its title,
    metadata, external signers and documents (the same stored objects, as first deposited: no signature of the
    rejected circuit), to correct and send; commits.

    Both folders' histories name the other (details "resumed_in" and "resumed_from"), and the audit log too.
    Raises NotFound (a folder this user may not see), Conflict (not rejected, or resumed already in a folder still
    open), Forbidden (see :func:`may_resume`), InvalidInput (the sous-type's circuit changed its external steps).
    """
    old = folder_for(session, principal, folder_id, for_update=True)
    spec = _check_may_resume(session, principal, old)
    subtype = check_spec(session, principal, spec)
    folder = _new_folder(session, principal, spec, subtype, source=old.source)
    folder.ged_filing = old.ged_filing
    if old.source == "ged":  # the signed document goes back to the same GED document
        folder.ged_document_id, folder.ged_version = old.ged_document_id, old.ged_version
    kept_documents = sorted((d for d in old.documents if d.role in RESUMABLE_ROLES), key=lambda d: d.position)
    for position, document in enumerate(kept_documents):
        folder.documents.append(
            FolderDocument(
                role=document.role,
                position=position,
                filename=document.filename,
                media_type=document.media_type,
                key=document.key,  # content-addressed: the very bytes first deposited, not copied
                size=document.size,
                added_by=principal.username,
            )
        )
    session.flush()
    record_held_documents(session, folder)
    keys = [document.key for document in folder.documents]
    actor = _user(principal)
    comment = f"Reprise du dossier rejeté « {old.title} »"
    _event(session, folder, actor, "created", comment, {"resumed_from": old.id, "documents": keys})
    audit_folder(
        session, folder, principal.actor, "parapheur.folder.created", subtype=folder.subtype_id, resumed_from=old.id
    )
    _event(session, old, actor, "resumed", "Repris dans un nouveau dossier", {"resumed_in": folder.id})
    audit_folder(session, old, principal.actor, "parapheur.folder.resumed", resumed_in=folder.id)
    session.commit()
    return folder


def may_resume(session: Session, principal: Principal, folder: Folder) -> bool:
    """Whether this user may resume this folder now (:func:`resume_rejected`), asked by the folder's page."""
    if folder.status != REJECTED:
        return False
    try:
        check_spec(session, principal, _check_may_resume(session, principal, folder))
    except SocleError:
        return False
    return True


def _check_may_resume(session: Session, principal: Principal, folder: Folder) -> FolderSpec:
    """The rejected folder's creator, or a member of a desk of the creator's from which folders of its sous-type
    may be created (check_spec then checks the right to create as for any new folder)."""
    if folder.status != REJECTED:
        raise Conflict(
            message(
                "seul un dossier rejeté peut être repris dans un nouveau dossier (état : %(folder_status)s)",
                folder_status=status_name(folder.status),
            ),
            folder_status=folder.status,
        )
    if folder.subtype_id is None:
        raise Conflict(message("ce dossier n'a pas de sous-type : il ne peut pas être repris"))
    if folder.created_by != principal.username:
        subtype = config.get_subtype(session, folder.tenant_id, folder.subtype_id)
        shared = config.user_desk_ids(session, folder.tenant_id, folder.created_by) & config.user_desk_ids(
            session, folder.tenant_id, principal.username
        )
        if subtype.creator_desk_ids:
            shared &= set(subtype.creator_desk_ids)
        if not shared:
            raise Forbidden(message("seuls le créateur du dossier et les membres de son bureau peuvent le reprendre"))
    for event in session.execute(
        select(FolderEvent).where(FolderEvent.folder_id == folder.id, FolderEvent.action == "resumed")
    ).scalars():
        copy = session.get(Folder, (event.details or {}).get("resumed_in", ""))
        if copy is not None and copy.status not in (*circuits.ENDED_STATUSES, ERROR):
            raise Conflict(
                message(
                    "ce dossier a déjà été repris dans un nouveau dossier, toujours ouvert (état : %(folder_status)s)",
                    folder_status=status_name(copy.status),
                ),
                resumed_in=copy.id,
            )
    return FolderSpec(
        subtype_id=folder.subtype_id,
        title=folder.title,
        metadata=dict(folder.field_values or {}),
        external_signers=_draft_externals(folder),
        ged_filing=folder.ged_filing,
    )


def resumptions(session: Session, folder: Folder) -> tuple[str | None, list[str]]:
    """The folder this one resumes (None), and the folders that resume it, oldest first: ids from the history."""
    query = (
        select(FolderEvent)
        .where(FolderEvent.folder_id == folder.id, FolderEvent.action.in_(("created", "resumed")))
        .order_by(FolderEvent.at, FolderEvent.id)
    )
    resumed_from, resumed_in = None, []
    for event in session.execute(query).scalars():
        details = event.details or {}
        if event.action == "created" and details.get("resumed_from"):
            resumed_from = str(details["resumed_from"])
        elif event.action == "resumed" and details.get("resumed_in"):
            resumed_in.append(str(details["resumed_in"]))
    return resumed_from, resumed_in


def resend_external_link(session: Session, principal: Principal, folder_id: str) -> Folder:
    """A new one-time link for the current external signature, mailed to its signer (its creator or an
    administrator): the first link expired, or its mail was lost. The previous link dies with it."""
    folder = folder_for(session, principal, folder_id, for_update=True)
    if folder.created_by != principal.username and Role.ADMIN not in principal.roles:
        raise Forbidden(message("seul le créateur du dossier ou un administrateur peut renvoyer le lien"))
    step = folder.steps[folder.current_step] if folder.status == IN_PROGRESS else None
    if step is None or step.kind != "external_signature":
        raise Conflict(message("le dossier n'attend pas de signature externe : aucun lien à renvoyer"))
    if not step.external_email:
        raise Conflict(message("le signataire externe n'a pas d'adresse électronique : aucun lien à renvoyer"))
    events.step_started(session, folder, step)  # a new secret and its mail; the old secret's hash is replaced
    folder.updated_at = utcnow()
    recipient = step.external_email
    _event(session, folder, _user(principal), "external_link_resent", None, {"email": recipient})
    audit_folder(session, folder, principal.actor, "parapheur.folder.external_link_resent", email=recipient)
    session.commit()
    return folder


# ---------------------------------------------------------------------------------------------------------
# Annotations and opinions


def _involved(session: Session, principal: Principal, folder: Folder) -> bool:
    """The creator, an administrator, or a member (or current delegate) of a desk of the circuit."""
    if folder.created_by == principal.username or Role.ADMIN in principal.roles:
        return True
    held = config.user_desk_ids(session, folder.tenant_id, principal.username)
    desks = {d for step in folder.steps for d in step.desk_ids}
    delegated = {
        delegation.from_desk_id
        for delegation in config.active_delegations(session, folder.tenant_id)
        if delegation.to_desk_id in held
    }
    return bool(desks & (held | delegated))


def may_annotate(session: Session, principal: Principal, folder: Folder) -> bool:
    """Whether this user may annotate the folder (see :func:`annotate`)."""
    return _involved(session, principal, folder)


def annotate(session: Session, principal: Principal, folder_id: str, text: str, public: bool) -> Annotation:
    """Add a note, public or private (visible to its author only). Those involved in the folder only."""
    folder = folder_for(session, principal, folder_id, for_update=True)
    if not text.strip():
        raise InvalidInput(message("l'annotation est vide"))
    check_text(text, message("annotation"), multiline=True)
    if not _involved(session, principal, folder):
        raise Forbidden(message("seuls le créateur et les bureaux du circuit peuvent annoter ce dossier"))
    annotation = Annotation(
        folder_id=folder.id,
        author=principal.username,
        author_name=principal.display_name,
        text=text,
        public=public,
        step_position=folder.active_step,
    )
    session.add(annotation)
    session.flush()
    # A private note's text stays out of the history and the audit log, which others read.
    details = {"annotation": annotation.id, "public": public}
    _event(session, folder, _user(principal), "annotation", text if public else None, details)
    audit_folder(session, folder, principal.actor, "parapheur.annotation", public=public)
    session.commit()
    return annotation


def visible_annotations(session: Session, principal: Principal, folder: Folder) -> list[Annotation]:
    """The folder's annotations this user may see: the public ones and their own private ones."""
    query = (
        select(Annotation)
        .where(Annotation.folder_id == folder.id)
        .where(Annotation.public | (Annotation.author == principal.username))
        .order_by(Annotation.at)
    )
    return list(session.execute(query).scalars())


def ask_opinion(session: Session, principal: Principal, folder_id: str, desk_id: str, question: str) -> OpinionRequest:
    """Ask a desk for its opinion (demander un avis): a current actor only; the folder does not move."""
    folder, step, actor = current_for(session, principal, folder_id, None, completing=False)
    desk = config.get_desk(session, principal.tenant_id, desk_id)
    if not question.strip():
        raise InvalidInput(message("la question est vide"))
    check_text(question, message("question"), multiline=True)
    opinion = OpinionRequest(folder_id=folder.id, desk_id=desk.id, asked_by=principal.username, question=question)
    session.add(opinion)
    session.flush()
    _event(session, folder, actor, "opinion_requested", question, {"opinion": opinion.id, "desk": desk.name})
    audit_folder(session, folder, principal.actor, "parapheur.opinion_requested", desk=desk.name, step=step.position)
    session.commit()
    return opinion


def answer_opinion(
    session: Session, principal: Principal, folder_id: str, opinion_id: str, answer: str
) -> OpinionRequest:
    """A member of the asked desk answers, once."""
    folder = folder_for(session, principal, folder_id, for_update=True)
    opinion = session.execute(
        select(OpinionRequest).where(OpinionRequest.id == opinion_id, OpinionRequest.folder_id == folder.id)
    ).scalar_one_or_none()
    if opinion is None:
        raise NotFound(message("demande d'avis %(opinion_id)s introuvable", opinion_id=opinion_id))
    if folder.status != IN_PROGRESS:
        # An opinion informs the acts still to come: once the folder ended it would inform nothing.
        raise Conflict(
            message(
                "le dossier est clos (état : %(folder_status)s) : l'avis ne peut plus être donné",
                folder_status=status_name(folder.status),
            ),
            folder_status=folder.status,
        )
    desk = config.get_desk(session, principal.tenant_id, opinion.desk_id)
    if principal.username not in {member.username for member in desk.members}:
        raise Forbidden(
            message("seuls les membres du bureau « %(desk_name)s » peuvent donner cet avis", desk_name=desk.name)
        )
    if opinion.answered_at is not None:
        raise Conflict(message("cet avis a déjà été donné"))
    if not answer.strip():
        raise InvalidInput(message("l'avis est vide"))
    check_text(answer, message("avis"), multiline=True)
    opinion.answer, opinion.answered_by, opinion.answered_at = answer, principal.username, utcnow()
    actor = Actor(principal.username, principal.display_name, desk.id, desk.name)
    _event(session, folder, actor, "opinion_given", answer, {"opinion": opinion.id, "desk": desk.name})
    audit_folder(session, folder, principal.actor, "parapheur.opinion_given", desk=desk.name)
    session.commit()
    return opinion


def opinions_of(session: Session, folder: Folder) -> list[OpinionRequest]:
    """The folder's opinion requests, oldest first."""
    query = select(OpinionRequest).where(OpinionRequest.folder_id == folder.id).order_by(OpinionRequest.asked_at)
    return list(session.execute(query).scalars())


# ---------------------------------------------------------------------------------------------------------
# Reading


def get_folder(session: Session, tenant_id: str, folder_id: str, *, for_update: bool = False) -> Folder:
    """The tenant's folder with its steps, acts and documents; raises NotFound (also for another tenant's).

    ``for_update`` locks the folder's row and reads it all again once the lock is held, even if this session
    already holds it: acts decided on a copy read before the lock (a page checks the folder, then acts) would
    ignore what a concurrent act committed meanwhile, and sign or visa the same step twice.
    """
    query = (
        select(Folder)
        .where(Folder.id == folder_id, Folder.tenant_id == tenant_id)
        .options(selectinload(Folder.steps).selectinload(Step.acts), selectinload(Folder.documents))
    )
    if for_update:
        query = query.with_for_update(of=Folder).execution_options(populate_existing=True)
    folder = session.execute(query).scalar_one_or_none()
    if folder is None:
        raise NotFound(message("dossier %(folder_id)s introuvable", folder_id=folder_id))
    return folder


def folder_for(session: Session, principal: Principal, folder_id: str, *, for_update: bool = False) -> Folder:
    """The folder as :func:`get_folder`, if this user may see it (:mod:`parapheur.access`).

    Raises NotFound, the very answer given for an id that exists nowhere: a folder's existence is not revealed.
    """
    folder = get_folder(session, principal.tenant_id, folder_id, for_update=for_update)
    if not access.can_see(session, principal, folder):
        raise NotFound(message("dossier %(folder_id)s introuvable", folder_id=folder_id))
    return folder


def list_folders(
    session: Session,
    tenant_id: str,
    *,
    visible_to: Principal | None = None,
    status: str | None = None,
    subtype_id: str | None = None,
    late: bool = False,
    q: str | None = None,
    limit: int = 50,
    offset: int = 0,
    subtype_ids: Iterable[str] | None = None,
) -> list[Folder]:
    """The tenant's folders, newest activity first, filtered by status, sous-type, lateness, words of the title.

    :param visible_to: only the folders this user may see (:func:`parapheur.access.visible_clause`), in SQL.
    :param subtype_ids: only folders of these sous-types (the sous-types of a type, say).
    """
    query = select(Folder).where(Folder.tenant_id == tenant_id)
    if visible_to is not None:
        query = query.where(access.visible_clause(session, visible_to))
    if status:
        query = query.where(Folder.status == status)
    if subtype_id:
        query = query.where(Folder.subtype_id == subtype_id)
    if late:
        query = query.where(Folder.due_date < today(), Folder.status.not_in(circuits.ENDED_STATUSES))
    return _page(session, _narrowed(query, subtype_ids, q), limit, offset)


def _narrowed(query: Any, subtype_ids: Iterable[str] | None, q: str | None) -> Any:
    """``query`` on Folder, kept to these sous-types (None: all) and to titles containing ``q``."""
    if subtype_ids is not None:
        query = query.where(Folder.subtype_id.in_(list(subtype_ids)))
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(Folder.title.ilike(pattern, escape="\\"))
    return query


def _page(session: Session, query: Any, limit: int, offset: int) -> list[Folder]:
    """One page of folders, newest activity first, loaded with their steps, acts and documents."""
    query = (
        query.options(selectinload(Folder.steps).selectinload(Step.acts), selectinload(Folder.documents))
        .order_by(Folder.updated_at.desc(), Folder.id)
        .limit(limit)
        .offset(offset)
    )
    return list(session.execute(query).scalars())


def history(session: Session, principal: Principal, folder_id: str) -> list[FolderEvent]:
    """The folder's history (FolderEvent rows), in order; raises NotFound as :func:`folder_for`."""
    folder = folder_for(session, principal, folder_id)
    query = select(FolderEvent).where(FolderEvent.folder_id == folder.id).order_by(FolderEvent.at, FolderEvent.id)
    return list(session.execute(query).scalars())


def open_document(
    session: Session, principal: Principal, folder_id: str, document_id: str | None, *, read: bool = True
) -> FolderDocument:
    """A document of the folder in its current state (the first main one when ``document_id`` is None).

    Opening it (a download) records a ReadMark for this user and this state of the document (lecture
    obligatoire); ``read=False`` for a mere look at part of it (a page image that is not the last: see
    :func:`record_read`). Raises NotFound (unknown folder or document, or a folder this user may not see).
    """
    folder = folder_for(session, principal, folder_id)
    if document_id is None:
        documents = folder.main_documents
        if not documents:
            raise NotFound(message("ce dossier n'a pas encore de document"))
        document = documents[0]
    else:
        found = [document for document in folder.documents if document.id == document_id]
        if not found:
            raise NotFound(message("document %(document_id)s introuvable dans ce dossier", document_id=document_id))
        document = found[0]
    if read:
        _record_read(session, principal, folder, document)
    return document


def record_read(session: Session, principal: Principal, document: FolderDocument) -> None:
    """The user was shown the whole of ``document`` (its last page's image): it counts as read, as a download.

    Raises NotFound as :func:`folder_for`.
    """
    _record_read(session, principal, folder_for(session, principal, document.folder_id), document)


def _record_read(session: Session, principal: Principal, folder: Folder, document: FolderDocument) -> None:
    key = document.current_key
    known = session.execute(
        select(ReadMark.id).where(
            ReadMark.folder_id == folder.id, ReadMark.username == principal.username, ReadMark.document_key == key
        )
    ).first()
    if known is not None:
        return
    keys = ("folder_id", "username", "document_key")
    values = {"folder_id": folder.id, "username": principal.username, "document_key": key}
    if not insert_once(session, ReadMark, values, keys):
        return  # a concurrent request (a PDF viewer's parallel range requests) recorded this very reading
    _event(session, folder, _user(principal), "document_read", None, {"document": document.id, "sha256": key})
    audit_folder(session, folder, principal.actor, "parapheur.document_read", document=document.id, sha256=key)
    session.commit()


BOXES = ("to_act", "in_progress", "late", "delegated")


def desk_folders(
    session: Session,
    principal: Principal,
    desk_id: str,
    box: str,
    limit: int = 50,
    offset: int = 0,
    *,
    subtype_ids: Iterable[str] | None = None,
    q: str | None = None,
) -> list[Folder]:
    """A desk's box, for its members (or an administrator), narrowed as :func:`list_folders` does.

    to_act: the current step waits for this desk; late: the same, past their due date; in_progress: folders
    on their way whose circuit names this desk, not waiting for it now; delegated: the current step waits for
    a desk that delegates to this one now (for the folder's sous-type).
    """
    query = _narrowed(_box_query(session, principal, desk_id, box), subtype_ids, q)
    return _page(session, query, limit, offset)


def desk_box_count(session: Session, principal: Principal, desk_id: str, box: str) -> int:
    """How many folders a desk's box holds (checked as :func:`desk_folders`)."""
    query = _box_query(session, principal, desk_id, box)
    return int(session.execute(select(func.count()).select_from(query.subquery())).scalar_one())


def _box_query(session: Session, principal: Principal, desk_id: str, box: str) -> Any:
    desk = config.get_desk(session, principal.tenant_id, desk_id)
    if Role.ADMIN not in principal.roles and principal.username not in {m.username for m in desk.members}:
        raise Forbidden(
            message("seuls les membres du bureau « %(desk_name)s » voient ses dossiers", desk_name=desk.name)
        )
    if box not in BOXES:
        raise InvalidInput(
            message("corbeille inconnue : %(box)s (attendu : %(boxes)s)", box=box, boxes=", ".join(BOXES))
        )
    return select(Folder).where(
        Folder.tenant_id == principal.tenant_id, Folder.status == IN_PROGRESS, _box_clause(session, desk, box)
    )


def folder_titles(session: Session, principal: Principal, folder_ids: Iterable[str]) -> dict[str, str]:
    """The titles of those of ``folder_ids`` this user may see (a bulk operation's results, say)."""
    query = select(Folder.id, Folder.title).where(
        Folder.tenant_id == principal.tenant_id,
        Folder.id.in_(list(folder_ids)),
        access.visible_clause(session, principal),
    )
    return {row.id: row.title for row in session.execute(query)}


def _box_clause(session: Session, desk: Desk, box: str) -> ColumnElement[bool]:
    """SQL on Folder (in progress): the folders of this box of ``desk``."""
    if box == "to_act":
        return _waits_for(desk.id)
    if box == "late":
        return _waits_for(desk.id) & (Folder.due_date < today())
    if box == "in_progress":
        named = select(Step.id).where(Step.folder_id == Folder.id, access.names_desk(Step.desk_ids, desk.id))
        return named.exists() & ~_waits_for(desk.id)
    clauses = []
    for delegation in access.delegations_to(session, desk.tenant_id, [desk.id]):
        clause = _waits_for(delegation.from_desk_id)
        if delegation.subtype_ids:
            clause = clause & Folder.subtype_id.in_(delegation.subtype_ids)
        clauses.append(clause)
    return or_(*clauses) if clauses else false()


def _waits_for(desk_id: str) -> ColumnElement[bool]:
    """SQL on Folder: its current step names ``desk_id``, and that desk has not acted on it yet (live acts)."""
    acted = select(StepAct.id).where(
        StepAct.step_id == Step.id,
        StepAct.undone_at.is_(None),
        StepAct.action.in_(COMPLETING),
        func.coalesce(StepAct.on_behalf_of_desk_id, StepAct.desk_id) == desk_id,
    )
    current = select(Step.id).where(
        Step.folder_id == Folder.id,
        Step.position == Folder.current_step,
        access.names_desk(Step.desk_ids, desk_id),
        ~acted.exists(),
    )
    return current.exists()


# ---------------------------------------------------------------------------------------------------------
# Validating signed PDFs


def validate_upload(
    session: Session, tenant_id: str, stream: BinaryIO, data_stream: BinaryIO | None = None
) -> tuple[list[pades.SignatureReport], list[str]]:
    """Validation report of an uploaded signed file (PDF, PES, or detached CAdES with ``data_stream``, the file
    it signs), kept in temporary files within the upload limit, then removed.

    Chains are validated against the tenant's trust list. Nothing is fetched from the network: revocation is
    known from the validation data embedded in the document (B-LT and above).
    """
    settings = get_settings()
    spooled = []
    try:
        for upload in (stream, data_stream):
            if upload is not None:
                spooled.append(
                    spool(upload, settings.data_dir / "tmp", expected_sha256=None, max_size=settings.max_upload_bytes)
                )
        data_file = spooled[1].path if len(spooled) > 1 else None
        return verification.reports_for(spooled[0].path, tenant_trust_roots(session, tenant_id), data_file=data_file)
    finally:
        for item in spooled:
            item.path.unlink(missing_ok=True)


def tenant_trust_roots(session: Session, tenant_id: str) -> list[bytes]:
    """The tenant's trust list, and the certificates of its own signing identities (agents' and seals')."""
    anchors = select(TrustAnchor.certificate_der).where(TrustAnchor.tenant_id == tenant_id)
    own = select(SigningIdentity.certificate_der).where(SigningIdentity.tenant_id == tenant_id)
    return [*session.execute(anchors).scalars(), *session.execute(own).scalars()]


# ---------------------------------------------------------------------------------------------------------
# Paper signature: the scan, or photos of the signed pages


SCAN_DEFAULT_DPI = 300  # a photo's pixels at 300 dpi: an A4-ish page for a phone's 12 megapixels
SCAN_MIN_DPI = 100  # below, the resolution a file states is a camera's default (72), not a scanner's
SCAN_MAX_PIXELS = 80_000_000  # per image, checked before any pixel is decoded
_PDF_MAX_POINTS = 14_400.0  # 200 inches: the largest page a PDF reader accepts
_JPEG, _PNG = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"
# EXIF orientation → (matrix of the image's unit square on the page, page sides swapped), for an image of w × h
# points as stored: the JPEG's bytes stay as they are, the page shows it upright.
_ORIENTATIONS: dict[int, tuple[Callable[[float, float], tuple[float, ...]], bool]] = {
    1: (lambda w, h: (w, 0, 0, h, 0, 0), False),
    2: (lambda w, h: (-w, 0, 0, h, w, 0), False),
    3: (lambda w, h: (-w, 0, 0, -h, w, h), False),
    4: (lambda w, h: (w, 0, 0, -h, 0, h), False),
    5: (lambda w, h: (0, -w, -h, 0, h, w), True),
    6: (lambda w, h: (0, -w, h, 0, 0, w), True),
    7: (lambda w, h: (0, w, h, 0, 0, 0), True),
    8: (lambda w, h: (0, w, -h, 0, h, 0), True),
}


@contextmanager
def paper_scan(uploads: list[Upload]) -> Iterator[tuple[BinaryIO, str]]:
    """The paper signature's scan as one PDF and its file name: a PDF as it is, or photos of the signed pages
    (JPEG, PNG), one page each, in the order given.

    A JPEG is embedded as it is (DCTDecode, not encoded again); a PNG's pixels are compressed without loss. A
    page's size comes from the image's pixels and resolution (SCAN_DEFAULT_DPI when it states none, or a
    camera's); its EXIF orientation is applied. Raises InvalidInput naming the refused file: not a PDF, JPEG or
    PNG; several files with a PDF among them; an unreadable or too large image. Temporary files are removed.
    """
    if not uploads:
        raise InvalidInput(message("choisissez le scan du document signé"))
    settings = get_settings()
    spooled: list[Spooled] = []
    try:
        kinds = []
        for upload in uploads:
            item = spool(
                upload.stream, settings.data_dir / "tmp", expected_sha256=None, max_size=settings.max_upload_bytes
            )
            spooled.append(item)
            kinds.append(_scan_kind(item.path, upload.filename))
        if kinds == ["pdf"]:
            with spooled[0].path.open("rb") as handle:
                yield handle, uploads[0].filename
            return
        if "pdf" in kinds:
            raise InvalidInput(
                message("déposez soit un seul PDF, soit une ou plusieurs photos JPEG ou PNG, sans les mélanger")
            )
        target = settings.data_dir / "tmp" / f"scan-{new_id()}.pdf"
        spooled.append(Spooled(path=target, sha256="", size=0))
        _images_to_pdf([(item.path, upload.filename) for item, upload in zip(spooled, uploads, strict=False)], target)
        with target.open("rb") as handle:
            yield handle, f"{Path(uploads[0].filename).stem or 'signature-papier'}.pdf"
    finally:
        for item in spooled:
            item.path.unlink(missing_ok=True)


def _scan_kind(path: Path, filename: str) -> str:
    with path.open("rb") as handle:
        head = handle.read(1024)
    if b"%PDF-" in head:
        return "pdf"
    if head.startswith(_JPEG):
        return "jpeg"
    if head.startswith(_PNG):
        return "png"
    raise InvalidInput(
        message(
            "« %(filename)s » n'est ni un PDF ni une photo JPEG ou PNG : déposez le scan du document signé dans "
            "l'un de ces formats",
            filename=filename,
        )
    )


def _images_to_pdf(images: list[tuple[Path, str]], target: Path) -> None:
    pdf = pikepdf.new()
    for path, filename in images:
        try:
            with Image.open(path) as image:
                image_xobject, (width, height), dpi, orientation = _image_xobject(pdf, image, path, filename)
        except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
            raise InvalidInput(
                message("« %(filename)s » : cette image est illisible ou incomplète", filename=filename)
            ) from None
        w, h = width * 72.0 / dpi[0], height * 72.0 / dpi[1]
        shrink = min(1.0, _PDF_MAX_POINTS / max(w, h))
        w, h = w * shrink, h * shrink
        matrix, swapped = _ORIENTATIONS.get(orientation, _ORIENTATIONS[1])
        page = pdf.add_blank_page(page_size=(h, w) if swapped else (w, h))
        page.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image_xobject))
        numbers = " ".join(f"{value:.4f}" for value in matrix(w, h))
        page.Contents = pdf.make_stream(f"q {numbers} cm /Im0 Do Q".encode("ascii"))
    pdf.save(target)


def _image_xobject(
    pdf: pikepdf.Pdf, image: Image.Image, path: Path, filename: str
) -> tuple[pikepdf.Stream, tuple[int, int], tuple[float, float], int]:
    """The image as a PDF image XObject, its pixels, its resolution and the EXIF orientation left to apply."""
    width, height = image.size
    if width * height > SCAN_MAX_PIXELS:
        raise InvalidInput(
            message(
                "« %(filename)s » : image trop grande (%(pixels)s millions de pixels, %(max)s au plus)",
                filename=filename,
                pixels=width * height // 1_000_000,
                max=SCAN_MAX_PIXELS // 1_000_000,
            )
        )
    dpi = _scan_dpi(image.info.get("dpi"))
    if image.format == "JPEG":
        spaces = {"L": "/DeviceGray", "RGB": "/DeviceRGB", "CMYK": "/DeviceCMYK"}
        if image.mode not in spaces:
            raise InvalidInput(
                message("« %(filename)s » : couleurs de l'image non prises en charge", filename=filename)
            )
        fields: dict[str, Any] = {}
        if image.mode == "CMYK" and "adobe" in image.info:
            fields["Decode"] = pikepdf.Array([1, 0] * 4)  # Adobe's CMYK JPEGs are stored inverted
        orientation = int(image.getexif().get(0x0112, 1) or 1)
        stream = pikepdf.Stream(pdf, path.read_bytes())
        stream.Filter = pikepdf.Name.DCTDecode  # the JPEG's bytes as they are: decoded by the reader
        color_space = spaces[image.mode]
    else:
        image.load()
        upright = ImageOps.exif_transpose(image) or image
        width, height = upright.size
        if upright.mode in ("1", "L"):
            pixels = upright.convert("L")
        elif upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info:
            rgba = upright.convert("RGBA")
            pixels = Image.new("RGB", rgba.size, "white")
            pixels.paste(rgba, mask=rgba.getchannel("A"))  # a transparent background prints white
        else:
            pixels = upright.convert("RGB")
        stream = pikepdf.Stream(pdf, zlib.compress(pixels.tobytes(), 6))
        stream.Filter = pikepdf.Name.FlateDecode
        fields, orientation = {}, 1
        color_space = "/DeviceGray" if pixels.mode == "L" else "/DeviceRGB"
    stream.Type, stream.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
    stream.Width, stream.Height, stream.BitsPerComponent = width, height, 8
    stream.ColorSpace = pikepdf.Name(color_space)
    for name, value in fields.items():
        stream[f"/{name}"] = value
    return stream, (width, height), dpi, orientation


def _scan_dpi(stated: Any) -> tuple[float, float]:
    """The resolution an image states, each way, if a scanner's; else SCAN_DEFAULT_DPI."""
    try:
        x, y = (float(value) for value in stated)
    except (TypeError, ValueError):
        return float(SCAN_DEFAULT_DPI), float(SCAN_DEFAULT_DPI)
    if not (SCAN_MIN_DPI <= x <= 10_000 and SCAN_MIN_DPI <= y <= 10_000):
        return float(SCAN_DEFAULT_DPI), float(SCAN_DEFAULT_DPI)
    return x, y
