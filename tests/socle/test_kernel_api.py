"""What every service's HTTP API shares: authentication, tenant isolation, problem+json errors, health, OpenAPI."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from parapheur_kit import Standard

from socle.auth import get_tenant, get_user, revoke_tokens
from socle.db import transaction
from socle.errors import Conflict
from socle.settings import get_settings
from socle.web import create_service_app

from conftest import Kit, assert_problem, make_pdf, run_jobs, upload_document

SERVICES = ("ged", "parapheur", "archive", "interop")


@pytest.fixture
def anonymous(app: Any) -> Iterator[TestClient]:
    client = TestClient(app, raise_server_exceptions=False)
    yield client
    client.close()


# ---------------------------------------------------------------------------------------------------------
# Authentication


@pytest.mark.parametrize("path", ["/ged/documents", "/parapheur/folders", "/archive/transfers", "/interop/connectors"])
def test_no_token_is_401_with_a_bearer_challenge(anonymous: TestClient, path: str) -> None:
    response = anonymous.get(path)
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert body["type"] == "urn:socle:problem:unauthenticated"


@pytest.mark.parametrize(
    "authorization", ["Bearer socle_inconnu", "Bearer ", "Basic YWdlbnQ6c2VjcmV0", "socle_sans_schema", "Bearer"]
)
def test_a_wrong_token_is_401(anonymous: TestClient, kit: Kit, authorization: str) -> None:
    response = anonymous.get("/ged/documents", headers={"Authorization": authorization})
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_valid_token_in_another_scheme_is_refused(anonymous: TestClient, kit: Kit) -> None:
    token = kit.tokens["agent"]
    assert_problem(anonymous.get("/ged/documents", headers={"Authorization": f"Basic {token}"}), 401)
    assert anonymous.get("/ged/documents", headers={"Authorization": f"bearer {token}"}).status_code == 200


def test_a_revoked_token_or_an_inactive_user_is_401(kit: Kit) -> None:
    assert kit["agent"].get("/ged/documents").status_code == 200
    with transaction() as session:
        assert revoke_tokens(session, get_user(session, get_tenant(session, kit.slug), "agent")) == 1
    assert_problem(kit["agent"].get("/ged/documents"), 401)
    assert kit["archiviste"].get("/ged/documents").status_code == 200  # only that user's tokens

    with transaction() as session:
        get_user(session, get_tenant(session, kit.slug), "archiviste").active = False
    assert_problem(kit["archiviste"].get("/ged/documents"), 401)


# ---------------------------------------------------------------------------------------------------------
# Tenant isolation: another tenant's objects do not exist


def test_another_tenants_objects_are_404(make_kit: Callable[..., Kit]) -> None:
    mine, theirs = make_kit(with_identity=False), make_kit(with_identity=False)
    document = upload_document(theirs["agent"], make_pdf("Chez les voisins"))
    folder = theirs["agent"].post(
        "/parapheur/folders",
        json={"title": "Voisins", "ged_document_id": document["id"], "subtype_id": Standard(theirs).sign_only},
    )
    assert folder.status_code == 202, folder.text
    transfer = theirs["archiviste"].post(
        "/archive/transfers", json={"document_ids": [document["id"]], "archival_agency": "AD037"}
    )
    assert transfer.status_code == 202, transfer.text
    connector = theirs["admin"].post("/interop/connectors", json={"name": "sae", "kind": "depot", "config": {}})
    assert connector.status_code == 201, connector.text
    run_jobs()
    folder_id, transfer_id = folder.json()["id"], transfer.json()["id"]

    refused = [
        mine["agent"].get(f"/ged/documents/{document['id']}"),
        mine["agent"].get(f"/ged/documents/{document['id']}/content"),
        mine["agent"].get(f"/ged/documents/{document['id']}/versions"),
        mine["agent"].get(f"/ged/documents/{document['id']}/versions/1/content"),
        mine["agent"].patch(f"/ged/documents/{document['id']}", json={"title": "Volé"}),
        mine["agent"].get(f"/parapheur/folders/{folder_id}"),
        mine["agent"].get(f"/parapheur/folders/{folder_id}/document"),
        mine["agent"].post(f"/parapheur/folders/{folder_id}/visa", json={}),
        mine["archiviste"].get(f"/archive/transfers/{transfer_id}"),
        mine["archiviste"].get(f"/archive/transfers/{transfer_id}/sip"),
        mine["admin"].get("/interop/connectors/sae"),
        mine["admin"].post("/interop/connectors/sae/test"),
    ]
    for response in refused:
        assert_problem(response, 404)
    # The same answer as for an id that exists nowhere: nothing tells the other tenant's ids apart.
    unknown = mine["agent"].get(f"/ged/documents/{uuid.uuid4()}")
    assert assert_problem(unknown, 404)["title"] == refused[0].json()["title"]

    assert mine["agent"].get("/ged/documents").json()["total"] == 0
    assert mine["agent"].get("/parapheur/folders").json() == []
    assert mine["archiviste"].get("/archive/transfers").json() == []
    assert mine["admin"].get("/interop/connectors").json() == []
    assert theirs["agent"].get(f"/ged/documents/{document['id']}").status_code == 200
    assert theirs["agent"].get(f"/parapheur/folders/{folder_id}").status_code == 200


def test_a_message_cannot_reach_another_tenants_document(make_kit: Callable[..., Kit]) -> None:
    mine, theirs = make_kit(with_identity=False), make_kit(with_identity=False)
    document = upload_document(theirs["agent"], make_pdf("Chez les voisins"))
    folder = mine["agent"].post(
        "/parapheur/folders",
        json={"title": "Emprunt", "ged_document_id": document["id"], "subtype_id": Standard(mine).sign_only},
    )
    assert folder.status_code == 202, folder.text
    run_jobs()
    answered = mine["agent"].get(f"/parapheur/folders/{folder.json()['id']}").json()
    assert answered["status"] == "error"
    assert mine["agent"].get(f"/parapheur/folders/{folder.json()['id']}/document").status_code == 404


# ---------------------------------------------------------------------------------------------------------
# Errors are problem+json


@pytest.mark.parametrize("path", ["/nulle-part", "/ged/nulle-part", "/parapheur/folders/x/y/z", "/archive"])
def test_an_unknown_route_is_a_404_problem(kit: Kit, path: str) -> None:
    assert_problem(kit["agent"].get(path), 404)


def test_a_wrong_method_is_a_405_problem(kit: Kit) -> None:
    assert_problem(kit["agent"].delete("/ged/documents"), 405)


def test_a_validation_error_is_a_422_problem_listing_the_fields(kit: Kit) -> None:
    response = kit["admin"].post("/interop/connectors", json={"name": "Pas Bon !", "kind": "ftp", "config": {}})
    body = assert_problem(response, 422)
    fields = {error["field"] for error in body["errors"]}
    assert {"body.name", "body.kind"} <= fields
    assert all(error["message"] for error in body["errors"])
    assert "body.name" in body["detail"]
    # In French, as every other detail: no « Field required », « String should… », « Input should… ».
    assert not re.search(r"Field required|should|Value error", body["detail"]), body["detail"]

    query = assert_problem(kit["agent"].get("/ged/documents", params={"limit": 0}), 422)
    assert [error["field"] for error in query["errors"]] == ["query.limit"]

    broken = kit["admin"].post(
        "/interop/connectors", content=b"{pas du json", headers={"content-type": "application/json"}
    )
    assert assert_problem(broken, 422)["errors"]

    missing = kit["agent"].post("/ged/documents", data={"title": "Sans fichier", "document_type": "deliberation"})
    assert "body.file" in {error["field"] for error in assert_problem(missing, 422)["errors"]}


def _objects() -> list[Path]:
    root = get_settings().effective_storage_path
    return sorted(path for path in root.rglob("*") if path.is_file() and ".tmp" not in path.parts)


def _uploads_in_progress() -> list[Path]:
    return list((get_settings().effective_storage_path / ".tmp").glob(".upload-*"))


@pytest.mark.parametrize("extra", [1, 6 * 1024 * 1024], ids=["just-over-the-limit", "announced-too-large"])
def test_an_oversized_upload_is_a_413_problem_and_stores_nothing(kit: Kit, extra: int) -> None:
    limit = get_settings().max_upload_bytes
    assert limit == 5 * 1024 * 1024
    content = b"%PDF-1.7\n" + uuid.uuid4().bytes + b"\0" * (limit + extra - 25)
    before = _objects()

    response = kit["agent"].post(
        "/ged/documents",
        files={"file": ("gros.pdf", content, "application/pdf")},
        data={"title": "Trop gros", "document_type": "deliberation"},
    )
    body = assert_problem(response, 413)
    assert body["max_size"] == limit
    folder = kit["agent"].post(
        "/parapheur/folders/upload",
        files={"files": ("gros.pdf", content, "application/pdf")},
        data={"title": "Trop gros", "subtype_id": Standard(kit).sign_only},
    )
    assert_problem(folder, 413)

    assert _objects() == before
    assert _uploads_in_progress() == []
    assert kit["agent"].get("/ged/documents").json()["total"] == 0
    assert kit["agent"].get("/parapheur/folders").json() == []


def test_an_upload_at_the_limit_is_accepted(kit: Kit) -> None:
    limit = get_settings().max_upload_bytes
    pdf = make_pdf("À la limite")
    content = pdf + b"\n%" + b"0" * (limit - len(pdf) - 2)  # a comment after %%EOF pads the PDF to the limit
    assert len(content) == limit
    document = upload_document(kit["agent"], content)
    assert kit["agent"].get(f"/ged/documents/{document['id']}/content").content == content


def _failing_app() -> Any:
    router = APIRouter()

    @router.get("/panne")
    def broken() -> None:
        raise RuntimeError("détail interne à ne jamais montrer : /etc/secret")

    @router.get("/conflit")
    def conflict() -> None:
        raise Conflict("déjà fait", current="v2")

    return create_service_app("essai", "essai", "Une application d'essai", [router])


def test_an_unexpected_error_is_a_500_problem_without_details() -> None:
    with TestClient(_failing_app(), raise_server_exceptions=False) as client:
        response = client.get("/panne")
        body = assert_problem(response, 500)
        assert "secret" not in response.text and "RuntimeError" not in response.text
        assert body["type"] == "urn:socle:problem:internal"

        conflict = assert_problem(client.get("/conflit"), 409)
        assert conflict["current"] == "v2" and conflict["detail"] == "déjà fait"
        assert conflict["type"] == "urn:socle:problem:conflict"


# ---------------------------------------------------------------------------------------------------------
# Health, readiness, OpenAPI


@pytest.mark.parametrize("prefix", ["", *(f"/{service}" for service in SERVICES)])
def test_health_and_readiness(anonymous: TestClient, prefix: str) -> None:
    health = anonymous.get(f"{prefix}/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    ready = anonymous.get(f"{prefix}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "storage": "ok", "queue": "ok"}}


def test_readiness_names_what_is_down(anonymous: TestClient, use_env: Callable[..., None], tmp_path: Path) -> None:
    blocker = tmp_path / "un-fichier"
    blocker.write_bytes(b"")
    use_env(SOCLE_STORAGE_PATH=str(blocker))
    response = anonymous.get("/ged/readyz")
    body = assert_problem(response, 503)
    assert body["checks"] == {"database": "ok", "storage": "indisponible", "queue": "ok"}
    assert "storage" in body["detail"]
    assert anonymous.get("/ged/healthz").status_code == 200  # alive, though not ready


@pytest.mark.parametrize(
    ("service", "paths"),
    [
        ("ged", {"/documents", "/documents/{document_id}", "/documents/{document_id}/content"}),
        ("parapheur", {"/folders", "/folders/{folder_id}", "/folders/{folder_id}/sign"}),
        ("archive", {"/transfers", "/transfers/{transfer_id}", "/transfers/{transfer_id}/sip"}),
        ("interop", {"/connectors", "/connectors/{name}", "/deliveries"}),
    ],
)
def test_each_service_serves_its_openapi_document(anonymous: TestClient, service: str, paths: set[str]) -> None:
    response = anonymous.get(f"/{service}/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert paths | {"/healthz", "/readyz"} <= set(document["paths"])
    other = {"ged": "/folders", "parapheur": "/documents", "archive": "/connectors", "interop": "/transfers"}[service]
    assert other not in document["paths"]  # each service documents only itself


# ---------------------------------------------------------------------------------------------------------
# Roles


def test_actions_need_their_role(kit: Kit) -> None:
    connector = {"name": "sae", "kind": "depot", "config": {"path": "sae"}}
    for user in ("agent", "archiviste"):
        body = assert_problem(kit[user].post("/interop/connectors", json=connector), 403)
        assert body["type"] == "urn:socle:problem:forbidden" and "admin" in body["detail"]
    assert kit["admin"].get("/interop/connectors").json() == []  # nothing was created

    assert kit["admin"].post("/interop/connectors", json=connector).status_code == 201
    assert_problem(kit["agent"].post("/interop/connectors/sae/test"), 403)
    assert kit["admin"].post("/interop/connectors/sae/test").json()["ok"] is True

    transfer = {"document_ids": [str(uuid.uuid4())], "archival_agency": "AD037"}
    assert_problem(kit["agent"].post("/archive/transfers", json=transfer), 403)
    assert_problem(kit["agent"].get("/archive/transfers"), 403)  # the archivist's work, keys of packages included
    assert kit["archiviste"].get("/archive/transfers").status_code == 200
    assert kit["admin"].post("/archive/transfers", json=transfer).status_code == 202  # admin holds every role
