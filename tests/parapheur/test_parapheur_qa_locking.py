"""The folder's lock protects what was read under it: a session that already holds the folder (a page checks it,
then acts) reads it again once locked, and sees what a concurrent request committed meanwhile.

On PostgreSQL, where two requests run at once (SQLite serialises whole transactions: BEGIN IMMEDIATE).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from parapheur_kit import Standard, folder_of, ok, sent_folder, upload_folder
from sqlalchemy import select
from sqlalchemy.orm import Session

from parapheur import service
from parapheur.pades import inspect_pdf
from socle.auth import Principal
from socle.db import new_session
from socle.errors import Conflict
from socle.migrating import upgrade_all
from socle.models import Tenant, User
from socle.storage import get_store

from conftest import Kit

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_kit(postgres_url: str, use_env: Any, make_kit: Any, app: Any) -> Kit:
    use_env(SOCLE_DATABASE_URL=postgres_url)
    upgrade_all()
    kit: Kit = make_kit()
    return kit


def _principal(session: Session, tenant_id: str, username: str) -> Principal:
    user, tenant = session.execute(
        select(User, Tenant)
        .join(Tenant, Tenant.id == User.tenant_id)
        .where(User.tenant_id == tenant_id, User.username == username)
    ).one()
    return Principal(
        tenant_id=tenant.id,
        tenant_slug=tenant.slug,
        tenant_name=tenant.name,
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        roles=frozenset(user.roles),
    )


@contextmanager
def _two_sessions() -> Iterator[tuple[Session, Session]]:
    first, second = new_session(), new_session()
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def test_a_signature_decided_on_a_copy_read_before_the_lock_is_refused(pg_kit: Kit) -> None:
    kit = pg_kit
    folder_id = sent_folder(kit, Standard(kit).sign_only)["id"]
    with _two_sessions() as (page, other):
        mayor = _principal(page, kit.tenant_id, "maire")
        held = service.folder_for(page, mayor, folder_id)  # the page checked the folder before acting
        service.sign(other, _principal(other, kit.tenant_id, "maire"), folder_id, "depuis un autre onglet")
        with pytest.raises(Conflict):
            service.sign(page, mayor, folder_id, "deuxième clic")
        assert held.status == "completed"  # the session's copy was read again under the lock
    folder = folder_of(kit, folder_id, "maire")
    assert [act["comment"] for step in folder["steps"] for act in step["acts"]] == ["depuis un autre onglet"]
    history = [event["action"] for event in ok(kit["maire"].get(f"/parapheur/folders/{folder_id}/history"))]
    assert history.count("signature") == 1 and history.count("completed") == 1
    (document,) = folder["documents"]
    with get_store().local_path(document["current_sha256"]) as path:
        assert inspect_pdf(path).signature_count == 1  # signed once, not signed again over the original


def test_metadata_merged_on_a_copy_read_before_the_lock_loses_nothing(pg_kit: Kit) -> None:
    kit = pg_kit
    folder_id = ok(upload_folder(kit, Standard(kit).sign_only, send=False), 201)["id"]
    with _two_sessions() as (page, other):
        agent = _principal(page, kit.tenant_id, "agent")
        held = service.folder_for(page, agent, folder_id)  # the page read the folder's metadata
        service.set_metadata(other, _principal(other, kit.tenant_id, "agent"), folder_id, {"objet": "cantine"})
        service.set_metadata(page, agent, folder_id, {"service": "finances"})
        assert held.field_values == {"objet": "cantine", "service": "finances"}
    assert folder_of(kit, folder_id)["metadata"] == {"objet": "cantine", "service": "finances"}
