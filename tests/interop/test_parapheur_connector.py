"""The external parapheur connector against a real socle app served on 127.0.0.1 (uvicorn, the whole kit).

The « other instance » is this very app, reached over HTTP with a collectivité's API token: the folder is
created by its public API, acted upon by its users, and followed until signed or rejected.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from parapheur_kit import Standard, act, folder_of, ok

from interop.connectors.parapheur import MARKER, ParapheurConnector, send_id
from interop.simulators.common import RunningServer, serve_in_thread
from socle.errors import Conflict, ServiceUnavailable
from socle.storage import StoredObject, get_store

from conftest import Kit, make_pdf, run_jobs


@pytest.fixture(scope="module")
def remote(app: Any) -> Iterator[RunningServer]:
    server = serve_in_thread(app)
    yield server
    server.stop()


def put(content: bytes) -> StoredObject:
    return get_store().put(io.BytesIO(content))


def connector(remote: RunningServer, kit: Kit, subtype_id: str, **config: Any) -> ParapheurConnector:
    settings = {"url": remote.url, "subtype_id": subtype_id, "timeout": 30, **config}
    return ParapheurConnector("parapheur-cdg", settings, {"token": kit.tokens["agent"]})


def test_send_once_then_follow_until_signed(kit: Kit, remote: RunningServer) -> None:
    setup = Standard(kit)
    pdf = make_pdf("Convention envoyée au parapheur du centre de gestion")
    obj = put(pdf)
    sender = connector(remote, kit, setup.visa_then_sign, title="Convention : $filename")
    assert "jeton accepté" in sender.test()
    receipt = sender.deliver(get_store(), obj.key, "convention.pdf", obj.size)
    folder = folder_of(kit, receipt["folder_id"])
    assert folder["status"] == "in_progress" and receipt["status"] == "in_progress"
    assert folder["title"] == "Convention : convention.pdf" and folder["subtype_id"] == setup.visa_then_sign
    assert folder["metadata"] == {MARKER: send_id("parapheur-cdg", obj.key)}
    assert folder["documents"][0]["sha256"] == obj.key and folder["created_by"] == "agent"
    # A retry after a lost answer: the earlier folder is found, no second one.
    again = sender.deliver(get_store(), obj.key, "convention.pdf", obj.size)
    assert again["folder_id"] == receipt["folder_id"]
    listed = ok(kit["agent"].get("/parapheur/folders", params={"subtype_id": setup.visa_then_sign}))
    assert len(listed) == 1

    followed = sender.follow(receipt)
    assert not followed.finished and followed.state == "en cours de circuit (étape 1 sur 2)"
    ok(act(kit, "agent", receipt["folder_id"], "visa"))
    ok(act(kit, "maire", receipt["folder_id"], "sign"))
    run_jobs()
    done = sender.follow(receipt)
    assert done.finished and done.state == "circuit terminé (signé)", done
    signed = done.details["documents"][0]
    assert signed["sha256"] == obj.key and signed["current_sha256"] != obj.key  # the signed PDF differs


def test_rejection_is_followed_with_its_reason(kit: Kit, remote: RunningServer) -> None:
    setup = Standard(kit)
    obj = put(make_pdf("Arrêté à rejeter"))
    sender = connector(remote, kit, setup.sign_only)
    receipt = sender.deliver(get_store(), obj.key, "arrete.pdf", obj.size)
    ok(act(kit, "maire", receipt["folder_id"], "reject", {"reason": "Montant erroné"}))
    result = sender.follow(receipt)
    assert result.finished and result.state == "rejeté : Montant erroné"


def test_refusals_and_unreachable(kit: Kit, remote: RunningServer) -> None:
    setup = Standard(kit)
    obj = put(make_pdf("Refus"))
    with pytest.raises(Conflict, match=r"refus 4\d\d du parapheur"):
        connector(remote, kit, "sous-type-inconnu").deliver(get_store(), obj.key, "a.pdf", obj.size)
    bad_token = ParapheurConnector("p", {"url": remote.url, "subtype_id": setup.sign_only}, {"token": "faux"})
    with pytest.raises(Conflict, match="refus 401"):
        bad_token.test()
    not_pdf = put(b"ceci n'est pas un PDF")
    with pytest.raises(Conflict, match=r"refus 4\d\d"):
        connector(remote, kit, setup.sign_only).deliver(get_store(), not_pdf.key, "faux.pdf", not_pdf.size)
    with pytest.raises(ServiceUnavailable, match="injoignable"):
        ParapheurConnector("p", {"url": "http://127.0.0.1:1", "subtype_id": "x"}, {"token": "t"}).test()
    assert ok(kit["agent"].get("/parapheur/folders")) == []


def test_through_the_api_and_the_delivery_job(kit: Kit, remote: RunningServer) -> None:
    setup = Standard(kit)
    config = {"url": remote.url, "token": kit.tokens["agent"], "subtype_id": setup.sign_only, "title": "$inconnu"}
    refused = kit["admin"].post("/interop/connectors", json={"name": "cdg", "kind": "parapheur", "config": config})
    assert refused.status_code == 422 and "variable(s) inconnue(s)" in refused.text
    config["title"] = "Reçu de la commune : $filename"
    created = kit["admin"].post("/interop/connectors", json={"name": "cdg", "kind": "parapheur", "config": config})
    assert created.status_code == 201, created.text
    assert created.json()["secrets"] == ["token"] and kit.tokens["agent"] not in created.text
    from test_interop_depot import ask_delivery, sending_transfer, transfer_row

    obj = put(make_pdf("Par la tâche d'envoi"))
    transfer = sending_transfer(kit)
    ask_delivery(kit, obj, "envoi.pdf", "cle-parapheur-1", transfer, connector="cdg")
    run_jobs()
    receipt = transfer_row(transfer).receipt or {}
    assert transfer_row(transfer).status == "delivered", transfer_row(transfer).error
    assert folder_of(kit, receipt["folder_id"])["title"] == "Reçu de la commune : envoi.pdf"

    # The interop service follows the folder by itself until its circuit ends (no SEDA message to forward).
    from interop.models import Delivery
    from socle.db import new_session

    with new_session() as session:
        delivery = session.query(Delivery).filter(Delivery.idempotency_key == "cle-parapheur-1").one()
        assert delivery.follow_status == "following"
        delivery_id = delivery.id
    ok(act(kit, "maire", receipt["folder_id"], "sign"))
    with new_session() as session:  # the next check is due now rather than by the connector's policy
        session.get(Delivery, delivery_id).next_check_at = None
        from sqlalchemy import update

        from socle.db import utcnow
        from socle.models import Job

        session.execute(update(Job).where(Job.status == "pending").values(next_run_at=utcnow()))
        session.commit()
    run_jobs()
    with new_session() as session:
        followed = session.get(Delivery, delivery_id)
        assert (followed.follow_status, followed.follow_state) == ("done", "circuit terminé (signé)")
