"""The built-in schedule: periodic jobs enqueued by the workers themselves, without cron.

Each :class:`Task` names a job message (or an action the scheduler runs itself) and its setting
(``SOCLE_SCHEDULE_*``, see socle.settings): due every day at fixed Paris times (``03:00``, ``08:00,14:00``),
every N minutes or hours (``60min``, ``6h``), or never (``off``). A task's *period* is its latest due instant
not after now; it is enqueued once per period:

- the sweeper of every worker (``socle worker``, see socle.queue) and the embedded worker call
  :meth:`Scheduler.tick` at each round, for the services they serve;
- a due period is *taken* by inserting its ``schedule_runs`` row (primary key: task, period) in the transaction
  that enqueues its jobs: of several schedulers at once, one inserts it, the others meet the key and go on. A
  restarted worker finds the row. The jobs also carry a key naming the task, the period and the collectivité;
- the jobs go through :func:`socle.queue.enqueue_all`: the ``jobs`` table, retries and failures as any job;
- a task with an *action* instead (the kernel's :func:`housekeeping`: a few DELETEs, of no service) is run by
  the scheduler itself, starting in that transaction, by a worker of any service;
- a period missed while no worker ran (stopped for the night) is caught up once, by the next worker to start:
  only the latest period, never each one missed.

Why not rq 3.0's ``rq.cron``: its ``CronScheduler`` pushes rq jobs straight to Redis, outside the ``jobs`` table
that is the source of truth (no row, no retries with backoff, nothing in ``socle jobs``), keeps its state in
Redis (the embedded mode has only an in-process fakeredis), is one more process with its own signal handlers,
reads cron fields in the machine's local time (not Paris time), and does not stop two schedulers started
together from both enqueuing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, delete, func, or_, select
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from socle import messages
from socle.dates import PARIS
from socle.db import is_unique_violation, transaction, utcnow
from socle.messages import Message
from socle.models import Job, LoginAttempt, ScheduleRun, Tenant, UiSession
from socle.queue import DONE, enqueue_all
from socle.settings import SERVICES, Settings, get_settings

log = logging.getLogger("socle.schedule")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_KEPT = timedelta(days=60)  # a task's taken periods older than this are forgotten (its jobs keep their rows)


@dataclass(frozen=True)
class Rule:
    """When a task is due: every day at ``times`` (Paris), or every ``every``; neither: never."""

    times: tuple[time, ...] = ()
    every: timedelta | None = None

    @classmethod
    def parse(cls, text: str) -> Rule:
        """A rule as socle.settings.check_schedule_rule writes it (``off``, ``03:00,14:00``, ``60min``, ``6h``)."""
        if text == "off":
            return cls()
        if text.endswith("min"):
            return cls(every=timedelta(minutes=int(text[:-3])))
        if text.endswith("h"):
            return cls(every=timedelta(hours=int(text[:-1])))
        return cls(times=tuple(sorted(time(int(part[:2]), int(part[3:])) for part in text.split(","))))

    @property
    def enabled(self) -> bool:
        return bool(self.times) or self.every is not None

    def latest(self, now: datetime) -> datetime | None:
        """The latest due instant not after ``now`` (UTC), or None for a rule that is off."""
        if self.every is not None:
            return _EPOCH + self.every * ((now - _EPOCH) // self.every)
        today = now.astimezone(PARIS).date()
        for day in (today, today - timedelta(days=1)):
            for moment in reversed(self.times):
                due = _paris(day, moment)
                if due <= now:
                    return due
        return None

    def following(self, now: datetime) -> datetime | None:
        """The first due instant after ``now`` (UTC), or None for a rule that is off."""
        if self.every is not None:
            latest = self.latest(now)
            assert latest is not None
            return latest + self.every
        today = now.astimezone(PARIS).date()
        for day in (today, today + timedelta(days=1), today + timedelta(days=2)):
            for moment in self.times:
                due = _paris(day, moment)
                if due > now:
                    return due
        return None

    def describe(self) -> str:
        """In French, for ``socle schedule``."""
        if self.every is not None:
            minutes = int(self.every.total_seconds()) // 60
            if minutes % 60 == 0:
                hours = minutes // 60
                return "toutes les heures" if hours == 1 else f"toutes les {hours} heures"
            return f"toutes les {minutes} minutes"
        if self.times:
            return "chaque jour à " + ", ".join(moment.strftime("%H:%M") for moment in self.times) + " (heure de Paris)"
        return "désactivée"


def _paris(day: date, moment: time) -> datetime:
    # A time skipped by the spring change (02:30 on the last Sunday of March) falls an hour later, once; a time
    # met twice in the autumn counts at its first passage.
    return datetime.combine(day, moment, tzinfo=PARIS).astimezone(UTC)


def period_of(due: datetime) -> str:
    """A period's name: its due instant in UTC, to the minute (``2026-12-01T02:00Z``)."""
    return due.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


