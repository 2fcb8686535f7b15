"""Full-text search over the GED's documents, with filters, facets, sorting and paging.

The query's words go through the same French normalisation as the indexed text (ged.terms), so they reach
the engine as plain ``[a-z0-9]`` terms: PostgreSQL matches them with its GIN full-text index, SQLite with
its FTS5 table (migration ged0003). Quotes make a phrase; nothing else in a query is syntax.

Cost is what drives the shape: up to ``COLLECT_MAX`` matches, one scan brings their light columns and the
count, facets and order are computed here; beyond, the database counts and groups (one pass with grouping
sets on PostgreSQL). Relevance never re-reads a document's whole text (see ``_head_rank``).

Only the documents the user may read are found (``access.readable``), in the user's tenant, out of the trash.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from sqlalchemy import (
    Case,
    Column,
    ColumnElement,
    Float,
    Select,
    String,
    case,
    cast,
    exists,
    extract,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
    text,
    true,
    tuple_,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.visitors import iterate, replacement_traverse

from ged import access
from ged.indexing import TERMS_VECTOR
from ged.models import Document, DocumentType, Folder, SearchEntry
from ged.terms import phrases
from socle.auth import Principal
from socle.errors import InvalidInput, NotFound

Sort = Literal["relevance", "date", "title"]
SORTS: tuple[str, ...] = ("relevance", "date", "title")
FACETS: tuple[str, ...] = ("type", "folder", "tag", "year")
FACET_SIZE = 20
MAX_QUERY_LENGTH = 500
# Up to this many matches, they are counted, grouped and sorted here from one scan; beyond, by the database.
COLLECT_MAX = 20_000
PG_WORK_MEM = "64MB"  # per search transaction (SET LOCAL), see search()
HEAD_CHARS = 256  # the head of the terms that relevance looks at: title, tags, type, values come first
MAX_GROUPS = 20
MAX_FIELD_FILTERS = 10
NUMERIC_KINDS = ("integer", "decimal")
_NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")

_FTS = table("ged_search_fts")
_YEAR = extract("year", SearchEntry.document_date)
_ROWID: ColumnElement[Any] = literal_column("ged_search.rowid")


@dataclass(frozen=True)
class FieldFilter:
    """A condition on a typed field: ``op`` is ``eq`` (equal), ``from`` (≥) or ``to`` (≤)."""

    name: str
    op: Literal["eq", "from", "to"]
    value: str


@dataclass
class SearchQuery:
    """What the user asks. Empty ``q``: every document matching the filters."""

    q: str = ""
    type: str | None = None  # a document type's code
    document_type: str | None = None  # the label (facet « type »)
    folder_id: str | None = None  # this folder and its subtree
    tags: list[str] = field(default_factory=list)  # every one of them
    date_from: date | None = None
    date_to: date | None = None
    fields: list[FieldFilter] = field(default_factory=list)
    sort: Sort = "relevance"
    limit: int = 20
    offset: int = 0
    facets: bool = True


@dataclass(frozen=True)
class Hit:
    document_id: str
    version: int
    title: str
    document_type: str
    folder_id: str | None
    document_date: date | None
    tags: list[str]
    field_values: dict[str, Any]


@dataclass(frozen=True)
class FacetValue:
    value: str
    count: int
    label: str | None = None


@dataclass
class SearchResult:
    total: int
    hits: list[Hit]
    facets: dict[str, list[FacetValue]]
    terms: list[list[str]]  # the normalised query, for display and debugging


def search(session: Session, principal: Principal, query: SearchQuery) -> SearchResult:
    """Run a search for a user.

    :param session: a session on the GED database.
    :param principal: the user: only the tenant's documents they may read are found.
    :param query: words, filters, sort, page, whether to compute facets.
    :returns: the page of hits, the number of matches and the facets over all the matches.
    :raises InvalidInput: a bad parameter (unknown type or field, a range on a text field…).
    :raises NotFound: the folder does not exist or may not be read.
    """
    _check(query)
    groups = phrases(query.q)[:MAX_GROUPS]
    if query.q.strip() and not groups:
        # Only stop words or signs: nothing can be searched for, and nothing is found (not everything).
        return SearchResult(0, [], {name: [] for name in FACETS} if query.facets else {}, [])
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        # Bitmaps of a large matching set overflow the default 4 MB and turn lossy: every row of a lossy page
        # is then re-checked, re-parsing its text (measured: 3.6 s instead of 0.2 s at 1M documents).
        session.execute(text(f"SET LOCAL work_mem = '{PG_WORK_MEM}'"))
    conditions = _conditions(session, principal, query, dialect)
    base: Select[Any] = select(SearchEntry)
    if any(_needs_document(condition) for condition in conditions):
        base = base.join(Document, Document.id == SearchEntry.document_id)
    rank: ColumnElement[Any] | None = None
    if groups:
        base, rank = _match(base, groups, dialect)
    base = base.where(*conditions)
    collected = _collect(session, base, rank, query)
    if collected is not None:
        return SearchResult(*collected, groups)
    if query.facets and dialect == "postgresql":
        total, facets = _grouped_facets(session, base)
    else:
        total = session.execute(base.with_only_columns(func.count())).scalar_one()
        facets = _facets(session, base, dialect) if query.facets else {}
    hits = _page(session, base, rank, query) if total > query.offset else []
    return SearchResult(total, hits, facets, groups)


def _check(query: SearchQuery) -> None:
    if len(query.q) > MAX_QUERY_LENGTH:
        raise InvalidInput(f"la recherche est trop longue (au plus {MAX_QUERY_LENGTH} caractères)")
    if query.sort not in SORTS:
        raise InvalidInput(f"tri inconnu « {query.sort} » (valeurs : {', '.join(SORTS)})")
    if query.date_from and query.date_to and query.date_from > query.date_to:
        raise InvalidInput("la date de début est postérieure à la date de fin")
    if len(query.fields) > MAX_FIELD_FILTERS:
        raise InvalidInput(f"au plus {MAX_FIELD_FILTERS} filtres sur les champs")


# ---------------------------------------------------------------------------------------------------------
# Full-text match, per backend


def tsquery_text(groups: list[list[str]]) -> str:
    """PostgreSQL tsquery of the groups: each must be there, a phrase's terms next to each other."""
    return " & ".join("(" + " <-> ".join(group) + ")" for group in groups)


