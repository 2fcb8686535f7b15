"""Signature acts beside the server-side one: client-side (smart card, prepare/finish) and paper signature.

Client-side signing: ``prepare`` writes the PDF with its stamp and an empty signature container and returns
what the card must sign; ``finish`` puts the card's signature in and records the act. Between the two calls a
PreparedSignature row keeps pyHanko's state and the prepared PDF's key; it serves once, before it expires,
to the same user, while the folder still waits at the same step on the same document.

Signature papier: the agent prints, signs by hand and uploads the scan (a PDF), kept as a document of role
"scan" and, in a PAdES folder, made the signed version of its main document; the act is recorded as such (the
right not to use digital tools), by the signatory or, for them, by a member of the step's desks or the secrétariat.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from parapheur import circuits, config, pades, remote, service, signing
from parapheur.circuits import Actor
from parapheur.models import Desk, Folder, FolderDocument, PreparedSignature, Step
from parapheur.report import status_name
from socle.auth import Principal, Role
from socle.db import utcnow
from socle.errors import Conflict, Forbidden, InvalidInput, NotFound, ServiceUnavailable, message
from socle.models import User
from socle.settings import get_settings
from socle.storage import get_store
from socle.storage.api import spool
from socle.text import check_text

PREPARED_LIFETIME = timedelta(minutes=15)
MAX_CHAIN = 10


def decode_b64(value: str, what: str) -> bytes:
    """Strict base64. :raises InvalidInput: naming ``what``."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(message("%(what)s : base64 invalide", what=what)) from None


# ---------------------------------------------------------------------------------------------------------
# Client-side signing


def prepare(
    session: Session,
    principal: Principal,
    folder_id: str,
    certificate_der: bytes,
    chain_der: list[bytes],
    desk_id: str | None = None,
) -> tuple[PreparedSignature, remote.PreparedSignature]:
    """Prepare the folder's (single, PDF) main document for the card of ``principal``; commits.

    :raises InvalidInput: not a PAdES folder, several main documents, bad certificate or document.
    :raises Conflict/Forbidden: the folder does not wait for this user's signature (see service).
    """
    if len(chain_der) > MAX_CHAIN:
        raise InvalidInput(message("chaîne de certificats trop longue (%(max_chain)s au plus)", max_chain=MAX_CHAIN))
    folder, step, actor = service.current_for(session, principal, folder_id, ("signature",), desk_id)
    service.check_read(session, principal, folder)
    document = _single_pdf(folder)
    request = signing.signature_request(session, folder, actor)
    with signing.scratch_dir() as scratch, get_store().local_path(document.current_key) as source:
        prepared_pdf = scratch / "prepared.pdf"
        try:
            prepared = remote.prepare(source, prepared_pdf, certificate_der, chain_der, request)
        except (pades.PdfError, pades.IdentityError, pades.SigningError) as exc:
            raise InvalidInput(str(exc)) from None
        prepared_key = signing.put_file(prepared_pdf)
    row = PreparedSignature(
        tenant_id=folder.tenant_id,
        folder_id=folder.id,
        step_id=step.id,
        document_id=document.id,
        username=principal.username,
        desk_id=actor.desk_id,
        on_behalf_of_desk_id=actor.on_behalf_of_desk_id,
        source_key=document.current_key,
        prepared_key=prepared_key,
        state=prepared.state,
        expires_at=utcnow() + PREPARED_LIFETIME,
    )
    session.add(row)
    session.commit()
    return row, prepared


