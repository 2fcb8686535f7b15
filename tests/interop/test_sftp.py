"""The SFTP dépôt connector against a real SFTP server (asyncssh's, on 127.0.0.1, files in a temporary folder).

The server behaves as OpenSSH's sftp-server does where it matters: a plain rename refuses an existing name,
``posix-rename`` replaces it.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import socket
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from interop.connectors.sftp import SftpConnector, parse_host_key
from socle.errors import Conflict, DigestMismatch, InvalidInput, ServiceUnavailable
from socle.storage import StoredObject, get_store

from conftest import Kit, run_jobs

PASSWORD = "mot-de-passe-sftp"


@dataclass
class SftpServer:
    port: int
    root: Path
    host_key: str  # the public line a municipality pastes from ssh-keyscan
    client_key: str  # a private key the server accepts (OpenSSH format)


class _Auth(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == "depot" and password == PASSWORD


@pytest.fixture(scope="module")
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SftpServer]:
    root = tmp_path_factory.mktemp("sftp-root")
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())
    loop = asyncio.new_event_loop()
    started: list[Any] = []
    ready = threading.Event()

    async def start() -> None:
        server = await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[host_key],
            authorized_client_keys=authorized,
            server_factory=_Auth,
            sftp_factory=lambda channel: asyncssh.SFTPServer(channel, chroot=str(root).encode()),
            allow_scp=False,
        )
        started.append(server)
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(10)
    server = started[0]
    yield SftpServer(
        port=server.sockets[0].getsockname()[1],
        root=root,
        host_key=host_key.export_public_key().decode(),
        client_key=client_key.export_private_key().decode(),
    )
    loop.call_soon_threadsafe(server.close)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def connector(server: SftpServer, path: str, *, key: bool = False, **config: Any) -> SftpConnector:
    settings = {"host": "127.0.0.1", "port": server.port, "username": "depot", "host_key": server.host_key}
    secrets = {"client_key": server.client_key} if key else {"password": PASSWORD}
    return SftpConnector("sftp-test", {**settings, "path": path, "timeout": 5, **config}, secrets)


def put(content: bytes) -> StoredObject:
    return get_store().put(io.BytesIO(content))


def listing(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir()) if folder.exists() else []


def test_password_deposit_with_receipt_then_idempotent(sftp_server: SftpServer) -> None:
    content = os.urandom(70_000)
    obj = put(content)
    sftp = connector(sftp_server, "/arrivee/actes")
    assert "accessible en écriture" in sftp.test()
    receipt = sftp.deliver(get_store(), obj.key, "délibération 12.pdf", obj.size)
    folder = sftp_server.root / "arrivee" / "actes"
    assert listing(folder) == ["délibération 12.pdf", "délibération 12.pdf.receipt.json"]  # no temp file left
    assert (folder / "délibération 12.pdf").read_bytes() == content
    assert json.loads((folder / "délibération 12.pdf.receipt.json").read_text()) == {
        key: value for key, value in receipt.items() if key != "server"
    }
    assert receipt["path"] == "/arrivee/actes/délibération 12.pdf" and receipt["sha256"] == obj.key
    # The same document again (a retried job): recognised on the server, nothing rewritten.
    again = sftp.deliver(get_store(), obj.key, "délibération 12.pdf", obj.size)
    assert again == receipt and listing(folder) == ["délibération 12.pdf", "délibération 12.pdf.receipt.json"]


def test_key_auth_folder_layout_xml_metadata_and_done_marker(sftp_server: SftpServer) -> None:
    obj = put(b"%PDF-1.7 arrete")
    sftp = connector(sftp_server, "dossiers", key=True, packaging="folder", metadata="xml", done_marker=True)
    receipt = sftp.deliver(get_store(), obj.key, "arrete-2026-001.pdf", obj.size)
    root = sftp_server.root / "dossiers"
    assert listing(root) == ["arrete-2026-001", "arrete-2026-001.done"]
    assert listing(root / "arrete-2026-001") == ["arrete-2026-001.pdf", "arrete-2026-001.pdf.receipt.xml"]
    assert (root / "arrete-2026-001.done").read_text() == obj.key + "\n"
    xml = (root / "arrete-2026-001" / "arrete-2026-001.pdf.receipt.xml").read_bytes()
    assert f"<sha256>{obj.key}</sha256>".encode() in xml and receipt["name"] == "arrete-2026-001"


def test_zip_layout_and_interrupted_deposit_completed(sftp_server: SftpServer) -> None:
    obj = put(b"%PDF-1.7 budget")
    sftp = connector(sftp_server, "zips", packaging="zip", done_marker=True)
    sftp.deliver(get_store(), obj.key, "budget.pdf", obj.size)
    root = sftp_server.root / "zips"
    assert listing(root) == ["budget.zip", "budget.zip.done"]
    with zipfile.ZipFile(root / "budget.zip") as archive:
        assert archive.read("budget.pdf") == b"%PDF-1.7 budget"
        assert json.loads(archive.read("budget.pdf.receipt.json"))["sha256"] == obj.key
    # A worker died before the marker: the next run recognises the zip and only writes the marker.
    (root / "budget.zip.done").unlink()
    before = (root / "budget.zip").stat().st_mtime_ns
    sftp.deliver(get_store(), obj.key, "budget.pdf", obj.size)
    assert listing(root) == ["budget.zip", "budget.zip.done"] and (root / "budget.zip").stat().st_mtime_ns == before


def test_conflict_policies(sftp_server: SftpServer) -> None:
    first, second, third = put(b"premier"), put(b"second"), put(b"troisieme")
    refuse = connector(sftp_server, "conflits")
    refuse.deliver(get_store(), first.key, "pv.txt", first.size)
    with pytest.raises(Conflict, match=r"porte déjà le nom pv\.txt"):
        refuse.deliver(get_store(), second.key, "pv.txt", second.size)
    root = sftp_server.root / "conflits"
    assert listing(root) == ["pv.txt", "pv.txt.receipt.json"] and (root / "pv.txt").read_bytes() == b"premier"

    suffix = connector(sftp_server, "conflits", on_conflict="suffix")
    assert suffix.deliver(get_store(), second.key, "pv.txt", second.size)["name"] == "pv-1.txt"
    assert suffix.deliver(get_store(), third.key, "pv.txt", third.size)["name"] == "pv-2.txt"
    assert suffix.deliver(get_store(), second.key, "pv.txt", second.size)["name"] == "pv-1.txt"  # found again
    assert (root / "pv-1.txt").read_bytes() == b"second" and (root / "pv-2.txt").read_bytes() == b"troisieme"

    replace = connector(sftp_server, "conflits", on_conflict="replace")
    receipt = replace.deliver(get_store(), third.key, "pv.txt", third.size)
    assert (root / "pv.txt").read_bytes() == b"troisieme"
    assert json.loads((root / "pv.txt.receipt.json").read_text())["sha256"] == third.key == receipt["sha256"]
    assert not [name for name in listing(root) if name.startswith(".")]


def test_replace_a_folder_entry(sftp_server: SftpServer) -> None:
    old, new = put(b"ancienne version"), put(b"nouvelle version")
    sftp = connector(sftp_server, "remplacement", packaging="folder", on_conflict="replace", done_marker=True)
    sftp.deliver(get_store(), old.key, "note.txt", old.size)
    sftp.deliver(get_store(), new.key, "note.txt", new.size)
    root = sftp_server.root / "remplacement"
    assert listing(root) == ["note", "note.done"]
    assert (root / "note" / "note.txt").read_bytes() == b"nouvelle version"
    assert (root / "note.done").read_text() == new.key + "\n"


def test_wrong_host_key_wrong_password_and_unreachable(sftp_server: SftpServer) -> None:
    obj = put(b"contenu")
    other_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    with pytest.raises(Conflict, match="clé d'hôte"):
        connector(sftp_server, "x", host_key=other_key).test()
    bad = SftpConnector(
        "sftp-test",
        {"host": "127.0.0.1", "port": sftp_server.port, "username": "depot", "host_key": sftp_server.host_key},
        {"password": "faux"},
    )
    with pytest.raises(Conflict, match="authentification refusée"):
        bad.deliver(get_store(), obj.key, "a.txt", obj.size)
    closed = connector(sftp_server, "x", port=1)
    with pytest.raises(ServiceUnavailable, match="refuse la connexion"):
        closed.test()
    with pytest.raises(InvalidInput, match="clé d'hôte SFTP illisible"):
        parse_host_key("pas une clé")
    assert parse_host_key(f"[127.0.0.1]:{sftp_server.port} {sftp_server.host_key}")  # known_hosts line accepted
    assert not (sftp_server.root / "x").exists()


def test_corrupted_object_is_not_deposited(sftp_server: SftpServer) -> None:
    content = b"original"
    obj = put(content)
    path = Path(os.environ["SOCLE_DATA_DIR"]) / "objects" / obj.key[:2] / obj.key[2:4] / obj.key
    if not path.exists():
        pytest.fail(f"stored object layout changed: {path}")
    path.chmod(0o644)
    path.write_bytes(b"corrompu")
    with pytest.raises(DigestMismatch):
        connector(sftp_server, "corruption").deliver(get_store(), obj.key, "c.txt", len(content))
    assert listing(sftp_server.root / "corruption") == []


def test_through_the_api_and_the_delivery_job(kit: Kit, sftp_server: SftpServer) -> None:
    config = {
        "host": "127.0.0.1",
        "port": sftp_server.port,
        "username": "depot",
        "password": PASSWORD,
        "host_key": sftp_server.host_key,
        "path": "/api",
        "done_marker": True,
    }
    created = kit["admin"].post("/interop/connectors", json={"name": "sftp", "kind": "sftp", "config": config})
    assert created.status_code == 201, created.text
    assert "password" not in created.json()["config"] and created.json()["secrets"] == ["password"]
    tested = kit["admin"].post("/interop/connectors/sftp/test")
    assert tested.json()["ok"], tested.text
    bad = {**config, "host_key": "ssh-rsa pas-une-cle"}
    refused = kit["admin"].post("/interop/connectors", json={"name": "sftp2", "kind": "sftp", "config": bad})
    assert refused.status_code == 422 and "clé d'hôte" in refused.text
    from test_interop_depot import ask_delivery, sending_transfer, transfer_row

    obj = put(b"%PDF-1.7 via job")
    transfer = sending_transfer(kit)
    ask_delivery(kit, obj, "job.pdf", "cle-sftp-1", transfer, connector="sftp")
    run_jobs()
    assert transfer_row(transfer).status == "delivered"
    assert (sftp_server.root / "api" / "job.pdf").read_bytes() == b"%PDF-1.7 via job"
    assert (sftp_server.root / "api" / "job.pdf.done").exists()
    assert hashlib.sha256((sftp_server.root / "api" / "job.pdf").read_bytes()).hexdigest() == obj.key


def test_the_server_refuses_to_overwrite_a_file_written_meanwhile(sftp_server: SftpServer) -> None:
    from interop.connectors.layout import Layout, deposit

    obj = put(b"%PDF-1.7 le notre")
    folder = sftp_server.root / "course"
    sftp = connector(sftp_server, "course")
    with sftp.session() as target:
        target.makedirs("")
        rename = target.rename

        def racing(source: str, destination: str, *, replace: bool) -> None:
            if destination == "acte.pdf" and not replace:  # another client takes the name just before us
                (folder / "acte.pdf").write_bytes(b"arrive entre-temps")
            rename(source, destination, replace=replace)

        target.rename = racing  # type: ignore[method-assign]
        with pytest.raises(Conflict, match="porte déjà le nom"):
            deposit(target, Layout(), get_store(), obj.key, "acte.pdf", obj.size, connector="sftp-test")
    assert listing(folder) == ["acte.pdf"] and (folder / "acte.pdf").read_bytes() == b"arrive entre-temps"


def test_the_connection_goes_to_the_address_checked_not_to_a_second_lookup(
    sftp_server: SftpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name that resolves to the server for the check, then to the metadata service (« DNS rebinding »)."""
    real, answers = socket.getaddrinfo, iter(["127.0.0.1"])

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "sftp.mairie.test":
            return real(next(answers, "169.254.169.254"), port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    assert "accessible en écriture" in connector(sftp_server, "/arrivee", host="sftp.mairie.test").test()
    with pytest.raises(Conflict, match=r"169\.254\.169\.254"):  # the second lookup's answer: refused before connecting
        connector(sftp_server, "/arrivee", host="sftp.mairie.test").test()


def test_a_name_that_does_not_resolve_is_said_so(sftp_server: SftpServer) -> None:
    with pytest.raises(ServiceUnavailable, match=r"nom introuvable : sftp\.invalid"):
        connector(sftp_server, "/arrivee", host="sftp.invalid").test()
