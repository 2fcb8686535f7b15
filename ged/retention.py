"""The end of a document's life: the archivist's retention view, eliminations, the trash purge and the
archive loop (documents accepted by the SAE).

Content leaves the store only when no other version of any document still needs the same bytes (the store
is content-addressed: two documents with the same bytes share one object) and no other service holds them
(the kernel's registry, socle.storage.ownership: a parapheur folder's copy of a document the GED sent it, a
flow's file). Each removal is proven in the audit log: which documents, the digests of every version, who,
when.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session, selectinload

from ged import access, holds, indexing, journal
from ged.models import Document, DocumentType, Elimination, HeldDocument, SearchEntry, Version
from ged.service import ARCHIVED, ELIMINATED, TRANSFERRED, get_document, trash_days
from socle import audit
from socle.auth import Principal, Role
from socle.dates import french_today
from socle.db import utcnow
from socle.errors import Conflict, Forbidden, InvalidInput, NotFound, message
from socle.models import AuditEntry
from socle.storage import get_store
from socle.storage.ownership import held_by_others, lock_object, release_held

log = logging.getLogger("ged.retention")

STATES = ("reached", "to_transfer", "to_eliminate")
TRANSFER_ACTIONS, DESTROY = ("keep", "sort"), "destroy"
PROPOSED, APPROVED, REFUSED, DONE = "proposed", "approved", "refused", "done"
SYSTEM = "service:ged"
HOLDER = "ged"  # the GED's name in the kernel's registry of held objects


# ---------------------------------------------------------------------------------------------------------
# Retention view


def retention_query(session: Session, principal: Principal, state: str) -> Any:
    """Documents at the end of their DUA: ``reached`` (all), ``to_transfer`` (final action keep or sort, not
    yet transferred) or ``to_eliminate`` (destroy; and archived documents of such a type: the GED copy).

    Only documents without a ``disposal`` are at the end of their DUA: one in a transfer in progress
    (« transferred ») is on no list until the SAE replies, and comes back if the transfer fails or is rejected."""
    if state not in STATES:
        raise InvalidInput(
            message("state : état inconnu « %(state)s » (reached, to_transfer ou to_eliminate)", state=state)
        )
    reached = Document.dua_ends_on <= french_today()
    query = (
        select(Document)
        .join(DocumentType, DocumentType.id == Document.type_id)
        .where(access.readable(session, principal), Document.deleted_at.is_(None))
    )
    active = Document.disposal.is_(None)
    if state == "reached":
        return query.where(reached, active)
    if state == "to_transfer":
        return query.where(reached, active, DocumentType.final_action.in_(TRANSFER_ACTIONS))
    return query.where(DocumentType.final_action == DESTROY, or_(reached & active, Document.disposal == ARCHIVED))


def retention_list(
    session: Session, principal: Principal, state: str, *, limit: int, offset: int
) -> tuple[list[tuple[Document, DocumentType, list[str]]], int]:
    """The archivist's view: each document with its type and the holds on it, oldest DUA end first."""
    principal.require(Role.ARCHIVISTE)
    query = retention_query(session, principal, state)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    documents = list(
        session.execute(
            query.options(selectinload(Document.versions))
            .order_by(Document.dua_ends_on, Document.id)
            .limit(limit)
            .offset(offset)
        ).scalars()
    )
    held = holds.active_holds(session, [document.id for document in documents])
    type_by_id = {
        t.id: t
        for t in session.execute(
            select(DocumentType).where(DocumentType.id.in_({d.type_id for d in documents}))
        ).scalars()
    }
    return [(d, type_by_id[d.type_id or ""], held.get(d.id, [])) for d in documents], total


def _eliminable(session: Session, document: Document) -> str | None:
    """Why this document cannot be proposed for elimination, or None.

    Archived (accepted by the SAE): its GED copy may go whatever its type's final action, as the archivist
    approves. In a transfer in progress: never, until the SAE has replied (it may refuse the transfer).
    """
    if document.disposal == ELIMINATED:
        return "déjà éliminé"
    if document.disposal == TRANSFERRED:
        return "il est dans un versement en cours : attendez la réponse du système d'archivage"
    if document.disposal == ARCHIVED:
        return None  # the GED copy of an archived document: the SAE keeps the archive
    if not _destroy_type(session, document):
        return "son type ne prévoit pas la destruction"
    if document.dua_ends_on is None or document.dua_ends_on > french_today():
        return "sa DUA n'est pas échue" if document.dua_ends_on else "sa DUA n'a pas commencé"
    return None


