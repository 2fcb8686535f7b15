"""Circuit rules, without a database: step templates, when a step is complete, when a folder is late.

A circuit is an ordered list of steps; each step waits for desks (bureaux), never for people, and completes
when all of them acted (``all``), any one of them (``any``), or ``quorum`` of them (``quorum``). Seal and
external steps have no desk: the server, or the outside signer, acts once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from socle.errors import InvalidInput, message
from socle.text import check_text

STEP_KINDS: dict[str, str] = {
    "visa": "visa",
    "signature": "signature",
    "seal": "cachet serveur",
    "reading": "lecture",
    "external_signature": "signature externe",
    "paper_signature": "signature papier",
}
MODES = ("all", "any", "quorum")
# Steps acted on by something else than a desk: the server's seal, an outside signer by e-mail.
DESKLESS_KINDS = frozenset({"seal", "external_signature"})
# Steps whose acts sign the documents themselves (a paper signature adds a scan and signs nothing).
SIGNING_KINDS = frozenset({"signature", "seal", "external_signature"})
ENDED_STATUSES = frozenset({"completed", "rejected", "withdrawn"})
# Acts that count towards a step's completion; the others (reject, transfer) are recorded but do not count.
COMPLETING_ACTS = frozenset({"visa", "signature", "seal", "reading", "external_signature", "paper_signature"})
_TEMPLATE_KEYS = {"kind", "desk_ids", "mode", "quorum", "mandatory_metadata"}
MAX_STEPS = 50


@dataclass(frozen=True)
class Actor:
    """Who acts, and for which desk: ``on_behalf_of_*`` is set when the act is done under a delegation."""

    username: str  # or "externe:<email>" / "service:parapheur"
    display_name: str
    desk_id: str | None = None
    desk_name: str | None = None
    on_behalf_of_desk_id: str | None = None
    on_behalf_of_name: str | None = None  # the replaced desk's name: "en l'absence de …"
    stamp_role: str | None = None  # Desk.stamp_role of the signer's own desk (never the replaced one's)

    @property
    def acting_for(self) -> str | None:
        """The step's desk this act counts for: the replaced one under a delegation, else the actor's own."""
        return self.on_behalf_of_desk_id or self.desk_id


def validate_template(raw: Any, position: int) -> dict[str, Any]:
    """Check one step template and return it normalised (every key present, defaults applied).

    Raises InvalidInput (French, naming the step by its 1-based number) on any unknown kind, mode or key, a
    missing desk list, or a quorum outside 1..number of desks.
    """
    label = message("étape %(number)s", number=position + 1)
    if not isinstance(raw, Mapping):
        raise InvalidInput(message("%(label)s : une étape est un objet JSON", label=label))
    unknown = sorted(set(raw) - _TEMPLATE_KEYS)
    if unknown:
        raise InvalidInput(
            message("%(label)s : champ(s) inconnu(s) : %(unknown)s", label=label, unknown=", ".join(unknown))
        )
    kind = raw.get("kind")
    # Each value's type before it is used: a list is unhashable (``in`` a dict), an object would be kept as is.
    if not isinstance(kind, str) or kind not in STEP_KINDS:
        raise InvalidInput(
            message(
                "%(label)s : type d'étape inconnu (%(kind)s) ; attendu : %(step_kinds)s",
                label=label,
                kind=repr(kind),
                step_kinds=", ".join(STEP_KINDS),
            )
        )
    desk_ids = _string_list(_absent_as_empty(raw.get("desk_ids")), message("%(label)s : desk_ids", label=label))
    if len(set(desk_ids)) != len(desk_ids):
        raise InvalidInput(message("%(label)s : un même bureau est cité deux fois", label=label))
    mode = raw.get("mode")
    mode = "all" if mode is None or mode == "" else mode
    if not isinstance(mode, str) or mode not in MODES:
        raise InvalidInput(
            message("%(label)s : mode inconnu (%(mode)s) ; attendu : all, any ou quorum", label=label, mode=repr(mode))
        )
    quorum = raw.get("quorum")
    if kind in DESKLESS_KINDS:
        if desk_ids:
            raise InvalidInput(
                message(
                    "%(label)s : une étape « %(step_kind_label)s » ne désigne pas de bureau",
                    label=label,
                    step_kind_label=STEP_KINDS[kind],
                )
            )
        mode, quorum = "any", None
    else:
        if not desk_ids:
            raise InvalidInput(message("%(label)s : au moins un bureau est requis", label=label))
        quorum = _quorum(mode, quorum, len(desk_ids), label)
    mandatory = _string_list(
        _absent_as_empty(raw.get("mandatory_metadata")), message("%(label)s : mandatory_metadata", label=label)
    )
    return {"kind": kind, "desk_ids": desk_ids, "mode": mode, "quorum": quorum, "mandatory_metadata": mandatory}


def validate_circuit(raw: Any) -> list[dict[str, Any]]:
    """Check a whole circuit (1 to 50 step templates) and return the normalised templates."""
    if not isinstance(raw, list) or not raw:
        raise InvalidInput(message("le circuit doit compter au moins une étape"))
    if len(raw) > MAX_STEPS:
        raise InvalidInput(message("le circuit compte plus de %(max_steps)s étapes", max_steps=MAX_STEPS))
    return [validate_template(item, position) for position, item in enumerate(raw)]


def circuit_desk_ids(templates: Iterable[Mapping[str, Any]]) -> set[str]:
    """The desks a circuit's templates name."""
    return {desk_id for template in templates for desk_id in template.get("desk_ids") or []}


