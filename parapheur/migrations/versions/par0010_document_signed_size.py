"""a document keeps the size of its signed copy

The folder's page asked the store for the signed copy's size at each view. The size is now kept when the
copy is stored. Documents signed before this revision get none here (a migration does not read the object
store): the page asks the store for them, as before, and the folder's next act keeps their size.

Revision ID: par0010
Revises: par0009
Create Date: 2026-12-05 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "par0010"
down_revision: str | None = "par0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("parapheur_documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signed_size", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("parapheur_documents", schema=None) as batch_op:
        batch_op.drop_column("signed_size")
