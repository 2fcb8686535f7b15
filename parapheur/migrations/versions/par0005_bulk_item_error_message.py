"""a bulk item's failure kept translatable beside its French text

Revision ID: par0005
Revises: par0004
Create Date: 2026-12-02 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "par0005"
down_revision: str | None = "par0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: the failures recorded before keep their French text only, shown as it is.
    with op.batch_alter_table("parapheur_bulk_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_message", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("parapheur_bulk_items", schema=None) as batch_op:
        batch_op.drop_column("error_message")
