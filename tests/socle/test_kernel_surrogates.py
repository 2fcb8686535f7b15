"""Lone surrogates (JSON's ``"\\ud800"``): valid JSON, but no text; no UTF-8 encoder, hence no database driver,
takes one. Before, every route storing a text answered 500 (« surrogates not allowed »). Now a JSON body holding
one is refused by every service before any route (422, French, the field named), socle.text refuses them, and one
that still reaches a database is a 422 with nothing written. The address and forms cannot carry one."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from fastapi import APIRouter, File, Form, UploadFile
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import select

from socle.auth import create_tenant
from socle.db import new_session
from socle.models import Tenant
from socle.text import text_fault
from socle.web import JsonTextGuard, SessionDep, create_service_app, lone_surrogate

from conftest import Kit, assert_problem

JSON = {"content-type": "application/json"}


@pytest.mark.parametrize("char", ["\ud800", "\udbff", "\udc00", "\udfff"])
def test_socle_text_refuses_a_lone_surrogate(char: str) -> None:
    for multiline in (False, True):
        fault = text_fault(f"a{char}b", multiline=multiline)
        assert fault is not None and f"U+{ord(char):04X}" in fault and "isolée" in fault
    assert text_fault("a\U0001f642b") is None  # a character beyond U+FFFF is one character in a str


# ---------------------------------------------------------------------------------------------------------
# The kit's services


@pytest.mark.parametrize(
    ("user", "path", "body", "field", "listing"),
    [
        ("admin", "/ged/groups", '{"name": "Finances\\ud800"}', "body.name", "/ged/groups"),
        ("admin", "/ged/plan", '{"name": "Actes\\uDC00", "parent_id": null}', "body.name", "/ged/plan"),
        ("archiviste", "/ged/holds", '{"name": "Gel", "reason": "contentieux \\udbff"}', "body.reason", "/ged/holds"),
        ("admin", "/parapheur/desks", '{"name": "Élus", "members": ["\\ud83d"]}', "body.members.0", "/parapheur/desks"),
        ("admin", "/parapheur/types", '{"name": "x\\ud800"}', "body.name", "/parapheur/types"),
    ],
)
def test_a_json_body_holding_a_lone_surrogate_is_a_422_and_nothing_is_written(
    kit: Kit, user: str, path: str, body: str, field: str, listing: str
) -> None:
    client = kit[user]
    before = client.get(listing).json()
    problem = assert_problem(client.post(path, content=body.encode(), headers=JSON), 422)
    assert problem["type"] == "urn:socle:problem:invalid-input"
    assert problem["detail"].startswith(f"{field} : caractère invalide (U+D"), problem["detail"]
    assert problem["errors"] == [{"field": field, "message": problem["detail"].removeprefix(f"{field} : ")}]
    assert client.get(listing).json() == before


def test_a_surrogate_pair_and_an_escaped_backslash_are_plain_text(kit: Kit) -> None:
    admin = kit["admin"]
    pair = admin.post("/ged/groups", content=b'{"name": "Finances \\ud83d\\ude42"}', headers=JSON)
    assert pair.status_code == 201, pair.text
    assert pair.json()["name"] == "Finances \U0001f642"
    escaped = admin.post("/ged/groups", content=b'{"name": "Budget \\\\ud800"}', headers=JSON)
    assert escaped.status_code == 201, escaped.text
    assert escaped.json()["name"] == "Budget \\ud800"


def test_folder_metadata_with_a_lone_surrogate_is_refused(kit: Kit) -> None:
    """Free JSON (no schema for its texts): the guard, then socle.jsonvalues."""
    from parapheur_kit import Standard, sent_folder

    folder = sent_folder(kit, Standard(kit).visa_then_sign)
    url = f"/parapheur/folders/{folder['id']}/metadata"
    body = b'{"metadata": {"objet": {"\\udfff": 1}}}'
    problem = assert_problem(kit["agent"].patch(url, content=body, headers=JSON), 422)
    assert problem["detail"].startswith("body.metadata.objet : nom de champ : caractère invalide (U+DFFF)")
    assert kit["agent"].get(f"/parapheur/folders/{folder['id']}").json()["metadata"] == {}


# ---------------------------------------------------------------------------------------------------------
# The guard itself, on an app of its own


class _Named(BaseModel):
    name: str  # a plain str: Pydantic lets a lone surrogate through


def _routes() -> APIRouter:
    router = APIRouter()

    @router.post("/length")
    def length(body: _Named) -> dict[str, int]:
        return {"length": len(body.name)}

    @router.get("/echo/{value}")
    def echo(value: str, q: str = "") -> dict[str, list[int]]:
        return {"value": [ord(char) for char in value], "q": [ord(char) for char in q]}

    @router.post("/form")
    def form(name: str = Form(""), file: UploadFile | None = File(None)) -> dict[str, Any]:
        return {
            "name": [ord(char) for char in name],
            "filename": [ord(char) for char in file.filename or ""] if file else [],
        }

    @router.post("/collectivites")
    def add_tenants(session: SessionDep, slug: str) -> dict[str, str]:
        # A route that forgot socle.text: a first row written, then a second one no driver can encode.
        create_tenant(session, f"{slug}-a", "Commune A")
        session.add(Tenant(slug=f"{slug}-b", name="Commune \ud800"))
        session.commit()
        return {"slug": slug}

    return router


@pytest.fixture
def client() -> Any:
    with TestClient(create_service_app("essai", "essai", "", [_routes()]), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/merge-patch+json"]
)
def test_the_guard_reads_every_json_body(client: TestClient, content_type: str) -> None:
    problem = assert_problem(
        client.post("/length", content=b'{"name": "a\\ud800"}', headers={"content-type": content_type}), 422
    )
    assert problem["errors"][0]["field"] == "body.name"
    ok = client.post("/length", content=b'{"name": "a\\ud83d\\ude42"}', headers={"content-type": content_type})
    assert ok.status_code == 200 and ok.json() == {"length": 2}


def test_a_body_that_is_not_json_is_left_to_the_route(client: TestClient) -> None:
    broken = assert_problem(client.post("/length", content=b'{"name": "\\ud800', headers=JSON), 422)
    assert broken["detail"].startswith("corps de la requête : JSON illisible")  # the decoder's reason, as before
    assert lone_surrogate(b"\\ud800 pas du JSON") is None


async def _run_guard(chunks: list[bytes]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The guard around an app that reads the whole body, fed ``chunks`` as a server would: (what the app
    received, what was sent)."""
    received: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            event = await receive()
            received.append(event)
            if event["type"] == "http.disconnect" or not event.get("more_body", False):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"lu"})

    events = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1} for i, chunk in enumerate(chunks)
    ]

    async def receive() -> dict[str, Any]:
        return events.pop(0)

    async def send(event: dict[str, Any]) -> None:
        sent.append(event)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-type", b"application/json")]}
    await JsonTextGuard(app)(scope, receive, send)
    return received, sent


