"""Which tenant holds which stored object.

The store is content-addressed and shared by every tenant (the same bytes stored once): knowing an object's
key proves nothing, and its existence must not be told to another tenant. Each service records, in the
transaction that writes the row referring to an object, that the row's tenant holds it (:func:`record_held`);
what a tenant hands over by key (an interop flow's documents) is checked with :func:`tenant_holds`.

Since: kernel migration 0005.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from socle.db import utcnow
from socle.models import TenantObject

__all__ = ["record_held", "tenant_holds"]


def record_held(session: Session, tenant_id: str, *keys: str | None) -> None:
    """Record that the tenant holds these objects, in the caller's transaction (nothing is committed).

    Idempotent, also between concurrent transactions: a pair already recorded is left as it is (INSERT … ON
    CONFLICT DO NOTHING). ``None`` and repeated keys are skipped, so optional keys may be passed as they are.

    :raises RuntimeError: a database other than PostgreSQL or SQLite.
    """
    unique = dict.fromkeys(key for key in keys if key)
    if not unique:
        return
    now = utcnow()
    rows = [{"tenant_id": tenant_id, "object_key": key, "created_at": now} for key in unique]
    session.execute(_insert_ignoring_duplicates(session.get_bind().dialect.name), rows)


def tenant_holds(session: Session, tenant_id: str, key: str) -> bool:
    """Whether the tenant holds the object (its bytes may have been removed from the store since)."""
    found = session.execute(
        select(TenantObject.object_key).where(TenantObject.tenant_id == tenant_id, TenantObject.object_key == key)
    ).first()
    return found is not None


def _insert_ignoring_duplicates(dialect: str) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(TenantObject).on_conflict_do_nothing(index_elements=["tenant_id", "object_key"])
    if dialect == "sqlite":
        return sqlite.insert(TenantObject).on_conflict_do_nothing(index_elements=["tenant_id", "object_key"])
    raise RuntimeError(f"unsupported database for the object registry: {dialect}")
