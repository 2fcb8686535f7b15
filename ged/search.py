"""Full-text search over the GED's documents, with filters, facets, sorting and paging.

The query's words go through the same French normalisation as the indexed text (ged.terms), so they reach
the engine as plain ``[a-z0-9]`` terms; quotes make a phrase, nothing else in a query is syntax. Each entry
also has *keys* (tenant, type, folder, tags, years and months, head terms, sample marks; see
``ged.indexing.search_keys``): the words and the selective keys are decided by the full-text index (GIN on
``ged_search.vector`` for PostgreSQL, FTS5 for SQLite; migration ged0004), the rest on each row read.

What drives the shape is that every matching row costs a visit (PostgreSQL 15 cannot count from a bitmap
alone), and a query at a million documents easily matches 10,000 of them. So a search reads a bounded
number of rows whatever the size of the matching set:

- a sparse sample first estimates the matching set (_first_level);
- up to about ``EXACT_UP_TO`` matches, all are read: the count and the facets are exact;
- beyond, a uniform sample of at most ``SAMPLE_TARGET`` of them, drawn by the index (the sample marks: one
  document in 2**L, by a hash of its id). The total and the facets are estimated from it, and said to be
  (``total_exact``, ``facets_exact``). The sample also says where the page ends in the sort order: one more
  query reads the rows before that point (the head terms and years in the index bound them), and the page
  is exact. Only a sort by title, or a page too deep for the sample, is left to the database's own sort.

One statement reads the matches and returns only aggregates (count, facets, the first rows in order); the
statements run for every search are SQL text (see _Sql). Relevance is the number of the query's groups (a
word, or a phrase's words) that are all in the head of the document (title, tags, type, typed values), then
the most recent first: the same on both backends, and something the index itself can bound. Only the
documents the user may read are found (``access.readable``, checked on every row read), in the user's
tenant, out of the trash.
"""

from __future__ import annotations

import calendar
import json
import math
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from itertools import combinations
from typing import Any, Literal

from sqlalchemy import (
    Case,
    Column,
    ColumnElement,
    Float,
    Select,
    SQLColumnExpression,
    String,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
    text,
)
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.visitors import iterate, replacement_traverse

from ged import access, types
from ged.indexing import (
    FOLDER_KEY,
    HEAD_KEY,
    LABEL_KEY,
    SAMPLE_KEY,
    SAMPLE_LEVELS,
    TAG_KEY,
    TENANT_KEY,
    TYPE_KEY,
    key_of,
    month_key,
    year_key,
)
from ged.models import Document, DocumentType, Folder, SearchEntry
from ged.terms import phrases
from socle.auth import Principal
from socle.errors import InvalidInput, NotFound, message

Sort = Literal["relevance", "date", "title"]
SORTS: tuple[str, ...] = ("relevance", "date", "title")
FACETS: tuple[str, ...] = ("type", "folder", "tag", "year")
FACET_SIZE = 20
MAX_QUERY_LENGTH = 500
MAX_GROUPS = 20
MAX_FIELD_FILTERS = 10
NUMERIC_KINDS = ("integer", "decimal")
# Rows a search reads to count, facet and place its page: when the matches are estimated at most EXACT_UP_TO
# they are all read (exact, up to SAMPLE_CAP); beyond, a uniform sample of SAMPLE_TARGET at most, about
# half that on average, and at least SAMPLE_MIN (or all the matches).
EXACT_UP_TO = 1000
SAMPLE_TARGET = 500
SAMPLE_CAP = 4000
SAMPLE_MIN = 125
# The sparse sample that estimates the matching set reads one document in 2**P, P = log2(index size /
# PROBE_SHARE): a query matching 1 % of the index reads about 40 rows (see _first_level).
PROBE_SHARE = 4096
# Where the page's cut is placed in the sample (see _cut_position): after CUT_FACTOR times the sample rows the
# page needs, plus CUT_EXTRA; the chance that fewer rows than the page needs come before the cut is then
# about 0.5 % at most, and the database's sort takes over if so.
CUT_FACTOR, CUT_EXTRA = 2, 2
# A filter is asked of the index when that is cheaper than checking it on the rows read (_dearer_in_index):
# measured at 1M entries on PostgreSQL, a key's list costs the GIN scan about 15 ns an entry (a collectivité
# alone on its instance: 9 ms), a row read about 3 µs.
INDEX_ENTRY_COST = 15e-9
ROW_COST = 3e-6
# Below this many rows (estimated by the sample) of the cut's rank and above, the rank alone bounds the rows
# read for a page (see _before).
FEW_ROWS = 500
DENSE_YEAR = 2000  # rows (estimated) in the cut's year past which a cut goes by months (_dated_since)
MAX_FOLDER_KEYS = 256  # a larger subtree is filtered row by row
MAX_TIERS = 32  # combinations of groups the index may be asked about at once
MAX_YEARS = 200
SHARES_TTL = 300.0  # seconds a process trusts the index's statistics (see _PostgreSQL.shares)
PG_WORK_MEM = "64MB"  # per search transaction (SET LOCAL), see search()
_NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")

_FTS = table("ged_search_fts")
_SHARES: dict[str, tuple[float, dict[str, float]]] = {}
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
    total_exact: bool = True  # False: ``total`` is estimated from a sample (« environ »)
    facets_exact: bool = True  # False: the facets' counts are estimated from the same sample


def search(session: Session, principal: Principal, query: SearchQuery) -> SearchResult:
    """Run a search for a user.

    :param session: a session on the GED database.
    :param principal: the user: only the tenant's documents they may read are found.
    :param query: words, filters, sort, page, whether to compute facets.
    :returns: the page of hits, the number of matches and the facets over all the matches (exact up to
        ``SAMPLE_CAP`` matches, estimated beyond: see ``SearchResult``).
    :raises InvalidInput: a bad parameter (unknown type or field, a range on a text field…).
    :raises NotFound: the folder does not exist or may not be read.
    """
    _check(query)
    groups = phrases(query.q)[:MAX_GROUPS]
    if query.q.strip() and not groups:
        # Only stop words or signs: nothing can be searched for, and nothing is found (not everything).
        return SearchResult(0, [], {name: [] for name in FACETS} if query.facets else {}, [])
    backend = _backend(session)
    backend.prepare(session)
    plan = _plan(session, principal, query, groups, backend)
    if plan is None:  # a filter no document can pass (a date range outside every document's)
        backend.finish(session)
        return SearchResult(0, [], {name: [] for name in FACETS} if query.facets else {}, groups)
    order = _Order(query.sort, groups, backend)
    read = _sample(session, backend, plan, query, order)
    hits = _page(session, backend, plan, query, read, order)
    backend.finish(session)
    facets = _facets(read) if query.facets else {}
    total, total_exact = read.total, read.level == 0
    if not total_exact and plan.index_exact and plan.index_count is not None:
        # SQLite counted in its index, and nothing is filtered row by row beyond the tenant
        total, total_exact = plan.index_count, True
    return SearchResult(total, hits, facets, groups, total_exact, read.level == 0)


