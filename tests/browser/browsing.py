"""The browser run's machinery: the kit served on 127.0.0.1, Debian's Chromium driven by Playwright, axe-core.

Nothing is downloaded at run time: Chromium is Debian's (``make system-deps``), axe-core comes from the npm
registry at the version ``package-lock.json`` pins (``npm ci`` by the same target), and Playwright never
fetches its own browsers. Without them the tests skip with the reason, or fail under CI=true.

Each visit is measured on a cold cache (Chromium's cache disabled through the DevTools protocol): the figures
are what a first visit costs. Images of documents (page renderings, thumbnails) are left out of the page
weight, as the interface's rules say; they are counted apart.
"""

from __future__ import annotations

import base64
import json
import os
import time
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, CDPSession, Page, Response

from conftest import UI_PASSWORD, Kit

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
# Without the background-networking flags Chromium calls Google's hosts, which this closed network refuses.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
MAX_BYTES = 150 * 1024
MAX_REQUESTS = 25
LOCAL_HOST = "127.0.0.1"


def artefacts_dir() -> Path:
    """Screenshots and the summary. SOCLE_TEST_ARTEFACTS, not SOCLE_ARTEFACTS: the kit refuses unknown SOCLE_*."""
    chosen = os.environ.get("SOCLE_TEST_ARTEFACTS")
    return Path(chosen) if chosen else ROOT / "var" / "browser-artefacts"


# ---------------------------------------------------------------------------------------------------------
# Measuring a page


@dataclass
class Visit:
    """What one page cost and what axe-core found on it."""

    name: str
    username: str
    path: str
    status: int
    final_path: str = ""  # where the browser ended (a redirect to /connexion would show here)
    bytes: int = 0
    requests: int = 0
    excluded_bytes: int = 0  # images of documents, left out of the page weight
    excluded_requests: int = 0
    foreign: list[str] = field(default_factory=list)  # requests that left 127.0.0.1
    console_errors: list[str] = field(default_factory=list)  # CSP refusals, script errors
    violations: list[dict[str, Any]] = field(default_factory=list)
    tab_stops: int = 0  # controls reached by Tab alone
    keyboard: list[str] = field(default_factory=list)  # controls Tab never reaches, or reaches without a visible focus
    screenshot: str = ""
    seconds: float = 0.0  # opening, measuring, axe-core and the screenshot (not asserted: for the budget)

    def problems(self, expected_status: int = 200) -> list[str]:
        """Everything wrong with this visit, in French, one line each (empty: the page is fine)."""
        found = []
        if self.status != expected_status:
            found.append(f"statut HTTP {self.status} (attendu {expected_status})")
        if self.final_path != self.path:
            found.append(f"arrivé sur {self.final_path} au lieu de {self.path}")
        if self.bytes >= MAX_BYTES:
            found.append(f"page de {self.bytes} octets (limite {MAX_BYTES})")
        if self.requests >= MAX_REQUESTS:
            found.append(f"{self.requests} requêtes (limite {MAX_REQUESTS})")
        found += [f"requête hors de {LOCAL_HOST} : {url}" for url in self.foreign]
        found += [f"console : {message}" for message in self.console_errors]
        found += [describe_violation(violation) for violation in self.violations]
        found += [f"clavier : {problem}" for problem in self.keyboard]
        return found


def describe_violation(violation: dict[str, Any]) -> str:
    nodes = violation.get("nodes", [])
    where = "; ".join(
        f"{' '.join(node.get('target', []))} — {node.get('failureSummary', '').replace(chr(10), ' ')}"
        for node in nodes[:5]
    )
    more = f" (+{len(nodes) - 5} autres)" if len(nodes) > 5 else ""
    return f"axe {violation['id']} [{violation.get('impact')}] {violation['help']} : {where}{more}"


def is_document_image(url: str, resource_type: str) -> bool:
    """Images of documents (page renderings, thumbnails) are not the interface's weight."""
    path = urlsplit(url).path
    return "/pages/" in path or (resource_type == "Image" and not path.startswith("/static/"))


