"""The « actes » flow end to end: API → @ctes package → S²LOW simulator → ARActe → GED, and what goes wrong."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from s2low_helpers import (
    ACTES_SCHEMAS,
    S2low,
    act_request,
    add_s2low,
    drive,
    events,
    flow_of,
    plan_folder,
    s2low_config,
    start,
    step_jobs,
    store,
)
from sae_helpers import Simulator, add_connector, asalae_config, running_asalae
from sqlalchemy import select

from archive import jobs as archive_jobs
from archive.models import Transfer
from ged.models import Document, Version
from interop import actes, flows
from interop.connectors.s2low import S2lowConnector
from interop.models import Flow, FlowLock
from socle import messages, queue
from socle.db import new_session, transaction, utcnow
from socle.models import AuditEntry, Job
from socle.storage import get_store

from conftest import ROOT, Kit, assert_problem, make_pdf, run_jobs, upload_document

pytestmark = pytest.mark.usefixtures("actes_schemas")


def act_id(kit_number: str) -> str:
    return f"037-213700000-20261130-{kit_number}-DE"


def test_an_act_goes_to_the_prefecture_and_its_aracte_into_the_ged(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    classification = kit["agent"].get("/interop/connectors/tdt/classification").json()
    assert classification["classification_date"] == "2026-01-15" and "7.1" in classification["matieres"]
    sim.scenario(pending_checks=3)
    flow_id = start(kit, act_request(kit, "DEL_1", annexes=2))

    flow = drive(flow_id)
    assert flow.status == "done" and flow.state == "classé", flow.error
    assert sim.sends(act_id("DEL_1")) == 1
    states = [event.to_state for event in events(flow_id)]
    assert states == [
        "nouveau",
        "prêt",
        "posté",
        "en attente de transmission",
        "transmis",
        "classement GED",
        "classé",
    ]
    body = kit["agent"].get(f"/interop/flows/{flow_id}").json()
    assert [line["to_state"] for line in body["history"]] == states
    assert body["data"]["aracte"]["id_acte"] == act_id("DEL_1")
    document_id = body["data"]["ged_documents"]["aracte"]

    # The ARActe is a GED document, readable by the agent, found again by its origin.
    with new_session() as session:
        version = session.execute(select(Version).where(Version.document_id == document_id)).scalar_one()
        assert version.origin == f"interop:{flow_id}:aracte" and version.object_key == body["data"]["aracte_key"]
        assert session.get(Document, document_id).tenant_id == kit.tenant_id  # type: ignore[union-attr]
        audited = session.execute(
            select(AuditEntry.action).where(AuditEntry.tenant_id == kit.tenant_id, AuditEntry.object_id == flow_id)
        ).scalars()
        assert list(audited).count("interop.flow.transition") == len(states)
    ged = kit["agent"].get(f"/ged/documents/{document_id}")
    assert ged.status_code == 200 and "Accusé de réception" in ged.text


def test_a_bad_request_is_refused_at_once_in_french(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    body = act_request(kit, "DEL_2")
    bad_nature = body | {"metadata": body["metadata"] | {"nature": 9}}
    assert (
        "nature d'acte invalide" in assert_problem(kit["agent"].post("/interop/flows", json=bad_nature), 422)["detail"]
    )
    missing = body | {"documents": [{"object_key": "a" * 64, "filename": "x.pdf"}]}
    assert "absent du stockage" in assert_problem(kit["agent"].post("/interop/flows", json=missing), 422)["detail"]
    other = body | {"documents": [body["documents"][0] | {"sha256": "b" * 64}]}
    assert "empreinte" in assert_problem(kit["agent"].post("/interop/flows", json=other), 422)["detail"]
    assert_problem(kit["agent"].post("/interop/flows", json=body | {"connector": "absent"}), 404)
    kit["admin"].post("/interop/connectors", json={"name": "depot", "kind": "depot", "config": {}})
    wrong = assert_problem(kit["agent"].post("/interop/flows", json=body | {"connector": "depot"}), 422)
    assert "tiers de télétransmission" in wrong["detail"]


def test_a_stale_classification_is_refused_before_sending(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    # The prefecture moves to a newer classification: the next ARActe says so.
    sim.scenario(classification_date="2026-06-01")
    assert drive(start(kit, act_request(kit, "DEL_3"))).status == "done"
    stale = drive(start(kit, act_request(kit, "DEL_4")))
    assert stale.status == "error" and stale.state == "nouveau"
    assert "classification @ctes périmée : celle de la préfecture date du 01/06/2026" in (stale.error or "")
    assert "POST /interop/connectors/tdt/classification" in (stale.error or "")
    assert sim.sends(act_id("DEL_4")) == 0
    listed = kit["agent"].get("/interop/flows", params={"state": "error"}).json()
    assert [flow["id"] for flow in listed] == [stale.id]

    # Fetched again, the operator resumes the flow.
    kit["admin"].post("/interop/connectors/tdt/classification")
    resumed = kit["admin"].post(f"/interop/flows/{stale.id}/resume")
    assert resumed.status_code == 200, resumed.text
    assert drive(stale.id).status == "done" and sim.sends(act_id("DEL_4")) == 1


def test_no_classification_or_one_too_old_is_refused(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim, fetch=False)
    flow = drive(start(kit, act_request(kit, "DEL_5")))
    assert flow.status == "error" and "classification @ctes de la collectivité absente" in (flow.error or "")
    kit["admin"].post("/interop/connectors/tdt/classification")
    from interop.models import TdtClassification

    with transaction() as session:
        row = session.execute(
            select(TdtClassification).where(TdtClassification.tenant_id == kit.tenant_id)
        ).scalar_one()
        row.fetched_at = utcnow() - timedelta(days=40)
    kit["admin"].post(f"/interop/flows/{flow.id}/resume")
    again = drive(flow.id)
    assert again.status == "error" and "trop ancienne" in (again.error or "") and "30 jours" in (again.error or "")


def test_a_500_on_send_is_retried_and_sent_once(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    sim.scenario(faults={"send": ["500", "html"]})
    flow = drive(start(kit, act_request(kit, "DEL_6")))
    assert flow.status == "done", flow.error
    assert sim.sends(act_id("DEL_6")) == 1
    tries = [event.message for event in events(flow.id)]
    assert "transmis au tiers de télétransmission" in tries


def test_the_sending_step_follows_send_retry_policy_and_the_following_retry_policy(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim, retry_policy="1s X 5", send_retry_policy="1s X 1")
    sim.scenario(faults={"send": ["500", "500"]})
    flow = drive(start(kit, act_request(kit, "DEL_41")))
    assert flow.status == "error" and flow.state == "prêt" and sim.sends(act_id("DEL_41")) == 0
    assert "après 2 essai(s) (toutes les 1 s × 1)" in (flow.error or "") and "erreur 500" in (flow.error or "")

    assert kit["admin"].post(f"/interop/flows/{flow.id}/resume").status_code == 200
    resumed = drive(flow.id)
    assert resumed.status == "done" and sim.sends(act_id("DEL_41")) == 1, resumed.error

    sim.scenario(faults={"status": ["500", "500", "500"]})  # following: retry_policy « 1s X 5 » outlasts them
    followed = drive(start(kit, act_request(kit, "DEL_42")))
    assert followed.status == "done" and sim.sends(act_id("DEL_42")) == 1, followed.error


def test_a_timeout_after_the_send_does_not_send_twice(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    sim.scenario(faults={"send": ["accept_then_timeout"]}, hang_seconds=3)
    flow = drive(start(kit, act_request(kit, "DEL_7")))
    assert flow.status == "done", flow.error
    assert sim.sends(act_id("DEL_7")) == 1 and flow.data["recovered"] is True
    assert any("retrouvée sur la plateforme" in event.message for event in events(flow.id))


def test_the_platforms_refusal_and_error_status_stop_the_flow_with_its_words(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    sim.scenario(faults={"send": ["ko"]})
    refused = drive(start(kit, act_request(kit, "DEL_8")))
    assert refused.status == "error" and "Erreur simulée : la plateforme refuse la demande" in (refused.error or "")
    sim.scenario(verdict="KO")
    failed = drive(start(kit, act_request(kit, "DEL_9")))
    assert failed.status == "error" and "état « erreur » chez S²LOW" in (failed.error or "")


def test_an_aracte_for_an_unknown_act_lands_in_error_and_is_kept(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    sim.scenario(aracte_unknown=True)
    flow = drive(start(kit, act_request(kit, "DEL_10")))
    assert flow.status == "error" and "ARActe pour un acte inconnu" in (flow.error or "")
    assert flow.data["aracte_key"] and "INCONNU999" in flow.data["aracte"]["id_acte"]


def test_when_the_platform_keeps_failing_the_flow_stops_visible_and_resumable(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    sim.scenario(faults={"status": ["html", "malformed", "timeout", "500"]}, hang_seconds=3)
    flow = drive(start(kit, act_request(kit, "DEL_11")))
    assert flow.status == "error" and flow.state == "posté"
    assert "après 4 essai(s) (toutes les 1 s × 3)" in (flow.error or "") and "erreur 500" in (flow.error or "")
    assert f"POST /interop/flows/{flow.id}/resume" in (flow.error or "")
    assert assert_problem(kit["agent"].post(f"/interop/flows/{flow.id}/resume"), 403)
    cli = subprocess.run(
        [sys.executable, "-m", "socle", "interop", "flows", "--tenant", kit.slug],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0 and flow.id in cli.stdout and "erreur 500" in cli.stdout, cli.stderr
    resumed = kit["admin"].post(f"/interop/flows/{flow.id}/resume").json()
    assert resumed["status"] == "running" and resumed["history"][-1]["message"] == "flux repris par un opérateur"
    assert drive(flow.id).status == "done" and sim.sends(act_id("DEL_11")) == 1
    assert_problem(kit["admin"].post(f"/interop/flows/{flow.id}/resume"), 409)


def test_a_lock_key_makes_a_second_step_wait(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    flow_id = start(kit, act_request(kit, "DEL_12"))
    with transaction() as session:  # another holder has the flow's send lock
        session.add(FlowLock(key=f"flow-send:{flow_id}", holder="un-autre-worker"))
    run_jobs()  # packaged; the send waits for the lock
    assert sim.sends(act_id("DEL_12")) == 0 and flow_of(flow_id).state == "prêt"
    postponed = [job for job in step_jobs(flow_id) if job.status == queue.PENDING]
    assert len(postponed) == 1 and postponed[0].next_run_at > utcnow()
    with transaction() as session:
        session.execute(FlowLock.__table__.delete().where(FlowLock.key == f"flow-send:{flow_id}"))
    assert drive(flow_id).status == "done" and sim.sends(act_id("DEL_12")) == 1
    with new_session() as session:
        assert session.get(FlowLock, f"flow-send:{flow_id}") is None  # released after the step


def test_a_repeated_step_job_does_nothing(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    flow_id = start(kit, act_request(kit, "DEL_13"))
    assert drive(flow_id).status == "done"
    sent = next(job for job in step_jobs(flow_id) if job.arguments["state"] == "prêt")
    flows.run_step(kit.tenant_id, flow_id, "prêt", sent.arguments["step"])  # run again, the flow has moved on
    flows.run_step(kit.tenant_id, flow_id, "prêt", flow_of(flow_id).steps)  # a job for a state the flow has left
    assert sim.sends(act_id("DEL_13")) == 1


def test_a_worker_killed_between_the_send_and_its_recording_does_not_send_twice(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim, timeout=60)
    flow_id = start(kit, act_request(kit, "DEL_14"))
    assert queue.execute(step_jobs(flow_id)[0].id) == "done"  # packaged, here; the send is left to a worker
    assert flow_of(flow_id).state == "prêt"
    job_id = next(job.id for job in step_jobs(flow_id) if job.status == queue.PENDING)
    # S²LOW receives the act and keeps the connection open: the worker is killed while it waits.
    sim.scenario(faults={"send": ["accept_then_timeout"]}, hang_seconds=60)
    worker = subprocess.Popen(
        [sys.executable, "-c", f"from socle.queue import execute; execute({job_id!r})"],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while sim.sends(act_id("DEL_14")) == 0:
            assert worker.poll() is None and time.monotonic() < deadline, "le worker n'a pas envoyé l'acte"
            time.sleep(0.05)
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    sim.scenario(hang_seconds=1)

    flow = flow_of(flow_id)
    assert flow.data.get("sending") is True and "transaction_id" not in flow.data  # sent, nothing recorded
    with transaction() as session:  # the sweeper finds the dead worker's job once its timeout has passed
        job = session.get(Job, job_id)
        assert job is not None and job.status == queue.RUNNING
        job.started_at = utcnow() - timedelta(hours=2)
    done = drive(flow_id)
    assert done.status == "done", done.error
    assert sim.sends(act_id("DEL_14")) == 1  # asked S²LOW, found the act, did not send again
    assert done.data["recovered"] is True
    with new_session() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == queue.DONE and job.attempts == 2


def test_a_stuck_flow_is_shown_and_resumable(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    flow_id = start(kit, act_request(kit, "DEL_15"))
    with transaction() as session:  # its job lost (say, a queue restarted without persistence) an hour ago
        session.execute(Job.__table__.delete().where(Job.id.in_([job.id for job in step_jobs(flow_id)])))
        flow = session.get(Flow, flow_id)
        assert flow is not None
        flow.updated_at = utcnow() - timedelta(hours=1)
    assert kit["agent"].get("/interop/flows", params={"state": "error"}).json() == []
    stuck = kit["agent"].get("/interop/flows", params={"state": "stuck"}).json()
    assert [row["id"] for row in stuck] == [flow_id]
    assert kit["admin"].post(f"/interop/flows/{flow_id}/resume").status_code == 200
    assert drive(flow_id).status == "done"
    assert kit["agent"].get("/interop/flows", params={"state": "stuck"}).json() == []


def test_a_flow_is_confined_to_its_collectivite(kit: Kit, make_kit: Callable[..., Kit], sim: S2low) -> None:
    add_s2low(kit, sim)
    flow_id = start(kit, act_request(kit, "DEL_16"))
    other = make_kit(with_identity=False)
    assert_problem(other["agent"].get(f"/interop/flows/{flow_id}"), 404)
    assert_problem(other["admin"].post(f"/interop/flows/{flow_id}/resume"), 404)
    assert other["agent"].get("/interop/flows").json() == []
    body = act_request(kit, "DEL_17")
    assert_problem(other["agent"].post("/interop/flows", json=body), 404)  # the connector is not theirs


def test_an_act_can_be_cancelled_and_the_prefecture_answered(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    flow_id = start(kit, act_request(kit, "DEL_18"))
    assert drive(flow_id).status == "done"
    transaction_id = flow_of(flow_id).data["transaction_id"]

    letter = sim.state.add_letter(transaction_id)
    letters = kit["agent"].get("/interop/connectors/tdt/prefecture").json()
    act_id = sim.state.transactions[transaction_id].key
    assert letters == [
        {
            "id": letter,
            "type": "4",  # S²LOW's type: 4, lettre d'observations
            "related_transaction_id": transaction_id,
            "number": "DEL_18",
            "unique_id": act_id,
            "last_status_id": 7,
            "flow_id": flow_id,
        }
    ]
    answer = store(make_pdf("Réponse de la commune"), kit)
    body = {"type": "3", "object_key": answer.key, "filename": "reponse.pdf"}
    # Who may send the act answers the prefecture about it (an agent here; an administrator too).
    replied = kit["agent"].post(f"/interop/connectors/tdt/prefecture/{letter}/reply", json=body)
    assert replied.status_code == 200, replied.text
    assert sim.state.replies == [
        {"id": replied.json()["transaction_id"], "to": letter, "type": "3", "size": answer.size}
    ]

    cancelled = kit["admin"].post(f"/interop/flows/{flow_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "annulation demandée"
    assert sim.state.transactions[transaction_id].cancelled
    assert_problem(kit["admin"].post(f"/interop/flows/{flow_id}/cancel"), 409)  # once


def test_the_ged_stores_a_flow_document_once_even_after_a_crash(kit: Kit) -> None:
    from ged import jobs as ged_jobs

    xml = store(b"<?xml version='1.0'?><ARActe/>")
    plan_folder(kit, "Actes")
    arguments = {
        "tenant_id": kit.tenant_id,
        "flow_id": "flux-test",
        "object_key": xml.key,
        "size": xml.size,
        "filename": "ARActe.xml",
        "media_type": "application/xml",
        "title": "Accusé de réception — essai",
        "document_type": "actes",
        "ged_folder": "Actes",
        "username": None,
        "document_date": None,
        "type_code": None,
        "description": None,
    }
    ged_jobs.store_flow_document(name="aracte", **arguments)
    ged_jobs.store_flow_document(name="aracte", **arguments)  # the job run again
    # A first run killed after the creation, before the origin was committed: the rerun adopts that document.
    with transaction() as session:
        orphan = session.execute(
            select(Version).join(Document).where(Document.tenant_id == kit.tenant_id, Version.origin.is_not(None))
        ).scalar_one()
        orphan_document = orphan.document_id
        orphan.origin = None
    ged_jobs.store_flow_document(name="aracte", **arguments)
    with new_session() as session:
        documents = session.execute(select(Document.id).where(Document.tenant_id == kit.tenant_id)).scalars().all()
        assert documents == [orphan_document]
        replies = (
            session.execute(
                select(Job).where(Job.function == "interop.jobs.flow_document_stored", Job.tenant_id == kit.tenant_id)
            )
            .scalars()
            .all()
        )
        assert len(replies) == 1 and replies[0].arguments["document_id"] == orphan_document


# --------------------------------------------------------------------------------------------------------
# « classé » → the archive service: a transfer of the act, its annexes and its ARActe


@pytest.fixture
def asalae_sim() -> Iterator[Simulator]:
    yield from running_asalae()


def archived_act_request(kit: Kit, number: str, **archive: Any) -> dict[str, Any]:
    body = act_request(kit, number)
    body["metadata"]["archive"] = {"connector": "sae", "archival_agency": "AD037"} | archive
    return body


def transfers_of(tenant_id: str) -> list[Transfer]:
    with new_session() as session:
        rows = list(session.execute(select(Transfer).where(Transfer.tenant_id == tenant_id)).scalars())
        for row in rows:
            session.expunge(row)
        return rows


def test_a_filed_act_is_archived_through_the_archive_service(kit: Kit, sim: S2low, asalae_sim: Simulator) -> None:
    add_s2low(kit, sim)
    add_connector(kit, "sae", "asalae", asalae_config(asalae_sim))
    flow_id = start(kit, archived_act_request(kit, "DEL_30"))

    flow = drive(flow_id)
    assert flow.status == "done" and flow.state == "versé aux archives", flow.error
    states = [event.to_state for event in events(flow_id)]
    assert states[-3:] == ["classement GED", "classé", "versé aux archives"]
    filed = flow.data["ged_documents"]
    assert set(filed) == {"aracte", "acte", "annexe-1"}

    # One transfer, built by the archive service from the GED's export of the three documents.
    [transfer] = transfers_of(kit.tenant_id)
    assert flow.data["transfer_id"] == transfer.id
    assert transfer.document_ids == [filed["acte"], filed["annexe-1"], filed["aracte"]]
    assert transfer.archival_agency == "AD037" and transfer.connector == "sae"
    assert transfer.status == "built", (transfer.status, transfer.error, transfer.validation)
    assert "DEL_30" in (transfer.comment or "") and transfer.created_by == f"interop:{flow_id} (pour agent)"
    with get_store().local_path(transfer.sip_key or "") as path, zipfile.ZipFile(path) as sip:
        names = sip.namelist()
        manifest = sip.read("manifest.xml").decode()
    # The manifest, the three documents, and the renditions the GED had made by then (PDF/A, text).
    assert manifest.count("<DataObjectVersion>BinaryMaster_1</DataObjectVersion>") == 3
    assert len(names) == 1 + manifest.count("<BinaryDataObject ")
    assert "Approbation du budget primitif 2027" in manifest and "ARActe" in manifest
    with new_session() as session:  # the act's own documents are GED documents now, found again by their origin
        origins = session.execute(select(Version.origin).where(Version.document_id.in_(filed.values()))).scalars()
        assert sorted(origins) == sorted(f"interop:{flow_id}:{name}" for name in filed)

    # The archivist sends it with the connector the flow named: As@lae receives the act's package once.
    sent = kit["archiviste"].post(f"/archive/transfers/{transfer.id}/send", json={"connector": transfer.connector})
    assert sent.status_code == 202, sent.text
    run_jobs()
    assert asalae_sim.sends(transfer.message_identifier) == 1
    assert kit["archiviste"].get(f"/archive/transfers/{transfer.id}").json()["status"] == "accepted"


def test_the_transfer_is_asked_once_even_when_the_messages_come_again(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    add_connector(kit, "sae", "asalae", {"url": "http://127.0.0.1:9", "username": "u", "password": "p"})
    flow = drive(start(kit, archived_act_request(kit, "DEL_31")))
    assert flow.state == "versé aux archives", flow.error
    [transfer] = transfers_of(kit.tenant_id)
    history = len(events(flow.id))

    with transaction() as session:  # the archive's job and its answer run again (a worker died after them)
        function = messages.ARCHIVE_REQUEST_TRANSFER.function
        request = session.execute(
            select(Job).where(Job.function == function, Job.tenant_id == kit.tenant_id)
        ).scalar_one()
        arguments = dict(request.arguments)
    archive_jobs.request_transfer(**arguments)
    flows.document_stored(kit.tenant_id, flow.id, "versement", "un-autre-versement")
    run_jobs()
    assert [row.id for row in transfers_of(kit.tenant_id)] == [transfer.id]
    assert flow_of(flow.id).data["transfer_id"] == transfer.id and len(events(flow.id)) == history
    with new_session() as session:
        exports = session.execute(
            select(Job).where(Job.function == messages.GED_EXPORT_FOR_ARCHIVE.function, Job.tenant_id == kit.tenant_id)
        ).scalars()
        assert len(list(exports)) == 1


def test_acts_already_in_the_ged_are_archived_by_their_ids(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    add_connector(kit, "sae", "asalae", {"url": "http://127.0.0.1:9", "username": "u", "password": "p"})
    signed = upload_document(kit["agent"], make_pdf("Délibération signée, déjà dans la GED"))
    flow = drive(start(kit, archived_act_request(kit, "DEL_32", document_ids=[signed["id"]])))
    assert flow.state == "versé aux archives", flow.error
    assert set(flow.data["ged_documents"]) == {"aracte"}  # the act is not filed a second time
    [transfer] = transfers_of(kit.tenant_id)
    assert transfer.document_ids == [signed["id"], flow.data["ged_documents"]["aracte"]]
    assert transfer.status == "built", transfer.error


def test_the_transfer_gives_only_what_the_flows_creator_may_read(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    add_connector(kit, "sae", "asalae", {"url": "http://127.0.0.1:9", "username": "u", "password": "p"})
    # The mayor's office: a folder only its group (« maire ») may read; the agent is not in it.
    folder = kit["admin"].post("/ged/plan", json={"name": "Cabinet du maire"})
    group = kit["admin"].post("/ged/groups", json={"name": "Cabinet"})
    assert folder.status_code == group.status_code == 201, (folder.text, group.text)
    member = kit["admin"].post(f"/ged/groups/{group.json()['id']}/members", json={"username": "maire"})
    rights = [{"group_id": group.json()["id"], "rights": ["read", "write"]}]
    granted = kit["admin"].put(f"/ged/plan/{folder.json()['id']}/permissions", json=rights)
    assert member.status_code == granted.status_code == 200, (member.text, granted.text)
    secret = upload_document(kit["admin"], make_pdf("Arrêté du cabinet"), folder_id=folder.json()["id"])["id"]

    # The agent's flow names it: the flow ends, but the GED answers « introuvable » and nothing is transferred.
    refused = drive(start(kit, archived_act_request(kit, "DEL_50", document_ids=[secret])))
    assert refused.state == "versé aux archives", refused.error
    [transfer] = transfers_of(kit.tenant_id)
    assert transfer.created_by == f"interop:{refused.id} (pour agent)"
    assert transfer.status == "error" and f"document {secret} introuvable" in (transfer.error or ""), transfer.error
    with new_session() as session:
        document = session.get(Document, secret)
        assert document is not None and document.disposal is None and document.archive_transfer_id is None
        asked = session.execute(
            select(Job.arguments).where(Job.function == messages.GED_EXPORT_FOR_ARCHIVE.function)
        ).scalars()
        assert [arguments["username"] for arguments in asked if arguments["transfer_id"] == transfer.id] == ["agent"]

    # The same act by the mayor, who may read it: transferred.
    done = drive(start(kit, archived_act_request(kit, "DEL_51", document_ids=[secret]), by="maire"))
    assert done.state == "versé aux archives", done.error
    built = next(row for row in transfers_of(kit.tenant_id) if row.id == done.data["transfer_id"])
    assert built.status == "built", (built.status, built.error)
    assert built.document_ids == [secret, done.data["ged_documents"]["aracte"]]
    assert built.created_by == f"interop:{done.id} (pour maire)"


def test_a_bad_archive_request_is_refused_or_stops_the_flow_in_french(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    refused = kit["agent"].post("/interop/flows", json=archived_act_request(kit, "DEL_33", archival_agency=""))
    assert "service d'archives destinataire" in assert_problem(refused, 422)["detail"]
    unknown = kit["agent"].post("/interop/flows", json=archived_act_request(kit, "DEL_33"))
    assert "connecteur « sae » introuvable" in assert_problem(unknown, 404)["detail"]
    wrong = kit["agent"].post("/interop/flows", json=archived_act_request(kit, "DEL_33", connector="tdt"))
    assert "n'est pas un connecteur de système d'archivage" in assert_problem(wrong, 422)["detail"]

    # An archival profile the archive service does not know: the flow stops in error, filed, resumable.
    add_connector(kit, "sae", "asalae", {"url": "http://127.0.0.1:9", "username": "u", "password": "p"})
    flow = drive(start(kit, archived_act_request(kit, "DEL_34", profile="inconnu")))
    assert flow.status == "error" and flow.state == "classé", flow.state
    assert "profil d'archivage « inconnu » introuvable" in (flow.error or "")
    assert transfers_of(kit.tenant_id) == []


def test_platform_states_without_the_aracte_keep_the_act_followed(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim, retry_policy="1s X 6")  # each such state is a try of the policy
    sim.scenario(pending_checks=1, intermediate=[17, 18, 21])  # none of them carries the ARActe
    flow = drive(start(kit, act_request(kit, "DEL_40")))
    assert flow.status == "done" and flow.state == "classé", flow.error
    assert flow.data["aracte"]["id_acte"] == act_id("DEL_40") and set(flow.data["ged_documents"]) == {"aracte"}
    lines = [(event.from_state, event.to_state, event.message) for event in events(flow.id)]
    for label in ("en attente d'être posté", "en attente d'être signé", "document reçu (pas d'AR)"):
        assert ("posté", "posté", f"état S²LOW : {label}") in lines
    # Once the flow has left « posté », the last state S²LOW gave is history, no longer the current one.
    assert "platform_state" not in flow.data and "last_message" not in flow.data


def test_a_state_without_a_step_never_ends_a_flow_done(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    flow_id = start(kit, act_request(kit, "DEL_41"))
    with transaction() as session:
        flow = flows.get_flow(session, kit.tenant_id, flow_id, for_update=True)
        flows._advance(session, flow, flows.Advance("état inconnu", "une plateforme imprévue"))
    flow = flow_of(flow_id)
    assert flow.status == "error" and "état « état inconnu » sans étape" in (flow.error or "")


def test_a_number_another_tool_sent_is_refused_and_never_taken_over_on_resume(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    # Another tool of the collectivité already sent an act numbered DEL_40 to S²LOW: socle cannot know before.
    act = actes.Act("DEL_40", date(2026, 11, 30), 1, (1, 1), "Autre", actes.ActFile(store(make_pdf("x")).key, "a.pdf"))
    sender = actes.Sender("213700000", "037", return_emails=("greffe@mairie-test.fr",))
    other = actes.build_package(get_store(), sender, act, date(2026, 1, 15), "1", ACTES_SCHEMAS)
    S2lowConnector("tdt", s2low_config(sim), {}).send_actes(get_store(), other.stored.key, other.filename)
    flow = drive(start(kit, act_request(kit, "DEL_40")))
    assert flow.status == "error" and "déjà celui d'un autre acte" in (flow.error or "")
    assert not flow.data.get("sending") and not flow.data.get("transaction_id")
    # A resume asks the platform again: the other act's transaction is still not this flow's.
    kit["admin"].post(f"/interop/flows/{flow.id}/resume").raise_for_status()
    resumed = drive(flow.id)
    assert resumed.status == "error" and not resumed.data.get("transaction_id"), resumed.data
    assert sim.sends(act_id("DEL_40")) == 3 and len(sim.state.transactions) == 1
