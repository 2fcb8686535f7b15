"""Oversized bodies are refused as they arrive, announced or not, before anything is stored."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from conftest import Kit, assert_problem

LIMIT = int(os.environ["SOCLE_MAX_UPLOAD_BYTES"])


def _objects() -> set[Path]:
    root = Path(os.environ["SOCLE_DATA_DIR"]) / "objects"
    return {path for path in root.rglob("*") if path.is_file() and ".tmp" not in path.parts}


def _chunks(total: int, boundary: str) -> Iterator[bytes]:
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="gros.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    sent = 0
    while sent < total:
        yield b"%" * 65536
        sent += 65536
    yield f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nT\r\n--{boundary}--\r\n'.encode()


def test_chunked_upload_without_length_is_cut_at_the_limit(kit: Kit) -> None:
    before = _objects()
    boundary = "socle-limite"
    response = kit["agent"].post(
        "/ged/documents",
        content=_chunks(LIMIT + 256 * 1024, boundary),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert "content-length" not in {key.lower() for key in response.request.headers}
    # Cut by the body guard as bytes arrived ("la requête"), not later by the store once spooled ("le fichier").
    assert assert_problem(response, 413)["detail"].startswith("la requête dépasse")
    assert _objects() == before


def test_json_bodies_are_capped_at_one_mebibyte(kit: Kit) -> None:
    response = kit["agent"].post(
        "/parapheur/folders",
        content=b'{"title": "' + b"x" * (1024 * 1024) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 413)


def test_anonymous_oversized_body_is_refused_before_reading(app) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app) as anonymous:
        response = anonymous.post("/ged/documents", content=b"0" * 10, headers={"Content-Length": str(LIMIT * 4)})
    assert_problem(response, 413)


def test_a_length_that_is_no_ascii_number_is_never_converted(app) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app) as anonymous:
        # Past 4,300 digits int() refuses the text (a 500): so many digits are beyond any limit.
        huge = anonymous.post("/ged/documents", content=b"0" * 10, headers={"Content-Length": "9" * 5000})
        assert_problem(huge, 413)
        # « ² » (latin-1 byte B2) is a digit to str.isdigit(), not to int(): no length, the body is read as it comes.
        superscript = anonymous.post("/ged/documents", content=b"0" * 10, headers={"Content-Length": b"\xb2"})
        assert_problem(superscript, 401)
