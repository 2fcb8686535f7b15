"""Document types: typed metadata schemas (validated on every write) and their retention rule (DUA).

A field is never deleted: left out of a new schema it is ``retired``, its values stay in the versions that
have them and are carried over, but no new value is accepted. ``schema_version`` counts the changes.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ged import access
from ged.models import Document, DocumentType
from ged.schemas import DocumentTypeIn, DocumentTypePatch, FieldDef
from socle import audit
from socle.auth import Principal, Role
from socle.dates import french_date, french_today
from socle.db import utcnow
from socle.errors import Conflict, InvalidInput, NotFound, message
from socle.text import text_fault

BASE_EVENTS = ("creation", "document_date")
_TRUE, _FALSE = {"true", "oui", "vrai", "1"}, {"false", "non", "faux", "0"}
MAX_TEXT = 5000
# Typed numbers: 64-bit integers; decimals of at most DECIMAL_DIGITS digits written out (amounts to the
# cent up to 10^28, measurements to 10^-29), what PostgreSQL's numeric and a float can hold without surprise.
MIN_INTEGER, MAX_INTEGER = -(2**63), 2**63 - 1
# As written in a form or a CSV: ASCII digits only (str.isdigit() takes « ² », which int() refuses), 19 at most.
_INTEGER_TEXT = re.compile(r"-?[0-9]{1,19}")
DECIMAL_DIGITS = 30


# ---------------------------------------------------------------------------------------------------------
# CRUD: creating and deleting a type is the admin's; changing it, also whoever has « manage » on it


def create_type(session: Session, principal: Principal, body: DocumentTypeIn) -> DocumentType:
    """Create a document type. :raises Conflict: the code exists; InvalidInput: a bad schema or DUA event."""
    principal.require(Role.ADMIN)
    if find_by_code(session, principal.tenant_id, body.code) is not None:
        raise Conflict(message("le type de document « %(body_code)s » existe déjà", body_code=body.code))
    fields = [field.model_dump() for field in body.fields]
    _check_schema(fields, body.dua_event)
    document_type = DocumentType(
        tenant_id=principal.tenant_id,
        code=body.code,
        name=body.name,
        fields=fields,
        schema_version=1,
        dua_months=body.dua_months,
        dua_event=body.dua_event,
        final_action=body.final_action,
    )
    session.add(document_type)
    session.flush()
    _audit(session, principal, "ged.type.created", document_type, code=body.code)
    session.commit()
    return document_type


def update_type(session: Session, principal: Principal, type_id: str, patch: DocumentTypePatch) -> DocumentType:
    """Change a type's name, schema or retention rule; a new DUA rule is applied to its documents.

    :raises InvalidInput: a field's kind changed, a bad DUA event; NotFound: unknown type; Forbidden: neither
        admin nor « manage » on the type.
    """
    access.require_type_manage(session, principal, type_id)
    document_type = get_type(session, principal.tenant_id, type_id)
    changes = patch.model_dump(exclude_unset=True)
    if not changes:
        raise InvalidInput(message("aucune modification demandée"))
    if "fields" in changes and changes["fields"] is not None:
        fields = evolve_fields(document_type.fields, [FieldDef.model_validate(f) for f in changes["fields"]])
    else:
        fields = document_type.fields
    event = changes.get("dua_event") or document_type.dua_event
    _check_schema(fields, event)
    schema_changed = fields != document_type.fields
    document_type.fields = fields
    for name in ("name", "dua_months", "dua_event", "final_action"):
        if name in changes and (changes[name] is not None or name == "dua_months"):
            setattr(document_type, name, changes[name])
    if schema_changed:
        document_type.schema_version += 1
    document_type.updated_at = utcnow()
    session.flush()
    _audit(session, principal, "ged.type.updated", document_type, changes=sorted(changes), schema=schema_changed)
    if {"dua_months", "dua_event"} & set(changes):
        recompute_dua(session, document_type)
    session.commit()
    return document_type


def delete_type(session: Session, principal: Principal, type_id: str) -> None:
    """Delete an unused type. :raises Conflict: documents still have it."""
    principal.require(Role.ADMIN)
    document_type = get_type(session, principal.tenant_id, type_id)
    used = session.execute(select(Document.id).where(Document.type_id == type_id).limit(1)).first()
    if used is not None:
        raise Conflict(
            message(
                "le type « %(document_type_code)s » est utilisé par des documents : il ne peut être supprimé",
                document_type_code=document_type.code,
            )
        )
    from ged.models import Permission

    for permission in session.execute(
        select(Permission).where(Permission.target_kind == "type", Permission.target_id == type_id)
    ).scalars():
        session.delete(permission)
    _audit(session, principal, "ged.type.deleted", document_type, code=document_type.code)
    session.delete(document_type)
    session.commit()


def evolve_fields(current: list[dict[str, Any]], wanted: list[FieldDef]) -> list[dict[str, Any]]:
    """The new field list: wanted fields in their order, then every current field left out, retired.

    :raises InvalidInput: a field's kind changes (its existing values would no longer fit).
    """
    by_name = {field["name"]: field for field in current}
    result: list[dict[str, Any]] = []
    for field in wanted:
        old = by_name.get(field.name)
        if old is not None and old["kind"] != field.kind:
            raise InvalidInput(
                message(
                    "champ « %(field_name)s » : son type ne peut pas passer de %(old_kind)s à "
                    "%(field_kind)s (retirez-le et créez-en un autre)",
                    field_name=field.name,
                    old_kind=old["kind"],
                    field_kind=field.kind,
                )
            )
        result.append(field.model_dump())
    kept = {field.name for field in wanted}
    result.extend({**field, "retired": True} for field in current if field["name"] not in kept)
    return result


def _check_schema(fields: list[dict[str, Any]], event: str) -> None:
    names = [field["name"] for field in fields]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InvalidInput(message("champ(s) en double : %(duplicates)s", duplicates=", ".join(duplicates)))
    if event in BASE_EVENTS:
        return
    dates = {field["name"] for field in fields if field["kind"] == "date" and not field.get("retired")}
    if event not in dates:
        raise InvalidInput(
            message(
                "point de départ de la DUA inconnu : « %(event)s » (creation, document_date ou le nom d'un champ date)",
                event=event,
            )
        )


def get_type(session: Session, tenant_id: str, type_id: str) -> DocumentType:
    document_type = session.get(DocumentType, type_id)
    if document_type is None or document_type.tenant_id != tenant_id:
        raise NotFound(message("type de document %(type_id)s introuvable", type_id=type_id))
    return document_type


def find_by_code(session: Session, tenant_id: str, code: str) -> DocumentType | None:
    query = select(DocumentType).where(DocumentType.tenant_id == tenant_id, DocumentType.code == code)
    return session.execute(query).scalar_one_or_none()


def by_code(session: Session, tenant_id: str, code: str) -> DocumentType:
    """:raises InvalidInput: no type with this code in the tenant (a 422 on the metadata)."""
    document_type = find_by_code(session, tenant_id, code)
    if document_type is None:
        raise InvalidInput(message("type : type de document « %(code)s » inconnu", code=code))
    return document_type


def list_types(session: Session, tenant_id: str) -> list[DocumentType]:
    query = select(DocumentType).where(DocumentType.tenant_id == tenant_id).order_by(DocumentType.code)
    return list(session.execute(query).scalars())


def _audit(session: Session, principal: Principal, action: str, document_type: DocumentType, **details: Any) -> None:
    audit.record(
        session,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        action=action,
        object_type="document_type",
        object_id=document_type.id,
        details=details,
    )


# ---------------------------------------------------------------------------------------------------------
# Field values


def validate_values(
    session: Session,
    principal: Principal,
    document_type: DocumentType | None,
    values: dict[str, Any],
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The complete, normalised field values of a version: ``values`` merged over ``previous``.

    A null in ``values`` clears the field. Retired fields keep their earlier value and accept no new one.
    JSON values: text, choice, reference and decimal as strings (decimals exact), integer, boolean, date as
    AAAA-MM-JJ. A new reference must name a document ``principal`` may read.

    :raises InvalidInput: a French message naming the field (unknown, retired, wrong type, missing).
    """
    if document_type is None:
        if values:
            raise InvalidInput(message("field_values : le document n'a pas de type, il n'a pas de champs typés"))
        return {}
    fields = {field["name"]: field for field in document_type.fields}
    merged = {name: value for name, value in (previous or {}).items() if name in fields}
    for name, raw in values.items():
        field = fields.get(name)
        if field is None:
            raise InvalidInput(
                message(
                    "champ « %(name)s » : inconnu du type « %(document_type_code)s »",
                    name=name,
                    document_type_code=document_type.code,
                ),
                field=name,
            )
        if field.get("retired"):
            raise InvalidInput(
                message(
                    "champ « %(name)s » : retiré du type « %(document_type_code)s »",
                    name=name,
                    document_type_code=document_type.code,
                ),
                field=name,
            )
        if raw is None or raw == "":
            merged.pop(name, None)
        else:
            merged[name] = coerce_value(session, principal, field, raw)
    for field in document_type.fields:
        if field.get("required") and not field.get("retired") and field["name"] not in merged:
            raise InvalidInput(
                message(
                    "champ « %(field_label)s » (%(field_name)s) : obligatoire",
                    field_label=field["label"],
                    field_name=field["name"],
                ),
                field=field["name"],
            )
    return merged


