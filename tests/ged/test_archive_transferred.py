"""A document in a transfer in progress is « transferred » (issues #4 and #5): on no list to transfer, in no
second transfer, never eliminated before the SAE replies; put back when the transfer fails or is rejected;
its GED copy eliminated only after an accepted reply, with the archivist's approval."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ga_helpers import make_type, new_document
from sqlalchemy import func, select
from test_archive_loop import delivered_transfer, sae_sends
from ui_kit import sign_in

from ged import jobs
from socle import messages
from socle.db import transaction
from socle.models import AuditEntry, Job

from conftest import Kit, assert_problem, run_jobs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "archive"))
from sae_messages import VITAM_REFUSAL, acknowledgement, transfer_reply


def transfer(kit: Kit, **selection: Any) -> dict[str, Any]:
    created = kit["archiviste"].post("/archive/transfers", json={"archival_agency": "AD037", **selection})
    assert created.status_code == 202, created.text
    run_jobs()
    return dict(kit["archiviste"].get(f"/archive/transfers/{created.json()['id']}").json())


def document(kit: Kit, document_id: str) -> dict[str, Any]:
    return dict(kit["agent"].get(f"/ged/documents/{document_id}").json())


def retention(kit: Kit, state: str) -> list[str]:
    response = kit["archiviste"].get("/ged/retention", params={"state": state})
    assert response.status_code == 200, response.text
    return [item["document"]["id"] for item in response.json()["items"]]


def history(tenant_id: str, document_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    with transaction() as session:
        query = select(AuditEntry.action, AuditEntry.actor, AuditEntry.details).where(
            AuditEntry.tenant_id == tenant_id, AuditEntry.object_id == document_id
        )
        return [tuple(row) for row in session.execute(query.order_by(AuditEntry.seq))]  # type: ignore[misc]


def transfer_lines(tenant_id: str, document_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [line for line in history(tenant_id, document_id) if line[0].startswith("ged.document.transfer")]


def types(kit: Kit) -> None:
    make_type(kit, "contrat", dua_months=12, dua_event="document_date", final_action="keep")
    make_type(kit, "bon", dua_months=12, dua_event="document_date", final_action="destroy")


def test_a_transferred_document_is_on_no_list_in_no_second_transfer_and_not_eliminated(kit: Kit) -> None:
    types(kit)
    contract = new_document(kit, type="contrat", date="2019-05-02", title="Contrat de maintenance")
    order = new_document(kit, type="bon", date="2019-05-02", title="Bon de commande", text="bon")
    assert retention(kit, "to_transfer") == [contract["id"]] and retention(kit, "to_eliminate") == [order["id"]]

    built = transfer(kit, document_ids=[contract["id"], order["id"]])
    assert built["status"] == "built", built
    for found in (document(kit, contract["id"]), document(kit, order["id"])):
        assert (found["disposal"], found["archive_transfer_id"]) == ("transferred", built["id"])
    assert transfer_lines(kit.tenant_id, contract["id"]) == [
        ("ged.document.transferred", "user:archiviste", {"transfer_id": built["id"]})
    ]
    # On no list: not to transfer, not to eliminate, not even « DUA reached ».
    assert retention(kit, "to_transfer") == retention(kit, "to_eliminate") == retention(kit, "reached") == []

    # In no second transfer: by id (naming them), by DUA.
    again = transfer(kit, document_ids=[contract["id"], order["id"]])
    assert again["status"] == "error"
    assert again["error"] == (
        "documents non versables : « Contrat de maintenance » est déjà dans un versement en cours ; "
        "« Bon de commande » est déjà dans un versement en cours"
    )
    assert transfer(kit, dua_reached=True)["status"] == "error"
    assert document(kit, contract["id"])["archive_transfer_id"] == built["id"]  # the failed ones took nothing

    # Never eliminated before the SAE replies.
    refused = assert_problem(kit["archiviste"].post("/ged/eliminations", json={"document_ids": [order["id"]]}), 422)
    assert "versement en cours" in refused["detail"]


def test_the_export_runs_twice_as_once(kit: Kit) -> None:
    contract = new_document(kit, title="Contrat")
    built = transfer(kit, document_ids=[contract["id"]])
    with transaction() as session:
        export = session.execute(
            select(Job).where(Job.function == messages.GED_EXPORT_FOR_ARCHIVE.function, Job.tenant_id == kit.tenant_id)
        ).scalar_one()
        arguments = dict(export.arguments)
    assert arguments["username"] == "archiviste"
    jobs.export_for_archive(**arguments)  # a worker died after the commit: the job runs again
    run_jobs()
    assert len(transfer_lines(kit.tenant_id, contract["id"])) == 1
    with transaction() as session:
        answers = session.execute(
            select(func.count()).select_from(Job).where(Job.key == f"archive.build:{built['id']}")
        )
        assert answers.scalar_one() == 1
    assert document(kit, contract["id"])["archive_transfer_id"] == built["id"]


def test_a_rejected_transfer_puts_its_documents_back(app: Any, kit: Kit) -> None:
    types(kit)
    contract = new_document(kit, type="contrat", date="2019-05-02", title="Contrat")
    sent = delivered_transfer(kit, [contract["id"]])
    request = sent["message_identifier"]
    sae_sends(kit.tenant_id, sent["id"], "acknowledgement", acknowledgement("2.2", request, "ACK-1"))
    assert document(kit, contract["id"])["disposal"] == "transferred"  # received, not yet accepted

    sae_sends(kit.tenant_id, sent["id"], "reply", transfer_reply("2.2", request, "KO", events=VITAM_REFUSAL))

    assert kit["archiviste"].get(f"/archive/transfers/{sent['id']}").json()["status"] == "rejected"
    back = document(kit, contract["id"])
    assert (back["disposal"], back["archive_transfer_id"]) == (None, None)
    ended = ("ged.document.transfer_ended", "service:archive", {"transfer_id": sent["id"], "outcome": "rejected"})
    assert transfer_lines(kit.tenant_id, contract["id"])[-1] == ended
    jobs.transfer_ended(tenant_id=kit.tenant_id, transfer_id=sent["id"], outcome="rejected")  # twice = once
    assert transfer_lines(kit.tenant_id, contract["id"]).count(ended) == 1
    # The document's page tells its story, newest first.
    page = sign_in(app, kit, "agent").get(f"/documents/{contract['id']}").text
    page = page[page.index("Journal des actions sur le document") :]
    assert page.index("Versement terminé sans archivage") < page.index("Versement aux archives demandé")
    # Live again: on the list to transfer, and in a new transfer.
    assert retention(kit, "to_transfer") == [contract["id"]]
    assert transfer(kit, document_ids=[contract["id"]])["status"] == "built"


def test_a_transfer_that_cannot_be_built_puts_its_selection_back(kit: Kit) -> None:
    types(kit)
    contract = new_document(kit, type="contrat", date="2019-05-02", title="Contrat")
    # A referential without the rule of a 12-month DUA: the package cannot be built, after the GED's export.
    rules = [{"id": "APP-10", "category": "AppraisalRule", "duration": "P10Y"}]
    assert kit["archiviste"].put("/archive/referential", json={"rules": rules}).status_code == 200

    failed = transfer(kit, dua_reached=True)

    assert failed["status"] == "error" and "aucune règle AppraisalRule" in failed["error"], failed
    assert failed["document_ids"] == []  # the archive service never knew them: the GED finds them by transfer
    assert document(kit, contract["id"])["disposal"] is None
    assert [line[0] for line in transfer_lines(kit.tenant_id, contract["id"])] == [
        "ged.document.transferred",
        "ged.document.transfer_ended",
    ]
    assert retention(kit, "to_transfer") == [contract["id"]]


def test_archived_or_held_documents_are_refused_by_title(kit: Kit) -> None:
    archived = new_document(kit, title="Délibération archivée")
    held = new_document(kit, title="Marché contesté", text="marché")
    jobs.mark_archived(
        tenant_id=kit.tenant_id, transfer_id="t-0", documents=[{"document_id": archived["id"], "sae_identifier": "s"}]
    )
    hold = kit["archiviste"].post("/ged/holds", json={"name": "Contentieux", "reason": "Recours au TA"}).json()
    kit["archiviste"].post(f"/ged/holds/{hold['id']}/documents", json={"document_ids": [held["id"]]})

    refused = transfer(kit, document_ids=[archived["id"], held["id"]])

    assert refused["status"] == "error"
    assert refused["error"] == (
        "documents non versables : « Délibération archivée » est déjà archivé ; "
        "« Marché contesté » est gelé par « Contentieux »"
    )
    assert document(kit, held["id"])["disposal"] is None


def test_the_ged_copy_of_an_archived_document_is_eliminated_with_approval_whatever_its_type(kit: Kit) -> None:
    types(kit)
    contract = new_document(kit, type="contrat", date="2019-05-02", title="Contrat")
    order = new_document(kit, type="bon", date="2019-05-02", title="Bon", text="bon")
    sent = delivered_transfer(kit, [contract["id"], order["id"]])
    request = sent["message_identifier"]
    units = {"AU1": "grp", "AU2": "sys-contrat", "AU3": "sys-bon"}
    sae_sends(kit.tenant_id, sent["id"], "reply", transfer_reply("2.2", request, "OK", "ATR-1", units=units))
    assert document(kit, contract["id"])["disposal"] == "archived"

    # The GED itself proposes the copies of « destroy » documents only, as before.
    proposals = kit["archiviste"].get("/ged/eliminations").json()
    assert [p["document_ids"] for p in proposals] == [[order["id"]]]
    # A kept one's copy is the archivist's to propose, then another person approves, then it goes.
    proposed = kit["archiviste"].post("/ged/eliminations", json={"document_ids": [contract["id"]]})
    assert proposed.status_code == 201, proposed.text
    approved = kit["admin"].post(f"/ged/eliminations/{proposed.json()['id']}/approve")
    assert approved.status_code == 200, approved.text
    assert kit["archiviste"].post(f"/ged/eliminations/{proposed.json()['id']}/execute").json()["status"] == "done"
    assert_problem(kit["agent"].get(f"/ged/documents/{contract['id']}/content"), 410)


def test_a_proposal_whose_document_was_transferred_meanwhile_is_not_carried_out(kit: Kit) -> None:
    types(kit)
    order = new_document(kit, type="bon", date="2019-05-02", title="Bon de commande", text="bon")
    proposal = kit["archiviste"].post("/ged/eliminations", json={"document_ids": [order["id"]]}).json()
    assert transfer(kit, document_ids=[order["id"]])["status"] == "built"  # the archivist sends it after all
    assert kit["admin"].post(f"/ged/eliminations/{proposal['id']}/approve").status_code == 200

    refused = assert_problem(kit["archiviste"].post(f"/ged/eliminations/{proposal['id']}/execute"), 409)

    assert "« Bon de commande » est dans un versement en cours" in refused["detail"]
    assert kit["agent"].get(f"/ged/documents/{order['id']}/content").status_code == 200
