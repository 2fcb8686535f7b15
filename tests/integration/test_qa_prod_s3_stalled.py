"""The readiness probe against an S3 server that accepts connections but never answers."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from socle.app import create_service

from conftest import S3Server

pytestmark = pytest.mark.integration


@contextmanager
def _stalled_server() -> Iterator[str]:
    """A port whose connections the kernel completes but no one ever reads: a stalled S3 process, a paused
    machine, a load balancer in front of a dead server."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()  # the waiting connections are reset: a request still hanging ends here


def _readyz() -> tuple[threading.Thread, list[Response]]:
    answers: list[Response] = []
    client = TestClient(create_service("ged"))
    thread = threading.Thread(target=lambda: answers.append(client.get("/readyz")), daemon=True)
    thread.start()
    return thread, answers


def test_readyz_says_503_when_s3_never_answers(
    s3_server: S3Server, use_env: Callable[..., None], tmp_path: Path
) -> None:
    use_env(**s3_server.env(f"socle{uuid.uuid4().hex[:10]}"), SOCLE_S3_CONNECT_TIMEOUT="1")
    thread, answers = _readyz()
    thread.join(120)
    assert answers and answers[0].status_code == 200, answers and answers[0].text  # the real server, probed

    with _stalled_server() as endpoint:
        use_env(SOCLE_S3_ENDPOINT=endpoint)
        thread, answers = _readyz()
        # Each attempt waited for the 5-minute read timeout, four attempts: /readyz hung for 20 minutes.
        thread.join(120)
        assert not thread.is_alive(), "/readyz still waits for a server that never answers"

    answer = answers[0]
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["checks"] == {"database": "ok", "storage": "indisponible", "queue": "ok"}
