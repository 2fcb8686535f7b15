"""Sign-in through OpenID Connect against a local provider that follows the protocol (and ProConnect's rules)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, serve
from sqlalchemy import select
from ui_kit import anonymous, csrf_of

from socle.db import transaction
from socle.models import User
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
    # Sign-out offers the provider's own logout, with the ID token as hint.
    home = client.get("/")
    out = client.post("/deconnexion", data={"csrf": csrf_of(home.text)})
    assert out.status_code == 200 and f"{provider.base_url}/logout?id_token_hint=" in out.text
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
