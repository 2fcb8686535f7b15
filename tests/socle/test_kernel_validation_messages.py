"""Pydantic's validation errors told in French (socle.validation_messages), from real validations."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from socle.validation_messages import _TEMPLATES, french_message


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, Field(min_length=3, max_length=10)]
    code: Annotated[str, Field(pattern=r"^[a-z]+$")] = "abc"
    count: Annotated[int, Field(ge=1, le=5)] = 1
    order: Literal["asc", "desc"] = "asc"
    day: date | None = None
    tags: Annotated[list[str], Field(max_length=2)] = []
    keyword: str = "x"

    @field_validator("keyword")
    @classmethod
    def _no_star(cls, value: str) -> str:
        if "*" in value:
            raise ValueError("un mot-clé ne contient pas d'étoile")
        return value


def messages(**data: object) -> dict[str, str]:
    with pytest.raises(ValidationError) as raised:
        Sample.model_validate(data)
    return {".".join(str(part) for part in error["loc"]): french_message(error) for error in raised.value.errors()}


@pytest.mark.parametrize(
    ("data", "field", "expected"),
    [
        ({}, "title", "champ obligatoire"),
        ({"title": "ab"}, "title", "au moins 3 caractère(s)"),
        ({"title": "a" * 11}, "title", "au plus 10 caractère(s)"),
        ({"title": "abc", "code": "ABC"}, "code", "forme refusée (motif attendu : ^[a-z]+$)"),
        ({"title": "abc", "count": "deux"}, "count", "nombre entier attendu"),
        ({"title": "abc", "count": 9}, "count", "doit valoir au plus 5"),
        ({"title": "abc", "count": 0}, "count", "doit valoir au moins 1"),
        ({"title": "abc", "order": "up"}, "order", "valeur attendue : 'asc' ou 'desc'"),
        ({"title": "abc", "day": "31/03/2026"}, "day", "date attendue au format AAAA-MM-JJ"),
        ({"title": "abc", "tags": ["a", "b", "c"]}, "tags", "au plus 2 élément(s)"),
        ({"title": "abc", "tags": "a"}, "tags", "liste attendue"),
        ({"title": "abc", "keyword": "bud*"}, "keyword", "un mot-clé ne contient pas d'étoile"),
        ({"title": "abc", "colour": "red"}, "colour", "champ inconnu"),
    ],
)
def test_each_error_is_told_in_french(data: dict[str, object], field: str, expected: str) -> None:
    assert messages(**data)[field] == expected


def test_an_unknown_error_type_keeps_pydantics_message() -> None:
    error = {"type": "some_future_type", "loc": ("x",), "msg": "Something new", "input": 1}
    assert french_message(error) == "Something new"


def test_a_missing_figure_falls_back_to_pydantics_message() -> None:
    error = {"type": "string_too_short", "loc": ("x",), "msg": "String should have at least 3 characters", "ctx": {}}
    assert french_message(error) == "String should have at least 3 characters"


def test_no_template_names_a_figure_pydantic_does_not_give() -> None:
    """Every {name} of a template is a ctx key of that error type in pydantic-core's documented errors."""
    known_ctx = {
        "string_too_short": {"min_length"}, "string_too_long": {"max_length"}, "string_pattern_mismatch": {"pattern"},
        "greater_than": {"gt"}, "greater_than_equal": {"ge"}, "less_than": {"lt"}, "less_than_equal": {"le"},
        "multiple_of": {"multiple_of"}, "literal_error": {"expected"}, "enum": {"expected"},
        "too_short": {"min_length"}, "too_long": {"max_length"}, "url_scheme": {"expected_schemes"},
        "json_invalid": {"error"}, "value_error": {"error"}, "assertion_error": {"error"},
    }  # fmt: skip
    for kind, template in _TEMPLATES.items():
        assert set(re.findall(r"{(\w+)}", template)) <= known_ctx.get(kind, set()), kind
