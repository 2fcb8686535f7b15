"""An unexpected error in a page, served for real (uvicorn on 127.0.0.1): the interface's French 500 page with its
security headers, logged once, and the browser's keep-alive connection still answers its next request (Starlette
sent the page, then raised the error again: uvicorn logged it once more and closed the connection without
``Connection: close``; in the whole kit the kit's app logged it a second time)."""

from __future__ import annotations

import http.client
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from live_server import Answer, errors_logged, served

from socle.ui.app import CSP, create_ui_app


def _failing_pages() -> APIRouter:
    router = APIRouter()

    @router.get("/panne")
    def broken() -> None:
        raise RuntimeError("détail interne à ne jamais montrer")

    @router.get("/bien")
    def fine() -> HTMLResponse:
        return HTMLResponse("<p>tout va bien</p>")

    return router


def _two_pages_on_one_connection(port: int, caplog: pytest.LogCaptureFixture) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    page = {"accept": "text/html"}
    try:
        connection.request("GET", "/panne", headers=page)
        failed = Answer(connection.getresponse())
        assert failed.status_code == 500
        assert failed.headers["content-type"].startswith("text/html")
        assert "Erreur interne" in failed.text and "Une erreur inattendue s'est produite" in failed.text
        assert "détail interne" not in failed.text
        assert failed.headers["content-security-policy"] == CSP
        assert failed.headers["x-frame-options"] == "DENY"
        assert failed.headers["x-content-type-options"] == "nosniff"
        assert failed.headers["cache-control"] == "no-store"
        # Kept open, or closed saying so: never closed in silence.
        assert failed.headers.get("connection", "").lower() != "close"

        connection.request("GET", "/bien", headers=page)  # the same connection: before the fix, RemoteDisconnected
        again = Answer(connection.getresponse())
        assert again.status_code == 200 and again.text == "<p>tout va bien</p>"
    finally:
        connection.close()
    time.sleep(0.2)  # uvicorn logs in its own thread
    logged = errors_logged(caplog.records)
    assert logged == ["unexpected error on GET /panne"], logged


def test_a_page_s_500_is_the_french_page_logged_once_and_keeps_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with served(create_ui_app([_failing_pages()]), "erreurs", uvicorn_logs=True) as base:
        port = urlsplit(base).port
        _two_pages_on_one_connection(port, caplog)


def test_in_the_whole_kit_a_page_s_500_is_the_page_logged_once(
    app: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kit's app (socle.app), the interface mounted at its root with one failing page more."""
    import socle.app

    monkeypatch.setattr(socle.app, "UI_ROUTERS", [*socle.app.UI_ROUTERS, _failing_pages()])
    kit = socle.app.create_app()
    caplog.set_level(logging.INFO)
    with served(kit, "erreurs", uvicorn_logs=True) as base:
        port = urlsplit(base).port
        _two_pages_on_one_connection(port, caplog)
