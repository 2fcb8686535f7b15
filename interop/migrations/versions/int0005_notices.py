"""mails sent about flows and TdT documents (interop.notices), each once

Revision ID: int0005
Revises: int0004
Create Date: 2026-12-04 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import socle.db

revision: str = "int0005"
down_revision: str | None = "int0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "interop_notices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("flow_id", sa.String(length=36), nullable=True),
        sa.Column("sent_at", socle.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("interop_notices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_interop_notices_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("interop_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_interop_notices_tenant_id"))
    op.drop_table("interop_notices")
