"""Deliveries that fail for good are visible and resumable; connectors can be reconfigured and deleted."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
from typing import Any

from sqlalchemy import select
from test_interop_depot import (
    ask_delivery,
    create_connector,
    deliveries,
    folder,
    sending_transfer,
    store,
    transfer_row,
)

from interop import service
from interop.models import Connector, Delivery, Flow
from socle import messages
from socle.db import new_session, transaction, utcnow
from socle.models import AuditEntry, Job
from socle.queue import enqueue

from conftest import Kit, assert_problem, run_jobs

OLD_PASSWORD = "ancien-mot-de-passe-webdav"
NEW_PASSWORD = "nouveau-mot-de-passe-webdav"


def stored_secrets(kit: Kit, name: str) -> tuple[dict[str, str], dict[str, str]]:
    """The connector's secrets as decrypted by the service, and as stored (encrypted)."""
    with new_session() as session:
        connector = service.get_connector(session, kit.tenant_id, name)
        return service.connector_secrets(connector), dict(connector.config["secrets"])


def audit_of(kit: Kit, action: str) -> list[AuditEntry]:
    with new_session() as session:
        query = select(AuditEntry).where(AuditEntry.tenant_id == kit.tenant_id, AuditEntry.action == action)
        return list(session.execute(query.order_by(AuditEntry.seq)).scalars())


def late_failure_notice(kit: Kit, key: str, reply: dict[str, Any] | None) -> None:
    """INTEROP_DELIVERY_FAILED arriving after the delivery was settled (a job's on_failure running late)."""
    with transaction() as session:
        enqueue(
            session,
            messages.INTEROP_DELIVERY_FAILED,
            tenant_id=kit.tenant_id,
            connector="depot",
            idempotency_key=key,
            reply=reply,
            reason="échec tardif",
        )
    run_jobs()


# --------------------------------------------------------------------------------------------------------
# A delivery whose tries run out


def test_a_delivery_out_of_tries_is_in_error_tells_the_asker_and_resumes_once(kit: Kit) -> None:
    assert create_connector(kit).status_code == 201
    folder(kit).parent.mkdir(parents=True, exist_ok=True)
    folder(kit).write_bytes(b"un fichier occupe la place du dossier")  # every try fails (OSError), not refused
    content = os.urandom(2048)
    obj = store(content)
    transfer_id = sending_transfer(kit)
    job_id = ask_delivery(kit, obj, "paquet.zip", f"envoi:{transfer_id}", transfer_id)
    run_jobs()

    with new_session() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == "failed" and job.attempts == 3
    [row] = deliveries(kit.tenant_id)
    assert row.status == "error" and f"socle jobs show {job_id}" in (row.error or "")
    shown = kit["admin"].get(f"/interop/deliveries/{row.id}").json()
    assert shown["status"] == "error" and shown["error"].startswith("échec définitif de la tâche")
    # The asker got its failure reply, once, with the same reason.
    transfer = transfer_row(transfer_id)
    assert transfer.status == "delivery_failed" and transfer.error and (row.error or "").startswith(transfer.error)
    assert (row.error or "").endswith(f"Reprendre : POST /interop/deliveries/{row.id}/resume")
    assert len(audit_of(kit, "interop.delivery.failed")) == 1

    assert_problem(kit["agent"].post(f"/interop/deliveries/{row.id}/resume"), 403)
    folder(kit).unlink()  # the cause is fixed
    resumed = kit["admin"].post(f"/interop/deliveries/{row.id}/resume")
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "sending" and resumed.json()["error"] is None
    run_jobs()
    [row] = deliveries(kit.tenant_id)
    assert row.status == "done" and row.error is None and row.idempotency_key == f"envoi:{transfer_id}"
    assert (folder(kit) / "paquet.zip").read_bytes() == content
    receipt = (folder(kit) / "paquet.zip.receipt.json").read_bytes()
    delivered = transfer_row(transfer_id)  # the archive's transfer comes back from its failure
    assert delivered.status == "delivered" and delivered.error is None and delivered.receipt

    # Nothing more to resume; asking the same key again sends nothing again.
    body = assert_problem(kit["admin"].post(f"/interop/deliveries/{row.id}/resume"), 409)
    assert "seul un envoi ou un suivi en erreur" in body["detail"]
    ask_delivery(kit, obj, "paquet.zip", f"envoi:{transfer_id}", transfer_id)
    run_jobs()
    assert (folder(kit) / "paquet.zip.receipt.json").read_bytes() == receipt
    assert len(deliveries(kit.tenant_id)) == 1
    assert len(audit_of(kit, "interop.delivery.resumed")) == 1


