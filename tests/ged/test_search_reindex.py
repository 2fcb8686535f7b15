"""Full reindex: batch by batch in id order, stopped at any moment (limit, SIGTERM, SIGKILL), resumed where it
stopped, and the index it leaves finds the documents (extracted text included)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from ged.indexing import reindex
from ged.models import Document, ReindexRun, SearchEntry, Version
from ged.search import SearchQuery, search
from socle.auth import Principal, create_tenant
from socle.db import engine_for, reset_engines
from socle.settings import get_settings
from socle.storage import get_store

from conftest import ROOT, migrate


def _populate(session: Session, count: int) -> tuple[str, list[str]]:
    tenant = create_tenant(session, f"t-{uuid.uuid4().hex[:10]}", "Commune")
    session.flush()
    text_key = get_store().put(io.BytesIO("Le conseil approuve la convention de déneigement.".encode())).key
    ids = []
    for number in range(count):
        document = Document(tenant_id=tenant.id, created_by="agent", current_version=1)
        document.versions.append(
            Version(
                number=1,
                object_key="0" * 64,
                size=1,
                media_type="application/pdf",
                filename="acte.pdf",
                title=f"Arrêté n° {number}",
                document_type="arrete",
                tags=[],
                author="agent",
                text_key=text_key,
                text_status="done",
            )
        )
        session.add(document)
        session.flush()
        ids.append(document.id)
    session.commit()
    return tenant.id, sorted(ids)


def _entries(session: Session, tenant_id: str) -> set[str]:
    return set(session.execute(select(SearchEntry.document_id).where(SearchEntry.tenant_id == tenant_id)).scalars())


def _found(session: Session, tenant_id: str, words: str) -> int:
    principal = Principal(tenant_id, "t", "Commune", "u", "admin", "Admin", frozenset({"admin"}))
    return search(session, principal, SearchQuery(q=words, facets=False)).total


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'reindex.db'}"
    else:
        url = request.getfixturevalue("postgres_url").replace("postgresql://", "postgresql+psycopg://")
    migrate(url)
    yield url
    reset_engines()


def test_reindex_stops_and_resumes_where_it_stopped(database: str) -> None:
    factory = sessionmaker(engine := engine_for(database))
    with factory() as session:
        tenant_id, ids = _populate(session, 23)
        assert _found(session, tenant_id, "déneigement") == 0  # written without the index: nothing found yet

    run = reindex(factory, tenant_id=tenant_id, batch_size=5, limit=10)
    assert (run.status, run.done_count, run.last_document_id) == ("interrupted", 10, ids[9])
    with factory() as session:
        assert _entries(session, tenant_id) == set(ids[:10])

    seen: list[int] = []
    run = reindex(factory, tenant_id=tenant_id, batch_size=5, progress=lambda run: seen.append(run.done_count))
    assert (run.status, run.done_count, run.last_document_id) == ("done", 23, ids[-1])
    assert seen == [15, 20, 23]  # resumed after the 10th document, never redone
    with factory() as session:
        assert _entries(session, tenant_id) == set(ids)
        assert _found(session, tenant_id, "déneigement convention") == 23
        assert _found(session, tenant_id, "arrêtés") == 23

    # Finished runs are not resumed: a new call starts over.
    run = reindex(factory, tenant_id=tenant_id, batch_size=50)
    assert (run.status, run.done_count) == ("done", 23)
    engine.dispose()


def test_restart_abandons_an_unfinished_run(database: str) -> None:
    factory = sessionmaker(engine_for(database))
    with factory() as session:
        tenant_id, _ = _populate(session, 6)
    reindex(factory, tenant_id=tenant_id, batch_size=2, limit=2)
    run = reindex(factory, tenant_id=tenant_id, batch_size=2, restart=True)
    assert (run.status, run.done_count) == ("done", 6)
    with factory() as session:
        statuses = session.execute(select(ReindexRun.status).where(ReindexRun.tenant_id == tenant_id)).scalars()
        assert sorted(statuses) == ["done", "done"]


# ---------------------------------------------------------------------------------------------------------
# The real command, stopped by a signal


def _command(data_dir: Path, *args: str) -> subprocess.Popen[str]:
    # The same object store as this process: the command reads the extracted texts written here.
    store = str(get_settings().effective_storage_path)
    env = {**os.environ, "SOCLE_DATA_DIR": str(data_dir), "SOCLE_STORAGE_PATH": store, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "socle", "ged", "reindex", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_the_command_resumes_after_being_stopped(tmp_path: Path, stop: signal.Signals) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    url = f"sqlite:///{(data_dir / 'socle.db').resolve()}"
    migrate(url)
    factory = sessionmaker(engine_for(url))
    with factory() as session:
        tenant_id, ids = _populate(session, 1000)
        session.execute(delete(SearchEntry))
        session.commit()

    process = _command(data_dir, "--batch-size", "5")
    assert process.stderr is not None
    first = process.stderr.readline()  # a batch is committed: stop it while it goes on
    assert first.strip() == "5 documents indexés", first
    process.send_signal(stop)
    _, err = process.communicate(timeout=60)
    with factory() as session:
        run = session.execute(select(ReindexRun)).scalar_one()
        indexed = session.execute(select(func.count()).select_from(SearchEntry)).scalar_one()
    if stop == signal.SIGTERM:
        assert process.returncode == 130
        assert "Interrompu" in err and "reprendre" in err
        assert run.status == "interrupted"
    else:
        assert process.returncode == -signal.SIGKILL
        assert run.status == "running"  # killed: nothing could be recorded, the committed position stands
    assert 5 <= run.done_count < 1000
    assert indexed == run.done_count  # exactly the committed batches: nothing half-written
    assert run.last_document_id == ids[run.done_count - 1]

    process = _command(data_dir, "--batch-size", "100")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert out.strip() == "Index reconstruit : 1000 documents."
    assert f"{run.done_count + 100} documents indexés" in err.splitlines()[0]
    with factory() as session:
        assert _found(session, tenant_id, "déneigement") == 1000
    reset_engines()
