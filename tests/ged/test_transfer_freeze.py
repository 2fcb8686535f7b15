"""A document in a transfer in progress is frozen in the GED, like an archived one: from the export that builds its
package until the transfer ends, no new version, no new metadata, no trash (409 naming the transfer, in the API
and the pages), and no signed version from the parapheur; filing it in the plan stays possible. Rejected, failed
or abandoned: writable again; accepted: archived, frozen for good. Each message handled twice is handled once."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest
from ga_helpers import make_folder, new_document
from sqlalchemy import select
from test_archive_loop import delivered_transfer
from test_archive_transferred import transfer, transfer_lines
from ui_kit import post_form, sign_in

from ged import jobs
from socle import messages
from socle.db import new_session
from socle.errors import Conflict
from socle.models import Job
from socle.storage import get_store

from conftest import Kit, assert_problem, make_pdf, run_jobs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "archive"))
from sae_messages import VITAM_REFUSAL, acknowledgement, sae_sends, transfer_reply

IN_TRANSFER = "document en cours de versement au système d'archivage"


def edits(kit: Kit, document_id: str) -> list[Any]:
    """A new version, new metadata and the trash, asked through the API by the document's author."""
    agent = kit["agent"]
    pdf = {"file": ("v2.pdf", make_pdf("Version 2"), "application/pdf")}
    return [
        agent.post(f"/ged/documents/{document_id}/versions", files=pdf),
        agent.patch(f"/ged/documents/{document_id}", json={"title": "Titre changé après l'envoi"}),
        agent.delete(f"/ged/documents/{document_id}"),
    ]


def assert_frozen(kit: Kit, document_id: str, transfer_id: str) -> None:
    for answer in edits(kit, document_id):
        problem = assert_problem(answer, 409)
        assert IN_TRANSFER in problem["detail"] and f"(versement {transfer_id})" in problem["detail"], problem
        assert "figée jusqu'à la fin du versement" in problem["detail"]
    found = kit["agent"].get(f"/ged/documents/{document_id}").json()
    assert (found["current_version"], found["current"]["title"]) == (1, "Contrat de maintenance")


def signed_version(kit: Kit, document_id: str, folder_id: str) -> None:
    """What the parapheur's job does when a circuit on the document ends."""
    stored = get_store().put(io.BytesIO(make_pdf(f"Signé {folder_id}")))
    jobs.store_signed_version(
        tenant_id=kit.tenant_id,
        document_id=document_id,
        folder_id=folder_id,
        object_key=stored.key,
        size=stored.size,
        filename="contrat-signe.pdf",
        signatories=["maire"],
        signed_by=["Dominique Dupont, Maire"],
    )


def test_no_circuit_starts_on_a_document_in_a_transfer(kit: Kit) -> None:
    """Its signed version could not come back (frozen): the parapheur is told at once, with why, rather than
    after the circuit, when nothing could be done with the signature."""
    contract = new_document(kit, title="Contrat de maintenance")
    delivered_transfer(kit, [contract["id"]])
    asked = {"tenant_id": kit.tenant_id, "document_id": contract["id"], "folder_id": "dossier-1", "username": "agent"}
    jobs.send_to_parapheur(**asked)
    with new_session() as session:
        (job,) = session.execute(select(Job).where(Job.key == "parapheur.attach:dossier-1")).scalars()
        assert job.function == messages.PARAPHEUR_DOCUMENT_UNAVAILABLE.function
        assert IN_TRANSFER in job.arguments["reason"]


def test_a_document_is_frozen_from_its_export_and_writable_again_when_its_transfer_is_rejected(kit: Kit) -> None:
    contract = new_document(kit, title="Contrat de maintenance")
    document_id = contract["id"]
    sent = delivered_transfer(kit, [document_id])
    assert_frozen(kit, document_id, sent["id"])
    request = sent["message_identifier"]
    sae_sends(kit.tenant_id, sent["id"], "acknowledgement", acknowledgement("2.2", request, "ACK-1"))
    assert_frozen(kit, document_id, sent["id"])  # received by the SAE, not yet accepted

    # The parapheur's signed version waits too: the job fails, visible, and adds nothing.
    with pytest.raises(Conflict, match="ne pourra y être ajoutée que si le versement se termine sans être accepté"):
        signed_version(kit, document_id, "circuit-1")
    assert kit["agent"].get(f"/ged/documents/{document_id}").json()["current_version"] == 1

    # Filing in the plan is the GED's own arrangement, not the package's content: allowed, as for an archived one.
    folder = make_folder(kit, "Contrats")
    filed = kit["agent"].put(f"/ged/documents/{document_id}/folder", json={"folder_id": folder["id"]})
    assert filed.status_code == 200, filed.text
    refiled = kit["agent"].patch(f"/ged/documents/{document_id}", json={"folder_id": None})
    assert refiled.status_code == 200, refiled.text

    sae_sends(kit.tenant_id, sent["id"], "reply", transfer_reply("2.2", request, "KO", events=VITAM_REFUSAL))
    assert kit["archiviste"].get(f"/archive/transfers/{sent['id']}").json()["status"] == "rejected"
    jobs.transfer_ended(tenant_id=kit.tenant_id, transfer_id=sent["id"], outcome="rejected")  # twice = once

    changed = kit["agent"].patch(f"/ged/documents/{document_id}", json={"title": "Contrat modifié après le refus"})
    assert changed.status_code == 200, changed.text
    signed_version(kit, document_id, "circuit-1")  # « socle jobs retry »: the signed version is added now
    found = kit["agent"].get(f"/ged/documents/{document_id}").json()
    assert (found["current_version"], found["current"]["title"]) == (3, "Contrat modifié après le refus")
    assert [line[0] for line in transfer_lines(kit.tenant_id, document_id)] == [
        "ged.document.transferred",
        "ged.document.transfer_ended",
    ]


