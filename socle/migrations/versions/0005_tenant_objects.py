"""which tenant holds which stored object: the shared store is content-addressed, a key proves nothing

The services fill the table for what they already hold (ged0007, par0006), after this revision: the kernel's
migrations run first (socle.migrating.upgrade_all).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import socle.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenant_objects",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("object_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", socle.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "object_key"),
    )


def downgrade() -> None:
    op.drop_table("tenant_objects")
