"""The browser run's fixtures, a plugin the test modules name in ``pytest_plugins``.

Not a conftest.py: this folder has no ``__init__.py``, so a conftest.py here would be imported under the
module name ``conftest`` and shadow tests/conftest.py for every ``from conftest import …`` that follows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from browsing import AXE, CHROMIUM, CHROMIUM_FLAGS, Report, Visitors, artefacts_dir
from live_server import served
from playwright.sync_api import Browser, sync_playwright

from conftest import Kit, missing


@pytest.fixture(scope="session")
def live_server(app: Any) -> Iterator[str]:
    """The whole kit (APIs and pages) served by uvicorn in a thread, on the tests' embedded settings."""
    with served(app, "browser-live-server") as url:
        yield url


# Per module, not per session: while Playwright's sync API is open, its event loop counts as running in the
# main thread, and every later test that calls asyncio.run() (pyHanko's signing) would fail.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for the whole run; each user gets a context of their own."""
    if not CHROMIUM.is_file():
        missing(f"Chromium absent ({CHROMIUM}) : lancez « make test », qui installe le paquet Debian chromium")
    if not AXE.is_file():
        missing(f"axe-core absent ({AXE}) : lancez « make test », qui l'installe par npm ci dans tests/browser")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def report() -> Iterator[Report]:
    """Every measured visit of the run, written as summary.json and summary.md beside the screenshots."""
    collected = Report(artefacts_dir())
    yield collected
    collected.write()


@pytest.fixture
def make_visitors(browser: Browser, live_server: str, report: Report) -> Iterator[Callable[[Kit], Visitors]]:
    """The users of a kit at their browsers (a context each), and an anonymous visitor."""
    crowds: list[Visitors] = []

    def make(kit: Kit) -> Visitors:
        crowds.append(Visitors(browser, live_server, kit, report))
        return crowds[-1]

    yield make
    for crowd in crowds:
        crowd.close()


@pytest.fixture
def visitors(make_visitors: Callable[[Kit], Visitors], kit: Kit) -> Visitors:
    """The ``kit`` fixture's users at their browsers."""
    return make_visitors(kit)
