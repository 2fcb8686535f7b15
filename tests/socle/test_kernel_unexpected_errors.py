"""An unexpected error, served for real (uvicorn on 127.0.0.1): a complete 500 problem+json, logged once, and the
client's keep-alive connection still answers its next request (Starlette raised the error again after the
answer: uvicorn logged it once more and closed the connection without ``Connection: close``, and the next request
on it got no answer; in the whole kit the same error was logged three times)."""

from __future__ import annotations

import http.client
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from live_server import Answer, errors_logged, served
from starlette.routing import Mount

from socle.web import API_SECURITY_HEADERS, create_service_app

from conftest import assert_problem


def _failing_service() -> Any:
    router = APIRouter()

    @router.get("/panne")
    def broken() -> None:
        raise RuntimeError("détail interne à ne jamais montrer")

    @router.get("/bien")
    def fine() -> dict[str, str]:
        return {"etat": "ok"}

    @router.get("/flux")
    def halfway() -> StreamingResponse:
        def chunks() -> Iterator[bytes]:
            yield b"premier morceau;"
            raise RuntimeError("le stockage ne répond plus")

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    return create_service_app("essai", "essai", "Une application d'essai", [router])


def _two_requests_on_one_connection(port: int, prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", f"{prefix}/panne")
        failed = Answer(connection.getresponse())
        body = assert_problem(failed, 500)
        assert body["type"] == "urn:socle:problem:internal" and "détail interne" not in failed.text
        for name, value in API_SECURITY_HEADERS:
            assert failed.headers[name.decode()] == value.decode()
        # Kept open, or closed saying so: never closed in silence.
        assert failed.headers.get("connection", "").lower() != "close"

        connection.request("GET", f"{prefix}/bien")  # the same connection: before the fix, RemoteDisconnected
        again = Answer(connection.getresponse())
        assert again.status_code == 200 and again.json() == {"etat": "ok"}
    finally:
        connection.close()
    time.sleep(0.2)  # uvicorn logs in its own thread
    logged = errors_logged(caplog.records)
    assert logged == [f"unexpected error on GET {prefix}/panne"], logged


def test_a_500_is_complete_logged_once_and_keeps_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with served(_failing_service(), "erreurs", uvicorn_logs=True) as base:
        port = urlsplit(base).port
        _two_requests_on_one_connection(port, "", caplog)


def test_in_the_whole_kit_a_services_500_is_logged_once(app: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The kit's app (socle.app), with a failing service mounted beside the four, as each of them is."""
    from socle.app import create_app

    kit = create_app()
    kit.router.routes.insert(0, Mount("/essai", app=_failing_service()))
    caplog.set_level(logging.INFO)
    with served(kit, "erreurs", uvicorn_logs=True) as base:
        port = urlsplit(base).port
        _two_requests_on_one_connection(port, "/essai", caplog)


def test_a_download_failing_halfway_is_cut_not_taken_for_whole(caplog: pytest.LogCaptureFixture) -> None:
    """The answer has begun: no 500 can be sent any more, the connection is cut so that the client sees the
    truncation; the kit logs the error once (the server adds its own line)."""
    caplog.set_level(logging.INFO)
    with served(_failing_service(), "erreurs", uvicorn_logs=True) as base:
        port = urlsplit(base).port
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/flux")
            response = connection.getresponse()
            assert response.status == 200
            with pytest.raises(http.client.IncompleteRead):
                response.read()
        finally:
            connection.close()
        time.sleep(0.2)
    kit_records = [record for record in caplog.records if record.name == "socle.web"]
    assert [record.getMessage() for record in kit_records] == ["unexpected error on GET /flux"]