Action = Callable[[Session, datetime], int]  # (session, now) -> rows removed


@dataclass(frozen=True)
class Task:
    """A periodic job: ``message`` enqueued once per period, once per collectivité when ``per_tenant``.

    The message's parameters are filled by name: ``tenant_id`` (each collectivité), ``period`` (the period's
    name, for a job that asks other jobs itself and keys them with it); it takes no other.

    Or, without a message, an ``action`` the scheduler runs itself once per period, whatever the services of its
    worker: the kernel's own upkeep, which belongs to no service and is not worth a job. It may commit its
    session between batches (the period is then taken with the first one); what it returns (rows removed) is
    kept in ScheduleRun.jobs.
    """

    name: str
    message: Message | None
    setting: str
    per_tenant: bool
    title: str  # French, for ``socle schedule``
    by_hand: str  # the existing command that does the same at once
    action: Action | None = None

    def __post_init__(self) -> None:
        if (self.message is None) == (self.action is None) or (self.action is not None and self.per_tenant):
            raise ValueError(f"{self.name}: either a message (per collectivité or not) or an action")

    @property
    def service(self) -> str | None:
        """The service whose workers schedule it; None for an action, run by a worker of any service."""
        return self.message.service if self.message is not None else None

    def runs_in(self, services: Iterable[str]) -> bool:
        return self.service is None or self.service in services

    def rule(self, settings: Settings | None = None) -> Rule:
        return Rule.parse(getattr(settings or get_settings(), self.setting))

    def key(self, period: str, tenant_id: str | None) -> str:
        return f"schedule:{self.name}:{period}" + (f":{tenant_id}" if tenant_id else "")

    def arguments(self, period: str, tenant_id: str | None) -> dict[str, Any]:
        assert self.message is not None
        known = {"tenant_id": tenant_id, "period": period}
        return {name: known[name] for name in self.message.parameters}


# ---------------------------------------------------------------------------------------------------------
# The kernel's housekeeping

_BATCH = 1000  # rows per DELETE, each committed alone (see _delete_by_batches)
# Keys naming a past period of a periodic task: nothing asks for that period again once it is over (the
# schedule's own jobs, and the PES Retour and letter collections each of them asks per connector, interop/jobs.py).
PERIOD_KEY_PREFIXES = ("schedule:", "interop.pes-retours:", "interop.prefecture-letters:")


@dataclass(frozen=True)
class Cleaned:
    """What :func:`housekeeping` removed, by table."""

    jobs: int
    sessions: int
    attempts: int

    @property
    def total(self) -> int:
        return self.jobs + self.sessions + self.attempts


def housekeeping(session: Session, now: datetime | None = None) -> Cleaned:
    """Remove the kernel's rows nobody will read again, committing batch by batch.

    - jobs done more than SOCLE_JOBS_KEPT_DAYS ago, without a key or with a key naming a past period
      (``schedule:<task>:<period>…``, whose period schedule_runs guards; PERIOD_KEY_PREFIXES). A job with any
      other key stays, whatever its age: that key is a business idempotency key (asking again with the same key
      returns that job instead of running it again: a second signed version, a second transfer). Failed, pending and
      running jobs stay too, for the operator and the workers;
    - browser sessions past their lifetime or idle too long (otherwise deleted only when their cookie comes back);
    - failed sign-in attempts older than their window (otherwise deleted only at someone's next failure).
    """
    from socle.ui.sessions import ATTEMPT_WINDOW, IDLE  # lazily: only its limits, from the web interface's module

    now = now or utcnow()
    kept_since = now - timedelta(days=get_settings().jobs_kept_days)
    jobs = _delete_by_batches(
        session,
        Job.id,
        Job.status == DONE,
        Job.finished_at < kept_since,
        or_(Job.key.is_(None), *(Job.key.startswith(prefix) for prefix in PERIOD_KEY_PREFIXES)),
        # Implied (a job runs once due or queued, and finishes after), but indexed with the status: the rows are
        # read along ix_jobs_status_next, the old done ones only, never a scan of the whole table.
        Job.next_run_at < kept_since,
        along=Job.next_run_at,
    )
    sessions = _delete_by_batches(
        session, UiSession.id, or_(UiSession.expires_at <= now, UiSession.last_seen_at < now - IDLE)
    )
    attempts = _delete_by_batches(session, LoginAttempt.id, LoginAttempt.at < now - ATTEMPT_WINDOW)
    return Cleaned(jobs, sessions, attempts)