def _destroy_type(session: Session, document: Document) -> bool:
    document_type = session.get(DocumentType, document.type_id) if document.type_id else None
    return document_type is not None and document_type.final_action == DESTROY


# ---------------------------------------------------------------------------------------------------------
# Eliminations


def propose_elimination(
    session: Session, principal: Principal | None, document_ids: list[str], comment: str | None, *, tenant_id: str = ""
) -> Elimination:
    """Propose documents for elimination (an archivist, or the GED itself after an archiving).

    :raises InvalidInput: a document that cannot be eliminated (why, per document); Conflict: held.
    """
    if principal is not None:
        principal.require(Role.ARCHIVISTE)
        tenant_id = principal.tenant_id
    problems: list[str] = []
    for document_id in dict.fromkeys(document_ids):
        document = get_document(session, tenant_id, document_id, trashed=True)
        if principal is not None:
            access.require(session, principal, document, "read")
        holds.check_not_held(session, document)
        reason = _eliminable(session, document)
        if reason:
            problems.append(f"{document_id} : {reason}")
    if problems:
        raise InvalidInput("documents non éliminables : " + " ; ".join(problems))
    pending = _pending_for(session, tenant_id, document_ids)
    if pending:
        raise Conflict("déjà proposés à l'élimination : " + ", ".join(pending))
    elimination = Elimination(
        tenant_id=tenant_id,
        document_ids=list(dict.fromkeys(document_ids)),
        comment=comment,
        proposed_by=principal.username if principal else SYSTEM,
        proposed_at=utcnow(),
    )
    session.add(elimination)
    session.flush()
    _audit(
        session,
        tenant_id,
        principal.actor if principal else SYSTEM,
        "ged.elimination.proposed",
        elimination,
        documents=elimination.document_ids,
        comment=comment,
    )
    return elimination


def _pending_for(session: Session, tenant_id: str, document_ids: list[str]) -> list[str]:
    open_ones = session.execute(
        select(Elimination.document_ids).where(
            Elimination.tenant_id == tenant_id, Elimination.status.in_((PROPOSED, APPROVED))
        )
    ).scalars()
    taken = {document_id for ids in open_ones for document_id in ids}
    return [document_id for document_id in document_ids if document_id in taken]


def get_elimination(session: Session, tenant_id: str, elimination_id: str, *, for_update: bool = False) -> Elimination:
    query = select(Elimination).where(Elimination.id == elimination_id, Elimination.tenant_id == tenant_id)
    if for_update:
        query = query.with_for_update()
    elimination = session.execute(query).scalar_one_or_none()
    if elimination is None:
        raise NotFound(message("élimination %(elimination_id)s introuvable", elimination_id=elimination_id))
    return elimination


def list_eliminations(session: Session, principal: Principal, status: str | None = None) -> list[Elimination]:
    principal.require(Role.ARCHIVISTE)
    query = select(Elimination).where(Elimination.tenant_id == principal.tenant_id)
    if status:
        query = query.where(Elimination.status == status)
    return list(session.execute(query.order_by(Elimination.proposed_at.desc())).scalars())


