"""Archive jobs run twice (a retry after a worker died, a message delivered again) have the effect of once."""

from __future__ import annotations

from typing import Any

from archive_kit import sending_transfer
from sqlalchemy import func, select

from archive import jobs
from archive.models import Transfer
from socle.db import new_session
from socle.models import AuditEntry, Job

from conftest import Kit, make_pdf, run_jobs, upload_document


def audits(tenant_id: str, transfer_id: str, action: str) -> int:
    with new_session() as session:
        query = select(func.count()).select_from(AuditEntry).where(AuditEntry.tenant_id == tenant_id)
        query = query.where(AuditEntry.object_id == transfer_id, AuditEntry.action == action)
        return int(session.execute(query).scalar_one())


def jobs_of(tenant_id: str, function: str) -> list[Job]:
    with new_session() as session:
        rows = session.execute(select(Job).where(Job.tenant_id == tenant_id, Job.function == function)).scalars()
        found = list(rows)
        for row in found:
            session.expunge(row)
        return found


def transfer_of(transfer_id: str) -> Transfer:
    with new_session() as session:
        transfer = session.get(Transfer, transfer_id)
        assert transfer is not None
        session.expunge(transfer)
        return transfer


def asked(kit: Kit, document_ids: list[str]) -> str:
    body = {"archival_agency": "AD037", "document_ids": document_ids}
    created = kit["archiviste"].post("/archive/transfers", json=body)
    assert created.status_code == 202, created.text
    run_jobs()
    return str(created.json()["id"])


def test_a_package_built_twice_is_built_once(kit: Kit) -> None:
    document = upload_document(kit["agent"], make_pdf("Délibération à verser"))
    transfer_id = asked(kit, [document["id"]])
    built = transfer_of(transfer_id)
    assert built.status == "built", (built.status, built.error)
    [job] = jobs_of(kit.tenant_id, "archive.jobs.build_package")
    jobs.build_package(**job.arguments)  # the GED's export run again
    again = transfer_of(transfer_id)
    assert (again.status, again.sip_key, again.validation) == (built.status, built.sip_key, built.validation)
    assert audits(kit.tenant_id, transfer_id, "archive.transfer.built") == 1


def test_an_export_failure_told_twice_ends_the_transfer_once(kit: Kit) -> None:
    transfer_id = asked(kit, ["document-inconnu"])
    failed = transfer_of(transfer_id)
    assert failed.status == "error" and failed.error
    [job] = jobs_of(kit.tenant_id, "archive.jobs.export_failed")
    jobs.export_failed(**job.arguments)
    jobs.export_failed(**{**job.arguments, "reason": "une autre raison"})
    assert transfer_of(transfer_id).error == failed.error
    assert audits(kit.tenant_id, transfer_id, "archive.transfer.failed") == 1
    assert len(jobs_of(kit.tenant_id, "ged.jobs.transfer_ended")) == 1


def test_a_receipt_told_twice_is_kept_once(kit: Kit) -> None:
    transfer_id = sending_transfer(kit, "deux-fois")
    receipt: dict[str, Any] = {"connector": "depot", "sha256": "ab" * 32}
    jobs.record_delivery(tenant_id=kit.tenant_id, transfer_id=transfer_id, receipt=receipt)
    jobs.record_delivery(tenant_id=kit.tenant_id, transfer_id=transfer_id, receipt=receipt)
    jobs.delivery_failed(tenant_id=kit.tenant_id, transfer_id=transfer_id, reason="échec tardif")  # too late
    delivered = transfer_of(transfer_id)
    assert (delivered.status, delivered.receipt, delivered.error) == ("delivered", receipt, None)
    assert audits(kit.tenant_id, transfer_id, "archive.transfer.delivered") == 1
    assert audits(kit.tenant_id, transfer_id, "archive.transfer.delivery_failed") == 0


def test_a_delivery_failure_told_twice_is_recorded_once(kit: Kit) -> None:
    transfer_id = sending_transfer(kit, "deux-fois")
    jobs.delivery_failed(tenant_id=kit.tenant_id, transfer_id=transfer_id, reason="dépôt impossible")
    jobs.delivery_failed(tenant_id=kit.tenant_id, transfer_id=transfer_id, reason="dépôt impossible")
    failed = transfer_of(transfer_id)
    assert (failed.status, failed.error) == ("delivery_failed", "dépôt impossible")
    assert audits(kit.tenant_id, transfer_id, "archive.transfer.delivery_failed") == 1
