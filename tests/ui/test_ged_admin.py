"""GED administration pages: document types with their fields, DUA and final action; groups and their
rights on folders and types; the folders of the classification plan."""

from __future__ import annotations

from typing import Any

from ui_kit import post_form, sign_in

from conftest import Kit


def api(kit: Kit, path: str) -> Any:
    response = kit["admin"].get(path)
    assert response.status_code == 200, response.text
    return response.json()


def test_types_created_with_dua_then_fields_added_made_mandatory_and_retired(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "admin")
    page = client.get("/admin/ged/types")
    assert page.status_code == 200 and "Aucun type de documents" in page.text

    wrong = post_form(
        client, "/admin/ged/types", "/admin/ged/types", {"code": "mauvais code", "name": "Arrêté", "dua_months": "dix"}
    )
    assert wrong.status_code == 422
    assert 'id="code-erreur"' in wrong.text and 'id="dua_months-erreur"' in wrong.text
    assert "sans espace ni accent" in wrong.text and "Nombre entier de mois" in wrong.text
    assert 'value="mauvais code"' in wrong.text and 'value="Arrêté"' in wrong.text
    for months in ("1" * 5000, "²"):  # int() refuses both (a 500, or its English words): the field's French message
        wrong = post_form(
            client, "/admin/ged/types", "/admin/ged/types", {"code": "c", "name": "C", "dua_months": months}
        )
        assert wrong.status_code == 422 and "Nombre entier de mois" in wrong.text, months
    data = {
        "code": "arrete",
        "name": "Arrêté",
        "dua_months": "60",
        "dua_event": "document_date",
        "final_action": "destroy",
    }
    created = post_form(client, "/admin/ged/types", "/admin/ged/types", data)
    assert created.status_code == 303, created.text
    type_url = created.headers["location"]
    document_type = api(kit, "/ged/types")[0]
    assert (document_type["dua_months"], document_type["dua_event"], document_type["final_action"]) == (
        60,
        "document_date",
        "destroy",
    )
    duplicate = post_form(client, "/admin/ged/types", "/admin/ged/types", {**data, "name": "Autre"})
    assert duplicate.status_code == 422 and "existe déjà" in duplicate.text

    choice = {"field_label": "Service", "field_name": "service", "field_kind": "choice", "field_choices": ""}
    no_choices = post_form(client, type_url, f"{type_url}/champs", choice)
    assert no_choices.status_code == 422 and 'id="field_choices-erreur"' in no_choices.text
    assert 'value="Service"' in no_choices.text
    added = post_form(client, type_url, f"{type_url}/champs", {**choice, "field_choices": "RH\nFinances\n"})
    assert added.status_code == 303
    seance = {"field_label": "Date de séance", "field_name": "seance", "field_kind": "date", "field_required": "1"}
    assert post_form(client, type_url, f"{type_url}/champs", seance).status_code == 303
    fields = api(kit, f"/ged/types/{document_type['id']}")["fields"]
    assert [(f["name"], f["kind"], f["required"], f["choices"]) for f in fields] == [
        ("service", "choice", False, ["RH", "Finances"]),
        ("seance", "date", True, []),
    ]

    field_url = f"{type_url}/champs/service"
    edit = post_form(
        client,
        field_url,
        field_url,
        {"field_label": "Service instructeur", "field_required": "1", "field_choices": "RH\nFinances\nVoirie"},
    )
    assert edit.status_code == 303
    retired = post_form(client, field_url, field_url, {"action": "retirer"})
    assert retired.status_code == 303
    fields = {f["name"]: f for f in api(kit, f"/ged/types/{document_type['id']}")["fields"]}
    assert fields["service"]["label"] == "Service instructeur" and fields["service"]["required"] is True
    assert fields["service"]["choices"] == ["RH", "Finances", "Voirie"] and fields["service"]["retired"] is True
    assert "retiré" in client.get(type_url).text
    assert post_form(client, field_url, field_url, {"action": "retablir"}).status_code == 303
    assert not api(kit, f"/ged/types/{document_type['id']}")["fields"][0].get("retired")

    # The DUA can start from a date field of the type.
    page = client.get(type_url)
    assert '<option value="seance"' in page.text
    general = {"name": "Arrêté du maire", "dua_months": "", "dua_event": "seance", "final_action": "keep"}
    assert post_form(client, type_url, type_url, general).status_code == 303
    saved = api(kit, f"/ged/types/{document_type['id']}")
    assert (saved["name"], saved["dua_months"], saved["dua_event"], saved["final_action"]) == (
        "Arrêté du maire",
        None,
        "seance",
        "keep",
    )


