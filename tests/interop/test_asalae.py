"""The As@lae connector against the As@lae simulator on 127.0.0.1: multipart send, Acknowledgement then reply."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from lxml import etree
from sae_helpers import (
    Simulator,
    add_connector,
    asalae_config,
    ask_delivery,
    delivery_of,
    follow_until_settled,
    manifest,
    next_check_now,
    running,
    running_asalae,
    sip,
    store_sip,
)
from sqlalchemy import select

from archive.validation import validate_manifest
from interop.connectors.asalae import reply_path
from interop.connectors.sae import parse_xml
from interop.models import Connector
from interop.simulators import asalae
from interop.simulators.common import PlatformState
from socle import messages
from socle.db import new_session
from socle.models import Job
from socle.storage import get_store

from conftest import SHARED_SEDA, Kit, run_jobs


@pytest.fixture
def asalae_sim() -> Iterator[Simulator]:
    yield from running_asalae()


def archive_reply(kit: Kit) -> dict:
    return {
        "success": messages.ARCHIVE_RECORD_DELIVERY.function,
        "failure": messages.ARCHIVE_DELIVERY_FAILED.function,
        "arguments": {"tenant_id": kit.tenant_id, "transfer_id": "versement-as"},
    }


def forwarded(kit: Kit) -> list[dict]:
    with new_session() as session:
        jobs = session.execute(
            select(Job)
            .where(Job.function == "archive.jobs.record_sae_message", Job.tenant_id == kit.tenant_id)
            .order_by(Job.created_at)
        ).scalars()
        return [dict(job.arguments) for job in jobs]


def read(key: str) -> bytes:
    with get_store().open(key) as stream:
        return stream.read()


def test_send_then_acknowledgement_then_reply_each_forwarded_once(kit: Kit, asalae_sim: Simulator) -> None:
    add_connector(kit, "asalae", "asalae", asalae_config(asalae_sim))
    asalae_sim.scenario(pending_checks=1)  # the reply comes at the second look
    identifier = f"{kit.slug}-as"
    ask_delivery(kit, store_sip(identifier), "asalae", "k1", archive_reply(kit))
    run_jobs()

    delivery = delivery_of(kit.tenant_id, "k1")
    assert delivery.status == "done" and delivery.receipt is not None
    assert delivery.receipt["sae"] == "asalae" and delivery.receipt["message_identifier"] == identifier
    assert delivery.receipt["operation_id"] == asalae_sim.state.transfers[identifier].operation_id
    assert delivery.follow_status == "following" and delivery.follow_state == "accusé reçu"
    assert [message["message_kind"] for message in forwarded(kit)] == ["acknowledgement"]

    settled = follow_until_settled(delivery.id)
    assert settled.follow_status == "done" and settled.acknowledgement_key and settled.reply_key
    kinds = [(message["message_kind"], message["object_key"]) for message in forwarded(kit)]
    assert kinds == [("acknowledgement", settled.acknowledgement_key), ("reply", settled.reply_key)]
    acknowledgement = parse_xml(read(settled.acknowledgement_key), "accusé")
    assert acknowledgement.findtext("{*}MessageReceivedIdentifier") == identifier
    reply = parse_xml(read(settled.reply_key), "réponse")
    assert reply.findtext("{*}ReplyCode") == "000" and reply.findtext("{*}MessageRequestIdentifier") == identifier
    assert asalae_sim.sends(identifier) == 1


@pytest.mark.parametrize("version", ["2.1", "2.2", "2.3"])
def test_acknowledgement_and_reply_are_valid_seda(kit: Kit, asalae_sim: Simulator, version: str) -> None:
    add_connector(kit, "asalae", "asalae", asalae_config(asalae_sim))
    asalae_sim.scenario(verdict="KO")
    ask_delivery(kit, store_sip(f"{kit.slug}-{version}", version), "asalae", "k1", None)
    run_jobs()
    settled = follow_until_settled(delivery_of(kit.tenant_id, "k1").id)
    for key, name in ((settled.acknowledgement_key, "Acknowledgement"), (settled.reply_key, "ArchiveTransferReply")):
        assert key is not None
        data = read(key)
        report = validate_manifest(data, SHARED_SEDA, version)
        assert report.valid, (name, report.issues)
        assert etree.QName(parse_xml(data, name)).localname == name
    assert parse_xml(read(settled.reply_key or ""), "réponse").findtext("{*}ReplyCode") == "300"


def test_credentials_basic_token_and_test_connection(kit: Kit, asalae_sim: Simulator) -> None:
    add_connector(kit, "bon", "asalae", asalae_config(asalae_sim))
    ok = kit["admin"].post("/interop/connectors/bon/test").json()
    assert ok["ok"] and "identifiants acceptés" in ok["message"], ok

    add_connector(kit, "mauvais", "asalae", asalae_config(asalae_sim, password="faux"))
    refused = kit["admin"].post("/interop/connectors/mauvais/test").json()
    assert not refused["ok"] and "refus 401" in refused["message"], refused
    shown = kit["admin"].get("/interop/connectors/mauvais").json()
    assert shown["secrets"] == ["password"] and "faux" not in str(shown)
    with new_session() as session:
        rows = session.execute(select(Connector).where(Connector.tenant_id == kit.tenant_id)).scalars()
        assert all("mot-de-passe" not in str(row.config) and "faux" not in str(row.config) for row in rows)


def test_token_authentication() -> None:
    state = PlatformState()
    for sim in running(asalae.create_app(state, asalae.Credentials(token="jeton-secret")), state):
        path = reply_path("Acknowledgement", "213700000", "inconnu")
        assert httpx.get(sim.url + path, headers={"Authorization": "Bearer jeton-secret"}).status_code == 404
        assert httpx.get(sim.url + path, headers={"Authorization": "Bearer autre"}).status_code == 401


def test_a_refused_transfer_fails_at_once_with_the_platforms_words(kit: Kit, asalae_sim: Simulator) -> None:
    add_connector(kit, "asalae", "asalae", asalae_config(asalae_sim, password="faux"))
    ask_delivery(kit, store_sip(f"{kit.slug}-refus"), "asalae", "k1", archive_reply(kit))
    run_jobs()
    delivery = delivery_of(kit.tenant_id, "k1")
    assert delivery.status == "failed" and "refus 401" in (delivery.error or "")
    with new_session() as session:
        failure = session.execute(
            select(Job).where(Job.function == messages.ARCHIVE_DELIVERY_FAILED.function, Job.tenant_id == kit.tenant_id)
        ).scalar_one()
        assert "refus 401" in failure.arguments["reason"]


@pytest.mark.parametrize("fault", ["500", "html", "timeout"])
def test_send_failures_are_retried_and_sent_once(kit: Kit, asalae_sim: Simulator, fault: str) -> None:
    add_connector(kit, "asalae", "asalae", asalae_config(asalae_sim))
    asalae_sim.scenario(faults={"send": [fault]})
    identifier = f"{kit.slug}-{fault}"
    ask_delivery(kit, store_sip(identifier), "asalae", "k1", None)
    run_jobs()
    assert delivery_of(kit.tenant_id, "k1").status == "done" and asalae_sim.sends(identifier) == 1


def test_a_timeout_after_the_send_is_recognised_by_its_acknowledgement(kit: Kit, asalae_sim: Simulator) -> None:
    add_connector(kit, "asalae", "asalae", asalae_config(asalae_sim))
    asalae_sim.scenario(faults={"send": ["accept_then_timeout"]})
    identifier = f"{kit.slug}-perdu"
    ask_delivery(kit, store_sip(identifier), "asalae", "k1", None)
    run_jobs()
    delivery = delivery_of(kit.tenant_id, "k1")
    assert asalae_sim.sends(identifier) == 1
    assert delivery.status == "done" and delivery.receipt is not None and delivery.receipt["recovered"] is True


def test_the_simulator_detects_duplicates_and_checks_the_manifest(asalae_sim: Simulator) -> None:
    auth = ("versant", "mot-de-passe")
    package = sip("double-1")
    files = {"seda_message": ("manifest.xml", manifest("double-1")), "attachments": ("p.zip", package)}
    assert httpx.post(f"{asalae_sim.url}/sedaMessages", files=files, auth=auth).status_code == 201
    second = httpx.post(f"{asalae_sim.url}/sedaMessages", files=files, auth=auth)
    assert second.status_code == 409 and "doublon" in second.json()["message"]
    other = {"seda_message": ("manifest.xml", manifest("autre")), "attachments": ("p.zip", package)}
    mismatch = httpx.post(f"{asalae_sim.url}/sedaMessages", files=other, auth=auth)
    assert mismatch.status_code == 400 and "ne correspond pas" in mismatch.json()["message"]


@pytest.mark.parametrize(("endpoint", "fault"), [("acknowledgement", "malformed"), ("reply", "html")])
def test_a_bad_reply_is_a_failed_try_then_the_next_one_succeeds(
    kit: Kit, asalae_sim: Simulator, endpoint: str, fault: str
) -> None:
    add_connector(kit, "asalae", "asalae", asalae_config(asalae_sim))
    asalae_sim.scenario(faults={endpoint: [fault]})
    ask_delivery(kit, store_sip(f"{kit.slug}-{fault}"), "asalae", "k1", archive_reply(kit))
    run_jobs()
    delivery = delivery_of(kit.tenant_id, "k1")
    assert delivery.follow_status == "following" and delivery.follow_checks == 1
    assert "XML mal formé" in (delivery.follow_state or "") or "page HTML" in (delivery.follow_state or "")
    assert forwarded(kit) == []  # nothing half-received is passed on
    assert next_check_now(delivery.id) == 1
    settled = follow_until_settled(delivery.id)
    assert settled.follow_status == "done"
    assert [message["message_kind"] for message in forwarded(kit)] == ["acknowledgement", "reply"]