def finish(session: Session, principal: Principal, folder_id: str, prepared_id: str, signature_value: bytes) -> Folder:
    """Complete a prepared signature with the card's value, record the signature act; commits.

    :raises NotFound: unknown preparation. :raises Forbidden: another user's. :raises Conflict: expired, used, or
        the folder moved on since. :raises InvalidInput: the value does not match the certificate.
    :raises ServiceUnavailable: the timestamp authority is down (the preparation stays usable until it expires).
    """
    service.folder_for(session, principal, folder_id)  # a folder this user may not see: 404 before anything
    row = session.get(PreparedSignature, prepared_id)
    if row is None or row.folder_id != folder_id or row.tenant_id != principal.tenant_id:
        raise NotFound(message("signature préparée introuvable"))
    if row.username != principal.username:
        raise Forbidden(message("cette signature a été préparée par une autre personne"))
    # The step's desk the preparation was made for (the replaced one under delegation), not merely the first
    # free desk of the user's: someone holding two desks of the step prepared for one of them.
    step_desk = row.on_behalf_of_desk_id or row.desk_id
    folder, step, actor = service.current_for(session, principal, folder_id, ("signature",), step_desk)
    session.refresh(row)  # read again under the folder's lock: a finish running at the same time may have used it
    _check_still_valid(row, folder, step, actor)
    document = next(doc for doc in folder.documents if doc.id == row.document_id)
    state_level = _state_level(row.state)
    with signing.scratch_dir() as scratch, get_store().local_path(row.prepared_key) as prepared_pdf:
        output = scratch / "signed.pdf"
        try:
            remote.finish(prepared_pdf, row.state, signature_value, output, signing.trust_services())
        except pades.SigningError as exc:
            raise (ServiceUnavailable if exc.retryable else InvalidInput)(str(exc)) from None
        except pades.PdfError as exc:
            raise InvalidInput(str(exc)) from None
        previous = {document.id: document.signed_key}
        document.signed_key = signing.put_file(output)
    row.used_at = utcnow()
    signing.after_signing(session, folder, actor, [state_level])
    service.record_act(session, folder, step, actor, "signature", "Signature par carte (poste de l'agent)", previous)
    session.commit()
    return folder


def _single_pdf(folder: Folder) -> FolderDocument:
    if folder.signature_format != signing.PADES:
        raise InvalidInput(
            message("la signature par carte sur le poste de l'agent n'est possible que pour un PDF (PAdES)")
        )
    documents = folder.main_documents
    if len(documents) != 1:
        raise InvalidInput(message("la signature par carte demande un seul document principal"))
    return documents[0]


def _check_still_valid(row: PreparedSignature, folder: Folder, step: Step, actor: Actor) -> None:
    if row.used_at is not None:
        raise Conflict(message("cette signature préparée a déjà servi : préparez-en une nouvelle"))
    if row.expires_at <= utcnow():
        raise Conflict(message("la signature préparée a expiré : préparez-en une nouvelle"))
    if row.step_id != step.id or (row.desk_id, row.on_behalf_of_desk_id) != (
        actor.desk_id,
        actor.on_behalf_of_desk_id,
    ):
        raise Conflict(message("le dossier a changé d'étape depuis la préparation : préparez une nouvelle signature"))
    document = next((doc for doc in folder.documents if doc.id == row.document_id), None)
    if document is None or document.current_key != row.source_key:
        raise Conflict(message("le document a changé depuis la préparation : préparez une nouvelle signature"))


def _state_level(state: bytes) -> pades.SignatureLevel:
    try:
        return "B-T" if json.loads(state).get("level") == "B-T" else "B-B"
    except (ValueError, AttributeError):
        return "B-B"


# ---------------------------------------------------------------------------------------------------------
# Paper signature


@dataclass(frozen=True)
class PaperSignatory:
    """Who signed by hand, when not the person who records the scan: a member of one of the step's desks
    (``username``: their account), or anyone named (``name``: the mayor who uses no digital tool); and the day
    they signed (``signed_on``, today by default)."""

    username: str | None = None
    name: str | None = None
    signed_on: date | None = None


@dataclass(frozen=True)
class _PaperContext:
    folder: Folder
    step: Step
    actor: Actor  # who records the act, for which desk of the step
    name: str | None = None  # who signed by hand, when someone else records it
    username: str | None = None