def external_step_count(templates: Iterable[Mapping[str, Any]]) -> int:
    """How many external signature steps a circuit has (one external signer each)."""
    return sum(1 for template in templates if template.get("kind") == "external_signature")


def signature_count(templates: Iterable[Mapping[str, Any]]) -> int:
    """How many signatures the documents receive along a circuit: one per desk a signature step needs to
    complete (all of them, the quorum, or one), one per seal or external step."""
    return sum(
        required_count(template.get("mode") or "all", template.get("quorum"), len(template.get("desk_ids") or []))
        for template in templates
        if template.get("kind") in SIGNING_KINDS
    )


def _quorum(mode: str, quorum: Any, desks: int, label: str) -> int | None:
    if mode != "quorum":
        if quorum is not None:
            raise InvalidInput(message("%(label)s : un quorum n'a de sens qu'en mode « quorum »", label=label))
        return None
    if not isinstance(quorum, int) or isinstance(quorum, bool) or not 1 <= quorum <= desks:
        raise InvalidInput(
            message(
                "%(label)s : le quorum doit être un entier entre 1 et %(desks)s (nombre de bureaux)",
                label=label,
                desks=desks,
            )
        )
    return quorum


def _absent_as_empty(value: Any) -> Any:
    """An absent or null list is empty; any other value is kept, to be checked (``false`` or ``0`` is no list)."""
    return [] if value is None else value


def _string_list(value: Any, label: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise InvalidInput(message("%(label)s doit être une liste de chaînes non vides", label=label))
    for item in value:
        check_text(item, label)  # a NUL would be refused by PostgreSQL, in the circuit or in a later query
    return list(value)


def required_count(mode: str, quorum: int | None, desk_count: int) -> int:
    """How many distinct desks must act for a step to complete (1 for a step without desks)."""
    if desk_count == 0 or mode == "any":
        return 1
    if mode == "quorum":
        return min(quorum or 1, desk_count)
    return desk_count


def is_complete(mode: str, quorum: int | None, desk_ids: list[str], acted_desk_ids: Iterable[str | None]) -> bool:
    """Whether a step's rule is met, given the desks its live (not undone) acts were done for.

    Acts are counted once per desk, and only for the step's desks; a step without desks (seal, external)
    completes with its first act, which has no desk.
    """
    acted = set(acted_desk_ids)
    if not desk_ids:
        return bool(acted)
    return len(acted & set(desk_ids)) >= required_count(mode, quorum, len(desk_ids))


def is_late(due_date: date | None, today: date, status: str) -> bool:
    """A folder is late when its due date is past and it has not ended."""
    return due_date is not None and due_date < today and status not in ENDED_STATUSES


def missing_metadata(required: Iterable[str], values: Mapping[str, Any]) -> list[str]:
    """The mandatory metadata names without a value (absent, None or blank)."""
    return [name for name in required if values.get(name) is None or str(values.get(name)).strip() == ""]
