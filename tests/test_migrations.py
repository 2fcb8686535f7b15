"""Schema changes go only through migrations: the migrations must build exactly what the models declare."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, inspect

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
