"""Background jobs: a table of jobs in the database, carried to the workers by rq.

Why both: rq's records expire and, in the embedded mode, live in memory; the ``jobs`` table does not, so it is
the source of truth (status, attempts, last error) and what ``socle jobs`` shows. A job row is written in the
same transaction as the change that asks for it, and pushed to rq only after that commit: a rolled-back
change sends nothing, a committed one is never lost (a sweeper pushes whatever is due and not yet sent).

Every job runs through :func:`execute`, which claims the row first: a job pushed twice runs once, and job
functions are written so that running one again after a crash has the effect of once.

Each service has a main rq queue and, for its slow jobs (a message's ``lane``), queues of their own that a
worker serves only when the main ones are empty: a quick job never waits behind a backlog of slow ones.

Embedded mode (no ``SOCLE_REDIS_URL``): an in-memory Redis (fakeredis) and a worker thread in the same
process. With Redis: ``socle worker <service>`` processes, one rq work horse (fork) per job, or with
``--no-fork`` every job in the worker process itself (connections and caches kept from one job to the next).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import multiprocessing
import os
import random
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis import Redis, RedisError
from rq import Queue, SimpleWorker, Worker
from rq.job import Job as RqJob
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty
from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session

from socle import messages
from socle.db import new_session, transaction, utcnow
from socle.errors import Conflict, InvalidInput, NotFound, SocleError
from socle.messages import Message
from socle.models import Job
from socle.settings import SERVICES, get_settings

log = logging.getLogger("socle.queue")

PENDING, QUEUED, RUNNING, DONE, FAILED = "pending", "queued", "running", "done", "failed"
_PENDING_IDS = "socle_pending_job_ids"
_STUCK_GRACE = timedelta(seconds=60)
_LOST_AFTER = timedelta(minutes=5)

# ---------------------------------------------------------------------------------------------------------
# Connections


_embedded_server: Any = None
_wake = threading.Event()


_clients: dict[str, Redis] = {}


def get_redis() -> Redis:
    settings = get_settings()
    if settings.redis_url:
        # One client (and its connection pool) per URL, not one per commit; redis-py is fork-aware.
        if settings.redis_url not in _clients:
            _clients[settings.redis_url] = Redis.from_url(settings.redis_url)
        return _clients[settings.redis_url]
    import fakeredis

    global _embedded_server
    if _embedded_server is None:
        _embedded_server = fakeredis.FakeServer()
    return fakeredis.FakeRedis(server=_embedded_server)


def rq_queue(service: str, connection: Redis | None = None, lane: str | None = None) -> Queue:
    """The rq queue of a service, or of one of its lanes (``<service>.<lane>``)."""
    return Queue(
        get_settings().queue_prefix + service + (f".{lane}" if lane else ""),
        connection=connection or get_redis(),
        serializer=JSONSerializer,
    )


def lanes(service: str) -> list[str]:
    """The slow lanes of a service, from its messages, in a stable order."""
    return sorted({m.lane for m in messages.ALL if m.service == service and m.lane is not None})


MAIN = "main"  # the name a worker is given for its services' main queues (``socle worker --lane main``)


def worker_queues(services: Iterable[str], connection: Redis, only: Iterable[str] | None = None) -> list[Queue]:
    """What a worker listens to, by priority: every service's main queue, then their lanes; ``only`` keeps the
    named lanes (``MAIN`` for the main queues), for workers given to one kind of job."""
    services = list(services)
    kept = set(only) if only is not None else None
    queues = [rq_queue(service, connection) for service in services] if kept is None or MAIN in kept else []
    for service in services:
        queues += [rq_queue(service, connection, lane) for lane in lanes(service) if kept is None or lane in kept]
    return queues


def _lane_of(function: str) -> str | None:
    message = messages.BY_FUNCTION.get(function)
    return message.lane if message is not None else None


# ---------------------------------------------------------------------------------------------------------
# Producing


def enqueue(
    session: Session, message: Message, *, key: str | None = None, not_before: datetime | None = None, **arguments: Any
) -> Job:
    """Ask for ``message`` to run, in the caller's transaction; it is pushed to rq once that commits.

    ``key`` is a business key (for example ``"ged.signed:<folder id>"``): asking twice with the same key
    returns the first job instead of creating a second one. ``not_before`` delays it: the sweeper pushes it
    once it is due.
    """
    return enqueue_all(session, [(message, key, arguments)], not_before=not_before)[0]


def enqueue_all(
    session: Session,
    asked: Sequence[tuple[Message, str | None, dict[str, Any]]],
    *,
    not_before: datetime | None = None,
) -> list[Job]:
    """:func:`enqueue` for several jobs at once (message, key, arguments): one query for their keys, one
    flush, as a new document's renditions are asked for on every upload."""
    for message, _key, arguments in asked:
        expected, given = set(message.parameters), set(arguments)
        if expected != given:
            raise TypeError(f"{message.function}: expected {sorted(expected)}, got {sorted(given)}")
    keys = [key for _message, key, _arguments in asked if key is not None]
    existing: dict[str | None, Job] = {}
    if keys:
        existing = {job.key: job for job in session.execute(select(Job).where(Job.key.in_(keys))).scalars()}
    now = utcnow()
    jobs: list[Job] = []
    created: list[Job] = []
    for message, key, arguments in asked:
        if key is not None and key in existing:
            jobs.append(existing[key])
            continue
        job = Job(
            service=message.service,
            function=message.function,
            arguments=arguments,
            tenant_id=arguments.get("tenant_id"),
            key=key,
            status=PENDING,
            max_attempts=get_settings().job_max_attempts,
            next_run_at=max(not_before, now) if not_before else now,
        )
        if key is not None:
            existing[key] = job  # the same key twice in one call: one job
        jobs.append(job)
        created.append(job)
    if not created:
        return jobs
    session.add_all(created)
    session.flush()
    if not_before is None or not_before <= now:
        session.info.setdefault(_PENDING_IDS, []).extend(job.id for job in created)
    return jobs


