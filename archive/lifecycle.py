"""A sent transfer's life after its deposit: the archival system's Acknowledgement, then its ArchiveTransferReply.

delivered (or still sending: the connector's receipt and the SAE's first message may arrive in either order; or
delivery_failed: a delivery resumed in interop went through, its receipt not yet recorded) → acknowledged →
accepted | rejected. Every message received is kept (``archive_sae_messages``), with its refusal reason when it
does not belong to the transfer; the same stored message twice is recorded once, the same message (same
identifier) stored again is refused as already received.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive import replies
from archive.models import SaeMessage, Transfer
from archive.service import audit_transfer, get_transfer, tell_ged_transfer_ended
from archive.statuses import (
    ABANDONED,
    ACCEPTED,
    ACKNOWLEDGED,
    DELIVERED,
    DELIVERY_FAILED,
    REJECTED,
    SENDING,
    STATUS_LABELS,
)
from socle import messages
from socle.db import utcnow
from socle.errors import InvalidInput, message
from socle.queue import enqueue
from socle.storage import check_key, get_store

# Where each kind of message may move a transfer from. The SAE only answers a package it has: a message for a
# transfer whose delivery failed means the delivery, resumed, went through (its receipt comes after).
AWAITING: dict[str, tuple[str, ...]] = {
    "acknowledgement": (SENDING, DELIVERED, DELIVERY_FAILED),
    "reply": (SENDING, DELIVERED, DELIVERY_FAILED, ACKNOWLEDGED),
}
# The reply code column's width (archive_transfers.reply_code, archive_sae_messages.reply_code).
CODE_COLUMN = 50
RECORDED, REFUSED = "recorded", "refused"
ACTOR = "service:interop"


def record_sae_message(
    session: Session, tenant_id: str, transfer_id: str, message_kind: str, object_key: str, size: int
) -> Transfer:
    """Record a SEDA message of the archival system (stored under ``object_key``) and move the transfer on.

    Raises NotFound for a transfer of another tenant (nothing recorded) and InvalidInput for an unknown kind
    or object key. A message that does not fit the transfer is recorded as refused, with its French reason.
    """
    if message_kind not in AWAITING:
        raise InvalidInput(
            message(
                "type de message inconnu : %(message_kind)s (acknowledgement ou reply attendu)",
                message_kind=repr(message_kind),
            )
        )
    check_key(object_key)
    transfer = get_transfer(session, tenant_id, transfer_id, for_update=True)
    if _already_recorded(session, transfer.id, message_kind, object_key):
        return transfer  # the same message again: recorded once
    record = SaeMessage(
        tenant_id=tenant_id, transfer_id=transfer.id, kind=message_kind, object_key=object_key, size=size
    )
    try:
        received = replies.parse_sae_message(_read(object_key, size))
        _fill(record, received)
        refusal = _refusal(session, transfer, message_kind, received)
    except replies.ReplyError as error:
        received, refusal = None, str(error)
    session.add(record)  # once its refusal is known: the queries above must not flush it unfinished
    if received is None or refusal is not None:
        _refuse(session, transfer, record, refusal or "Message refusé.")
    else:
        record.status = RECORDED
        _apply(session, transfer, received)
    session.commit()
    return transfer


def _already_recorded(session: Session, transfer_id: str, kind: str, object_key: str) -> bool:
    query = select(SaeMessage.id).where(
        SaeMessage.transfer_id == transfer_id, SaeMessage.kind == kind, SaeMessage.object_key == object_key
    )
    return session.execute(query).first() is not None


def _refuse(session: Session, transfer: Transfer, record: SaeMessage, reason: str) -> None:
    """Keep the message and why it was refused; the transfer's state does not change."""
    record.status, record.refusal = REFUSED, reason
    transfer.updated_at = utcnow()
    details = {"kind": record.kind, "object_key": record.object_key, "reason": reason}
    audit_transfer(session, ACTOR, "archive.transfer.sae_message_refused", transfer, **details)


def _read(object_key: str, size: int) -> bytes:
    """The stored message, never more than the limit: a larger one is refused unread."""
    limit = replies.MAX_MESSAGE_BYTES
    if size > limit:
        raise replies.ReplyError(f"Message refusé : {size} octets, plus que la limite de {limit}.")
    with get_store().open(object_key) as stream:
        return stream.read(limit + 1)


