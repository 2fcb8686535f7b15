"""Helpers of the SAE tests: simulators on 127.0.0.1, SIPs, connectors, and moving the follow-up clock."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from interop.models import Delivery
from interop.simulators import asalae, vitam
from interop.simulators.common import PlatformState, RunningServer, serve_in_thread
from socle import messages
from socle.db import new_session, transaction, utcnow
from socle.models import Job
from socle.queue import PENDING, enqueue
from socle.storage import StoredObject, get_store

from conftest import Kit, run_jobs

SEDA_NS = "fr:gouv:culture:archivesdefrance:seda:v{version}"


class Simulator:
    """A simulator running for one test: its URL and its state (what it received, its scenario)."""

    def __init__(self, server: RunningServer, state: PlatformState) -> None:
        self.server, self.state = server, state
        self.url = server.url

    def scenario(self, **values: Any) -> None:
        with self.state.lock:
            self.state.scenario.update(values)

    def sends(self, message_identifier: str) -> int:
        return self.state.sends.get(message_identifier, 0)


def running(app: Any, state: PlatformState, **tls: Any) -> Iterator[Simulator]:
    """Serve a simulator for the time of a test (``yield from`` in the test module's fixture)."""
    server = serve_in_thread(app, tls=tls or None)
    try:
        yield Simulator(server, state)
    finally:
        server.stop()


def running_vitam() -> Iterator[Simulator]:
    state = PlatformState()
    state.scenario.hang_seconds = 4
    yield from running(vitam.create_app(state), state)


def running_asalae() -> Iterator[Simulator]:
    state = PlatformState()
    state.scenario.hang_seconds = 4
    yield from running(asalae.create_app(state, asalae.Credentials("versant", "mot-de-passe")), state)


def manifest(message_identifier: str, version: str = "2.2", transferring: str = "213700000") -> bytes:
    """A small ArchiveTransfer: what the simulators and the connectors read of a SIP."""
    ns = SEDA_NS.format(version=version)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ArchiveTransfer xmlns="{ns}">'
        f"<Date>2026-11-30T10:00:00</Date><MessageIdentifier>{message_identifier}</MessageIdentifier>"
        f"<CodeListVersions/><DataObjectPackage><DescriptiveMetadata>"
        f'<ArchiveUnit id="AU1"><Content><DescriptionLevel>Item</DescriptionLevel><Title>Délibération</Title>'
        f"</Content></ArchiveUnit></DescriptiveMetadata><ManagementMetadata/></DataObjectPackage>"
        f"<ArchivalAgency><Identifier>AD037</Identifier></ArchivalAgency>"
        f"<TransferringAgency><Identifier>{transferring}</Identifier></TransferringAgency></ArchiveTransfer>"
    ).encode()


def sip(message_identifier: str, version: str = "2.2", transferring: str = "213700000") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.xml", manifest(message_identifier, version, transferring))
        archive.writestr("content/acte.pdf", b"%PDF-1.7 contenu de test " + message_identifier.encode())
    return buffer.getvalue()


def store_sip(message_identifier: str, version: str = "2.2", transferring: str = "213700000") -> StoredObject:
    return get_store().put(io.BytesIO(sip(message_identifier, version, transferring)))


def vitam_config(sim: Simulator, **extra: Any) -> dict[str, Any]:
    return {"url": sim.url, "tenant": 2, "timeout": 2, "retry_policy": "1s X 2", **extra}


def asalae_config(sim: Simulator, **extra: Any) -> dict[str, Any]:
    base = {"url": sim.url, "username": "versant", "password": "mot-de-passe", "timeout": 2, "retry_policy": "1s X 2"}
    return base | extra


def add_connector(kit: Kit, name: str, kind: str, config: dict[str, Any]) -> dict[str, Any]:
    response = kit["admin"].post("/interop/connectors", json={"name": name, "kind": kind, "config": config})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def ask_delivery(kit: Kit, obj: StoredObject, connector: str, key: str, reply: dict[str, Any] | None = None) -> str:
    """Enqueue INTEROP_DELIVER as a service would; returns the job id."""
    with transaction() as session:
        job = enqueue(
            session,
            messages.INTEROP_DELIVER,
            tenant_id=kit.tenant_id,
            connector=connector,
            object_key=obj.key,
            size=obj.size,
            filename="paquet.zip",
            idempotency_key=key,
            reply=reply,
        )
        return job.id


def delivery_of(tenant_id: str, key: str) -> Delivery:
    with new_session() as session:
        delivery = session.execute(
            select(Delivery).where(Delivery.tenant_id == tenant_id, Delivery.idempotency_key == key)
        ).scalar_one()
        session.expunge(delivery)
        return delivery


def follow_jobs(delivery_id: str) -> list[Job]:
    with new_session() as session:
        jobs = session.execute(
            select(Job).where(Job.function == messages.INTEROP_FOLLOW_SAE.function).order_by(Job.created_at)
        ).scalars()
        return [job for job in jobs if job.arguments.get("delivery_id") == delivery_id]


def next_check_now(delivery_id: str) -> int:
    """Jump to the next scheduled check (instead of waiting for the policy's delay); returns how many."""
    ids = [job.id for job in follow_jobs(delivery_id) if job.status == PENDING]
    with transaction() as session:
        session.execute(update(Job).where(Job.id.in_(ids)).values(next_run_at=utcnow() - timedelta(seconds=1)))
    return len(ids)


def follow_until_settled(delivery_id: str, limit: int = 10) -> Delivery:
    """Run the checks one after the other, without waiting, until the follow-up is done or in error."""
    for _ in range(limit):
        run_jobs()
        with new_session() as session:
            delivery = session.get(Delivery, delivery_id)
            assert delivery is not None
            if delivery.follow_status in ("done", "error"):
                session.expunge(delivery)
                return delivery
        assert next_check_now(delivery_id) == 1
    raise AssertionError("le suivi ne s'est pas terminé")
