"""Sign-in through OpenID Connect against a local provider that follows the protocol (and ProConnect's rules)."""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, serve
from sqlalchemy import select
from ui_kit import anonymous, csrf_of

from socle.db import transaction
from socle.models import UiSession, User
from socle.ui import oidc

from conftest import Kit


@pytest.fixture
def provider(use_env: Callable[..., None]) -> Iterator[Provider]:
    chosen = Provider()
    server, thread = serve(chosen)
    oidc._discovery.cache_clear()
    oidc._jwks.cache_clear()
    yield chosen
    server.should_exit = True
    thread.join(5)


def configure(use_env: Callable[..., None], provider: Provider, **options: Any) -> None:
    entry = {
        "name": "proconnect",
        "title": "ProConnect",
        "issuer": provider.base_url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        **options,
    }
    use_env(SOCLE_OIDC_PROVIDERS=json.dumps([entry]), SOCLE_PUBLIC_URL="https://testserver")


def proconnect(use_env: Callable[..., None], provider: Provider) -> None:
    provider.signed_userinfo = True
    provider.proconnect_rules = True
    configure(use_env, provider, signed_userinfo=True, pkce=False, tenant_from_siret=True, scopes="openid email siret")


def give_email(kit: Kit, username: str, email: str) -> None:
    # Every test kit shares one SIREN: e-mails must differ between kits, or the identity is ambiguous.
    with transaction() as db:
        db.execute(
            select(User).where(User.tenant_id == kit.tenant_id, User.username == username)
        ).scalar_one().email = email


def sign_in_through(app: Any, provider: Provider, claims: dict[str, Any]) -> tuple[Any, httpx.Response]:
    """The browser's trip: socle → provider's authorize → back to socle's callback."""
    provider.user = claims
    client = anonymous(app)
    start = client.get("/connexion/oidc/proconnect?suivant=/documents")
    assert start.status_code == 303, start.text
    at_provider = httpx.get(start.headers["location"])  # the provider answers with a redirect to socle
    assert at_provider.status_code == 302, at_provider.text
    back = urlsplit(at_provider.headers["location"])
    return client, client.get(f"{back.path}?{back.query}")


def test_proconnect_sign_in_with_signed_userinfo(
    app: Any, kit: Kit, provider: Provider, use_env: Callable[..., None]
) -> None:
    proconnect(use_env, provider)
    give_email(kit, "agent", f"camille.{kit.slug}@mairie.example")
    page = anonymous(app).get("/connexion")
    assert "Se connecter avec ProConnect" in page.text
    claims = {"sub": "pc-123", "email": f"Camille.{kit.slug}@mairie.example", "siret": "21370000000012"}
    client, answer = sign_in_through(app, provider, claims)
    assert answer.status_code == 303 and answer.headers["location"] == "/documents"
    assert "Camille Martin" in client.get("/").text
    sent = provider.authorize_params[-1]
    assert len(sent["state"]) >= 32 and len(sent["nonce"]) >= 32
    assert "code_challenge" not in sent  # ProConnect refuses parameters it does not know
    # The identity is now bound: a later sign-in finds the account by subject even if the e-mail changed.
    _, again = sign_in_through(app, provider, {**claims, "email": "autre@mairie.example"})
    assert again.status_code == 303


def test_keycloak_with_pkce_and_a_fixed_collectivite(
    app: Any, kit: Kit, provider: Provider, use_env: Callable[..., None]
) -> None:
    configure(use_env, provider, tenant=kit.slug)
    give_email(kit, "maire", "d.dupont@mairie.example")
    client, answer = sign_in_through(
        app, provider, {"sub": "kc-1", "email": "d.dupont@mairie.example", "email_verified": True}
    )
    assert answer.status_code == 303
    assert "code_challenge" in provider.authorize_params[-1]
    assert "Dominique Dupont" in client.get("/").text
    # Sign-out goes on to the provider's own logout, with the ID token as hint.
    home = client.get("/")
    out = client.post("/deconnexion", data={"csrf": csrf_of(home.text)})
    assert out.status_code == 200 and out.headers["refresh"].startswith(f"0; url={provider.base_url}/logout?")
    assert client.get("/").status_code == 303


