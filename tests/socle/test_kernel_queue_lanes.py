"""Queue lanes and batched pushes, on Redis: slow jobs wait in a lane of their own and a worker takes the quick
ones first; a worker without fork (``socle worker --no-fork``) runs them with the same guarantees."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from socle import messages, queue
from socle.db import new_session, transaction
from socle.migrating import upgrade_all
from socle.models import Job

from conftest import socle_command


@pytest.fixture
def on_redis(own_postgres_url: str, redis_url: str, use_env: Callable[..., None]) -> Iterator[dict[str, str]]:
    """PostgreSQL (a schema of its own, migrated) and Redis with a prefix of its own, for this test only."""
    env = {
        "SOCLE_DATABASE_URL": own_postgres_url.replace("postgresql://", "postgresql+psycopg://"),
        "SOCLE_REDIS_URL": redis_url,
        "SOCLE_QUEUE_PREFIX": f"test-{uuid.uuid4().hex[:8]}-",
    }
    use_env(**env)
    upgrade_all()
    yield env
    from redis import Redis

    connection = Redis.from_url(redis_url)
    for name in connection.scan_iter(f"rq:*{env['SOCLE_QUEUE_PREFIX']}*"):
        connection.delete(name)


def _ask(session: Any, message: messages.Message) -> str:
    """A job for a document that does not exist: the GED answers or skips it at once."""
    arguments: dict[str, Any] = {"tenant_id": str(uuid.uuid4()), "document_id": str(uuid.uuid4())}
    if "folder_id" in message.parameters:
        arguments["folder_id"] = str(uuid.uuid4())
    if "version" in message.parameters:
        arguments["version"] = 1
    if "username" in message.parameters:
        arguments["username"] = "agent"
    return queue.enqueue(session, message, **arguments).id


def _job(job_id: str) -> Job:
    with new_session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def test_lanes_come_from_the_messages_and_are_served_after_the_main_queues(redis_url: str) -> None:
    assert messages.GED_MAKE_PDFA.lane == "renditions" and messages.GED_EXTRACT_TEXT.lane is None
    assert queue.lanes("ged") == ["renditions"]
    from redis import Redis

    names = [q.name for q in queue.worker_queues(["ged", "archive"], Redis.from_url(redis_url))]
    prefix = queue.get_settings().queue_prefix
    assert names[:2] == [prefix + "ged", prefix + "archive"]  # every main queue before any lane
    assert prefix + "ged.renditions" in names[2:]


def test_jobs_committed_together_are_pushed_to_their_queues_in_one_round(on_redis: dict[str, str]) -> None:
    with transaction() as session:
        slow = [_ask(session, messages.GED_MAKE_PREVIEW) for _ in range(3)]
        quick = _ask(session, messages.GED_SEND_TO_PARAPHEUR)
    assert queue.rq_queue("ged").job_ids == [f"{quick}_1"]
    assert sorted(queue.rq_queue("ged", lane="renditions").job_ids) == sorted(f"{job_id}_1" for job_id in slow)
    assert {_job(job_id).status for job_id in [*slow, quick]} == {queue.QUEUED}
    assert queue.dispatch([*slow, quick]) == 0  # already on their way: not pushed twice


def test_a_worker_without_fork_runs_the_quick_jobs_first(on_redis: dict[str, str]) -> None:
    with transaction() as session:
        slow = _ask(session, messages.GED_MAKE_PDFA)  # asked first
    with transaction() as session:
        quick = _ask(session, messages.GED_SEND_TO_PARAPHEUR)

    result = socle_command("worker", "ged", "--burst", "--no-fork", env=on_redis, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    slow_job, quick_job = _job(slow), _job(quick)
    assert (slow_job.status, slow_job.attempts) == (queue.DONE, 1)
    assert (quick_job.status, quick_job.attempts) == (queue.DONE, 1)
    assert quick_job.started_at is not None and slow_job.started_at is not None
    assert quick_job.started_at < slow_job.started_at
    with new_session() as session:  # the GED answered the parapheur: « document unavailable »
        answer = session.execute(select(Job).where(Job.key == f"parapheur.attach:{quick_job.arguments['folder_id']}"))
        assert answer.scalar_one().function == "parapheur.jobs.document_unavailable"


def test_a_worker_refuses_an_unknown_lane(redis_url: str) -> None:
    result = socle_command("worker", "ged", "--lane", "rendus", env={"SOCLE_REDIS_URL": redis_url})

    assert result.returncode == 1
    assert "file(s) inconnue(s) : rendus (attendu : main, renditions)" in result.stderr
    assert "Traceback" not in result.stderr


def test_enqueue_all_asks_once_per_key(make_kit: Callable[..., Any]) -> None:
    tenant_id = make_kit(with_identity=False).tenant_id
    key = f"test.lanes:{uuid.uuid4()}"
    arguments: dict[str, Any] = {"tenant_id": tenant_id, "document_id": str(uuid.uuid4()), "version": 1}
    with transaction() as session:
        first, again, other = queue.enqueue_all(
            session,
            [
                (messages.GED_MAKE_PREVIEW, key, arguments),
                (messages.GED_MAKE_PREVIEW, key, arguments),  # the same key twice in one call
                (messages.GED_MAKE_PDFA, None, arguments),
            ],
        )
        assert first is again and other is not first
    with transaction() as session:  # asked again later: the first job comes back, nothing new
        (later,) = queue.enqueue_all(session, [(messages.GED_MAKE_PREVIEW, key, arguments)])
        assert later.id == first.id
        assert session.execute(select(Job).where(Job.key == key)).scalars().all() == [later]
    with pytest.raises(TypeError), transaction() as session:
        queue.enqueue_all(session, [(messages.GED_MAKE_PDFA, None, {"tenant_id": tenant_id})])
    queue.wait_until_idle(60, work_inline=True)  # the asked jobs run (their document does not exist: nothing)
