"""a transfer's archival agreement, a profile's identifier in the SAE

Revision ID: arc0004
Revises: arc0003
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "arc0004"
down_revision: str | None = "arc0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: an SAE may need no entry contract, and the transfers made before never had one.
    with op.batch_alter_table("archive_transfers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("archival_agreement", sa.String(length=100), nullable=True))

    # The profiles uploaded before had no identifier: their name is the default one, as for new uploads.
    with op.batch_alter_table("archive_profiles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identifier", sa.String(length=100), nullable=True))
    op.execute("UPDATE archive_profiles SET identifier = name")
    with op.batch_alter_table("archive_profiles", schema=None) as batch_op:
        batch_op.alter_column("identifier", existing_type=sa.String(length=100), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("archive_profiles", schema=None) as batch_op:
        batch_op.drop_column("identifier")

    with op.batch_alter_table("archive_transfers", schema=None) as batch_op:
        batch_op.drop_column("archival_agreement")
