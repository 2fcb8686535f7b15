"""Parapheur jobs run twice (a retry after a worker died, a message delivered again) have the effect of once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from parapheur_kit import Standard, act, filing_into, folder_of, ged_folder, ok, sent_folder
from signing_helpers import set_email
from smtp import SmtpServer, kit_mailbox
from sqlalchemy import func, select

from parapheur import jobs
from parapheur.models import FolderDocument, FolderEvent
from socle.db import new_session
from socle.models import AuditEntry, Job

from conftest import Kit, make_pdf, run_jobs, upload_document

MAIRE = "dominique.dupont@mairie.test"


@pytest.fixture
def mailbox(use_env: Callable[..., None]) -> Iterator[SmtpServer]:
    with kit_mailbox(use_env) as server:
        yield server


def job_arguments(tenant_id: str, function: str, **match: Any) -> list[dict[str, Any]]:
    with new_session() as session:
        rows = session.execute(select(Job).where(Job.tenant_id == tenant_id, Job.function == function)).scalars()
        found = [dict(row.arguments) for row in rows]
    return [arguments for arguments in found if all(arguments.get(k) == v for k, v in match.items())]


def count_audit(tenant_id: str, action: str, object_id: str) -> int:
    with new_session() as session:
        query = select(func.count()).select_from(AuditEntry)
        query = query.where(AuditEntry.tenant_id == tenant_id, AuditEntry.action == action)
        return int(session.execute(query.where(AuditEntry.object_id == object_id)).scalar_one())


def events(folder_id: str, action: str) -> int:
    with new_session() as session:
        query = select(func.count()).select_from(FolderEvent)
        return int(
            session.execute(query.where(FolderEvent.folder_id == folder_id, FolderEvent.action == action)).scalar_one()
        )


def test_the_ged_document_attached_twice_is_attached_once(kit: Kit) -> None:
    setup = Standard(kit)
    _, folder_id = ged_folder(kit, setup.sign_only, make_pdf("Arrêté"))
    [arguments] = job_arguments(kit.tenant_id, "parapheur.jobs.attach_document", folder_id=folder_id)
    folder = folder_of(kit, folder_id)
    assert folder["status"] == "in_progress"
    jobs.attach_document(**arguments)  # the GED's answer run again
    run_jobs()
    again = folder_of(kit, folder_id)
    assert (again["status"], again["current_step"], len(again["documents"])) == ("in_progress", 0, 1)
    with new_session() as session:
        rows = session.execute(
            select(func.count()).select_from(FolderDocument).where(FolderDocument.folder_id == folder_id)
        )
        assert rows.scalar_one() == 1
    assert events(folder_id, "sent") == 1


def test_a_missing_document_told_twice_is_recorded_once(kit: Kit) -> None:
    setup = Standard(kit)
    document = upload_document(kit["agent"], make_pdf("Arrêté"))
    body = {"subtype_id": setup.sign_only, "title": "Arrêté", "ged_document_id": document["id"], "send": True}
    folder_id = ok(kit["agent"].post("/parapheur/folders", json=body), 202)["id"]
    # In the trash before the GED answers the parapheur.
    assert kit["agent"].delete(f"/ged/documents/{document['id']}").status_code == 200
    run_jobs()
    assert folder_of(kit, folder_id)["status"] == "error"
    [arguments] = job_arguments(kit.tenant_id, "parapheur.jobs.document_unavailable", folder_id=folder_id)
    jobs.document_unavailable(**arguments)
    jobs.document_unavailable(**{**arguments, "reason": "une autre raison, plus tard"})
    assert folder_of(kit, folder_id)["error"] == arguments["reason"]
    assert events(folder_id, "document_unavailable") == 1
    assert count_audit(kit.tenant_id, "parapheur.folder.document_unavailable", folder_id) == 1


def test_filed_in_the_ged_told_twice_is_recorded_once(kit: Kit) -> None:
    setup = Standard(kit)
    filing_into(kit, setup.sign_only)
    folder = sent_folder(kit, setup.sign_only, title="Arrêté de voirie", ged_filing="true")
    assert act(kit, "maire", folder["id"], "sign").status_code == 200
    run_jobs()
    [arguments] = job_arguments(kit.tenant_id, "parapheur.jobs.filed_in_ged", folder_id=folder["id"])
    jobs.filed_in_ged(**arguments)
    jobs.filed_in_ged(**arguments)
    assert folder_of(kit, folder["id"])["ged_document_id"] == arguments["document_id"]
    assert events(folder["id"], "filed_in_ged") == 1
    assert count_audit(kit.tenant_id, "parapheur.folder.filed_in_ged", folder["id"]) == 1


def test_a_notice_sent_twice_is_mailed_once(kit: Kit, mailbox: SmtpServer) -> None:
    set_email(kit, "maire", MAIRE)
    setup = Standard(kit)
    folder = sent_folder(kit, setup.sign_only, title="Arrêté à signer")
    run_jobs()
    assert len([m for m in mailbox.messages if MAIRE in m.rcpt_tos]) == 1
    [arguments] = job_arguments(kit.tenant_id, "parapheur.jobs.send_notice", recipient="maire")
    assert arguments["notice"]["folder_id"] == folder["id"]
    # The worker died after the mail went, before the queue recorded the job done: it runs again.
    jobs.send_notice(**arguments)
    jobs.send_notice(**arguments)
    assert len([m for m in mailbox.messages if MAIRE in m.rcpt_tos]) == 1