@pytest.mark.parametrize("cut", range(7))
def test_an_escape_cut_between_two_chunks_is_found(cut: int) -> None:
    body = b'{"name": "x\\ud800"}'
    at = body.index(b"\\u") + cut
    received, sent = asyncio.run(_run_guard([body[:at], body[at:]]))
    assert received[-1] == {"type": "http.disconnect"}  # the app never reads the whole body
    assert sent[0]["status"] == 422 and b"body.name" in sent[1]["body"] and len(sent) == 2


def test_an_escape_spread_over_one_byte_chunks_is_found_and_a_pair_goes_through() -> None:
    body = b'{"name": "x\\udbff"}'
    received, sent = asyncio.run(_run_guard([body[i : i + 1] for i in range(len(body))]))
    assert received[-1] == {"type": "http.disconnect"} and sent[0]["status"] == 422
    pair = b'{"name": "\\ud83d\\ude42"}'
    received, sent = asyncio.run(_run_guard([pair[i : i + 1] for i in range(len(pair))]))
    assert b"".join(event["body"] for event in received) == pair
    assert sent == [
        {"type": "http.response.start", "status": 200, "headers": []},
        {"type": "http.response.body", "body": b"lu"},
    ]


def test_the_address_and_forms_cannot_carry_a_surrogate(client: TestClient) -> None:
    """Starlette decodes the path, the query and a urlencoded form with replacement characters, and a multipart
    form's invalid UTF-8 as Latin-1: never a surrogate (the bytes of U+D800 in UTF-8 are ED A0 80)."""
    surrogates = range(0xD800, 0xE000)
    echoed = client.get("/echo/a%ED%A0%80b?q=%ED%A0%80%ud800").json()
    assert not any(code in surrogates for code in echoed["value"] + echoed["q"])
    form = client.post(
        "/form", content=b"name=%ED%A0%80", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert form.status_code == 200 and not any(code in surrogates for code in form.json()["name"])
    multipart = (
        b'--x\r\nContent-Disposition: form-data; name="name"\r\n\r\na\xed\xa0\x80b\r\n'
        b'--x\r\nContent-Disposition: form-data; name="file"; filename="f\xed\xa0\x80.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nbonjour\r\n--x--\r\n"
    )
    parts = client.post("/form", content=multipart, headers={"content-type": "multipart/form-data; boundary=x"})
    assert parts.status_code == 200, parts.text
    assert not any(code in surrogates for code in parts.json()["name"] + parts.json()["filename"])


def test_a_surrogate_reaching_the_database_is_a_422_and_nothing_is_written(client: TestClient) -> None:
    slug = f"t-{uuid.uuid4().hex[:10]}"
    problem = assert_problem(client.post("/collectivites", params={"slug": slug}), 422)
    assert problem["type"] == "urn:socle:problem:invalid-input" and "U+D800" in problem["detail"]
    with new_session() as session:
        assert session.execute(select(Tenant).where(Tenant.slug.startswith(slug))).scalars().all() == []
