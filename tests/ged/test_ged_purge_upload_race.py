"""The purge deletes a content's bytes while an upload of the same content is under way: no document may end up
referring to bytes that are gone.

The store is content-addressed: an upload of a PDF identical to one in the trash finds its bytes already stored.
If the purge removes them between that moment and the upload's commit, the new document's version refers to
nothing. Under the object's lock, the purge waits for the upload's commit (and then keeps the bytes), or the
upload finds them gone and is refused, to be sent again.
"""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from ga_helpers import new_document
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from test_ged_qa_retention_purge import trash

from ged import journal, renditions, retention, service
from ged.models import Document, Version
from ged.schemas import Metadata
from socle.auth import Principal
from socle.db import new_session
from socle.migrating import upgrade_all
from socle.storage import get_store
from socle.storage.ownership import ObjectGone, lock_id

from conftest import Kit, make_pdf

TEXT = "Arrêté de voirie, copie unique"
COPY = Metadata(title="Copie", document_type="arrete")


def _principal(kit: Kit) -> Principal:
    return Principal(kit.tenant_id, kit.slug, "Commune", str(uuid.uuid4()), "admin", "admin", frozenset({"admin"}))


def _trashed_content(kit: Kit) -> bytes:
    """The bytes of a document in the trash past its window: the purge's next victim."""
    content = make_pdf(TEXT)
    created = new_document(kit, text=TEXT, title="Arrêté de voirie")
    trash(kit, created)
    return content


def _titles(kit: Kit) -> list[str]:
    with new_session() as session:
        documents = session.execute(select(Document).where(Document.tenant_id == kit.tenant_id)).scalars()
        return sorted(document.current.title for document in documents)


def test_an_upload_whose_bytes_the_purge_removed_meanwhile_is_refused(kit: Kit) -> None:
    content = _trashed_content(kit)
    stored = get_store().put(io.BytesIO(content))  # the upload's first step: the bytes are (already) there

    with new_session() as session:
        retention.purge(session, kit.tenant_id)  # the purge runs before the upload's transaction
    assert not get_store().exists(stored.key)

    with new_session() as session, pytest.raises(ObjectGone, match="envoyez-le de nouveau"):
        service.create_document(session, _principal(kit), stored, "copie.pdf", "application/pdf", COPY)
    assert _titles(kit) == []  # nothing refers to the missing bytes


def _waiting_on_the_lock(key: str) -> bool:
    """Whether a session waits for the object's advisory lock (PostgreSQL splits the 64-bit number in two)."""
    number = lock_id(key) & 0xFFFFFFFFFFFFFFFF
    with new_session() as session:
        found = session.execute(
            text(
                "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND classid = :high AND objid = :low"
            ),
            {"high": number >> 32, "low": number & 0xFFFFFFFF},
        ).first()
    return found is not None


@pytest.mark.integration
def test_the_purge_waits_for_an_upload_of_the_same_bytes_on_postgresql(
    own_postgres_url: str, use_env: Callable[..., None], make_kit: Callable[..., Kit], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The purge runs while the upload's transaction is open (its document written, not yet committed)."""
    use_env(SOCLE_DATABASE_URL=own_postgres_url)
    upgrade_all()
    kit, other = make_kit(with_identity=False), make_kit(with_identity=False)
    content = _trashed_content(kit)
    stored = get_store().put(io.BytesIO(content))
    purging = threading.Thread(target=_purge, args=(kit.tenant_id,))
    record = journal.record_document

    def purge_before_the_commit(session: Session, tenant_id: str, *args: Any, **kwargs: Any) -> None:
        record(session, tenant_id, *args, **kwargs)
        if tenant_id == other.tenant_id and not purging.is_alive():
            purging.start()
            deadline = time.monotonic() + 30
            while purging.is_alive() and not _waiting_on_the_lock(stored.key) and time.monotonic() < deadline:
                time.sleep(0.01)  # the purge waits for this upload's lock, or (old code) deleted the bytes

    monkeypatch.setattr(journal, "record_document", purge_before_the_commit)
    with new_session() as upload:  # another collectivité's: nothing else of theirs makes the purge wait
        service.create_document(upload, _principal(other), stored, "copie.pdf", "application/pdf", COPY)
    purging.join(timeout=30)

    assert not purging.is_alive()
    assert get_store().exists(stored.key), "the purge deleted bytes the new document refers to"
    assert _titles(kit) == [] and _titles(other) == ["Copie"]


def _purge(tenant_id: str) -> None:
    with new_session() as session:
        retention.purge(session, tenant_id)


@pytest.mark.parametrize("job", ["make_preview", "make_pdfa", "extract_text"])
def test_a_rendition_purged_before_its_job_records_it_is_made_again(
    kit: Kit, job: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rendition's bytes are put, then recorded: an identical rendition of a purged document may be deleted
    in between. The job is then retried (ObjectGone) rather than leave the version pointing at nothing."""
    document_id = new_document(kit, text=TEXT, title="Arrêté")["id"]
    column = {"make_preview": "preview_key", "make_pdfa": "pdfa_key", "extract_text": "text_key"}[job]
    put_bytes, put_file = renditions._put_bytes, renditions._put_file

    def purged_at_once(put: Callable[[Any], str]) -> Callable[[Any], str]:
        def put_then_purge(data: Any) -> str:
            key = put(data)
            get_store().delete(key)  # the purge of another document with the same rendition, meanwhile
            return key

        return put_then_purge

    monkeypatch.setattr(renditions, "_put_bytes", purged_at_once(put_bytes))
    monkeypatch.setattr(renditions, "_put_file", purged_at_once(put_file))
    with pytest.raises(ObjectGone):
        getattr(renditions, job)(kit.tenant_id, document_id, 1)
    assert _rendition_key(document_id, column) is None

    monkeypatch.setattr(renditions, "_put_bytes", put_bytes)
    monkeypatch.setattr(renditions, "_put_file", put_file)
    getattr(renditions, job)(kit.tenant_id, document_id, 1)  # the retry
    key = _rendition_key(document_id, column)
    assert key is not None and get_store().exists(key)


def _rendition_key(document_id: str, column: str) -> str | None:
    with new_session() as session:
        version = session.execute(select(Version).where(Version.document_id == document_id)).scalar_one()
        return getattr(version, column)  # type: ignore[no-any-return]
