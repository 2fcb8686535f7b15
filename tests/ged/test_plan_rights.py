"""Classification plan (folders, filing, tags) and rights: groups × rights on folders (inherited) and types,
checked on every call and list; another tenant's anything is 404."""

from __future__ import annotations

from collections.abc import Callable

from ga_helpers import make_folder, make_type, new_document, post_document

from conftest import Kit, assert_problem


def test_folder_tree_create_rename_move_delete(kit: Kit) -> None:
    root = make_folder(kit, "Administration générale")
    council = make_folder(kit, "Conseil municipal", root["id"])
    minutes = make_folder(kit, "Procès-verbaux", council["id"])
    assert minutes["path"] == f"{root['id']}/{council['id']}/{minutes['id']}"
    assert_problem(kit["admin"].post("/ged/plan", json={"name": "Conseil municipal", "parent_id": root["id"]}), 409)

    # Move « Conseil municipal » to the root: its subtree follows.
    moved = kit["admin"].patch(f"/ged/plan/{council['id']}", json={"parent_id": None, "name": "Assemblée"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["path"] == council["id"] and moved.json()["name"] == "Assemblée"
    contents = kit["admin"].get(f"/ged/plan/{council['id']}").json()
    assert [child["path"] for child in contents["children"]] == [f"{council['id']}/{minutes['id']}"]

    # No cycle: a folder cannot go under itself or under its own subfolder.
    assert_problem(kit["admin"].patch(f"/ged/plan/{council['id']}", json={"parent_id": minutes["id"]}), 422)
    assert_problem(kit["admin"].patch(f"/ged/plan/{council['id']}", json={"parent_id": council["id"]}), 422)

    # Delete only when empty.
    document = new_document(kit, folder_id=minutes["id"])
    assert document["folder_id"] == minutes["id"]
    assert_problem(kit["admin"].delete(f"/ged/plan/{minutes['id']}"), 409)
    assert_problem(kit["admin"].delete(f"/ged/plan/{council['id']}"), 409)
    kit["agent"].put(f"/ged/documents/{document['id']}/folder", json={"folder_id": root["id"]})
    assert kit["admin"].delete(f"/ged/plan/{minutes['id']}").status_code == 204
    roots = kit["agent"].get("/ged/plan").json()["children"]
    assert sorted(folder["name"] for folder in roots) == ["Administration générale", "Assemblée"]


def test_filing_and_listing_a_folder_and_tags(kit: Kit) -> None:
    folder = make_folder(kit, "Urbanisme")
    other = make_folder(kit, "Voirie")
    inside = new_document(kit, folder_id=folder["id"], tags=["permis", "2026"])
    outside = new_document(kit, tags=["voirie"])
    filed = kit["agent"].put(f"/ged/documents/{outside['id']}/folder", json={"folder_id": other["id"]})
    assert filed.status_code == 200 and filed.json()["folder_id"] == other["id"]
    assert filed.json()["current_version"] == 1  # filing adds no version
    # Filing through PATCH with other changes: one new version, and the folder moves.
    both = kit["agent"].patch(f"/ged/documents/{outside['id']}", json={"folder_id": folder["id"], "title": "Plan"})
    assert both.json()["folder_id"] == folder["id"] and both.json()["current_version"] == 2

    listed = kit["agent"].get(f"/ged/plan/{folder['id']}").json()
    assert listed["folder"]["name"] == "Urbanisme"
    assert {d["id"] for d in listed["documents"]["items"]} == {inside["id"], outside["id"]}
    tagged = kit["agent"].get("/ged/documents", params={"tag": "permis"}).json()
    assert [d["id"] for d in tagged["items"]] == [inside["id"]]
    assert kit["agent"].get("/ged/documents", params={"tag": "perm%"}).json()["total"] == 0  # no wildcard
    assert_problem(new_document_response(kit, folder_id="00000000-0000-0000-0000-000000000000"), 404)


def new_document_response(kit: Kit, **data: str):  # type: ignore[no-untyped-def]
    return post_document(kit, document_type="arrete", **data)


def test_only_admin_or_archivist_shape_the_top_of_the_plan(kit: Kit) -> None:
    assert_problem(kit["agent"].post("/ged/plan", json={"name": "Racine"}), 403)
    make_folder(kit, "Archives", user="archiviste")


def _group(kit: Kit, name: str, *members: str) -> str:
    group = kit["admin"].post("/ged/groups", json={"name": name}).json()
    for member in members:
        response = kit["admin"].post(f"/ged/groups/{group['id']}/members", json={"username": member})
        assert response.status_code == 200, response.text
    return str(group["id"])


def test_folder_rights_are_inherited_and_checked_everywhere(kit: Kit) -> None:
    hr = make_folder(kit, "Ressources humaines")
    careers = make_folder(kit, "Carrières", hr["id"])
    public = make_folder(kit, "Public")
    readers = _group(kit, "Lecteurs RH", "maire")
    writers = _group(kit, "Agents RH", "agent")
    secret = new_document(kit, "admin", folder_id=careers["id"], title="Dossier de carrière")
    open_doc = new_document(kit, "admin", folder_id=public["id"])

    rules = [{"group_id": readers, "rights": ["read"]}, {"group_id": writers, "rights": ["read", "write"]}]
    response = kit["admin"].put(f"/ged/plan/{hr['id']}/permissions", json=rules)
    assert response.status_code == 200, response.text
    intruder = kit["archiviste"]  # in no group: the subfolder inherits the restriction

    url = f"/ged/documents/{secret['id']}"
    for call in (
        intruder.get(url),
        intruder.get(f"{url}/content"),
        intruder.get(f"{url}/versions"),
        intruder.patch(url, json={"title": "x"}),
        intruder.delete(url),
        intruder.get(f"/ged/plan/{careers['id']}"),
    ):
        body = assert_problem(call, 404)
        assert "carrière" not in call.text.lower() or "introuvable" in body["detail"]
    assert [d["id"] for d in intruder.get("/ged/documents").json()["items"]] == [open_doc["id"]]
    assert [f["name"] for f in intruder.get("/ged/plan").json()["children"]] == ["Public"]

    # A reader reads but may not write or delete: 403, not 404.
    assert kit["maire"].get(url).status_code == 200
    assert_problem(kit["maire"].patch(url, json={"title": "x"}), 403)
    assert_problem(kit["maire"].delete(url), 403)
    assert_problem(post_document(kit, "maire", document_type="x", folder_id=careers["id"]), 403)
    # A writer writes, the admin does everything.
    assert kit["agent"].patch(url, json={"title": "Carrière (corrigé)"}).status_code == 200
    assert_problem(kit["agent"].delete(url), 403)
    assert kit["admin"].get(url).status_code == 200

    # A subfolder with permissions of its own overrides its parent's.
    kit["admin"].put(f"/ged/plan/{careers['id']}/permissions", json=[{"group_id": readers, "rights": ["read"]}])
    assert_problem(kit["agent"].get(url), 404)
    # Removing every permission opens the folder again.
    kit["admin"].put(f"/ged/plan/{careers['id']}/permissions", json=[])
    kit["admin"].put(f"/ged/plan/{hr['id']}/permissions", json=[])
    assert intruder.get(url).status_code == 200


def test_type_rights_and_both_rights_needed(kit: Kit) -> None:
    kind = make_type(kit, "paie")
    payroll = _group(kit, "Paie", "agent")
    document = new_document(kit, "admin", type="paie")
    plain = new_document(kit, "admin")
    kit["admin"].put(f"/ged/types/{kind['id']}/permissions", json=[{"group_id": payroll, "rights": ["read", "write"]}])
    assert kit["agent"].get(f"/ged/documents/{document['id']}").status_code == 200
    assert_problem(kit["maire"].get(f"/ged/documents/{document['id']}"), 404)
    assert [d["id"] for d in kit["maire"].get("/ged/documents").json()["items"]] == [plain["id"]]
    assert_problem(post_document(kit, "maire", type="paie"), 403)
    assert post_document(kit, "agent", type="paie").status_code == 201
    # Folder open to the agent but type closed: the type's restriction still applies.
    folder = make_folder(kit, "Finances")
    kit["admin"].put(f"/ged/types/{kind['id']}/permissions", json=[{"group_id": payroll, "rights": ["read"]}])
    assert_problem(kit["agent"].put(f"/ged/documents/{document['id']}/folder", json={"folder_id": folder["id"]}), 403)


def test_groups_admin_only_and_members_must_exist(kit: Kit) -> None:
    assert_problem(kit["agent"].post("/ged/groups", json={"name": "G"}), 403)
    group = _group(kit, "Élus", "maire")
    assert_problem(kit["admin"].post("/ged/groups", json={"name": "Élus"}), 409)
    assert_problem(kit["admin"].post(f"/ged/groups/{group}/members", json={"username": "fantome"}), 422)
    assert kit["admin"].get(f"/ged/groups/{group}").json()["members"] == ["maire"]
    removed = kit["admin"].delete(f"/ged/groups/{group}/members/maire")
    assert removed.json()["members"] == []
    bad = [{"group_id": group, "rights": ["lire"]}]
    folder = make_folder(kit, "F")
    assert_problem(kit["admin"].put(f"/ged/plan/{folder['id']}/permissions", json=bad), 422)
    assert kit["admin"].delete(f"/ged/groups/{group}").status_code == 204


def test_another_tenants_folders_groups_and_holds_are_404(make_kit: Callable[..., Kit]) -> None:
    kit, other = make_kit(with_identity=False), make_kit(with_identity=False)
    folder = make_folder(kit, "Privé")
    group = _group(kit, "G")
    hold = kit["archiviste"].post("/ged/holds", json={"name": "Contentieux", "reason": "r"}).json()
    document = new_document(kit)
    kind = make_type(kit, "bon", dua_months=0, final_action="destroy")  # DUA ends the day it is created
    doomed = new_document(kit, type="bon", text="bon")
    elimination = kit["archiviste"].post("/ged/eliminations", json={"document_ids": [doomed["id"]]})
    assert elimination.status_code == 201, elimination.text
    elimination_id = elimination.json()["id"]
    intruder = other["admin"]
    for call in (
        intruder.get(f"/ged/plan/{folder['id']}"),
        intruder.patch(f"/ged/plan/{folder['id']}", json={"name": "x"}),
        intruder.delete(f"/ged/plan/{folder['id']}"),
        intruder.put(f"/ged/plan/{folder['id']}/permissions", json=[]),
        intruder.get(f"/ged/groups/{group}"),
        intruder.get(f"/ged/holds/{hold['id']}"),
        intruder.post(f"/ged/holds/{hold['id']}/release", json={"reason": "x"}),
        intruder.delete(f"/ged/documents/{document['id']}"),
        intruder.post(f"/ged/documents/{document['id']}/restore"),
        intruder.post("/ged/plan", json={"name": "x", "parent_id": folder["id"]}),
        post_document(other, "admin", document_type="x", folder_id=folder["id"]),
        intruder.get(f"/ged/types/{kind['id']}/permissions"),
        intruder.get(f"/ged/eliminations/{elimination_id}"),
        intruder.post(f"/ged/eliminations/{elimination_id}/approve"),
        intruder.post(f"/ged/eliminations/{elimination_id}/execute"),
        intruder.post(f"/ged/holds/{hold['id']}/documents", json={"document_ids": [document["id"]]}),
        intruder.post("/ged/eliminations", json={"document_ids": [doomed["id"]]}),
    ):
        assert_problem(call, 404)
    assert intruder.get("/ged/eliminations").json() == []
    assert intruder.get("/ged/retention", params={"state": "to_eliminate"}).json()["total"] == 0
    # Nor can their holds take our documents.
    theirs_hold = other["archiviste"].post("/ged/holds", json={"name": "H", "reason": "r"}).json()
    add = other["archiviste"].post(f"/ged/holds/{theirs_hold['id']}/documents", json={"document_ids": [document["id"]]})
    assert_problem(add, 404)
    # Their own folder cannot take our group.
    theirs = make_folder(other, "Chez eux")
    rules = [{"group_id": group, "rights": ["read"]}]
    assert_problem(intruder.put(f"/ged/plan/{theirs['id']}/permissions", json=rules), 404)
