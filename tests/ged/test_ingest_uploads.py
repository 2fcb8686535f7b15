"""Resumable uploads (tus-like): pieces at their offset, resume after an interruption, finish into a document,
and every bad input refused with a clear 4xx and nothing half-written."""

from __future__ import annotations

import hashlib
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from ged import ingest
from ged.models import UploadSession
from socle.db import transaction, utcnow

from conftest import Kit, assert_problem, make_pdf

OBJECTS = Path(os.environ["SOCLE_DATA_DIR"]) / "objects"
PIECE = "application/offset+octet-stream"


def object_exists(sha256: str) -> bool:
    return (OBJECTS / sha256[:2] / sha256[2:4] / sha256).exists()


def open_upload(client: Any, content: bytes, **extra: Any) -> dict[str, Any]:
    body = {
        "filename": "acte.pdf",
        "size": len(content),
        "media_type": "application/pdf",
        "metadata": {"title": "Arrêté reçu en morceaux", "document_type": "arrete", "tags": ["envoi"]},
        **extra,
    }
    response = client.post("/ged/uploads", json=body)
    assert response.status_code == 201, response.text
    assert response.headers["upload-offset"] == "0"
    assert response.headers["location"] == f"/ged/uploads/{response.json()['id']}"
    return dict(response.json())


def send(client: Any, upload_id: str, offset: int, data: bytes, content_type: str = PIECE) -> Any:
    headers = {"Upload-Offset": str(offset), "Content-Type": content_type, "Tus-Resumable": "1.0.0"}
    return client.patch(f"/ged/uploads/{upload_id}", content=data, headers=headers)


def offset_of(client: Any, upload_id: str) -> int:
    response = client.head(f"/ged/uploads/{upload_id}")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    return int(response.headers["upload-offset"])