def _after_commit(session: Session) -> None:
    ids = session.info.pop(_PENDING_IDS, None)
    if not ids:
        return
    if get_settings().embedded_queue:
        # The in-memory queue lives in the process that runs the embedded worker, perhaps not this one
        # (``socle jobs retry`` beside ``socle serve``): the rows stay pending and that worker's sweep takes them.
        _wake.set()
    else:
        dispatch(ids)


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING_IDS, None)


# Registered once for every session: jobs leave only with the transaction that created them.
event.listen(Session, "after_commit", _after_commit)
event.listen(Session, "after_soft_rollback", lambda session, _tx: _after_rollback(session))


# Pushed to rq per round: one Redis pipeline and one UPDATE for the lot, not a round trip per job.
_DISPATCH_BATCH = 500


def dispatch(job_ids: Iterable[str]) -> int:
    """Push pending jobs to rq. A failure here loses nothing: the rows stay pending for the sweeper."""
    sent = 0
    ids = list(job_ids)
    try:
        connection = get_redis()
        for start in range(0, len(ids), _DISPATCH_BATCH):
            sent += _dispatch_batch(connection, ids[start : start + _DISPATCH_BATCH])
    except RedisError as exc:
        # Redis restarting or out of reach is expected to pass: one line, not a trace after every commit (and
        # none on the terminal of `socle jobs retry`, whose errors are French sentences without traces).
        log.warning("queue unreachable, jobs left pending for the sweeper: %s", exc)
    except Exception:
        log.exception("could not push jobs to the queue; the sweeper will try again")
    if sent:
        _wake.set()
    return sent


def _dispatch_batch(connection: Redis, job_ids: list[str]) -> int:
    settings = get_settings()
    with new_session() as session:
        now = utcnow()
        due = session.execute(
            select(Job.id, Job.service, Job.function, Job.attempts).where(
                Job.id.in_(job_ids), Job.status == PENDING, Job.next_run_at <= now
            )  # others are already on their way, or not due yet (the sweeper pushes them then)
        ).all()
        if not due:
            return 0
        by_queue: dict[tuple[str, str | None], list[Any]] = {}
        for job_id, service, function, attempts in due:
            data = Queue.prepare_data(
                "socle.queue.execute",
                args=(job_id,),
                job_id=f"{job_id}_{attempts + 1}",
                timeout=settings.job_timeout,
                result_ttl=3600,
                failure_ttl=30 * 86400,
            )
            by_queue.setdefault((service, _lane_of(function)), []).append(data)
        # Push first, then mark: a crash in between only causes a second push, which execute() ignores.
        pipeline = connection.pipeline()
        for (service, lane), datas in by_queue.items():
            rq_queue(service, connection, lane).enqueue_many(datas, pipeline=pipeline)
        pipeline.execute()
        session.execute(  # next_run_at now says since when it is queued (see _recover_lost)
            update(Job)
            .where(Job.id.in_([row.id for row in due]), Job.status == PENDING)
            .values(status=QUEUED, next_run_at=utcnow())
        )
        session.commit()
        return len(due)


