"""Redis out of reach on the production stack: the operator's commands stay French, the jobs are not lost."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from socle import queue
from socle.db import transaction
from socle.models import Job

from conftest import socle_command

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_jobs_retry_without_redis_prints_no_trace_and_loses_nothing(
    own_postgres_url: str, redis_url: str, use_env: Callable[..., None], tmp_path: Path
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}-"
    env = {
        "SOCLE_DATA_DIR": str(tmp_path / "data"),
        "SOCLE_DATABASE_URL": own_postgres_url,
        "SOCLE_REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0",
        "SOCLE_QUEUE_PREFIX": prefix,
    }
    migrated = socle_command("migrate", env=env)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    use_env(**env)
    with transaction() as session:
        job = Job(
            service="ged",
            function="ged.jobs.purge_trash",
            arguments={"tenant_id": str(uuid.uuid4())},
            status=queue.FAILED,
            attempts=5,
            max_attempts=5,
        )
        session.add(job)
        session.flush()
        job_id = job.id

    retried = socle_command("jobs", "retry", job_id, env=env)

    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert f"Tâche {job_id} relancée" in retried.stdout
    assert "Traceback" not in retried.stderr  # was a 60-line redis trace under the French sentence

    # Redis back: the sweeper pushes the job the retry left pending.
    use_env(SOCLE_REDIS_URL=redis_url)
    try:
        assert queue.sweep(["ged"]) == 1
        with transaction() as session:
            assert session.get(Job, job_id).status == queue.QUEUED  # type: ignore[union-attr]
    finally:
        queue.rq_queue("ged").empty()
