"""The external signer's invitation names who asks, for which collectivité, what, and until when the link opens.

An outside signer does not know the kit: a mail that only says « Vous êtes invité(e) à signer… » looks like
phishing. It must name the collectivité (as the signing page does), the agent who sent the folder, the
document, the link's end in Paris time, and say that nobody will ever ask for a password by mail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest
from parapheur_kit import act, desk, ok, sent_folder, typology
from signing_helpers import import_seal
from smtp import SmtpServer, kit_mailbox
from sqlalchemy import select
from testpki import TestPki

from parapheur.models import Step
from parapheur.notifications import Notice, notice_mail
from socle.db import new_session

from conftest import Kit, run_jobs

SIGNER = {"name": "Claude Lefèvre", "email": "claude.lefevre@exemple.fr"}
TITLE = "Convention de mise à disposition"
MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
          "novembre", "décembre")  # fmt: skip
NO_PASSWORD = "ne vous demandera jamais de mot de passe par courriel"


@pytest.fixture
def mailbox(use_env: Callable[..., None]) -> Iterator[SmtpServer]:
    with kit_mailbox(use_env) as server:
        yield server


def _paris(at: datetime) -> str:
    """``at`` (naive = UTC) as a Paris reader reads it: "15 décembre 2026 à 9 h 05"."""
    local = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(ZoneInfo("Europe/Paris"))
    day = "1er" if local.day == 1 else str(local.day)
    return f"{day} {MONTHS[local.month - 1]} {local.year} à {local.hour} h {local.minute:02d}"


def _parts(message: EmailMessage) -> tuple[str, str]:
    plain, html = message.get_body(preferencelist=("plain",)), message.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    return str(plain.get_content()), str(html.get_content())


def test_the_invitation_names_the_collectivite_the_sender_the_document_and_the_links_end(
    kit: Kit, pki: TestPki, mailbox: SmtpServer
) -> None:
    secretariat = desk(kit, "Secrétariat", ["agent"])
    circuit = [{"kind": "visa", "desk_ids": [secretariat]}, {"kind": "external_signature"}]
    subtype = typology(kit, circuit, name="Convention", seal_identity_id=import_seal(kit, pki))
    folder = sent_folder(kit, subtype, title=TITLE, external_signers=[SIGNER])
    ok(act(kit, "agent", folder["id"], "visa"))
    run_jobs()

    [received] = [m for m in mailbox.messages if SIGNER["email"] in m.rcpt_tos]
    text, html = _parts(received.message)
    with new_session() as session:
        step = session.execute(select(Step).where(Step.folder_id == folder["id"], Step.kind == "external_signature"))
        expires_at = step.scalar_one().token_expires_at
    assert expires_at is not None
    collectivite = f"Commune {kit.slug}"  # the tenant's name, as the signing page shows it
    invitation = f"Camille Martin ({collectivite}) vous invite à signer électroniquement le document « {TITLE} »."
    until = f"Il fonctionne jusqu'au {_paris(expires_at)} (heure de Paris)"
    for body in (text, html.replace("&#x27;", "'")):
        assert invitation in body
        assert until in body
        assert f"{collectivite} {NO_PASSWORD}" in body
    assert "/signature-externe/" in text


def test_the_links_end_is_given_in_paris_time_summer_and_winter() -> None:
    def mail_text(expires_at: datetime) -> str:
        notice = Notice(
            kind="external_signature",
            folder_id="f-1",
            folder_title=TITLE,
            at=datetime(2026, 7, 1, 8, 0, tzinfo=UTC),
            actor_name="Camille Martin",
            link="https://parapheur.mairie.test/signature-externe/secret",
            tenant_name="Commune de Saint-Martin",
            link_expires_at=expires_at,
        )
        return notice_mail(("claude.lefevre@exemple.fr",), notice).text

    summer = mail_text(datetime(2026, 7, 14, 22, 30, tzinfo=UTC))
    assert "jusqu'au 15 juillet 2026 à 0 h 30 (heure de Paris)" in summer  # UTC+2 crosses midnight
    winter = mail_text(datetime(2026, 12, 1, 8, 5))  # naive: UTC, as the kit stores it
    assert "jusqu'au 1er décembre 2026 à 9 h 05 (heure de Paris)" in winter
    assert "Camille Martin (Commune de Saint-Martin) vous invite à signer" in winter
    assert f"Commune de Saint-Martin {NO_PASSWORD}." in winter
