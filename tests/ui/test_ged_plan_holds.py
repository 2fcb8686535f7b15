"""GED pages: the classification plan as a tree with a folder's documents, and legal holds (gels)."""

from __future__ import annotations

from typing import Any

from ui_kit import csrf_of, post_form, sign_in

from conftest import Kit, make_pdf


def make_folder(kit: Kit, name: str, parent_id: str | None = None, code: str | None = None) -> dict[str, Any]:
    response = kit["admin"].post("/ged/plan", json={"name": name, "parent_id": parent_id, "code": code})
    assert response.status_code == 201, response.text
    return dict(response.json())


def new_document(kit: Kit, title: str, **data: Any) -> dict[str, Any]:
    files = {"file": ("acte.pdf", make_pdf(title), "application/pdf")}
    response = kit["agent"].post("/ged/documents", files=files, data={"title": title, "document_type": "acte", **data})
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_plan_is_a_tree_of_links_and_shows_a_folder_documents(app: Any, kit: Kit, make_kit: Any) -> None:
    finances = make_folder(kit, "Finances", code="1D")
    budget = make_folder(kit, "Budget", finances["id"])
    make_folder(kit, "Urbanisme")
    document = new_document(kit, "Budget primitif", folder_id=budget["id"])
    client = sign_in(app, kit, "agent")

    root = client.get("/plan")
    assert root.status_code == 200
    assert root.text.count("<h1>") == 1 and "Choisissez un dossier" in root.text
    # Nested lists: Budget's link sits in a list inside Finances' item.
    nested = root.text.index(f'href="/plan/{finances["id"]}"') < root.text.index("<ul>", root.text.index("Finances"))
    assert nested and root.text.index(f'href="/plan/{budget["id"]}"') > root.text.index("Finances")
    assert "Urbanisme" in root.text

    folder = client.get(f"/plan/{budget['id']}")
    assert folder.status_code == 200
    assert f'href="/plan/{budget["id"]}" aria-current="page"' in folder.text
    assert "Budget primitif" in folder.text and f'href="/documents/{document["id"]}"' in folder.text
    assert f"/documents/nouveau?dossier={budget['id']}" in folder.text
    assert "Aucun document dans ce dossier" in client.get(f"/plan/{finances['id']}").text

    other = make_kit(with_identity=False)
    foreign = make_folder(other, "Secret")
    assert client.get(f"/plan/{foreign['id']}").status_code == 404
    assert client.get("/plan/inconnu").status_code == 404


def test_empty_plan_says_so(app: Any, kit: Kit) -> None:
    page = sign_in(app, kit, "agent").get("/plan")
    assert page.status_code == 200 and "Le plan de classement est vide" in page.text
    admin_page = sign_in(app, kit, "admin").get("/plan")
    assert "/admin/ged/plan" in admin_page.text


def test_holds_are_placed_filled_and_lifted(app: Any, kit: Kit) -> None:
    document = new_document(kit, "Permis de construire contesté")
    client = sign_in(app, kit, "archiviste")
    empty = client.get("/gels")
    assert empty.status_code == 200 and "Aucun gel en cours" in empty.text

    missing = post_form(client, "/gels", "/gels", {"name": "Recours PC 2026-3", "reason": ""})
    assert missing.status_code == 422 and 'id="reason-erreur"' in missing.text
    assert 'value="Recours PC 2026-3"' in missing.text  # kept
    created = post_form(client, "/gels", "/gels", {"name": "Recours PC 2026-3", "reason": "Recours gracieux"})
    assert created.status_code == 303
    hold_url = created.headers["location"]
    hold_id = hold_url.rsplit("/", 1)[1]

    unknown = post_form(client, hold_url, f"{hold_url}/documents", {"document_id": "00000000-0000-0000-0000-0000"})
    assert unknown.status_code == 404 and 'id="document_id-erreur"' in unknown.text
    added = post_form(client, hold_url, f"{hold_url}/documents", {"document_id": document["id"]})
    assert added.status_code == 303
    assert kit["archiviste"].get(f"/ged/holds/{hold_id}").json()["document_ids"] == [document["id"]]
    page = client.get(hold_url)
    assert "Permis de construire contesté" in page.text and "Recours gracieux" in page.text
    assert "Recours PC 2026-3" in client.get("/gels").text

    # While held, the document cannot be modified; lifting frees it.
    assert kit["agent"].delete(f"/ged/documents/{document['id']}").status_code == 409
    refused = post_form(client, hold_url, f"{hold_url}/lever", {"raison": " "})
    assert refused.status_code == 422 and "Dites pourquoi le gel est levé" in refused.text
    assert kit["archiviste"].get(f"/ged/holds/{hold_id}").json()["released_at"] is None
    lifted = post_form(client, hold_url, f"{hold_url}/lever", {"raison": "Recours rejeté le 2 mars 2027"})
    assert lifted.status_code == 303
    assert kit["archiviste"].get(f"/ged/holds/{hold_id}").json()["release_reason"] == "Recours rejeté le 2 mars 2027"
    after = client.get(hold_url)
    assert "Levé" in after.text and "Lever le gel" not in after.text
    assert "Recours rejeté le 2 mars 2027" in after.text
    # Each document's own history says it too.
    history = client.get(f"/documents/{document['id']}").text
    history = history[history.index("Journal des actions sur le document") :]
    assert history.index("Fin du gel") < history.index("Mise sous gel") < history.index("Dépôt du document")
    assert "Gels levés" in client.get("/gels").text
    assert kit["agent"].delete(f"/ged/documents/{document['id']}").status_code == 200


