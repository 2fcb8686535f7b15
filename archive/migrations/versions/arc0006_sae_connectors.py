"""each tenant's SAE connectors, as the interop service tells them

Revision ID: arc0006
Revises: arc0005
Create Date: 2026-12-12 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import socle.db

revision: str = "arc0006"
down_revision: str | None = "arc0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Empty: the lists come from the interop service, at the next change of a connector or from
    # « socle interop sae-connectors »; until then the transfer page keeps its text field.
    op.create_table(
        "archive_sae_connectors",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("connectors", sa.JSON(), nullable=False),
        sa.Column("updated_at", socle.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id"),
    )


def downgrade() -> None:
    op.drop_table("archive_sae_connectors")
