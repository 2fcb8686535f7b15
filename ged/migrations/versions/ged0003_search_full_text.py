"""full-text search objects per backend, search entries for existing documents

PostgreSQL: a GIN index on ``to_tsvector('simple', terms)`` (terms are already French-normalised, so the
``simple`` configuration only splits them). SQLite: an FTS5 table whose content is ``ged_search.terms``
(external content: the text is stored once), kept in step by triggers.

Revision ID: ged0003
Revises: ged0002
Create Date: 2026-12-01 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import socle.db
from ged.indexing import build_terms

revision: str = "ged0003"
down_revision: str | None = "ged0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PG_INDEX = "ix_ged_search_terms_fts"
BATCH = 500

SQLITE_OBJECTS = (
    # content_rowid: ged_search has no integer key, its implicit rowid links the two (VACUUM may renumber
    # it: `socle ged reindex` rebuilds the FTS table, see docs/ged.md).
    "CREATE VIRTUAL TABLE ged_search_fts USING fts5(terms, content='ged_search', content_rowid='rowid')",
    "CREATE TRIGGER ged_search_fts_insert AFTER INSERT ON ged_search BEGIN "
    "INSERT INTO ged_search_fts(rowid, terms) VALUES (new.rowid, new.terms); END",
    "CREATE TRIGGER ged_search_fts_delete AFTER DELETE ON ged_search BEGIN "
    "INSERT INTO ged_search_fts(ged_search_fts, rowid, terms) VALUES ('delete', old.rowid, old.terms); END",
    "CREATE TRIGGER ged_search_fts_update AFTER UPDATE ON ged_search BEGIN "
    "INSERT INTO ged_search_fts(ged_search_fts, rowid, terms) VALUES ('delete', old.rowid, old.terms); "
    "INSERT INTO ged_search_fts(rowid, terms) VALUES (new.rowid, new.terms); END",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE INDEX {PG_INDEX} ON ged_search USING gin (to_tsvector('simple'::regconfig, terms))")
    else:
        for statement in SQLITE_OBJECTS:
            op.execute(statement)
    _populate()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {PG_INDEX}")
    else:
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS ged_search_fts_{trigger}")
        op.execute("DROP TABLE IF EXISTS ged_search_fts")


_SELECT = sa.text(
    "SELECT d.id, d.tenant_id, d.folder_id, v.number, v.title, v.document_type, v.document_date, v.tags, "
    "v.field_values FROM ged_documents d JOIN ged_versions v ON v.document_id = d.id "
    "AND v.number = d.current_version WHERE d.deleted_at IS NULL AND d.id > :after "
    "AND NOT EXISTS (SELECT 1 FROM ged_search s WHERE s.document_id = d.id) ORDER BY d.id LIMIT :limit"
)


def _populate() -> None:
    """Index the live documents from their metadata, in batches (bounded memory). Their extracted text is
    added by ``socle ged reindex``: a migration does not depend on the object store being reachable."""
    bind = op.get_bind()
    search = sa.table(
        "ged_search",
        *(sa.column(name) for name in ("document_id", "tenant_id", "version", "title", "document_type", "folder_id")),
        sa.column("document_date", sa.Date),
        sa.column("tags", sa.JSON),
        sa.column("field_values", sa.JSON),
        sa.column("terms"),
        sa.column("updated_at", socle.db.UTCDateTime),
    )
    select = _SELECT.columns(
        sa.column("id"),
        sa.column("tenant_id"),
        sa.column("folder_id"),
        sa.column("number"),
        sa.column("title"),
        sa.column("document_type"),
        sa.column("document_date", sa.Date),
        sa.column("tags", sa.JSON),
        sa.column("field_values", sa.JSON),
    )
    after = ""
    while rows := bind.execute(select, {"after": after, "limit": BATCH}).all():
        now = socle.db.utcnow()
        bind.execute(
            search.insert(),
            [
                {
                    "document_id": row.id,
                    "tenant_id": row.tenant_id,
                    "version": row.number,
                    "title": row.title,
                    "document_type": row.document_type,
                    "folder_id": row.folder_id,
                    "document_date": row.document_date,
                    "tags": row.tags or [],
                    "field_values": row.field_values or {},
                    "terms": build_terms(row.title, row.tags, row.document_type, row.field_values, ""),
                    "updated_at": now,
                }
                for row in rows
            ],
        )
        after = rows[-1].id
