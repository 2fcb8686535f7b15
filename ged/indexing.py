"""Keeping the search index (``ged_search``) in step with the documents.

``index_document`` is called after every write to a document (service) and after its text is extracted
(renditions); it never commits, so the index changes in the same transaction as the document.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, select, text
from sqlalchemy.orm import Session, selectinload

from ged.models import Document, ReindexRun, SearchEntry, Version
from ged.terms import normalise
from socle.db import utcnow
from socle.errors import NotFound
from socle.storage import get_store

log = logging.getLogger("ged.indexing")

# Extracted text read for the index, in characters: enough for any act or letter, bounded for a 2,000-page
# scan. PostgreSQL also stops recording word positions past 16,383, so more would not help phrases.
MAX_TEXT_CHARS = 200_000


def index_document(session: Session, document: Document, *, text: str | None = None) -> None:
    """Add, update or remove the search entry of a document, without committing.

    A document in the trash or eliminated has no entry: search cannot find it.

    :param session: the caller's session (its transaction carries the change).
    :param document: the document, its versions loaded or loadable.
    :param text: the current version's extracted text, when the caller has just stored it (the text job): it is
        not read back from the store.
    """
    entry = session.get(SearchEntry, document.id)
    if document.deleted_at is not None or document.disposal == "eliminated":
        if entry is not None:
            session.delete(entry)
        return
    version = document.current
    values = entry_values(document, version, text[:MAX_TEXT_CHARS] if text is not None else read_text(version))
    if entry is None:
        session.add(SearchEntry(document_id=document.id, **values))
    else:
        for name, value in values.items():
            setattr(entry, name, value)


def entry_values(document: Document, version: Version, text: str) -> dict[str, Any]:
    """The columns of a document's search entry (also used by the bulk reindex and the benchmark)."""
    head = head_terms(version.title, version.tags, version.document_type, version.field_values)
    return {
        "tenant_id": document.tenant_id,
        "version": version.number,
        "title": version.title,
        "document_type": version.document_type,
        "folder_id": document.folder_id,
        "type_id": document.type_id,
        "document_date": version.document_date,
        "tags": list(version.tags or []),
        "field_values": dict(version.field_values or {}),
        "terms": " ".join([*head, *normalise(text)]),
        "keys": search_keys(
            document.id,
            tenant_id=document.tenant_id,
            type_id=document.type_id,
            folder_id=document.folder_id,
            document_type=version.document_type,
            tags=version.tags,
            document_date=version.document_date,
            head=head,
        ),
        "updated_at": utcnow(),
    }


def head_terms(
    title: str, tags: list[str] | None, document_type: str, field_values: dict[str, Any] | None
) -> list[str]:
    """The terms of the head of an entry: title, tags, type and typed values, in that order. Relevance
    counts the query's groups found there; they also open ``terms``."""
    parts = [title, *(tags or []), document_type, *_field_words(field_values or {})]
    return [term for part in parts if part for term in normalise(part)]


def build_terms(
    title: str, tags: list[str] | None, document_type: str, field_values: dict[str, Any] | None, text: str
) -> str:
    """The normalised words of the title, tags, type, typed field values and text, space-separated.

    The title comes first and each part is kept whole, so a phrase is found within one part.
    """
    return " ".join([*head_terms(title, tags, document_type, field_values), *normalise(text)])


def _field_words(values: dict[str, Any]) -> list[str]:
    words: list[str] = []
    for value in values.values():
        if isinstance(value, bool) or value is None:
            continue  # « oui »/« non » would match every document of the type
        if isinstance(value, str | int | float | date):
            words.append(str(value))
        elif isinstance(value, list):
            words.extend(str(item) for item in value if isinstance(item, str | int | float))
    return words


# Kinds of keys: each is a letter then [a-z0-9], so FTS5 reads a key as one token; PostgreSQL prefixes them
# with « ~ » in the vector, so that no word of a document can ever be taken for a key (terms are [a-z0-9]).
TENANT_KEY, TYPE_KEY, LABEL_KEY, FOLDER_KEY, TAG_KEY = "t", "y", "k", "f", "g"
YEAR_KEY, MONTH_KEY, HEAD_KEY, SAMPLE_KEY = "d", "m", "h", "s"
# A document carries the sample mark of level L when the low L bits of its id's hash are zero: level L
# holds one document in 2**L, drawn uniformly, and each level's sample is within the one below.
SAMPLE_LEVELS = 24


def key_of(kind: str, value: str) -> str:
    """The key of an identifier or a label: its kind and a digest (96 bits: a collision is not a risk)."""
    return kind + hashlib.sha256(value.encode()).hexdigest()[:24]


def year_key(year: int) -> str:
    return f"{YEAR_KEY}{year:04d}"


def month_key(year: int, month: int) -> str:
    return f"{MONTH_KEY}{year:04d}{month:02d}"


def sample_level(document_id: str) -> int:
    """The deepest sample level the document belongs to."""
    bits = int.from_bytes(hashlib.sha256(document_id.encode()).digest()[:4], "big")
    level = 0
    while level < SAMPLE_LEVELS and not bits & (1 << level):
        level += 1
    return level