def _fill(record: SaeMessage, message: replies.SaeMessage) -> None:
    record.message_identifier = message.message_identifier[:200]
    record.request_identifier = message.request_identifier[:200]
    record.reply_code = message.reply_code[:CODE_COLUMN] if message.reply_code else None
    record.summary = message.summary()


# The kinds of message as the refusals name them: « c'est une réponse », « n'attend pas d'accusé ».
_A_KIND = {"acknowledgement": "un accusé de réception", "reply": "une réponse au transfert"}
_NO_KIND = {"acknowledgement": "d'accusé de réception", "reply": "de réponse au transfert"}


def _refusal(session: Session, transfer: Transfer, kind: str, message: replies.SaeMessage) -> str | None:
    """Why this message cannot move this transfer, in French; None when it can."""
    if message.kind != kind:
        return f"Message refusé : annoncé comme {replies.KIND_LABELS[kind]} mais c'est {_A_KIND[message.kind]}."
    if message.request_identifier != transfer.message_identifier:
        refusal = _request_refusal(transfer, message)
        if refusal is not None:
            return refusal
    if _received_before(session, transfer, kind, message.message_identifier):
        return (
            f"Message refusé : le message « {message.message_identifier} » a déjà été reçu et pris en compte "
            "pour ce versement."
        )
    if transfer.status == ABANDONED:
        what = {"received": "accusé réception du", "accepted": "accepté le", "rejected": "refusé le"}[message.outcome]
        return (
            f"Message refusé : le versement a été abandonné (ses documents sont rendus à la GED), mais le système "
            f"d'archivage a {what} paquet : vérifiez auprès de lui le sort de ce paquet."
        )
    if kind == "reply" and transfer.status in (ACCEPTED, REJECTED):
        before = {ACCEPTED: "accepté", REJECTED: "refusé"}[transfer.status]
        now = {"accepted": "l'accepte", "rejected": "le refuse"}[message.outcome]
        return (
            f"Message refusé : le système d'archivage a déjà répondu à ce versement (« "
            f"{transfer.sae_message_identifier} », {before}) ; cette autre réponse {now}. "
            "Vérifiez auprès du système d'archivage."
        )
    if transfer.status not in AWAITING[kind]:
        state = STATUS_LABELS.get(transfer.status, transfer.status)
        return f"Message refusé : le versement n'attend pas {_NO_KIND[message.kind]} (état : {state})."
    return None


def _request_refusal(transfer: Transfer, message: replies.SaeMessage) -> str | None:
    """Why a message naming another request (or none) cannot move this transfer; None for a refusal naming none.

    Vitam answers a package it could not read (virus, not a zip, manifest failing its XSD) with a KO reply whose
    MessageRequestIdentifier is « Unknown » or empty. The connector fetched it from the operation of this
    transfer's deposit, and interop records it against this transfer (record_sae_message's transfer_id): taken
    as this transfer's refusal, or the transfer would wait for ever. Never as an acceptance: archiving the GED's
    documents needs a reply that names the package.
    """
    if not message.request_unknown:
        return (
            f"Message refusé : il répond au message « {replies.quoted(message.request_identifier)} », "
            f"pas à ce versement (« {transfer.message_identifier} »)."
        )
    if message.outcome == "accepted":
        return (
            f"Message refusé : cette réponse accepte un paquet sans nommer le bordereau auquel elle répond "
            f"(MessageRequestIdentifier « {replies.quoted(message.request_identifier)} ») ; une acceptation doit "
            f"nommer « {transfer.message_identifier} ». Vérifiez auprès du système d'archivage."
        )
    return None


def _received_before(session: Session, transfer: Transfer, kind: str, message_identifier: str) -> bool:
    """Whether a message of this kind with this identifier was already taken into account for the transfer."""
    query = select(SaeMessage.id).where(
        SaeMessage.transfer_id == transfer.id,
        SaeMessage.kind == kind,
        SaeMessage.status == RECORDED,
        SaeMessage.message_identifier == message_identifier[:200],
    )
    return session.execute(query).first() is not None


