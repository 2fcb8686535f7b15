"""Numbers and codes a careless or hostile client sends: refused with a clear 4xx before anything is stored,
never a value that breaks later reads (search, CMIS) for the whole collectivité."""

from __future__ import annotations

import json
import unicodedata
import uuid

from ga_helpers import make_type, post_document
from test_cmis_browser_binding import assert_cmis_error, repo_url
from test_types_metadata import FIELDS, stored_objects

from ged.terms import normalise

from conftest import Kit, assert_problem


def test_a_decimal_written_with_a_huge_exponent_is_refused(kit: Kit) -> None:
    """« 1e9999999 » is nine characters: written out, ten million digits in every later version."""
    make_type(kit, fields=FIELDS)
    before = stored_objects()
    for value in ("1e9999999", "1e400", "-1e31", 1e308):
        response = post_document(
            kit,
            text=f"refusé {uuid.uuid4()}",
            type="deliberation",
            field_values=json.dumps({"numero": 1, "montant": value}),
        )
        body = assert_problem(response, 422)
        assert body.get("field") == "montant" and "hors limites" in body["detail"], body
        assert len(response.content) < 2_000
    assert stored_objects() == before
    assert kit["agent"].get("/ged/documents").json()["total"] == 0

    kept = post_document(kit, type="deliberation", field_values=json.dumps({"numero": 1, "montant": "1e12"}))
    assert kept.status_code == 201, kept.text
    assert kept.json()["current"]["field_values"]["montant"] == "1000000000000"


def test_numbers_written_the_french_way_are_read(kit: Kit) -> None:
    """« 3 120,00 » as an archivist types it (a space, a no-break or a narrow no-break space between groups of
    three digits, a decimal comma); a dot or a badly grouped number is not taken for a group separator."""
    make_type(kit, fields=FIELDS)
    for numero, montant, expected in (
        ("3 120", "3 120,00", (3120, "3120.00")),
        ("12\u00a0000", "1\u202f234\u202f567,5", (12000, "1234567.5")),
        ("-1 000", "-1 000.25", (-1000, "-1000.25")),
    ):
        values = json.dumps({"numero": numero, "montant": montant})
        kept = post_document(kit, text=f"montant {uuid.uuid4()}", type="deliberation", field_values=values)
        assert kept.status_code == 201, kept.text
        stored = kept.json()["current"]["field_values"]
        assert (stored["numero"], stored["montant"]) == expected
    for field, value in (("montant", "31 20,00"), ("montant", "1.234,56"), ("numero", "3 120,5"), ("numero", "1 2")):
        values = json.dumps({"numero": 1, "montant": "1"} | {field: value})
        refused = post_document(kit, text=f"refusé {uuid.uuid4()}", type="deliberation", field_values=values)
        assert assert_problem(refused, 422).get("field") == field, value


def test_an_integer_beyond_64_bits_is_refused(kit: Kit) -> None:
    make_type(kit, fields=FIELDS)
    for value in (10**30, -(2**63) - 1, 2**63):
        response = post_document(kit, type="deliberation", field_values=json.dumps({"numero": value}))
        body = assert_problem(response, 422)
        assert body.get("field") == "numero" and "hors limites" in body["detail"], body
    largest = post_document(kit, type="deliberation", field_values=json.dumps({"numero": 2**63 - 1}))
    assert largest.status_code == 201, largest.text


def test_a_search_bound_no_number_can_meet_is_refused(kit: Kit) -> None:
    make_type(kit, fields=FIELDS)
    assert post_document(kit, type="deliberation", field_values='{"numero": 7, "montant": "12.5"}').status_code == 201
    for bound in ("1e400", "1e30", "-1e35"):
        body = assert_problem(kit["agent"].get("/ged/search", params={"field.montant.from": bound}), 422)
        assert "montant" in body["detail"]
    found = kit["agent"].get("/ged/search", params={"field.montant.from": "1e1"})
    assert found.status_code == 200 and found.json()["total"] == 1, found.text


def test_listing_an_unknown_type_is_refused_not_the_untyped_documents(kit: Kit) -> None:
    assert post_document(kit, document_type="courrier").status_code == 201  # an untyped document
    body = assert_problem(kit["agent"].get("/ged/documents", params={"type": "nexistepas"}), 422)
    assert "type de document inconnu" in body["detail"] and "nexistepas" in body["detail"]
    make_type(kit, fields=FIELDS)
    assert kit["agent"].get("/ged/documents", params={"type": "deliberation"}).json()["total"] == 0


def test_cmis_paging_and_depth_out_of_range_are_invalid_arguments(kit: Kit) -> None:
    agent = kit["agent"]
    url = repo_url(kit)
    huge = "99999999999999999999"
    assert_cmis_error(
        agent.get(f"{url}/root", params={"cmisselector": "children", "skipCount": huge}), 400, "invalidArgument"
    )
    query = {"cmisselector": "query", "q": "SELECT * FROM cmis:document", "skipCount": huge}
    assert_cmis_error(agent.get(url, params=query), 400, "invalidArgument")
    assert_cmis_error(agent.get(url, params={"cmisselector": "typeChildren", "maxItems": huge}), 400, "invalidArgument")
    for depth in ("abc", "0", "-5", "1.5"):
        response = agent.get(url, params={"cmisselector": "typeDescendants", "depth": depth})
        assert_cmis_error(response, 400, "invalidArgument")
    for depth in ("-1", "1", "2", ""):
        assert agent.get(url, params={"cmisselector": "typeDescendants", "depth": depth}).status_code == 200


def test_decomposed_accents_are_the_same_words(kit: Kit) -> None:
    """« école » typed on a Mac arrives decomposed (e + U+0301): the same terms, found both ways."""
    decomposed = unicodedata.normalize("NFD", "Délibération sur l'école")
    assert decomposed != "Délibération sur l'école"
    assert normalise(decomposed) == normalise("Délibération sur l'école") == ["deliber", "ecol"]
    assert post_document(kit, title="Délibération sur l'école", document_type="arrete").status_code == 201
    assert (
        post_document(kit, title=unicodedata.normalize("NFD", "Cantine de l'école"), document_type="arrete").status_code
        == 201
    )
    for query in ("école", unicodedata.normalize("NFD", "école")):
        body = kit["agent"].get("/ged/search", params={"q": query}).json()
        assert body["total"] == 2, (query, body)
