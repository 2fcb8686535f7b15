"""The HTTP connectors connect to the address they checked, not to what a second DNS answer says.

A name can resolve to an allowed address when the transport checks it and to the cloud's metadata service a
moment later, when the connection resolves it again (« DNS rebinding »). Real servers listen on 127.0.0.1 and
127.0.0.2 (the same port); the resolver is the only stand-in: there is no DNS server to drive here.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from interop.connectors.transport import BoundedTransport

NAME = "depot.example"


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"{self.server.server_address[0]} {self.headers['Host']}".encode()  # type: ignore[index]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(address: str, port: int, context: ssl.SSLContext | None = None) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer((address, port), _Answer)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def two_servers() -> Iterator[int]:
    """The same port on 127.0.0.1 (the address checked) and 127.0.0.2 (the one the name turns to after)."""
    for first in _serve("127.0.0.1", 0):
        port = first.server_address[1]
        for _ in _serve("127.0.0.2", port):
            yield port


def _resolver(monkeypatch: pytest.MonkeyPatch, answers: list[list[str]]) -> list[str]:
    """`NAME` resolves to each list of ``answers`` in turn (the last one stays); other names as usual."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host != NAME:
            return real(host, port, *args, **kwargs)
        found = answers[min(len(asked), len(answers) - 1)]
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port))) for address in found]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_the_connection_goes_to_the_address_that_was_checked(two_servers: int, monkeypatch: pytest.MonkeyPatch) -> None:
    _resolver(monkeypatch, [["127.0.0.1"], ["127.0.0.2"]])
    with httpx.Client(transport=BoundedTransport(), timeout=5) as client:
        response = client.get(f"http://{NAME}:{two_servers}/")

    assert response.text == f"127.0.0.1 {NAME}:{two_servers}"  # the checked address, the name in Host
    assert response.request.url.host == NAME  # what the connectors show and compare (redirects) keeps the name


def test_a_refused_address_lets_the_next_checked_one_be_tried(
    two_servers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    _resolver(monkeypatch, [["127.0.0.3", "127.0.0.2"]])  # nothing listens on 127.0.0.3
    with httpx.Client(transport=BoundedTransport(), timeout=5) as client:
        assert client.get(f"http://{NAME}:{two_servers}/").text == f"127.0.0.2 {NAME}:{two_servers}"


def _certificate_for(name: str, folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for ``name`` signed by it: (ca, certificate, key) files."""
    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "AC de test")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = (folder / "ca.pem", folder / "serveur.pem", folder / "serveur.key")
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


@pytest.mark.parametrize("certified", [NAME, "autre.example"])
def test_tls_still_checks_the_certificate_against_the_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, certified: str
) -> None:
    ca, certificate, key = _certificate_for(certified, tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(certificate, key)
    _resolver(monkeypatch, [["127.0.0.1"]])
    for server in _serve("127.0.0.1", 0, server_context):
        url = f"https://{NAME}:{server.server_address[1]}/"
        with httpx.Client(
            transport=BoundedTransport(verify=ssl.create_default_context(cafile=ca)), timeout=5
        ) as client:
            if certified == NAME:
                assert client.get(url).text.startswith("127.0.0.1 ")
            else:
                with pytest.raises(httpx.ConnectError, match="mismatch"):
                    client.get(url)