def decide_elimination(
    session: Session, principal: Principal, elimination_id: str, approve: bool, comment: str | None
) -> Elimination:
    """Approve or refuse a proposal: by an archivist or admin other than the one who proposed it. A refusal
    gives its reason (``comment``): its documents come back among those to eliminate, with it (``refusals``).

    :raises Forbidden: the proposer decides; Conflict: already decided; InvalidInput: a refusal without reason.
    """
    principal.require(Role.ARCHIVISTE)
    elimination = get_elimination(session, principal.tenant_id, elimination_id, for_update=True)
    if elimination.status != PROPOSED:
        raise Conflict(
            message("élimination déjà traitée (état : %(elimination_status)s)", elimination_status=elimination.status)
        )
    if elimination.proposed_by == principal.username:
        raise Forbidden(
            message("une élimination est approuvée ou refusée par une autre personne que celle qui l'a proposée")
        )
    comment = (comment or "").strip() or None
    if not approve and comment is None:
        # The refused documents come back among those to eliminate: the reason is what the next person reads.
        raise InvalidInput(message("comment : le motif du refus est obligatoire"), field="comment")
    elimination.status = APPROVED if approve else REFUSED
    elimination.decided_by, elimination.decided_at = principal.username, utcnow()
    if comment:
        elimination.comment = f"{elimination.comment or ''}\n{principal.username} : {comment}".strip()
    action = "ged.elimination.approved" if approve else "ged.elimination.refused"
    _audit(session, principal.tenant_id, principal.actor, action, elimination, comment=comment)
    session.commit()
    return elimination


@dataclass(frozen=True)
class Refusal:
    """A refused elimination of a document: when, by whom, why (the refusal's own comment)."""

    elimination_id: str
    refused_at: datetime | None
    refused_by: str | None
    reason: str | None


def refusals(session: Session, tenant_id: str, document_ids: list[str]) -> dict[str, Refusal]:
    """The latest refused elimination of each of these documents (those never refused are absent). The reason
    is the refusal's comment as its audit entry keeps it (the elimination's ``comment`` gathers every one)."""
    wanted = set(document_ids)
    if not wanted:
        return {}
    refused = session.execute(
        select(Elimination)
        .where(Elimination.tenant_id == tenant_id, Elimination.status == REFUSED)
        .order_by(Elimination.decided_at, Elimination.id)
    ).scalars()
    latest: dict[str, Elimination] = {}
    for elimination in refused:
        for document_id in elimination.document_ids:
            if document_id in wanted:
                latest[document_id] = elimination  # a later refusal replaces an earlier one
    reasons = refusal_reasons(session, tenant_id, {elimination.id for elimination in latest.values()})
    return {
        document_id: Refusal(
            elimination.id, elimination.decided_at, elimination.decided_by, reasons.get(elimination.id)
        )
        for document_id, elimination in latest.items()
    }


def refusal_reasons(session: Session, tenant_id: str, elimination_ids: set[str]) -> dict[str, str]:
    """Refused elimination id → the reason its refusal gave (from the audit entry ``ged.elimination.refused``)."""
    if not elimination_ids:
        return {}
    entries = session.execute(
        select(AuditEntry.object_id, AuditEntry.details).where(
            AuditEntry.tenant_id == tenant_id,
            AuditEntry.object_type == "elimination",
            AuditEntry.object_id.in_(sorted(elimination_ids)),
            AuditEntry.action == "ged.elimination.refused",
        )
    )
    return {object_id: str(details["comment"]) for object_id, details in entries if (details or {}).get("comment")}