class Meter:
    """Counts a page's network traffic through the DevTools protocol, cache disabled: a cold first visit."""

    def __init__(self, context: BrowserContext, page: Page) -> None:
        self.started: dict[str, tuple[str, str]] = {}
        self.ended: dict[str, int] = {}
        self.hops: list[tuple[str, int]] = []
        self.console: list[str] = []
        session = context.new_cdp_session(page)
        session.send("Network.enable")
        session.send("Network.setCacheDisabled", {"cacheDisabled": True})
        session.on("Network.requestWillBeSent", self._sent)
        session.on("Network.loadingFinished", lambda event: self._ended(event, int(event["encodedDataLength"])))
        session.on("Network.loadingFailed", lambda event: self._ended(event, 0))
        session.on("Network.responseReceived", self._received)
        page.on("console", self._logged)
        page.on("pageerror", lambda error: self.console.append(f"erreur de script : {error}"))
        self.session = session

    def _sent(self, event: dict[str, Any]) -> None:
        url = event["request"]["url"]
        if url.startswith("data:"):
            return  # inline (the empty favicon): no request leaves the page
        hop = event.get("redirectResponse")
        if hop is not None:
            # A redirect reuses its request id: its hop is one more request, with bytes of its own.
            self.hops.append((hop["url"], int(hop.get("encodedDataLength", 0))))
        self.started[event["requestId"]] = (url, event.get("type", ""))

    def _ended(self, event: dict[str, Any], size: int) -> None:
        self.ended[event["requestId"]] = size

    def _received(self, event: dict[str, Any]) -> None:
        # The page's own status is checked by the test; a stylesheet or script in error is a broken page.
        status = int(event["response"]["status"])
        if event.get("type") != "Document" and status >= 400:
            self.console.append(f"ressource en erreur {status} : {event['response']['url']}")

    def _logged(self, message: Any) -> None:
        # Chromium logs every answer in error, the page's own 404 included: those are judged by status above.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.console.append(message.text)

    def reset(self) -> None:
        self.started.clear()
        self.ended.clear()
        self.hops.clear()
        self.console.clear()

    def settle(self, page: Page, timeout: float = 10) -> None:
        """Wait until every request the page started has finished (events arrive while Playwright waits)."""
        deadline = time.monotonic() + timeout
        while set(self.started) - set(self.ended) and time.monotonic() < deadline:
            page.wait_for_timeout(20)

    def fill(self, visit: Visit) -> None:
        sizes = [(url, kind, self.ended.get(request_id, 0)) for request_id, (url, kind) in self.started.items()]
        sizes += [(url, "Document", size) for url, size in self.hops]
        for url, resource_type, size in sizes:
            host = urlsplit(url).hostname
            if urlsplit(url).scheme in ("http", "https", "ws", "wss") and host != LOCAL_HOST:
                visit.foreign.append(url)
            if is_document_image(url, resource_type):
                visit.excluded_bytes += size
                visit.excluded_requests += 1
            else:
                visit.bytes += size
                visit.requests += 1
        visit.console_errors = list(self.console)


def load_every_image(page: Page, timeout_ms: int = 15_000) -> None:
    """Load the lazy images too (pages of a document further down), as a user scrolling would: the
    screenshot shows them and the images of documents are counted (apart from the page weight)."""
    page.evaluate(
        """async (timeout) => {
            const images = [...document.images];
            images.forEach((image) => { if (image.loading === "lazy") image.loading = "eager"; });
            const pending = images.filter((image) => !image.complete)
                .map((image) => new Promise((done) => { image.onload = image.onerror = done; }));
            await Promise.race([Promise.all(pending), new Promise((done) => setTimeout(done, timeout))]);
        }""",
        timeout_ms,
    )


