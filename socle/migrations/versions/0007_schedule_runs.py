"""the periods of the built-in periodic tasks already taken: a task's jobs are enqueued once per period

The primary key (task, period) is the guard: several workers' sweepers schedule at once, the first to insert a
period's row enqueues its jobs, the others meet the key (see socle.schedule).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import socle.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "schedule_runs",
        sa.Column("task", sa.String(length=100), nullable=False),
        sa.Column("period", sa.String(length=40), nullable=False),
        sa.Column("due_at", socle.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("enqueued_at", socle.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("jobs", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("task", "period"),
    )


def downgrade() -> None:
    op.drop_table("schedule_runs")