def test_a_late_failure_notice_leaves_a_done_delivery_alone(kit: Kit) -> None:
    assert create_connector(kit).status_code == 201
    transfer_id = sending_transfer(kit)
    ask_delivery(kit, store(os.urandom(512)), "fait.zip", "fait", transfer_id)
    run_jobs()
    [row] = deliveries(kit.tenant_id)
    assert row.status == "done"
    late_failure_notice(kit, "fait", row.reply)
    [row] = deliveries(kit.tenant_id)
    assert row.status == "done" and row.error is None
    assert transfer_row(transfer_id).status == "delivered"  # no failure reply after the success one


def test_the_kernel_sends_the_interop_job_first_and_it_forwards_the_reply() -> None:
    reply = {"success": "archive.jobs.record_delivery", "failure": "archive.jobs.delivery_failed"}
    arguments = {
        "tenant_id": "t1",
        "connector": "depot",
        "object_key": "0" * 64,
        "size": 1,
        "filename": "x",
        "idempotency_key": "k",
        "reply": {**reply, "arguments": {"tenant_id": "t1", "transfer_id": "v1"}},
    }
    target, sent = messages.failure_message(messages.INTEROP_DELIVER, arguments, "raison") or (None, {})
    assert target is messages.INTEROP_DELIVERY_FAILED
    assert sent == {
        "tenant_id": "t1",
        "connector": "depot",
        "idempotency_key": "k",
        "reply": arguments["reply"],
        "reason": "raison",
    }
    assert messages.reply_failure(sent, "raison") == (
        messages.ARCHIVE_DELIVERY_FAILED,
        {"tenant_id": "t1", "transfer_id": "v1", "reason": "raison"},
    )
    other_tenant = {**sent, "reply": {**reply, "arguments": {"tenant_id": "t2", "transfer_id": "v1"}}}
    assert messages.reply_failure(other_tenant, "raison") is None


# --------------------------------------------------------------------------------------------------------
# Changing a connector's configuration


