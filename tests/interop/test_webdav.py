"""The WebDAV dépôt connector against a real WebDAV server: wsgidav served by cheroot over TLS on 127.0.0.1."""

from __future__ import annotations

import io
import json
import logging
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from smtp import _tls_material
from wsgidav.wsgidav_app import WsgiDAVApp

from interop.connectors.webdav import WebdavConnector
from socle.errors import Conflict, ServiceUnavailable
from socle.storage import StoredObject, get_store

from conftest import Kit, run_jobs

PASSWORD = "mot-de-passe-webdav"


@dataclass
class DavServer:
    url: str  # the share's URL, https://127.0.0.1:port/depot
    root: Path
    ca_file: Path


@pytest.fixture(scope="module")
def dav_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DavServer]:
    root = tmp_path_factory.mktemp("dav-root")
    tls = tmp_path_factory.mktemp("dav-tls")
    ca_file, _context = _tls_material(tls)
    app = WsgiDAVApp(
        {
            "provider_mapping": {"/depot": str(root)},
            "simple_dc": {"user_mapping": {"*": {"depot": {"password": PASSWORD}}}},
            "http_authenticator": {"accept_basic": True, "accept_digest": False, "default_to_digest": False},
            "lock_storage": True,
            "verbose": 0,
            "logging": {"enable": False},
        }
    )
    logging.getLogger("wsgidav").setLevel(logging.WARNING)
    server = wsgi.Server(("127.0.0.1", 0), app, numthreads=4)
    server.ssl_adapter = BuiltinSSLAdapter(str(tls / "server.pem"), str(tls / "server.key"))
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    port = server.bind_addr[1]
    yield DavServer(url=f"https://127.0.0.1:{port}/depot", root=root, ca_file=ca_file)
    server.stop()
    thread.join(10)


def connector(server: DavServer, folder: str, password: str = PASSWORD, **config: Any) -> WebdavConnector:
    settings = {"url": f"{server.url}/{folder}", "username": "depot", "ca_file": str(server.ca_file), "timeout": 10}
    return WebdavConnector("dav-test", {**settings, **config}, {"password": password})


def put(content: bytes) -> StoredObject:
    return get_store().put(io.BytesIO(content))


def listing(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir()) if folder.exists() else []


def test_deposit_in_nested_collection_then_idempotent(dav_server: DavServer) -> None:
    content = b"%PDF-1.7 " + bytes(range(256)) * 300
    obj = put(content)
    dav = connector(dav_server, "services/urbanisme")
    assert "accessible en écriture" in dav.test()
    receipt = dav.deliver(get_store(), obj.key, "permis de construire #4.pdf", obj.size)
    folder = dav_server.root / "services" / "urbanisme"
    # The unsafe « # » is replaced; the space survives, percent-encoded on the wire.
    assert listing(folder) == ["permis de construire _4.pdf", "permis de construire _4.pdf.receipt.json"]
    assert (folder / "permis de construire _4.pdf").read_bytes() == content
    assert json.loads((folder / "permis de construire _4.pdf.receipt.json").read_text()) == receipt
    assert receipt["path"] == "/depot/services/urbanisme/permis de construire _4.pdf"
    assert dav.deliver(get_store(), obj.key, "permis de construire #4.pdf", obj.size) == receipt
    assert len(listing(folder)) == 2


