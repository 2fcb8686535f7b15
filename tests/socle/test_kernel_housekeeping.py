"""The kernel's housekeeping (socle.schedule.housekeeping): old finished jobs, expired browser sessions and old
sign-in attempts removed by the built-in schedule, once per period, and by ``socle housekeeping``.

Every test runs on a database of its own (SQLite in a temporary folder, or a PostgreSQL schema): the
housekeeping removes every collectivité's expired sessions, those of the other tests too.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from socle import queue, schedule
from socle.db import new_session, transaction, utcnow
from socle.errors import SettingsError
from socle.models import Job, LoginAttempt, ScheduleRun, UiSession, User
from socle.schedule import Scheduler, states
from socle.settings import load_settings

from conftest import Kit, migrate, socle_command

# Tuesday 1 December 2026, 10:00 in Paris (09:00 UTC): the default 04:30 (Paris) is due, at 03:30 UTC.
TUESDAY = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PERIOD = ("socle.housekeeping", "2026-12-01T03:30Z")
# Only the housekeeping: the other tasks would enqueue jobs beside the rows these tests count.
ONLY_HOUSEKEEPING = {
    "SOCLE_SCHEDULE_GED_PURGE_TRASH": "off",
    "SOCLE_SCHEDULE_GED_PURGE_UPLOADS": "off",
    "SOCLE_SCHEDULE_PARAPHEUR_DIGESTS": "off",
    "SOCLE_SCHEDULE_INTEROP_PES_RETOURS": "off",
    "SOCLE_SCHEDULE_INTEROP_PREFECTURE_LETTERS": "off",
    "SOCLE_SCHEDULE_INTEROP_SAE_CONNECTORS": "off",
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def own_database(request: pytest.FixtureRequest, use_env: Callable[..., None], tmp_path: Path) -> str:
    """A fresh database of its own, on each backend, with only the housekeeping scheduled."""
    use_env(SOCLE_DATA_DIR=str(tmp_path / "data"), SOCLE_DATABASE_URL=None, **ONLY_HOUSEKEEPING)
    if request.param == "postgresql":
        use_env(SOCLE_DATABASE_URL=request.getfixturevalue("own_postgres_url"))
    migrate()
    return str(request.param)


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two rows per DELETE: the tests' few rows then take several batches, each committed alone."""
    monkeypatch.setattr(schedule, "_BATCH", 2, raising=False)


def _job(*, status: str, finished_days_ago: float | None, key: str | None = None, now: datetime = TUESDAY) -> str:
    finished = None if finished_days_ago is None else now - timedelta(days=finished_days_ago)
    with transaction() as session:
        job = Job(
            service="ged",
            function="ged.jobs.purge_uploads",
            arguments={},
            key=key,
            status=status,
            attempts=1,
            max_attempts=3,
            finished_at=finished,
            # When it was queued: before it ran, then finished.
            next_run_at=(finished or now) - timedelta(minutes=1),
            created_at=(finished or now) - timedelta(minutes=2),
        )
        session.add(job)
        session.flush()
        return job.id


def _session(kit: Kit, *, idle: timedelta, expires_in: timedelta, now: datetime = TUESDAY) -> str:
    with transaction() as session:
        user = session.execute(
            select(User).where(User.tenant_id == kit.tenant_id, User.username == "agent")
        ).scalar_one()
        row = UiSession(
            token_hash=uuid.uuid4().hex,
            tenant_id=kit.tenant_id,
            user_id=user.id,
            csrf_token="csrf",
            created_at=now - idle - timedelta(minutes=1),
            last_seen_at=now - idle,
            expires_at=now + expires_in,
        )
        session.add(row)
        session.flush()
        return row.id


def _attempt(minutes_ago: int, now: datetime = TUESDAY) -> int:
    with transaction() as session:
        row = LoginAttempt(key="agent@mairie", at=now - timedelta(minutes=minutes_ago))
        session.add(row)
        session.flush()
        return row.id


def _left(model: type[Job] | type[UiSession] | type[LoginAttempt]) -> set[str | int]:
    with new_session() as session:
        return set(session.execute(select(model.id)).scalars())


