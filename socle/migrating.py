"""Alembic for a kit of services sharing one database: one migration folder and version table per package.

Each package (``socle`` for the kernel, then each service) keeps its migrations in ``<package>/migrations``
and its own version table ``alembic_version_<package>``, so a service's schema evolves on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, MetaData

from socle.db import engine_for
from socle.settings import get_settings

PACKAGES = ("socle", "ged", "parapheur", "archive", "interop")


def alembic_config(package: str, url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", f"{package}:migrations")
    # Passed as an attribute, not an ini option: configparser would choke on the "%" of encoded URLs.
    config.attributes["url"] = url or get_settings().effective_database_url
    config.attributes["package"] = package
    return config


def upgrade_all(url: str | None = None) -> None:
    """Bring every package's tables to their latest version (the kernel first: services refer to tenants)."""
    for package in PACKAGES:
        command.upgrade(alembic_config(package, url), "head")


def current_revisions(url: str | None = None) -> dict[str, str | None]:
    from alembic.runtime.migration import MigrationContext

    revisions: dict[str, str | None] = {}
    with engine_for(url or get_settings().effective_database_url).connect() as connection:
        for package in PACKAGES:
            migration = MigrationContext.configure(connection, opts={"version_table": f"alembic_version_{package}"})
            revisions[package] = migration.get_current_revision()
    return revisions


def run_migrations(metadata: MetaData) -> None:
    """Body of every package's ``migrations/env.py``."""
    config = context.config
    package = config.attributes["package"]
    url = config.attributes.get("url") or get_settings().effective_database_url

    def own_tables(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        # The database holds every package's tables: autogenerate must only look at this package's own.
        return type_ != "table" or name in metadata.tables

    engine = engine_for(url)
    with engine.connect() as connection, _sqlite_foreign_keys_deferred(connection):
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table=f"alembic_version_{package}",
            include_object=own_tables,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


@contextmanager
def _sqlite_foreign_keys_deferred(connection: Connection) -> Iterator[None]:
    """On SQLite, batch migrations rebuild a table by copying it: with foreign keys enforced, dropping the old
    copy of a referenced table fails. They are switched off for the migration (outside any transaction, where
    SQLite honours the pragma), then checked as a whole before being switched back on."""
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.driver_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
        broken = raw.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"migration left rows whose foreign keys point nowhere: {broken[:5]}")
    finally:
        raw.execute("PRAGMA foreign_keys=ON")
