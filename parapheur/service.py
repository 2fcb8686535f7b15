"""Parapheur use cases: folders, their circuit (visa then signature), and signing identities.

A folder's state machine: awaiting_document → in_progress → completed | rejected; error when its document
cannot be used. Each act is checked against the current step's actor, recorded in the step, the audit log,
and, when the circuit ends on a GED document, sent back to the GED as a new version.
"""

from __future__ import annotations

import tempfile
from collections import OrderedDict
from pathlib import Path
from threading import Lock
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from parapheur import pades
from parapheur.models import Folder, SigningIdentity, Step
from parapheur.schemas import StepIn
from socle import audit, messages, secrets
from socle.auth import Principal
from socle.db import utcnow
from socle.errors import Conflict, Forbidden, InvalidInput, NotFound, ServiceUnavailable
from socle.models import Tenant, User
from socle.queue import enqueue
from socle.settings import get_settings
from socle.storage import StoredObject, get_store
from socle.storage.api import spool

AWAITING, IN_PROGRESS, COMPLETED, REJECTED, ERROR = "awaiting_document", "in_progress", "completed", "rejected", "error"


# ---------------------------------------------------------------------------------------------------------
# Creating folders


def create_from_ged(
    session: Session, principal: Principal, title: str, document_id: str, circuit: list[StepIn]
) -> Folder:
    folder = _new_folder(session, principal, title, circuit, source="ged")
    folder.ged_document_id = document_id
    folder.status = AWAITING
    session.flush()
    enqueue(
        session,
        messages.GED_SEND_TO_PARAPHEUR,
        key=f"ged.send:{folder.id}",
        tenant_id=principal.tenant_id,
        document_id=document_id,
        folder_id=folder.id,
    )
    _audit(session, principal.tenant_id, principal.actor, "parapheur.folder.created", folder, document=document_id)
    session.commit()
    return folder


def store_pdf_upload(stream: BinaryIO) -> StoredObject:
    """Keep an uploaded PDF, or refuse it before anything is stored if the parapheur cannot sign it."""
    return get_store().put(stream, max_size=get_settings().max_upload_bytes, check=_check_pdf_file)


def create_from_upload(
    session: Session, principal: Principal, title: str, stored: StoredObject, filename: str, circuit: list[StepIn]
) -> Folder:
    folder = _new_folder(session, principal, title, circuit, source="upload")
    folder.status = IN_PROGRESS
    folder.document_key, folder.document_size, folder.document_filename = stored.key, stored.size, filename
    session.flush()
    _audit(session, principal.tenant_id, principal.actor, "parapheur.folder.created", folder, sha256=stored.key)
    session.commit()
    return folder


def _new_folder(session: Session, principal: Principal, title: str, circuit: list[StepIn], source: str) -> Folder:
    _check_actors(session, principal.tenant_id, {step.actor for step in circuit})
    folder = Folder(tenant_id=principal.tenant_id, title=title, source=source, created_by=principal.username)
    folder.steps = [Step(position=index, kind=step.kind, actor=step.actor) for index, step in enumerate(circuit)]
    session.add(folder)
    return folder


def check_actors(session: Session, tenant_id: str, circuit: list[StepIn]) -> None:
    _check_actors(session, tenant_id, {step.actor for step in circuit})


def _check_actors(session: Session, tenant_id: str, usernames: set[str]) -> None:
    known = set(
        session.execute(
            select(User.username).where(User.tenant_id == tenant_id, User.username.in_(usernames), User.active)
        ).scalars()
    )
    unknown = sorted(usernames - known)
    if unknown:
        raise InvalidInput(f"acteur(s) inconnu(s) dans le circuit : {', '.join(unknown)}")


def _check_pdf_file(path: Path) -> None:
    try:
        pades.inspect_pdf(path)
    except pades.PdfError as exc:
        raise InvalidInput(str(exc)) from None


def _check_pdf(key: str) -> None:
    with get_store().local_path(key) as path:
        _check_pdf_file(path)


def attach_document(
    session: Session, tenant_id: str, folder_id: str, *, key: str, size: int, filename: str, version: int
) -> Folder:
    """The GED's answer: the folder gets its document, if it is a PDF the parapheur can sign."""
    folder = get_folder(session, tenant_id, folder_id, for_update=True)
    if folder.status != AWAITING:
        return folder  # already answered: a second run changes nothing
    folder.document_key, folder.document_size, folder.document_filename = key, size, filename
    folder.ged_version = version
    try:
        _check_pdf(key)
        folder.status = IN_PROGRESS
    except InvalidInput as exc:
        folder.status, folder.error = ERROR, exc.detail
    folder.updated_at = utcnow()
    _audit(session, tenant_id, "service:ged", "parapheur.folder.document_attached", folder, status=folder.status)
    session.commit()
    return folder