def coerce_value(session: Session, principal: Principal, field: dict[str, Any], raw: Any) -> Any:
    """One value, checked against its field's kind and normalised; strings are read too (forms, CSV).

    :raises InvalidInput: naming the field.
    """
    kind, name = field["kind"], field["name"]
    try:
        value = _COERCE[kind](raw, field)
    except (ValueError, TypeError, InvalidOperation) as exc:
        raise InvalidInput(
            message("champ « %(field_label)s » (%(name)s) : %(exc)s", field_label=field["label"], name=name, exc=exc),
            field=name,
        ) from None
    if kind == "reference":
        _check_reference(session, principal, field, str(value))
    return value


def _text(raw: Any, field: dict[str, Any]) -> str:
    if not isinstance(raw, str):
        raise ValueError("texte attendu")
    fault = text_fault(raw, multiline=True, required=False)  # a NUL kept in JSON breaks every later search
    if fault is not None:
        raise ValueError(fault)
    value = raw.strip()
    if len(value) > MAX_TEXT:
        raise ValueError(f"{MAX_TEXT} caractères au plus")
    return value


# Digits grouped by three with a space, as French writes them (« 3 120,00 »): a plain, a no-break or a narrow
# no-break space (what a word processor or a spreadsheet puts there). A dot is never taken for a group separator:
# « 1.234 » stays one point two three four.
_GROUPED = re.compile(r"[-+]?\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?:[.,]\d*)?")


