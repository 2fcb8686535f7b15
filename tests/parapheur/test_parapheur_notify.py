"""Notifications through a real SMTP server: to act, delegates, completed, rejected, digests, late, retries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from email.message import EmailMessage

import pytest
from click.testing import CliRunner
from parapheur_kit import Standard, act, ok, sent_folder
from signing_helpers import set_email
from smtp import SmtpServer, free_port, kit_mailbox
from sqlalchemy import select, update

from parapheur import jobs
from parapheur.cli import group
from parapheur.models import Folder, PendingNotice
from socle.db import new_session, transaction, utcnow
from socle.models import Job

from conftest import Kit, assert_problem, run_jobs

ADDRESSES = {"agent": "camille.martin@mairie.test", "maire": "dominique.dupont@mairie.test"}


@pytest.fixture
def smtp_env(use_env: Callable[..., None]) -> Iterator[tuple[SmtpServer, Callable[..., None]]]:
    with kit_mailbox(use_env) as server:
        yield server, use_env


@pytest.fixture
def mailbox(smtp_env: tuple[SmtpServer, Callable[..., None]]) -> SmtpServer:
    return smtp_env[0]


def with_addresses(kit: Kit) -> Kit:
    for username, address in ADDRESSES.items():
        set_email(kit, username, address)
    return kit


def mails_to(server: SmtpServer, username: str) -> list[EmailMessage]:
    return [m.message for m in server.messages if ADDRESSES[username] in m.rcpt_tos]


def text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def test_each_step_notifies_its_desk_and_the_end_notifies_the_creator(kit: Kit, mailbox: SmtpServer) -> None:
    with_addresses(kit)
    setup = Standard(kit)
    folder = sent_folder(kit, setup.visa_then_sign, title="Délibération sur les tarifs")
    run_jobs()
    (to_agent,) = mails_to(mailbox, "agent")
    assert "Dossier à traiter : Délibération sur les tarifs" in to_agent["Subject"]
    assert "Secrétariat" in text(to_agent)
    assert mails_to(mailbox, "maire") == []

    ok(act(kit, "agent", folder["id"], "visa"))
    run_jobs()
    (to_maire,) = mails_to(mailbox, "maire")
    assert "Dossier à traiter" in to_maire["Subject"]

    ok(act(kit, "maire", folder["id"], "sign"))
    run_jobs()
    completed = [m for m in mails_to(mailbox, "agent") if "terminé" in m["Subject"]]
    assert len(completed) == 1 and "Dominique Dupont" in text(completed[0])


def test_a_rejection_tells_the_creator_why(kit: Kit, mailbox: SmtpServer) -> None:
    with_addresses(kit)
    setup = Standard(kit)
    folder = sent_folder(kit, setup.sign_only, title="Arrêté de voirie")
    ok(act(kit, "maire", folder["id"], "reject", {"reason": "Le plan manque"}))
    run_jobs()
    rejected = [m for m in mails_to(mailbox, "agent") if "rejeté" in m["Subject"]]
    assert len(rejected) == 1 and "Le plan manque" in text(rejected[0])


def test_the_delegate_desk_hears_of_a_folder_for_the_desk_it_replaces(kit: Kit, mailbox: SmtpServer) -> None:
    with_addresses(kit)
    setup = Standard(kit)
    now = utcnow()
    delegation = {
        "from_desk_id": setup.maire,
        "to_desk_id": setup.secretariat,
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=3)).isoformat(),
    }
    ok(kit["admin"].post("/parapheur/delegations", json=delegation), 201)
    sent_folder(kit, setup.sign_only, title="Arrêté d'alignement")
    run_jobs()
    assert len(mails_to(mailbox, "maire")) == 1
    (to_agent,) = mails_to(mailbox, "agent")
    assert "en l'absence du bureau « Maire »" in text(to_agent)


def test_digest_preference_keeps_notices_for_one_digest_mail(kit: Kit, mailbox: SmtpServer) -> None:
    with_addresses(kit)
    setup = Standard(kit)
    assert ok(kit["maire"].get("/parapheur/notifications/preferences")) == {"mode": "immediate"}
    assert ok(kit["maire"].put("/parapheur/notifications/preferences", json={"mode": "digest"})) == {"mode": "digest"}
    assert_problem(kit["maire"].put("/parapheur/notifications/preferences", json={"mode": "pigeon"}), 422)
    for n in range(2):
        sent_folder(kit, setup.sign_only, title=f"Arrêté n° {n}")
    run_jobs()
    assert mails_to(mailbox, "maire") == []
    with new_session() as session:
        pending = session.execute(select(PendingNotice).where(PendingNotice.tenant_id == kit.tenant_id)).scalars()
        assert sorted(n.kind for n in pending if n.username == "maire") == ["to_act", "to_act"]

    runner = CliRunner()
    result = runner.invoke(group, ["digest", "--tenant", kit.slug])
    assert result.exit_code == 0, result.output
    assert "1 récapitulatif(s) envoyé(s)" in result.output
    (digest,) = mails_to(mailbox, "maire")
    assert "Arrêté n° 0" in text(digest) and "Arrêté n° 1" in text(digest)
    again = runner.invoke(group, ["digest", "--tenant", kit.slug])
    assert "0 récapitulatif(s) envoyé(s)" in again.output and len(mails_to(mailbox, "maire")) == 1
    jobs.send_digests(tenant_id=kit.tenant_id)  # the job does the same, and sends nothing twice either
    assert len(mails_to(mailbox, "maire")) == 1


def test_none_preference_sends_nothing(kit: Kit, mailbox: SmtpServer) -> None:
    with_addresses(kit)
    setup = Standard(kit)
    ok(kit["maire"].put("/parapheur/notifications/preferences", json={"mode": "none"}))
    sent_folder(kit, setup.sign_only)
    run_jobs()
    assert mails_to(mailbox, "maire") == []


def test_late_folders_are_announced_once_a_day(kit: Kit, mailbox: SmtpServer) -> None:
    with_addresses(kit)
    setup = Standard(kit)
    folder = sent_folder(kit, setup.sign_only, title="Arrêté urgent")
    run_jobs()
    with transaction() as session:
        session.execute(
            update(Folder).where(Folder.id == folder["id"]).values(due_date=utcnow().date() - timedelta(days=2))
        )
    runner = CliRunner()
    assert runner.invoke(group, ["late", "--tenant", kit.slug]).exit_code == 0
    run_jobs()
    late = [m for m in mails_to(mailbox, "maire") if "retard" in m["Subject"]]
    assert len(late) == 1 and "Arrêté urgent" in text(late[0])
    assert runner.invoke(group, ["late", "--tenant", kit.slug]).exit_code == 0
    run_jobs()
    assert len([m for m in mails_to(mailbox, "maire") if "retard" in m["Subject"]]) == 1


def test_a_notice_is_retried_while_the_smtp_server_is_down(
    kit: Kit, smtp_env: tuple[SmtpServer, Callable[..., None]]
) -> None:
    server, use_env = smtp_env
    with_addresses(kit)
    setup = Standard(kit)
    use_env(SOCLE_SMTP_PORT=str(free_port()), SOCLE_JOB_BACKOFF="3600")  # nothing listens there
    sent_folder(kit, setup.sign_only, title="Arrêté du lundi")
    run_jobs()
    with new_session() as session:
        (job,) = [
            j
            for j in session.execute(select(Job).where(Job.function == "parapheur.jobs.send_notice")).scalars()
            if j.arguments["recipient"] == "maire" and j.tenant_id == kit.tenant_id
        ]
    assert job.status == "pending" and job.attempts == 1
    use_env(SOCLE_SMTP_PORT=str(server.port))
    with transaction() as session:
        session.execute(update(Job).where(Job.id == job.id).values(next_run_at=utcnow()))
    run_jobs()
    assert len(mails_to(server, "maire")) == 1


def test_the_mail_links_to_the_folders_page(kit: Kit, mailbox: SmtpServer, use_env: Callable[..., None]) -> None:
    use_env(SOCLE_PUBLIC_URL="https://parapheur.mairie.test")
    with_addresses(kit)
    setup = Standard(kit)
    folder = sent_folder(kit, setup.visa_then_sign, title="Délibération sur les tarifs")
    run_jobs()
    (to_agent,) = mails_to(mailbox, "agent")
    # The page a person opens, signed in or after signing in; not the API's JSON.
    assert f"https://parapheur.mairie.test/dossiers/{folder['id']}" in text(to_agent)
    assert "/parapheur/folders/" not in text(to_agent)
