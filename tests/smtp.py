"""A real SMTP server for the tests (aiosmtpd on 127.0.0.1): plain, STARTTLS or implicit TLS, AUTH, and refusals.

Usage::

    with smtp_server(security="starttls", users={"parapheur": "mot-de-passe"}) as server:
        ...  # send to 127.0.0.1:server.port, trusting server.ca_file
        message = server.messages[0].message

The TLS certificate is issued at start by a throw-away CA (``ca_file``, PEM) for 127.0.0.1 and localhost, so a
client that checks certificates — as the kit does — connects once it trusts that CA (``SSL_CERT_FILE``).
Recipients listed in ``replies`` get that RCPT answer instead of ``250`` (e.g. a 5xx "unknown user").
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Security = Literal["none", "starttls", "tls"]


@dataclass(frozen=True)
class Received:
    """One message as the server got it: envelope, raw bytes, parsed message, and how the client came."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    tls: bool
    login: str | None

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpServer:
    """A running test server; ``messages`` fills as mails arrive."""

    host: str
    port: int
    security: Security
    ca_file: Path
    messages: list[Received] = field(default_factory=list)


class _Handler:
    def __init__(self, server: SmtpServer, replies: dict[str, str]) -> None:
        self.server = server
        self.replies = replies

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.replies:
            return self.replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.server.messages.append(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=data,
                tls=session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
                login=login,
            )
        )
        return "250 Message accepted for delivery"


class _Authenticator:
    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        # handled=False: aiosmtpd itself answers 535 to a wrong password.
        return AuthResult(success=self.users.get(login) == password, handled=False, auth_data=auth_data)


class _Controller(Controller):
    def factory(self) -> SMTP:
        # Implicit TLS with AUTH is safe, but aiosmtpd, which only knows STARTTLS, warns about it.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
            return super().factory()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def smtp_server(
    *, security: Security = "none", users: dict[str, str] | None = None, replies: dict[str, str] | None = None
) -> Iterator[SmtpServer]:
    """Start an SMTP server on 127.0.0.1 for the duration of the block.

    ``users`` (login → password) makes authentication mandatory (offered only over TLS, as real servers do);
    ``replies`` maps a recipient address to the RCPT answer it gets (``"550 5.1.1 Utilisateur inconnu"``).
    """
    with tempfile.TemporaryDirectory(prefix="smtp-") as folder:
        ca_file, server_context = _tls_material(Path(folder))
        server = SmtpServer(host="127.0.0.1", port=free_port(), security=security, ca_file=ca_file)
        options: dict[str, Any] = {"server_hostname": "smtp.test", "enable_SMTPUTF8": True}
        if security == "starttls":
            options.update(tls_context=server_context, require_starttls=True)
        elif security == "tls":
            # aiosmtpd only knows of STARTTLS: over implicit TLS, it must be told AUTH is safe to offer.
            options.update(ssl_context=server_context, auth_require_tls=False)
        if users is not None:
            options.update(authenticator=_Authenticator(users), auth_required=True)
        controller = _Controller(_Handler(server, replies or {}), hostname=server.host, port=server.port, **options)
        controller.start()
        try:
            yield server
        finally:
            controller.stop()


@contextmanager
def kit_mailbox(use_env: Any) -> Iterator[SmtpServer]:
    """A plain SMTP server that the kit sends its mails to (``use_env``: the tests' settings fixture)."""
    with smtp_server() as server:
        use_env(
            SOCLE_SMTP_HOST=server.host,
            SOCLE_SMTP_PORT=str(server.port),
            SOCLE_SMTP_SECURITY="none",
            SOCLE_MAIL_FROM="Parapheur <parapheur@mairie.test>",
        )
        yield server


@contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts connections but never speaks: a client waiting for the greeting times out."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


def _tls_material(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A throw-away CA (written as PEM) and a server context with a certificate it issued for 127.0.0.1."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "AC de test SMTP")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file, key_file = folder / "server.pem", folder / "server.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return ca_file, context
