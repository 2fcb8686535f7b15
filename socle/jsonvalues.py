"""Free JSON values (a parapheur folder's metadata, an interop flow's) checked at the input boundary.

Such a value is stored as it came and sent back in every answer that shows its object. Unbounded, one request
stores what no later one can read: 300 levels of nesting are saved, then Pydantic refuses to write them in an
answer (« Maximum serialization depth exceeded »), and every list showing the object fails for good. NaN and
Infinity, which Python's JSON reader accepts, are refused by PostgreSQL and come back as null from SQLite. So a
free value is bounded in depth and size, holds finite numbers only, and its texts, names and values, follow
socle.text. It is refused with a French message naming the field, never cleaned.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from pydantic import AfterValidator

from socle.errors import InvalidInput, Message, message
from socle.text import text_fault

MAX_DEPTH = 10  # objects and lists inside each other, the outermost counted: {"a": [1]} is 2 deep
MAX_BYTES = 64 * 1024  # written as compact JSON, in UTF-8
_SHOWN_PATH = 80  # characters of the path told in a message


def json_fault(value: Any, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES) -> Message | None:
    """Why the free JSON ``value`` is refused (a French reason, without the field's name), or None when it is fine.

    Refused: more than ``max_depth`` objects and lists inside each other, more than ``max_bytes`` bytes written as
    compact JSON, a number that is not finite, a name of an object's field that is not one line of text, a text
    with a character socle.text refuses in several lines (controls, bidi overrides, lone surrogates), or anything
    that is not JSON (from a caller in Python). The place of the fault is told as a path (« archive.comment »).
    """
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]  # an item, the objects and lists around it, its path
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, dict | list):
            if depth + 1 > max_depth:
                return _at(
                    path,
                    message(
                        "trop d'imbrication : %(max_depth)s niveaux d'objets et de listes au plus", max_depth=max_depth
                    ),
                )
            children: list[tuple[Any, int, str]] = []
            if isinstance(item, list):
                children = [(child, depth + 1, f"{path}[{index}]") for index, child in enumerate(item)]
            else:
                for name, child in item.items():
                    fault = text_fault(name) if isinstance(name, str) else message("texte attendu")
                    if fault is not None:
                        return _at(path, message("nom de champ : %(fault)s", fault=fault))
                    children.append((child, depth + 1, f"{path}.{name}" if path else name))
            stack.extend(reversed(children))  # the first child is checked first
        elif isinstance(item, str):
            if (fault := text_fault(item, multiline=True, required=False)) is not None:
                return _at(path, fault)
        elif isinstance(item, float):
            if not math.isfinite(item):
                return _at(path, message("nombre fini attendu (ni NaN ni Infinity)"))
        elif item is not None and not isinstance(item, int):  # bool is an int
            return _at(path, message("valeur JSON attendue (objet, liste, texte, nombre, booléen ou null)"))
    # Once the depth is known to be small: the encoder recurses.
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    if size > max_bytes:
        return message(
            "trop volumineux : %(size)s octets en JSON, %(max_bytes)s au plus", size=size, max_bytes=max_bytes
        )
    return None


def _at(path: str, fault: Message) -> Message:
    if not path:
        return fault
    shown = path if len(path) <= _SHOWN_PATH else path[: _SHOWN_PATH - 1] + "…"
    return message("« %(path)s » : %(fault)s", path=shown, fault=fault)


def check_json(value: Any, field: str, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES) -> Any:
    """``value`` unchanged when acceptable; InvalidInput naming ``field`` otherwise (see ``json_fault``)."""
    fault = json_fault(value, max_depth=max_depth, max_bytes=max_bytes)
    if fault is not None:
        raise InvalidInput(message("%(field)s : %(fault)s", field=field, fault=fault), field=field)
    return value


def _valid_object(value: dict[str, Any]) -> dict[str, Any]:
    fault = json_fault(value)
    if fault is not None:
        raise ValueError(fault)  # Pydantic names the field (``loc``); the API tells it in French
    return value


# For schemas: a free JSON object (metadata), within the bounds of json_fault.
JsonObject = Annotated[dict[str, Any], AfterValidator(_valid_object)]
