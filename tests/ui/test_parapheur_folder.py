"""A folder's page (/dossiers/{id}): what it shows, the page images, and every act as a plain POST form."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from parapheur_kit import Standard, act, desk, folder_of, ok, sent_folder, typology, upload_folder
from sqlalchemy import update
from ui_kit import csrf_of, sign_in

from parapheur import ui_pages
from parapheur.models import Step
from parapheur.pades import verify_pdf
from socle.db import transaction, utcnow

from conftest import Kit, identity_certificate, make_pdf


def post(client: TestClient, folder_id: str, action: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """Send one of the folder page's forms, with the page's CSRF token."""
    token = csrf_of(client.get(f"/dossiers/{folder_id}").text)
    return client.post(f"/dossiers/{folder_id}/{action}", data={"csrf": token, **(data or {})}, **kwargs)


def flash_after(client: TestClient, answer: Any) -> str:
    assert answer.status_code == 303, answer.text
    page = client.get(answer.headers["location"])
    found = re.findall(r'<p class="flash flash-success" role="status">([^<]+)</p>', page.text)
    return " ".join(found)


def buttons(html: str) -> list[str]:
    main = html.split("<main")[1]
    return [unescape(text) for text in re.findall(r'<button type="submit"[^>]*>([^<]+)</button>', main)]


def test_the_page_shows_the_folder_its_pages_circuit_annexes_and_history(app: Any, kit: Kit) -> None:
    setup = Standard(kit, reading_required=True)
    annex = ("tarifs.csv", b"cantine;3,20\n", "text/csv")
    files = [("budget.pdf", make_pdf("Budget", pages=3), "application/pdf")]
    folder = sent_folder(kit, setup.visa_then_sign, title="Budget primitif", files=files, annexes=[annex])
    page = sign_in(app, kit, "agent").get(f"/dossiers/{folder['id']}")
    assert page.status_code == 200, page.text
    html = page.text
    assert "<h1>Budget primitif</h1>" in html and "En cours" in html
    assert "étape 1 sur 2 : Visa" in html
    assert html.count('alt="Page ') == 3 and 'alt="Page 2 sur 3"' in html and 'loading="lazy"' in html
    assert re.search(r'<li aria-current="step" class="current">\s*<strong>Visa</strong>\s*— Secrétariat', html)
    assert "tarifs.csv" in html and "Annexe" in html
    assert "Création" in html and "Envoi dans le circuit" in html  # the history
    assert f'href="/dossiers/{folder["id"]}/bordereau"' in html
    offered = set(buttons(html))
    assert {"Viser", "Rejeter le dossier", "Transférer", "Demander l'avis", "Annoter", "Retirer"} <= offered
    assert not offered & {"Signer", "Marquer comme lu", "Envoyer le dossier", "Reprendre ma dernière action"}
    assert "Lecture obligatoire" not in html  # said to the signatory, not to the one who vises


def test_only_the_acts_this_user_may_do_are_offered(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    folder = sent_folder(kit, setup.visa_then_sign)
    mayor = sign_in(app, kit, "maire").get(f"/dossiers/{folder['id']}")
    assert mayor.status_code == 200  # the mayor's desk is in the circuit: the folder is open to him
    offered = set(buttons(mayor.text))
    assert not offered & {
        "Viser",
        "Signer",
        "Rejeter le dossier",
        "Transférer",
        "Retirer",
        "Reprendre ma dernière action",
    }
    assert "Vos actions" not in mayor.text
    ok(act(kit, "agent", folder["id"], "visa"))
    mayor = sign_in(app, kit, "maire").get(f"/dossiers/{folder['id']}")
    assert "Signer" in buttons(mayor.text) and "Viser" not in buttons(mayor.text)
    # The card too: the page prepares it (a token for this folder), then gives the command to run.
    assert "Préparer la signature par carte" in buttons(mayor.text) and "SOCLE_API_TOKEN=" not in mayor.text
    agent = sign_in(app, kit, "agent").get(f"/dossiers/{folder['id']}")
    assert "Reprendre ma dernière action" in buttons(agent.text) and "Viser" not in buttons(agent.text)


def test_page_images_are_rendered_once_cached_and_served_with_cache_headers(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    files = [("deux-pages.pdf", make_pdf("Deux pages", pages=2), "application/pdf")]
    folder = sent_folder(kit, setup.visa_then_sign, files=files)
    agent = sign_in(app, kit, "agent")
    html = agent.get(f"/dossiers/{folder['id']}").text
    urls = [url.replace("&amp;", "&") for url in re.findall(r'<img src="([^"]+)" alt="Page', html)]
    assert len(urls) == 2
    image = agent.get(urls[1])
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert image.headers["content-type"] == "image/png"
    assert image.headers["cache-control"] == "private, max-age=31536000, immutable"
    key = folder["documents"][0]["current_sha256"]
    cached = ui_pages.cache_dir(key) / f"2-{ui_pages.LONGEST_SIDE_PX}.png"
    assert cached.is_file() and cached.read_bytes() == image.content
    assert not (ui_pages.cache_dir(key) / f"1-{ui_pages.LONGEST_SIDE_PX}.png").exists()  # only pages asked
    stale = agent.get(urls[1].split("?")[0])  # without the digest: the image, but not cached by the browser
    assert stale.status_code == 200 and stale.headers["cache-control"] == "no-store"
    assert agent.get(urls[1].split("?")[0].rsplit("/", 1)[0] + "/3").status_code == 404
    assert agent.get(urls[1].split("?")[0].rsplit("/", 1)[0] + "/0").status_code == 404


def test_a_long_document_shows_its_pages_ten_at_a_time(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    files = [("long.pdf", make_pdf("Long", pages=12), "application/pdf")]
    folder = sent_folder(kit, setup.visa_then_sign, files=files)
    agent = sign_in(app, kit, "agent")
    first = agent.get(f"/dossiers/{folder['id']}").text
    assert first.count('alt="Page ') == 10 and "Pages 1 à 10 sur 12." in first
    assert f'href="/dossiers/{folder["id"]}?debut=11"' in first
    rest = agent.get(f"/dossiers/{folder['id']}?debut=11").text
    assert rest.count('alt="Page ') == 2 and 'alt="Page 12 sur 12"' in rest and "Pages précédentes" in rest


def test_downloads_count_as_reading_and_give_the_current_document(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    content = make_pdf("À lire")
    annex = ("note.txt", b"Une note", "text/plain")
    folder = sent_folder(kit, setup.visa_then_sign, files=[("acte.pdf", content, "application/pdf")], annexes=[annex])
    agent = sign_in(app, kit, "agent")
    main, attached = folder["documents"]
    answer = agent.get(f"/dossiers/{folder['id']}/documents/{main['id']}")
    assert answer.status_code == 200 and answer.content == content
    assert agent.get(f"/dossiers/{folder['id']}/documents/{attached['id']}").content == b"Une note"
    assert "Lecture du document" in agent.get(f"/dossiers/{folder['id']}").text
    bordereau = agent.get(f"/dossiers/{folder['id']}/bordereau")
    assert bordereau.status_code == 200 and bordereau.content.startswith(b"%PDF")


def test_visa_then_signature_with_the_server_key(app: Any, kit: Kit, tmp_path: Path) -> None:
    setup = Standard(kit)
    folder = sent_folder(kit, setup.visa_then_sign)
    agent = sign_in(app, kit, "agent")
    assert flash_after(agent, post(agent, folder["id"], "viser", {"commentaire_visa": "Bon pour signature"})) == (
        "Dossier visé."
    )
    assert folder_of(kit, folder["id"])["current_step"] == 1
    mayor = sign_in(app, kit, "maire")
    page = mayor.get(f"/dossiers/{folder['id']}").text
    assert re.search(r'<form method="post" action="/dossiers/[^"]+/signer" data-confirm="[^"]+">', page)
    assert flash_after(mayor, post(mayor, folder["id"], "signer")) == "Dossier signé."
    signed = folder_of(kit, folder["id"])
    assert signed["status"] == "completed"
    download = mayor.get(f"/dossiers/{folder['id']}/documents/{signed['documents'][0]['id']}")
    path = tmp_path / "signe.pdf"
    path.write_bytes(download.content)
    checks = verify_pdf(path, [identity_certificate()])
    assert [(check.signer_name, check.valid) for check in checks] == [("Dominique Dupont", True)]


def test_a_refused_act_comes_back_with_the_reason(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    folder = sent_folder(kit, setup.visa_then_sign)
    agent = sign_in(app, kit, "agent")
    token = csrf_of(agent.get(f"/dossiers/{folder['id']}").text)
    ok(act(kit, "agent", folder["id"], "visa"))  # visa given meanwhile (another tab, the API)
    answer = agent.post(f"/dossiers/{folder['id']}/viser", data={"csrf": token, "commentaire_visa": "deux fois"})
    assert answer.status_code == 403  # the folder moved on to the mayor's step
    assert "Le formulaire contient des erreurs" in answer.text
    assert "vous n&#39;êtes membre d&#39;aucun bureau attendu à l&#39;étape en cours" in answer.text
    assert "<h1>Arrêté du maire</h1>" in answer.text  # the folder's page, with the reason on top


def test_rejecting_needs_a_reason_next_to_its_field(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    folder = sent_folder(kit, setup.visa_then_sign)
    agent = sign_in(app, kit, "agent")
    missing = post(agent, folder["id"], "rejeter", {"motif": "  "})
    assert missing.status_code == 422
    assert 'id="motif-erreur"' in missing.text and "Indiquez le motif du rejet." in missing.text
    assert 'aria-describedby="motif-erreur"' in missing.text
    assert folder_of(kit, folder["id"])["status"] == "in_progress"
    done = post(agent, folder["id"], "rejeter", {"motif": "Pièce manquante"})
    assert flash_after(agent, done) == "Dossier rejeté."
    rejected = folder_of(kit, folder["id"])
    assert rejected["status"] == "rejected" and rejected["rejection_reason"] == "Pièce manquante"
    assert "Pièce manquante" in agent.get(f"/dossiers/{folder['id']}").text


def test_droit_de_remords(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    folder = sent_folder(kit, setup.visa_then_sign)
    ok(act(kit, "agent", folder["id"], "visa"))
    agent = sign_in(app, kit, "agent")
    answer = post(agent, folder["id"], "remords")
    assert flash_after(agent, answer) == "Votre dernière action est reprise (droit de remords)."
    assert folder_of(kit, folder["id"])["current_step"] == 0
    assert "Viser" in buttons(agent.get(f"/dossiers/{folder['id']}").text)


def test_transfer_to_another_desk(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    finance = desk(kit, "Finances", ["maire"])
    folder = sent_folder(kit, setup.visa_then_sign)
    agent = sign_in(app, kit, "agent")
    missing = post(agent, folder["id"], "transferer", {"commentaire_transfert": "pour avis technique"})
    assert missing.status_code == 422 and 'id="bureau_transfert-erreur"' in missing.text
    assert 'value="pour avis technique"' in missing.text
    answer = post(agent, folder["id"], "transferer", {"bureau_transfert": finance})
    assert flash_after(agent, answer) == "Dossier transféré."
    assert folder_of(kit, folder["id"])["steps"][0]["desk_ids"] == [finance]


def test_ask_for_an_opinion_then_give_it(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    legal = desk(kit, "Juridique", ["maire"])
    folder = sent_folder(kit, setup.visa_then_sign)
    agent = sign_in(app, kit, "agent")
    missing = post(agent, folder["id"], "avis", {"bureau_avis": legal})
    assert missing.status_code == 422 and 'id="question-erreur"' in missing.text
    answer = post(agent, folder["id"], "avis", {"bureau_avis": legal, "question": "Le délai est-il tenable ?"})
    assert flash_after(agent, answer) == "Avis demandé."
    opinion = ok(kit["agent"].get(f"/parapheur/folders/{folder['id']}"))["opinions"][0]
    mayor = sign_in(app, kit, "maire")
    page = mayor.get(f"/dossiers/{folder['id']}").text
    assert "Le délai est-il tenable ?" in page and "Donner l'avis" in buttons(page)
    given = post(mayor, folder["id"], f"avis/{opinion['id']}", {f"reponse-{opinion['id']}": "Oui, de justesse."})
    assert flash_after(mayor, given) == "Avis donné."
    assert ok(kit["agent"].get(f"/parapheur/folders/{folder['id']}"))["opinions"][0]["answer"] == "Oui, de justesse."


def test_annotations_public_and_private(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    folder = sent_folder(kit, setup.visa_then_sign)
    agent = sign_in(app, kit, "agent")
    empty = post(agent, folder["id"], "annoter", {"annotation": ""})
    assert empty.status_code == 422 and "Écrivez l&#39;annotation." in empty.text
    flash_after(agent, post(agent, folder["id"], "annoter", {"annotation": "Vu avec le DGS"}))
    flash_after(agent, post(agent, folder["id"], "annoter", {"annotation": "Note pour moi", "privee": "1"}))
    mine = agent.get(f"/dossiers/{folder['id']}").text
    assert "Vu avec le DGS" in mine and "Note pour moi" in mine and "privée" in mine
    theirs = sign_in(app, kit, "maire").get(f"/dossiers/{folder['id']}").text
    assert "Vu avec le DGS" in theirs and "Note pour moi" not in theirs


def test_paper_signature_with_its_scan(app: Any, kit: Kit) -> None:
    Standard(kit)
    secretariat = desk(kit, "Accueil", ["agent"])
    paper = typology(kit, [{"kind": "paper_signature", "desk_ids": [secretariat]}], name="Convention")
    folder = sent_folder(kit, paper)
    agent = sign_in(app, kit, "agent")
    page = agent.get(f"/dossiers/{folder['id']}").text
    assert 'enctype="multipart/form-data"' in page and "Enregistrer la signature papier" in page
    token = csrf_of(page)
    wrong = agent.post(
        f"/dossiers/{folder['id']}/signature-papier",
        data={"csrf": token, "commentaire_papier": "signé en mairie"},
        files={"scan": ("scan.pdf", b"pas un PDF", "application/pdf")},
    )
    assert wrong.status_code == 422 and 'id="scan-erreur"' in wrong.text
    assert "« scan.pdf » n&#39;est ni un PDF ni une photo JPEG ou PNG" in wrong.text
    assert 'value="signé en mairie"' in wrong.text
    none = agent.post(f"/dossiers/{folder['id']}/signature-papier", data={"csrf": token})
    assert none.status_code == 422 and "Choisissez le scan" in none.text
    done = agent.post(
        f"/dossiers/{folder['id']}/signature-papier",
        data={"csrf": token},
        files={"scan": ("scan.pdf", make_pdf("Scan"), "application/pdf")},
    )
    assert flash_after(agent, done) == "Signature papier enregistrée."
    signed = folder_of(kit, folder["id"])
    assert signed["status"] == "completed" and [d["role"] for d in signed["documents"]] == ["main", "scan"]


def test_a_draft_is_sent_then_withdrawn_by_its_creator(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    draft = ok(upload_folder(kit, setup.visa_then_sign, send=False), 201)
    agent = sign_in(app, kit, "agent")
    assert "Envoyer le dossier" in buttons(agent.get(f"/dossiers/{draft['id']}").text)
    assert flash_after(agent, post(agent, draft["id"], "envoyer")) == "Dossier envoyé dans son circuit."
    assert folder_of(kit, draft["id"])["status"] == "in_progress"
    page = agent.get(f"/dossiers/{draft['id']}").text
    assert re.search(r'action="/dossiers/[^"]+/retirer" data-confirm=', page)
    done = post(agent, draft["id"], "retirer", {"commentaire_retrait": "Doublon"})
    assert flash_after(agent, done) == "Dossier retiré."
    assert folder_of(kit, draft["id"])["status"] == "withdrawn"


def test_metadata_of_the_current_step(app: Any, kit: Kit) -> None:
    Standard(kit)
    office = desk(kit, "Comptabilité", ["agent"])
    subtype = typology(kit, [{"kind": "visa", "desk_ids": [office], "mandatory_metadata": ["montant"]}], name="Mandat")
    folder = sent_folder(kit, subtype)
    agent = sign_in(app, kit, "agent")
    refused = post(agent, folder["id"], "viser")
    assert refused.status_code == 422 and "montant" in refused.text
    page = agent.get(f"/dossiers/{folder['id']}").text
    assert re.search(r'<label for="meta-0">montant <span class="required">', page)
    answer = post(agent, folder["id"], "metadonnees", {"meta-0": "1 250,00"})
    assert flash_after(agent, answer) == "Métadonnées enregistrées."
    assert folder_of(kit, folder["id"])["metadata"] == {"montant": "1 250,00"}
    assert flash_after(agent, post(agent, folder["id"], "viser")) == "Dossier visé."


def test_another_collectivites_folder_is_not_found_and_other_roles_are_refused(
    app: Any, kit: Kit, make_kit: Any
) -> None:
    other = make_kit(with_identity=False)
    theirs = sent_folder(other, Standard(other).visa_then_sign, title="Leur arrêté")
    document_id = theirs["documents"][0]["id"]
    agent = sign_in(app, kit, "agent")
    for path in (
        f"/dossiers/{theirs['id']}",
        f"/dossiers/{theirs['id']}/documents/{document_id}",
        f"/dossiers/{theirs['id']}/documents/{document_id}/pages/1",
        f"/dossiers/{theirs['id']}/bordereau",
    ):
        answer = agent.get(path)
        assert answer.status_code == 404 and "Leur arrêté" not in answer.text, path
    token = csrf_of(agent.get("/bureau").text)
    refused = agent.post(f"/dossiers/{theirs['id']}/viser", data={"csrf": token})
    assert refused.status_code == 404 and folder_of(other, theirs["id"])["current_step"] == 0
    mine = sent_folder(kit, Standard(kit).visa_then_sign)
    assert sign_in(app, kit, "archiviste").get(f"/dossiers/{mine['id']}").status_code == 403


def test_a_folder_not_open_to_this_agent_is_not_found(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    draft = ok(upload_folder(kit, setup.visa_then_sign, send=False), 201)  # a draft is its creator's only
    assert sign_in(app, kit, "maire").get(f"/dossiers/{draft['id']}").status_code == 404


def test_a_reading_step_is_marked_read(app: Any, kit: Kit) -> None:
    Standard(kit)
    council = desk(kit, "Élus", ["maire"])
    subtype = typology(kit, [{"kind": "reading", "desk_ids": [council]}], name="Information")
    folder = sent_folder(kit, subtype)
    mayor = sign_in(app, kit, "maire")
    assert "Marquer comme lu" in buttons(mayor.get(f"/dossiers/{folder['id']}").text)
    answer = post(mayor, folder["id"], "lire", {"commentaire_lecture": "Lu en bureau municipal"})
    assert flash_after(mayor, answer) == "Lecture enregistrée."
    assert folder_of(kit, folder["id"])["status"] == "completed"


def test_page_renderings_are_bounded(app: Any, kit: Kit, monkeypatch: Any) -> None:
    setup = Standard(kit)
    folder = sent_folder(kit, setup.visa_then_sign, files=[("acte.pdf", make_pdf("Borné"), "application/pdf")])
    agent = sign_in(app, kit, "agent")
    url = re.findall(r'<img src="([^"]+)"', agent.get(f"/dossiers/{folder['id']}").text)[0].replace("&amp;", "&")
    monkeypatch.setattr(ui_pages, "SLOT_WAIT_SECONDS", 0.05)
    taken = [ui_pages._slots.acquire(timeout=1) for _ in range(ui_pages.RENDER_SLOTS)]
    try:
        assert all(taken)
        busy = agent.get(url)  # every slot is rendering another page: come back later, nothing started
        assert busy.status_code == 503 and "réessayez dans un instant" in busy.text
    finally:
        for _ in taken:
            ui_pages._slots.release()
    assert agent.get(url).status_code == 200


def test_the_creator_sends_an_expired_external_link_again_from_the_page(app: Any, kit: Kit) -> None:
    Standard(kit)
    external = typology(kit, [{"kind": "external_signature"}], name="Convention")
    # An address of its own: the invitations it leaves queued must not reach another test's mailbox.
    signer = {"name": "Claude Lefèvre", "email": "claude.lefevre.renvoi@exemple.fr"}
    folder = sent_folder(kit, external, title="Convention", external_signers=[signer])
    client = sign_in(app, kit, "agent")
    html = client.get(f"/dossiers/{folder['id']}").text
    assert "Un lien à usage unique a été envoyé à claude.lefevre.renvoi@exemple.fr." in html
    assert "Renvoyer le lien au signataire" in buttons(html)
    with transaction() as session:
        session.execute(
            update(Step).where(Step.folder_id == folder["id"]).values(token_expires_at=utcnow() - timedelta(days=1))
        )
    assert "Le lien envoyé à claude.lefevre.renvoi@exemple.fr a expiré." in client.get(f"/dossiers/{folder['id']}").text
    flash = flash_after(client, post(client, folder["id"], "renvoyer-lien"))
    assert flash == "Nouveau lien envoyé au signataire externe ; l'ancien ne fonctionne plus."
    assert "a expiré" not in client.get(f"/dossiers/{folder['id']}").text
