"""A signed document the GED could not file (its sous-type names a folder missing from the plan): the folder's page
says it failed, why and what to do; its creator or an administrator asks again from the page once the plan or the
sous-type is corrected, and the GED files it once. The page also gives the signed copy's size, not the original's."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from fastapi.testclient import TestClient
from parapheur_kit import Standard, act, folder_of, ok, sent_folder
from sqlalchemy import select
from ui_kit import csrf_of, sign_in

from parapheur.jobs import ged_filing_failed
from parapheur.models import Folder, FolderDocument
from socle import queue
from socle.auth import create_user, get_tenant
from socle.db import transaction
from socle.models import AuditEntry, Job
from socle.storage import get_store
from socle.ui.rendering import _format_size

from conftest import Kit, make_pdf, run_jobs, ui_password_hash

FAILED = "Classement du document signé dans la GED impossible : dossier « Actes signés » introuvable dans le plan"
TO_DO = (
    "Créez le dossier « Actes signés » dans le plan de classement de la GED, ou corrigez le sous-type, puis relancez "
    "le classement."
)
UNDER_WAY = "Classement du document signé dans la GED en cours"
RETRY = "Relancer le classement dans la GED"


def _failed_filing(kit: Kit) -> tuple[Standard, str]:
    """A folder signed and completed, whose sous-type files in « Actes signés », not in the GED's plan."""
    setup = Standard(kit)
    ok(kit["admin"].patch(f"/parapheur/subtypes/{setup.sign_only}", json={"ged_folder": "Actes signés"}))
    folder = sent_folder(kit, setup.sign_only, title="Arrêté de voirie", ged_filing="true")
    ok(act(kit, "maire", folder["id"], "sign"))
    run_jobs()
    assert folder_of(kit, folder["id"])["ged_document_id"] is None
    return setup, str(folder["id"])


def _page(client: TestClient, folder_id: str) -> str:
    page = client.get(f"/dossiers/{folder_id}")
    assert page.status_code == 200, page.text
    return " ".join(unescape(page.text).split())


def _buttons(html: str) -> list[str]:
    return re.findall(r'<button type="submit"[^>]*>([^<]+)</button>', html.split("<main")[1])


def _retry(client: TestClient, folder_id: str) -> Any:
    token = csrf_of(client.get(f"/dossiers/{folder_id}").text)
    return client.post(f"/dossiers/{folder_id}/relancer-classement", data={"csrf": token})


def _history(kit: Kit, folder_id: str) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = ok(kit["agent"].get(f"/parapheur/folders/{folder_id}/history"))
    return [event for event in history if event["action"] == "ged_filing_failed"]


def _ged_documents(kit: Kit) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ok(kit["admin"].get("/ged/documents"))["items"]
    return items


def test_the_page_says_the_filing_failed_why_and_what_to_do_in_french(app: Any, kit: Kit) -> None:
    _setup, folder_id = _failed_filing(kit)
    html = _page(sign_in(app, kit, "agent"), folder_id)
    assert FAILED in html and TO_DO in html
    assert UNDER_WAY not in html
    assert RETRY in _buttons(html)  # the folder's creator may ask again
    # Neither the page nor the history names the kernel's job: the GED's reason, in French.
    failed = _history(kit, folder_id)
    assert [event["comment"] for event in failed] == ["dossier « Actes signés » introuvable dans le plan de classement"]
    assert "ged.jobs" not in html and "échec définitif" not in html


def test_an_administrator_asks_again_once_the_folder_exists_and_the_ged_files_it_once(app: Any, kit: Kit) -> None:
    _setup, folder_id = _failed_filing(kit)
    admin = sign_in(app, kit, "admin")
    assert RETRY in _buttons(_page(admin, folder_id))
    plan_folder = ok(kit["admin"].post("/ged/plan", json={"name": "Actes signés", "parent_id": None}), 201)["id"]

    answer = _retry(admin, folder_id)
    assert answer.status_code == 303, answer.text
    html = _page(admin, folder_id)
    assert UNDER_WAY in html and FAILED not in html and RETRY not in _buttons(html)
    assert "Classement dans la GED relancé." in html

    run_jobs()
    document_id = folder_of(kit, folder_id)["ged_document_id"]
    assert document_id
    assert ok(kit["admin"].get(f"/ged/documents/{document_id}"))["folder_id"] == plan_folder
    assert [document["id"] for document in _ged_documents(kit)] == [document_id]
    html = _page(admin, folder_id)
    assert f'<a href="/documents/{document_id}">Document signé classé dans la GED</a>' in html
    assert UNDER_WAY not in html and FAILED not in html
    # Asked again now, it is refused: filed once.
    assert _retry(admin, folder_id).status_code == 409
    run_jobs()
    assert len(_ged_documents(kit)) == 1
    with transaction() as session:
        retried = session.execute(
            select(AuditEntry).where(
                AuditEntry.tenant_id == kit.tenant_id, AuditEntry.action == "parapheur.folder.ged_filing_retried"
            )
        ).scalar_one()
        assert retried.actor == "user:admin" and retried.object_id == folder_id
        assert retried.details["ged_folder"] == "Actes signés"