def test_folder_zip_marker_and_policies(dav_server: DavServer) -> None:
    one, two = put(b"version 1"), put(b"version 2")
    folder_dav = connector(dav_server, "dossiers", packaging="folder", metadata="xml", done_marker=True)
    folder_dav.deliver(get_store(), one.key, "avis.txt", one.size)
    root = dav_server.root / "dossiers"
    assert listing(root) == ["avis", "avis.done"]
    assert listing(root / "avis") == ["avis.txt", "avis.txt.receipt.xml"]
    with pytest.raises(Conflict, match="porte déjà le nom avis"):
        folder_dav.deliver(get_store(), two.key, "avis.txt", two.size)
    replacing = connector(
        dav_server, "dossiers", packaging="folder", metadata="xml", done_marker=True, on_conflict="replace"
    )
    replacing.deliver(get_store(), two.key, "avis.txt", two.size)
    assert (root / "avis" / "avis.txt").read_bytes() == b"version 2" and listing(root) == ["avis", "avis.done"]
    assert (root / "avis.done").read_text() == two.key + "\n"

    zipped = connector(dav_server, "zips", packaging="zip", on_conflict="suffix")
    assert zipped.deliver(get_store(), one.key, "pv.txt", one.size)["name"] == "pv.zip"
    assert zipped.deliver(get_store(), two.key, "pv.txt", two.size)["name"] == "pv-1.zip"
    assert zipped.deliver(get_store(), one.key, "pv.txt", one.size)["name"] == "pv.zip"  # recognised, not pv-2
    assert listing(dav_server.root / "zips") == ["pv-1.zip", "pv.zip"]
    with zipfile.ZipFile(dav_server.root / "zips" / "pv-1.zip") as archive:
        assert archive.read("pv.txt") == b"version 2" and "pv.txt.receipt.json" in archive.namelist()


def test_refusals_and_unreachable(dav_server: DavServer, tmp_path: Path) -> None:
    obj = put(b"contenu")
    with pytest.raises(Conflict, match="refuse l'accès \\(401"):
        connector(dav_server, "refus", password="faux").deliver(get_store(), obj.key, "a.txt", obj.size)
    untrusted = tmp_path / "autre-ca.pem"
    untrusted.write_bytes(_tls_material(tmp_path)[0].read_bytes())  # another CA: the server is not trusted
    with pytest.raises(Conflict, match="certificat du serveur refusé"):  # not retried: it would not change
        connector(dav_server, "refus", ca_file=str(untrusted)).test()
    with pytest.raises(ServiceUnavailable, match="injoignable"):
        WebdavConnector("x", {"url": "https://127.0.0.1:1/depot", "timeout": 2}, {}).test()
    assert not (dav_server.root / "refus").exists()


def test_through_the_api_and_the_delivery_job(kit: Kit, dav_server: DavServer) -> None:
    config = {
        "url": f"{dav_server.url}/api",
        "username": "depot",
        "password": PASSWORD,
        "ca_file": str(dav_server.ca_file),
        "done_marker": True,
    }
    created = kit["admin"].post("/interop/connectors", json={"name": "dav", "kind": "webdav", "config": config})
    assert created.status_code == 201, created.text
    assert created.json()["secrets"] == ["password"] and PASSWORD not in created.text
    assert kit["admin"].post("/interop/connectors/dav/test").json()["ok"]
    from test_interop_depot import ask_delivery, sending_transfer, transfer_row

    obj = put(b"%PDF-1.7 via job webdav")
    transfer = sending_transfer(kit)
    ask_delivery(kit, obj, "job.pdf", "cle-dav-1", transfer, connector="dav")
    run_jobs()
    assert transfer_row(transfer).status == "delivered"
    assert listing(dav_server.root / "api") == ["job.pdf", "job.pdf.done", "job.pdf.receipt.json"]


def test_the_server_refuses_to_overwrite_a_file_written_meanwhile(dav_server: DavServer) -> None:
    from interop.connectors.layout import Layout, deposit

    obj = put(b"%PDF-1.7 le notre")
    folder = dav_server.root / "course"
    dav = connector(dav_server, "course")
    with dav.session() as target:
        target.makedirs("")
        rename = target.rename

        def racing(source: str, destination: str, *, replace: bool) -> None:
            if destination == "acte.pdf" and not replace:  # another client takes the name just before us
                (folder / "acte.pdf").write_bytes(b"arrive entre-temps")
            rename(source, destination, replace=replace)

        target.rename = racing  # type: ignore[method-assign]
        with pytest.raises(Conflict, match="porte déjà le nom"):
            deposit(target, Layout(), get_store(), obj.key, "acte.pdf", obj.size, connector="dav-test")
    assert listing(folder) == ["acte.pdf"] and (folder / "acte.pdf").read_bytes() == b"arrive entre-temps"
