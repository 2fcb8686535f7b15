"""Trash (restore window, purge), legal holds, the retention view, eliminations with their proof, and the
archive loop (GED_MARK_ARCHIVED)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from ga_helpers import make_type, new_document
from sqlalchemy import select, update

from ged.models import Document, Elimination
from socle.db import transaction, utcnow
from socle.models import AuditEntry

from conftest import Kit, assert_problem, make_pdf, socle_command

OBJECTS = Path(os.environ["SOCLE_DATA_DIR"]) / "objects"


def stored(key: str) -> bool:
    return (OBJECTS / key[:2] / key[2:4] / key).is_file()


def age_in_trash(document_id: str, days: int) -> None:
    with transaction() as session:
        when = utcnow() - timedelta(days=days)
        session.execute(update(Document).where(Document.id == document_id).values(deleted_at=when))


def audit_entries(tenant_id: str, action: str) -> list[AuditEntry]:
    with transaction() as session:
        query = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id, AuditEntry.action == action)
        entries = list(session.execute(query.order_by(AuditEntry.seq)).scalars())
        session.expunge_all()
        return entries


def purge(kit: Kit) -> dict[str, Any]:
    response = kit["admin"].post("/ged/trash/purge")
    assert response.status_code == 200, response.text
    return dict(response.json())


# ---------------------------------------------------------------------------------------------------------
# Trash


def test_trash_hides_then_restore_within_the_window(kit: Kit) -> None:
    document = new_document(kit, title="Arrêté de voirie")
    url = f"/ged/documents/{document['id']}"
    trashed = kit["agent"].delete(url)
    assert trashed.status_code == 200 and trashed.json()["deleted_by"] == "agent"
    assert_problem(kit["agent"].get(url), 404)
    assert kit["agent"].get("/ged/documents").json()["total"] == 0
    assert [d["id"] for d in kit["agent"].get("/ged/trash").json()["items"]] == [document["id"]]
    assert_problem(kit["agent"].delete(url), 404)  # already in the trash

    restored = kit["agent"].post(f"{url}/restore")
    assert restored.status_code == 200 and restored.json()["deleted_at"] is None
    assert kit["agent"].get(url).status_code == 200
    assert_problem(kit["agent"].post(f"{url}/restore"), 409)  # not in the trash any more

    kit["agent"].delete(url)
    age_in_trash(document["id"], 31)  # past the default 30 days
    body = assert_problem(kit["agent"].post(f"{url}/restore"), 409)
    assert "30 jours" in body["detail"]


def test_purge_removes_past_window_except_held_or_under_dua_and_keeps_shared_objects(kit: Kit) -> None:
    make_type(kit, "contrat", dua_months=120)
    shared_pdf, own_pdf = make_pdf("partagé"), make_pdf("seul")
    files = {"file": ("a.pdf", shared_pdf, "application/pdf")}
    data = {"title": "A", "document_type": "arrete"}
    first = kit["agent"].post("/ged/documents", files=files, data=data).json()
    twin = kit["agent"].post("/ged/documents", files=files, data=data).json()  # same bytes, one object
    alone = kit["agent"].post("/ged/documents", files={"file": ("b.pdf", own_pdf, "application/pdf")}, data=data).json()
    recent = new_document(kit, text="récent")
    under_dua = new_document(kit, text="contrat", type="contrat")
    held = new_document(kit, text="gelé")
    shared_key, own_key = first["current"]["content"]["sha256"], alone["current"]["content"]["sha256"]

    hold = kit["archiviste"].post("/ged/holds", json={"name": "Contentieux Dupont", "reason": "recours"}).json()
    for document in (first, alone, recent, under_dua, held):
        if document is held:
            continue
        assert kit["agent"].delete(f"/ged/documents/{document['id']}").status_code == 200
    kit["agent"].delete(f"/ged/documents/{held['id']}")
    kit["archiviste"].post(f"/ged/holds/{hold['id']}/documents", json={"document_ids": [held["id"]]})
    for document in (first, alone, under_dua, held):
        age_in_trash(document["id"], 40)

    report = purge(kit)
    assert sorted(report["purged"]) == sorted([first["id"], alone["id"]])
    assert "Contentieux Dupont" in report["kept"][held["id"]]
    assert "DUA" in report["kept"][under_dua["id"]]
    assert recent["id"] not in report["kept"]  # still in its window: not even a candidate
    assert stored(shared_key)  # the twin still needs it
    assert not stored(own_key)
    assert kit["agent"].get(f"/ged/documents/{twin['id']}/content").content == shared_pdf
    assert_problem(kit["agent"].post(f"/ged/documents/{first['id']}/restore"), 404)

    proof = audit_entries(kit.tenant_id, "ged.document.purged")
    assert {entry.object_id for entry in proof} == {first["id"], alone["id"]}
    assert {v["sha256"] for entry in proof for v in entry.details["versions"]} == {shared_key, own_key}
    assert_problem(kit["agent"].post("/ged/trash/purge"), 403)  # the admin's


def test_purge_command_and_job(kit: Kit) -> None:
    document = new_document(kit)
    kit["agent"].delete(f"/ged/documents/{document['id']}")
    age_in_trash(document["id"], 45)
    result = socle_command("ged", "purge", "--tenant", kit.slug)
    assert result.returncode == 0, result.stderr
    assert "1 document(s) supprimé(s)" in result.stdout
    unknown = socle_command("ged", "purge", "--tenant", "inexistante")
    assert unknown.returncode == 1 and "inconnue" in unknown.stderr

    from ged import jobs

    other = new_document(kit, text="autre")
    kit["agent"].delete(f"/ged/documents/{other['id']}")
    age_in_trash(other["id"], 45)
    jobs.purge_trash(tenant_id=kit.tenant_id)
    assert kit["agent"].get("/ged/trash").json()["total"] == 0


# ---------------------------------------------------------------------------------------------------------
# Holds


def test_held_document_cannot_be_modified_deleted_or_versioned_until_released(kit: Kit) -> None:
    document = new_document(kit)
    url = f"/ged/documents/{document['id']}"
    assert_problem(kit["agent"].post("/ged/holds", json={"name": "G", "reason": "r"}), 403)
    hold = kit["archiviste"].post("/ged/holds", json={"name": "Enquête CRC", "reason": "contrôle"}).json()
    added = kit["archiviste"].post(f"/ged/holds/{hold['id']}/documents", json={"document_ids": [document["id"]]})
    assert added.status_code == 200 and added.json()["document_ids"] == [document["id"]]

    new_pdf = {"file": ("v2.pdf", make_pdf("v2"), "application/pdf")}
    for call in (
        kit["agent"].patch(url, json={"title": "x"}),
        kit["agent"].delete(url),
        kit["agent"].post(f"{url}/versions", files=new_pdf),
        kit["agent"].put(f"{url}/folder", json={"folder_id": None}),
        kit["admin"].delete(url),
    ):
        body = assert_problem(call, 409)
        assert "Enquête CRC" in body["detail"]
    assert kit["agent"].get(url).json()["current_version"] == 1

    release = f"/ged/holds/{hold['id']}/release"
    assert_problem(kit["archiviste"].post(release, json={"reason": "  "}), 422)  # a reason is owed
    assert_problem(kit["archiviste"].post(release), 422)
    released = kit["archiviste"].post(release, json={"reason": "Non-lieu du 3 mars 2027"})
    assert (released.json()["released_by"], released.json()["release_reason"]) == (
        "archiviste",
        "Non-lieu du 3 mars 2027",
    )
    assert_problem(kit["archiviste"].post(release, json={"reason": "Encore"}), 409)
    assert kit["agent"].patch(url, json={"title": "Libre"}).status_code == 200
    assert [h["name"] for h in kit["archiviste"].get("/ged/holds").json()] == ["Enquête CRC"]
    assert kit["archiviste"].get("/ged/holds", params={"active": True}).json() == []


# ---------------------------------------------------------------------------------------------------------
# Retention and eliminations


def test_retention_view_by_state(kit: Kit) -> None:
    make_type(kit, "keep", dua_months=12, dua_event="document_date", final_action="keep")
    make_type(kit, "destroy", dua_months=12, dua_event="document_date", final_action="destroy")
    to_transfer = new_document(kit, type="keep", date="2020-01-01")
    to_destroy = new_document(kit, type="destroy", date="2020-01-01")
    new_document(kit, type="destroy", date=utcnow().date().isoformat())  # DUA running
    new_document(kit, type="keep")  # no date: the DUA has not started

    def ids(state: str) -> list[str]:
        response = kit["archiviste"].get("/ged/retention", params={"state": state})
        assert response.status_code == 200, response.text
        return [item["document"]["id"] for item in response.json()["items"]]

    assert sorted(ids("reached")) == sorted([to_transfer["id"], to_destroy["id"]])
    assert ids("to_transfer") == [to_transfer["id"]]
    assert ids("to_eliminate") == [to_destroy["id"]]
    item = kit["archiviste"].get("/ged/retention", params={"state": "to_eliminate"}).json()["items"][0]
    assert item["final_action"] == "destroy" and item["document"]["dua_ends_on"] == "2021-01-01"
    assert_problem(kit["archiviste"].get("/ged/retention", params={"state": "bientot"}), 422)
    assert_problem(kit["agent"].get("/ged/retention"), 403)


def test_elimination_propose_approve_carry_out_with_proof(kit: Kit) -> None:
    make_type(kit, "destroy", dua_months=12, dua_event="document_date", final_action="destroy")
    make_type(kit, "keep", dua_months=12, dua_event="document_date", final_action="keep")
    doomed = new_document(kit, type="destroy", date="2019-05-01", title="Bon de commande", text="bon 2019")
    kit["agent"].patch(f"/ged/documents/{doomed['id']}", json={"title": "Bon de commande 2019"})
    running = new_document(kit, type="destroy", date=utcnow().date().isoformat(), text="en cours")
    kept = new_document(kit, type="keep", date="2019-05-01", text="gardé")
    key = doomed["current"]["content"]["sha256"]

    archivist = kit["archiviste"]
    refused = assert_problem(
        archivist.post("/ged/eliminations", json={"document_ids": [running["id"], kept["id"]]}), 422
    )
    assert "DUA" in refused["detail"] and "destruction" in refused["detail"]
    proposal = archivist.post("/ged/eliminations", json={"document_ids": [doomed["id"]], "comment": "tri 2026"})
    assert proposal.status_code == 201, proposal.text
    elimination = proposal.json()
    assert_problem(archivist.post("/ged/eliminations", json={"document_ids": [doomed["id"]]}), 409)  # pending
    assert_problem(archivist.post(f"/ged/eliminations/{elimination['id']}/execute"), 409)  # not approved
    assert_problem(archivist.post(f"/ged/eliminations/{elimination['id']}/approve"), 403)  # four eyes
    assert_problem(kit["agent"].post(f"/ged/eliminations/{elimination['id']}/approve"), 403)
    approved = kit["admin"].post(f"/ged/eliminations/{elimination['id']}/approve", json={"comment": "vu"})
    assert approved.json()["status"] == "approved" and approved.json()["decided_by"] == "admin"

    done = archivist.post(f"/ged/eliminations/{elimination['id']}/execute")
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "done" and done.json()["done_at"]
    assert not stored(key)
    tombstone = kit["agent"].get(f"/ged/documents/{doomed['id']}").json()
    assert tombstone["disposal"] == "eliminated" and tombstone["current"]["title"] == "Bon de commande 2019"
    assert_problem(kit["agent"].get(f"/ged/documents/{doomed['id']}/content"), 410)
    assert_problem(kit["agent"].patch(f"/ged/documents/{doomed['id']}", json={"title": "x"}), 409)
    assert doomed["id"] not in [d["id"] for d in kit["agent"].get("/ged/documents").json()["items"]]

    proof = audit_entries(kit.tenant_id, "ged.elimination.done")[-1]
    assert proof.actor == "user:archiviste"
    assert proof.details["approved_by"] == "admin" and proof.details["proposed_by"] == "archiviste"
    [document] = proof.details["documents"]
    assert document["document_id"] == doomed["id"]
    assert [v["sha256"] for v in document["versions"]] == [key, key]


def test_elimination_refused_and_hold_blocks_carrying_out(kit: Kit) -> None:
    make_type(kit, "destroy", dua_months=1, dua_event="document_date", final_action="destroy")
    first = new_document(kit, type="destroy", date="2020-01-01")
    second = new_document(kit, type="destroy", date="2020-01-01", text="deux")
    proposal = kit["archiviste"].post("/ged/eliminations", json={"document_ids": [first["id"]]}).json()
    refused = kit["admin"].post(f"/ged/eliminations/{proposal['id']}/refuse", json={"comment": "à garder"})
    assert refused.json()["status"] == "refused"
    assert_problem(kit["admin"].post(f"/ged/eliminations/{proposal['id']}/approve"), 409)

    again = kit["archiviste"].post("/ged/eliminations", json={"document_ids": [second["id"]]}).json()
    kit["admin"].post(f"/ged/eliminations/{again['id']}/approve")
    hold = kit["archiviste"].post("/ged/holds", json={"name": "Litige", "reason": "r"}).json()
    kit["archiviste"].post(f"/ged/holds/{hold['id']}/documents", json={"document_ids": [second["id"]]})
    body = assert_problem(kit["archiviste"].post(f"/ged/eliminations/{again['id']}/execute"), 409)
    assert "Litige" in body["detail"]
    assert kit["agent"].get(f"/ged/documents/{second['id']}/content").status_code == 200


# ---------------------------------------------------------------------------------------------------------
# The archive loop


def test_mark_archived_job_sets_disposal_and_proposes_elimination_of_destroy_copies(kit: Kit) -> None:
    make_type(kit, "destroy", final_action="destroy")
    make_type(kit, "keep", final_action="keep")
    copy = new_document(kit, type="destroy")
    kept = new_document(kit, type="keep", text="k")
    from ged import jobs

    documents = [
        {"document_id": copy["id"], "sae_identifier": "aeaqaaaaaahlfqzzabmq2amd3m4p6xyaaaaq"},
        {"document_id": kept["id"], "sae_identifier": "ARCH-2026-12"},
        {"sae_identifier": "sans document"},  # malformed: skipped, the others still recorded
    ]
    jobs.mark_archived(tenant_id=kit.tenant_id, transfer_id="t-1", documents=documents)
    jobs.mark_archived(tenant_id=kit.tenant_id, transfer_id="t-1", documents=documents)  # twice = once
    archived = kit["agent"].get(f"/ged/documents/{kept['id']}").json()
    assert archived["disposal"] == "archived" and archived["sae_identifier"] == "ARCH-2026-12"
    assert archived["archive_transfer_id"] == "t-1"
    with transaction() as session:
        proposals = list(session.execute(select(Elimination).where(Elimination.tenant_id == kit.tenant_id)).scalars())
        assert [(p.document_ids, p.proposed_by, p.status) for p in proposals] == [
            ([copy["id"]], "service:ged", "proposed")
        ]
    to_eliminate = kit["archiviste"].get("/ged/retention", params={"state": "to_eliminate"}).json()
    assert [item["document"]["id"] for item in to_eliminate["items"]] == [copy["id"]]
    # Another tenant's job cannot touch these documents.
    jobs.mark_archived(tenant_id="autre", transfer_id="t-2", documents=documents)
    assert kit["agent"].get(f"/ged/documents/{kept['id']}").json()["archive_transfer_id"] == "t-1"


def test_parapheur_signed_version_still_arrives_and_is_indexed(kit: Kit) -> None:
    """The existing job path goes through the new checks: once, whatever the runs, and refused while held."""
    import io

    from ged import jobs
    from socle.errors import Conflict
    from socle.storage import get_store

    document = new_document(kit)

    signed = get_store().put(io.BytesIO(make_pdf("signé")))
    arguments = dict(
        tenant_id=kit.tenant_id,
        document_id=document["id"],
        folder_id="f-1",
        object_key=signed.key,
        size=signed.size,
        filename="signé.pdf",
        signatories=["Dominique Dupont"],
        signed_by=None,
    )
    jobs.store_signed_version(**arguments)
    jobs.store_signed_version(**arguments)
    body = kit["agent"].get(f"/ged/documents/{document['id']}").json()
    assert body["current_version"] == 2 and body["current"]["origin"] == "parapheur:f-1"

    hold = kit["archiviste"].post("/ged/holds", json={"name": "Référé", "reason": "r"}).json()
    kit["archiviste"].post(f"/ged/holds/{hold['id']}/documents", json={"document_ids": [document["id"]]})
    try:
        jobs.store_signed_version(**{**arguments, "folder_id": "f-2"})
    except Conflict as exc:
        assert "Référé" in exc.detail
    else:
        raise AssertionError("a held document took a new version")


# ---------------------------------------------------------------------------------------------------------
# Every write: audited, re-indexed, new content rendered


def test_every_write_is_audited_indexed_and_new_content_scheduled(kit: Kit) -> None:
    from ged.models import SearchEntry
    from socle import audit
    from socle.models import Job

    def entry(document_id: str) -> SearchEntry | None:
        with transaction() as session:
            found = session.get(SearchEntry, document_id)
            if found is not None:
                session.expunge(found)
            return found

    def renditions_of(document_id: str) -> set[tuple[str, int]]:
        with transaction() as session:
            query = select(Job).where(Job.tenant_id == kit.tenant_id, Job.function.like("ged.jobs.%"))
            jobs = session.execute(query).scalars()
            return {
                (job.function, job.arguments["version"])
                for job in jobs
                if job.arguments.get("document_id") == document_id and "version" in job.arguments
            }

    folder = kit["admin"].post("/ged/plan", json={"name": "Courrier"}).json()
    document = new_document(kit, title="Courrier reçu", text="courrier")
    url = f"/ged/documents/{document['id']}"
    assert (found := entry(document["id"])) is not None and found.title == "Courrier reçu"
    assert ("ged.jobs.extract_text", 1) in renditions_of(document["id"])

    kit["agent"].patch(url, json={"title": "Courrier du préfet"})
    assert (found := entry(document["id"])) is not None and found.title == "Courrier du préfet"
    assert ("ged.jobs.extract_text", 2) not in renditions_of(document["id"])  # same content: nothing to render
    kit["agent"].put(f"{url}/folder", json={"folder_id": folder["id"]})
    assert (found := entry(document["id"])) is not None and found.folder_id == folder["id"]
    kit["agent"].post(f"{url}/versions", files={"file": ("v3.pdf", make_pdf("courrier v3"), "application/pdf")})
    assert ("ged.jobs.extract_text", 3) in renditions_of(document["id"])
    kit["agent"].delete(url)
    assert entry(document["id"]) is None  # in the trash: out of search
    kit["agent"].post(f"{url}/restore")
    assert entry(document["id"]) is not None

    with transaction() as session:
        actions = [
            e.action
            for e in session.execute(
                select(AuditEntry).where(AuditEntry.tenant_id == kit.tenant_id).order_by(AuditEntry.seq)
            ).scalars()
        ]
        assert audit.verify(session, kit.tenant_id).intact
    for action in (
        "ged.folder.created",
        "ged.document.created",
        "ged.version.created",
        "ged.document.filed",
        "ged.document.trashed",
        "ged.document.restored",
    ):
        assert action in actions, action