def test_a_document_can_be_taken_out_of_a_hold(app: Any, kit: Kit) -> None:
    document = new_document(kit, "Marché public")
    hold = kit["archiviste"].post("/ged/holds", json={"name": "Audit", "reason": "Contrôle de la CRC"}).json()
    kit["archiviste"].post(f"/ged/holds/{hold['id']}/documents", json={"document_ids": [document["id"]]})
    client = sign_in(app, kit, "archiviste")
    url = f"/gels/{hold['id']}"
    answer = post_form(client, url, f"{url}/documents/{document['id']}/retirer", {})
    assert answer.status_code == 303
    assert kit["archiviste"].get(f"/ged/holds/{hold['id']}").json()["document_ids"] == []


def test_document_page_puts_it_under_an_existing_hold(app: Any, kit: Kit) -> None:
    document = new_document(kit, "Délibération attaquée")
    hold = kit["archiviste"].post("/ged/holds", json={"name": "Contentieux TA", "reason": "Requête"}).json()
    client = sign_in(app, kit, "archiviste")
    url = f"/documents/{document['id']}"
    page = client.get(url)
    assert f'<option value="{hold["id"]}"' in page.text
    answer = client.post(f"{url}/geler", data={"csrf": csrf_of(page.text), "hold_id": hold["id"]})
    assert answer.status_code == 303
    assert kit["archiviste"].get(f"/ged/holds/{hold['id']}").json()["document_ids"] == [document["id"]]


def test_holds_are_the_archivist_s(app: Any, kit: Kit, make_kit: Any) -> None:
    agent = sign_in(app, kit, "agent")
    assert agent.get("/gels").status_code == 403
    assert "Gels" not in agent.get("/documents").text.split("</nav>")[1]  # not in the GED's sub-navigation
    other = make_kit(with_identity=False)
    foreign = other["archiviste"].post("/ged/holds", json={"name": "Autre", "reason": "x"}).json()
    assert sign_in(app, kit, "archiviste").get(f"/gels/{foreign['id']}").status_code == 404


def test_archivists_are_offered_a_transfer_from_a_document_and_a_folder(app: Any, kit: Kit) -> None:
    folder = make_folder(kit, "Délibérations 2019")
    document = new_document(kit, "Délibération 2019-04", folder_id=folder["id"])
    archivist = sign_in(app, kit, "archiviste")
    page = archivist.get(f"/documents/{document['id']}").text
    assert f'href="/archives/transferts/nouveau?documents={document["id"]}"' in page
    assert f'href="/archives/transferts/nouveau?dossier={folder["id"]}"' in archivist.get(f"/plan/{folder['id']}").text
    form = archivist.get(f"/archives/transferts/nouveau?documents={document['id']}")
    assert form.status_code == 200 and document["id"] in form.text
    agent = sign_in(app, kit, "agent")
    assert "/archives/transferts/nouveau" not in agent.get(f"/documents/{document['id']}").text
