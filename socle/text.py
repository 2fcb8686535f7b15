"""User text checked at the input boundary: characters a database, a header or a reader would trip on.

PostgreSQL refuses NUL in any text (500 on write, and on every later query reading a JSON value holding it);
other controls break headers, logs and exports; bidi overrides make « facture\u202efdp.exe » read as a PDF; a lone
surrogate (U+D800–U+DFFF, which JSON can write as ``"\\ud800"``) is no character at all: no UTF-8 encoder, hence no
database driver, takes it. Such text is refused with a message naming the field, never cleaned silently.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

from socle.errors import InvalidInput, Message, message

# C0 controls but tab, line feed and carriage return; DEL; C1 controls; bidi embeddings, overrides, isolates;
# surrogates, which a str only holds alone (a pair read from JSON is one character beyond U+FFFF).
_FORBIDDEN = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_MULTI_LINE = re.compile(f"[{_FORBIDDEN}]")
_SINGLE_LINE = re.compile(f"[{_FORBIDDEN}\t\n\r]")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def text_fault(value: str, *, multiline: bool = False, required: bool = True) -> Message | None:
    """Why ``value`` is refused (a French reason, without the field's name), or None when it is fine.

    ``multiline`` allows tab, line feed and carriage return (comments, notes); ``required`` refuses a value
    made of spaces only, like an empty one.
    """
    found = (_MULTI_LINE if multiline else _SINGLE_LINE).search(value)
    if found:
        code = f"U+{ord(found.group()):04X}"
        if _BIDI.match(found.group()):
            return message("caractère de contrôle de direction du texte interdit (%(code)s)", code=code)
        if _SURROGATE.match(found.group()):
            return surrogate_fault(found.group())
        return message("caractère de contrôle interdit (%(code)s)", code=code)
    if required and not value.strip():
        return message("ne peut pas être vide ni ne contenir que des espaces")
    return None


def surrogate_fault(char: str) -> Message:
    """The reason a lone surrogate ``char`` is refused."""
    return message(
        "caractère invalide (%(code)s) : moitié isolée d'une paire de substitution UTF-16",
        code=f"U+{ord(char):04X}",
    )


def check_text(value: str, field: str, *, multiline: bool = False, required: bool = True) -> str:
    """``value`` unchanged when acceptable; InvalidInput naming ``field`` otherwise (see ``text_fault``)."""
    fault = text_fault(value, multiline=multiline, required=required)
    if fault is not None:
        raise InvalidInput(message("%(field)s : %(fault)s", field=field, fault=fault), field=field)
    return value


def _validator(*, multiline: bool, required: bool) -> AfterValidator:
    def validate(value: str) -> str:
        fault = text_fault(value, multiline=multiline, required=required)
        if fault is not None:
            raise ValueError(fault)  # Pydantic names the field (``loc``); the API tells it in French
        return value

    return AfterValidator(validate)


# For schemas: one line, not blank (titles, names, labels, codes, identifiers)…
Line = Annotated[str, _validator(multiline=False, required=True)]
# … one line, possibly blank (a code an empty value clears) …
BlankableLine = Annotated[str, _validator(multiline=False, required=False)]
# … several lines, not blank (reasons) …
Lines = Annotated[str, _validator(multiline=True, required=True)]
# … several lines, possibly blank (optional comments).
Note = Annotated[str, _validator(multiline=True, required=False)]
