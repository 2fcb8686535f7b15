"""The kit's whole story in a real browser, driven by clicks and typing as its users would.

An administrator adds a colleague and the desk she vises from; an agent creates a folder by uploading a PDF;
that colleague vises it; the elected official (« maire ») signs with the server key; the signed PDF is then in
the GED, where the agent opens it; an archivist builds a transfer of it and reads its validation report.
Beside it: another collectivité's URL is "not found", and an expired session goes back to sign-in, then to
where the user was.

Background jobs run on the embedded queue in the test's thread, between two steps, as the kit's worker would.
"""

from __future__ import annotations

import io
import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from browsing import Visitors, sign_in
from parapheur_kit import Standard, desk, ok, sent_folder
from playwright.sync_api import Page, Response
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy import select

from socle.auth import hash_token
from socle.db import transaction
from socle.models import UiSession

from conftest import UI_PASSWORD, Kit, make_pdf, run_jobs, upload_document

pytest_plugins = ["browser_plugin"]  # the browser, the live server, the visitors and the report

COLLEAGUE = ("lou.moreau", "Lou Moreau")
COLLEAGUE_PASSWORD = "un mot de passe assez long"
TITLE = "Délibération n° 2026-118 : tarifs de la cantine"


def submit(page: Page, button: str) -> Response:
    """Click a form's button and wait for the page it leads to (forms with data-confirm are accepted)."""
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name=button, exact=True).click()
    response = navigation.value
    assert response is not None and response.status < 400, f"« {button} » : {response and response.status}\n{page.url}"
    return response


def flash(page: Page) -> str:
    return " ".join(page.locator(".flash").all_inner_texts())


def heading(page: Page) -> str:
    return page.get_by_role("heading", level=1).inner_text()


def path_of(page: Page) -> str:
    return urlsplit(page.url).path


