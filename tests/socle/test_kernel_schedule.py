"""The built-in schedule (socle.schedule): periodic jobs enqueued by the workers themselves, once per period.

Every test that schedules runs on a database of its own (SQLite in a temporary folder, or a PostgreSQL schema):
a period taken in the shared test database would enqueue jobs for every collectivité of every other test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text, update

from ged.models import Document, UploadSession
from interop.models import Connector
from socle import messages, queue
from socle.db import get_engine, new_session, transaction, utcnow
from socle.errors import SettingsError
from socle.migrating import upgrade_all
from socle.models import Job, ScheduleRun
from socle.schedule import TASKS, Rule, Scheduler, period_of, states
from socle.settings import load_settings

from conftest import ROOT, Kit, make_pdf, migrate, run_jobs, socle_command, upload_document

# Tuesday 1 December 2026, 10:00 in Paris (09:00 UTC): every default rule has a period due.
TUESDAY = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def own_sqlite(use_env: Callable[..., None], tmp_path: Path) -> Path:
    """A fresh SQLite kit in a folder of its own (database, objects, uploads), migrated."""
    data = tmp_path / "data"
    use_env(SOCLE_DATA_DIR=str(data), SOCLE_DATABASE_URL=None)
    migrate()
    return data


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def own_database(request: pytest.FixtureRequest, use_env: Callable[..., None], tmp_path: Path) -> str:
    """A fresh database of its own, on each backend."""
    use_env(SOCLE_DATA_DIR=str(tmp_path / "data"), SOCLE_DATABASE_URL=None)
    if request.param == "postgresql":
        use_env(SOCLE_DATABASE_URL=request.getfixturevalue("own_postgres_url"))
    migrate()
    return str(request.param)


def _tenants(make_kit: Callable[..., Kit], count: int) -> list[str]:
    return [make_kit(with_identity=False).tenant_id for _ in range(count)]


def _runs(task: str) -> list[ScheduleRun]:
    with new_session() as session:
        query = select(ScheduleRun).where(ScheduleRun.task == task).order_by(ScheduleRun.due_at)
        return list(session.execute(query).scalars())


def _jobs(prefix: str) -> list[Job]:
    with new_session() as session:
        return list(session.execute(select(Job).where(Job.key.startswith(prefix)).order_by(Job.key)).scalars())


# ---------------------------------------------------------------------------------------------------------
# Rules


def test_daily_rules_follow_paris_time_across_the_clock_changes() -> None:
    night = Rule.parse("03:00")
    # Winter (UTC+1): 03:00 in Paris is 02:00 UTC; at 02:30 Paris the latest is yesterday's, the next tonight's.
    winter = datetime(2026, 12, 1, 1, 30, tzinfo=UTC)
    assert night.latest(winter) == datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    assert night.following(winter) == datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    # Summer (UTC+2): 01:00 UTC.
    assert night.latest(datetime(2027, 7, 1, 12, tzinfo=UTC)) == datetime(2027, 7, 1, 1, 0, tzinfo=UTC)
    # The night of the spring change: the day is 23 hours long, 03:00 still comes once.
    assert night.latest(datetime(2027, 3, 28, 12, tzinfo=UTC)) == datetime(2027, 3, 28, 1, 0, tzinfo=UTC)
    assert night.following(datetime(2027, 3, 27, 12, tzinfo=UTC)) == datetime(2027, 3, 28, 1, 0, tzinfo=UTC)

    twice = Rule.parse("08:00,14:00")
    assert twice.latest(TUESDAY) == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    assert twice.following(TUESDAY) == datetime(2026, 12, 1, 13, 0, tzinfo=UTC)
    assert twice.describe() == "chaque jour à 08:00, 14:00 (heure de Paris)"


def test_periodic_rules_cut_time_into_aligned_periods() -> None:
    hourly = Rule.parse("60min")
    moment = datetime(2026, 12, 1, 9, 41, 7, tzinfo=UTC)
    assert (hourly.latest(moment), hourly.following(moment)) == (
        datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        datetime(2026, 12, 1, 10, 0, tzinfo=UTC),
    )
    assert period_of(hourly.latest(moment) or moment) == "2026-12-01T09:00Z"
    assert Rule.parse("6h").latest(moment) == datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    assert Rule.parse("6h").describe() == "toutes les 6 heures"
    off = Rule.parse("off")
    assert (off.enabled, off.latest(moment), off.following(moment), off.describe()) == (False, None, None, "désactivée")


def test_the_settings_take_the_documented_forms_and_name_a_wrong_one(use_env: Callable[..., None]) -> None:
    use_env(SOCLE_SCHEDULE_GED_PURGE_TRASH=" 2:15, 23:45", SOCLE_SCHEDULE_INTEROP_PES_RETOURS="30 MIN")
    settings = load_settings()
    assert settings.schedule_ged_purge_trash == "02:15,23:45"
    assert settings.schedule_interop_pes_retours == "30min"
    for wrong in ("25:00", "3min", "chaque nuit", "08:00,08:00", ""):
        use_env(SOCLE_SCHEDULE_PARAPHEUR_DIGESTS=wrong)
        with pytest.raises(SettingsError) as refused:
            load_settings()
        assert "SOCLE_SCHEDULE_PARAPHEUR_DIGESTS" in refused.value.detail, wrong


# ---------------------------------------------------------------------------------------------------------
# Once per period


def test_many_schedulers_at_once_enqueue_each_period_once(own_database: str, make_kit: Callable[..., Kit]) -> None:
    """Eight workers' sweepers at the same instant, on each backend: one takes each task's period."""
    tenants = _tenants(make_kit, 3)
    barrier = threading.Barrier(8)
    taken: list[list[tuple[str, str]]] = []
    errors: list[BaseException] = []

    def sweeper() -> None:
        try:
            scheduler = Scheduler()
            barrier.wait(timeout=30)
            taken.append(scheduler.tick(TUESDAY))
        except BaseException as exc:  # said by the test below, not lost in a thread
            errors.append(exc)

    threads = [threading.Thread(target=sweeper) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    every = sorted(item for result in taken for item in result)
    assert every == sorted((task.name, period_of(task.rule().latest(TUESDAY) or TUESDAY)) for task in TASKS)

    for task in TASKS:
        (run,) = _runs(task.name)
        if task.message is None:  # the kernel's housekeeping: no job (tests/socle/test_kernel_housekeeping.py)
            continue
        jobs = _jobs(f"schedule:{task.name}:{run.period}")
        assert run.jobs == len(jobs) == (len(tenants) if task.per_tenant else 1)
        assert {job.function for job in jobs} == {task.message.function}
    assert sorted(job.tenant_id for job in _jobs("schedule:ged.purge_trash:")) == sorted(tenants)
    assert [job.arguments for job in _jobs("schedule:interop.collect_pes_retours:")] == [
        {"period": "2026-12-01T09:00Z"}
    ]


@pytest.mark.integration
def test_a_scheduler_meeting_another_s_uncommitted_period_waits_then_gives_way(
    own_postgres_url: str, use_env: Callable[..., None], tmp_path: Path, make_kit: Callable[..., Kit]
) -> None:
    """The race made certain on PostgreSQL: the second sweeper inserts the same period while the first has not
    committed yet; it waits for the first, meets the key, and enqueues nothing."""
    use_env(
        SOCLE_DATA_DIR=str(tmp_path / "data"),
        SOCLE_DATABASE_URL=own_postgres_url,
        SOCLE_SCHEDULE_GED_PURGE_UPLOADS="off",
        SOCLE_SCHEDULE_HOUSEKEEPING="off",  # run by any worker: the two would race for it after purge_trash
    )
    upgrade_all()
    tenants = _tenants(make_kit, 2)
    engine = get_engine()
    other: dict[str, Any] = {}

    def second_sweeper() -> None:
        other["taken"] = Scheduler(["ged"]).tick(TUESDAY)

    def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "thread" in other or not statement.lstrip().upper().startswith("INSERT INTO SCHEDULE_RUNS"):
            return
        other["thread"] = threading.Thread(target=second_sweeper)
        other["thread"].start()
        other["waited"] = _until_waiting_on_a_lock(engine)

    event.listen(engine, "after_cursor_execute", after)
    try:
        first = Scheduler(["ged"]).tick(TUESDAY)
    finally:
        event.remove(engine, "after_cursor_execute", after)
    other["thread"].join(timeout=60)

    assert other["waited"], "the second sweeper never waited for the first one's row"
    assert first == [("ged.purge_trash", "2026-12-01T02:00Z")]
    assert other["taken"] == []
    assert [run.jobs for run in _runs("ged.purge_trash")] == [2]
    assert sorted(job.tenant_id for job in _jobs("schedule:ged.purge_trash:")) == sorted(tenants)


def _until_waiting_on_a_lock(engine: Any) -> bool:
    with engine.connect() as watcher:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query ILIKE 'INSERT INTO schedule_runs%'"
                )
            ).scalar()
            watcher.rollback()
            if waiting:
                return True
            time.sleep(0.05)
    return False


def test_the_next_period_enqueues_again_and_a_restart_does_not(own_sqlite: Path, make_kit: Callable[..., Kit]) -> None:
    (tenant,) = _tenants(make_kit, 1)
    assert ("parapheur.send_digests", "2026-12-01T06:30Z") in Scheduler(["parapheur"]).tick(TUESDAY)
    # A worker restarted in the same period, or the same one later on: the period is taken.
    assert Scheduler(["parapheur"]).tick(TUESDAY + timedelta(hours=5)) == []

    wednesday = TUESDAY + timedelta(days=1)
    assert Scheduler(["parapheur"]).tick(wednesday) == [
        ("parapheur.send_digests", "2026-12-02T06:30Z"),
        ("socle.housekeeping", "2026-12-02T03:30Z"),
    ]
    jobs = _jobs("schedule:parapheur.send_digests:")
    assert [job.key for job in jobs] == [
        f"schedule:parapheur.send_digests:2026-12-01T06:30Z:{tenant}",
        f"schedule:parapheur.send_digests:2026-12-02T06:30Z:{tenant}",
    ]
    assert all(job.arguments == {"tenant_id": tenant} for job in jobs)
    run_jobs()
    assert {_job_status(job.id) for job in jobs} == {queue.DONE}


def _job_status(job_id: str) -> str:
    with new_session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.status


def test_a_worker_schedules_only_the_tasks_of_its_services(own_sqlite: Path) -> None:
    assert {name for name, _period in Scheduler(["interop", "archive"]).tick(TUESDAY)} == {
        "interop.collect_pes_retours",
        "interop.collect_prefecture_letters",
        "interop.publish_sae_connectors",
        "socle.housekeeping",  # the kernel's, run by a worker of any service (taken here, once)
    }
    assert {name for name, _period in Scheduler(["ged"]).tick(TUESDAY)} == {"ged.purge_trash", "ged.purge_uploads"}
    assert Scheduler(["archive"]).tick(TUESDAY) == []


def test_a_disabled_task_is_not_enqueued(
    own_sqlite: Path, use_env: Callable[..., None], make_kit: Callable[..., Kit]
) -> None:
    _tenants(make_kit, 2)
    use_env(SOCLE_SCHEDULE_GED_PURGE_TRASH="off", SOCLE_SCHEDULE_HOUSEKEEPING="off")
    for day in range(3):
        assert Scheduler(["ged"]).tick(TUESDAY + timedelta(days=day)) == [
            ("ged.purge_uploads", period_of(TUESDAY.replace(hour=2, minute=30) + timedelta(days=day)))
        ]
    assert _runs("ged.purge_trash") == []
    assert _jobs("schedule:ged.purge_trash:") == []
    assert len(_jobs("schedule:ged.purge_uploads:")) == 3


# ---------------------------------------------------------------------------------------------------------
# The jobs it runs


def test_a_due_trash_purge_is_enqueued_and_purges_an_expired_document(
    own_sqlite: Path, make_kit: Callable[..., Kit]
) -> None:
    kit = make_kit(with_identity=False)
    expired = upload_document(kit["agent"], make_pdf("Arrêté ancien"), title="Arrêté ancien")
    recent = upload_document(kit["agent"], make_pdf("Arrêté récent"), title="Arrêté récent")
    for document in (expired, recent):
        assert kit["agent"].delete(f"/ged/documents/{document['id']}").status_code == 200
    with transaction() as session:
        session.execute(
            update(Document).where(Document.id == expired["id"]).values(deleted_at=utcnow() - timedelta(days=31))
        )
    run_jobs()  # the uploads' renditions, out of the way

    assert ("ged.purge_trash", period_of(Rule.parse("03:00").latest(utcnow()) or utcnow())) in Scheduler(["ged"]).tick()
    (job,) = _jobs("schedule:ged.purge_trash:")
    assert (job.function, job.arguments, job.status) == (
        "ged.jobs.purge_trash",
        {"tenant_id": kit.tenant_id},
        "pending",
    )
    run_jobs()

    assert _job_status(job.id) == queue.DONE
    trash = {item["id"] for item in kit["admin"].get("/ged/trash", params={"limit": 100}).json()["items"]}
    assert trash == {recent["id"]}
    with new_session() as session:
        assert session.get(Document, expired["id"]) is None
        assert session.get(Document, recent["id"]) is not None


def test_the_upload_purge_expires_uploads_and_removes_their_files(
    own_sqlite: Path, make_kit: Callable[..., Kit]
) -> None:
    kit = make_kit(with_identity=False)
    spool = own_sqlite / "uploads"
    spool.mkdir(parents=True)
    stale, live = _upload(kit, hours=-1), _upload(kit, hours=5)
    for upload_id in (stale, live):
        (spool / f"{upload_id}.part").write_bytes(b"%PDF-1.7 partiel")

    Scheduler(["ged"]).tick()
    (job,) = _jobs("schedule:ged.purge_uploads:")
    run_jobs()

    assert _job_status(job.id) == queue.DONE
    assert not (spool / f"{stale}.part").exists() and (spool / f"{live}.part").exists()
    with new_session() as session:
        assert session.get(UploadSession, stale).status == "expired"  # type: ignore[union-attr]
        assert session.get(UploadSession, live).status == "open"  # type: ignore[union-attr]


def test_the_upload_purge_refuses_where_it_cannot_see_the_files(own_sqlite: Path, make_kit: Callable[..., Kit]) -> None:
    """A worker without the API's uploads folder would expire the rows and leave the files for ever: it says so."""
    kit = make_kit(with_identity=False)
    with transaction() as session:  # nothing to purge: nothing to refuse either
        done = queue.enqueue(session, messages.GED_PURGE_UPLOADS)
    run_jobs()
    assert _job_status(done.id) == queue.DONE

    stale = _upload(kit, hours=-1)
    with transaction() as session:
        refused = queue.enqueue(session, messages.GED_PURGE_UPLOADS)
    run_jobs()
    with new_session() as session:
        job = session.get(Job, refused.id)
        upload = session.get(UploadSession, stale)
    assert job is not None and job.status == queue.FAILED and job.attempts == 1
    assert "est absent de ce worker" in (job.last_error or "")
    assert upload is not None and upload.status == "open"


