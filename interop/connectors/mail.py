"""The mail connector: sends a document by e-mail, attached or as a link, through the kernel's SMTP settings.

The SMTP server, its TLS mode and credentials are the kit's (``SOCLE_SMTP_*``, socle/mail.py); the
connector chooses recipients, the French templates (``$filename``, ``$size``, ``$sha256``, ``$connector``,
``$link``) and the mode. Without a server the message lands in the kit's outbox (``data_dir/mails``).

SMTP cannot be asked whether a message was already sent: a retried send carries the same Message-ID (derived
from the connector and the document), so mail clients and archives recognise the duplicate.
"""

from __future__ import annotations

import hashlib
import mimetypes
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parseaddr
from string import Template
from typing import Any
from urllib.parse import quote

from socle import mail
from socle.errors import DigestMismatch, PayloadTooLarge, message
from socle.settings import get_settings
from socle.storage import ObjectStore

ATTACHMENT_TEXT = """Bonjour,

Veuillez trouver ci-joint le document « $filename » ($size), transmis automatiquement par le connecteur
« $connector ».

Empreinte SHA-256 du document : $sha256

Ce courriel est envoyé par un automate : merci de ne pas y répondre.
"""

LINK_TEXT = """Bonjour,

Le document « $filename » ($size) est disponible à l'adresse suivante :
$link

Empreinte SHA-256 du document : $sha256

Ce courriel est envoyé par un automate : merci de ne pas y répondre.
"""


def french_size(size: int) -> str:
    """A size as a French reader expects it: « 512 octets », « 12,5 Ko », « 3,2 Mo »."""
    if size < 1024:
        return f"{size} octet{'s' if size > 1 else ''}"
    for unit, power in (("Ko", 1), ("Mo", 2), ("Go", 3)):
        value = size / 1024**power
        if value < 1024 or unit == "Go":
            return f"{value:.1f} {unit}".replace(".", ",")
    raise AssertionError("unreachable")


def template_values(connector: str, filename: str, size: int, sha256: str, link_url: str | None) -> dict[str, str]:
    """The values a connector template may use; ``$link`` is ``link_url`` filled with URL-encoded values."""
    clean = " ".join(filename.split())  # no line break can reach a header through a file name
    values = {"filename": clean, "size": french_size(size), "sha256": sha256, "connector": connector, "link": ""}
    if link_url:
        encoded = {key: quote(value, safe="") for key, value in values.items()}
        values["link"] = Template(link_url).safe_substitute(encoded)
    return values


class MailConnector:
    """Sends documents by e-mail; ``config`` as :class:`interop.schemas.MailConfig`."""

    def __init__(self, name: str, config: dict[str, Any], secrets: dict[str, str]) -> None:
        self.name, self.config = name, config

    def deliver(self, store: ObjectStore, object_key: str, filename: str, size: int) -> dict[str, Any]:
        """Send the document to the configured recipients; return the receipt (Message-ID, recipients…).

        :raises PayloadTooLarge: attachment mode and a document over the configured limit (not retried).
        :raises socle.mail.MailError: the server refused (not retried) or could not be reached (retried).
        """
        settings = get_settings()
        mode = str(self.config.get("mode") or "attachment")
        values = template_values(self.name, filename, size, object_key, self.config.get("link_url"))
        limit = int(float(self.config.get("max_attachment_mb") or 10) * 1024 * 1024)
        if mode == "attachment" and size > limit:
            raise PayloadTooLarge(
                message(
                    "document trop volumineux pour une pièce jointe (%(size)s, limite %(limit)s) : "
                    "choisir le mode « link » pour ce connecteur",
                    size=french_size(size),
                    limit=french_size(limit),
                )
            )
        recipients = tuple(self.config["to"])
        subject = Template(str(self.config.get("subject") or "Document transmis : $filename"))
        body = Template(str(self.config.get("body") or (LINK_TEXT if mode == "link" else ATTACHMENT_TEXT)))
        email = mail.build_message(
            mail.Mail(to=recipients, subject=subject.safe_substitute(values), text=body.safe_substitute(values)),
            settings.mail_from or "socle@localhost",
        )
        message_id = self._message_id(object_key, settings.mail_from or "socle@localhost")
        email.replace_header("Message-ID", message_id)
        if mode == "attachment":
            self._attach(email, store, object_key, values["filename"])
        receipt: dict[str, Any] = {
            "connector": self.name,
            "to": list(recipients),
            "subject": str(email["Subject"]),
            "message_id": message_id,
            "mode": mode,
            "sha256": object_key,
            "size": size,
        }
        if settings.smtp_host is None:
            receipt["outbox"] = mail.write_to_outbox(email, settings.mail_outbox).name
        else:
            # The kernel's SMTP delivery (TLS, authentication, French errors, retryable or not).
            mail.send_message(email, tuple(recipients))
        receipt["sent_at"] = datetime.now(UTC).isoformat()
        return receipt

    def _message_id(self, object_key: str, sender: str) -> str:
        domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
        stable = hashlib.sha256(f"{self.name}\n{object_key}".encode()).hexdigest()[:40]
        return f"<interop.{stable}@{domain}>"

    @staticmethod
    def _attach(email: EmailMessage, store: ObjectStore, object_key: str, filename: str) -> None:
        kind = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        maintype, _, subtype = kind.partition("/")
        with store.open(object_key) as stream:
            data = stream.read()
        if hashlib.sha256(data).hexdigest() != object_key:
            raise DigestMismatch(
                message(
                    "l'objet %(object_key)s lu dans le stockage ne correspond pas à son empreinte",
                    object_key=object_key,
                )
            )
        email.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)

    def test(self) -> str:
        """Connect to the kit's SMTP server (TLS and authentication as configured) without sending anything."""
        return f"{mail.check_connection()}, {len(self.config['to'])} destinataire(s)"
