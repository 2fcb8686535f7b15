"""« Mes préférences »: the signed-in person chooses how the parapheur mails them (a mail per event, a digest,
none), as ``PUT /parapheur/notifications/preferences`` lets an API client do."""

from __future__ import annotations

import re
from typing import Any

from parapheur_kit import ok
from signing_helpers import set_email
from ui_kit import csrf_of, post_form, sign_in

from conftest import Kit

URL = "/bureau/preferences"


def _checked(html: str) -> list[str]:
    return re.findall(r'<input type="radio" id="[^"]+" name="mode" value="([a-z]+)" checked', html)


def _mode(kit: Kit, username: str) -> str:
    return str(ok(kit[username].get("/parapheur/notifications/preferences"))["mode"])


def test_the_desk_links_to_the_page_which_shows_the_current_choice(app: Any, kit: Kit) -> None:
    agent = sign_in(app, kit, "agent")
    assert f'href="{URL}"' in agent.get("/bureau").text
    page = agent.get(URL)
    assert page.status_code == 200
    assert "<h1>Mes préférences</h1>" in page.text
    assert _checked(page.text) == ["immediate"]  # never chosen: a mail per event
    assert page.text.count('name="mode"') == 3
    assert '<label for="mode-digest">Un récapitulatif</label>' in page.text
    assert "Votre compte n'a pas d'adresse électronique" in page.text
    set_email(kit, "agent", "camille.martin@mairie.test")
    assert "Les courriels partent à l'adresse camille.martin@mairie.test." in agent.get(URL).text


def test_a_choice_is_saved_for_the_signed_in_person_only(app: Any, kit: Kit) -> None:
    agent = sign_in(app, kit, "agent")
    answer = post_form(agent, URL, URL, {"mode": "digest"})
    assert answer.status_code == 303 and answer.headers["location"] == URL
    assert _mode(kit, "agent") == "digest" and _mode(kit, "maire") == "immediate"
    page = agent.get(URL)
    assert "Préférences enregistrées." in page.text and _checked(page.text) == ["digest"]
    assert post_form(agent, URL, URL, {"mode": "none"}).status_code == 303
    assert _mode(kit, "agent") == "none"
    # An archivist too may be a desk's member, and hear about its folders: the page is theirs as the API is.
    archivist = sign_in(app, kit, "archiviste")
    assert post_form(archivist, URL, URL, {"mode": "digest"}).status_code == 303
    assert _mode(kit, "archiviste") == "digest" and _mode(kit, "agent") == "none"


def test_a_missing_or_unknown_choice_is_refused_next_to_the_field(app: Any, kit: Kit) -> None:
    agent = sign_in(app, kit, "agent")
    empty = post_form(agent, URL, URL, {})
    assert empty.status_code == 400
    assert '<p class="field-error" id="mode-erreur">Choisissez comment être prévenu.</p>' in empty.text
    assert 'aria-describedby="mode-erreur"' in empty.text and 'role="alert"' in empty.text
    edited = post_form(agent, URL, URL, {"mode": "jamais"})  # no choice of the page sends it
    assert edited.status_code == 422
    assert "mode de notification inconnu : jamais" in edited.text and 'id="mode-erreur"' in edited.text
    assert _mode(kit, "agent") == "immediate"
    # Without its token (or from another site) the form changes nothing.
    assert agent.post(URL, data={"mode": "none"}).status_code == 403
    token = csrf_of(agent.get(URL).text)
    assert (
        agent.post(
            URL, data={"csrf": token, "mode": "none"}, headers={"origin": "https://ailleurs.example"}
        ).status_code
        == 403
    )
    assert _mode(kit, "agent") == "immediate"


def test_the_page_needs_a_session(app: Any, kit: Kit) -> None:
    from ui_kit import anonymous

    visitor = anonymous(app)
    answer = visitor.get(URL)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/connexion")
