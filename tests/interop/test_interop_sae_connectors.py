"""Interop tells the archive service the collectivité's SAE connectors: the whole list, through the queue, at each
change of one of them, with a version that grows; ``socle interop sae-connectors`` sends it again."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from pg_waits import someone_waits_on_a_row, wait_until
from sqlalchemy import delete, select

from archive.models import SaeConnectorList
from interop import service
from interop.cli import group
from socle import messages
from socle.db import new_session, transaction
from socle.migrating import upgrade_all
from socle.models import AuditEntry, Job
from socle.schedule import Scheduler, period_of

from conftest import Kit, run_jobs, socle_command

FUNCTION = messages.ARCHIVE_RECORD_SAE_CONNECTORS.function


def sent(tenant_id: str) -> list[dict[str, Any]]:
    """The lists sent to the archive for this tenant, in the order they were asked."""
    with new_session() as session:
        query = select(Job.arguments).where(Job.tenant_id == tenant_id, Job.function == FUNCTION)
        return [dict(arguments) for arguments in session.execute(query.order_by(Job.created_at)).scalars()]


def kept(tenant_id: str) -> tuple[int, list[dict[str, Any]]] | None:
    """The list the archive service keeps for this tenant (version, connectors), if any."""
    with new_session() as session:
        row = session.get(SaeConnectorList, tenant_id)
        return (row.version, list(row.connectors)) if row is not None else None


def depot(kit: Kit, name: str) -> None:
    body = {"name": name, "kind": "depot", "config": {"path": name}}
    response = kit["admin"].post("/interop/connectors", json=body)
    assert response.status_code == 201, response.text


def entry(name: str, enabled: bool = True) -> dict[str, Any]:
    return {"name": name, "kind": "depot", "enabled": enabled}


def test_each_change_of_an_sae_connector_sends_the_whole_list(kit: Kit) -> None:
    admin = kit["admin"]
    depot(kit, "sae-b")
    [first] = sent(kit.tenant_id)
    assert first["connectors"] == [entry("sae-b")] and first["tenant_id"] == kit.tenant_id

    # A connector that does not carry packages to an archival system is not in the list, and sends nothing.
    mail = {"name": "courriel", "kind": "mail", "config": {"to": ["archives@example.fr"]}}
    assert admin.post("/interop/connectors", json=mail).status_code == 201
    assert admin.patch("/interop/connectors/courriel", json={"enabled": False}).status_code == 200
    assert len(sent(kit.tenant_id)) == 1

    depot(kit, "sae-a")
    assert admin.patch("/interop/connectors/sae-a", json={"enabled": False}).status_code == 200
    assert admin.patch("/interop/connectors/sae-a", json={"enabled": False}).status_code == 200  # no change
    assert admin.patch("/interop/connectors/sae-b", json={"config": {"path": "ailleurs"}}).status_code == 200
    assert admin.delete("/interop/connectors/sae-a").status_code == 204
    lists = sent(kit.tenant_id)
    assert [arguments["connectors"] for arguments in lists] == [
        [entry("sae-b")],
        [entry("sae-a"), entry("sae-b")],  # by name
        [entry("sae-a", enabled=False), entry("sae-b")],
        [entry("sae-a", enabled=False), entry("sae-b")],  # the change of a setting sends the list too
        [entry("sae-b")],
    ]
    versions = [arguments["version"] for arguments in lists]
    assert versions == sorted(set(versions)), versions  # each list a greater version
    # The version is the number of the change's entry in the tenant's audit chain.
    with new_session() as session:
        query = select(AuditEntry.action).where(AuditEntry.tenant_id == kit.tenant_id, AuditEntry.seq.in_(versions))
        assert list(session.execute(query.order_by(AuditEntry.seq)).scalars()) == [
            "interop.connector.created",
            "interop.connector.created",
            "interop.connector.disabled",
            "interop.connector.updated",
            "interop.connector.deleted",
        ]

    run_jobs()
    assert kept(kit.tenant_id) == (versions[-1], [entry("sae-b")])


def test_a_refused_change_sends_nothing(kit: Kit) -> None:
    depot(kit, "sae")
    refused = kit["admin"].post("/interop/connectors", json={"name": "sae", "kind": "depot", "config": {"path": "x"}})
    assert refused.status_code == 409
    assert kit["admin"].patch("/interop/connectors/sae", json={"config": {"path": "/etc"}}).status_code == 422
    assert len(sent(kit.tenant_id)) == 1


def test_the_command_sends_the_lists_again(make_kit: Callable[..., Kit]) -> None:
    kit, other = make_kit(with_identity=False), make_kit(with_identity=False)
    depot(kit, "sae")
    depot(other, "ailleurs")
    run_jobs()
    version = kept(kit.tenant_id)
    assert version is not None
    with transaction() as session:  # the archive's database restored from before the lists
        session.execute(
            delete(SaeConnectorList).where(SaeConnectorList.tenant_id.in_([kit.tenant_id, other.tenant_id]))
        )

    run = socle_command("interop", "sae-connectors", "--tenant", kit.slug)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"{kit.slug} : liste envoyée au service d'archives (sae)."
    run_jobs()
    again = kept(kit.tenant_id)
    assert again is not None and again[1] == [entry("sae")] and again[0] > version[0]
    assert kept(other.tenant_id) is None  # --tenant: that one only

    # Run again (in this process, as the rest): a new version of the same list, kept as the newest, nothing else.
    assert CliRunner().invoke(group, ["sae-connectors", "--tenant", kit.slug]).exit_code == 0
    run_jobs()
    last = kept(kit.tenant_id)
    assert last is not None and last[1] == again[1] and last[0] > again[0]
    with new_session() as session:
        query = select(AuditEntry.actor).where(
            AuditEntry.tenant_id == kit.tenant_id, AuditEntry.action == "interop.sae_connectors.published"
        )
        assert list(session.execute(query).scalars()) == ["cli:socle-interop-sae-connectors"] * 2

    # Without --tenant: every collectivité.
    everyone = CliRunner().invoke(group, ["sae-connectors"])
    assert everyone.exit_code == 0, everyone.output
    assert f"{other.slug} : liste envoyée au service d'archives (ailleurs)." in everyone.output.splitlines()
    run_jobs()
    assert kept(other.tenant_id) is not None


@pytest.mark.integration
def test_the_schedule_sends_each_list_again_every_day(
    use_env: Callable[..., None], tmp_path: Any, make_kit: Callable[..., Kit]
) -> None:
    """After an upgrade or a restored archive database, the list comes back by itself: the built-in schedule
    asks each collectivité's list once a day (interop.publish_sae_connectors), no operator's command needed."""
    use_env(SOCLE_DATA_DIR=str(tmp_path / "data"), SOCLE_DATABASE_URL=None)  # a kit of its own: the schedule's
    upgrade_all()  # runs are per installation
    kit = make_kit(with_identity=False)
    depot(kit, "sae")
    run_jobs()
    with transaction() as session:
        session.execute(delete(SaeConnectorList).where(SaeConnectorList.tenant_id == kit.tenant_id))
    due = datetime(2026, 12, 1, 5, 0, tzinfo=ZoneInfo("Europe/Paris"))
    assert ("interop.publish_sae_connectors", period_of(due)) in Scheduler(["interop"]).tick(due)
    run_jobs()
    assert kept(kit.tenant_id) is not None and kept(kit.tenant_id)[1] == [entry("sae")]  # type: ignore[index]
    assert Scheduler(["interop"]).tick(due) == []  # once per day, whichever worker ticks


def test_two_changes_at_once_leave_the_archive_both(
    own_postgres_url: str, use_env: Callable[..., None], make_kit: Callable[..., Kit], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two administrators create a connector at the same moment (PostgreSQL, READ COMMITTED): the second waits
    for the first's audit entry, then reads the list with the first's connector; its list has the greater
    version. Read before that wait, the second list would lack the first connector, and the archive keep it."""
    use_env(SOCLE_DATABASE_URL=own_postgres_url)
    upgrade_all()
    kit = make_kit(with_identity=False)
    colleague = threading.Thread(target=depot, args=(kit, "sae-b"))
    read = service.sae_connectors

    def colleague_creates_now(session: Any, tenant_id: str) -> list[dict[str, Any]]:
        found = read(session, tenant_id)  # this one's list read, its transaction not yet committed
        if not colleague.is_alive() and colleague.ident is None:
            colleague.start()
            waits = "the colleague's creation ends or waits on the audit chain's head"
            wait_until(lambda: not colleague.is_alive() or someone_waits_on_a_row("audit_heads"), waits, seconds=10)
        return found

    monkeypatch.setattr(service, "sae_connectors", colleague_creates_now)
    depot(kit, "sae-a")
    colleague.join(timeout=30)
    assert [arguments["connectors"] for arguments in sent(kit.tenant_id)] == [
        [entry("sae-a")],
        [entry("sae-a"), entry("sae-b")],
    ]
    run_jobs()
    kept_list = kept(kit.tenant_id)
    assert kept_list is not None and kept_list[1] == [entry("sae-a"), entry("sae-b")]
