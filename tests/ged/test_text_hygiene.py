"""Control characters and blank text at the GED's input boundary: refused in French (4xx), nothing written, on
SQLite and on PostgreSQL (which refuses NUL in any text: once stored in JSON, every later query fails)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from ga_helpers import make_folder, make_type, new_document, post_document
from sqlalchemy import func, select

from ged.models import Document, Folder, Hold, UploadSession
from socle.db import transaction
from socle.migrating import upgrade_all

from conftest import Kit, assert_problem, make_pdf

NUL, C1, BIDI = "a\x00b", "a\x85b", "facture\u202efdp.exe"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def hygiene_kit(request: pytest.FixtureRequest, use_env: Callable[..., None], make_kit: Callable[..., Kit]) -> Kit:
    if request.param == "postgresql":
        use_env(SOCLE_DATABASE_URL=request.getfixturevalue("postgres_url"))
        upgrade_all()
    return make_kit(with_identity=False)


def _count(model: Any, kit: Kit) -> int:
    with transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(model.tenant_id == kit.tenant_id)) or 0)


def _refused(response: Any, *words: str, status: int = 422) -> str:
    detail = str(assert_problem(response, status)["detail"])
    for word in words:
        assert word in detail, detail
    return detail


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"title": NUL}, ("U+0000",)),
        ({"title": "   "}, ("espaces",)),
        ({"title": "a\tb"}, ("U+0009",)),
        ({"document_type": NUL}, ("U+0000",)),
        ({"tags": ["paie", NUL]}, ("mot-clé", "U+0000")),
        ({"title": "acte \u202e fdp"}, ("direction", "U+202E")),
    ],
)
def test_upload_form_fields_with_controls_are_refused(
    hygiene_kit: Kit, data: dict[str, Any], words: tuple[str, ...]
) -> None:
    data.setdefault("document_type", "arrete")
    _refused(post_document(hygiene_kit, **data), *words)
    assert _count(Document, hygiene_kit) == 0


@pytest.mark.parametrize("filename", ["acte\x85.pdf", BIDI, "acte\u2066.pdf"])
def test_c1_and_bidi_filenames_are_refused(hygiene_kit: Kit, filename: str) -> None:
    files = {"file": (filename, make_pdf(), "application/pdf")}
    response = hygiene_kit["agent"].post("/ged/documents", files=files, data={"title": "Acte", "document_type": "a"})
    _refused(response, "caractères de contrôle")
    assert _count(Document, hygiene_kit) == 0


def test_metadata_changes_with_controls_are_refused(hygiene_kit: Kit) -> None:
    document = new_document(hygiene_kit, title="Arrêté")
    url = f"/ged/documents/{document['id']}"
    for body in ({"title": NUL}, {"title": "  "}, {"comment": NUL}, {"comment": "motif\u202e"}, {"tags": [C1]}):
        _refused(hygiene_kit["agent"].patch(url, json=body), "U+" if body != {"title": "  "} else "espaces")
    assert hygiene_kit["agent"].patch(url, json={"title": "Arrêté 2", "comment": "ligne 1\nligne 2\t."}).is_success
    versions = hygiene_kit["agent"].get(f"{url}/versions").json()
    assert [v["title"] for v in versions] == ["Arrêté", "Arrêté 2"]


def test_a_nul_in_a_typed_text_value_is_refused_and_search_keeps_working(hygiene_kit: Kit) -> None:
    make_type(hygiene_kit, "courrier", fields=[{"name": "note", "label": "Note", "kind": "text"}])
    values = '{"note": "a\\u0000b"}'
    response = post_document(hygiene_kit, type="courrier", field_values=values)
    _refused(response, "note", "U+0000")
    spoofed = post_document(hygiene_kit, type="courrier", field_values='{"note": "a\\u202eb"}')
    _refused(spoofed, "Note", "U+202E")
    make_type(hygiene_kit, "lien", fields=[{"name": "ref", "label": "Réf", "kind": "reference"}])
    _refused(post_document(hygiene_kit, type="lien", field_values='{"ref": "a\\u0000b"}'), "ref", "U+0000")
    assert _count(Document, hygiene_kit) == 0
    new_document(hygiene_kit, type="courrier", field_values='{"note": "ligne 1\\nligne 2"}')
    found = hygiene_kit["agent"].get("/ged/search", params={"field.note": "ligne 1\nligne 2"})
    assert found.status_code == 200, found.text


def test_folder_and_hold_names_with_controls_or_blank_are_refused(hygiene_kit: Kit) -> None:
    for name in (NUL, "   ", BIDI):
        _refused(hygiene_kit["admin"].post("/ged/plan", json={"name": name}))
    folder = make_folder(hygiene_kit, "Urbanisme")
    _refused(hygiene_kit["admin"].patch(f"/ged/plan/{folder['id']}", json={"name": " \u00a0 "}), "espaces")
    assert _count(Folder, hygiene_kit) == 1
    archiviste = hygiene_kit["archiviste"]
    for body in ({"name": NUL, "reason": "contentieux"}, {"name": "  ", "reason": "x"}, {"name": "g", "reason": NUL}):
        _refused(archiviste.post("/ged/holds", json=body))
    assert _count(Hold, hygiene_kit) == 0
    hold = archiviste.post("/ged/holds", json={"name": "Contentieux", "reason": "recours\n2026"})
    assert hold.status_code == 201, hold.text
    _refused(archiviste.post(f"/ged/holds/{hold.json()['id']}/release", json={"reason": NUL}), "U+0000")


def test_other_names_and_lists_with_nul_are_refused(hygiene_kit: Kit) -> None:
    admin = hygiene_kit["admin"]
    _refused(admin.post("/ged/groups", json={"name": NUL}))
    _refused(admin.post("/ged/types", json={"code": "lettre", "name": NUL}))
    field = {"name": "objet", "label": "Objet", "kind": "choice", "choices": ["a", NUL]}
    _refused(admin.post("/ged/types", json={"code": "lettre", "name": "Lettre", "fields": [field]}))
    _refused(hygiene_kit["archiviste"].post("/ged/eliminations", json={"document_ids": [NUL]}))


def test_nul_in_a_path_or_query_is_refused_before_any_route(hygiene_kit: Kit) -> None:
    agent = hygiene_kit["agent"]
    for url in ("/ged/documents?type=a%00b", "/ged/documents/a%00b", "/ged/search?field.note=a%00b"):
        _refused(agent.get(url), "caractère nul")


def _open(kit: Kit, **changes: Any) -> Any:
    body = {"filename": "acte.pdf", "size": 10, "media_type": "application/pdf", **changes}
    body.setdefault("metadata", {"title": "Acte", "document_type": "arrete"})
    return kit["agent"].post("/ged/uploads", json=body)


def test_a_resumable_upload_is_checked_at_opening(hygiene_kit: Kit) -> None:
    _refused(_open(hygiene_kit, metadata={"title": NUL, "document_type": "arrete"}), "title", "U+0000")
    _refused(_open(hygiene_kit, media_type="not a type"), "media_type", "type/sous-type")
    _refused(_open(hygiene_kit, media_type="application/pdf\x00"), "media_type")
    unknown = {"title": "Acte", "document_type": "arrete", "auteur": "moi"}
    _refused(_open(hygiene_kit, metadata=unknown), "métadonnée(s) inconnue(s)", "auteur")
    _refused(_open(hygiene_kit, filename="acte\u202e.pdf"), "caractères de contrôle")
    assert _count(UploadSession, hygiene_kit) == 0
    accepted = _open(hygiene_kit, media_type="application/pdf; charset=binary")
    assert accepted.status_code == 201, accepted.text


def test_cmis_create_folder_refuses_a_slash_and_controls(hygiene_kit: Kit) -> None:
    def create(name: str) -> Any:
        form = {
            "cmisaction": "createFolder",
            "propertyId[0]": "cmis:name",
            "propertyValue[0]": name,
            "propertyId[1]": "cmis:objectTypeId",
            "propertyValue[1]": "cmis:folder",
        }
        return hygiene_kit["admin"].post(f"/ged/cmis/{hygiene_kit.slug}/root", data=form)

    slash = create("2026/budget")
    assert slash.status_code == 409 and slash.json()["exception"] == "nameConstraintViolation", slash.text
    assert "« / »" in slash.json()["message"]
    for name in (NUL, "  ", C1):
        refused = create(name)
        assert refused.status_code == 400 and refused.json()["exception"] == "invalidArgument", refused.text
    assert _count(Folder, hygiene_kit) == 0