def search_keys(
    document_id: str,
    *,
    tenant_id: str,
    type_id: str | None,
    folder_id: str | None,
    document_type: str,
    tags: list[str] | None,
    document_date: date | None,
    head: list[str],
) -> str:
    """The keys of a search entry, space-separated (see ``SearchEntry``)."""
    keys = [key_of(TENANT_KEY, tenant_id), key_of(LABEL_KEY, document_type)]
    if type_id is not None:
        keys.append(key_of(TYPE_KEY, type_id))
    if folder_id is not None:
        keys.append(key_of(FOLDER_KEY, folder_id))
    keys.extend(sorted({key_of(TAG_KEY, tag) for tag in tags or []}))
    if document_date is not None:
        keys += [year_key(document_date.year), month_key(document_date.year, document_date.month)]
    keys.extend(f"{SAMPLE_KEY}{level}" for level in range(1, sample_level(document_id) + 1))
    keys.extend(sorted({HEAD_KEY + term for term in head}))
    return " ".join(keys)


def read_text(version: Version) -> str:
    """The version's extracted text from the store, cut at ``MAX_TEXT_CHARS``; empty if there is none yet."""
    if not version.text_key:
        return ""
    try:
        with get_store().open(version.text_key) as stream:
            # UTF-8 takes at most 4 bytes a character: this reads no more than the cap needs.
            raw = stream.read(MAX_TEXT_CHARS * 4)
    except NotFound:
        log.warning("texte extrait %s absent du stockage (version %s)", version.text_key, version.id)
        return ""
    return raw.decode("utf-8", errors="ignore")[:MAX_TEXT_CHARS]


# ---------------------------------------------------------------------------------------------------------
# Full reindex: resumable, in batches


REINDEX_BATCH = 500


def reindex(
    session_factory: Callable[[], Session],
    *,
    tenant_id: str | None = None,
    batch_size: int = REINDEX_BATCH,
    restart: bool = False,
    limit: int | None = None,
    progress: Callable[[ReindexRun], None] | None = None,
) -> ReindexRun:
    """Rebuild the search entries of every document (of one tenant, or all), in id order, batch by batch.

    Each batch commits its entries together with the run's position, so a stop at any moment (Ctrl-C,
    SIGTERM, a killed process) loses at most the batch under way, and the next call resumes after the last
    committed document. Memory stays bounded: one batch of documents at a time, then the session is cleared.

    :param session_factory: makes a new session (one per batch).
    :param tenant_id: only this tenant's documents; None for all.
    :param batch_size: documents per transaction.
    :param restart: start over even if an unfinished run exists.
    :param limit: stop (as interrupted) after this many documents: for tests and benchmarks.
    :param progress: called after every batch with the run.
    :returns: the run, ``done`` or ``interrupted``.
    """
    run_id = _open_run(session_factory, tenant_id, restart)
    try:
        while True:
            with session_factory() as session:
                run = session.get_one(ReindexRun, run_id)
                done = _reindex_batch(session, run, batch_size)
                session.commit()
                if progress is not None:
                    progress(run)
                if done:
                    _finish(session, run)
                    return _detached(session, run)
                if limit is not None and run.done_count >= limit:
                    raise _Stop
    except (KeyboardInterrupt, _Stop) as exc:
        with session_factory() as session:
            run = session.get_one(ReindexRun, run_id)
            run.status = "interrupted"
            session.commit()
            if isinstance(exc, _Stop):
                return _detached(session, run)
        raise


class _Stop(Exception):
    """``limit`` reached."""


def _open_run(session_factory: Callable[[], Session], tenant_id: str | None, restart: bool) -> str:
    with session_factory() as session:
        unfinished = list(
            session.execute(
                select(ReindexRun)
                .where(ReindexRun.status != "done", _same_tenant(tenant_id))
                .order_by(ReindexRun.started_at.desc())
            ).scalars()
        )
        run = None if restart or not unfinished else unfinished[0]
        if restart:
            for stale in unfinished:
                stale.status = "done"  # abandoned: a new run starts from the first document
                stale.finished_at = utcnow()
        if run is None:
            run = ReindexRun(tenant_id=tenant_id, status="running", done_count=0)
            session.add(run)
        run.status = "running"
        session.commit()
        return run.id


def _same_tenant(tenant_id: str | None) -> ColumnElement[bool]:
    return ReindexRun.tenant_id.is_(None) if tenant_id is None else ReindexRun.tenant_id == tenant_id


def _reindex_batch(session: Session, run: ReindexRun, batch_size: int) -> bool:
    """Index the next batch after ``run.last_document_id``; True when there is nothing left."""
    query = select(Document).options(selectinload(Document.versions)).order_by(Document.id).limit(batch_size)
    if run.tenant_id is not None:
        query = query.where(Document.tenant_id == run.tenant_id)
    if run.last_document_id is not None:
        query = query.where(Document.id > run.last_document_id)
    documents = list(session.execute(query).scalars())
    if not documents:
        return True
    # One query loads the batch's entries: index_document then finds them in the session, not one by one.
    list(session.execute(select(SearchEntry).where(SearchEntry.document_id.in_([d.id for d in documents]))).scalars())
    for document in documents:
        index_document(session, document)
    run.last_document_id = documents[-1].id
    run.done_count += len(documents)
    return len(documents) < batch_size


def _finish(session: Session, run: ReindexRun) -> None:
    if session.get_bind().dialect.name == "sqlite" and run.tenant_id is None:
        # The FTS5 table follows ged_search's rowids, which VACUUM may renumber: a full reindex rebuilds it.
        session.execute(text("INSERT INTO ged_search_fts(ged_search_fts) VALUES ('rebuild')"))
    run.status = "done"
    run.finished_at = utcnow()
    session.commit()


def _detached(session: Session, run: ReindexRun) -> ReindexRun:
    session.refresh(run)
    session.expunge(run)
    return run
