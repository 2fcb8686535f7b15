"""Every screen of the interface in a real browser: axe-core (WCAG 2.1 A and AA), a round of the page with Tab
(every control reached, its focus visible), page weight, no third party, and no sideways scroll on a phone
(390 and 320 px wide, WCAG 1.4.10 reflow).

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

from browsing import HERE, LOCAL_HOST, Report, Visit, Visitors
from parapheur_kit import Standard
from playwright.sync_api import Page
from screens import Screen

from conftest import USERS, Kit

pytest_plugins = ["browser_plugin"]  # the browser, the live server, the visitors and the report

ScreensOf = Callable[[Kit], list[Screen]]

PHONE_WIDTHS = (390, 320)  # a common phone, and the narrowest WCAG 1.4.10 asks for (320 CSS px)
PHONE_HEIGHT = 844
# The page's width against the screen's and, when wider, what sticks out: the outermost elements past the right
# edge that no scrolling box clips (an absolutely positioned one escapes a scrolling box that is not positioned),
# named with a table's caption or, for anything else, the deepest element past the edge inside it (the cause).
_TOO_WIDE = """() => {
    const inner = window.innerWidth;
    const scroll = document.documentElement.scrollWidth;
    if (scroll <= inner) return { scroll, inner, culprits: [] };
    const past = (node) => node.getBoundingClientRect().right > inner + 0.5;
    const clipped = (node) => {
        let escapes = ["absolute", "fixed"].includes(getComputedStyle(node).position);
        for (let up = node.parentElement; up && up !== document.body; up = up.parentElement) {
            const style = getComputedStyle(up);
            if (escapes && style.position !== "static") escapes = false;
            if (!escapes && style.overflowX !== "visible" && !past(up)) return true;
        }
        return false;
    };
    const wide = new Set([...document.body.querySelectorAll("*")].filter((node) => past(node) && !clipped(node)));
    const text = (node) => (node.textContent || "").trim().replace(/\\s+/g, " ").slice(0, 50);
    const name = (node) => node.tagName.toLowerCase() + (node.id ? "#" + node.id : "")
        + [...node.classList].map((c) => "." + c).join("") + ` ${Math.round(node.getBoundingClientRect().right)} px`;
    const culprits = [...wide].filter((node) => !wide.has(node.parentElement)).slice(0, 3).map((node) => {
        if (node.tagName === "TABLE") return `${name(node)} « ${node.caption ? text(node.caption) : ""} »`;
        const inside = [...node.querySelectorAll("*")].filter((child) => wide.has(child));
        const deepest = inside.length ? inside[inside.length - 1] : node;
        return (deepest === node ? "" : name(node) + " > ") + `${name(deepest)} « ${text(deepest)} »`;
    });
    return { scroll, inner, culprits };
}"""


def service_screens() -> list[tuple[str, ScreensOf]]:
    """Each service's ``screens`` function, by module name."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    return [
        (module_file.stem, importlib.import_module(module_file.stem).screens)
        for module_file in sorted(HERE.glob("screens_*.py"))
    ]


def phone_problems(page: Page, report: Report) -> list[str]:
    """The page as it stands, narrowed to a phone's width: a page-level sideways scroll at each width, with what
    sticks out. The page is not loaded again, only resized, and given back its size after."""
    started = time.monotonic()
    size = page.viewport_size
    problems = []
    for width in PHONE_WIDTHS:
        page.set_viewport_size({"width": width, "height": PHONE_HEIGHT})
        measured = page.evaluate(_TOO_WIDE)
        if measured["scroll"] > width:
            culprits = ", ".join(measured["culprits"])
            problems.append(f"téléphone : page large de {measured['scroll']} px à {width} px ({culprits})")
    if size is not None:
        page.set_viewport_size(size)
    report.spent("largeur téléphone", time.monotonic() - started)
    return problems


