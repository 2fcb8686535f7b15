"""Which tenant holds which stored object, and through which service.

The store is content-addressed and shared by every tenant and every service (the same bytes stored once):
knowing an object's key proves nothing, and its existence must not be told to another tenant. Each service
records, in the transaction that writes the row referring to an object, that the row's tenant holds it through
that service (:func:`record_held`); what a tenant hands over by key (an interop flow's documents) is checked
with :func:`tenant_holds`. Only the GED ever deletes objects: it leaves in the store those another service
still holds, for any tenant (:func:`held_by_others`), and forgets its own holding when it lets an object go
(:func:`release_held`).

Since: kernel migration 0005; holders since 0006 (the rows recorded before them that no service claimed keep
the holder :data:`UNKNOWN`, which counts as holding).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from socle.db import utcnow
from socle.models import TenantObject

__all__ = ["HOLDERS", "UNKNOWN", "held_by_others", "record_held", "release_held", "tenant_holds"]

#: The services that hold objects, each under its own name.
HOLDERS = frozenset({"ged", "parapheur", "archive", "interop"})
#: The holder of a row recorded before holders were and claimed by no service since: never released.
UNKNOWN = ""

_PRIMARY_KEY = ["tenant_id", "object_key", "holder"]


def record_held(session: Session, tenant_id: str, *keys: str | None, holder: str) -> None:
    """Record that the tenant holds these objects through ``holder`` (a service's name), in the caller's
    transaction (nothing is committed).

    Idempotent, also between concurrent transactions: a row already recorded is left as it is (INSERT … ON
    CONFLICT DO NOTHING). ``None`` and repeated keys are skipped, so optional keys may be passed as they are.

    :raises ValueError: ``holder`` is not one of :data:`HOLDERS`.
    :raises RuntimeError: a database other than PostgreSQL or SQLite.
    """
    _check_holder(holder)
    unique = dict.fromkeys(key for key in keys if key)
    if not unique:
        return
    now = utcnow()
    rows = [{"tenant_id": tenant_id, "object_key": key, "holder": holder, "created_at": now} for key in unique]
    session.execute(_insert_ignoring_duplicates(session.get_bind().dialect.name), rows)


def tenant_holds(session: Session, tenant_id: str, key: str) -> bool:
    """Whether the tenant holds the object through any service (its bytes may have been removed from the store
    since)."""
    found = session.execute(
        select(TenantObject.object_key).where(TenantObject.tenant_id == tenant_id, TenantObject.object_key == key)
    ).first()
    return found is not None


def held_by_others(session: Session, key: str, *, holder: str) -> bool:
    """Whether any holder other than ``holder``, for any tenant, holds the object: an unknown holder
    (:data:`UNKNOWN`) counts. The object must then stay in the store."""
    _check_holder(holder)
    found = session.execute(
        select(TenantObject.object_key).where(TenantObject.object_key == key, TenantObject.holder != holder).limit(1)
    ).first()
    return found is not None


def release_held(session: Session, tenant_id: str, *keys: str, holder: str) -> None:
    """Forget that the tenant holds these objects through ``holder`` (the caller checked that none of its rows
    needs them any more), in the caller's transaction. What other holders recorded stays.

    :raises ValueError: ``holder`` is not one of :data:`HOLDERS`.
    """
    _check_holder(holder)
    if keys:
        session.execute(
            delete(TenantObject).where(
                TenantObject.tenant_id == tenant_id, TenantObject.holder == holder, TenantObject.object_key.in_(keys)
            )
        )


def _check_holder(holder: str) -> None:
    if holder not in HOLDERS:
        raise ValueError(f"unknown object holder: {holder!r}")


def _insert_ignoring_duplicates(dialect: str) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(TenantObject).on_conflict_do_nothing(index_elements=_PRIMARY_KEY)
    if dialect == "sqlite":
        return sqlite.insert(TenantObject).on_conflict_do_nothing(index_elements=_PRIMARY_KEY)
    raise RuntimeError(f"unsupported database for the object registry: {dialect}")
