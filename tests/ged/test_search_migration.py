"""Documents filed before the search keys (ged0004) are found by every filter once the migration has run:
their entries get their keys (tenant, type, folder, tags, dates, head terms) and, on PostgreSQL, their vector;
on SQLite the FTS5 table is rebuilt with its keys column."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session

from ged.search import SearchQuery, search
from socle.auth import Principal
from socle.db import engine_for
from socle.migrating import PACKAGES, alembic_config, upgrade_all


def _file_old_documents(url: str, tenant_id: str) -> dict[str, str]:
    """Rows as the GED wrote them at ged0002, before any search entry existed."""
    now = datetime.now(UTC).replace(tzinfo=None)
    type_id, folder_id = str(uuid.uuid4()), str(uuid.uuid4())
    ids = {"budget": str(uuid.uuid4()), "voirie": str(uuid.uuid4())}
    documents = [
        (ids["budget"], "Délibération sur le budget primitif", "délibération", date(2023, 3, 14), ["finances"]),
        (ids["voirie"], "Arrêté de voirie", "arrêté", date(2021, 7, 2), ["voirie"]),
    ]
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO ged_document_types (id, tenant_id, code, name, fields, schema_version, dua_event, "
                "final_action, created_at, updated_at) VALUES (:id, :tenant, 'deliberation', 'Délibération', '[]', "
                "1, 'creation', 'keep', :now, :now)"
            ),
            {"id": type_id, "tenant": tenant_id, "now": now},
        )
        connection.execute(
            sa.text(
                "INSERT INTO ged_folders (id, tenant_id, name, path, created_by, created_at) "
                "VALUES (:id, :tenant, 'Finances', :id, 'admin', :now)"
            ),
            {"id": folder_id, "tenant": tenant_id, "now": now},
        )
        for document_id, title, label, day, tags in documents:
            typed = label == "délibération"
            connection.execute(
                sa.text(
                    "INSERT INTO ged_documents (id, tenant_id, current_version, created_by, created_at, updated_at, "
                    "folder_id, type_id) VALUES (:id, :tenant, 1, 'agent', :now, :now, :folder, :type)"
                ),
                {
                    "id": document_id,
                    "tenant": tenant_id,
                    "now": now,
                    "folder": folder_id if typed else None,
                    "type": type_id if typed else None,
                },
            )
            connection.execute(
                sa.text(
                    "INSERT INTO ged_versions (id, document_id, number, object_key, size, media_type, filename, "
                    "title, document_type, document_date, tags, author, created_at) VALUES (:id, :document, 1, "
                    ":key, 1, 'application/pdf', 'acte.pdf', :title, :label, :day, :tags, 'agent', :now)"
                ),
                {
                    "id": str(uuid.uuid4()),
                    "document": document_id,
                    "key": "0" * 64,
                    "title": title,
                    "label": label,
                    "day": day,
                    "tags": json.dumps(tags),
                    "now": now,
                },
            )
    engine.dispose()
    return {**ids, "folder": folder_id}


def test_documents_filed_before_the_keys_are_found_by_every_filter(old_database_url: str) -> None:
    url = old_database_url
    for package in PACKAGES:
        if package != "ged":
            command.upgrade(alembic_config(package, url), "head")
    command.upgrade(alembic_config("ged", url), "ged0002")
    tenant_id = str(uuid.uuid4())
    ids = _file_old_documents(url, tenant_id)
    upgrade_all(url)  # ged0003 makes the entries, ged0004 their keys
    admin = Principal(tenant_id, "t", "Commune", str(uuid.uuid4()), "admin", "admin", frozenset({"admin"}))

    def found(**criteria: Any) -> set[str]:
        with Session(engine_for(url)) as session:
            result = search(session, admin, SearchQuery(**criteria))
        by_id = {value: key for key, value in ids.items()}
        return {by_id[hit.document_id] for hit in result.hits}

    assert found(q="budget primitif") == {"budget"}
    assert found(type="deliberation") == {"budget"}
    assert found(document_type="arrêté") == {"voirie"}
    assert found(folder_id=ids["folder"]) == {"budget"}
    assert found(tags=["voirie"]) == {"voirie"}
    assert found(date_from=date(2023, 1, 1)) == {"budget"}
    assert found(q="délibération arrêté") == set()
    assert found() == {"budget", "voirie"}
