"""Schema changes go only through migrations: the migrations must build exactly what the models declare."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, inspect, text

from archive.models import ArchiveBase
from ged.models import GedBase
from interop.models import InteropBase
from parapheur.models import ParapheurBase
from socle.db import reset_engines
from socle.migrating import PACKAGES, alembic_config, current_revisions, upgrade_all
from socle.models import KernelBase

METADATA: dict[str, MetaData] = {
    "socle": KernelBase.metadata,
    "ged": GedBase.metadata,
    "parapheur": ParapheurBase.metadata,
    "archive": ArchiveBase.metadata,
    "interop": InteropBase.metadata,
}


def _differences(url: str) -> dict[str, list[object]]:
    engine = create_engine(url)
    found = {}
    with engine.connect() as connection:
        for package, metadata in METADATA.items():
            context = MigrationContext.configure(
                connection,
                opts={
                    "version_table": f"alembic_version_{package}",
                    "include_object": lambda obj, name, type_, *_, md=metadata: type_ != "table" or name in md.tables,
                },
            )
            found[package] = compare_metadata(context, metadata)
    engine.dispose()
    return {package: diff for package, diff in found.items() if diff}


def _round_trip(url: str) -> None:
    upgrade_all(url)
    assert _differences(url) == {}
    assert all(revision for revision in current_revisions(url).values())
    for package in reversed(PACKAGES):
        command.downgrade(alembic_config(package, url), "base")
    engine = create_engine(url)
    leftover = [name for name in inspect(engine).get_table_names() if not name.startswith("alembic_version_")]
    engine.dispose()
    assert leftover == []
    upgrade_all(url)
    assert _differences(url) == {}


def test_migrations_match_models_on_sqlite(tmp_path: Path) -> None:
    try:
        _round_trip(f"sqlite:///{tmp_path / 'fresh.db'}")
    finally:
        reset_engines()


@pytest.mark.integration
def test_migrations_match_models_on_postgresql(postgres_url: str) -> None:
    url = postgres_url.replace("postgresql://", "postgresql+psycopg://")
    try:
        _round_trip(url)
    finally:
        reset_engines()


def _carry_folder_through_par0002(url: str) -> None:
    """A folder made before desks existed keeps its document, its steps and who acted on them, both ways.

    The database may hold other tests' rows: everything is looked up by this test's own folder id."""
    upgrade_all(url)
    command.downgrade(alembic_config("parapheur", url), "par0001")
    folder_id = str(uuid.uuid4())
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO parapheur_folders (id, tenant_id, title, status, source, document_key, document_size, "
                "document_filename, signed_key, current_step, created_by, created_at, updated_at) VALUES "
                "(:folder, :tenant, 'Acte', 'in_progress', 'upload', :key, 10, 'acte.pdf', NULL, 1, 'agent', "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"folder": folder_id, "tenant": str(uuid.uuid4()), "key": "a" * 64},
        )
        for position, (kind, actor, status, acted_by) in enumerate(
            [("visa", "agent", "done", "agent"), ("signature", "maire", "pending", None)]
        ):
            connection.execute(
                text(
                    "INSERT INTO parapheur_steps (id, folder_id, position, kind, actor, status, acted_by, acted_at) "
                    "VALUES (:id, :folder, :position, :kind, :actor, :status, :acted_by, CURRENT_TIMESTAMP)"
                ),
                {"id": f"{folder_id[:30]}-s{position}", "folder": folder_id, "position": position, "kind": kind}
                | {"actor": actor, "status": status, "acted_by": acted_by},
            )
    command.upgrade(alembic_config("parapheur", url), "head")
    with engine.connect() as connection:
        where = {"folder": folder_id}
        document = connection.execute(
            text("SELECT role, key, filename FROM parapheur_documents WHERE folder_id = :folder"), where
        ).one()
        assert tuple(document) == ("main", "a" * 64, "acte.pdf")
        steps = connection.execute(
            text("SELECT status, desk_ids FROM parapheur_steps WHERE folder_id = :folder ORDER BY position"), where
        ).all()
        desk_ids = [json.loads(step.desk_ids) if isinstance(step.desk_ids, str) else step.desk_ids for step in steps]
        assert [step.status for step in steps] == ["done", "current"]
        members = [
            connection.execute(
                text("SELECT username FROM parapheur_desk_members WHERE desk_id = :desk"), {"desk": ids[0]}
            ).scalar_one()
            for ids in desk_ids
        ]
        assert members == ["agent", "maire"]
        acts = connection.execute(
            text("SELECT username, action FROM parapheur_step_acts WHERE folder_id = :folder"), where
        ).all()
        assert [tuple(act) for act in acts] == [("agent", "visa")]
    engine.dispose()
    command.downgrade(alembic_config("parapheur", url), "par0001")
    engine = create_engine(url)
    with engine.begin() as connection:
        folder = connection.execute(
            text("SELECT document_key, document_filename FROM parapheur_folders WHERE id = :folder"), where
        ).one()
        assert tuple(folder) == ("a" * 64, "acte.pdf")
        steps = connection.execute(
            text("SELECT actor, status, acted_by FROM parapheur_steps WHERE folder_id = :folder ORDER BY position"),
            where,
        ).all()
        assert [tuple(step) for step in steps] == [("agent", "done", "agent"), ("maire", "pending", None)]
        connection.execute(text("DELETE FROM parapheur_steps WHERE folder_id = :folder"), where)
        connection.execute(text("DELETE FROM parapheur_folders WHERE id = :folder"), where)
    engine.dispose()
    command.upgrade(alembic_config("parapheur", url), "head")


def test_par0002_keeps_existing_folders_on_sqlite(tmp_path: Path) -> None:
    try:
        _carry_folder_through_par0002(f"sqlite:///{tmp_path / 'old.db'}")
    finally:
        reset_engines()


@pytest.mark.integration
def test_par0002_keeps_existing_folders_on_postgresql(postgres_url: str) -> None:
    url = postgres_url.replace("postgresql://", "postgresql+psycopg://")
    try:
        _carry_folder_through_par0002(url)
    finally:
        reset_engines()