def test_the_creator_asks_again_after_the_sous_type_is_corrected(app: Any, kit: Kit) -> None:
    setup, folder_id = _failed_filing(kit)
    plan_folder = ok(kit["admin"].post("/ged/plan", json={"name": "Voirie", "parent_id": None}), 201)["id"]
    ok(kit["admin"].patch(f"/parapheur/subtypes/{setup.sign_only}", json={"ged_folder": "Voirie"}))
    agent = sign_in(app, kit, "agent")
    assert "Créez le dossier « Voirie » dans le plan de classement" in _page(agent, folder_id)
    assert _retry(agent, folder_id).status_code == 303
    run_jobs()
    document_id = folder_of(kit, folder_id)["ged_document_id"]
    assert document_id and ok(kit["admin"].get(f"/ged/documents/{document_id}"))["folder_id"] == plan_folder


def test_a_retry_that_fails_again_is_told_again(app: Any, kit: Kit) -> None:
    _setup, folder_id = _failed_filing(kit)
    agent = sign_in(app, kit, "agent")
    assert _retry(agent, folder_id).status_code == 303
    run_jobs()  # the plan was not corrected: the GED refuses again
    html = _page(agent, folder_id)
    assert FAILED in html and UNDER_WAY not in html and RETRY in _buttons(html)
    assert len(_history(kit, folder_id)) == 2
    assert _ged_documents(kit) == []


def _operator_retry(folder_id: str) -> None:
    """What an operator does from the command line (``socle jobs retry <id>``): the filing job runs again,
    without the folder's page being asked."""
    with transaction() as session:
        job_id = session.execute(select(Job.id).where(Job.key == f"ged.file:{folder_id}")).scalar_one()
        queue.retry(session, job_id)


def test_a_filing_that_succeeds_after_an_operator_s_retry_no_longer_shows_the_failure(app: Any, kit: Kit) -> None:
    _setup, folder_id = _failed_filing(kit)
    ok(kit["admin"].post("/ged/plan", json={"name": "Actes signés", "parent_id": None}), 201)
    _operator_retry(folder_id)
    run_jobs()
    document_id = folder_of(kit, folder_id)["ged_document_id"]
    assert document_id
    with transaction() as session:
        folder = session.get(Folder, folder_id)
        assert folder is not None and folder.ged_filing_error is None  # the failure is over, not kept
    admin = sign_in(app, kit, "admin")
    html = _page(admin, folder_id)
    assert f'<a href="/documents/{document_id}">Document signé classé dans la GED</a>' in html
    assert FAILED not in html and RETRY not in _buttons(html)
    assert _retry(admin, folder_id).status_code == 409  # filed: nothing to ask again


def test_a_new_failure_after_an_operator_s_retry_is_told_again_and_a_repeated_notice_once(app: Any, kit: Kit) -> None:
    _setup, folder_id = _failed_filing(kit)
    _operator_retry(folder_id)
    run_jobs()  # the plan was not corrected: the GED refuses again, for the same reason
    failed = _history(kit, folder_id)
    assert [event["comment"] for event in failed] == [
        "dossier « Actes signés » introuvable dans le plan de classement"
    ] * 2
    with transaction() as session:
        told = session.execute(
            select(AuditEntry).where(
                AuditEntry.object_id == folder_id, AuditEntry.action == "parapheur.folder.ged_filing_failed"
            )
        ).all()
        assert len(told) == 2
    # The second failure's notice delivered once more (a worker that stopped before saying it was done): told once.
    reason = (
        "échec définitif de la tâche ged.jobs.file_signed_document après 2 essai(s) : "
        "dossier « Actes signés » introuvable dans le plan de classement"
    )
    ged_filing_failed(tenant_id=kit.tenant_id, folder_id=folder_id, reason=reason)
    assert len(_history(kit, folder_id)) == 2
    html = _page(sign_in(app, kit, "agent"), folder_id)
    assert FAILED in html and RETRY in _buttons(html)