def test_unknown_identity_opens_nothing(app: Any, kit: Kit, provider: Provider, use_env: Callable[..., None]) -> None:
    proconnect(use_env, provider)
    _, answer = sign_in_through(app, provider, {"sub": "pc-x", "email": "x@y.example", "siret": "21370000000012"})
    assert answer.status_code == 403 and "aucun compte actif" in answer.text
    _, answer = sign_in_through(app, provider, {"sub": "pc-y", "email": "x@y.example", "siret": "99999999900012"})
    assert answer.status_code == 403 and "n'utilise pas ce service" in answer.text


def test_unverified_email_does_not_bind(app: Any, kit: Kit, provider: Provider, use_env: Callable[..., None]) -> None:
    configure(use_env, provider, tenant=kit.slug)
    give_email(kit, "agent", "camille@mairie.example")
    _, answer = sign_in_through(
        app, provider, {"sub": "kc-2", "email": "camille@mairie.example", "email_verified": False}
    )
    assert answer.status_code == 403


@pytest.mark.parametrize(
    ("knob", "expected"),
    [
        ("sign_with_other_key", "jeton d'identité refusé"),
        ("wrong_nonce", "nonce inattendu"),
        ("userinfo_other_subject", "une autre personne"),
    ],
)
def test_forged_answers_are_refused(
    app: Any, kit: Kit, provider: Provider, use_env: Callable[..., None], knob: str, expected: str
) -> None:
    proconnect(use_env, provider)
    give_email(kit, "agent", f"camille.{kit.slug}@mairie.example")
    setattr(provider, knob, True)
    client, answer = sign_in_through(
        app, provider, {"sub": "pc-9", "email": f"camille.{kit.slug}@mairie.example", "siret": "21370000000012"}
    )
    assert answer.status_code == 403 and expected in answer.text
    assert client.get("/").status_code == 303  # no session was opened


def test_unsigned_userinfo_is_refused_when_the_provider_must_sign(
    app: Any, kit: Kit, provider: Provider, use_env: Callable[..., None]
) -> None:
    proconnect(use_env, provider)
    provider.signed_userinfo = False
    give_email(kit, "agent", f"camille.{kit.slug}@mairie.example")
    _, answer = sign_in_through(
        app, provider, {"sub": "pc-8", "email": f"camille.{kit.slug}@mairie.example", "siret": "21370000000012"}
    )
    assert answer.status_code == 403 and "doit les signer" in answer.text


def test_state_mismatch_and_replayed_code_are_refused(
    app: Any, kit: Kit, provider: Provider, use_env: Callable[..., None]
) -> None:
    proconnect(use_env, provider)
    give_email(kit, "agent", f"camille.{kit.slug}@mairie.example")
    provider.user = {"sub": "pc-7", "email": f"camille.{kit.slug}@mairie.example", "siret": "21370000000012"}
    client = anonymous(app)
    start = client.get("/connexion/oidc/proconnect")
    back = urlsplit(httpx.get(start.headers["location"]).headers["location"])
    code = parse_qs(back.query)["code"][0]
    forged = client.get(f"{back.path}?code={code}&state={'x' * 43}")
    assert forged.status_code == 422 and "state" in forged.text
    accepted = client.get(f"{back.path}?{back.query}")
    assert accepted.status_code == 303  # the genuine answer still works once…
    again = client.get(f"{back.path}?{back.query}")
    assert again.status_code in (403, 422)  # …but not twice: pending sign-in gone, and the code is single-use


def test_callback_without_pending_sign_in_is_refused(
    app: Any, provider: Provider, use_env: Callable[..., None]
) -> None:
    proconnect(use_env, provider)
    answer = anonymous(app).get("/connexion/oidc/proconnect/retour?code=abc&state=" + "s" * 43)
    assert answer.status_code == 422 and "recommencez" in answer.text


def agent_claims(kit: Kit, sub: str) -> dict[str, Any]:
    return {"sub": sub, "email": f"camille.{kit.slug}@mairie.example", "siret": "21370000000012"}


