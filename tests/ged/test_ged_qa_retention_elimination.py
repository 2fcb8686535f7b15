"""Carrying out an approved elimination checks each document again as it stands then: held, transferred or no
longer eliminable documents are kept (and said so), the others eliminated; the proof in the audit chain."""

from __future__ import annotations

from typing import Any

import pytest
from ga_helpers import make_type, new_document
from sqlalchemy import select, update
from sqlalchemy.exc import DatabaseError
from ui_kit import post_form, sign_in

from socle import audit
from socle.db import transaction
from socle.models import AuditEntry

from conftest import Kit, assert_problem, socle_command


def approved(kit: Kit, *document_ids: str) -> str:
    proposal = kit["archiviste"].post("/ged/eliminations", json={"document_ids": list(document_ids)})
    assert proposal.status_code == 201, proposal.text
    decision = kit["admin"].post(f"/ged/eliminations/{proposal.json()['id']}/approve")
    assert decision.status_code == 200, decision.text
    return str(proposal.json()["id"])


def proof_of(tenant_id: str, elimination_id: str) -> AuditEntry:
    with transaction() as session:
        entry = session.execute(
            select(AuditEntry).where(
                AuditEntry.tenant_id == tenant_id,
                AuditEntry.action == "ged.elimination.done",
                AuditEntry.object_id == elimination_id,
            )
        ).scalar_one()
        session.expunge(entry)
        return entry


def actions(tenant_id: str, document_id: str) -> list[str]:
    with transaction() as session:
        query = select(AuditEntry.action).where(AuditEntry.tenant_id == tenant_id, AuditEntry.object_id == document_id)
        return list(session.execute(query.order_by(AuditEntry.seq)).scalars())


def content_status(kit: Kit, document: dict[str, Any]) -> int:
    return int(kit["agent"].get(f"/ged/documents/{document['id']}/content").status_code)


def test_a_rule_changed_after_the_approval_is_the_one_applied(kit: Kit) -> None:
    """Approved while the rule allowed it; the type then says « conserver », or a DUA 100 years long: the
    document is not eliminated."""
    make_type(kit, "bon", dua_months=12, dua_event="document_date", final_action="destroy")
    quote_type = make_type(kit, "devis", dua_months=12, dua_event="document_date", final_action="destroy")
    order = new_document(kit, type="bon", date="2019-05-02", title="Bon de commande", text="bon")
    quote = new_document(kit, type="devis", date="2019-05-02", title="Devis travaux", text="devis")
    elimination_id = approved(kit, order["id"], quote["id"])

    changed = kit["admin"].patch(f"/ged/types/{quote_type['id']}", json={"final_action": "keep"})
    assert changed.status_code == 200, changed.text
    done = kit["archiviste"].post(f"/ged/eliminations/{elimination_id}/execute")
    assert done.status_code == 200, done.text

    assert content_status(kit, order) == 410
    assert content_status(kit, quote) == 200  # now « conserver »: it goes to the archives, not away
    for rendition in ("renditions", "text", "preview", "thumbnail", "pdfa"):  # they went with the content
        assert_problem(kit["agent"].get(f"/ged/documents/{order['id']}/{rendition}"), 410)
    proof = proof_of(kit.tenant_id, elimination_id)
    assert [item["document_id"] for item in proof.details["documents"]] == [order["id"]]
    [kept] = proof.details["kept"]
    assert kept["document_id"] == quote["id"]
    assert "« Devis travaux » n'est plus éliminable" in kept["reason"] and "destruction" in kept["reason"]
    assert "ged.document.elimination_skipped" in actions(kit.tenant_id, quote["id"])


def test_a_longer_dua_after_the_approval_stops_the_elimination(kit: Kit) -> None:
    found = make_type(kit, "bon", dua_months=12, dua_event="document_date", final_action="destroy")
    order = new_document(kit, type="bon", date="2019-05-02", title="Bon de commande", text="bon")
    elimination_id = approved(kit, order["id"])
    assert kit["admin"].patch(f"/ged/types/{found['id']}", json={"dua_months": 1200}).status_code == 200

    refused = assert_problem(kit["archiviste"].post(f"/ged/eliminations/{elimination_id}/execute"), 409)

    assert "« Bon de commande » n'est plus éliminable : sa DUA n'est pas échue" in refused["detail"]
    assert content_status(kit, order) == 200
    assert kit["archiviste"].get(f"/ged/eliminations/{elimination_id}").json()["status"] == "approved"


