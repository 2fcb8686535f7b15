"""The kit served for real by uvicorn in a thread on 127.0.0.1, for clients that need a real port (a browser,
the smart-card client)."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn


@contextmanager
def served(app: Any, name: str, *, uvicorn_logs: bool = False) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields its base URL. Fails the test if it does not start.

    ``uvicorn_logs``: uvicorn's own records reach the test's log capture (``log_config=None``; its default
    configuration stops them at the « uvicorn » logger), for a test that counts what was logged."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    logs: dict[str, Any] = {"log_config": None} if uvicorn_logs else {"log_level": "warning"}
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", **logs))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail(f"le serveur du kit ({name}) n'a pas démarré")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


class Answer:
    """What http.client read on a kept-alive connection, shaped like a test client's response (for
    conftest.assert_problem): the whole body is read, so the connection is free for the next request."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status_code = response.status
        self.headers = {name.lower(): value for name, value in response.getheaders()}
        self.content = response.read()
        self.text = self.content.decode()

    def json(self) -> Any:
        return json.loads(self.content)


def errors_logged(records: list[logging.LogRecord]) -> list[str]:
    return [record.getMessage() for record in records if record.levelno >= logging.ERROR]