def mark_unavailable(session: Session, tenant_id: str, folder_id: str, reason: str) -> Folder:
    folder = get_folder(session, tenant_id, folder_id, for_update=True)
    if folder.status == AWAITING:
        folder.status, folder.error, folder.updated_at = ERROR, reason, utcnow()
        _audit(session, tenant_id, "service:ged", "parapheur.folder.document_unavailable", folder, reason=reason)
        session.commit()
    return folder


# ---------------------------------------------------------------------------------------------------------
# Acting on the current step


def visa(session: Session, principal: Principal, folder_id: str, comment: str | None) -> Folder:
    folder, step = _current_step_for(session, principal, folder_id, "visa")
    _complete_step(step, principal, comment)
    _audit(session, principal.tenant_id, principal.actor, "parapheur.visa", folder, step=step.position)
    _advance(session, folder)
    session.commit()
    return folder


def sign(session: Session, principal: Principal, folder_id: str, comment: str | None) -> Folder:
    folder, step = _current_step_for(session, principal, folder_id, "signature")
    identity = load_identity(session, principal.tenant_id, principal.username)
    request = pades.SignatureRequest(
        signer_name=principal.display_name, reason=f"Signature : {folder.title}"[:200], location=principal.tenant_name
    )
    signed = _sign_current_document(folder, identity, request)
    folder.signed_key = signed.key
    _complete_step(step, principal, comment)
    _audit(
        session,
        principal.tenant_id,
        principal.actor,
        "parapheur.signature",
        folder,
        step=step.position,
        sha256=signed.key,
        certificate=identity.subject_name,
    )
    _advance(session, folder)
    session.commit()
    return folder


def reject(session: Session, principal: Principal, folder_id: str, reason: str) -> Folder:
    if not reason.strip():
        raise InvalidInput("le motif du rejet est obligatoire")
    folder, step = _current_step_for(session, principal, folder_id, None)
    step.status, step.acted_by, step.acted_at, step.comment = REJECTED, principal.username, utcnow(), reason
    folder.status, folder.rejection_reason, folder.updated_at = REJECTED, reason, utcnow()
    _audit(session, principal.tenant_id, principal.actor, "parapheur.rejected", folder, reason=reason)
    session.commit()
    return folder


def _current_step_for(session: Session, principal: Principal, folder_id: str, kind: str | None) -> tuple[Folder, Step]:
    folder = get_folder(session, principal.tenant_id, folder_id, for_update=True)
    if folder.status != IN_PROGRESS:
        raise Conflict(f"le dossier n'attend aucune action (état : {folder.status})", folder_status=folder.status)
    step = folder.steps[folder.current_step]
    if step.actor != principal.username:
        raise Forbidden("vous n'êtes pas l'acteur de l'étape en cours de ce dossier")
    if kind is not None and step.kind != kind:
        raise Conflict(f"l'étape en cours attend : {step.kind}")
    return folder, step


def _complete_step(step: Step, principal: Principal, comment: str | None) -> None:
    step.status, step.acted_by, step.acted_at, step.comment = "done", principal.username, utcnow(), comment


def _advance(session: Session, folder: Folder) -> None:
    folder.updated_at = utcnow()
    if folder.current_step + 1 < len(folder.steps):
        folder.current_step += 1
        return
    folder.status = COMPLETED
    _audit(session, folder.tenant_id, "service:parapheur", "parapheur.folder.completed", folder)
    if folder.source == "ged" and folder.signed_key and folder.ged_document_id:
        enqueue(
            session,
            messages.GED_STORE_SIGNED_VERSION,
            key=f"ged.signed:{folder.id}",
            tenant_id=folder.tenant_id,
            document_id=folder.ged_document_id,
            folder_id=folder.id,
            object_key=folder.signed_key,
            size=get_store().size(folder.signed_key),
            filename=_signed_name(folder.document_filename or "document.pdf"),
            signatories=[step.acted_by or step.actor for step in folder.steps if step.kind == "signature"],
        )


def _signed_name(filename: str) -> str:
    stem = filename[:-4] if filename.lower().endswith(".pdf") else filename
    return f"{stem}-signe.pdf"


def _sign_current_document(
    folder: Folder, identity: pades.SigningIdentity, request: pades.SignatureRequest
) -> StoredObject:
    store = get_store()
    source_key = folder.signed_key or folder.document_key
    if source_key is None:
        raise Conflict("ce dossier n'a pas encore de document")
    work_dir = get_settings().data_dir / "tmp"
    work_dir.mkdir(parents=True, exist_ok=True)
    with store.local_path(source_key) as source, tempfile.TemporaryDirectory(dir=work_dir) as scratch:
        output = Path(scratch) / "signed.pdf"
        try:
            pades.sign_pdf(source, output, identity, request)
        except pades.PdfError as exc:
            raise InvalidInput(str(exc)) from None
        except pades.SigningError as exc:
            # A responder that is down is the service's problem, not the user's: the act may be retried.
            raise (ServiceUnavailable if exc.retryable else InvalidInput)(str(exc)) from None
        with output.open("rb") as stream:
            return store.put(stream)


