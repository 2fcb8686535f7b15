"""Which tenant holds which stored object, and through which service.

The store is content-addressed and shared by every tenant and every service (the same bytes stored once):
knowing an object's key proves nothing, and its existence must not be told to another tenant. Each service
records, in the transaction that writes the row referring to an object, that the row's tenant holds it through
that service (:func:`record_held`); what a tenant hands over by key (an interop flow's documents) is checked
with :func:`tenant_holds`. Only the GED ever deletes objects: it leaves in the store those another service
still holds, for any tenant (:func:`held_by_others`), and forgets its own holding when it lets an object go
(:func:`release_held`).

An object is deleted only after a check that nothing refers to it, and a new reference may be to bytes stored
before that check (an upload of the same content finds them already there). Both take the object's lock
(:func:`lock_object`) for the rest of their transaction: the deletion checks and deletes under it, and
:func:`record_held` checks under it that the object is still in the store, so no row ever refers to bytes the
GED has just deleted.

Since: kernel migration 0005; holders since 0006 (the rows recorded before them that no service claimed keep
the holder :data:`UNKNOWN`, which counts as holding).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from socle.db import advisory_lock_id, advisory_xact_lock, utcnow
from socle.errors import ServiceUnavailable, message
from socle.models import TenantObject

__all__ = [
    "HOLDERS",
    "UNKNOWN",
    "ObjectGone",
    "check_stored",
    "held_by_others",
    "lock_object",
    "record_held",
    "record_held_unchecked",
    "release_held",
    "tenant_holds",
]

#: The services that hold objects, each under its own name.
HOLDERS = frozenset({"ged", "parapheur", "archive", "interop"})
#: The holders whose rows are deleted when they let an object go (:func:`release_held`): only the GED.
RELEASING = frozenset({"ged"})
#: The holder of a row recorded before holders were and claimed by no service since: never released.
UNKNOWN = ""

_PRIMARY_KEY = ["tenant_id", "object_key", "holder"]


class ObjectGone(ServiceUnavailable):
    """The object was deleted from the store between its upload and the transaction that would refer to it
    (the GED purged or eliminated a document with the same content meanwhile): the caller sends it again."""


def record_held(session: Session, tenant_id: str, *keys: str | None, holder: str) -> None:
    """Record that the tenant holds these objects through ``holder`` (a service's name), in the caller's
    transaction (nothing is committed), once each is checked to be in the store under its lock
    (:func:`lock_object`, held until the caller's transaction ends).

    Idempotent, also between concurrent transactions: a row already recorded is left as it is (INSERT … ON
    CONFLICT DO NOTHING). ``None`` and repeated keys are skipped, so optional keys may be passed as they are.

    :raises ValueError: ``holder`` is not one of :data:`HOLDERS`.
    :raises ObjectGone: an object is no longer in the store.
    :raises RuntimeError: a database other than PostgreSQL or SQLite.
    """
    _check_holder(holder)
    unique = dict.fromkeys(key for key in keys if key)
    for key in _already_kept(session, tenant_id, unique, holder):
        del unique[key]
    if not unique:
        return
    check_stored(session, *unique)
    record_held_unchecked(session, tenant_id, *unique, holder=holder)


def record_held_unchecked(session: Session, tenant_id: str, *keys: str | None, holder: str) -> None:
    """:func:`record_held` without the lock and the store's answer, for keys the caller knows are kept: a row
    of its own, locked by this transaction, already refers to them (a GED version with the same content as
    the document's current one). Taking the object's lock there would put it after the row locks the caller
    holds, the reverse of an upload's order: two such transactions would wait for each other.
    """
    _check_holder(holder)
    unique = dict.fromkeys(key for key in keys if key)
    if unique:
        now = utcnow()
        rows = [{"tenant_id": tenant_id, "object_key": key, "holder": holder, "created_at": now} for key in unique]
        session.execute(_insert_ignoring_duplicates(session.get_bind().dialect.name), rows)


def check_stored(session: Session, *keys: str) -> None:
    """Check that these objects are in the store, each under its lock (:func:`lock_object`, held until the
    caller's transaction ends): a row the caller then writes refers to bytes the GED cannot delete meanwhile.

    :raises ObjectGone: an object is no longer in the store.
    """
    from socle.storage import get_store  # the store's module imports the settings; this one stays light

    for key in sorted(set(keys)):  # always in the same order: two transactions never wait for each other's lock
        lock_object(session, key)
        if not get_store().exists(key):
            raise ObjectGone(
                message(
                    "le contenu %(object_key_start)s… vient d'être supprimé du stockage (purge ou élimination "
                    "d'un document identique) : envoyez-le de nouveau",
                    object_key_start=key[:16],
                )
            )


def _already_kept(session: Session, tenant_id: str, keys: dict[str, None], holder: str) -> list[str]:
    """The keys this tenant already holds through ``holder``, when that holder never lets objects go: their
    bytes stay while the row does, so neither the lock nor the store need asking again (the parapheur records
    its folder's documents at every act). The GED's rows are released by its purge, so they are always checked.
    """
    if holder in RELEASING or not keys:
        return []
    found = session.execute(
        select(TenantObject.object_key).where(
            TenantObject.tenant_id == tenant_id,
            TenantObject.holder == holder,
            TenantObject.object_key.in_(list(keys)),
        )
    )
    return list(found.scalars())


def tenant_holds(session: Session, tenant_id: str, key: str, *, through: frozenset[str] | None = None) -> bool:
    """Whether the tenant holds the object through any service, or through one of ``through`` (its bytes may
    have been removed from the store since). A row of unknown holder (:data:`UNKNOWN`) counts for any."""
    query = select(TenantObject.object_key).where(TenantObject.tenant_id == tenant_id, TenantObject.object_key == key)
    if through is not None:
        query = query.where(TenantObject.holder.in_([*through, UNKNOWN]))
    return session.execute(query.limit(1)).first() is not None


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


def lock_object(session: Session, key: str) -> None:
    """Take the object's lock until the end of the session's transaction: the check that nothing refers to it
    and its deletion, or a new reference to it, happen one after the other, never interleaved.

    PostgreSQL: a transaction-level advisory lock numbered from the key (:func:`lock_id`). SQLite: nothing to
    take, every transaction already holds the database's write lock (socle.db begins them IMMEDIATE).

    Order: object locks are taken before the audit chain's head (audit.record), never after it, as an upload
    does; a row lock of the object's own document may come first (a new version, a rendition), since no
    transaction takes an object lock and then that row. A transaction already holding the audit head records
    with :func:`record_held_unchecked` instead.
    """
    advisory_xact_lock(session, "object", key)


def lock_id(key: str) -> int:
    """The advisory lock's number for an object (see :func:`socle.db.advisory_lock_id`)."""
    return advisory_lock_id("object", key)


def _check_holder(holder: str) -> None:
    if holder not in HOLDERS:
        raise ValueError(f"unknown object holder: {holder!r}")


def _insert_ignoring_duplicates(dialect: str) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(TenantObject).on_conflict_do_nothing(index_elements=_PRIMARY_KEY)
    if dialect == "sqlite":
        return sqlite.insert(TenantObject).on_conflict_do_nothing(index_elements=_PRIMARY_KEY)
    raise RuntimeError(f"unsupported database for the object registry: {dialect}")
