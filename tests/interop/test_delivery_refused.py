"""A delivery asked for a connector that does not exist (or is disabled), by an asker that waits for no reply
(the GED's « envoyer vers ») is refused with a trace in the audit log, once, even when its job runs twice."""

from __future__ import annotations

from test_deliveries_resume import audit_of

from socle import messages
from socle.db import transaction
from socle.queue import enqueue

from conftest import Kit, make_pdf, run_jobs


def test_a_ged_delivery_to_an_unknown_connector_is_audited_once(kit: Kit) -> None:
    files = {"file": ("acte.pdf", make_pdf("acte"), "application/pdf")}
    posted = kit["agent"].post("/ged/documents", files=files, data={"title": "Acte", "document_type": "arrete"})
    assert posted.status_code == 201, posted.text
    document = posted.json()
    asked = kit["agent"].post(f"/ged/documents/{document['id']}/deliver", json={"connector": "nexistepas"})
    assert asked.status_code == 202, asked.text
    run_jobs()

    [refused] = audit_of(kit, "interop.delivery.refused")
    assert refused.object_id == "nexistepas" and refused.actor == "service:interop"
    assert "nexistepas" in refused.details["reason"]
    key = refused.details["idempotency_key"]

    with transaction() as session:  # the same job again (a queue may deliver a job twice)
        enqueue(
            session,
            messages.INTEROP_DELIVER,
            tenant_id=kit.tenant_id,
            connector="nexistepas",
            object_key="objects/ab/cd/inutile",  # never read: the connector is refused first
            size=1,
            filename="acte.pdf",
            idempotency_key=key,
            reply=None,
        )
    run_jobs()
    assert len(audit_of(kit, "interop.delivery.refused")) == 1
