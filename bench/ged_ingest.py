"""Benchmark: GED ingest through the HTTP API, text extraction by the workers included.

The whole production chain on this machine: PostgreSQL (a database of its own, created and dropped here), a
local S3 server (moto, its own process; or the local storage, to tell the S3 stand-in's share),
Redis with a key prefix of its own, ``uvicorn`` serving the GED API (several processes) and
``socle worker ged`` processes. Clients (threads, one HTTP connection each) post N generated ~100 KB PDFs,
each with a text layer and a picture, all different; the workers extract their text (and make the preview,
thumbnail and PDF/A copy that every new PDF version also gets, on the slower « renditions » lane).

Measured: documents/s accepted by the API; documents/s until every text is extracted (``text_status`` done);
until every rendition job is done; request latencies; each job kind's mean run time (from the job table);
CPU seconds of each part, from /proc: server, workers (with their forked work horses), S3 server, the
PostgreSQL backends of the bench's database, the Redis server (shared with whatever else uses it); the rest
of the machine (the bench's own clients, other work); the load average before and after.

    .venv/bin/python bench/ged_ingest.py --count 300 --clients 8 --workers 2 --slow-workers 1 --no-wait-renditions
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pikepdf

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORDS = """budget primitif conseil municipal délibération commune subvention association travaux voirie école
marché public convention personnel tarif cantine urbanisme permis aménagement assainissement eau cimetière
bibliothèque sport culture jeunesse solidarité élection adjoint maire recette dépense"""
VOCABULARY = WORDS.split()


# ---------------------------------------------------------------------------------------------------------
# Documents


def make_pdf(number: int, rng: random.Random) -> bytes:
    """A ~100 KB, 3-page PDF: French text (Helvetica, WinAnsi) and a JPEG picture (a photo-like ~80 KB, as a
    scanned logo or a photo would be), different for every number."""
    pdf = pikepdf.new()
    font = pikepdf.Dictionary(
        Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica,
        Encoding=pikepdf.Name.WinAnsiEncoding,
    )  # fmt: skip
    width, height, jpeg = _photo()
    picture = pdf.make_stream(
        jpeg, Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Image, Width=width, Height=height,
        ColorSpace=pikepdf.Name.DeviceRGB, BitsPerComponent=8, Filter=pikepdf.Name.DCTDecode,
    )  # fmt: skip
    for page_number in range(3):
        pdf.add_blank_page(page_size=(595, 842))
        page = pdf.pages[-1]
        page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font), XObject=pikepdf.Dictionary(Im1=picture))
        lines = [f"Délibération n° {number}-{page_number + 1}"] + [
            " ".join(rng.choice(VOCABULARY) for _ in range(11)) for _ in range(44)
        ]
        body = b"q 90 0 0 90 450 730 cm /Im1 Do Q\n" + b"".join(
            b"BT /F1 10 Tf 60 %d Td (%s) Tj ET\n" % (760 - 15 * k, line.encode("cp1252"))
            for k, line in enumerate(lines)
        )
        page.Contents = pdf.make_stream(body)
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def _photo() -> tuple[int, int, bytes]:
    """A photo-like picture: noise over gradients (new noise each call), JPEG quality 85."""
    from PIL import Image

    size = (480, 360)
    noise = Image.effect_noise(size, 60)
    gradient = Image.linear_gradient("L").resize(size)
    image = Image.merge("RGB", (noise, gradient, Image.blend(noise, gradient, 0.5)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return size[0], size[1], out.getvalue()


# ---------------------------------------------------------------------------------------------------------
# Processes and their CPU time


def _ticks(pid: int, *, children: bool = True) -> float:
    """CPU seconds of a process (and of its waited-for children): utime+stime(+cutime+cstime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    used = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return used / os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """A process and its descendants alive now."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            parents.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


@dataclass
class Group:
    """Processes started for one role (server, workers, S3), whose CPU time is followed."""

    name: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    start_cpu: float = 0.0

    def cpu(self) -> float:
        # Live descendants' own time plus each root's waited-for children (finished work horses).
        total = 0.0
        for process in self.processes:
            for pid in _tree(process.pid):
                total += _ticks(pid, children=True)
        return total

    def mark(self) -> None:
        self.start_cpu = self.cpu()

    def used(self) -> float:
        return self.cpu() - self.start_cpu

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    # From the tree the bench belongs to (``python -m``, uvicorn's app dir), whatever copy is installed.
    with log.open("ab") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} toujours fermé après {timeout} s")


def _system_cpu() -> float:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    busy = sum(int(value) for index, value in enumerate(fields[:8]) if index not in (3, 4))  # minus idle, iowait
    return busy / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------------------
# The run


@dataclass
class Settings:
    count: int
    clients: int
    workers: int
    server_processes: int
    postgres: str
    database: str
    redis: str
    prefix: str
    worker_kind: str = "fork"
    storage: str = "moto"
    slow_workers: int = 0
    wait_renditions: bool = True


def uvicorn_command(settings: Settings, port: int) -> list[str]:
    return [
        str(BIN / "uvicorn"), "--factory", "ged.api:create_app", "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(settings.server_processes), "--log-level", "warning", "--no-access-log",
        "--app-dir", str(ROOT),
    ]  # fmt: skip


def worker_command(settings: Settings) -> list[str]:
    return [
        sys.executable,
        "-m",
        "socle",
        "worker",
        "ged",
        *(["--no-fork"] if settings.worker_kind == "nofork" else []),
    ]


def s3_command(port: int) -> list[str]:
    return [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]


@contextmanager
def database(settings: Settings) -> Iterator[str]:
    import psycopg

    admin = psycopg.connect(f"{settings.postgres}/postgres", autocommit=True)
    admin.execute(f'DROP DATABASE IF EXISTS "{settings.database}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{settings.database}"')
    try:
        yield f"{settings.postgres.replace('postgresql://', 'postgresql+psycopg://')}/{settings.database}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{settings.database}" WITH (FORCE)')
        admin.close()


def clean_redis(settings: Settings) -> None:
    from redis import Redis

    client = Redis.from_url(settings.redis)
    for key in client.scan_iter(f"*{settings.prefix}*"):
        client.delete(key)


def environment(settings: Settings, database_url: str, s3_port: int, data_dir: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("SOCLE_")}
    env.update(
        SOCLE_DATA_DIR=str(data_dir),
        SOCLE_DATABASE_URL=database_url,
        SOCLE_REDIS_URL=settings.redis,
        SOCLE_QUEUE_PREFIX=settings.prefix,
        SOCLE_MAX_UPLOAD_BYTES=str(10 * 1024 * 1024),
    )
    if settings.storage != "local":
        env.update(
            SOCLE_STORAGE_BACKEND="s3",
            SOCLE_S3_ENDPOINT=f"127.0.0.1:{s3_port}",
            SOCLE_S3_ACCESS_KEY="bench",
            SOCLE_S3_SECRET_KEY="bench-secret",
            SOCLE_S3_SECURE="false",
            SOCLE_S3_REGION="us-east-1",
            SOCLE_S3_BUCKET="bench-ingest",
        )
    return env


def make_token(env: dict[str, str]) -> str:
    """Migrate, then a collectivité, an agent and a token, with the bench's settings."""
    script = (
        "from socle.migrating import upgrade_all\n"
        "from socle.auth import create_tenant, create_user, issue_token\n"
        "from socle.db import transaction\n"
        "upgrade_all()\n"
        "with transaction() as session:\n"
        "    tenant = create_tenant(session, 'bench', 'Commune du banc', '213700000')\n"
        "    user = create_user(session, tenant, 'agent', 'Agent du banc', ['agent'])\n"
        "    print(issue_token(session, user, 'bench'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True, cwd=ROOT
    )
    return result.stdout.strip().splitlines()[-1]


@dataclass
class Upload:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def post_all(base: str, token: str, documents: list[bytes], clients: int) -> Upload:
    upload = Upload()
    queue = list(enumerate(documents))
    take = threading.Lock()

    def client_loop() -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
            while True:
                with take:
                    if not queue:
                        return
                    number, content = queue.pop()
                started = time.perf_counter()
                response = client.post(
                    "/documents",  # the GED app alone, as « socle serve ged » serves it
                    files={"file": (f"deliberation-{number}.pdf", content, "application/pdf")},
                    data={"title": f"Délibération n° {number}", "document_type": "deliberation"},
                )
                elapsed = time.perf_counter() - started
                with upload.lock:
                    upload.latencies.append(elapsed)
                    if response.status_code != 201:
                        upload.errors.append(f"{response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return upload


def _scalar(env: dict[str, str], sql: str) -> Any:
    import psycopg

    url = env["SOCLE_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as connection:
        row = connection.execute(sql).fetchone()
        return row[0] if row else None


def wait_for(env: dict[str, str], sql: str, expected: int, timeout: float) -> float:
    """Poll until ``sql`` counts ``expected``; returns the monotonic time when it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _scalar(env, sql) >= expected:
            return time.monotonic()
        time.sleep(0.1)
    raise TimeoutError(f"attente dépassée : {sql}")


def job_stats(env: dict[str, str], since: Any) -> list[tuple[str, int, float, float, int]]:
    """Per job function: count, mean run time (ms), mean wait from creation to start (s), attempts > 1; the jobs
    created ``since`` (the measured ones, not the warm-up's)."""
    import psycopg

    url = env["SOCLE_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT function, count(*), avg(extract(epoch FROM finished_at - started_at)) * 1000,"
            " avg(extract(epoch FROM started_at - created_at)), sum(CASE WHEN attempts > 1 THEN 1 ELSE 0 END)"
            " FROM jobs WHERE status = 'done' AND created_at >= %s GROUP BY function ORDER BY function",
            (since,),
        ).fetchall()
    return [(str(r[0]), int(r[1]), float(r[2]), float(r[3]), int(r[4])) for r in rows]


def _matching(predicate: Any) -> list[int]:
    """Pids of the live processes whose command line satisfies ``predicate``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
            if predicate(command):
                found.append(int(entry.name))
    return found


@dataclass
class Outside:
    """Processes the bench did not start (PostgreSQL backends, the Redis server), followed pid by pid: a process
    that ends between two readings loses its share (PostgreSQL's pooled backends live as long as the run)."""

    name: str
    predicate: Any
    start: dict[int, float] = field(default_factory=dict)

    def mark(self) -> None:
        self.start = {pid: _ticks(pid, children=False) for pid in _matching(self.predicate)}

    def used(self) -> float:
        return sum(_ticks(pid, children=False) - self.start.get(pid, 0.0) for pid in _matching(self.predicate))


WARM_UP = 20
DONE_JOBS = "SELECT count(*) FROM jobs WHERE status IN ('done', 'failed') AND function LIKE 'ged.jobs.%'"


def run(settings: Settings) -> dict[str, Any]:
    rng = random.Random(20261201)
    documents = [make_pdf(number, rng) for number in range(settings.count + WARM_UP)]
    warm_up, documents = documents[settings.count :], documents[: settings.count]
    work = Path(tempfile.mkdtemp(prefix="socle-bench-ingest-"))
    s3_name = "S3 (moto)" if settings.storage == "moto" else "stockage local (sans S3)"
    groups = {name: Group(name) for name in (s3_name, "API (uvicorn)", "workers : texte", "workers : rendus lents")}
    # PostgreSQL titles its processes « postgres: <cluster>: <user> <database> <client> <state> ».
    backend = f" postgres {settings.database} "
    outside = [
        Outside(
            f"PostgreSQL (connexions à {settings.database})",
            lambda command: command.startswith("postgres:") and backend in command,
        ),
        Outside(
            "PostgreSQL (processus communs : WAL, checkpointer… ; partagés)",
            lambda command: command.startswith("postgres:") and "(" not in command and "[local]" not in command,
        ),
        Outside("Redis (tout le serveur, partagé)", lambda command: command.split(" ", 1)[0].endswith("redis-server")),
    ]
    try:
        with database(settings) as database_url:
            clean_redis(settings)
            s3_port, api_port = _free_port(), _free_port()
            if settings.storage != "local":
                groups[s3_name].processes.append(_start(s3_command(s3_port), dict(os.environ), work / "s3.log"))
                _wait_port(s3_port)
            env = environment(settings, database_url, s3_port, work / "data")
            token = make_token(env)
            groups["API (uvicorn)"].processes.append(_start(uvicorn_command(settings, api_port), env, work / "api.log"))
            for _ in range(settings.workers):
                command = worker_command(settings) + (["--lane", "main"] if settings.slow_workers else [])
                groups["workers : texte"].processes.append(_start(command, env, work / "worker.log"))
            for _ in range(settings.slow_workers):
                # Slow renditions at the lowest CPU priority: they take what uploads and text extraction leave.
                command = ["nice", "-n", "19", *worker_command(settings), "--lane", "renditions"]
                groups["workers : rendus lents"].processes.append(_start(command, env, work / "worker.log"))
            _wait_port(api_port)
            # A few documents first, not measured: each process's first requests and jobs pay for lazy imports,
            # connections and SQLAlchemy's statement cache (about a second of CPU each).
            warmed = post_all(f"http://127.0.0.1:{api_port}", token, warm_up, settings.clients)
            if warmed.errors:
                raise RuntimeError(f"échec des dépôts de mise en route : {warmed.errors[:3]}")
            wait_for(env, DONE_JOBS, 3 * WARM_UP, 600)
            since = _scalar(env, "SELECT now()")
            for group in [*groups.values(), *outside]:
                group.mark()
            load_before = os.getloadavg()[0]
            system_before = _system_cpu()
            started = time.monotonic()
            upload = post_all(f"http://127.0.0.1:{api_port}", token, documents, settings.clients)
            uploaded = time.monotonic()
            ok = settings.count - len(upload.errors)
            text_done = wait_for(
                env, "SELECT count(*) FROM ged_versions WHERE text_status <> 'pending'", ok + WARM_UP, 3600
            )
            text_cpu = {group.name: group.used() for group in [*groups.values(), *outside]}
            text_system = _system_cpu() - system_before
            load_text = os.getloadavg()[0]
            # Else the run ends with the texts: the slow renditions' backlog is not measured.
            all_done = wait_for(env, DONE_JOBS, 3 * (ok + WARM_UP), 3600) if settings.wait_renditions else None
            cpu = {group.name: group.used() for group in [*groups.values(), *outside]}
            system = _system_cpu() - system_before
            load_after = os.getloadavg()[0]
            statuses = _scalar(env, "SELECT string_agg(text_status || ':' || n, ' ') FROM "
                               "(SELECT text_status, count(*) n FROM ged_versions GROUP BY text_status) s")  # fmt: skip
            jobs = job_stats(env, since)
            failed_jobs = _scalar(env, "SELECT count(*) FROM jobs WHERE status = 'failed'")
    finally:
        for group in reversed(list(groups.values())):
            group.stop()
        clean_redis(settings)
        shutil.rmtree(work, ignore_errors=True)
    return {
        "sizes": [len(document) for document in documents],
        "upload_seconds": uploaded - started,
        "text_seconds": text_done - started,
        "all_seconds": all_done - started if all_done is not None else None,
        "latencies": upload.latencies,
        "errors": upload.errors,
        "text_cpu": text_cpu,
        "text_system_cpu": text_system,
        "cpu": cpu,
        "system_cpu": system,
        "load": (load_before, load_text, load_after),
        "statuses": statuses,
        "jobs": jobs,
        "failed_jobs": failed_jobs,
    }


def report(settings: Settings, result: dict[str, Any]) -> None:
    n = settings.count
    latencies = sorted(result["latencies"])
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    kind = "« socle worker ged »" if settings.worker_kind == "fork" else "« socle worker ged --no-fork »"
    size = statistics.mean(result["sizes"]) / 1000
    print(f"N = {n} PDF (taille moyenne {size:.1f} Ko), {settings.clients} clients, stockage : {settings.storage}")
    print(f"{settings.server_processes} processus uvicorn, {settings.workers} workers {kind}", end="")
    if settings.slow_workers:
        print(f" pour la file principale, {settings.slow_workers} pour les rendus lents (nice 19)")
    else:
        print(" (toutes les files, la principale d'abord)")
    before, at_text, after = result["load"]
    print(f"charge (1 min) avant / texte extrait / fin : {before:.2f} / {at_text:.2f} / {after:.2f}")
    print(f"erreurs HTTP : {len(result['errors'])} {result['errors'][:3]}")
    print(f"text_status : {result['statuses']} ; tâches en échec : {result['failed_jobs']}")
    print()
    print("| étape | durée (s) | documents/s |")
    print("|---|---:|---:|")
    for label, key in (
        ("dépôt par l'API (201 reçus)", "upload_seconds"),
        ("… et texte extrait de tous", "text_seconds"),
        ("… et tous les rendus faits (aperçu, vignette, PDF/A)", "all_seconds"),
    ):
        if result[key] is None:
            print(f"| {label} | non attendu | |")
        else:
            print(f"| {label} | {result[key]:.1f} | {n / result[key]:.1f} |")
    print()
    print(f"latence d'un dépôt : médiane {statistics.median(latencies) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")
    print()
    print("| tâche | nombre | durée moyenne (ms) | attente moyenne avant début (s) | reprises |")
    print("|---|---:|---:|---:|---:|")
    for function, count, run_ms, wait_s, retried in result["jobs"]:
        print(f"| {function} | {count} | {run_ms:.0f} | {wait_s:.1f} | {retried} |")
    print()
    print("| processus | CPU jusqu'au texte extrait (ms/doc) | CPU jusqu'à la fin (ms/doc) |")
    print("|---|---:|---:|")
    for name in result["cpu"]:
        print(f"| {name} | {result['text_cpu'][name] / n * 1000:.1f} | {result['cpu'][name] / n * 1000:.1f} |")
    rests = [
        system - sum(cpu.values())
        for system, cpu in ((result["text_system_cpu"], result["text_cpu"]), (result["system_cpu"], result["cpu"]))
    ]
    label = "reste de la machine (clients du banc, autres travaux)"
    print(f"| {label} | {rests[0] / n * 1000:.1f} | {rests[1] / n * 1000:.1f} |")
    print(f"| total machine | {result['text_system_cpu'] / n * 1000:.1f} | {result['system_cpu'] / n * 1000:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=500, help="nombre de PDF déposés")
    parser.add_argument("--clients", type=int, default=8, help="clients HTTP simultanés")
    parser.add_argument("--workers", type=int, default=2, help="processus « socle worker ged »")
    parser.add_argument(
        "--slow-workers", type=int, default=0,
        help="processus à part pour les rendus lents, en priorité basse (nice 19) ; les autres ne font alors que "
        "la file principale (texte)",
    )  # fmt: skip
    parser.add_argument("--server-processes", type=int, default=2, help="processus uvicorn")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432", help="serveur PostgreSQL")
    parser.add_argument("--database", default="socle_bench_ingest", help="base créée puis supprimée par le banc")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--prefix", default="socle-bench-ingest:", help="préfixe des files rq dans Redis")
    parser.add_argument(
        "--worker-kind",
        choices=("fork", "nofork"),
        default="nofork",
        help="fork : un processus rq par tâche ; nofork : « socle worker ged --no-fork », les tâches dans le worker",
    )
    parser.add_argument(
        "--storage",
        choices=("moto", "local"),
        default="moto",
        help="serveur S3 de remplacement (moto, en Python) ou stockage local sur disque, pour isoler la part de moto",
    )
    parser.add_argument(
        "--no-wait-renditions",
        action="store_true",
        help="s'arrêter quand tous les textes sont extraits, sans attendre aperçus et copies PDF/A",
    )
    args = parser.parse_args()
    settings = Settings(
        args.count, args.clients, args.workers, args.server_processes, args.postgres, args.database, args.redis,
        args.prefix, args.worker_kind, args.storage, args.slow_workers, not args.no_wait_renditions,
    )  # fmt: skip
    report(settings, run(settings))


if __name__ == "__main__":
    main()
