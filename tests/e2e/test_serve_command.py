"""`socle serve`: one service alone, or the four together, as real HTTP servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import ROOT


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "SOCLE_DATA_DIR": str(tmp_path / "data")}
    process = subprocess.Popen(
        [sys.executable, "-m", "socle", "serve", *args, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"socle serve s'est arrêté : {process.stderr.read().decode() if process.stderr else ''}")
        try:
            httpx.get(f"{base}/healthz", timeout=1)
            return process, base
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    pytest.fail("socle serve n'a pas répondu en 30 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=30)


def test_one_service_alone(tmp_path: Path) -> None:
    process, base = _serve(tmp_path, "ged")
    try:
        assert httpx.get(f"{base}/readyz").json()["checks"] == {"database": "ok", "storage": "ok", "queue": "ok"}
        paths = httpx.get(f"{base}/openapi.json").json()["paths"]
        assert "/documents" in paths and not any(path.startswith("/folders") for path in paths)
        unauthenticated = httpx.get(f"{base}/documents")
        assert unauthenticated.status_code == 401
        assert unauthenticated.headers["content-type"] == "application/problem+json"
    finally:
        _stop(process)


def test_the_four_services_together(tmp_path: Path) -> None:
    process, base = _serve(tmp_path)
    try:
        for service in ("parapheur", "ged", "archive", "interop"):
            assert httpx.get(f"{base}/{service}/readyz").status_code == 200
            assert (
                httpx.get(f"{base}/{service}/openapi.json")
                .json()["info"]["title"]
                .endswith(
                    {"parapheur": "parapheur", "ged": "GED", "archive": "archives", "interop": "interopérabilité"}[
                        service
                    ]
                )
            )
    finally:
        _stop(process)


def test_the_access_log_never_shows_an_external_signers_secret(tmp_path: Path) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "socle", "serve", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "SOCLE_DATA_DIR": str(tmp_path / "data")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base, secret = f"http://127.0.0.1:{port}", "SeCrEt" + "x" * 37
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert httpx.get(f"{base}/signature-externe/{secret}").status_code == 404  # no such link
        assert httpx.get(f"{base}/parapheur/external/{secret}/documents/d").status_code == 404
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    log = output.decode(errors="replace")
    assert "GET /signature-externe/… HTTP/1.1" in log and "GET /parapheur/external/…/documents/d" in log, log
    assert secret not in log
