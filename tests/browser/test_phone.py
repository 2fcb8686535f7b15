"""The parapheur on a phone: the mayor signs between two meetings, on a 390 px wide touch screen (and 320 px).

No page is wider than the screen (a wider page slides sideways under the finger, and its overflow covered
buttons: taps on « Signer la sélection » landed on something else), every checkbox and radio button is a
target of at least 24×24 px (WCAG 2.2, 2.5.8), and a folder's page leads straight to its document: a
« Lire le document » link near the top, each page image a link to its full-size image.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from browsing import sign_in
from parapheur_kit import Standard, act, desk, ok, sent_folder, typology
from playwright.sync_api import Browser, Page
from sqlalchemy import update
from testpki import TestPki

from parapheur.events import hash_secret
from parapheur.models import Step
from socle.db import transaction

from conftest import ROOT, Kit, make_pdf, upload_document

sys.path.insert(0, str(ROOT / "tests" / "parapheur"))  # the signing helpers, beside the parapheur's tests
from signing_helpers import import_seal

pytest_plugins = ["browser_plugin"]  # the browser and the live server

PHONE = {"width": 390, "height": 844}
NARROWEST = 320
# What a real history holds: a rejection copied from a mail, with an address and a path that do not break.
LONG_COMMENT = "Voir https://intranet.mairie.test/marches/2027/voirie/avenant-n3-pieces-manquantes-et-devis-signes.pdf"
LONG_EMAIL = "claude-marie.lefevre-de-la-fontaine@services-techniques.communaute-de-communes.exemple.fr"
SECRET = "lien-de-test-pour-le-telephone-0123456789abcdef"

# Widths the browser needs, and every visible checkbox or radio button smaller than 24×24 px.
_MEASURE = """() => {
    const small = [...document.querySelectorAll("input[type=checkbox], input[type=radio]")]
        .filter((box) => box.checkVisibility())
        .map((box) => [box.id || box.name, box.getBoundingClientRect()])
        .filter(([, rect]) => rect.width < 24 || rect.height < 24)
        .map(([name, rect]) => `${name} ${rect.width.toFixed(1)}×${rect.height.toFixed(1)}`);
    return { scroll: document.documentElement.scrollWidth, inner: window.innerWidth, small };
}"""


@pytest.fixture
def phone(browser: Browser, live_server: str) -> Iterator[Any]:
    """A phone's browser: ``phone(username)`` gives that user's page, signed in, or the anonymous one."""
    contexts = []

    def open_as(username: str, tenant: str = "") -> Page:
        context = browser.new_context(
            base_url=live_server, locale="fr-FR", viewport=PHONE, is_mobile=True, has_touch=True
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        if username != "anonyme":
            page.goto("/connexion")
            sign_in(page, tenant, username)
        return page

    yield open_as
    for context in contexts:
        context.close()


def fits_the_phone(page: Page, path: str) -> list[str]:
    """What is wrong with ``path`` at 390 px then 320 px: a page wider than the screen, checkboxes too small."""
    problems = []
    for width in (PHONE["width"], NARROWEST):
        page.set_viewport_size({"width": width, "height": PHONE["height"]})
        response = page.goto(path)
        assert response is not None and response.status == 200, (path, response and response.status)
        measured = page.evaluate(_MEASURE)
        # On a phone the browser zooms out to show a wider page whole: innerWidth then grows with the page.
        if measured["scroll"] > min(measured["inner"], width):
            problems.append(f"{path} à {width} px : page large de {measured['scroll']} px")
        problems += [f"{path} à {width} px : case de {small}" for small in measured["small"]]
    page.set_viewport_size(PHONE)
    return problems


def test_the_desk_and_a_folder_to_sign_fit_a_phone(phone: Any, kit: Kit) -> None:
    setup = Standard(kit)
    files = [("budget.pdf", make_pdf("Budget primitif 2027", pages=2), "application/pdf")]
    to_sign = sent_folder(kit, setup.visa_then_sign, title="Délibération : tarifs de la cantine", files=files)
    ok(act(kit, "agent", to_sign["id"], "visa", {"comment": LONG_COMMENT}))
    second = sent_folder(kit, setup.visa_then_sign, title="Convention avec l'association des parents d'élèves")
    ok(act(kit, "agent", second["id"], "visa"))
    page = phone("maire", kit.slug)

    problems = fits_the_phone(page, "/bureau")
    assert page.get_by_role("button", name="Signer la sélection").is_visible()
    path = f"/dossiers/{to_sign['id']}"
    problems += fits_the_phone(page, path)
    assert LONG_COMMENT in page.locator("table").inner_text()
    assert not problems, "\n".join(problems)

    # Near the top, before the forms of the actions: the way to the document.
    read = page.get_by_role("link", name="Lire le document")
    actions = page.get_by_role("heading", name="Vos actions")
    assert read.bounding_box()["y"] < actions.bounding_box()["y"]  # type: ignore[index]
    read.click()
    assert page.url.endswith("#documents-titre")
    # Each page image leads to its full-size image, in the same tab.
    for number in (1, 2):
        link = page.get_by_role("link", name=f"Page {number} en grand", exact=True)
        assert link.get_attribute("target") is None
        assert f"/pages/{number}?" in (link.get_attribute("href") or "")
    # The card signature needs the card reader of a computer: folded on a phone, said in one line.
    card = page.locator("details", has=page.get_by_text("Afficher la signature par carte"))
    assert card.count() == 1 and card.get_attribute("open") is None
    assert not page.get_by_role("button", name="Préparer la signature par carte").is_visible()
    assert page.get_by_text("ordinateur équipé du lecteur de carte").is_visible()


def test_the_external_signer_page_fits_a_phone(phone: Any, kit: Kit, pki: TestPki) -> None:
    secretariat = desk(kit, "Secrétariat", ["agent"])
    circuit = [{"kind": "visa", "desk_ids": [secretariat]}, {"kind": "external_signature"}]
    subtype = typology(kit, circuit, name="Convention", seal_identity_id=import_seal(kit, pki))
    signer = {"name": "Claude-Marie Lefèvre de La Fontaine", "email": LONG_EMAIL}
    folder = sent_folder(kit, subtype, title="Convention de mise à disposition", external_signers=[signer])
    ok(act(kit, "agent", folder["id"], "visa"))
    # The link's secret is known here rather than read from a mail: only its digest is kept, as the kit does.
    with transaction() as session:
        external = update(Step).where(Step.folder_id == folder["id"], Step.position == 1)
        session.execute(external.values(token_hash=hash_secret(SECRET)))
    page = phone("anonyme")
    problems = fits_the_phone(page, f"/signature-externe/{SECRET}")
    assert LONG_EMAIL in page.locator("main").inner_text()
    assert not problems, "\n".join(problems)


def test_the_ged_fits_a_phone_with_long_values(phone: Any, kit: Kit) -> None:
    """The GED's pages on a phone, with what a real collectivité files: a title, a file name, a keyword and a
    field value without a space to break at. Tables scroll inside their own region; nothing else is wider."""
    long_name = "Deliberation_2027-03-12_conseil-municipal_budget-primitif_annexe-IV-tableau-des-effectifs"
    fields = [{"name": "reference", "label": "Référence du marché", "kind": "text"}]
    body = {"code": "marche", "name": "Marché public", "fields": fields, "dua_months": 120}
    assert kit["admin"].post("/ged/types", json=body).status_code == 201
    folder = kit["admin"].post("/ged/plan", json={"name": "Commande publique", "code": "1M"}).json()
    group = kit["admin"].post("/ged/groups", json={"name": "Commande publique"}).json()
    assert kit["admin"].post(f"/ged/groups/{group['id']}/members", json={"username": "agent"}).status_code == 200
    rights = [{"group_id": group["id"], "rights": ["read", "write", "delete", "manage"]}]
    assert kit["admin"].put(f"/ged/plan/{folder['id']}/permissions", json=rights).status_code == 200
    document = upload_document(
        kit["agent"],
        make_pdf("Marché de voirie"),
        filename=f"{long_name}.pdf",
        title=long_name,
        type="marche",
        folder_id=folder["id"],
        tags=[LONG_EMAIL],
        field_values=json.dumps({"reference": LONG_COMMENT}),
    )
    page = phone("agent", kit.slug)
    problems = []
    for path in ("/documents?q=Deliberation", f"/plan/{folder['id']}", f"/documents/{document['id']}"):
        problems += fits_the_phone(page, path)
    assert LONG_COMMENT in page.locator("main").inner_text()  # the document's page shows the long value
    problems += fits_the_phone(page, f"/documents/{document['id']}/metadonnees")
    assert not problems, "\n".join(problems)
