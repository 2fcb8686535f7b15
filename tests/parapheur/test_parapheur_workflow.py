"""The workflow engine through the API: modes, delegations, remords, transfer, opinions, reading, boxes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from parapheur_kit import Standard, act, desk, folder_of, ok, sent_folder, typology, upload_folder
from sqlalchemy import select

from parapheur.identities import import_identity
from parapheur.models import FolderEvent
from parapheur.pades import verify_pdf
from socle import audit
from socle.auth import create_user, get_tenant, issue_token
from socle.db import new_session, transaction
from socle.models import AuditEntry

from conftest import Kit, assert_problem, identity_certificate, make_pdf, signing_identity

NOW = datetime.now(UTC)


def add_user(kit: Kit, app: Any, username: str, display_name: str, *, identity: bool = False) -> None:
    """One more agent in the kit's collectivité, with an API client (and the test signing identity)."""
    with transaction() as session:
        tenant = get_tenant(session, kit.slug)
        user = create_user(session, tenant, username, display_name, ["agent"])
        kit.tokens[username] = issue_token(session, user, "tests")
        if identity:
            import_identity(session, tenant, username, *signing_identity())
    kit.clients[username] = TestClient(
        app, headers={"Authorization": f"Bearer {kit.tokens[username]}"}, raise_server_exceptions=False
    )


def delegate(kit: Kit, from_desk: str, to_desk: str, start: timedelta, end: timedelta, **fields: Any) -> None:
    body = {
        "from_desk_id": from_desk,
        "to_desk_id": to_desk,
        "starts_at": (NOW + start).isoformat(),
        "ends_at": (NOW + end).isoformat(),
        **fields,
    }
    ok(kit["admin"].post("/parapheur/delegations", json=body), 201)


