"""A new folder (/dossiers/nouveau): typology and circuit preview, upload, metadata, errors next to their
fields; then the whole story through the pages: created, vised by a colleague, signed by the mayor, and the
signed PDF filed in the GED."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from parapheur_kit import Standard, desk, filing_into, folder_of, ok, typology
from ui_kit import csrf_of, sign_in

from parapheur.pades import verify_pdf
from socle.auth import create_user, get_tenant, issue_token
from socle.db import transaction

from conftest import Kit, assert_problem, identity_certificate, make_pdf, run_jobs, ui_password_hash

PDF = "application/pdf"


def create(client: TestClient, subtype_id: str, data: dict[str, Any], files: list[tuple[str, Any]]) -> Any:
    """Post the creation form as a browser does (multipart), with the page's CSRF token."""
    token = csrf_of(client.get(f"/dossiers/nouveau?sous_type={subtype_id}").text)
    return client.post("/dossiers/nouveau", data={"csrf": token, "sous_type": subtype_id, **data}, files=files)


def created_id(answer: Any) -> str:
    assert answer.status_code == 303, answer.text
    found = re.fullmatch(r"/dossiers/([0-9a-f-]+)", answer.headers["location"])
    assert found, answer.headers["location"]
    return found.group(1)


def test_the_typology_then_the_circuit_preview_without_javascript(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    agent = sign_in(app, kit, "agent")
    first = agent.get("/dossiers/nouveau")
    assert first.status_code == 200
    assert '<form method="get" action="/dossiers/nouveau"' in first.text and "Voir le circuit" in first.text
    assert "Type Délibération / Délibération" in first.text and "Arrêtés / Arrêté" in first.text
    assert 'action="/dossiers/nouveau" enctype' not in first.text  # no upload before the sous-type is chosen
    chosen = agent.get(f"/dossiers/nouveau?sous_type={setup.visa_then_sign}")
    assert chosen.status_code == 200
    circuit = chosen.text.split('<ol class="circuit">')[1].split("</ol>")[0]
    assert re.findall(r"<strong>([^<]+)</strong>", circuit) == ["Visa", "Signature"]
    assert "Secrétariat" in circuit and "Maire" in circuit
    assert 'enctype="multipart/form-data"' in chosen.text and 'class="dropzone' in chosen.text
    assert re.search(
        r'<input id="fichiers" name="fichiers" type="file"[^>]* multiple accept="application/pdf', chosen.text
    )
    # Filing in the GED is offered only where the sous-type names the folder of the plan it goes to.
    assert 'name="classer_ged"' not in chosen.text
    filing_into(kit, setup.visa_then_sign)
    chosen = agent.get(f"/dossiers/nouveau?sous_type={setup.visa_then_sign}")
    assert re.search(r'<input id="classer_ged" name="classer_ged" type="checkbox" value="1" checked', chosen.text)
    assert "dans le dossier « Actes signés » du plan de classement" in chosen.text
    # Filtering by type keeps only its sous-types.
    types = ok(kit["agent"].get("/parapheur/types"))
    arretes = next(row["id"] for row in types if row["name"] == "Arrêtés")
    filtered = agent.get(f"/dossiers/nouveau?type={arretes}")
    assert "Arrêtés / Arrêté" in filtered.text and "Type Délibération / Délibération" not in filtered.text


def test_a_sous_type_not_open_to_the_user_is_refused_next_to_its_field(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    secretariat_only = typology(
        kit, [{"kind": "visa", "desk_ids": [setup.secretariat]}], name="Interne", creator_desk_ids=[setup.secretariat]
    )
    mayor = sign_in(app, kit, "maire")
    page = mayor.get(f"/dossiers/nouveau?sous_type={secretariat_only}")
    assert page.status_code == 422 and 'id="sous_type-erreur"' in page.text
    assert "Type Interne / Interne" not in page.text
    answer = create(mayor, secretariat_only, {"titre": "Essai"}, [("fichiers", ("a.pdf", make_pdf(), PDF))])
    assert answer.status_code == 422 and "Choisissez un sous-type" in answer.text


def test_missing_fields_are_shown_next_to_them_and_what_was_typed_is_kept(app: Any, kit: Kit) -> None:
    Standard(kit)
    office = desk(kit, "Marchés", ["agent"])
    subtype = typology(
        kit,
        [{"kind": "visa", "desk_ids": [office]}, {"kind": "external_signature"}],
        name="Marché",
        mandatory_metadata=["montant"],
    )
    agent = sign_in(app, kit, "agent")
    page = agent.get(f"/dossiers/nouveau?sous_type={subtype}").text
    assert '<label for="meta-0">montant' in page and "Signataire externe n° 1" in page
    answer = create(
        agent,
        subtype,
        {"titre": "", "echeance": "31/02/2026", "externe_nom_1": "Entreprise Durand", "externe_courriel_1": "faux",
         "envoyer": "1"},
        [("fichiers", ("", b"", "application/octet-stream"))],
    )  # fmt: skip
    assert answer.status_code == 422
    for field in ("titre", "echeance", "meta-0", "externe_courriel_1", "fichiers"):
        assert f'id="{field}-erreur"' in answer.text, field
    assert "Donnez un titre au dossier." in answer.text and "« montant » est obligatoire" in answer.text
    assert 'value="Entreprise Durand"' in answer.text and 'value="31/02/2026"' in answer.text
    assert "choisissez-les à nouveau" in answer.text
    assert ok(kit["agent"].get("/parapheur/folders")) == []  # nothing created


def test_an_upload_that_is_not_accepted_says_why(app: Any, kit: Kit, use_env: Any) -> None:
    setup = Standard(kit)
    agent = sign_in(app, kit, "agent")
    data = {"titre": "Arrêté", "envoyer": "1", "classer_ged": "1"}
    not_pdf = create(agent, setup.sign_only, data, [("fichiers", ("arrete.pdf", b"<html>", PDF))])
    assert not_pdf.status_code == 422 and 'id="fichiers-erreur"' in not_pdf.text
    assert "« arrete.pdf »" in not_pdf.text and "PDF" in not_pdf.text
    assert 'value="Arrêté"' in not_pdf.text
    empty_annex = create(
        agent,
        setup.sign_only,
        data,
        [("fichiers", ("arrete.pdf", make_pdf(), PDF)), ("annexes", ("vide.txt", b"", "text/plain"))],
    )
    assert empty_annex.status_code == 422 and 'id="annexes-erreur"' in empty_annex.text
    assert "« vide.txt » : le fichier est vide" in empty_annex.text
    use_env(SOCLE_MAX_UPLOAD_BYTES="2048")
    agent = sign_in(app, kit, "agent")
    too_large = create(agent, setup.sign_only, data, [("fichiers", ("gros.pdf", make_pdf(pages=40), PDF))])
    assert too_large.status_code == 413 and 'id="fichiers-erreur"' in too_large.text
    assert "« gros.pdf » est trop volumineux : 2048 octets au plus." in too_large.text
    assert ok(kit["agent"].get("/parapheur/folders")) == []


def test_a_draft_with_annexes_and_metadata(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    agent = sign_in(app, kit, "agent")
    answer = create(
        agent,
        setup.sign_only,
        {"titre": "Arrêté de voirie", "echeance": "2027-03-15", "envoyer": "0"},
        [
            ("fichiers", ("arrete.pdf", make_pdf("Arrêté"), PDF)),
            ("annexes", ("plan.pdf", make_pdf("Plan"), PDF)),
            ("annexes", ("note.txt", b"Une note", "text/plain")),
        ],
    )
    folder = folder_of(kit, created_id(answer))
    assert folder["status"] == "draft" and folder["title"] == "Arrêté de voirie" and folder["due_date"] == "2027-03-15"
    assert [(d["role"], d["filename"]) for d in folder["documents"]] == [
        ("main", "arrete.pdf"),
        ("annex", "plan.pdf"),
        ("annex", "note.txt"),
    ]
    assert folder["ged_filing"] is False  # the box was left unticked
    assert "Brouillon créé." in agent.get(answer.headers["location"]).text


def add_agent(kit: Kit, app: Any, username: str, display_name: str) -> None:
    """One more agent of the collectivité, who can sign in to the pages."""
    with transaction() as session:
        user = create_user(session, get_tenant(session, kit.slug), username, display_name, ["agent"])
        user.password_hash = ui_password_hash()
        kit.tokens[username] = issue_token(session, user, "tests")
    kit.clients[username] = TestClient(
        app, headers={"Authorization": f"Bearer {kit.tokens[username]}"}, raise_server_exceptions=False
    )


def test_created_vised_by_a_colleague_signed_by_the_mayor_then_in_the_ged(app: Any, kit: Kit, tmp_path: Path) -> None:
    add_agent(kit, app, "lou.moreau", "Lou Moreau")
    assemblies = desk(kit, "Service des assemblées", ["agent"])
    secretariat = desk(kit, "Secrétariat général", ["lou.moreau"])
    mayor_desk = desk(kit, "Maire", ["maire"], "Le Maire")
    subtype = typology(
        kit,
        [{"kind": "visa", "desk_ids": [secretariat]}, {"kind": "signature", "desk_ids": [mayor_desk]}],
        name="Délibération du conseil",
        type_name="Délibérations",
        creator_desk_ids=[assemblies],
    )
    plan_folder = filing_into(kit, subtype, "Délibérations signées")
    title = "Délibération n° 118 : tarifs de la cantine"

    agent = sign_in(app, kit, "agent")
    answer = create(
        agent,
        subtype,
        {"titre": title, "classer_ged": "1", "envoyer": "1"},
        [("fichiers", ("deliberation-118.pdf", make_pdf(title), PDF))],
    )
    folder_id = created_id(answer)
    assert "Dossier créé et envoyé dans son circuit." in agent.get(answer.headers["location"]).text
    run_jobs()

    colleague = sign_in(app, kit, "lou.moreau")
    desk_page = colleague.get("/bureau").text
    assert title in desk_page
    token = csrf_of(colleague.get(f"/dossiers/{folder_id}").text)
    assert colleague.post(f"/dossiers/{folder_id}/viser", data={"csrf": token}).status_code == 303
    run_jobs()

    mayor = sign_in(app, kit, "maire")
    assert title in mayor.get("/bureau").text
    token = csrf_of(mayor.get(f"/dossiers/{folder_id}").text)
    assert mayor.post(f"/dossiers/{folder_id}/signer", data={"csrf": token}).status_code == 303
    completed = folder_of(kit, folder_id)
    assert completed["status"] == "completed" and completed["ged_filing"] is True
    run_jobs()  # the GED files the signed document, then tells the parapheur

    filed = folder_of(kit, folder_id)
    document_id = filed["ged_document_id"]
    assert document_id
    document = ok(kit["agent"].get(f"/ged/documents/{document_id}"))
    assert document["current"]["title"] == title and document["current"]["document_type"] == "Délibération du conseil"
    assert document["folder_id"] == plan_folder  # where the sous-type files, whose rights say who reads it
    current = document["current"]
    assert current["content"]["filename"] == "deliberation-118-signe.pdf"
    assert (
        current["origin"] == f"parapheur:{folder_id}" and current["comment"] == "Signé par Dominique Dupont, Le Maire"
    )
    content = kit["agent"].get(f"/ged/documents/{document_id}/content")
    assert content.status_code == 200, content.text
    path = tmp_path / "signe.pdf"
    path.write_bytes(content.content)
    checks = verify_pdf(path, [identity_certificate()])
    assert [(check.signer_name, check.valid) for check in checks] == [("Dominique Dupont", True)]
    page = agent.get(f"/dossiers/{folder_id}").text
    assert f'href="/documents/{document_id}"' in page and "Classé dans la GED" in page
    run_jobs()
    assert folder_of(kit, folder_id)["ged_document_id"] == document_id  # filed once


def test_filing_in_the_ged_through_the_api_happens_once(kit: Kit) -> None:
    from ged import jobs as ged_jobs

    setup = Standard(kit)
    refused = kit["agent"].post(
        "/parapheur/folders/upload",
        files=[("files", ("arrete.pdf", make_pdf("Arrêté"), PDF))],
        data={"subtype_id": setup.sign_only, "title": "Arrêté de voirie", "send": "true", "ged_filing": "true"},
    )
    assert "ne désigne aucun dossier de la GED" in assert_problem(refused, 422)["detail"]
    filing_into(kit, setup.sign_only)
    folder = ok(
        kit["agent"].post(
            "/parapheur/folders/upload",
            files=[("files", ("arrete.pdf", make_pdf("Arrêté"), PDF))],
            data={"subtype_id": setup.sign_only, "title": "Arrêté de voirie", "send": "true", "ged_filing": "true"},
        ),
        201,
    )
    assert folder["ged_filing"] is True
    signed = ok(kit["maire"].post(f"/parapheur/folders/{folder['id']}/sign", json={}))
    run_jobs()
    document_id = folder_of(kit, folder["id"])["ged_document_id"]
    assert document_id
    # The GED's job run again (a retry after a crash, say) finds the document it made: nothing new.
    key = signed["documents"][0]["current_sha256"]
    ged_jobs.file_signed_document(
        tenant_id=kit.tenant_id,
        folder_id=folder["id"],
        object_key=key,
        size=1,
        filename="arrete-signe.pdf",
        media_type=PDF,
        title="Arrêté de voirie",
        document_type="Arrêté",
        signatories=["maire"],
        signed_by=["Dominique Dupont, Maire"],
        ged_folder="Actes signés",
    )
    run_jobs()
    listed = ok(kit["agent"].get("/ged/documents"))
    assert [item["id"] for item in listed["items"]] == [document_id]
    history = ok(kit["agent"].get(f"/parapheur/folders/{folder['id']}/history"))
    assert [event["action"] for event in history].count("filed_in_ged") == 1


def test_a_folder_not_asked_to_be_filed_stays_out_of_the_ged(kit: Kit) -> None:
    setup = Standard(kit)
    folder = ok(
        kit["agent"].post(
            "/parapheur/folders/upload",
            files=[("files", ("arrete.pdf", make_pdf("Arrêté"), PDF))],
            data={"subtype_id": setup.sign_only, "title": "Arrêté interne", "send": "true"},
        ),
        201,
    )
    assert folder["ged_filing"] is False
    ok(kit["maire"].post(f"/parapheur/folders/{folder['id']}/sign", json={}))
    run_jobs()
    assert folder_of(kit, folder["id"])["ged_document_id"] is None
    assert ok(kit["agent"].get("/ged/documents"))["items"] == []
