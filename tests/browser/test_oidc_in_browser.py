"""ProConnect in a real browser: sign-in through the provider, then sign-out at the provider too.

The sign-out answers a form with a page that moves on at once (Refresh) rather than a redirect: the
Content-Security-Policy's form-action 'self' forbids a form's answer from redirecting to another site, which
only a real browser enforces. The provider is the local one of the tests (tests/oidc_provider.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
from browsing import Visitors
from oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, serve
from sqlalchemy import select

from socle.db import transaction
from socle.models import User
from socle.ui import oidc

from conftest import Kit

pytest_plugins = ["browser_plugin"]  # the browser, the live server, the visitors and the report


@pytest.fixture
def provider(use_env: Callable[..., None], live_server: str) -> Iterator[Provider]:
    chosen = Provider(signed_userinfo=True, proconnect_rules=True)
    server, thread = serve(chosen)
    chosen.post_logout_redirect_uris = [f"{live_server}/deconnexion/oidc/proconnect/retour"]
    entry = {
        "name": "proconnect",
        "title": "ProConnect",
        "issuer": chosen.base_url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "signed_userinfo": True,
        "pkce": False,
        "tenant_from_siret": True,
        "scopes": "openid email siret",
    }
    use_env(SOCLE_OIDC_PROVIDERS=json.dumps([entry]), SOCLE_PUBLIC_URL=live_server)
    oidc._discovery.cache_clear()
    oidc._jwks.cache_clear()
    yield chosen
    server.should_exit = True
    thread.join(5)


def test_proconnect_sign_in_then_sign_out_at_the_provider(visitors: Visitors, kit: Kit, provider: Provider) -> None:
    email = f"camille.{kit.slug}@mairie.example"
    with transaction() as db:
        db.execute(
            select(User).where(User.tenant_id == kit.tenant_id, User.username == "agent")
        ).scalar_one().email = email
    provider.user = {"sub": "pc-navigateur", "email": email, "siret": "21370000000012"}
    page = visitors.new_page("proconnect")
    page.goto("/connexion")
    with page.expect_navigation(url=lambda url: urlsplit(url).path == "/"):
        page.get_by_role("link", name="Se connecter avec ProConnect").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Bonjour Camille Martin"

    with page.expect_navigation(url=lambda url: "/deconnexion/oidc/proconnect/retour" in url):
        page.get_by_role("button", name="Se déconnecter").click()
    assert provider.ended_sessions == ["pc-navigateur"]
    assert "fournisseur d'identité est fermée aussi" in page.locator("main").inner_text()
    assert not [cookie for cookie in page.context.cookies() if cookie["name"] == "__Host-socle_session"]
    visitors.assert_stayed_local()
