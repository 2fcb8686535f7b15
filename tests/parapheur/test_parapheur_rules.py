"""Circuit rules without a database: step templates, completion per mode, lateness."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from parapheur.circuits import Actor, is_complete, is_late, missing_metadata, validate_circuit, validate_template
from socle.errors import InvalidInput


def test_templates_are_normalised() -> None:
    assert validate_template({"kind": "visa", "desk_ids": ["a"]}, 0) == {
        "kind": "visa",
        "desk_ids": ["a"],
        "mode": "all",
        "quorum": None,
        "mandatory_metadata": [],
    }
    quorum = validate_template({"kind": "signature", "desk_ids": ["a", "b", "c"], "mode": "quorum", "quorum": 2}, 1)
    assert quorum["quorum"] == 2 and quorum["mode"] == "quorum"
    seal = validate_template({"kind": "seal"}, 2)
    assert seal["desk_ids"] == [] and seal["mode"] == "any"
    assert validate_template({"kind": "external_signature"}, 3)["desk_ids"] == []


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ({"kind": "tampon", "desk_ids": ["a"]}, "type d'étape inconnu"),
        ({"kind": "visa"}, "au moins un bureau"),
        ({"kind": "visa", "desk_ids": []}, "au moins un bureau"),
        ({"kind": "visa", "desk_ids": ["a", "a"]}, "deux fois"),
        ({"kind": "visa", "desk_ids": ["a"], "mode": "tous"}, "mode inconnu"),
        ({"kind": "visa", "desk_ids": ["a", "b"], "mode": "quorum"}, "entre 1 et 2"),
        ({"kind": "visa", "desk_ids": ["a", "b"], "mode": "quorum", "quorum": 3}, "entre 1 et 2"),
        ({"kind": "visa", "desk_ids": ["a", "b"], "mode": "quorum", "quorum": 0}, "entre 1 et 2"),
        ({"kind": "visa", "desk_ids": ["a", "b"], "mode": "quorum", "quorum": True}, "entre 1 et 2"),
        ({"kind": "visa", "desk_ids": ["a"], "quorum": 1}, "mode « quorum »"),
        ({"kind": "seal", "desk_ids": ["a"]}, "ne désigne pas de bureau"),
        ({"kind": "visa", "desk_ids": "a"}, "liste"),
        ({"kind": "visa", "desk_ids": ["a"], "mandatory_metadata": [""]}, "liste"),
        ({"kind": "visa", "desk_ids": ["a"], "acteur": "x"}, "champ(s) inconnu(s)"),
        ("visa", "objet JSON"),
        # Values of the wrong JSON type: refused by name, not a TypeError (a list is unhashable) nor kept as is.
        ({"kind": ["visa"], "desk_ids": ["a"]}, "type d'étape inconnu"),
        ({"kind": {"visa": 1}, "desk_ids": ["a"]}, "type d'étape inconnu"),
        ({"kind": None, "desk_ids": ["a"]}, "type d'étape inconnu"),
        ({"kind": "visa", "desk_ids": ["a"], "mode": ["all"]}, "mode inconnu"),
        ({"kind": "visa", "desk_ids": ["a"], "mode": {"all": 1}}, "mode inconnu"),
        ({"kind": "visa", "desk_ids": ["a"], "mode": 0}, "mode inconnu"),
        ({"kind": "visa", "desk_ids": [["a"]]}, "liste"),
        ({"kind": "visa", "desk_ids": {"a": 1}}, "liste"),
        ({"kind": "seal", "desk_ids": False}, "liste"),
        ({"kind": "visa", "desk_ids": ["a"], "mandatory_metadata": "objet"}, "liste"),
        ({"kind": "visa", "desk_ids": ["a"], "mandatory_metadata": [1]}, "liste"),
        ({"kind": "visa", "desk_ids": ["a"], "mandatory_metadata": 0}, "liste"),
        ({"kind": "visa", "desk_ids": ["a", "b"], "mode": "quorum", "quorum": [1]}, "entre 1 et 2"),
        ({"kind": "visa", "desk_ids": ["a", "b"], "mode": "quorum", "quorum": "1"}, "entre 1 et 2"),
    ],
)
def test_bad_templates_are_refused_in_french(template: Any, expected: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_template(template, 0)
    assert expected in raised.value.detail and raised.value.detail.startswith("étape 1")


def test_circuit_needs_steps() -> None:
    for circuit in ([], None, {"kind": "visa"}):
        with pytest.raises(InvalidInput, match="au moins une étape"):
            validate_circuit(circuit)
    with pytest.raises(InvalidInput, match="plus de 50"):
        validate_circuit([{"kind": "seal"}] * 51)
    with pytest.raises(InvalidInput, match="étape 2"):
        validate_circuit([{"kind": "seal"}, {"kind": "visa"}])


def test_completion_per_mode() -> None:
    desks = ["a", "b", "c"]
    assert not is_complete("all", None, desks, ["a", "b"])
    assert not is_complete("all", None, desks, ["a", "a", "b"])  # distinct desks are counted
    assert is_complete("all", None, desks, ["c", "a", "b"])
    assert not is_complete("any", None, desks, [])
    assert is_complete("any", None, desks, ["b"])
    assert not is_complete("quorum", 2, desks, ["a"])
    assert not is_complete("quorum", 2, desks, ["a", "a"])
    assert is_complete("quorum", 2, desks, ["a", "c"])
    assert not is_complete("any", None, desks, ["z"])  # a desk that is not the step's does not count
    assert not is_complete("any", None, desks, [None])
    # Seal and external steps: no desks, the first act completes them.
    assert not is_complete("any", None, [], [])
    assert is_complete("any", None, [], [None])


def test_late_folders() -> None:
    today = date(2026, 12, 1)
    assert is_late(date(2026, 11, 30), today, "in_progress")
    assert is_late(date(2026, 11, 30), today, "draft")
    assert not is_late(date(2026, 12, 1), today, "in_progress")  # due today is not late yet
    assert not is_late(None, today, "in_progress")
    for ended in ("completed", "rejected", "withdrawn"):
        assert not is_late(date(2026, 1, 1), today, ended)


def test_missing_metadata_and_actor() -> None:
    assert missing_metadata(["objet", "montant", "vote"], {"objet": "x", "montant": " ", "vote": 0}) == ["montant"]
    delegated = Actor("adjoint", "Lou Adjoint", desk_id="d-adjoint", on_behalf_of_desk_id="d-maire")
    assert delegated.acting_for == "d-maire"
    assert Actor("maire", "Dominique Dupont", desk_id="d-maire").acting_for == "d-maire"
