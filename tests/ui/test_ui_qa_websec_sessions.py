"""A sign-in in a browser that already holds a session ends that session on the server.

On a shared desk of the town hall, the second agent signing in replaced the first one's cookie in the
browser, but the first session stayed open on the server until its idle time ran out: a copy of its cookie
(taken earlier, or left in another tab's tool) kept acting as the first agent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, serve
from sqlalchemy import select
from ui_kit import BASE_URL, anonymous, csrf_of, sign_in

from socle.db import transaction
from socle.models import AuditEntry, User
from socle.ui import oidc
from socle.ui.sessions import COOKIE

from conftest import UI_PASSWORD, Kit


def _signed_in_as(app: Any, cookie: str) -> str:
    """The page a copy of a session cookie opens: the home page of its user, or the sign-in redirect."""
    copy = anonymous(app)
    copy.cookies.set(COOKIE, cookie, domain="testserver.local")
    answer = copy.get("/")
    return answer.text if answer.status_code == 200 else f"→ {answer.headers.get('location')}"


def test_signing_in_over_a_session_closes_it(app: Any, kit: Kit) -> None:
    desk = sign_in(app, kit, "agent")
    first = desk.cookies[COOKIE]
    assert "Camille Martin" in _signed_in_as(app, first)
    page = desk.get("/connexion")
    answer = desk.post(
        "/connexion",
        data={"csrf": csrf_of(page.text), "tenant": kit.slug, "username": "maire", "password": UI_PASSWORD},
    )
    assert answer.status_code == 303
    assert "Dominique Dupont" in desk.get("/").text
    assert _signed_in_as(app, first) == "→ /connexion"  # the agent's session is over, not only its cookie
    with transaction() as db:
        closed = db.execute(
            select(AuditEntry).where(AuditEntry.tenant_id == kit.tenant_id, AuditEntry.action == "session.closed")
        ).scalars()
        assert [entry.actor for entry in closed] == ["user:agent"]


def test_a_wrong_password_over_a_session_leaves_it_open(app: Any, kit: Kit) -> None:
    desk = sign_in(app, kit, "agent")
    page = desk.get("/connexion")
    refused = desk.post(
        "/connexion", data={"csrf": csrf_of(page.text), "tenant": kit.slug, "username": "maire", "password": "faux"}
    )
    assert refused.status_code == 401
    assert "Camille Martin" in desk.get("/").text  # only a sign-in that succeeds replaces the session


@pytest.fixture
def provider() -> Iterator[Provider]:
    chosen = Provider()
    server, thread = serve(chosen)
    oidc._discovery.cache_clear()
    oidc._jwks.cache_clear()
    yield chosen
    server.should_exit = True
    thread.join(5)


def test_signing_in_through_oidc_over_a_session_closes_it(
    app: Any, kit: Kit, provider: Provider, use_env: Callable[..., None]
) -> None:
    entry = {
        "name": "keycloak",
        "title": "Keycloak",
        "issuer": provider.base_url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "tenant": kit.slug,
    }
    use_env(SOCLE_OIDC_PROVIDERS=json.dumps([entry]), SOCLE_PUBLIC_URL=BASE_URL)
    with transaction() as db:
        maire = db.execute(select(User).where(User.tenant_id == kit.tenant_id, User.username == "maire")).scalar_one()
        maire.email = f"maire.{kit.slug}@mairie.example"
    desk = sign_in(app, kit, "agent")
    first = desk.cookies[COOKIE]
    provider.user = {"sub": "kc-maire", "email": f"maire.{kit.slug}@mairie.example", "email_verified": True}
    start = desk.get("/connexion/oidc/keycloak")
    at_provider = httpx.get(start.headers["location"])
    back = urlsplit(at_provider.headers["location"])
    assert desk.get(f"{back.path}?{back.query}").status_code == 303
    assert "Dominique Dupont" in desk.get("/").text
    assert _signed_in_as(app, first) == "→ /connexion"
