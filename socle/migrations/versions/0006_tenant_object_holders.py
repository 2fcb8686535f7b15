"""which service holds each registered object: the GED must not delete bytes another service still holds

The rows already there get the holder "" (unknown); each service then claims its own (ged0008, par0007, after
this revision: the kernel's migrations run first). Rows no service claims stay unknown, which keeps their
objects in the store. The primary key becomes (tenant_id, object_key, holder): SQLite rebuilds the table,
PostgreSQL swaps the constraint.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import socle.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PRIMARY_KEY = "tenant_objects_pkey"  # PostgreSQL's own name for 0005's unnamed key, given on SQLite too

# Back to one row per (tenant, key): the smallest holder's row stays, the other holders' go.
_ONE_ROW_PER_PAIR = sa.text(
    "DELETE FROM tenant_objects WHERE EXISTS (SELECT 1 FROM tenant_objects o"
    " WHERE o.tenant_id = tenant_objects.tenant_id AND o.object_key = tenant_objects.object_key"
    " AND o.holder < tenant_objects.holder)"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_on_sqlite(holder=True)
        return
    op.add_column("tenant_objects", sa.Column("holder", sa.String(length=20), nullable=False, server_default=""))
    op.drop_constraint(_PRIMARY_KEY, "tenant_objects", type_="primary")
    op.create_primary_key(_PRIMARY_KEY, "tenant_objects", ["tenant_id", "object_key", "holder"])


def downgrade() -> None:
    op.get_bind().execute(_ONE_ROW_PER_PAIR)
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_on_sqlite(holder=False)
        return
    op.drop_constraint(_PRIMARY_KEY, "tenant_objects", type_="primary")
    op.drop_column("tenant_objects", "holder")
    op.create_primary_key(_PRIMARY_KEY, "tenant_objects", ["tenant_id", "object_key"])


def _rebuild_on_sqlite(*, holder: bool) -> None:
    """SQLite cannot change a primary key: a new table, the rows copied (holder "" on the way up), the old one
    dropped, the new one renamed. No foreign key points at the table."""
    columns = [
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("object_key", sa.String(length=64), nullable=False),
        *([sa.Column("holder", sa.String(length=20), nullable=False, server_default="")] if holder else []),
        sa.Column("created_at", socle.db.UTCDateTime(timezone=True), nullable=False),
    ]
    key = ["tenant_id", "object_key", *(["holder"] if holder else [])]
    op.create_table("_tenant_objects_rebuilt", *columns, sa.PrimaryKeyConstraint(*key, name=_PRIMARY_KEY))
    op.execute(
        "INSERT INTO _tenant_objects_rebuilt (tenant_id, object_key, created_at)"
        " SELECT tenant_id, object_key, created_at FROM tenant_objects"
    )
    op.drop_table("tenant_objects")
    op.rename_table("_tenant_objects_rebuilt", "tenant_objects")