def fts5_query_text(groups: list[list[str]]) -> str:
    """FTS5 query of the groups: quoted strings (phrases), all required. Terms are [a-z0-9] only."""
    return " ".join('"' + " ".join(group) + '"' for group in groups)


def _match(base: Select[Any], groups: list[list[str]], dialect: str) -> tuple[Select[Any], ColumnElement[Any]]:
    if dialect == "postgresql":
        tsquery = func.to_tsquery(literal_column("'simple'::regconfig"), tsquery_text(groups))
        matched = base.where(TERMS_VECTOR.op("@@")(tsquery))
    else:
        matched = base.join(_FTS, literal_column("ged_search_fts.rowid") == _ROWID).where(
            text("ged_search_fts MATCH :fts_query").bindparams(fts_query=fts5_query_text(groups))
        )
    return matched, _head_rank(groups, dialect)


def _head_rank(groups: list[list[str]], dialect: str) -> ColumnElement[Any]:
    """Relevance: how many of the query's groups are in the head of the terms (title, tags, type, values,
    start of the text), the same on both backends. A full-text score (ts_rank, bm25) reads and parses each
    matching row's whole text: on a large matching set that alone costs more than the whole search budget.
    The head is a prefix of the column, which PostgreSQL decompresses alone."""
    head = literal(" ") + func.substr(SearchEntry.terms, 1, HEAD_CHARS) + literal(" ")
    locate = func.strpos if dialect == "postgresql" else func.instr
    hits = [case((locate(head, " " + " ".join(group) + " ") > 0, 1), else_=0) for group in groups]
    total: ColumnElement[Any] = hits[0]
    for hit in hits[1:]:
        total = total + hit
    return total


# ---------------------------------------------------------------------------------------------------------
# Filters


