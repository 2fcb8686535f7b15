"""GED jobs run twice (a retry after a worker died, a message delivered again) have the effect of once."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

from ga_helpers import make_folder, new_document
from sqlalchemy import func, select, update

from ged import jobs, renditions
from ged.models import Document, Version
from socle.db import new_session, transaction, utcnow
from socle.models import AuditEntry, Job
from socle.storage import get_store

from conftest import Kit, make_pdf, run_jobs


def jobs_of(tenant_id: str, function: str) -> list[Job]:
    with new_session() as session:
        found = list(session.execute(select(Job).where(Job.tenant_id == tenant_id, Job.function == function)).scalars())
        for row in found:
            session.expunge(row)
        return found


def audits(tenant_id: str, action: str, object_id: str | None = None) -> int:
    with new_session() as session:
        query = select(func.count()).select_from(AuditEntry)
        query = query.where(AuditEntry.tenant_id == tenant_id, AuditEntry.action == action)
        if object_id is not None:
            query = query.where(AuditEntry.object_id == object_id)
        return int(session.execute(query).scalar_one())


def test_a_document_asked_twice_by_the_parapheur_is_sent_once(kit: Kit) -> None:
    document = new_document(kit, text="Arrêté à signer")
    arguments: dict[str, Any] = {
        "tenant_id": kit.tenant_id,
        "document_id": document["id"],
        "folder_id": "dossier-deux-fois",
        "username": "agent",
    }
    jobs.send_to_parapheur(**arguments)
    jobs.send_to_parapheur(**arguments)
    [answer] = jobs_of(kit.tenant_id, "parapheur.jobs.attach_document")
    assert answer.arguments["document_id"] == document["id"] and answer.arguments["version"] == 1


def test_a_signed_document_filed_again_after_its_folder_was_renamed_answers_the_first_filing(kit: Kit) -> None:
    """The parapheur's message delivered again once the plan changed: the folder named by the sous-type is looked
    for only when filing for the first time, so the second run finds the document instead of failing."""
    folder = make_folder(kit, "Délibérations")
    signed = get_store().put(io.BytesIO(make_pdf("Délibération (signée)")))
    arguments: dict[str, Any] = {
        "tenant_id": kit.tenant_id,
        "folder_id": "circuit-renomme",
        "object_key": signed.key,
        "size": signed.size,
        "filename": "deliberation-signee.pdf",
        "media_type": "application/pdf",
        "title": "Délibération",
        "document_type": "Délibération",
        "signatories": ["maire"],
        "signed_by": ["Dominique Dupont, Maire"],
        "ged_folder": "Délibérations",
    }
    jobs.file_signed_document(**arguments)
    renamed = kit["admin"].patch(f"/ged/plan/{folder['id']}", json={"name": "Délibérations 2026"})
    assert renamed.status_code == 200, renamed.text
    jobs.file_signed_document(**arguments)
    with new_session() as session:
        filed = session.execute(select(Version).where(Version.origin == "parapheur:circuit-renomme")).scalars().all()
        assert len(filed) == 1
        document = session.get(Document, filed[0].document_id)
        assert document is not None and document.folder_id == folder["id"]
    [answer] = jobs_of(kit.tenant_id, "parapheur.jobs.filed_in_ged")
    assert answer.arguments["document_id"] == str(filed[0].document_id)


def test_a_folder_selected_twice_is_exported_once_without_what_came_since(kit: Kit) -> None:
    folder = make_folder(kit, "Conseil municipal")
    first = new_document(kit, text="Délibération 1", folder_id=folder["id"], title="Délibération 1")
    body = {"archival_agency": "AD037", "folder_id": folder["id"]}
    created = kit["archiviste"].post("/archive/transfers", json=body)
    assert created.status_code == 202, created.text
    transfer_id = created.json()["id"]
    [select_job] = jobs_of(kit.tenant_id, "ged.jobs.select_for_archive")
    jobs.select_for_archive(**select_job.arguments)
    later = new_document(kit, text="Délibération 2", folder_id=folder["id"], title="Délibération 2")
    jobs.select_for_archive(**select_job.arguments)  # the job run again: the first answer stands
    run_jobs()
    [build] = jobs_of(kit.tenant_id, "archive.jobs.build_package")
    assert [d["document_id"] for d in build.arguments["documents"]] == [first["id"]]
    assert audits(kit.tenant_id, "ged.document.transferred", first["id"]) == 1
    assert audits(kit.tenant_id, "ged.document.transferred", later["id"]) == 0
    shown = kit["agent"].get(f"/ged/documents/{later['id']}").json()
    assert shown["disposal"] is None
    assert kit["archiviste"].get(f"/archive/transfers/{transfer_id}").json()["document_ids"] == [first["id"]]


def test_the_trash_purged_twice_is_purged_once(kit: Kit) -> None:
    document = new_document(kit, text="À jeter")
    assert kit["agent"].delete(f"/ged/documents/{document['id']}").status_code == 200
    with transaction() as session:
        session.execute(
            update(Document).where(Document.id == document["id"]).values(deleted_at=utcnow() - timedelta(days=45))
        )
    jobs.purge_trash(tenant_id=kit.tenant_id)
    jobs.purge_trash(tenant_id=kit.tenant_id)
    assert audits(kit.tenant_id, "ged.document.purged", document["id"]) == 1
    assert kit["agent"].get("/ged/trash").json()["total"] == 0


def test_the_ocr_run_twice_reads_once(kit: Kit) -> None:
    from test_renditions_jobs import scanned_pdf

    response = kit["agent"].post(
        "/ged/documents",
        files={"file": ("scan.pdf", scanned_pdf(), "application/pdf")},
        data={"title": "Courrier scanné", "document_type": "courrier"},
    )
    assert response.status_code == 201, response.text
    document_id = response.json()["id"]
    assert renditions.ocr_available()
    run_jobs()
    [ocr] = jobs_of(kit.tenant_id, "ged.jobs.ocr_text")
    with new_session() as session:
        before = session.execute(select(Version).where(Version.document_id == document_id)).scalar_one()
        state = (before.text_status, before.text_key)
    assert state[0] == "done" and state[1]
    jobs.ocr_text(**ocr.arguments)  # run again: the text is there, OCRmyPDF is not called
    with new_session() as session:
        after = session.execute(select(Version).where(Version.document_id == document_id)).scalar_one()
        assert (after.text_status, after.text_key) == state
