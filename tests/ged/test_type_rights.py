"""Rights on document types beyond reading documents: « manage » lets a group change the type and its
permissions; a reference field does not reveal a document the user may not read; a type the user may not
read hides its documents from CMIS queries and the search API."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ga_helpers import make_folder, make_type, new_document, post_document
from sqlalchemy import select

from socle.db import transaction
from socle.models import AuditEntry

from conftest import Kit, assert_problem

NUMERO = {"name": "numero", "label": "Numéro", "kind": "integer"}
ANNEXE = {"name": "annexe_de", "label": "Annexe de", "kind": "reference"}
MISSING = "00000000-0000-0000-0000-000000000000"


def _group(kit: Kit, name: str, *members: str) -> str:
    group = kit["admin"].post("/ged/groups", json={"name": name})
    assert group.status_code == 201, group.text
    for member in members:
        added = kit["admin"].post(f"/ged/groups/{group.json()['id']}/members", json={"username": member})
        assert added.status_code == 200, added.text
    return str(group.json()["id"])


def _set_rights(kit: Kit, user: str, type_id: str, rules: list[dict[str, Any]]) -> Any:
    return kit[user].put(f"/ged/types/{type_id}/permissions", json=rules)


# ---------------------------------------------------------------------------------------------------------
# « manage » on a type


def test_manage_on_a_type_lets_change_it_and_set_its_permissions(kit: Kit) -> None:
    kind = make_type(kit, "paie", fields=[NUMERO])
    managers, clerks = _group(kit, "Gestion paie", "agent"), _group(kit, "Agents paie", "maire")
    rules = [
        {"group_id": managers, "rights": ["read", "write", "manage"]},
        {"group_id": clerks, "rights": ["read", "write"]},
    ]
    assert _set_rights(kit, "admin", kind["id"], rules).status_code == 200
    url = f"/ged/types/{kind['id']}"

    # The manager changes the name, the DUA rule and the schema.
    renamed = kit["agent"].patch(url, json={"name": "Paie (bulletins)", "dua_months": 60})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Paie (bulletins)" and renamed.json()["dua_months"] == 60
    evolved = kit["agent"].patch(url, json={"fields": [NUMERO, {"name": "mois", "label": "Mois", "kind": "date"}]})
    assert evolved.status_code == 200, evolved.text
    assert evolved.json()["schema_version"] == 2
    with transaction() as session:
        actors = session.execute(
            select(AuditEntry.actor).where(AuditEntry.object_id == kind["id"], AuditEntry.action == "ged.type.updated")
        ).scalars()
        assert set(actors) == {"user:agent"}

    # Write without manage, or no right at all: 403, nothing changed.
    for user in ("maire", "archiviste"):
        body = assert_problem(kit[user].patch(url, json={"name": "x"}), 403)
        assert "gestion" in body["detail"]
        assert_problem(_set_rights(kit, user, kind["id"], []), 403)
    assert kit["admin"].get(url).json()["name"] == "Paie (bulletins)"

    # The manager sets the permissions: the clerks now manage too.
    rules[1]["rights"] = ["read", "write", "manage"]
    granted = _set_rights(kit, "agent", kind["id"], rules)
    assert granted.status_code == 200, granted.text
    assert {p["group_id"]: p["rights"] for p in granted.json()}[clerks] == ["read", "write", "manage"]
    assert kit["maire"].patch(url, json={"name": "Paie"}).status_code == 200

    # Creating and deleting a type stay the admin's.
    assert_problem(kit["agent"].delete(url), 403)
    assert_problem(kit["agent"].post("/ged/types", json={"code": "autre", "name": "Autre"}), 403)

    # A manager who gives « manage » away loses it.
    assert _set_rights(kit, "agent", kind["id"], [{"group_id": clerks, "rights": ["manage"]}]).status_code == 200
    assert_problem(kit["agent"].patch(url, json={"name": "x"}), 403)


def test_a_type_without_permissions_stays_the_admins_to_manage(kit: Kit) -> None:
    kind = make_type(kit, "courrier")
    # Its documents are open to everyone, not its schema, DUA and permissions.
    assert post_document(kit, "agent", type="courrier").status_code == 201
    assert_problem(kit["agent"].patch(f"/ged/types/{kind['id']}", json={"dua_months": 1}), 403)
    assert_problem(_set_rights(kit, "agent", kind["id"], []), 403)
    assert_problem(_set_rights(kit, "archiviste", kind["id"], []), 403)
    assert kit["admin"].patch(f"/ged/types/{kind['id']}", json={"dua_months": 1}).status_code == 200


def test_another_tenants_type_is_404_even_for_a_namesake_of_its_manager(make_kit: Callable[..., Kit]) -> None:
    kit, other = make_kit(with_identity=False), make_kit(with_identity=False)
    kind = make_type(kit, "paie")
    managers = _group(kit, "Gestion", "agent")
    rules = [{"group_id": managers, "rights": ["read", "manage"]}]
    assert _set_rights(kit, "admin", kind["id"], rules).status_code == 200
    url = f"/ged/types/{kind['id']}"
    # « agent » of the other tenant bears the same name as our manager: still nothing there.
    for user in ("agent", "admin"):
        assert_problem(other[user].patch(url, json={"name": "x"}), 404)
        assert_problem(_set_rights(other, user, kind["id"], []), 404)
    # Nor can our manager name another tenant's group, nor reach another tenant's type.
    theirs = make_type(other, "paie")
    assert_problem(_set_rights(kit, "agent", theirs["id"], []), 404)
    their_group = _group(other, "Eux", "agent")
    assert_problem(_set_rights(kit, "agent", kind["id"], [{"group_id": their_group, "rights": ["read"]}]), 404)
    assert kit["agent"].patch(url, json={"name": "Paie"}).status_code == 200


# ---------------------------------------------------------------------------------------------------------
# References


def test_a_reference_to_an_unreadable_document_is_refused_like_a_missing_one(kit: Kit) -> None:
    make_type(kit, "annexe", fields=[ANNEXE, NUMERO])
    hr = make_folder(kit, "Ressources humaines")
    readers = _group(kit, "RH", "archiviste")
    closed = kit["admin"].put(f"/ged/plan/{hr['id']}/permissions", json=[{"group_id": readers, "rights": ["read"]}])
    assert closed.status_code == 200, closed.text
    in_hr = new_document(kit, "admin", folder_id=hr["id"], title="Dossier de carrière")
    payroll = make_type(kit, "paie")
    of_closed_type = new_document(kit, "admin", type="paie", document_type="")
    assert _set_rights(kit, "admin", payroll["id"], [{"group_id": readers, "rights": ["read"]}]).status_code == 200

    def refused(response: Any, document_id: str) -> tuple[int, str | None, str]:
        body = assert_problem(response, 422)
        return response.status_code, body.get("field"), body["detail"].replace(document_id, "<id>")

    def upload(user: str, target: str) -> Any:
        return post_document(kit, user, type="annexe", field_values=json.dumps({"annexe_de": target}))

    missing = refused(upload("agent", MISSING), MISSING)
    assert missing[1] == "annexe_de" and "n'existe pas" in missing[2]
    for hidden in (in_hr["id"], of_closed_type["id"]):
        assert refused(upload("agent", hidden), hidden) == missing  # no more said than for a missing one
    assert kit["agent"].get("/ged/documents").json()["total"] == 0  # nothing created

    # On a PATCH too; the archivist, who reads both, may reference them.
    mine = new_document(kit, "agent", type="annexe", document_type="")
    patch = kit["agent"].patch(f"/ged/documents/{mine['id']}", json={"field_values": {"annexe_de": in_hr["id"]}})
    assert refused(patch, in_hr["id"]) == missing
    assert upload("archiviste", of_closed_type["id"]).status_code == 201
    linked = upload("archiviste", in_hr["id"])
    assert linked.status_code == 201, linked.text
    # A reference already there is carried over, not checked again: the agent edits the other fields.
    edited = kit["agent"].patch(f"/ged/documents/{linked.json()['id']}", json={"field_values": {"numero": 3}})
    assert edited.status_code == 200, edited.text
    assert edited.json()["current"]["field_values"] == {"annexe_de": in_hr["id"], "numero": 3}


# ---------------------------------------------------------------------------------------------------------
# Reading: CMIS queries and the search API


def test_a_type_the_user_may_not_read_hides_its_documents_from_cmis_queries_and_search(kit: Kit) -> None:
    kind = make_type(kit, "paie")
    payroll = _group(kit, "Paie", "agent")
    folder = make_folder(kit, "Finances")  # open to all: only the type's rights decide
    secret = new_document(
        kit, "admin", type="paie", document_type="", title="Bulletin de salaire", folder_id=folder["id"]
    )
    plain = new_document(kit, "admin", title="Bulletin municipal", folder_id=folder["id"])
    assert _set_rights(kit, "admin", kind["id"], [{"group_id": payroll, "rights": ["read"]}]).status_code == 200

    repository = f"/ged/cmis/{kit.slug}"

    def cmis_ids(user: str, statement: str) -> set[str]:
        response = kit[user].post(repository, data={"cmisaction": "query", "q": statement, "succinct": "true"})
        assert response.status_code == 200, response.text
        return {row["succinctProperties"]["cmis:objectId"] for row in response.json()["results"]}

    statements = {
        "SELECT * FROM cmis:document": {secret["id"], plain["id"]},
        "SELECT * FROM ged:paie": {secret["id"]},
        "SELECT * FROM cmis:document WHERE CONTAINS('bulletin')": {secret["id"], plain["id"]},
        f"SELECT * FROM cmis:document WHERE IN_FOLDER('{folder['id']}')": {secret["id"], plain["id"]},
    }
    for statement, everything in statements.items():
        assert cmis_ids("agent", statement) == everything, statement
        assert cmis_ids("maire", statement) == everything - {secret["id"]}, statement

    def search(user: str, **params: str) -> dict[str, Any]:
        response = kit[user].get("/ged/search", params={"q": "bulletin", **params})
        assert response.status_code == 200, response.text
        return dict(response.json())

    def facet(result: dict[str, Any], name: str) -> dict[str, int]:
        return {value["value"]: value["count"] for value in result["facets"][name]}

    seen, hidden = search("agent"), search("maire")
    assert {hit["document_id"] for hit in seen["items"]} == {secret["id"], plain["id"]}
    assert {hit["document_id"] for hit in hidden["items"]} == {plain["id"]} and hidden["total"] == 1
    assert facet(seen, "type") == {"paie": 1, "arrete": 1}
    assert facet(hidden, "type") == {"arrete": 1}
    assert facet(hidden, "folder") == {folder["id"]: 1}
    assert search("maire", type="paie")["total"] == 0
