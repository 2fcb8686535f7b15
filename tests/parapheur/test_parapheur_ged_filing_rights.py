"""A document signed in the parapheur and filed in the GED is read only by whom the GED's folder allows: filed
nowhere in the plan, it was open to every user of the collectivité (a disciplinary decision, say)."""

from __future__ import annotations

from parapheur_kit import Standard, act, filing_into, folder_of, ok, sent_folder

from conftest import Kit, assert_problem, run_jobs


def test_the_signed_document_is_filed_where_only_its_readers_read_it(kit: Kit) -> None:
    setup = Standard(kit)
    hr_folder = filing_into(kit, setup.sign_only, "Ressources humaines")
    hr = ok(kit["admin"].post("/ged/groups", json={"name": "RH"}), 201)["id"]
    ok(kit["admin"].post(f"/ged/groups/{hr}/members", json={"username": "maire"}))
    ok(kit["admin"].put(f"/ged/plan/{hr_folder}/permissions", json=[{"group_id": hr, "rights": ["read"]}]))
    folder = sent_folder(kit, setup.sign_only, title="Sanction disciplinaire", ged_filing="true")
    ok(act(kit, "maire", folder["id"], "sign"))
    run_jobs()
    document_id = folder_of(kit, folder["id"])["ged_document_id"]
    assert document_id
    assert ok(kit["maire"].get(f"/ged/documents/{document_id}"))["folder_id"] == hr_folder
    # The agent who created the folder is not in the group: the GED does not show it to them.
    assert_problem(kit["agent"].get(f"/ged/documents/{document_id}"), 404)
    assert ok(kit["agent"].get("/ged/search", params={"q": "Sanction disciplinaire"}))["total"] == 0


def test_a_folder_of_the_plan_that_does_not_exist_files_nothing(kit: Kit) -> None:
    setup = Standard(kit)
    ok(kit["admin"].patch(f"/parapheur/subtypes/{setup.sign_only}", json={"ged_folder": "Nulle part/Ici"}))
    folder = sent_folder(kit, setup.sign_only, title="Arrêté de voirie", ged_filing="true")
    ok(act(kit, "maire", folder["id"], "sign"))
    run_jobs()
    assert folder_of(kit, folder["id"])["ged_document_id"] is None
    assert ok(kit["admin"].get("/ged/documents"))["items"] == []
    history = ok(kit["agent"].get(f"/parapheur/folders/{folder['id']}/history"))
    failed = [event for event in history if event["action"] == "ged_filing_failed"]
    assert len(failed) == 1 and "« Nulle part/Ici » introuvable dans le plan de classement" in failed[0]["comment"]
