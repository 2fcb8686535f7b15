"""The web interface's shared pages: sign-in, sessions, CSRF, security headers, language, errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import select
from ui_kit import BASE_URL, anonymous, csrf_of, sign_in

from socle.cli import uvicorn_options
from socle.db import transaction
from socle.models import LoginAttempt, UiSession

from conftest import UI_PASSWORD, Kit


def test_sign_in_then_home_then_sign_out(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "agent")
    home = client.get("/")
    assert home.status_code == 200
    assert "Camille Martin" in home.text and f"Commune {kit.slug}" in home.text
    cookie = client.cookies.get("__Host-socle_session")
    assert cookie
    out = client.post("/deconnexion", data={"csrf": csrf_of(home.text)})
    assert out.status_code == 303 and out.headers["location"] == "/connexion"
    again = anonymous(app)
    again.cookies.set("__Host-socle_session", cookie)
    assert again.get("/").headers["location"] == "/connexion"  # the old cookie no longer opens anything


def test_session_cookie_is_secure_httponly_samesite(app: Any, kit: Kit) -> None:
    client = anonymous(app)
    page = client.get("/connexion")
    answer = client.post(
        "/connexion",
        data={"csrf": csrf_of(page.text), "tenant": kit.slug, "username": "agent", "password": UI_PASSWORD},
    )
    [session] = [c for c in answer.headers.get_list("set-cookie") if c.startswith("__Host-socle_session=")]
    flags = [part.strip().lower() for part in session.split(";")]
    assert "secure" in flags and "httponly" in flags and "samesite=lax" in flags


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
    address = "192.0.2.34"  # this test's own: the shared default address would carry its failures to others
    try:
        client = browser_at(app, address)
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
    finally:
        forget_failures(kit.slug, address)


def forget_failures(*fragments: str) -> None:
    """Remove the failures a test recorded: the address limit would otherwise reach the tests after it."""
    with transaction() as db:
        for fragment in fragments:
            db.query(LoginAttempt).filter(LoginAttempt.key.contains(fragment)).delete(synchronize_session=False)


def try_password(client: TestClient, tenant: str, username: str, password: str) -> int:
    token = csrf_of(client.get("/connexion").text)
    answer = client.post(
        "/connexion", data={"csrf": token, "tenant": tenant, "username": username, "password": password}
    )
    return answer.status_code


def guess_from(client: TestClient, tenant: str) -> list[int]:
    """A password sprayer: one wrong try on each of 20 accounts, under every account's own limit."""
    return [try_password(client, tenant, f"compte-{n}", "faux") for n in range(20)]


def browser_at(app: Any, address: str, **headers: str) -> TestClient:
    return TestClient(
        app,
        base_url=BASE_URL,
        raise_server_exceptions=False,
        follow_redirects=False,
        client=(address, 51000),
        headers=headers,
    )


def test_sign_in_is_throttled_per_address_but_not_for_a_known_browser(app: Any, kit: Kit) -> None:
    town_hall, elsewhere = "192.0.2.31", "192.0.2.32"
    try:
        # The mayor signed in from this browser before; the agent never did.
        known = browser_at(app, town_hall)
        assert try_password(known, kit.slug, "maire", UI_PASSWORD) == 303
        assert guess_from(browser_at(app, town_hall), kit.slug) == [401] * 20
        # The 21st try from that address waits, even with the right password…
        assert try_password(browser_at(app, town_hall), kit.slug, "agent", UI_PASSWORD) == 429
        assert try_password(known, kit.slug, "agent", UI_PASSWORD) == 429  # the browser knows the mayor only
        # …except for an account that signed in from this very browser: a guesser sharing the address
        # cannot lock it out. Its own account limit still applies (a wrong password is refused, not waited).
        assert try_password(known, kit.slug, "maire", "faux") == 401
        assert try_password(known, kit.slug, "maire", UI_PASSWORD) == 303
        # Another address is not concerned.
        assert try_password(browser_at(app, elsewhere), kit.slug, "agent", UI_PASSWORD) == 303
    finally:
        forget_failures(kit.slug, town_hall, elsewhere)


