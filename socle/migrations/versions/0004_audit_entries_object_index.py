"""an index on each audit entry's object: one document's history without reading the whole log

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_audit_entries_object", "audit_entries", ["tenant_id", "object_type", "object_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_entries_object", table_name="audit_entries")
