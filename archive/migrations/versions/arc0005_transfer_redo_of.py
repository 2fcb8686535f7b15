"""a transfer's link to the transfer it does again

Revision ID: arc0005
Revises: arc0004
Create Date: 2026-12-10 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "arc0005"
down_revision: str | None = "arc0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REDO_OF_FK = "fk_archive_transfers_redo_of"


def upgrade() -> None:
    # Nullable: a first transfer redoes nothing, and the redos made before were never linked.
    with op.batch_alter_table("archive_transfers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("redo_of", sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f("ix_archive_transfers_redo_of"), ["redo_of"], unique=False)
        batch_op.create_foreign_key(REDO_OF_FK, "archive_transfers", ["redo_of"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("archive_transfers", schema=None) as batch_op:
        batch_op.drop_constraint(REDO_OF_FK, type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_archive_transfers_redo_of"))
        batch_op.drop_column("redo_of")
