"""The delegate's mail says whom it replaces in a sentence of its own, without quotes inside quotes.

It used to read « Commentaire : « Vous le recevez par délégation, en l'absence du bureau « Maire ». » ».
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
from parapheur_kit import Standard, ok, sent_folder
from signing_helpers import set_email
from smtp import SmtpServer, kit_mailbox

from parapheur.notifications import Notice, digest_mail
from socle.db import utcnow

from conftest import Kit, run_jobs

DELEGATE = "camille.martin@mairie.test"


@pytest.fixture
def mailbox(use_env: Callable[..., None]) -> Iterator[SmtpServer]:
    with kit_mailbox(use_env) as server:
        yield server


def quote_depth(text: str) -> int:
    """How deep « » quotes nest in ``text`` (1: quotes, none inside); they must also close."""
    depth = deepest = 0
    for char in text:
        if char == "«":
            depth += 1
            deepest = max(deepest, depth)
        elif char == "»":
            depth -= 1
            assert depth >= 0, text
    assert depth == 0, text
    return deepest


def _parts(message: EmailMessage) -> tuple[str, str]:
    plain, html = message.get_body(preferencelist=("plain",)), message.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    return str(plain.get_content()), str(html.get_content())


def test_the_delegate_is_told_whom_it_replaces_without_nested_quotes(kit: Kit, mailbox: SmtpServer) -> None:
    set_email(kit, "agent", DELEGATE)
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

    [received] = [m for m in mailbox.messages if DELEGATE in m.rcpt_tos]
    text, html = _parts(received.message)
    assert "Vous le recevez par délégation, en l'absence du bureau « Maire »." in text
    assert "Commentaire" not in text
    assert quote_depth(text) == 1 and quote_depth(html) == 1


def test_a_digest_line_says_by_delegation_without_nested_quotes() -> None:
    notice = Notice(
        kind="to_act",
        folder_id="f-1",
        folder_title="Arrêté d'alignement",
        at=datetime(2026, 12, 1, 8, 5, tzinfo=UTC),
        desk_name="Maire",
        delegated=True,
    )
    mail = digest_mail(("camille.martin@mairie.test",), [notice])
    assert "« Arrêté d'alignement » — bureau « Maire » (par délégation)" in mail.text
    assert mail.html is not None
    assert quote_depth(mail.text) == 1 and quote_depth(mail.html) == 1


def test_the_mail_to_act_names_what_the_step_awaits(kit: Kit, mailbox: SmtpServer) -> None:
    """« attend votre signature » for a signature step, not « votre visa ou votre signature »."""
    set_email(kit, "maire", "maire@mairie.test")
    setup = Standard(kit)
    sent_folder(kit, setup.sign_only, title="Arrêté d'alignement")
    run_jobs()
    [received] = [m for m in mailbox.messages if "maire@mairie.test" in m.rcpt_tos]
    text, _ = _parts(received.message)
    assert "attend votre signature sur le bureau « Maire »." in text and "visa" not in text, text