def _ungrouped(text: str) -> str:
    """``text`` without its French digit-group spaces, when it is a number written that way."""
    stripped = text.strip()
    return re.sub(r"[ \u00a0\u202f]", "", stripped) if _GROUPED.fullmatch(stripped) else stripped


def _integer(raw: Any, field: dict[str, Any]) -> int:
    if isinstance(raw, bool):
        raise ValueError("nombre entier attendu")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and _INTEGER_TEXT.fullmatch(_ungrouped(raw)):
        value = int(_ungrouped(raw))
    else:
        raise ValueError("nombre entier attendu")
    # What a 64-bit integer holds (SQLite's INTEGER, PostgreSQL's bigint, most clients): beyond, search
    # filters and exports would fail later on a value accepted now.
    if not MIN_INTEGER <= value <= MAX_INTEGER:
        raise ValueError(f"nombre entier hors limites (de {MIN_INTEGER} à {MAX_INTEGER})")
    return value


def _decimal(raw: Any, field: dict[str, Any]) -> str:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError("nombre décimal attendu")
    text = _ungrouped(raw).replace(",", ".") if isinstance(raw, str) else repr(raw)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError("nombre décimal attendu (ex. 1234.50)") from None
    if not value.is_finite() or len(text) > 40:
        raise ValueError("nombre décimal attendu (ex. 1234.50)")
    # An exponent is checked before the value is written out: « 1e9999999 », nine characters, would be
    # stored as ten million digits (and overflow a float in search and CMIS).
    if value and not -DECIMAL_DIGITS < value.adjusted() < DECIMAL_DIGITS:
        raise ValueError(f"nombre décimal hors limites ({DECIMAL_DIGITS} chiffres au plus)")
    written = format(value, "f")
    if len(written.lstrip("-").replace(".", "")) > DECIMAL_DIGITS:
        raise ValueError(f"nombre décimal hors limites ({DECIMAL_DIGITS} chiffres au plus)")
    return written


