"""Signed webhooks against a real HTTP receiver on 127.0.0.1 that verifies with the recipe published in the docs.

The receiver runs the very function printed in docs/interop.md (extracted from the page), so the recipe a
municipality copies is the one proven here.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from interop.connectors.webhook import (
    InvalidSignature,
    WebhookConnector,
    event_id,
    signature_header,
    verify_signature,
)
from interop.models import Delivery
from socle.db import new_session
from socle.errors import Conflict, ServiceUnavailable
from socle.storage import StoredObject, get_store

from conftest import Kit, run_jobs

SECRET = "un-secret-partage-de-plus-de-32-caracteres"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "interop.md"


def published_recipe() -> Any:
    """The verification function of docs/interop.md, executed as a receiver would after copying it."""
    text = DOCS.read_text(encoding="utf-8")
    found = re.search(r"<!-- recette-webhook -->\n```python\n(.*?)```", text, re.DOTALL)
    assert found, "la recette de vérification a disparu de docs/interop.md"
    namespace: dict[str, Any] = {}
    exec(compile(found.group(1), str(DOCS), "exec"), namespace)
    return namespace["verifier_webhook"]


@dataclass
class Receiver:
    url: str
    answers: list[int] = field(default_factory=list)  # statuses to give first (then 200 for valid requests)
    delay: float = 0
    processed: list[dict[str, Any]] = field(default_factory=list)  # events accepted and handled once
    requests: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    verify = published_recipe()
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(state.delay)
            status = state.answers.pop(0) if state.answers else None
            if status is None:
                verdict = verify(SECRET, self.headers.get("X-Socle-Signature", ""), body)
                status = {"accepte": 200, "deja_recu": 200, "refuse": 400}[verdict]
                if verdict == "accepte":
                    state.processed.append(json.loads(body))
            state.requests.append((dict(self.headers), body, status))
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            self.wfile.write("reçu".encode() if status < 300 else f"erreur {status}".encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/socle"
    yield state
    server.shutdown()
    thread.join(10)


def put(content: bytes) -> StoredObject:
    return get_store().put(io.BytesIO(content))


def connector(receiver: Receiver, secret: str = SECRET, **config: Any) -> WebhookConnector:
    return WebhookConnector("ecoute", {"url": receiver.url, "timeout": 2, **config}, {"signing_secret": secret})


def test_signed_event_is_verified_and_replays_are_not_processed(receiver: Receiver) -> None:
    obj = put(b"%PDF-1.7 notification")
    hook = connector(receiver, link_url="https://ged.commune.test/d/$sha256")
    receipt = hook.deliver(get_store(), obj.key, "acte.pdf", obj.size)
    assert receipt["status"] == 200 and receipt["event_id"] == event_id("ecoute", obj.key, "document.delivered")
    headers, body, _status = receiver.requests[0]
    event = json.loads(body)
    assert event["id"] == receipt["event_id"] == headers["X-Socle-Event-Id"]
    assert headers["X-Socle-Event"] == event["type"] == "document.delivered"
    assert event["data"] == {
        "filename": "acte.pdf",
        "size": obj.size,
        "sha256": obj.key,
        "link": f"https://ged.commune.test/d/{obj.key}",
    }
    # The signature is the documented HMAC, and the kit's own verifier agrees with it.
    timestamp, mac = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", headers["X-Socle-Signature"]).groups()  # type: ignore[union-attr]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert mac == expected and verify_signature(SECRET, headers["X-Socle-Signature"], body) == int(timestamp)
    # The same event again (a retry after a lost answer): accepted, not processed twice.
    hook.deliver(get_store(), obj.key, "acte.pdf", obj.size)
    assert len(receiver.processed) == 1 and [status for *_, status in receiver.requests] == [200, 200]


def test_the_receiver_refuses_forgeries_old_timestamps_and_tampering(receiver: Receiver) -> None:
    verify = published_recipe()
    body = json.dumps({"id": "evt_x", "type": "document.delivered", "data": {}}).encode()
    now = int(time.time())
    assert verify(SECRET, signature_header(SECRET, body, now), body) == "accepte"
    assert verify(SECRET, signature_header(SECRET, body, now), body) == "deja_recu"
    other = json.dumps({"id": "evt_y"}).encode()
    assert verify(SECRET, signature_header("un-autre-secret-" * 3, other, now), other) == "refuse"
    assert verify(SECRET, signature_header(SECRET, other, now - 3600), other) == "refuse"  # captured an hour ago
    assert verify(SECRET, signature_header(SECRET, other, now), other + b" ") == "refuse"  # body altered
    assert verify(SECRET, "v1=abc", other) == "refuse"
    with pytest.raises(InvalidSignature, match="fenêtre"):
        verify_signature(SECRET, signature_header(SECRET, other, now - 600), other)
    with pytest.raises(InvalidSignature, match="signature invalide"):
        verify_signature(SECRET, signature_header(SECRET, other, now), b"autre")
    with pytest.raises(InvalidSignature, match="mal formé"):
        verify_signature(SECRET, "", other)
    # A connector with the wrong secret: the receiver answers 400, a refusal the job does not retry.
    obj = put(b"faux secret")
    with pytest.raises(Conflict, match="refus 400"):
        connector(receiver, secret="pas-le-bon-secret-mais-assez-long-quand-meme").deliver(
            get_store(), obj.key, "a.pdf", obj.size
        )
    assert receiver.processed == []


def test_5xx_and_timeouts_are_transient(receiver: Receiver) -> None:
    obj = put(b"transitoire")
    receiver.answers = [503]
    with pytest.raises(ServiceUnavailable, match="erreur 503"):
        connector(receiver).deliver(get_store(), obj.key, "a.pdf", obj.size)
    receiver.delay = 1.5
    with pytest.raises(ServiceUnavailable, match="délai dépassé"):
        connector(receiver, timeout=0.5).deliver(get_store(), obj.key, "a.pdf", obj.size)
    receiver.delay = 0
    assert "HTTP 200" in connector(receiver).test()
    assert receiver.processed[-1]["type"] == "ping"


def test_retried_through_the_delivery_job(kit: Kit, receiver: Receiver) -> None:
    short = {"url": receiver.url, "signing_secret": "trop court"}
    refused = kit["admin"].post("/interop/connectors", json={"name": "hook", "kind": "webhook", "config": short})
    assert refused.status_code == 422 and "32" in refused.text
    config = {"url": receiver.url, "signing_secret": SECRET, "timeout": 2}
    created = kit["admin"].post("/interop/connectors", json={"name": "hook", "kind": "webhook", "config": config})
    assert created.status_code == 201, created.text
    assert created.json()["secrets"] == ["signing_secret"] and SECRET not in created.text
    from test_interop_depot import ask_delivery, sending_transfer, transfer_row

    obj = put(b"%PDF-1.7 evenement")
    receiver.answers = [500, 502]  # the receiver is down twice, then answers
    transfer = sending_transfer(kit)
    ask_delivery(kit, obj, "evenement.pdf", "cle-hook-1", transfer, connector="hook")
    run_jobs()
    assert transfer_row(transfer).status == "delivered"
    assert [status for *_, status in receiver.requests] == [500, 502, 200]
    ids = {headers["X-Socle-Event-Id"] for headers, _body, _status in receiver.requests}
    assert len(ids) == 1 and len(receiver.processed) == 1  # the same event each time, processed once
    with new_session() as session:
        delivery = session.query(Delivery).filter_by(tenant_id=kit.tenant_id).one()
        assert delivery.status == "done" and delivery.receipt["event_id"] in ids
