"""folders created by upload may be filed in the GED once signed

Revision ID: par0004
Revises: par0003
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "par0004"
down_revision: str | None = "par0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing folders keep their behaviour: not filed (server default false).
    with op.batch_alter_table("parapheur_folders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ged_filing", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("parapheur_folders", schema=None) as batch_op:
        batch_op.drop_column("ged_filing")