def _date(raw: Any, field: dict[str, Any]) -> str:
    if isinstance(raw, date) and not isinstance(raw, datetime):
        return raw.isoformat()
    if not isinstance(raw, str):
        raise ValueError("date attendue (AAAA-MM-JJ)")
    try:
        return date.fromisoformat(raw.strip()).isoformat()
    except ValueError:
        raise ValueError("date attendue (AAAA-MM-JJ)") from None


def _boolean(raw: Any, field: dict[str, Any]) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    raise ValueError("oui/non attendu (true ou false)")


def _choice(raw: Any, field: dict[str, Any]) -> str:
    value = _text(raw, field)
    if value not in field["choices"]:
        raise ValueError(f"« {value} » n'est pas permis (valeurs : {', '.join(field['choices'])})")
    return value


def _reference(raw: Any, field: dict[str, Any]) -> str:
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 36:
        raise ValueError("identifiant de document attendu")
    return raw.strip()


_COERCE = {
    "text": _text,
    "integer": _integer,
    "decimal": _decimal,
    "date": _date,
    "boolean": _boolean,
    "choice": _choice,
    "reference": _reference,
}


def _check_reference(session: Session, principal: Principal, field: dict[str, Any], document_id: str) -> None:
    found = session.execute(
        select(Document).where(
            Document.id == document_id, Document.tenant_id == principal.tenant_id, Document.deleted_at.is_(None)
        )
    ).scalar_one_or_none()
    # A document the user may not read is answered like a missing one: a reference must not reveal it exists.
    if found is None or "read" not in access.rights_on(session, principal, found):
        raise InvalidInput(
            message(
                "champ « %(field_label)s » (%(field_name)s) : le document %(document_id)s n'existe pas",
                field_label=field["label"],
                field_name=field["name"],
                document_id=document_id,
            ),
            field=field["name"],
        )


# ---------------------------------------------------------------------------------------------------------
# Retention (DUA)

# The collectivités' legal dates are French dates (socle.dates): an instant (stored in UTC) becomes a day in
# Paris time, and "today" is the day in Paris. One rule for the DUA's start, its end and the views comparing them.


def dua_ends_on(document: Document, document_type: DocumentType | None) -> date | None:
    """When the document's DUA ends, from its type's rule and its current version; None without a rule or
    while the starting event has no date (the DUA has not started).

    A DUA of N months from day D ends on D + N months (``add_months``); from that day on (Paris time) it is
    reached: listed for transfer or elimination (``retention``)."""
    if document_type is None or document_type.dua_months is None:
        return None
    start = dua_start(document, document_type.dua_event)
    return None if start is None else add_months(start, document_type.dua_months)


def dua_start(document: Document, event: str) -> date | None:
    """The date the DUA starts from for ``event`` (creation, document_date or a field name); None while unknown.

    ``creation`` is the day the document was filed in Paris time (``legal_date``), not in UTC."""
    if event == "creation":
        return french_date(document.created_at) if document.created_at else french_today()
    version = document.current
    if event == "document_date":
        return version.document_date
    value = (version.field_values or {}).get(event)
    return date.fromisoformat(value) if isinstance(value, str) else None


def add_months(start: date, months: int) -> date:
    """``start`` plus whole months, the day clamped to the month's end (31 January + 1 month: 28/29 February).

    An end past year 9999 (centuries of DUA from a far date) is the last day a date holds, 31 December 9999: a
    DUA that in effect never ends. Refusing it would refuse the document's date, or block its type's rule."""
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    if year > date.max.year:
        return date.max
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def recompute_dua(session: Session, document_type: DocumentType) -> int:
    """Apply a type's (new) DUA rule to its documents; returns how many changed."""
    from sqlalchemy.orm import selectinload

    changed = 0
    query = select(Document).where(Document.type_id == document_type.id).options(selectinload(Document.versions))
    for document in session.execute(query).scalars():
        ends = dua_ends_on(document, document_type)
        if ends != document.dua_ends_on:
            document.dua_ends_on = ends
            changed += 1
    return changed
