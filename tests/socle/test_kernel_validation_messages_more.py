"""More of Pydantic's error types told in French (socle.validation_messages), from real validations: a text that
is not Unicode, an integer too long to read (both were English in the APIs' 422), and the other common types."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

import pytest
from pydantic import AwareDatetime, BaseModel, Field, NaiveDatetime, PastDate, ValidationError

from socle.validation_messages import _TEMPLATES, french_message

from conftest import Kit, assert_problem


class _A(BaseModel):
    kind: Literal["a"] = "a"


class _B(BaseModel):
    kind: Literal["b"] = "b"


class Sample(BaseModel):
    name: Annotated[str, Field(max_length=10)] = "x"
    count: int = 0
    at: dt.time | None = None
    aware: AwareDatetime | None = None
    naive: NaiveDatetime | None = None
    past: PastDate | None = None
    delay: dt.timedelta | None = None
    pair: tuple[int, int] | None = None
    codes: set[int] | None = None
    amount: Annotated[Decimal, Field(max_digits=4, decimal_places=2)] = Decimal(0)
    variant: Annotated[_A | _B, Field(discriminator="kind")] = _A()


def message_of(**data: Any) -> tuple[str, str]:
    with pytest.raises(ValidationError) as raised:
        Sample.model_validate(data)
    (error,) = raised.value.errors()
    return error["type"], french_message(error)


@pytest.mark.parametrize(
    ("data", "kind", "expected"),
    [
        ({"name": "a\ud800"}, "string_unicode", "texte invalide : caractère Unicode isolé ou illisible"),
        ({"count": "9" * 5000}, "int_parsing_size", "nombre entier trop long"),
        ({"at": "25:00"}, "time_parsing", "heure attendue au format HH:MM ou HH:MM:SS"),
        ({"at": [1]}, "time_type", "heure attendue au format HH:MM ou HH:MM:SS"),
        ({"aware": "2026-03-31T09:00:00"}, "timezone_aware", "date et heure avec fuseau horaire attendues"),
        ({"naive": "2026-03-31T09:00:00Z"}, "timezone_naive", "date et heure sans fuseau horaire attendues"),
        ({"past": "2999-01-01"}, "date_past", "date passée attendue"),
        ({"delay": "bientôt"}, "time_delta_parsing", "durée attendue au format ISO 8601"),
        ({"pair": "x"}, "tuple_type", "liste attendue"),
        ({"codes": "x"}, "set_type", "liste attendue"),
        ({"amount": "123.45"}, "decimal_max_digits", "trop de chiffres"),
        ({"amount": "1.234"}, "decimal_max_places", "trop de décimales"),
        ({"variant": {"kind": "c"}}, "union_tag_invalid", "variante non prévue"),
        ({"variant": {}}, "union_tag_not_found", "variante non indiquée"),
    ],
)
def test_each_added_type_is_told_in_french(data: dict[str, Any], kind: str, expected: str) -> None:
    found, message = message_of(**data)
    assert found == kind and message.startswith(expected), (found, message)
    assert kind in _TEMPLATES


def test_an_integer_too_long_in_a_query_is_told_in_french(kit: Kit) -> None:
    problem = assert_problem(kit["agent"].get("/ged/documents", params={"limit": "9" * 5000}), 422)
    assert problem["errors"] == [{"field": "query.limit", "message": "nombre entier trop long"}]
    assert "Unable" not in problem["detail"] and "exceeded" not in problem["detail"]
