"""The signature stage of the flows against a real socle app served on 127.0.0.1 (the « other » parapheur).

« signature » flows (documents à signer → parapheur → signed documents → GED), and « actes » / « helios » flows that
start with it (→ S²LOW simulator → ARActe / PES Acquit → GED). The kit's users act on the folder (visa, sign,
reject) through the parapheur's API, as people would.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from parapheur_kit import Standard, act, folder_of, ok, typology
from s2low_helpers import (
    S2low,
    act_request,
    add_s2low,
    drive,
    events,
    flow_of,
    plan_folder,
    start,
    step_jobs,
    steps_now,
    store,
)
from sqlalchemy import select

from ged.models import Document, Version
from interop import flows
from interop.connectors.parapheur import MARKER, send_id
from interop.simulators.common import RunningServer, serve_in_thread
from socle import queue
from socle.db import new_session, transaction, utcnow
from socle.models import AuditEntry, Job
from socle.storage import get_store

from conftest import ROOT, Kit, assert_problem, make_pdf, pdfsig, run_jobs

PES = (
    '<?xml version="1.0" encoding="ISO-8859-1"?>\n'
    '<n:PES_Aller xmlns:n="http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/aller">\n'
    '  <EnTetePES><DteStr V="2026-11-30"/><IdColl V="21370000000017"/></EnTetePES>\n'
    "  <PES_DepenseAller>\n"
    '    <Bordereau Id="BORD-SIG-1"><BlocBordereau><Exer V="2026"/><IdBord V="1"/>'
    '<MtBordHT V="318.40"/></BlocBordereau><Piece><BlocPiece><ObjPce V="Matériel de l\'école"/></BlocPiece>'
    "</Piece></Bordereau>\n"
    "  </PES_DepenseAller>\n"
    "</n:PES_Aller>\n"
).encode("iso-8859-1")


class Hanging:
    """An ASGI wrapper of the app that counts the folder uploads and, while ``hang`` = (method, path) is set,
    serves such a request then holds its answer back (the other instance did the work; the caller never learns)."""

    def __init__(self, app: Any) -> None:
        self.app, self.hang, self.uploads = app, ("", ""), 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (scope["method"], scope["path"]) == ("POST", "/parapheur/folders/upload"):
            self.uploads += 1
        if scope["type"] != "http" or (scope["method"], scope["path"]) != self.hang:
            await self.app(scope, receive, send)
            return
        held: list[dict[str, Any]] = []

        async def keep(message: dict[str, Any]) -> None:
            held.append(message)

        await self.app(scope, receive, keep)
        self.hang = ("served", scope["path"])  # the test sees the work is done; later requests pass
        await asyncio.sleep(120)  # the worker is killed meanwhile
        for message in held:
            await send(message)


@pytest.fixture(scope="module")
def hanging(app: Any) -> Iterator[tuple[RunningServer, Hanging]]:
    wrapper = Hanging(app)
    server = serve_in_thread(wrapper)
    yield server, wrapper
    server.stop()


@pytest.fixture
def remote(hanging: tuple[RunningServer, Hanging]) -> RunningServer:
    hanging[1].hang = ("", "")
    return hanging[0]


def killed_worker(job_id: str, wrapper: Hanging, method: str, path: str) -> None:
    """Run the job in a worker process; kill it once the parapheur has served ``method path`` (answer held)."""
    wrapper.hang = (method, path)
    worker = subprocess.Popen(
        [sys.executable, "-c", f"from socle.queue import execute; execute({job_id!r})"],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while wrapper.hang[0] != "served":
            assert worker.poll() is None and time.monotonic() < deadline, f"le worker n'a pas appelé {path}"
            time.sleep(0.05)
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    wrapper.hang = ("", "")
    with transaction() as session:  # the sweeper finds the dead worker's job once its timeout has passed
        job = session.get(Job, job_id)
        assert job is not None and job.status == queue.RUNNING
        job.started_at = utcnow() - timedelta(hours=2)


pytestmark = pytest.mark.usefixtures("actes_schemas")


def add_parapheur(kit: Kit, remote: RunningServer, subtype_id: str, name: str = "cdg", **extra: Any) -> None:
    """A parapheur connector; its « signature » flows file the signed documents in the GED folder « Signés »."""
    plan_folder(kit, "Signés")
    config = {
        "url": remote.url,
        "token": kit.tokens["agent"],
        "subtype_id": subtype_id,
        "title": "Signature : $filename",
        "retry_policy": "60s X 30",  # tick() runs the checks: no check may fall due by itself on a slow machine
        "timeout": 30,
        "ged_folder": "Signés",
    }
    body = {"name": name, "kind": "parapheur", "config": config | extra}
    created = kit["admin"].post("/interop/connectors", json=body)
    assert created.status_code == 201, created.text


def tick(flow_id: str) -> str:
    """The flow's due steps run now (the policy's delay skipped); its state afterwards."""
    steps_now(flow_id)
    run_jobs()
    return flow_of(flow_id).state


def signed_folder(kit: Kit, flow_id: str) -> dict[str, Any]:
    return folder_of(kit, str(flow_of(flow_id).data["folder_id"]))


def pdf_document(content: bytes, tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return pdfsig(path)


def read(key: str) -> bytes:
    with get_store().open(key) as stream:
        return stream.read()


def test_documents_are_signed_on_the_parapheur_then_filed_in_the_ged(
    kit: Kit, remote: RunningServer, tmp_path: Path
) -> None:
    setup = Standard(kit)
    add_parapheur(kit, remote, setup.visa_then_sign)
    originals = [store(make_pdf("Convention de mise à disposition"), kit), store(make_pdf("Avenant n° 1"), kit)]
    documents = [
        {"object_key": originals[0].key, "sha256": originals[0].key, "filename": "convention.pdf"},
        {"object_key": originals[1].key, "filename": "avenant.pdf"},
    ]
    body = {"kind": "signature", "connector": "cdg", "documents": documents, "metadata": {"objet": "Convention"}}
    flow_id = start(kit, body)
    run_jobs()
    assert flow_of(flow_id).state == "au parapheur"
    folder = signed_folder(kit, flow_id)
    assert folder["title"] == "Signature : convention.pdf" and folder["status"] == "in_progress"
    assert folder["metadata"] == {MARKER: send_id("cdg", f"flow:{flow_id}")}
    assert [doc["sha256"] for doc in folder["documents"]] == [originals[0].key, originals[1].key]

    assert tick(flow_id) == "au parapheur : étape 1 sur 2"
    assert tick(flow_id) == "au parapheur : étape 1 sur 2"  # nothing new: one more try, no transition
    assert flow_of(flow_id).status == "waiting" and flow_of(flow_id).checks == 1
    shown = kit["agent"].get(f"/interop/flows/{flow_id}").json()
    assert shown["state"] == "au parapheur : étape 1 sur 2"
    ok(act(kit, "agent", folder["id"], "visa"))
    assert tick(flow_id) == "au parapheur : étape 2 sur 2"
    ok(act(kit, "maire", folder["id"], "sign"))
    run_jobs()
    flow = drive(flow_id)
    assert (flow.status, flow.state) == ("done", "classé"), flow.error

    states = [event.to_state for event in events(flow_id)]
    assert states == [
        "nouveau",
        "au parapheur",
        "au parapheur : étape 1 sur 2",
        "au parapheur : étape 2 sur 2",
        "classement GED",
        "classé",
    ]
    signed = signed_folder(kit, flow_id)["documents"]
    keys = [doc["object_key"] for doc in flow.documents]
    assert keys == [doc["current_sha256"] for doc in signed] and not set(keys) & {o.key for o in originals}
    assert [doc["object_key"] for doc in flow.data["unsigned_documents"]] == [o.key for o in originals]
    for key in keys:
        assert hashlib.sha256(read(key)).hexdigest() == key
        assert "Signature is Valid" in pdf_document(read(key), tmp_path, f"{key[:8]}.pdf")
    signed_in = plan_folder(kit, "Signés")
    with new_session() as session:
        filed = flow.data["ged_documents"]
        versions = session.execute(select(Version).where(Version.document_id.in_(list(filed.values())))).scalars()
        assert sorted((v.origin, v.object_key) for v in versions) == sorted(
            [(f"interop:{flow_id}:document-1", keys[0]), (f"interop:{flow_id}:document-2", keys[1])]
        )
        # In the folder the parapheur connector names (« Signés »), never at the root of the plan.
        in_folders = session.execute(select(Document.folder_id).where(Document.id.in_(list(filed.values()))))
        assert set(in_folders.scalars()) == {signed_in}
        audited = session.execute(
            select(AuditEntry.action).where(AuditEntry.tenant_id == kit.tenant_id, AuditEntry.object_id == flow_id)
        ).scalars()
        assert list(audited).count("interop.flow.transition") == len(states)
    assert ok(kit["agent"].get("/parapheur/folders", params={"subtype_id": setup.visa_then_sign})) != []
    assert len(ok(kit["agent"].get("/parapheur/folders", params={"subtype_id": setup.visa_then_sign}))) == 1


def test_a_rejected_folder_ends_the_flow_rejete_with_its_reason(kit: Kit, remote: RunningServer) -> None:
    setup = Standard(kit)
    add_parapheur(kit, remote, setup.sign_only)
    obj = store(make_pdf("Arrêté de voirie à rejeter"), kit)
    documents = [{"object_key": obj.key, "filename": "arrete.pdf"}]
    flow_id = start(kit, {"kind": "signature", "connector": "cdg", "documents": documents})
    run_jobs()
    ok(act(kit, "maire", str(flow_of(flow_id).data["folder_id"]), "reject", {"reason": "Montant erroné"}))
    assert tick(flow_id) == "rejeté"
    flow = flow_of(flow_id)
    assert flow.status == "done" and flow.data["rejection_reason"] == "Montant erroné"
    assert "ged_documents" not in flow.data and flow.documents[0]["object_key"] == obj.key
    last = events(flow_id)[-1]
    assert (last.from_state, last.to_state, last.message) == (
        "au parapheur",
        "rejeté",
        "rejeté au parapheur : Montant erroné",
    )
    done = kit["agent"].get("/interop/flows", params={"state": "rejeté"}).json()
    assert [row["id"] for row in done] == [flow_id]


def test_an_act_is_signed_then_sent_to_the_prefecture_and_its_aracte_filed(
    kit: Kit, remote: RunningServer, sim: S2low, tmp_path: Path
) -> None:
    setup = Standard(kit)
    add_s2low(kit, sim)
    add_parapheur(kit, remote, setup.sign_only)
    sim.scenario(pending_checks=1)
    body = act_request(kit, "DEL_S1", annexes=1)
    body["metadata"]["signature"] = {"connector": "cdg"}
    act_key, annex_key = (doc["object_key"] for doc in body["documents"])
    flow_id = start(kit, body)
    run_jobs()
    folder = signed_folder(kit, flow_id)
    roles = [(doc["role"], doc["sha256"]) for doc in folder["documents"]]
    assert roles == [("main", act_key), ("annex", annex_key)]  # the annex goes along, unsigned
    assert tick(flow_id) == "au parapheur : étape 1 sur 1"
    assert sim.state.sends == {}  # nothing goes to the prefecture before the signature
    ok(act(kit, "maire", folder["id"], "sign"))
    run_jobs()
    flow = drive(flow_id)
    assert (flow.status, flow.state) == ("done", "classé"), flow.error
    states = [event.to_state for event in events(flow_id)]
    assert states[:5] == ["nouveau", "au parapheur", "au parapheur : étape 1 sur 1", "signé", "prêt"]
    assert states[-2:] == ["classement GED", "classé"] and "posté" in states
    assert sim.sends("037-213700000-20261130-DEL_S1-DE") == 1
    signed_key = flow.documents[0]["object_key"]
    assert signed_key == signed_folder(kit, flow_id)["documents"][0]["current_sha256"] != act_key
    assert flow.documents[1]["object_key"] == annex_key
    assert "Signature is Valid" in pdf_document(read(signed_key), tmp_path, "acte-signe.pdf")
    # The @ctes package sent to S²LOW holds the signed act, not the one before the signature.
    with tarfile.open(fileobj=io.BytesIO(read(flow.data["package_key"]))) as archive:
        sent = {hashlib.sha256(archive.extractfile(m).read()).hexdigest() for m in archive.getmembers() if m.isfile()}  # type: ignore[union-attr]
    assert signed_key in sent and act_key not in sent and annex_key in sent
    assert "aracte" in flow.data["ged_documents"]


def xades_subtype(kit: Kit, setup: Standard, circuit: list[dict[str, Any]]) -> str:
    return typology(kit, circuit, signature_format="xades", type_name="PES", name="Mandats")


def test_a_pes_is_signed_xades_then_sent_and_its_acquit_filed(kit: Kit, remote: RunningServer, sim: S2low) -> None:
    setup = Standard(kit)
    add_s2low(kit, sim, fetch=False)
    add_parapheur(kit, remote, xades_subtype(kit, setup, [{"kind": "signature", "desk_ids": [setup.maire]}]))
    pes = store(PES, kit)
    body = {
        "kind": "helios",
        "connector": "tdt",
        "documents": [{"object_key": pes.key, "filename": "PESALR2_SIG_001.xml"}],
        "metadata": {"signature": {"connector": "cdg"}},
    }
    flow_id = start(kit, body)
    run_jobs()
    assert tick(flow_id) == "au parapheur : étape 1 sur 1"
    ok(act(kit, "maire", str(flow_of(flow_id).data["folder_id"]), "sign"))
    run_jobs()
    flow = drive(flow_id)
    assert (flow.status, flow.state) == ("done", "classé"), flow.error
    assert sim.sends("PESALR2_SIG_001.xml") == 1
    states = [event.to_state for event in events(flow_id)]
    assert states[:5] == ["nouveau", "au parapheur", "au parapheur : étape 1 sur 1", "signé", "prêt"]
    signed = read(flow.documents[0]["object_key"])
    assert b"SignedProperties" in signed and b'URI="#BORD-SIG-1"' in signed and b"<ds:Signature" in signed
    assert set(flow.data["ged_documents"]) == {"acquit"}


def test_a_pes_back_unsigned_is_refused_before_the_tdt(kit: Kit, remote: RunningServer, sim: S2low) -> None:
    setup = Standard(kit)
    add_s2low(kit, sim, fetch=False)
    add_parapheur(kit, remote, xades_subtype(kit, setup, [{"kind": "visa", "desk_ids": [setup.secretariat]}]))
    pes = store(PES, kit)
    body = {
        "kind": "helios",
        "connector": "tdt",
        "documents": [{"object_key": pes.key, "filename": "PES_VISA.xml"}],
        "metadata": {"signature": {"connector": "cdg"}},
    }
    flow_id = start(kit, body)
    run_jobs()
    ok(act(kit, "agent", str(flow_of(flow_id).data["folder_id"]), "visa"))
    flow = drive(flow_id)
    assert flow.status == "error" and "PES Aller non signé" in (flow.error or ""), flow.error
    assert flow.state == "signé" and flow.documents[0]["object_key"] == pes.key
    assert sim.state.sends == {}


def test_bad_requests_are_refused_at_once(kit: Kit, remote: RunningServer, sim: S2low) -> None:
    setup = Standard(kit)
    add_s2low(kit, sim)
    add_parapheur(kit, remote, setup.sign_only)
    obj = store(make_pdf("Refus"), kit)
    documents = [{"object_key": obj.key, "filename": "a.pdf"}]
    wrong = kit["agent"].post("/interop/flows", json={"kind": "signature", "connector": "tdt", "documents": documents})
    assert "connecteur de parapheur" in assert_problem(wrong, 422)["detail"]
    body = act_request(kit, "DEL_S2")
    body["metadata"]["signature"] = {"connector": "tdt"}
    assert (
        "n'est pas un connecteur de parapheur"
        in assert_problem(kit["agent"].post("/interop/flows", json=body), 422)["detail"]
    )
    body["metadata"]["signature"] = "cdg"
    assert (
        "« signature » doit être un objet"
        in assert_problem(kit["agent"].post("/interop/flows", json=body), 422)["detail"]
    )
    body["metadata"]["signature"] = {"connector": "absent"}
    assert_problem(kit["agent"].post("/interop/flows", json=body), 404)
    kit["admin"].post("/interop/connectors", json={"name": "depot", "kind": "depot", "config": {}})
    depot = {
        "kind": "depot",
        "connector": "depot",
        "documents": documents,
        "metadata": {"signature": {"connector": "cdg"}},
    }
    assert "signature réservée" in assert_problem(kit["agent"].post("/interop/flows", json=depot), 422)["detail"]
    bad_policy = {"url": remote.url, "token": "t", "subtype_id": setup.sign_only, "retry_policy": "souvent"}
    refused = kit["admin"].post("/interop/connectors", json={"name": "p2", "kind": "parapheur", "config": bad_policy})
    assert refused.status_code == 422 and "politique de relance illisible" in refused.text
    # A parapheur connector that names no GED folder: its signed documents could not be filed, refused now.
    unfiled = {"url": remote.url, "token": "t", "subtype_id": setup.sign_only}
    created = kit["admin"].post("/interop/connectors", json={"name": "p3", "kind": "parapheur", "config": unfiled})
    assert created.status_code == 201, created.text
    signature = {"kind": "signature", "connector": "p3", "documents": documents}
    refused_flow = assert_problem(kit["agent"].post("/interop/flows", json=signature), 422)["detail"]
    assert "« p3 » ne désigne aucun dossier de la GED" in refused_flow and "ged_folder" in refused_flow
    assert ok(kit["agent"].get("/parapheur/folders")) == []


def test_a_worker_killed_while_creating_or_following_makes_no_second_folder(
    kit: Kit, hanging: tuple[RunningServer, Hanging]
) -> None:
    server, wrapper = hanging
    setup = Standard(kit)
    add_parapheur(kit, server, setup.sign_only, timeout=120)
    obj = store(make_pdf("Arrêté signé malgré des workers tués"), kit)
    documents = [{"object_key": obj.key, "filename": "arrete.pdf"}]
    flow_id = start(kit, {"kind": "signature", "connector": "cdg", "documents": documents})
    uploads, creation = wrapper.uploads, step_jobs(flow_id)[0].id

    # The parapheur creates the folder but its answer never comes: the worker is killed while it waits.
    killed_worker(creation, wrapper, "POST", "/parapheur/folders/upload")
    assert wrapper.uploads == uploads + 1 and "folder_id" not in flow_of(flow_id).data
    run_jobs()
    folders = ok(kit["agent"].get("/parapheur/folders", params={"subtype_id": setup.sign_only}))
    assert len(folders) == 1 and flow_of(flow_id).data["folder_id"] == folders[0]["id"]
    assert wrapper.uploads == uploads + 1  # found again by its marker: no second upload
    flows.run_step(kit.tenant_id, flow_id, "nouveau", step_jobs(flow_id)[0].arguments["step"])  # a stale creation job
    assert tick(flow_id) == "au parapheur : étape 1 sur 1"

    # Signed meanwhile; the worker following the folder is killed while the parapheur answers.
    ok(act(kit, "maire", folders[0]["id"], "sign"))
    run_jobs()
    steps_now(flow_id)
    follow = next(job.id for job in step_jobs(flow_id) if job.status == queue.PENDING)
    killed_worker(follow, wrapper, "GET", f"/parapheur/folders/{folders[0]['id']}")
    assert flow_of(flow_id).state == "au parapheur : étape 1 sur 1"
    flow = drive(flow_id)
    assert (flow.status, flow.state) == ("done", "classé"), flow.error
    assert len(ok(kit["agent"].get("/parapheur/folders", params={"subtype_id": setup.sign_only}))) == 1
    assert wrapper.uploads == uploads + 1
    with new_session() as session:
        for job_id in (creation, follow):
            job = session.get(Job, job_id)
            assert job is not None and job.status == queue.DONE and job.attempts == 2