def accepts_paper(folder: Folder, step: Step) -> bool:
    """The step may be signed on paper: a paper signature step, or a signature step whose sous-type allowed
    paper as an alternative when the folder was sent (never for a PES, see ``Subtype.paper_allowed``)."""
    return step.kind == "paper_signature" or (
        step.kind == "signature" and step.paper_allowed and folder.signature_format != signing.XADES
    )


def may_record_for_others(session: Session, principal: Principal, folder: Folder) -> bool:
    """Who may record the paper signature of the step's signatory, for them (« signature papier de … »), besides
    the members of the step's desks and their delegates (who act at the step, see :func:`paper_context`): users
    of the ``secretariat`` role, and administrators (who hold every role). They must see the folder, as for any
    act. Not the folder's creator nor its creating desk as such: they would sign « signature papier du maire »
    with any PDF, at any paper step, without the collectivité having said so."""
    return Role.SECRETARIAT in principal.roles or Role.ADMIN in principal.roles


def paper_context(
    session: Session,
    principal: Principal,
    folder_id: str,
    desk_id: str | None = None,
    signatory: PaperSignatory | None = None,
) -> _PaperContext:
    """The folder (locked), its current step, who records the paper signature for which of its desks, and who
    signed by hand when it is someone else; checked as any act (state, who, step, mandatory metadata).

    :raises NotFound: a folder this user may not see; an unknown signatory.
    :raises Conflict: the folder waits for no paper signature, or the desks already signed.
    :raises Forbidden: the user may neither sign for the step nor record it for its signatory.
    :raises InvalidInput: the step's mandatory metadata are missing; the signatory is not of the step's desks.
    """
    signatory = signatory or PaperSignatory()
    named = bool(signatory.name) or bool(signatory.username and signatory.username != principal.username)
    if not named:
        try:
            folder, step, actor = service.current_for(session, principal, folder_id, None, desk_id)
        except Forbidden:
            folder = service.folder_for(session, principal, folder_id)
            waiting = folder.steps[folder.current_step] if folder.status == service.IN_PROGRESS else None
            if waiting and accepts_paper(folder, waiting) and may_record_for_others(session, principal, folder):
                # Not for themselves: they may only record it for its signatory, whom they must name.
                raise Forbidden(
                    message("vous n'êtes pas attendu à cette étape : indiquez qui a signé le document papier")
                ) from None
            raise
        _check_accepts_paper(folder, step)
        return _PaperContext(folder, step, actor)
    if desk_id is not None:
        check_text(desk_id, message("bureau"))  # before any query: PostgreSQL refuses a NUL
    folder = service.folder_for(session, principal, folder_id, for_update=True)
    if folder.status != service.IN_PROGRESS:
        raise Conflict(
            message(
                "le dossier n'attend aucune action (état : %(folder_status)s)",
                folder_status=status_name(folder.status),
            ),
            folder_status=folder.status,
        )
    step = folder.steps[folder.current_step]
    _check_accepts_paper(folder, step)
    if not may_record_for_others(session, principal, folder) and not _acts_for(session, principal, folder, step):
        raise Forbidden(
            message(
                "seuls les membres des bureaux de l'étape (ou leurs suppléants), le secrétariat et les "
                "administrateurs peuvent enregistrer la signature papier d'une autre personne"
            )
        )
    desk, username, name = _signatory_desk(session, folder, step, desk_id, signatory)
    missing = circuits.missing_metadata(step.mandatory_metadata or [], folder.field_values or {})
    if missing:
        raise InvalidInput(
            message("métadonnée(s) obligatoire(s) pour agir à cette étape : %(missing)s", missing=", ".join(missing)),
            missing=missing,
        )
    actor = Actor(principal.username, principal.display_name, desk.id, desk.name, stamp_role=desk.stamp_role)
    return _PaperContext(folder, step, actor, name, username)