def _runs() -> list[ScheduleRun]:
    with new_session() as session:
        return list(session.execute(select(ScheduleRun).where(ScheduleRun.task == "socle.housekeeping")).scalars())


def _fill(kit: Kit, now: datetime = TUESDAY) -> tuple[dict[str, set[str | int]], dict[str, set[str | int]]]:
    """Rows the housekeeping removes, and rows it keeps, by table."""
    gone: dict[str, set[str | int]] = {
        "jobs": {
            _job(status=queue.DONE, finished_days_ago=91, now=now),
            _job(status=queue.DONE, finished_days_ago=400, now=now),
            _job(status=queue.DONE, finished_days_ago=120, key="schedule:ged.purge_trash:2026-08-01T02:00Z", now=now),
            _job(status=queue.DONE, finished_days_ago=95, key="interop.pes-retours:c0:2026-08-01T02:00Z", now=now),
            # Three finished at the same instant: with batches of 2, the second batch starts at that instant.
            *(_job(status=queue.DONE, finished_days_ago=200, now=now) for _ in range(3)),
        },
        "sessions": {
            _session(kit, idle=timedelta(minutes=5), expires_in=-timedelta(minutes=1), now=now),  # past its lifetime
            _session(kit, idle=timedelta(hours=2, minutes=1), expires_in=timedelta(hours=6), now=now),  # idle
        },
        "attempts": {_attempt(16, now), _attempt(60 * 24 * 30, now)},
    }
    kept: dict[str, set[str | int]] = {
        "jobs": {
            _job(status=queue.DONE, finished_days_ago=89, now=now),  # not old enough
            _job(status=queue.FAILED, finished_days_ago=400, now=now),  # for the operator
            _job(status=queue.PENDING, finished_days_ago=None, now=now),
            _job(status=queue.RUNNING, finished_days_ago=None, now=now),
            # Business idempotency keys: asking again must still find these, whatever their age.
            _job(status=queue.DONE, finished_days_ago=400, key="ged.signed:dossier-42", now=now),
            _job(status=queue.DONE, finished_days_ago=400, key="failure:0a1b2c", now=now),
            _job(status=queue.DONE, finished_days_ago=400, key="schedule-like:x", now=now),
        },
        "sessions": {_session(kit, idle=timedelta(minutes=30), expires_in=timedelta(hours=3), now=now)},
        "attempts": {_attempt(14, now)},
    }
    return gone, kept


def _assert_cleaned(kept: dict[str, set[str | int]]) -> None:
    assert _left(Job) == kept["jobs"]
    assert _left(UiSession) == kept["sessions"]
    assert _left(LoginAttempt) == kept["attempts"]


def test_a_due_housekeeping_removes_what_nobody_reads_again_and_keeps_the_rest(
    own_database: str, make_kit: Callable[..., Kit], small_batches: None
) -> None:
    gone, kept = _fill(make_kit(with_identity=False))

    # A worker of the archives alone runs it: the kernel's upkeep belongs to no service.
    assert Scheduler(["archive"]).tick(TUESDAY) == [PERIOD]

    _assert_cleaned(kept)
    (run,) = _runs()
    assert (run.period, run.jobs) == (PERIOD[1], sum(len(rows) for rows in gone.values()))  # rows removed
    assert Scheduler(["ged"]).tick(TUESDAY + timedelta(hours=3)) == []  # the period is taken


def test_the_kept_days_setting_moves_the_limit_and_is_checked(
    own_database: str, use_env: Callable[..., None], make_kit: Callable[..., Kit]
) -> None:
    settings = load_settings()
    assert (settings.schedule_housekeeping, settings.jobs_kept_days) == ("04:30", 90)
    use_env(SOCLE_JOBS_KEPT_DAYS="30", SOCLE_SCHEDULE_HOUSEKEEPING="05:15")
    month_old = _job(status=queue.DONE, finished_days_ago=31)
    recent = _job(status=queue.DONE, finished_days_ago=29)

    assert Scheduler(["parapheur"]).tick(TUESDAY) == [("socle.housekeeping", "2026-12-01T04:15Z")]
    assert _left(Job) == {recent} and month_old not in _left(Job)

    for name, wrong in (
        ("SOCLE_JOBS_KEPT_DAYS", "6"),
        ("SOCLE_JOBS_KEPT_DAYS", "3651"),
        ("SOCLE_SCHEDULE_HOUSEKEEPING", "chaque nuit"),
        ("SOCLE_SCHEDULE_HOUSEKEEPING", "2min"),
    ):
        use_env(**{"SOCLE_JOBS_KEPT_DAYS": None, "SOCLE_SCHEDULE_HOUSEKEEPING": None, name: wrong})
        with pytest.raises(SettingsError) as refused:
            load_settings()
        assert name in refused.value.detail, wrong