def carry_out_elimination(session: Session, principal: Principal, elimination_id: str) -> Elimination:
    """Eliminate the approved documents: content removed from the store (when no other version needs it),
    renditions removed, the record kept as a tombstone (disposal « eliminated »); proof in the audit log.

    Each document is checked again as it stands now, not as it stood when proposed: one held since, in a
    transfer since, or no longer eliminable (its type's DUA or final action changed, its dates changed) is
    kept, with the reason, in the proof and in its own history; it may be proposed again later. The others
    are eliminated: a hold on one document does not block the others for the length of a litigation.

    :raises Conflict: not approved, or no document of the elimination may be eliminated now (each reason).
    """
    principal.require(Role.ARCHIVISTE)
    elimination = get_elimination(session, principal.tenant_id, elimination_id, for_update=True)
    if elimination.status != APPROVED:
        raise Conflict(
            message(
                "seule une élimination approuvée peut être exécutée (état : %(elimination_status)s)",
                elimination_status=elimination.status,
            )
        )
    documents: list[Document] = []
    gone: list[str] = []
    for doc_id in elimination.document_ids:
        try:
            documents.append(get_document(session, principal.tenant_id, doc_id, for_update=True, trashed=True))
        except NotFound:  # removed for good meanwhile (a purge of an older release): nothing left to eliminate
            gone.append(doc_id)
    held = holds.active_holds(session, [document.id for document in documents])
    kept = {document.id: reason for document in documents if (reason := _kept_reason(session, document, held))}
    if len(kept) == len(documents):
        raise Conflict(
            message(
                "aucun document de cette élimination ne peut être éliminé maintenant : %(problems)s",
                problems=" ; ".join([*kept.values(), *(f"{doc_id} : introuvable" for doc_id in gone)]),
            )
        )
    now, keys = utcnow(), set[str]()
    proof: list[dict[str, Any]] = []
    kept_proof: list[dict[str, Any]] = []
    for document in documents:
        if document.id in kept:
            kept_proof.append(
                {"document_id": document.id, "title": document.current.title, "reason": str(kept[document.id])}
            )
            journal.record_document(
                session,
                principal.tenant_id,
                principal.actor,
                "ged.document.elimination_skipped",
                document.id,
                elimination_id=elimination.id,
                reason=str(kept[document.id]),
            )
            continue
        keys |= _content_keys(document)
        proof.append(_proof(session, document))
        for version in document.versions:
            version.text_key = version.preview_key = version.thumbnail_key = version.pdfa_key = None
        document.disposal, document.disposal_at = ELIMINATED, now
        journal.record_document(
            session,
            principal.tenant_id,
            principal.actor,
            "ged.document.eliminated",
            document.id,
            elimination_id=elimination.id,
            versions=proof[-1]["versions"],
        )
        indexing.index_document(session, document)
    elimination.status, elimination.done_at = DONE, now
    _release_unneeded(session, principal.tenant_id, keys)
    _audit(
        session,
        principal.tenant_id,
        principal.actor,
        "ged.elimination.done",
        elimination,
        documents=proof,
        kept=kept_proof,
        missing=gone,
        comment=elimination.comment,
        proposed_by=elimination.proposed_by,
        proposed_at=elimination.proposed_at.isoformat(),
        approved_by=elimination.decided_by,
        approved_at=elimination.decided_at.isoformat() if elimination.decided_at else None,
        at=now.isoformat(),
    )
    session.commit()
    remove_unreferenced(session, keys)
    return elimination


def _kept_reason(session: Session, document: Document, held: dict[str, list[str]]) -> str | None:
    """Why an approved document must not be eliminated now (a sentence naming it), or None."""
    title = document.current.title
    if document.id in held:
        return message("« %(title)s » est gelé par « %(hold_name)s »", title=title, hold_name=held[document.id][0])
    if document.disposal == TRANSFERRED:  # transferred since it was proposed: the SAE has not replied yet
        return message(
            "« %(title)s » est dans un versement en cours : il ne peut être éliminé qu'après la réponse du "
            "système d'archivage",
            title=title,
        )
    reason = _eliminable(session, document)
    if reason:
        return message("« %(title)s » n'est plus éliminable : %(reason)s", title=title, reason=reason)
    return None


def _proof(session: Session, document: Document) -> dict[str, Any]:
    """What the audit log keeps of a removed document: what it was, the rule that let it go, its digests."""
    document_type = session.get(DocumentType, document.type_id) if document.type_id else None
    return {
        "document_id": document.id,
        "title": document.current.title,
        "type": document_type.code if document_type else None,
        "final_action": document_type.final_action if document_type else None,
        "dua_months": document_type.dua_months if document_type else None,
        "dua_event": document_type.dua_event if document_type else None,
        "dua_ends_on": document.dua_ends_on.isoformat() if document.dua_ends_on else None,
        "disposal": document.disposal,  # « archived »: the GED copy of an archived document
        "sae_identifier": document.sae_identifier,
        "versions": [{"number": v.number, "sha256": v.object_key, "size": v.size} for v in document.versions],
    }


def _content_keys(document: Document) -> set[str]:
    keys: set[str] = set()
    for version in document.versions:
        keys |= {
            k
            for k in (
                version.object_key,
                version.text_key,
                version.preview_key,
                version.thumbnail_key,
                version.pdfa_key,
            )
            if k
        }
    return keys


# ---------------------------------------------------------------------------------------------------------
# Store clean-up


