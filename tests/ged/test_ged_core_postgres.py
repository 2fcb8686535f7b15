"""The GED core on PostgreSQL: the same behaviour as on SQLite for what leans on SQL (tag filter over JSON,
the readable clause, row locks, the retention query, the purge)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from ga_helpers import make_folder, make_type, new_document
from sqlalchemy import update

from ged.models import Document
from socle.db import transaction, utcnow
from socle.migrating import upgrade_all

from conftest import Kit, assert_problem

pytestmark = pytest.mark.integration


def test_core_flows_on_postgres(postgres_url: str, use_env: Callable[..., None], make_kit: Callable[..., Kit]) -> None:
    use_env(SOCLE_DATABASE_URL=postgres_url)
    upgrade_all()
    kit = make_kit(with_identity=False)

    make_type(kit, "bon", dua_months=1, dua_event="document_date", final_action="destroy")
    closed = make_folder(kit, "Ressources humaines")
    group = kit["admin"].post("/ged/groups", json={"name": "RH"}).json()
    kit["admin"].post(f"/ged/groups/{group['id']}/members", json={"username": "agent"})
    rules = [{"group_id": group["id"], "rights": ["read", "write", "delete"]}]
    assert kit["admin"].put(f"/ged/plan/{closed['id']}/permissions", json=rules).status_code == 200

    secret = new_document(kit, folder_id=closed["id"], tags=["paie", "été"], text="paie")
    old = new_document(kit, type="bon", date="2020-03-01", text="bon 2020")
    tagged = kit["agent"].get("/ged/documents", params={"tag": "été"}).json()
    assert [d["id"] for d in tagged["items"]] == [secret["id"]]
    assert [d["id"] for d in kit["maire"].get("/ged/documents").json()["items"]] == [old["id"]]
    assert_problem(kit["maire"].get(f"/ged/documents/{secret['id']}"), 404)

    retention = kit["archiviste"].get("/ged/retention", params={"state": "to_eliminate"}).json()
    assert [item["document"]["id"] for item in retention["items"]] == [old["id"]]
    proposal = kit["archiviste"].post("/ged/eliminations", json={"document_ids": [old["id"]]}).json()
    kit["admin"].post(f"/ged/eliminations/{proposal['id']}/approve")
    done = kit["archiviste"].post(f"/ged/eliminations/{proposal['id']}/execute")
    assert done.status_code == 200, done.text
    assert kit["agent"].get(f"/ged/documents/{old['id']}").json()["disposal"] == "eliminated"

    assert kit["agent"].delete(f"/ged/documents/{secret['id']}").status_code == 200
    with transaction() as session:
        ago = utcnow() - timedelta(days=60)
        session.execute(update(Document).where(Document.id == secret["id"]).values(deleted_at=ago))
    purged = kit["admin"].post("/ged/trash/purge").json()
    assert purged["purged"] == [secret["id"]]
