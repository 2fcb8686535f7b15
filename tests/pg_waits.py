"""Whether a PostgreSQL transaction waits on a lock another holds, and a bounded wait for it: what a test of two
transactions at once waits on to make its race certain, rather than a sleep that only widens it."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import text

from socle.db import advisory_lock_id, new_session
from socle.storage.ownership import lock_id

_ADVISORY = (
    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    " AND classid = :high AND objid = :low AND objsubid = 1"  # objsubid 1: a lock taken by one bigint
)
_TUPLE = "SELECT 1 FROM pg_locks WHERE locktype = 'tuple' AND relation = to_regclass(:table)"


def someone_waits_on_lock(number: int) -> bool:
    """Whether a transaction waits for the advisory lock ``number`` (as ``pg_advisory_xact_lock`` takes it)."""
    unsigned = number & 0xFFFFFFFFFFFFFFFF  # pg_locks shows the bigint as two unsigned halves
    with new_session() as session:
        found = session.execute(text(_ADVISORY), {"high": unsigned >> 32, "low": unsigned & 0xFFFFFFFF})
        return found.first() is not None


def someone_waits_on_advisory(scope: str, *parts: str) -> bool:
    """Whether a transaction waits for the lock ``socle.db.advisory_xact_lock(session, scope, *parts)`` takes."""
    return someone_waits_on_lock(advisory_lock_id(scope, *parts))


def someone_waits_on(key: str) -> bool:
    """Whether a transaction waits for the lock of the stored object ``key`` (socle.storage.ownership)."""
    return someone_waits_on_lock(lock_id(key))


def someone_waits_on_a_row(table: str) -> bool:
    """Whether a transaction waits for a row of ``table`` another holds (the waiter takes the tuple's lock)."""
    with new_session() as session:
        return session.execute(text(_TUPLE), {"table": table}).first() is not None


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 20) -> None:
    """Return once ``condition()`` holds; :raises AssertionError: (the test fails, naming ``what``) when it still
    does not after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"still not true after {seconds} s: {what}")
        time.sleep(0.01)
