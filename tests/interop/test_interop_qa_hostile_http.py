"""The HTTP connectors against hostile servers: raw sockets on 127.0.0.1 that misbehave on purpose.

Each server is a real TCP listener that writes what a broken or malicious platform would: a body without end,
a body trickled byte by byte, a gzip bomb, a redirect to somewhere else. The connector must end with a clear
French error (transient or refusal), never keep reading, never follow.
"""

from __future__ import annotations

import gzip
import io
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from interop.connectors.s2low import S2lowConnector
from interop.connectors.sae import SaeRefused
from interop.connectors.vitam import VitamConnector
from interop.connectors.webdav import WebdavConnector
from interop.connectors.webhook import WebhookConnector
from socle.errors import Conflict, ServiceUnavailable
from socle.storage import StoredObject, get_store

from conftest import Kit

SECRET = "un-secret-partage-de-plus-de-32-caracteres"
CAP = 48 * 1024 * 1024  # a hostile server stops by itself after this many body bytes (old code then finished)


@dataclass
class Hostile:
    """A raw HTTP server; ``answer(request_head, socket)`` writes whatever it wants."""

    url: str = ""
    sent: list[int] = field(default_factory=list)  # body bytes written per connection before it ended
    requests: list[str] = field(default_factory=list)


def serve(answer: Callable[[str, socket.socket, Hostile], None]) -> Iterator[Hostile]:
    state = Hostile()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            sock: socket.socket = self.request
            sock.settimeout(10)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
                state.requests.append(head)
                answer(head, sock, state)
            except OSError:
                pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def stream_body(sock: socket.socket, state: Hostile, block: bytes, pause: float = 0) -> None:
    """Write ``block`` again and again (up to CAP), recording how much went before the client hung up."""
    sent = 0
    try:
        while sent < CAP:
            sock.sendall(block)
            sent += len(block)
            if pause:
                time.sleep(pause)
    except OSError:
        pass
    finally:
        state.sent.append(sent)


def endless(head: str, sock: socket.socket, state: Hostile) -> None:
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nConnection: close\r\n\r\n")
    stream_body(sock, state, b"<a>" + b"x" * 65533)


def trickle(head: str, sock: socket.socket, state: Hostile) -> None:
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
    sent = 0
    try:
        for _ in range(30):  # 30 bytes over about 6 seconds, each well within the read timeout
            sock.sendall(b"o")
            sent += 1
            time.sleep(0.2)
    except OSError:
        pass
    state.sent.append(sent)


def bomb(head: str, sock: socket.socket, state: Hostile) -> None:
    body = gzip.compress(b"\0" * (64 * 1024 * 1024))  # 64 Mo once inflated, 64 Ko on the wire
    sock.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Encoding: gzip\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    state.sent.append(len(body))


def announced(head: str, sock: socket.socket, state: Hostile) -> None:
    sock.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10000000000\r\nConnection: close\r\n\r\n"
    )
    stream_body(sock, state, b"y" * 65536)


@pytest.fixture
def hostile(request: pytest.FixtureRequest) -> Iterator[Hostile]:
    yield from serve(request.param)


def put(content: bytes) -> StoredObject:
    return get_store().put(io.BytesIO(content))


def webhook(url: str, **config: Any) -> WebhookConnector:
    return WebhookConnector("ecoute", {"url": url, "timeout": 2, **config}, {"signing_secret": SECRET})


@pytest.mark.parametrize("hostile", [endless], indirect=True)
def test_an_endless_body_is_abandoned_at_the_limit_not_read_to_the_end(hostile: Hostile) -> None:
    obj = put(b"%PDF-1.7 sans fin")
    with pytest.raises(ServiceUnavailable, match="réponse trop volumineuse"):
        webhook(hostile.url + "/hook").deliver(get_store(), obj.key, "a.pdf", obj.size)
    # The SAE follow-up reads the ArchiveTransferReply the same way: transient, in French.
    vitam = VitamConnector("v", {"url": hostile.url, "tenant": 0, "timeout": 2}, {})
    with pytest.raises(ServiceUnavailable, match="réponse trop volumineuse"):
        vitam.test()
    deadline = time.monotonic() + 10
    while len(hostile.sent) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(hostile.sent) == 2 and all(sent < CAP for sent in hostile.sent), hostile.sent


@pytest.mark.parametrize("hostile", [trickle], indirect=True)
def test_a_body_trickled_byte_by_byte_is_abandoned_after_the_timeout(hostile: Hostile) -> None:
    obj = put(b"%PDF-1.7 goutte a goutte")
    # Each byte comes well within the 1 s read timeout: only a deadline on the whole body stops it.
    with pytest.raises(ServiceUnavailable, match="réponse trop lente"):
        webhook(hostile.url + "/hook", timeout=1).deliver(get_store(), obj.key, "a.pdf", obj.size)


