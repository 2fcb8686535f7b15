"""A rejected folder is no dead end: « Reprendre dans un nouveau dossier » makes a new draft with the same title,
sous-type, metadata and documents (the same stored objects), linked to the rejected one in both histories and in
the audit log; from the API (POST /folders/{id}/copy) and from the folder's page."""

from __future__ import annotations

import re
from typing import Any

from parapheur_kit import Standard, act, folder_of, ok, sent_folder
from ui_kit import csrf_of, sign_in

from socle import audit
from socle.db import transaction

from conftest import Kit, assert_problem, make_pdf


def _rejected(kit: Kit, setup: Standard) -> dict[str, Any]:
    annex = ("tarifs.csv", b"cantine;3,20\n", "text/csv")
    files = [("budget.pdf", make_pdf("Budget"), "application/pdf")]
    folder = sent_folder(
        kit, setup.visa_then_sign, title="Budget annexe", files=files, annexes=[annex], metadata={"numero": "2026-7"}
    )
    ok(act(kit, "agent", folder["id"], "visa"))
    ok(act(kit, "maire", folder["id"], "reject", {"reason": "Montant erroné"}))
    return folder


def _audited(kit: Kit, folder_id: str, action: str) -> list[dict[str, Any]]:
    with transaction() as session:
        assert audit.verify(session, kit.tenant_id).problems == ()
        found = audit.entries_about(session, kit.tenant_id, "folder", folder_id)
        return [dict(entry.details) for entry in found if entry.action == action]


def test_the_creator_resumes_a_rejected_folder_from_the_api(kit: Kit) -> None:
    setup = Standard(kit)
    old = _rejected(kit, setup)
    new = ok(kit["agent"].post(f"/parapheur/folders/{old['id']}/copy"), 201)
    assert new["id"] != old["id"] and new["status"] == "draft"
    assert (new["title"], new["subtype_id"], new["metadata"]) == (
        "Budget annexe",
        setup.visa_then_sign,
        old["metadata"],
    )
    assert [(d["role"], d["filename"], d["sha256"]) for d in new["documents"]] == [
        (d["role"], d["filename"], d["sha256"]) for d in old["documents"]
    ]  # the same stored objects: content-addressed, nothing copied
    history = ok(kit["agent"].get(f"/parapheur/folders/{new['id']}/history"))
    assert history[0]["action"] == "created" and history[0]["details"]["resumed_from"] == old["id"]
    old_history = ok(kit["agent"].get(f"/parapheur/folders/{old['id']}/history"))
    assert old_history[-1]["action"] == "resumed" and old_history[-1]["details"]["resumed_in"] == new["id"]
    assert _audited(kit, old["id"], "parapheur.folder.resumed")[0]["resumed_in"] == new["id"]
    assert _audited(kit, new["id"], "parapheur.folder.created")[0]["resumed_from"] == old["id"]
    # Resumed once, still open: a second click does not make a second draft.
    again = assert_problem(kit["agent"].post(f"/parapheur/folders/{old['id']}/copy"), 409)
    assert "déjà été repris" in again["detail"]
    # The new draft goes its way: sent, it starts the circuit again from its first step.
    sent = ok(kit["agent"].post(f"/parapheur/folders/{new['id']}/send"))
    assert sent["status"] == "in_progress" and sent["current_step"] == 0


def test_the_api_names_the_resume_as_the_service_and_the_page_do(kit: Kit) -> None:
    document = ok(kit["agent"].get("/parapheur/openapi.json"))
    operation = document["paths"]["/folders/{folder_id}/copy"]["post"]["operationId"]
    assert operation.startswith("resume_rejected_"), operation


def test_only_a_rejected_folder_by_its_creator_or_a_colleague_of_their_desk(kit: Kit) -> None:
    setup = Standard(kit)
    running = sent_folder(kit, setup.visa_then_sign)
    refused = assert_problem(kit["agent"].post(f"/parapheur/folders/{running['id']}/copy"), 409)
    assert "seul un dossier rejeté" in refused["detail"]
    old = _rejected(kit, setup)
    # The mayor sees the folder (his desk is in the circuit), but is not of the creator's desk.
    assert_problem(kit["maire"].post(f"/parapheur/folders/{old['id']}/copy"), 403)
    assert_problem(kit["archiviste"].post(f"/parapheur/folders/{old['id']}/copy"), 404)  # not open to them
    ok(kit["admin"].post(f"/parapheur/desks/{setup.secretariat}/members", json={"username": "maire"}))
    new = ok(kit["maire"].post(f"/parapheur/folders/{old['id']}/copy"), 201)
    assert new["status"] == "draft" and folder_of(kit, new["id"], "maire")["title"] == "Budget annexe"
    assert_problem(kit["agent"].post("/parapheur/folders/inconnu/copy"), 404)


def test_the_rejected_folders_page_offers_to_resume_it(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    old = _rejected(kit, setup)
    mayor = sign_in(app, kit, "maire").get(f"/dossiers/{old['id']}").text
    assert "Reprendre dans un nouveau dossier" not in mayor
    agent = sign_in(app, kit, "agent")
    page = agent.get(f"/dossiers/{old['id']}").text
    assert re.search(r'<button type="submit"[^>]*>Reprendre dans un nouveau dossier</button>', page)
    answer = agent.post(f"/dossiers/{old['id']}/reprendre", data={"csrf": csrf_of(page)})
    assert answer.status_code == 303, answer.text
    new_id = answer.headers["location"].rsplit("/", 1)[1]
    assert new_id != old["id"]
    draft = agent.get(answer.headers["location"]).text
    assert "Nouveau dossier créé en brouillon" in draft and "Envoyer le dossier" in draft
    assert f'href="/dossiers/{old["id"]}"' in draft  # « Reprise de »
    assert f'href="/dossiers/{new_id}"' in agent.get(f"/dossiers/{old['id']}").text  # « Repris dans »


def test_a_rejected_folder_says_nothing_will_be_filed_in_the_ged(app: Any, kit: Kit) -> None:
    from parapheur_kit import filing_into

    setup = Standard(kit)
    filing_into(kit, setup.visa_then_sign)
    folder = sent_folder(kit, setup.visa_then_sign, ged_filing="true")
    assert folder["ged_filing"]
    agent = sign_in(app, kit, "agent")
    assert "sera classé dans la GED à la fin du circuit" in agent.get(f"/dossiers/{folder['id']}").text
    ok(act(kit, "agent", folder["id"], "reject", {"reason": "Erreur de destinataire"}))
    page = agent.get(f"/dossiers/{folder['id']}").text
    assert "à la fin du circuit" not in page and "rien ne sera classé dans la GED" in page