def _conditions(session: Session, principal: Principal, query: SearchQuery, dialect: str) -> list[Any]:
    # A document in the trash has no entry (ged.indexing): no need to look at ged_documents for that.
    readable = _on_entries(access.readable(session, principal))
    conditions: list[Any] = [SearchEntry.tenant_id == principal.tenant_id, readable]
    if query.type is not None:
        conditions.append(Document.type_id == _type_id(session, principal.tenant_id, query.type))
    if query.document_type is not None:
        conditions.append(SearchEntry.document_type == query.document_type)
    if query.folder_id is not None:
        conditions.append(SearchEntry.folder_id.in_(_subtree(session, principal, query.folder_id)))
    conditions.extend(_has_tag(tag, dialect) for tag in query.tags)
    if query.date_from is not None:
        conditions.append(SearchEntry.document_date >= query.date_from)
    if query.date_to is not None:
        conditions.append(SearchEntry.document_date <= query.date_to)
    if query.fields:
        kinds = _field_kinds(session, principal.tenant_id, query.type)
        conditions.extend(_field_condition(item, kinds, dialect) for item in query.fields)
    return conditions


# Columns of ged_documents that ged_search holds too: a rights clause on them needs no join.
_MIRRORED = {
    Document.__table__.c.tenant_id: SearchEntry.tenant_id,
    Document.__table__.c.folder_id: SearchEntry.folder_id,
}


def _on_entries(clause: ColumnElement[bool]) -> ColumnElement[bool]:
    """The rights clause (on Document) rewritten onto ged_search where it can be, to spare a join per hit."""

    def mirror(element: Any, **kw: Any) -> Any:
        return _MIRRORED.get(element) if isinstance(element, Column) else None

    rewritten: ColumnElement[bool] = replacement_traverse(clause, {}, mirror)
    return rewritten


def _needs_document(condition: ColumnElement[Any]) -> bool:
    return any(isinstance(element, Column) and element.table is Document.__table__ for element in iterate(condition))


def _type_id(session: Session, tenant_id: str, code: str) -> str:
    found = session.execute(
        select(DocumentType.id).where(DocumentType.tenant_id == tenant_id, DocumentType.code == code)
    ).scalar_one_or_none()
    if found is None:
        raise InvalidInput(f"type de document inconnu : « {code} »")
    return found


def _subtree(session: Session, principal: Principal, folder_id: str) -> Select[Any]:
    access.require_folder(session, principal, folder_id, "read")  # NotFound for another tenant's too
    folder = session.get(Folder, folder_id)
    if folder is None:  # pragma: no cover - require_folder has checked it
        raise NotFound(f"dossier {folder_id} introuvable")
    # Paths are ids joined by "/", ids have no LIKE wildcard: the prefix is literal.
    return select(Folder.id).where(
        Folder.tenant_id == principal.tenant_id, or_(Folder.id == folder.id, Folder.path.startswith(folder.path + "/"))
    )


def _tag_values(dialect: str) -> Any:
    name = "json_array_elements_text" if dialect == "postgresql" else "json_each"
    return getattr(func, name)(SearchEntry.tags).table_valued("value").alias("tag")


def _has_tag(tag: str, dialect: str) -> ColumnElement[bool]:
    values = _tag_values(dialect)
    return exists(select(1).select_from(values).where(values.c.value == tag))


def _field_kinds(session: Session, tenant_id: str, type_code: str | None) -> dict[str, set[str]]:
    """The kinds of each field name, over the filtered type or else over all the tenant's types."""
    query = select(DocumentType.fields).where(DocumentType.tenant_id == tenant_id)
    if type_code is not None:
        query = query.where(DocumentType.code == type_code)
    kinds: dict[str, set[str]] = {}
    for fields in session.execute(query).scalars():
        for definition in fields or []:
            kinds.setdefault(definition["name"], set()).add(definition["kind"])
    return kinds


def _field_condition(item: FieldFilter, kinds: dict[str, set[str]], dialect: str) -> ColumnElement[bool]:
    if item.name not in kinds:
        raise InvalidInput(f"champ inconnu : « {item.name} »")
    if len(kinds[item.name]) > 1:
        raise InvalidInput(f"le champ « {item.name} » n'a pas le même genre selon les types : précisez le type")
    kind = next(iter(kinds[item.name]))
    raw: ColumnElement[Any] = SearchEntry.field_values[item.name].as_string()
    if kind in NUMERIC_KINDS:
        return _compare(_numeric(raw, dialect), item.op, _number(item))
    if kind == "date":
        return _compare(raw, item.op, _iso_date(item))
    if item.op != "eq":
        raise InvalidInput(f"le champ « {item.name} » ({kind}) ne se filtre que par égalité")
    if kind == "boolean":
        wanted = _boolean(item)
        json_value: ColumnElement[Any] = raw
        if dialect != "postgresql":  # SQLite's json_extract gives 1/0 for true/false; json_type names them
            json_value = func.json_type(SearchEntry.field_values, f'$."{item.name}"')
        return json_value == ("true" if wanted else "false")
    return cast(raw, String) == item.value


