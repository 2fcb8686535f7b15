"""The mapping page's people (agents): each role's sources typed in one box, shown back, refused next to the box."""

from __future__ import annotations

from typing import Any

from ui_kit import post_form, sign_in

from conftest import Kit

URL = "/archives/correspondances/courrier"


def test_agent_sources_are_shown_saved_and_emptied(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    page = client.get(URL).text
    # The defaults: the GED's author as Writer, the parapheur's signatories as signers, nobody else.
    assert 'id="writer" name="writer" type="text" value="author"' in page
    assert 'id="signer" name="signer" type="text" value="signatories"' in page
    assert 'id="addressee" name="addressee" type="text" value=""' in page

    answer = post_form(
        client, URL, URL, {"writer": "field:redacteur, author", "addressee": "field:destinataire", "signer": ""}
    )

    assert answer.status_code == 303, answer.text
    saved = kit["archiviste"].get("/archive/mappings/courrier").json()
    assert saved["writer"] == ["field:redacteur", "author"] and saved["addressee"] == ["field:destinataire"]
    assert saved["signer"] == []  # an empty box: nobody in that role
    assert saved["recipient"] == []
    page = client.get(URL).text
    assert 'value="field:redacteur, author"' in page and 'id="signer" name="signer" type="text" value=""' in page


def test_a_wrong_agent_source_is_refused_next_to_its_box(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")

    answer = post_form(client, URL, URL, {"writer": "author, le maire"})

    assert answer.status_code == 422
    assert 'id="writer-erreur"' in answer.text and "Source inconnue : attendu author, signatories" in answer.text
    assert 'value="author, le maire"' in answer.text
    assert kit["archiviste"].get("/archive/mappings/courrier").json()["default"] is True