def audit_actions(tenant_id: str, folder_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    with new_session() as session:
        rows = session.execute(
            select(AuditEntry).where(AuditEntry.tenant_id == tenant_id, AuditEntry.object_id == folder_id)
        ).scalars()
        return [(row.actor, row.action, dict(row.details)) for row in sorted(rows, key=lambda row: row.seq)]


def history(kit: Kit, folder_id: str, user: str = "agent") -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = ok(kit[user].get(f"/parapheur/folders/{folder_id}/history"))
    return events


# --------------------------------------------------------------------------------------------------------
# Creating and sending


def test_draft_then_send_checks_metadata_and_documents(kit: Kit) -> None:
    setup = Standard(kit)
    subtype = typology(
        kit, [{"kind": "visa", "desk_ids": [setup.secretariat]}], name="Marché", mandatory_metadata=["montant"]
    )
    annex = ("annexe.txt", b"Tableau des tarifs", "text/plain")
    draft = ok(upload_folder(kit, subtype, annexes=[annex], send=False, metadata={"objet": "cantine"}), 201)
    assert draft["status"] == "draft" and draft["sent_at"] is None and draft["current_step"] is None
    assert [(d["role"], d["filename"]) for d in draft["documents"]] == [("main", "acte.pdf"), ("annex", "annexe.txt")]
    assert draft["metadata"] == {"objet": "cantine"} and draft["signature_format"] == "pades"
    body = assert_problem(kit["agent"].post(f"/parapheur/folders/{draft['id']}/send"), 422)
    assert "montant" in body["detail"]
    # A draft is its creator's: an outsider is told it does not exist, an administrator sees it but cannot edit.
    assert_problem(kit["maire"].patch(f"/parapheur/folders/{draft['id']}/metadata", json={"metadata": {}}), 404)
    assert_problem(kit["admin"].patch(f"/parapheur/folders/{draft['id']}/metadata", json={"metadata": {}}), 403)
    filled = ok(kit["agent"].patch(f"/parapheur/folders/{draft['id']}/metadata", json={"metadata": {"montant": 12}}))
    assert filled["metadata"] == {"objet": "cantine", "montant": 12}
    sent = ok(kit["agent"].post(f"/parapheur/folders/{draft['id']}/send"))
    assert sent["status"] == "in_progress" and sent["steps"][0]["status"] == "current"
    # Sending at creation checks the same.
    assert "montant" in assert_problem(upload_folder(kit, subtype), 422)["detail"]
    assert ok(upload_folder(kit, subtype, metadata={"montant": "3"}), 201)["status"] == "in_progress"
    actions = [event["action"] for event in history(kit, draft["id"])]
    assert actions == ["created", "metadata_updated", "sent"]  # the refused sending left nothing
    assert ("user:agent", "parapheur.folder.sent", {"title": "Arrêté du maire"}) in audit_actions(
        kit.tenant_id, draft["id"]
    )


def test_due_date_defaults_from_the_subtype_and_late_folders(kit: Kit) -> None:
    setup = Standard(kit)
    subtype = typology(kit, [{"kind": "visa", "desk_ids": [setup.secretariat]}], name="Courrier", due_days=10)
    folder = sent_folder(kit, subtype, title="Courrier du préfet")
    from parapheur.service import today

    assert folder["due_date"] == (today() + timedelta(days=10)).isoformat() and not folder["late"]
    late = sent_folder(kit, subtype, title="Réponse en retard", due_date=(today() - timedelta(days=1)).isoformat())
    assert late["late"]
    listed = ok(kit["agent"].get("/parapheur/folders", params={"late": "true"}))
    assert [item["id"] for item in listed] == [late["id"]]
    assert [item["id"] for item in ok(kit["agent"].get("/parapheur/folders", params={"q": "préfet"}))] == [folder["id"]]
    assert ok(kit["agent"].get("/parapheur/folders", params={"q": "%"})) == []
    by_subtype = ok(kit["agent"].get("/parapheur/folders", params={"subtype_id": setup.sign_only}))
    assert by_subtype == []
    assert len(ok(kit["agent"].get("/parapheur/folders", params={"subtype_id": subtype, "status": "in_progress"}))) == 2
    late_box = ok(kit["agent"].get(f"/parapheur/desks/{setup.secretariat}/folders", params={"box": "late"}))
    assert [item["id"] for item in late_box] == [late["id"]]
    # A folder that ended is no longer late.
    assert act(kit, "agent", late["id"], "visa").status_code == 200
    assert ok(kit["agent"].get("/parapheur/folders", params={"late": "true"})) == []


def test_main_documents_must_suit_the_format(kit: Kit) -> None:
    setup = Standard(kit)
    steps = [{"kind": "visa", "desk_ids": [setup.secretariat]}]
    xades = typology(kit, steps, signature_format="xades", name="PES", type_name="Flux comptables")
    cades = typology(kit, steps, signature_format="cades", name="Contrat", type_name="Contrats")
    not_xml = upload_folder(kit, xades, [("pes.xml", b"<PES_Aller><oups>", "text/xml")])
    assert "XML" in assert_problem(not_xml, 422)["detail"]
    pdf_for_xades = upload_folder(kit, xades, [("acte.pdf", make_pdf(), "application/pdf")])
    assert "XML" in assert_problem(pdf_for_xades, 422)["detail"]
    # Checked as the signature will check it, when it is uploaded: a PES Aller, no DOCTYPE (no entity expanded).
    entity = b'<!DOCTYPE PES_Aller [<!ENTITY x SYSTEM "file:///etc/passwd">]><PES_Aller>&x;</PES_Aller>'
    assert "DOCTYPE" in assert_problem(upload_folder(kit, xades, [("pes.xml", entity, "text/xml")]), 422)["detail"]
    other_xml = upload_folder(kit, xades, [("pes.xml", b"<Mandat/>", "text/xml")])
    assert "PES Aller" in assert_problem(other_xml, 422)["detail"]
    pes = ok(upload_folder(kit, xades, [("pes.xml", b"<PES_Aller><Bordereau/></PES_Aller>", "text/xml")]), 201)
    assert pes["signature_format"] == "xades"
    two = [("contrat.docx", b"PK\x03\x04 contenu", "application/octet-stream"), ("b.txt", b"texte", "text/plain")]
    contract = ok(upload_folder(kit, cades, two), 201)
    assert [d["role"] for d in contract["documents"]] == ["main", "main"]
    text_as_pdf = upload_folder(kit, setup.sign_only, [("note.txt", b"texte", "text/plain")])
    assert "n'est pas un PDF" in assert_problem(text_as_pdf, 422)["detail"]


def test_external_signers_are_given_at_creation(kit: Kit) -> None:
    setup = Standard(kit)
    subtype = typology(
        kit, [{"kind": "visa", "desk_ids": [setup.secretariat]}, {"kind": "external_signature"}], name="Convention"
    )
    assert "1 signature(s) externe(s)" in assert_problem(upload_folder(kit, subtype), 422)["detail"]
    wrong = [{"name": "Claude Roux", "email": "pas-une-adresse"}]
    assert "adresse" in assert_problem(upload_folder(kit, subtype, external_signers=wrong), 422)["detail"]
    signer = [{"name": "Claude Roux", "email": "claude.roux@example.org"}]
    folder = sent_folder(kit, subtype, external_signers=signer)
    external = folder["steps"][1]
    assert (external["external_name"], external["external_email"]) == ("Claude Roux", "claude.roux@example.org")
    assert external["desk_ids"] == [] and external["status"] == "pending"


# --------------------------------------------------------------------------------------------------------
# Multi-desk steps


def test_quorum_two_of_three(kit: Kit, app: Any) -> None:
    add_user(kit, app, "elu", "Lou Élu")
    desks = [desk(kit, "Finances", ["agent"]), desk(kit, "Juridique", ["maire"]), desk(kit, "Élus", ["elu"])]
    subtype = typology(kit, [{"kind": "visa", "desk_ids": desks, "mode": "quorum", "quorum": 2}], name="Budget")
    folder = sent_folder(kit, subtype)
    first = ok(act(kit, "agent", folder["id"], "visa"))
    assert first["status"] == "in_progress" and first["steps"][0]["status"] == "current"
    assert "déjà agi" in assert_problem(act(kit, "agent", folder["id"], "visa"), 409)["detail"]
    assert_problem(act(kit, "archiviste", folder["id"], "visa"), 404)  # outside the circuit: not shown
    second = ok(act(kit, "elu", folder["id"], "visa"))
    assert second["status"] == "completed" and second["steps"][0]["status"] == "done"
    assert [a["desk_id"] for a in second["steps"][0]["acts"]] == [desks[0], desks[2]]
    assert_problem(act(kit, "maire", folder["id"], "visa"), 409)  # the third desk comes too late


def test_all_and_any_modes(kit: Kit) -> None:
    both = [desk(kit, "A", ["agent"]), desk(kit, "B", ["agent", "maire"])]
    all_of = typology(kit, [{"kind": "visa", "desk_ids": both}], name="Tous")
    any_of = typology(kit, [{"kind": "visa", "desk_ids": both, "mode": "any"}], name="Un seul", type_name="Autre")
    folder = sent_folder(kit, all_of)
    # The agent holds both desks: one act per desk, the desk chosen or the first free one.
    assert ok(act(kit, "agent", folder["id"], "visa", {"desk_id": both[1]}))["status"] == "in_progress"
    done = ok(act(kit, "agent", folder["id"], "visa"))
    assert done["status"] == "completed" and [a["desk_id"] for a in done["steps"][0]["acts"]] == [both[1], both[0]]
    other = sent_folder(kit, any_of)
    assert ok(act(kit, "maire", other["id"], "visa"))["status"] == "completed"


def test_each_desk_of_a_signature_step_adds_its_signature(kit: Kit, app: Any, tmp_path: Path) -> None:
    add_user(kit, app, "adjoint", "Lou Adjoint", identity=True)
    setup = Standard(kit)
    adjoint = desk(kit, "Adjoint", ["adjoint"], "Premier adjoint")
    subtype = typology(kit, [{"kind": "signature", "desk_ids": [setup.maire, adjoint]}], name="Cosigné")
    folder = sent_folder(kit, subtype)
    first = ok(act(kit, "adjoint", folder["id"], "sign"))
    assert first["status"] == "in_progress" and first["document_sha256"] != folder["document_sha256"]
    second = ok(act(kit, "maire", folder["id"], "sign"))
    assert second["status"] == "completed"
    assert [a["desk_id"] for a in second["steps"][0]["acts"]] == [adjoint, setup.maire]
    path = tmp_path / "cosigne.pdf"
    path.write_bytes(kit["agent"].get(f"/parapheur/folders/{folder['id']}/document").content)
    checks = verify_pdf(path, [identity_certificate()])
    assert len(checks) == 2 and all(check.intact for check in checks) and checks[-1].covers_whole_document


# --------------------------------------------------------------------------------------------------------
# Delegations


def test_delegation_runs_between_its_dates_and_says_so(kit: Kit, app: Any) -> None:
    add_user(kit, app, "adjoint", "Lou Adjoint", identity=True)
    setup = Standard(kit)
    adjoint = desk(kit, "Adjoint", ["adjoint"], "Premier adjoint")
    folder = sent_folder(kit, setup.sign_only)
    assert_problem(act(kit, "adjoint", folder["id"], "sign"), 404)  # no running delegation: not shown
    # Past and future delegations do not count.
    delegate(kit, setup.maire, adjoint, timedelta(days=-10), timedelta(days=-1))
    delegate(kit, setup.maire, adjoint, timedelta(days=1), timedelta(days=10))
    assert_problem(act(kit, "adjoint", folder["id"], "sign"), 404)  # no running delegation: not shown
    assert ok(kit["adjoint"].get(f"/parapheur/desks/{adjoint}/folders", params={"box": "delegated"})) == []

    delegate(kit, setup.maire, adjoint, timedelta(hours=-1), timedelta(days=1))
    box = ok(kit["adjoint"].get(f"/parapheur/desks/{adjoint}/folders", params={"box": "delegated"}))
    assert [item["id"] for item in box] == [folder["id"]]
    assert ok(kit["adjoint"].get(f"/parapheur/desks/{adjoint}/folders", params={"box": "to_act"})) == []
    signed = ok(act(kit, "adjoint", folder["id"], "sign"))
    assert signed["status"] == "completed"
    acted = signed["steps"][0]["acts"][0]
    assert acted["username"] == "adjoint" and acted["desk_id"] == adjoint
    assert acted["on_behalf_of_desk_id"] == setup.maire
    event = next(e for e in history(kit, folder["id"]) if e["action"] == "signature")
    assert event["actor_name"] == "Lou Adjoint" and event["on_behalf_of_desk_id"] == setup.maire
    entry = next(e for e in audit_actions(kit.tenant_id, folder["id"]) if e[1] == "parapheur.signature")
    assert entry[0] == "user:adjoint" and entry[2]["on_behalf_of"] == "Maire"
    # The maire's own desk had acted through the delegate: nothing left for the maire.
    assert_problem(act(kit, "maire", folder["id"], "sign"), 409)


def test_delegation_limited_to_some_subtypes(kit: Kit, app: Any) -> None:
    add_user(kit, app, "adjoint", "Lou Adjoint")
    setup = Standard(kit)
    adjoint = desk(kit, "Adjoint", ["adjoint"])
    visa_maire = typology(kit, [{"kind": "visa", "desk_ids": [setup.maire]}], name="Visa du maire", type_name="V")
    other = typology(kit, [{"kind": "visa", "desk_ids": [setup.maire]}], name="Autre visa", type_name="W")
    delegate(kit, setup.maire, adjoint, timedelta(hours=-1), timedelta(days=1), subtype_ids=[visa_maire])
    covered, not_covered = sent_folder(kit, visa_maire), sent_folder(kit, other)
    assert_problem(act(kit, "adjoint", not_covered["id"], "visa"), 404)  # not covered: not shown
    box = ok(kit["adjoint"].get(f"/parapheur/desks/{adjoint}/folders", params={"box": "delegated"}))
    assert [item["id"] for item in box] == [covered["id"]]
    assert ok(act(kit, "adjoint", covered["id"], "visa"))["status"] == "completed"
    assert ok(act(kit, "maire", not_covered["id"], "visa"))["status"] == "completed"


# --------------------------------------------------------------------------------------------------------
# Droit de remords


def test_remords_then_refused_after_the_next_act(kit: Kit) -> None:
    setup = Standard(kit)
    folder = sent_folder(kit, setup.visa_then_sign)
    assert_problem(kit["agent"].post(f"/parapheur/folders/{folder['id']}/undo"), 409)  # nothing to take back
    assert ok(act(kit, "agent", folder["id"], "visa"))["current_step"] == 1
    assert_problem(kit["maire"].post(f"/parapheur/folders/{folder['id']}/undo"), 409)  # not the maire's act
    undone = ok(kit["agent"].post(f"/parapheur/folders/{folder['id']}/undo"))
    assert undone["current_step"] == 0 and undone["steps"][0]["status"] == "current"
    assert undone["steps"][1]["status"] == "pending"
    assert undone["steps"][0]["acts"][0]["undone_at"] is not None
    assert_problem(act(kit, "maire", folder["id"], "sign"), 403)  # the signature step waits again

    assert ok(act(kit, "agent", folder["id"], "visa", {"comment": "Finalement, vu"}))["current_step"] == 1
    signed = ok(act(kit, "maire", folder["id"], "sign"))
    assert signed["status"] == "completed"
    body = assert_problem(kit["agent"].post(f"/parapheur/folders/{folder['id']}/undo"), 409)
    assert "remords" in body["detail"]
    assert "undone" in [event["action"] for event in history(kit, folder["id"])]
    assert any(action == "parapheur.undone" for _, action, _ in audit_actions(kit.tenant_id, folder["id"]))
    with new_session() as session:
        assert audit.verify(session, kit.tenant_id).intact


def test_remords_of_a_signature_restores_the_document(kit: Kit) -> None:
    setup = Standard(kit)
    subtype = typology(
        kit,
        [{"kind": "signature", "desk_ids": [setup.maire]}, {"kind": "visa", "desk_ids": [setup.secretariat]}],
        name="Signé puis visé",
    )
    content = make_pdf("Arrêté à reprendre")
    folder = sent_folder(kit, subtype, files=[("arrete.pdf", content, "application/pdf")])
    original = hashlib.sha256(content).hexdigest()
    signed = ok(act(kit, "maire", folder["id"], "sign"))
    assert signed["document_sha256"] != original and signed["current_step"] == 1
    undone = ok(kit["maire"].post(f"/parapheur/folders/{folder['id']}/undo"))
    assert undone["document_sha256"] == original and undone["current_step"] == 0
    assert kit["agent"].get(f"/parapheur/folders/{folder['id']}/document").content == content
    # Signed again, then the next actor acts: too late to take it back.
    assert ok(act(kit, "maire", folder["id"], "sign"))["current_step"] == 1
    ok(act(kit, "agent", folder["id"], "annotations", {"text": "Vu en réunion"}), 201)
    assert ok(kit["maire"].post(f"/parapheur/folders/{folder['id']}/undo"))["current_step"] == 0  # notes don't count
    assert ok(act(kit, "maire", folder["id"], "sign"))["current_step"] == 1
    assert ok(kit["agent"].post(f"/parapheur/folders/{folder['id']}/transfer", json={"desk_id": setup.maire}))
    assert_problem(kit["maire"].post(f"/parapheur/folders/{folder['id']}/undo"), 409)


# --------------------------------------------------------------------------------------------------------
# Other acts


def test_reading_required_before_signing(kit: Kit) -> None:
    setup = Standard(kit)
    subtype = typology(kit, [{"kind": "signature", "desk_ids": [setup.maire]}], name="Lu", reading_required=True)
    folder = sent_folder(kit, subtype)
    body = assert_problem(act(kit, "maire", folder["id"], "sign"), 409)
    assert "lecture obligatoire" in body["detail"]
    kit["agent"].get(f"/parapheur/folders/{folder['id']}/documents/{folder['documents'][0]['id']}")  # not the maire
    assert_problem(act(kit, "maire", folder["id"], "sign"), 409)
    document = kit["maire"].get(f"/parapheur/folders/{folder['id']}/documents/{folder['documents'][0]['id']}")
    assert document.status_code == 200 and document.content.startswith(b"%PDF")
    assert ok(act(kit, "maire", folder["id"], "sign"))["status"] == "completed"
    reads = [e for e in history(kit, folder["id"]) if e["action"] == "document_read"]
    assert [e["actor"] for e in reads] == ["agent", "maire"]
    assert_problem(kit["maire"].get(f"/parapheur/folders/{folder['id']}/documents/inconnu"), 404)


def test_reading_step_and_step_metadata(kit: Kit) -> None:
    setup = Standard(kit)
    circuit = [
        {"kind": "reading", "desk_ids": [setup.maire]},
        {"kind": "visa", "desk_ids": [setup.secretariat], "mandatory_metadata": ["numero"]},
    ]
    subtype = typology(kit, circuit, name="Information")
    folder = sent_folder(kit, subtype)
    assert_problem(act(kit, "maire", folder["id"], "visa"), 409)  # a reading step is not a visa
    assert ok(act(kit, "maire", folder["id"], "read"))["current_step"] == 1
    body = assert_problem(act(kit, "agent", folder["id"], "visa"), 422)
    assert "numero" in body["detail"]
    assert_problem(kit["maire"].patch(f"/parapheur/folders/{folder['id']}/metadata", json={"metadata": {}}), 403)
    ok(kit["agent"].patch(f"/parapheur/folders/{folder['id']}/metadata", json={"metadata": {"numero": "2026-1"}}))
    assert ok(act(kit, "agent", folder["id"], "visa"))["status"] == "completed"
    assert_problem(kit["agent"].patch(f"/parapheur/folders/{folder['id']}/metadata", json={"metadata": {}}), 409)


def test_annotations_public_and_private(kit: Kit) -> None:
    setup = Standard(kit)
    folder = sent_folder(kit, setup.visa_then_sign)
    ok(kit["agent"].post(f"/parapheur/folders/{folder['id']}/annotations", json={"text": "À voir"}), 201)
    private = {"text": "Note pour moi : vérifier le montant", "public": False}
    ok(kit["maire"].post(f"/parapheur/folders/{folder['id']}/annotations", json=private), 201)
    assert_problem(kit["archiviste"].post(f"/parapheur/folders/{folder['id']}/annotations", json=private), 404)
    assert_problem(kit["agent"].post(f"/parapheur/folders/{folder['id']}/annotations", json={"text": " "}), 422)
    seen_by_maire = [note["text"] for note in folder_of(kit, folder["id"], "maire")["annotations"]]
    seen_by_agent = [note["text"] for note in folder_of(kit, folder["id"], "agent")["annotations"]]
    assert seen_by_maire == ["À voir", private["text"]] and seen_by_agent == ["À voir"]
    raw_history = kit["agent"].get(f"/parapheur/folders/{folder['id']}/history").text
    assert "vérifier le montant" not in raw_history and "À voir" in raw_history
    assert "vérifier le montant" not in str(audit_actions(kit.tenant_id, folder["id"]))


def test_transfer_hands_the_step_to_another_desk(kit: Kit) -> None:
    setup = Standard(kit)
    folder = sent_folder(kit, setup.visa_then_sign)
    assert_problem(kit["maire"].post(f"/parapheur/folders/{folder['id']}/transfer", json={"desk_id": setup.maire}), 403)
    unknown = {"desk_id": "00000000-0000-0000-0000-000000000000"}
    assert_problem(kit["agent"].post(f"/parapheur/folders/{folder['id']}/transfer", json=unknown), 404)
    moved = ok(
        kit["agent"].post(
            f"/parapheur/folders/{folder['id']}/transfer", json={"desk_id": setup.maire, "comment": "Congés"}
        )
    )
    assert moved["steps"][0]["desk_ids"] == [setup.maire] and moved["steps"][0]["desks"][0]["name"] == "Maire"
    assert_problem(act(kit, "agent", folder["id"], "visa"), 403)
    assert ok(act(kit, "maire", folder["id"], "visa"))["current_step"] == 1
    # The sous-type keeps its circuit: only this folder changed.
    assert ok(kit["agent"].get(f"/parapheur/subtypes/{setup.visa_then_sign}"))["circuit"][0]["desk_ids"] == [
        setup.secretariat
    ]
    assert "transfer" in [event["action"] for event in history(kit, folder["id"])]


def test_opinion_asked_and_answered_without_moving_the_folder(kit: Kit) -> None:
    setup = Standard(kit)
    legal = desk(kit, "Juridique", ["archiviste"])
    folder = sent_folder(kit, setup.visa_then_sign)
    question = {"desk_id": legal, "question": "Ce marché est-il régulier ?"}
    assert_problem(kit["maire"].post(f"/parapheur/folders/{folder['id']}/opinions", json=question), 403)
    opinion = ok(kit["agent"].post(f"/parapheur/folders/{folder['id']}/opinions", json=question), 201)
    url = f"/parapheur/folders/{folder['id']}/opinions/{opinion['id']}/answer"
    assert_problem(kit["maire"].post(url, json={"answer": "Oui"}), 403)
    answered = ok(kit["archiviste"].post(url, json={"answer": "Oui, procédure adaptée."}))
    assert answered["answered_by"] == "archiviste"
    assert_problem(kit["archiviste"].post(url, json={"answer": "Encore"}), 409)
    detail = folder_of(kit, folder["id"])
    assert detail["current_step"] == 0 and detail["opinions"][0]["answer"] == "Oui, procédure adaptée."
    actions = [event["action"] for event in history(kit, folder["id"])]
    assert "opinion_requested" in actions and "opinion_given" in actions


def test_withdraw_by_the_creator_only(kit: Kit) -> None:
    setup = Standard(kit)
    folder = sent_folder(kit, setup.visa_then_sign)
    assert_problem(kit["maire"].post(f"/parapheur/folders/{folder['id']}/withdraw"), 403)
    withdrawn = ok(kit["agent"].post(f"/parapheur/folders/{folder['id']}/withdraw", json={"comment": "Erreur"}))
    assert withdrawn["status"] == "withdrawn" and withdrawn["current_step"] is None
    assert_problem(act(kit, "agent", folder["id"], "visa"), 409)
    assert_problem(kit["agent"].post(f"/parapheur/folders/{folder['id']}/withdraw"), 409)


# --------------------------------------------------------------------------------------------------------
# Boxes and isolation


def test_desk_boxes(kit: Kit) -> None:
    setup = Standard(kit)
    first, second = sent_folder(kit, setup.visa_then_sign), sent_folder(kit, setup.visa_then_sign)
    ok(act(kit, "agent", first["id"], "visa"))

    def box(user: str, desk_id: str, name: str) -> list[str]:
        found = ok(kit[user].get(f"/parapheur/desks/{desk_id}/folders", params={"box": name}))
        return sorted(item["id"] for item in found)

    assert box("agent", setup.secretariat, "to_act") == [second["id"]]
    assert box("agent", setup.secretariat, "in_progress") == [first["id"]]
    assert box("maire", setup.maire, "to_act") == [first["id"]]
    assert box("admin", setup.maire, "in_progress") == [second["id"]]
    assert_problem(kit["agent"].get(f"/parapheur/desks/{setup.maire}/folders"), 403)
    assert_problem(kit["maire"].get(f"/parapheur/desks/{setup.maire}/folders", params={"box": "tout"}), 422)


def test_another_tenants_folder_is_404(make_kit: Callable[..., Kit]) -> None:
    kit, other = make_kit(with_identity=False), make_kit(with_identity=False)
    setup = Standard(kit)
    Standard(other)
    folder = sent_folder(kit, setup.visa_then_sign)
    document_id = folder["documents"][0]["id"]
    for path in ("", "/history", f"/documents/{document_id}", "/document"):
        assert_problem(other["agent"].get(f"/parapheur/folders/{folder['id']}{path}"), 404)
    for action, body in (
        ("visa", {}),
        ("reject", {"reason": "non"}),
        ("undo", None),
        ("withdraw", {}),
        ("annotations", {"text": "x"}),
        ("send", None),
    ):
        assert_problem(other["agent"].post(f"/parapheur/folders/{folder['id']}/{action}", json=body), 404)
    assert ok(other["agent"].get("/parapheur/folders")) == []
    assert folder_of(kit, folder["id"])["status"] == "in_progress"


def test_failing_signature_leaves_the_folder_in_its_step(make_kit: Callable[..., Kit]) -> None:
    kit = make_kit(with_identity=False)
    setup = Standard(kit)
    folder = sent_folder(kit, setup.visa_then_sign)
    ok(act(kit, "agent", folder["id"], "visa"))
    assert "identité" in assert_problem(act(kit, "maire", folder["id"], "sign"), 409)["detail"]
    after = folder_of(kit, folder["id"])
    assert after["status"] == "in_progress" and after["current_step"] == 1 and after["steps"][1]["acts"] == []
    assert after["document_sha256"] == folder["document_sha256"]
    with new_session() as session:
        actions = session.execute(select(FolderEvent.action).where(FolderEvent.folder_id == folder["id"])).scalars()
        assert "signature" not in list(actions)