def _numeric(raw: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        # Decimals are stored as strings: cast only what looks like a number, so no row can make the cast fail.
        guarded: Case[Any] = case((raw.regexp_match(_NUMBER.pattern), cast(raw, Float)), else_=None)
        return guarded
    return cast(raw, Float)


def _compare(column: ColumnElement[Any], op: str, value: Any) -> ColumnElement[bool]:
    condition: ColumnElement[bool]
    if op == "eq":
        condition = column == value
    elif op == "from":
        condition = column >= value
    else:
        condition = column <= value
    return condition


def _number(item: FieldFilter) -> float:
    try:
        value = Decimal(item.value.strip().replace(",", "."))
    except InvalidOperation:
        raise InvalidInput(f"le champ « {item.name} » attend un nombre, pas « {item.value} »") from None
    if not value.is_finite():
        raise InvalidInput(f"le champ « {item.name} » attend un nombre, pas « {item.value} »")
    return float(value)


def _iso_date(item: FieldFilter) -> str:
    try:
        return date.fromisoformat(item.value.strip()).isoformat()
    except ValueError:
        raise InvalidInput(f"le champ « {item.name} » attend une date AAAA-MM-JJ, pas « {item.value} »") from None


def _boolean(item: FieldFilter) -> bool:
    value = item.value.strip().lower()
    if value in ("true", "oui", "vrai", "1"):
        return True
    if value in ("false", "non", "faux", "0"):
        return False
    raise InvalidInput(f"le champ « {item.name} » attend oui ou non, pas « {item.value} »")


# ---------------------------------------------------------------------------------------------------------
# Page and facets


def _collect(
    session: Session, base: Select[Any], rank: ColumnElement[Any] | None, query: SearchQuery
) -> tuple[int, list[Hit], dict[str, list[FacetValue]]] | None:
    """Up to ``COLLECT_MAX`` matches: one scan brings their light columns, and the count, the facets and the
    order are worked out here; then only the page's rows are read whole. None when there are more matches
    (the database then counts, groups and sorts: see ``search``)."""
    columns: list[Any] = [
        SearchEntry.document_id,
        SearchEntry.document_date,
        SearchEntry.title,
        (rank if rank is not None else literal(0)),
    ]
    if query.facets:
        columns += [SearchEntry.document_type, SearchEntry.folder_id, SearchEntry.tags]
    rows = list(session.execute(base.with_only_columns(*columns).limit(COLLECT_MAX + 1)).all())
    if len(rows) > COLLECT_MAX:
        return None
    by_date = sorted(
        rows, key=lambda row: (row.document_date is None, -(row.document_date or date.min).toordinal(), row.document_id)
    )
    if query.sort == "title":
        ordered = sorted(rows, key=lambda row: (row.title, row.document_id))
    elif query.sort == "relevance" and rank is not None:
        ordered = sorted(by_date, key=lambda row: -row[3])  # stable: recent first among equals
    else:
        ordered = by_date
    page_ids = [row.document_id for row in ordered[query.offset : query.offset + query.limit]]
    entries = (
        {
            entry.document_id: entry
            for entry in session.execute(select(SearchEntry).where(SearchEntry.document_id.in_(page_ids))).scalars()
        }
        if page_ids
        else {}
    )
    hits = [_hit(entries[document_id]) for document_id in page_ids]
    facets = _counted_facets(session, rows) if query.facets else {}
    return len(rows), hits, facets


def _counted_facets(session: Session, rows: list[Any]) -> dict[str, list[FacetValue]]:
    counters: dict[str, Counter[str]] = {name: Counter() for name in FACETS}
    for row in rows:
        counters["type"][row.document_type] += 1
        if row.folder_id is not None:
            counters["folder"][row.folder_id] += 1
        if row.document_date is not None:
            counters["year"][str(row.document_date.year)] += 1
        counters["tag"].update(set(row.tags or []))
    facets = {
        name: [
            FacetValue(value, count)
            for value, count in sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:FACET_SIZE]
        ]
        for name, counter in counters.items()
    }
    _label_folders(session, facets["folder"])
    return facets


