"""Interop jobs run twice (a retry after a worker died, a message delivered again) have the effect of once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sae_helpers import (
    Simulator,
    add_connector,
    asalae_config,
    ask_delivery,
    delivery_of,
    follow_jobs,
    running_asalae,
    store_sip,
)
from sqlalchemy import func, select
from test_interop_depot import ask_delivery as ask_depot_delivery
from test_interop_depot import create_connector, deliveries, folder, sending_transfer, store, transfer_row

from interop import jobs
from socle.db import new_session
from socle.models import AuditEntry, Job
from socle.queue import PENDING

from conftest import Kit, run_jobs


@pytest.fixture
def asalae_sim() -> Iterator[Simulator]:
    yield from running_asalae()


def test_a_check_of_the_sae_run_twice_schedules_one_next_check(kit: Kit, asalae_sim: Simulator) -> None:
    add_connector(kit, "asalae", "asalae", asalae_config(asalae_sim, retry_policy="3600 X 5"))
    asalae_sim.scenario(pending_checks=10)  # no reply for a while: the follow-up goes on
    ask_delivery(kit, store_sip(f"{kit.slug}-suivi"), "asalae", "k1")
    run_jobs()
    delivery = delivery_of(kit.tenant_id, "k1")
    assert delivery.follow_status == "following"
    [done, scheduled] = follow_jobs(delivery.id)  # the first check ran at once; the next is an hour away
    assert (done.status, scheduled.status) == ("done", PENDING) and delivery.follow_checks == 1
    # The first check's worker died before the queue recorded it done: the job runs again.
    jobs.follow_sae(**done.arguments)
    again = delivery_of(kit.tenant_id, "k1")
    assert again.follow_checks == 1  # the rerun counted no second try against the connector's policy
    assert [job.id for job in follow_jobs(delivery.id) if job.status == PENDING] == [scheduled.id]


def count_audit(tenant_id: str, action: str) -> int:
    with new_session() as session:
        query = select(func.count()).select_from(AuditEntry)
        return int(
            session.execute(query.where(AuditEntry.tenant_id == tenant_id, AuditEntry.action == action)).scalar_one()
        )


def test_a_delivery_failure_told_twice_is_recorded_and_answered_once(kit: Kit) -> None:
    assert create_connector(kit).status_code == 201
    folder(kit).parent.mkdir(parents=True, exist_ok=True)
    folder(kit).write_bytes(b"un fichier occupe la place du dossier")  # every try fails
    transfer_id = sending_transfer(kit)
    ask_depot_delivery(kit, store(b"paquet"), "paquet.zip", f"envoi:{transfer_id}", transfer_id)
    run_jobs()
    [row] = deliveries(kit.tenant_id)
    assert row.status == "error" and transfer_row(transfer_id).status == "delivery_failed"
    assert count_audit(kit.tenant_id, "interop.delivery.failed") == 1
    with new_session() as session:
        [failed] = session.execute(
            select(Job).where(Job.function == "interop.jobs.delivery_failed", Job.tenant_id == kit.tenant_id)
        ).scalars()
        arguments = dict(failed.arguments)

    jobs.delivery_failed(**arguments)  # the kernel's failure message run again
    run_jobs()
    [again] = deliveries(kit.tenant_id)
    assert (again.status, again.error) == ("error", row.error)
    assert count_audit(kit.tenant_id, "interop.delivery.failed") == 1
    assert count_audit(kit.tenant_id, "archive.transfer.delivery_failed") == 1