def test_an_accepted_transfer_leaves_its_documents_frozen_as_archived(kit: Kit) -> None:
    contract = new_document(kit, title="Contrat de maintenance")
    sent = delivered_transfer(kit, [contract["id"]])
    units = {"AU1": "sys-contrat"}
    reply = transfer_reply("2.2", sent["message_identifier"], "OK", "ATR-1", units=units)
    sae_sends(kit.tenant_id, sent["id"], "reply", reply)
    assert kit["archiviste"].get(f"/archive/transfers/{sent['id']}").json()["status"] == "accepted"

    for answer in edits(kit, contract["id"]):
        assert "document archivé au système d'archivage (sys-contrat)" in assert_problem(answer, 409)["detail"]
    with pytest.raises(Conflict, match="la version signée ne peut plus y être ajoutée"):
        signed_version(kit, contract["id"], "circuit-2")
    assert kit["agent"].get(f"/ged/documents/{contract['id']}").json()["current_version"] == 1


def test_the_export_run_twice_freezes_once_and_a_failed_build_unfreezes(kit: Kit) -> None:
    contract = new_document(kit, title="Contrat de maintenance")
    built = transfer(kit, document_ids=[contract["id"]])
    assert built["status"] == "built"
    jobs.export_for_archive(
        tenant_id=kit.tenant_id, transfer_id=built["id"], document_ids=[contract["id"]], username="archiviste"
    )
    assert_frozen(kit, contract["id"], built["id"])
    assert len(transfer_lines(kit.tenant_id, contract["id"])) == 1

    # Abandoned by the archivist before the SAE had the package: writable again, once.
    abandoned = kit["archiviste"].post(f"/archive/transfers/{built['id']}/abandon", json={"reason": "Refait"})
    assert abandoned.status_code == 200, abandoned.text
    run_jobs()
    jobs.transfer_ended(tenant_id=kit.tenant_id, transfer_id=built["id"], outcome="abandoned")
    answer = kit["agent"].patch(f"/ged/documents/{contract['id']}", json={"title": "Contrat revu"})
    assert answer.status_code == 200, answer.text
    assert [line[0] for line in transfer_lines(kit.tenant_id, contract["id"])] == [
        "ged.document.transferred",
        "ged.document.transfer_ended",
    ]


def test_the_document_page_says_why_it_is_frozen_and_offers_no_edit(app: Any, kit: Kit) -> None:
    contract = new_document(kit, title="Contrat de maintenance")
    built = transfer(kit, document_ids=[contract["id"]])
    client = sign_in(app, kit, "agent")
    page_url = f"/documents/{contract['id']}"

    page = client.get(page_url).text

    assert "En cours de versement" in page and "figée jusqu'à la fin du versement" in page
    assert f'action="{page_url}/versions"' not in page and f'action="{page_url}/corbeille"' not in page
    assert f'href="{page_url}/metadonnees"' not in page
    assert f'action="{page_url}/classer"' in page  # filing stays
    files = {"file": ("v2.pdf", make_pdf("v2"), "application/pdf")}
    refused = post_form(client, page_url, f"{page_url}/versions", {}, files=files)
    assert refused.status_code == 409 and f"(versement {built['id']})" in refused.text
    assert client.get(f"{page_url}/metadonnees").status_code == 409
    trashed = post_form(client, page_url, f"{page_url}/corbeille", {})
    assert trashed.status_code == 409 and "en cours de versement" in trashed.text
    assert kit["agent"].get(f"/ged/documents/{contract['id']}").json()["current_version"] == 1
