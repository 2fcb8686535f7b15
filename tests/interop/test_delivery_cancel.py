"""A delivery its asker gave up (the archive abandoned the transfer) is cancelled: never resumed nor sent again;
one the platform already has is left done, the cancel audited as too late (« annulation tardive »)."""

from __future__ import annotations

import html
import os
import socket
from typing import Any

import pytest
from test_deliveries_resume import audit_of, create_webdav, late_failure_notice
from test_interop_depot import ask_delivery, create_connector, deliveries, folder, sending_transfer, store, transfer_row
from ui_kit import post_form, sign_in

from interop import service
from interop.models import Delivery
from socle import messages
from socle.db import new_session, transaction
from socle.queue import enqueue
from socle.storage import StoredObject

from conftest import Kit, assert_problem, run_jobs

REASON = "Doublon d'un versement déjà accepté"
ACTOR = "user:archiviste"


def cancel(kit: Kit, key: str, tenant_id: str | None = None) -> None:
    """INTEROP_CANCEL_DELIVERY as the archive service sends it, run by the queue."""
    with transaction() as session:
        enqueue(
            session,
            messages.INTEROP_CANCEL_DELIVERY,
            tenant_id=tenant_id or kit.tenant_id,
            idempotency_key=key,
            reason=REASON,
            actor=ACTOR,
        )
    run_jobs()


def failed_delivery(kit: Kit, key: str = "archive:v1") -> tuple[Delivery, StoredObject, str]:
    """A delivery in error (every try failed: a file where the folder should be), resumable."""
    assert create_connector(kit).status_code == 201
    folder(kit).parent.mkdir(parents=True, exist_ok=True)
    folder(kit).write_bytes(b"un fichier occupe la place du dossier")
    obj = store(os.urandom(1024))
    transfer_id = sending_transfer(kit)
    ask_delivery(kit, obj, "paquet.zip", key, transfer_id)
    run_jobs()
    [row] = deliveries(kit.tenant_id)
    assert row.status == "error"
    return row, obj, transfer_id


def test_a_delivery_in_error_is_cancelled_once_and_never_resumed(kit: Kit) -> None:
    row, obj, transfer_id = failed_delivery(kit)
    folder(kit).unlink()  # the cause is fixed: only the cancel stops a resume now

    cancel(kit, "archive:v1")
    cancel(kit, "archive:v1")  # run twice: the effect of once

    [row] = deliveries(kit.tenant_id)
    assert (row.status, row.error) == ("cancelled", REASON)
    [entry] = audit_of(kit, "interop.delivery.cancelled")
    assert (entry.actor, entry.object_id) == (ACTOR, row.id)
    assert entry.details["reason"] == REASON and entry.details["previous"] == "error"

    refused = assert_problem(kit["admin"].post(f"/interop/deliveries/{row.id}/resume"), 409)
    assert refused["detail"] == f"envoi annulé par le service d'archives : {REASON}"
    assert refused["delivery_status"] == "cancelled"
    shown = kit["admin"].get(f"/interop/deliveries/{row.id}").json()
    assert shown["status"] == "cancelled" and shown["error"] == REASON
    # The asker's own deliver job, asked again with the same key, sends nothing either.
    ask_delivery(kit, obj, "paquet.zip", "archive:v1", transfer_id)
    run_jobs()
    assert not folder(kit).exists() and deliveries(kit.tenant_id)[0].status == "cancelled"
    assert audit_of(kit, "interop.delivery.resumed") == [] and audit_of(kit, "interop.delivered") == []


def test_the_admin_page_shows_a_cancelled_delivery_without_a_resume_button(app: Any, kit: Kit) -> None:
    row, _, _ = failed_delivery(kit)
    admin = sign_in(app, kit, "admin")
    assert f"/admin/flux/envois/{row.id}/reprendre" in admin.get("/admin/flux").text
    cancel(kit, "archive:v1")

    page = html.unescape(admin.get("/admin/flux").text)
    assert "Envois annulés" in page and "<td>annulé par le service d'archives</td>" in page and REASON in page
    assert f"/admin/flux/envois/{row.id}/reprendre" not in page and "Aucun envoi en erreur." in page
    # A page opened before the cancel: its button answers with the reason, in French.
    answer = post_form(admin, "/admin/flux", f"/admin/flux/envois/{row.id}/reprendre", {})
    assert answer.status_code == 409
    assert f"envoi annulé par le service d'archives : {REASON}" in html.unescape(answer.text)
    assert deliveries(kit.tenant_id)[0].status == "cancelled"


def test_a_late_failure_notice_leaves_a_cancelled_delivery_alone(kit: Kit) -> None:
    row, _, _ = failed_delivery(kit)
    cancel(kit, "archive:v1")
    late_failure_notice(kit, "archive:v1", row.reply)
    assert (deliveries(kit.tenant_id)[0].status, deliveries(kit.tenant_id)[0].error) == ("cancelled", REASON)
    assert len(audit_of(kit, "interop.delivery.failed")) == 1  # the first failure only