def _check(query: SearchQuery) -> None:
    if len(query.q) > MAX_QUERY_LENGTH:
        raise InvalidInput(
            message(
                "la recherche est trop longue (au plus %(max_query_length)s caractères)",
                max_query_length=MAX_QUERY_LENGTH,
            )
        )
    if query.sort not in SORTS:
        raise InvalidInput(
            message(
                "tri inconnu « %(query_sort)s » (valeurs : %(sorts)s)", query_sort=query.sort, sorts=", ".join(SORTS)
            )
        )
    if query.date_from and query.date_to and query.date_from > query.date_to:
        raise InvalidInput(message("la date de début est postérieure à la date de fin"))
    if len(query.fields) > MAX_FIELD_FILTERS:
        raise InvalidInput(
            message("au plus %(max_field_filters)s filtres sur les champs", max_field_filters=MAX_FIELD_FILTERS)
        )


# ---------------------------------------------------------------------------------------------------------
# What the full-text index is asked: a small boolean tree, written for each engine


@dataclass(frozen=True)
class _Word:
    terms: tuple[str, ...]  # one term, or a phrase's


@dataclass(frozen=True)
class _Key:
    token: str


@dataclass(frozen=True)
class _All:
    items: tuple[_Node, ...]


@dataclass(frozen=True)
class _Any:
    items: tuple[_Node, ...]


@dataclass(frozen=True)
class _Not:
    item: _Node


_Node = _Word | _Key | _All | _Any | _Not
NOTHING = _Key(TENANT_KEY + "none")  # no entry has it: a condition nothing passes


def tsquery_text(node: _Node) -> str:
    """PostgreSQL tsquery of a tree: keys are the vector's « ~ »-prefixed lexemes, phrases use <->."""
    if isinstance(node, _Word):
        return "(" + " <-> ".join(_lexeme(term) for term in node.terms) + ")"
    if isinstance(node, _Key):
        return _lexeme("~" + node.token)
    if isinstance(node, _Not):
        return "!" + tsquery_text(node.item)
    joiner = " & " if isinstance(node, _All) else " | "
    return "(" + joiner.join(tsquery_text(item) for item in node.items) + ")"


