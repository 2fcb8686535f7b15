"""A sent transfer followed to its end through archive.jobs.record_sae_message, as interop sends it."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from sae_messages import VITAM_REFUSAL, acknowledgement, sae_sends, transfer_reply
from sqlalchemy import select

from archive import lifecycle
from socle.db import transaction
from socle.models import AuditEntry, Job
from socle.storage import get_store

from conftest import Kit, make_pdf, run_jobs, upload_document


def sent_transfer(kit: Kit) -> dict[str, Any]:
    """A transfer built, then deposited by a « dépôt » connector: state delivered."""
    document = upload_document(kit["agent"], make_pdf("à verser"), title="Délibération n° 7")
    created = kit["archiviste"].post(
        "/archive/transfers", json={"document_ids": [document["id"]], "archival_agency": "AD037"}
    )
    assert created.status_code == 202, created.text
    run_jobs()
    connector = kit["admin"].post("/interop/connectors", json={"name": "sae", "kind": "depot", "config": {"path": "s"}})
    assert connector.status_code == 201, connector.text
    sent = kit["archiviste"].post(f"/archive/transfers/{created.json()['id']}/send", json={"connector": "sae"})
    assert sent.status_code == 202, sent.text
    run_jobs()
    transfer = transfer_of(kit, created.json()["id"])
    assert transfer["status"] == "delivered", transfer
    return transfer


def transfer_of(kit: Kit, transfer_id: str) -> dict[str, Any]:
    response = kit["archiviste"].get(f"/archive/transfers/{transfer_id}")
    assert response.status_code == 200, response.text
    return response.json()


def audit_actions(tenant_id: str, transfer_id: str) -> list[str]:
    with transaction() as session:
        query = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id, AuditEntry.object_id == transfer_id)
        return [entry.action for entry in session.execute(query.order_by(AuditEntry.seq)).scalars()]


def test_acknowledged_then_accepted_keeps_the_sae_identifiers(kit: Kit) -> None:
    transfer = sent_transfer(kit)
    request = transfer["message_identifier"]
    assert transfer["status_label"].startswith("envoyé")

    sae_sends(kit.tenant_id, transfer["id"], "acknowledgement", acknowledgement("2.2", request, "ACK-1"))
    acknowledged = transfer_of(kit, transfer["id"])
    assert acknowledged["status"] == "acknowledged" and acknowledged["acknowledged_at"]
    assert acknowledged["status_label"] == "reçu par le système d'archivage (accusé de réception)"

    reply = transfer_reply(
        "2.2", request, "OK", "ATR-77", units={"ID4": "aeaqaaaaaahg6"}, objects={"ID2": ("aeaaaaaa1", "aebaaaa2")}
    )
    sae_sends(kit.tenant_id, transfer["id"], "reply", reply)
    accepted = transfer_of(kit, transfer["id"])
    assert accepted["status"] == "accepted" and accepted["reply_code"] == "OK" and accepted["error"] is None
    assert accepted["sae_message_identifier"] == "ATR-77"
    identifiers = accepted["sae_identifiers"]
    assert identifiers["message_identifier"] == "ATR-77" and identifiers["archival_agency"] == "AD037"
    assert identifiers["units"] == {"ID4": {"system_ids": ["aeaqaaaaaahg6"], "archival_agency_identifiers": []}}
    assert identifiers["objects"] == {"ID2": {"system_id": "aeaaaaaa1", "group_system_id": "aebaaaa2"}}
    assert accepted["reply"]["verdict"] == "Transfert accepté par le système d'archivage (code OK)."
    assert [(m["kind"], m["status"]) for m in accepted["messages"]] == [
        ("acknowledgement", "recorded"),
        ("reply", "recorded"),
    ]
    assert audit_actions(kit.tenant_id, transfer["id"])[-2:] == [
        "archive.transfer.acknowledged",
        "archive.transfer.accepted",
    ]


def test_rejection_shows_the_reasons_in_french(kit: Kit) -> None:
    transfer = sent_transfer(kit)
    # SEDA 2.1 reply to a 2.2 transfer: the SAE answers in its own version, which is fine.
    sae_sends(
        kit.tenant_id,
        transfer["id"],
        "reply",
        transfer_reply("2.1", transfer["message_identifier"], "KO", events=VITAM_REFUSAL),
    )
    rejected = transfer_of(kit, transfer["id"])
    assert rejected["status"] == "rejected" and rejected["reply_code"] == "KO"
    assert rejected["status_label"] == "refusé par le système d'archivage"
    assert rejected["error"].startswith("Transfert refusé par le système d'archivage (code KO).")
    assert "Règle de gestion APP-99 inconnue du référentiel" in rejected["error"]
    assert rejected["reply"]["motifs"][0].startswith("Contrôle global du SIP (CHECK_SEDA) : KO")
    assert rejected["sae_identifiers"] is None
    assert audit_actions(kit.tenant_id, transfer["id"])[-1] == "archive.transfer.rejected"


def test_the_same_message_twice_counts_once(kit: Kit) -> None:
    transfer = sent_transfer(kit)
    data = acknowledgement("2.3", transfer["message_identifier"])
    first = sae_sends(kit.tenant_id, transfer["id"], "acknowledgement", data)
    second = sae_sends(kit.tenant_id, transfer["id"], "acknowledgement", data)
    assert first == second
    seen = transfer_of(kit, transfer["id"])
    assert seen["status"] == "acknowledged" and len(seen["messages"]) == 1
    assert audit_actions(kit.tenant_id, transfer["id"]).count("archive.transfer.acknowledged") == 1


def test_reply_to_another_message_is_refused_and_recorded(kit: Kit) -> None:
    transfer = sent_transfer(kit)
    key = sae_sends(kit.tenant_id, transfer["id"], "reply", transfer_reply("2.2", "autre-versement-123", "OK"))
    seen = transfer_of(kit, transfer["id"])
    assert seen["status"] == "delivered" and seen["sae_identifiers"] is None  # nothing moved
    [message] = seen["messages"]
    assert message["status"] == "refused" and message["object_sha256"] == key
    assert message["refusal"] == (
        "Message refusé : il répond au message « autre-versement-123 », "
        f"pas à ce versement (« {transfer['message_identifier']} »)."
    )
    assert message["request_identifier"] == "autre-versement-123"
    assert audit_actions(kit.tenant_id, transfer["id"])[-1] == "archive.transfer.sae_message_refused"
    # The right reply still gets through afterwards.
    sae_sends(kit.tenant_id, transfer["id"], "reply", transfer_reply("2.2", transfer["message_identifier"], "OK"))
    assert transfer_of(kit, transfer["id"])["status"] == "accepted"


def test_wrong_kind_unreadable_and_untimely_messages_are_refused(kit: Kit) -> None:
    transfer = sent_transfer(kit)
    request = transfer["message_identifier"]
    sae_sends(kit.tenant_id, transfer["id"], "reply", acknowledgement("2.2", request))
    sae_sends(kit.tenant_id, transfer["id"], "acknowledgement", b"<pas du SEDA")
    sae_sends(kit.tenant_id, transfer["id"], "reply", transfer_reply("2.2", request, "KO"))
    sae_sends(kit.tenant_id, transfer["id"], "acknowledgement", acknowledgement("2.2", request))  # too late
    seen = transfer_of(kit, transfer["id"])
    assert seen["status"] == "rejected"
    refusals = [m["refusal"] for m in seen["messages"] if m["status"] == "refused"]
    assert refusals[0] == "Message refusé : annoncé comme réponse au transfert mais c'est un accusé de réception."
    assert refusals[1].startswith("Message refusé : XML mal formé")
    assert refusals[2] == (
        "Message refusé : le versement n'attend pas d'accusé de réception (état : refusé par le système d'archivage)."
    )


def test_messages_for_another_tenant_or_unsent_transfer_are_refused(make_kit: Callable[..., Kit]) -> None:
    kit, other = make_kit(with_identity=False), make_kit(with_identity=False)
    transfer = sent_transfer(kit)
    data = transfer_reply("2.2", transfer["message_identifier"], "OK")
    sae_sends(other.tenant_id, transfer["id"], "reply", data)  # the other tenant cannot reach this transfer
    with transaction() as session:
        job = session.execute(
            select(Job).where(Job.function == "archive.jobs.record_sae_message", Job.tenant_id == other.tenant_id)
        ).scalar_one()
        assert job.status == "failed" and "introuvable" in (job.last_error or "")
    seen = transfer_of(kit, transfer["id"])
    assert seen["status"] == "delivered" and seen["messages"] == []

    # A transfer never sent does not take replies.
    document = upload_document(kit["agent"], make_pdf("non envoyé"))
    built = kit["archiviste"].post(
        "/archive/transfers", json={"document_ids": [document["id"]], "archival_agency": "A"}
    )
    run_jobs()
    unsent = built.json()
    sae_sends(kit.tenant_id, unsent["id"], "reply", transfer_reply("2.2", unsent["message_identifier"], "OK"))
    seen = transfer_of(kit, unsent["id"])
    assert seen["status"] == "built" and seen["messages"][0]["status"] == "refused"
    assert (
        "n'attend pas de réponse au transfert (état : prêt : paquet construit et valide)"
        in seen["messages"][0]["refusal"]
    )


def test_receipt_arriving_after_the_reply_is_kept(kit: Kit) -> None:
    """interop may get the SAE's reply before archive has processed the connector's receipt."""
    document = upload_document(kit["agent"], make_pdf("ordre"))
    created = kit["archiviste"].post(
        "/archive/transfers", json={"document_ids": [document["id"]], "archival_agency": "A"}
    )
    run_jobs()
    kit["admin"].post("/interop/connectors", json={"name": "sae", "kind": "depot", "config": {"path": "s"}})
    transfer = (
        kit["archiviste"].post(f"/archive/transfers/{created.json()['id']}/send", json={"connector": "sae"}).json()
    )
    assert transfer["status"] == "sending"
    with transaction() as session:  # the deliver job has not run yet: the reply comes first
        data = transfer_reply("2.2", transfer["message_identifier"], "OK", units={"ID4": "aeaq1"})
        stored = get_store().put(io.BytesIO(data))
        lifecycle.record_sae_message(session, kit.tenant_id, transfer["id"], "reply", stored.key, stored.size)
    assert transfer_of(kit, transfer["id"])["status"] == "accepted"
    run_jobs()  # now the deposit and its receipt
    seen = transfer_of(kit, transfer["id"])
    assert seen["status"] == "accepted" and seen["receipt"]["connector"] == "sae"
    assert seen["sae_identifiers"]["units"]["ID4"]["system_ids"] == ["aeaq1"]
