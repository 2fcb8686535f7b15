"""The agent's desk (/bureau): boxes with counts, late folders, filters, paging, bulk visa with its results."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import pytest
from parapheur_kit import Standard, desk, folder_of, ok, sent_folder
from ui_kit import csrf_of, sign_in

from parapheur import ui_desk

from conftest import Kit, make_pdf, run_jobs


def rows(html: str) -> list[str]:
    """The titles of the folders listed, in order."""
    return [unescape(title) for title in re.findall(r'<td><a href="/dossiers/[^"]+">([^<]+)</a></td>', html)]


def test_the_desk_shows_its_boxes_with_counts_and_the_folders_to_act_on(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    sent_folder(kit, setup.visa_then_sign, title="Budget primitif")
    sent_folder(kit, setup.sign_only, title="Arrêté de voirie")
    agent = sign_in(app, kit, "agent")
    page = agent.get("/bureau")
    assert page.status_code == 200, page.text
    assert "<h1>Parapheur</h1>" in page.text
    assert "Bureau « Secrétariat » : À traiter" in page.text
    assert rows(page.text) == ["Budget primitif"]  # the arrêté waits for the mayor, not for this desk
    assert re.search(r"À traiter <span class=\"badge\">1</span>", page.text)
    assert 'href="/dossiers/nouveau"' in page.text
    assert 'data-select-all="dossiers"' in page.text and 'name="dossiers"' in page.text

    mayor = sign_in(app, kit, "maire").get("/bureau")
    assert rows(mayor.text) == ["Arrêté de voirie"]
    in_progress = sign_in(app, kit, "maire").get("/bureau?corbeille=en-cours")
    assert rows(in_progress.text) == ["Budget primitif"]  # on its way to the mayor, not waiting for him yet
    assert 'name="dossiers"' not in in_progress.text  # nothing to select where the desk has nothing to do


def test_a_late_folder_says_so_in_words_with_its_due_date(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    sent_folder(kit, setup.visa_then_sign, title="Marché de voirie", due_date="2020-03-01")
    sent_folder(kit, setup.visa_then_sign, title="Subvention", due_date="2999-01-01")
    agent = sign_in(app, kit, "agent")
    late = agent.get("/bureau?corbeille=en-retard")
    assert rows(late.text) == ["Marché de voirie"]
    assert '<span class="late">En retard</span> — échéance le 1 mars 2020' in late.text
    everything = agent.get("/bureau").text
    assert "échéance le 1 janvier 2999" in everything and everything.count(">En retard</span>") == 1


def test_filters_by_type_subtype_status_and_title_words(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    sent_folder(kit, setup.visa_then_sign, title="Délibération cantine")
    sent_folder(kit, setup.visa_then_sign, title="Délibération piscine")
    draft = ok(
        kit["agent"].post(
            "/parapheur/folders/upload",
            files=[("files", ("a.pdf", make_pdf(), "application/pdf"))],
            data={"subtype_id": setup.sign_only, "title": "Arrêté brouillon", "send": "false"},
        ),
        201,
    )
    agent = sign_in(app, kit, "agent")
    assert rows(agent.get("/bureau?q=cantine").text) == ["Délibération cantine"]
    assert rows(agent.get("/bureau?q=CANTINE").text) == ["Délibération cantine"]
    assert rows(agent.get(f"/bureau?sous_type={setup.sign_only}").text) == []
    everything = agent.get("/bureau?corbeille=tous")
    assert set(rows(everything.text)) == {"Délibération cantine", "Délibération piscine", "Arrêté brouillon"}
    drafts = agent.get("/bureau?corbeille=tous&statut=draft")
    assert rows(drafts.text) == ["Arrêté brouillon"] and draft["status"] == "draft"
    subtype = ok(kit["agent"].get(f"/parapheur/subtypes/{setup.sign_only}"))
    by_type = agent.get(f"/bureau?corbeille=tous&type={subtype['type_id']}")
    assert rows(by_type.text) == ["Arrêté brouillon"]
    # The filters are kept in the form, and the typology is shown by its names.
    assert 'value="cantine"' in agent.get("/bureau?q=cantine").text
    assert "Type Délibération / Délibération" in everything.text


def test_paging_keeps_the_filters(app: Any, kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ui_desk, "PAGE_SIZE", 2)
    setup = Standard(kit)
    for number in range(3):
        sent_folder(kit, setup.visa_then_sign, title=f"Délibération {number}")
    agent = sign_in(app, kit, "agent")
    first = agent.get("/bureau?q=Délibération")
    assert len(rows(first.text)) == 2 and 'rel="next"' in first.text and 'rel="prev"' not in first.text
    next_url = re.search(r'href="([^"]+)" rel="next"', first.text).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    assert "page=2" in next_url and "q=D" in next_url
    second = agent.get(next_url)
    assert len(rows(second.text)) == 1 and 'rel="prev"' in second.text and 'rel="next"' not in second.text
    assert set(rows(first.text)) | set(rows(second.text)) == {f"Délibération {n}" for n in range(3)}


def test_the_box_of_a_desk_delegating_to_mine(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    deputy = desk(kit, "Adjoint", ["agent"])
    now = datetime.now(UTC)
    body = {
        "from_desk_id": setup.maire,
        "to_desk_id": deputy,
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=1)).isoformat(),
    }
    ok(kit["admin"].post("/parapheur/delegations", json=body), 201)
    sent_folder(kit, setup.sign_only, title="Arrêté en l'absence du maire")
    agent = sign_in(app, kit, "agent")
    page = agent.get(f"/bureau?bureau={deputy}&corbeille=delegues")
    assert rows(page.text) == ["Arrêté en l'absence du maire"]
    assert "Bureau « Adjoint » : Reçus par délégation" in page.text


def test_bulk_visa_shows_a_result_per_folder(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    first = sent_folder(kit, setup.visa_then_sign, title="Premier")
    second = sent_folder(kit, setup.visa_then_sign, title="Second")
    other = sent_folder(kit, setup.sign_only, title="Pas pour moi")  # waits for the mayor: visa refused
    agent = sign_in(app, kit, "agent")
    page = agent.get("/bureau")
    answer = agent.post(
        "/bureau/actions-groupees",
        data={
            "csrf": csrf_of(page.text),
            "action": "visa",
            "dossiers": [first["id"], second["id"], other["id"]],
            "commentaire": "Vu en réunion",
        },
    )
    assert answer.status_code == 303, answer.text
    result_url = answer.headers["location"]
    assert re.fullmatch(r"/bureau/actions-groupees/[0-9a-f-]+", result_url)
    run_jobs()
    result = agent.get(result_url)
    assert result.status_code == 200
    assert "Action groupée enregistrée pour 3 dossier(s)." in result.text  # the flash message
    assert "Terminé : 2 dossier(s) traité(s), 1 en échec." in result.text
    assert result.text.count(">Fait<") == 2 and "Échec" in result.text
    assert "vous n'êtes membre d'aucun bureau attendu" in unescape(result.text)  # the engine's reason, as it said it
    assert folder_of(kit, first["id"])["current_step"] == 1 and folder_of(kit, second["id"])["current_step"] == 1
    assert folder_of(kit, other["id"])["current_step"] == 0
    # Another person's operation is not found.
    assert sign_in(app, kit, "maire").get(result_url).status_code == 404
    # In English, the engine's reason too: kept translatable with the result.
    agent.cookies.set("__Host-socle_langue", "en")
    english = unescape(agent.get(result_url).text)
    assert "you are not a member of any desk expected at the current step" in english
    assert "vous n'êtes membre" not in english


def test_bulk_without_a_selection_says_so_next_to_the_list(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    sent_folder(kit, setup.visa_then_sign, title="Budget")
    agent = sign_in(app, kit, "agent")
    page = agent.get("/bureau?q=Bud")
    answer = agent.post(
        "/bureau/actions-groupees",
        data={
            "csrf": csrf_of(page.text),
            "action": "visa",
            "commentaire": "gardé",
            "q": "Bud",
            "corbeille": "a-traiter",
        },
    )
    assert answer.status_code == 422
    assert 'id="dossiers-erreur"' in answer.text and "Cochez au moins un dossier." in answer.text
    assert 'href="#dossiers"' in answer.text and 'id="dossiers"' in answer.text
    assert 'value="gardé"' in answer.text and 'value="Bud"' in answer.text  # what was typed is kept


def test_an_administrator_sees_every_desk_and_an_archivist_is_refused(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    sent_folder(kit, setup.visa_then_sign, title="Budget")
    page = sign_in(app, kit, "admin").get(f"/bureau?bureau={setup.maire}&corbeille=en-cours")
    assert page.status_code == 200 and "Bureau « Maire » : En cours" in page.text
    assert rows(page.text) == ["Budget"]
    forbidden = sign_in(app, kit, "archiviste").get("/bureau")
    assert forbidden.status_code == 403  # the parapheur is for agents and the secretariat
    assert "Parapheur" not in forbidden.text.split("<main")[0]  # nor in the archivist's navigation


def test_an_agent_without_desk_gets_the_list_of_their_folders(app: Any, kit: Kit) -> None:
    page = sign_in(app, kit, "maire").get("/bureau")
    assert page.status_code == 200
    assert "Vous n'êtes membre d'aucun bureau" in page.text and "Tous mes dossiers" in page.text
    assert "Aucun dossier ici." in page.text


def test_another_collectivites_desk_is_not_found_and_a_desk_of_others_is_forbidden(
    app: Any, kit: Kit, make_kit: Any
) -> None:
    other = make_kit(with_identity=False)
    theirs = desk(other, "Leur bureau", ["agent"])
    setup = Standard(kit)
    agent = sign_in(app, kit, "agent")
    assert agent.get(f"/bureau?bureau={theirs}").status_code == 404
    answer = agent.get(f"/bureau?bureau={setup.maire}")
    assert answer.status_code == 403 and "seuls les membres du bureau « Maire »" in answer.text


def test_the_desk_in_english(app: Any, kit: Kit) -> None:
    Standard(kit)
    agent = sign_in(app, kit, "agent")
    home = agent.get("/bureau")
    agent.post("/langue", data={"csrf": csrf_of(home.text), "locale": "en", "suivant": "/bureau"})
    english = agent.get("/bureau").text
    assert "To act on" in english and "New folder" in english


def test_bulk_signature_by_the_mayor(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    folders = [sent_folder(kit, setup.sign_only, title=f"Arrêté n° {n}") for n in (1, 2)]
    mayor = sign_in(app, kit, "maire")
    page = mayor.get("/bureau")
    assert set(rows(page.text)) == {"Arrêté n° 1", "Arrêté n° 2"}
    ids = [folder["id"] for folder in folders]
    answer = mayor.post(
        "/bureau/actions-groupees", data={"csrf": csrf_of(page.text), "action": "sign", "dossiers": ids}
    )
    assert answer.status_code == 303
    run_jobs()
    result = mayor.get(answer.headers["location"])
    assert "Signature de la sélection" in result.text and "Terminé : 2 dossier(s) traité(s), 0 en échec." in result.text
    assert [folder_of(kit, folder_id, "maire")["status"] for folder_id in ids] == ["completed", "completed"]