def test_many_schedulers_at_once_run_it_once(
    own_database: str, make_kit: Callable[..., Kit], small_batches: None
) -> None:
    """Eight sweepers of workers of different services at the same instant, on each backend: one runs it (the
    others meet its period's row, before or after its first batch committed) and removes every row once."""
    gone, kept = _fill(make_kit(with_identity=False))
    barrier = threading.Barrier(8)
    taken: list[list[tuple[str, str]]] = []
    errors: list[BaseException] = []
    services = [["ged"], ["parapheur"], ["archive"], ["interop"]] * 2

    def sweeper(served: list[str]) -> None:
        try:
            scheduler = Scheduler(served)
            barrier.wait(timeout=30)
            taken.append(scheduler.tick(TUESDAY))
        except BaseException as exc:  # said by the test below, not lost in a thread
            errors.append(exc)

    threads = [threading.Thread(target=sweeper, args=(served,)) for served in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(item for result in taken for item in result) == [PERIOD]
    (run,) = _runs()
    assert run.jobs == sum(len(rows) for rows in gone.values())
    _assert_cleaned(kept)


def test_off_disables_it(own_database: str, use_env: Callable[..., None], make_kit: Callable[..., Kit]) -> None:
    use_env(SOCLE_SCHEDULE_HOUSEKEEPING="off")
    gone, kept = _fill(make_kit(with_identity=False))
    for day in range(3):
        assert Scheduler().tick(TUESDAY + timedelta(days=day)) == []
    assert _runs() == []
    everything = {table: gone[table] | kept[table] for table in gone}
    _assert_cleaned(everything)
    with new_session() as session:
        (state,) = [found for found in states(session, TUESDAY) if found.task.name == "socle.housekeeping"]
    assert (state.rule.describe(), state.waiting, state.following) == ("désactivée", None, None)


@pytest.mark.parametrize("own_database", ["sqlite"], indirect=True)  # the commands, once: the rest runs on both
def test_socle_housekeeping_cleans_at_once_and_socle_schedule_lists_it(
    own_database: str, make_kit: Callable[..., Kit]
) -> None:
    kit = make_kit(with_identity=False)
    shown = socle_command("schedule")
    assert shown.returncode == 0, shown.stderr
    block = next(block for block in shown.stdout.split("\n\n") if block.startswith("socle.housekeeping — "))
    assert "Nettoyage du noyau" in block and "(noyau)" in block
    assert "chaque jour à 04:30 (heure de Paris) — SOCLE_SCHEDULE_HOUSEKEEPING=04:30" in block
    assert "dernière échéance : aucune" in block
    assert "prochain passage d'un worker, quel que soit son service" in block
    assert "à la main : socle housekeeping" in block

    now = utcnow()  # the command cleans as of the real time
    _gone, kept = _fill(kit, now)
    done = socle_command("housekeeping")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "Tâches de fond terminées depuis plus de 90 jours : 7 supprimée(s)",
        "Sessions de l'interface expirées ou inactives : 2 supprimée(s)",
        "Tentatives de connexion anciennes : 2 supprimée(s)",
    ]
    _assert_cleaned(kept)

    Scheduler(["ged"]).tick()
    shown = socle_command("schedule")
    block = next(block for block in shown.stdout.split("\n\n") if block.startswith("socle.housekeeping — "))
    assert "ligne(s) supprimée(s)" in block and "en attente" not in block and "tâche(s)" not in block
