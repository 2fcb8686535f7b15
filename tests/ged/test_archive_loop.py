"""The archive loop through the real services: a transfer accepted by the SAE marks the GED documents archived
with the identifier the SAE gave each unit, and proposes the GED copy of « destroy » documents for
elimination; the archivist approves it with another person and carries it out."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

from ga_helpers import make_type, new_document
from sqlalchemy import select

from ged.models import Elimination
from socle import messages
from socle.db import transaction
from socle.queue import enqueue
from socle.storage import get_store

from conftest import Kit, assert_problem, run_jobs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "archive"))
from sae_messages import acknowledgement, transfer_reply


def sae_sends(kit: Kit, transfer_id: str, kind: str, data: bytes) -> None:
    stored = get_store().put(io.BytesIO(data))
    with transaction() as session:
        enqueue(
            session,
            messages.ARCHIVE_RECORD_SAE_MESSAGE,
            tenant_id=kit.tenant_id,
            transfer_id=transfer_id,
            message_kind=kind,
            object_key=stored.key,
            size=stored.size,
        )
    run_jobs()


def delivered_transfer(kit: Kit, document_ids: list[str]) -> dict[str, Any]:
    created = kit["archiviste"].post(
        "/archive/transfers", json={"document_ids": document_ids, "archival_agency": "AD037"}
    )
    assert created.status_code == 202, created.text
    # Generous: in a whole session this run also renders every document earlier tests left pending.
    run_jobs(timeout=900)
    connector = kit["admin"].post("/interop/connectors", json={"name": "sae", "kind": "depot", "config": {"path": "s"}})
    assert connector.status_code == 201, connector.text
    sent = kit["archiviste"].post(f"/archive/transfers/{created.json()['id']}/send", json={"connector": "sae"})
    assert sent.status_code == 202, sent.text
    run_jobs()
    transfer = kit["archiviste"].get(f"/archive/transfers/{created.json()['id']}").json()
    assert transfer["status"] == "delivered", transfer
    return dict(transfer)


def test_accepted_transfer_marks_documents_archived_and_proposes_the_destroy_copies(kit: Kit) -> None:
    make_type(kit, "bon", final_action="destroy")
    make_type(kit, "deliberation", final_action="keep")
    copy = new_document(kit, type="bon", text="bon de commande", title="Bon de commande")
    kept = new_document(kit, type="deliberation", text="délibération", title="Délibération")
    transfer = delivered_transfer(kit, [copy["id"], kept["id"]])

    request = transfer["message_identifier"]
    sae_sends(kit, transfer["id"], "acknowledgement", acknowledgement("2.2", request, "ACK-1"))
    # Two documents: the package groups them under AU1, as AU2 and AU3 in the transfer's order.
    reply = transfer_reply("2.2", request, "OK", "ATR-9", units={"AU1": "grp-1", "AU2": "sys-bon", "AU3": "sys-delib"})
    sae_sends(kit, transfer["id"], "reply", reply)
    assert kit["archiviste"].get(f"/archive/transfers/{transfer['id']}").json()["status"] == "accepted"

    archived = {d: kit["agent"].get(f"/ged/documents/{d}").json() for d in (copy["id"], kept["id"])}
    assert archived[copy["id"]]["sae_identifier"] == "sys-bon"
    assert archived[kept["id"]]["sae_identifier"] == "sys-delib"
    assert all(d["disposal"] == "archived" and d["archive_transfer_id"] == transfer["id"] for d in archived.values())

    with transaction() as session:
        proposal = session.execute(select(Elimination).where(Elimination.tenant_id == kit.tenant_id)).scalar_one()
        assert proposal.document_ids == [copy["id"]] and proposal.status == "proposed"
        assert transfer["id"] in (proposal.comment or "")
        proposal_id = proposal.id
    approved = kit["archiviste"].post(f"/ged/eliminations/{proposal_id}/approve")
    assert approved.status_code == 200, approved.text
    done = kit["archiviste"].post(f"/ged/eliminations/{proposal_id}/execute")
    assert done.json()["status"] == "done"
    assert_problem(kit["agent"].get(f"/ged/documents/{copy['id']}/content"), 410)
    assert kit["agent"].get(f"/ged/documents/{kept['id']}/content").status_code == 200
