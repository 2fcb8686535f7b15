"""The CMIS connector (external GED) against the CMIS simulator, and against the GED's own CMIS server.

Both are real HTTP servers on 127.0.0.1 (uvicorn): the simulator written from the Browser Binding, and the
whole socle app, whose GED answers CMIS under /ged/cmis.
"""

from __future__ import annotations

import hashlib
import io
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from interop.connectors.cmis import CmisConnector
from interop.simulators.cmis import CmisRepository, create_app
from interop.simulators.common import RunningServer, serve_in_thread
from socle.errors import Conflict, ServiceUnavailable
from socle.storage import StoredObject, get_store

from conftest import Kit, make_pdf, run_jobs


@pytest.fixture
def simulator() -> Iterator[tuple[CmisRepository, str]]:
    repository = CmisRepository()
    repository.state.scenario.hang_seconds = 3
    server = serve_in_thread(create_app(repository))
    yield repository, f"{server.url}/cmis"
    server.stop()


def put(content: bytes) -> StoredObject:
    return get_store().put(io.BytesIO(content))


def connector(url: str, **config: Any) -> CmisConnector:
    return CmisConnector("ged-externe", {"url": url, "folder": "/Actes/2026", "timeout": 2, **config}, {})


def documents(repository: CmisRepository) -> dict[str, bytes]:
    return {
        repository.path_of(obj): obj.content or b""
        for obj in repository.objects.values()
        if obj.base_type == "cmis:document"
    }


def test_creates_folders_and_document_once(simulator: tuple[CmisRepository, str]) -> None:
    repository, url = simulator
    content = b"%PDF-1.7 deliberation"
    obj = put(content)
    cmis = connector(url)
    assert "dossier /Actes/2026" in cmis.test()
    receipt = cmis.deliver(get_store(), obj.key, "Délibération 2026-12.pdf", obj.size)
    assert documents(repository) == {"/Actes/2026/Délibération 2026-12.pdf": content}
    created = repository.by_path("/Actes/2026/Délibération 2026-12.pdf")
    assert created is not None and receipt["object_id"] == created.id and receipt["repository"] == "simulateur"
    assert created.media_type == "application/pdf" and receipt["path"] == "/Actes/2026/Délibération 2026-12.pdf"
    creations = repository.requests["create"]
    again = cmis.deliver(get_store(), obj.key, "Délibération 2026-12.pdf", obj.size)
    assert again["object_id"] == receipt["object_id"] and repository.requests["create"] == creations  # not resent
    other = put(b"%PDF-1.7 autre contenu")
    with pytest.raises(Conflict, match="un autre document porte déjà le nom"):
        cmis.deliver(get_store(), other.key, "Délibération 2026-12.pdf", other.size)
    assert len(documents(repository)) == 1


def test_checksum_property_finds_a_renamed_document(simulator: tuple[CmisRepository, str]) -> None:
    repository, url = simulator
    obj = put(b"%PDF-1.7 arrete")
    cmis = connector(url, checksum_property="cmis:description")
    receipt = cmis.deliver(get_store(), obj.key, "arrete.pdf", obj.size)
    created = repository.objects[receipt["object_id"]]
    assert created.description == f"sha256:{obj.key}"
    created.name = "Arrêté renommé par un agent.pdf"  # someone renamed it in the GED since
    again = cmis.deliver(get_store(), obj.key, "arrete.pdf", obj.size)
    assert again["object_id"] == created.id and repository.requests["query"] >= 1
    assert len(documents(repository)) == 1


def test_answer_lost_after_creation_is_not_a_duplicate(simulator: tuple[CmisRepository, str]) -> None:
    repository, url = simulator
    obj = put(b"%PDF-1.7 budget")
    cmis = connector(url)
    cmis.test()  # folders made first: the fault below hits the document's creation
    repository.state.scenario.update({"faults": {"create": ["accept_then_timeout"]}})
    with pytest.raises(ServiceUnavailable, match="délai dépassé"):
        cmis.deliver(get_store(), obj.key, "budget.pdf", obj.size)
    assert len(documents(repository)) == 1  # the GED has it, the connector does not know
    receipt = cmis.deliver(get_store(), obj.key, "budget.pdf", obj.size)  # the job's retry
    assert len(documents(repository)) == 1 and receipt["object_id"] == repository.by_path("/Actes/2026/budget.pdf").id  # type: ignore[union-attr]


