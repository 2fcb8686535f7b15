"""Sign-in throttling holds against guesses sent all at once, on the production database.

Five failures per account per quarter of an hour: the count was read before the password was checked and
the failure written after, so a burst of guesses all read the count of before the burst, and each got its
try (twelve of twelve here, as many as the server has threads in production).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from ui_kit import BASE_URL, csrf_of

from socle.db import new_session
from socle.migrating import upgrade_all
from socle.models import LoginAttempt
from socle.ui.sessions import MAX_FAILURES_PER_ACCOUNT

from conftest import UI_PASSWORD, Kit

pytestmark = pytest.mark.integration

GUESSES = 12


def _browser(app: Any, address: str) -> TestClient:
    return TestClient(
        app, base_url=BASE_URL, raise_server_exceptions=False, follow_redirects=False, client=(address, 50000)
    )


def test_a_burst_of_guesses_gets_no_more_tries_than_the_limit(
    app: Any, postgres_url: str, use_env: Callable[..., None], make_kit: Callable[..., Kit]
) -> None:
    use_env(SOCLE_DATABASE_URL=postgres_url)
    upgrade_all()
    kit = make_kit(with_identity=False)
    start = threading.Barrier(GUESSES)

    def guess(n: int) -> int:
        browser = _browser(app, f"198.51.100.{n + 1}")  # each from its own address: the account's limit is the one
        token = csrf_of(browser.get("/connexion").text)
        form = {"csrf": token, "tenant": kit.slug, "username": "maire", "password": f"essai numéro {n}"}
        start.wait()  # every guess sent at the same moment
        return browser.post("/connexion", data=form).status_code

    with ThreadPoolExecutor(GUESSES) as pool:
        statuses = list(pool.map(guess, range(GUESSES)))
    assert set(statuses) <= {401, 429}, statuses
    assert statuses.count(401) <= MAX_FAILURES_PER_ACCOUNT, statuses
    with new_session() as db:
        recorded = db.execute(select(func.count()).where(LoginAttempt.key == f"account:{kit.slug}/maire")).scalar_one()
    assert recorded == statuses.count(401)  # a refused try is not a failure: it checked no password
    # The guesses left no room for another: the right password now waits too, or the limit was not reached yet.
    later = _browser(app, "198.51.100.200")
    right = later.post(
        "/connexion",
        data={
            "csrf": csrf_of(later.get("/connexion").text),
            "tenant": kit.slug,
            "username": "maire",
            "password": UI_PASSWORD,
        },
    )
    assert right.status_code == (429 if recorded == MAX_FAILURES_PER_ACCOUNT else 303)
