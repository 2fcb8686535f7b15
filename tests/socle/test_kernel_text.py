"""The kernel's text hygiene: socle.text refuses control and bidi characters and blank required text; every
service's API refuses a NUL in the path or query before any route reads it; the framework's own refusals
(unknown route, wrong method, multipart limits, a file part without a name) are told in French."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, File, Form, UploadFile
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field, ValidationError
from ui_kit import sign_in

from socle.errors import InvalidInput
from socle.migrating import upgrade_all
from socle.text import BlankableLine, Line, Lines, Note, check_text, text_fault

from conftest import Kit, assert_problem

FORBIDDEN = ["\x00", "\x01", "\x1b", "\x7f", "\x80", "\x85", "\x9f", "\u202a", "\u202e", "\u2066", "\u2069"]


@pytest.mark.parametrize("char", FORBIDDEN)
def test_controls_and_bidi_are_refused_even_in_multi_line_text(char: str) -> None:
    code = f"U+{ord(char):04X}"
    for multiline in (False, True):
        fault = text_fault(f"a{char}b", multiline=multiline)
        assert fault is not None and code in fault
    with pytest.raises(InvalidInput) as refused:
        check_text(f"a{char}b", "titre")
    assert refused.value.detail.startswith("titre : ") and code in refused.value.detail
    assert refused.value.extra == {"field": "titre"}


def test_line_breaks_and_tabs_only_in_multi_line_text() -> None:
    for char in "\t\n\r":
        assert text_fault(f"a{char}b", multiline=True) is None
        assert text_fault(f"a{char}b") is not None
    assert text_fault("Délibération n° 12 — « budget » 🙂 \u200e") is None  # a mark is not an override


def test_blank_text_is_refused_when_required() -> None:
    for blank in ("", " ", "\u00a0 ", "\u3000"):
        fault = text_fault(blank)
        assert fault is not None and "espaces" in fault
        assert text_fault(blank, required=False) is None
    assert check_text("  Budget  ", "titre") == "  Budget  "  # kept as given: refusal, never cleaning


class _Form(BaseModel):
    title: Line = Field(min_length=1)
    reason: Lines
    comment: Note | None = None
    code: BlankableLine = ""


def test_the_schema_types_name_the_field_and_say_why_in_french() -> None:
    assert _Form(title="Titre", reason="un\ndeux", comment="", code="").comment == ""
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"title": "a\x00", "reason": "x"}, "title", "U+0000"),
        ({"title": "   ", "reason": "x"}, "title", "espaces"),
        ({"title": "a\nb", "reason": "x"}, "title", "U+000A"),
        ({"title": "a", "reason": " \n "}, "reason", "espaces"),
        ({"title": "a", "reason": "x", "comment": "\u202e"}, "comment", "U+202E"),
        ({"title": "a", "reason": "x", "code": "\x85"}, "code", "U+0085"),
    ]
    for data, field, word in cases:
        with pytest.raises(ValidationError) as refused:
            _Form.model_validate(data)
        (error,) = refused.value.errors()
        assert error["loc"] == (field,) and error["type"] == "value_error" and word in str(error["ctx"]["error"])


def _routes() -> APIRouter:
    router = APIRouter()

    @router.get("/echo/{value}")
    def echo(value: str, q: str = "") -> dict[str, str]:
        return {"value": value, "q": q}

    @router.post("/form")
    def form(name: str = Form(""), file: UploadFile | None = File(None)) -> dict[str, str]:
        return {"name": name}

    @router.post("/file")
    def file(file: UploadFile = File()) -> dict[str, str]:
        return {"name": file.filename or ""}

    return router


def _app() -> Any:
    from socle.web import create_service_app

    return create_service_app("essai", "essai", "Une application d'essai", [_routes()])


@pytest.fixture
def client() -> Any:
    with TestClient(_app(), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("url", ["/echo/a%00b", "/echo/a?q=x%00", "/echo/a?%00=1", "/nulle-part%00"])
def test_a_nul_in_the_path_or_query_is_a_422_problem(client: TestClient, url: str) -> None:
    body = assert_problem(client.get(url), 422)
    assert body["type"] == "urn:socle:problem:invalid-input" and "caractère nul" in body["detail"]
    assert client.get("/echo/a%01b?q=%C3%A9").json() == {"value": "a\x01b", "q": "é"}  # only NUL is everyone's


def test_unknown_route_and_wrong_method_are_told_in_french(client: TestClient) -> None:
    missing = assert_problem(client.get("/nulle-part"), 404)
    assert missing["detail"] == "aucune ressource à cette adresse"
    wrong = client.delete("/echo/a")
    assert assert_problem(wrong, 405)["detail"] == "méthode non autorisée à cette adresse"
    assert wrong.headers["allow"] == "GET"


def test_multipart_limits_are_told_in_french() -> None:
    from socle.web import install_error_handlers

    # Without the kit's body limit, which refuses the big part first when uploads are limited to 1 Mio.
    bare = FastAPI()
    install_error_handlers(bare)
    bare.include_router(_routes())
    client = TestClient(bare, raise_server_exceptions=False)
    one = {"file": ("a.txt", b"x", "text/plain")}  # a file: the form is multipart
    big = assert_problem(client.post("/form", data={"name": "x" * (1024 * 1024 + 1)}, files=one), 400)
    assert big["detail"] == "une partie du formulaire dépasse la taille maximale de 1024 Ko"
    many = assert_problem(client.post("/form", data={f"f{i}": "x" for i in range(1001)}, files=one), 400)
    assert many["detail"] == "trop de champs dans le formulaire : 1000 au plus"
    files = [("file", (f"{i}.txt", b"x", "text/plain")) for i in range(1001)]
    too_many_files = assert_problem(client.post("/form", files=files), 400)
    assert too_many_files["detail"] == "trop de fichiers dans le formulaire : 1000 au plus"
    broken = client.post("/form", content=b"--x\r\n", headers={"content-type": "multipart/form-data"})
    assert "Missing" not in assert_problem(broken, 400)["detail"]


def test_a_file_part_without_a_name_is_told_in_french(client: TestClient) -> None:
    response = client.post("/file", files={"file": ("", b"contenu", "text/plain")})
    body = assert_problem(response, 422)
    assert "UploadFile" not in body["detail"] and "fichier attendu" in body["detail"], body


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def test_the_web_pages_answer_a_nul_with_a_page_not_a_500(
    request: pytest.FixtureRequest, app: Any, make_kit: Callable[..., Kit], use_env: Callable[..., None], backend: str
) -> None:
    if backend == "postgresql":
        use_env(SOCLE_DATABASE_URL=request.getfixturevalue("postgres_url"))
        upgrade_all()
    browser = sign_in(app, make_kit(with_identity=False), "agent")
    for url in ("/documents/a%00b", "/documents?type=a%00b", "/bureau?q=%00"):
        page = browser.get(url, headers={"accept": "text/html"})
        assert page.status_code == 400 and page.headers["content-type"].startswith("text/html"), (url, page.text)