@pytest.mark.parametrize("hostile", [bomb], indirect=True)
def test_a_compressed_answer_is_refused_before_it_is_inflated(hostile: Hostile) -> None:
    vitam = VitamConnector("v", {"url": hostile.url, "tenant": 0, "timeout": 2}, {})
    with pytest.raises(ServiceUnavailable, match="réponse compressée"):
        vitam.test()
    assert "accept-encoding: identity" in hostile.requests[0].lower()


@pytest.mark.parametrize("hostile", [announced], indirect=True)
def test_an_announced_huge_length_is_refused_at_once(hostile: Hostile) -> None:
    obj = put(b"%PDF-1.7 annonce")
    with pytest.raises(ServiceUnavailable, match="réponse trop volumineuse"):
        webhook(hostile.url + "/hook").deliver(get_store(), obj.key, "a.pdf", obj.size)


def test_a_link_local_address_is_refused_before_connecting_and_not_retried() -> None:
    obj = put(b"%PDF-1.7 metadonnees")
    with pytest.raises(Conflict, match=r"adresse refusée : 169\.254\.169\.254"):
        webhook("http://169.254.169.254/latest/meta-data/").deliver(get_store(), obj.key, "a.pdf", obj.size)
    with pytest.raises(SaeRefused, match="adresse refusée"):
        VitamConnector("v", {"url": "http://[fe80::1]:8080", "tenant": 0, "timeout": 2}, {}).test()
    with pytest.raises(Conflict, match="adresse refusée"):
        WebdavConnector("dav", {"url": "http://0.0.0.0:1/depot", "timeout": 2}, {}).test()


def test_connector_addresses_refuse_credentials_and_link_local_hosts(kit: Kit) -> None:
    cases = [
        ("webhook", {"url": "https://moi:motdepasse@hooks.exemple.fr/x", "signing_secret": SECRET}, "identifiants"),
        ("webhook", {"url": "http://169.254.169.254/latest/", "signing_secret": SECRET}, "lien local"),
        ("vitam", {"url": "https://jeton@vitam.exemple.fr", "tenant": 1}, "identifiants"),
        ("webdav", {"url": "http://[::ffff:169.254.169.254]/dav"}, "lien local"),
        # A subject that would smuggle a header (Bcc) into every message sent: refused at configuration.
        ("mail", {"to": ["greffe@mairie.fr"], "subject": "Acte $filename\r\nBcc: espion@exemple.fr"}, "saut de ligne"),
    ]
    for kind, config, expected in cases:
        answer = kit["admin"].post("/interop/connectors", json={"name": f"c-{kind}", "kind": kind, "config": config})
        assert answer.status_code == 422 and expected in answer.text, answer.text
        assert "motdepasse" not in answer.text
    sftp = {"host": "169.254.169.254", "username": "u", "host_key": "ssh-ed25519 AAAA", "path": "depot"}
    answer = kit["admin"].post("/interop/connectors", json={"name": "s", "kind": "sftp", "config": sftp})
    assert answer.status_code == 422 and "lien local" in answer.text


def host_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    public = ed25519.Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def test_paths_hosts_and_addresses_with_control_characters_are_refused_at_configuration(kit: Kit) -> None:
    # A NUL reaches the system (« embedded null byte ») or the address, a line feed a header: each was saved (or a
    # 500 for the dépôt), then failed at its test or delivery with a 500; PostgreSQL refuses the NUL itself.
    url = "https://plateforme.exemple.fr"
    sftp = {"host": "sftp.exemple.fr", "username": "u", "password": "p", "host_key": host_key(), "path": "depot"}
    made = kit["admin"].post("/interop/connectors", json={"name": "s", "kind": "sftp", "config": sftp})
    assert made.status_code == 201, made.text
    cases = [
        ("depot", {"path": "a\x00b"}, "path"),
        ("depot", {"path": "a\x01b"}, "path"),
        ("sftp", sftp | {"path": "dé\x00pot"}, "path"),
        ("sftp", sftp | {"username": "u\nx"}, "username"),
        ("webdav", {"url": f"{url}/d\x00av"}, "url"),
        ("webdav", {"url": f"{url}/dav", "ca_file": "/etc/ssl/a\x00b.pem"}, "ca_file"),
        ("webdav", {"url": f"{url}/dav", "username": "a\rb"}, "username"),
        ("webhook", {"url": f"{url}/x\x01", "signing_secret": SECRET}, "url"),
        ("webhook", {"url": f"{url}/x", "signing_secret": SECRET, "ca_file": "a\x00b"}, "ca_file"),
        ("vitam", {"url": f"{url}\x00", "tenant": 1}, "url"),
        ("vitam", {"url": url, "tenant": 1, "ca_file": "a\x00b"}, "ca_file"),
        ("vitam", {"url": url, "tenant": 1, "context_id": "A\nX-Autre: b"}, "context_id"),
        ("vitam", {"url": url, "tenant": 1, "application_id": "a\x00b"}, "application_id"),
        ("asalae", {"url": url, "organization": "a\x00b"}, "organization"),
        ("cmis", {"url": f"{url}/browser", "folder": "/Actes/a\x00b"}, "folder"),
        ("cmis", {"url": f"{url}/browser", "repository_id": "a\x00b"}, "repository_id"),
        ("cmis", {"url": f"{url}/browser", "object_type": "cmis:document\n"}, "object_type"),
        ("parapheur", {"url": url, "token": "t", "subtype_id": "a\x00b"}, "subtype_id"),
        ("mail", {"to": ["greffe@mairie.fr\x00"]}, "to"),
        ("mail", {"to": ["greffe@mairie.fr"], "body": "Bonjour\x00"}, "body"),
    ]
    for index, (kind, config, name) in enumerate(cases):
        body = {"name": f"c{index}", "kind": kind, "config": config}
        answer = kit["admin"].post("/interop/connectors", json=body)
        assert answer.status_code == 422, (kind, config, answer.text)
        detail = answer.json()["detail"]
        assert "caractère de contrôle interdit" in detail and name in detail, detail
    # A change is checked as a creation is: the SFTP connector made above keeps its folder.
    changed = kit["admin"].patch("/interop/connectors/s", json={"config": sftp | {"path": "a\x00b"}})
    assert changed.status_code == 422 and "caractère de contrôle interdit" in changed.text, changed.text
    assert kit["admin"].get("/interop/connectors/s").json()["config"]["path"] == "depot"