# ---------------------------------------------------------------------------------------------------------
# Running


@dataclass(frozen=True)
class _Claim:
    function: str
    arguments: dict[str, Any]
    attempts: int
    max_attempts: int


def execute(job_id: str) -> str:
    """Run one job (called by rq). Returns what happened: done, retry, failed or skipped."""
    claim = _claim(job_id)
    if claim is None:
        return "skipped"  # already done, running elsewhere, or given up
    try:
        _resolve(claim.function)(**claim.arguments)
    except Exception as exc:
        final = _record_failure(job_id, claim, exc)
        if final:
            raise  # rq keeps it in its failed registry too
        return "retry"
    with transaction() as session:
        session.execute(_own_run(job_id, claim).values(status=DONE, finished_at=utcnow(), last_error=None))
    return "done"


def _own_run(job_id: str, claim: _Claim) -> Any:
    """Update the row only if it is still this run's: a run declared stuck and retried meanwhile wins."""
    return update(Job).where(Job.id == job_id, Job.status == RUNNING, Job.attempts == claim.attempts)


def _claim(job_id: str) -> _Claim | None:
    with transaction() as session:
        claimed = session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                # A stale push of a job waiting for its backoff must not run it early.
                or_(Job.status == QUEUED, (Job.status == PENDING) & (Job.next_run_at <= utcnow())),
            )
            .values(status=RUNNING, attempts=Job.attempts + 1, started_at=utcnow())
            .returning(Job.function, Job.arguments, Job.attempts, Job.max_attempts)  # one round trip, not two
        ).one_or_none()
        if claimed is None:
            return None
        return _Claim(
            claimed.function, _upgraded(claimed.function, claimed.arguments), claimed.attempts, claimed.max_attempts
        )


def _upgraded(function: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A job's arguments with null for each parameter its message gained after the job was queued (an upgrade
    between the sending and the running): the function is called as its message is now, never with a missing
    argument (TypeError, a failure that no retry mends)."""
    message = messages.BY_FUNCTION.get(function)
    declared = message.parameters if message is not None else ()
    return {**dict.fromkeys(declared), **arguments}


def _resolve(function: str) -> Callable[..., Any]:
    module_name, _, name = function.rpartition(".")
    if module_name.split(".")[0] not in SERVICES or not module_name.endswith(".jobs") or name.startswith("_"):
        raise InvalidInput(f"fonction de tâche refusée : {function}")
    target = getattr(importlib.import_module(module_name), name, None)
    # Only the jobs module's own functions, not what it imports (enqueue, transaction, service…).
    if not inspect.isfunction(target) or target.__module__ != module_name:
        raise InvalidInput(f"fonction de tâche refusée : {function}")
    return target


def _record_failure(job_id: str, claim: _Claim, exc: Exception) -> bool:
    # A refusal (bad input, unknown object) will not succeed later: fail at once rather than retry for hours.
    permanent = isinstance(exc, SocleError) and exc.status < 500
    final = permanent or claim.attempts >= claim.max_attempts
    error = "".join(traceback.format_exception(exc))[-4000:]
    log.warning("job %s (%s) failed, attempt %d: %s", job_id, claim.function, claim.attempts, exc)
    values: dict[str, Any] = {"last_error": error}
    if final:
        values.update(status=FAILED, finished_at=utcnow())
    else:
        values.update(status=PENDING, next_run_at=utcnow() + backoff(claim.attempts))
    with transaction() as session:
        updated = session.execute(_own_run(job_id, claim).values(**values))
        if final and updated.rowcount == 1:  # type: ignore[attr-defined]
            _compensate(session, job_id, claim, exc)
    return final


def _compensate(session: Session, job_id: str, claim: _Claim, exc: Exception) -> None:
    """Tell the object waiting for this job that it will not come, once per failure (keyed by the failed job
    and its attempts: a job given another run by :func:`retry` that fails again is told again)."""
    message = messages.BY_FUNCTION.get(claim.function)
    # A technical error's text may hold server paths: users get the job id, operators the detail (socle jobs).
    detail = exc.detail if isinstance(exc, SocleError) else f"erreur technique (socle jobs show {job_id})"
    reason = f"échec définitif de la tâche {claim.function} après {claim.attempts} essai(s) : {detail}"[:2000]
    found = messages.failure_message(message, claim.arguments, reason) if message else None
    if found is not None:
        target, arguments = found
        enqueue(session, target, key=f"failure:{job_id}:{claim.attempts}", **arguments)


# The reason :func:`_compensate` builds, for a service that tells its users the cause in its own words.
_FAILURE_REASON = re.compile(
    r"échec définitif de la tâche [\w.]+ après (?P<attempts>\d+) essai\(s\) : (?P<detail>.*)", re.DOTALL
)


def failure_detail(reason: str) -> str:
    """The cause in a failure reason sent by the kernel (what the job's error said, or « erreur technique
    (socle jobs show <id>) »), without the job's code name; any other text as it is."""
    found = _FAILURE_REASON.fullmatch(reason)
    return found.group("detail") if found else reason


