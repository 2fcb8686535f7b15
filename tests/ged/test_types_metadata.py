"""Document types: typed fields validated on every write, French 422s naming the field, schema evolution
without losing values, the DUA computed from the type's rule."""

from __future__ import annotations

import json
import os
import uuid
from datetime import date
from pathlib import Path

from ga_helpers import make_type, new_document, post_document

from ged.types import add_months

from conftest import Kit, assert_problem

FIELDS = [
    {"name": "numero", "label": "Numéro", "kind": "integer", "required": True},
    {"name": "montant", "label": "Montant", "kind": "decimal"},
    {"name": "seance", "label": "Date de séance", "kind": "date"},
    {"name": "urgent", "label": "Urgent", "kind": "boolean"},
    {"name": "service", "label": "Service", "kind": "choice", "choices": ["RH", "Finances"]},
    {"name": "objet", "label": "Objet", "kind": "text"},
    {"name": "annexe_de", "label": "Annexe de", "kind": "reference"},
]


def test_typed_upload_normalises_values_and_computes_the_dua(kit: Kit) -> None:
    kind = make_type(kit, fields=FIELDS, dua_months=24, dua_event="seance", final_action="destroy")
    assert kind["schema_version"] == 1
    values = {"numero": "42", "montant": "1200,50", "seance": "2025-01-31", "urgent": "oui", "service": "RH"}
    document = new_document(kit, type="deliberation", document_type="", field_values=json.dumps(values))
    assert document["type_id"] == kind["id"]
    assert document["current"]["document_type"] == "deliberation"  # the type's code by default
    assert document["current"]["field_values"] == {
        "numero": 42,
        "montant": "1200.50",
        "seance": "2025-01-31",
        "urgent": True,
        "service": "RH",
    }
    assert document["dua_ends_on"] == "2027-01-31"

    # A reference to another document of the tenant is accepted; the DUA follows the new date.
    patched = kit["agent"].patch(
        f"/ged/documents/{document['id']}",
        json={"field_values": {"annexe_de": document["id"], "seance": "2024-02-29", "montant": None}},
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["current"]["field_values"]["annexe_de"] == document["id"]
    assert "montant" not in body["current"]["field_values"]  # null clears a field
    assert body["current"]["field_values"]["numero"] == 42  # untouched values carried over
    assert body["dua_ends_on"] == "2026-02-28"  # 29 February + 24 months, clamped to the month's end


def stored_objects() -> set[Path]:
    objects = Path(os.environ["SOCLE_DATA_DIR"]) / "objects"
    return {path for path in objects.rglob("*") if path.is_file() and ".tmp" not in path.parts}


def test_wrong_values_are_422_naming_the_field_and_store_nothing(kit: Kit) -> None:
    make_type(kit, fields=FIELDS)
    before = stored_objects()
    cases = {
        "numero": {"numero": "douze"},
        "montant": {"numero": 1, "montant": "1 000 euros"},
        "seance": {"numero": 1, "seance": "31/01/2025"},
        "urgent": {"numero": 1, "urgent": "peut-être"},
        "service": {"numero": 1, "service": "Voirie"},
        "annexe_de": {"numero": 1, "annexe_de": "00000000-0000-0000-0000-000000000000"},
        "inconnu": {"numero": 1, "inconnu": "x"},
    }
    for name, values in cases.items():
        response = post_document(
            kit, text=f"refusé {uuid.uuid4()}", type="deliberation", field_values=json.dumps(values)
        )
        body = assert_problem(response, 422)
        assert name in body["detail"], body
        assert body.get("field") == name
    missing = assert_problem(post_document(kit, type="deliberation", field_values="{}"), 422)
    assert "Numéro" in missing["detail"] and "obligatoire" in missing["detail"]
    assert_problem(post_document(kit, type="deliberation", field_values="[1]"), 422)
    assert_problem(post_document(kit, type="inexistant"), 422)
    assert kit["agent"].get("/ged/documents").json()["total"] == 0
    assert stored_objects() == before  # refused before any byte is stored
    # Untyped documents have no typed fields.
    assert_problem(post_document(kit, document_type="arrete", field_values='{"numero": 1}'), 422)


def test_patch_validates_values_on_every_write(kit: Kit) -> None:
    make_type(kit, fields=FIELDS)
    document = new_document(kit, type="deliberation", field_values='{"numero": 7}')
    url = f"/ged/documents/{document['id']}"
    assert_problem(kit["agent"].patch(url, json={"field_values": {"numero": True}}), 422)
    assert_problem(kit["agent"].patch(url, json={"field_values": {"numero": None}}), 422)  # required
    assert kit["agent"].get(url).json()["current_version"] == 1


def test_schema_evolution_retires_fields_and_keeps_values(kit: Kit) -> None:
    kind = make_type(kit, fields=FIELDS[:2])
    document = new_document(kit, type="deliberation", field_values='{"numero": 3, "montant": 10}')
    # The new schema leaves out « montant » and adds « objet »: montant is retired, never deleted.
    response = kit["admin"].patch(f"/ged/types/{kind['id']}", json={"fields": [FIELDS[0], FIELDS[5]]})
    assert response.status_code == 200, response.text
    evolved = response.json()
    assert evolved["schema_version"] == 2
    by_name = {field["name"]: field for field in evolved["fields"]}
    assert by_name["montant"]["retired"] is True and not by_name["objet"]["retired"]

    url = f"/ged/documents/{document['id']}"
    body = assert_problem(kit["agent"].patch(url, json={"field_values": {"montant": 5}}), 422)
    assert "retiré" in body["detail"]
    patched = kit["agent"].patch(url, json={"field_values": {"objet": "Budget"}}).json()
    assert patched["current"]["field_values"] == {"numero": 3, "montant": "10", "objet": "Budget"}

    # A field cannot change kind (its values would no longer fit); only the admin changes a type.
    changed = dict(FIELDS[0], kind="text")
    assert_problem(kit["admin"].patch(f"/ged/types/{kind['id']}", json={"fields": [changed]}), 422)
    assert_problem(kit["agent"].patch(f"/ged/types/{kind['id']}", json={"name": "x"}), 403)
    assert_problem(kit["agent"].post("/ged/types", json={"code": "x", "name": "x"}), 403)


def test_type_crud_and_dua_rule_change_applies_to_documents(kit: Kit) -> None:
    kind = make_type(kit, "courrier", dua_months=12, dua_event="document_date")
    assert_problem(kit["admin"].post("/ged/types", json={"code": "courrier", "name": "Doublon"}), 409)
    bad_event = {"code": "autre", "name": "Autre", "dua_event": "nulle_part"}
    assert "point de départ" in assert_problem(kit["admin"].post("/ged/types", json=bad_event), 422)["detail"]
    bad_choice = {"code": "c", "name": "C", "fields": [{"name": "x", "label": "X", "kind": "choice"}]}
    assert_problem(kit["admin"].post("/ged/types", json=bad_choice), 422)

    document = new_document(kit, type="courrier", date="2026-01-15")
    assert document["dua_ends_on"] == "2027-01-15"
    kit["admin"].patch(f"/ged/types/{kind['id']}", json={"dua_months": 60})
    assert kit["agent"].get(f"/ged/documents/{document['id']}").json()["dua_ends_on"] == "2031-01-15"

    listed = kit["agent"].get("/ged/types").json()
    assert [t["code"] for t in listed] == ["courrier"]
    assert_problem(kit["admin"].delete(f"/ged/types/{kind['id']}"), 409)  # still used
    unused = make_type(kit, "vide")
    assert kit["admin"].delete(f"/ged/types/{unused['id']}").status_code == 204
    assert_problem(kit["admin"].get(f"/ged/types/{unused['id']}"), 404)


def test_a_dua_ending_past_year_9999_never_ends(kit: Kit) -> None:
    # 9999-12-31 plus a thousand years: no date holds it (a 500). The end is the last date there is, in effect
    # « never »: refusing it would refuse a valid document date, or forbid changing the type's rule.
    assert add_months(date(9999, 12, 31), 12000) == date.max
    assert add_months(date(9999, 1, 31), 11) == date(9999, 12, 31)  # the last month that exists, still computed
    assert add_months(date(9000, 6, 15), 12000) == date.max
    kind = make_type(kit, "courrier", dua_months=12000, dua_event="document_date", final_action="destroy")
    far = new_document(kit, type="courrier", date="9999-12-31")
    assert far["dua_ends_on"] == "9999-12-31"
    near = new_document(kit, type="courrier", date="2026-01-15")
    assert near["dua_ends_on"] == "3026-01-15"

    # The type's rule can still change while such a document exists; every document follows it.
    changed = kit["admin"].patch(f"/ged/types/{kind['id']}", json={"dua_months": 11999})
    assert changed.status_code == 200, changed.text
    assert kit["agent"].get(f"/ged/documents/{near['id']}").json()["dua_ends_on"] == "3025-12-15"
    assert kit["agent"].get(f"/ged/documents/{far['id']}").json()["dua_ends_on"] == "9999-12-31"
    shorter = kit["admin"].patch(f"/ged/types/{kind['id']}", json={"dua_months": 0})
    assert shorter.status_code == 200, shorter.text
    assert kit["agent"].get(f"/ged/documents/{far['id']}").json()["dua_ends_on"] == "9999-12-31"

    # Through a date field too, and on a metadata change.
    make_type(kit, fields=FIELDS[:3], dua_months=1200, dua_event="seance")
    typed = new_document(kit, type="deliberation", field_values='{"numero": 1, "seance": "9999-06-30"}')
    assert typed["dua_ends_on"] == "9999-12-31"
    url = f"/ged/documents/{typed['id']}"
    patched = kit["agent"].patch(url, json={"field_values": {"seance": "8999-06-30"}})
    assert patched.status_code == 200 and patched.json()["dua_ends_on"] == "9099-06-30", patched.text
    patched = kit["agent"].patch(url, json={"field_values": {"seance": "9999-12-31"}})
    assert patched.status_code == 200 and patched.json()["dua_ends_on"] == "9999-12-31", patched.text


def test_integers_are_written_in_ascii_digits(kit: Kit) -> None:
    make_type(kit, fields=FIELDS[:1])
    # « ² » and « ٣ » are digits to str.isdigit(); int() refuses the first with an English message.
    for written in ("²", "-²", "--5", "4²", "٣", "+5", "1 00", "9" * 20):
        answer = post_document(kit, type="deliberation", field_values=json.dumps({"numero": written}))
        body = assert_problem(answer, 422)
        assert "nombre entier" in body["detail"] and "invalid literal" not in body["detail"], (written, body)
    # Digits grouped by three the French way are read (« 1 000 »), see test_input_bounds.
    for written, value in ((" 42 ", 42), ("-7", -7), ("1 000", 1000), ("-9223372036854775808", -(2**63))):
        document = new_document(kit, type="deliberation", field_values=json.dumps({"numero": written}))
        assert document["current"]["field_values"]["numero"] == value


def test_changing_the_type_starts_a_new_schema(kit: Kit) -> None:
    make_type(kit, fields=FIELDS[:1])
    make_type(kit, "arrete", fields=[{"name": "objet", "label": "Objet", "kind": "text", "required": True}])
    document = new_document(kit, type="deliberation", field_values='{"numero": 1}')
    url = f"/ged/documents/{document['id']}"
    assert_problem(kit["agent"].patch(url, json={"type": "arrete"}), 422)  # its required field is missing
    moved = kit["agent"].patch(url, json={"type": "arrete", "field_values": {"objet": "Voirie"}}).json()
    assert moved["current"]["field_values"] == {"objet": "Voirie"}
    assert moved["current"]["document_type"] == "arrete"
    first = kit["agent"].get(f"{url}/versions/1").json()
    assert first["field_values"] == {"numero": 1}  # the old values stay in the old version


def test_other_tenant_types_are_invisible(make_kit) -> None:  # type: ignore[no-untyped-def]
    kit, other = make_kit(with_identity=False), make_kit(with_identity=False)
    kind = make_type(kit, "secret")
    assert_problem(other["admin"].get(f"/ged/types/{kind['id']}"), 404)
    assert_problem(other["admin"].patch(f"/ged/types/{kind['id']}", json={"name": "x"}), 404)
    assert_problem(post_document(other, type="secret"), 422)
