"""The same request sent twice at once, on PostgreSQL: both pass the check for an existing row, then both insert.

The second insert used to fail on a unique constraint (a 500). To make the race certain rather than likely, the
other request's row is written and committed by a second connection at the very moment this request inserts
its own (an engine event on the real database: nothing is mocked).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from parapheur_kit import Standard, desk, ok, sent_folder
from sqlalchemy import event, insert, select

from parapheur.models import Desk, DeskMember, FolderEvent, NotificationPreference, ReadMark, SignatureType, TrustAnchor
from socle.db import get_engine, new_id, new_session, utcnow
from socle.migrating import upgrade_all

from conftest import Kit, assert_problem, identity_certificate

pytestmark = pytest.mark.integration


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


def test_a_document_opened_twice_at_once_is_served_twice_and_read_once(pg_kit: Kit) -> None:
    """A PDF viewer's parallel range requests: each gets the document, one reading is recorded."""
    kit = pg_kit
    folder = sent_folder(kit, Standard(kit).visa_then_sign)
    document = folder["documents"][0]
    mark = {"folder_id": folder["id"], "username": "agent", "document_key": document["current_sha256"]}
    with meanwhile(
        "parapheur_reads", lambda other: other.execute(insert(ReadMark).values(id=new_id(), at=utcnow(), **mark))
    ):
        response = kit["agent"].get(f"/parapheur/folders/{folder['id']}/documents/{document['id']}")
    assert response.status_code == 200, response.text
    with new_session() as session:
        reads = session.execute(select(ReadMark).where(ReadMark.folder_id == folder["id"])).scalars().all()
        events = session.execute(
            select(FolderEvent).where(FolderEvent.folder_id == folder["id"], FolderEvent.action == "document_read")
        ).scalars()
        assert len(reads) == 1 and list(events) == []  # the other request's reading, told by the other request


def test_a_preference_chosen_twice_at_once_is_kept(pg_kit: Kit) -> None:
    kit = pg_kit
    row = {"id": new_id(), "tenant_id": kit.tenant_id, "username": "maire", "mode": "none"}
    with meanwhile(
        "parapheur_notification_preferences", lambda other: other.execute(insert(NotificationPreference).values(**row))
    ):
        response = kit["maire"].put("/parapheur/notifications/preferences", json={"mode": "digest"})
    assert ok(response) == {"mode": "digest"}
    assert ok(kit["maire"].get("/parapheur/notifications/preferences")) == {"mode": "digest"}


def test_configuration_created_twice_at_once_is_a_conflict_or_the_same_row(pg_kit: Kit) -> None:
    """A double click on « Créer »: the second is told the name is taken (409), never a server error."""
    kit, admin = pg_kit, pg_kit["admin"]
    type_row = {
        "id": new_id(),
        "tenant_id": kit.tenant_id,
        "name": "Arrêtés",
        "signature_format": "pades",
        "level": "B-B",
        "stamp_page": -1,
        "stamp_width": 180.0,
        "stamp_height": 60.0,
    }
    with meanwhile("parapheur_types", lambda other: other.execute(insert(SignatureType).values(**type_row))):
        body = assert_problem(admin.post("/parapheur/types", json={"name": "Arrêtés"}), 409)
    assert "Arrêtés" in body["detail"]
    desk_row = {"id": new_id(), "tenant_id": kit.tenant_id, "name": "Maire"}
    with meanwhile("parapheur_desks", lambda other: other.execute(insert(Desk).values(**desk_row))):
        body = assert_problem(admin.post("/parapheur/desks", json={"name": "Maire", "members": ["maire"]}), 409)
    assert "Maire" in body["detail"] and ok(admin.get(f"/parapheur/desks/{desk_row['id']}"))["members"] == []
    members = desk(kit, "Conseil", [])
    member = {"id": new_id(), "desk_id": members, "username": "agent"}
    with meanwhile("parapheur_desk_members", lambda other: other.execute(insert(DeskMember).values(**member))):
        assert ok(admin.post(f"/parapheur/desks/{members}/members", json={"username": "agent"}))["members"] == ["agent"]
    certificate = identity_certificate()
    anchor_id = new_id()

    def anchor(other: Any) -> None:
        other.execute(
            insert(TrustAnchor).values(
                id=anchor_id,
                tenant_id=kit.tenant_id,
                sha256=hashlib.sha256(certificate).hexdigest(),
                subject="AC",
                not_after=utcnow(),
                certificate_der=certificate,
                added_by="admin",
                created_at=utcnow(),
            )
        )

    with meanwhile("parapheur_trust_anchors", anchor):
        added = admin.post("/parapheur/trust-anchors", files={"file": ("ac.der", certificate, "application/pkix-cert")})
    assert [row["id"] for row in ok(added, 201)] == [anchor_id]