def _lexeme(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def fts5_query_text(node: _Node) -> str:
    """FTS5 query of a tree: words in column ``terms``, keys in column ``keys``; terms and keys are [a-z0-9]."""
    if isinstance(node, _Word):
        return 'terms : "' + " ".join(node.terms) + '"'
    if isinstance(node, _Key):
        return f'keys : "{node.token}"'
    if isinstance(node, _Not):  # only inside an _All, which writes it as a binary NOT
        raise ValueError("a negation needs something to subtract from")
    if isinstance(node, _Any):
        return "(" + " OR ".join(fts5_query_text(item) for item in node.items) + ")"
    kept = [fts5_query_text(item) for item in node.items if not isinstance(item, _Not)]
    written = "(" + " AND ".join(kept) + ")"
    for item in node.items:
        if isinstance(item, _Not):
            written = f"({written} NOT {fts5_query_text(item.item)})"
    return written


# ---------------------------------------------------------------------------------------------------------
# Backends


class _Backend:
    dialect = ""

    def prepare(self, session: Session) -> None:
        """Per-search settings, in the caller's transaction."""

    def finish(self, session: Session) -> None:
        """Undo what ``prepare`` set: the caller's transaction may go on."""

    def matching(self, base: Select[Any], node: _Node) -> Select[Any]:
        raise NotImplementedError

    def index_count(self, session: Session, node: _Node) -> int | None:
        """The number of entries the index alone matches, when that is cheap; None otherwise."""
        return None

    def index_size(self, session: Session) -> int:
        raise NotImplementedError

    def shares(self, session: Session, tokens: list[str]) -> dict[str, float]:
        """The share of the entries that have each key among ``tokens``, where the index knows it."""
        return {}

    def binary(self, column: SQLColumnExpression[Any]) -> ColumnElement[Any]:
        """Code-point order, as Python sorts, whatever the database's collation."""
        raise NotImplementedError

    def contains(self, haystack: ColumnElement[Any], needle: str) -> ColumnElement[bool]:
        raise NotImplementedError

    # The statements run for every search are written as SQL text here (see _Sql): building them with
    # SQLAlchemy cost several milliseconds of CPU per search, more than the database took for them.
    collate = ""
    find = ""
    year_sql = ""

    def placeholder(self, name: str) -> str:
        raise NotImplementedError

    def matching_sql(self, sql: _Sql, node: _Node) -> tuple[str, str]:
        """The FROM additions and the WHERE condition of a full-text match."""
        raise NotImplementedError


class _PostgreSQL(_Backend):
    dialect = "postgresql"
    size = 0

    def prepare(self, session: Session) -> None:
        # Bitmaps of a large matching set overflow the default 4 MB and turn lossy: every row of a lossy page
        # is then re-checked (measured: 3.6 s instead of 0.2 s at 1M documents). Every query of a search has
        # a GIN condition; a sequential scan (which a broad query's estimate may tempt with a LIMIT) would
        # read every row's vector. One round trip, with the index's size (for _first_level).
        self.size = int(
            session.execute(
                text(
                    f"SELECT set_config('work_mem', '{PG_WORK_MEM}', true), set_config('enable_seqscan', 'off', true), "
                    "(SELECT reltuples FROM pg_class WHERE oid = 'ged_search'::regclass)"
                )
            ).one()[2]
            or 0
        )

    def finish(self, session: Session) -> None:
        session.execute(text("SET LOCAL enable_seqscan TO DEFAULT"))

    collate = 'COLLATE "C"'
    find = "strpos"
    year_sql = "CAST(CAST(extract(year FROM day) AS integer) AS text)"

    def placeholder(self, name: str) -> str:
        return f"%({name})s"

    def matching_sql(self, sql: _Sql, node: _Node) -> tuple[str, str]:
        if _empty(node):
            return "", "true"
        return "", f"ged_search.vector @@ CAST({sql.bind(tsquery_text(node))} AS tsquery)"

    def matching(self, base: Select[Any], node: _Node) -> Select[Any]:
        if _empty(node):
            return base
        query = cast(bindparam("ts_query", tsquery_text(node), unique=True), TSQUERY)
        return base.where(SearchEntry.vector.op("@@")(query))

    def index_size(self, session: Session) -> int:
        return max(0, self.size)

    def shares(self, session: Session, tokens: list[str]) -> dict[str, float]:
        # ANALYZE keeps the most common lexemes of the vector and their frequencies (pg_stats): read once in a
        # while per database, they say which keys are worth asking the index.
        # A session may be bound to a Connection (the caller's transaction) as well as to an Engine: both know
        # their engine. A schema of its own is a URL of its own (options=-csearch_path=…).
        place = str(session.get_bind().engine.url)
        cached = _SHARES.get(place)
        if cached is not None and time.monotonic() - cached[0] < SHARES_TTL:
            return cached[1]
        row = session.execute(
            text(
                "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats "
                "WHERE schemaname = current_schema() AND tablename = 'ged_search' AND attname = 'vector'"
            )
        ).first()
        shares: dict[str, float] = {}
        if row is not None and row[0] is not None:
            shares = {
                lexeme[1:]: float(share) for lexeme, share in zip(row[0], row[1], strict=False) if lexeme[:1] == "~"
            }
        _SHARES[place] = (time.monotonic(), shares)
        return shares

    def binary(self, column: SQLColumnExpression[Any]) -> ColumnElement[Any]:
        return column.collate("C")

    def contains(self, haystack: ColumnElement[Any], needle: str) -> ColumnElement[bool]:
        return func.strpos(haystack, needle) > 0


class _SQLite(_Backend):
    dialect = "sqlite"

    def matching(self, base: Select[Any], node: _Node) -> Select[Any]:
        if _empty(node):  # no word and no filter: every entry (of the tenant, checked on each row)
            return base
        return base.join(_FTS, literal_column("ged_search_fts.rowid") == _ROWID).where(
            text("ged_search_fts MATCH :fts_query").bindparams(fts_query=fts5_query_text(node))
        )

    collate = "COLLATE BINARY"
    find = "instr"
    year_sql = "strftime('%Y', day)"

    def placeholder(self, name: str) -> str:
        return f":{name}"

    def matching_sql(self, sql: _Sql, node: _Node) -> tuple[str, str]:
        if _empty(node):
            return "", "1"
        join = " JOIN ged_search_fts ON ged_search_fts.rowid = ged_search.rowid"
        return join, f"ged_search_fts MATCH {sql.bind(fts5_query_text(node))}"

    def index_count(self, session: Session, node: _Node) -> int | None:
        # FTS5 counts from its doclists alone, without reading ged_search: cheap at 100,000 documents.
        if _empty(node):
            return None
        return int(
            session.execute(
                text("SELECT count(*) FROM ged_search_fts WHERE ged_search_fts MATCH :q"), {"q": fts5_query_text(node)}
            ).scalar_one()
        )

    size: int | None = None

    def index_size(self, session: Session) -> int:
        if self.size is None:
            self.size = int(session.execute(select(func.max(_ROWID)).select_from(SearchEntry)).scalar() or 0)
        return self.size

    def shares(self, session: Session, tokens: list[str]) -> dict[str, float]:
        # The FTS5 vocabulary table (migration ged0004) counts the entries of each token.
        if not tokens:
            return {}
        size = max(1, self.index_size(session))
        rows = session.execute(
            text("SELECT term, doc FROM ged_search_vocab WHERE term IN :tokens").bindparams(
                bindparam("tokens", expanding=True)
            ),
            {"tokens": tokens},
        )
        return {term: doc / size for term, doc in rows}

    def binary(self, column: SQLColumnExpression[Any]) -> ColumnElement[Any]:
        return column.collate("BINARY")

    def contains(self, haystack: ColumnElement[Any], needle: str) -> ColumnElement[bool]:
        return func.instr(haystack, needle) > 0


def _empty(node: _Node) -> bool:
    return isinstance(node, _All) and not node.items


class _Sql:
    """A statement's SQL text and parameters, in the driver's own style, run without SQLAlchemy's statement
    building (see _Backend). The row conditions of the plan are compiled once per search."""

    def __init__(self, backend: _Backend, plan: _Plan) -> None:
        self.backend, self.plan = backend, plan
        self.params: dict[str, Any] = dict(plan.rows_params)

    def bind(self, value: Any) -> str:
        name = f"s_{len(self.params)}"
        self.params[name] = value
        return self.backend.placeholder(name)

    def source(self, node: _Node) -> str:
        """FROM … WHERE …: the entries the index matches for ``node`` that pass the row conditions."""
        join, condition = self.backend.matching_sql(self, node)
        if self.plan.join_document:
            join += " JOIN ged_documents ON ged_documents.id = ged_search.document_id"
        return f"FROM ged_search{join} WHERE {condition} AND {self.plan.rows_sql}"

    def rank(self) -> str:
        """Relevance, as _rank: how many groups have all their terms in the head."""
        if not self.plan.groups:
            return "0"
        find = self.backend.find
        tiers = []
        for group in self.plan.groups:
            present = " AND ".join(
                f"{find}(' ' || ged_search.keys || ' ', {self.bind(f' {HEAD_KEY}{term} ')}) > 0" for term in group
            )
            tiers.append(f"CASE WHEN {present} THEN 1 ELSE 0 END")
        return "(" + " + ".join(tiers) + ")"

    def order(self, order: _Order, rank: str, day: str, title: str, id_: str) -> str:
        collate = self.backend.collate
        if order.sort == "title":
            by = [f"{title} {collate}"]
        else:
            by = [f"{day} DESC NULLS LAST"]
            if order.ranked:
                by.insert(0, f"{rank} DESC")
        return ", ".join([*by, f"{id_} {collate}"])

    def run(self, session: Session, statement: str) -> Any:
        return session.connection().exec_driver_sql(statement, self.params)


def _compiled(backend: _Backend, session: Session, conditions: list[ColumnElement[bool]]) -> tuple[str, dict[str, Any]]:
    """The row conditions as SQL text in the driver's style, and their parameters."""
    dialect = _dialect(session.get_bind().dialect, "pyformat" if backend.dialect == "postgresql" else "named")
    compiled = dialect.statement_compiler(dialect, _and(conditions))
    # The statement with its IN lists written out, one parameter per value (as render_postcompile writes it).
    expanded = compiled.construct_expanded_state()
    # The types' own conversions (a JSON path, a date for SQLite), as SQLAlchemy applies them when it executes:
    # a parameter's own, and for an IN list's values those of their expanded parameters. (A tuple's parameter
    # has one per element, a sequence: only ever expanded, it is not sent under its own name.)
    processors = {name: processor for name, processor in compiled._bind_processors.items() if callable(processor)}
    processors.update(expanded.processors)
    params = {
        name: processors[name](value) if name in processors and value is not None else value
        for name, value in expanded.parameters.items()
    }
    return expanded.statement, params


def _dialect(dialect: Dialect, style: Literal["pyformat", "named"]) -> Dialect:
    """A dialect of the session's kind that writes parameters in the driver's ``style``, made once."""
    kind = type(dialect)
    made = _DIALECTS.get((kind, style))
    if made is None:
        if not issubclass(kind, DefaultDialect):  # pragma: no cover - every SQLAlchemy dialect is one
            raise TypeError(f"{kind.__name__} is not a SQLAlchemy dialect")
        made = _DIALECTS[(kind, style)] = kind(paramstyle=style)
    return made


_DIALECTS: dict[tuple[type[Dialect], str], Dialect] = {}


def _backend(session: Session) -> _Backend:
    return _PostgreSQL() if session.get_bind().dialect.name == "postgresql" else _SQLite()


# ---------------------------------------------------------------------------------------------------------
# The plan: what the index decides, what each row read is checked for


@dataclass
class _Plan:
    groups: list[list[str]]
    tenant_id: str
    keys: list[_Node]  # every match has these (tenant, filters)
    rows: list[ColumnElement[bool]]  # checked on every row read: tenant, rights, dates, typed fields
    join_document: bool
    index_count: int | None = None  # SQLite: the matches the index alone finds (all tenants'), an upper bound
    index_exact: bool = False  # index_count is the total: nothing checked row by row can reject a match
    rows_sql: str = ""  # the row conditions compiled (see _Sql)
    rows_params: dict[str, Any] = field(default_factory=dict)
    span: tuple[date, date] | None = None  # the tenant's first and last document dates, once asked

    def node(self, *extra: _Node, heads: bool = False) -> _Node:
        """Every match has these; ``heads``: the extra keys already require every group's terms in the head,
        which holds them (a single word is then implied, not a phrase: the head has no positions)."""
        words: list[_Node] = [_Word(tuple(group)) for group in self.groups if not heads or len(group) > 1]
        return _All((*words, *self.keys, *extra))


def _plan(
    session: Session, principal: Principal, query: SearchQuery, groups: list[list[str]], backend: _Backend
) -> _Plan | None:
    tenant = principal.tenant_id
    # A document in the trash has no entry (ged.indexing): no need to look at ged_documents for that.
    readable = _on_entries(access.readable(session, principal))
    # Written so that no btree index matches it: a btree walk filtering on the vector, which a broad query's
    # estimate can tempt the planner into, would read every row's vector; the GIN index must lead.
    plan = _Plan(groups, tenant, [], [SearchEntry.tenant_id.concat("") == tenant], False)
    exact = _only_tenant(readable)  # nothing but the index decides which entries match
    if not exact:
        plan.rows.append(readable)
        plan.join_document = _needs_document(readable)
    # Each filter is a key of the index and the same condition on a row: the index takes the keys that are
    # selective; a key most entries have (a collectivité alone on its instance, the most common type) costs
    # the index a long list for little, and is checked on the rows read instead.
    filters: list[tuple[_Node, ColumnElement[bool] | None]] = [(_Key(key_of(TENANT_KEY, tenant)), None)]
    if query.type is not None:
        type_id = _type_id(session, tenant, query.type)
        filters.append((_Key(key_of(TYPE_KEY, type_id)), SearchEntry.type_id == type_id))
    if query.document_type is not None:
        label = query.document_type
        filters.append((_Key(key_of(LABEL_KEY, label)), SearchEntry.document_type == label))
    if query.folder_id is not None:
        folders = list(session.execute(_subtree(session, principal, query.folder_id)).scalars())
        keys = _Any(tuple(_Key(key_of(FOLDER_KEY, folder)) for folder in folders[:MAX_FOLDER_KEYS]))
        filters.append((keys if len(folders) <= MAX_FOLDER_KEYS else NOWHERE, SearchEntry.folder_id.in_(folders)))
    filters.extend((_Key(key_of(TAG_KEY, tag)), _has_tag(tag, backend.dialect)) for tag in query.tags)
    if query.date_from is not None or query.date_to is not None:
        dates = _date_range(session, plan, query.date_from, query.date_to)
        if dates is None:
            return None
        filters.append((dates, _dated(query.date_from, query.date_to)))
        # Months are keys: a range of whole months is decided by the index alone, others row by row too.
        if (query.date_from is not None and query.date_from.day != 1) or (
            query.date_to is not None and not _last_day(query.date_to)
        ):
            plan.rows.append(_dated(query.date_from, query.date_to))
            exact = False
    shares = backend.shares(session, [item.token for node, _ in filters for item in _keys_of(node)])
    size = backend.index_size(session)
    for node, condition in filters:
        if node is not NOWHERE and not _dearer_in_index(_share(node, shares), size):
            plan.keys.append(node)
        else:
            exact = False  # the index alone does not say which entries match
            if condition is not None:  # None: the tenant, checked on every row anyway
                plan.rows.append(condition)
    if query.fields:
        kinds = _field_kinds(session, tenant, query.type)
        plan.rows.extend(_field_condition(item, kinds, backend.dialect) for item in query.fields)
        exact = False
    plan.index_count = backend.index_count(session, plan.node())
    plan.index_exact = exact
    plan.rows_sql, plan.rows_params = _compiled(backend, session, plan.rows)
    return plan


NOWHERE = _Key("")  # a filter the index is not asked about


def _keys_of(node: _Node) -> list[_Key]:
    if isinstance(node, _Key):
        return [node] if node is not NOWHERE else []
    if isinstance(node, _Any | _All):
        return [key for item in node.items for key in _keys_of(item)]
    return []


def _dearer_in_index(share: float, size: int) -> bool:
    """Whether a key that ``share`` of the ``size`` entries have costs the index more (its list of entries)
    than checking it on the rows read costs (the rows it would have spared): measured costs, see
    INDEX_ENTRY_COST."""
    if share <= 0:
        return False
    return share * size * INDEX_ENTRY_COST > (1 / share - 1) * SAMPLE_TARGET * ROW_COST


def _share(node: _Node, shares: dict[str, float]) -> float:
    """The share of the entries that have a key (or any of several), from the index's statistics; a key the
    statistics do not list is rare."""
    if isinstance(node, _Key):
        return shares.get(node.token, 0.0)
    if isinstance(node, _Any):
        return min(1.0, sum(_share(item, shares) for item in node.items))
    return 0.0


def _dated(low: date | None, high: date | None) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = [SearchEntry.document_date.is_not(None)]
    if low is not None:
        conditions.append(SearchEntry.document_date >= low)
    if high is not None:
        conditions.append(SearchEntry.document_date <= high)
    return _and(conditions)


def _has_tag(tag: str, dialect: str) -> ColumnElement[bool]:
    name = "json_array_elements_text" if dialect == "postgresql" else "json_each"
    values = getattr(func, name)(SearchEntry.tags).table_valued("value").alias("tag")
    return exists(select(1).select_from(values).where(values.c.value == tag))


# Columns of ged_documents that ged_search holds too: a rights clause on them needs no join.
_MIRRORED = {
    Document.__table__.c[name]: SearchEntry.__table__.c[name] for name in ("tenant_id", "folder_id", "type_id")
}


def _on_entries(clause: ColumnElement[bool]) -> ColumnElement[bool]:
    """The rights clause (on Document) rewritten onto ged_search where it can be, to spare a join per hit."""

    def mirror(element: Any, **kw: Any) -> Any:
        return _MIRRORED.get(element) if isinstance(element, Column) else None

    rewritten: ColumnElement[bool] = replacement_traverse(clause, {}, mirror)
    return rewritten


def _needs_document(condition: ColumnElement[Any]) -> bool:
    return any(isinstance(element, Column) and element.table is Document.__table__ for element in iterate(condition))


def _only_tenant(clause: ColumnElement[bool]) -> bool:
    """Whether the rights clause says no more than « the user's tenant » (an administrator, or no denial)."""
    columns = {(element.table.name, element.name) for element in iterate(clause) if isinstance(element, Column)}
    return columns <= {(SearchEntry.__tablename__, "tenant_id")}


def _type_id(session: Session, tenant_id: str, code: str) -> str:
    found = session.execute(
        select(DocumentType.id).where(DocumentType.tenant_id == tenant_id, DocumentType.code == code)
    ).scalar_one_or_none()
    if found is None:
        raise InvalidInput(message("type de document inconnu : « %(code)s »", code=code))
    return found


def _subtree(session: Session, principal: Principal, folder_id: str) -> Select[Any]:
    access.require_folder(session, principal, folder_id, "read")  # NotFound for another tenant's too
    folder = session.get(Folder, folder_id)
    if folder is None:  # pragma: no cover - require_folder has checked it
        raise NotFound(message("dossier %(folder_id)s introuvable", folder_id=folder_id))
    # Paths are ids joined by "/", ids have no LIKE wildcard: the prefix is literal.
    return select(Folder.id).where(
        Folder.tenant_id == principal.tenant_id, or_(Folder.id == folder.id, Folder.path.startswith(folder.path + "/"))
    )


# ---------------------------------------------------------------------------------------------------------
# Dates: years and months are keys of the index


def _span(session: Session, plan: _Plan) -> tuple[date, date] | None:
    """The tenant's first and last document dates (two probes of ix_ged_search_tenant_date, one statement)."""
    if plan.span is None:
        dated = [SearchEntry.tenant_id == plan.tenant_id, SearchEntry.document_date.is_not(None)]
        low, high = (
            select(bound(SearchEntry.document_date)).where(*dated).scalar_subquery() for bound in (func.min, func.max)
        )
        first, last = session.execute(select(low, high)).one()
        if first is None or last is None:
            return None
        plan.span = (first, last)
    return plan.span


def _date_range(session: Session, plan: _Plan, low: date | None, high: date | None) -> _Node | None:
    """The months of a date range as keys (whole years as year keys); None when no dated document can be in it."""
    span = _span(session, plan)
    if span is None:
        return None
    start, end = max(low or span[0], span[0]), min(high or span[1], span[1])
    if start > end:
        return None
    return _months(start, end)


def _months(start: date, end: date) -> _Node:
    """The months from ``start``'s to ``end``'s as keys: a whole year as its year key."""
    keys: list[_Node] = []
    for year in range(start.year, end.year + 1):
        first = start.month if year == start.year else 1
        last = end.month if year == end.year else 12
        if first == 1 and last == 12:
            keys.append(_Key(year_key(year)))
        else:
            keys.extend(_Key(month_key(year, month)) for month in range(first, last + 1))
    return _Any(tuple(keys))


def _last_day(day: date) -> bool:
    return day.day == calendar.monthrange(day.year, day.month)[1]  # no next day to ask of 31 December 9999


# ---------------------------------------------------------------------------------------------------------
# Typed fields: checked row by row


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
        raise InvalidInput(message("champ inconnu : « %(item_name)s »", item_name=item.name))
    if len(kinds[item.name]) > 1:
        raise InvalidInput(
            message(
                "le champ « %(item_name)s » n'a pas le même genre selon les types : précisez le type",
                item_name=item.name,
            )
        )
    kind = next(iter(kinds[item.name]))
    raw: ColumnElement[Any] = SearchEntry.field_values[item.name].as_string()
    if kind in NUMERIC_KINDS:
        return _compare(_numeric(raw, dialect), item.op, _number(item))
    if kind == "date":
        return _compare(raw, item.op, _iso_date(item))
    if item.op != "eq":
        raise InvalidInput(
            message(
                "le champ « %(item_name)s » (%(kind)s) ne se filtre que par égalité", item_name=item.name, kind=kind
            )
        )
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
        value: Decimal | None = Decimal(item.value.strip().replace(",", "."))
    except InvalidOperation:
        value = None
    # Finite, and within what a typed number may hold (ged.types): « 1e400 » is no bound a value could meet,
    # and PostgreSQL refuses to compare it.
    if value is None or not value.is_finite() or (value and abs(value.adjusted()) >= types.DECIMAL_DIGITS):
        raise InvalidInput(
            message(
                "le champ « %(item_name)s » attend un nombre, pas « %(item_value)s »",
                item_name=item.name,
                item_value=item.value,
            )
        )
    return float(value)


def _iso_date(item: FieldFilter) -> str:
    try:
        return date.fromisoformat(item.value.strip()).isoformat()
    except ValueError:
        raise InvalidInput(
            message(
                "le champ « %(item_name)s » attend une date AAAA-MM-JJ, pas « %(item_value)s »",
                item_name=item.name,
                item_value=item.value,
            )
        ) from None


def _boolean(item: FieldFilter) -> bool:
    value = item.value.strip().lower()
    if value in ("true", "oui", "vrai", "1"):
        return True
    if value in ("false", "non", "faux", "0"):
        return False
    raise InvalidInput(
        message(
            "le champ « %(item_name)s » attend oui ou non, pas « %(item_value)s »",
            item_name=item.name,
            item_value=item.value,
        )
    )


# ---------------------------------------------------------------------------------------------------------
# Reading the matches: all of them up to SAMPLE_CAP, else a uniform sample. One statement per read, which
# counts, groups the facets and orders in the database: only aggregates and a few ids come back.


@dataclass
class _Read:
    level: int  # each row read stands for 2**level matches; 0: every match
    count: int  # rows read (at most SAMPLE_CAP + 1)
    facets: dict[str, Counter[str]]  # over the rows read
    first: list[tuple[str, int, date | None]]  # the first rows in the sort order: id, rank, date
    ranks: Counter[int] = field(default_factory=Counter)  # rows read by rank (relevance)
    labels: dict[str, str] = field(default_factory=dict)  # folder names
    years: Counter[int] = field(default_factory=Counter)  # rows read by year

    @property
    def total(self) -> int:
        return self.count << self.level


class _Order:
    """The sort order, in SQL and as a Python key of (id, rank, date): the same order."""

    def __init__(self, sort: Sort, groups: list[list[str]], backend: _Backend) -> None:
        self.sort, self.groups, self.backend = sort, groups, backend
        self.ranked = sort == "relevance" and bool(groups)

    def sql(
        self,
        rank: SQLColumnExpression[Any],
        day: SQLColumnExpression[Any],
        title: SQLColumnExpression[Any],
        id_: SQLColumnExpression[Any],
    ) -> list[Any]:
        by: list[Any]
        if self.sort == "title":
            by = [self.backend.binary(title).asc()]
        else:
            by = [day.desc().nulls_last()]
            if self.ranked:
                by.insert(0, rank.desc())
        return [*by, self.backend.binary(id_).asc()]

    def key(self, row: tuple[str, int, date | None]) -> tuple[Any, ...]:
        document_id, rank, day = row
        return (-rank if self.ranked else 0, day is None, -day.toordinal() if day is not None else 0, document_id)


def _rank(backend: _Backend, groups: list[list[str]]) -> ColumnElement[Any]:
    """Relevance: how many groups have all their terms in the head (keys ``h<term>``)."""
    if not groups:
        return literal(0)
    spaced = literal(" ") + SearchEntry.keys + literal(" ")
    in_head: list[ColumnElement[Any]] = []
    for group in groups:
        present = [backend.contains(spaced, f" {HEAD_KEY}{term} ") for term in group]
        in_head.append(case((_and(present), 1), else_=0))
    return _sum(in_head)


def _matches(backend: _Backend, plan: _Plan, node: _Node, *columns: Any) -> Select[Any]:
    query = select(*columns).select_from(SearchEntry)
    if plan.join_document:
        query = query.join(Document, Document.id == SearchEntry.document_id)
    return backend.matching(query, node).where(*plan.rows)


def _read(
    session: Session, backend: _Backend, plan: _Plan, query: SearchQuery, order: _Order, level: int, first: int
) -> _Read:
    """Read the matches of a sample level (0: all), up to SAMPLE_CAP + 1 of them, in one statement that
    returns only aggregates: their number, their facets, their ranks and the ``first`` of them in the sort
    order (the rows are read once, into a materialised CTE)."""
    sql = _Sql(backend, plan)
    node = plan.node(_Key(f"{SAMPLE_KEY}{level}")) if level else plan.node()
    title = "ged_search.title" if order.sort == "title" else "NULL"
    rows = (
        "SELECT ged_search.document_id AS id, ged_search.document_date AS day, ged_search.document_type AS type, "
        "ged_search.folder_id AS folder, CAST(ged_search.tags AS TEXT) AS tags, "
        f"{sql.rank() if order.ranked else '0'} AS rank, {title} AS title "
        f"{sql.source(node)} LIMIT {SAMPLE_CAP + 1}"
    )
    collate = backend.collate
    # Typed nulls: PostgreSQL types an untyped null of a subquery as text, and then cannot unite the parts.
    text_, integer, day = "CAST(NULL AS TEXT)", "CAST(NULL AS INTEGER)", "CAST(NULL AS DATE)"
    parts = [f"SELECT 0, {text_}, {integer}, {day}, {text_}, count(*) FROM m"]
    if query.facets:
        folder_name = "(SELECT name FROM ged_folders WHERE ged_folders.id = folder)"
        for code, column, label in ((1, "type", text_), (2, "folder", folder_name)):
            parts.append(
                f"SELECT * FROM (SELECT {code}, {column} AS v, {integer}, {day}, {label}, count(*) AS n FROM m "
                f"WHERE {column} IS NOT NULL GROUP BY {column} ORDER BY n DESC, {column} {collate} "
                f"LIMIT {FACET_SIZE}) f{code}"
            )
        parts.append(f"SELECT 4, tags, {integer}, {day}, {text_}, count(*) FROM m GROUP BY tags")
    if query.facets or level:  # every year: the facet, and how dense the years are for a cut (_dated_since)
        year = backend.year_sql
        parts.append(
            f"SELECT 3, {year}, {integer}, {day}, {text_}, count(*) FROM m WHERE day IS NOT NULL GROUP BY {year}"
        )
    if order.ranked:
        parts.append(f"SELECT 6, {text_}, rank, {day}, {text_}, count(*) FROM m GROUP BY rank")
    by = sql.order(order, "rank", "day", "title", "id")
    parts.append(
        f"SELECT * FROM (SELECT 5, id, rank, day, {text_}, row_number() OVER (ORDER BY {by}) AS n FROM m "
        f"ORDER BY {by} LIMIT {int(first)}) o"
    )
    if level and plan.span is None:  # the page will be placed by a cut: the tenant's dates bound it (_span)
        tenant = sql.bind(plan.tenant_id)
        for code, edge in ((7, "min"), (8, "max")):
            bound = (
                f"(SELECT {edge}(document_date) FROM ged_search WHERE tenant_id = {tenant} "
                "AND document_date IS NOT NULL)"
            )
            parts.append(f"SELECT {code}, {text_}, {integer}, {bound}, {text_}, 0")
    statement = f"WITH m AS MATERIALIZED ({rows}) " + " UNION ALL ".join(parts)
    result = _Read(level, 0, {name: Counter() for name in FACETS}, [])
    firsts: list[tuple[int, tuple[str, int, date | None]]] = []
    edges: dict[int, date | None] = {}
    for code, value, row_rank, day, label, n in sql.run(session, statement):
        if code in (7, 8):
            edges[code] = _day(day)
        elif code == 0:
            result.count = int(n)
        elif code == 4:
            for tag in set(json.loads(value) if value else []):
                result.facets["tag"][tag] += int(n)
        elif code == 5:
            firsts.append((int(n), (value, int(row_rank or 0), _day(day))))
        elif code == 6:
            result.ranks[int(row_rank)] += int(n)
        elif code == 3:
            result.years[int(value)] += int(n)
        else:
            result.facets["type" if code == 1 else "folder"][value] += int(n)
            if label is not None:
                result.labels[value] = label
    result.first = [row for _, row in sorted(firsts)]
    if query.facets:
        result.facets["year"] = Counter({str(year): count for year, count in result.years.items()})
    first_day, last_day = edges.get(7), edges.get(8)
    if first_day is not None and last_day is not None:
        plan.span = (first_day, last_day)
    return result


def _day(value: Any) -> date | None:
    """A date as the driver gives it (SQLite: text)."""
    return date.fromisoformat(value) if isinstance(value, str) else value


def _sample(session: Session, backend: _Backend, plan: _Plan, query: SearchQuery, order: _Order) -> _Read:
    """Every match if there are at most SAMPLE_CAP, else a uniform sample of about SAMPLE_TARGET."""
    need = query.offset + query.limit
    level, floor = _first_level(session, backend, plan), 0  # floor: the levels below were found too full
    read = None
    for _ in range(2 * SAMPLE_LEVELS):
        first = need if level == 0 else _cut_position(need, level) + 1
        read = _read(session, backend, plan, query, order, level, first)
        if read.count > SAMPLE_CAP and level < SAMPLE_LEVELS:  # more than estimated: a sparser sample
            floor, level = level + 1, min(SAMPLE_LEVELS, level + 3)
            continue
        if level > floor and read.count < SAMPLE_MIN:  # fewer than estimated: a denser one
            denser = max(floor, _level_for(read.total) if read.total > EXACT_UP_TO else 0)
            if denser < level:
                level = denser
                continue
        break
    assert read is not None
    return read


def _first_level(session: Session, backend: _Backend, plan: _Plan) -> int:
    """The sample level to read at: from the index's own count where it is cheap (SQLite), else from the
    count of a sparse sample (one document in 2**P, P such that a few dozen rows are read); level 0 when the
    matches are few enough to be read all."""
    estimate = plan.index_count
    if estimate is None:
        probe = max(0, int(math.log2(max(1, backend.index_size(session)) / PROBE_SHARE)))
        if probe == 0:  # a small index: reading the matches is the count (past SAMPLE_CAP, _sample goes sparser)
            return 0
        node = plan.node(_Key(f"{SAMPLE_KEY}{probe}")) if probe else plan.node()
        sql = _Sql(backend, plan)
        counted = f"SELECT count(*) FROM (SELECT 1 {sql.source(node)} LIMIT {SAMPLE_CAP + 1}) c"
        estimate = int(sql.run(session, counted).scalar_one()) << probe
    return 0 if estimate <= EXACT_UP_TO else _level_for(estimate)


def _level_for(count: int) -> int:
    """The level at which ``count`` matches give at most SAMPLE_TARGET sample rows."""
    if count <= SAMPLE_TARGET:
        return 0
    return min(SAMPLE_LEVELS, math.ceil(math.log2(count / SAMPLE_TARGET)))


def _cut_position(need: int, level: int) -> int:
    """Where to cut a sample of this level so that about CUT_FACTOR times the rows a page needs come before."""
    return math.ceil(need * CUT_FACTOR / (1 << level)) + CUT_EXTRA - 1


# ---------------------------------------------------------------------------------------------------------
# The page


def _page(
    session: Session, backend: _Backend, plan: _Plan, query: SearchQuery, read: _Read, order: _Order
) -> list[Hit]:
    if read.level == 0:
        return _hits(session, [row[0] for row in read.first[query.offset :]])
    found = _page_by_cutoff(session, backend, plan, query, read, order)
    if found is not None:
        return found
    return _hits(session, _page_in_database(session, backend, plan, query, order))


_HIT_SQL = (
    "ged_search.version, ged_search.title, ged_search.document_type, ged_search.folder_id, ged_search.tags, "
    "ged_search.field_values"
)


def _hit_of(document_id: str, day: date | None, row: Sequence[Any]) -> Hit:
    """A hit from the columns of _HIT_SQL (JSON as the driver gives it: SQLite, text)."""
    version, title, document_type, folder_id, tags, values = row
    tags, values = (json.loads(value) if isinstance(value, str) else value for value in (tags, values))
    return Hit(document_id, version, title, document_type, folder_id, day, list(tags or []), dict(values or {}))


def _page_by_cutoff(
    session: Session, backend: _Backend, plan: _Plan, query: SearchQuery, read: _Read, order: _Order
) -> list[Hit] | None:
    """The page from the rows before a cut in the sort order, chosen in the sample so that about twice the
    rows the page needs come before it; the index bounds them (head terms, months). None when this cannot
    work (sort by title, a page too deep for the sample, bad luck): the database then sorts."""
    need = query.offset + query.limit
    position = _cut_position(need, read.level)
    if order.sort == "title" or position >= len(read.first):
        return None
    cut = read.first[position]
    narrowing = _before(session, plan, order, cut, read, need)
    if narrowing is None:
        return None
    sql = _Sql(backend, plan)
    # In the top tier (all groups in the head), the head keys imply the words: their long lists are spared.
    heads = order.ranked and cut[1] == len(plan.groups)
    source = sql.source(plan.node(narrowing, heads=heads))
    rank = sql.rank() if order.ranked else "0"
    by = sql.order(order, "rank", "day", "ged_search.title", "ged_search.document_id")
    statement = (
        f"SELECT ged_search.document_id, {rank} AS rank, ged_search.document_date AS day, {_HIT_SQL} {source} "
        f"ORDER BY {by} LIMIT {int(need)}"
    )
    rows = list(sql.run(session, statement))
    found = [(row[0], int(row[1]), _day(row[2])) for row in rows]
    # Every row up to the cut is among those the index returned: if the page ends before the cut, it is exact.
    if len(found) < need or order.key(found[-1]) > order.key(cut):
        return None
    # The page's rows came whole with the order: no second reading for them.
    return [_hit_of(document_id, day, row[3:]) for (document_id, _, day), row in zip(found, rows, strict=True)][
        query.offset :
    ]


class _Unbounded(Exception):
    """The index cannot bound the rows before a cut."""


def _before(
    session: Session, plan: _Plan, order: _Order, cut: tuple[str, int, date | None], read: _Read, need: int
) -> _Node | None:
    """Keys that every row up to ``cut`` (in ``order``) has; None when the index cannot narrow them.

    By relevance: the rows of a higher rank, and those of the cut's rank from the cut's month on; when the
    sample says the rows of the cut's rank and above are few, their rank alone (fewer keys for the index
    to combine). By date: the rows from the cut's month on.
    """
    try:
        if not order.ranked:
            return _dated_since(session, plan, cut[2], read)  # None: any date
        rank = cut[1]
        higher, same = _tiers(order.groups, rank + 1), _tiers(order.groups, rank)  # None: any rank
        ranked_rows = sum(count for value, count in read.ranks.items() if value >= rank) << read.level
        if same is not None and ranked_rows <= max(FEW_ROWS, CUT_FACTOR * 2 * need):
            return same
        since = _dated_since(session, plan, cut[2], read)
    except _Unbounded:
        return None
    same_since = _both(same, since)
    if same_since is None or higher is None:
        return None
    return same_since if higher is NOTHING else _Any((higher, same_since))


def _both(first: _Node | None, second: _Node | None) -> _Node | None:
    if first is None or second is None:
        return second if first is None else first
    return _All((first, second))


def _tiers(groups: list[list[str]], rank: int) -> _Node | None:
    """Rows with at least ``rank`` groups in their head. None: every row (rank 0)."""
    if rank <= 0:
        return None
    if rank > len(groups):
        return NOTHING
    if math.comb(len(groups), rank) > MAX_TIERS:
        raise _Unbounded
    return _Any(
        tuple(
            _All(tuple(_Key(HEAD_KEY + term) for index in chosen for term in groups[index]))
            for chosen in combinations(range(len(groups)), rank)
        )
    )


def _dated_since(session: Session, plan: _Plan, day: date | None, read: _Read) -> _Node | None:
    """Rows dated from ``day``'s year, or its month, on; None: every row (no date sorts last, after every date).

    Whole years: a few more rows to read than from the month, but a few keys for the index to combine rather
    than a dozen (measured at 1M entries: 25 ms for the GIN scan with 11 keys, 7 with 3). Unless the sample
    says the cut's year alone holds many rows: then its months.
    """
    if day is None:
        return None
    span = _span(session, plan)
    last = span[1] if span is not None else day
    if last.year - day.year > MAX_YEARS:
        raise _Unbounded
    dense = read.years[day.year] << read.level > DENSE_YEAR
    start = date(day.year, day.month if dense else 1, 1)
    return _months(start, date(max(last, day).year, 12, 31))


def _page_in_database(session: Session, backend: _Backend, plan: _Plan, query: SearchQuery, order: _Order) -> list[str]:
    """The database sorts every match (a sort by title over a large set, a deep page): slower, exact."""
    rank = _rank(backend, plan.groups) if order.ranked else literal(0)
    by = order.sql(rank, SearchEntry.document_date, SearchEntry.title, SearchEntry.document_id)
    statement = _matches(backend, plan, plan.node(), SearchEntry.document_id).order_by(*by)
    return list(session.execute(statement.limit(query.limit).offset(query.offset)).scalars())


def _and(conditions: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    result = conditions[0]
    for condition in conditions[1:]:
        result = result & condition
    return result


def _sum(values: Sequence[ColumnElement[Any]]) -> ColumnElement[Any]:
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total


_HIT_COLUMNS = (
    SearchEntry.document_id,
    SearchEntry.version,
    SearchEntry.title,
    SearchEntry.document_type,
    SearchEntry.folder_id,
    SearchEntry.document_date,
    SearchEntry.tags,
    SearchEntry.field_values,
)


def _hits(session: Session, page_ids: list[str]) -> list[Hit]:
    if not page_ids:
        return []
    rows = session.execute(select(*_HIT_COLUMNS).where(SearchEntry.document_id.in_(page_ids)))
    found = {
        row[0]: Hit(row[0], row[1], row[2], row[3], row[4], row[5], list(row[6] or []), dict(row[7] or {}))
        for row in rows
    }
    return [found[document_id] for document_id in page_ids if document_id in found]


# ---------------------------------------------------------------------------------------------------------
# Facets: counted on the rows read, scaled to the matching set when they are a sample


def _facets(read: _Read) -> dict[str, list[FacetValue]]:
    scale = 1 << read.level
    return {
        name: [
            FacetValue(value, count * scale, read.labels.get(value) if name == "folder" else None)
            for value, count in sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:FACET_SIZE]
        ]
        for name, counter in read.facets.items()
    }