def test_pieces_then_finish_make_the_document_with_its_digest(kit: Kit) -> None:
    client = kit["agent"]
    content = make_pdf("reçu en trois morceaux", pages=3)
    upload = open_upload(client, content, sha256=hashlib.sha256(content).hexdigest())
    cuts = [0, len(content) // 3, 2 * len(content) // 3, len(content)]
    for start, end in itertools.pairwise(cuts):
        response = send(client, upload["id"], start, content[start:end])
        assert response.status_code == 204, response.text
        assert response.headers["upload-offset"] == str(end)
        assert offset_of(client, upload["id"]) == end
    assert ingest.spool_path(upload["id"]).stat().st_size == len(content)

    finished = client.post(f"/ged/uploads/{upload['id']}/finish")
    assert finished.status_code == 201, finished.text
    document = finished.json()
    assert document["current"]["title"] == "Arrêté reçu en morceaux"
    assert document["current"]["tags"] == ["envoi"]
    assert document["current"]["content"]["sha256"] == hashlib.sha256(content).hexdigest()
    assert document["current"]["content"]["media_type"] == "application/pdf"
    assert client.get(f"/ged/documents/{document['id']}/content").content == content
    assert not ingest.spool_path(upload["id"]).exists()  # the spool is gone once the object is stored

    state = client.get(f"/ged/uploads/{upload['id']}").json()
    assert state["status"] == "complete" and state["document_id"] == document["id"]
    # Finishing twice (a client that lost the answer) gives the same document, not a second one.
    again = client.post(f"/ged/uploads/{upload['id']}/finish")
    assert again.status_code == 201 and again.json()["id"] == document["id"]
    assert client.get("/ged/documents").json()["total"] == 1


def test_wrong_offset_is_409_with_the_right_one_and_changes_nothing(kit: Kit) -> None:
    client = kit["agent"]
    content = make_pdf("décalage")
    upload = open_upload(client, content)
    assert send(client, upload["id"], 0, content[:100]).status_code == 204

    for wrong in (0, 50, 150):
        body = assert_problem(send(client, upload["id"], wrong, content[wrong : wrong + 10]), 409)
        assert body["offset"] == 100 and "100" in body["detail"]
    assert offset_of(client, upload["id"]) == 100
    assert ingest.spool_path(upload["id"]).read_bytes() == content[:100]

    assert_problem(send(client, upload["id"], 100, content[100:], content_type="application/pdf"), 415)
    missing = client.patch(f"/ged/uploads/{upload['id']}", content=b"x", headers={"Content-Type": PIECE})
    assert_problem(missing, 422)
    # « ² » (latin-1 byte B2) is a digit to str.isdigit(), not to int(); int() refuses 4,300 digits: were 500s.
    for wrong_offset in (b"\xb2", "1" * 5000, "٣".encode(), "-1", "+100", " 100"):
        headers = {"Upload-Offset": wrong_offset, "Content-Type": PIECE}
        refused = client.patch(f"/ged/uploads/{upload['id']}", content=b"x", headers=headers)
        assert "Upload-Offset" in assert_problem(refused, 422)["detail"]
    assert offset_of(client, upload["id"]) == 100


def test_piece_past_the_announced_size_is_refused_and_cut_back(kit: Kit) -> None:
    client = kit["agent"]
    content = make_pdf("taille annoncée")
    upload = open_upload(client, content)
    assert send(client, upload["id"], 0, content[:200]).status_code == 204
    assert_problem(send(client, upload["id"], 200, content[200:] + b"de trop"), 413)
    assert offset_of(client, upload["id"]) == 200
    assert ingest.spool_path(upload["id"]).read_bytes() == content[:200]
    # The client resumes correctly and finishes.
    assert send(client, upload["id"], 200, content[200:]).status_code == 204
    assert client.post(f"/ged/uploads/{upload['id']}/finish").status_code == 201


def test_bad_uploads_are_refused_before_any_byte(kit: Kit) -> None:
    client = kit["agent"]
    base = {"filename": "a.pdf", "size": 10, "metadata": {"title": "T", "document_type": "arrete"}}
    cases = [
        ({"size": 0}, 422, "vide"),
        ({"size": 5 * 1024 * 1024 + 1}, 413, "taille maximale"),
        ({"filename": "../../etc/passwd"}, 422, "séparateur"),
        ({"filename": "dossier\\acte.pdf"}, 422, "séparateur"),
        ({"filename": "acte\x07.pdf"}, 422, "contrôle"),
        ({"sha256": "abc"}, 422, "SHA-256"),
        ({"metadata": {"document_type": "arrete"}}, 422, "title"),
    ]
    with transaction() as session:
        before = session.query(UploadSession).count()
    for change, status, words in cases:
        body = assert_problem(client.post("/ged/uploads", json={**base, **change}), status)
        assert words in body["detail"], body
    with transaction() as session:
        assert session.query(UploadSession).count() == before


def test_metadata_accepted_at_opening_is_accepted_at_the_finish(kit: Kit) -> None:
    # The finish reads the metadata kept at the opening and computes what the opening did not: the DUA. A type
    # of a thousand years from a document dated 31 December 9999 ended past any date: the finish was a 500, and
    # the upload stayed open for ever.
    created = kit["admin"].post(
        "/ged/types",
        json={"code": "registre", "name": "Registre", "dua_months": 12000, "dua_event": "document_date"},
    )
    assert created.status_code == 201, created.text
    content = make_pdf("registre")
    metadata = {"title": "Registre", "type": "registre", "date": "9999-12-31", "tags": ["registre"]}
    upload = open_upload(kit["agent"], content, metadata=metadata)
    assert send(kit["agent"], upload["id"], 0, content).status_code == 204

    finished = kit["agent"].post(f"/ged/uploads/{upload['id']}/finish")

    assert finished.status_code == 201, finished.text
    assert finished.json()["dua_ends_on"] == "9999-12-31" and finished.json()["current"]["tags"] == ["registre"]
    assert kit["agent"].get(f"/ged/uploads/{upload['id']}").json()["status"] == "complete"


def test_incomplete_upload_cannot_finish(kit: Kit) -> None:
    client = kit["agent"]
    content = make_pdf("incomplet")
    upload = open_upload(client, content)
    send(client, upload["id"], 0, content[:10])
    body = assert_problem(client.post(f"/ged/uploads/{upload['id']}/finish"), 409)
    assert body["offset"] == 10
    assert client.get("/ged/documents").json()["total"] == 0


def test_lying_media_type_and_wrong_digest_are_refused_and_nothing_stored(kit: Kit) -> None:
    client = kit["agent"]
    text = b"ceci n'est pas un PDF, juste du texte\n" * 20
    upload = open_upload(client, text, media_type="application/pdf")
    send(client, upload["id"], 0, text)
    body = assert_problem(client.post(f"/ged/uploads/{upload['id']}/finish"), 415)
    assert "type déclaré" in body["detail"]
    assert not object_exists(hashlib.sha256(text).hexdigest())
    assert client.head(f"/ged/uploads/{upload['id']}").status_code == 410  # cancelled: start again
    assert not ingest.spool_path(upload["id"]).exists()

    pdf = make_pdf("png déguisé")
    liar = open_upload(client, pdf, media_type="image/png", filename="image.png")
    send(client, liar["id"], 0, pdf)
    assert_problem(client.post(f"/ged/uploads/{liar['id']}/finish"), 415)

    content = make_pdf("empreinte fausse")
    wrong = open_upload(client, content, sha256="0" * 64)
    send(client, wrong["id"], 0, content)
    assert_problem(client.post(f"/ged/uploads/{wrong['id']}/finish"), 422)
    assert not object_exists(hashlib.sha256(content).hexdigest())
    assert client.get("/ged/documents").json()["total"] == 0


def test_uploads_are_private_to_their_user_and_tenant(kit: Kit, make_kit: Any) -> None:
    content = make_pdf("privé")
    upload = open_upload(kit["agent"], content)
    other = make_kit(with_identity=False)
    for client in (kit["maire"], other["agent"]):
        assert_problem(client.get(f"/ged/uploads/{upload['id']}"), 404)
        assert_problem(send(client, upload["id"], 0, content), 404)
        assert_problem(client.post(f"/ged/uploads/{upload['id']}/finish"), 404)
    assert offset_of(kit["agent"], upload["id"]) == 0


def test_expired_uploads_are_cleaned_and_answer_410(kit: Kit) -> None:
    client = kit["agent"]
    content = make_pdf("abandonné")
    upload = open_upload(client, content)
    send(client, upload["id"], 0, content[:50])
    with transaction() as session:
        session.get(UploadSession, upload["id"]).expires_at = utcnow() - timedelta(minutes=1)
    with transaction() as session:
        assert ingest.purge_expired_uploads(session) >= 1
    assert not ingest.spool_path(upload["id"]).exists()
    assert client.head(f"/ged/uploads/{upload['id']}").status_code == 410
    assert_problem(send(client, upload["id"], 50, content[50:]), 410)

    cancelled = open_upload(client, content)
    assert client.delete(f"/ged/uploads/{cancelled['id']}").status_code == 204
    assert not ingest.spool_path(cancelled["id"]).exists()
    assert_problem(client.get(f"/ged/uploads/{cancelled['id']}"), 410)


# ---------------------------------------------------------------------------------------------------------
# A real server: a connection cut in the middle of a piece


@pytest.fixture
def server(app: Any) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert instance.started, "uvicorn n'a pas démarré"
    yield f"127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(10)


def test_interrupted_piece_keeps_what_arrived_and_the_client_resumes(kit: Kit, server: str) -> None:
    client = kit["agent"]
    content = make_pdf("coupure réseau", pages=40)
    assert len(content) > 3000
    upload = open_upload(client, content)
    host, port = server.split(":")
    sent = 3000
    request = (
        f"PATCH /ged/uploads/{upload['id']} HTTP/1.1\r\nHost: {server}\r\n"
        f"Authorization: Bearer {kit.tokens['agent']}\r\nContent-Type: {PIECE}\r\nUpload-Offset: 0\r\n"
        f"Tus-Resumable: 1.0.0\r\nContent-Length: {len(content)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request + content[:sent])
        time.sleep(0.5)  # let the server write what it got, then the connection drops
    deadline = time.monotonic() + 10
    while offset_of(client, upload["id"]) != sent and time.monotonic() < deadline:
        time.sleep(0.05)
    assert offset_of(client, upload["id"]) == sent
    assert send(client, upload["id"], sent, content[sent:]).status_code == 204
    finished = client.post(f"/ged/uploads/{upload['id']}/finish")
    assert finished.status_code == 201, finished.text
    assert finished.json()["current"]["content"]["sha256"] == hashlib.sha256(content).hexdigest()


def test_pieces_are_at_most_max_piece_size_and_a_large_file_goes_through(kit: Kit) -> None:
    client = kit["agent"]
    content = os.urandom(2 * 1024 * 1024 + 12345)
    upload = open_upload(client, content, media_type="application/octet-stream", filename="plan.bin")
    piece = upload["max_piece_size"]
    assert piece == 1024 * 1024
    assert_problem(send(client, upload["id"], 0, content[: piece + 1]), 413)
    assert offset_of(client, upload["id"]) == 0
    for start in range(0, len(content), piece):
        assert send(client, upload["id"], start, content[start : start + piece]).status_code == 204
    document = client.post(f"/ged/uploads/{upload['id']}/finish").json()
    assert document["current"]["content"]["size"] == len(content)
    assert document["current"]["content"]["media_type"] == "application/octet-stream"
    assert client.get(f"/ged/documents/{document['id']}/content").content == content


def test_two_pieces_of_one_upload_at_once_the_second_waits_its_turn(kit: Kit) -> None:
    content = make_pdf("concurrence")
    upload = open_upload(kit["agent"], content)
    with transaction() as session:
        principal = ingest.principal_for(session, kit.slug, "agent")
    first, second = ingest.PieceWriter(upload["id"], 0), ingest.PieceWriter(upload["id"], 0)
    with transaction() as session:
        first.begin(session, principal)
    with transaction() as session, pytest.raises(ingest.UploadBusy):
        second.begin(session, principal)
    first.write(content[:10])
    with transaction() as session:
        assert first.end(session, principal).received == 10
    # The lock is gone, but the second piece's offset is now stale: the usual 409.
    assert_problem(send(kit["agent"], upload["id"], 0, content[:10]), 409)
    assert offset_of(kit["agent"], upload["id"]) == 10


@pytest.mark.parametrize(
    ("head", "declared", "filename", "kept"),
    [
        (b"%PDF-1.7\n", "application/pdf", "a.pdf", "application/pdf"),
        (b"%PDF-1.7\n", None, "a.bin", "application/pdf"),
        (
            b"PK\x03\x04",
            None,
            "rapport.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (b"PK\x03\x04", "application/vnd.oasis.opendocument.text", "a.odt", "application/vnd.oasis.opendocument.text"),
        (b"Bonjour", None, "note.txt", "text/plain"),
        (b"Bonjour", None, "faux.pdf", "application/octet-stream"),  # a name is no declaration: never a PDF
        (b"Bonjour", "text/plain", "note.txt", "text/plain"),
    ],
)
def test_media_type_kept(head: bytes, declared: str | None, filename: str, kept: str) -> None:
    assert ingest.checked_media_type(head, declared, filename) == kept


@pytest.mark.parametrize(
    ("head", "declared"),
    [
        (b"Bonjour", "application/pdf"),
        (b"%PDF-1.7\n", "image/png"),
        (b"\x89PNG\r\n\x1a\n", "image/jpeg"),
        (b"\xff\xd8\xff\xe0", "text/plain"),
    ],
)
def test_lying_media_type_refused(head: bytes, declared: str) -> None:
    with pytest.raises(ingest.UnsupportedMediaType):
        ingest.checked_media_type(head, declared, "fichier")
