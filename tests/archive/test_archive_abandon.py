"""Abandoning a transfer the SAE never got or never answered (issue #5): « abandoned » with the archivist's
reason, its documents given back to the GED (live again, their history says so), refused once the SAE answered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sae_messages import acknowledgement, sae_sends, transfer_reply
from sqlalchemy import select
from test_archive_profiles import PROFILE, upload

from socle import messages
from socle.db import transaction
from socle.models import AuditEntry, Job

from conftest import Kit, assert_problem, make_pdf, run_jobs, upload_document


def request(kit: Kit, document_ids: list[str], **body: Any) -> dict[str, Any]:
    created = kit["archiviste"].post(
        "/archive/transfers", json={"document_ids": document_ids, "archival_agency": "AD037", **body}
    )
    assert created.status_code == 202, created.text
    run_jobs()
    return dict(kit["archiviste"].get(f"/archive/transfers/{created.json()['id']}").json())


def document(kit: Kit, document_id: str) -> dict[str, Any]:
    return dict(kit["agent"].get(f"/ged/documents/{document_id}").json())


def audit_lines(tenant_id: str, object_id: str, prefix: str) -> list[tuple[str, str, dict[str, Any]]]:
    with transaction() as session:
        query = select(AuditEntry.action, AuditEntry.actor, AuditEntry.details).where(
            AuditEntry.tenant_id == tenant_id, AuditEntry.object_id == object_id, AuditEntry.action.startswith(prefix)
        )
        return [tuple(row) for row in session.execute(query.order_by(AuditEntry.seq))]  # type: ignore[misc]


def abandon(kit: Kit, transfer_id: str, reason: Any = "Profil erroné", user: str = "archiviste") -> Any:
    body = {} if reason is None else {"reason": reason}
    return kit[user].post(f"/archive/transfers/{transfer_id}/abandon", json=body)


def test_abandoning_an_invalid_transfer_gives_its_documents_back(kit: Kit) -> None:
    upload(kit, "deliberations", PROFILE)
    title = "Arrêté du maire"  # not « Délibération n° N »: the profile refuses it
    doc = upload_document(kit["agent"], make_pdf(title), title=title)
    invalid = request(kit, [doc["id"]], profile="deliberations")
    assert invalid["status"] == "invalid", invalid
    assert (document(kit, doc["id"])["disposal"], document(kit, doc["id"])["archive_transfer_id"]) == (
        "transferred",
        invalid["id"],
    )

    answer = abandon(kit, invalid["id"], "  Mauvais profil choisi : à refaire sans profil  ")

    assert answer.status_code == 200, answer.text
    abandoned = answer.json()
    assert abandoned["status"] == "abandoned" and abandoned["error"] == "Mauvais profil choisi : à refaire sans profil"
    assert abandoned["status_label"].startswith("abandonné")
    assert abandoned["sip_sha256"] == invalid["sip_sha256"]  # the package is kept (content-addressed, shared)
    [line] = audit_lines(kit.tenant_id, invalid["id"], "archive.transfer.abandoned")
    assert line[1] == "user:archiviste"
    assert line[2]["reason"] == "Mauvais profil choisi : à refaire sans profil" and line[2]["previous"] == "invalid"

    run_jobs()  # the GED's ged.jobs.transfer_ended
    back = document(kit, doc["id"])
    assert (back["disposal"], back["archive_transfer_id"]) == (None, None)
    ended = ("ged.document.transfer_ended", "service:archive", {"transfer_id": invalid["id"], "outcome": "abandoned"})
    assert audit_lines(kit.tenant_id, doc["id"], "ged.document.transfer")[-1] == ended
    # Live again: a new transfer takes it.
    again = request(kit, [doc["id"]])
    assert again["status"] == "built", again
    assert document(kit, doc["id"])["archive_transfer_id"] == again["id"]


def test_a_retried_request_is_answered_once_another_reason_is_refused(kit: Kit) -> None:
    doc = upload_document(kit["agent"], make_pdf("Contrat"), title="Contrat")
    built = request(kit, [doc["id"]])
    assert built["status"] == "built", built

    first, retried = abandon(kit, built["id"], "Doublon"), abandon(kit, built["id"], "Doublon")

    assert first.status_code == retried.status_code == 200, retried.text
    assert first.json()["updated_at"] == retried.json()["updated_at"]
    assert len(audit_lines(kit.tenant_id, built["id"], "archive.transfer.abandoned")) == 1
    with transaction() as session:
        query = select(Job).where(Job.function == messages.GED_TRANSFER_ENDED.function, Job.tenant_id == kit.tenant_id)
        assert [job.arguments["outcome"] for job in session.execute(query).scalars()] == ["abandoned"]
    other = assert_problem(abandon(kit, built["id"], "Autre raison"), 409)
    assert "déjà terminé" in other["detail"]
    send = kit["archiviste"].post(f"/archive/transfers/{built['id']}/send", json={"connector": "x"})
    assert "ne peut pas être envoyé" in assert_problem(send, 409)["detail"]


def test_once_the_sae_has_answered_the_transfer_is_not_abandoned(kit: Kit) -> None:
    """Delivered and acknowledged, a transfer may still be abandoned (the SAE may never answer: see
    test_archive_review_fixes); once it has answered, the transfer has ended."""
    doc = upload_document(kit["agent"], make_pdf("Délibération"), title="Délibération")
    built = request(kit, [doc["id"]])
    connector = kit["admin"].post("/interop/connectors", json={"name": "sae", "kind": "depot", "config": {"path": "s"}})
    assert connector.status_code == 201, connector.text
    sent = kit["archiviste"].post(f"/archive/transfers/{built['id']}/send", json={"connector": "sae"})
    assert sent.status_code == 202, sent.text
    run_jobs()
    request_id = built["message_identifier"]
    sae_sends(kit.tenant_id, built["id"], "acknowledgement", acknowledgement("2.2", request_id, "ACK-1"))
    assert kit["archiviste"].get(f"/archive/transfers/{built['id']}").json()["status"] == "acknowledged"

    sae_sends(
        kit.tenant_id, built["id"], "reply", transfer_reply("2.2", request_id, "OK", "ATR-1", units={"AU1": "sys-1"})
    )
    assert kit["archiviste"].get(f"/archive/transfers/{built['id']}").json()["status"] == "accepted"
    refused = assert_problem(abandon(kit, built["id"]), 409)
    assert refused["transfer_status"] == "accepted" and "déjà terminé" in refused["detail"]
    assert document(kit, doc["id"])["disposal"] == "archived"
    assert audit_lines(kit.tenant_id, built["id"], "archive.transfer.abandoned") == []


def test_rights_tenants_and_reason(kit: Kit, make_kit: Callable[..., Kit]) -> None:
    doc = upload_document(kit["agent"], make_pdf("Acte"), title="Acte")
    built = request(kit, [doc["id"]])

    assert_problem(abandon(kit, built["id"], user="agent"), 403)
    other = make_kit(with_identity=False)
    assert_problem(abandon(other, built["id"]), 404)
    assert_problem(abandon(kit, built["id"], None), 422)
    assert_problem(abandon(kit, built["id"], ""), 422)
    assert_problem(abandon(kit, built["id"], "x" * 2001), 422)
    assert "pourquoi" in assert_problem(abandon(kit, built["id"], "   "), 422)["detail"]
    assert_problem(abandon(kit, "inconnu"), 404)

    assert kit["archiviste"].get(f"/archive/transfers/{built['id']}").json()["status"] == "built"
    assert document(kit, doc["id"])["disposal"] == "transferred"
