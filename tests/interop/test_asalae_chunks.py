"""Large archives to As@lae in pieces (sedaMessages then sedaAttachmentsChunkFiles), against the simulator.

``chunk_size`` is set through the API, as an administrator does.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sae_helpers import (
    Simulator,
    add_connector,
    asalae_config,
    ask_delivery,
    delivery_of,
    follow_until_settled,
    manifest,
    running,
)
from sqlalchemy import select

from interop.connectors.asalae import AsalaeConnector
from interop.simulators import asalae
from interop.simulators.common import PlatformState
from socle import messages
from socle.db import new_session
from socle.errors import InvalidInput
from socle.models import Job
from socle.queue import PENDING
from socle.storage import StoredObject, get_store

from conftest import ROOT, Kit, run_jobs

CHUNK = 16 * 1024
AUTH = ("versant", "mot-de-passe")


class ChunkSimulator(Simulator):
    """The As@lae simulator with its chunked sessions in view."""

    def __init__(self, simulator: Simulator, app: Any) -> None:
        super().__init__(simulator.server, simulator.state)
        self.app = app

    @property
    def sessions(self) -> list[asalae.ChunkSession]:
        return list(self.app.state.chunk_sessions.values())


# Not the S²LOW `sim` of tests/conftest.py: here an as@lae simulator whose chunk sessions the tests read.
@pytest.fixture
def sim() -> Iterator[ChunkSimulator]:
    state = PlatformState()
    state.scenario.hang_seconds = 4
    app = asalae.create_app(state, asalae.Credentials(*AUTH))
    for simulator in running(app, state):
        yield ChunkSimulator(simulator, app)


def big_sip(identifier: str, payload: int = 3 * CHUNK + 5000) -> StoredObject:
    """A SIP of about ``payload`` bytes that do not compress (stored), so that it spans several pieces."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("manifest.xml", manifest(identifier))
        archive.writestr("content/plan.pdf", os.urandom(payload))
    return get_store().put(io.BytesIO(buffer.getvalue()))


def add_chunked(kit: Kit, sim: Simulator, name: str = "asalae", **config: Any) -> None:
    created = add_connector(kit, name, "asalae", {**asalae_config(sim), "chunk_size": CHUNK, **config})
    assert created["config"]["chunk_size"] == config.get("chunk_size", CHUNK)


def test_a_large_archive_goes_in_pieces_and_is_received_once(kit: Kit, sim: ChunkSimulator) -> None:
    add_chunked(kit, sim)
    identifier = f"{kit.slug}-gros"
    package = big_sip(identifier)
    ask_delivery(kit, package, "asalae", "k1")
    run_jobs()

    delivery = delivery_of(kit.tenant_id, "k1")
    assert delivery.status == "done" and delivery.receipt is not None, delivery.error
    assert delivery.receipt["chunks"] == 4 and delivery.receipt["chunk_size"] == CHUNK
    received = sim.state.transfers[identifier]
    assert received.size == package.size and delivery.receipt["operation_id"] == received.operation_id
    assert sim.sends(identifier) == 1
    [session] = sim.sessions
    assert session.posts == [1, 2, 3, 4] and session.complete
    assert b"".join(session.chunks[index] for index in (1, 2, 3, 4)) == read(package.key)
    assert "POST /sedaMessages" in sim.state.requests and "POST /sedaAttachmentsChunkFiles" in sim.state.requests

    settled = follow_until_settled(delivery.id)  # the replies come as for a single send
    assert settled.follow_status == "done" and settled.acknowledgement_key and settled.reply_key


def test_an_archive_below_the_size_goes_in_one_send(kit: Kit, sim: ChunkSimulator) -> None:
    add_chunked(kit, sim, chunk_size=10 * 1024 * 1024)
    identifier = f"{kit.slug}-petit"
    ask_delivery(kit, big_sip(identifier), "asalae", "k1")
    run_jobs()
    assert delivery_of(kit.tenant_id, "k1").status == "done" and sim.sends(identifier) == 1
    assert sim.sessions == [] and "POST /sedaAttachmentsChunkFiles" not in sim.state.requests


@pytest.mark.parametrize("faults", [["500"], ["500", "html"]])
def test_a_piece_that_fails_is_sent_again_in_the_same_session(kit: Kit, sim: ChunkSimulator, faults: list[str]) -> None:
    add_chunked(kit, sim)
    sim.scenario(faults={"chunk:2": faults})
    identifier = f"{kit.slug}-reprise"
    ask_delivery(kit, big_sip(identifier), "asalae", "k1")
    run_jobs()
    delivery = delivery_of(kit.tenant_id, "k1")
    assert delivery.status == "done", delivery.error
    [session] = sim.sessions
    assert session.posts == [1, 2, 3, 4] and sim.sends(identifier) == 1
    requests = sim.state.requests.count("POST /sedaAttachmentsChunkFiles")
    assert requests == 4 + len(faults)  # the failed tries of piece 2, then each piece once


def test_a_timeout_mid_upload_resumes_at_that_piece_on_the_next_try(kit: Kit, sim: ChunkSimulator) -> None:
    add_chunked(kit, sim, chunk_retries=1)  # the job itself fails, and its next run resumes
    sim.scenario(faults={"chunk:3": ["timeout"]})
    identifier = f"{kit.slug}-coupure"
    ask_delivery(kit, big_sip(identifier), "asalae", "k1")
    run_jobs()
    delivery = delivery_of(kit.tenant_id, "k1")
    assert delivery.status == "done" and delivery.receipt is not None, delivery.error
    assert delivery.receipt["resumed_from_chunk"] == 3
    [session] = sim.sessions  # the same session: pieces 1 and 2 were not sent again
    assert session.posts == [1, 2, 3, 4] and sim.sends(identifier) == 1
    with new_session() as db:
        job = db.execute(
            select(Job).where(Job.tenant_id == kit.tenant_id, Job.function == messages.INTEROP_DELIVER.function)
        ).scalar_one()
        assert job is not None and job.attempts == 2


