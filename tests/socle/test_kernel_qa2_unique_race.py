"""Two identical requests at once: both pass a service's existence check, the database refuses the second row.

The kernel turns that unique violation into a 409 in French, rolls the request back and logs the database's
own words; any other integrity error stays a 500. The race is made certain, not likely: the other request's row
is committed by a second connection at the very moment this request inserts its own (an engine event on the
real PostgreSQL; nothing is mocked).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from html import escape
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, create_engine, event, insert, select
from sqlalchemy.exc import IntegrityError
from ui_kit import post_form, sign_in

from ged.models import DocumentType, Group
from socle.db import get_engine, is_unique_violation, new_id, new_session, utcnow
from socle.migrating import upgrade_all
from socle.models import AuditEntry
from socle.web import install_error_handlers

from conftest import Kit, assert_problem

CONFLICT = "conflit : la même ressource vient d'être créée ou modifiée par une autre requête ; rechargez et recommencez"


@pytest.fixture
def pg_kit(postgres_url: str, use_env: Callable[..., None], make_kit: Callable[..., Kit], app: Any) -> Kit:
    use_env(SOCLE_DATABASE_URL=postgres_url)
    upgrade_all()
    kit: Kit = make_kit()
    return kit


@contextmanager
def meanwhile(table: str, write: Callable[[Any], None]) -> Iterator[None]:
    """Run ``write(connection)`` on another connection, committed, just before this request inserts into ``table``."""
    engine = get_engine()
    done: list[bool] = []

    def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if not done and statement.lstrip().upper().startswith(f"INSERT INTO {table.upper()}"):
            done.append(True)
            with engine.connect() as other:
                write(other)
                other.commit()

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", before)
    assert done, f"no insert into {table}"


def _audited(kit: Kit, action: str) -> list[AuditEntry]:
    with new_session() as session:
        query = select(AuditEntry).where(AuditEntry.tenant_id == kit.tenant_id, AuditEntry.action == action)
        return list(session.execute(query).scalars())


@pytest.mark.integration
def test_a_group_created_twice_at_once_is_a_conflict_not_a_server_error(
    pg_kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    kit = pg_kit
    row = {"id": new_id(), "tenant_id": kit.tenant_id, "name": "Finances", "created_at": utcnow()}
    with (
        caplog.at_level(logging.WARNING, logger="socle.web"),
        meanwhile("ged_groups", lambda other: other.execute(insert(Group).values(**row))),
    ):
        response = kit["admin"].post("/ged/groups", json={"name": "Finances"})
    body = assert_problem(response, 409)
    assert body["detail"] == CONFLICT and body["type"] == "urn:socle:problem:conflict"
    # Rolled back: the other request's group alone, and no audit entry of a creation that did not happen.
    listed = kit["admin"].get("/ged/groups").json()
    assert [(group["id"], group["name"]) for group in listed] == [(row["id"], "Finances")]
    assert _audited(kit, "ged.group.created") == []
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert any("ged_groups" in record.getMessage() and "POST" in record.getMessage() for record in warnings)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.mark.integration
def test_a_form_sent_twice_at_once_shows_the_conflict_on_a_page(pg_kit: Kit, app: Any) -> None:
    """The web interface: the same safety net, told on an error page (a double click on « Créer »)."""
    kit = pg_kit
    browser = sign_in(app, kit, "admin")
    row = {"id": new_id(), "tenant_id": kit.tenant_id, "name": "Urbanisme", "created_at": utcnow()}
    with meanwhile("ged_groups", lambda other: other.execute(insert(Group).values(**row))):
        page = post_form(browser, "/admin/ged/groupes", "/admin/ged/groupes", {"name": "Urbanisme"})
    assert page.status_code == 409 and page.headers["content-type"].startswith("text/html")
    assert escape(CONFLICT) in page.text or CONFLICT in page.text
    assert _audited(kit, "ged.group.created") == []


@pytest.mark.integration
def test_a_document_type_created_twice_at_once_is_a_conflict(pg_kit: Kit) -> None:
    kit = pg_kit
    row = {
        "id": new_id(),
        "tenant_id": kit.tenant_id,
        "code": "arrete",
        "name": "Arrêté",
        "fields": [],
        "schema_version": 1,
        "created_at": utcnow(),
        "updated_at": utcnow(),
    }
    with meanwhile("ged_document_types", lambda other: other.execute(insert(DocumentType).values(**row))):
        response = kit["admin"].post("/ged/types", json={"code": "arrete", "name": "Arrêté"})
    assert assert_problem(response, 409)["detail"] == CONFLICT
    assert [t["id"] for t in kit["admin"].get("/ged/types").json() if t["code"] == "arrete"] == [row["id"]]
    assert _audited(kit, "ged.type.created") == []


def _violations(url: str) -> dict[str, IntegrityError]:
    """Real integrity errors of each kind from the database at ``url``: unique, primary key, NOT NULL, reference."""
    metadata = MetaData()
    parent = Table("qa2_parent", metadata, Column("id", Integer, primary_key=True), Column("code", String(10)))
    Table(
        "qa2_child",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("code", String(10), unique=True),
        Column("label", String(10), nullable=False),
        Column("parent_id", Integer, ForeignKey(parent.c.id)),
    )
    engine = create_engine(url)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", lambda connection, _: connection.execute("PRAGMA foreign_keys=ON"))
    attempts = {
        "unique": [{"id": 1, "code": "a", "label": "x"}, {"id": 2, "code": "a", "label": "y"}],
        "primary key": [{"id": 1, "code": "a", "label": "x"}, {"id": 1, "code": "b", "label": "y"}],
        "not null": [{"id": 1, "code": "a", "label": None}],
        "reference": [{"id": 1, "code": "a", "label": "x", "parent_id": 99}],
    }
    errors: dict[str, IntegrityError] = {}
    try:
        for kind, rows in attempts.items():
            metadata.create_all(engine)
            try:
                with engine.begin() as connection:
                    for child in rows:
                        connection.execute(insert(metadata.tables["qa2_child"]).values(**child))
            except IntegrityError as exc:
                errors[kind] = exc
            metadata.drop_all(engine)
    finally:
        engine.dispose()
    assert set(errors) == set(attempts)
    return errors


def _kinds_told_unique(url: str) -> dict[str, bool]:
    return {kind: is_unique_violation(exc) for kind, exc in _violations(url).items()}


EXPECTED = {"unique": True, "primary key": True, "not null": False, "reference": False}


def test_only_a_unique_violation_counts_on_sqlite(tmp_path: Path) -> None:
    assert _kinds_told_unique(f"sqlite:///{tmp_path / 'kinds.db'}") == EXPECTED


@pytest.mark.integration
def test_only_a_unique_violation_counts_on_postgresql(postgres_url: str) -> None:
    assert _kinds_told_unique(postgres_url.replace("postgresql://", "postgresql+psycopg://")) == EXPECTED


def test_another_integrity_error_stays_a_server_error(tmp_path: Path) -> None:
    """A NOT NULL or a missing reference is a bug of the kit, not a race: 500, traced in the log, nothing told."""
    errors = _violations(f"sqlite:///{tmp_path / 'errors.db'}")
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/{kind}")
    def fail(kind: str) -> None:
        raise errors[kind]

    with TestClient(app, raise_server_exceptions=False) as client:
        assert assert_problem(client.get("/unique"), 409)["detail"] == CONFLICT
        for kind in ("not null", "reference"):
            body = assert_problem(client.get(f"/{kind}"), 500)
            assert body["type"] == "urn:socle:problem:internal" and "qa2" not in body["detail"]
