"""The archivist's GED pages: what reached the end of its DUA, chosen for a transfer or proposed for elimination,
and eliminations approved by a second person, carried out, with their proof."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient
from sqlalchemy import select
from ui_kit import csrf_of, post_form, sign_in

from socle.db import transaction
from socle.models import AuditEntry

from conftest import Kit, make_pdf

DUA = "/archives/dua"
ELIMINATIONS = "/archives/eliminations"
# The domain's refusal, as the page shows it (escaped apostrophe).
FOUR_EYES = "Une élimination est approuvée ou refusée par une autre personne que celle qui l&#39;a proposée."


def make_type(kit: Kit, code: str, name: str, final_action: str) -> None:
    body = {"code": code, "name": name, "dua_months": 12, "dua_event": "document_date", "final_action": final_action}
    response = kit["admin"].post("/ged/types", json=body)
    assert response.status_code == 201, response.text


def new_document(kit: Kit, title: str, type_code: str, date: str = "2019-01-01") -> dict[str, Any]:
    files = {"file": ("acte.pdf", make_pdf(title), "application/pdf")}
    data = {"title": title, "document_type": type_code, "type": type_code, "date": date}
    response = kit["agent"].post("/ged/documents", files=files, data=data)
    assert response.status_code == 201, response.text
    return dict(response.json())


def hold(kit: Kit, name: str, *document_ids: str) -> None:
    created = kit["archiviste"].post("/ged/holds", json={"name": name, "reason": "recours contentieux"})
    assert created.status_code == 201, created.text
    added = kit["archiviste"].post(f"/ged/holds/{created.json()['id']}/documents", json={"document_ids": document_ids})
    assert added.status_code == 200, added.text


def setup(kit: Kit) -> dict[str, dict[str, Any]]:
    """One document of each final action whose DUA ended, a held one, and one whose DUA still runs."""
    make_type(kit, "registre", "Registre des délibérations", "keep")
    make_type(kit, "courrier", "Courrier", "sort")
    make_type(kit, "bon", "Bon de commande", "destroy")
    documents = {
        "keep": new_document(kit, "Registre 2018", "registre"),
        "sort": new_document(kit, "Courrier au préfet", "courrier"),
        "destroy": new_document(kit, "Bon de commande 2018", "bon"),
        "held": new_document(kit, "Bon de commande litigieux", "bon"),
        "running": new_document(kit, "Bon de commande récent", "bon", date="2099-01-01"),
    }
    hold(kit, "Contentieux Dupont", documents["held"]["id"])
    return documents


def elimination(kit: Kit, elimination_id: str) -> dict[str, Any]:
    response = kit["archiviste"].get(f"/ged/eliminations/{elimination_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def propose(client: TestClient, *document_ids: str, comment: str = "") -> Any:
    return post_form(client, DUA, f"{DUA}/eliminer", {"eliminer": list(document_ids), "commentaire": comment})


def proposed(client: TestClient, *document_ids: str) -> str:
    """Propose through the page; the new elimination's id, from the redirect."""
    answer = propose(client, *document_ids, comment="Tri annuel")
    assert answer.status_code == 303, answer.text
    found = re.fullmatch(r"/archives/eliminations/([0-9a-f-]{36})", answer.headers["location"])
    assert found, answer.headers["location"]
    return found.group(1)


def checkbox(html: str, name: str, document_id: str) -> bool:
    return re.search(rf'<input type="checkbox" form="[^"]+" name="{name}" value="{document_id}"', html) is not None


# ---------------------------------------------------------------------------------------------------------
# What reached the end of its DUA


