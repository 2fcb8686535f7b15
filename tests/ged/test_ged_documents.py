"""GED API: documents, their metadata and versions, tenant isolation and refused uploads."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from conftest import Kit, assert_problem, make_pdf, upload_document

OBJECTS = Path(os.environ["SOCLE_DATA_DIR"]) / "objects"
MAX_UPLOAD = 5 * 1024 * 1024
BINARY = "application/octet-stream"


def stored_objects() -> set[Path]:
    """Every complete object in the local store (the .tmp spool folder excluded)."""
    if not OBJECTS.exists():
        return set()
    return {path for path in OBJECTS.rglob("*") if path.is_file() and ".tmp" not in path.relative_to(OBJECTS).parts}


def spool_leftovers() -> list[Path]:
    spool = OBJECTS / ".tmp"
    return list(spool.iterdir()) if spool.exists() else []


def post_file(kit: Kit, content: bytes, *, filename: str = "acte.pdf", media_type: str = "application/pdf", **data):
    form = {"title": "Arrêté", "document_type": "arrete", **data}
    return kit["agent"].post("/ged/documents", files={"file": (filename, content, media_type)}, data=form)


def raw_multipart(client: Any, url: str, filename: str, content: bytes, **fields: str) -> Any:
    """A multipart body written by hand: the file name goes as is (httpx would percent-escape control characters)."""
    boundary = "limite-socle-test"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'.encode()
        + b"Content-Type: application/pdf\r\n\r\n"
        + content
        + b"\r\n"
    )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return client.post(url, content=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})


# --------------------------------------------------------------------------------------------------------
# Upload and read


def test_upload_returns_metadata_and_digest(kit: Kit, pdf_bytes: bytes) -> None:
    document = upload_document(
        kit["agent"],
        pdf_bytes,
        title="Délibération n° 42 : budget",
        document_type="deliberation",
        date="2026-03-15",
        tags=["budget", "finances", "budget"],
    )
    current = document["current"]
    assert document["current_version"] == 1
    assert document["created_by"] == "agent"
    assert current["number"] == 1
    assert current["title"] == "Délibération n° 42 : budget"
    assert current["document_type"] == "deliberation"
    assert current["date"] == "2026-03-15"
    assert current["tags"] == ["budget", "finances"]  # duplicates dropped, order kept
    assert current["author"] == "agent"
    assert current["origin"] is None
    content = current["content"]
    assert content["sha256"] == hashlib.sha256(pdf_bytes).hexdigest()
    assert content["object_key"] == content["sha256"]
    assert content["size"] == len(pdf_bytes)
    assert content["media_type"] == "application/pdf"
    assert content["filename"] == "acte.pdf"

    fetched = kit["agent"].get(f"/ged/documents/{document['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == document


def test_download_gives_identical_bytes_with_etag_and_utf8_filename(kit: Kit, pdf_bytes: bytes) -> None:
    name = "Délibération été n°3.pdf"
    document = upload_document(kit["agent"], pdf_bytes, filename=name)
    assert document["current"]["content"]["filename"] == name

    response = kit["agent"].get(f"/ged/documents/{document['id']}/content")
    assert response.status_code == 200
    assert response.content == pdf_bytes
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["etag"] == f'"{hashlib.sha256(pdf_bytes).hexdigest()}"'
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    encoded = disposition.split("filename*=UTF-8''", 1)[1]
    assert unquote(encoded) == name
    # The plain filename= fallback stays ASCII for old clients.
    assert disposition.split('filename="', 1)[1].split('"', 1)[0].isascii()


def test_generic_or_missing_declarations_are_sniffed(kit: Kit) -> None:
    # A real PDF sent with a generic label, or with none at all, is recognised by its bytes.
    response = post_file(kit, make_pdf("vrai"), filename="vrai.bin", media_type="application/octet-stream")
    assert response.status_code == 201, response.text
    assert response.json()["current"]["content"]["media_type"] == "application/pdf"
    response = kit["agent"].post(
        "/ged/documents",
        files={"file": ("scan", make_pdf("sans type"))},
        data={"title": "Scan", "document_type": "scan"},
    )  # no extension: the client sends no Content-Type for the part
    assert response.status_code == 201, response.text
    assert response.json()["current"]["content"]["media_type"] == "application/pdf"
    # Bytes of no known signature keep a sane declared type.
    response = post_file(kit, b"Bonjour\n", filename="note.txt", media_type="text/plain")
    assert response.status_code == 201, response.text
    assert response.json()["current"]["content"]["media_type"] == "text/plain"


LIARS = [
    pytest.param(b"ceci n'est pas un PDF\n" * 10, "faux.pdf", "application/pdf", id="texte-dit-pdf"),
    pytest.param(None, "image.png", "image/png", id="pdf-dit-png"),  # None: a real PDF
    pytest.param(b"du texte, pas une photo\n", "photo.jpg", "image/jpeg", id="texte-dit-jpeg"),
]


@pytest.mark.parametrize(("content", "filename", "declared"), LIARS)
def test_a_lying_media_type_is_refused_and_nothing_stored(
    kit: Kit, content: bytes | None, filename: str, declared: str
) -> None:
    content = content if content is not None else make_pdf("png déguisé")
    before = stored_objects()
    body = assert_problem(post_file(kit, content, filename=filename, media_type=declared), 415)
    assert f"type déclaré « {declared} »" in body["detail"]
    assert stored_objects() == before and spool_leftovers() == []
    assert kit["agent"].get("/ged/documents").json()["total"] == 0

    doc_id = upload_document(kit["agent"], make_pdf("original"))["id"]
    before = stored_objects()
    version = kit["agent"].post(f"/ged/documents/{doc_id}/versions", files={"file": (filename, content, declared)})
    assert_problem(version, 415)
    assert stored_objects() == before and spool_leftovers() == []
    assert kit["agent"].get(f"/ged/documents/{doc_id}").json()["current_version"] == 1


@pytest.mark.parametrize(
    ("filename", "words"),
    [
        ("../../etc/passwd.pdf", "séparateur de chemin"),
        ("dossier\\acte.pdf", "séparateur de chemin"),
        ("acte\x07.pdf", "caractères de contrôle"),
        ("..", "nom de fichier invalide"),
    ],
)
def test_a_filename_that_could_be_a_path_is_refused_not_cleaned(kit: Kit, filename: str, words: str) -> None:
    client = kit["agent"]
    before = stored_objects()
    form = {"title": "Arrêté", "document_type": "arrete"}
    body = assert_problem(raw_multipart(client, "/ged/documents", filename, make_pdf(f"nom {filename!r}"), **form), 422)
    assert words in body["detail"]
    assert stored_objects() == before and spool_leftovers() == []
    assert client.get("/ged/documents").json()["total"] == 0

    doc_id = upload_document(client, make_pdf("original"))["id"]
    before = stored_objects()
    version = raw_multipart(client, f"/ged/documents/{doc_id}/versions", filename, make_pdf(f"v2 {filename!r}"))
    assert words in assert_problem(version, 422)["detail"]
    assert stored_objects() == before
    assert client.get(f"/ged/documents/{doc_id}").json()["current_version"] == 1


def test_list_is_tenant_scoped_filtered_and_paginated(make_kit: Callable[..., Kit]) -> None:
    kit, other = make_kit(with_identity=False), make_kit(with_identity=False)
    arretes = {upload_document(kit["agent"], make_pdf(f"arrêté {i}"), document_type="arrete")["id"] for i in range(3)}
    deliberation = upload_document(kit["agent"], make_pdf("délibération"), document_type="deliberation")["id"]
    foreign = upload_document(other["agent"], make_pdf("ailleurs"), document_type="arrete")["id"]

    everything = kit["agent"].get("/ged/documents").json()
    assert everything["total"] == 4
    assert {item["id"] for item in everything["items"]} == arretes | {deliberation}

    first = kit["agent"].get("/ged/documents", params={"document_type": "arrete", "limit": 2}).json()
    second = kit["agent"].get("/ged/documents", params={"document_type": "arrete", "limit": 2, "offset": 2}).json()
    assert first["total"] == second["total"] == 3
    assert len(first["items"]) == 2 and len(second["items"]) == 1
    pages = [item["id"] for item in first["items"] + second["items"]]
    assert len(set(pages)) == 3 and set(pages) == arretes
    assert all(item["current"]["document_type"] == "arrete" for item in first["items"] + second["items"])

    theirs = other["agent"].get("/ged/documents").json()
    assert [item["id"] for item in theirs["items"]] == [foreign] and theirs["total"] == 1

    assert_problem(kit["agent"].get("/ged/documents", params={"limit": 0}), 422)


def test_list_filter_follows_the_current_version(kit: Kit, pdf_bytes: bytes) -> None:
    document = upload_document(kit["agent"], pdf_bytes, document_type="brouillon")
    kit["agent"].patch(f"/ged/documents/{document['id']}", json={"document_type": "arrete"})
    assert kit["agent"].get("/ged/documents", params={"document_type": "brouillon"}).json()["total"] == 0
    listed = kit["agent"].get("/ged/documents", params={"document_type": "arrete"}).json()
    assert [item["id"] for item in listed["items"]] == [document["id"]]


# --------------------------------------------------------------------------------------------------------
# Versions


def test_metadata_patch_then_content_version_keep_every_version_readable(kit: Kit, pdf_bytes: bytes) -> None:
    client = kit["agent"]
    document = upload_document(client, pdf_bytes, title="Titre initial", tags=["a"])
    doc_id, sha_v1 = document["id"], document["current"]["content"]["sha256"]

    patched = client.patch(
        f"/ged/documents/{doc_id}",
        json={"title": "Titre corrigé", "date": "2026-12-01", "tags": ["b", "c"], "comment": "coquille"},
    )
    assert patched.status_code == 200, patched.text
    v2 = patched.json()
    assert v2["current_version"] == 2
    assert v2["current"]["title"] == "Titre corrigé"
    assert v2["current"]["date"] == "2026-12-01"
    assert v2["current"]["tags"] == ["b", "c"]
    assert v2["current"]["document_type"] == document["current"]["document_type"]  # unchanged field kept
    assert v2["current"]["comment"] == "coquille"
    assert v2["current"]["content"] == document["current"]["content"]  # same bytes, same object

    v1 = client.get(f"/ged/documents/{doc_id}/versions/1").json()
    assert v1["title"] == "Titre initial" and v1["tags"] == ["a"] and v1["date"] == "2026-11-02"
    assert client.get(f"/ged/documents/{doc_id}/versions/1/content").content == pdf_bytes

    new_content = make_pdf("Version corrigée", pages=2)
    uploaded = client.post(
        f"/ged/documents/{doc_id}/versions", files={"file": ("acte-v3.pdf", new_content, "application/pdf")}
    )
    assert uploaded.status_code == 201, uploaded.text
    v3 = uploaded.json()
    assert v3["current_version"] == 3
    assert v3["current"]["title"] == "Titre corrigé"  # metadata carried over from v2
    assert v3["current"]["content"]["sha256"] == hashlib.sha256(new_content).hexdigest()
    assert v3["current"]["content"]["filename"] == "acte-v3.pdf"
    assert client.get(f"/ged/documents/{doc_id}/content").content == new_content
    assert client.get(f"/ged/documents/{doc_id}/versions/2/content").content == pdf_bytes

    versions = client.get(f"/ged/documents/{doc_id}/versions").json()
    assert [version["number"] for version in versions] == [1, 2, 3]
    assert [version["content"]["sha256"] for version in versions] == [
        sha_v1,
        sha_v1,
        v3["current"]["content"]["sha256"],
    ]
    assert_problem(client.get(f"/ged/documents/{doc_id}/versions/4"), 404)
    assert_problem(client.get(f"/ged/documents/{doc_id}/versions/4/content"), 404)


def test_patch_refusals(kit: Kit, pdf_bytes: bytes) -> None:
    doc_id = upload_document(kit["agent"], pdf_bytes)["id"]
    assert_problem(kit["agent"].patch(f"/ged/documents/{doc_id}", json={}), 422)
    assert_problem(kit["agent"].patch(f"/ged/documents/{doc_id}", json={"comment": "rien"}), 422)
    assert_problem(kit["agent"].patch(f"/ged/documents/{doc_id}", json={"title": ""}), 422)
    assert_problem(kit["agent"].patch(f"/ged/documents/{doc_id}", json={"date": "2026-02-30"}), 422)
    assert_problem(kit["agent"].patch(f"/ged/documents/{doc_id}", json={"tags": ["  "]}), 422)
    assert_problem(kit["agent"].patch(f"/ged/documents/{doc_id}", json={"title": None}), 422)
    assert_problem(kit["agent"].patch(f"/ged/documents/{doc_id}", json={"document_type": None}), 422)
    assert_problem(kit["agent"].patch(f"/ged/documents/{doc_id}", json={"tags": None}), 422)
    assert kit["agent"].get(f"/ged/documents/{doc_id}").json()["current_version"] == 1
    # A null date is allowed: it clears the date.
    cleared = kit["agent"].patch(f"/ged/documents/{doc_id}", json={"date": None})
    assert cleared.status_code == 200 and cleared.json()["current"]["date"] is None
    assert cleared.json()["current_version"] == 2


# --------------------------------------------------------------------------------------------------------
# Refused uploads store nothing


def test_empty_upload_is_refused_and_stores_nothing(kit: Kit) -> None:
    before = stored_objects()
    body = assert_problem(post_file(kit, b""), 422)
    assert "vide" in body["detail"]
    assert stored_objects() == before
    assert spool_leftovers() == []
    assert kit["agent"].get("/ged/documents").json()["total"] == 0


def test_empty_content_version_is_refused(kit: Kit, pdf_bytes: bytes) -> None:
    doc_id = upload_document(kit["agent"], pdf_bytes)["id"]
    before = stored_objects()
    response = kit["agent"].post(f"/ged/documents/{doc_id}/versions", files={"file": ("v.pdf", b"", "application/pdf")})
    assert_problem(response, 422)
    assert stored_objects() == before
    assert kit["agent"].get(f"/ged/documents/{doc_id}").json()["current_version"] == 1


def test_invalid_form_fields_are_refused(kit: Kit, pdf_bytes: bytes) -> None:
    before = stored_objects()
    assert_problem(post_file(kit, pdf_bytes, date="2026-13-45"), 422)
    assert_problem(post_file(kit, pdf_bytes, date="hier"), 422)
    assert_problem(post_file(kit, pdf_bytes, title=""), 422)
    assert_problem(post_file(kit, pdf_bytes, tags=[" "]), 422)
    missing_title = kit["agent"].post(
        "/ged/documents",
        files={"file": ("acte.pdf", pdf_bytes, "application/pdf")},
        data={"document_type": "arrete"},
    )
    body = assert_problem(missing_title, 422)
    assert "title" in body["detail"]
    no_file = kit["agent"].post("/ged/documents", data={"title": "t", "document_type": "arrete"})
    assert_problem(no_file, 422)
    assert stored_objects() == before
    assert kit["agent"].get("/ged/documents").json()["total"] == 0


def test_oversized_upload_is_refused_and_stores_nothing(kit: Kit) -> None:
    before = stored_objects()
    # Just over the limit: the announced length passes the guard, the store stops while spooling.
    body = assert_problem(post_file(kit, os.urandom(MAX_UPLOAD + 1), filename="gros.bin", media_type=BINARY), 413)
    assert str(MAX_UPLOAD) in body["detail"]
    # Far over: refused from its Content-Length before being read.
    assert_problem(post_file(kit, os.urandom(MAX_UPLOAD + 512 * 1024), filename="enorme.bin", media_type=BINARY), 413)
    assert stored_objects() == before
    assert spool_leftovers() == []
    assert kit["agent"].get("/ged/documents").json()["total"] == 0
    # Exactly at the limit is accepted.
    assert post_file(kit, os.urandom(MAX_UPLOAD), filename="limite.bin", media_type=BINARY).status_code == 201


# --------------------------------------------------------------------------------------------------------
# Unknown and foreign documents


def test_unknown_document_is_404(kit: Kit) -> None:
    unknown = "00000000-0000-0000-0000-000000000000"
    assert_problem(kit["agent"].get(f"/ged/documents/{unknown}"), 404)
    assert_problem(kit["agent"].get(f"/ged/documents/{unknown}/content"), 404)
    assert_problem(kit["agent"].get(f"/ged/documents/{unknown}/versions"), 404)
    assert_problem(kit["agent"].patch(f"/ged/documents/{unknown}", json={"title": "x"}), 404)


def test_other_tenants_document_is_404_everywhere(make_kit: Callable[..., Kit], pdf_bytes: bytes) -> None:
    owner, intruder = make_kit(with_identity=False), make_kit(with_identity=False)
    document = upload_document(owner["agent"], pdf_bytes, title="Secret de la commune A")
    doc_id = document["id"]
    client = intruder["admin"]  # even an administrator of another collectivité

    responses = [
        client.get(f"/ged/documents/{doc_id}"),
        client.get(f"/ged/documents/{doc_id}/content"),
        client.get(f"/ged/documents/{doc_id}/versions"),
        client.get(f"/ged/documents/{doc_id}/versions/1"),
        client.get(f"/ged/documents/{doc_id}/versions/1/content"),
        client.patch(f"/ged/documents/{doc_id}", json={"title": "Piraté"}),
    ]
    for response in responses:
        body = assert_problem(response, 404)
        assert "Secret" not in response.text and body["detail"]

    before = stored_objects()
    new_content = make_pdf("intrus")
    upload = client.post(f"/ged/documents/{doc_id}/versions", files={"file": ("x.pdf", new_content, "application/pdf")})
    assert_problem(upload, 404)
    assert stored_objects() == before  # refused before anything is stored

    unchanged = owner["agent"].get(f"/ged/documents/{doc_id}").json()
    assert unchanged["current_version"] == 1 and unchanged["current"]["title"] == "Secret de la commune A"


def test_unauthenticated_request_is_401(app, pdf_bytes: bytes) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as anonymous:
        assert_problem(anonymous.get("/ged/documents"), 401)
        response = anonymous.post(
            "/ged/documents",
            files={"file": ("a.pdf", pdf_bytes, "application/pdf")},
            data={"title": "t", "document_type": "x"},
        )
        assert_problem(response, 401)
