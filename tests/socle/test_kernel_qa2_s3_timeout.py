"""A frozen S3 server holds a request (and the API thread serving it) a minute per attempt, not five."""

from __future__ import annotations

from collections.abc import Callable

from socle.settings import get_settings
from socle.storage.s3 import client_for


def _timeouts(probe: bool = False) -> tuple[float | None, float | None]:
    timeout = client_for(get_settings(), probe=probe)._http.connection_pool_kw["timeout"]
    return timeout.connect_timeout, timeout.read_timeout


def test_the_read_timeout_is_a_minute(use_env: Callable[..., None]) -> None:
    use_env(
        SOCLE_STORAGE_BACKEND="s3",
        SOCLE_S3_ENDPOINT="127.0.0.1:9",
        SOCLE_S3_ACCESS_KEY="cle",
        SOCLE_S3_SECRET_KEY="secret-de-test",
        SOCLE_S3_SECURE="false",
        SOCLE_S3_CONNECT_TIMEOUT="7",
    )
    # Per read from the socket, not per transfer (urllib3): a long download that keeps moving is not cut.
    assert _timeouts() == (7, 60)
    assert _timeouts(probe=True) == (7, 7)  # the readiness probe answers within its connect timeout
