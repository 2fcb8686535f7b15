"""French wording of Pydantic's validation errors, for the APIs' 422 problems.

Pydantic writes its messages in English (« Field required », « Value error, … »); every other detail the
kit answers with is French. Each error carries a stable ``type`` and its figures in ``ctx`` (the documented
error codes of pydantic-core): the message is rebuilt from those. A type not listed keeps Pydantic's text,
so a new version of Pydantic never loses a message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_DATE = "date attendue au format AAAA-MM-JJ"
_DATETIME = "date et heure attendues au format ISO 8601 (AAAA-MM-JJTHH:MM:SS)"
_INTEGER = "nombre entier attendu"
_NUMBER = "nombre attendu"
_BOOLEAN = "booléen attendu (true ou false)"
_OBJECT = "objet JSON attendu"
_UUID = "identifiant UUID attendu"
_URL = "adresse web invalide"
_TIME = "heure attendue au format HH:MM ou HH:MM:SS"
_DURATION = "durée attendue au format ISO 8601 (P3D, PT2H…) ou en secondes"
_LIST = "liste attendue"
_VARIANT = "variante non prévue : la valeur du champ qui la choisit est inconnue"
# FastAPI's check of a file part, a ValueError in English: a part sent without a file name is read as text.
_FILE = "fichier attendu (partie de formulaire avec un nom de fichier)"

_TEMPLATES = {
    "missing": "champ obligatoire",
    "extra_forbidden": "champ inconnu",
    "string_type": "texte attendu",
    "string_too_short": "au moins {min_length} caractère(s)",
    "string_too_long": "au plus {max_length} caractère(s)",
    "string_pattern_mismatch": "forme refusée (motif attendu : {pattern})",
    # A str holding a lone surrogate (JSON's "\ud800"), or bytes that are not UTF-8.
    "string_unicode": "texte invalide : caractère Unicode isolé ou illisible",
    "string_not_ascii": "texte en caractères ASCII attendu",
    "int_type": _INTEGER,
    "int_parsing": _INTEGER,
    "int_parsing_size": "nombre entier trop long",  # Pydantic stops at 4 300 digits, as Python does
    "int_from_float": "nombre entier attendu, sans décimales",
    "float_type": _NUMBER,
    "float_parsing": _NUMBER,
    "decimal_type": _NUMBER,
    "decimal_parsing": _NUMBER,
    "finite_number": "nombre fini attendu",
    "bool_type": _BOOLEAN,
    "bool_parsing": _BOOLEAN,
    "greater_than": "doit être supérieur à {gt}",
    "greater_than_equal": "doit valoir au moins {ge}",
    "less_than": "doit être inférieur à {lt}",
    "less_than_equal": "doit valoir au plus {le}",
    "multiple_of": "doit être un multiple de {multiple_of}",
    "literal_error": "valeur attendue : {expected}",
    "enum": "valeur attendue : {expected}",
    "list_type": _LIST,
    "tuple_type": _LIST,
    "set_type": _LIST,
    "frozen_set_type": _LIST,
    "iterable_type": _LIST,
    "none_required": "null attendu",
    "union_tag_invalid": _VARIANT,
    "union_tag_not_found": "variante non indiquée : le champ qui la choisit manque",
    "too_short": "au moins {min_length} élément(s)",
    "too_long": "au plus {max_length} élément(s)",
    "dict_type": _OBJECT,
    "mapping_type": _OBJECT,
    "model_type": _OBJECT,
    "model_attributes_type": _OBJECT,
    "date_type": _DATE,
    "date_parsing": _DATE,
    "date_from_datetime_parsing": _DATE,
    "date_from_datetime_inexact": "date attendue, sans heure",
    "datetime_type": _DATETIME,
    "datetime_parsing": _DATETIME,
    "datetime_from_date_parsing": _DATETIME,
    "datetime_object_invalid": "date et heure invalides",
    "date_past": "date passée attendue",
    "date_future": "date future attendue",
    "datetime_past": "instant passé attendu",
    "datetime_future": "instant futur attendu",
    "timezone_aware": "date et heure avec fuseau horaire attendues (2026-03-31T09:00:00+02:00, ou Z pour UTC)",
    "timezone_naive": "date et heure sans fuseau horaire attendues",
    "time_type": _TIME,
    "time_parsing": _TIME,
    "time_delta_type": _DURATION,
    "time_delta_parsing": _DURATION,
    "decimal_max_digits": "trop de chiffres",
    "decimal_max_places": "trop de décimales",
    "decimal_whole_digits": "trop de chiffres avant la virgule",
    "uuid_type": _UUID,
    "uuid_parsing": _UUID,
    "url_type": _URL,
    "url_parsing": _URL,
    "url_scheme": "adresse web refusée (schéma attendu : {expected_schemes})",
    "url_syntax_violation": _URL,
    "url_too_long": "adresse web trop longue",
    "uuid_version": "identifiant UUID attendu (version non acceptée)",
    # Only for an error built without its document (see json_message): the reason told in French, no position.
    "json_invalid": "JSON illisible",
    "json_type": "JSON attendu",
    # The kit's own validators raise ValueError with a French text: kept, without Pydantic's prefix.
    "value_error": "{error}",
    "assertion_error": "{error}",
}


def french_message(error: Mapping[str, Any]) -> str:
    """The French message of one error of ``ValidationError.errors()``; Pydantic's own when not known."""
    if error.get("type") == "value_error" and str(error.get("msg", "")).startswith("Value error, Expected UploadFile"):
        return _FILE
    template = _TEMPLATES.get(str(error.get("type")))
    if template is None:
        return str(error.get("msg", ""))
    values = {key: _french_value(value) for key, value in (error.get("ctx") or {}).items()}
    try:
        return template.format(**values)
    except (KeyError, IndexError):  # a figure this version of Pydantic no longer gives: its own message
        return str(error.get("msg", ""))