def _check_accepts_paper(folder: Folder, step: Step) -> None:
    if not accepts_paper(folder, step):
        raise Conflict(
            message("l'étape en cours attend : %(step_kind_label)s", step_kind_label=circuits.STEP_KINDS[step.kind]),
            step_kind=step.kind,
        )


def _acts_for(session: Session, principal: Principal, folder: Folder, step: Step) -> bool:
    try:
        service.acting_actor(session, principal, folder, step)
    except (Forbidden, Conflict):
        return False
    return True


def _signatory_desk(
    session: Session, folder: Folder, step: Step, desk_id: str | None, signatory: PaperSignatory
) -> tuple[Desk, str | None, str]:
    """The step's desk the paper signature counts for, and the signatory's username (if any) and full name.

    A signatory named by account must be a member of that desk; a desk is the one asked, else the first of the
    step's desks that has not signed yet (of the signatory's, for a signatory named by account)."""
    acted = service.acted_desks(step)
    free = [d for d in step.desk_ids if d not in acted and (desk_id is None or d == desk_id)]
    username, name = signatory.username, (signatory.name or "").strip()
    if username:
        user = session.execute(
            select(User).where(User.tenant_id == folder.tenant_id, User.username == username, User.active)
        ).scalar_one_or_none()
        if user is None:
            raise NotFound(message("signataire %(username)s introuvable", username=username))
        held = config.user_desk_ids(session, folder.tenant_id, username)
        free = [d for d in free if d in held]
        name = name or user.display_name or username
        if not free:
            raise InvalidInput(
                message(
                    "%(name)s n'est membre d'aucun bureau attendu à l'étape en cours : nommez le signataire sans "
                    "choisir de compte",
                    name=name,
                )
            )
    if not free:
        if desk_id is not None and desk_id in step.desk_ids:
            raise Conflict(message("ce bureau a déjà signé cette étape"))
        if desk_id is not None:
            raise InvalidInput(message("ce bureau n'est pas attendu à l'étape en cours"))
        raise Conflict(message("tous les bureaux attendus à cette étape ont déjà signé"))
    return config.get_desk(session, folder.tenant_id, free[0]), username or None, name


def _checked_signatory(signatory: PaperSignatory | None) -> PaperSignatory:
    """The signatory's name (one line, 200 characters at most) and the day they signed: not after today."""
    signatory = signatory or PaperSignatory()
    if signatory.name is not None:
        check_text(signatory.name, message("nom du signataire"), required=False)
        if len(signatory.name.strip()) > 200:
            raise InvalidInput(message("nom du signataire : 200 caractères au plus"))
    if signatory.username is not None:
        check_text(signatory.username, message("signataire"))
    if signatory.signed_on is not None and signatory.signed_on > service.today():
        raise InvalidInput(message("la date de la signature papier ne peut pas être dans le futur"))
    return signatory