def _apply(session: Session, transfer: Transfer, message: replies.SaeMessage) -> None:
    now = utcnow()
    transfer.updated_at = now
    if message.kind == "acknowledgement":
        # From delivery_failed too (a resumed delivery went through): the failure's reason no longer holds.
        transfer.status, transfer.acknowledged_at, transfer.error = ACKNOWLEDGED, now, None
        audit_transfer(
            session, ACTOR, "archive.transfer.acknowledged", transfer, sae_message_identifier=message.message_identifier
        )
        return
    code = message.reply_code[:CODE_COLUMN] if message.reply_code else None
    transfer.reply_code, transfer.reply, transfer.replied_at = code, message.summary(), now
    transfer.sae_message_identifier = message.message_identifier[:200]
    details: dict[str, Any] = {"sae_message_identifier": message.message_identifier, "reply_code": message.reply_code}
    if message.outcome == "accepted":
        transfer.status, transfer.error = ACCEPTED, None
        transfer.sae_identifiers = _identifiers(transfer, message)
        audit_transfer(session, ACTOR, "archive.transfer.accepted", transfer, **details)
        _tell_ged(session, transfer, message)
    else:
        transfer.status = REJECTED
        transfer.error = _bounded_error(message)
        audit_transfer(session, ACTOR, "archive.transfer.rejected", transfer, reasons=message.reasons(), **details)
        tell_ged_transfer_ended(session, transfer, "rejected")


# The refusal summed up in ``error`` (the API's, the lists'): every reason is in ``reply`` and the stored message.
ERROR_LIMIT = 4000


def _bounded_error(message: replies.SaeMessage) -> str:
    """The verdict then each reason, as long as they fit in ERROR_LIMIT characters; then how many are left out."""
    text = message.verdict()
    reasons = message.reasons()
    for index, reason in enumerate(reasons):
        line = f" {reason.rstrip('.')}."
        if len(text) + len(line) > ERROR_LIMIT - 100:
            return text + f" … et {len(reasons) - index} autre(s) motif(s), dans la réponse du système d'archivage."
        text += line
    return text


def _tell_ged(session: Session, transfer: Transfer, message: replies.SaeMessage) -> None:
    """The GED marks the transfer's documents archived, each with the identifier the SAE gave its unit."""
    if not transfer.document_ids:
        return  # a package built from a folder tree: no GED document
    # Each document's unit as the build recorded it (nested under folder units for a transfer by folder); the
    # flat numbering for packages built before it was recorded.
    units = transfer.document_units or dict(
        zip(transfer.document_ids, _unit_ids(len(transfer.document_ids)), strict=True)
    )
    documents = [
        {
            "document_id": document_id,
            "sae_identifier": _unit_identifier(message, units[document_id]) or message.message_identifier,
        }
        for document_id in transfer.document_ids
    ]
    enqueue(
        session,
        messages.GED_MARK_ARCHIVED,
        key=f"ged.archived:{transfer.id}",
        tenant_id=transfer.tenant_id,
        transfer_id=transfer.id,
        documents=documents,
    )


def _unit_ids(count: int) -> list[str]:
    # The package's units, in the GED's document order (archive.service._transfer_spec): one document is AU1;
    # several are grouped under AU1, as AU2, AU3…
    return ["AU1"] if count == 1 else [f"AU{index + 2}" for index in range(count)]


def _unit_identifier(message: replies.SaeMessage, unit_id: str) -> str | None:
    found = message.units.get(unit_id, {})
    for key in ("system_ids", "archival_agency_identifiers"):
        if found.get(key):
            return str(found[key][0])
    return None


def _identifiers(transfer: Transfer, message: replies.SaeMessage) -> dict[str, Any]:
    """What the archivist needs to find the archives in the SAE: its message, operation, units and objects."""
    receipt = transfer.receipt or {}
    return {
        "sae": receipt.get("sae"),
        "operation_id": receipt.get("operation_id"),
        "message_identifier": message.message_identifier,
        "archival_agency": message.archival_agency,
        "units": message.units,
        "objects": message.objects,
    }
