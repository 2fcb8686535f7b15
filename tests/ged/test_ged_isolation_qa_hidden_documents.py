"""A user who may not read a document or a folder learns nothing of it: not that it exists or sits in the trash
(API, renditions, writes, CMIS, the pages, a finished upload asked again), nor its title or name on the pages
(a hold, an elimination's proof, a refused search)."""

from __future__ import annotations

from typing import Any

from ga_helpers import make_folder, make_type, new_document
from ui_kit import post_form, sign_in

from conftest import Kit, assert_problem, make_pdf

MISSING = "00000000-0000-0000-0000-000000000000"


def _restricted_folder(kit: Kit, name: str = "Ressources humaines") -> str:
    """A folder only the group « rh » (the maire) may use: agent and archiviste may not even read it."""
    folder = make_folder(kit, name)
    group = kit["admin"].post("/ged/groups", json={"name": "rh"}).json()
    assert kit["admin"].post(f"/ged/groups/{group['id']}/members", json={"username": "maire"}).status_code == 200
    rights = [{"group_id": group["id"], "rights": ["read", "write", "delete", "manage"]}]
    assert kit["admin"].put(f"/ged/plan/{folder['id']}/permissions", json=rights).status_code == 200
    return str(folder["id"])


def _same_as_missing(response: Any, document_id: str, missing: Any) -> None:
    """The answer about a hidden document is the answer about one that never existed, but for the id."""
    assert response.status_code == missing.status_code == 404, response.text
    assert response.json()["detail"].replace(document_id, MISSING) == missing.json()["detail"], response.text


def test_a_trashed_document_the_user_may_not_read_is_answered_as_a_missing_one(kit: Kit) -> None:
    folder = _restricted_folder(kit)
    secret = new_document(kit, user="admin", folder_id=folder, title="Licenciement")
    assert kit["admin"].delete(f"/ged/documents/{secret['id']}").status_code == 200
    agent = kit["agent"]

    for path in ("", "/renditions", "/text", "/preview", "/thumbnail", "/pdfa", "/content"):
        _same_as_missing(
            agent.get(f"/ged/documents/{secret['id']}{path}"),
            secret["id"],
            agent.get(f"/ged/documents/{MISSING}{path}"),
        )
    writes: list[tuple[str, str, dict[str, Any]]] = [
        ("PATCH", "", {"json": {"title": "Autre titre"}}),
        ("DELETE", "", {}),
        ("PUT", "/folder", {"json": {"folder_id": None}}),
        ("POST", "/versions", {"files": {"file": ("v2.pdf", make_pdf("v2"), "application/pdf")}}),
    ]
    for method, path, body in writes:
        hidden = agent.request(method, f"/ged/documents/{secret['id']}{path}", **body)
        _same_as_missing(hidden, secret["id"], agent.request(method, f"/ged/documents/{MISSING}{path}", **body))

    cmis = f"/ged/cmis/{kit.slug}/root"
    hidden = agent.get(cmis, params={"objectId": secret["id"], "cmisselector": "object"})
    missing = agent.get(cmis, params={"objectId": MISSING, "cmisselector": "object"})
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["message"].replace(secret["id"], MISSING) == missing.json()["message"]

    # Who may read it is still told where it is.
    for path in ("/renditions", "/text"):
        told = assert_problem(kit["maire"].get(f"/ged/documents/{secret['id']}{path}"), 404)
        assert "corbeille" in told["detail"]
    told = assert_problem(kit["maire"].patch(f"/ged/documents/{secret['id']}", json={"title": "x"}), 404)
    assert "corbeille" in told["detail"]
    assert "corbeille" in kit["maire"].get(cmis, params={"objectId": secret["id"]}).json()["message"]


def test_the_page_of_a_trashed_document_keeps_it_hidden_from_who_may_not_read_it(kit: Kit, app: Any) -> None:
    folder = _restricted_folder(kit)
    secret = new_document(kit, user="admin", folder_id=folder, title="Licenciement")
    assert kit["admin"].delete(f"/ged/documents/{secret['id']}").status_code == 200
    page = sign_in(app, kit, "agent")
    mine = new_document(kit, title="Mon document")
    answer = post_form(
        page,
        f"/documents/{mine['id']}",
        f"/documents/{secret['id']}/versions",
        {},
        files={"file": ("v2.pdf", make_pdf("v2"), "application/pdf")},
    )
    assert answer.status_code == 404
    assert "corbeille" not in answer.text and "Licenciement" not in answer.text


def test_a_hold_page_names_only_the_documents_the_archivist_may_read(kit: Kit, app: Any) -> None:
    folder = _restricted_folder(kit)
    secret = new_document(kit, user="admin", folder_id=folder, title="Dossier disciplinaire de M. Untel")
    open_one = new_document(kit, title="Marché de voirie")
    hold = kit["admin"].post("/ged/holds", json={"name": "Contentieux", "reason": "Recours"}).json()
    added = kit["admin"].post(
        f"/ged/holds/{hold['id']}/documents", json={"document_ids": [secret["id"], open_one["id"]]}
    )
    assert added.status_code == 200, added.text

    html = sign_in(app, kit, "archiviste").get(f"/gels/{hold['id']}").text
    assert "Dossier disciplinaire" not in html
    assert "Marché de voirie" in html and f'href="/documents/{open_one["id"]}"' in html
    assert secret["id"] in html and "Vous n'avez pas accès à ce document." in html
    assert f'href="/documents/{secret["id"]}"' not in html

    html = sign_in(app, kit, "admin").get(f"/gels/{hold['id']}").text
    assert "Dossier disciplinaire de M. Untel" in html and "Marché de voirie" in html