def test_a_document_held_after_the_approval_is_kept_and_the_others_eliminated(kit: Kit) -> None:
    make_type(kit, "bon", dua_months=12, dua_event="document_date", final_action="destroy")
    order = new_document(kit, type="bon", date="2019-05-02", title="Bon de commande", text="bon")
    disputed = new_document(kit, type="bon", date="2019-05-02", title="Bon litigieux", text="litige")
    elimination_id = approved(kit, order["id"], disputed["id"])
    hold = kit["archiviste"].post("/ged/holds", json={"name": "Litige fournisseur", "reason": "recours"}).json()
    kit["archiviste"].post(f"/ged/holds/{hold['id']}/documents", json={"document_ids": [disputed["id"]]})

    done = kit["archiviste"].post(f"/ged/eliminations/{elimination_id}/execute")

    assert done.status_code == 200, done.text
    assert done.json()["status"] == "done"
    assert content_status(kit, order) == 410 and content_status(kit, disputed) == 200
    [kept] = proof_of(kit.tenant_id, elimination_id).details["kept"]
    assert kept["document_id"] == disputed["id"] and "gelé par « Litige fournisseur »" in kept["reason"]
    assert actions(kit.tenant_id, disputed["id"])[-1] == "ged.document.elimination_skipped"

    # The hold lifted, the kept document may be proposed again (it is in no open elimination).
    release = kit["archiviste"].post(f"/ged/holds/{hold['id']}/release", json={"reason": "Transaction signée"})
    assert release.status_code == 200, release.text
    assert kit["archiviste"].post("/ged/eliminations", json={"document_ids": [disputed["id"]]}).status_code == 201


def test_the_proof_says_what_was_removed_under_which_rule_and_stays_in_the_verified_chain(kit: Kit) -> None:
    make_type(kit, "bon", dua_months=12, dua_event="document_date", final_action="destroy")
    order = new_document(kit, type="bon", date="2019-05-02", title="Bon de commande", text="bon")
    elimination_id = approved(kit, order["id"])
    assert kit["archiviste"].post(f"/ged/eliminations/{elimination_id}/execute").status_code == 200

    proof = proof_of(kit.tenant_id, elimination_id)
    [document] = proof.details["documents"]
    assert (document["type"], document["final_action"], document["dua_ends_on"]) == ("bon", "destroy", "2020-05-02")
    assert (document["dua_months"], document["dua_event"]) == (12, "document_date")
    assert [v["sha256"] for v in document["versions"]] == [order["current"]["content"]["sha256"]]
    assert proof.details["proposed_by"] == "archiviste" and proof.details["proposed_at"]
    assert proof.details["approved_by"] == "admin" and proof.details["approved_at"]
    assert proof.details["kept"] == []

    verified = socle_command("audit", "verify", "--tenant", kit.slug)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"{kit.slug}: " in verified.stdout and "intact" in verified.stdout
    with transaction() as session:
        assert audit.verify(session, kit.tenant_id).intact
    # The proof cannot be rewritten afterwards: the database refuses (the chain would tell otherwise, see the
    # kernel's audit tests).
    forged = {**proof.details, "approved_by": "quelqu'un d'autre"}
    with pytest.raises(DatabaseError, match="append-only"), transaction() as session:
        session.execute(update(AuditEntry).where(AuditEntry.id == proof.id).values(details=forged))


def test_the_page_says_which_documents_the_carrying_out_kept(app: Any, kit: Kit) -> None:
    make_type(kit, "bon", dua_months=12, dua_event="document_date", final_action="destroy")
    order = new_document(kit, type="bon", date="2019-05-02", title="Bon de commande", text="bon")
    disputed = new_document(kit, type="bon", date="2019-05-02", title="Bon litigieux", text="litige")
    elimination_id = approved(kit, order["id"], disputed["id"])
    hold = kit["archiviste"].post("/ged/holds", json={"name": "Litige fournisseur", "reason": "recours"}).json()
    kit["archiviste"].post(f"/ged/holds/{hold['id']}/documents", json={"document_ids": [disputed["id"]]})
    archivist = sign_in(app, kit, "archiviste")
    page_url = f"/archives/eliminations/{elimination_id}"
    before = archivist.get(page_url).text
    assert "l'exécution les gardera" in before

    done = post_form(archivist, page_url, f"{page_url}/executer", {})

    assert done.status_code == 303, done.text
    page = archivist.get(page_url).text
    assert "1 document(s) gardé(s)" in page
    assert "Documents gardés à l'exécution" in page and "gelé par « Litige fournisseur »" in page