def test_only_its_creator_and_administrators_may_ask_again(app: Any, kit: Kit) -> None:
    _setup, folder_id = _failed_filing(kit)
    ok(kit["admin"].post("/ged/plan", json={"name": "Actes signés", "parent_id": None}), 201)
    # The mayor signed it and sees the folder, failure included, but may not ask again: 403.
    mayor = sign_in(app, kit, "maire")
    html = _page(mayor, folder_id)
    assert FAILED in html and RETRY not in _buttons(html)
    refused = _retry(mayor, folder_id)
    assert refused.status_code == 403
    assert "seul le créateur du dossier ou un administrateur peut relancer le classement" in unescape(refused.text)
    # An agent outside the circuit is told the folder does not exist: 404.
    with transaction() as session:
        outsider = create_user(session, get_tenant(session, kit.slug), "voisin", "Voisin", ["agent"])
        outsider.password_hash = ui_password_hash()
    stranger = sign_in(app, kit, "voisin")
    token = csrf_of(stranger.get("/bureau").text)
    assert stranger.post(f"/dossiers/{folder_id}/relancer-classement", data={"csrf": token}).status_code == 404
    run_jobs()
    assert folder_of(kit, folder_id)["ged_document_id"] is None and _ged_documents(kit) == []
    assert FAILED in _page(sign_in(app, kit, "agent"), folder_id)


def test_the_page_gives_the_signed_copy_s_size(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    files = [("budget.pdf", make_pdf("Budget", pages=1), "application/pdf")]
    folder = sent_folder(kit, setup.sign_only, title="Budget", files=files)
    ok(act(kit, "maire", folder["id"], "sign"))
    run_jobs()
    with transaction() as session:
        document = session.execute(select(FolderDocument).where(FolderDocument.folder_id == folder["id"])).scalar_one()
        original, signed_key = document.size, document.signed_key
    assert signed_key
    signed = get_store().size(signed_key)
    assert signed > original + 1024  # a signature adds kilobytes: both sizes cannot show the same

    html = _page(sign_in(app, kit, "agent"), folder["id"])
    shown = re.search(r"\(version signée\) — (\S+ (?:o|Kio|Mio))", html)
    assert shown, html
    assert shown.group(1) == _french_size(signed) != _french_size(original)


def _french_size(size: int) -> str:
    """As the page's filter shows it, its no-break space read as the page is (whitespace collapsed)."""
    return " ".join(_format_size(size, "fr").split())


def test_a_folder_that_failed_before_the_upgrade_shows_its_cause(old_database_url: str) -> None:
    """par0009 gives the folders whose filing failed before it the cause their history told (the kernel's job
    name taken off), so that their page offers the retry; a folder filed or not asked keeps none."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from socle.migrating import alembic_config, upgrade_all

    upgrade_all(old_database_url)
    command.downgrade(alembic_config("parapheur", old_database_url), "par0008")
    engine = create_engine(old_database_url)
    failed, filed = "f-failed-0000-0000-0000-000000000000", "f-filed-00000-0000-0000-000000000000"
    with engine.begin() as connection:
        for folder_id, document_id in ((failed, None), (filed, "d-1")):
            connection.execute(
                text(
                    "INSERT INTO parapheur_folders (id, tenant_id, title, status, source, signature_format, "
                    "signature_level, ged_document_id, ged_filing, metadata, current_step, created_by, created_at, "
                    "updated_at) VALUES (:id, 't', 'Arrêté', 'completed', 'upload', 'pades', 'B-B', :document, "
                    ":filing, '{}', 0, 'agent', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"id": folder_id, "document": document_id, "filing": True},
            )
            connection.execute(
                text(
                    "INSERT INTO parapheur_events (tenant_id, folder_id, at, actor, actor_name, action, comment, "
                    "details) VALUES ('t', :id, CURRENT_TIMESTAMP, 'service:ged', 'GED', 'ged_filing_failed', "
                    ":comment, '{}')"
                ),
                {
                    "id": folder_id,
                    "comment": "échec définitif de la tâche ged.jobs.file_signed_document après 1 essai(s) : "
                    "dossier « Actes signés » introuvable dans le plan de classement",
                },
            )
    command.upgrade(alembic_config("parapheur", old_database_url), "head")
    with engine.connect() as connection:
        kept = dict(
            connection.execute(
                text("SELECT id, ged_filing_error FROM parapheur_folders WHERE id IN (:a, :b)"),
                {"a": failed, "b": filed},
            ).all()
        )
    engine.dispose()
    assert kept == {failed: "dossier « Actes signés » introuvable dans le plan de classement", filed: None}
