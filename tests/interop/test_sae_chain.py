"""The whole chain (archive → interop → Vitam simulator → ATR → archive) and a worker killed mid-send."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sae_helpers import (
    Simulator,
    add_connector,
    ask_delivery,
    delivery_of,
    follow_until_settled,
    running_vitam,
    store_sip,
    vitam_config,
)
from sqlalchemy import select

from socle import messages, queue
from socle.db import new_session, transaction, utcnow
from socle.models import Job

from conftest import ROOT, Kit, make_pdf, run_jobs, upload_document


@pytest.fixture
def vitam_sim() -> Iterator[Simulator]:
    yield from running_vitam()


def built_transfer(kit: Kit) -> dict:
    document = upload_document(kit["agent"], make_pdf("Délibération à archiver"))
    transfer = (
        kit["archiviste"]
        .post("/archive/transfers", json={"document_ids": [document["id"]], "archival_agency": "AD037"})
        .json()
    )
    run_jobs()
    built = kit["archiviste"].get(f"/archive/transfers/{transfer['id']}").json()
    assert built["status"] == "built", built
    return dict(built)


@pytest.mark.parametrize(("verdict", "status"), [("OK", "accepted"), ("KO", "rejected")])
def test_archive_sends_interop_delivers_to_vitam_and_the_reply_reaches_the_archive(
    kit: Kit, vitam_sim: Simulator, verdict: str, status: str
) -> None:
    transfer = built_transfer(kit)
    add_connector(kit, "vitam", "vitam", vitam_config(vitam_sim))
    vitam_sim.scenario(pending_checks=1, verdict=verdict)
    sent = kit["archiviste"].post(f"/archive/transfers/{transfer['id']}/send", json={"connector": "vitam"})
    assert sent.status_code == 202, sent.text
    run_jobs()

    identifier = transfer["message_identifier"]
    assert vitam_sim.sends(identifier) == 1  # the real SIP, read by the simulator
    delivery = delivery_of(kit.tenant_id, f"archive:{transfer['id']}")
    assert delivery.receipt is not None and delivery.receipt["message_identifier"] == identifier
    settled = follow_until_settled(delivery.id)
    assert settled.follow_status == "done"
    run_jobs()

    with new_session() as session:
        forwarded = session.execute(
            select(Job).where(Job.function == "archive.jobs.record_sae_message", Job.tenant_id == kit.tenant_id)
        ).scalar_one()
    assert forwarded.arguments["transfer_id"] == transfer["id"] and forwarded.arguments["message_kind"] == "reply"
    assert forwarded.status == queue.DONE, forwarded.last_error
    after = kit["archiviste"].get(f"/archive/transfers/{transfer['id']}").json()
    assert after["status"] == status, after


def test_a_worker_killed_between_the_send_and_its_recording_does_not_send_twice(kit: Kit, vitam_sim: Simulator) -> None:
    add_connector(kit, "vitam", "vitam", vitam_config(vitam_sim, timeout=60))
    identifier = f"{kit.slug}-tue"
    # The platform receives the SIP and keeps the connection open: the worker is killed while it waits.
    vitam_sim.scenario(faults={"send": ["accept_then_timeout"]}, hang_seconds=60)
    job_id = ask_delivery(kit, store_sip(identifier), "vitam", "k1", None)
    worker = subprocess.Popen(
        [sys.executable, "-c", f"from socle.queue import execute; execute({job_id!r})"],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while vitam_sim.sends(identifier) == 0:
            assert worker.poll() is None and time.monotonic() < deadline, "le worker n'a pas envoyé le paquet"
            time.sleep(0.05)
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    vitam_sim.scenario(hang_seconds=1)

    delivery = delivery_of(kit.tenant_id, "k1")
    assert delivery.status == "sending" and delivery.receipt is None  # sent, but nothing recorded
    with transaction() as session:  # the sweeper finds the dead worker's job once its timeout has passed
        job = session.get(Job, job_id)
        assert job is not None and job.status == queue.RUNNING
        job.started_at = utcnow() - timedelta(hours=2)
    run_jobs()

    done = delivery_of(kit.tenant_id, "k1")
    assert vitam_sim.sends(identifier) == 1  # asked the platform, found it, did not send again
    assert done.status == "done" and done.receipt is not None and done.receipt["recovered"] is True
    assert done.receipt["operation_id"] == vitam_sim.state.transfers[identifier].operation_id
    assert follow_until_settled(done.id).follow_status == "done"
    with new_session() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == queue.DONE and job.attempts == 2
        assert messages.BY_FUNCTION[job.function] is messages.INTEROP_DELIVER
