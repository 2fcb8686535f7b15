"""search keys in the full-text index: tenant, type, folder, tags, dates, head terms, sample marks

Search decides its filters, relevance tiers and samples in the index rather than row by row (ged.search).
Each entry gets ``keys`` (ged.indexing.search_keys) and ``type_id``. PostgreSQL: a stored ``vector``
(``to_tsvector('simple', terms)`` plus the keys, prefixed with « ~ »), kept by a trigger, with a GIN index
that replaces the expression index of ged0003; ``terms`` and ``vector`` go out of line (TOAST) so that the
rows search reads stay small. SQLite: the FTS5 table gets a second column, ``keys``.

Revision ID: ged0004
Revises: ged0003
Create Date: 2026-12-01 07:35:23.895069
"""

import json
from collections.abc import Sequence
from datetime import date
from typing import Any, Literal

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from ged.indexing import head_terms, search_keys

revision: str = "ged0004"
down_revision: str | None = "ged0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 500

PG_FUNCTION = """
CREATE FUNCTION ged_search_vector() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.vector := to_tsvector('simple'::regconfig, NEW.terms)
        || array_to_tsvector(string_to_array('~' || replace(NEW.keys, ' ', ' ~'), ' '));
    RETURN NEW;
END
$$
"""
PG_TRIGGER = (
    "CREATE TRIGGER ged_search_vector BEFORE INSERT OR UPDATE OF terms, keys ON ged_search "
    "FOR EACH ROW EXECUTE FUNCTION ged_search_vector()"
)
# A row longer than toast_tuple_target has its largest EXTENDED values (vector, then terms) compressed and moved
# out of line until it fits: the rows that search reads keep only their metadata and keys, several times more
# of them per page. The metadata columns are MAIN: compressed if need be, moved out only as a last resort
# (reading a moved-out title or keys costs a TOAST lookup per row).
PG_STORAGE = (
    "ALTER TABLE ged_search SET (toast_tuple_target = 1024)",
    *(
        f"ALTER TABLE ged_search ALTER COLUMN {column} SET STORAGE MAIN"
        for column in ("title", "tags", "field_values", "keys")
    ),
)