def test_a_folder_from_upload_to_signature_then_the_ged_and_a_transfer(visitors: Visitors, kit: Kit) -> None:
    # What the administrator set up before today: the agent's service and the mayor's desk.
    assemblies = desk(kit, "Service des assemblées", ["agent"])
    mayor = desk(kit, "Maire", ["maire"], "Le Maire")

    # 1. The administrator adds a colleague, then the desk she vises from.
    admin = visitors.page_of("admin")
    admin.goto("/admin")
    admin.get_by_role("link", name="Utilisateurs").first.click()
    admin.get_by_role("link", name="Ajouter un utilisateur").click()
    admin.get_by_label("Identifiant").fill(COLLEAGUE[0])
    admin.get_by_label("Nom affiché").fill(COLLEAGUE[1])
    admin.get_by_label("Agent", exact=True).check()
    admin.get_by_label("Mot de passe", exact=True).fill(COLLEAGUE_PASSWORD)
    admin.get_by_label("Confirmation du mot de passe").fill(COLLEAGUE_PASSWORD)
    submit(admin, "Ajouter l'utilisateur")
    assert f"Utilisateur « {COLLEAGUE[0]} » ajouté." in flash(admin)
    visitors.keep(admin, "histoire-1-utilisateur-ajoute")

    admin.goto("/admin/parapheur/bureaux")
    admin.get_by_label("Nom du bureau").fill("Secrétariat général")
    admin.get_by_label("Qualité dans le cachet").fill("La secrétaire générale")
    admin.get_by_label(COLLEAGUE[1]).check()
    submit(admin, "Créer le bureau")
    assert "Bureau « Secrétariat général » créé." in flash(admin)
    visitors.keep(admin, "histoire-2-bureau-cree")
    admin.get_by_role("link", name="Secrétariat général").click()
    secretariat = path_of(admin).rsplit("/", 1)[-1]

    # The circuit (its editor has page tests of its own): the new desk vises, the mayor signs.
    type_id = ok(
        kit["admin"].post("/parapheur/types", json={"name": "Délibérations", "signature_format": "pades"}), 201
    )["id"]
    circuit = [{"kind": "visa", "desk_ids": [secretariat]}, {"kind": "signature", "desk_ids": [mayor]}]
    ok(kit["admin"].post("/ged/plan", json={"name": "Délibérations", "parent_id": None}), 201)
    body = {
        "name": "Délibération du conseil",
        "circuit": circuit,
        "creator_desk_ids": [assemblies],
        "ged_folder": "Délibérations",  # where its signed documents are filed in the GED
    }
    ok(kit["admin"].post(f"/parapheur/types/{type_id}/subtypes", json=body), 201)

    # 2. The agent creates the folder: sous-type, circuit preview, upload, sent.
    agent = visitors.page_of("agent")
    agent.goto("/bureau")
    agent.get_by_role("link", name="Nouveau dossier").click()
    agent.get_by_label("Sous-type").select_option(label="Délibérations / Délibération du conseil")
    submit(agent, "Voir le circuit")
    assert "Secrétariat général" in agent.locator("ol.circuit").inner_text()
    visitors.keep(agent, "histoire-3-nouveau-dossier")
    agent.get_by_label("Titre du dossier").fill(TITLE)
    agent.get_by_label("Document(s) à viser ou signer").set_input_files(
        files=[{"name": "deliberation-118.pdf", "mimeType": "application/pdf", "buffer": make_pdf(TITLE)}]
    )
    assert agent.get_by_label("Classer le document signé dans la GED à la fin du circuit").is_checked()
    submit(agent, "Créer et envoyer dans le circuit")
    assert "Dossier créé et envoyé dans son circuit." in flash(agent)
    folder_path = path_of(agent)
    visitors.keep(agent, "histoire-4-dossier-envoye")
    assert re.fullmatch(r"/dossiers/[0-9a-f-]+", folder_path), folder_path
    run_jobs()

    # 3. The colleague signs in with the password the administrator gave her, and vises.
    colleague = visitors.new_page("collègue")
    colleague.goto("/bureau")  # not signed in: sign-in first, then back to the desk
    sign_in(colleague, kit.slug, COLLEAGUE[0], COLLEAGUE_PASSWORD)
    assert path_of(colleague) == "/bureau"
    colleague.get_by_role("link", name=TITLE).click()
    assert path_of(colleague) == folder_path
    submit(colleague, "Viser")
    assert "visé" in flash(colleague).lower(), flash(colleague)
    visitors.keep(colleague, "histoire-5-dossier-vise")
    run_jobs()

    # 4. The mayor finds it to act on, and signs with the server key.
    mayor_page = visitors.page_of("maire")
    mayor_page.goto("/bureau")
    mayor_page.get_by_role("link", name=TITLE).click()
    submit(mayor_page, "Signer")
    assert "sign" in flash(mayor_page).lower(), flash(mayor_page)
    visitors.keep(mayor_page, "histoire-6-dossier-signe")
    run_jobs()  # the signed document goes to the GED through the queue

    # 5. The agent finds the signed PDF in the GED and opens it.
    agent.goto("/documents")
    agent.get_by_label("Rechercher dans les documents").fill("cantine")
    submit(agent, "Rechercher")
    agent.get_by_role("link", name=TITLE).first.click()
    assert heading(agent) == TITLE
    visitors.keep(agent, "histoire-7-document-dans-la-ged")
    document_id = path_of(agent).rsplit("/", 1)[-1]
    download = agent.get_by_role("link", name=re.compile(r"^Télécharger .*\.pdf$")).first
    signed = agent.request.get(download.get_attribute("href") or "")
    assert signed.ok and signed.body().startswith(b"%PDF")
    signatures = PdfFileReader(io.BytesIO(signed.body())).embedded_signatures
    assert [s.signer_cert.subject.native["common_name"] for s in signatures] == ["Dominique Dupont"]

    # 6. The archivist asks for a transfer of that document; the package is built and validated.
    archivist = visitors.page_of("archiviste")
    archivist.goto("/archives/transferts")
    archivist.get_by_role("link", name="Nouveau versement").first.click()
    archivist.get_by_label("Des documents choisis dans la GED").check()
    archivist.get_by_label("Identifiants des documents").fill(document_id)
    archivist.get_by_label("Service d'archives destinataire").fill("AD037")
    archivist.get_by_label("Intitulé du versement").fill("Délibérations 2026")
    submit(archivist, "Demander le versement")
    transfer_path = path_of(archivist)
    run_jobs()
    archivist.goto(transfer_path)
    assert "Paquet conforme" in archivist.locator("main").inner_text(), archivist.locator("main").inner_text()
    assert archivist.get_by_role("link", name="Télécharger le paquet (SIP)").is_visible()
    visitors.keep(archivist, "histoire-8-versement-valide")
    visitors.assert_stayed_local()


def test_another_collectivites_address_is_not_found(visitors: Visitors, kit: Kit, make_kit: Any) -> None:
    other = make_kit(with_identity=False)
    document = upload_document(other["agent"], make_pdf("Arrêté d'une autre commune"), title="Arrêté voisin")
    folder = sent_folder(other, Standard(other).sign_only, title="Dossier voisin")
    page = visitors.page_of("agent")
    for path in (f"/documents/{document['id']}", f"/dossiers/{folder['id']}"):
        response = page.goto(path)
        assert response is not None and response.status == 404, path
        assert "introuvable" in heading(page).lower()
        assert "voisin" not in page.content()


def test_an_expired_session_signs_in_again_then_returns_where_the_user_was(visitors: Visitors, kit: Kit) -> None:
    page = visitors.page_of("agent")
    page.goto("/documents?q=budget")
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == "__Host-socle_session")
    with transaction() as db:
        row = db.execute(select(UiSession).where(UiSession.token_hash == hash_token(cookie))).scalar_one()
        row.last_seen_at -= timedelta(hours=3)  # idle longer than the kit allows
    page.reload()  # the next page the user asks for
    assert path_of(page) == "/connexion"
    sign_in(page, kit.slug, "agent", UI_PASSWORD)
    assert page.url.endswith("/documents?q=budget"), page.url
