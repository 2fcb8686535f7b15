"""Each service's OpenAPI document tells what its download routes really answer: the file's own media type
(application/pdf, application/zip, image/png, application/xml, text/plain, or */* for a stored file's own type),
never the application/json FastAPI writes by default, which a client generated from the document would parse; their
errors stay problem+json like every route's. Checked on real downloads (the answered Content-Type is one the
operation declares), and on every route whose code sends a file."""

from __future__ import annotations

import inspect
import io
import re
from typing import Any

import fastapi.routing
import pikepdf
import pytest
from fastapi.testclient import TestClient
from parapheur_kit import Standard, act, ok, sent_folder, typology
from starlette.routing import Mount

from ged.cmis import CMIS_ERROR_SCHEMA
from socle.web import PROBLEM, json_media_type

from conftest import Kit, make_pdf, run_jobs, upload_document

SERVICES = ["ged", "parapheur", "archive", "interop"]
CMIS = {"schema": CMIS_ERROR_SCHEMA}
# What a route's code calls to send a file (socle.web.object_response streams a stored one).
SENDS_FILE = re.compile(r"\b(object_response|StreamingResponse|FileResponse)\(|\bResponse\([^)]*\bmedia_type=")
# The download routes known today: the scan of the routes' code must find at least these.
KNOWN = {
    ("ged", "/documents/{document_id}/content"),
    ("ged", "/documents/{document_id}/versions/{number}/content"),
    ("ged", "/documents/{document_id}/text"),
    ("ged", "/documents/{document_id}/preview"),
    ("ged", "/documents/{document_id}/thumbnail"),
    ("ged", "/documents/{document_id}/pdfa"),
    ("ged", "/cmis/{repository_id}/root"),
    ("ged", "/cmis/{repository_id}/root/{path}"),
    ("parapheur", "/folders/{folder_id}/document"),
    ("parapheur", "/folders/{folder_id}/documents/{document_id}"),
    ("parapheur", "/folders/{folder_id}/documents/{document_id}/signature"),
    ("parapheur", "/folders/{folder_id}/bordereau"),
    ("parapheur", "/external/{secret}/documents/{document_id}"),
    ("archive", "/transfers/{transfer_id}/sip"),
    ("archive", "/profiles/{name}"),
}
PROFILE = b"""<?xml version="1.0" encoding="UTF-8"?>
<grammar xmlns="http://relaxng.org/ns/structure/1.0">
  <start><element><anyName/><ref name="any"/></element></start>
  <define name="any">
    <zeroOrMore><choice><attribute><anyName/></attribute><text/><element><anyName/><ref name="any"/></element></choice>
    </zeroOrMore>
  </define>
</grammar>
"""


@pytest.fixture(scope="module")
def documents(app: Any) -> dict[str, dict[str, Any]]:
    client = TestClient(app)
    return {service: client.get(f"/{service}/openapi.json").json() for service in SERVICES}


def _parts(media_type: str) -> tuple[str, set[str]]:
    essence, *parameters = (part.strip().lower() for part in media_type.split(";"))
    return essence, {parameter.replace(" ", "") for parameter in parameters if parameter}


def covers(declared: str, answered: str) -> bool:
    """Whether an OpenAPI content key (a media type, with its parameters, or a range: */*, image/*) names the
    answered Content-Type."""
    (want, want_parameters), (got, got_parameters) = _parts(declared), _parts(answered)
    if want == "*/*":
        return True
    if want.endswith("/*"):
        return got.partition("/")[0] == want.partition("/")[0]
    return want == got and want_parameters <= got_parameters


def assert_declared(documents: dict[str, Any], service: str, path: str, response: Any) -> bytes:
    """``response``, a 200 of GET ``path`` (the route's template, without the service's prefix), answers a media
    type its operation declares; returns its body."""
    assert response.status_code == 200, (path, response.text)
    answered = response.headers["content-type"]
    declared = documents[service]["paths"][path]["get"]["responses"]["200"].get("content", {})
    assert any(covers(media_type, answered) for media_type in declared), (service, path, answered, list(declared))
    return bytes(response.content)


def text_pdf(text: str = "Délibération du conseil municipal") -> bytes:
    """A one-page PDF with a text layer: the GED extracts its text without OCR."""
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    page = pdf.pages[0]
    font = pikepdf.Dictionary(
        Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica,
        Encoding=pikepdf.Name.WinAnsiEncoding,
    )  # fmt: skip
    page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
    page.Contents = pdf.make_stream(b"BT /F1 18 Tf 72 760 Td (%s) Tj ET\n" % text.encode("cp1252"))
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def test_ged_downloads_answer_what_the_document_declares(kit: Kit, documents: dict[str, Any]) -> None:
    client = kit["agent"]
    document = upload_document(client, text_pdf())
    base = f"/ged/documents/{document['id']}"
    content = assert_declared(documents, "ged", "/documents/{document_id}/content", client.get(f"{base}/content"))
    assert content.startswith(b"%PDF")
    version = client.get(f"{base}/versions/1/content")
    assert assert_declared(documents, "ged", "/documents/{document_id}/versions/{number}/content", version) == content

    run_jobs()  # the renditions: text, preview, thumbnail, PDF/A copy
    state = ok(client.get(f"{base}/renditions"))
    assert state["text"] and state["preview"] and state["thumbnail"] and state["pdfa"], state
    text = assert_declared(documents, "ged", "/documents/{document_id}/text", client.get(f"{base}/text"))
    assert "Délibération" in text.decode()
    for name, magic in (("preview", b"\x89PNG"), ("thumbnail", b"\x89PNG"), ("pdfa", b"%PDF")):
        answer = client.get(f"{base}/{name}")
        assert assert_declared(documents, "ged", f"/documents/{{document_id}}/{name}", answer).startswith(magic)


