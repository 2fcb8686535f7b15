"""The kernel's registry of who holds which stored object: idempotent, per tenant, and filled for what the GED and
the parapheur held before it existed (ged0007, par0006)."""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session

from ged.models import Document, Version
from parapheur.models import Folder, FolderDocument
from socle.db import engine_for, new_session, transaction
from socle.migrating import PACKAGES, alembic_config, upgrade_all
from socle.models import TenantObject
from socle.storage import get_store
from socle.storage.ownership import record_held, tenant_holds


def _key() -> str:
    """A stored object's key: the registry records only objects that are in the store."""
    return get_store().put(io.BytesIO(uuid.uuid4().bytes)).key


def _rows(session: Session, tenant_id: str) -> list[str]:
    """The tenant's recorded keys, sorted, each as often as it is recorded."""
    return sorted(
        session.execute(sa.select(TenantObject.object_key).where(TenantObject.tenant_id == tenant_id)).scalars()
    )


def test_recording_twice_is_recording_once() -> None:
    tenant, other, key, second = str(uuid.uuid4()), str(uuid.uuid4()), _key(), _key()
    with transaction() as session:
        record_held(session, tenant, key, key, None, second, holder="ged")  # repeats and None in one call
        record_held(session, tenant, key, holder="ged")  # again in the same transaction
    with transaction() as session:
        record_held(session, tenant, key, holder="ged")  # and in another
        record_held(session, tenant, holder="ged")  # nothing to record
    with new_session() as session:
        assert _rows(session, tenant) == sorted([key, second])
        assert tenant_holds(session, tenant, key) and tenant_holds(session, tenant, second)
        assert not tenant_holds(session, other, key)  # another tenant holds nothing of it
        assert not tenant_holds(session, tenant, _key())


def test_the_record_goes_with_the_callers_transaction() -> None:
    tenant, key = str(uuid.uuid4()), _key()
    with new_session() as session:
        record_held(session, tenant, key, holder="ged")
        session.rollback()
    with new_session() as session:
        assert not tenant_holds(session, tenant, key)


@pytest.mark.integration
def test_concurrent_records_of_one_key_on_postgresql(own_postgres_url: str, use_env: Callable[..., None]) -> None:
    """Two transactions record the same pair at once: the second waits for the first's commit, then does
    nothing (a plain INSERT would fail there on the primary key)."""
    use_env(SOCLE_DATABASE_URL=own_postgres_url)
    upgrade_all()
    tenant, key = str(uuid.uuid4()), _key()
    errors: list[BaseException] = []
    first = new_session()
    record_held(first, tenant, key, holder="ged")  # uncommitted: the pair is locked by this transaction

    def second() -> None:
        try:
            with transaction() as session:
                record_held(session, tenant, key, holder="ged")
        except BaseException as exc:  # reported to the test's thread
            errors.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    first.commit()
    first.close()
    thread.join()
    assert errors == []
    with new_session() as session:
        assert _rows(session, tenant) == [key]


def _file_before_the_registry(url: str, tenant_id: str) -> dict[str, str]:
    """A GED document with two versions and a signed parapheur folder, written before ``tenant_objects``."""
    keys = {name: _key() for name in ("v1", "v2", "original", "signed", "annex")}
    with Session(engine_for(url)) as session:
        document = Document(tenant_id=tenant_id, created_by="agent", current_version=2)
        for number, name in ((1, "v1"), (2, "v2")):
            document.versions.append(
                Version(
                    number=number,
                    object_key=keys[name],
                    size=1,
                    media_type="application/pdf",
                    filename="acte.pdf",
                    title="Délibération",
                    document_type="deliberation",
                    author="agent",
                )
            )
        # Core, not the ORM: the model has columns of later revisions (this database is at an older one).
        folder_id = str(uuid.uuid4())
        values = {"tenant_id": tenant_id, "title": "Arrêté", "status": "completed", "source": "upload"}
        session.execute(sa.insert(Folder.__table__).values(id=folder_id, created_by="agent", **values))
        session.execute(
            sa.insert(FolderDocument.__table__).values(
                folder_id=folder_id,
                role="main",
                position=0,
                filename="arrete.pdf",
                media_type="application/pdf",
                key=keys["original"],
                size=1,
                signed_key=keys["signed"],
                added_by="agent",
            )
        )
        session.execute(
            sa.insert(FolderDocument.__table__).values(
                folder_id=folder_id,
                role="annex",
                position=1,
                filename="annexe.pdf",
                media_type="application/pdf",
                key=keys["annex"],
                size=1,
                added_by="agent",
            )
        )
        session.add_all([document])
        session.commit()
    return keys


def test_the_migrations_record_what_the_ged_and_the_parapheur_held(old_database_url: str) -> None:
    url = old_database_url
    before = {"socle": "0004", "ged": "ged0006", "parapheur": "par0005"}
    for package in PACKAGES:
        command.upgrade(alembic_config(package, url), before.get(package, "head"))
    tenant, other = str(uuid.uuid4()), str(uuid.uuid4())
    keys = _file_before_the_registry(url, tenant)
    other_keys = _file_before_the_registry(url, other)
    assert "tenant_objects" not in sa.inspect(engine_for(url)).get_table_names()

    upgrade_all(url)
    upgrade_all(url)  # nothing to do the second time

    with Session(engine_for(url)) as session:
        assert _rows(session, tenant) == sorted(keys.values())
        assert _rows(session, other) == sorted(other_keys.values())
        assert not tenant_holds(session, tenant, other_keys["v1"])

    # Down and up again (the services' revisions only): the rows are not doubled.
    command.downgrade(alembic_config("parapheur", url), "par0005")
    command.downgrade(alembic_config("ged", url), "ged0006")
    upgrade_all(url)
    with Session(engine_for(url)) as session:
        assert _rows(session, tenant) == sorted(keys.values())