SQLITE_ORDER = (
    "document_id",
    "tenant_id",
    "version",
    "title",
    "document_type",
    "folder_id",
    "type_id",
    "document_date",
    "tags",
    "field_values",
    "keys",
    "updated_at",
    "vector",
    "terms",
)
SQLITE_FTS = "CREATE VIRTUAL TABLE ged_search_fts USING fts5({columns}, content='ged_search', content_rowid='rowid')"
SQLITE_TRIGGERS = (
    "CREATE TRIGGER ged_search_fts_insert AFTER INSERT ON ged_search BEGIN "
    "INSERT INTO ged_search_fts(rowid, {columns}) VALUES (new.rowid, {new}); END",
    "CREATE TRIGGER ged_search_fts_delete AFTER DELETE ON ged_search BEGIN "
    "INSERT INTO ged_search_fts(ged_search_fts, rowid, {columns}) VALUES ('delete', old.rowid, {old}); END",
    "CREATE TRIGGER ged_search_fts_update AFTER UPDATE ON ged_search BEGIN "
    "INSERT INTO ged_search_fts(ged_search_fts, rowid, {columns}) VALUES ('delete', old.rowid, {old}); "
    "INSERT INTO ged_search_fts(rowid, {columns}) VALUES (new.rowid, {new}); END",
)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("DROP INDEX IF EXISTS ix_ged_search_terms_fts")
    else:
        _drop_sqlite_fts()
    with op.batch_alter_table("ged_search", schema=None) as batch_op:
        batch_op.add_column(sa.Column("type_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("keys", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("vector", postgresql.TSVECTOR().with_variant(sa.Text(), "sqlite"), nullable=True))
        batch_op.drop_index("ix_ged_search_tenant_type")
    if postgres:
        for statement in (*PG_STORAGE, PG_FUNCTION, PG_TRIGGER):
            op.execute(statement)
    _fill_keys()
    # SQLite keeps a row's columns in order, the part past a page in overflow pages: with ``terms`` (kilobytes)
    # last, the columns search reads for each match are all on the row's first page.
    recreate: Literal["auto", "always"] = "auto" if postgres else "always"
    reordering: list[tuple[str, ...]] | None = None if postgres else [SQLITE_ORDER]
    with op.batch_alter_table("ged_search", recreate=recreate, partial_reordering=reordering) as batch_op:
        batch_op.create_index("ix_ged_search_vector", ["vector"], unique=False, postgresql_using="gin")
    if not postgres:
        _create_sqlite_fts(("terms", "keys"))


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("DROP TRIGGER IF EXISTS ged_search_vector ON ged_search")
        op.execute("DROP FUNCTION IF EXISTS ged_search_vector()")
        op.execute("ALTER TABLE ged_search RESET (toast_tuple_target)")
    else:
        _drop_sqlite_fts()
    with op.batch_alter_table("ged_search", schema=None) as batch_op:
        batch_op.drop_index("ix_ged_search_vector", postgresql_using="gin")
        batch_op.create_index("ix_ged_search_tenant_type", ["tenant_id", "document_type"], unique=False)
        batch_op.drop_column("vector")
        batch_op.drop_column("keys")
        batch_op.drop_column("type_id")
    if postgres:
        op.execute(
            "CREATE INDEX ix_ged_search_terms_fts ON ged_search USING gin (to_tsvector('simple'::regconfig, terms))"
        )
    else:
        _create_sqlite_fts(("terms",))


def _drop_sqlite_fts() -> None:
    for trigger in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS ged_search_fts_{trigger}")
    op.execute("DROP TABLE IF EXISTS ged_search_vocab")
    op.execute("DROP TABLE IF EXISTS ged_search_fts")


def _create_sqlite_fts(columns: tuple[str, ...]) -> None:
    names = ", ".join(columns)
    values = {
        "columns": names,
        "new": ", ".join(f"new.{column}" for column in columns),
        "old": ", ".join(f"old.{column}" for column in columns),
    }
    op.execute(SQLITE_FTS.format(columns=names))
    for statement in SQLITE_TRIGGERS:
        op.execute(statement.format(**values))
    # The table was rebuilt around the columns (batch mode may have renumbered rowids): index it afresh.
    op.execute("INSERT INTO ged_search_fts(ged_search_fts) VALUES ('rebuild')")
    if "keys" in columns:
        # How many entries have each token: search asks the index only about the selective keys.
        op.execute("CREATE VIRTUAL TABLE ged_search_vocab USING fts5vocab(ged_search_fts, 'row')")


_ENTRIES = sa.text(
    "SELECT s.document_id, s.tenant_id, s.title, s.document_type, s.folder_id, s.document_date, s.tags, "
    "s.field_values, d.type_id FROM ged_search s JOIN ged_documents d ON d.id = s.document_id "
    "WHERE s.document_id > :after ORDER BY s.document_id LIMIT :limit"
).columns(
    sa.column("document_id"),
    sa.column("tenant_id"),
    sa.column("title"),
    sa.column("document_type"),
    sa.column("folder_id"),
    sa.column("document_date", sa.Date),
    sa.column("tags", sa.JSON),
    sa.column("field_values", sa.JSON),
    sa.column("type_id"),
)
_SET_KEYS = sa.text("UPDATE ged_search SET keys = :keys, type_id = :type_id WHERE document_id = :document_id")


def _fill_keys() -> None:
    """Keys and type of every entry, in batches (bounded memory); on PostgreSQL the trigger makes the vector."""
    bind = op.get_bind()
    after = ""
    while rows := bind.execute(_ENTRIES, {"after": after, "limit": BATCH}).all():
        bind.execute(_SET_KEYS, [_keys_of(row) for row in rows])
        after = rows[-1].document_id


def _keys_of(row: Any) -> dict[str, Any]:
    tags = _json(row.tags) or []
    day = row.document_date if isinstance(row.document_date, date | None) else date.fromisoformat(row.document_date)
    head = head_terms(row.title, tags, row.document_type, _json(row.field_values) or {})
    keys = search_keys(
        row.document_id,
        tenant_id=row.tenant_id,
        type_id=row.type_id,
        folder_id=row.folder_id,
        document_type=row.document_type,
        tags=tags,
        document_date=day,
        head=head,
    )
    return {"keys": keys, "type_id": row.type_id, "document_id": row.document_id}


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