def run_axe(page: Page) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.1 A and AA violations on the page as it stands.

    Injected through the DevTools protocol, which the page's CSP does not apply to: a script tag would be
    refused, rightly, by ``script-src 'self'``. The first time in a browser context by ``evaluate``, and
    from then on as an init script of the context, which Chromium runs in each new document: its 650 Kio
    cross the protocol once per user rather than once per screen.
    """
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(_axe_source())
        if page.context not in _AXE_CONTEXTS:
            page.context.add_init_script(_axe_source())
            _AXE_CONTEXTS.add(page.context)
    options = {"runOnly": {"type": "tag", "values": WCAG_TAGS}, "resultTypes": ["violations"]}
    result: list[dict[str, Any]] = page.evaluate(
        "async (options) => (await window.axe.run(document, options)).violations", options
    )
    return result


_AXE_SOURCE: list[str] = []
_AXE_CONTEXTS: weakref.WeakSet[BrowserContext] = weakref.WeakSet()  # those that run axe-core in each document


def _axe_source() -> str:
    if not _AXE_SOURCE:
        _AXE_SOURCE.append(AXE.read_text(encoding="utf-8"))
    return _AXE_SOURCE[0]


# ---------------------------------------------------------------------------------------------------------
# Screenshots

# The page's full size, as Playwright measures it for ``page.screenshot(full_page=True)``.
_FULL_SIZE = """() => ({
    width: Math.max(document.body.scrollWidth, document.documentElement.scrollWidth, document.body.offsetWidth,
        document.documentElement.offsetWidth, document.body.clientWidth, document.documentElement.clientWidth),
    height: Math.max(document.body.scrollHeight, document.documentElement.scrollHeight, document.body.offsetHeight,
        document.documentElement.offsetHeight, document.body.clientHeight, document.documentElement.clientHeight),
})"""


def full_page_png(page: Page, session: CDPSession) -> bytes:
    """The whole page as a PNG, as ``page.screenshot(full_page=True)`` takes it, but encoded for speed.

    Chromium's ``optimizeForSpeed`` compresses the PNG less: the same pixels (PNG is lossless), in files
    about 1.4 times larger, made in about 60 % of the time (98 screens: 6.4 s instead of 10.3, 13.5 Mo
    instead of 9.9). Taken before the Tab walk, when no text field has the focus: no caret to hide, as
    Playwright would.
    """
    size = page.evaluate(_FULL_SIZE)
    viewport = page.viewport_size
    fits = viewport is not None and size["width"] <= viewport["width"] and size["height"] <= viewport["height"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    options = {"format": "png", "clip": clip, "captureBeyondViewport": not fits, "optimizeForSpeed": True}
    return base64.b64decode(session.send("Page.captureScreenshot", options)["data"])


# ---------------------------------------------------------------------------------------------------------
# Keyboard alone

# Marks every control a user could act on (visible, enabled, not taken out of the tab order on purpose) with
# data-kbd; a radio group is one stop, as Tab enters a group once and arrows move inside it. Then records,
# at each focus change, which control has the focus and how its focus shows.
_MARK_CONTROLS = """() => {
    const selector = "a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]";
    const keyOf = (node, index) =>
        node.type === "radio" ? `radio:${node.form ? node.form.id : ""}:${node.name}` : String(index);
    const wanted = {};
    const positive = [];
    [...document.querySelectorAll(selector)].forEach((node, index) => {
        if (node.disabled || node.tabIndex < 0 || node.closest("[inert]")) return;
        if (!node.checkVisibility({ visibilityProperty: true })) return;
        node.dataset.kbd = keyOf(node, index);
        wanted[node.dataset.kbd] = describe(node);
        if (node.tabIndex > 0) positive.push(describe(node));
    });
    function describe(node) {
        const text = (node.getAttribute("aria-label") || node.innerText || node.value || node.name || "").trim();
        return `${node.tagName.toLowerCase()}${node.type ? "[" + node.type + "]" : ""} « ${text.slice(0, 50)} »`;
    }
    window.__socleStops = [];
    document.addEventListener("focusin", (event) => {
        const node = event.target;
        const style = getComputedStyle(node);
        const box = node.getBoundingClientRect();
        window.__socleStops.push({
            key: node.dataset ? node.dataset.kbd || "" : "", what: describe(node),
            shown: node.matches(":focus-visible") && box.width > 0 && box.height > 0
                && (style.outlineStyle !== "none" || style.boxShadow !== "none"),
        });
    }, true);
    return { wanted, positive };
}"""


_UNREACHED = """(keys) => {
    const reached = new Set(window.__socleStops.map((stop) => stop.key));
    return keys.filter((key) => !reached.has(key)).length;
}"""


def walk_with_tab(page: Page) -> tuple[int, list[str]]:
    """Press Tab round the whole page: the number of controls reached, and what is wrong for a keyboard user
    (a control Tab never reaches, a focus that does not show, a positive tabindex that reorders the page)."""
    marked = page.evaluate(_MARK_CONTROLS)
    wanted: dict[str, str] = marked["wanted"]
    # A round of the page is about one press per control, but a date field takes one per part (day, month,
    # year) and the browser has a stop of its own after the last control: press until every control was
    # reached, or clearly never will be. A press moves the focus once, so with n controls still unreached
    # at least n more presses are needed: those are pressed before asking the page again. The same presses
    # as asking after each one, without a round trip to the page for each.
    budget = 4 * len(wanted) + 10
    unreached = len(wanted)
    while budget > 0:
        for _ in range(min(max(unreached, 1), budget)):
            page.keyboard.press("Tab")
            budget -= 1
        unreached = page.evaluate(_UNREACHED, list(wanted))
        if not unreached:
            break
    stops: list[dict[str, Any]] = page.evaluate("() => window.__socleStops")
    reached = {stop["key"] for stop in stops}
    problems = [f"jamais atteint par Tab : {what}" for key, what in wanted.items() if key not in reached]
    problems += sorted({f"focus invisible : {stop['what']}" for stop in stops if not stop["shown"]})
    problems += [f"tabindex positif (ordre de tabulation forcé) : {what}" for what in marked["positive"]]
    return len(reached & set(wanted)), problems


# ---------------------------------------------------------------------------------------------------------
# Users at their browsers


class Visitors:
    """The kit's users, each in a browser context of their own, signed in through the real /connexion page."""

    def __init__(self, browser: Browser, base_url: str, kit: Kit, report: Report) -> None:
        self.browser = browser
        self.base_url = base_url
        self.kit = kit
        self.report = report
        self.pages: dict[str, Page] = {}
        self.meters: dict[str, Meter] = {}
        self.contexts: list[BrowserContext] = []
        self.foreign: list[str] = []  # every request of every context that left 127.0.0.1

    def new_page(self, key: str) -> Page:
        context = self.browser.new_context(base_url=self.base_url, locale="fr-FR")
        context.set_default_timeout(15_000)
        context.on("request", self._watch)
        self.contexts.append(context)
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())  # form[data-confirm]: the user says yes
        self.pages[key] = page
        self.meters[key] = Meter(context, page)
        return page

    def _watch(self, request: Any) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname != LOCAL_HOST:
            self.foreign.append(request.url)

    def anonymous(self) -> Page:
        return self.pages.get("anonyme") or self.new_page("anonyme")

    def page_of(self, username: str) -> Page:
        """``username``'s page, signed in on first use by typing in the sign-in form."""
        if username in self.pages:
            return self.pages[username]
        started = time.monotonic()
        page = self.new_page(username)
        page.goto("/connexion")
        sign_in(page, self.kit.slug, username)
        self.report.spent("connexions", time.monotonic() - started)
        return page

    def visit(self, name: str, username: str, path: str) -> Visit:
        """Open ``path`` as ``username`` (or "anonyme"), measure it, run axe-core, keep a screenshot."""
        page = self.anonymous() if username == "anonyme" else self.page_of(username)
        started = time.monotonic()
        self.meters[username].reset()
        response = page.goto(path, wait_until="load")
        visit = self.measure(name, username, path, page, response)
        visit.seconds = round(time.monotonic() - started, 2)
        return visit

    def measure(self, name: str, username: str, path: str, page: Page, response: Response | None) -> Visit:
        """Measure the page as it is now (after a goto or a form submitted)."""
        meter = self.meters[username]
        load_every_image(page)
        meter.settle(page)
        parts = urlsplit(page.url)
        final = parts.path + (f"?{parts.query}" if parts.query else "")
        visit = Visit(name, username, path, response.status if response else 0, final)
        meter.fill(visit)
        visit.violations = run_axe(page)
        shot = self.report.screenshot_path(name)
        shot.write_bytes(full_page_png(page, meter.session))
        visit.screenshot = shot.name
        walked = time.monotonic()
        visit.tab_stops, visit.keyboard = walk_with_tab(page)
        self.report.spent("tours au clavier", time.monotonic() - walked)
        self.report.add(visit)
        return visit

    def keep(self, page: Page, name: str) -> None:
        """A screenshot of the page as it is, for people to look at (the story's steps)."""
        load_every_image(page)
        page.screenshot(path=self.report.screenshot_path(name), full_page=True)

    def assert_stayed_local(self) -> None:
        assert not self.foreign, f"requêtes sorties de {LOCAL_HOST} : {self.foreign}"

    def close(self) -> None:
        for context in self.contexts:
            context.close()


