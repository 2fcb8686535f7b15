"""The web interface's shared pages: sign-in, sessions, CSRF, security headers, language, errors."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from ui_kit import anonymous, csrf_of, sign_in

from socle.db import transaction
from socle.models import LoginAttempt, UiSession

from conftest import UI_PASSWORD, Kit


def test_sign_in_then_home_then_sign_out(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "agent")
    home = client.get("/")
    assert home.status_code == 200
    assert "Camille Martin" in home.text and f"Commune {kit.slug}" in home.text
    cookie = client.cookies.get("socle_session")
    assert cookie
    out = client.post("/deconnexion", data={"csrf": csrf_of(home.text)})
    assert out.status_code == 303 and out.headers["location"] == "/connexion"
    again = anonymous(app)
    again.cookies.set("socle_session", cookie)
    assert again.get("/").headers["location"] == "/connexion"  # the old cookie no longer opens anything


def test_session_cookie_is_secure_httponly_samesite(app: Any, kit: Kit) -> None:
    client = anonymous(app)
    page = client.get("/connexion")
    answer = client.post(
        "/connexion",
        data={"csrf": csrf_of(page.text), "tenant": kit.slug, "username": "agent", "password": UI_PASSWORD},
    )
    set_cookie = answer.headers["set-cookie"].lower()
    assert "socle_session=" in set_cookie
    assert "secure" in set_cookie and "httponly" in set_cookie and "samesite=lax" in set_cookie


def test_wrong_password_is_refused_with_the_form_kept(app: Any, kit: Kit) -> None:
    client = anonymous(app)
    page = client.get("/connexion")
    answer = client.post(
        "/connexion",
        data={"csrf": csrf_of(page.text), "tenant": kit.slug, "username": "agent", "password": "pas le bon"},
    )
    assert answer.status_code == 401
    assert "Identifiant ou mot de passe incorrect" in answer.text
    assert 'value="agent"' in answer.text  # what was typed is kept (but never the password)
    assert "pas le bon" not in answer.text


def test_missing_fields_are_shown_next_to_them(app: Any, kit: Kit) -> None:
    client = anonymous(app)
    page = client.get("/connexion")
    answer = client.post("/connexion", data={"csrf": csrf_of(page.text), "tenant": kit.slug, "username": ""})
    assert answer.status_code == 400
    assert 'id="username-erreur"' in answer.text and 'aria-describedby="username-erreur"' in answer.text
    assert 'id="password-erreur"' in answer.text


def test_sign_in_is_throttled_after_repeated_failures(app: Any, kit: Kit) -> None:
    client = anonymous(app)
    token = csrf_of(client.get("/connexion").text)
    statuses = [
        client.post(
            "/connexion", data={"csrf": token, "tenant": kit.slug, "username": "maire", "password": f"faux {n}"}
        ).status_code
        for n in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    # Even the right password waits now: the guesser cannot tell.
    right = client.post(
        "/connexion", data={"csrf": token, "tenant": kit.slug, "username": "maire", "password": UI_PASSWORD}
    )
    assert right.status_code == 429 and "Trop de tentatives" in right.text
    with transaction() as db:
        db.query(LoginAttempt).filter(LoginAttempt.key.contains(kit.slug)).delete(synchronize_session=False)


def test_a_form_without_its_csrf_token_is_refused(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "agent")
    answer = client.post("/deconnexion", data={"csrf": "forged"})
    assert answer.status_code == 403 and "Formulaire expiré" in answer.text
    assert client.get("/").status_code == 200  # still signed in


def test_a_form_posted_from_another_site_is_refused(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "agent")
    token = csrf_of(client.get("/").text)
    answer = client.post("/deconnexion", data={"csrf": token}, headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403


def test_pages_need_a_session_and_come_back_after_sign_in(app: Any, kit: Kit) -> None:
    client = anonymous(app)
    answer = client.get("/")
    assert answer.status_code == 303 and answer.headers["location"] == "/connexion"
    page = client.get("/connexion?suivant=/documents%3Fq%3Dx")
    assert 'name="suivant" value="/documents?q=x"' in page.text
    answer = client.post(
        "/connexion",
        data={
            "csrf": csrf_of(page.text),
            "tenant": kit.slug,
            "username": "agent",
            "password": UI_PASSWORD,
            "suivant": "/documents?q=x",
        },
    )
    assert answer.headers["location"] == "/documents?q=x"


def test_no_open_redirect_after_sign_in(app: Any, kit: Kit) -> None:
    client = anonymous(app)
    page = client.get("/connexion")
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        answer = client.post(
            "/connexion",
            data={
                "csrf": csrf_of(page.text),
                "tenant": kit.slug,
                "username": "agent",
                "password": UI_PASSWORD,
                "suivant": target,
            },
        )
        assert answer.headers["location"] == "/"


def test_expired_session_goes_back_to_sign_in(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "agent")
    from datetime import timedelta

    from socle.auth import hash_token

    with transaction() as db:
        row = db.execute(
            select(UiSession).where(UiSession.token_hash == hash_token(client.cookies["socle_session"]))
        ).scalar_one()
        row.last_seen_at = row.last_seen_at - timedelta(hours=3)
    answer = client.get("/")
    assert answer.status_code == 303 and answer.headers["location"] == "/connexion"


def test_security_headers_on_every_page(app: Any) -> None:
    answer = anonymous(app).get("/connexion")
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"
    assert "<script>" not in answer.text and " style=" not in answer.text  # nothing inline for the CSP to block


def test_static_assets_are_cached_and_served_by_the_kit(app: Any) -> None:
    page = anonymous(app).get("/connexion").text
    assert "http://" not in page and "https://" not in page  # no third-party request of any kind
    css = [part.split('"')[0] for part in page.split('href="')[1:] if part.startswith("/static/")]
    assert css
    answer = anonymous(app).get(css[0])
    assert answer.status_code == 200
    assert "immutable" in answer.headers["cache-control"]


def test_english_is_available(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "agent")
    home = client.get("/")
    answer = client.post("/langue", data={"csrf": csrf_of(home.text), "locale": "en", "suivant": "/"})
    assert answer.status_code == 303
    english = client.get("/")
    assert '<html lang="en">' in english.text and "Sign out" in english.text


def test_unknown_page_is_a_page_not_json(app: Any) -> None:
    answer = anonymous(app).get("/nulle-part", headers={"Accept": "text/html,application/xhtml+xml"})
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "Page introuvable" in answer.text
    # An API client that missed its route still gets problem+json.
    assert anonymous(app).get("/nulle-part").headers["content-type"] == "application/problem+json"


def test_every_page_message_has_an_english_translation() -> None:
    from socle.ui.catalogues import missing

    for package in ("socle.ui", "parapheur", "ged", "archive", "interop"):
        assert missing(package) == [], f"{package} : messages sans traduction anglaise (socle ui catalogues)"


def test_an_upload_over_the_limit_gets_a_page_saying_why(app: Any, kit: Kit, use_env: Any) -> None:
    use_env(SOCLE_MAX_UPLOAD_BYTES=str(1024 * 1024))
    client = sign_in(app, kit, "agent")
    token = csrf_of(client.get("/").text)
    answer = client.post(
        "/langue", data={"csrf": token}, files={"fichier": ("gros.pdf", b"%PDF-" + b"0" * (2 * 1024 * 1024))}
    )
    assert answer.status_code == 413
    assert answer.headers["content-type"].startswith("text/html")
    assert "Fichier trop volumineux" in answer.text and "1 Mio" in answer.text


def test_what_a_user_typed_is_never_markup_even_through_translation() -> None:
    from socle.ui import rendering

    context = {
        "title": "Introuvable",
        "detail": "collectivité « <b>x</b> » inconnue",
        "user": None,
        "sections": [],
        "csrf": "",
        "locale": "fr",
        "flash": [{"kind": "success", "message": "Gel « <a href=//evil>ici</a> » créé"}],
        "current_path": "/",
        "errors": {},
        "values": {},
    }
    for locale in ("fr", "en"):
        page = rendering.render_template(locale, "socle/error.html", context)
        assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
        assert "<a href=//evil>" not in page
