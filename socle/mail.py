"""Outgoing e-mail: one MIME message per :class:`Mail`, sent through SMTP or written to a local outbox.

With ``SOCLE_SMTP_HOST`` set, :func:`send` delivers through that server (plain, STARTTLS or implicit TLS,
with optional authentication). Without it, as on a laptop, the message is written as an ``.eml`` file under
``<data_dir>/mails/``, where any mail client opens it: nothing leaves the machine.

Failures raise :class:`MailError`; ``retryable`` tells a job whether trying again later can help (server
unreachable, timeout, 4xx answer) or not (5xx refusal, bad address, certificate or authentication refused).
The SMTP password never appears in a message.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path

from socle.errors import SocleError, message
from socle.files import write_atomically
from socle.settings import Settings, get_settings

# The outbox's sender when no SOCLE_MAIL_FROM is set (no server: the address is never used to deliver).
_OUTBOX_SENDER = "socle@localhost"


@dataclass(frozen=True)
class Mail:
    """A message to send: recipients, subject, plain text and an optional HTML alternative."""

    to: tuple[str, ...]
    subject: str
    text: str
    html: str | None = None


class MailError(SocleError):
    """A mail could not be sent. ``retryable`` is true when trying again later may succeed."""

    title = "Envoi de courriel impossible"
    slug = "mail"

    def __init__(self, detail: str, *, retryable: bool) -> None:
        super().__init__(detail)
        self.retryable = retryable
        # The job queue retries SocleErrors of status >= 500 and gives up at once on the others.
        self.status = 503 if retryable else 422


def send(mail: Mail) -> None:
    """Send ``mail`` with the current settings, or write it to ``<data_dir>/mails/`` when no SMTP server is set.

    Raises:
        MailError: invalid recipient or header (not retryable), server unreachable or timing out, or 4xx
            answer (retryable), 5xx refusal, failed authentication or certificate (not retryable).
    """
    send_message(build_message(mail, get_settings().mail_from or _OUTBOX_SENDER), mail.to)


def send_message(message: EmailMessage, recipients: tuple[str, ...]) -> None:
    """Send an already built message (e.g. with attachments) like :func:`send`: through SMTP, or to the outbox.

    Raises:
        MailError: as :func:`send`.
    """
    settings = get_settings()
    if settings.smtp_host is None:
        write_to_outbox(message, settings.mail_outbox)
        return
    _deliver(message, recipients, settings)


def check_connection() -> str:
    """Connect (and log in) to the configured SMTP server without sending anything; a French report.

    Raises:
        MailError: the server cannot be reached or refuses the connection or the login.
    """
    settings = get_settings()
    if settings.smtp_host is None:
        return "aucun serveur SMTP configuré (SOCLE_SMTP_HOST) : les courriels sont écrits dans le dossier mails"
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    try:
        with _connection(settings) as smtp:
            if settings.smtp_username and password:
                smtp.login(settings.smtp_username, password)
    except OSError as exc:
        raise _explain(exc, settings, password) from None
    return f"serveur SMTP {settings.smtp_host}:{settings.effective_smtp_port} joignable ({settings.smtp_security})"


def build_message(mail: Mail, sender: str) -> EmailMessage:
    """The MIME message for ``mail``: UTF-8, text (and HTML alternative), Date and Message-ID.

    Raises:
        MailError: no recipient, an invalid address, or a line break in the subject (not retryable).
    """
    if not mail.to:
        raise MailError(message("courriel sans destinataire"), retryable=False)
    for address in (sender, *mail.to):
        _check_address(address)
    if any(char in mail.subject for char in "\r\n"):
        raise MailError(message("l'objet d'un courriel ne peut pas contenir de saut de ligne"), retryable=False)
    email = EmailMessage(policy=SMTP_POLICY)
    email["From"] = sender
    email["To"] = ", ".join(mail.to)
    _set_subject(email, mail.subject)
    email["Date"] = format_datetime(datetime.now(UTC))
    email["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2])
    # RFC 3834: an automatic message; out-of-office robots must not answer it.
    email["Auto-Submitted"] = "auto-generated"
    # Quoted-printable rather than 8bit: every relay accepts it, with or without 8BITMIME.
    email.set_content(mail.text, charset="utf-8", cte="quoted-printable")
    if mail.html is not None:
        email.add_alternative(mail.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return email


def _set_subject(email: EmailMessage, subject: str) -> None:
    """The Subject header, written so that any reader decodes exactly ``subject``, spaces included.

    The policy's own folding (``email["Subject"] = subject``) can lose a space when it cuts a non-ASCII subject
    into several encoded words: it leaves the space between two of them, where decoders drop it (RFC 2047
    § 6.2), and "Délibération n° 2026" is read "Délibérationn° 2026" (CPython issues gh-92081 and gh-144156,
    not fixed in 3.11). It also turns a long ASCII subject folded after "Subject:" into one with a leading
    space. So any subject but a short plain ASCII one is encoded by :class:`email.header.Header`: encoded words
    that hold the whole text, spaces included, folded only between them; ``set_raw`` keeps those lines (at
    most 78 characters) as they are.
    """
    limit = email.policy.max_line_length or 78
    plain = subject.isascii() and subject == subject.strip() and "=?" not in subject
    if plain and len("Subject: ") + len(subject) <= limit:
        email["Subject"] = subject  # one short ASCII line, nothing a decoder could change: written as it is
        return
    encoded = Header(subject, "utf-8", maxlinelen=limit - 2, header_name="Subject").encode(linesep="\r\n")
    email.set_raw("Subject", encoded)


def write_to_outbox(message: EmailMessage, outbox: Path) -> Path:
    """Write ``message`` atomically as ``<outbox>/<UTC time>-<random>.eml``; returns the file's path."""
    outbox.mkdir(parents=True, exist_ok=True)
    # Time first: a plain `ls` lists the outbox in sending order.
    name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}.eml"
    path = outbox / name
    write_atomically(path, message.as_bytes(), mode=0o640)
    return path