def _delete_by_batches(
    session: Session,
    id_column: InstrumentedAttribute[Any],
    *where: ColumnElement[bool],
    along: InstrumentedAttribute[Any] | None = None,
) -> int:
    """Delete the rows meeting ``where``, ``_BATCH`` ids at a time, committing after each batch.

    In one transaction, a backlog of months would keep its rows locked, PostgreSQL's vacuum held back and, on
    SQLite, every other writer out until the end, and the other schedulers waiting on the period's row. Each
    DELETE repeats the conditions: a row changed since it was read stays.

    ``along``: an indexed column to read the rows in the order of, each batch from where the previous one
    stopped: the rows kept on the way (old jobs with a business key, which stay for ever) are then read once
    per call, not once per batch."""
    removed, since = 0, None
    while True:
        query = select(id_column, along if along is not None else id_column).where(*where)
        if along is not None:
            query = query.order_by(along)
            if since is not None:
                query = query.where(along >= since)
        rows = session.execute(query.limit(_BATCH)).all()
        if not rows:
            return removed
        ids, since = [row[0] for row in rows], rows[-1][1]
        result = session.execute(
            delete(id_column.class_).where(id_column.in_(ids), *where),
            execution_options={"synchronize_session": False},
        )
        session.commit()
        removed += cast("CursorResult[Any]", result).rowcount
        if len(ids) < _BATCH:
            return removed


def _housekeeping(session: Session, now: datetime) -> int:
    return housekeeping(session, now).total


TASKS: tuple[Task, ...] = (
    Task(
        "ged.purge_trash",
        messages.GED_PURGE_TRASH,
        "schedule_ged_purge_trash",
        per_tenant=True,
        title="Purge de la corbeille de la GED (délai SOCLE_GED_TRASH_DAYS passé)",
        by_hand="socle ged purge [--tenant COLLECTIVITÉ]",
    ),
    Task(
        "ged.purge_uploads",
        messages.GED_PURGE_UPLOADS,
        "schedule_ged_purge_uploads",
        per_tenant=False,
        title="Nettoyage des envois reprenables expirés de la GED",
        by_hand="socle ged purge-uploads",
    ),
    Task(
        "parapheur.send_digests",
        messages.PARAPHEUR_SEND_DIGESTS,
        "schedule_parapheur_digests",
        per_tenant=True,
        title="Avis de retard et récapitulatifs des notifications du parapheur",
        by_hand="socle parapheur digest --tenant COLLECTIVITÉ",
    ),
    Task(
        "interop.collect_pes_retours",
        messages.INTEROP_COLLECT_ALL_PES_RETOURS,
        "schedule_interop_pes_retours",
        per_tenant=False,
        title="Relève des PES Retour de chaque connecteur S²LOW actif",
        by_hand="socle interop pes-retours --tenant COLLECTIVITÉ --connector NOM",
    ),
    Task(
        "interop.collect_prefecture_letters",
        messages.INTEROP_COLLECT_ALL_PREFECTURE_LETTERS,
        "schedule_interop_prefecture_letters",
        per_tenant=False,
        title="Relève des courriers de la préfecture de chaque connecteur S²LOW actif",
        by_hand="GET /interop/connectors/{nom}/prefecture, puis POST …/prefecture/{id}/fetch pour chaque courrier",
    ),
    Task(
        "interop.publish_sae_connectors",
        messages.INTEROP_PUBLISH_SAE_CONNECTORS,
        "schedule_interop_sae_connectors",
        per_tenant=True,
        title="Liste des connecteurs du système d'archivage envoyée au service d'archives",
        by_hand="socle interop sae-connectors --tenant COLLECTIVITÉ",
    ),
    Task(
        "socle.housekeeping",
        None,
        "schedule_housekeeping",
        per_tenant=False,
        title="Nettoyage du noyau : tâches terminées anciennes, sessions expirées, tentatives de connexion",
        by_hand="socle housekeeping",
        action=_housekeeping,
    ),
)


