"""a DUA that starts from the document's creation starts on the day it was filed in Paris time, not in UTC

Until now ``dua_ends_on`` was counted from ``created_at``'s UTC date: a document filed between midnight and
1 or 2 a.m. in Paris (22:00 or 23:00 to midnight UTC) had its DUA start, and end, one day early. This revision
recomputes the end of those documents, as ``ged.types.dua_ends_on`` does now (the Paris date of ``created_at``
plus the type's months, the day clamped to the month's end). Other DUA starts (the document's date, a date
field) are plain dates and do not change.

The conversion needs the time zone database, which SQLite does not have: the rows go through Python, a page
at a time, and only those whose end changes are written. The rule is written here rather than imported, so
that the revision keeps doing what it did whatever the code becomes. Running it again changes nothing.

Revision ID: ged0009
Revises: ged0008
Create Date: 2026-12-02 19:00:00.000000
"""

import calendar
from collections.abc import Sequence
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision: str = "ged0009"
down_revision: str | None = "ged0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PARIS = ZoneInfo("Europe/Paris")
_PAGE = 1000

_documents = sa.table(
    "ged_documents",
    sa.column("id", sa.String(36)),
    sa.column("type_id", sa.String(36)),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("dua_ends_on", sa.Date()),
)
_types = sa.table(
    "ged_document_types",
    sa.column("id", sa.String(36)),
    sa.column("dua_months", sa.Integer()),
    sa.column("dua_event", sa.String(100)),
)


def _add_months(start: date, months: int) -> date:
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def _paris_date(moment: datetime) -> date:
    # SQLite gives the stored UTC instant back without its offset; PostgreSQL gives it with one.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(_PARIS).date()


def upgrade() -> None:
    connection = op.get_bind()
    query = (
        sa.select(_documents.c.id, _documents.c.created_at, _documents.c.dua_ends_on, _types.c.dua_months)
        .join(_types, _types.c.id == _documents.c.type_id)
        .where(_types.c.dua_event == "creation", _types.c.dua_months.is_not(None), _documents.c.created_at.is_not(None))
        .order_by(_documents.c.id)
        .limit(_PAGE)
    )
    update = (
        sa.update(_documents)
        .where(_documents.c.id == sa.bindparam("document_id"))
        .values(dua_ends_on=sa.bindparam("ends"))
    )
    last = ""
    while True:
        rows = connection.execute(query.where(_documents.c.id > last)).all()
        if not rows:
            break
        changed = [
            {"document_id": row.id, "ends": ends}
            for row in rows
            if (ends := _add_months(_paris_date(row.created_at), row.dua_months)) != row.dua_ends_on
        ]
        if changed:
            connection.execute(update, changed)
        last = rows[-1].id


def downgrade() -> None:
    # The UTC dates were wrong: the corrected ends stay (an earlier revision's code recomputes a document's end
    # at its next write anyway).
    pass