def paper_signature(
    session: Session,
    principal: Principal,
    folder_id: str,
    scan: BinaryIO,
    filename: str,
    comment: str | None,
    desk_id: str | None = None,
    signatory: PaperSignatory | None = None,
    document_id: str | None = None,
) -> Folder:
    """Record a handwritten signature, its scan (a PDF) given; commits.

    The scan joins the folder (role "scan", as uploaded) and, in a PAdES folder, becomes the signed version of the
    main document it is the scan of (``document_id``, needed only when there are several): the document shown,
    downloaded, signed by later steps and sent to the GED; its original stays, unsigned. The signatory is the user
    recording it, or the person ``signatory`` names, for whom a member of the step's desks or the secrétariat
    records it (:func:`may_record_for_others`). Nothing claims an electronic signature: the act, its history
    line and its audit entry say « signature papier », who signed, when, and who recorded it.

    :raises InvalidInput: the scan is not a readable PDF; no document chosen among several; a bad signatory.
    :raises Conflict/Forbidden/NotFound: see :func:`paper_context`.
    """
    service.check_comment(comment)
    signatory = _checked_signatory(signatory)
    context = paper_context(session, principal, folder_id, desk_id, signatory)
    _signed_document(context.folder, document_id)  # refused before the upload is read
    settings = get_settings()
    session.rollback()  # no lock held while the upload is spooled and checked
    spooled = spool(
        scan, settings.data_dir / "tmp", expected_sha256=None, max_size=settings.max_upload_bytes, check=_check_pdf
    )
    try:
        with spooled.path.open("rb") as handle:
            stored = get_store().put(handle)
    finally:
        spooled.path.unlink(missing_ok=True)
    context = paper_context(session, principal, folder_id, desk_id, signatory)
    folder, step, actor = context.folder, context.step, context.actor
    target = _signed_document(folder, document_id)
    position = max((doc.position for doc in folder.documents), default=-1) + 1
    scan_document = FolderDocument(
        role="scan",
        position=position,
        filename=filename,
        media_type="application/pdf",
        key=stored.key,
        size=stored.size,
        added_by=principal.username,
    )
    folder.documents.append(scan_document)
    session.flush()
    # {scan id: None}: the scan did not exist before the act, and a droit de remords takes it out with the act;
    # the document it signs gets back its version (and earlier scan) before.
    previous: dict[str, str | None] = {scan_document.id: None}
    if target is not None:
        previous[target.id] = target.signed_key
        previous[service.PAPER_SCAN_BEFORE + target.id] = target.paper_scan_id
        target.signed_key = stored.key
        target.signed_size, target.paper_scan_id = stored.size, scan_document.id
    signed_on = signatory.signed_on or (service.today() if context.name else None)
    details = {
        "scan": scan_document.id,
        "document": target.id if target is not None else None,
        "signatory": context.name,
        "signatory_username": context.username,
        "signed_on": signed_on.isoformat() if signed_on else None,
    }
    service.record_act(
        session,
        folder,
        step,
        actor,
        "paper_signature",
        _paper_comment(filename, comment, context, signed_on),
        previous_keys=previous,
        details={name: value for name, value in details.items() if value is not None},
        act_values={"signatory_name": context.name, "signatory_username": context.username, "signed_on": signed_on},
    )
    session.commit()
    return folder


def _signed_document(folder: Folder, document_id: str | None) -> FolderDocument | None:
    """The main document the scan becomes the signed version of: a PAdES folder's (the one named, or the only
    one). None for another format: a detached (CAdES) or enveloped (XAdES) signature signs the file as received,
    which a scan is not; the scan then stays beside it.

    :raises InvalidInput: several main documents and none named, or one that is not a main document.
    """
    if folder.signature_format != signing.PADES:
        return None
    mains = folder.main_documents
    if document_id is None:
        if len(mains) > 1:
            raise InvalidInput(
                message("ce dossier a plusieurs documents principaux : choisissez celui dont c'est le scan signé")
            )
        return mains[0] if mains else None
    found = next((document for document in mains if document.id == document_id), None)
    if found is None:
        raise InvalidInput(
            message("document %(document_id)s : pas un document principal de ce dossier", document_id=document_id)
        )
    return found


def _paper_comment(filename: str, comment: str | None, context: _PaperContext, signed_on: date | None) -> str:
    """The history's words: a handwritten signature, whose if recorded for someone, when, and its scan."""
    day = signed_on.strftime("%d/%m/%Y") if signed_on else None
    if context.name:
        quality = context.actor.stamp_role or context.actor.desk_name
        text = f"Signature papier de {context.name}" + (f", {quality}" if quality else "")
        text += f", le {day}, enregistrée par {context.actor.display_name} ; scan : {filename}"
    else:
        text = "Signature manuscrite" + (f" du {day}" if day else "") + f" ; scan : {filename}"
    return text + (f" — {comment}" if comment else "")


def _check_pdf(path: Path) -> None:
    try:
        pades.inspect_pdf(path)
    except pades.PdfError as exc:
        raise InvalidInput(message("le scan de la signature papier : %(exc)s", exc=exc)) from None
