"""A confirmation is asked only about a form the server may accept: the reject form without its reason goes
straight to the server's error, not through « Rejeter ce dossier ? » first."""

from __future__ import annotations

from browsing import Visitors
from parapheur_kit import Standard, folder_of, sent_folder

from conftest import Kit

pytest_plugins = ["browser_plugin"]  # the browser, the live server, the visitors and the report


def test_the_reject_form_asks_for_confirmation_only_once_its_reason_is_typed(visitors: Visitors, kit: Kit) -> None:
    setup = Standard(kit)
    folder = sent_folder(kit, setup.sign_only, title="Arrêté de voirie")
    page = visitors.page_of("maire")
    asked: list[str] = []

    page.on("dialog", lambda dialog: asked.append(dialog.message))  # the visitors' own handler says yes
    page.goto(f"/dossiers/{folder['id']}")
    with page.expect_navigation():
        page.get_by_role("button", name="Rejeter le dossier").click()
    assert asked == [], "a confirmation was asked about a reject without its reason"
    assert page.locator("#motif-erreur").is_visible()  # the server's error, next to the field
    page.get_by_label("Motif du rejet").fill("Pièce manquante")
    with page.expect_navigation():
        page.get_by_role("button", name="Rejeter le dossier").click()
    assert asked == ["Rejeter ce dossier ? Il sera clos."]
    assert folder_of(kit, folder["id"])["status"] == "rejected"
