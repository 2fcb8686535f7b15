"""Notification mails: the words of each kind, delegation, local time, the digest, and one real delivery."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import get_args

import pytest
from smtp import smtp_server

from parapheur.notifications import Notice, NoticeKind, digest_mail, notice_mail
from socle.mail import build_message, send

TO = ("elu@demo.example.fr",)
LINK = "https://parapheur.demo.example.fr/dossiers/f-42"
# 08:05 UTC is 9 h 05 in Paris in December.
AT = datetime(2026, 12, 1, 8, 5, tzinfo=UTC)


def _notice(kind: str, **fields: object) -> Notice:
    values: dict[str, object] = {
        "kind": kind,
        "folder_id": "f-42",
        "folder_title": "Délibération n° 2026-042 : budget primitif",
        "at": AT,
        "actor_name": "Camille Martin",
        "desk_name": "Bureau du maire",
        "comment": "Voir l'annexe 2",
        "due_date": date(2026, 12, 15),
        "link": LINK,
    }
    values.update(fields)
    return Notice(**values)  # type: ignore[arg-type]


# For each kind: what the subject announces, and what the reader is told to do (or that nothing is expected).
EXPECTED = {
    "to_act": ("Dossier à traiter", "Merci de le traiter au plus tard le 15 décembre 2026."),
    "acted": ("Le dossier a avancé", "aucune action n'est attendue de votre part"),
    "rejected": ("Dossier rejeté", "Motif : « Voir l'annexe 2 »"),
    "completed": ("Dossier terminé", "toutes les étapes sont faites"),
    "late": ("Dossier en retard", "devait être traité au plus tard le 15 décembre 2026"),
    "external_signature": ("Signature demandée", "Merci de le signer au plus tard le 15 décembre 2026."),
    "opinion_requested": ("Avis demandé", "Question : « Voir l'annexe 2 »"),
}


def test_every_kind_has_its_words() -> None:
    assert set(EXPECTED) == set(get_args(NoticeKind))


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_notice_mail_says_which_folder_what_to_do_and_where(kind: str) -> None:
    mail = notice_mail(TO, _notice(kind))
    subject, duty = EXPECTED[kind]
    assert mail.to == TO
    assert mail.subject == f"[Parapheur] {subject} : Délibération n° 2026-042 : budget primitif"
    assert "« Délibération n° 2026-042 : budget primitif »" in mail.text
    assert duty in mail.text
    assert LINK in mail.text
    assert mail.html is not None and f'href="{LINK}"' in mail.html and 'lang="fr"' in mail.html
    assert "absence" not in mail.text  # not acted under delegation
    build_message(mail, "parapheur@demo.example.fr")  # a valid MIME message


@pytest.mark.parametrize(
    "kind", ["to_act", "acted", "rejected", "completed", "external_signature", "opinion_requested"]
)
def test_delegation_is_said(kind: str) -> None:
    mail = notice_mail(TO, _notice(kind, on_behalf_of="Dominique Dupont"))
    assert "Camille Martin (en l'absence de Dominique Dupont)" in mail.text
    assert mail.html is not None and "Camille Martin (en l&#x27;absence de Dominique Dupont)" in mail.html


def test_acted_names_who_when_and_where() -> None:
    text = notice_mail(TO, _notice("acted", on_behalf_of="Dominique Dupont")).text
    assert (
        "a été traité sur le bureau « Bureau du maire » le 1er décembre 2026 à 9 h 05 "
        "par Camille Martin (en l'absence de Dominique Dupont)." in text
    )


def test_times_are_local_and_naive_ones_are_utc() -> None:
    summer = notice_mail(TO, _notice("acted", at=datetime(2026, 7, 14, 22, 30, tzinfo=UTC))).text
    assert "le 15 juillet 2026 à 0 h 30" in summer  # UTC+2 crosses midnight
    naive = notice_mail(TO, _notice("acted", at=datetime(2026, 12, 1, 8, 5))).text
    assert "le 1er décembre 2026 à 9 h 05" in naive
    reunion = notice_mail(TO, _notice("acted"), timezone="Indian/Reunion").text
    assert "le 1er décembre 2026 à 12 h 05" in reunion


def test_rejection_without_reason_and_act_without_due_date() -> None:
    rejected = notice_mail(TO, _notice("rejected", comment=None)).text
    assert "Aucun motif n'a été donné." in rejected
    to_act = notice_mail(TO, _notice("to_act", due_date=None, link=None)).text
    assert "Merci de le traiter." in to_act and "au plus tard" not in to_act and "http" not in to_act


def test_hostile_title_is_one_line_and_escaped() -> None:
    mail = notice_mail(TO, _notice("to_act", folder_title="Marché <b>travaux</b> &\r\nBcc: x@y.fr"))
    assert "\n" not in mail.subject and "\r" not in mail.subject
    assert "Marché <b>travaux</b> & Bcc: x@y.fr" in mail.text
    assert mail.html is not None and "<b>" not in mail.html and "&lt;b&gt;travaux&lt;/b&gt; &amp;" in mail.html
    build_message(mail, "parapheur@demo.example.fr")


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="type de notification inconnu"):
        notice_mail(TO, _notice("archived"))


def _digest_notices() -> list[Notice]:
    return [
        _notice("completed", folder_title="Arrêté de voirie", comment=None, link=f"{LINK}-1"),
        _notice("to_act", folder_title="Convention piscine", due_date=date(2026, 12, 20), link=f"{LINK}-2"),
        _notice("late", folder_title="Marché de travaux", due_date=date(2026, 11, 28), link=f"{LINK}-3"),
        _notice("to_act", folder_title="Budget annexe", due_date=date(2026, 12, 5), link=f"{LINK}-4"),
        _notice("acted", folder_title="Subvention club", on_behalf_of="Dominique Dupont", link=f"{LINK}-5"),
    ]


def test_digest_groups_by_kind_most_urgent_first() -> None:
    mail = digest_mail(TO, _digest_notices())
    assert mail.subject == (
        "[Parapheur] Récapitulatif : 1 dossier en retard, 2 dossiers à traiter, 1 dossier avancé, 1 dossier terminé"
    )
    text = mail.text
    headings = [
        "Dossiers en retard (1)",
        "Dossiers à traiter (2)",
        "Dossiers qui ont avancé (1)",
        "Dossiers terminés (1)",
    ]
    positions = [text.index(heading) for heading in headings]
    assert positions == sorted(positions)
    # Within a group, the nearest due date first.
    assert text.index("« Budget annexe »") < text.index("« Convention piscine »") < positions[2]
    assert positions[0] < text.index("« Marché de travaux »") < positions[1]
    assert "échéance dépassée : 28 novembre 2026" in text
    assert "à traiter au plus tard le 5 décembre 2026" in text
    assert "par Camille Martin (en l'absence de Dominique Dupont)" in text
    for number in range(1, 6):
        assert text.count(f"{LINK}-{number}\n") == 1
        assert mail.html is not None and f'href="{LINK}-{number}"' in mail.html
    assert "Dossiers rejetés" not in text and "Avis demandés" not in text


def test_empty_digest_is_refused() -> None:
    with pytest.raises(ValueError, match="récapitulatif vide"):
        digest_mail(TO, [])


def test_digest_travels_through_a_real_smtp_server(use_env: Callable[..., None]) -> None:
    mail = digest_mail(TO, _digest_notices())
    with smtp_server() as server:
        use_env(
            SOCLE_SMTP_HOST=server.host,
            SOCLE_SMTP_PORT=str(server.port),
            SOCLE_SMTP_SECURITY="none",
            SOCLE_MAIL_FROM="Parapheur <parapheur@demo.example.fr>",
        )
        send(mail)
    [received] = server.messages
    assert received.rcpt_tos == TO
    message = received.message
    assert message["Subject"] == mail.subject
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().replace("\r\n", "\n") == mail.text
    assert "Dossiers en retard (1)" in html.get_content()