def create_webdav(kit: Kit, name: str = "partage", **config: object) -> dict[str, object]:
    body = {"url": "https://dav.example.org/depot", "username": "depot", "password": OLD_PASSWORD, **config}
    response = kit["admin"].post("/interop/connectors", json={"name": name, "kind": "webdav", "config": body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_a_password_is_rotated_and_never_shown(kit: Kit) -> None:
    create_webdav(kit)
    _, tokens_before = stored_secrets(kit, "partage")

    # Without the password: the stored one is kept, as it was encrypted.
    moved = kit["admin"].patch(
        "/interop/connectors/partage", json={"config": {"url": "https://dav2.example.org/depot", "username": "depot"}}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["config"]["url"] == "https://dav2.example.org/depot" and moved.json()["secrets"] == ["password"]
    assert stored_secrets(kit, "partage") == ({"password": OLD_PASSWORD}, tokens_before)

    rotated = kit["admin"].patch(
        "/interop/connectors/partage",
        json={"config": {"url": "https://dav2.example.org/depot", "username": "depot", "password": NEW_PASSWORD}},
    )
    assert rotated.status_code == 200, rotated.text
    decrypted, tokens = stored_secrets(kit, "partage")
    assert decrypted == {"password": NEW_PASSWORD} and tokens["password"] != tokens_before["password"]
    assert NEW_PASSWORD not in json.dumps(tokens)  # encrypted at rest

    responses = [
        moved,
        rotated,
        kit["admin"].get("/interop/connectors/partage"),
        kit["admin"].get("/interop/connectors"),
    ]
    for response in responses:
        assert OLD_PASSWORD not in response.text and NEW_PASSWORD not in response.text
    entries = audit_of(kit, "interop.connector.updated")
    assert [entry.details["changed"] for entry in entries] == [["url"], []]
    assert [entry.details["secrets_changed"] for entry in entries] == [[], ["password"]]
    for entry in entries:
        assert OLD_PASSWORD not in json.dumps(entry.details) and NEW_PASSWORD not in json.dumps(entry.details)

    # Given as null, the secret is removed; enabling in the same request works too.
    cleared = kit["admin"].patch(
        "/interop/connectors/partage", json={"enabled": False, "config": {"url": "https://dav2.example.org/depot"}}
    )
    assert cleared.status_code == 200 and cleared.json()["enabled"] is False
    assert cleared.json()["secrets"] == ["password"]  # absent: kept
    cleared = kit["admin"].patch(
        "/interop/connectors/partage", json={"config": {"url": "https://dav2.example.org/depot", "password": None}}
    )
    assert cleared.json()["secrets"] == [] and stored_secrets(kit, "partage") == ({}, {})


def test_a_refused_configuration_changes_nothing(kit: Kit) -> None:
    create_webdav(kit)
    before = kit["admin"].get("/interop/connectors/partage").json()
    body = assert_problem(kit["admin"].patch("/interop/connectors/partage", json={"config": {"url": "ftp://x"}}), 422)
    assert "adresse invalide" in body["detail"] and body["detail"].startswith("configuration refusée")
    assert kit["admin"].get("/interop/connectors/partage").json() == before
    assert stored_secrets(kit, "partage")[0] == {"password": OLD_PASSWORD}
    assert audit_of(kit, "interop.connector.updated") == []

    # A secret-only requirement is checked on the merged configuration: the webhook's stored secret counts.
    secret = "s" * 40
    created = kit["admin"].post(
        "/interop/connectors",
        json={
            "name": "crochet",
            "kind": "webhook",
            "config": {"url": "https://a.example.org", "signing_secret": secret},
        },
    )
    assert created.status_code == 201, created.text
    kept = kit["admin"].patch("/interop/connectors/crochet", json={"config": {"url": "https://b.example.org"}})
    assert kept.status_code == 200, kept.text
    short = kit["admin"].patch("/interop/connectors/crochet", json={"config": {"url": "x", "signing_secret": "court"}})
    detail = assert_problem(short, 422)["detail"]
    assert "32 caractères" in detail and "adresse invalide" in detail

    assert (
        "rien à modifier" in assert_problem(kit["admin"].patch("/interop/connectors/partage", json={}), 422)["detail"]
    )
    assert_problem(kit["agent"].patch("/interop/connectors/partage", json={"config": {"url": "https://c.fr"}}), 403)
    assert_problem(kit["admin"].patch("/interop/connectors/absent", json={"enabled": True}), 404)
    # A dépôt path is checked as at creation.
    assert create_connector(kit, "depot", "sae").status_code == 201
    evasion = assert_problem(kit["admin"].patch("/interop/connectors/depot", json={"config": {"path": "../x"}}), 422)
    assert "relatif" in evasion["detail"]


# --------------------------------------------------------------------------------------------------------
# Deleting a connector


def test_a_connector_in_use_cannot_be_deleted(kit: Kit) -> None:
    assert create_connector(kit).status_code == 201
    transfer_id = sending_transfer(kit)
    ask_delivery(kit, store(os.urandom(256)), "v.zip", "v", transfer_id)
    run_jobs()
    [row] = deliveries(kit.tenant_id)
    with transaction() as session:
        session.get(Delivery, row.id).status = "sending"  # type: ignore[union-attr]
    body = assert_problem(kit["admin"].delete("/interop/connectors/depot"), 409)
    assert "utilisé par 1 envoi(s) et 0 flux en cours" in body["detail"]

    with transaction() as session:
        session.get(Delivery, row.id).status = "done"  # type: ignore[union-attr]
        connector = session.execute(select(Connector).where(Connector.tenant_id == kit.tenant_id)).scalar_one()
        flow = Flow(
            tenant_id=kit.tenant_id,
            kind="actes",
            connector="tdt",
            state="nouveau",
            status="waiting",
            documents=[],
            flow_metadata={"signature": {"connector": connector.name}},
            created_by="agent",
        )
        session.add(flow)
    body = assert_problem(kit["admin"].delete("/interop/connectors/depot"), 409)
    assert "0 envoi(s) et 1 flux en cours" in body["detail"]

    with transaction() as session:
        session.get(Flow, flow.id).status = "done"  # type: ignore[union-attr]
    assert_problem(kit["agent"].delete("/interop/connectors/depot"), 403)
    assert kit["admin"].delete("/interop/connectors/depot").status_code == 204
    assert_problem(kit["admin"].get("/interop/connectors/depot"), 404)
    assert_problem(kit["admin"].delete("/interop/connectors/depot"), 404)
    [listed] = kit["admin"].get("/interop/deliveries").json()  # the history stays
    assert listed["id"] == row.id and listed["connector"] == "?"
    assert [entry.details for entry in audit_of(kit, "interop.connector.deleted")] == [
        {"name": "depot", "kind": "depot"}
    ]


# --------------------------------------------------------------------------------------------------------
# A connector's own retry policy for its deliveries


def retry_jobs(delivery_id: str) -> list[Job]:
    with new_session() as session:
        query = select(Job).where(Job.key.like(f"interop.deliver-retry:{delivery_id}:%")).order_by(Job.created_at)
        return list(session.execute(query).scalars())


# TICK: the stored times' resolution (the microsecond), with room; SLACK: see its use.
SECOND, TICK, SLACK = dt.timedelta(seconds=1), dt.timedelta(milliseconds=1), dt.timedelta(milliseconds=250)


def wait_for(jobs: list[Job]) -> None:
    """Sleep until the last delayed retry is due, then run the queue."""
    due = max(job.next_run_at for job in jobs)
    time.sleep(max(0.0, (due - utcnow()).total_seconds()) + 0.05)
    run_jobs()


def test_the_connectors_policy_spaces_the_tries_then_stops_in_error(kit: Kit) -> None:
    with socket.socket() as probe:  # a port nobody listens on: every try is a passing failure (unreachable)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    create_webdav(kit, url=f"https://127.0.0.1:{port}/depot", retry_policy="1s X 2")
    transfer_id = sending_transfer(kit)
    first_job = ask_delivery(kit, store(os.urandom(256)), "r.zip", "relance", transfer_id, connector="partage")
    run_jobs()

    [row] = deliveries(kit.tenant_id)
    [retry] = retry_jobs(row.id)
    assert row.status == "sending" and "essai 1 en échec" in (row.error or "") and "injoignable" in (row.error or "")
    assert retry.status == "pending" and retry.key == f"interop.deliver-retry:{row.id}:0:1"
    # The policy's 1 s (±10 % of jitter) from the failure, not the queue's backoff. The failed try wrote the retry
    # (its created_at: the jobs table's time of the failure) while its own job ran; that row trails the failure
    # by the enqueue (a key lookup, an insert: 2 to 14 ms measured), hence SLACK below, TICK above.
    with new_session() as session:
        failed_try = session.get(Job, first_job)
        assert failed_try is not None and failed_try.started_at and failed_try.finished_at
        assert failed_try.started_at <= retry.created_at <= failed_try.finished_at
    spacing = retry.next_run_at - retry.created_at
    assert 0.9 * SECOND - SLACK <= spacing <= 1.1 * SECOND + TICK, spacing
    assert retry.arguments["idempotency_key"] == "relance" and retry.arguments["reply"] == row.reply
    assert transfer_row(transfer_id).status == "sending"

    wait_for(retry_jobs(row.id))
    assert "essai 2 en échec" in (deliveries(kit.tenant_id)[0].error or "")
    wait_for(retry_jobs(row.id))
    [row] = deliveries(kit.tenant_id)
    assert row.status == "error" and (row.error or "").startswith("échec après 3 essai(s) (toutes les 1 s × 2)")
    assert len(retry_jobs(row.id)) == 2
    with new_session() as session:  # each try's job ended normally: no kernel retries on top of the policy
        keys = [first_job, *(job.id for job in retry_jobs(row.id))]
        assert {session.get(Job, key).status for key in keys} == {"done"}  # type: ignore[union-attr]
    assert transfer_row(transfer_id).status == "delivery_failed"

    # Resumed: a new round of the policy (keys of round 1), not an immediate error.
    assert kit["admin"].post(f"/interop/deliveries/{row.id}/resume").status_code == 200
    run_jobs()
    [row] = deliveries(kit.tenant_id)
    assert row.status == "sending" and retry_jobs(row.id)[-1].key == f"interop.deliver-retry:{row.id}:1:1"


def test_a_retry_policy_is_checked_in_french(kit: Kit) -> None:
    body = {"name": "d", "kind": "depot", "config": {"path": "d", "retry_policy": "toutes les heures"}}
    detail = assert_problem(kit["admin"].post("/interop/connectors", json=body), 422)["detail"]
    assert "politique de relance illisible" in detail
    body["config"]["retry_policy"] = "10 X 3\n60"  # type: ignore[index]
    created = kit["admin"].post("/interop/connectors", json=body)
    assert created.status_code == 201 and created.json()["config"]["retry_policy"] == "10 X 3\n60"
