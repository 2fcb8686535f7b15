"""A form sent after the session expired: back to sign-in, then to the page the form was on, nothing recorded."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from parapheur_kit import Standard, folder_of, sent_folder
from sqlalchemy import select
from ui_kit import csrf_of, sign_in

from socle.auth import hash_token
from socle.db import transaction
from socle.models import UiSession

from conftest import UI_PASSWORD, Kit


def expire(client: Any) -> None:
    with transaction() as db:
        row = db.execute(
            select(UiSession).where(UiSession.token_hash == hash_token(client.cookies["__Host-socle_session"]))
        ).scalar_one()
        row.last_seen_at = row.last_seen_at - timedelta(hours=3)


def test_a_form_sent_after_expiry_returns_to_its_page_after_sign_in(app: Any, kit: Kit) -> None:
    folder = sent_folder(kit, Standard(kit).visa_then_sign, title="Marché de voirie")
    client = sign_in(app, kit, "agent")
    page = f"/dossiers/{folder['id']}"
    form = client.get(page)
    assert form.status_code == 200
    expire(client)

    sent = client.post(
        f"{page}/rejeter",
        data={"motif": "Pièce manquante"},
        headers={"referer": f"http://testserver{page}?onglet=historique"},
    )
    assert sent.status_code == 303
    target = urlsplit(sent.headers["location"])
    assert target.path == "/connexion"
    query = parse_qs(target.query)
    assert query["suivant"] == [f"{page}?onglet=historique"] and query["expiree"] == ["1"]
    assert folder_of(kit, folder["id"])["status"] == "in_progress"  # nothing recorded

    login = client.get(sent.headers["location"])
    assert "Votre session a expiré avant l'envoi du formulaire : rien n'a été enregistré." in login.text
    signed = client.post(
        "/connexion",
        data={
            "csrf": csrf_of(login.text),
            "tenant": kit.slug,
            "username": "agent",
            "password": UI_PASSWORD,
            "suivant": query["suivant"][0],
        },
    )
    assert signed.status_code == 303 and signed.headers["location"] == f"{page}?onglet=historique"
    assert client.get(signed.headers["location"]).status_code == 200


def test_without_a_referer_from_this_site_the_way_back_is_the_home_page(app: Any, kit: Kit) -> None:
    folder = sent_folder(kit, Standard(kit).visa_then_sign)
    client = sign_in(app, kit, "agent")
    expire(client)
    for headers in ({}, {"referer": "https://ailleurs.example/dossiers/x"}):
        sent = client.post(f"/dossiers/{folder['id']}/viser", data={}, headers=headers)
        assert sent.status_code == 303
        assert parse_qs(urlsplit(sent.headers["location"]).query)["suivant"] == ["/"]
    # A page opened (GET) after expiry still comes back to itself.
    opened = client.get(f"/dossiers/{folder['id']}")
    assert parse_qs(urlsplit(opened.headers["location"]).query) == {"suivant": [f"/dossiers/{folder['id']}"]}