def test_an_elimination_proof_names_only_the_documents_the_archivist_may_read(kit: Kit, app: Any) -> None:
    make_type(kit, "bon", dua_months=12, dua_event="document_date", final_action="destroy")
    folder = _restricted_folder(kit)
    secret = new_document(kit, user="admin", folder_id=folder, type="bon", date="2019-05-01", title="Sanction 2019")
    open_one = new_document(kit, type="bon", date="2019-05-01", title="Bon de commande 2019", text="bon")
    proposal = kit["admin"].post("/ged/eliminations", json={"document_ids": [secret["id"], open_one["id"]]})
    assert proposal.status_code == 201, proposal.text
    elimination = proposal.json()["id"]
    assert kit["archiviste"].post(f"/ged/eliminations/{elimination}/approve").status_code == 200
    assert kit["admin"].post(f"/ged/eliminations/{elimination}/execute").json()["status"] == "done"

    html = sign_in(app, kit, "archiviste").get(f"/archives/eliminations/{elimination}").text
    assert "Preuve de l'élimination" in html
    assert "Sanction 2019" not in html
    assert "Bon de commande 2019" in html and secret["id"] in html

    html = sign_in(app, kit, "admin").get(f"/archives/eliminations/{elimination}").text
    assert "Sanction 2019" in html and "Bon de commande 2019" in html


def test_cmis_answers_a_hidden_document_or_folder_as_an_unknown_id(kit: Kit, make_kit: Any) -> None:
    folder = _restricted_folder(kit)
    secret = new_document(kit, user="admin", folder_id=folder, title="Licenciement")
    elsewhere = make_kit(with_identity=False)
    theirs = new_document(elsewhere, title="Document d'une autre collectivité")
    url = f"/ged/cmis/{kit.slug}/root"
    agent = kit["agent"]

    def message(object_id: str, **params: str) -> str:
        response = agent.get(url, params={"objectId": object_id, **params})
        assert response.status_code == 404 and response.json()["exception"] == "objectNotFound", response.text
        return str(response.json()["message"]).replace(object_id, MISSING)

    expected = message(MISSING, cmisselector="object")
    for hidden in (secret["id"], f"{secret['id']};1", folder, theirs["id"]):
        assert message(hidden, cmisselector="object") == expected, hidden
    # Named as the folder of a query: the same silence.
    for hidden in (secret["id"], folder, MISSING):
        query = f"SELECT * FROM cmis:document WHERE IN_FOLDER('{hidden}')"
        response = agent.get(f"/ged/cmis/{kit.slug}", params={"cmisselector": "query", "q": query})
        assert response.status_code == 404, response.text
        assert response.json()["message"].replace(hidden, MISSING) == expected


def test_a_refused_search_does_not_name_a_folder_the_user_may_not_read(kit: Kit, app: Any) -> None:
    hidden = _restricted_folder(kit, "Contentieux prud'homal Durand")
    open_folder = make_folder(kit, "Voirie communale")
    page = sign_in(app, kit, "agent")
    refused = page.get("/documents", params={"folder": hidden, "date_from": "pas une date"})
    assert refused.status_code == 422
    assert "Durand" not in refused.text and "prud" not in refused.text
    # A folder the user may read is still named in the active filters.
    named = page.get("/documents", params={"folder": open_folder["id"], "date_from": "pas une date"})
    assert named.status_code == 422 and "Voirie communale" in named.text


def test_finishing_an_upload_again_does_not_show_a_document_moved_out_of_reach(kit: Kit) -> None:
    content = make_pdf("envoi en morceaux")
    agent = kit["agent"]
    opened = agent.post(
        "/ged/uploads",
        json={
            "filename": "acte.pdf",
            "size": len(content),
            "metadata": {"title": "Avertissement", "document_type": "x"},
        },
    )
    assert opened.status_code == 201, opened.text
    upload = opened.json()["id"]
    headers = {"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream", "Tus-Resumable": "1.0.0"}
    assert agent.patch(f"/ged/uploads/{upload}", content=content, headers=headers).status_code == 204
    finished = agent.post(f"/ged/uploads/{upload}/finish")
    assert finished.status_code == 201, finished.text
    document = finished.json()["id"]
    assert agent.post(f"/ged/uploads/{upload}/finish").json()["id"] == document  # asked again: the same document

    # The admin files it where the agent may not read: the upload no longer shows it, as GET does not.
    hidden = _restricted_folder(kit)
    assert kit["admin"].put(f"/ged/documents/{document}/folder", json={"folder_id": hidden}).status_code == 200
    _same_as_missing(agent.get(f"/ged/documents/{document}"), document, agent.get(f"/ged/documents/{MISSING}"))
    again = agent.post(f"/ged/uploads/{upload}/finish")
    _same_as_missing(again, document, agent.get(f"/ged/documents/{MISSING}"))
    assert "Avertissement" not in again.text
