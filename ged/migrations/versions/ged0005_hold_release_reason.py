"""a hold keeps why it was lifted

Revision ID: ged0005
Revises: ged0004
Create Date: 2026-12-02 10:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ged0005"
down_revision: str | None = "ged0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: the holds lifted before said no reason (their audit entries say who and when).
    with op.batch_alter_table("ged_holds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("release_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ged_holds", schema=None) as batch_op:
        batch_op.drop_column("release_reason")