def referenced(session: Session, key: str) -> bool:
    """Whether the object must stay in the store: a version of any document, any tenant, still needs it (its
    content, unless the document was eliminated, or one of its renditions), or another service holds it for
    any tenant (the kernel's registry; a row of unknown holder counts)."""
    return _needed(session, key) or held_by_others(session, key, holder=HOLDER)


def _needed(session: Session, key: str, tenant_id: str | None = None) -> bool:
    """Whether a version still needs the object, as its content or one of its renditions: of any document, or of
    the tenant's documents only. An eliminated document needs neither: its bytes and its renditions went with
    the elimination (a rendition still named by one was attached by a job that ended after it)."""
    uses = or_(
        Version.object_key == key,
        Version.text_key == key,
        Version.preview_key == key,
        Version.thumbnail_key == key,
        Version.pdfa_key == key,
    )
    query = (
        select(Version.id)
        .join(Document, Document.id == Version.document_id)
        .where(uses, or_(Document.disposal.is_(None), Document.disposal != ELIMINATED))
    )
    if tenant_id is not None:
        query = query.where(Document.tenant_id == tenant_id)
    return session.execute(query.limit(1)).first() is not None


def _release_unneeded(session: Session, tenant_id: str, keys: set[str]) -> None:
    """The tenant's documents no longer need some objects (a purge, an elimination, in the caller's
    transaction, once its changes are made): the GED's rows for them in the kernel's registry go, so the
    tenant can no longer hand them to a flow through the GED. Those a version of the tenant still needs stay;
    other holders' rows stay."""
    session.flush()
    unneeded = sorted(key for key in keys if not _needed(session, key, tenant_id))
    release_held(session, tenant_id, *unneeded, holder=HOLDER)


def remove_unreferenced(session: Session, keys: set[str]) -> list[str]:
    """Delete from the store the objects no version needs any more and no other service holds (after the commit
    that freed them). Each is checked and deleted under its lock (ownership.lock_object): an upload of the same
    bytes that would refer to it meanwhile waits, then finds it gone (and says so) or keeps it."""
    removed: list[str] = []
    for key in sorted(keys):
        try:
            lock_object(session, key)
            if referenced(session, key):
                continue
            delete_object(key)
            removed.append(key)
        except Exception:  # an object left behind is only space; the records are already consistent
            log.exception("object %s could not be removed from the store", key)
        finally:
            session.rollback()  # the lock goes with the transaction
    return removed


def delete_object(key: str) -> None:
    """Remove an object from the store (the caller checked that nothing references it any more)."""
    get_store().delete(key)


# ---------------------------------------------------------------------------------------------------------
# Trash purge


@dataclass
class PurgeReport:
    purged: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)
    removed_objects: list[str] = field(default_factory=list)


def purge(session: Session, tenant_id: str | None = None, *, actor: str = SYSTEM) -> PurgeReport:
    """Remove for good the documents in the trash past the restore window, except those kept, with the
    reason: held, still under their DUA or with a DUA not started yet (its type has a rule, the starting
    event has no date), in a transfer in progress, in an open elimination proposal (the elimination decides,
    with its approval), or eliminated already (the record stays as the notice). Each document in its own
    transaction, checked again once locked: one restored, purged or trashed again meanwhile is left alone.

    :param tenant_id: one tenant, or every tenant when None.
    """
    query = select(Document.id, Document.tenant_id).where(
        Document.deleted_at.is_not(None), Document.deleted_at < _purge_limit()
    )
    if tenant_id is not None:
        query = query.where(Document.tenant_id == tenant_id)
    candidates = list(session.execute(query.order_by(Document.deleted_at)))
    session.rollback()
    report = PurgeReport()
    for document_id, owner in candidates:
        reason = _purge_one(session, owner, document_id, actor, report)
        if reason:
            report.kept[document_id] = reason
    return report


def _purge_limit() -> Any:
    return utcnow() - timedelta(days=trash_days())


