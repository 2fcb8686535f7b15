"""A ``socle worker`` killed with SIGKILL (kill -9, the kernel's out-of-memory killer) on PostgreSQL and Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import ROOT, socle_command

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie no one has reaped yet does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _sweeper_of(worker: subprocess.Popen[bytes], log: Path) -> int:
    """The sweeper process the worker spawns beside itself, once it is there."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for child in _children(worker.pid):
            if b"multiprocessing.spawn" in Path(f"/proc/{child}/cmdline").read_bytes():
                return child
        assert worker.poll() is None, log.read_text(errors="replace")
        time.sleep(0.2)
    raise AssertionError("the worker started no sweeper")


def test_the_sweeper_does_not_outlive_its_killed_worker(own_postgres_url: str, redis_url: str, tmp_path: Path) -> None:
    env = {
        "SOCLE_DATA_DIR": str(tmp_path / "data"),
        "SOCLE_DATABASE_URL": own_postgres_url,
        "SOCLE_REDIS_URL": redis_url,
        "SOCLE_QUEUE_PREFIX": f"test-{uuid.uuid4().hex[:8]}-",
    }
    migrated = socle_command("migrate", env=env)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    log_path = tmp_path / "worker.log"
    log = log_path.open("wb")  # a pipe nobody reads would block a talkative worker
    worker = subprocess.Popen(
        [sys.executable, "-m", "socle", "worker", "interop"],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    sweeper = None
    try:
        sweeper = _sweeper_of(worker, log_path)

        worker.send_signal(signal.SIGKILL)  # no `finally`, no atexit: what systemd sees after an OOM kill
        worker.wait()

        # Left alone, the orphan swept forever, and a restarted worker added a second one each time.
        deadline = time.monotonic() + 60
        while _alive(sweeper) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(sweeper), "the sweeper of a killed worker is still running"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        if sweeper is not None and _alive(sweeper):
            os.kill(sweeper, signal.SIGKILL)
        log.close()
