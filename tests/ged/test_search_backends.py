"""GED search on both backends: the same documents give the same answers on SQLite (FTS5) and PostgreSQL
(GIN full-text index), for words, phrases, hostile queries, filters, facets, sorting, paging and rights."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from ged.indexing import index_document
from ged.models import Document, DocumentType, Folder, Group, GroupMember, Permission, SearchEntry, Version
from ged.search import FieldFilter, SearchQuery, search
from socle.auth import Principal, create_tenant
from socle.db import engine_for, reset_engines, utcnow
from socle.errors import InvalidInput, NotFound
from socle.storage import get_store

from conftest import migrate

FIELDS = [
    {"name": "montant", "label": "Montant", "kind": "decimal", "required": False, "choices": [], "retired": False},
    {"name": "numero", "label": "Numéro", "kind": "integer", "required": False, "choices": [], "retired": False},
    {"name": "urgent", "label": "Urgent", "kind": "boolean", "required": False, "choices": [], "retired": False},
    {"name": "seance", "label": "Séance", "kind": "date", "required": False, "choices": [], "retired": False},
    {"name": "service", "label": "Service", "kind": "text", "required": False, "choices": [], "retired": False},
]


@dataclass
class Corpus:
    session: Session
    admin: Principal
    agent: Principal
    ids: dict[str, str]
    folders: dict[str, str]

    def run(self, principal: Principal | None = None, **criteria: Any) -> Any:
        return search(self.session, principal or self.admin, SearchQuery(**criteria))

    def names(self, principal: Principal | None = None, **criteria: Any) -> list[str]:
        by_id = {value: key for key, value in self.ids.items()}
        return [by_id[hit.document_id] for hit in self.run(principal, **criteria).hits]

    def found(self, principal: Principal | None = None, **criteria: Any) -> set[str]:
        return set(self.names(principal, limit=100, **criteria))


def _principal(tenant_id: str, username: str, roles: set[str]) -> Principal:
    return Principal(tenant_id, "t", "Commune", str(uuid.uuid4()), username, username, frozenset(roles))


def _folder(session: Session, tenant_id: str, name: str, parent: Folder | None = None) -> Folder:
    folder = Folder(id=str(uuid.uuid4()), tenant_id=tenant_id, name=name, created_by="admin", path="")
    folder.parent_id = parent.id if parent else None
    folder.path = f"{parent.path}/{folder.id}" if parent else folder.id
    session.add(folder)
    return folder


def _document(
    session: Session,
    tenant_id: str,
    title: str,
    *,
    label: str = "deliberation",
    type_id: str | None = None,
    folder: Folder | None = None,
    day: str | None = None,
    tags: list[str] | None = None,
    values: dict[str, Any] | None = None,
    text: str | None = None,
) -> Document:
    text_key = get_store().put(io.BytesIO(text.encode())).key if text else None
    document = Document(
        tenant_id=tenant_id, created_by="agent", current_version=1, folder_id=folder.id if folder else None
    )
    document.type_id = type_id
    document.versions.append(
        Version(
            number=1,
            object_key="0" * 64,
            size=1,
            media_type="application/pdf",
            filename="acte.pdf",
            title=title,
            document_type=label,
            document_date=date.fromisoformat(day) if day else None,
            tags=tags or [],
            author="agent",
            field_values=values or {},
            text_key=text_key,
            text_status="done" if text else "none",
        )
    )
    session.add(document)
    session.flush()
    index_document(session, document)
    return document


def _populate(session: Session) -> Corpus:
    slug = f"t-{uuid.uuid4().hex[:10]}"
    tenant = create_tenant(session, slug, f"Commune {slug}")
    other = create_tenant(session, f"{slug}-b", "Autre commune")
    session.flush()
    deliberation = DocumentType(tenant_id=tenant.id, code="deliberation", name="Délibération", fields=FIELDS)
    session.add(deliberation)
    finances = _folder(session, tenant.id, "Finances")
    subsidies = _folder(session, tenant.id, "Subventions", finances)
    roads = _folder(session, tenant.id, "Voirie")
    staff = _folder(session, tenant.id, "Ressources humaines")
    hr = Group(tenant_id=tenant.id, name="rh")
    session.add(hr)
    session.flush()
    session.add(
        Permission(tenant_id=tenant.id, group_id=hr.id, target_kind="folder", target_id=staff.id, rights=["read"])
    )
    t = tenant.id
    docs = {
        "budget": _document(
            session,
            t,
            "Délibération du conseil municipal relative au budget primitif 2024",
            type_id=deliberation.id,
            folder=finances,
            day="2024-03-12",
            tags=["budget", "finances"],
            values={
                "montant": "125000.50",
                "numero": 12,
                "urgent": True,
                "seance": "2024-03-11",
                "service": "Finances",
            },
            text="Le conseil municipal, après en avoir délibéré, adopte le budget primitif de la commune.",
        ),
        "arrete": _document(
            session,
            t,
            "Arrêté municipal portant réglementation de la circulation",
            label="arrete",
            folder=roads,
            day="2023-07-01",
            tags=["voirie"],
            text="Le maire arrête : la circulation est interdite rue de la Paix.",
        ),
        "subventions": _document(
            session,
            t,
            "Délibérations relatives aux subventions aux associations",
            type_id=deliberation.id,
            folder=subsidies,
            day="2023-11-20",
            tags=["subventions", "finances"],
            values={"montant": "15000", "numero": 7, "urgent": False, "seance": "2023-11-18", "service": "Culture"},
        ),
        "compte_rendu": _document(
            session,
            t,
            "Compte rendu du conseil municipal du 12 mars 2024",
            label="compte rendu",
            day="2024-03-15",
            tags=["séance"],
        ),
        "personnel": _document(
            session,
            t,
            "Régime indemnitaire du personnel : délibération",
            type_id=deliberation.id,
            folder=staff,
            day="2022-06-30",
            tags=["personnel"],
        ),
        "sans_date": _document(session, t, "Note de service sur les congés", label="note"),
    }
    trashed = _document(session, t, "Délibération mise à la corbeille du budget", day="2024-01-01")
    trashed.deleted_at = utcnow()
    index_document(session, trashed)
    _document(session, other.id, "Délibération budget primitif d'une autre commune", day="2024-02-02")
    session.commit()
    return Corpus(
        session,
        _principal(t, "admin", {"admin"}),
        _principal(t, "agent", {"agent"}),
        {name: document.id for name, document in docs.items()},
        {"finances": finances.id, "subventions": subsidies.id, "voirie": roads.id, "rh": staff.id},
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def corpus(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Corpus]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'search.db'}"
    else:
        url = request.getfixturevalue("postgres_url").replace("postgresql://", "postgresql+psycopg://")
    migrate(url)
    session = Session(engine_for(url))
    try:
        yield _populate(session)
    finally:
        session.close()
        reset_engines()


# ---------------------------------------------------------------------------------------------------------
# Words and phrases


def test_french_words_find_their_inflections(corpus: Corpus) -> None:
    everything = {"budget", "subventions", "personnel"}
    assert corpus.found(q="délibérations") == everything
    assert corpus.found(q="Délibération") == everything
    assert corpus.found(q="DELIBERATION") == everything
    # « délibéré » in the extracted text stems like « délibération »; « arrête » (verb) like « arrêté ».
    assert corpus.found(q="circulation arrêtés") == {"arrete"}
    assert corpus.found(q="associations") == {"subventions"}


def test_all_words_are_required_and_stop_words_ignored(corpus: Corpus) -> None:
    assert corpus.found(q="budget 2024") == {"budget"}
    assert corpus.found(q="le budget de la commune") == {"budget"}  # « commune » is in the text only
    assert corpus.found(q="conseil municipal") == {"budget", "compte_rendu"}


def test_quotes_make_a_phrase(corpus: Corpus) -> None:
    assert corpus.found(q='"conseil municipal"') == {"budget", "compte_rendu"}
    assert corpus.found(q='"municipal conseil"') == set()
    assert corpus.found(q='"budget primitif" délibération') == {"budget"}
    assert corpus.found(q='"rue de la paix"') == {"arrete"}  # stop words inside a phrase do not break it


@pytest.mark.parametrize("hostile", ['" OR 1=1 --', "NEAR(", "*", "'", "conseil OR", "') OR ('1'='1", "budget*"])
def test_query_syntax_is_never_interpreted(corpus: Corpus, hostile: str) -> None:
    result = corpus.run(q=hostile)
    # Nothing holds the word « or » nor « near », and a lone sign searches nothing: no operator ran.
    assert result.total == (1 if hostile == "budget*" else 0)


def test_a_minus_sign_is_not_a_negation(corpus: Corpus) -> None:
    assert corpus.found(q="conseil -budget") == {"budget"}


# ---------------------------------------------------------------------------------------------------------
# Filters


def test_filters_by_type_folder_subtree_tag_and_dates(corpus: Corpus) -> None:
    assert corpus.found(type="deliberation") == {"budget", "subventions", "personnel"}
    assert corpus.found(document_type="compte rendu") == {"compte_rendu"}
    assert corpus.found(folder_id=corpus.folders["finances"]) == {"budget", "subventions"}
    assert corpus.found(folder_id=corpus.folders["subventions"]) == {"subventions"}
    assert corpus.found(tags=["finances"]) == {"budget", "subventions"}
    assert corpus.found(tags=["finances", "budget"]) == {"budget"}
    assert corpus.found(date_from=date(2024, 1, 1)) == {"budget", "compte_rendu"}
    assert corpus.found(date_from=date(2023, 1, 1), date_to=date(2023, 12, 31)) == {"arrete", "subventions"}
    assert corpus.found(q="délibération", date_to=date(2023, 12, 31)) == {"subventions", "personnel"}


def test_typed_field_filters(corpus: Corpus) -> None:
    def fields(*items: tuple[str, str, str]) -> set[str]:
        return corpus.found(fields=[FieldFilter(name, op, value) for name, op, value in items])  # type: ignore[arg-type]

    assert fields(("montant", "from", "20000")) == {"budget"}
    assert fields(("montant", "to", "20000,00")) == {"subventions"}
    assert fields(("montant", "eq", "15000")) == {"subventions"}
    assert fields(("numero", "eq", "7")) == {"subventions"}
    assert fields(("numero", "from", "8"), ("numero", "to", "100")) == {"budget"}
    assert fields(("urgent", "eq", "oui")) == {"budget"}
    assert fields(("urgent", "eq", "false")) == {"subventions"}
    assert fields(("seance", "from", "2024-01-01")) == {"budget"}
    assert fields(("service", "eq", "Culture")) == {"subventions"}


@pytest.mark.parametrize(
    ("criteria", "message"),
    [
        ({"fields": [FieldFilter("inconnu", "eq", "1")]}, "champ inconnu"),
        ({"fields": [FieldFilter("service", "from", "A")]}, "ne se filtre que par égalité"),
        ({"fields": [FieldFilter("montant", "from", "beaucoup")]}, "attend un nombre"),
        ({"fields": [FieldFilter("seance", "eq", "12/03/2024")]}, "AAAA-MM-JJ"),
        ({"fields": [FieldFilter("urgent", "eq", "peut-être")]}, "oui ou non"),
        ({"type": "inexistant"}, "type de document inconnu"),
        ({"date_from": date(2024, 1, 2), "date_to": date(2024, 1, 1)}, "postérieure"),
        ({"q": "mot " * 200}, "trop longue"),
    ],
)
def test_bad_criteria_are_refused_in_french(corpus: Corpus, criteria: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        corpus.run(**criteria)


# ---------------------------------------------------------------------------------------------------------
# Rights, tenants, trash


def test_only_readable_documents_of_the_tenant_are_found(corpus: Corpus) -> None:
    assert corpus.found(corpus.agent, q="délibération") == {"budget", "subventions"}  # not the HR folder's
    assert "personnel" in corpus.found(corpus.admin, q="délibération")
    # Neither the trashed document nor the other tenant's, although both say « budget ».
    assert corpus.found(q="budget") == {"budget"}
    facets = corpus.run(corpus.agent, q="délibération").facets
    assert {value.value for value in facets["folder"]} == {corpus.folders["finances"], corpus.folders["subventions"]}


def test_a_type_the_user_may_not_read_hides_its_documents_and_their_counts(
    corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    session, tenant = corpus.session, corpus.admin.tenant_id
    payroll = DocumentType(tenant_id=tenant, code="paie", name="Paie", fields=[])
    group = Group(tenant_id=tenant, name="paie", members=[GroupMember(username="gestionnaire")])
    session.add_all([payroll, group])
    session.flush()
    rule = Permission(tenant_id=tenant, group_id=group.id, target_kind="type", target_id=payroll.id, rights=["read"])
    session.add(rule)
    finances = session.get(Folder, corpus.folders["finances"])
    secret = _document(
        session,
        tenant,
        "Délibération sur les primes du personnel",
        label="paie",
        type_id=payroll.id,
        folder=finances,  # a folder open to all: only the type's rights decide
        day="2021-05-05",
        tags=["primes", "finances"],
    )
    session.commit()
    corpus.ids["paie"] = secret.id
    clerk = _principal(tenant, "gestionnaire", {"agent"})

    def counts(principal: Principal, name: str) -> dict[str, int]:
        return {value.value: value.count for value in corpus.run(principal, q="délibération").facets[name]}

    assert corpus.found(corpus.agent, q="délibération") == {"budget", "subventions"}
    assert corpus.run(corpus.agent, q="délibération").total == 2
    assert "paie" not in corpus.found(corpus.agent)
    assert corpus.found(corpus.agent, type="paie") == set()
    assert corpus.found(corpus.agent, tags=["primes"]) == set()
    assert counts(corpus.agent, "type") == {"deliberation": 2}
    assert counts(corpus.agent, "tag") == {"finances": 2, "budget": 1, "subventions": 1}
    assert counts(corpus.agent, "year") == {"2024": 1, "2023": 1}
    assert counts(corpus.agent, "folder") == {corpus.folders["finances"]: 1, corpus.folders["subventions"]: 1}
    # The group's member and the admin see it, counted.
    assert corpus.found(clerk, q="délibération") == {"budget", "subventions", "paie"}
    assert counts(clerk, "type") == {"deliberation": 2, "paie": 1}
    assert counts(clerk, "tag")["finances"] == 3 and counts(clerk, "year")["2021"] == 1
    assert counts(corpus.admin, "folder")[corpus.folders["finances"]] == 2
    # Sampled (many matches): still absent from the page.
    with monkeypatch.context() as patch:
        for name in ("SAMPLE_CAP", "SAMPLE_TARGET", "SAMPLE_MIN"):
            patch.setattr(f"ged.search.{name}", 1)
        assert corpus.found(corpus.agent, q="délibération") == {"budget", "subventions"}
        assert "paie" in corpus.found(clerk, q="délibération")


def test_a_folder_the_user_may_not_read_is_not_found(corpus: Corpus) -> None:
    with pytest.raises(NotFound):
        corpus.run(corpus.agent, folder_id=corpus.folders["rh"])
    with pytest.raises(NotFound):
        corpus.run(folder_id=str(uuid.uuid4()))


def test_trashing_removes_the_entry_and_restoring_brings_it_back(corpus: Corpus) -> None:
    document = corpus.session.get(Document, corpus.ids["arrete"])
    assert document is not None
    document.deleted_at = utcnow()
    index_document(corpus.session, document)
    corpus.session.commit()
    assert corpus.found(q="circulation") == set()
    assert corpus.session.get(SearchEntry, document.id) is None
    document.deleted_at = None
    index_document(corpus.session, document)
    corpus.session.commit()
    assert corpus.found(q="circulation") == {"arrete"}


def test_an_update_replaces_the_terms(corpus: Corpus) -> None:
    document = corpus.session.execute(select(Document).where(Document.id == corpus.ids["sans_date"])).scalar_one()
    document.current.title = "Note sur le télétravail"
    index_document(corpus.session, document)
    corpus.session.commit()
    assert corpus.found(q="congés") == set()
    assert corpus.found(q="télétravail") == {"sans_date"}


# ---------------------------------------------------------------------------------------------------------
# Facets, sorting, paging


def test_facets_are_computed_on_the_matching_set(corpus: Corpus) -> None:
    facets = corpus.run(q="délibération").facets

    def counts(name: str) -> dict[str, int]:
        return {value.value: value.count for value in facets[name]}

    assert counts("type") == {"deliberation": 3}
    assert counts("year") == {"2024": 1, "2023": 1, "2022": 1}
    assert counts("tag") == {"finances": 2, "budget": 1, "subventions": 1, "personnel": 1}
    assert counts("folder") == {corpus.folders[name]: 1 for name in ("finances", "subventions", "rh")}
    assert {value.label for value in facets["folder"]} == {"Finances", "Subventions", "Ressources humaines"}
    assert facets["tag"][0].value == "finances"  # most frequent first
    assert corpus.run(q="délibération", facets=False).facets == {}


def test_sorting_and_paging(corpus: Corpus) -> None:
    by_date = ["compte_rendu", "budget", "subventions", "arrete", "personnel", "sans_date"]
    assert corpus.names(sort="date", limit=10) == by_date
    assert corpus.names(sort="relevance", limit=10) == by_date  # no words: by date
    assert corpus.names(sort="date", limit=2, offset=2) == by_date[2:4]
    assert corpus.run(sort="date", limit=2, offset=2).total == 6
    assert corpus.names(sort="title", limit=10) == [
        "arrete",
        "compte_rendu",
        "budget",
        "subventions",
        "sans_date",
        "personnel",
    ]
    assert corpus.names(q="délibération", sort="title") == ["budget", "subventions", "personnel"]
    assert corpus.run(sort="date", offset=50).hits == []


def test_relevance_puts_title_matches_first_then_recent_ones(corpus: Corpus) -> None:
    tenant = corpus.admin.tenant_id
    filler = "rapport annuel des services techniques de la commune " * 8
    old_title = _document(corpus.session, tenant, "Élagage des platanes", day="2020-01-01", text=filler)
    recent_text = _document(corpus.session, tenant, "Rapport", day="2024-01-01", text=filler + "élagage")
    old_text = _document(corpus.session, tenant, "Rapport", day="2021-01-01", text=filler + "élagage")
    corpus.session.commit()
    hits = [hit.document_id for hit in corpus.run(q="élagage", sort="relevance").hits]
    assert hits == [old_title.id, recent_text.id, old_text.id]
    # Two groups in the head beat one; the phrase counts as one group.
    both = _document(corpus.session, tenant, "Élagage et abattage", day="2019-01-01", text=filler)
    corpus.session.commit()
    hits = [hit.document_id for hit in corpus.run(q="élagage abattage", sort="relevance").hits]
    assert hits == [both.id]
    hits = [hit.document_id for hit in corpus.run(q='"élagage des platanes" rapport', sort="relevance").hits]
    assert hits == [old_title.id]


QUERIES: list[dict[str, Any]] = [
    {"q": "délibération"},
    {"q": "délibération", "sort": "date"},
    {"q": "délibération", "sort": "title"},
    {"q": "conseil municipal", "sort": "relevance"},
    {"q": '"conseil municipal"'},
    {"sort": "date", "limit": 2, "offset": 1},
    {"sort": "title", "limit": 3, "offset": 2},
    {"tags": ["finances"]},
    {"q": "finances", "document_type": "deliberation"},
    {"date_from": date(2023, 1, 1)},
    {"q": "budget", "offset": 5},
]


@pytest.mark.parametrize("criteria", QUERIES)
def test_sampled_searches_give_the_same_pages(
    corpus: Corpus, criteria: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond SAMPLE_CAP matches a search reads a sample, then the rows before a cut or lets the database
    sort: the page must not change, and the facets say they are estimated."""
    for principal in (corpus.admin, corpus.agent):
        exact = corpus.run(principal, **criteria)
        assert exact.total_exact and exact.facets_exact
        with monkeypatch.context() as patch:
            for name in ("SAMPLE_CAP", "SAMPLE_TARGET", "SAMPLE_MIN"):
                patch.setattr(f"ged.search.{name}", 1)
            sampled = corpus.run(principal, **criteria)
        assert sampled.hits == exact.hits
        assert sampled.facets_exact == (exact.total <= 1)
