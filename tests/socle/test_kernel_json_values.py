"""Free JSON values (metadata) checked by the kernel (socle.jsonvalues): bounded in depth and size, finite
numbers, texts as socle.text wants them; refused in French with the field and the place of the fault."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, Field, ValidationError

from socle.errors import InvalidInput
from socle.jsonvalues import MAX_BYTES, MAX_DEPTH, JsonObject, check_json, json_fault


def nested(depth: int) -> dict[str, Any]:
    """An object ``depth`` deep: {"n": {"n": … 1}}."""
    value: Any = 1
    for _ in range(depth):
        value = {"n": value}
    return value


def listed(depth: int) -> list[Any]:
    """Lists ``depth`` deep: [[…[]…]]."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_legitimate_metadata_pass_unchanged() -> None:
    metadata = {
        "numero": "DEL2026_042",
        "nature": 1,
        "montant": 1234.5,
        "urgent": False,
        "commentaire": "ligne 1\nligne 2\tet une tabulation",
        "vide": None,
        "archive": {"connector": "asalae", "document_ids": ["a", "b"], "comment": "Versement 🙂"},
    }
    assert json_fault(metadata) is None
    assert check_json(metadata, "métadonnées") is metadata
    assert json_fault(nested(MAX_DEPTH)) is None
    assert json_fault(listed(MAX_DEPTH)) is None and listed(3) == json.loads("[[[]]]")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 256, 990])
def test_too_deep_is_refused_before_anything_recurses(depth: int) -> None:
    fault = json_fault(nested(depth))
    assert fault is not None and "trop d'imbrication" in fault and f"{MAX_DEPTH} niveaux" in fault
    assert json_fault(listed(depth)) is not None


def test_too_big_is_refused_with_its_size() -> None:
    small = {"texte": "x" * (MAX_BYTES - 20)}
    assert json_fault(small) is None
    fault = json_fault({"texte": "é" * (MAX_BYTES // 2)})  # two bytes each in UTF-8
    assert fault is not None and "trop volumineux" in fault and str(MAX_BYTES) in fault


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_numbers_must_be_finite(number: float) -> None:
    fault = json_fault({"montants": [1, {"total": number}]})
    assert fault == "« montants[1].total » : nombre fini attendu (ni NaN ni Infinity)"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"objet": "cantine\x00"}, "« objet » : caractère de contrôle interdit (U+0000)"),
        ({"objet": "a\u202eb"}, "« objet » : caractère de contrôle de direction du texte interdit (U+202E)"),
        ({"objet": ["ok", "x\ud800"]}, "« objet[1] » : caractère invalide (U+D800)"),
        ({"ob\x00jet": 1}, "nom de champ : caractère de contrôle interdit (U+0000)"),
        ({"archive": {"a\nb": 1}}, "« archive » : nom de champ : caractère de contrôle interdit (U+000A)"),
        ({"archive": {" ": 1}}, "« archive » : nom de champ : ne peut pas être vide"),
        ({"fichier": b"%PDF"}, "« fichier » : valeur JSON attendue"),
    ],
)
def test_texts_follow_the_kernels_rules_and_the_place_is_told(value: dict[str, Any], expected: str) -> None:
    fault = json_fault(value)
    assert fault is not None and fault.startswith(expected), fault


def test_check_json_names_the_field() -> None:
    with pytest.raises(InvalidInput) as refused:
        check_json(nested(MAX_DEPTH + 1), "métadonnées")
    assert refused.value.detail.startswith("métadonnées : ") and refused.value.extra == {"field": "métadonnées"}


class _Flow(BaseModel):
    metadata: JsonObject = Field(default_factory=dict)


def test_the_schema_type_names_the_field_and_says_why_in_french() -> None:
    assert _Flow.model_validate({"metadata": {"objet": "x"}}).metadata == {"objet": "x"}
    for value, word in [(nested(MAX_DEPTH + 1), "imbrication"), ({"x": float("nan")}, "nombre fini")]:
        with pytest.raises(ValidationError) as refused:
            _Flow.model_validate({"metadata": value})
        (error,) = refused.value.errors()
        assert error["loc"] == ("metadata",) and error["type"] == "value_error" and word in str(error["ctx"]["error"])