def checked(visitors: Visitors, visit: Visit, status: int = 200) -> dict[str, list[str]]:
    """What is wrong with a visit just made, by its name (empty: nothing), the page narrowed to a phone included."""
    page = visitors.anonymous() if visit.username == "anonyme" else visitors.page_of(visit.username)
    problems = visit.problems(status) + phone_problems(page, visitors.report)
    return {visit.name: problems} if problems else {}


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
            problems = checked(visitors, visit).get(screen.name)
            if problems:
                failures[f"{screen.name} ({screen.username} {screen.path})"] = problems
        visitors.assert_stayed_local()
    assert not failures, f"{len(failures)} écran(s) sur {len(names)} en défaut :{report_of(failures)}"


def test_sign_in_page_its_errors_and_not_found(visitors: Visitors) -> None:
    found = checked(visitors, visitors.visit("connexion", "anonyme", "/connexion"))
    page = visitors.anonymous()
    visitors.meters["anonyme"].reset()
    with page.expect_navigation() as sent:
        page.get_by_role("button", name="Se connecter").click()  # nothing typed: every field is missing
    summary = page.locator(".error-summary")
    assert summary.is_visible() and summary.evaluate("node => node === document.activeElement")
    errors = visitors.measure("connexion-erreurs", "anonyme", "/connexion", page, sent.value)
    found |= checked(visitors, errors, 400)
    assert page.get_by_label("Identifiant").get_attribute("aria-invalid") == "true"
    found |= checked(visitors, visitors.visit("introuvable-anonyme", "anonyme", "/page-qui-n-existe-pas"), 404)
    found |= checked(visitors, visitors.visit("introuvable-agent", "agent", "/page-qui-n-existe-pas"), 404)
    visitors.assert_stayed_local()
    assert not found, report_of(found)


def test_forms_in_error_a_refusal_and_english_pages_are_accessible_too(visitors: Visitors, kit: Kit) -> None:
    setup = Standard(kit)
    found: dict[str, list[str]] = {}
    # Forms sent empty (the browser's own checks set aside, as an old browser would): the server's errors
    # shown next to the fields, the summary focused, and the page still passes axe-core and the Tab walk.
    sent_empty = [  # screen, user, page, the button that sends it, the status of the answer
        (
            "parapheur-nouveau-dossier-erreurs",
            "agent",
            f"/dossiers/nouveau?sous_type={setup.visa_then_sign}",
            "Créer et envoyer dans le circuit",
            422,
        ),
        ("ged-depot-erreurs", "agent", "/documents/nouveau", "Déposer", 422),
        ("admin-utilisateur-erreurs", "admin", "/admin/utilisateurs/nouveau", "Ajouter l'utilisateur", 400),
    ]
    for name, username, path, button, status in sent_empty:
        page = visitors.page_of(username)
        page.goto(path)
        page.evaluate("() => document.querySelectorAll('form').forEach((form) => { form.noValidate = true; })")
        visitors.meters[username].reset()
        with page.expect_navigation() as sent:
            page.get_by_role("button", name=button, exact=True).click()
        assert page.locator(".error-summary").evaluate("node => node === document.activeElement"), name
        assert page.locator("[aria-invalid=true]").count() > 0, name
        posted = urlsplit(page.url).path  # the form's action: its answer is the page with the errors
        found |= checked(visitors, visitors.measure(name, username, posted, page, sent.value), status)
    found |= checked(visitors, visitors.visit("refus-administration", "agent", "/admin"), 403)
    # The same screens in English, chosen as a user does (the language cookie the switch sets). A __Host- cookie
    # is Secure, for the host alone, on "/": given by host and path, since one given by an http:// address
    # would not be Secure, and Chromium refuses it (127.0.0.1 counts as secure for the kit's own cookies).
    english = visitors.page_of("maire")
    host = urlsplit(visitors.base_url).hostname or LOCAL_HOST
    english.context.add_cookies(
        [{"name": "__Host-socle_langue", "value": "en", "domain": host, "path": "/", "secure": True}]
    )
    for name, path in (("en-accueil", "/"), ("en-bureau", "/bureau"), ("en-introuvable", "/dossiers/inconnu")):
        visit = visitors.visit(name, "maire", path)
        assert english.locator("html").get_attribute("lang") == "en", name
        found |= checked(visitors, visit, 404 if name == "en-introuvable" else 200)
    visitors.assert_stayed_local()
    assert not found, report_of(found)
