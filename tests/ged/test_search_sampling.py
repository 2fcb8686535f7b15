"""GED search beyond its exact reading: a uniform sample estimates the total and the facets, and the page
comes from the rows before a cut placed with the sample (or from the database's sort). On both backends, the
page must be the one an exact reading gives, for every sort, page depth and filter, and for a user with
fewer rights. The sampling knobs are made small so that a few hundred documents are « many »."""

from __future__ import annotations

import io
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

import ged.search
from ged.indexing import index_document
from ged.models import Document, Folder, Group, Permission, Version
from ged.search import SearchQuery, SearchResult, search
from socle.auth import Principal, create_tenant
from socle.db import engine_for, reset_engines
from socle.storage import get_store

from conftest import migrate

WORDS = ["budget", "voirie", "cantine", "école", "travaux", "marché"]
TAGS = ["finances", "voirie", "enfance", "travaux"]
DOCUMENTS = 800
OTHERS = 300
SMALL = {
    "EXACT_UP_TO": 30,
    "SAMPLE_TARGET": 25,
    "SAMPLE_CAP": 100,
    "SAMPLE_MIN": 8,
    "PROBE_SHARE": 16,
}


@dataclass
class Corpus:
    session: Session
    admin: Principal
    agent: Principal

    def run(self, principal: Principal, **criteria: Any) -> SearchResult:
        return search(self.session, principal, SearchQuery(**criteria))


def _principal(tenant_id: str, username: str, roles: set[str]) -> Principal:
    return Principal(tenant_id, "t", "Commune", str(uuid.uuid4()), username, username, frozenset(roles))


