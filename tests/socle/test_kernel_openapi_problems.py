"""Each service's OpenAPI document tells its errors as they are answered: application/problem+json, with a Problem
schema, as the 422 and the default answer of every operation (FastAPI wrote application/json with its own
HTTPValidationError, which no answer follows, and listed none of 401, 403, 404, 409, 413, 415)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from ged.cmis import CMIS_ERROR_SCHEMA
from socle.web import PROBLEM, PROBLEM_SCHEMA

from conftest import Kit, assert_problem

SERVICES = ["ged", "parapheur", "archive", "interop"]
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
CMIS = {"schema": CMIS_ERROR_SCHEMA}


@pytest.fixture(scope="module")
def documents(app: Any) -> dict[str, dict[str, Any]]:
    client = TestClient(app)
    return {service: client.get(f"/{service}/openapi.json").json() for service in SERVICES}


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_documents_its_errors_as_problem_json(documents: dict[str, Any], service: str) -> None:
    document = documents[service]
    assert document["components"]["schemas"]["Problem"] == PROBLEM_SCHEMA
    reference = {"schema": {"$ref": "#/components/schemas/Problem"}}
    operations = [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]
    assert len(operations) > 10
    for path, method, operation in operations:
        responses = operation["responses"]
        if path.split("/")[1] == "cmis":  # CMIS answers its errors in the binding's JSON (test_cmis_errors_…)
            assert responses["default"]["content"] == {"application/json": CMIS, PROBLEM: reference}, (method, path)
            assert "422" not in responses, (method, path)
            continue
        assert responses["default"]["content"] == {PROBLEM: reference}, (method, path)
        if "422" in responses:
            assert responses["422"]["content"] == {PROBLEM: reference}, (method, path)
    assert "HTTPValidationError" not in str(document) and "ValidationError" not in document["components"]["schemas"]


def test_the_problem_schema_describes_the_answers(kit: Kit) -> None:
    answers = [
        assert_problem(kit["agent"].post("/parapheur/desks", json={"name": "Élus"}), 403),
        assert_problem(kit["admin"].post("/parapheur/desks", json={"name": ""}), 422),
        assert_problem(kit["agent"].get("/ged/documents/inconnu"), 404),
        assert_problem(TestClient(kit["agent"].app).get("/ged/documents"), 401),
    ]
    types = {"string": str, "integer": int, "array": list}
    for answer in answers:
        assert set(PROBLEM_SCHEMA["required"]) <= set(answer)
        for name, value in answer.items():
            if name in PROBLEM_SCHEMA["properties"]:
                assert isinstance(value, types[PROBLEM_SCHEMA["properties"][name]["type"]]), (name, value)
    assert answers[1]["errors"] == [{"field": "body.name", "message": "au moins 1 caractère(s)"}]


def test_cmis_errors_are_answered_as_documented(kit: Kit, documents: dict[str, Any]) -> None:
    """An error of a CMIS route follows the schema its OpenAPI document gives (not problem+json): an unknown
    object, a bad selector, a missing repository."""
    schema = documents["ged"]["paths"]["/cmis/{repository_id}/root"]["get"]["responses"]["default"]["content"]
    client = kit["agent"]
    for url, params in (
        (f"/ged/cmis/{kit.slug}/root", {"objectId": "inconnu", "cmisselector": "object"}),
        (f"/ged/cmis/{kit.slug}/root", {"cmisselector": "pas-un-selecteur"}),
        ("/ged/cmis/autre-collectivite/root", {"cmisselector": "object"}),
    ):
        response = client.get(url, params=params)
        assert response.status_code >= 400 and response.headers["content-type"] == "application/json", url
        body, told = response.json(), schema["application/json"]["schema"]
        assert set(body) == set(told["properties"]) == set(told["required"]), body
        assert body["exception"] in told["properties"]["exception"]["enum"] and body["message"], body
