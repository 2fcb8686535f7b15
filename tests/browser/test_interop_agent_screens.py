"""« Préfecture et trésorerie » in a real browser, as a commune's secretary uses it, against the S²LOW simulator:
each page passes axe-core (WCAG 2.1 A and AA) and the round with Tab (every control reached, its focus visible),
stays under the weight budget, and fits a phone (390 px and 320 px wide) without sliding sideways.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
from browsing import Visit, Visitors
from playwright.sync_api import Page

from socle.auth import create_user
from socle.db import transaction
from socle.models import Tenant

from conftest import ROOT, Kit, make_pdf, ui_password_hash

sys.path.insert(0, str(ROOT / "tests" / "interop"))  # the S²LOW simulator's helpers, beside the interop tests
from s2low_helpers import S2low, act_request, add_s2low, drive, running_s2low, start, store

pytest_plugins = ["browser_plugin"]  # the browser, the live server, the visitors and the report

PHONE_WIDTHS = (390, 320)
_WIDTH = "() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth })"
SIGNED_PES = (
    b'<?xml version="1.0" encoding="UTF-8"?><PES_Aller><EnTetePES/><PES_DepenseAller><Bordereau Id="B1"/>'
    b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo/></ds:Signature>'
    b"</PES_DepenseAller></PES_Aller><!-- ecran -->"
)


@pytest.fixture
def simulator(actes_schemas: None) -> Iterator[S2low]:
    yield from running_s2low()


def _secretary(kit: Kit) -> None:
    with transaction() as session:
        tenant = session.get(Tenant, kit.tenant_id)
        assert tenant is not None
        user = create_user(session, tenant, "greffe", "Claire Greffière", ["secretariat"])
        user.password_hash = ui_password_hash()


def _too_wide(page: Page, path: str) -> list[str]:
    problems = []
    for width in PHONE_WIDTHS:
        page.set_viewport_size({"width": width, "height": 844})
        response = page.goto(path)
        assert response is not None and response.status == 200, (path, response and response.status)
        measured = page.evaluate(_WIDTH)
        if measured["scroll"] > min(measured["inner"], width):
            problems.append(f"{path} à {width} px : page large de {measured['scroll']} px")
    page.set_viewport_size({"width": 1280, "height": 800})
    return problems


def test_the_secretarys_pages_are_accessible_and_fit_a_phone(
    make_visitors: Callable[[Kit], Visitors], kit: Kit, simulator: S2low
) -> None:
    add_s2low(kit, simulator)
    _secretary(kit)
    number = "DEL_2026_0042_X"  # as long as @ctes allows: the list's and the page's longest words
    body = act_request(kit, number)
    body["metadata"]["objet"] = (
        "Convention de mise à disposition des équipements sportifs intercommunaux avec l'association "
        "sportive et culturelle de la communauté de communes"
    )
    done = drive(start(kit, body, by="agent"))
    assert done.status == "done", done.error
    letter = simulator.state.add_letter(done.data["transaction_id"], 3)
    pes = {"object_key": store(SIGNED_PES, kit).key, "filename": "PESALR2_213700000_2026_00042_mandats.xml"}
    start(kit, {"kind": "helios", "connector": "tdt", "documents": [pes]})
    store(make_pdf("réponse"), kit)

    visitors = make_visitors(kit)
    screens = [
        ("accueil-greffe", "greffe", "/"),
        ("prefecture-flux", "greffe", "/flux"),
        ("prefecture-flux-acte", "greffe", f"/flux/{done.id}"),
        ("prefecture-transmettre-acte", "greffe", "/flux/acte"),
        ("prefecture-transmettre-pes", "greffe", "/flux/pes"),
        ("prefecture-courriers", "greffe", "/flux/courriers"),
        ("prefecture-courrier-reponse", "greffe", f"/flux/courriers/tdt/{letter}/reponse"),
        ("prefecture-flux-admin", "admin", "/flux"),
        ("prefecture-flux-acte-admin", "admin", f"/flux/{done.id}"),
    ]
    visits: list[tuple[Visit, int]] = [(visitors.visit(*screen), 200) for screen in screens]

    # The act form sent empty (the browser's own checks set aside): the errors next to the fields, focused.
    page = visitors.page_of("greffe")
    page.goto("/flux/acte")
    page.evaluate("() => document.querySelectorAll('form').forEach((form) => { form.noValidate = true; })")
    visitors.meters["greffe"].reset()
    with page.expect_navigation() as sent:
        page.get_by_role("button", name="Transmettre à la préfecture").click()
    assert page.locator(".error-summary").evaluate("node => node === document.activeElement")
    posted = urlsplit(page.url).path
    visits.append((visitors.measure("prefecture-transmettre-acte-erreurs", "greffe", posted, page, sent.value), 422))

    failures = {visit.name: visit.problems(status) for visit, status in visits if visit.problems(status)}
    assert not failures, "\n".join(f"{name} : {problems}" for name, problems in failures.items())
    visitors.assert_stayed_local()

    problems: list[str] = []
    for username, path in {(username, path) for _, username, path in screens}:
        problems += _too_wide(visitors.page_of(username), path)
    assert not problems, "\n".join(sorted(problems))
