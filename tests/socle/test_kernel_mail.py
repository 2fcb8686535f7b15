"""Outgoing mail against a real SMTP server (aiosmtpd): plain, STARTTLS, implicit TLS, AUTH, refusals, outages.

Without an SMTP server the mail lands in the local outbox. The SMTP password must never show: not in an
error, not in ``socle settings``.
"""

from __future__ import annotations

import smtplib
import socket
import traceback
from collections.abc import Callable
from email import message_from_bytes
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from smtp import SmtpServer, free_port, silent_server, smtp_server

from socle.errors import SettingsError
from socle.mail import Mail, MailError, send
from socle.settings import Settings, load_settings

from conftest import ROOT, socle_command

PASSWORD = "Tr0ub4dor&3-mot-de-passe"
SENDER = "Parapheur de Démo <parapheur@demo.example.fr>"
MAIL = Mail(
    to=("camille.martin@demo.example.fr",),
    subject="Dossier à signer : délibération n° 2026-042",
    text="Bonjour,\n\nLe dossier « Délibération n° 2026-042 » attend votre signature.\n",
    html="<p>Le dossier « Délibération n° 2026-042 » attend votre <strong>signature</strong>.</p>",
)


@pytest.fixture
def configure(use_env: Callable[..., None]) -> Callable[..., None]:
    """Point the kit at a test server (or at no server with ``server=None``)."""

    def apply(server: SmtpServer | None, *, user: str | None = None, password: str | None = None, **extra: str) -> None:
        use_env(
            SOCLE_SMTP_HOST=server.host if server else None,
            SOCLE_SMTP_PORT=str(server.port) if server else None,
            SOCLE_SMTP_SECURITY=server.security if server else None,
            SOCLE_SMTP_USERNAME=user,
            SOCLE_SMTP_PASSWORD=password,
            SOCLE_MAIL_FROM=SENDER,
            SSL_CERT_FILE=str(server.ca_file) if server else None,
            **extra,
        )

    return apply


def _lines(text: str) -> str:
    return text.replace("\r\n", "\n")  # SMTP and .eml files use CRLF line ends


def _failure(mail: Mail = MAIL) -> MailError:
    with pytest.raises(MailError) as caught:
        send(mail)
    return caught.value


def test_plain_delivery_is_proper_mime(configure: Callable[..., None]) -> None:
    with smtp_server() as server:
        configure(server)
        send(MAIL)
    [received] = server.messages
    assert received.mail_from == "parapheur@demo.example.fr"
    assert received.rcpt_tos == ("camille.martin@demo.example.fr",)
    assert not received.tls and received.login is None
    assert all(byte < 128 for byte in received.data), "en-têtes et corps doivent passer un relais 7 bits"
    message = received.message
    assert message["Subject"] == MAIL.subject
    assert message["From"] == SENDER
    assert message["Auto-Submitted"] == "auto-generated"
    assert parsedate_to_datetime(message["Date"]).tzinfo is not None
    assert message["Message-ID"].endswith("@demo.example.fr>")
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.iter_parts()
    assert text.get_content_type() == "text/plain" and text.get_content_charset() == "utf-8"
    assert _lines(text.get_content()) == MAIL.text
    assert html.get_content_type() == "text/html" and "<strong>signature</strong>" in html.get_content()


def test_text_only_mail(configure: Callable[..., None]) -> None:
    with smtp_server() as server:
        configure(server)
        send(Mail(to=("a@demo.example.fr", "b@demo.example.fr"), subject="Rappel", text="Échéance dépassée."))
    [received] = server.messages
    assert received.rcpt_tos == ("a@demo.example.fr", "b@demo.example.fr")
    assert received.message.get_content_type() == "text/plain"
    assert _lines(received.message.get_content()) == "Échéance dépassée.\n"


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_encrypted_and_authenticated_delivery(configure: Callable[..., None], security: str) -> None:
    with smtp_server(security=security, users={"parapheur": PASSWORD}) as server:  # type: ignore[arg-type]
        configure(server, user="parapheur", password=PASSWORD)
        send(MAIL)
    [received] = server.messages
    assert received.tls and received.login == "parapheur"
    assert received.message["Subject"] == MAIL.subject


def test_wrong_password_is_final_and_never_shown(configure: Callable[..., None]) -> None:
    with smtp_server(security="starttls", users={"parapheur": "un-autre-mot-de-passe"}) as server:
        configure(server, user="parapheur", password=PASSWORD)
        error = _failure()
    assert not error.retryable and error.status < 500
    assert "authentification refusée" in error.detail
    shown = "".join(traceback.format_exception(error)) + repr(error) + str(error.problem())
    assert PASSWORD not in shown
    assert not server.messages