def get_folder(session: Session, tenant_id: str, folder_id: str, *, for_update: bool = False) -> Folder:
    query = (
        select(Folder).where(Folder.id == folder_id, Folder.tenant_id == tenant_id).options(selectinload(Folder.steps))
    )
    if for_update:
        query = query.with_for_update(of=Folder)
    folder = session.execute(query).scalar_one_or_none()
    if folder is None:
        raise NotFound(f"dossier {folder_id} introuvable")
    return folder


def list_folders(session: Session, tenant_id: str, status: str | None, limit: int, offset: int) -> list[Folder]:
    query = select(Folder).where(Folder.tenant_id == tenant_id).options(selectinload(Folder.steps))
    if status:
        query = query.where(Folder.status == status)
    return list(session.execute(query.order_by(Folder.updated_at.desc()).limit(limit).offset(offset)).scalars())


def _audit(session: Session, tenant_id: str, actor: str, action: str, folder: Folder, **details: object) -> None:
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action=action,
        object_type="folder",
        object_id=folder.id,
        details={"title": folder.title, **details},
    )


# ---------------------------------------------------------------------------------------------------------
# Signing identities


def import_identity(
    session: Session, tenant: Tenant, username: str, pkcs12: bytes, passphrase: bytes
) -> SigningIdentity:
    """Keep a user's PKCS#12, encrypted; the passphrase too, so the server can sign on the user's act."""
    user = session.execute(
        select(User).where(User.tenant_id == tenant.id, User.username == username)
    ).scalar_one_or_none()
    if user is None:
        raise NotFound(f"utilisateur « {username} » inconnu")
    try:
        loaded = pades.SigningIdentity.from_pkcs12(pkcs12, passphrase)
    except pades.IdentityError as exc:
        raise InvalidInput(str(exc)) from None
    row = session.execute(
        select(SigningIdentity).where(SigningIdentity.tenant_id == tenant.id, SigningIdentity.username == username)
    ).scalar_one_or_none()
    if row is None:
        row = SigningIdentity(tenant_id=tenant.id, username=username)
        session.add(row)
    row.subject, row.certificate_der = loaded.subject_name, loaded.certificate_der
    row.pkcs12_encrypted, row.passphrase_encrypted = secrets.encrypt(pkcs12), secrets.encrypt(passphrase)
    session.flush()
    audit.record(
        session,
        tenant_id=tenant.id,
        actor="system",
        action="parapheur.identity.imported",
        object_type="user",
        object_id=user.id,
        details={"subject": loaded.subject_name},
    )
    return row


_LOADED: OrderedDict[tuple[str, str], pades.SigningIdentity] = OrderedDict()
_LOADED_LOCK = Lock()


def load_identity(session: Session, tenant_id: str, username: str) -> pades.SigningIdentity:
    """Decrypt and load a user's identity once per process: loading a key costs far more than signing."""
    row = session.execute(
        select(SigningIdentity).where(SigningIdentity.tenant_id == tenant_id, SigningIdentity.username == username)
    ).scalar_one_or_none()
    if row is None:
        raise Conflict("aucune identité de signature n'est enregistrée pour vous")
    cache_key = (row.id, row.subject + row.certificate_der.hex()[-32:])
    with _LOADED_LOCK:
        if cache_key in _LOADED:
            _LOADED.move_to_end(cache_key)
            return _LOADED[cache_key]
    identity = pades.SigningIdentity.from_pkcs12(
        secrets.decrypt(row.pkcs12_encrypted), secrets.decrypt(row.passphrase_encrypted)
    )
    with _LOADED_LOCK:
        _LOADED[cache_key] = identity
        while len(_LOADED) > 64:
            _LOADED.popitem(last=False)
    return identity


# ---------------------------------------------------------------------------------------------------------
# Validating signed PDFs


def validate_upload(session: Session, tenant_id: str, stream: BinaryIO) -> list[pades.SignatureReport]:
    """Validation report of an uploaded PDF, kept in a temporary file (within the upload limit) then removed.

    Trust roots, for now: the certificates of the tenant's registered signing identities (the tenant's trust
    list proper comes later). Nothing is fetched from the network: revocation is known from the validation
    data embedded in the document (B-LT and above), and says "unknown" otherwise.
    """
    settings = get_settings()
    spooled = spool(
        stream,
        settings.data_dir / "tmp",
        expected_sha256=None,
        max_size=settings.max_upload_bytes,
        check=_check_pdf_file,
    )
    try:
        return pades.validation_report(spooled.path, tenant_trust_roots(session, tenant_id))
    except pades.PdfError as exc:
        raise InvalidInput(str(exc)) from None
    finally:
        spooled.path.unlink(missing_ok=True)


def tenant_trust_roots(session: Session, tenant_id: str) -> list[bytes]:
    return list(
        session.execute(select(SigningIdentity.certificate_der).where(SigningIdentity.tenant_id == tenant_id)).scalars()
    )
