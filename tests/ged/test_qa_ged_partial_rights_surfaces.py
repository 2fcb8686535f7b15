"""What a user with partial rights (a folder and a type closed to them) may learn from the lists that count or
name documents: search hits, totals and facets (type, folder, tag, year), the tag filter, the trash, the
retention view. Nothing of the closed documents: not a count, not a tag only they carry."""

from __future__ import annotations

from typing import Any

from ga_helpers import make_folder, make_type, new_document

from conftest import Kit

MISSING = "00000000-0000-0000-0000-000000000000"


def _closed_to_agent(kit: Kit) -> dict[str, Any]:
    """A folder and a type only the group « rh » (the maire) may read, a document in each, one open one."""
    group = kit["admin"].post("/ged/groups", json={"name": "rh"}).json()
    assert kit["admin"].post(f"/ged/groups/{group['id']}/members", json={"username": "maire"}).status_code == 200
    rights = [{"group_id": group["id"], "rights": ["read", "write"]}]
    folder = make_folder(kit, "Contentieux")
    assert kit["admin"].put(f"/ged/plan/{folder['id']}/permissions", json=rights).status_code == 200
    closed_type = make_type(kit, "sanction", dua_months=12, dua_event="document_date", final_action="destroy")
    assert kit["admin"].put(f"/ged/types/{closed_type['id']}/permissions", json=rights).status_code == 200
    in_folder = new_document(
        kit, user="admin", folder_id=folder["id"], title="Recours Durand", tags="prudhommes", date="2019-03-01"
    )
    typed = new_document(
        kit, user="admin", type="sanction", title="Blâme Durand", tags="disciplinaire", date="2018-02-01"
    )
    shown = new_document(kit, title="Travaux de voirie", tags="voirie", date="2024-06-01")
    return {"folder": folder["id"], "in_folder": in_folder["id"], "typed": typed["id"], "shown": shown["id"]}


def test_search_totals_and_facets_count_only_readable_documents(kit: Kit) -> None:
    ids = _closed_to_agent(kit)
    agent = kit["agent"]
    everything = agent.get("/ged/search").json()
    assert everything["total"] == 1 and everything["total_exact"]
    assert [item["document_id"] for item in everything["items"]] == [ids["shown"]]
    facets = everything["facets"]
    assert [value["value"] for value in facets["tag"]] == ["voirie"]
    assert [value["value"] for value in facets["year"]] == ["2024"]
    assert all(value["value"] != ids["folder"] for value in facets["folder"])
    assert agent.get("/ged/search", params={"q": "Durand"}).json()["total"] == 0
    for tag in ("prudhommes", "disciplinaire"):
        assert agent.get("/ged/search", params={"tag": tag}).json()["total"] == 0
        assert agent.get("/ged/documents", params={"tag": tag}).json()["total"] == 0
    # Whoever may read them finds them, with their tags.
    maire = kit["maire"].get("/ged/search").json()
    assert maire["total"] == 3
    assert {value["value"] for value in maire["facets"]["tag"]} == {"voirie", "prudhommes", "disciplinaire"}


def test_a_closed_folder_is_answered_as_an_unknown_one_by_every_filter(kit: Kit) -> None:
    ids = _closed_to_agent(kit)
    agent = kit["agent"]
    for path, name in (("/ged/search", "folder"), ("/ged/documents", "folder_id")):
        hidden = agent.get(path, params={name: ids["folder"]})
        missing = agent.get(path, params={name: MISSING})
        assert hidden.status_code == missing.status_code == 404, (path, hidden.text)
        assert hidden.json()["detail"].replace(ids["folder"], MISSING) == missing.json()["detail"]


def test_trash_and_retention_lists_hold_only_readable_documents(kit: Kit) -> None:
    ids = _closed_to_agent(kit)
    for document in (ids["in_folder"], ids["typed"]):
        assert kit["admin"].delete(f"/ged/documents/{document}").status_code == 200
    assert kit["agent"].get("/ged/trash").json()["total"] == 0
    assert kit["maire"].get("/ged/trash").json()["total"] == 2
    # The archivist is not in « rh »: the closed type's documents are not on their retention list.
    assert kit["admin"].post(f"/ged/documents/{ids['typed']}/restore").status_code == 200
    listed = kit["archiviste"].get("/ged/retention", params={"state": "to_eliminate"}).json()
    assert listed["total"] == 0
    assert kit["admin"].get("/ged/retention", params={"state": "to_eliminate"}).json()["total"] == 1