def failure_attempts(reason: str) -> int | None:
    """How many runs the failed job had, from a failure reason sent by the kernel: it tells one definitive
    failure of a job from the next after a :func:`retry` (the notice is keyed the same way); None for any other
    text."""
    found = _FAILURE_REASON.fullmatch(reason)
    return int(found.group("attempts")) if found else None


def backoff(attempt: int) -> timedelta:
    """Wait before the next attempt; jitter spreads the retries of many jobs that failed together."""
    steps = get_settings().job_backoff
    base = steps[min(attempt - 1, len(steps) - 1)]
    return timedelta(seconds=base * random.uniform(0.9, 1.1))


def sweep(services: Iterable[str] = SERVICES) -> int:
    """Push the jobs that are due; put back jobs whose worker died. Returns how many were pushed."""
    now = utcnow()
    services = list(services)
    stuck_before = _stuck_before()
    with transaction() as session:
        stuck = session.execute(
            select(Job).where(Job.service.in_(services), Job.status == RUNNING, Job.started_at < stuck_before)
        ).scalars()
        for job in stuck:
            log.warning("job %s (%s) interrupted, its worker died", job.id, job.function)
            job.last_error = "tâche interrompue : le worker s'est arrêté pendant l'exécution"
            if job.attempts >= job.max_attempts:
                job.status, job.finished_at = FAILED, now
                claim = _Claim(job.function, dict(job.arguments), job.attempts, job.max_attempts)
                _compensate(session, job.id, claim, RuntimeError("worker arrêté pendant l'exécution"))
            else:
                job.status, job.next_run_at = PENDING, now
        _recover_lost(session, services, now)
        due = (
            session.execute(
                select(Job.id).where(Job.service.in_(services), Job.status == PENDING, Job.next_run_at <= now)
            )
            .scalars()
            .all()
        )
    return dispatch(due) if due else 0


def _recover_lost(session: Session, services: list[str], now: datetime) -> None:
    """Queued long ago but unknown to rq (Redis restarted without persistence): push it again."""
    lost = session.execute(
        select(Job).where(Job.service.in_(services), Job.status == QUEUED, Job.next_run_at < now - _LOST_AFTER)
    ).scalars()
    connection = get_redis()
    for job in lost:
        if not RqJob.exists(f"{job.id}_{job.attempts + 1}", connection=connection):
            log.warning("job %s (%s) lost by the queue, pushed again", job.id, job.function)
            job.status, job.next_run_at = PENDING, now


def requeue_orphans() -> int:
    """At the start of an embedded worker: jobs queued in a previous process's memory are pushed again."""
    with transaction() as session:
        result = session.execute(update(Job).where(Job.status == QUEUED).values(status=PENDING))
        return int(result.rowcount)  # type: ignore[attr-defined]


def clean_temporary_files() -> None:
    """At a worker's start: remove the stale temporary copies a killed job left (see socle.storage). A failure
    here is logged, never a reason not to start."""
    from socle.storage import clean_stale_spool

    try:
        clean_stale_spool()
    except Exception:
        log.exception("could not clean the stale temporary files")


