"""The mail connector against a real SMTP server (aiosmtpd, tests/smtp.py): STARTTLS, implicit TLS, refusals."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from smtp import SmtpServer, silent_server, smtp_server

from interop.connectors.mail import MailConnector, french_size
from socle.errors import PayloadTooLarge
from socle.mail import MailError
from socle.settings import get_settings
from socle.storage import StoredObject, get_store

from conftest import Kit, run_jobs

SENDER = "Commune de Test <interop@commune.test>"


@pytest.fixture
def configure(use_env: Callable[..., None]) -> Callable[..., None]:
    def apply(server: SmtpServer | None, user: str | None = None, password: str | None = None, **extra: str) -> None:
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


def put(content: bytes) -> StoredObject:
    return get_store().put(io.BytesIO(content))


def connector(**config: Any) -> MailConnector:
    return MailConnector("courriel-tresorerie", {"to": ["tresorerie@dgfip.test"], **config}, {})


def test_attachment_over_starttls_with_authentication(configure: Callable[..., None]) -> None:
    content = b"%PDF-1.7 mandat de paiement"
    obj = put(content)
    with smtp_server(security="starttls", users={"interop": "secret-smtp"}) as server:
        configure(server, user="interop", password="secret-smtp")
        sent = connector()
        assert "joignable" in sent.test() and server.messages == []  # the test sends nothing
        receipt = sent.deliver(get_store(), obj.key, "Mandat n° 42.pdf", obj.size)
        received = server.messages[0]
    assert received.tls and received.login == "interop" and received.rcpt_tos == ("tresorerie@dgfip.test",)
    message = received.message
    assert message["Subject"] == "Document transmis : Mandat n° 42.pdf"
    assert message["Message-ID"] == receipt["message_id"] and receipt["to"] == ["tresorerie@dgfip.test"]
    body = message.get_body(("plain",))
    assert body is not None and "Veuillez trouver ci-joint le document « Mandat n° 42.pdf »" in body.get_content()
    attachments = list(message.iter_attachments())
    assert len(attachments) == 1 and attachments[0].get_filename() == "Mandat n° 42.pdf"
    assert attachments[0].get_content_type() == "application/pdf" and attachments[0].get_content() == content


def test_link_mode_over_implicit_tls_with_custom_templates(configure: Callable[..., None]) -> None:
    obj = put(b"gros document")
    with smtp_server(security="tls") as server:
        configure(server)
        sent = connector(
            mode="link",
            link_url="https://ged.commune.test/documents/$sha256?nom=$filename",
            subject="[$connector] $filename",
            body="Le document $filename ($size) : $link",
        )
        sent.deliver(get_store(), obj.key, "rapport annuel.pdf", obj.size)
        message = server.messages[0].message
    assert server.messages[0].tls and message["Subject"] == "[courriel-tresorerie] rapport annuel.pdf"
    assert not list(message.iter_attachments())
    expected = f"https://ged.commune.test/documents/{obj.key}?nom=rapport%20annuel.pdf"
    assert message.get_content().strip() == f"Le document rapport annuel.pdf (13 octets) : {expected}"


def test_the_same_document_keeps_its_message_id(configure: Callable[..., None]) -> None:
    obj = put(b"deux fois")
    with smtp_server() as server:
        configure(server)
        first = connector().deliver(get_store(), obj.key, "a.txt", obj.size)
        second = connector().deliver(get_store(), obj.key, "a.txt", obj.size)
        other = MailConnector("autre", {"to": ["x@y.test"]}, {}).deliver(get_store(), obj.key, "a.txt", obj.size)
    assert first["message_id"] == second["message_id"] != other["message_id"]
    assert [m.message["Message-ID"] for m in server.messages] == [first["message_id"]] * 2 + [other["message_id"]]


def test_refusals_and_transient_failures(configure: Callable[..., None]) -> None:
    obj = put(b"x" * 3000)
    with pytest.raises(PayloadTooLarge, match="mode « link »"):
        connector(max_attachment_mb=0.001).deliver(get_store(), obj.key, "gros.bin", obj.size)
    with smtp_server(replies={"tresorerie@dgfip.test": "550 5.1.1 Utilisateur inconnu"}) as server:
        configure(server)
        with pytest.raises(MailError, match="Utilisateur inconnu") as refused:
            connector().deliver(get_store(), obj.key, "a.txt", obj.size)
    assert not refused.value.retryable and refused.value.status < 500  # the delivery fails, not retried
    with silent_server() as port:
        configure(
            SmtpServer(host="127.0.0.1", port=port, security="none", ca_file=server.ca_file), SOCLE_SMTP_TIMEOUT="1"
        )
        with pytest.raises(MailError, match="ne répond pas") as timeout:
            connector().test()
    assert timeout.value.retryable and timeout.value.status >= 500


def test_through_the_api_and_the_job_without_server_writes_the_outbox(kit: Kit, configure: Callable[..., None]) -> None:
    configure(None)
    bad = {"to": ["pas-une-adresse"], "subject": "$inconnu"}
    refused = kit["admin"].post("/interop/connectors", json={"name": "mel", "kind": "mail", "config": bad})
    assert refused.status_code == 422 and "adresse de courriel invalide" in refused.text
    link_without_url = {"to": ["a@b.test"], "mode": "link"}
    refused = kit["admin"].post("/interop/connectors", json={"name": "mel", "kind": "mail", "config": link_without_url})
    assert refused.status_code == 422 and "link_url" in refused.text
    created = kit["admin"].post(
        "/interop/connectors", json={"name": "mel", "kind": "mail", "config": {"to": ["a@b.test"]}}
    )
    assert created.status_code == 201, created.text
    assert "aucun serveur SMTP" in kit["admin"].post("/interop/connectors/mel/test").json()["message"]
    from test_interop_depot import ask_delivery, sending_transfer, transfer_row

    obj = put(b"%PDF-1.7 par courriel")
    transfer = sending_transfer(kit)
    ask_delivery(kit, obj, "acte.pdf", "cle-mel-1", transfer, connector="mel")
    run_jobs()
    receipt = transfer_row(transfer).receipt or {}
    assert transfer_row(transfer).status == "delivered" and receipt["mode"] == "attachment"
    outbox = get_settings().mail_outbox / receipt["outbox"]
    assert b"acte.pdf" in outbox.read_bytes() and receipt["message_id"].encode() in outbox.read_bytes()


def test_french_sizes() -> None:
    assert [french_size(n) for n in (1, 512, 2048, 5 * 1024**2 + 1)] == ["1 octet", "512 octets", "2,0 Ko", "5,0 Mo"]
