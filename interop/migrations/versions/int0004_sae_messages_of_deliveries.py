"""every distinct SEDA message of a delivery (a corrected reply after the first)

Revision ID: int0004
Revises: int0003
Create Date: 2026-12-02 16:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "int0004"
down_revision: str | None = "int0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing deliveries keep NULL: their first messages are still in acknowledgement_key / reply_key, and the
    # service reads them from there the first time it receives another message for the delivery.
    with op.batch_alter_table("interop_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sae_messages", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("interop_deliveries", schema=None) as batch_op:
        batch_op.drop_column("sae_messages")
