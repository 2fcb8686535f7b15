"""Which service holds each object in the kernel's registry (kernel revision 0006): one row per holder, the
holders told apart, and the rows recorded before holders were claimed by the GED (ged0008) and the parapheur
(par0007), in either order; what no service claims stays of unknown holder."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session

from ged.models import Document, Version
from parapheur.models import Folder, FolderDocument
from socle.db import engine_for, new_session, transaction
from socle.migrating import PACKAGES, alembic_config, upgrade_all
from socle.storage import get_store
from socle.storage.ownership import ObjectGone, held_by_others, record_held, release_held, tenant_holds


def _key() -> str:
    """A stored object's key: the registry records only objects that are in the store."""
    return get_store().put(io.BytesIO(uuid.uuid4().bytes)).key


def _holders(session: Session, tenant_id: str) -> dict[str, list[str]]:
    """The tenant's recorded keys, each with its holders (sorted)."""
    rows = session.execute(
        sa.text("SELECT object_key, holder FROM tenant_objects WHERE tenant_id = :tenant ORDER BY holder"),
        {"tenant": tenant_id},
    )
    found: dict[str, list[str]] = {}
    for key, holder in rows:
        found.setdefault(key, []).append(holder)
    return found


def test_each_holder_has_its_own_row() -> None:
    tenant, other, key = str(uuid.uuid4()), str(uuid.uuid4()), _key()
    with transaction() as session:
        record_held(session, tenant, key, holder="ged")
        record_held(session, tenant, key, holder="parapheur")
        record_held(session, tenant, key, holder="parapheur")  # once per holder
        record_held(session, other, key, holder="interop")
    with new_session() as session:
        assert _holders(session, tenant) == {key: ["ged", "parapheur"]}
        assert tenant_holds(session, tenant, key)
        assert held_by_others(session, key, holder="ged")
    with transaction() as session:
        release_held(session, tenant, key, holder="parapheur")
        release_held(session, tenant, key, holder="ged")
    with new_session() as session:
        assert _holders(session, tenant) == {}
        assert not tenant_holds(session, tenant, key)
        assert held_by_others(session, key, holder="ged")  # another tenant's flow still has it
        assert not held_by_others(session, key, holder="interop")


def test_a_holder_must_be_a_service() -> None:
    with new_session() as session:
        for holder in ("", "gde"):
            with pytest.raises(ValueError):
                record_held(session, str(uuid.uuid4()), _key(), holder=holder)
        with pytest.raises(TypeError):
            record_held(session, str(uuid.uuid4()), _key())  # type: ignore[call-arg]


def _file_before_holders(url: str, tenant_id: str, keys: dict[str, str]) -> None:
    """A GED document and a parapheur folder sharing its content (sent by the GED), each with a key of its
    own, and an eliminated GED document."""
    with Session(engine_for(url)) as session:
        document = Document(tenant_id=tenant_id, created_by="agent", current_version=2)
        eliminated = Document(tenant_id=tenant_id, created_by="agent", current_version=1, disposal="eliminated")
        for target, names in ((document, ("shared", "ged_own")), (eliminated, ("eliminated",))):
            for number, name in enumerate(names, start=1):
                target.versions.append(
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
                filename="acte.pdf",
                media_type="application/pdf",
                key=keys["shared"],
                size=1,
                signed_key=keys["signed"],
                added_by="agent",
            )
        )
        session.add_all([document, eliminated])
        session.commit()


@pytest.mark.parametrize("first", ["ged", "parapheur"])
def test_the_services_claim_their_rows_in_either_order(old_database_url: str, first: str) -> None:
    url = old_database_url
    before = {"socle": "0004", "ged": "ged0006", "parapheur": "par0005"}
    registry = {"socle": "0005", "ged": "ged0007", "parapheur": "par0006"}
    for package in PACKAGES:
        command.upgrade(alembic_config(package, url), before.get(package, "head"))
    tenant = str(uuid.uuid4())
    keys = {name: _key() for name in ("shared", "ged_own", "signed", "eliminated", "unknown")}
    _file_before_holders(url, tenant, keys)
    for package in ("socle", "ged", "parapheur"):
        command.upgrade(alembic_config(package, url), registry[package])
    with engine_for(url).begin() as connection:  # a row no service's data explains (a flow's file, say)
        connection.execute(
            sa.text("INSERT INTO tenant_objects (tenant_id, object_key, created_at) VALUES (:t, :k, :now)"),
            {"t": tenant, "k": keys["unknown"], "now": datetime.now(UTC)},
        )

    command.upgrade(alembic_config("socle", url), "head")
    second = "parapheur" if first == "ged" else "ged"
    command.upgrade(alembic_config(first, url), "head")
    command.upgrade(alembic_config(second, url), "head")
    expected = {
        keys["shared"]: ["ged", "parapheur"],  # one object, two holders, none unknown
        keys["ged_own"]: ["ged"],
        keys["signed"]: ["parapheur"],
        keys["eliminated"]: [""],  # the GED no longer needs it: not claimed, kept as unknown
        keys["unknown"]: [""],
    }
    with Session(engine_for(url)) as session:
        assert _holders(session, tenant) == expected

    # Down to one row per pair (kernel 0005) and up again: the same rows.
    command.downgrade(alembic_config("parapheur", url), "par0006")
    command.downgrade(alembic_config("ged", url), "ged0007")
    command.downgrade(alembic_config("socle", url), "0005")
    with Session(engine_for(url)) as session:
        pairs = session.execute(sa.text("SELECT object_key FROM tenant_objects WHERE tenant_id = :t"), {"t": tenant})
        assert sorted(pairs.scalars()) == sorted(keys.values())
    upgrade_all(url)
    upgrade_all(url)  # nothing to do the second time
    with Session(engine_for(url)) as session:
        assert _holders(session, tenant) == expected


def test_a_key_already_held_by_a_service_that_never_lets_go_is_not_asked_again() -> None:
    """The parapheur records its folder's documents at every act: once recorded, its row keeps the bytes in
    the store (the GED's purge leaves what another service holds), so the store is not asked again. The GED's
    own rows go with its purge: they are checked every time."""
    tenant, key = str(uuid.uuid4()), _key()
    with transaction() as session:
        record_held(session, tenant, key, holder="parapheur")
        record_held(session, tenant, key, holder="ged")
    get_store().delete(key)  # stands for « would the store be asked? »: it would answer no
    with transaction() as session:
        record_held(session, tenant, key, holder="parapheur")  # no question, no refusal
    with transaction() as session, pytest.raises(ObjectGone):
        record_held(session, tenant, key, holder="ged")
    with transaction() as session, pytest.raises(ObjectGone):
        record_held(session, str(uuid.uuid4()), key, holder="parapheur")  # another tenant's first holding
