"""The sources of a GED → SEDA mapping are checked when it is saved, not when a package comes out with an empty
element: each one is a source its element admits, and a typed field's name is written as the GED writes them
(the archive service cannot know a type's fields). Refused in French naming the element, its place in a list and
the value, with the likely one; in the API (422 problem+json, ``errors`` one by one) and on the page (next to
the box, values kept). A mapping saved before these checks is still read and applied as it is."""

from __future__ import annotations

from typing import Any

import pytest
from test_archive_from_ged import Manifest, add_document, make_type, manifest_of, transfer
from test_archive_qa_mapping_page import _form
from ui_kit import sign_in

from archive.models import TransferMapping
from socle.db import transaction, utcnow

from conftest import Kit, assert_problem

API = "/archive/mappings/arrete"
PAGE = "/archives/correspondances/arrete"
FIELD_RULE = "le nom technique d'un champ typé de la GED s'écrit en minuscules sans accent"


@pytest.mark.parametrize(
    ("body", "where", "words"),
    [
        ({"title": "field:Objet"}, "title", ["champ « field:Objet » mal écrit", FIELD_RULE, "« field:objet » ?"]),
        ({"start_date": "field:date-seance"}, "start_date", ["« field:date-seance »", "« field:date_seance » ?"]),
        ({"description": "field:1er_objet"}, "description", ["« field:1er_objet »", "commence par une lettre"]),
        ({"originating_agency": "field:Service"}, "originating_agency", ["« field:service » ?"]),
        ({"writer": ["author", "field:Redacteur"]}, "writer.1", ["« field:Redacteur »", "« field:redacteur » ?"]),
        ({"signer": ["signatories", "field:" + "a" * 64]}, "signer.1", ["63 caractères au plus"]),
        ({"keyword_fields": ["matiere", "Theme"]}, "keyword_fields.1", ["champ « Theme » mal écrit", "« theme » ?"]),
        ({"title": "seance"}, "title", ["source inconnue", "(reçu « seance »", "s'écrit « field:seance »"]),
        ({"title": "titel"}, "title", ["(reçu « titel » : vouliez-vous dire « title » ?)"]),
        ({"writer": ["auteur"]}, "writer.0", ["author, signatories ou field:", "vouliez-vous dire « author » ?"]),
        ({"submission_agency": "tenantt"}, "submission_agency", ["attendu tenant ou field:", "« tenant » ?"]),
    ],
)
def test_a_source_that_cannot_name_anything_is_refused_at_save_naming_it(
    kit: Kit, body: dict[str, Any], where: str, words: list[str]
) -> None:
    problem = assert_problem(kit["archiviste"].put(API, json=body), 422)

    assert problem["detail"].startswith(f"correspondance invalide : {where} : "), problem["detail"]
    assert all(word in problem["detail"] for word in words), problem["detail"]
    assert [error["field"] for error in problem["errors"]] == [where]
    assert problem["detail"].endswith(problem["errors"][0]["message"])
    assert kit["archiviste"].get(API).json()["default"] is True  # nothing saved


def test_the_page_puts_each_refusal_next_to_its_box_and_keeps_the_values(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    form = {
        **_form(client.get(PAGE).text),
        "title": "a ; b : c",  # a value holding the detail's own separators: still said next to its box
        "writer": "author, field:Redacteur",
        "keyword_fields": "matiere, Theme",
    }

    answer = client.post(PAGE, data=form)

    assert answer.status_code == 422, answer.text
    page = answer.text
    for box in ("title", "writer", "keyword_fields"):
        assert f'id="{box}-erreur"' in page, box
    assert "Source inconnue : attendu title" in page.split('id="title-erreur"')[1].split("</p>")[0]
    assert "Champ « field:Redacteur » mal écrit" in page.split('id="writer-erreur"')[1].split("</p>")[0]
    assert "Champ « Theme » mal écrit" in page.split('id="keyword_fields-erreur"')[1].split("</p>")[0]
    assert 'value="a ; b : c"' in page and 'value="author, field:Redacteur"' in page
    assert 'value="matiere, Theme"' in page
    assert kit["archiviste"].get(API).json()["default"] is True

    # Corrected as the messages say, the same form is saved.
    form |= {"title": "field:objet", "writer": "author, field:redacteur", "keyword_fields": "matiere, theme"}
    form["start_date"] = "field:date_seance"
    assert client.post(PAGE, data=form).status_code == 303
    saved = kit["archiviste"].get(API).json()
    assert (saved["title"], saved["start_date"]) == ("field:objet", "field:date_seance")
    assert (saved["writer"], saved["keyword_fields"]) == (["author", "field:redacteur"], ["matiere", "theme"])


OLD = {"title": "field:objet", "keyword_fields": ["Theme"], "writer": ["author", "field:Redac-teur"]}


def test_a_mapping_saved_before_the_checks_is_still_read_and_applied_and_the_page_says_what_to_correct(
    app: Any, kit: Kit
) -> None:
    with transaction() as session:
        session.add(
            TransferMapping(
                tenant_id=kit.tenant_id, type_code="arrete", mapping=OLD, updated_by="archiviste", updated_at=utcnow()
            )
        )
    read = kit["archiviste"].get(API)
    assert read.status_code == 200, read.text
    assert {name: read.json()[name] for name in OLD} == OLD
    assert any(found["type_code"] == "arrete" for found in kit["archiviste"].get("/archive/mappings").json())

    # Applied as before: the title from the typed field, the misspelt ones name nothing (as they always did).
    make_type(kit, "arrete", fields=[{"name": "objet", "label": "Objet", "kind": "text"}])
    document = add_document(kit, "AR-1", type="arrete", field_values={"objet": "Voirie communale"})
    built = transfer(kit, document_ids=[document])
    assert built["status"] == "built", built
    manifest = Manifest(manifest_of(kit, built), "2.2")
    assert manifest.title(manifest.unit_of(document)) == "Voirie communale"

    client = sign_in(app, kit, "archiviste")
    page = client.get(PAGE)
    assert page.status_code == 200
    assert "enregistrée avant les contrôles actuels" in page.text
    assert 'id="keyword_fields-erreur"' in page.text and 'id="writer-erreur"' in page.text
    assert "« field:redac_teur » ?" in page.text

    # Saved again untouched: refused, the stored mapping stays as it was.
    again = client.post(PAGE, data=_form(page.text))
    assert again.status_code == 422, again.text
    assert {name: kit["archiviste"].get(API).json()[name] for name in OLD} == OLD