class Scheduler:
    """The schedule as one worker runs it, for the services it serves.

    It remembers the period it last saw taken for each task (by itself or another scheduler): between two
    periods a tick reads nothing from the database.
    """

    def __init__(self, services: Iterable[str] = SERVICES) -> None:
        self.services = tuple(services)
        self._seen: dict[str, str] = {}

    def tick(self, now: datetime | None = None) -> list[tuple[str, str]]:
        """Enqueue the jobs of each task whose current period no scheduler has taken yet.

        :returns: the (task, period) this call took.
        """
        now = now or utcnow()
        settings = get_settings()
        taken = []
        for task in TASKS:
            if not task.runs_in(self.services):
                continue
            due = task.rule(settings).latest(now)
            if due is None or self._seen.get(task.name) == period_of(due):
                continue
            if take(task, due, now):
                taken.append((task.name, period_of(due)))
            self._seen[task.name] = period_of(due)
        return taken


def take(task: Task, due: datetime, now: datetime | None = None) -> bool:
    """Take the period due at ``due`` and enqueue its jobs in the same transaction, or run its action (as of
    ``now``) from that transaction on; False if another scheduler took it."""
    period = period_of(due)
    try:
        with transaction() as session:
            run = ScheduleRun(task=task.name, period=period, due_at=due, enqueued_at=utcnow(), jobs=0)
            session.add(run)
            session.flush()  # here another scheduler's row, committed or not yet, stops this one
            session.execute(delete(ScheduleRun).where(ScheduleRun.task == task.name, ScheduleRun.due_at < due - _KEPT))
            if task.action is not None:
                run.jobs = task.action(session, now or utcnow())
            else:
                run.jobs = _enqueue(session, task, period)
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        return False
    done = "row(s) removed" if task.action is not None else "job(s) enqueued"
    log.info("schedule: %s for %s, %d %s", task.name, period, run.jobs, done)
    return True


def _enqueue(session: Session, task: Task, period: str) -> int:
    assert task.message is not None
    tenants: Sequence[str | None] = (
        session.execute(select(Tenant.id).order_by(Tenant.created_at, Tenant.id)).scalars().all()
        if task.per_tenant
        else [None]
    )
    asked = [(task.message, task.key(period, tenant_id), task.arguments(period, tenant_id)) for tenant_id in tenants]
    return len(enqueue_all(session, asked)) if asked else 0


# ---------------------------------------------------------------------------------------------------------
# What ``socle schedule`` shows


@dataclass(frozen=True)
class TaskState:
    task: Task
    rule: Rule
    last: ScheduleRun | None  # the latest period taken
    last_jobs: dict[str, int]  # its jobs by status
    waiting: datetime | None  # a due period no scheduler has taken yet (no worker of the service running?)
    following: datetime | None


def states(session: Session, now: datetime | None = None) -> list[TaskState]:
    now = now or utcnow()
    settings = get_settings()
    found = []
    for task in TASKS:
        rule = task.rule(settings)
        last = session.execute(
            select(ScheduleRun).where(ScheduleRun.task == task.name).order_by(ScheduleRun.due_at.desc()).limit(1)
        ).scalar_one_or_none()
        due = rule.latest(now)
        waiting = due if due is not None and (last is None or last.due_at < due) else None
        found.append(TaskState(task, rule, last, _jobs_of(session, task, last), waiting, rule.following(now)))
    return found


def _jobs_of(session: Session, task: Task, run: ScheduleRun | None) -> dict[str, int]:
    if run is None or task.action is not None:
        return {}
    tenants: Sequence[str | None] = session.execute(select(Tenant.id)).scalars().all() if task.per_tenant else [None]
    keys = [task.key(run.period, tenant_id) for tenant_id in tenants]
    counts: dict[str, int] = {}
    for start in range(0, len(keys), 500):  # by the unique index on the key, never a scan of the jobs
        rows = session.execute(
            select(Job.status, func.count()).where(Job.key.in_(keys[start : start + 500])).group_by(Job.status)
        ).all()
        for status, count in rows:
            counts[status] = counts.get(status, 0) + count
    return counts
