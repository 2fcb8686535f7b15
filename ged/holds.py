"""Legal holds (gels): while a hold is active, its documents cannot be modified, deleted, put in the trash,
purged or eliminated; every refusal names the hold. Holds are the archivist's (or the admin's)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ged import access, journal
from ged.models import Document, HeldDocument, Hold
from socle import audit
from socle.auth import Principal, Role
from socle.db import utcnow
from socle.errors import Conflict, InvalidInput, NotFound, message
from socle.text import check_text


def active_holds(session: Session, document_ids: list[str]) -> dict[str, list[str]]:
    """Document id → the names of the active holds on it (only held documents are keys)."""
    if not document_ids:
        return {}
    rows = session.execute(
        select(HeldDocument.document_id, Hold.name)
        .join(Hold, Hold.id == HeldDocument.hold_id)
        .where(HeldDocument.document_id.in_(document_ids), Hold.released_at.is_(None))
        .order_by(Hold.created_at)
    )
    held: dict[str, list[str]] = {}
    for document_id, name in rows:
        held.setdefault(document_id, []).append(name)
    return held


def check_not_held(session: Session, document: Document) -> None:
    """:raises Conflict: the document is under an active hold (409 naming the hold)."""
    names = active_holds(session, [document.id]).get(document.id)
    if names:
        raise Conflict(
            message(
                "document gelé par « %(hold_name)s » : aucune modification, suppression ni élimination",
                hold_name=names[0],
            ),
            holds=names,
        )


def create_hold(session: Session, principal: Principal, name: str, reason: str) -> Hold:
    principal.require(Role.ARCHIVISTE)
    # Checked here for every way in (API, pages): PostgreSQL refuses NUL, a blank name names nothing.
    check_text(name, message("nom du gel"))
    check_text(reason, message("motif du gel"), multiline=True)
    hold = Hold(tenant_id=principal.tenant_id, name=name.strip(), reason=reason, created_by=principal.username)
    session.add(hold)
    session.flush()
    _audit(session, principal, "ged.hold.created", hold, name=hold.name, reason=reason)
    session.commit()
    return hold


def get_hold(session: Session, tenant_id: str, hold_id: str, *, for_update: bool = False) -> Hold:
    query = select(Hold).where(Hold.id == hold_id, Hold.tenant_id == tenant_id)
    if for_update:
        query = query.with_for_update()
    hold = session.execute(query).scalar_one_or_none()
    if hold is None:
        raise NotFound(message("gel %(hold_id)s introuvable", hold_id=hold_id))
    return hold


def list_holds(session: Session, tenant_id: str, *, active_only: bool = False) -> list[Hold]:
    query = select(Hold).where(Hold.tenant_id == tenant_id)
    if active_only:
        query = query.where(Hold.released_at.is_(None))
    return list(session.execute(query.order_by(Hold.created_at.desc())).scalars())


def held_document_ids(session: Session, hold_id: str) -> list[str]:
    query = select(HeldDocument.document_id).where(HeldDocument.hold_id == hold_id).order_by(HeldDocument.added_at)
    return list(session.execute(query).scalars())


def add_documents(session: Session, principal: Principal, hold_id: str, document_ids: list[str]) -> Hold:
    """Put documents under an active hold (each once).

    :raises NotFound: a document the archivist cannot read, or of another tenant; Conflict: hold released.
    """
    from ged.service import get_document

    principal.require(Role.ARCHIVISTE)
    hold = get_hold(session, principal.tenant_id, hold_id, for_update=True)
    _check_active(hold)
    already = set(held_document_ids(session, hold.id))
    added: list[str] = []
    for document_id in dict.fromkeys(document_ids):
        document = get_document(session, principal.tenant_id, document_id, trashed=True)
        access.require(session, principal, document, "read")
        if document_id not in already:
            session.add(HeldDocument(hold_id=hold.id, document_id=document_id, added_by=principal.username))
            added.append(document_id)
    session.flush()
    _audit(session, principal, "ged.hold.documents_added", hold, documents=added)
    _documents_audit(session, principal, "ged.document.held", hold, added)
    session.commit()
    return hold


def remove_document(session: Session, principal: Principal, hold_id: str, document_id: str) -> Hold:
    principal.require(Role.ARCHIVISTE)
    hold = get_hold(session, principal.tenant_id, hold_id, for_update=True)
    _check_active(hold)
    row = session.execute(
        select(HeldDocument).where(HeldDocument.hold_id == hold.id, HeldDocument.document_id == document_id)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(
            message(
                "le document %(document_id)s n'est pas sous le gel « %(hold_name)s »",
                document_id=document_id,
                hold_name=hold.name,
            )
        )
    session.delete(row)
    _audit(session, principal, "ged.hold.document_removed", hold, document_id=document_id)
    _documents_audit(session, principal, "ged.document.unheld", hold, [document_id])
    session.commit()
    return hold


def release_hold(session: Session, principal: Principal, hold_id: str, reason: str) -> Hold:
    """Lift a hold, saying why: its documents are free again (unless another hold keeps them)."""
    principal.require(Role.ARCHIVISTE)
    if not reason.strip():
        raise InvalidInput(message("la raison de la levée du gel est obligatoire"))
    check_text(reason, message("raison de la levée du gel"), multiline=True)
    hold = get_hold(session, principal.tenant_id, hold_id, for_update=True)
    _check_active(hold)
    hold.released_at, hold.released_by, hold.release_reason = utcnow(), principal.username, reason.strip()
    documents = held_document_ids(session, hold.id)
    _audit(session, principal, "ged.hold.released", hold, documents=documents, reason=hold.release_reason)
    _documents_audit(session, principal, "ged.document.unheld", hold, documents, reason=hold.release_reason)
    session.commit()
    return hold


def _check_active(hold: Hold) -> None:
    if hold.released_at is not None:
        raise Conflict(message("le gel « %(hold_name)s » est levé", hold_name=hold.name))


def _documents_audit(
    session: Session, principal: Principal, action: str, hold: Hold, document_ids: list[str], **details: Any
) -> None:
    """The same act in each document's own history (its page reads the log by object), hold named."""
    for document_id in document_ids:
        journal.record_document(
            session,
            principal.tenant_id,
            principal.actor,
            action,
            document_id,
            hold_id=hold.id,
            hold=hold.name,
            **details,
        )


def _audit(session: Session, principal: Principal, action: str, hold: Hold, **details: Any) -> None:
    audit.record(
        session,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        action=action,
        object_type="hold",
        object_id=hold.id,
        details=details,
    )
