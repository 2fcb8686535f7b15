"""Every answer of the APIs carries the security headers of a JSON and file API, once, alone or in the whole kit.

Before, only a stored file had ``nosniff``: an API answer opened in a browser could be framed by another site,
embedded by it, kept in the browser's cache on a shared workstation, and a downloaded HTML or SVG file opened
inline ran as a page of the kit. The web interface keeps its own headers for its pages.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter, Response
from fastapi.testclient import TestClient
from ui_kit import sign_in

from socle.app import create_service
from socle.ui.app import CSP as UI_CSP
from socle.ui.app import create_ui_app
from socle.web import create_service_app

from conftest import Kit, assert_problem, make_pdf, upload_document

API_HEADERS = {
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
    "cache-control": "no-store",
}


def assert_api_headers(answer: Any, **own: str) -> None:
    """Each header once, with the API's value, or the route's ``own`` one (names with underscores)."""
    expected = {**API_HEADERS, **{name.replace("_", "-"): value for name, value in own.items()}}
    for name, value in expected.items():
        assert answer.headers.get_list(name) == [value], (answer.request.url, name, answer.headers.get_list(name))


def assert_problem_answer(answer: Any, status: int) -> Any:
    """The answer, once checked as problem+json with ``status``."""
    assert_problem(answer, status)
    return answer


@pytest.fixture
def ged_alone(kit: Kit) -> Iterator[TestClient]:
    """The GED as it runs in production (``socle serve ged``): its routes without the /ged prefix."""
    client = TestClient(
        create_service("ged"), headers={"Authorization": f"Bearer {kit.tokens['agent']}"}, raise_server_exceptions=False
    )
    yield client
    client.close()


def test_a_service_alone(kit: Kit, ged_alone: TestClient) -> None:
    document = upload_document(kit["agent"], make_pdf("Arrêté"), title="Arrêté")

    listing = ged_alone.get("/documents")
    assert listing.status_code == 200 and listing.headers["content-type"] == "application/json"
    assert_api_headers(listing)

    assert_api_headers(assert_problem_answer(ged_alone.get("/documents/00000000-0000-0000-0000-000000000000"), 404))
    assert_api_headers(assert_problem_answer(ged_alone.get("/documents", headers={"Authorization": "Bearer x"}), 401))
    # Refused by a middleware before any route runs: the headers are added outside it.
    assert_api_headers(assert_problem_answer(ged_alone.get("/documents?q=%00"), 422))

    content = ged_alone.get(f"/documents/{document['id']}/content")
    assert content.status_code == 200 and content.content.startswith(b"%PDF")
    assert_api_headers(content)  # its own nosniff not doubled
    assert content.headers["etag"] and content.headers["content-disposition"].startswith("attachment")

    assert_api_headers(ged_alone.get("/healthz"))
    assert_api_headers(ged_alone.get("/openapi.json"))


def test_the_whole_kit_s_apis(app: Any, kit: Kit) -> None:
    document = upload_document(kit["agent"], make_pdf("Délibération"), title="Délibération")
    for path in ("/ged/documents", "/parapheur/folders", "/interop/connectors"):
        answer = kit["admin"].get(path)
        assert answer.status_code == 200, answer.text
        assert_api_headers(answer)
    assert_api_headers(assert_problem_answer(kit["archiviste"].get("/archive/transfers/nope"), 404))
    assert_api_headers(assert_problem_answer(kit["agent"].get("/archive/transfers"), 403))
    assert_api_headers(assert_problem_answer(kit["agent"].post("/parapheur/desks", json={"name": ""}), 422))

    content = kit["agent"].get(f"/ged/documents/{document['id']}/content")
    assert content.status_code == 200 and content.content.startswith(b"%PDF")
    assert_api_headers(content)

    # The kit's own routes, served by neither a service nor the interface.
    with TestClient(app) as anonymous:
        for path in ("/healthz", "/readyz", "/openapi.json", "/ged/healthz"):
            answer = anonymous.get(path)
            assert answer.status_code == 200, answer.text
            assert_api_headers(answer)
        assert_api_headers(assert_problem_answer(anonymous.get("/ged/documents"), 401))


def test_the_interface_keeps_its_own_headers(app: Any, kit: Kit) -> None:
    anonymous = TestClient(app, follow_redirects=False)
    page = anonymous.get("/connexion")
    signed_in = sign_in(app, kit, "agent").get("/")
    for answer in (page, signed_in):
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
        assert answer.headers.get_list("content-security-policy") == [UI_CSP]
        assert answer.headers.get_list("referrer-policy") == ["same-origin"]
        assert answer.headers.get_list("x-frame-options") == ["DENY"]
        assert answer.headers.get_list("x-content-type-options") == ["nosniff"]
        assert answer.headers.get_list("cache-control") == ["no-store"]
        assert answer.headers.get_list("cross-origin-opener-policy") == ["same-origin"]
        assert "cross-origin-resource-policy" not in answer.headers
    # An API client lost in the interface's paths gets problem+json, with the interface's headers.
    lost = assert_problem_answer(anonymous.get("/nulle-part"), 404)
    assert lost.headers.get_list("content-security-policy") == [UI_CSP]
    anonymous.close()


def _service_with_own_headers() -> Any:
    router = APIRouter()

    @router.get("/cachable")
    def cachable(response: Response) -> dict[str, str]:
        response.headers["Cache-Control"] = "private, max-age=60"
        response.headers["Referrer-Policy"] = "strict-origin"
        return {"status": "ok"}

    @router.get("/panne")
    def broken() -> None:
        raise RuntimeError("détail interne")

    return create_service_app("essai", "essai", "Une application d'essai", [router])


def test_a_route_s_own_values_stay_and_an_unexpected_error_has_the_headers() -> None:
    with TestClient(_service_with_own_headers(), raise_server_exceptions=False) as client:
        assert_api_headers(
            client.get("/cachable"), cache_control="private, max-age=60", referrer_policy="strict-origin"
        )
        # Starlette answers an unexpected error from outside every middleware.
        assert_api_headers(assert_problem_answer(client.get("/panne"), 500))


def test_the_interface_s_error_page_has_its_headers() -> None:
    router = APIRouter()

    @router.get("/panne")
    def broken() -> None:
        raise RuntimeError("détail interne")

    with TestClient(create_ui_app([router]), raise_server_exceptions=False) as client:
        page = client.get("/panne", headers={"accept": "text/html"})
    assert page.status_code == 500 and "détail interne" not in page.text
    assert page.headers.get_list("content-security-policy") == [UI_CSP]
    assert page.headers.get_list("x-frame-options") == ["DENY"]
    assert page.headers.get_list("cache-control") == ["no-store"]