def _populate(session: Session) -> Corpus:
    # Ids drawn from a seeded generator: which documents are in which sample is the same at every run.
    rng = random.Random(20261201)
    slug = f"s-{uuid.uuid4().hex[:10]}"
    tenant = create_tenant(session, slug, f"Commune {slug}")
    session.flush()
    folders = []
    for name in ("Finances", "Voirie", "Ressources humaines"):
        folder = Folder(id=str(uuid.UUID(int=rng.getrandbits(128), version=4)), tenant_id=tenant.id, name=name)
        folder.created_by, folder.path = "admin", folder.id
        folders.append(folder)
        session.add(folder)
    staff = Group(tenant_id=tenant.id, name="rh")
    session.add(staff)
    session.flush()
    session.add(
        Permission(
            tenant_id=tenant.id, group_id=staff.id, target_kind="folder", target_id=folders[2].id, rights=["read"]
        )
    )
    store = get_store()
    texts = [store.put(io.BytesIO(f"Rapport sur {word} et le reste.".encode())).key for word in WORDS]
    # Another collectivité's documents say the same words: never counted, never found.
    other = create_tenant(session, f"{slug}-b", "Autre commune")
    session.flush()
    for number in range(DOCUMENTS + OTHERS):
        first, second = rng.sample(WORDS, 2)
        document = Document(
            id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            tenant_id=tenant.id if number < DOCUMENTS else other.id,
            created_by="agent",
            current_version=1,
            folder_id=rng.choice(folders).id if number < DOCUMENTS else None,
        )
        day = date(2015, 1, 1) + timedelta(days=rng.randint(0, 3000)) if rng.random() < 0.9 else None
        document.versions.append(
            Version(
                number=1,
                object_key="0" * 64,
                size=1,
                media_type="application/pdf",
                filename="acte.pdf",
                title=f"Délibération {first} {second} n° {rng.randint(1, 40)}",
                document_type=rng.choice(["délibération", "arrêté"]),
                document_date=day,
                tags=rng.sample(TAGS, rng.randint(0, 2)),
                author="agent",
                field_values={},
                text_key=rng.choice(texts),
                text_status="done",
            )
        )
        session.add(document)
        session.flush()
        index_document(session, document)
    session.commit()
    return Corpus(session, _principal(tenant.id, "admin", {"admin"}), _principal(tenant.id, "agent", {"agent"}))


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def corpus(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sampling') / 'search.db'}"
    else:
        url = request.getfixturevalue("postgres_url").replace("postgresql://", "postgresql+psycopg://")
    migrate(url)
    session = Session(engine_for(url))
    try:
        yield _populate(session)
    finally:
        session.close()
        reset_engines()


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name, value in SMALL.items():
        monkeypatch.setattr(f"ged.search.{name}", value)
    yield monkeypatch


def _database_sorts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the times the page is left to the database's sort."""
    calls: list[int] = []
    original = ged.search._page_in_database

    def counted(*args: Any, **kwargs: Any) -> list[str]:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr("ged.search._page_in_database", counted)
    return calls


FAST: list[dict[str, Any]] = [
    {"q": "budget"},
    {"q": "budget voirie"},
    {"q": '"délibération budget"'},
    {"q": "rapport"},  # only in the texts: every match has rank 0
    {"q": "délibération", "limit": 5, "offset": 10},
    {"q": "budget", "sort": "date"},
    {"sort": "date"},
    {},
    {"q": "budget", "document_type": "arrêté"},
    {"q": "délibération", "tags": ["finances"]},
    {"q": "délibération", "date_from": date(2016, 3, 15), "date_to": date(2022, 7, 31)},
]


@pytest.mark.parametrize("few_rows", [10, 10_000])  # the cut bounded by month keys, or by the rank alone
@pytest.mark.parametrize("criteria", FAST)
def test_a_sample_gives_the_exact_page_from_the_rows_before_a_cut(
    corpus: Corpus, criteria: dict[str, Any], few_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    for principal in (corpus.admin, corpus.agent):
        exact = corpus.run(principal, **criteria)
        assert exact.total > 2 * SMALL["EXACT_UP_TO"], "the corpus must be « large » for the patched knobs"
        with monkeypatch.context() as patch:
            for name, value in SMALL.items():
                patch.setattr(f"ged.search.{name}", value)
            patch.setattr("ged.search.FEW_ROWS", few_rows)
            in_database = _database_sorts(patch)
            sampled = corpus.run(principal, **criteria)
        assert sampled.hits == exact.hits
        assert in_database == []
        assert not sampled.facets_exact
        assert abs(sampled.total - exact.total) <= exact.total / 2
        if sampled.total_exact:  # counted by the index alone: it must be the tenant's exact count
            assert sampled.total == exact.total


@pytest.mark.parametrize(
    "criteria",
    [
        {"q": "budget", "sort": "title"},  # the sample cannot bound a sort by title
        {"q": "délibération", "limit": 20, "offset": 480},  # deeper than the sample can place
        {"sort": "title", "limit": 7, "offset": 3},
    ],
)
def test_what_a_sample_cannot_place_the_database_sorts(
    corpus: Corpus, criteria: dict[str, Any], small: pytest.MonkeyPatch
) -> None:
    in_database = _database_sorts(small)
    for principal in (corpus.admin, corpus.agent):
        with small.context() as patch:
            for name in SMALL:
                patch.setattr(f"ged.search.{name}", 10**6)  # exact
            exact = corpus.run(principal, **criteria)
        assert exact.total_exact
        sampled = corpus.run(principal, **criteria)
        assert sampled.hits == exact.hits
    assert len(in_database) == 2


def test_estimates_are_said_and_scaled(corpus: Corpus, small: pytest.MonkeyPatch) -> None:
    result = corpus.run(corpus.admin, q="délibération", document_type="arrêté", date_to=date(2022, 6, 15))
    assert not result.total_exact and not result.facets_exact
    # Every match has a type: the type facet's estimated counts add up to the estimated total.
    assert sum(value.count for value in result.facets["type"]) == result.total
    assert {value.value for value in result.facets["type"]} == {"arrêté"}


def test_the_exact_reading_says_so(corpus: Corpus) -> None:
    result = corpus.run(corpus.admin, q="budget voirie")
    assert result.total_exact and result.facets_exact
    assert result.total > 0
    assert result.total == sum(value.count for value in result.facets["type"])