def test_untrusted_certificate_is_refused(configure: Callable[..., None], use_env: Callable[..., None]) -> None:
    with smtp_server(security="tls") as server:
        configure(server)
        use_env(SSL_CERT_FILE=None)  # the system's authorities only: the test CA is unknown
        error = _failure()
    assert not error.retryable
    assert "certificat" in error.detail
    assert not server.messages


def test_starttls_not_offered(configure: Callable[..., None], use_env: Callable[..., None]) -> None:
    with smtp_server(security="none") as server:
        configure(server)
        use_env(SOCLE_SMTP_SECURITY="starttls")
        error = _failure()
    assert not error.retryable
    assert "STARTTLS" in error.detail


def test_tls_against_a_plain_server(configure: Callable[..., None], use_env: Callable[..., None]) -> None:
    with smtp_server(security="none") as server:
        configure(server)
        use_env(SOCLE_SMTP_SECURITY="tls")
        error = _failure()
    assert not error.retryable
    assert "négociation TLS impossible" in error.detail


def test_refused_recipient(configure: Callable[..., None]) -> None:
    unknown = MAIL.to[0]
    with smtp_server(replies={unknown: "550 5.1.1 Utilisateur inconnu"}) as server:
        configure(server)
        error = _failure()
    assert not error.retryable and error.status == 422
    assert unknown in error.detail and "550" in error.detail
    assert not server.messages


def test_recipient_deferred_is_retryable(configure: Callable[..., None]) -> None:
    with smtp_server(replies={MAIL.to[0]: "451 4.7.1 Réessayez plus tard"}) as server:
        configure(server)
        error = _failure()
    assert error.retryable and error.status == 503
    assert "451" in error.detail


def test_partly_refused_is_not_retried(configure: Callable[..., None]) -> None:
    # Trying again would send a second copy to those who already got it.
    mail = Mail(to=("ok@demo.example.fr", "parti@demo.example.fr"), subject="Avis", text="Texte")
    with smtp_server(replies={"parti@demo.example.fr": "550 5.1.1 Boîte fermée"}) as server:
        configure(server)
        error = _failure(mail)
    assert not error.retryable
    assert "sauf à : parti@demo.example.fr" in error.detail
    [received] = server.messages
    assert received.rcpt_tos == ("ok@demo.example.fr",)


def test_server_down_is_retryable(configure: Callable[..., None], use_env: Callable[..., None]) -> None:
    with smtp_server() as server:
        configure(server)
    use_env(SOCLE_SMTP_PORT=str(free_port()))  # the server has stopped; nothing listens there
    error = _failure()
    assert error.retryable and error.status == 503
    assert "refuse la connexion" in error.detail


