"""The audit log: every action of every service, append-only and hash-chained per tenant.

Each entry's hash covers its content and the previous entry's hash; the tenant's head row keeps the last
sequence number and hash. ``verify`` then detects an altered entry (its hash no longer matches), an inserted
or deleted one (the sequence or the chain breaks) and a truncated tail (the head no longer matches).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from socle.db import utcnow
from socle.models import AuditEntry, AuditHead

GENESIS = "0" * 64


def start_chain(session: Session, tenant_id: str) -> None:
    """Called when a tenant is created, so that appending never races to create the head."""
    session.add(AuditHead(tenant_id=tenant_id, seq=0, hash=GENESIS))


def record(
    session: Session,
    *,
    tenant_id: str,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an entry in the caller's transaction: it is kept only if the action itself is committed."""
    head = session.execute(select(AuditHead).where(AuditHead.tenant_id == tenant_id).with_for_update()).scalar_one()
    entry = AuditEntry(
        tenant_id=tenant_id,
        seq=head.seq + 1,
        at=utcnow(),
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        details=details or {},
        prev_hash=head.hash,
    )
    entry.hash = entry_hash(entry)
    head.seq, head.hash = entry.seq, entry.hash
    session.add(entry)
    session.flush()
    return entry


def entries_about(
    session: Session, tenant_id: str, object_type: str, object_id: str, *, limit: int = 100
) -> list[AuditEntry]:
    """The latest entries about one object, the most recent first."""
    query = (
        select(AuditEntry)
        .where(
            AuditEntry.tenant_id == tenant_id, AuditEntry.object_type == object_type, AuditEntry.object_id == object_id
        )
        .order_by(AuditEntry.seq.desc())
        .limit(limit)
    )
    return list(session.execute(query).scalars())


def entry_hash(entry: AuditEntry) -> str:
    content = {
        "tenant_id": entry.tenant_id,
        "seq": entry.seq,
        "at": entry.at.astimezone(UTC).isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": entry.object_id,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
    }
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Verification:
    tenant_id: str
    entries: int
    problems: tuple[str, ...]

    @property
    def intact(self) -> bool:
        return not self.problems


def verify(session: Session, tenant_id: str) -> Verification:
    problems: list[str] = []
    expected_seq, expected_prev, count = 1, GENESIS, 0
    entries = session.execute(
        select(AuditEntry).where(AuditEntry.tenant_id == tenant_id).order_by(AuditEntry.seq)
    ).scalars()
    for entry in entries:
        count += 1
        if entry.seq != expected_seq:
            problems.append(f"entrée n° {expected_seq} à {entry.seq - 1} absente(s) : supprimée(s) ?")
        if entry.prev_hash != expected_prev:
            problems.append(f"entrée n° {entry.seq} : le chaînage est rompu (entrée insérée ou supprimée avant)")
        if entry_hash(entry) != entry.hash:
            problems.append(f"entrée n° {entry.seq} : contenu modifié ({entry.action} sur {entry.object_id})")
        expected_seq, expected_prev = entry.seq + 1, entry.hash
    head = session.get(AuditHead, tenant_id)
    if head is None:
        problems.append("tête de chaîne absente")
    elif (head.seq, head.hash) != (expected_seq - 1, expected_prev):
        problems.append(f"la chaîne s'arrête à l'entrée n° {expected_seq - 1} alors que la tête indique {head.seq}")
    return Verification(tenant_id, count, tuple(problems))
