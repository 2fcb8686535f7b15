"""Helpers of the S²LOW and flow tests: the simulator on 127.0.0.1, connectors, acts, driving a flow's clock."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from interop.models import Flow, FlowEvent
from interop.simulators.common import RunningServer, serve_in_thread
from interop.simulators.s2low import S2lowState, create_app
from socle import messages
from socle.db import new_session, transaction, utcnow
from socle.models import Job
from socle.queue import PENDING
from socle.storage import StoredObject, get_store
from socle.storage.ownership import record_held

from conftest import ROOT, Kit, make_pdf, run_jobs

ACTES_SCHEMAS = Path(os.environ.get("SOCLE_TEST_ACTES_SCHEMAS") or ROOT.parent / "shared" / "actes")


class S2low:
    """A S²LOW simulator running for one test: its URL and its state."""

    def __init__(self, server: RunningServer, state: S2lowState) -> None:
        self.server, self.state, self.url = server, state, server.url

    def scenario(self, **values: Any) -> None:
        self.state.scenario.update(values)

    def sends(self, key: str) -> int:
        return self.state.sends.get(key, 0)


def running_s2low(credentials: tuple[str, str] | None = None, **tls: Any) -> Iterator[S2low]:
    state = S2lowState(schemas=ACTES_SCHEMAS, credentials=credentials)
    state.scenario.hang_seconds = 4
    server = serve_in_thread(create_app(state), tls=tls or None)
    try:
        yield S2low(server, state)
    finally:
        server.stop()


def s2low_config(sim: S2low, **extra: Any) -> dict[str, Any]:
    base = {
        "url": sim.url,
        "timeout": 2,
        "retry_policy": "1s X 3",
        "department": "037",
        "return_emails": ["greffe@mairie-test.fr"],
    }
    return base | extra


def plan_folder(kit: Kit, name: str = "Actes") -> str:
    """A folder at the top of the kit's GED plan (created the first time), open to every user unless the test
    sets its rights: where connectors file what their flows bring back. Its id."""
    created = kit["admin"].post("/ged/plan", json={"name": name})
    if created.status_code == 201:
        return str(created.json()["id"])
    assert created.status_code == 409, created.text
    children = kit["admin"].get("/ged/plan").json()["children"]
    return str(next(folder["id"] for folder in children if folder["name"] == name))


def add_s2low(
    kit: Kit, sim: S2low, name: str = "tdt", *, fetch: bool = True, ged_folder: str | None = "Actes", **extra: Any
) -> None:
    """A S²LOW connector; its flows file in the GED folder ``ged_folder`` (created at the top of the plan; None:
    the connector names none)."""
    if ged_folder is not None:
        plan_folder(kit, ged_folder)
        extra = {"ged_folder": ged_folder} | extra
    response = kit["admin"].post(
        "/interop/connectors", json={"name": name, "kind": "s2low", "config": s2low_config(sim, **extra)}
    )
    assert response.status_code == 201, response.text
    if fetch:
        fetched = kit["admin"].post(f"/interop/connectors/{name}/classification")
        assert fetched.status_code == 200, fetched.text


def store(data: bytes, holder: Kit | None = None) -> StoredObject:
    """Bytes put in the store; with ``holder``, as that collectivité's, the way its GED upload records them: a
    flow of that collectivité may then be given them (interop refuses any other key)."""
    stored = get_store().put(io.BytesIO(data))
    if holder is not None:
        with transaction() as session:
            record_held(session, holder.tenant_id, stored.key, holder="ged")
    return stored


def act_request(
    kit: Kit, number: str, *, annexes: int = 1, matiere: str = "1.1", connector: str = "tdt"
) -> dict[str, Any]:
    """The body of POST /interop/flows for an act (its PDF, its annexes) stored beforehand as the kit's."""
    documents = [{"object_key": store(make_pdf(f"Délibération {number}"), kit).key, "filename": "deliberation.pdf"}]
    for index in range(annexes):
        obj = store(make_pdf(f"Annexe {index} de {number}"), kit)
        documents.append({"object_key": obj.key, "sha256": obj.key, "filename": f"annexe-{index}.pdf"})
    metadata = {
        "numero": number,
        "date": "2026-11-30",
        "nature": 1,
        "matiere": matiere,
        "objet": "Approbation du budget primitif 2027 – section d'investissement",
    }
    return {"kind": "actes", "connector": connector, "documents": documents, "metadata": metadata}


def start(kit: Kit, body: dict[str, Any], by: str = "agent") -> str:
    response = kit[by].post("/interop/flows", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def flow_of(flow_id: str) -> Flow:
    with new_session() as session:
        flow = session.get(Flow, flow_id)
        assert flow is not None
        session.expunge(flow)
        return flow


def events(flow_id: str) -> list[FlowEvent]:
    with new_session() as session:
        rows = list(
            session.execute(select(FlowEvent).where(FlowEvent.flow_id == flow_id).order_by(FlowEvent.id)).scalars()
        )
        for row in rows:
            session.expunge(row)
        return rows


def step_jobs(flow_id: str) -> list[Job]:
    with new_session() as session:
        jobs = session.execute(
            select(Job).where(Job.function == messages.INTEROP_FLOW_STEP.function).order_by(Job.created_at)
        ).scalars()
        return [job for job in jobs if job.arguments.get("flow_id") == flow_id]


def steps_now(flow_id: str) -> int:
    """Make the flow's scheduled steps due now (instead of waiting for the policy's delay)."""
    ids = [job.id for job in step_jobs(flow_id) if job.status == PENDING]
    with transaction() as session:
        session.execute(update(Job).where(Job.id.in_(ids)).values(next_run_at=utcnow() - timedelta(seconds=1)))
    return len(ids)


def drive(flow_id: str, limit: int = 20) -> Flow:
    """Run the flow's jobs, skipping the waits, until it is done, in error, or waiting for nothing scheduled."""
    for _ in range(limit):
        run_jobs()
        flow = flow_of(flow_id)
        if flow.status in ("done", "error"):
            return flow
        if steps_now(flow_id) == 0:
            run_jobs()
            return flow_of(flow_id)
    raise AssertionError("le flux n'a pas fini")