def _upload(kit: Kit, hours: int) -> str:
    with transaction() as session:
        upload = UploadSession(
            tenant_id=kit.tenant_id,
            username="agent",
            filename="scan.pdf",
            size=1000,
            received=16,
            status="open",
            expires_at=utcnow() + timedelta(hours=hours),
        )
        session.add(upload)
        session.flush()
        return upload.id


def test_the_pes_retour_collection_asks_each_enabled_tdt_connector_once_per_period(
    own_sqlite: Path, make_kit: Callable[..., Kit]
) -> None:
    first, second = _tenants(make_kit, 2)
    with transaction() as session:
        connectors = [
            Connector(tenant_id=first, name="tdt", kind="s2low", config={"ged_folder": "Finances"}),
            Connector(tenant_id=second, name="tdt-mairie", kind="s2low", config={"ged_folder": "Actes"}),
            Connector(tenant_id=second, name="ancien-tdt", kind="s2low", config={"ged_folder": "A"}, enabled=False),
            Connector(tenant_id=second, name="tdt-sans-dossier", kind="s2low", config={}),  # would file nothing
            # An account without Hélios, as its administrator says: S²LOW would refuse each collection.
            Connector(
                tenant_id=first, name="tdt-actes", kind="s2low", config={"ged_folder": "F", "pes_retours": False}
            ),
            Connector(tenant_id=second, name="depot-sae", kind="depot", config={}),
        ]
        session.add_all(connectors)
        session.flush()
        asked = {connector.id: (connector.tenant_id, connector.name) for connector in connectors[:2]}

    assert ("interop.collect_pes_retours", "2026-12-01T09:00Z") in Scheduler(["interop"]).tick(TUESDAY)
    (fan_out,) = _jobs("schedule:interop.collect_pes_retours:")
    assert queue.execute(fan_out.id) == "done"
    with transaction() as session:  # the same period asked again (a job run twice): nothing more
        again = queue.enqueue(session, messages.INTEROP_COLLECT_ALL_PES_RETOURS, period="2026-12-01T09:00Z")
    assert queue.execute(again.id) == "done"

    collects = _jobs("interop.pes-retours:")
    assert {job.key: (job.tenant_id, job.arguments["connector"]) for job in collects} == {
        f"interop.pes-retours:{connector_id}:2026-12-01T09:00Z": owner for connector_id, owner in asked.items()
    }
    assert {job.function for job in collects} == {"interop.jobs.collect_pes_retours"}
    assert {job.arguments["tenant_id"] for job in collects} == {first, second}


