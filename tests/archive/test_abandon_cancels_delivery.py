"""Abandoning a transfer whose delivery failed cancels that delivery in interop (an operator can no longer
resume it); a delivery resumed just before the abandon and delivered anyway is audited on the transfer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from test_archive_abandon import abandon, audit_lines, request

from archive import jobs as archive_jobs
from interop.models import Delivery
from socle import messages, queue
from socle.db import new_session
from socle.models import Job
from socle.settings import get_settings

from conftest import Kit, assert_problem, make_pdf, run_jobs, upload_document

REASON = "Versement refait avec le bon profil"


def deposit_folder(kit: Kit) -> Path:
    return Path(get_settings().effective_deposit_root, kit.slug, "sae")


def failed_transfer(kit: Kit) -> dict[str, Any]:
    """A built transfer sent to a dépôt whose folder is a file: every try fails, the transfer is delivery_failed."""
    doc = upload_document(kit["agent"], make_pdf("Délibération"), title="Délibération")
    built = request(kit, [doc["id"]])
    connector = kit["admin"].post(
        "/interop/connectors", json={"name": "sae", "kind": "depot", "config": {"path": "sae"}}
    )
    assert connector.status_code == 201, connector.text
    deposit_folder(kit).parent.mkdir(parents=True, exist_ok=True)
    deposit_folder(kit).write_bytes(b"un fichier occupe la place du dossier")
    sent = kit["archiviste"].post(f"/archive/transfers/{built['id']}/send", json={"connector": "sae"})
    assert sent.status_code == 202, sent.text
    run_jobs()
    failed = kit["archiviste"].get(f"/archive/transfers/{built['id']}").json()
    assert failed["status"] == "delivery_failed", failed
    deposit_folder(kit).unlink()  # the cause is fixed: the delivery could be resumed now
    return dict(failed)


def delivery_of(kit: Kit, transfer_id: str) -> Delivery:
    with new_session() as session:
        query = select(Delivery).where(
            Delivery.tenant_id == kit.tenant_id, Delivery.idempotency_key == f"archive:{transfer_id}"
        )
        return session.execute(query).scalar_one()


def jobs_of(kit: Kit, message: messages.Message) -> list[Job]:
    with new_session() as session:
        query = select(Job).where(Job.tenant_id == kit.tenant_id, Job.function == message.function)
        return list(session.execute(query.order_by(Job.created_at)).scalars())


def delivered(kit: Kit, transfer_id: str) -> list[Any]:
    """The transfer's « delivered » audit lines (not « delivered_after_abandon »)."""
    lines = audit_lines(kit.tenant_id, transfer_id, "archive.transfer.delivered")
    return [line for line in lines if line[0] == "archive.transfer.delivered"]


def test_abandoning_after_a_failed_delivery_cancels_it_in_interop(kit: Kit) -> None:
    transfer = failed_transfer(kit)
    assert delivery_of(kit, transfer["id"]).status == "error"

    assert abandon(kit, transfer["id"], REASON).status_code == 200
    assert abandon(kit, transfer["id"], REASON).status_code == 200  # a retried request: one message
    [job] = jobs_of(kit, messages.INTEROP_CANCEL_DELIVERY)
    assert job.key == f"interop.cancel-delivery:{transfer['id']}"
    assert job.arguments == {
        "tenant_id": kit.tenant_id,
        "idempotency_key": f"archive:{transfer['id']}",
        "reason": REASON,
        "actor": "user:archiviste",
    }
    run_jobs()

    delivery = delivery_of(kit, transfer["id"])
    assert (delivery.status, delivery.error) == ("cancelled", REASON)
    [line] = audit_lines(kit.tenant_id, delivery.id, "interop.delivery.cancelled")
    assert line[1] == "user:archiviste" and line[2]["previous"] == "error"
    refused = assert_problem(kit["admin"].post(f"/interop/deliveries/{delivery.id}/resume"), 409)
    assert refused["detail"] == f"envoi annulé par le service d'archives : {REASON}"
    run_jobs()
    assert not deposit_folder(kit).exists()  # nothing reached the SAE
    after = kit["archiviste"].get(f"/archive/transfers/{transfer['id']}").json()
    assert (after["status"], after["receipt"]) == ("abandoned", None)


def test_abandoning_a_transfer_never_sent_tells_interop_nothing(kit: Kit) -> None:
    doc = upload_document(kit["agent"], make_pdf("Arrêté"), title="Arrêté")
    built = request(kit, [doc["id"]])
    assert abandon(kit, built["id"], REASON).status_code == 200
    assert jobs_of(kit, messages.INTEROP_CANCEL_DELIVERY) == []


def resume_then_abandon(kit: Kit) -> tuple[dict[str, Any], Delivery, Job, Job]:
    """The operator resumes the delivery, then the archivist abandons: two jobs queued, not run yet."""
    transfer = failed_transfer(kit)
    delivery = delivery_of(kit, transfer["id"])
    assert kit["admin"].post(f"/interop/deliveries/{delivery.id}/resume").status_code == 200
    assert abandon(kit, transfer["id"], REASON).status_code == 200
    [*_, deliver] = jobs_of(kit, messages.INTEROP_DELIVER)
    [cancel] = jobs_of(kit, messages.INTEROP_CANCEL_DELIVERY)
    assert deliver.key and deliver.key.startswith("interop.deliver-resume:")
    return transfer, delivery, deliver, cancel


def test_a_resumed_delivery_is_not_sent_when_the_cancel_comes_first(kit: Kit) -> None:
    transfer, _, _, cancel = resume_then_abandon(kit)

    assert queue.execute(cancel.id) == "done"
    run_jobs()  # the resumed deliver job, and the GED's

    assert delivery_of(kit, transfer["id"]).status == "cancelled"
    assert not deposit_folder(kit).exists()
    assert delivered(kit, transfer["id"]) == []


def test_a_delivery_that_went_through_before_the_cancel_is_audited_on_the_abandoned_transfer(kit: Kit) -> None:
    transfer, delivery, deliver, _ = resume_then_abandon(kit)

    assert queue.execute(deliver.id) == "done"  # the SAE gets the package before interop hears of the abandon
    run_jobs()  # record_delivery, then the cancel (too late)

    done = delivery_of(kit, transfer["id"])
    assert done.status == "done" and done.receipt
    assert (deposit_folder(kit) / f"{transfer['message_identifier']}.zip").is_file()
    after = kit["archiviste"].get(f"/archive/transfers/{transfer['id']}").json()
    assert (after["status"], after["error"], after["receipt"]) == ("abandoned", REASON, done.receipt)
    [line] = audit_lines(kit.tenant_id, transfer["id"], "archive.transfer.delivered_after_abandon")
    assert line[1] == "service:interop" and line[2]["receipt"] == done.receipt
    assert delivered(kit, transfer["id"]) == []
    [late] = audit_lines(kit.tenant_id, delivery.id, "interop.delivery.cancel_too_late")
    assert late[1] == "user:archiviste" and late[2]["note"] == "annulation tardive"

    # The success reply again (a retried job): audited once.
    archive_jobs.record_delivery(tenant_id=kit.tenant_id, transfer_id=transfer["id"], receipt={"autre": "reçu"})
    assert len(audit_lines(kit.tenant_id, transfer["id"], "archive.transfer.delivered_after_abandon")) == 1
    assert kit["archiviste"].get(f"/archive/transfers/{transfer['id']}").json()["receipt"] == done.receipt
