"""A request body that is not JSON: every service tells where and why in French, not the decoder's English."""

from __future__ import annotations

import pytest

from conftest import Kit, assert_problem

JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/ged/groups", b"{'name': 'Finances'}", "JSON illisible à la ligne 1, colonne 2"),
        (
            "/parapheur/types",
            b'{\n  "name": "Arr\xc3\xaat\xc3\xa9s",\n  oops}',
            "JSON illisible à la ligne 3, colonne 3",
        ),
        ("/archive/transfers", b'{"document_ids": [1 2]}', "JSON illisible à la ligne 1, colonne 21"),
        ("/interop/connectors", b'{"name": "x"} en trop', "JSON illisible à la ligne 1, colonne 15"),
    ],
)
def test_an_unreadable_json_body_is_told_in_french_with_its_line_and_column(
    kit: Kit, path: str, body: bytes, expected: str
) -> None:
    problem = assert_problem(kit["admin"].post(path, content=body, headers=JSON), 422)
    assert problem["detail"].startswith(f"corps de la requête : {expected}"), problem["detail"]
    assert problem["errors"] == [{"field": "body", "message": problem["detail"].removeprefix("corps de la requête : ")}]
    for english in ("Expecting", "delimiter", "Extra data", "double quotes", "body."):
        assert english not in problem["detail"]


def test_the_decoders_reason_is_told_in_french(kit: Kit) -> None:
    reasons = {
        b"{'name': 1}": "nom de propriété entre guillemets doubles attendu",
        b'{"name" 1}': "deux-points attendu",
        b'{"name": "x"} y': "données après la fin du JSON",
        b'{"name": "x': "texte sans guillemet fermant",
        b'{"name": }': "valeur attendue",
    }
    for body, reason in reasons.items():
        problem = assert_problem(kit["admin"].post("/ged/groups", content=body, headers=JSON), 422)
        assert problem["detail"].endswith(f" : {reason}"), (body, problem["detail"])