def test_the_last_piece_received_then_the_answer_lost_is_not_sent_twice(kit: Kit, sim: ChunkSimulator) -> None:
    add_chunked(kit, sim)
    sim.scenario(faults={"chunk:4": ["accept_then_timeout"]})
    identifier = f"{kit.slug}-perdu"
    ask_delivery(kit, big_sip(identifier), "asalae", "k1")
    run_jobs()
    delivery = delivery_of(kit.tenant_id, "k1")
    assert delivery.status == "done" and delivery.receipt is not None, delivery.error
    assert delivery.receipt["recovered"] is True  # As@lae answered « doublon » to the repeat; its Acknowledgement
    assert sim.sends(identifier) == 1 and len(sim.state.transfers) == 1
    [session] = sim.sessions
    assert session.posts == [1, 2, 3, 4, 4]


def test_a_transfer_as_lae_already_has_is_recognised_not_sent(kit: Kit, sim: ChunkSimulator) -> None:
    add_chunked(kit, sim)
    identifier = f"{kit.slug}-double"
    package = big_sip(identifier)
    files = {"seda_message": ("manifest.xml", manifest(identifier)), "attachments": ("p.zip", read(package.key))}
    assert httpx.post(f"{sim.url}/sedaMessages", files=files, auth=AUTH, timeout=10).status_code == 201
    ask_delivery(kit, package, "asalae", "k1")
    run_jobs()
    delivery = delivery_of(kit.tenant_id, "k1")
    assert delivery.status == "done" and delivery.receipt is not None and delivery.receipt["recovered"] is True
    assert sim.sessions == [] and len(sim.state.transfers) == 1  # the duplicate was refused at the manifest


def test_a_new_process_opens_a_new_session_and_the_transfer_is_still_received_once(
    kit: Kit, sim: ChunkSimulator
) -> None:
    add_chunked(kit, sim, chunk_retries=1)
    sim.scenario(faults={"chunk:2": ["500"]})
    identifier = f"{kit.slug}-processus"
    job_id = ask_delivery(kit, big_sip(identifier), "asalae", "k1")
    # A worker process sends piece 1, fails on piece 2, and is gone: its session is lost with it.
    worker = subprocess.run(
        [sys.executable, "-c", f"from socle.queue import execute; print(execute({job_id!r}))"],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == 0, worker.stderr
    with new_session() as db:
        job = db.get(Job, job_id)
        assert job is not None and job.status == PENDING and "erreur 500" in (job.last_error or "")
    assert sim.state.transfers == {} and len(sim.sessions) == 1
    run_jobs()  # this process knows no session: a new one, every piece again
    assert delivery_of(kit.tenant_id, "k1").status == "done"
    first, second = sim.sessions
    assert first.posts == [1] and not first.complete
    assert second.posts == [1, 2, 3, 4] and second.complete
    assert sim.sends(identifier) == 1 and len(sim.state.transfers) == 1


def test_the_simulator_checks_the_pieces(sim: ChunkSimulator) -> None:
    identifier = "pieces-1"
    opened = httpx.post(
        f"{sim.url}/sedaMessages",
        files={"seda_message": ("manifest.xml", manifest(identifier))},
        data={"send_chunked_attachments": "true"},
        auth=AUTH,
    ).json()
    session, security = opened["chunk_session_identifier"], opened["chunk_security_identifier"]

    def piece(index: int, content: bytes, **fields: str) -> httpx.Response:
        data = {
            "session_identifier": session,
            "security_identifier": security,
            "file_name": "p.zip",
            "number_of_chunks": "1",
            "chunk_index": str(index),
        } | fields
        return httpx.post(
            f"{sim.url}/sedaAttachmentsChunkFiles", data=data, files={"chunk_content": ("p", content)}, auth=AUTH
        )

    assert piece(1, b"x", security_identifier="faux").status_code == 403
    assert piece(1, b"x", session_identifier="inconnue").status_code == 404
    assert piece(2, b"x").status_code == 400  # beyond number_of_chunks
    other = zip_with(manifest("autre"))
    mismatch = piece(1, other)
    assert mismatch.status_code == 400 and "ne correspond pas" in mismatch.json()["message"]
    assert piece(1, zip_with(manifest(identifier))).status_code == 201  # a repeated piece replaces the last one
    assert piece(1, zip_with(manifest(identifier))).status_code == 409
    assert sim.sends(identifier) == 1


def test_a_bad_chunk_size_is_refused_in_french() -> None:
    for value in ("beaucoup", -1, 1.5):
        with pytest.raises(InvalidInput, match="taille des morceaux invalide"):
            AsalaeConnector("x", {"url": "http://127.0.0.1:9", "chunk_size": value}, {}).chunk_size()
    assert AsalaeConnector("x", {"url": "http://127.0.0.1:9"}, {}).chunk_size() == 0


def zip_with(manifest_bytes: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.xml", manifest_bytes)
    return buffer.getvalue()


def read(key: str) -> bytes:
    with get_store().open(key) as stream:
        return stream.read()