def _purge_one(session: Session, tenant_id: str, document_id: str, actor: str, report: PurgeReport) -> str | None:
    try:
        document = get_document(session, tenant_id, document_id, for_update=True, trashed=True)
    except NotFound:  # purged meanwhile (another run of the purge)
        session.rollback()
        return None
    if document.deleted_at is None or document.deleted_at >= _purge_limit():
        session.rollback()  # restored meanwhile, or trashed again since: its window runs from then
        return None
    reason = _purge_kept(session, document)
    if reason:
        session.rollback()
        return reason
    keys, proof = _content_keys(document), _proof(session, document)
    journal.record_document(
        session,
        tenant_id,
        actor,
        "ged.document.purged",
        document.id,
        versions=proof["versions"],
        title=proof["title"],
        deleted_by=document.deleted_by,
        type=proof["type"],
        dua_ends_on=proof["dua_ends_on"],
    )
    session.execute(delete(SearchEntry).where(SearchEntry.document_id == document.id))
    session.execute(delete(HeldDocument).where(HeldDocument.document_id == document.id))  # released holds only
    session.delete(document)  # its versions go with it (cascade)
    _release_unneeded(session, tenant_id, keys)
    session.commit()
    report.purged.append(document_id)
    report.removed_objects += remove_unreferenced(session, keys)
    return None


def _purge_kept(session: Session, document: Document) -> str | None:
    """Why a trashed document past its window stays (the purge report's reason), or None."""
    held = holds.active_holds(session, [document.id]).get(document.id)
    if held:
        return f"gelé par « {held[0]} »"
    if document.disposal == ELIMINATED:
        return "éliminé : sa notice est gardée"
    if document.disposal == TRANSFERRED:
        return "dans un versement en cours : attendez la réponse du système d'archivage"
    if document.dua_ends_on is not None and document.dua_ends_on > french_today():
        return f"DUA en cours : échue le {document.dua_ends_on.isoformat()}"
    document_type = session.get(DocumentType, document.type_id) if document.type_id else None
    if document.dua_ends_on is None and document_type is not None and document_type.dua_months is not None:
        return "DUA non commencée : la date dont elle part n'est pas renseignée"
    if _pending_for(session, document.tenant_id, [document.id]):
        return "proposé à l'élimination : l'élimination en cours en décidera"
    return None


# ---------------------------------------------------------------------------------------------------------
# The archive loop


def mark_archived(session: Session, tenant_id: str, transfer_id: str, documents: list[dict[str, Any]]) -> list[str]:
    """The SAE accepted a transfer: its documents become « archived » with their SAE identifier; those
    whose type's final action is destroy are proposed for elimination of the GED copy (once; the GED copy of
    the others may be proposed by an archivist). Idempotent.

    :returns: the documents newly marked.
    """
    newly: list[Document] = []
    for item in documents:
        if not isinstance(item, dict) or not isinstance(item.get("document_id"), str):
            log.warning("transfer %s: malformed archived document %r skipped", transfer_id, item)
            continue
        try:
            document = get_document(session, tenant_id, item["document_id"], for_update=True, trashed=True)
        except NotFound:
            log.warning("archived document %s unknown in tenant %s", item.get("document_id"), tenant_id)
            continue
        if document.disposal == ELIMINATED or (
            document.disposal == ARCHIVED and document.archive_transfer_id == transfer_id
        ):
            continue  # done already: the job ran twice, or the copy is gone
        document.disposal, document.disposal_at = ARCHIVED, utcnow()
        raw = item.get("sae_identifier")
        document.sae_identifier = str(raw)[:200] if raw else None
        document.archive_transfer_id = transfer_id
        journal.record_document(
            session,
            tenant_id,
            "service:archive",
            "ged.document.archived",
            document.id,
            transfer_id=transfer_id,
            sae_identifier=document.sae_identifier,
        )
        indexing.index_document(session, document)
        newly.append(document)
    session.flush()
    to_destroy = [
        d.id
        for d in newly
        if _destroy_type(session, d) and _eliminable(session, d) is None and not holds.active_holds(session, [d.id])
    ]
    if to_destroy and not _pending_for(session, tenant_id, to_destroy):
        propose_elimination(
            session, None, to_destroy, f"Copie GED de documents archivés (versement {transfer_id})", tenant_id=tenant_id
        )
    session.commit()
    return [d.id for d in newly]


def _audit(session: Session, tenant_id: str, actor: str, action: str, elimination: Elimination, **details: Any) -> None:
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action=action,
        object_type="elimination",
        object_id=elimination.id,
        details=details,
    )