def test_silent_server_times_out(
    configure: Callable[..., None], use_env: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(None)
    timeouts: list[float | None] = []  # the time limit of each socket smtplib opened
    get_socket = smtplib.SMTP._get_socket

    def recorded(smtp: smtplib.SMTP, host: str, port: int, timeout: float) -> socket.socket:
        connection = get_socket(smtp, host, port, timeout)
        timeouts.append(connection.gettimeout())
        return connection

    monkeypatch.setattr(smtplib.SMTP, "_get_socket", recorded)
    with silent_server() as port:
        use_env(
            SOCLE_SMTP_HOST="127.0.0.1", SOCLE_SMTP_PORT=str(port), SOCLE_SMTP_SECURITY="none", SOCLE_SMTP_TIMEOUT="0.5"
        )
        error = _failure()
    assert timeouts == [0.5]  # the configured limit is the connection's, not smtplib's default (none)
    assert error.retryable
    assert f"le serveur SMTP 127.0.0.1:{port} ne répond pas (délai de 0.5 s dépassé)" in error.detail


def test_outbox_without_server(configure: Callable[..., None], use_env: Callable[..., None], tmp_path: Path) -> None:
    configure(None)
    use_env(SOCLE_DATA_DIR=str(tmp_path))
    send(MAIL)
    send(Mail(to=("b@demo.example.fr",), subject="Deuxième", text="Texte"))
    files = sorted((tmp_path / "mails").iterdir())
    assert [path.suffix for path in files] == [".eml", ".eml"], "aucun fichier temporaire ne doit rester"
    message = message_from_bytes(files[0].read_bytes(), policy=default_policy)
    assert message["Subject"] == MAIL.subject and message["To"] == MAIL.to[0]
    assert _lines(message.get_body(("plain",)).get_content()) == MAIL.text  # type: ignore[union-attr]
    assert message_from_bytes(files[1].read_bytes(), policy=default_policy)["Subject"] == "Deuxième"


@pytest.mark.parametrize(
    ("mail", "expected"),
    [
        (Mail(to=(), subject="Objet", text="Texte"), "sans destinataire"),
        (Mail(to=("pas-une-adresse",), subject="Objet", text="Texte"), "adresse de courriel invalide"),
        (Mail(to=("a@demo.example.fr\r\nBcc: x@y.fr",), subject="Objet", text="Texte"), "adresse de courriel"),
        (Mail(to=("a@demo.example.fr",), subject="Objet\r\nBcc: x@y.fr", text="Texte"), "saut de ligne"),
    ],
)
def test_bad_mail_is_refused_before_sending(
    configure: Callable[..., None], use_env: Callable[..., None], tmp_path: Path, mail: Mail, expected: str
) -> None:
    configure(None)
    use_env(SOCLE_DATA_DIR=str(tmp_path))
    error = _failure(mail)
    assert not error.retryable and expected in error.detail
    assert not (tmp_path / "mails").exists()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"smtp_host": "smtp.example.fr"}, "SOCLE_MAIL_FROM"),
        ({"mail_from": "pas une adresse"}, "SOCLE_MAIL_FROM"),
        ({"smtp_host": "smtp.example.fr", "mail_from": "a@b.fr", "smtp_username": "u"}, "SOCLE_SMTP_PASSWORD"),
        ({"smtp_security": "ssl"}, "SOCLE_SMTP_SECURITY"),
        ({"smtp_port": 0}, "SOCLE_SMTP_PORT"),
        ({"smtp_timeout": 0}, "SOCLE_SMTP_TIMEOUT"),
    ],
)
def test_smtp_settings_are_checked(values: dict[str, object], expected: str) -> None:
    with pytest.raises(SettingsError, match=expected):
        load_settings(**values)


def test_production_refuses_a_password_in_clear() -> None:
    production = {
        "environment": "production",
        "database_url": "postgresql://u@db/socle",
        "redis_url": "redis://redis:6379/0",
        "secret_key": "k" * 44,
        "smtp_host": "smtp.example.fr",
        "mail_from": "parapheur@example.fr",
        "smtp_username": "parapheur",
        "smtp_password": PASSWORD,
    }
    with pytest.raises(SettingsError, match="en clair") as caught:
        load_settings(**production, smtp_security="none")
    assert PASSWORD not in caught.value.detail
    assert load_settings(**production).effective_smtp_port == 587
    assert load_settings(**production, smtp_security="tls").effective_smtp_port == 465
    assert load_settings(**{**production, "smtp_host": "localhost"}, smtp_security="none").effective_smtp_port == 25


def test_settings_command_hides_the_password() -> None:
    result = socle_command(
        "settings",
        env={
            "SOCLE_SMTP_HOST": "smtp.example.fr",
            "SOCLE_MAIL_FROM": "parapheur@example.fr",
            "SOCLE_SMTP_USERNAME": "parapheur",
            "SOCLE_SMTP_PASSWORD": PASSWORD,
        },
    )
    assert result.returncode == 0, result.stderr
    assert "SOCLE_SMTP_HOST" in result.stdout and "smtp.example.fr" in result.stdout
    assert "SOCLE_SMTP_PASSWORD" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr


def test_env_example_mail_lines_are_real_settings() -> None:
    # They are commented out (no SMTP server in the Compose file): test_deploy does not read them.
    lines = (ROOT / "deploy" / ".env.example").read_text(encoding="utf-8").splitlines()
    smtp = dict(
        line.removeprefix("# ").split("=", 1)
        for line in lines
        if line.startswith(("# SOCLE_SMTP_", "# SOCLE_MAIL_")) and "=" in line
    )
    assert set(smtp) == {f"SOCLE_{name.upper()}" for name in Settings.model_fields if "smtp" in name or "mail" in name}
    values = {name.removeprefix("SOCLE_").lower(): value for name, value in smtp.items()}
    production = {
        "environment": "production",
        "database_url": "postgresql://u@db/socle",
        "redis_url": "redis://redis:6379/0",
        "secret_key": "k" * 44,
    }
    with pytest.raises(SettingsError, match="SOCLE_SMTP_PASSWORD"):
        load_settings(**production, **values)
    settings = load_settings(**production, **{**values, "smtp_password": PASSWORD})
    assert settings.smtp_host and settings.mail_from and settings.effective_smtp_port == 587