def test_the_dua_list_shows_each_document_with_its_final_action_and_holds(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    assert "Aucun document n'est arrivé au terme de sa DUA." in client.get(DUA).text
    documents = setup(kit)
    page = client.get(DUA)
    assert page.status_code == 200
    html = page.text
    assert html.count("<h1>") == 1 and "Documents dont la DUA est échue : 4" in html
    for key in ("keep", "sort", "destroy", "held"):
        assert f'href="/documents/{documents[key]["id"]}"' in html, key
    assert documents["running"]["id"] not in html  # its DUA still runs
    assert "1 janvier 2020" in html  # 2019-01-01 + 12 months
    assert "Registre des délibérations" in html and "Conserver" in html and "Trier" in html and "Détruire" in html
    assert checkbox(html, "verser", documents["keep"]["id"]) and checkbox(html, "verser", documents["sort"]["id"])
    assert checkbox(html, "eliminer", documents["destroy"]["id"])
    assert not checkbox(html, "eliminer", documents["held"]["id"])  # held: neither transferred nor eliminated
    assert not checkbox(html, "verser", documents["held"]["id"])
    assert "Oui : Contentieux Dupont" in html
    assert 'data-select-all="verser"' in html and 'data-select-all="eliminer"' in html
    assert 'action="/archives/dua/verser"' in html and 'action="/archives/dua/eliminer"' in html

    def listed(query: str) -> set[str]:
        text = client.get(f"{DUA}?{query}").text
        return {key for key, document in documents.items() if f'href="/documents/{document["id"]}"' in text}

    assert listed("sort=conserver") == {"keep"}
    assert listed("sort=trier") == {"sort"}
    assert listed("sort=detruire") == {"destroy", "held"}
    assert listed("type=courrier") == {"sort"}
    assert listed("sort=conserver&type=bon") == set()
    assert listed("sort=inconnu&page=x") == {"keep", "sort", "destroy", "held"}  # unknown values are ignored
    # « ² » is a digit to str.isdigit(), not to int(), which refuses 5,000 digits too: the first page, not a 500.
    assert listed("page=%C2%B2") == listed(f"page={'1' * 5000}") == {"keep", "sort", "destroy", "held"}
    only_destroy = client.get(f"{DUA}?sort=detruire").text
    assert 'action="/archives/dua/verser"' not in only_destroy  # nothing to transfer: no transfer form
    empty = client.get(f"{DUA}?sort=conserver&type=bon").text
    assert "Aucun document ne correspond à ces filtres." in empty


def test_the_documents_ticked_open_the_transfer_form(app: Any, kit: Kit) -> None:
    documents = setup(kit)
    client = sign_in(app, kit, "archiviste")
    keep, sort = documents["keep"]["id"], documents["sort"]["id"]
    answer = client.get(f"{DUA}/verser", params={"verser": [keep, sort, keep], "sort": "conserver"})
    assert answer.status_code == 303
    location = urlsplit(answer.headers["location"])
    assert location.path == "/archives/transferts/nouveau"
    assert parse_qs(location.query) == {"documents": [f"{keep},{sort}"]}
    form = client.get(answer.headers["location"])
    assert form.status_code == 200 and keep in form.text and sort in form.text

    nothing = client.get(f"{DUA}/verser", params={"sort": "trier"})
    assert nothing.status_code == 422
    assert 'id="verser"' in nothing.text and "Cochez au moins un document à verser." in nothing.text
    assert 'href="#verser"' in nothing.text  # the error summary leads to it
    assert '<option value="trier" selected>' in nothing.text  # the filter is kept


# ---------------------------------------------------------------------------------------------------------
# Proposing an elimination


def test_proposing_an_elimination_and_what_the_domain_refuses(app: Any, kit: Kit) -> None:
    documents = setup(kit)
    client = sign_in(app, kit, "archiviste")
    nothing = propose(client, comment="Tri annuel")
    assert nothing.status_code == 422 and "Cochez au moins un document à éliminer." in nothing.text
    assert "Tri annuel</textarea>" in nothing.text  # what was typed is kept

    kept = propose(client, documents["keep"]["id"], comment="Tri annuel")
    assert kept.status_code == 422
    assert "son type ne prévoit pas la destruction" in kept.text and "Tri annuel</textarea>" in kept.text

    held = propose(client, documents["held"]["id"], comment="Tri annuel")
    assert held.status_code == 409 and "Contentieux Dupont" in held.text
    assert kit["archiviste"].get("/ged/eliminations").json() == []

    too_long = propose(client, documents["destroy"]["id"], comment="x" * 5001)
    assert too_long.status_code == 422 and 'id="commentaire-erreur"' in too_long.text

    elimination_id = proposed(client, documents["destroy"]["id"])
    found = elimination(kit, elimination_id)
    assert found["status"] == "proposed" and found["document_ids"] == [documents["destroy"]["id"]]
    assert found["proposed_by"] == "archiviste" and found["comment"] == "Tri annuel"
    page = client.get(f"{ELIMINATIONS}/{elimination_id}").text
    assert "Élimination proposée : une autre personne doit maintenant l'approuver." in page
    assert "Bon de commande 2018" in page

    html = client.get(DUA).text  # now pending: a link to its proposal instead of a checkbox
    assert not checkbox(html, "eliminer", documents["destroy"]["id"])
    assert f'href="/archives/eliminations/{elimination_id}"' in html
    again = propose(client, documents["destroy"]["id"])
    assert again.status_code == 409 and "Déjà proposés à l&#39;élimination" in again.text


# ---------------------------------------------------------------------------------------------------------
# Approval by a second person, carrying out, proof


def test_four_eyes_then_carrying_out_with_the_proof(app: Any, kit: Kit) -> None:
    documents = setup(kit)
    archivist = sign_in(app, kit, "archiviste")
    elimination_id = proposed(archivist, documents["destroy"]["id"])
    page_url = f"{ELIMINATIONS}/{elimination_id}"

    page = archivist.get(page_url).text
    assert "Vous avez proposé cette élimination" in page and 'value="approuver"' not in page
    refused = post_form(archivist, page_url, f"{page_url}/decision", {"decision": "approuver", "commentaire": "ok"})
    assert refused.status_code == 403 and FOUR_EYES in refused.text
    assert "Action non autorisée" not in refused.text  # the page itself, with the domain's reason
    assert elimination(kit, elimination_id)["status"] == "proposed"

    admin = sign_in(app, kit, "admin")
    page = admin.get(page_url).text
    assert 'value="approuver"' in page and 'value="refuser"' in page
    wrong = post_form(admin, page_url, f"{page_url}/decision", {"decision": "peut-etre", "commentaire": "à voir"})
    assert wrong.status_code == 422 and "Choisissez d&#39;approuver ou de refuser" in wrong.text
    assert "à voir</textarea>" in wrong.text
    approved = post_form(admin, page_url, f"{page_url}/decision", {"decision": "approuver", "commentaire": "vu"})
    assert approved.status_code == 303
    found = elimination(kit, elimination_id)
    assert found["status"] == "approved" and found["decided_by"] == "admin" and "admin : vu" in found["comment"]
    page = admin.get(page_url).text
    assert "Élimination approuvée : elle peut maintenant être exécutée." in page
    assert re.search(r'<form method="post" action="[^"]+/executer" data-confirm="[^"]+">', page)
    again = post_form(admin, page_url, f"{page_url}/decision", {"decision": "refuser"})
    assert again.status_code == 409 and "Élimination déjà traitée" in again.text

    key = documents["destroy"]["current"]["content"]["sha256"]
    done = post_form(archivist, page_url, f"{page_url}/executer", {})
    assert done.status_code == 303
    assert elimination(kit, elimination_id)["status"] == "done"
    assert kit["agent"].get(f"/ged/documents/{documents['destroy']['id']}/content").status_code == 410
    with transaction() as session:
        proof = session.execute(
            select(AuditEntry.seq, AuditEntry.hash).where(
                AuditEntry.tenant_id == kit.tenant_id,
                AuditEntry.action == "ged.elimination.done",
                AuditEntry.object_id == elimination_id,
            )
        ).one()
    page = archivist.get(page_url).text
    assert "Élimination exécutée : la preuve est inscrite au journal d'audit." in page
    assert "Preuve de l'élimination" in page and f"n° {proof.seq}" in page and proof.hash in page
    assert key in page and "Contenu éliminé : seule la notice reste" in page
    assert "/executer" not in page  # done: nothing more to do
    assert post_form(archivist, page_url, f"{page_url}/executer", {}).status_code == 409

    listing = archivist.get(ELIMINATIONS).text
    assert f'href="{page_url}"' in listing and "Exécutée" in listing and "par archiviste (vous)" in listing
    assert f'href="{page_url}"' not in archivist.get(f"{ELIMINATIONS}?etat=proposees").text
    assert f'href="{page_url}"' in archivist.get(f"{ELIMINATIONS}?etat=executees").text
    assert "Aucune élimination dans cet état." in archivist.get(f"{ELIMINATIONS}?etat=refusees").text


def test_a_refusal_and_a_hold_that_stops_the_carrying_out(app: Any, kit: Kit) -> None:
    documents = setup(kit)
    archivist = sign_in(app, kit, "archiviste")
    assert "Aucune élimination proposée pour l'instant." in archivist.get(ELIMINATIONS).text
    first = proposed(archivist, documents["destroy"]["id"])
    admin = sign_in(app, kit, "admin")
    page_url = f"{ELIMINATIONS}/{first}"
    answer = post_form(admin, page_url, f"{page_url}/decision", {"decision": "refuser", "commentaire": "à garder"})
    assert answer.status_code == 303
    assert elimination(kit, first)["status"] == "refused"
    page = archivist.get(page_url).text
    assert "Élimination refusée : les documents sont conservés." not in page  # the flash went to the admin
    assert "Cette élimination a été refusée" in page and "admin : à garder" in page

    second = proposed(archivist, documents["destroy"]["id"])  # refused: it may be proposed again
    approve = kit["admin"].post(f"/ged/eliminations/{second}/approve")
    assert approve.status_code == 200, approve.text
    hold(kit, "Litige fournisseur", documents["destroy"]["id"])
    page_url = f"{ELIMINATIONS}/{second}"
    page = archivist.get(page_url).text
    assert "1 document(s) de cette élimination sont gelés" in page and "Oui : Litige fournisseur" in page
    blocked = post_form(archivist, page_url, f"{page_url}/executer", {})
    assert blocked.status_code == 409 and "Litige fournisseur" in blocked.text
    assert elimination(kit, second)["status"] == "approved"
    assert kit["agent"].get(f"/ged/documents/{documents['destroy']['id']}/content").status_code == 200


# ---------------------------------------------------------------------------------------------------------
# Rights, tenants, language


def test_the_pages_are_for_archivists_of_the_collectivite(app: Any, kit: Kit, make_kit: Any) -> None:
    documents = setup(kit)
    elimination_id = proposed(sign_in(app, kit, "archiviste"), documents["destroy"]["id"])
    page_url = f"{ELIMINATIONS}/{elimination_id}"

    agent = sign_in(app, kit, "agent")
    for path in (DUA, f"{DUA}/verser?verser=x", ELIMINATIONS, page_url):
        answer = agent.get(path)
        assert answer.status_code == 403 and "Action non autorisée" in answer.text, path
    token = csrf_of(agent.get("/").text)
    assert agent.post(f"{DUA}/eliminer", data={"csrf": token, "eliminer": documents["sort"]["id"]}).status_code == 403
    assert agent.post(f"{page_url}/decision", data={"csrf": token, "decision": "approuver"}).status_code == 403
    assert elimination(kit, elimination_id)["status"] == "proposed"
    assert sign_in(app, kit, "admin").get(DUA).status_code == 200  # administrators see them too

    other = make_kit(with_identity=False)
    stranger = sign_in(app, other, "archiviste")
    assert documents["keep"]["id"] not in stranger.get(DUA).text
    assert elimination_id not in stranger.get(ELIMINATIONS).text
    for path in (page_url, f"{ELIMINATIONS}/inconnue"):
        answer = stranger.get(path)
        assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html"), path
    token = csrf_of(stranger.get(DUA).text)
    assert stranger.post(f"{page_url}/decision", data={"csrf": token, "decision": "approuver"}).status_code == 404
    assert stranger.post(f"{page_url}/executer", data={"csrf": token}).status_code == 404
    foreign = stranger.post(f"{DUA}/eliminer", data={"csrf": token, "eliminer": documents["destroy"]["id"]})
    assert foreign.status_code == 404 and "introuvable" in foreign.text  # another collectivité's document
    assert elimination(kit, elimination_id)["status"] == "proposed"


def test_the_pages_speak_english_too(app: Any, kit: Kit) -> None:
    documents = setup(kit)
    client = sign_in(app, kit, "archiviste")
    elimination_id = proposed(client, documents["destroy"]["id"])
    client.post("/langue", data={"csrf": csrf_of(client.get(DUA).text), "locale": "en", "suivant": DUA})
    for path in (DUA, ELIMINATIONS, f"{ELIMINATIONS}/{elimination_id}"):
        english = client.get(path).text
        assert '<html lang="en">' in english, path
        assert "Élimination" not in english and "Documents arrivés" not in english, path
