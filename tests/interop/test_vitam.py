"""The Vitam connector against the Vitam simulator on 127.0.0.1: send, follow, reply, every scenario knob."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from lxml import etree
from sae_helpers import (
    Simulator,
    add_connector,
    ask_delivery,
    delivery_of,
    follow_jobs,
    follow_until_settled,
    running_vitam,
    sip,
    store_sip,
    vitam_config,
)
from sqlalchemy import select

from archive.validation import validate_manifest
from interop.connectors.sae import SaeUnavailable, parse_xml
from interop.models import Connector
from socle import messages, queue
from socle.db import new_session, utcnow
from socle.models import Job
from socle.storage import get_store

from conftest import SHARED_SEDA, Kit, assert_problem, run_jobs


@pytest.fixture
def vitam_sim() -> Iterator[Simulator]:
    yield from running_vitam()


def archive_reply(kit: Kit, transfer_id: str = "versement-1") -> dict:
    return {
        "success": messages.ARCHIVE_RECORD_DELIVERY.function,
        "failure": messages.ARCHIVE_DELIVERY_FAILED.function,
        "arguments": {"tenant_id": kit.tenant_id, "transfer_id": transfer_id},
    }


def sae_messages_enqueued(kit: Kit) -> list[Job]:
    with new_session() as session:
        return list(
            session.execute(
                select(Job)
                .where(Job.function == "archive.jobs.record_sae_message", Job.tenant_id == kit.tenant_id)
                .order_by(Job.created_at)
            ).scalars()
        )


# --------------------------------------------------------------------------------------------------------
# Configuration: secrets, enable/disable, test of the connection


def test_secrets_are_encrypted_at_rest_and_never_returned(kit: Kit, vitam_sim: Simulator) -> None:
    key_pem = "-----BEGIN PRIVATE KEY-----\nclé-privée-de-test\n-----END PRIVATE KEY-----\n"
    created = add_connector(kit, "vitam", "vitam", vitam_config(vitam_sim, client_key=key_pem))
    assert created["secrets"] == ["client_key"]
    assert "client_key" not in created["config"] and "secrets" not in created["config"]
    assert "clé-privée" not in kit["admin"].get("/interop/connectors/vitam").text
    assert "clé-privée" not in kit["agent"].get("/interop/connectors").text
    with new_session() as session:
        row = session.execute(select(Connector).where(Connector.tenant_id == kit.tenant_id)).scalar_one()
        stored = str(row.config)
    assert "clé-privée" not in stored and "PRIVATE KEY" not in stored  # encrypted, not just hidden


def test_test_connection_against_the_simulator_and_a_closed_port(kit: Kit, vitam_sim: Simulator) -> None:
    add_connector(kit, "vitam", "vitam", vitam_config(vitam_sim))
    result = kit["admin"].post("/interop/connectors/vitam/test").json()
    assert result["ok"] and "Vitam joignable" in result["message"], result

    add_connector(kit, "ferme", "vitam", {"url": "http://127.0.0.1:9", "tenant": 2, "timeout": 1})
    closed = kit["admin"].post("/interop/connectors/ferme/test").json()
    assert not closed["ok"] and "injoignable" in closed["message"], closed
    assert_problem(kit["agent"].post("/interop/connectors/vitam/test"), 403)


def test_a_disabled_connector_refuses_deliveries_until_enabled_again(kit: Kit, vitam_sim: Simulator) -> None:
    add_connector(kit, "vitam", "vitam", vitam_config(vitam_sim))
    assert_problem(kit["agent"].patch("/interop/connectors/vitam", json={"enabled": False}), 403)
    disabled = kit["admin"].patch("/interop/connectors/vitam", json={"enabled": False})
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False

    obj = store_sip(f"{kit.slug}-desactive")
    ask_delivery(kit, obj, "vitam", "k1", archive_reply(kit))
    run_jobs()
    assert vitam_sim.sends(f"{kit.slug}-desactive") == 0
    with new_session() as session:
        failure = session.execute(
            select(Job).where(Job.function == messages.ARCHIVE_DELIVERY_FAILED.function, Job.tenant_id == kit.tenant_id)
        ).scalar_one()
        assert "désactivé" in failure.arguments["reason"]

    assert kit["admin"].patch("/interop/connectors/vitam", json={"enabled": True}).json()["enabled"] is True


def test_a_bad_configuration_is_refused_in_french(kit: Kit) -> None:
    response = kit["admin"].post(
        "/interop/connectors",
        json={
            "name": "v",
            "kind": "vitam",
            "config": {"url": "http://127.0.0.1:1", "tenant": 1, "retry_policy": "vite"},
        },
    )
    assert response.status_code == 422 and "politique de relance illisible" in response.text


# --------------------------------------------------------------------------------------------------------
# Send and follow


def test_send_follow_and_forward_the_reply(kit: Kit, vitam_sim: Simulator) -> None:
    add_connector(kit, "vitam", "vitam", vitam_config(vitam_sim))
    vitam_sim.scenario(pending_checks=2)  # the operation runs for two checks
    identifier = f"{kit.slug}-ok"
    ask_delivery(kit, store_sip(identifier), "vitam", "k1", archive_reply(kit))
    run_jobs()

    delivery = delivery_of(kit.tenant_id, "k1")
    assert delivery.status == "done" and delivery.receipt is not None
    received = vitam_sim.state.transfers[identifier]
    assert delivery.receipt["sae"] == "vitam" and delivery.receipt["message_identifier"] == identifier
    assert delivery.receipt["operation_id"] == received.operation_id
    assert delivery.follow_status == "following" and delivery.follow_state == "RUNNING/STARTED"

    settled = follow_until_settled(delivery.id)
    assert settled.follow_status == "done" and settled.follow_checks == 3
    assert settled.acknowledgement_key is None  # Vitam sends no separate Acknowledgement
    with get_store().open(settled.reply_key) as stream:
        reply = stream.read()
    root = parse_xml(reply, "ATR")
    assert etree.QName(root).localname == "ArchiveTransferReply"
    assert root.findtext("{*}MessageRequestIdentifier") == identifier and root.findtext("{*}ReplyCode") == "OK"

    forwarded = sae_messages_enqueued(kit)
    assert [job.arguments["message_kind"] for job in forwarded] == ["reply"]
    assert forwarded[0].arguments == {
        "tenant_id": kit.tenant_id,
        "transfer_id": "versement-1",
        "message_kind": "reply",
        "object_key": settled.reply_key,
        "size": len(reply),
    }
    # The API shows the follow-up, the keys of the SEDA messages whole to archivists (and administrators); the SIP
    # was sent once.
    listed = kit["archiviste"].get(f"/interop/deliveries/{delivery.id}").json()
    assert listed["follow"]["status"] == "done" and listed["follow"]["reply_sha256"] == settled.reply_key
    seen = kit["agent"].get(f"/interop/deliveries/{delivery.id}").json()["follow"]
    assert seen["status"] == "done" and seen["reply_sha256"] == f"{settled.reply_key[:16]}…"
    assert vitam_sim.sends(identifier) == 1


@pytest.mark.parametrize("version", ["2.1", "2.2", "2.3"])
@pytest.mark.parametrize("verdict", ["OK", "KO"])
def test_the_simulators_reply_is_a_valid_seda_archive_transfer_reply(
    kit: Kit, vitam_sim: Simulator, version: str, verdict: str
) -> None:
    add_connector(kit, "vitam", "vitam", vitam_config(vitam_sim))
    vitam_sim.scenario(verdict=verdict)
    ask_delivery(kit, store_sip(f"{kit.slug}-{version}", version), "vitam", "k1", None)
    run_jobs()
    settled = follow_until_settled(delivery_of(kit.tenant_id, "k1").id)
    with get_store().open(settled.reply_key) as stream:
        reply = stream.read()
    report = validate_manifest(reply, SHARED_SEDA, version)
    assert report.valid, report.issues
    root = parse_xml(reply, "ATR")
    assert etree.QName(root).namespace == f"fr:gouv:culture:archivesdefrance:seda:v{version}"
    assert root.findtext("{*}ReplyCode") == verdict
    outcomes = [event.findtext("{*}Outcome") for event in root.iter("{*}Event")]
    assert ("KO" in outcomes) == (verdict == "KO")
    # An accepted transfer's units come back with the identifiers the platform gave them.
    units = [(unit.get("id"), unit.findtext("{*}Content/{*}SystemId")) for unit in root.iter("{*}ArchiveUnit")]
    assert [unit_id for unit_id, _ in units] == (["AU1"] if verdict == "OK" else [])
    assert all(system_id for _, system_id in units)


# --------------------------------------------------------------------------------------------------------
# Scenario knobs: never sent twice, failures are retried and visible


def test_http_500_on_send_is_retried_and_sent_once(kit: Kit, vitam_sim: Simulator) -> None:
    add_connector(kit, "vitam", "vitam", vitam_config(vitam_sim))
    vitam_sim.scenario(faults={"send": ["500"]})
    identifier = f"{kit.slug}-500"
    job_id = ask_delivery(kit, store_sip(identifier), "vitam", "k1", None)
    run_jobs()
    with new_session() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == queue.DONE and job.attempts == 2
    assert vitam_sim.sends(identifier) == 1 and delivery_of(kit.tenant_id, "k1").status == "done"


@pytest.mark.parametrize("fault", ["html", "timeout"])
def test_an_html_page_or_a_timeout_on_send_is_retried(kit: Kit, vitam_sim: Simulator, fault: str) -> None:
    add_connector(kit, "vitam", "vitam", vitam_config(vitam_sim))
    vitam_sim.scenario(faults={"send": [fault]})
    identifier = f"{kit.slug}-{fault}"
    ask_delivery(kit, store_sip(identifier), "vitam", "k1", None)
    run_jobs()
    delivery = delivery_of(kit.tenant_id, "k1")
    assert delivery.status == "done" and vitam_sim.sends(identifier) == 1


def test_a_timeout_after_the_send_does_not_send_twice(kit: Kit, vitam_sim: Simulator) -> None:
    add_connector(kit, "vitam", "vitam", vitam_config(vitam_sim))
    vitam_sim.scenario(faults={"send": ["accept_then_timeout"]})
    identifier = f"{kit.slug}-perdu"
    job_id = ask_delivery(kit, store_sip(identifier), "vitam", "k1", None)
    run_jobs()

    delivery = delivery_of(kit.tenant_id, "k1")
    assert vitam_sim.sends(identifier) == 1  # the second run asked the logbook instead of sending again
    assert any("logbookoperations" in line for line in vitam_sim.state.requests)
    assert delivery.status == "done" and delivery.receipt is not None and delivery.receipt["recovered"] is True
    assert delivery.receipt["operation_id"] == vitam_sim.state.transfers[identifier].operation_id
    with new_session() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == queue.DONE and job.attempts == 2


def test_the_simulator_detects_duplicates(kit: Kit, vitam_sim: Simulator) -> None:
    headers = {"X-Tenant-Id": "2", "X-Context-Id": "DEFAULT_WORKFLOW", "X-Action": "RESUME"}
    package = sip(f"{kit.slug}-double")
    first = httpx.post(f"{vitam_sim.url}/ingest-external/v1/ingests", content=package, headers=headers)
    second = httpx.post(f"{vitam_sim.url}/ingest-external/v1/ingests", content=package, headers=headers)
    assert first.status_code == 202 and first.headers["X-Request-Id"].startswith("aeaa")
    assert second.status_code == 409 and "doublon" in second.json()["message"]
    assert len(vitam_sim.state.transfers) == 1


def test_a_second_delivery_of_the_same_sip_finds_the_first_operation(kit: Kit, vitam_sim: Simulator) -> None:
    add_connector(kit, "vitam", "vitam", vitam_config(vitam_sim))
    obj = store_sip(f"{kit.slug}-deux")
    ask_delivery(kit, obj, "vitam", "k1", None)
    ask_delivery(kit, obj, "vitam", "k2", None)  # another key, same SIP: the platform says « duplicate »
    run_jobs()
    first, second = delivery_of(kit.tenant_id, "k1"), delivery_of(kit.tenant_id, "k2")
    assert first.receipt and second.receipt
    # Whichever ran second was told « duplicate » and took the first one's operation instead.
    assert sorted(bool(d.receipt and d.receipt.get("recovered")) for d in (first, second)) == [False, True]
    assert first.receipt["operation_id"] == second.receipt["operation_id"]
    assert len(vitam_sim.state.transfers) == 1


@pytest.mark.parametrize(
    ("endpoint", "fault", "said"),
    [
        ("status", "500", "erreur 500"),
        ("status", "timeout", "délai dépassé"),
        ("reply", "malformed", "XML mal formé"),
        ("reply", "html", "page HTML"),
    ],
)
def test_follow_up_failures_count_as_tries_and_keep_the_platforms_words(
    kit: Kit, vitam_sim: Simulator, endpoint: str, fault: str, said: str
) -> None:
    add_connector(kit, "vitam", "vitam", vitam_config(vitam_sim))
    vitam_sim.scenario(faults={endpoint: [fault]})
    ask_delivery(kit, store_sip(f"{kit.slug}-{endpoint}-{fault}"), "vitam", "k1", None)
    run_jobs()
    delivery = delivery_of(kit.tenant_id, "k1")
    assert delivery.follow_status == "following" and delivery.follow_checks == 1
    assert said in (delivery.follow_state or ""), delivery.follow_state
    assert delivery.next_check_at is not None and delivery.reply_key is None

    settled = follow_until_settled(delivery.id)  # the next try gets the reply
    assert settled.follow_status == "done" and settled.follow_checks == 2 and settled.reply_key


def test_a_slow_platform_within_the_timeout_works_beyond_it_fails(kit: Kit, vitam_sim: Simulator) -> None:
    add_connector(kit, "vitam", "vitam", vitam_config(vitam_sim, timeout=2))
    add_connector(kit, "impatient", "vitam", vitam_config(vitam_sim, timeout=0.3))
    vitam_sim.scenario(delay=0.6)
    identifier = f"{kit.slug}-lent"
    ask_delivery(kit, store_sip(identifier), "vitam", "k1", None)
    run_jobs()
    assert delivery_of(kit.tenant_id, "k1").status == "done" and vitam_sim.sends(identifier) == 1

    result = kit["admin"].post("/interop/connectors/impatient/test").json()
    assert not result["ok"] and "délai dépassé" in result["message"], result


def test_after_the_last_try_the_follow_up_is_in_error_visible_and_resumable(kit: Kit, vitam_sim: Simulator) -> None:
    add_connector(kit, "vitam", "vitam", vitam_config(vitam_sim, retry_policy="1s X 2"))
    vitam_sim.scenario(pending_checks=100)
    ask_delivery(kit, store_sip(f"{kit.slug}-attente"), "vitam", "k1", archive_reply(kit))
    run_jobs()
    delivery = follow_until_settled(delivery_of(kit.tenant_id, "k1").id)

    assert delivery.follow_status == "error" and delivery.follow_checks == 3  # the first check, then 2 retries
    assert "pas de réponse de la plateforme après 3 essai(s)" in (delivery.follow_error or "")
    jobs = follow_jobs(delivery.id)
    assert [job.status for job in jobs] == [queue.DONE, queue.DONE, queue.FAILED]
    with new_session() as session:  # what `socle jobs` lists
        assert jobs[-1].id in {job.id for job in queue.list_jobs(session)}
    shown = kit["agent"].get(f"/interop/deliveries/{delivery.id}").json()["follow"]
    assert shown["status"] == "error" and "Reprendre" in shown["error"] and shown["checks"] == 3
    assert_problem(kit["agent"].post(f"/interop/deliveries/{delivery.id}/resume"), 403)

    vitam_sim.scenario(pending_checks=0)
    resumed = kit["admin"].post(f"/interop/deliveries/{delivery.id}/resume")
    assert resumed.status_code == 200 and resumed.json()["follow"]["status"] == "following"
    run_jobs()
    done = delivery_of(kit.tenant_id, "k1")
    assert done.follow_status == "done" and done.reply_key and len(sae_messages_enqueued(kit)) == 1
    assert_problem(kit["admin"].post(f"/interop/deliveries/{delivery.id}/resume"), 409)


def test_xml_from_a_platform_is_parsed_without_entities_or_dtd() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><r>&b;</r>'
    with pytest.raises(SaeUnavailable, match="DTD"):
        parse_xml(bomb, "réponse")
    external = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    with pytest.raises(SaeUnavailable):
        parse_xml(external, "réponse")
    with pytest.raises(SaeUnavailable, match="page HTML"):
        parse_xml(b"<!DOCTYPE html><html><body>Erreur</body></html>", "réponse")


# --------------------------------------------------------------------------------------------------------
# send_retry_policy: the sending's own pace, retry_policy keeping the following's


def _send_retries(delivery_id: str) -> list[Job]:
    with new_session() as session:
        query = select(Job).where(Job.key.like(f"interop.deliver-retry:{delivery_id}:%")).order_by(Job.created_at)
        return list(session.execute(query).scalars())


def _run_when_due(jobs: list[Job]) -> None:
    """Sleep until the last delayed retry is due (the policy's seconds), then run the queue."""
    time.sleep(max(0.0, (max(job.next_run_at for job in jobs) - utcnow()).total_seconds()) + 0.05)
    run_jobs()


def test_send_retry_policy_paces_the_upload_then_stops_in_error(kit: Kit, vitam_sim: Simulator) -> None:
    add_connector(kit, "vitam", "vitam", vitam_config(vitam_sim, send_retry_policy="1s X 2"))
    vitam_sim.scenario(faults={"send": ["500", "500", "500"]})
    identifier = f"{kit.slug}-relances"
    first_job = ask_delivery(kit, store_sip(identifier), "vitam", "k1", None)
    run_jobs()
    delivery = delivery_of(kit.tenant_id, "k1")
    assert delivery.status == "sending" and "essai 1 en échec" in (delivery.error or "")
    assert "erreur 500" in (delivery.error or "")

    _run_when_due(_send_retries(delivery.id))
    _run_when_due(_send_retries(delivery.id))
    delivery = delivery_of(kit.tenant_id, "k1")
    assert delivery.status == "error"
    assert (delivery.error or "").startswith("échec après 3 essai(s) (toutes les 1 s × 2)")
    uploads = [line for line in vitam_sim.state.requests if line == "POST /ingest-external/v1/ingests"]
    assert len(uploads) == 3 and vitam_sim.sends(identifier) == 0 and len(_send_retries(delivery.id)) == 2
    with new_session() as session:  # each try's job ended normally: the policy, not the kernel, counted the tries
        keys = [first_job, *(job.id for job in _send_retries(delivery.id))]
        assert {session.get(Job, key).status for key in keys} == {queue.DONE}  # type: ignore[union-attr]
    assert follow_jobs(delivery.id) == []


def test_following_keeps_retry_policy_when_send_retry_policy_is_set(kit: Kit, vitam_sim: Simulator) -> None:
    config = vitam_config(vitam_sim, retry_policy="1s X 1", send_retry_policy="1s X 3")
    assert add_connector(kit, "vitam", "vitam", config)["config"]["send_retry_policy"] == "1s X 3"
    vitam_sim.scenario(faults={"send": ["500"]}, pending_checks=100)
    identifier = f"{kit.slug}-suivi"
    ask_delivery(kit, store_sip(identifier), "vitam", "k1", None)
    run_jobs()
    delivery = delivery_of(kit.tenant_id, "k1")
    _run_when_due(_send_retries(delivery.id))  # the second try goes through
    assert delivery_of(kit.tenant_id, "k1").status == "done" and vitam_sim.sends(identifier) == 1

    followed = follow_until_settled(delivery.id)
    assert followed.follow_status == "error" and followed.follow_checks == 2  # retry_policy « 1s X 1 »
    assert "(toutes les 1 s × 1)" in (followed.follow_error or "")


def test_a_bad_send_retry_policy_is_refused_in_french(kit: Kit) -> None:
    config = {"url": "http://127.0.0.1:1", "tenant": 1, "send_retry_policy": "souvent"}
    response = kit["admin"].post("/interop/connectors", json={"name": "v", "kind": "vitam", "config": config})
    assert response.status_code == 422 and "politique de relance illisible : « souvent »" in response.text