# The reasons of Python's JSON decoder (json.JSONDecodeError.msg), which FastAPI passes on in English.
_JSON_REASONS = {
    "Expecting value": "valeur attendue",
    "Expecting property name enclosed in double quotes": "nom de propriété entre guillemets doubles attendu",
    "Expecting ':' delimiter": "deux-points attendu",
    "Expecting ',' delimiter": "virgule attendue",
    "Unterminated string starting at": "texte sans guillemet fermant",
    "Invalid control character at": "caractère de contrôle dans un texte",
    "Invalid \\escape": "séquence d'échappement invalide",
    "Invalid \\uXXXX escape": "séquence \\uXXXX invalide",
    "Extra data": "données après la fin du JSON",
    "Illegal trailing comma before end of object": "virgule en trop avant la fin de l'objet",
    "Illegal trailing comma before end of array": "virgule en trop avant la fin de la liste",
}


def json_message(error: Mapping[str, Any], document: Any) -> str:
    """The French message of a ``json_invalid`` error of a request body: where (line and column, as an editor
    counts them) and why. FastAPI gives the decoder's reason in English and the offset in characters as the
    last part of ``loc`` (``body.1``), and the document as the exception's ``body``."""
    reason = _JSON_REASONS.get(str((error.get("ctx") or {}).get("error", "")))
    where = ""
    offset = error.get("loc", ())[-1] if error.get("loc") else None
    if isinstance(document, bytes):
        document = document.decode("utf-8", "replace")
    if isinstance(offset, int) and isinstance(document, str) and 0 <= offset <= len(document):
        line = document.count("\n", 0, offset) + 1
        column = offset - document.rfind("\n", 0, offset)
        where = f" à la ligne {line}, colonne {column}"
    return f"JSON illisible{where}" + (f" : {reason}" if reason else "")


def _french_value(value: Any) -> str:
    # « 'asc' or 'desc' », « 'a', 'b' or 'c' »: the only English in the figures Pydantic gives.
    return str(value).replace(" or ", " ou ")
