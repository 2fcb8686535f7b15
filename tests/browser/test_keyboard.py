"""The interface with the keyboard alone: signing in, the desk's bulk visa, a folder's visa, a GED upload.

Every screen is also walked round with Tab by test_screens.py (browsing.walk_with_tab); the first test here
shows that walk finds what it looks for, on a page made with the faults it must catch.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from browsing import Visitors, walk_with_tab
from parapheur_kit import Standard, folder_of, sent_folder
from playwright.sync_api import Page

from conftest import UI_PASSWORD, Kit, make_pdf, run_jobs

pytest_plugins = ["browser_plugin"]  # the browser, the live server, the visitors and the report


def focused(page: Page) -> dict[str, str]:
    """The focused element: its tag, name, text, and how its focus shows (outline, box-shadow)."""
    return dict(
        page.evaluate(
            """() => {
                const node = document.activeElement;
                const style = getComputedStyle(node);
                const box = node.getBoundingClientRect();
                return {
                    tag: node.tagName.toLowerCase(), id: node.id || "", name: node.getAttribute("name") || "",
                    type: node.getAttribute("type") || "",
                    text: (node.innerText || node.value || "").trim().slice(0, 60),
                    outline: style.outlineStyle, shadow: style.boxShadow,
                    visible: String(box.width > 0 && box.height > 0 && box.right > 0 && box.bottom > 0),
                    focusVisible: String(node.matches(":focus-visible")),
                };
            }"""
        )
    )


def tab_through(page: Page, limit: int = 80) -> list[dict[str, str]]:
    """Press Tab until the focus leaves the page's controls (back to the body or the first one again)."""
    seen: list[dict[str, str]] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        here = focused(page)
        if here["tag"] == "body" or (seen and here == seen[0]):
            break
        seen.append(here)
    return seen