# ---------------------------------------------------------------------------------------------------------
# Where it runs


def test_the_embedded_worker_runs_the_schedule(own_sqlite: Path, make_kit: Callable[..., Kit]) -> None:
    (tenant,) = _tenants(make_kit, 1)
    idle = queue.EmbeddedWorker(poll_seconds=0.05)  # the default: not in its first minute
    idle.start()
    try:
        time.sleep(1)
    finally:
        idle.stop()
    assert _all_runs() == []

    worker = queue.EmbeddedWorker(poll_seconds=0.05, schedule_after=0)
    worker.start()
    try:
        deadline = time.monotonic() + 60  # a bound on the wait, not a measure
        while not _settled() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        worker.stop()
    assert sorted(run.task for run in _all_runs()) == sorted(task.name for task in TASKS)
    jobs = _jobs("schedule:")
    assert len(jobs) == 6 and {job.status for job in jobs} == {queue.DONE}
    per_tenant = ("purge_trash", "send_digests", "publish_sae_connectors")
    assert {job.tenant_id for job in jobs if job.function.endswith(per_tenant)} == {tenant}


def _all_runs() -> list[ScheduleRun]:
    with new_session() as session:
        return list(session.execute(select(ScheduleRun)).scalars())


def _settled() -> bool:
    with new_session() as session:
        runs = session.execute(select(func.count()).select_from(ScheduleRun)).scalar()
        unfinished = session.execute(
            select(func.count()).where(Job.key.startswith("schedule:"), Job.status != queue.DONE)
        ).scalar()
    return runs == len(TASKS) and unfinished == 0