# --------------------------------------------------------------------------------------------------------------
# S²LOW's prefecture documents: the one page that redirects, followed to S²LOW itself only


@pytest.fixture
def elsewhere() -> Iterator[Hostile]:
    def gz(head: str, sock: socket.socket, state: Hostile) -> None:
        body = gzip.compress(b"courrier")
        sock.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)

    yield from serve(gz)


def test_a_redirect_to_another_host_is_refused(elsewhere: Hostile) -> None:
    target = elsewhere.url + "/vol.tar.gz?jeton=secret"

    def redirect(head: str, sock: socket.socket, state: Hostile) -> None:
        if "actes_transac_get_document.php" in head:
            location = target
        else:
            location = "/modules/actes/actes_download_file.php?env=1"  # relative: S²LOW itself
        if "actes_download_file.php" in head:
            body = gzip.compress(b"courrier de la prefecture")
            sock.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            return
        sock.sendall(
            f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )

    for server in serve(redirect):
        connector = S2lowConnector("tdt", {"url": server.url, "timeout": 2}, {})
        with pytest.raises(SaeRefused, match="redirige hors de la plateforme") as refused:
            connector.prefecture_document("42")
        assert "secret" not in str(refused.value)
    assert elsewhere.requests == []  # never reached


def test_a_redirect_to_another_scheme_is_refused() -> None:
    def redirect(head: str, sock: socket.socket, state: Hostile) -> None:
        sock.sendall(
            b"HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )

    for server in serve(redirect):
        connector = S2lowConnector("tdt", {"url": server.url, "timeout": 2}, {})
        with pytest.raises(SaeRefused, match="redirige hors de la plateforme"):
            connector.prefecture_document("42")


def test_a_redirect_within_s2low_is_followed() -> None:
    def redirect(head: str, sock: socket.socket, state: Hostile) -> None:
        if "actes_download_file.php" in head:
            body = gzip.compress(b"courrier de la prefecture")
            sock.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            return
        sock.sendall(
            b"HTTP/1.1 302 Found\r\nLocation: actes_download_file.php?env=42\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n"
        )

    for server in serve(redirect):
        connector = S2lowConnector("tdt", {"url": server.url, "timeout": 2}, {})
        assert gzip.decompress(connector.prefecture_document("42")) == b"courrier de la prefecture"


# --------------------------------------------------------------------------------------------------------------
# WebDAV: a file already under the name is read back at most as far as our document's size


def test_webdav_reads_back_an_existing_file_no_further_than_the_document() -> None:
    def dav(head: str, sock: socket.socket, state: Hostile) -> None:
        method = head.split(" ", 1)[0]
        if method == "MKCOL":
            sock.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        elif method == "PROPFIND":
            body = b'<?xml version="1.0"?><d:multistatus xmlns:d="DAV:"><d:collection/></d:multistatus>'
            sock.sendall(
                f"HTTP/1.1 207 Multi-Status\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
            )
        elif method == "GET":  # the name is taken by a file that never ends
            sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            stream_body(sock, state, b"z" * 65536)
        else:
            sock.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    obj = put(b"%PDF-1.7 petit document")
    for server in serve(dav):
        connector = WebdavConnector("dav", {"url": server.url + "/depot", "timeout": 2, "metadata": "none"}, {})
        with pytest.raises(Conflict, match="un autre fichier porte déjà le nom"):
            connector.deliver(get_store(), obj.key, "acte.pdf", obj.size)
        deadline = time.monotonic() + 10
        while not server.sent and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.sent and server.sent[0] < CAP, server.sent
