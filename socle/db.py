"""Database access shared by the services: one engine per URL, sessions, and small column helpers.

Each service declares its own tables on its own ``DeclarativeBase`` and migrates them with its own Alembic
version table; nothing here knows the services' tables.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import DateTime, Engine, String, TypeDecorator, create_engine, event, text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DontWrapMixin, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from socle.errors import InvalidInput, message
from socle.settings import get_settings


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """Random identifiers: they reveal neither counts nor order to another tenant."""
    return str(uuid.uuid4())


# The instants every zone can write: a day inside Python's (and PostgreSQL's) years 1 to 9999. An hour of year 1
# or 9999 in another zone may not exist in UTC (OverflowError), and the last hour of 9999 in UTC does not exist in
# Paris time: PostgreSQL in that TimeZone could not send it back, nor could a page show it.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)


class InstantOutOfRange(InvalidInput, DontWrapMixin):
    """An instant outside EARLIEST..LATEST was to be stored or compared; SQLAlchemy lets it through unwrapped,
    so that the API answers 422 and a page shows the message. Since 2026-12."""


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on every backend (SQLite would otherwise drop the offset).

    :raises InstantOutOfRange: (when a statement is executed) an instant outside ``EARLIEST``..``LATEST``, as
        a client may send: ``0001-01-01T00:00:00+14:00`` is before year 1 in UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: use socle.db.utcnow()")
        # Compared before converting: aware datetimes compare through their offsets, without overflowing.
        if not EARLIEST <= value <= LATEST:
            raise InstantOutOfRange(
                message(
                    "date et heure hors des limites : %(value)s (du 2 janvier de l'an 1 au 30 décembre 9999, "
                    "temps universel)",
                    value=value.isoformat(),
                )
            )
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        # Always UTC back, whatever the server's TimeZone: the audit chain hashes these values as text.
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def id_column_type() -> String:
    return String(36)


_ENGINES: dict[str, Engine] = {}


def engine_for(url: str) -> Engine:
    engine = _ENGINES.get(url)
    if engine is None:
        engine = _sqlite_engine(url) if url.startswith("sqlite") else create_engine(url, pool_pre_ping=True)
        engine = _ENGINES.setdefault(url, engine)
    return engine


def _sqlite_engine(url: str) -> Engine:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets the embedded worker thread read while a request writes; foreign keys are off by default.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        # pysqlite's own transaction handling defers BEGIN; take it over so that BEGIN IMMEDIATE serialises
        # writers up front instead of failing later on a lock upgrade.
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def get_engine() -> Engine:
    return engine_for(get_settings().effective_database_url)


def _dispose_after_fork() -> None:
    # rq forks a work horse per job: connections inherited from the parent must not be shared.
    for engine in _ENGINES.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_dispose_after_fork)


@lru_cache(maxsize=8)
def _session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=engine_for(url), expire_on_commit=False)


def new_session() -> Session:
    return _session_factory(get_settings().effective_database_url)()


@contextmanager
def transaction() -> Iterator[Session]:
    """A unit of work: commits at the end of the block, rolls back if it raises."""
    session = new_session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def reset_engines() -> None:
    """Close and forget every engine (tests switch databases)."""
    _session_factory.cache_clear()
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()


def is_unique_violation(exc: IntegrityError) -> bool:
    """Whether the database refused a row because another holds the same unique values (PostgreSQL's SQLSTATE
    23505, for a primary key too; SQLite's « UNIQUE constraint failed »), not for a missing reference or a
    NULL: only the former is the trace of a concurrent request that won the race."""
    original = exc.orig
    if getattr(original, "sqlstate", None) == "23505" or getattr(original, "pgcode", None) == "23505":
        return True
    name = getattr(original, "sqlite_errorname", "")
    return name in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY") or "UNIQUE constraint failed" in str(
        original
    )


def advisory_xact_lock(session: Session, scope: str, *parts: str) -> None:
    """Take the lock of (scope, parts) until the end of the session's transaction: two transactions naming the
    same take turns. PostgreSQL: a transaction-level advisory lock numbered by :func:`advisory_lock_id`.
    SQLite: nothing to take, every transaction already holds the database's write lock (begun IMMEDIATE)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": advisory_lock_id(scope, *parts)})


def advisory_lock_id(scope: str, *parts: str) -> int:
    """An advisory lock's number: the first 64 bits of a SHA-256 of the scope and parts (signed, as PostgreSQL
    takes it); the scope keeps the locks of different uses apart."""
    key = "\x1f".join((f"socle-{scope}", *parts))  # a separator no name, id or key holds
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
