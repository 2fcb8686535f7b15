"""As@lae replaces its reply (accepted, then a corrected rejection): each distinct message reaches the archive once.

The chain is real: an archive transfer sent through interop to the As@lae simulator, the follow-up fetching
the Acknowledgement and the ArchiveTransferReply, the archive service recording what interop forwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sae_helpers import (
    Simulator,
    add_connector,
    asalae_config,
    ask_delivery,
    delivery_of,
    follow_until_settled,
    running_asalae,
    running_vitam,
    store_sip,
    vitam_config,
)
from sqlalchemy import select, update

from archive.models import SaeMessage
from interop.models import Delivery
from socle import queue
from socle.audit import AuditEntry
from socle.db import new_session, transaction
from socle.models import Job

from conftest import Kit, make_pdf, run_jobs, upload_document

RECORD = "archive.jobs.record_sae_message"


@pytest.fixture
def asalae_sim() -> Iterator[Simulator]:
    yield from running_asalae()


@pytest.fixture
def vitam_sim() -> Iterator[Simulator]:
    yield from running_vitam()


def sent_transfer(kit: Kit, sim: Simulator) -> dict:
    add_connector(kit, "asalae", "asalae", asalae_config(sim))
    document = upload_document(kit["agent"], make_pdf("Délibération versée à As@lae"))
    created = kit["archiviste"].post(
        "/archive/transfers", json={"document_ids": [document["id"]], "archival_agency": "AD037"}
    )
    assert created.status_code == 202, created.text
    run_jobs()
    transfer_id = created.json()["id"]
    sent = kit["archiviste"].post(f"/archive/transfers/{transfer_id}/send", json={"connector": "asalae"})
    assert sent.status_code == 202, sent.text
    run_jobs()
    return dict(kit["archiviste"].get(f"/archive/transfers/{transfer_id}").json())


def forwarded(kit: Kit) -> list[Job]:
    with new_session() as session:
        query = select(Job).where(Job.function == RECORD, Job.tenant_id == kit.tenant_id).order_by(Job.created_at)
        return list(session.execute(query).scalars())


def archive_messages(transfer_id: str) -> list[SaeMessage]:
    with new_session() as session:
        query = select(SaeMessage).where(SaeMessage.transfer_id == transfer_id).order_by(SaeMessage.received_at)
        return list(session.execute(query).scalars())


def audited(kit: Kit, action: str) -> list[AuditEntry]:
    with new_session() as session:
        query = select(AuditEntry).where(AuditEntry.tenant_id == kit.tenant_id, AuditEntry.action == action)
        return list(session.execute(query).scalars())


def ask_again(kit: Kit, delivery_id: str) -> None:
    """The operator asks As@lae again (its follow-up is done): one more check."""
    resumed = kit["admin"].post(f"/interop/deliveries/{delivery_id}/resume")
    assert resumed.status_code == 200, resumed.text
    assert follow_until_settled(delivery_id).follow_status == "done"
    run_jobs()


def test_a_corrected_reply_is_forwarded_once_and_the_archive_refuses_it_with_its_reason(
    kit: Kit, asalae_sim: Simulator
) -> None:
    asalae_sim.scenario(pending_checks=1)  # a check with the Acknowledgement only, then one with the reply
    transfer = sent_transfer(kit, asalae_sim)
    delivery = delivery_of(kit.tenant_id, f"archive:{transfer['id']}")
    assert follow_until_settled(delivery.id).follow_status == "done"
    run_jobs()
    first = delivery_of(kit.tenant_id, f"archive:{transfer['id']}")
    # The Acknowledgement fetched at both checks (its Date rewritten each time) went once.
    assert [job.arguments["message_kind"] for job in forwarded(kit)] == ["acknowledgement", "reply"]
    assert kit["archiviste"].get(f"/archive/transfers/{transfer['id']}").json()["status"] == "accepted"

    asalae_sim.scenario(corrected_verdict="KO")  # As@lae replaces its reply by a rejection
    ask_again(kit, delivery.id)

    jobs = forwarded(kit)
    assert [job.arguments["message_kind"] for job in jobs] == ["acknowledgement", "reply", "reply"]
    assert all(job.status == queue.DONE for job in jobs), [job.last_error for job in jobs]
    later = delivery_of(kit.tenant_id, f"archive:{transfer['id']}")
    assert later.reply_key == first.reply_key and later.acknowledgement_key == first.acknowledgement_key
    assert jobs[2].arguments["object_key"] != first.reply_key
    operation = asalae_sim.state.transfers[transfer["message_identifier"]].operation_id
    assert [(m["kind"], m["message_identifier"]) for m in later.sae_messages or []] == [
        ("acknowledgement", f"ACK-{operation}"),
        ("reply", f"ATR-{operation}"),
        ("reply", f"ATR-{operation}-2"),
    ]
    assert [m["key"] for m in later.sae_messages or []][1:] == [first.reply_key, jobs[2].arguments["object_key"]]
    [entry] = audited(kit, "interop.sae.later_message")
    assert entry.details["message_identifier"] == f"ATR-{operation}-2" and entry.details["first_key"] == first.reply_key

    # The archive keeps its first answer and records the corrected one as refused, saying why.
    assert kit["archiviste"].get(f"/archive/transfers/{transfer['id']}").json()["status"] == "accepted"
    replies = [m for m in archive_messages(transfer["id"]) if m.kind == "reply"]
    assert [m.status for m in replies] == ["recorded", "refused"]
    assert "le système d'archivage a déjà répondu à ce versement" in (replies[1].refusal or "")

    # The same corrected reply fetched again (a new Date, the same MessageIdentifier): not forwarded again.
    ask_again(kit, delivery.id)
    assert len(forwarded(kit)) == 3
    assert len(delivery_of(kit.tenant_id, f"archive:{transfer['id']}").sae_messages or []) == 3
    assert len(audited(kit, "interop.sae.later_message")) == 1
    assert len([m for m in archive_messages(transfer["id"]) if m.kind == "reply"]) == 2


def test_a_delivery_from_before_the_history_finds_its_first_reply_in_the_store(kit: Kit, asalae_sim: Simulator) -> None:
    """A delivery answered before ``sae_messages`` existed (NULL): the same reply asked again is not forwarded."""
    transfer = sent_transfer(kit, asalae_sim)
    delivery = delivery_of(kit.tenant_id, f"archive:{transfer['id']}")
    assert follow_until_settled(delivery.id).follow_status == "done"
    run_jobs()
    with transaction() as session:
        session.execute(update(Delivery).where(Delivery.id == delivery.id).values(sae_messages=None))
    assert len(forwarded(kit)) == 2

    ask_again(kit, delivery.id)  # the same acknowledgement and reply, their Date rewritten
    assert len(forwarded(kit)) == 2 and audited(kit, "interop.sae.later_message") == []
    asalae_sim.scenario(corrected_verdict="KO")
    ask_again(kit, delivery.id)
    assert [job.arguments["message_kind"] for job in forwarded(kit)] == ["acknowledgement", "reply", "reply"]
    kept = delivery_of(kit.tenant_id, f"archive:{transfer['id']}").sae_messages or []
    assert [entry["kind"] for entry in kept] == ["acknowledgement", "reply", "reply"]


def test_a_vitam_follow_up_done_is_not_asked_again(kit: Kit, vitam_sim: Simulator) -> None:
    """Vitam's reply ends its operation: only As@lae's follow-up may be resumed once done."""
    add_connector(kit, "vitam", "vitam", vitam_config(vitam_sim))
    ask_delivery(kit, store_sip(f"{kit.slug}-vitam"), "vitam", "k-vitam", None)
    run_jobs()
    delivery = delivery_of(kit.tenant_id, "k-vitam")
    assert follow_until_settled(delivery.id).follow_status == "done"
    refused = kit["admin"].post(f"/interop/deliveries/{delivery.id}/resume")
    assert refused.status_code == 409 and "seul un envoi ou un suivi en erreur" in refused.text
