"""GED search and how its session and statements are bound: a session on the caller's connection (its
transaction) searches as one on the engine, and the row conditions' SQL text gets its parameters as
SQLAlchemy would send them, IN lists included."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from ged.indexing import index_document
from ged.models import Document, SearchEntry, Version
from ged.search import SearchQuery, _compiled, _SQLite, search
from socle.auth import Principal, create_tenant
from socle.db import engine_for, reset_engines

from conftest import migrate


@pytest.fixture
def postgres_engine_url(postgres_url: str) -> Iterator[str]:
    url = postgres_url.replace("postgresql://", "postgresql+psycopg://")
    migrate(url)
    yield url
    reset_engines()


@pytest.mark.integration
def test_a_session_on_a_connection_searches_on_postgresql(postgres_engine_url: str) -> None:
    # The index's statistics are cached per database URL: a Connection has none of its own, its engine does.
    with engine_for(postgres_engine_url).connect() as connection, Session(bind=connection) as session:
        slug = f"t-{uuid.uuid4().hex[:10]}"
        tenant = create_tenant(session, slug, f"Commune {slug}")
        session.flush()
        document = Document(tenant_id=tenant.id, created_by="agent", current_version=1)
        document.versions.append(
            Version(
                number=1,
                object_key="0" * 64,
                size=1,
                media_type="application/pdf",
                filename="acte.pdf",
                title="Délibération relative au budget primitif",
                document_type="deliberation",
                document_date=date(2024, 3, 12),
                tags=["budget"],
                author="agent",
                field_values={},
            )
        )
        session.add(document)
        session.flush()
        index_document(session, document)
        admin = Principal(tenant.id, slug, "Commune", str(uuid.uuid4()), "admin", "admin", frozenset({"admin"}))

        result = search(session, admin, SearchQuery(q="budget", tags=["budget"]))

        assert [hit.document_id for hit in result.hits] == [document.id]
        assert result.total == 1
        session.rollback()


def test_an_in_list_gets_its_type_conversion_like_any_parameter() -> None:
    # SQLite is sent dates as ISO text by the Date type: the values of an IN list, each a parameter of its own
    # once the list is written out, are converted as a single value is.
    session = Session(create_engine("sqlite://"))
    conditions = [
        SearchEntry.document_date.in_([date(2024, 3, 12), date(2023, 7, 1)]),
        SearchEntry.document_date >= date(2020, 1, 1),
    ]

    sql, params = _compiled(_SQLite(), session, conditions)

    assert "IN (:document_date_1_1, :document_date_1_2)" in sql
    assert params == {
        "document_date_1_1": "2024-03-12",
        "document_date_1_2": "2023-07-01",
        "document_date_2": "2020-01-01",
    }
