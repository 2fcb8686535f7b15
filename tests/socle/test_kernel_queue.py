"""The job queue (embedded mode, jobs run inline): transactional enqueue, once-only runs, retries, crash recovery.

The kernel only runs ``<service>.jobs`` functions named by a message, so these tests drive real messages of
the services, picked for the kernel behaviour they show.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from parapheur_kit import Standard
from sqlalchemy import delete, func, select, update

from socle import messages, queue
from socle.db import new_session, transaction, utcnow
from socle.errors import Conflict, InvalidInput, NotFound
from socle.models import AuditEntry, Job
from socle.settings import get_settings
from socle.storage import get_store

from conftest import ROOT, Kit, make_pdf, run_jobs, socle_command, upload_document


def _job(job_id: str) -> Job:
    with new_session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def _job_by_key(key: str) -> Job:
    with new_session() as session:
        return session.execute(select(Job).where(Job.key == key)).scalar_one()


def _rq_ids(service: str) -> list[str]:
    return list(queue.rq_queue(service).job_ids)


def _ask_document(
    session: Any, tenant_id: str, *, key: str | None = None, folder_id: str | None = None, not_before: Any = None
) -> Job:
    """GED_SEND_TO_PARAPHEUR for a document that does not exist: the GED answers « unavailable »."""
    return queue.enqueue(
        session,
        messages.GED_SEND_TO_PARAPHEUR,
        key=key,
        not_before=not_before,
        tenant_id=tenant_id,
        document_id=str(uuid.uuid4()),
        folder_id=folder_id or str(uuid.uuid4()),
        username="agent",
    )


@pytest.fixture
def tenant_id(make_kit: Callable[..., Kit]) -> str:
    return make_kit(with_identity=False).tenant_id


# ---------------------------------------------------------------------------------------------------------
# Enqueue is part of the caller's transaction


def test_a_rolled_back_transaction_sends_nothing(tenant_id: str) -> None:
    with pytest.raises(RuntimeError), transaction() as session:
        job_id = _ask_document(session, tenant_id).id
        raise RuntimeError("le changement échoue")
    with new_session() as session:
        assert session.get(Job, job_id) is None
    queue.sweep(["ged"])
    assert not [rq_id for rq_id in _rq_ids("ged") if rq_id.startswith(job_id)]


def test_a_committed_job_is_pushed_by_the_sweep_then_runs(tenant_id: str) -> None:
    folder_id = str(uuid.uuid4())
    with transaction() as session:
        job = _ask_document(session, tenant_id, folder_id=folder_id)
        assert job.status == queue.PENDING and job.function == messages.GED_SEND_TO_PARAPHEUR.function
        assert job.service == "ged" and job.tenant_id == tenant_id
    # Embedded mode: the row waits for the worker's sweep (the in-memory queue may live in another process).
    assert _job(job.id).status == queue.PENDING
    assert queue.sweep(["ged"]) >= 1
    pushed = _job(job.id)
    assert pushed.status == queue.QUEUED and pushed.attempts == 0
    assert _rq_ids("ged").count(f"{job.id}_1") == 1

    run_jobs()
    done = _job(job.id)
    assert (done.status, done.attempts, done.last_error) == (queue.DONE, 1, None)
    assert done.started_at is not None and done.finished_at is not None

    # Its effect: the GED's answer, which fails at once (a refusal, 4xx, is never retried: the folder is unknown).
    reply = _job_by_key(f"parapheur.attach:{folder_id}")
    assert reply.function == messages.PARAPHEUR_DOCUMENT_UNAVAILABLE.function
    assert reply.status == queue.FAILED and reply.attempts == 1
    assert "NotFound" in (reply.last_error or "")


def test_a_job_asked_for_later_waits_until_it_is_due(
    tenant_id: str, redis_url: str, use_env: Callable[..., None]
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}-"
    use_env(SOCLE_REDIS_URL=redis_url, SOCLE_QUEUE_PREFIX=prefix)
    later = utcnow() + timedelta(hours=1)
    with transaction() as session:
        job_id = _ask_document(session, tenant_id, not_before=later).id
    try:
        waiting = _job(job_id)
        assert (waiting.status, waiting.next_run_at) == (queue.PENDING, later)  # not pushed at commit
        assert queue.rq_queue("ged").count == 0
        assert queue.dispatch([job_id]) == 0  # nor by anyone before it is due
        assert queue.sweep(["ged"]) == 0
        with transaction() as session:
            session.execute(update(Job).where(Job.id == job_id).values(next_run_at=utcnow() - timedelta(seconds=1)))
        assert queue.sweep(["ged"]) == 1
        assert _job(job_id).status == queue.QUEUED and queue.rq_queue("ged").job_ids == [f"{job_id}_1"]
    finally:
        from redis import Redis

        with transaction() as session:
            session.execute(delete(Job).where(Job.id == job_id))
        connection = Redis.from_url(redis_url)
        for name in [*connection.scan_iter(f"rq:*{prefix}*"), *connection.scan_iter(f"rq:job:{job_id}*")]:
            connection.delete(name)


def test_with_redis_a_job_is_pushed_at_commit_and_only_then(
    tenant_id: str, redis_url: str, use_env: Callable[..., None]
) -> None:
    from redis import Redis

    prefix = f"test-{uuid.uuid4().hex[:8]}-"
    use_env(SOCLE_REDIS_URL=redis_url, SOCLE_QUEUE_PREFIX=prefix)
    created: list[str] = []
    try:
        with pytest.raises(RuntimeError), transaction() as session:
            created.append(_ask_document(session, tenant_id).id)
            raise RuntimeError("le changement échoue")
        assert queue.rq_queue("ged").count == 0

        with transaction() as session:
            job = _ask_document(session, tenant_id)
            created.append(job.id)
            assert queue.rq_queue("ged").count == 0  # nothing leaves before the commit
        assert _job(job.id).status == queue.QUEUED
        assert queue.rq_queue("ged").job_ids == [f"{job.id}_1"]
        assert queue.rq_queue("ged").name == prefix + "ged"
    finally:
        with transaction() as session:  # these rows live in that Redis only: the embedded tests must not wait on them
            session.execute(delete(Job).where(Job.id.in_(created)))
        connection = Redis.from_url(redis_url)
        for name in connection.scan_iter(f"rq:*{prefix}*"):
            connection.delete(name)
        for job_id in created:
            for name in connection.scan_iter(f"rq:job:{job_id}*"):
                connection.delete(name)


def test_jobs_queued_in_a_lost_queue_are_pushed_again(tenant_id: str) -> None:
    with transaction() as session:
        lost = _ask_document(session, tenant_id).id
    with transaction() as session:  # marked queued long ago, but the queue that held it is gone
        session.execute(
            update(Job).where(Job.id == lost).values(status=queue.QUEUED, next_run_at=utcnow() - timedelta(hours=1))
        )
    queue.sweep(["ged"])
    assert _job(lost).status == queue.QUEUED
    assert _rq_ids("ged").count(f"{lost}_1") == 1
    queue.sweep(["ged"])  # still known to rq: not pushed twice
    assert _rq_ids("ged").count(f"{lost}_1") == 1
    run_jobs()
    assert _job(lost).status == queue.DONE

    # A new embedded worker takes over what a previous process had queued in its memory.
    with transaction() as session:
        orphan = _ask_document(session, tenant_id).id
    queue.sweep(["ged"])
    assert _job(orphan).status == queue.QUEUED
    assert queue.requeue_orphans() >= 1
    assert _job(orphan).status == queue.PENDING
    run_jobs()
    assert (_job(orphan).status, _job(orphan).attempts) == (queue.DONE, 1)


def test_the_same_key_makes_one_job(tenant_id: str) -> None:
    key = f"test.kernel:{uuid.uuid4()}"
    with transaction() as session:
        first = _ask_document(session, tenant_id, key=key)
    with transaction() as session:
        second = _ask_document(session, tenant_id, key=key)
        again = _ask_document(session, tenant_id, key=key)
    assert first.id == second.id == again.id
    assert second.arguments == first.arguments  # the first request's arguments are kept
    with new_session() as session:
        assert session.execute(select(func.count()).select_from(Job).where(Job.key == key)).scalar_one() == 1


def test_enqueue_checks_the_argument_names(tenant_id: str) -> None:
    with new_session() as session:
        with pytest.raises(TypeError, match="folder_id"):
            queue.enqueue(session, messages.GED_SEND_TO_PARAPHEUR, tenant_id=tenant_id, document_id="d")
        with pytest.raises(TypeError, match="extra"):
            queue.enqueue(
                session,
                messages.GED_SEND_TO_PARAPHEUR,
                tenant_id=tenant_id,
                document_id="d",
                folder_id="f",
                extra=1,
            )
        assert not session.new


# ---------------------------------------------------------------------------------------------------------
# Running


def test_a_job_executed_twice_runs_once(tenant_id: str) -> None:
    folder_id = str(uuid.uuid4())
    with transaction() as session:
        job_id = _ask_document(session, tenant_id, folder_id=folder_id).id
    assert queue.execute(job_id) == "done"
    assert queue.execute(job_id) == "skipped"
    assert _job(job_id).attempts == 1  # the second call did not even claim it
    with new_session() as session:
        replies = session.execute(select(Job).where(Job.arguments["folder_id"].as_string() == folder_id)).scalars()
        assert sorted(job.function for job in replies) == sorted(
            [messages.GED_SEND_TO_PARAPHEUR.function, messages.PARAPHEUR_DOCUMENT_UNAVAILABLE.function]
        )
    run_jobs()  # the copy still in rq is skipped too
    assert _job(job_id).attempts == 1


def test_resolve_accepts_only_service_job_functions() -> None:
    import ged.jobs

    assert queue._resolve("ged.jobs.send_to_parapheur") is ged.jobs.send_to_parapheur
    for function in (
        "os.system",
        "socle.queue.execute",
        "ged.service.create_document",
        "builtins.eval",
        "ged.jobs",
        "evil.jobs.run",
        "ged.jobs.enqueue",  # imported into a jobs module, but not a job of it
        "ged.jobs.transaction",
        "ged.jobs.service",
        "ged.jobs._export",  # a private helper
        "ged.jobs.no_such_job",
    ):
        with pytest.raises(InvalidInput):
            queue._resolve(function)


def test_backoff_follows_the_settings_and_repeats_the_last_step(use_env: Callable[..., None]) -> None:
    use_env(SOCLE_JOB_BACKOFF="10,60")
    for attempt, base in ((1, 10), (2, 60), (3, 60), (9, 60)):
        wait = queue.backoff(attempt).total_seconds()
        assert base * 0.9 <= wait <= base * 1.1


# ---------------------------------------------------------------------------------------------------------
# Transient failures are retried, then shown to the operator


def _blocked_delivery(kit: Kit) -> tuple[str, Path, bytes]:
    """An INTEROP_DELIVER job whose deposit folder is a file: an OSError, which a retry might cure."""
    created = kit["admin"].post("/interop/connectors", json={"name": "sae", "kind": "depot", "config": {"path": "sae"}})
    assert created.status_code == 201, created.text
    folder = get_settings().effective_deposit_root / kit.slug / "sae"
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_bytes(b"un fichier a la place du dossier")
    content = os.urandom(2048)
    stored = get_store().put(io.BytesIO(content))
    with transaction() as session:
        job = queue.enqueue(
            session,
            messages.INTEROP_DELIVER,
            tenant_id=kit.tenant_id,
            connector="sae",
            object_key=stored.key,
            size=stored.size,
            filename="paquet.zip",
            idempotency_key=f"test:{uuid.uuid4()}",
            reply={
                "success": messages.ARCHIVE_RECORD_DELIVERY.function,
                "failure": messages.ARCHIVE_DELIVERY_FAILED.function,
                "arguments": {"tenant_id": kit.tenant_id, "transfer_id": str(uuid.uuid4())},
            },
        )
    return job.id, folder, content


def test_a_transient_failure_is_retried_then_failed_and_can_be_retried(make_kit: Callable[..., Kit]) -> None:
    kit = make_kit(with_identity=False)
    job_id, folder, content = _blocked_delivery(kit)
    run_jobs()
    failed = _job(job_id)
    assert failed.status == queue.FAILED
    assert failed.attempts == failed.max_attempts == get_settings().job_max_attempts == 3
    assert "FileExistsError" in (failed.last_error or "") and failed.finished_at is not None

    listed = socle_command("jobs", timeout=120)
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if line.startswith(job_id))
    assert "failed" in line and "essais 3/3" in line and "interop.jobs.deliver" in line
    shown = socle_command("jobs", "show", job_id, timeout=120)
    assert shown.returncode == 0 and "FileExistsError" in shown.stdout

    folder.unlink()  # the operator repairs the cause, then asks for one more run
    retried = socle_command("jobs", "retry", job_id, timeout=120)
    assert retried.returncode == 0, retried.stderr
    assert job_id in retried.stdout
    again = _job(job_id)
    assert (again.status, again.max_attempts, again.finished_at) == (queue.PENDING, 4, None)

    run_jobs()
    done = _job(job_id)
    assert (done.status, done.attempts) == (queue.DONE, 4)
    assert (folder / "paquet.zip").read_bytes() == content

    assert socle_command("jobs", "retry", job_id, timeout=120).returncode == 1  # already done: refused


def test_retry_refuses_unknown_finished_and_running_jobs(tenant_id: str) -> None:
    with transaction() as session:
        job_id = _ask_document(session, tenant_id).id
        running_id = _ask_document(session, tenant_id).id
    assert queue.execute(job_id) == "done"
    with transaction() as session, pytest.raises(Conflict):
        queue.retry(session, job_id)
    # A job still running within its time limit must not get a second, concurrent run.
    with transaction() as session:
        session.execute(update(Job).where(Job.id == running_id).values(status="running", started_at=utcnow()))
    with transaction() as session, pytest.raises(Conflict):
        queue.retry(session, running_id)
    with transaction() as session:  # leave no running job behind: later tests wait for an idle queue
        session.execute(update(Job).where(Job.id == running_id).values(status="failed"))
    with transaction() as session, pytest.raises(NotFound):
        queue.retry(session, str(uuid.uuid4()))
    result = socle_command("jobs", "retry", "inconnue", timeout=120)
    assert result.returncode == 1 and "introuvable" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------------------------
# A worker killed in the middle of a job


_KILLED_WORKER = textwrap.dedent(
    """
    import os, sys
    import socle.audit

    original = socle.audit.record

    def record(session, **entry):
        if entry["action"] == "ged.version.created":
            os._exit(9)  # the worker dies inside the job's transaction
        return original(session, **entry)

    socle.audit.record = record
    from socle.queue import execute
    execute(sys.argv[1])
    """
)


def _versions(kit: Kit, document_id: str) -> list[dict[str, Any]]:
    response = kit["agent"].get(f"/ged/documents/{document_id}/versions")
    assert response.status_code == 200, response.text
    return list(response.json())


def test_a_job_interrupted_by_a_dead_worker_runs_again_once(kit: Kit) -> None:
    document = upload_document(kit["agent"], make_pdf("Arrêté à signer"))
    folder = kit["agent"].post(
        "/parapheur/folders",
        json={
            "title": "Arrêté",
            "ged_document_id": document["id"],
            "subtype_id": Standard(kit).sign_only,
            "send": True,
        },
    )
    assert folder.status_code == 202, folder.text
    folder_id = folder.json()["id"]
    run_jobs()
    signed = kit["maire"].post(f"/parapheur/folders/{folder_id}/sign", json={})
    assert signed.status_code == 200 and signed.json()["status"] == "completed", signed.text
    job = _job_by_key(f"ged.signed:{folder_id}")
    assert job.function == messages.GED_STORE_SIGNED_VERSION.function and job.status == queue.PENDING

    worker = subprocess.run(
        [sys.executable, "-c", _KILLED_WORKER, job.id],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=dict(os.environ),
    )
    assert worker.returncode == 9, worker.stderr
    assert len(_versions(kit, document["id"])) == 1  # the job's transaction died with it
    crashed = _job(job.id)
    assert (crashed.status, crashed.attempts) == (queue.RUNNING, 1)

    with transaction() as session:  # as if the job timeout had long passed
        session.execute(update(Job).where(Job.id == job.id).values(started_at=utcnow() - timedelta(hours=2)))
    listed = socle_command("jobs", timeout=120)
    assert any(line.startswith(job.id) and "bloquée" in line for line in listed.stdout.splitlines()), listed.stdout

    assert queue.sweep(["ged"]) >= 1
    swept = _job(job.id)
    assert swept.status in (queue.PENDING, queue.QUEUED)
    assert "interrompue" in (swept.last_error or "")

    run_jobs()
    versions = _versions(kit, document["id"])
    assert [version["number"] for version in versions] == [1, 2]
    assert _job(job.id).status == queue.DONE

    # Running it again, through the queue or the job function itself, adds nothing.
    assert queue.execute(job.id) == "skipped"
    import ged.jobs

    ged.jobs.store_signed_version(**_job(job.id).arguments)
    assert len(_versions(kit, document["id"])) == 2
    with new_session() as session:
        created = session.execute(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.object_id == document["id"], AuditEntry.action == "ged.version.created")
        ).scalar_one()
    assert created == 1


def test_a_stuck_job_out_of_attempts_fails(tenant_id: str) -> None:
    with transaction() as session:
        job_id = _ask_document(session, tenant_id).id
    with transaction() as session:  # its last attempt started long ago and never ended
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(status=queue.RUNNING, attempts=3, max_attempts=3, started_at=utcnow() - timedelta(hours=2))
        )
    queue.sweep(["ged"])
    failed = _job(job_id)
    assert failed.status == queue.FAILED and "interrompue" in (failed.last_error or "")