def test_a_guesser_elsewhere_does_not_lock_the_owner_out_of_their_usual_browser(app: Any, kit: Kit) -> None:
    try:
        usual = browser_at(app, "192.0.2.41")
        assert try_password(usual, kit.slug, "maire", UI_PASSWORD) == 303
        # Someone else tries the mayor's account until it is locked, for every other browser…
        guesser = browser_at(app, "198.51.100.7")
        assert [try_password(guesser, kit.slug, "maire", "faux") for _ in range(5)] == [401] * 5
        assert try_password(guesser, kit.slug, "maire", UI_PASSWORD) == 429
        assert try_password(browser_at(app, "192.0.2.41"), kit.slug, "maire", UI_PASSWORD) == 429
        # …but the mayor still signs in from the usual browser, which has a count of its own.
        assert try_password(usual, kit.slug, "maire", UI_PASSWORD) == 303
        assert [try_password(usual, kit.slug, "maire", "faux") for _ in range(5)] == [401] * 5
        assert try_password(usual, kit.slug, "maire", UI_PASSWORD) == 429  # that browser is limited too
    finally:
        forget_failures(f"{kit.slug}/maire", "192.0.2.41", "198.51.100.7")


def test_a_very_long_username_is_only_a_wrong_one(app: Any, kit: Kit) -> None:
    try:
        assert try_password(browser_at(app, "192.0.2.42"), kit.slug, "x" * 5000, "faux") == 401
        with transaction() as db:  # the counted keys fit their column (300 characters: PostgreSQL would refuse)
            keys = db.query(LoginAttempt.key).filter(LoginAttempt.key.contains("xxxxxxxx")).all()
        assert keys and all(len(key) <= 300 for (key,) in keys)
    finally:
        forget_failures("192.0.2.42", "xxxxxxxx")


def test_a_forged_device_cookie_opens_no_exemption(app: Any, kit: Kit) -> None:
    address = "192.0.2.33"
    try:
        assert guess_from(browser_at(app, address), kit.slug) == [401] * 20
        forger = browser_at(app, address)
        forger.cookies.set("__Host-socle_appareil", "pas-un-jeton-chiffre")
        assert try_password(forger, kit.slug, "agent", UI_PASSWORD) == 429
    finally:
        forget_failures(kit.slug, address)


def test_behind_the_trusted_proxy_two_clients_are_limited_apart(
    app: Any, kit: Kit, use_env: Callable[..., None]
) -> None:
    proxy = "10.20.30.40"
    use_env(SOCLE_TRUSTED_PROXIES=f"127.0.0.1,{proxy}")
    # The application as `socle serve` runs it: wrapped by uvicorn with the serve command's options.
    config = uvicorn.Config(app, log_config=None, **uvicorn_options())
    config.load()
    served = config.loaded_app

    def through_proxy(client_address: str) -> TestClient:
        return browser_at(served, proxy, **{"X-Forwarded-For": client_address, "X-Forwarded-Proto": "https"})

    try:
        assert guess_from(through_proxy("198.51.100.7"), kit.slug) == [401] * 20
        assert try_password(through_proxy("198.51.100.7"), kit.slug, "agent", UI_PASSWORD) == 429
        assert try_password(through_proxy("198.51.100.8"), kit.slug, "agent", UI_PASSWORD) == 303
        # Only the trusted proxy is believed: the guesser connecting directly cannot pose as someone else.
        direct = browser_at(served, "198.51.100.7", **{"X-Forwarded-For": "198.51.100.9"})
        assert try_password(direct, kit.slug, "agent", UI_PASSWORD) == 429
    finally:
        forget_failures(kit.slug, proxy, "198.51.100.")


def test_trusted_proxies_must_be_addresses(use_env: Callable[..., None]) -> None:
    from socle.errors import SettingsError
    from socle.settings import get_settings

    use_env(SOCLE_TRUSTED_PROXIES="10.0.0.0/8, ::1")
    assert get_settings().trusted_proxies == ("10.0.0.0/8", "::1")
    # Host bits in a network: the network meant, which uvicorn (strict) would otherwise never match.
    use_env(SOCLE_TRUSTED_PROXIES="10.0.0.5/24")
    assert get_settings().trusted_proxies == ("10.0.0.0/24",)
    from uvicorn.middleware.proxy_headers import _TrustedHosts

    assert "10.0.0.7" in _TrustedHosts(list(get_settings().trusted_proxies))
    use_env(SOCLE_TRUSTED_PROXIES="proxy.mairie.fr")
    with pytest.raises(SettingsError, match="SOCLE_TRUSTED_PROXIES"):
        get_settings()


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
            select(UiSession).where(UiSession.token_hash == hash_token(client.cookies["__Host-socle_session"]))
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