def test_cmis_reads_a_document_as_json_or_as_its_content_both_declared(kit: Kit, documents: dict[str, Any]) -> None:
    client = kit["agent"]
    document = upload_document(client, make_pdf("CMIS"))
    url = f"/ged/cmis/{kit.slug}/root"
    as_json = client.get(url, params={"objectId": document["id"], "cmisselector": "object"})
    assert assert_declared(documents, "ged", "/cmis/{repository_id}/root", as_json)
    assert as_json.headers["content-type"] == "application/json"
    content = client.get(url, params={"objectId": document["id"]})  # a document's default selector: its content
    assert assert_declared(documents, "ged", "/cmis/{repository_id}/root", content).startswith(b"%PDF")
    assert content.headers["content-type"] == "application/pdf"


def test_parapheur_downloads_answer_what_the_document_declares(kit: Kit, documents: dict[str, Any]) -> None:
    setup = Standard(kit)
    folder = sent_folder(kit, setup.sign_only)
    base = f"/parapheur/folders/{folder['id']}"
    document_id = folder["documents"][0]["id"]
    first = assert_declared(
        documents, "parapheur", "/folders/{folder_id}/document", kit["agent"].get(f"{base}/document")
    )
    one = kit["agent"].get(f"{base}/documents/{document_id}")
    assert assert_declared(documents, "parapheur", "/folders/{folder_id}/documents/{document_id}", one) == first
    bordereau = kit["agent"].get(f"{base}/bordereau")
    assert assert_declared(documents, "parapheur", "/folders/{folder_id}/bordereau", bordereau).startswith(b"%PDF")

    # CAdES: the maire's signature is detached, served as a .p7s.
    cades = typology(kit, [{"kind": "signature", "desk_ids": [setup.maire]}], signature_format="cades", name="Contrat")
    contract = sent_folder(kit, cades, files=[("convention.txt", b"Convention de partenariat\n", "text/plain")])
    signed = ok(act(kit, "maire", contract["id"], "sign"))
    assert signed["status"] == "completed", signed
    path = f"/parapheur/folders/{contract['id']}/documents/{signed['documents'][0]['id']}/signature"
    signature = kit["agent"].get(path)
    assert_declared(documents, "parapheur", "/folders/{folder_id}/documents/{document_id}/signature", signature)
    text = kit["agent"].get(f"/parapheur/folders/{contract['id']}/document")
    assert assert_declared(documents, "parapheur", "/folders/{folder_id}/document", text).startswith(b"Convention")


def test_archive_downloads_answer_what_the_document_declares(kit: Kit, documents: dict[str, Any]) -> None:
    archivist = kit["archiviste"]
    uploaded = archivist.put("/archive/profiles/libre", files={"file": ("libre.rng", PROFILE, "application/xml")})
    assert uploaded.status_code in (200, 201), uploaded.text
    profile = archivist.get("/archive/profiles/libre")
    assert assert_declared(documents, "archive", "/profiles/{name}", profile) == PROFILE

    document = upload_document(kit["agent"], make_pdf("À verser"))
    body = {"document_ids": [document["id"]], "archival_agency": "AD037"}
    transfer = ok(archivist.post("/archive/transfers", json=body), 202)
    run_jobs()  # the package is built
    sip = archivist.get(f"/archive/transfers/{transfer['id']}/sip")
    assert assert_declared(documents, "archive", "/transfers/{transfer_id}/sip", sip).startswith(b"PK")


def _download_routes(app: Any) -> list[tuple[str, str, set[str], Any]]:
    """Every (service, path, methods, endpoint) of the services' apps whose code sends a file."""
    found = []
    for mount in app.routes:
        if not isinstance(mount, Mount) or mount.path.strip("/") not in SERVICES:
            continue
        # A recent FastAPI (0.165) keeps an included router whole in ``routes``: its routes are read through it.
        iterate = getattr(fastapi.routing, "iter_route_contexts", None)
        for route in iterate(mount.app.routes) if iterate else mount.app.routes:
            endpoint, path, methods = route.endpoint, route.path_format, route.methods
            if endpoint is not None and path and methods and SENDS_FILE.search(inspect.getsource(endpoint)):
                found.append((mount.path.strip("/"), path, {method.lower() for method in methods}, endpoint))
    return found


def test_every_route_sending_a_file_declares_its_types_and_its_errors(app: Any, documents: dict[str, Any]) -> None:
    routes = _download_routes(app)
    unseen = KNOWN - {(service, path) for service, path, _, _ in routes}
    assert not unseen, unseen  # the scan of the code still finds them
    problem = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for service, path, methods, endpoint in routes:
        for method in methods:
            responses = documents[service]["paths"][path][method]["responses"]
            declared = responses["200"].get("content", {})
            files = [media_type for media_type in declared if not json_media_type(media_type)]
            assert files, (service, method, path, list(declared))
            assert all(declared[media_type]["schema"]["type"] == "string" for media_type in files), declared
            # JSON only beside a file, and only where the route also answers JSON (CMIS's objects).
            answers_json = "JSONResponse(" in inspect.getsource(endpoint)
            assert answers_json or len(files) == len(declared), (service, method, path, list(declared))
            assert responses["200"]["description"] != "Successful Response", (service, path)
            errors = responses["default"]["content"]  # CMIS: its own errors beside the guards' problem+json
            assert errors == problem or errors == {"application/json": CMIS, **problem}, (service, method, path)
