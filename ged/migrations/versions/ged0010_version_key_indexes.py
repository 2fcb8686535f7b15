"""index the versions' object keys (content and renditions)

Before deleting an object (purge, elimination), the GED asks whether any version of any document still needs
it: by its content key or one of its renditions' keys. Without these indexes each question scanned the whole
table, once per object: an elimination of 10,000 documents in a GED of a million versions read the table
50,000 times.

Revision ID: ged0010
Revises: ged0009
Create Date: 2026-12-03 07:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "ged0010"
down_revision: str | None = "ged0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("object_key", "text_key", "preview_key", "thumbnail_key", "pdfa_key")


def upgrade() -> None:
    with op.batch_alter_table("ged_versions", schema=None) as batch_op:
        for column in _COLUMNS:
            batch_op.create_index(batch_op.f(f"ix_ged_versions_{column}"), [column], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ged_versions", schema=None) as batch_op:
        for column in _COLUMNS:
            batch_op.drop_index(batch_op.f(f"ix_ged_versions_{column}"))