@pytest.fixture
def two_ged_workers(
    own_postgres_url: str, redis_url: str, use_env: Callable[..., None], tmp_path: Path
) -> Iterator[Callable[[], None]]:
    """Two `socle worker ged` processes on PostgreSQL and Redis, started on demand, stopped at the end."""
    use_env(
        SOCLE_DATA_DIR=str(tmp_path / "data"),
        SOCLE_DATABASE_URL=own_postgres_url,
        SOCLE_SCHEDULE_GED_PURGE_UPLOADS="off",
    )
    upgrade_all()
    workers: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "SOCLE_REDIS_URL": redis_url, "SOCLE_QUEUE_PREFIX": f"test-{uuid.uuid4().hex[:8]}-"}

    def start() -> None:
        for number in range(2):
            log = (tmp_path / f"worker-{number}.log").open("wb")
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "socle", "worker", "ged"], env=env, cwd=ROOT, stdout=log, stderr=log
                )
            )

    yield start
    for worker in workers:
        worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()


@pytest.mark.integration
def test_two_production_workers_purge_the_trash_once_by_themselves(
    two_ged_workers: Callable[[], None], make_kit: Callable[..., Kit], tmp_path: Path
) -> None:
    kit = make_kit(with_identity=False)
    document = upload_document(kit["agent"], make_pdf("Vieil arrêté"), title="Vieil arrêté")
    assert kit["agent"].delete(f"/ged/documents/{document['id']}").status_code == 200
    with transaction() as session:
        session.execute(
            update(Document).where(Document.id == document["id"]).values(deleted_at=utcnow() - timedelta(days=40))
        )

    two_ged_workers()
    deadline = time.monotonic() + 180  # two workers to start, each with its sweeper: a bound, not a measure
    while time.monotonic() < deadline:
        with new_session() as session:
            if session.get(Document, document["id"]) is None:
                break
        time.sleep(0.5)
    logs = "\n".join(path.read_text(errors="replace") for path in sorted(tmp_path.glob("worker-*.log")))
    with new_session() as session:
        assert session.get(Document, document["id"]) is None, logs

    (run,) = _runs("ged.purge_trash")
    (job,) = _jobs(f"schedule:ged.purge_trash:{run.period}")
    assert (run.jobs, job.tenant_id, job.attempts) == (1, kit.tenant_id, 1)
    deadline = time.monotonic() + 30
    while _job_status(job.id) != queue.DONE and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _job_status(job.id) == queue.DONE
    assert _runs("ged.purge_uploads") == [] and _runs("parapheur.send_digests") == []  # off; not its service


