"""The audit log: every action leaves a hash-chained entry; tampering with the database is detected.

The database refuses UPDATE and DELETE on ``audit_entries`` (triggers). To play an attacker who has the
rights to get round that, some tests drop the triggers and put them back afterwards.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from socle import audit
from socle.db import get_engine, new_session, transaction
from socle.models import AuditEntry, AuditHead

from conftest import Kit, make_pdf, socle_command, upload_document

_TRIGGERS = {
    event: f"CREATE TRIGGER audit_entries_no_{event.lower()} BEFORE {event} ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END"
    for event in ("UPDATE", "DELETE")
}  # as created by socle/migrations/versions/0001_kernel_tables.py


def _sql(statement: str, **parameters: Any) -> None:
    with get_engine().begin() as connection:
        connection.execute(text(statement), parameters)


def _entries(tenant_id: str) -> list[AuditEntry]:
    with new_session() as session:
        return list(
            session.execute(select(AuditEntry).where(AuditEntry.tenant_id == tenant_id).order_by(AuditEntry.seq))
            .scalars()
            .all()
        )


def _verify(tenant_id: str) -> audit.Verification:
    with new_session() as session:
        return audit.verify(session, tenant_id)


@pytest.fixture
def unlocked() -> Iterator[None]:
    """The append-only triggers dropped for one test (an attacker with rights on the database)."""
    dialect = get_engine().dialect.name
    assert dialect == "sqlite", f"ces tests manipulent les déclencheurs SQLite de la base des tests, pas {dialect}"
    for event in _TRIGGERS:
        _sql(f"DROP TRIGGER audit_entries_no_{event.lower()}")
    try:
        yield
    finally:
        for statement in _TRIGGERS.values():
            _sql(statement)
        with get_engine().connect() as connection:
            names = connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars().all()
        assert {"audit_entries_no_update", "audit_entries_no_delete"} <= set(names)


@pytest.fixture
def busy_kit(make_kit: Callable[..., Kit]) -> Kit:
    """A tenant of its own with some activity: users, tokens, a document and a change of its metadata."""
    kit = make_kit(with_identity=False)
    document = upload_document(kit["agent"], make_pdf("Journal"))
    patched = kit["agent"].patch(f"/ged/documents/{document['id']}", json={"title": "Journal, modifié"})
    assert patched.status_code == 200, patched.text
    return kit


def test_each_action_leaves_a_chained_entry(busy_kit: Kit) -> None:
    entries = _entries(busy_kit.tenant_id)
    assert [entry.seq for entry in entries] == list(range(1, len(entries) + 1))
    actions = [entry.action for entry in entries]
    assert actions[0] == "tenant.created"
    assert actions.count("user.created") == actions.count("token.issued") == 4
    assert actions[-2:] == ["ged.document.created", "ged.version.created"]
    assert entries[-1].actor == "user:agent" and entries[-1].details["version"] == 2
    assert entries[0].prev_hash == audit.GENESIS
    for previous, entry in itertools.pairwise(entries):
        assert entry.prev_hash == previous.hash
        assert entry.hash == audit.entry_hash(entry)
    with new_session() as session:
        head = session.get(AuditHead, busy_kit.tenant_id)
        assert head is not None and (head.seq, head.hash) == (entries[-1].seq, entries[-1].hash)

    result = _verify(busy_kit.tenant_id)
    assert result.intact and result.problems == () and result.entries == len(entries)


def test_an_entry_is_kept_only_with_its_action(busy_kit: Kit) -> None:
    before = _entries(busy_kit.tenant_id)
    with pytest.raises(RuntimeError), transaction() as session:
        audit.record(
            session,
            tenant_id=busy_kit.tenant_id,
            actor="user:agent",
            action="test.rolled_back",
            object_type="test",
            object_id="x",
        )
        raise RuntimeError("l'action échoue")
    assert [entry.id for entry in _entries(busy_kit.tenant_id)] == [entry.id for entry in before]
    assert _verify(busy_kit.tenant_id).intact


def test_chains_are_per_tenant(make_kit: Callable[..., Kit]) -> None:
    first, second = make_kit(with_identity=False), make_kit(with_identity=False)
    upload_document(first["agent"], make_pdf("Seulement chez le premier"))
    assert len(_entries(first.tenant_id)) == len(_entries(second.tenant_id)) + 1
    assert _entries(second.tenant_id)[0].seq == 1
    assert _verify(first.tenant_id).intact and _verify(second.tenant_id).intact


def test_the_database_refuses_to_change_the_log(busy_kit: Kit) -> None:
    entry = _entries(busy_kit.tenant_id)[2]
    with pytest.raises(DatabaseError, match="append-only"):
        _sql("UPDATE audit_entries SET actor = 'pirate' WHERE id = :id", id=entry.id)
    with pytest.raises(DatabaseError, match="append-only"):
        _sql("DELETE FROM audit_entries WHERE id = :id", id=entry.id)
    with pytest.raises(DatabaseError):  # nor can an entry take the number of another
        _sql(
            "INSERT INTO audit_entries (tenant_id, seq, at, actor, action, object_type, object_id, details, "
            "prev_hash, hash) SELECT tenant_id, seq, at, 'pirate', action, object_type, object_id, details, "
            "prev_hash, hash FROM audit_entries WHERE id = :id",
            id=entry.id,
        )
    assert _entries(busy_kit.tenant_id)[2].actor == entry.actor
    assert _verify(busy_kit.tenant_id).intact


@pytest.mark.usefixtures("unlocked")
def test_altered_content_names_the_entry(busy_kit: Kit) -> None:
    target = _entries(busy_kit.tenant_id)[-1]
    forged = {**target.details, "version": 3}
    _sql("UPDATE audit_entries SET details = :details WHERE id = :id", details=json.dumps(forged), id=target.id)
    result = _verify(busy_kit.tenant_id)
    assert not result.intact
    assert any(f"n° {target.seq}" in problem and "modifié" in problem for problem in result.problems), result


@pytest.mark.usefixtures("unlocked")
@pytest.mark.parametrize("column", ["actor", "action", "object_id", "at"])
def test_any_altered_column_is_detected(busy_kit: Kit, column: str) -> None:
    target = _entries(busy_kit.tenant_id)[3]
    value = "2020-01-01 00:00:00.000000" if column == "at" else "pirate"
    _sql(f"UPDATE audit_entries SET {column} = :value WHERE id = :id", value=value, id=target.id)
    result = _verify(busy_kit.tenant_id)
    assert [problem for problem in result.problems if f"n° {target.seq} " in problem], result


@pytest.mark.usefixtures("unlocked")
def test_a_deleted_entry_is_detected(busy_kit: Kit) -> None:
    entries = _entries(busy_kit.tenant_id)
    middle = entries[len(entries) // 2]
    _sql("DELETE FROM audit_entries WHERE id = :id", id=middle.id)
    result = _verify(busy_kit.tenant_id)
    assert not result.intact and result.entries == len(entries) - 1
    assert any(f"n° {middle.seq} " in problem and "absente" in problem for problem in result.problems), result


@pytest.mark.usefixtures("unlocked")
def test_an_inserted_entry_is_detected_even_with_a_valid_hash(busy_kit: Kit) -> None:
    entries = _entries(busy_kit.tenant_id)
    after = entries[4]
    # The attacker makes room after entry 5 and writes a well-formed entry chained to it.
    _sql(
        "UPDATE audit_entries SET seq = seq + 1000 WHERE tenant_id = :tenant AND seq > :seq",
        tenant=busy_kit.tenant_id,
        seq=after.seq,
    )
    _sql(
        "UPDATE audit_entries SET seq = seq - 999 WHERE tenant_id = :tenant AND seq > 1000",
        tenant=busy_kit.tenant_id,
    )
    forged = AuditEntry(
        tenant_id=busy_kit.tenant_id,
        seq=after.seq + 1,
        at=after.at,
        actor="user:admin",
        action="user.created",
        object_type="user",
        object_id="pirate",
        details={"username": "pirate", "roles": ["admin"]},
        prev_hash=after.hash,
    )
    forged.hash = audit.entry_hash(forged)
    with transaction() as session:
        session.add(forged)
    result = _verify(busy_kit.tenant_id)
    assert not result.intact and result.entries == len(entries) + 1
    assert not any(f"n° {forged.seq} " in problem for problem in result.problems)  # the forged entry itself is fine
    assert any(f"n° {forged.seq + 1} " in problem for problem in result.problems), result  # but not what follows


@pytest.mark.usefixtures("unlocked")
def test_a_truncated_tail_is_detected_by_the_head(busy_kit: Kit) -> None:
    entries = _entries(busy_kit.tenant_id)
    _sql("DELETE FROM audit_entries WHERE id IN (:a, :b)", a=entries[-1].id, b=entries[-2].id)
    result = _verify(busy_kit.tenant_id)
    assert not result.intact and result.entries == len(entries) - 2
    assert any(
        f"n° {entries[-3].seq} " in problem and f"tête indique {entries[-1].seq}" in problem
        for problem in result.problems
    ), result


def test_a_missing_head_is_detected(busy_kit: Kit) -> None:
    _sql("DELETE FROM audit_heads WHERE tenant_id = :tenant", tenant=busy_kit.tenant_id)
    result = _verify(busy_kit.tenant_id)
    assert not result.intact and any("tête" in problem for problem in result.problems)


@pytest.mark.usefixtures("unlocked")
def test_cli_audit_verify(make_kit: Callable[..., Kit]) -> None:
    clean, tampered = make_kit(with_identity=False), make_kit(with_identity=False)
    target = _entries(tampered.tenant_id)[1]
    _sql("UPDATE audit_entries SET actor = 'pirate' WHERE id = :id", id=target.id)

    ok = socle_command("audit", "verify", "--tenant", clean.slug, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"{clean.slug}: {len(_entries(clean.tenant_id))} entrées, intact" in ok.stdout

    broken = socle_command("audit", "verify", "--tenant", tampered.slug, timeout=120)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "ALTÉRÉ" in broken.stdout and f"n° {target.seq} " in broken.stdout
    assert "Traceback" not in broken.stdout + broken.stderr

    unknown = socle_command("audit", "verify", "--tenant", "inconnue", timeout=120)
    assert unknown.returncode == 1 and "inconnue" in unknown.stderr