def tab_to(page: Page, wanted: Callable[[dict[str, str]], bool], what: str, limit: int = 120) -> None:
    """Press Tab until the focused control is the one wanted; fails, naming it, if Tab never gets there."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if wanted(focused(page)):
            return
    raise AssertionError(f"Tab n'atteint jamais {what} sur {page.url}")


def assert_focus_always_visible(stops: list[dict[str, str]]) -> None:
    hidden = [
        stop
        for stop in stops
        if stop["focusVisible"] != "true"
        or stop["visible"] != "true"
        or (stop["outline"] == "none" and stop["shadow"] == "none")
    ]
    assert not hidden, f"focus invisible sur : {hidden}"


def test_the_tab_walk_finds_traps_hidden_focus_and_forced_order(visitors: Visitors) -> None:
    page = visitors.new_page("piege")
    page.set_content(
        """<!doctype html><html lang="fr"><head><title>Piège</title>
        <style>:focus-visible { outline: 2px solid black } #sans-contour:focus-visible { outline: none }</style>
        </head><body><main>
        <a href="#haut">Haut de page</a>
        <button id="sans-contour">Contour retiré</button>
        <input aria-label="Code forcé en premier" tabindex="2">
        <input aria-label="Piège" id="piege">
        <button>Après le piège</button>
        <select aria-label="Après le piège aussi"><option>1</option></select>
        <button disabled>Désactivé</button><button hidden>Caché</button>
        </main></body></html>"""
    )
    # A keyboard trap: once in that field, Tab no longer goes anywhere (what a careless widget does).
    page.evaluate(
        """() => document.getElementById("piege").addEventListener("keydown", (event) => {
            if (event.key === "Tab") event.preventDefault();
        })"""
    )
    reached, problems = walk_with_tab(page)
    # The forced-order field comes first, then the link, the button, the trap: the trap keeps the focus.
    assert reached == 4, problems
    assert sorted(problems) == sorted(
        [
            "jamais atteint par Tab : button[submit] « Après le piège »",
            "jamais atteint par Tab : select[select-one] « Après le piège aussi »",
            "focus invisible : button[submit] « Contour retiré »",
            "tabindex positif (ordre de tabulation forcé) : input[text] « Code forcé en premier »",
        ]
    ), problems


def test_keyboard_alone_signs_in_and_moves_with_a_visible_focus(visitors: Visitors, kit: Kit) -> None:
    page = visitors.new_page("clavier")
    page.goto("/connexion")
    stops = tab_through(page)
    assert stops and stops[0]["text"] == "Aller au contenu", f"le lien d'évitement n'est pas le premier : {stops[:2]}"
    assert_focus_always_visible(stops)
    names = [stop["name"] for stop in stops]
    assert names.index("tenant") < names.index("username") < names.index("password")

    # Sign in with the keyboard alone: type-ahead in the list, typing in the fields, Enter to send.
    page.goto("/connexion")
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "contenu"
    while focused(page)["name"] != "tenant":
        page.keyboard.press("Tab")
    page.keyboard.type(f"Commune {kit.slug}")
    assert page.get_by_label("Collectivité").input_value() == kit.slug
    page.keyboard.press("Tab")
    page.keyboard.type("agent")
    page.keyboard.press("Tab")
    page.keyboard.type(UI_PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert urlsplit(page.url).path == "/"
    assert page.get_by_role("heading", level=1).inner_text() == "Bonjour Camille Martin"
    # Chromium keeps a Secure cookie over http://127.0.0.1 (a secure context): the same cookie as in production.
    session = next(cookie for cookie in page.context.cookies() if cookie["name"] == "__Host-socle_session")
    assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Lax"

    stops = tab_through(page)
    assert stops[0]["text"] == "Aller au contenu", f"le lien d'évitement n'est pas le premier : {stops[:2]}"
    assert_focus_always_visible(stops)
    assert any(stop["text"] == "Se déconnecter" for stop in stops)


def test_an_agent_vises_from_the_desk_and_a_folder_with_the_keyboard_alone(visitors: Visitors, kit: Kit) -> None:
    setup = Standard(kit)
    first, second, kept = (
        sent_folder(kit, setup.visa_then_sign, title=title)["id"]
        for title in ("Convention n° 1", "Convention n° 2", "Budget primitif 2027")
    )
    page = visitors.page_of("agent")

    # The desk: Space ticks two folders, Enter on « Viser la sélection » acts on both (the confirmation is accepted).
    page.goto("/bureau")
    for folder_id in (first, second):
        tab_to(page, lambda here, wanted=folder_id: here["id"] == f"choix-{wanted}", f"la case du dossier {folder_id}")
        page.keyboard.press("Space")
    assert page.locator(f"#choix-{kept}").is_checked() is False
    tab_to(page, lambda here: here["text"] == "Viser la sélection", "« Viser la sélection »")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    run_jobs()
    for folder_id in (first, second):
        assert folder_of(kit, folder_id)["current_step"] == 1, "le visa groupé n'a pas été fait"
    assert folder_of(kit, kept)["current_step"] == 0

    # A folder: Enter on its link opens it, Enter on « Viser » vises it.
    page.goto("/bureau")
    tab_to(page, lambda here: here["tag"] == "a" and here["text"] == "Budget primitif 2027", "le lien du dossier")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert urlsplit(page.url).path == f"/dossiers/{kept}"
    tab_to(page, lambda here: here["tag"] == "button" and here["text"] == "Viser", "« Viser »")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    run_jobs()
    assert folder_of(kit, kept)["current_step"] == 1, "le visa n'a pas été fait"


def test_an_agent_files_a_document_in_the_ged_with_the_keyboard_alone(visitors: Visitors, kit: Kit) -> None:
    page = visitors.page_of("agent")
    # Playwright turns the browser's file-chooser interception on without waiting for it: listening from the
    # start leaves it time to take effect, or the Space below may open (and lose) a real chooser instead.
    page.on("filechooser", lambda _chooser: None)
    page.goto("/documents/nouveau")
    # The file field opens the system's file chooser on Space, as a button does.
    tab_to(page, lambda here: here["type"] == "file", "le champ « Fichier »")
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(
        files=[{"name": "courrier.pdf", "mimeType": "application/pdf", "buffer": make_pdf("Courrier du préfet")}]
    )
    page.keyboard.press("Tab")
    page.keyboard.type("Courrier du préfet")
    tab_to(page, lambda here: here["name"] == "document_type", "le champ « Libellé du type »")
    page.keyboard.type("courrier")
    tab_to(page, lambda here: here["text"] == "Déposer", "« Déposer »")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    run_jobs()
    found = kit["agent"].get("/ged/documents", params={"document_type": "courrier"}).json()
    assert [item["current"]["title"] for item in found["items"]] == ["Courrier du préfet"], f"{found} ({page.url})"
