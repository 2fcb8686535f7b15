"""Bulk actions through the API: a selection signed or visaed by a job, folder by folder, failures reported."""

from __future__ import annotations

from pathlib import Path

from parapheur_kit import Standard, act, folder_of, ok, sent_folder
from signing_helpers import actions, object_path, save
from sqlalchemy import update

from parapheur import jobs, pades
from parapheur.models import BulkOperation
from socle.db import new_session, transaction
from socle.models import User

from conftest import Kit, assert_problem, identity_certificate, pdfsig, run_jobs


def test_bulk_signature_goes_on_after_a_failure_and_reports_it_in_french(kit: Kit, tmp_path: Path) -> None:
    setup = Standard(kit)
    folders = [sent_folder(kit, setup.sign_only, title=f"Arrêté n° {n}") for n in range(3)]
    ok(act(kit, "maire", folders[1]["id"], "reject", {"reason": "Erreur de visa"}))  # no longer signable
    ids = [folder["id"] for folder in folders]

    operation = ok(kit["maire"].post("/parapheur/folders/bulk", json={"action": "sign", "folder_ids": ids}), 202)
    assert operation["status"] == "pending" and operation["total"] == 3 and operation["done"] == 0
    run_jobs()

    progress = ok(kit["maire"].get(f"/parapheur/bulk/{operation['id']}"))
    assert progress["status"] == "finished"
    assert (progress["total"], progress["done"], progress["failed"]) == (3, 2, 1)
    failed = [item for item in progress["items"] if item["status"] == "failed"]
    assert [item["folder_id"] for item in failed] == [ids[1]]
    assert "le dossier n'attend aucune action" in failed[0]["error"]
    for index in (0, 2):
        folder = folder_of(kit, ids[index])
        assert folder["status"] == "completed"
        path = save(tmp_path, f"{index}.pdf", object_path(folder["documents"][0]["current_sha256"]).read_bytes())
        assert "Signature is Valid" in pdfsig(path)
        assert len(pades.verify_pdf(path, [identity_certificate()])) == 1

    # The job run again changes nothing: each folder keeps its one signature.
    jobs.run_bulk(tenant_id=kit.tenant_id, operation_id=operation["id"])
    assert all(actions(ids[index]).count("signature") == 1 for index in (0, 2))
    assert ok(kit["maire"].get(f"/parapheur/bulk/{operation['id']}"))["done"] == 2


def test_bulk_visa_and_who_may_see_the_progress(kit: Kit) -> None:
    setup = Standard(kit)
    folders = [sent_folder(kit, setup.visa_then_sign, title=f"Délibération n° {n}") for n in range(2)]
    body = {"action": "visa", "folder_ids": [f["id"] for f in folders] * 2, "comment": "Vu"}  # duplicates once
    operation = ok(kit["agent"].post("/parapheur/folders/bulk", json=body), 202)
    assert operation["total"] == 2
    run_jobs()
    assert ok(kit["agent"].get(f"/parapheur/bulk/{operation['id']}"))["done"] == 2
    assert all(folder_of(kit, f["id"])["current_step"] == 1 for f in folders)
    assert_problem(kit["maire"].get(f"/parapheur/bulk/{operation['id']}"), 404)  # someone else's operation


def test_bulk_refuses_an_unknown_action_or_an_empty_selection(kit: Kit) -> None:
    assert_problem(kit["agent"].post("/parapheur/folders/bulk", json={"action": "reject", "folder_ids": ["x"]}), 422)
    assert_problem(kit["agent"].post("/parapheur/folders/bulk", json={"action": "visa", "folder_ids": []}), 422)


def test_a_bulk_item_on_another_tenants_folder_fails_without_touching_it(kit: Kit, make_kit: object) -> None:
    other = make_kit()  # type: ignore[operator]
    setup = Standard(other)
    foreign = sent_folder(other, setup.sign_only)
    operation = ok(
        kit["maire"].post("/parapheur/folders/bulk", json={"action": "sign", "folder_ids": [foreign["id"]]}), 202
    )
    run_jobs()
    progress = ok(kit["maire"].get(f"/parapheur/bulk/{operation['id']}"))
    assert progress["failed"] == 1 and "introuvable" in progress["items"][0]["error"]
    assert folder_of(other, foreign["id"])["status"] == "in_progress"


def test_an_operation_of_a_user_deactivated_since_fails_every_item_and_finishes(kit: Kit) -> None:
    setup = Standard(kit)
    folder = sent_folder(kit, setup.visa_then_sign)
    operation = ok(
        kit["agent"].post("/parapheur/folders/bulk", json={"action": "visa", "folder_ids": [folder["id"]]}), 202
    )
    with transaction() as session:
        session.execute(
            update(User).where(User.tenant_id == kit.tenant_id, User.username == "agent").values(active=False)
        )
    run_jobs()
    with new_session() as session:
        row = session.get(BulkOperation, operation["id"])
        assert row is not None and row.status == "finished" and row.finished_at is not None
        assert [(item.status, item.error) for item in row.items] == [
            ("failed", "l'utilisateur « agent » n'est plus actif")
        ]
    assert folder_of(kit, folder["id"], "maire")["current_step"] == 0  # nothing was done in their name