def test_a_used_type_cannot_be_deleted_an_unused_one_can(app: Any, kit: Kit, pdf_bytes: bytes) -> None:
    used = kit["admin"].post("/ged/types", json={"code": "courrier", "name": "Courrier"}).json()
    unused = kit["admin"].post("/ged/types", json={"code": "note", "name": "Note"}).json()
    files = {"file": ("c.pdf", pdf_bytes, "application/pdf")}
    assert (
        kit["agent"].post("/ged/documents", files=files, data={"title": "Lettre", "type": "courrier"}).status_code
        == 201
    )
    client = sign_in(app, kit, "admin")
    url = f"/admin/ged/types/{used['id']}"
    refused = post_form(client, url, f"{url}/supprimer", {})
    assert refused.status_code == 409 and "utilisé par des documents" in refused.text
    url = f"/admin/ged/types/{unused['id']}"
    assert post_form(client, url, f"{url}/supprimer", {}).status_code == 303
    assert [t["code"] for t in api(kit, "/ged/types")] == ["courrier"]


def test_groups_members_and_rights_on_folders_and_types(app: Any, kit: Kit) -> None:
    folder = kit["admin"].post("/ged/plan", json={"name": "Ressources humaines"}).json()
    document_type = kit["admin"].post("/ged/types", json={"code": "paie", "name": "Bulletin de paie"}).json()
    client = sign_in(app, kit, "admin")
    assert post_form(client, "/admin/ged/groupes", "/admin/ged/groupes", {"name": ""}).status_code == 422
    created = post_form(client, "/admin/ged/groupes", "/admin/ged/groupes", {"name": "Service RH"})
    assert created.status_code == 303
    group_url = created.headers["location"]
    group_id = group_url.rsplit("/", 1)[1]
    again = post_form(client, "/admin/ged/groupes", "/admin/ged/groupes", {"name": "Service RH"})
    assert again.status_code == 409 and 'value="Service RH"' in again.text

    page = client.get(group_url)
    assert '<option value="agent"' in page.text and "Camille Martin" in page.text
    assert post_form(client, group_url, f"{group_url}/membres", {"username": "agent"}).status_code == 303
    assert api(kit, f"/ged/groups/{group_id}")["members"] == ["agent"]
    assert post_form(client, group_url, f"{group_url}/membres", {"username": ""}).status_code == 422

    rights_url = f"/admin/ged/plan/{folder['id']}/droits"
    rights = client.get(rights_url)
    assert rights.status_code == 200 and f'name="droits_{group_id}"' in rights.text
    assert post_form(client, rights_url, rights_url, {f"droits_{group_id}": ["read", "write"]}).status_code == 303
    assert api(kit, f"/ged/plan/{folder['id']}/permissions") == [
        {"group_id": group_id, "target_kind": "folder", "target_id": folder["id"], "rights": ["read", "write"]}
    ]
    type_rights = f"/admin/ged/types/{document_type['id']}/droits"
    assert post_form(client, type_rights, type_rights, {f"droits_{group_id}": "read"}).status_code == 303
    assert api(kit, f"/ged/types/{document_type['id']}/permissions")[0]["rights"] == ["read"]
    summary = client.get(group_url)
    assert "Ressources humaines" in summary.text and "Bulletin de paie" in summary.text and "écriture" in summary.text

    # The archivist is not in the group: the folder is now closed to them.
    assert kit["archiviste"].get(f"/ged/plan/{folder['id']}").status_code == 404
    assert post_form(client, rights_url, rights_url, {}).status_code == 303  # no group ticked: open again
    assert api(kit, f"/ged/plan/{folder['id']}/permissions") == []

    assert post_form(client, group_url, f"{group_url}/membres/agent/retirer", {}).status_code == 303
    assert api(kit, f"/ged/groups/{group_id}")["members"] == []
    assert post_form(client, group_url, f"{group_url}/supprimer", {}).status_code == 303
    assert api(kit, "/ged/groups") == []