def sessions_of(kit: Kit, username: str) -> int:
    with transaction() as db:
        user = db.execute(select(User).where(User.tenant_id == kit.tenant_id, User.username == username)).scalar_one()
        return db.query(UiSession).filter(UiSession.user_id == user.id).count()


def test_userinfo_signed_by_another_key_is_refused_and_opens_nothing(
    app: Any, kit: Kit, provider: Provider, use_env: Callable[..., None]
) -> None:
    proconnect(use_env, provider)
    give_email(kit, "agent", f"camille.{kit.slug}@mairie.example")
    provider.sign_userinfo_with_other_key = True  # the ID token is genuine: only the userinfo branch can refuse
    client, answer = sign_in_through(app, provider, agent_claims(kit, "pc-6"))
    assert answer.status_code == 403
    assert "informations d'utilisateur refusées : signature invalide" in answer.text
    assert client.get("/").status_code == 303 and sessions_of(kit, "agent") == 0
    with transaction() as db:  # nor was the identity bound to the account on the way
        agent = db.execute(select(User).where(User.tenant_id == kit.tenant_id, User.username == "agent")).scalar_one()
        assert agent.oidc_subject is None
    # The same answer, signed by the provider's own key, is accepted: the refusal was the signature's.
    provider.sign_userinfo_with_other_key = False
    _, answer = sign_in_through(app, provider, agent_claims(kit, "pc-6"))
    assert answer.status_code == 303


def test_pending_sign_in_cookie_is_protected_then_cleared(
    app: Any, kit: Kit, provider: Provider, use_env: Callable[..., None]
) -> None:
    proconnect(use_env, provider)
    give_email(kit, "agent", f"camille.{kit.slug}@mairie.example")
    provider.user = agent_claims(kit, "pc-5")
    client = anonymous(app)
    start = client.get("/connexion/oidc/proconnect")
    [pending] = [c for c in start.headers.get_list("set-cookie") if c.startswith(f"{oidc.PENDING_COOKIE}=")]
    flags = [part.strip().lower() for part in pending.split(";")]
    assert "secure" in flags and "httponly" in flags
    assert "samesite=lax" in flags  # lax: the provider sends the browser back with a top-level GET
    assert f"max-age={oidc.PENDING_SECONDS}" in flags and "path=/" in flags
    assert client.cookies.get(oidc.PENDING_COOKIE)
    back = urlsplit(httpx.get(start.headers["location"]).headers["location"])
    answer = client.get(f"{back.path}?{back.query}")
    assert answer.status_code == 303
    [cleared] = [c for c in answer.headers.get_list("set-cookie") if c.startswith(f"{oidc.PENDING_COOKIE}=")]
    assert '__Host-socle_oidc=""' in cleared and "max-age=0" in cleared.lower()
    assert client.cookies.get(oidc.PENDING_COOKIE) is None


LOGOUT_RETURN = "https://testserver/deconnexion/oidc/proconnect/retour"


