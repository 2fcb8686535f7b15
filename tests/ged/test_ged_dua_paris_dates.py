"""A DUA that starts from the document's creation starts on the day it was filed in Paris, not in UTC: a
document filed at 00:30 in Paris (22:30 or 23:30 UTC the day before) has its DUA start, and end, on the Paris
day. Documents filed before the fix get their end recomputed by the migration ged0009."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import command
from ga_helpers import make_type, new_document
from sqlalchemy import update

from ged.models import Document, DocumentType
from ged.types import dua_ends_on, dua_start
from socle.dates import french_date
from socle.db import transaction
from socle.migrating import PACKAGES, alembic_config, upgrade_all

from conftest import Kit

WINTER = datetime(2026, 3, 14, 23, 30, tzinfo=UTC)  # 00:30 CET on 15 March
SUMMER = datetime(2026, 7, 14, 22, 30, tzinfo=UTC)  # 00:30 CEST on 15 July
SUMMER_EVENING = datetime(2026, 7, 14, 21, 30, tzinfo=UTC)  # 23:30 CEST on 14 July: still the 14th


def _ends(created_at: datetime, months: int = 12) -> date | None:
    document_type = DocumentType(dua_months=months, dua_event="creation")
    return dua_ends_on(Document(created_at=created_at), document_type)


def test_paris_date_of_an_instant() -> None:
    assert french_date(WINTER) == date(2026, 3, 15)
    assert french_date(SUMMER) == date(2026, 7, 15)
    assert french_date(SUMMER_EVENING) == date(2026, 7, 14)
    assert french_date(datetime(2026, 3, 14, 22, 59, tzinfo=UTC)) == date(2026, 3, 14)  # 23:59 CET


def test_dua_from_creation_starts_on_the_paris_day() -> None:
    assert dua_start(Document(created_at=WINTER), "creation") == date(2026, 3, 15)
    assert _ends(WINTER) == date(2027, 3, 15)
    assert _ends(SUMMER) == date(2027, 7, 15)
    assert _ends(SUMMER_EVENING) == date(2027, 7, 14)
    # 31 January in Paris (23:30 UTC on the 30th) plus one month: the end of February.
    assert _ends(datetime(2024, 1, 30, 23, 30, tzinfo=UTC), 1) == date(2024, 2, 29)


def test_recomputed_end_shown_by_the_api_is_the_paris_one(kit: Kit) -> None:
    kind = make_type(kit, "courrier", dua_months=12, dua_event="creation", final_action="destroy")
    document = new_document(kit, type="courrier")
    with transaction() as session:
        session.execute(update(Document).where(Document.id == document["id"]).values(created_at=WINTER))
    # A change of the type's rule recomputes the end of its documents.
    response = kit["admin"].patch(f"/ged/types/{kind['id']}", json={"dua_months": 24})
    assert response.status_code == 200, response.text
    shown = kit["agent"].get(f"/ged/documents/{document['id']}")
    assert shown.status_code == 200, shown.text
    assert shown.json()["dua_ends_on"] == "2028-03-15"


def test_migration_recomputes_the_ends_counted_from_the_utc_date(old_database_url: str) -> None:
    url = old_database_url
    for package in PACKAGES:
        if package != "ged":
            command.upgrade(alembic_config(package, url), "head")
    command.upgrade(alembic_config("ged", url), "ged0008")
    tenant_id, now = str(uuid.uuid4()), datetime(2026, 12, 1, 12, tzinfo=UTC)
    creation, dated = str(uuid.uuid4()), str(uuid.uuid4())
    # Each document: its type, created_at, the end the old code stored, the end expected after ged0009.
    documents = {
        "winter": (creation, WINTER, date(2027, 3, 14), date(2027, 3, 15)),
        "summer": (creation, SUMMER, date(2027, 7, 14), date(2027, 7, 15)),
        "evening": (creation, SUMMER_EVENING, date(2027, 7, 14), date(2027, 7, 14)),
        "dated": (dated, WINTER, date(2030, 1, 1), date(2030, 1, 1)),  # starts from the document's date
    }
    ids = {name: str(uuid.uuid4()) for name in documents}
    instant = sa.DateTime(timezone=True)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for type_id, event in ((creation, "creation"), (dated, "document_date")):
            connection.execute(
                sa.text(
                    "INSERT INTO ged_document_types (id, tenant_id, code, name, fields, schema_version, dua_months, "
                    "dua_event, final_action, created_at, updated_at) VALUES (:id, :tenant, :code, 'Type', '[]', 1, "
                    "12, :event, 'destroy', :now, :now)"
                ).bindparams(sa.bindparam("now", type_=instant)),
                {"id": type_id, "tenant": tenant_id, "code": event, "event": event, "now": now},
            )
        for name, (type_id, created_at, old_end, _) in documents.items():
            connection.execute(
                sa.text(
                    "INSERT INTO ged_documents (id, tenant_id, current_version, created_by, created_at, updated_at, "
                    "type_id, dua_ends_on) VALUES (:id, :tenant, 1, 'agent', :created, :now, :type, :ends)"
                ).bindparams(sa.bindparam("created", type_=instant), sa.bindparam("now", type_=instant)),
                {
                    "id": ids[name],
                    "tenant": tenant_id,
                    "created": created_at,
                    "now": now,
                    "type": type_id,
                    "ends": old_end,
                },
            )
    engine.dispose()

    upgrade_all(url)
    upgrade_all(url)  # nothing left to do: the revision is not run twice, and would change nothing

    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT id, dua_ends_on FROM ged_documents WHERE tenant_id = :tenant").columns(
                sa.column("id", sa.String()), sa.column("dua_ends_on", sa.Date())
            ),
            {"tenant": tenant_id},
        ).all()
    engine.dispose()
    ends = {row.id: row.dua_ends_on for row in rows}
    assert {name: ends[ids[name]] for name in documents} == {name: new for name, (*_, new) in documents.items()}
