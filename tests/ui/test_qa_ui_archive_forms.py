"""QA of the archivist's transfer pages as a non-technical user meets them: a mistyped identifier is said
next to its field before anything is created, and a hand-edited list address still shows the list."""

from __future__ import annotations

from typing import Any

from ui_kit import csrf_of, sign_in

from conftest import Kit

NEW = "/archives/transferts/nouveau"


def _transfer_count(kit: Kit) -> int:
    response = kit["archiviste"].get("/archive/transfers")
    assert response.status_code == 200, response.text
    body = response.json()
    return len(body["items"] if isinstance(body, dict) else body)


def test_a_mistyped_document_identifier_is_refused_next_to_its_field(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    before = _transfer_count(kit)
    token = csrf_of(client.get(NEW).text)
    typed = {"selection": "documents", "document_ids": "délib-12\nacte 3", "archival_agency": "AD037"}
    answer = client.post(NEW, data={"csrf": token, **typed})
    assert answer.status_code == 422, answer.headers.get("location")
    assert "Identifiant non reconnu : « délib-12 »" in answer.text
    assert 'id="document_ids-erreur"' in answer.text and 'aria-invalid="true"' in answer.text
    assert 'value="AD037"' in answer.text and "acte 3" in answer.text  # what was typed stays
    assert _transfer_count(kit) == before  # nothing was created that would fail later in the job


def test_a_mistyped_folder_identifier_is_refused_next_to_its_field(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    before = _transfer_count(kit)
    token = csrf_of(client.get(NEW).text)
    answer = client.post(
        NEW, data={"csrf": token, "selection": "dossier", "folder_id": "Conseil municipal", "archival_agency": "AD037"}
    )
    assert answer.status_code == 422
    assert "Identifiant non reconnu : « Conseil municipal »" in answer.text
    assert 'id="folder_id-erreur"' in answer.text
    assert _transfer_count(kit) == before


def test_a_hand_edited_page_number_shows_the_list(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    for page in ("abc", "", "-2", "99999999999999999999", "²", "1" * 5000):  # « ² »: a digit to isdigit(), not int()
        answer = client.get("/archives/transferts", params={"page": page, "etat": "a-envoyer"})
        assert answer.status_code == 200, (page, answer.text[:300])
        assert "<h1" in answer.text
