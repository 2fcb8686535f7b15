"""A form clicked twice while its answer is on its way is sent once (a double click made two of everything)."""

from __future__ import annotations

from typing import Any

from browsing import Visitors

from conftest import Kit

pytest_plugins = ["browser_plugin"]  # the browser, the live server, the visitors and the report


def test_a_double_click_on_create_sends_the_form_once(visitors: Visitors, kit: Kit) -> None:
    page = visitors.page_of("archiviste")
    page.goto("/gels")
    held: list[Any] = []

    def hold_the_post(route: Any) -> None:
        # The answer is held back: the second click comes while the first request is on its way, as on a slow
        # network or a busy server.
        if route.request.method == "POST":
            held.append(route)
        else:
            route.continue_()

    page.route("**/gels", hold_the_post)
    page.get_by_label("Nom du gel").fill("Contentieux 2026-14")
    page.get_by_label("Motif").fill("Recours au tribunal administratif")
    box = page.get_by_role("button", name="Créer le gel").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    # The mouse itself: Playwright's own clicks wait for the navigation the first one started.
    page.mouse.click(x, y)
    page.wait_for_timeout(300)
    assert len(held) == 1, "the first click sent nothing"
    page.mouse.click(x, y)
    page.wait_for_timeout(300)
    sent = len(held)
    with page.expect_navigation():
        for route in held:
            route.continue_()
    page.unroute("**/gels")
    assert sent == 1, f"the form was sent {sent} times"
    names = [hold["name"] for hold in kit["archiviste"].get("/ged/holds").json()]
    assert names == ["Contentieux 2026-14"]
    assert "Contentieux 2026-14" in page.get_by_role("heading", level=1).inner_text(), page.url
