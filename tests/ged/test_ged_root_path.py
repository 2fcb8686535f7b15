"""The GED served alone behind a reverse proxy that strips its prefix (docs/installation.md: ``/ged/`` →
``socle serve ged --root-path /ged``): every address it gives a client leads back through the proxy."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from socle.app import create_app, create_service
from socle.auth import create_tenant, create_user, issue_token
from socle.db import transaction

from conftest import ROOT, Kit, make_pdf


@pytest.fixture(scope="module")
def ged_alone() -> Any:
    return create_service("ged")


@pytest.fixture
def behind_proxy(ged_alone: Any, kit: Kit) -> Iterator[TestClient]:
    """The archiviste's client, as the ged container sees a request for https://socle.exemple.fr/ged/…: uvicorn
    started with ``root_path="/ged"`` puts the prefix back in front of the path the proxy sent (``/cmis`` →
    ``/ged/cmis``), and the app routes what follows it."""
    headers = {"Authorization": f"Bearer {kit.tokens['archiviste']}"}
    with TestClient(
        ged_alone, base_url="https://socle.exemple.fr", root_path="/ged", headers=headers, raise_server_exceptions=False
    ) as client:
        yield client


def test_cmis_addresses_lead_back_through_the_proxy(behind_proxy: TestClient, kit: Kit) -> None:
    info = behind_proxy.get("/ged/cmis").json()[kit.slug]
    assert info["repositoryUrl"] == f"https://socle.exemple.fr/ged/cmis/{kit.slug}"
    assert info["rootFolderUrl"] == f"https://socle.exemple.fr/ged/cmis/{kit.slug}/root"

    form = {
        "cmisaction": "createDocument",
        "objectId": "root",
        "propertyId[0]": "cmis:name",
        "propertyValue[0]": "Lettre",
        "succinct": "true",
    }
    files = {"content": ("lettre.pdf", make_pdf("lettre"), "application/pdf")}
    created = behind_proxy.post(f"/ged/cmis/{kit.slug}/root", data=form, files=files)
    assert created.status_code == 201, created.text
    object_id = created.json()["succinctProperties"]["cmis:objectId"]
    assert created.headers["location"] == f"https://socle.exemple.fr/ged/cmis/{kit.slug}/root?objectId={object_id}"


def test_an_upload_s_address_leads_back_through_the_proxy(behind_proxy: TestClient) -> None:
    body = {"filename": "acte.pdf", "size": 10, "metadata": {"title": "Arrêté", "document_type": "arrete"}}
    opened = behind_proxy.post("/ged/uploads", json=body)
    assert opened.status_code == 201, opened.text
    assert opened.headers["location"] == f"/ged/uploads/{opened.json()['id']}"


def test_the_same_addresses_without_a_proxy(ged_alone: Any, kit: Kit) -> None:
    """Reached directly (port 8001 on the machine), the GED names its own routes, without a prefix."""
    headers = {"Authorization": f"Bearer {kit.tokens['archiviste']}"}
    with TestClient(ged_alone, headers=headers, raise_server_exceptions=False) as client:
        assert client.get("/cmis").json()[kit.slug]["repositoryUrl"] == f"http://testserver/cmis/{kit.slug}"
        body = {"filename": "acte.pdf", "size": 10, "metadata": {"title": "Arrêté", "document_type": "arrete"}}
        opened = client.post("/uploads", json=body)
        assert opened.headers["location"] == f"/uploads/{opened.json()['id']}"


def test_the_whole_kit_under_a_prefix(kit: Kit) -> None:
    """Two prefixes at once, a server's root path and the mount's (the four services together, which `socle
    serve` itself keeps at the root for the web interface): each appears once."""
    headers = {"Authorization": f"Bearer {kit.tokens['archiviste']}"}
    with TestClient(create_app(), root_path="/socle", headers=headers, raise_server_exceptions=False) as client:
        info = client.get("/socle/ged/cmis").json()[kit.slug]
        assert info["repositoryUrl"] == f"http://testserver/socle/ged/cmis/{kit.slug}"
        body = {"filename": "acte.pdf", "size": 10, "metadata": {"title": "Arrêté", "document_type": "arrete"}}
        opened = client.post("/socle/ged/uploads", json=body)
        assert opened.headers["location"] == f"/socle/ged/uploads/{opened.json()['id']}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_socle_serve_ged_with_its_root_path(tmp_path: Path, use_env: Any) -> None:
    """The real command, as the ged container runs it behind the documented nginx: requests arrive without
    /ged (nginx's proxy_pass strips it), with the public host and scheme in their headers."""
    data = tmp_path / "data"
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "socle", "serve", "ged", "--port", str(port), "--root-path", "/ged"],
        cwd=ROOT,
        env={**os.environ, "SOCLE_DATA_DIR": str(data)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # a bound on the wait (migrations, then uvicorn), not a measure
            if process.poll() is not None:
                pytest.fail(f"socle serve s'est arrêté : {process.stderr.read().decode() if process.stderr else ''}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "socle serve n'a pas répondu en 60 s"
            time.sleep(0.2)
        use_env(SOCLE_DATA_DIR=str(data))  # the server's own database, migrated by it
        with transaction() as session:
            tenant = create_tenant(session, "commune-proxy", "Commune du Proxy", "213700001")
            token = issue_token(session, create_user(session, tenant, "alix", "Alix", ["archiviste"]), "proxy")
        proxied = {
            "Authorization": f"Bearer {token}",
            "Host": "socle.exemple.fr",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": "192.0.2.7",
        }
        info = httpx.get(f"{base}/cmis", headers=proxied).json()["commune-proxy"]
        assert info["repositoryUrl"] == "https://socle.exemple.fr/ged/cmis/commune-proxy"
        assert info["rootFolderUrl"] == "https://socle.exemple.fr/ged/cmis/commune-proxy/root"
        body = {"filename": "acte.pdf", "size": 10, "metadata": {"title": "Arrêté", "document_type": "arrete"}}
        opened = httpx.post(f"{base}/uploads", json=body, headers=proxied)
        assert opened.status_code == 201, opened.text
        assert opened.headers["location"] == f"/ged/uploads/{opened.json()['id']}"
        assert httpx.head(f"{base}/uploads/{opened.json()['id']}", headers=proxied).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
