"""Every screen of the interface in a real browser: axe-core (WCAG 2.1 A and AA), page weight, no third party.

The screens come from each service's ``screens_<service>.py`` (see screens.py), plus the pages every user
sees: sign-in (empty and with errors), home, and the "not found" page. Screenshots and a summary of the
figures go to var/browser-artefacts/ (or $SOCLE_TEST_ARTEFACTS).
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from browsing import HERE, Report, Visit, Visitors
from playwright.sync_api import Page
from screens import Screen

from conftest import UI_PASSWORD, USERS, Kit

pytest_plugins = ["browser_plugin"]  # the browser, the live server, the visitors and the report

ScreensOf = Callable[[Kit], list[Screen]]


def service_screens() -> list[tuple[str, ScreensOf]]:
    """Each service's ``screens`` function, by module name."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    return [
        (module_file.stem, importlib.import_module(module_file.stem).screens)
        for module_file in sorted(HERE.glob("screens_*.py"))
    ]


def report_of(failures: dict[str, list[str]]) -> str:
    return "\n".join(f"\n{name} :\n  " + "\n  ".join(problems) for name, problems in failures.items())


def test_every_screen_is_accessible_light_and_local(
    make_visitors: Callable[[Kit], Visitors], make_kit: Callable[..., Kit], report: Report
) -> None:
    # Each service prepares its screens in a collectivité of its own: one's data never fills another's
    # "empty list" screen (a signed folder filed in the GED, say).
    runs: list[tuple[Visitors, list[Screen]]] = []
    for module, screens in service_screens():
        started = time.monotonic()
        kit = make_kit()
        declared = screens(kit)
        report.spent(f"données de {module}", time.monotonic() - started)
        assert declared, f"{module}.screens() ne déclare aucun écran"
        runs.append((make_visitors(kit), declared))
    if not runs:
        runs.append((make_visitors(make_kit()), []))
    # Each user's home page, in a collectivité where that user signs in anyway (a sign-in is the slow part).
    for username in USERS:
        visitors, declared = next(((v, d) for v, d in runs if any(s.username == username for s in d)), runs[0])
        declared.append(Screen(f"accueil-{username}", username, "/"))
    names = [screen.name for _, declared in runs for screen in declared]
    assert len(names) == len(set(names)), f"noms d'écran en double : {sorted({n for n in names if names.count(n) > 1})}"
    failures: dict[str, list[str]] = {}
    for visitors, declared in runs:
        for screen in declared:
            visit = visitors.visit(screen.name, screen.username, screen.path)
            problems = visit.problems()
            if problems:
                failures[f"{screen.name} ({screen.username} {screen.path})"] = problems
        visitors.assert_stayed_local()
    assert not failures, f"{len(failures)} écran(s) sur {len(names)} en défaut :{report_of(failures)}"


def test_sign_in_page_its_errors_and_not_found(visitors: Visitors) -> None:
    visits: list[tuple[Visit, int]] = [(visitors.visit("connexion", "anonyme", "/connexion"), 200)]
    page = visitors.anonymous()
    visitors.meters["anonyme"].reset()
    with page.expect_navigation() as sent:
        page.get_by_role("button", name="Se connecter").click()  # nothing typed: every field is missing
    errors = visitors.measure("connexion-erreurs", "anonyme", "/connexion", page, sent.value)
    visits.append((errors, 400))
    summary = page.locator(".error-summary")
    assert summary.is_visible() and summary.evaluate("node => node === document.activeElement")
    assert page.get_by_label("Identifiant").get_attribute("aria-invalid") == "true"
    visits.append((visitors.visit("introuvable-anonyme", "anonyme", "/page-qui-n-existe-pas"), 404))
    visits.append((visitors.visit("introuvable-agent", "agent", "/page-qui-n-existe-pas"), 404))
    failures = {visit.name: visit.problems(status) for visit, status in visits if visit.problems(status)}
    visitors.assert_stayed_local()
    assert not failures, report_of(failures)


# ---------------------------------------------------------------------------------------------------------
# Keyboard only


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


def assert_focus_always_visible(stops: list[dict[str, str]]) -> None:
    hidden = [
        stop
        for stop in stops
        if stop["focusVisible"] != "true"
        or stop["visible"] != "true"
        or (stop["outline"] == "none" and stop["shadow"] == "none")
    ]
    assert not hidden, f"focus invisible sur : {hidden}"


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
    session = next(cookie for cookie in page.context.cookies() if cookie["name"] == "socle_session")
    assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Lax"

    stops = tab_through(page)
    assert stops[0]["text"] == "Aller au contenu", f"le lien d'évitement n'est pas le premier : {stops[:2]}"
    assert_focus_always_visible(stops)
    assert any(stop["text"] == "Se déconnecter" for stop in stops)
