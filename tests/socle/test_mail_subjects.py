"""Mail subjects keep every space: encoded, folded at 78 characters, sent and decoded, they read as written.

A review found « Dossier à traiter : Délibérationn° 2026-051 »: the standard folding had put the space between
two encoded words, where every decoder drops it.
"""

from __future__ import annotations

from collections.abc import Callable
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
from smtp import smtp_server

from socle.mail import Mail, build_message, send

SENDER = "parapheur@mairie.test"
TO = ("camille.martin@mairie.test",)

SUBJECTS = [
    "Réunion",
    "[Parapheur] Dossier à traiter : Délibération n° 2026-051",
    "[Parapheur] Dossier à traiter : Conseil du 12 mars Délibération n° 2026-051",
    "[Parapheur] Dossier rejeté : Conseil du 12 mars 2026 Délibération n° 2026-051",
    "[Parapheur] Dossier rejeté : Délibération n° 2026-051 portant approbation du budget primitif 2026 de la "
    "commune et de ses budgets annexes (éclairage, crèche, cimetière) — n° 12 à n° 14",
    "[Parapheur] Récapitulatif : 2 dossiers à traiter, 1 dossier rejeté, 3 dossiers terminés, 1 dossier en retard",
    "é é é é é é é é é é é é é é é é é é é é é é é é é é é é é é é é é é é é é é é n° 2026",
    "Objet  à  deux  espaces  et  « guillemets »\u00a0: n°\u00a012",
    "Parapheur:Dossier-a-traiter:Deliberation-du-conseil-municipal-numero-2026-051 budget",
    "Un objet qui cite =?utf-8?q?x?= tel quel",
    " Un objet qui commence par une espace",
    "Short ASCII subject",
]


def _raw(subject: str) -> bytes:
    return build_message(Mail(to=TO, subject=subject, text="Bonjour\n"), SENDER).as_bytes()


def _decoded(data: bytes) -> str:
    parsed = message_from_bytes(data, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return str(parsed["Subject"])


def _header_lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


@pytest.mark.parametrize("subject", SUBJECTS)
def test_a_subject_reads_back_as_written(subject: str) -> None:
    data = _raw(subject)
    assert _decoded(data) == subject
    assert all(byte < 128 for byte in data), "un relais 7 bits doit pouvoir le transmettre"
    assert all(len(line) <= 78 for line in _header_lines(data) if not line.startswith(b"Message-ID:"))


@pytest.mark.parametrize("kind", ["Dossier à traiter", "Dossier rejeté", "Signature demandée"])
def test_any_title_length_keeps_the_space_before_n_degree(kind: str) -> None:
    """Wherever the fold falls, around « Délibération n° » included."""
    lost = []
    for length in range(80):
        subject = f"[Parapheur] {kind} : {'Conseil municipal ' * 5}"[: 32 + length] + " Délibération n° 2026-051"
        if _decoded(_raw(subject)) != subject:
            lost.append(subject)
    assert lost == []


def test_the_subject_received_by_an_smtp_server_is_the_one_sent(use_env: Callable[..., None]) -> None:
    subject = "[Parapheur] Dossier à traiter : Conseil du 12 mars Délibération n° 2026-051"
    with smtp_server() as server:
        use_env(
            SOCLE_SMTP_HOST=server.host,
            SOCLE_SMTP_PORT=str(server.port),
            SOCLE_SMTP_SECURITY="none",
            SOCLE_MAIL_FROM=SENDER,
        )
        send(Mail(to=TO, subject=subject, text="Bonjour\n"))
    [received] = server.messages
    assert received.message["Subject"] == subject
    assert _decoded(received.data) == subject