# ---------------------------------------------------------------------------------------------------------
# socle schedule


def test_socle_schedule_tells_when_each_task_ran_and_will_run(own_sqlite: Path, make_kit: Callable[..., Kit]) -> None:
    _tenants(make_kit, 2)
    Scheduler(["ged"]).tick()
    run_jobs()
    shown = socle_command("schedule", env={"SOCLE_SCHEDULE_INTEROP_PES_RETOURS": "off"})
    assert shown.returncode == 0, shown.stderr
    blocks = {block.split(" — ")[0]: block for block in shown.stdout.strip().split("\n\n")}
    assert set(blocks) == {task.name for task in TASKS}

    trash = blocks["ged.purge_trash"]
    assert "chaque jour à 03:00 (heure de Paris) — SOCLE_SCHEDULE_GED_PURGE_TRASH=03:00" in trash
    assert ": 2 tâche(s) (2 terminée(s))" in trash and "à la main : socle ged purge" in trash
    assert "en attente" not in trash
    digests = blocks["parapheur.send_digests"]
    assert "dernière échéance : aucune" in digests
    assert "au prochain passage d'un worker du service parapheur" in digests
    pes = blocks["interop.collect_pes_retours"]
    assert "désactivée" in pes and "prochaine : —" in pes and "en attente" not in pes

    with new_session() as session:
        state = {found.task.name: found for found in states(session)}
    assert state["ged.purge_trash"].last_jobs == {queue.DONE: 2}
    assert state["ged.purge_trash"].waiting is None and state["parapheur.send_digests"].waiting is not None
