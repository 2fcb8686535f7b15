"""a sous-type names the GED folder its signed documents are filed in

A folder created by upload could be filed in the GED once signed (par0004) with no folder of the plan: the
GED's rights then left it open to every user of the collectivité. Filing now needs the sous-type's folder;
existing sous-types have none until an administrator sets it.

Revision ID: par0008
Revises: par0007
Create Date: 2026-12-03 07:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "par0008"
down_revision: str | None = "par0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("parapheur_subtypes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ged_folder", sa.String(length=1000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("parapheur_subtypes", schema=None) as batch_op:
        batch_op.drop_column("ged_folder")
