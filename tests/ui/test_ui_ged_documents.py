"""GED pages: search with facets and paging, the document page (preview, versions, metadata editing, filing,
trash), upload with its refusals, and the tenant and rights confinement of every page."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi.testclient import TestClient
from ui_kit import csrf_of, post_form, sign_in

from conftest import Kit, make_pdf, run_jobs

FIELDS = [
    {"name": "numero", "label": "Numéro", "kind": "integer", "required": True},
    {"name": "montant", "label": "Montant", "kind": "decimal"},
    {"name": "seance", "label": "Date de séance", "kind": "date"},
    {"name": "urgent", "label": "Urgent", "kind": "boolean"},
    {"name": "service", "label": "Service", "kind": "choice", "choices": ["RH", "Finances"]},
]


def make_type(kit: Kit, code: str = "deliberation", **body: Any) -> dict[str, Any]:
    response = kit["admin"].post("/ged/types", json={"code": code, "name": code.capitalize(), **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def make_folder(kit: Kit, name: str, parent_id: str | None = None) -> dict[str, Any]:
    response = kit["admin"].post("/ged/plan", json={"name": name, "parent_id": parent_id})
    assert response.status_code == 201, response.text
    return dict(response.json())


def new_document(kit: Kit, title: str = "Délibération budget", user: str = "agent", **data: Any) -> dict[str, Any]:
    form = {"title": title, "document_type": "deliberation", "date": "2026-03-12", **data}
    files = {"file": ("acte.pdf", make_pdf(title), "application/pdf")}
    response = kit[user].post("/ged/documents", files=files, data=form)
    assert response.status_code == 201, response.text
    return dict(response.json())


def api_document(kit: Kit, document_id: str, user: str = "agent") -> dict[str, Any]:
    response = kit[user].get(f"/ged/documents/{document_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def href(html: str, text: str) -> str:
    """The address of the link whose text starts with ``text``."""
    found = re.search(r'<a href="([^"]+)"[^>]*>(?:<span[^>]*>[^<]*</span>)?' + re.escape(text), html)
    assert found, f"pas de lien « {text} »"
    return found.group(1).replace("&amp;", "&")


# ---------------------------------------------------------------------------------------------------------
# Search


def test_search_finds_keeps_the_query_and_narrows_with_facets(app: Any, kit: Kit) -> None:
    new_document(kit, "Budget primitif 2026", tags=["finances"])
    new_document(kit, "Budget annexe eau", tags=["eau"], document_type="arrete")
    new_document(kit, "Compte rendu du conseil", tags=["conseil"])
    client = sign_in(app, kit, "agent")

    page = client.get("/documents", params={"q": "budget"})
    assert page.status_code == 200
    assert 'value="budget"' in page.text  # the query stays in the box
    assert "Budget primitif 2026" in page.text and "Budget annexe eau" in page.text
    assert "Compte rendu du conseil" not in page.text
    assert "2 documents trouvés" in page.text

    narrowed = client.get(href(page.text, "eau"))  # the tag facet
    assert narrowed.status_code == 200
    assert "Budget annexe eau" in narrowed.text and "Budget primitif 2026" not in narrowed.text
    assert 'name="tag" value="eau"' in narrowed.text  # the form keeps the facet when searching again
    assert 'aria-current="true"' in narrowed.text

    by_type = client.get("/documents", params={"document_type": "arrete"})
    assert "Budget annexe eau" in by_type.text and "Compte rendu du conseil" not in by_type.text
    removed = client.get(href(by_type.text, "Type : arrete"))  # an active filter's link removes it
    assert "Compte rendu du conseil" in removed.text


def test_search_by_year_facet_and_title_sort(app: Any, kit: Kit) -> None:
    new_document(kit, "Zèbre 2025", date="2025-05-01")
    new_document(kit, "Abeille 2026", date="2026-05-01")
    new_document(kit, "Castor 2026", date="2026-06-01")
    client = sign_in(app, kit, "agent")
    page = client.get("/documents")
    year = client.get(href(page.text, "2026"))
    assert "Zèbre 2025" not in year.text and "Abeille 2026" in year.text
    assert 'value="2026-01-01"' in year.text and 'value="2026-12-31"' in year.text
    by_title = client.get("/documents", params={"sort": "title"})
    assert by_title.text.index("Abeille 2026") < by_title.text.index("Castor 2026") < by_title.text.index("Zèbre")
    by_date = client.get("/documents", params={"sort": "date"})
    assert by_date.text.index("Castor 2026") < by_date.text.index("Abeille 2026") < by_date.text.index("Zèbre")
    # The last day a date holds ends a range (it has no next day: was a 500); a page number typed by hand in
    # « ² » (a digit to str.isdigit(), not to int()) or in 5,000 digits (int() refuses them) is the first page.
    up_to_the_end = client.get("/documents", params={"date_from": "2026-01-01", "date_to": "9999-12-31"})
    assert up_to_the_end.status_code == 200, up_to_the_end.text
    assert "Zèbre 2025" not in up_to_the_end.text and "Castor 2026" in up_to_the_end.text
    for page_number in ("²", "1" * 5000):
        first = client.get("/documents", params={"page": page_number})
        assert first.status_code == 200 and "Castor 2026" in first.text, page_number


def test_search_pages_through_results(app: Any, kit: Kit) -> None:
    for number in range(21):
        new_document(kit, f"Arrêté n° {number:02d}", date=f"2026-01-{number + 1:02d}")
    client = sign_in(app, kit, "agent")
    first = client.get("/documents", params={"sort": "date"})
    assert "21 documents trouvés" in first.text and "Page 1 sur 2" in first.text
    assert "Arrêté n° 20" in first.text and "Arrêté n° 00" not in first.text
    second = client.get(href(first.text, "Page suivante"))
    assert "Page 2 sur 2" in second.text and "Arrêté n° 00" in second.text and "Arrêté n° 20" not in second.text
    assert 'rel="prev"' in second.text


def test_search_empty_states(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "agent")
    empty = client.get("/documents")
    assert empty.status_code == 200
    assert "ne contient encore aucun document" in empty.text and "/documents/nouveau" in empty.text
    new_document(kit, "Délibération existante")
    nothing = client.get("/documents", params={"q": "introuvablissime"})
    assert "Aucun document trouvé" in nothing.text and "Effacer la recherche" in nothing.text


def test_search_wrong_dates_are_shown_next_to_the_fields(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "agent")
    page = client.get("/documents", params={"q": "budget", "date_from": "31/01/2026", "date_to": "2026-01-01"})
    assert page.status_code == 422
    assert 'id="date_from-erreur"' in page.text and 'aria-describedby="date_from-erreur"' in page.text
    assert 'value="31/01/2026"' in page.text and 'value="budget"' in page.text
    reversed_dates = client.get("/documents", params={"date_from": "2026-02-01", "date_to": "2026-01-01"})
    assert reversed_dates.status_code == 422 and 'id="date_to-erreur"' in reversed_dates.text


def test_search_shows_only_what_the_user_may_read(app: Any, kit: Kit, make_kit: Any) -> None:
    closed = make_folder(kit, "Ressources humaines")
    group = kit["admin"].post("/ged/groups", json={"name": "RH"}).json()
    assert kit["admin"].put(f"/ged/plan/{closed['id']}/permissions", json=[
        {"group_id": group["id"], "rights": ["read", "write"]}
    ]).status_code == 200  # fmt: skip
    secret = new_document(kit, "Dossier individuel confidentiel", user="admin", folder_id=closed["id"])
    new_document(kit, "Délibération publique")
    other = make_kit(with_identity=False)
    foreign = new_document(other, "Dossier confidentiel d'une autre commune")

    client = sign_in(app, kit, "agent")
    page = client.get("/documents", params={"q": "confidentiel"})
    assert "Aucun document trouvé" in page.text
    assert client.get(f"/documents/{secret['id']}").status_code == 404
    assert client.get(f"/plan/{closed['id']}").status_code == 404
    foreign_page = client.get(f"/documents/{foreign['id']}")
    assert foreign_page.status_code == 404 and "introuvable" in foreign_page.text
    for path in ("versions/1/fichier", "pages/apercu.png", "pages/vignette.png", "texte", "pdfa", "metadonnees"):
        assert client.get(f"/documents/{foreign['id']}/{path}").status_code == 404, path
    refused = post_form(client, "/documents", f"/documents/{foreign['id']}/corbeille", {})
    assert refused.status_code == 404
    assert kit["agent"].get("/ged/documents").status_code == 200
    assert other["agent"].get(f"/ged/documents/{foreign['id']}").json()["deleted_at"] is None
    admin = sign_in(app, kit, "admin")
    assert "Dossier individuel confidentiel" in admin.get("/documents", params={"q": "confidentiel"}).text


# ---------------------------------------------------------------------------------------------------------
# A document


def test_document_page_shows_preview_versions_and_metadata(app: Any, kit: Kit) -> None:
    make_type(kit, fields=FIELDS, dua_months=24, dua_event="seance", final_action="destroy")
    values = {"numero": 42, "montant": "1200.50", "seance": "2026-01-31", "urgent": True, "service": "RH"}
    document = new_document(kit, type="deliberation", field_values=json.dumps(values), tags=["budget"])
    client = sign_in(app, kit, "agent")

    waiting = client.get(f"/documents/{document['id']}")
    assert waiting.status_code == 200
    assert "en préparation" in waiting.text and "Extraction du texte en cours" in waiting.text

    run_jobs()
    page = client.get(f"/documents/{document['id']}")
    assert page.status_code == 200
    assert page.text.count("<h1>") == 1
    assert "Délibération budget" in page.text and "Date de séance" in page.text and "31 janvier 2026" in page.text
    assert "1\u202f200,50" in page.text  # a French decimal, with the cents it was given
    assert "24 mois à compter du champ « Date de séance »" in page.text
    assert "31 janvier 2028" in page.text  # end of the DUA
    assert "Détruire" in page.text
    # Its own lines of the audit log: who did what, the most recent first.
    journal = page.text[page.text.index("Journal des actions sur le document") :]
    # People by their names, never their usernames (« Déposé par camille »), nor a service by its code.
    assert re.search(r"<td>Camille Martin</td><td>Dépôt du document</td>", journal), journal[:800]
    assert "<dd>Camille Martin, " in page.text and "<td>agent</td>" not in page.text
    source = re.search(r'<img src="(/documents/[^"]+/pages/apercu\.png\?v=[0-9a-f]{16})"', page.text)
    assert source, "pas d'aperçu dans la page"
    preview = client.get(source.group(1))
    assert preview.status_code == 200 and preview.content.startswith(b"\x89PNG")
    assert preview.headers["cache-control"].startswith("private")  # its address names its digest: kept
    unversioned = client.get(f"/documents/{document['id']}/pages/apercu.png")
    assert unversioned.content == preview.content and unversioned.headers["cache-control"] == "no-store"
    thumbnail = client.get(f"/documents/{document['id']}/pages/vignette.png")
    assert thumbnail.status_code == 200 and thumbnail.content.startswith(b"\x89PNG")
    text = client.get(f"/documents/{document['id']}/texte")
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert 'href="/documents/' + document["id"] + '/texte"' in page.text
    pdfa = client.get(f"/documents/{document['id']}/pdfa")
    assert pdfa.status_code == 200 and pdfa.content.startswith(b"%PDF-")
    download = client.get(f"/documents/{document['id']}/versions/1/fichier")
    assert download.status_code == 200 and download.content.startswith(b"%PDF-")
    assert download.content == kit["agent"].get(f"/ged/documents/{document['id']}/content").content
    # A new version comes first in the journal.
    files = {"file": ("v2.pdf", make_pdf("Délibération budget, version 2"), "application/pdf")}
    added = kit["agent"].post(f"/ged/documents/{document['id']}/versions", files=files, data={"comment": "Coquille"})
    assert added.status_code in (200, 201), added.text
    journal = client.get(f"/documents/{document['id']}").text
    journal = journal[journal.index("Journal des actions sur le document") :]
    assert journal.index("Nouvelle version ou métadonnées modifiées") < journal.index("Dépôt du document")


def test_a_file_without_preview_says_why(app: Any, kit: Kit) -> None:
    files = {"file": ("notes.csv", b"a;b\n1;2\n", "text/csv")}
    response = kit["agent"].post("/ged/documents", files=files, data={"title": "Tableau", "document_type": "tableau"})
    assert response.status_code == 201, response.text
    run_jobs()
    page = sign_in(app, kit, "agent").get(f"/documents/{response.json()['id']}")
    assert "Pas d'aperçu pour ce type de fichier (text/csv)" in page.text


def test_new_version_upload_and_each_version_downloads(app: Any, kit: Kit) -> None:
    document = new_document(kit)
    client = sign_in(app, kit, "agent")
    url = f"/documents/{document['id']}"
    second = make_pdf("Version corrigée")
    answer = post_form(client, url, f"{url}/versions", {}, files={"file": ("corrige.pdf", second, "application/pdf")})
    assert answer.status_code == 303, answer.text
    assert api_document(kit, document["id"])["current_version"] == 2
    page = client.get(url)
    assert "Version 2 déposée" in page.text and "Télécharger corrige.pdf" in page.text
    assert client.get(f"{url}/versions/2/fichier").content == second
    assert client.get(f"{url}/versions/1/fichier").content != second


def test_metadata_editing_with_typed_fields(app: Any, kit: Kit) -> None:
    make_type(kit, fields=FIELDS)
    document = new_document(kit, type="deliberation", field_values=json.dumps({"numero": 7}))
    client = sign_in(app, kit, "agent")
    url = f"/documents/{document['id']}/metadonnees"
    form = client.get(url)
    assert form.status_code == 200
    assert 'name="champ_numero"' in form.text and 'value="7"' in form.text
    assert '<option value="RH"' in form.text and 'type="date"' in form.text

    typed = {
        "type": "deliberation",
        "title": "Délibération budget",
        "document_type": "deliberation",
        "date": "2026-03-12",
        "tags": "",
        "champ_numero": "douze",
        "champ_montant": "1 000 euros",
        "champ_service": "RH",
    }
    wrong = post_form(client, url, url, typed)
    assert wrong.status_code == 422
    assert 'id="champ_numero-erreur"' in wrong.text and "nombre entier attendu" in wrong.text
    assert 'value="douze"' in wrong.text and 'value="1 000 euros"' in wrong.text  # what was typed is kept
    assert api_document(kit, document["id"])["current_version"] == 1

    typed.update(champ_numero="12", champ_montant="1200,50", champ_urgent="true", comment="Erreur de saisie")
    done = post_form(client, url, url, typed)
    assert done.status_code == 303, done.text
    current = api_document(kit, document["id"])
    assert current["current_version"] == 2
    assert current["current"]["field_values"] == {"numero": 12, "montant": "1200.50", "urgent": True, "service": "RH"}
    assert current["current"]["comment"] == "Erreur de saisie"

    unchanged = post_form(client, url, url, {**typed, "champ_montant": "1200.50", "comment": ""})
    assert unchanged.status_code == 422 and "aucune modification" in unchanged.text
    assert api_document(kit, document["id"])["current_version"] == 2


def test_filing_trash_and_restore(app: Any, kit: Kit) -> None:
    folder = make_folder(kit, "Conseil municipal")
    document = new_document(kit)
    client = sign_in(app, kit, "agent")
    url = f"/documents/{document['id']}"
    filed = post_form(client, url, f"{url}/classer", {"folder_id": folder["id"]})
    assert filed.status_code == 303
    assert api_document(kit, document["id"])["folder_id"] == folder["id"]
    assert "Conseil municipal" in client.get(url).text

    trashed = post_form(client, url, f"{url}/corbeille", {})
    assert trashed.status_code == 303 and trashed.headers["location"] == "/corbeille"
    assert kit["agent"].get(f"/ged/documents/{document['id']}").status_code == 404
    trash = client.get("/corbeille")
    assert "Délibération budget" in trash.text and "est à la corbeille" in trash.text
    assert "Purge possible à partir du" in trash.text
    restored = client.post(f"/corbeille/{document['id']}/restaurer", data={"csrf": csrf_of(trash.text)})
    assert restored.status_code == 303
    assert api_document(kit, document["id"])["deleted_at"] is None
    assert "La corbeille est vide" in client.get("/corbeille").text


def test_the_admin_purges_the_trash_past_its_window(app: Any, kit: Kit) -> None:
    from datetime import timedelta

    from ged.models import Document
    from socle.db import transaction, utcnow

    old, recent = new_document(kit, "Ancien brouillon"), new_document(kit, "Brouillon récent")
    for document in (old, recent):
        assert kit["agent"].delete(f"/ged/documents/{document['id']}").status_code == 200
    with transaction() as session:
        row = session.get(Document, old["id"])
        assert row is not None
        row.deleted_at = utcnow() - timedelta(days=400)
    agent = sign_in(app, kit, "agent")
    assert "Purger la corbeille" not in agent.get("/corbeille").text
    assert post_form(agent, "/corbeille", "/corbeille/purger", {}).status_code == 403
    admin = sign_in(app, kit, "admin")
    answer = post_form(admin, "/corbeille", "/corbeille/purger", {})
    assert answer.status_code == 303
    page = admin.get("/corbeille")
    assert "1 document(s) supprimé(s)" in page.text
    assert "Brouillon récent" in page.text and "Ancien brouillon" not in page.text
    assert [d["id"] for d in kit["admin"].get("/ged/trash").json()["items"]] == [recent["id"]]


def test_a_held_document_says_so_and_cannot_be_trashed(app: Any, kit: Kit) -> None:
    document = new_document(kit)
    url = f"/documents/{document['id']}"
    archivist = sign_in(app, kit, "archiviste")
    refused = post_form(archivist, url, f"{url}/geler", {"hold_name": "", "hold_reason": "Recours"})
    assert refused.status_code == 422 and 'id="hold_name-erreur"' in refused.text and "Recours" in refused.text
    held = post_form(archivist, url, f"{url}/geler", {"hold_name": "Contentieux 2026-14", "hold_reason": "Recours"})
    assert held.status_code == 303, held.text
    holds = kit["archiviste"].get("/ged/holds").json()
    assert holds[0]["name"] == "Contentieux 2026-14" and holds[0]["document_ids"] == [document["id"]]

    agent = sign_in(app, kit, "agent")
    page = agent.get(url)
    assert "Gelé" in page.text and "Contentieux 2026-14" in page.text
    assert "Mettre à la corbeille" not in page.text and "Modifier les métadonnées" not in page.text
    forced = agent.post(f"{url}/corbeille", data={"csrf": csrf_of(page.text)})
    assert forced.status_code == 409 and "Contentieux 2026-14" in forced.text
    assert agent.get(f"{url}/metadonnees").status_code == 409
    assert api_document(kit, document["id"])["deleted_at"] is None


def test_an_agent_cannot_hold(app: Any, kit: Kit) -> None:
    document = new_document(kit)
    client = sign_in(app, kit, "agent")
    url = f"/documents/{document['id']}"
    assert "Geler ce document" not in client.get(url).text
    answer = post_form(client, url, f"{url}/geler", {"hold_name": "x", "hold_reason": "y"})
    assert answer.status_code == 403


# ---------------------------------------------------------------------------------------------------------
# Upload


def upload_page(client: TestClient, type_code: str = "") -> str:
    page = client.get("/documents/nouveau", params={"type": type_code} if type_code else None)
    assert page.status_code == 200
    return page.text


def test_upload_through_the_form_with_type_folder_and_fields(app: Any, kit: Kit) -> None:
    make_type(kit, fields=FIELDS)
    folder = make_folder(kit, "Finances")
    client = sign_in(app, kit, "agent")
    page = upload_page(client, "deliberation")
    assert 'class="dropzone ged-drop"' in page and 'type="file"' in page and 'enctype="multipart/form-data"' in page
    assert 'name="champ_numero"' in page and "Finances" in page
    data = {
        "csrf": csrf_of(page),
        "type": "deliberation",
        "title": "Budget supplémentaire",
        "date": "2026-04-02",
        "tags": "finances, budget",
        "folder_id": folder["id"],
        "champ_numero": "3",
        "champ_service": "Finances",
    }
    answer = client.post("/documents/nouveau", data=data, files={"file": ("bs.pdf", make_pdf(), "application/pdf")})
    assert answer.status_code == 303, answer.text
    document_id = answer.headers["location"].rsplit("/", 1)[1]
    created = api_document(kit, document_id)
    assert created["folder_id"] == folder["id"] and created["current"]["tags"] == ["finances", "budget"]
    assert created["current"]["field_values"] == {"numero": 3, "service": "Finances"}
    assert "Document « Budget supplémentaire » déposé" in client.get(answer.headers["location"]).text


def test_refused_uploads_say_why_and_keep_the_values(app: Any, kit: Kit) -> None:
    make_type(kit, fields=FIELDS)
    client = sign_in(app, kit, "agent")
    page = upload_page(client)
    base = {"csrf": csrf_of(page), "title": "Arrêté de voirie", "document_type": "arrete", "tags": "voirie"}

    empty = client.post("/documents/nouveau", data=base, files={"file": ("vide.pdf", b"", "application/pdf")})
    assert empty.status_code == 422 and "le fichier est vide" in empty.text
    assert (
        'id="file-erreur"' in empty.text and 'value="Arrêté de voirie"' in empty.text and 'value="voirie"' in empty.text
    )

    lying = client.post("/documents/nouveau", data=base, files={"file": ("faux.pdf", b"pas un pdf", "application/pdf")})
    assert lying.status_code == 415 and "ne correspond pas au type déclaré" in lying.text

    no_file = client.post("/documents/nouveau", data=base)
    assert no_file.status_code == 422 and "Choisissez le fichier" in no_file.text

    untitled = {**base, "title": ""}
    no_title = client.post(
        "/documents/nouveau", data=untitled, files={"file": ("a.pdf", make_pdf(), "application/pdf")}
    )
    assert no_title.status_code == 422 and 'id="title-erreur"' in no_title.text
    assert "Ce champ est obligatoire" in no_title.text and "String should" not in no_title.text  # French
    assert "choisissez-le à nouveau" in no_title.text  # a browser never refills a file input

    typed = {**base, "type": "deliberation", "champ_numero": "douze", "champ_service": "Voirie"}
    wrong = client.post("/documents/nouveau", data=typed, files={"file": ("a.pdf", make_pdf(), "application/pdf")})
    assert wrong.status_code == 422 and 'id="champ_numero-erreur"' in wrong.text and 'value="douze"' in wrong.text
    _, total = kit["agent"].get("/ged/documents").json().values()
    assert total == 0  # nothing was half-created


def test_upload_into_a_folder_without_the_right_is_refused_next_to_the_folder(app: Any, kit: Kit) -> None:
    folder = make_folder(kit, "Archives du maire")
    group = kit["admin"].post("/ged/groups", json={"name": "Cabinet"}).json()
    kit["admin"].post(f"/ged/groups/{group['id']}/members", json={"username": "agent"})
    permissions = [{"group_id": group["id"], "rights": ["read"]}]
    assert kit["admin"].put(f"/ged/plan/{folder['id']}/permissions", json=permissions).status_code == 200
    client = sign_in(app, kit, "agent")
    page = upload_page(client)
    data = {"csrf": csrf_of(page), "title": "Note", "document_type": "note", "folder_id": folder["id"]}
    answer = client.post("/documents/nouveau", data=data, files={"file": ("n.pdf", make_pdf(), "application/pdf")})
    assert answer.status_code == 422 and 'id="folder_id-erreur"' in answer.text and "écriture" in answer.text


def test_ged_pages_speak_english_too(app: Any, kit: Kit) -> None:
    document = new_document(kit)
    client = sign_in(app, kit, "agent")
    home = client.get("/documents")
    assert client.post("/langue", data={"csrf": csrf_of(home.text), "locale": "en", "suivant": "/"}).status_code == 303
    assert "Search the documents" in client.get("/documents").text
    page = client.get(f"/documents/{document['id']}")
    assert "Versions and history" in page.text and "Move to the recycle bin" in page.text