def test_sign_out_ends_the_provider_session_too(
    app: Any, kit: Kit, provider: Provider, use_env: Callable[..., None]
) -> None:
    proconnect(use_env, provider)  # ProConnect's rules: hint, state ≥ 32 characters and return address required
    provider.post_logout_redirect_uris = [LOGOUT_RETURN]
    give_email(kit, "agent", f"camille.{kit.slug}@mairie.example")
    client, answer = sign_in_through(app, provider, agent_claims(kit, "pc-4"))
    assert answer.status_code == 303
    session_cookie = client.cookies["__Host-socle_session"]
    out = client.post("/deconnexion", data={"csrf": csrf_of(client.get("/").text)})
    assert out.status_code == 200
    delay, _, target = out.headers["refresh"].partition("; url=")
    assert delay == "0" and target.startswith(f"{provider.base_url}/logout?")
    assert f'href="{html.escape(target)}"' in out.text  # a link, for a browser that ignores Refresh
    sent = {key: values[0] for key, values in parse_qs(urlsplit(target).query).items()}
    assert sent["post_logout_redirect_uri"] == LOGOUT_RETURN and len(sent["state"]) >= 32
    assert jwt.decode(sent["id_token_hint"], options={"verify_signature": False})["sub"] == "pc-4"
    # The kit's session is closed before the provider is even reached.
    stale = anonymous(app)
    stale.cookies.set("__Host-socle_session", session_cookie)
    assert stale.get("/").status_code == 303 and sessions_of(kit, "agent") == 0
    at_provider = httpx.get(target)
    assert at_provider.status_code == 302 and provider.ended_sessions == ["pc-4"]
    back = urlsplit(at_provider.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == LOGOUT_RETURN
    done = client.get(f"{back.path}?{back.query}")
    assert done.status_code == 200 and "fournisseur d'identité est fermée aussi" in done.text
    assert client.cookies.get(oidc.LOGOUT_COOKIE) is None
    again = client.get(f"{back.path}?{back.query}")  # the state is used once
    assert again.status_code == 422 and "votre session socle est fermée" in again.text


def test_provider_logout_return_with_a_wrong_state_is_refused(
    app: Any, kit: Kit, provider: Provider, use_env: Callable[..., None]
) -> None:
    proconnect(use_env, provider)
    provider.post_logout_redirect_uris = [LOGOUT_RETURN]
    give_email(kit, "agent", f"camille.{kit.slug}@mairie.example")
    client, _ = sign_in_through(app, provider, agent_claims(kit, "pc-3"))
    out = client.post("/deconnexion", data={"csrf": csrf_of(client.get("/").text)})
    [pending] = [c for c in out.headers.get_list("set-cookie") if c.startswith(f"{oidc.LOGOUT_COOKIE}=")]
    flags = [part.strip().lower() for part in pending.split(";")]
    assert "secure" in flags and "httponly" in flags and "samesite=lax" in flags
    forged = client.get("/deconnexion/oidc/proconnect/retour?state=" + "x" * 43)
    assert forged.status_code == 422 and "(state)" in forged.text and "n'est pas confirmée" in forged.text
    assert client.get("/").status_code == 303  # signed out of the kit all the same


def test_the_test_provider_checks_the_hint_and_the_return_address(
    app: Any, kit: Kit, provider: Provider, use_env: Callable[..., None]
) -> None:
    """The local provider refuses what a real one refuses: without that, the sign-out test proves little."""
    proconnect(use_env, provider)
    provider.post_logout_redirect_uris = [LOGOUT_RETURN]
    state = "s" * 43
    forged_hint = jwt.encode({"iss": provider.base_url, "aud": CLIENT_ID, "sub": "x"}, provider.other_key, "RS256")
    logout = f"{provider.base_url}/logout"
    refused = httpx.get(
        logout, params={"id_token_hint": forged_hint, "state": state, "post_logout_redirect_uri": LOGOUT_RETURN}
    )
    assert refused.status_code == 400
    hint = provider.sign({"iss": provider.base_url, "aud": CLIENT_ID, "sub": "x"})
    elsewhere = httpx.get(
        logout, params={"id_token_hint": hint, "state": state, "post_logout_redirect_uri": "https://evil.example/"}
    )
    assert elsewhere.status_code == 400
    short_state = httpx.get(
        logout, params={"id_token_hint": hint, "state": "court", "post_logout_redirect_uri": LOGOUT_RETURN}
    )
    assert short_state.status_code == 400 and provider.ended_sessions == []


def test_sign_out_without_end_session_endpoint_goes_back_to_sign_in(
    app: Any, kit: Kit, provider: Provider, use_env: Callable[..., None]
) -> None:
    proconnect(use_env, provider)
    provider.end_session = False
    give_email(kit, "agent", f"camille.{kit.slug}@mairie.example")
    client, _ = sign_in_through(app, provider, agent_claims(kit, "pc-2"))
    out = client.post("/deconnexion", data={"csrf": csrf_of(client.get("/").text)})
    assert out.status_code == 303 and out.headers["location"] == "/connexion"
    assert oidc.LOGOUT_COOKIE not in out.headers.get("set-cookie", "")
    assert client.get("/").status_code == 303