def test_faults_and_refusals(simulator: tuple[CmisRepository, str]) -> None:
    repository, url = simulator
    obj = put(b"%PDF-1.7 x")
    repository.state.scenario.update({"faults": {"repository": ["500", "html", "malformed"]}})
    for expected in ("runtime — erreur interne simulée", "pas répondu en JSON", "pas répondu en JSON"):
        with pytest.raises(ServiceUnavailable, match=expected):
            connector(url).deliver(get_store(), obj.key, "x.pdf", obj.size)
    with pytest.raises(Conflict, match="n'existe pas dans la GED"):
        connector(url, create_folders=False).deliver(get_store(), obj.key, "x.pdf", obj.size)
    with pytest.raises(Conflict, match="dépôt CMIS « autre » inconnu"):
        connector(url, repository_id="autre").test()
    repository.credentials = ("ged", "secret")
    with pytest.raises(Conflict, match="permissionDenied"):
        connector(url).test()
    authenticated = CmisConnector(
        "ged-externe", {"url": url, "folder": "/", "username": "ged", "timeout": 2}, {"password": "secret"}
    )
    assert authenticated.deliver(get_store(), obj.key, "x.pdf", obj.size)["path"] == "/x.pdf"
    with pytest.raises(ServiceUnavailable, match="injoignable"):
        connector("http://127.0.0.1:1/cmis").test()


def test_through_the_api_and_the_job(kit: Kit, simulator: tuple[CmisRepository, str]) -> None:
    repository, url = simulator
    bad = {"url": url, "folder": "/Actes/../secret"}
    refused = kit["admin"].post("/interop/connectors", json={"name": "ged", "kind": "cmis", "config": bad})
    assert refused.status_code == 422 and "« .. »" in refused.text
    config = {"url": url, "folder": "Courrier/Arrivée/", "username": "ged", "password": "secret"}
    created = kit["admin"].post("/interop/connectors", json={"name": "ged", "kind": "cmis", "config": config})
    assert created.status_code == 201, created.text
    assert created.json()["config"]["folder"] == "/Courrier/Arrivée" and created.json()["secrets"] == ["password"]
    repository.credentials = ("ged", "secret")
    from test_interop_depot import ask_delivery, sending_transfer, transfer_row

    obj = put(b"%PDF-1.7 courrier")
    repository.state.scenario.update({"faults": {"create": ["500"]}})  # down once: the job is retried
    transfer = sending_transfer(kit)
    ask_delivery(kit, obj, "courrier.pdf", "cle-cmis-1", transfer, connector="ged")
    run_jobs()
    assert transfer_row(transfer).status == "delivered"
    assert documents(repository) == {"/Courrier/Arrivée/courrier.pdf": b"%PDF-1.7 courrier"}


@pytest.fixture(scope="module")
def socle_server(app: Any) -> Iterator[RunningServer]:
    server = serve_in_thread(app)
    yield server
    server.stop()


def test_against_the_ged_own_cmis_server(kit: Kit, socle_server: RunningServer) -> None:
    pdf = make_pdf("Délibération envoyée par CMIS")
    obj = put(pdf)
    config = {"url": f"{socle_server.url}/ged/cmis", "folder": "/Interop CMIS", "username": "admin", "timeout": 30}
    cmis = CmisConnector("ged-socle", config, {"password": kit.tokens["admin"]})
    assert "joignable" in cmis.test()
    receipt = cmis.deliver(get_store(), obj.key, "deliberation.pdf", obj.size)
    assert receipt["repository"] == kit.slug and receipt["object_id"]
    # Read back through the GED's CMIS (another client): the document is there with the same bytes.
    auth = httpx.BasicAuth("admin", kit.tokens["admin"])
    root = f"{socle_server.url}/ged/cmis/{kit.slug}/root"
    content = httpx.get(f"{root}/Interop CMIS/deliberation.pdf", params={"cmisselector": "content"}, auth=auth)
    assert content.status_code == 200 and hashlib.sha256(content.content).hexdigest() == obj.key
    again = cmis.deliver(get_store(), obj.key, "deliberation.pdf", obj.size)
    assert again["object_id"] == receipt["object_id"]
    children = httpx.get(f"{root}/Interop CMIS", params={"cmisselector": "children"}, auth=auth).json()
    assert children["numItems"] == 1


def test_the_simulate_command_serves_a_cmis_repository() -> None:
    """``socle interop simulate cmis``: what a municipality runs to rehearse its CMIS set-up."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    command = [str(Path(sys.executable).with_name("socle")), "interop", "simulate", "cmis", "--port", str(port)]
    command += ["--user", "ged", "--password", "secret", "--fault", "create=500"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/cmis"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, "le simulateur n'a pas démarré"
                time.sleep(0.1)
        obj = put(b"%PDF-1.7 repetition")
        cmis = CmisConnector("r", {"url": url, "folder": "/Repetition", "username": "ged"}, {"password": "secret"})
        with pytest.raises(ServiceUnavailable, match="runtime"):  # the fault asked on the command line
            cmis.deliver(get_store(), obj.key, "essai.pdf", obj.size)
        assert cmis.deliver(get_store(), obj.key, "essai.pdf", obj.size)["path"] == "/Repetition/essai.pdf"
        held = httpx.get(f"http://127.0.0.1:{port}/_simulateur").json()["objets"]
        assert held["/Repetition/essai.pdf"]["taille"] == obj.size
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert "Simulateur cmis sur http://127.0.0.1" in output
