"""Web interface helpers for tests: sign a kit user in through the real sign-in form, read forms back."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from conftest import UI_PASSWORD, Kit

BASE_URL = "https://testserver"  # session cookies are Secure: the test client must speak "https"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the first form of a page."""
    found = _CSRF.search(html)
    assert found, "la page n'a pas de formulaire protégé"
    return found.group(1)


def anonymous(app: Any) -> TestClient:
    return TestClient(app, base_url=BASE_URL, raise_server_exceptions=False, follow_redirects=False)


def sign_in(app: Any, kit: Kit, username: str) -> TestClient:
    """A browser-like client signed in as ``username`` of ``kit`` through GET then POST /connexion."""
    client = anonymous(app)
    page = client.get("/connexion")
    assert page.status_code == 200, page.text
    answer = client.post(
        "/connexion",
        data={"csrf": csrf_of(page.text), "tenant": kit.slug, "username": username, "password": UI_PASSWORD},
    )
    assert answer.status_code == 303, answer.text
    return client


def post_form(client: TestClient, page_url: str, action: str, data: dict[str, Any], **kwargs: Any) -> Any:
    """Submit a form the way a browser does: read the page for its CSRF token, then post to ``action``."""
    token = csrf_of(client.get(page_url).text)
    return client.post(action, data={"csrf": token, **data}, **kwargs)