def test_a_done_delivery_only_has_the_late_cancel_audited_once(kit: Kit) -> None:
    assert create_connector(kit).status_code == 201
    ask_delivery(kit, store(os.urandom(512)), "fait.zip", "archive:v2", sending_transfer(kit))
    run_jobs()
    [done] = deliveries(kit.tenant_id)
    assert done.status == "done"

    cancel(kit, "archive:v2")
    cancel(kit, "archive:v2")

    [row] = deliveries(kit.tenant_id)
    assert (row.status, row.error, row.receipt) == ("done", None, done.receipt)
    [late] = audit_of(kit, service.LATE_CANCEL)
    assert late.actor == ACTOR and late.details["note"] == "annulation tardive" and late.details["reason"] == REASON
    assert audit_of(kit, "interop.delivery.cancelled") == []


def test_an_unknown_key_or_another_tenants_delivery_is_left_alone(kit: Kit, make_kit: Any) -> None:
    failed_delivery(kit)
    other = make_kit(with_identity=False)
    cancel(other, "archive:v1")  # same key, another collectivité
    cancel(kit, "archive:inconnu")
    assert deliveries(kit.tenant_id)[0].status == "error"
    assert audit_of(kit, "interop.delivery.cancelled") == audit_of(other, "interop.delivery.cancelled") == []


def test_a_resumed_delivery_not_sent_yet_is_cancelled_and_its_job_sends_nothing(kit: Kit) -> None:
    row, _, transfer_id = failed_delivery(kit)
    folder(kit).unlink()
    assert kit["admin"].post(f"/interop/deliveries/{row.id}/resume").json()["status"] == "sending"

    with transaction() as session:  # the cancel arrives before the resumed job runs
        service.cancel_delivery(
            session, tenant_id=kit.tenant_id, idempotency_key="archive:v1", reason=REASON, actor=ACTOR
        )
    run_jobs()  # the resumed deliver job

    [row] = deliveries(kit.tenant_id)
    assert (row.status, row.error) == ("cancelled", REASON)
    assert not folder(kit).exists()
    assert audit_of(kit, "interop.delivery.cancelled")[0].details["previous"] == "sending"
    assert transfer_row(transfer_id).status == "delivery_failed"  # no reply of either kind


def _cancel_during_send(monkeypatch: pytest.MonkeyPatch, kit: Kit) -> None:
    """The archive's cancel commits while the send is under way (after « sending », before the platform answers)."""
    send = service._send

    def send_while_cancelled(*args: Any) -> dict[str, Any]:
        with transaction() as session:
            service.cancel_delivery(
                session, tenant_id=kit.tenant_id, idempotency_key="archive:v3", reason=REASON, actor=ACTOR
            )
        return send(*args)

    monkeypatch.setattr(service, "_send", send_while_cancelled)


def test_a_send_under_way_when_cancelled_ends_done_as_a_late_cancel(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    assert create_connector(kit).status_code == 201
    transfer_id = sending_transfer(kit)
    _cancel_during_send(monkeypatch, kit)
    ask_delivery(kit, store(b"paquet"), "tardif.zip", "archive:v3", transfer_id)
    run_jobs()

    [row] = deliveries(kit.tenant_id)
    assert (row.status, row.error) == ("done", None) and row.receipt
    assert (folder(kit) / "tardif.zip").read_bytes() == b"paquet"
    assert [entry.details["previous"] for entry in audit_of(kit, "interop.delivery.cancelled")] == ["sending"]
    [late] = audit_of(kit, service.LATE_CANCEL)
    assert late.actor == "service:interop" and late.details["reason"] == REASON
    assert transfer_row(transfer_id).receipt == row.receipt  # the asker got its success reply
    cancel(kit, "archive:v3")  # the cancel job again: already audited
    assert len(audit_of(kit, service.LATE_CANCEL)) == 1


def _failing_connector(kit: Kit, kind: str) -> str:
    """A connector whose send fails: a dépôt on a file (OSError, the queue's retries) or a WebDAV server nobody
    listens to (unreachable, the connector's own retry policy)."""
    if kind == "webdav":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        create_webdav(kit, url=f"https://127.0.0.1:{port}/depot", retry_policy="1s X 2")
        return "partage"
    assert create_connector(kit).status_code == 201
    folder(kit).parent.mkdir(parents=True, exist_ok=True)
    folder(kit).write_bytes(b"un fichier occupe la place du dossier")
    return "depot"


@pytest.mark.parametrize("kind", ["depot", "webdav"])
def test_a_send_under_way_that_fails_after_the_cancel_stays_cancelled(
    kit: Kit, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    connector = _failing_connector(kit, kind)
    transfer_id = sending_transfer(kit)
    _cancel_during_send(monkeypatch, kit)
    ask_delivery(kit, store(b"paquet"), "rate.zip", "archive:v3", transfer_id, connector=connector)
    run_jobs()

    [row] = deliveries(kit.tenant_id)
    assert (row.status, row.error) == ("cancelled", REASON)
    assert audit_of(kit, "interop.delivery.failed") == [] and audit_of(kit, service.LATE_CANCEL) == []
    assert transfer_row(transfer_id).status == "sending"  # no failure reply: nobody waits for it
    with new_session() as session:  # no retry of the connector's policy either
        assert service._count_keys(session, f"{service.RETRY_KEY}:{row.id}:") == 0