def _check_address(address: str) -> None:
    _name, parsed = parseaddr(address)
    local, at, domain = parsed.rpartition("@")
    if not at or not local or ("." not in domain and domain != "localhost") or any(c in address for c in "\r\n"):
        raise MailError(
            message("adresse de courriel invalide : « %(address)s »", address=address.strip()), retryable=False
        )


def _deliver(email: EmailMessage, recipients: tuple[str, ...], settings: Settings) -> None:
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    try:
        with _connection(settings) as smtp:
            if settings.smtp_username and password:
                smtp.login(settings.smtp_username, password)
            refused = smtp.send_message(email, to_addrs=[parseaddr(to)[1] for to in recipients])
    except OSError as exc:  # smtplib's errors, TLS errors, network errors and timeouts are all OSErrors
        raise _explain(exc, settings, password) from None
    if refused:
        # Some recipients got it: trying again would send them a second copy.
        raise MailError(message("courriel envoyé, sauf à : %(refused)s", refused=_listed(refused)), retryable=False)


@contextmanager
def _connection(settings: Settings) -> Iterator[smtplib.SMTP]:
    host, port, timeout = settings.smtp_host or "", settings.effective_smtp_port, settings.smtp_timeout
    context = ssl.create_default_context()  # certificate and host name checked, as a browser would
    smtp: smtplib.SMTP
    if settings.smtp_security == "tls":
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    try:
        smtp.ehlo()
        if settings.smtp_security == "starttls":
            smtp.starttls(context=context)
            smtp.ehlo()
        yield smtp
        # The mail is already accepted: a failed goodbye must not make the caller send it again.
        with suppress(smtplib.SMTPException, OSError):
            smtp.quit()
    finally:
        smtp.close()


def _explain(exc: OSError, settings: Settings, password: str | None) -> MailError:
    """A French MailError for an SMTP, TLS or network failure; retryable unless the server said no for good."""
    server = f"serveur SMTP {settings.smtp_host}:{settings.effective_smtp_port}"
    retryable = True
    if isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(exc.__context__, TimeoutError):
        exc = exc.__context__  # smtplib reports a silent server as a disconnection
    match exc:
        case smtplib.SMTPRecipientsRefused():
            codes = [code for code, _reply in exc.recipients.values()]
            retryable = all(400 <= code < 500 for code in codes)
            detail = f"destinataire(s) refusé(s) par le {server} : {_listed(exc.recipients)}"
        case smtplib.SMTPAuthenticationError():
            retryable = 400 <= exc.smtp_code < 500
            detail = f"authentification refusée par le {server} ({exc.smtp_code} {_text(exc.smtp_error)})"
        case smtplib.SMTPNotSupportedError():
            retryable = False
            detail = f"le {server} ne propose pas ce qu'il faut : {_not_supported(exc)}"
        case smtplib.SMTPResponseException():  # sender refused, data refused, greeting or EHLO refused
            retryable = 400 <= exc.smtp_code < 500
            detail = f"le {server} a refusé le courriel ({exc.smtp_code} {_text(exc.smtp_error)})"
        case ssl.SSLCertVerificationError():
            retryable = False
            detail = f"certificat du {server} refusé : {exc.verify_message}"
        case ssl.SSLEOFError() | smtplib.SMTPServerDisconnected():
            detail = f"le {server} a coupé la connexion"
        case smtplib.SMTPException():  # e.g. no authentication method in common
            retryable = False
            detail = f"échange impossible avec le {server} ({exc})"
        case ssl.SSLError():
            retryable = False
            detail = f"négociation TLS impossible avec le {server} (SOCLE_SMTP_SECURITY ou le port est-il juste ?)"
        case TimeoutError():
            detail = f"le {server} ne répond pas (délai de {settings.smtp_timeout:g} s dépassé)"
        case socket.gaierror():
            detail = f"nom de serveur SMTP introuvable : {settings.smtp_host}"
        case ConnectionRefusedError():
            detail = f"le {server} refuse la connexion (arrêté ?)"
        case _:
            detail = f"le {server} est injoignable ({exc.strerror or exc.__class__.__name__})"
    if password:  # a server may echo what it was sent; the password must not reach a log through it
        detail = detail.replace(password, "********")
    return MailError(detail, retryable=retryable)


def _not_supported(exc: smtplib.SMTPNotSupportedError) -> str:
    text = str(exc)
    if "STARTTLS" in text:
        return "STARTTLS (essayez SOCLE_SMTP_SECURITY=tls, ou none sur un relais local)"
    if "AUTH" in text:
        return "l'authentification (SOCLE_SMTP_USERNAME inutile, ou connexion non chiffrée ?)"
    if "SMTPUTF8" in text:
        return "les adresses non ASCII (SMTPUTF8)"
    return text


def _text(reply: bytes | str) -> str:
    return (reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply).strip()


def _listed(refused: dict[str, tuple[int, bytes]]) -> str:
    return ", ".join(f"{address} ({code} {_text(reply)})" for address, (code, reply) in refused.items())