class _ThreadWorker(SimpleWorker):
    """An rq worker that can run outside the main thread: no signal handlers, a timer for timeouts."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        pass


def work_once(services: Iterable[str] = SERVICES) -> bool:
    """Sweep, then run every queued job in this thread. Returns whether any job ran."""
    services = list(services)
    sweep(services)
    connection = get_redis()
    worker = _ThreadWorker(worker_queues(services, connection), connection=connection, serializer=JSONSerializer)
    return worker.work(burst=True, logging_level="WARNING")


class EmbeddedWorker(threading.Thread):
    """The in-process worker of the embedded mode, woken as soon as a job is pushed.

    It runs the built-in schedule of every service too (socle.schedule), from ``schedule_after`` seconds after
    its start: the server is up first, and a short-lived worker (``socle demo``) enqueues no periodic job.
    """

    def __init__(self, poll_seconds: float = 1.0, *, schedule_after: float = 60.0) -> None:
        super().__init__(name="socle-embedded-worker", daemon=True)
        self.poll_seconds = poll_seconds
        self.schedule_after = schedule_after
        self._stop_event = threading.Event()

    def run(self) -> None:
        from socle.schedule import Scheduler

        clean_temporary_files()
        requeue_orphans()
        scheduler, started = Scheduler(SERVICES), time.monotonic()
        while not self._stop_event.is_set():
            if time.monotonic() - started >= self.schedule_after:
                schedule_round(scheduler)
            try:
                work_once()
            except Exception:
                log.exception("embedded worker: unexpected error")
            _wake.wait(self.poll_seconds)
            _wake.clear()

    def stop(self) -> None:
        self._stop_event.set()
        _wake.set()
        self.join(timeout=30)


def run_worker(
    services: list[str], *, burst: bool = False, fork: bool = True, only_lanes: list[str] | None = None
) -> None:
    """``socle worker``: an rq worker on Redis for some services, with a sweeper process beside it.

    ``fork``: each job in a work horse forked for it (rq ``Worker``), which a crash or a leak in the job cannot
    outlive; else in the worker process itself (rq ``SimpleWorker``), which keeps its database and storage
    connections, imports and compiled queries from one job to the next: about half the CPU of a short job.
    The job guarantees are the same (claimed row, fenced updates, retries; a worker that dies mid-job leaves
    its row running, which the sweeper of another worker gives back once the job timeout has passed).

    ``only_lanes``: serve only these lanes (``main`` for the main queues), e.g. slow renditions in workers of
    their own started at a lower CPU priority (``nice``), so that they never slow down uploads and quick jobs.
    """
    settings = get_settings()
    if settings.embedded_queue:
        raise InvalidInput(
            "file embarquée : les tâches tournent dans le processus de « socle serve » ou « socle demo » ; "
            "définissez SOCLE_REDIS_URL pour lancer des workers séparés"
        )
    unknown = sorted(set(services) - set(SERVICES))
    if unknown:
        raise InvalidInput(f"service(s) inconnu(s) : {', '.join(unknown)} (attendu : {', '.join(SERVICES)})")
    known = {MAIN, *(lane for service in services for lane in lanes(service))}
    if only_lanes is not None and not set(only_lanes) <= known:
        unknown_lanes = ", ".join(sorted(set(only_lanes) - known))
        raise InvalidInput(f"file(s) inconnue(s) : {unknown_lanes} (attendu : {', '.join(sorted(known))})")
    for service in services:
        # Imported once here, inherited by every forked work horse: a job does not pay for imports.
        importlib.import_module(f"{service}.jobs")
    # The sweeper runs in a spawned process, not a thread: rq forks a work horse per job, and a fork taken
    # while another thread holds a lock (an import, a connection pool) deadlocks the child.
    sweeper = multiprocessing.get_context("spawn").Process(
        target=_sweep_forever, args=(services, os.getpid()), name="socle-sweeper", daemon=True
    )
    sweeper.start()
    clean_temporary_files()
    connection = get_redis()
    worker_class = Worker if fork else SimpleWorker
    queues = worker_queues(services, connection, only_lanes)
    worker = worker_class(queues, connection=connection, serializer=JSONSerializer)
    try:
        worker.work(burst=burst, logging_level="INFO")
    finally:
        sweeper.terminate()
        sweeper.join(timeout=10)


def _sweep_forever(services: list[str], worker_pid: int) -> None:
    from socle.schedule import Scheduler

    # The built-in schedule of the worker's services (socle.schedule): each worker's sweeper runs it, the
    # database lets one of them take each period.
    scheduler = Scheduler(services)
    # ``daemon=True`` only helps when the worker exits cleanly: a worker killed (``kill -9``, out of memory)
    # would leave this process sweeping forever, an orphan that a restarted worker then doubles.
    while os.getppid() == worker_pid:
        schedule_round(scheduler)
        try:
            sweep(services)
        except RedisError as exc:  # as in dispatch: a line every round while Redis is away, not a trace
            log.warning("sweeper: queue unreachable: %s", exc)
        except Exception:
            log.exception("sweeper: unexpected error")
        time.sleep(2.0)


def schedule_round(scheduler: Any) -> None:
    """One round of the built-in schedule (a ``socle.schedule.Scheduler``) beside the sweep: its failure is
    logged and tried again next round, never a reason to stop sweeping."""
    try:
        scheduler.tick()
    except RedisError as exc:
        log.warning("schedule: queue unreachable: %s", exc)
    except Exception:
        log.exception("schedule: unexpected error")


def wait_until_idle(timeout: float = 120.0, *, work_inline: bool | None = None) -> None:
    """Block until no job is due, queued or running (used by the demo and the tests).

    In the embedded mode without a worker thread, jobs are run here, in this thread.
    """
    inline = get_settings().embedded_queue if work_inline is None else work_inline
    deadline = time.monotonic() + timeout
    while True:
        if inline:
            work_once()
        if not _busy():
            return
        if time.monotonic() > deadline:
            raise TimeoutError("des tâches sont encore en cours après le délai d'attente")
        time.sleep(0.05 if inline else 0.2)


def _busy() -> bool:
    with new_session() as session:
        row = session.execute(
            select(Job.id)
            .where(
                or_(
                    Job.status.in_([QUEUED, RUNNING]),
                    (Job.status == PENDING) & (Job.next_run_at <= utcnow()),
                )
            )
            .limit(1)
        ).first()
    return row is not None


# ---------------------------------------------------------------------------------------------------------
# Operating


def list_jobs(session: Session, *, statuses: Iterable[str] = (FAILED,), limit: int = 100) -> list[Job]:
    return list(
        session.execute(
            select(Job).where(Job.status.in_(list(statuses))).order_by(Job.created_at.desc()).limit(limit)
        ).scalars()
    )


def _stuck_before() -> datetime:
    return utcnow() - timedelta(seconds=get_settings().job_timeout) - _STUCK_GRACE


def stuck_jobs(session: Session) -> list[Job]:
    return list(session.execute(select(Job).where(Job.status == RUNNING, Job.started_at < _stuck_before())).scalars())


def retry(session: Session, job_id: str) -> Job:
    """Give a failed (or stuck) job another run, with one more attempt allowed."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"tâche {job_id} introuvable")
    stuck = job.status == RUNNING and job.started_at is not None and job.started_at < _stuck_before()
    if job.status != FAILED and not stuck:
        raise Conflict(f"seule une tâche en échec ou bloquée peut être relancée (état : {job.status})")
    job.status, job.next_run_at, job.finished_at = PENDING, utcnow(), None
    job.max_attempts = max(job.max_attempts, job.attempts + 1)
    session.info.setdefault(_PENDING_IDS, []).append(job.id)
    return job


def retry_keyed(session: Session, key: str, **changes: Any) -> Job:
    """:func:`retry` for the job asked with this business ``key`` (see :func:`enqueue`): the same job runs again,
    so the key still stands for one effect (asking anew with it would only return the failed job). ``changes``
    replace some of its arguments, parameters of its message only: a setting corrected since the first run.

    :raises NotFound: no job has this key.
    :raises Conflict: the job has not failed (nor is stuck).
    """
    job = session.execute(select(Job).where(Job.key == key).with_for_update()).scalar_one_or_none()
    if job is None:
        raise NotFound(f"aucune tâche pour la clé {key}")
    message = messages.BY_FUNCTION.get(job.function)
    unknown = set(changes) - set(message.parameters if message is not None else ())
    if unknown:
        raise TypeError(f"{job.function}: unknown parameters {sorted(unknown)}")
    retry(session, job.id)
    if changes:
        job.arguments = {**job.arguments, **changes}
    return job