def test_plan_folders_created_renamed_moved_and_deleted(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "admin")
    assert "Le plan de classement est vide" in client.get("/admin/ged/plan").text
    assert (
        post_form(client, "/admin/ged/plan", "/admin/ged/plan", {"name": "Finances", "code": "1D"}).status_code == 303
    )
    finances = api(kit, "/ged/plan")["children"][0]
    child = {"name": "Budget", "parent_id": finances["id"]}
    assert post_form(client, "/admin/ged/plan", "/admin/ged/plan", child).status_code == 303
    twice = post_form(client, "/admin/ged/plan", "/admin/ged/plan", child)
    assert twice.status_code == 409 and 'id="name-erreur"' in twice.text and 'value="Budget"' in twice.text
    assert post_form(client, "/admin/ged/plan", "/admin/ged/plan", {"name": "Urbanisme"}).status_code == 303
    budget = api(kit, f"/ged/plan/{finances['id']}")["children"][0]
    urbanisme = next(f for f in api(kit, "/ged/plan")["children"] if f["name"] == "Urbanisme")

    url = f"/admin/ged/plan/{finances['id']}"
    page = client.get(url)
    assert page.status_code == 200 and f'<option value="{budget["id"]}"' not in page.text  # not under itself
    assert post_form(client, url, url, {"name": "Finances et budget", "code": "1D"}).status_code == 303
    assert api(kit, f"/ged/plan/{finances['id']}")["folder"]["name"] == "Finances et budget"
    empty_name = post_form(client, url, url, {"name": "", "code": "1D"})
    assert empty_name.status_code == 422 and 'id="name-erreur"' in empty_name.text

    budget_url = f"/admin/ged/plan/{budget['id']}"
    moved = post_form(client, budget_url, f"{budget_url}/deplacer", {"parent_id": urbanisme["id"]})
    assert moved.status_code == 303
    assert api(kit, f"/ged/plan/{budget['id']}")["folder"]["parent_id"] == urbanisme["id"]
    loop = post_form(
        client,
        f"/admin/ged/plan/{urbanisme['id']}",
        f"/admin/ged/plan/{urbanisme['id']}/deplacer",
        {"parent_id": budget["id"]},
    )
    assert loop.status_code == 422 and "lui-même" in loop.text

    not_empty = post_form(
        client, f"/admin/ged/plan/{urbanisme['id']}", f"/admin/ged/plan/{urbanisme['id']}/supprimer", {}
    )
    assert not_empty.status_code == 409 and "pas vide" in not_empty.text
    assert post_form(client, budget_url, f"{budget_url}/supprimer", {}).status_code == 303
    assert [f["name"] for f in api(kit, "/ged/plan")["children"]] == ["Finances et budget", "Urbanisme"]


def test_ged_administration_is_the_admin_s(app: Any, kit: Kit, make_kit: Any) -> None:
    agent = sign_in(app, kit, "agent")
    for path in ("/admin/ged/types", "/admin/ged/groupes", "/admin/ged/plan"):
        assert agent.get(path).status_code == 403
    archivist = sign_in(app, kit, "archiviste")
    assert archivist.get("/admin/ged/types").status_code == 403
    other = make_kit(with_identity=False)
    foreign_type = other["admin"].post("/ged/types", json={"code": "x", "name": "X"}).json()
    foreign_folder = other["admin"].post("/ged/plan", json={"name": "Y"}).json()
    foreign_group = other["admin"].post("/ged/groups", json={"name": "Z"}).json()
    admin = sign_in(app, kit, "admin")
    for path in (
        f"/admin/ged/types/{foreign_type['id']}",
        f"/admin/ged/types/{foreign_type['id']}/droits",
        f"/admin/ged/plan/{foreign_folder['id']}",
        f"/admin/ged/plan/{foreign_folder['id']}/droits",
        f"/admin/ged/groupes/{foreign_group['id']}",
    ):
        assert admin.get(path).status_code == 404, path
