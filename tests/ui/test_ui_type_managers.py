"""A type's pages for whoever has « manage » on it: the type, its fields and its rights, by the API's rule
(ged.access.require_type_manage); creating and deleting types, groups and the plan stay the admin's."""

from __future__ import annotations

from typing import Any

from ui_kit import post_form, sign_in

from conftest import Kit


def _group(kit: Kit, name: str, member: str) -> str:
    group = kit["admin"].post("/ged/groups", json={"name": name}).json()
    assert kit["admin"].post(f"/ged/groups/{group['id']}/members", json={"username": member}).status_code in (200, 201)
    return str(group["id"])


def _grant(kit: Kit, type_id: str, grants: dict[str, list[str]]) -> None:
    body = [{"group_id": group_id, "rights": rights} for group_id, rights in grants.items()]
    assert kit["admin"].put(f"/ged/types/{type_id}/permissions", json=body).status_code == 200


def test_a_type_manager_edits_the_type_fields_and_rights_through_the_pages(app: Any, kit: Kit) -> None:
    managed = kit["admin"].post("/ged/types", json={"code": "arrete", "name": "Arrêté"}).json()
    other = kit["admin"].post("/ged/types", json={"code": "paie", "name": "Bulletin de paie"}).json()
    managers = _group(kit, "Gestionnaires des arrêtés", "agent")
    writers = _group(kit, "Rédacteurs", "maire")
    _grant(kit, managed["id"], {managers: ["read", "manage"], writers: ["read", "write"]})
    type_url = f"/admin/ged/types/{managed['id']}"

    agent = sign_in(app, kit, "agent")
    assert 'href="/admin/ged/types"' in agent.get("/documents").text  # the GED menu leads to the types
    listing = agent.get("/admin/ged/types")
    assert listing.status_code == 200
    assert "Arrêté" in listing.text and "Bulletin de paie" not in listing.text  # only the managed type
    assert "Créer le type" not in listing.text and 'href="/admin/ged/groupes"' not in listing.text
    page = agent.get(type_url)
    assert page.status_code == 200 and "Supprimer le type" not in page.text

    saved = post_form(agent, type_url, type_url, {"name": "Arrêté du maire", "dua_months": "120"})
    assert saved.status_code == 303, saved.text
    added = post_form(
        agent, type_url, f"{type_url}/champs", {"field_label": "Objet", "field_name": "objet", "field_kind": "text"}
    )
    assert added.status_code == 303, added.text
    field_url = f"{type_url}/champs/objet"
    assert agent.get(field_url).status_code == 200
    assert post_form(agent, field_url, field_url, {"field_label": "Objet de l'arrêté"}).status_code == 303
    stored = kit["admin"].get(f"/ged/types/{managed['id']}").json()
    assert (stored["name"], stored["dua_months"]) == ("Arrêté du maire", 120)
    assert [(f["name"], f["label"]) for f in stored["fields"]] == [("objet", "Objet de l'arrêté")]

    rights_url = f"{type_url}/droits"
    rights = agent.get(rights_url)
    assert rights.status_code == 200 and f'name="droits_{writers}"' in rights.text
    wanted = {f"droits_{managers}": ["read", "manage"], f"droits_{writers}": ["read", "write", "delete"]}
    assert post_form(agent, rights_url, rights_url, wanted).status_code == 303
    granted = {p["group_id"]: p["rights"] for p in kit["admin"].get(f"/ged/types/{managed['id']}/permissions").json()}
    assert granted == {managers: ["read", "manage"], writers: ["read", "write", "delete"]}

    # Not the other type, nor creating or deleting one, nor the groups and the plan.
    for path in (f"/admin/ged/types/{other['id']}", f"/admin/ged/types/{other['id']}/droits"):
        assert agent.get(path).status_code == 403, path
    assert post_form(agent, "/admin/ged/types", "/admin/ged/types", {"code": "x", "name": "X"}).status_code == 403
    assert post_form(agent, type_url, f"{type_url}/supprimer", {}).status_code == 403
    for path in ("/admin/ged/groupes", "/admin/ged/plan"):
        assert agent.get(path).status_code == 403, path


def test_write_without_manage_gets_no_link_and_403_while_admin_is_unchanged(app: Any, kit: Kit) -> None:
    document_type = kit["admin"].post("/ged/types", json={"code": "arrete", "name": "Arrêté"}).json()
    writers = _group(kit, "Rédacteurs", "maire")
    _grant(kit, document_type["id"], {writers: ["read", "write"]})
    type_url = f"/admin/ged/types/{document_type['id']}"

    writer = sign_in(app, kit, "maire")
    assert 'href="/admin/ged/types"' not in writer.get("/documents").text
    for path in ("/admin/ged/types", type_url, f"{type_url}/droits", f"{type_url}/champs/objet"):
        assert writer.get(path).status_code == 403, path
    # The form's token comes from a page the user may see: a direct POST is refused as the page is.
    assert post_form(writer, "/documents", type_url, {"name": "Autre"}).status_code == 403
    assert post_form(writer, "/documents", f"{type_url}/droits", {f"droits_{writers}": "manage"}).status_code == 403
    assert kit["admin"].get(f"/ged/types/{document_type['id']}").json()["name"] == "Arrêté"

    admin = sign_in(app, kit, "admin")
    listing = admin.get("/admin/ged/types")
    assert (
        listing.status_code == 200 and "Créer le type" in listing.text and 'href="/admin/ged/groupes"' in listing.text
    )
    page = admin.get(type_url)
    assert page.status_code == 200 and "Supprimer le type" in page.text
    assert (
        'href="/admin/ged/types"'
        not in admin.get("/documents").text.split("Rubriques des documents")[1].split("</nav>")[0]
    )
