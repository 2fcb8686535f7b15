"""A signed document the GED could not file, through the API: the folder's answer says why (``ged_filing_error``,
null when nothing failed), and POST /folders/{id}/ged-filing/retry asks the GED again with the folder page's rule
and effect: its creator or an administrator (403 for others), only while a failure is kept (409), the same filing
job run again, and the document filed once."""

from __future__ import annotations

from typing import Any

from parapheur_kit import Standard, act, folder_of, ok, sent_folder
from sqlalchemy import func, select

from parapheur.api import create_app
from socle.db import transaction
from socle.models import Job

from conftest import Kit, assert_problem, run_jobs

REASON = "dossier « Actes signés » introuvable dans le plan de classement"


def _failed_filing(kit: Kit) -> str:
    """A folder signed and completed, whose sous-type files in « Actes signés », not in the GED's plan."""
    setup = Standard(kit)
    ok(kit["admin"].patch(f"/parapheur/subtypes/{setup.sign_only}", json={"ged_folder": "Actes signés"}))
    folder = sent_folder(kit, setup.sign_only, title="Arrêté de voirie", ged_filing="true")
    assert folder["ged_filing_error"] is None  # nothing failed yet
    ok(act(kit, "maire", folder["id"], "sign"))
    run_jobs()
    return str(folder["id"])


def _retry(kit: Kit, user: str, folder_id: str) -> Any:
    return kit[user].post(f"/parapheur/folders/{folder_id}/ged-filing/retry")


def _ged_documents(kit: Kit) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ok(kit["admin"].get("/ged/documents"))["items"]
    return items


def _filing_jobs(folder_id: str) -> int:
    with transaction() as session:
        return int(session.execute(select(func.count()).where(Job.key == f"ged.file:{folder_id}")).scalar_one())


def test_the_folder_says_why_the_ged_could_not_file_it(kit: Kit) -> None:
    folder_id = _failed_filing(kit)
    for user in ("agent", "maire", "admin"):  # whoever sees the folder sees why, as on its page
        folder = folder_of(kit, folder_id, user)
        assert folder["ged_filing_error"] == REASON and folder["ged_document_id"] is None
    listed = ok(kit["agent"].get("/parapheur/folders"))
    assert [folder["ged_filing_error"] for folder in listed] == [REASON]


def test_its_creator_asks_again_and_the_ged_files_it_once(kit: Kit) -> None:
    folder_id = _failed_filing(kit)
    plan_folder = ok(kit["admin"].post("/ged/plan", json={"name": "Actes signés", "parent_id": None}), 201)["id"]

    asked = ok(_retry(kit, "agent", folder_id), 202)
    assert asked["id"] == folder_id and asked["ged_filing_error"] is None and asked["ged_document_id"] is None
    assert asked["steps"][0]["desks"][0]["name"] == "Maire"  # the folder as its other answers give it

    run_jobs()
    filed = folder_of(kit, folder_id)
    assert filed["ged_document_id"] and filed["ged_filing_error"] is None
    assert ok(kit["admin"].get(f"/ged/documents/{filed['ged_document_id']}"))["folder_id"] == plan_folder
    assert [document["id"] for document in _ged_documents(kit)] == [filed["ged_document_id"]]
    assert _filing_jobs(folder_id) == 1  # the same job run again, not a second one

    refused = assert_problem(_retry(kit, "agent", folder_id), 409)  # filed: nothing to ask again
    assert refused["detail"] == "le document signé est déjà classé dans la GED"
    run_jobs()
    assert len(_ged_documents(kit)) == 1


def test_only_its_creator_and_administrators_may_ask_again(kit: Kit) -> None:
    folder_id = _failed_filing(kit)
    # The mayor signed it and sees the failure, but may not ask again: 403, and nothing moves.
    refused = assert_problem(_retry(kit, "maire", folder_id), 403)
    assert refused["detail"] == "seul le créateur du dossier ou un administrateur peut relancer le classement"
    assert folder_of(kit, folder_id)["ged_filing_error"] == REASON
    # An administrator may; the GED refuses again (the plan was not corrected), and the folder says so again.
    assert ok(_retry(kit, "admin", folder_id), 202)["ged_filing_error"] is None
    run_jobs()
    assert folder_of(kit, folder_id)["ged_filing_error"] == REASON
    assert _ged_documents(kit) == [] and _filing_jobs(folder_id) == 1


def test_a_folder_whose_filing_did_not_fail_has_nothing_to_ask_again(kit: Kit) -> None:
    setup = Standard(kit)
    folder = sent_folder(kit, setup.sign_only, title="Arrêté de stationnement")
    assert folder["ged_filing_error"] is None
    refused = assert_problem(_retry(kit, "agent", folder["id"]), 409)
    assert refused["detail"] == "aucun classement dans la GED en échec pour ce dossier : rien à relancer"
    assert assert_problem(_retry(kit, "admin", folder["id"]), 409)["detail"] == refused["detail"]
    assert_problem(_retry(kit, "agent", "inconnu"), 404)


def test_the_route_is_documented_in_french() -> None:
    document = create_app().openapi()
    operation = document["paths"]["/folders/{folder_id}/ged-filing/retry"]["post"]
    assert operation["summary"] == (
        "Relancer le classement du document signé dans la GED (créateur du dossier ou administrateur)"
    )
    assert "202" in operation["responses"]
    folder = document["components"]["schemas"]["FolderOut"]["properties"]["ged_filing_error"]
    assert "Pourquoi la GED n'a pas pu classer le document signé" in folder["description"]
