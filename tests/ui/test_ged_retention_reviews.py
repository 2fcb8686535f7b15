"""Users' reviews of the archivist's GED pages: a refusal gives its reason, and the refused documents show it
(DUA page, document page); an elimination's title says its state; ticking documents of both columns of the DUA
page never drops one silently."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from test_ged_retention import DUA, ELIMINATIONS, elimination, proposed, setup
from ui_kit import post_form, sign_in

from conftest import Kit

REASON = "Dossier encore utile au service des marchés"


def test_a_refusal_needs_its_reason_and_the_refused_documents_show_it(app: Any, kit: Kit) -> None:
    documents = setup(kit)
    destroy = documents["destroy"]["id"]
    archivist = sign_in(app, kit, "archiviste")
    first = proposed(archivist, destroy)
    page_url = f"{ELIMINATIONS}/{first}"
    admin = sign_in(app, kit, "admin")
    assert "Commentaire (obligatoire pour un refus)" in admin.get(page_url).text

    # No reason: refused next to the field, led to by the error summary; nothing decided.
    bare = post_form(admin, page_url, f"{page_url}/decision", {"decision": "refuser", "commentaire": "  "})
    assert bare.status_code == 422
    assert 'id="commentaire-erreur"' in bare.text and "Indiquez le motif du refus" in bare.text
    assert 'class="error-summary"' in bare.text and 'href="#commentaire"' in bare.text
    assert elimination(kit, first)["status"] == "proposed"
    # The API says the same (the domain's rule): a 422 naming the field.
    api = kit["admin"].post(f"/ged/eliminations/{first}/refuse", json={"comment": " "})
    assert api.status_code == 422 and "motif du refus" in api.json()["detail"], api.text
    assert kit["admin"].post(f"/ged/eliminations/{first}/refuse").status_code == 422
    assert elimination(kit, first)["status"] == "proposed"

    refused = post_form(admin, page_url, f"{page_url}/decision", {"decision": "refuser", "commentaire": REASON})
    assert refused.status_code == 303
    page = archivist.get(page_url).text
    assert re.search(r"<h1>Élimination refusée le [^<]+</h1>", page), page
    assert "<h1>Élimination proposée" not in page
    assert f"Motif du refus : « {REASON} »" in page

    # Back among the documents to eliminate, with the refusal: when, by whom, why, and the way to it.
    dua = archivist.get(DUA).text
    row = dua[dua.index(f'value="{destroy}"') :]
    row = row[: row.index("</tr>")]
    assert re.search(rf"Élimination refusée le \d+ \w+ \d{{4}} par admin : « {REASON} »", row), row
    assert f'href="{page_url}"' in row
    # And on the document's page, for an archivist.
    document_page = archivist.get(f"/documents/{destroy}").text
    assert re.search(rf"Élimination refusée le \d+ \w+ \d{{4}} par admin : « {REASON} »", document_page)
    assert f'href="{page_url}"' in document_page
    assert "Élimination refusée" not in sign_in(app, kit, "agent").get(f"/documents/{destroy}").text


def test_an_elimination_title_says_its_state(app: Any, kit: Kit) -> None:
    documents = setup(kit)
    archivist = sign_in(app, kit, "archiviste")
    elimination_id = proposed(archivist, documents["destroy"]["id"])
    page_url = f"{ELIMINATIONS}/{elimination_id}"
    assert re.search(r"<h1>Élimination proposée le [^<]+</h1>", archivist.get(page_url).text)
    assert kit["admin"].post(f"/ged/eliminations/{elimination_id}/approve").status_code == 200
    page = archivist.get(page_url).text
    assert re.search(r"<h1>Élimination approuvée le [^<]+</h1>", page) and "<h1>Élimination proposée" not in page
    assert re.search(r"<title>Élimination approuvée le ", page)
    assert post_form(archivist, page_url, f"{page_url}/executer", {}).status_code == 303
    page = archivist.get(page_url).text
    assert re.search(r"<h1>Élimination exécutée le [^<]+</h1>", page) and "<h1>Élimination approuvée" not in page


def test_ticking_both_columns_says_what_each_button_leaves_out(app: Any, kit: Kit) -> None:
    """Chosen: each button goes on with its own column and says how many of the other it left out (preparing a
    transfer changes nothing; an elimination proposal could not take them anyway)."""
    documents = setup(kit)
    keep, sort, destroy = (documents[key]["id"] for key in ("keep", "sort", "destroy"))
    archivist = sign_in(app, kit, "archiviste")
    page = archivist.get(DUA).text
    # One selection form: both columns' ticks go with either button.
    assert f'form="dua-choix" name="verser" value="{keep}"' in page
    assert f'form="dua-choix" name="eliminer" value="{destroy}"' in page
    assert 'formaction="/archives/dua/verser"' in page

    answer = post_form(archivist, DUA, f"{DUA}/verser", {"verser": [keep], "eliminer": [destroy]})
    assert answer.status_code == 303
    location = urlsplit(answer.headers["location"])
    assert location.path == "/archives/transferts/nouveau" and parse_qs(location.query) == {"documents": [keep]}
    form = archivist.get(answer.headers["location"]).text
    assert "1 document à éliminer n'a pas été retenu pour le versement" in form

    # Only the other column ticked: refused, said, the ticks kept.
    nothing = post_form(archivist, DUA, f"{DUA}/verser", {"eliminer": [destroy]})
    assert nothing.status_code == 422 and "Cochez au moins un document à verser." in nothing.text
    assert "ne se versent pas" in nothing.text
    assert re.search(rf'name="eliminer" value="{destroy}"[^>]* checked', nothing.text)

    # The symmetric case: the proposal takes the documents to eliminate and says what it left out.
    answer = post_form(archivist, DUA, f"{DUA}/eliminer", {"eliminer": [destroy], "verser": [keep, sort]})
    assert answer.status_code == 303
    found = re.fullmatch(r"/archives/eliminations/([0-9a-f-]{36})", answer.headers["location"])
    assert found
    assert elimination(kit, found.group(1))["document_ids"] == [destroy]
    page = archivist.get(answer.headers["location"]).text
    assert "2 documents à verser n'ont pas été retenus pour l'élimination" in page
