"""A folder readable under one the user may not read (permissions of its own): nothing names or identifies the
unreadable ancestor, neither CMIS (properties, parents, parent, children, paths) nor the API nor the pages."""

from __future__ import annotations

from typing import Any

from ga_helpers import make_folder, new_document
from ui_kit import sign_in

from conftest import Kit

SECRET_NAME = "Direction générale confidentielle"


def _group(kit: Kit, name: str, member: str) -> str:
    group = kit["admin"].post("/ged/groups", json={"name": name}).json()
    assert kit["admin"].post(f"/ged/groups/{group['id']}/members", json={"username": member}).status_code == 200
    return str(group["id"])


def _grant(kit: Kit, folder_id: str, group_id: str, rights: list[str]) -> None:
    granted = kit["admin"].put(f"/ged/plan/{folder_id}/permissions", json=[{"group_id": group_id, "rights": rights}])
    assert granted.status_code == 200, granted.text


def _plan(kit: Kit) -> dict[str, Any]:
    """« Direction générale confidentielle » (the maire's group only) › « Ressources humaines » (the agent's
    group, read and write) › « Carrières » (inherits), with a document in « Ressources humaines »."""
    top = make_folder(kit, SECRET_NAME)
    hr = make_folder(kit, "Ressources humaines", top["id"])
    careers = make_folder(kit, "Carrières", hr["id"])
    _grant(kit, top["id"], _group(kit, "dg", "maire"), ["read", "write", "delete", "manage"])
    _grant(kit, hr["id"], _group(kit, "rh", "agent"), ["read", "write"])
    document = new_document(kit, user="admin", folder_id=hr["id"], title="Tableau des effectifs")
    return {"top": top["id"], "hr": hr["id"], "careers": careers["id"], "document": document["id"]}


def _hides(text: str, ids: dict[str, Any]) -> None:
    assert SECRET_NAME not in text and ids["top"] not in text, text


def test_cmis_never_names_an_unreadable_ancestor(kit: Kit) -> None:
    ids = _plan(kit)
    agent, url = kit["agent"], f"/ged/cmis/{kit.slug}/root"

    def get(object_id: str, selector: str, **params: str) -> Any:
        response = agent.get(url, params={"objectId": object_id, "cmisselector": selector, **params})
        _hides(response.text, ids)
        return response

    hr = get(ids["hr"], "object", succinct="true", includeAllowableActions="true").json()
    assert hr["succinctProperties"]["cmis:name"] == "Ressources humaines"
    assert hr["succinctProperties"]["cmis:parentId"] is None
    assert hr["succinctProperties"]["cmis:path"] == "/…/Ressources humaines"  # required: a placeholder, no name
    assert hr["allowableActions"]["canGetFolderParent"] is False
    careers = get(ids["careers"], "properties").json()
    assert careers["cmis:parentId"]["value"] == ids["hr"]
    assert careers["cmis:path"]["value"] == "/…/Ressources humaines/Carrières"

    assert get(ids["hr"], "parents").json() == []
    parent = get(ids["hr"], "parent")
    assert parent.status_code == 404 and parent.json()["exception"] == "objectNotFound"
    # The parents of a document and of « Carrières »: « Ressources humaines », shown without its ancestor.
    for child in (ids["document"], ids["careers"]):
        [shown] = get(child, "parents").json()
        assert shown["object"]["properties"]["cmis:objectId"]["value"] == ids["hr"]
    children = get(ids["hr"], "children").json()
    assert {o["object"]["properties"]["cmis:name"]["value"] for o in children["objects"]} == {
        "Carrières",
        "Tableau des effectifs",
    }
    query = f"SELECT * FROM cmis:document WHERE IN_TREE('{ids['hr']}')"
    found = agent.post(f"/ged/cmis/{kit.slug}", data={"cmisaction": "query", "q": query})
    assert found.json()["numItems"] == 1
    _hides(found.text, ids)

    # By path: the unreadable folder is answered as an absent one, without its id.
    hidden = agent.get(f"{url}/{SECRET_NAME}/Ressources humaines")
    absent = agent.get(f"{url}/Absent/Ressources humaines")
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json() == {
        **absent.json(),
        "message": absent.json()["message"].replace("Absent", SECRET_NAME),
    }
    assert ids["top"] not in hidden.text

    # Who may read the whole chain still gets the full path and the parent.
    full = kit["admin"].get(url, params={"objectId": ids["careers"], "cmisselector": "object", "succinct": "true"})
    assert full.json()["succinctProperties"]["cmis:path"] == f"/{SECRET_NAME}/Ressources humaines/Carrières"
    admin_parent = kit["admin"].get(url, params={"objectId": ids["hr"], "cmisselector": "parent", "succinct": "true"})
    assert admin_parent.json()["succinctProperties"]["cmis:objectId"] == ids["top"]


def test_the_plan_api_and_the_pages_start_the_trail_below_an_unreadable_ancestor(kit: Kit, app: Any) -> None:
    ids = _plan(kit)
    contents = kit["agent"].get(f"/ged/plan/{ids['hr']}")
    assert contents.status_code == 200, contents.text
    _hides(contents.text, ids)
    body = contents.json()
    assert body["folder"]["parent_id"] is None and body["folder"]["path"] == ids["hr"]
    assert [(c["parent_id"], c["path"]) for c in body["children"]] == [(ids["hr"], f"{ids['hr']}/{ids['careers']}")]
    full = kit["admin"].get(f"/ged/plan/{ids['hr']}").json()["folder"]
    assert full["parent_id"] == ids["top"] and full["path"] == f"{ids['top']}/{ids['hr']}"

    page = sign_in(app, kit, "agent")
    for path in (f"/plan/{ids['hr']}", f"/plan/{ids['careers']}", f"/documents/{ids['document']}"):
        html = page.get(path)
        assert html.status_code == 200, path
        _hides(html.text, ids)
        assert "Ressources humaines" in html.text
    html = sign_in(app, kit, "admin").get(f"/documents/{ids['document']}").text
    assert SECRET_NAME in html