def sign_in(page: Page, tenant: str, username: str, password: str = UI_PASSWORD) -> None:
    """Fill in the sign-in form as a user does, and land on the page it leads to."""
    page.get_by_label("Collectivité").select_option(tenant)
    page.get_by_label("Identifiant").fill(username)
    page.get_by_label("Mot de passe").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Se connecter").click()
    assert urlsplit(page.url).path != "/connexion", f"connexion refusée pour {username}"


# ---------------------------------------------------------------------------------------------------------
# The run's summary


class Report:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.visits: list[Visit] = []
        self.seconds: dict[str, float] = {}  # where the run's time went, for the CI budget (not asserted)
        self.emptied = False

    def screenshot_path(self, name: str) -> Path:
        """Where a screenshot goes; the previous run's artefacts are removed before the first one."""
        if not self.emptied:
            self.folder.mkdir(parents=True, exist_ok=True)
            for old in [*self.folder.glob("*.png"), *self.folder.glob("summary.*")]:
                old.unlink()
            self.emptied = True
        return self.folder / f"{name}.png"

    def spent(self, what: str, seconds: float) -> None:
        self.seconds[what] = self.seconds.get(what, 0.0) + seconds

    def add(self, visit: Visit) -> None:
        self.visits = [v for v in self.visits if v.name != visit.name] + [visit]

    def write(self) -> None:
        if not self.visits:
            return
        (self.folder / "summary.json").write_text(
            json.dumps([asdict(visit) for visit in self.visits], ensure_ascii=False, indent=2), encoding="utf-8"
        )
        lines = [
            "# Parcours navigateur : poids et accessibilité des écrans",
            "",
            f"Limites : {MAX_BYTES // 1024} Kio et {MAX_REQUESTS} requêtes par page (cache vide), "
            f"axe-core {', '.join(WCAG_TAGS)}.",
            "",
            "| écran | utilisateur | chemin | statut | Kio transférés | requêtes | images de documents | "
            "violations axe | contrôles atteints par Tab | défauts clavier | secondes |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for v in self.visits:
            lines.append(
                f"| {v.name} | {v.username} | `{v.path}` | {v.status} | {v.bytes / 1024:.1f} | {v.requests} | "
                f"{v.excluded_requests} ({v.excluded_bytes / 1024:.1f} Kio) | {len(v.violations)} | {v.tab_stops} | "
                f"{len(v.keyboard)} | {v.seconds} |"
            )
        heaviest = max(self.visits, key=lambda v: v.bytes)
        busiest = max(self.visits, key=lambda v: v.requests)
        lines += [
            "",
            f"{len(self.visits)} écrans ; page la plus lourde : {heaviest.name} ({heaviest.bytes / 1024:.1f} Kio) ; "
            f"le plus de requêtes : {busiest.name} ({busiest.requests}) ; contrôles atteints par Tab : "
            f"{sum(v.tab_stops for v in self.visits)} ; défauts clavier : {sum(len(v.keyboard) for v in self.visits)}.",
            "",
            "Durées (secondes) : "
            + " ; ".join(f"{what} {seconds:.1f}" for what, seconds in sorted(self.seconds.items()))
            + f" ; visites mesurées {sum(v.seconds for v in self.visits):.1f}.",
            "",
        ]
        (self.folder / "summary.md").write_text("\n".join(lines), encoding="utf-8")