def _hit(row: SearchEntry) -> Hit:
    return Hit(
        document_id=row.document_id,
        version=row.version,
        title=row.title,
        document_type=row.document_type,
        folder_id=row.folder_id,
        document_date=row.document_date,
        tags=list(row.tags or []),
        field_values=dict(row.field_values or {}),
    )


def _page(session: Session, base: Select[Any], rank: ColumnElement[Any] | None, query: SearchQuery) -> list[Hit]:
    order: list[Any]
    if query.sort == "title":
        # Code-point order, as _collect sorts: the same order whatever the database's collation.
        binary = "C" if session.get_bind().dialect.name == "postgresql" else "BINARY"
        order = [SearchEntry.title.collate(binary).asc()]
    elif query.sort == "relevance" and rank is not None:
        order = [rank.desc(), SearchEntry.document_date.desc().nulls_last()]
    else:  # by date, also the relevance of a search without words
        order = [SearchEntry.document_date.desc().nulls_last()]
    rows = session.execute(
        base.order_by(*order, SearchEntry.document_id).limit(query.limit).offset(query.offset)
    ).scalars()
    return [_hit(row) for row in rows]


def _facets(session: Session, base: Select[Any], dialect: str) -> dict[str, list[FacetValue]]:
    """One grouped query per facet (SQLite: no grouping sets)."""
    tags = _tag_values(dialect)
    columns: dict[str, tuple[Select[Any], Any]] = {
        "type": (base, SearchEntry.document_type),
        "folder": (base.where(SearchEntry.folder_id.is_not(None)), SearchEntry.folder_id),
        "year": (base.where(SearchEntry.document_date.is_not(None)), _YEAR),
    }
    facets: dict[str, list[FacetValue]] = {}
    for name, (matching, column) in columns.items():
        count = func.count()
        rows = session.execute(
            matching.with_only_columns(column, count).group_by(column).order_by(count.desc(), column).limit(FACET_SIZE)
        ).all()
        facets[name] = [FacetValue(_facet_text(name, value), number) for value, number in rows]
    facets["tag"] = _tag_facet(session, base, tags)
    _label_folders(session, facets["folder"])
    return {name: facets[name] for name in FACETS}


def _grouped_facets(session: Session, base: Select[Any]) -> tuple[int, dict[str, list[FacetValue]]]:
    """PostgreSQL: the total and the type, folder and year facets in one pass over the matches (grouping
    sets), then the tags: two scans of the matching set instead of five."""
    columns = {"type": SearchEntry.document_type, "folder": SearchEntry.folder_id, "year": _YEAR}
    flags = [func.grouping(column) for column in columns.values()]
    rows = session.execute(
        base.with_only_columns(*columns.values(), *flags, func.count()).group_by(
            func.grouping_sets(*[tuple_(column) for column in columns.values()], tuple_())
        )
    ).all()
    total = 0
    found: dict[str, list[FacetValue]] = {name: [] for name in columns}
    for row in rows:
        values, grouped, count = tuple(row[:3]), tuple(row[3:6]), int(row[6] or 0)
        if all(grouped):  # the empty grouping set: every match
            total = count
            continue
        position = list(grouped).index(0)
        name, value = list(columns)[position], values[position]
        if value is not None:
            found[name].append(FacetValue(_facet_text(name, value), count))
    facets = {name: sorted(values, key=lambda v: (-v.count, v.value))[:FACET_SIZE] for name, values in found.items()}
    facets["tag"] = _tag_facet(session, base, _tag_values("postgresql")) if total else []
    _label_folders(session, facets["folder"])
    return total, {name: facets[name] for name in FACETS}


def _tag_facet(session: Session, base: Select[Any], tags: Any) -> list[FacetValue]:
    count = func.count()
    rows = session.execute(
        base.join(tags, true())
        .with_only_columns(tags.c.value, count)
        .group_by(tags.c.value)
        .order_by(count.desc(), tags.c.value)
        .limit(FACET_SIZE)
    ).all()
    return [FacetValue(str(value), number) for value, number in rows]


def _facet_text(name: str, value: Any) -> str:
    return str(int(value)) if name == "year" else str(value)


def _label_folders(session: Session, values: list[FacetValue]) -> None:
    if not values:
        return
    names = dict(session.execute(select(Folder.id, Folder.name).where(Folder.id.in_([v.value for v in values]))).all())
    values[:] = [FacetValue(v.value, v.count, names.get(v.value)) for v in values]
