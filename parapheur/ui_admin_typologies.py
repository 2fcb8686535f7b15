"""Administration pages of the parapheur's typologies: types (how to sign) and sous-types (which circuit).

The circuit editor works without JavaScript: each step is a group of fields (kind, desks, rule, quorum,
metadata, order); one empty step is always offered, « Ajouter une étape » shows one more, an empty kind
removes a step. Saving goes through :func:`parapheur.config.create_subtype` / ``update_subtype``, whose
circuit checks (:mod:`parapheur.circuits`) name the faulty step: the message is shown next to that step.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from parapheur import circuits, config, identities
from parapheur.models import SignatureType, Subtype
from parapheur.ui_common import form_value as _text
from socle.auth import Role
from socle.errors import Conflict, InvalidInput, NotFound, SocleError
from socle.ui.sessions import SignedIn
from socle.ui.web import DbDep, FormDep, UserDep, redirect, render, require_role, t

router = APIRouter(include_in_schema=False)

_STEP_FIELD = re.compile(r"^steps-([0-9]{1,6})-kind$")  # not \d+: int() refuses 4,300 digits (a 500)
_STEP_NUMBER = re.compile(r"^étape (\d+)")
MAX_FORM_STEPS = circuits.MAX_STEPS + 1


def _admin(user: SignedIn) -> None:
    require_role(user, Role.ADMIN)


def _refused(db: Session, exc: SocleError, field: str, errors: dict[str, str]) -> int:
    db.rollback()
    errors[field] = exc.detail
    return 422 if isinstance(exc, NotFound) else exc.status  # a stale choice in a form, not a missing page


def _number(
    request: Request, raw: str, field: str, errors: dict[str, str], *, whole: bool = False, optional: bool = False
) -> float | int | None:
    """A number typed in a form (French decimal comma accepted), or an error tied to ``field``."""
    if not raw:
        if not optional:
            errors[field] = t(request, "Saisissez un nombre.")
        return None
    try:
        return int(raw) if whole else float(raw.replace(",", ".").replace("\u00a0", "").replace(" ", ""))
    except ValueError:
        errors[field] = t(request, "Saisissez un nombre entier.") if whole else t(request, "Saisissez un nombre.")
        return None


# ---------------------------------------------------------------------------------------------------------
# Types

_TYPE_TEXT_FIELDS = (
    "name",
    "signature_format",
    "level",
    "stamp_page",
    "stamp_x",
    "stamp_y",
    "stamp_width",
    "stamp_height",
)


def _type_values(form: FormData) -> dict[str, str]:
    return {field: _text(form, field) for field in _TYPE_TEXT_FIELDS}


def _shown_type(row: SignatureType) -> dict[str, str]:
    def shown(value: float | None) -> str:
        return "" if value is None else f"{value:g}"

    return {
        "name": row.name,
        "signature_format": row.signature_format,
        "level": row.level,
        "stamp_page": str(row.stamp_page),
        "stamp_x": shown(row.stamp_x),
        "stamp_y": shown(row.stamp_y),
        "stamp_width": shown(row.stamp_width),
        "stamp_height": shown(row.stamp_height),
    }


def _parsed_type(request: Request, values: dict[str, str], errors: dict[str, str]) -> dict[str, Any]:
    if not values["name"]:
        errors["name"] = t(request, "Saisissez le nom du type.")
    elif len(values["name"]) > 200:
        errors["name"] = t(request, "%(count)s caractères au plus.", count=200)
    return {
        "name": values["name"],
        "signature_format": values["signature_format"] or "pades",
        "level": values["level"] or "B-B",
        "stamp_page": _number(request, values["stamp_page"] or "-1", "stamp_page", errors, whole=True),
        "stamp_x": _number(request, values["stamp_x"], "stamp_x", errors, optional=True),
        "stamp_y": _number(request, values["stamp_y"], "stamp_y", errors, optional=True),
        "stamp_width": _number(request, values["stamp_width"] or "200", "stamp_width", errors),
        "stamp_height": _number(request, values["stamp_height"] or "60", "stamp_height", errors),
    }


def _type_field(message: str) -> str:
    """The type form's field a parapheur.config message is about."""
    for words, field in (
        (("format", "par bordereau"), "signature_format"),
        (("niveau", "XAdES", "CAdES"), "level"),
        (("page du cachet",), "stamp_page"),
        (("position du cachet",), "stamp_x"),
        (("taille du cachet",), "stamp_width"),
        (("sous-types",), "form"),
    ):
        if any(word in message for word in words):
            return field
    return "name"


def _types_page(
    request: Request,
    db: Session,
    user: SignedIn,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    tenant_id = user.principal.tenant_id
    subtypes: dict[str, list[Subtype]] = {}
    for subtype in config.list_subtypes(db, tenant_id):
        subtypes.setdefault(subtype.type_id, []).append(subtype)
    context = {
        "types": config.list_types(db, tenant_id),
        "subtypes": subtypes,
        "values": values or {"signature_format": "pades", "level": "B-B", "stamp_page": "-1"},
        "errors": errors or {},
        **_type_choices(),
    }
    return render(request, "parapheur/admin_types.html", context, status=status, db=db)


def _type_choices() -> dict[str, Any]:
    return {"formats": config.FORMATS, "levels": config.LEVELS}


@router.get("/admin/parapheur/typologies", response_class=HTMLResponse)
def types_page(request: Request, db: DbDep, user: UserDep) -> Response:
    _admin(user)
    return _types_page(request, db, user)


@router.post("/admin/parapheur/typologies", response_class=HTMLResponse)
def create_type(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    _admin(user)
    values = _type_values(form)
    errors: dict[str, str] = {}
    parsed = _parsed_type(request, values, errors)
    status = 400
    if not errors:
        try:
            row = config.create_type(db, user.principal, parsed)
        except (InvalidInput, Conflict) as exc:
            status = _refused(db, exc, _type_field(exc.detail), errors)
    if errors:
        return _types_page(request, db, user, values=values, errors=errors, status=status)
    message = t(request, "Type « %(name)s » créé : ajoutez-lui un sous-type et son circuit.", name=row.name)
    return redirect(f"/admin/parapheur/typologies/{row.id}", db=db, user=user, message=message)


def _type_page(
    request: Request,
    db: Session,
    user: SignedIn,
    row: SignatureType,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    context = {
        "type": row,
        "subtypes": config.list_subtypes(db, user.principal.tenant_id, row.id),
        "values": values or _shown_type(row),
        "errors": errors or {},
        **_type_choices(),
    }
    return render(request, "parapheur/admin_type.html", context, status=status, db=db)


@router.get("/admin/parapheur/typologies/{type_id}", response_class=HTMLResponse)
def type_page(request: Request, db: DbDep, user: UserDep, type_id: str) -> Response:
    _admin(user)
    return _type_page(request, db, user, config.get_type(db, user.principal.tenant_id, type_id))


@router.post("/admin/parapheur/typologies/{type_id}", response_class=HTMLResponse)
def update_type(request: Request, db: DbDep, user: UserDep, form: FormDep, type_id: str) -> Response:
    _admin(user)
    row = config.get_type(db, user.principal.tenant_id, type_id)
    values = _type_values(form)
    errors: dict[str, str] = {}
    parsed = _parsed_type(request, values, errors)
    status = 400
    if not errors:
        try:
            # x and y are sent even when empty: clearing them asks for the automatic placement again.
            config.update_type(db, user.principal, row.id, parsed)
        except (InvalidInput, Conflict) as exc:
            status = _refused(db, exc, _type_field(exc.detail), errors)
    if errors:
        row = config.get_type(db, user.principal.tenant_id, type_id)
        return _type_page(request, db, user, row, values=values, errors=errors, status=status)
    message = t(request, "Type « %(name)s » enregistré.", name=parsed["name"])
    return redirect(f"/admin/parapheur/typologies/{row.id}", db=db, user=user, message=message)


@router.post("/admin/parapheur/typologies/{type_id}/suppression", response_class=HTMLResponse)
def delete_type(request: Request, db: DbDep, user: UserDep, form: FormDep, type_id: str) -> Response:
    _admin(user)
    row = config.get_type(db, user.principal.tenant_id, type_id)
    name = row.name
    try:
        config.delete_type(db, user.principal, row.id)
    except Conflict as exc:
        errors: dict[str, str] = {}
        status = _refused(db, exc, "form", errors)
        row = config.get_type(db, user.principal.tenant_id, type_id)
        return _type_page(request, db, user, row, errors=errors, status=status)
    message = t(request, "Type « %(name)s » supprimé.", name=name)
    return redirect("/admin/parapheur/typologies", db=db, user=user, message=message)


# ---------------------------------------------------------------------------------------------------------
# Sous-types and their circuits


def _subtype_values(form: FormData) -> dict[str, Any]:
    """What the sous-type form holds, as typed, the steps renumbered in the order asked (« ordre »)."""
    values: dict[str, Any] = {
        "name": _text(form, "name"),
        "seal_identity_id": _text(form, "seal_identity_id"),
        "mandatory_metadata": _text(form, "mandatory_metadata"),
        "creator_desk_ids": [v for v in form.getlist("creator_desk_ids") if isinstance(v, str) and v],
        "reading_required": bool(_text(form, "reading_required")),
        "due_days": _text(form, "due_days"),
        "ged_folder": _text(form, "ged_folder"),
        "paper_allowed": bool(_text(form, "paper_allowed")),
    }
    indexes = sorted(int(found.group(1)) for key in form if (found := _STEP_FIELD.match(key)))[:MAX_FORM_STEPS]

    def order(index: int) -> tuple[float, int]:
        position = _text(form, f"steps-{index}-position")
        try:
            return float(position.replace(",", ".")), index
        except ValueError:
            return float(index + 1), index

    steps = []
    for index in sorted(indexes, key=order):
        prefix = f"steps-{index}-"
        steps.append(
            {
                "kind": _text(form, prefix + "kind"),
                "desks": [v for v in form.getlist(prefix + "desks") if isinstance(v, str) and v],
                "mode": _text(form, prefix + "mode") or "all",
                "quorum": _text(form, prefix + "quorum"),
                "metadata": _text(form, prefix + "metadata"),
            }
        )
    values["steps"] = steps
    return values


def _blank(step: dict[str, Any]) -> bool:
    """A step row left as offered: no kind, no desk, no metadata (its rule and quorum are only defaults)."""
    return not (step["kind"] or step["desks"] or step["metadata"])


def _shown_subtype(row: Subtype) -> dict[str, Any]:
    return {
        "name": row.name,
        "seal_identity_id": row.seal_identity_id or "",
        "mandatory_metadata": ", ".join(row.mandatory_metadata or []),
        "creator_desk_ids": list(row.creator_desk_ids or []),
        "reading_required": row.reading_required,
        "due_days": "" if row.due_days is None else str(row.due_days),
        "ged_folder": row.ged_folder or "",
        "paper_allowed": row.paper_allowed,
        "steps": [
            {
                "kind": step["kind"],
                "desks": list(step.get("desk_ids") or []),
                "mode": step.get("mode") or "all",
                "quorum": "" if step.get("quorum") is None else str(step["quorum"]),
                "metadata": ", ".join(step.get("mandatory_metadata") or []),
            }
            for step in row.circuit
        ],
    }


def _names(raw: str) -> list[str]:
    return [name.strip() for name in re.split(r"[,;\n]", raw) if name.strip()]


def _parsed_subtype(
    request: Request, values: dict[str, Any], errors: dict[str, str]
) -> tuple[dict[str, Any], list[int]]:
    """The sous-type for parapheur.config, and for each step of its circuit the form row it came from."""
    if not values["name"]:
        errors["name"] = t(request, "Saisissez le nom du sous-type.")
    elif len(values["name"]) > 200:
        errors["name"] = t(request, "%(count)s caractères au plus.", count=200)
    circuit, rows = [], []
    for index, step in enumerate(values["steps"]):
        if not step["kind"]:
            continue  # an empty kind: a step removed, or the spare one left blank
        quorum = None
        if step["mode"] == "quorum":
            quorum = _number(request, step["quorum"], f"steps-{index}-quorum", errors, whole=True)
        template = {"kind": step["kind"], "desk_ids": step["desks"], "mode": step["mode"], "quorum": quorum}
        template["mandatory_metadata"] = _names(step["metadata"])
        circuit.append(template)
        rows.append(index)
    if not circuit:
        errors["steps-0-kind"] = t(request, "Le circuit doit compter au moins une étape : choisissez son type.")
    due_days = _number(request, values["due_days"], "due_days", errors, whole=True, optional=True)
    parsed = {
        "name": values["name"],
        "circuit": circuit,
        "seal_identity_id": values["seal_identity_id"] or None,
        "mandatory_metadata": _names(values["mandatory_metadata"]),
        "creator_desk_ids": values["creator_desk_ids"],
        "reading_required": values["reading_required"],
        "due_days": due_days,
        "ged_folder": values["ged_folder"] or None,
        "paper_allowed": values["paper_allowed"],
    }
    return parsed, rows


def _subtype_field(message: str, rows: list[int]) -> str:
    """The form field a parapheur.config message is about: « étape N » is the N-th step kept, not the N-th row."""
    found = _STEP_NUMBER.match(message)
    if found and 0 < int(found.group(1)) <= len(rows):
        row = rows[int(found.group(1)) - 1]
        for words, part in ((("quorum",), "quorum"), (("mode",), "mode"), (("bureau",), "desks")):
            if any(word in message for word in words):
                return f"steps-{row}-{part}"
        return f"steps-{row}-kind"
    for words, field in (
        (("par bordereau",), "steps-0-kind"),  # the whole circuit signs a PES too often: said at its top
        (("cachet",), "seal_identity_id"),
        (("délai",), "due_days"),
        (("dossier de la GED",), "ged_folder"),
        (("bureau",), "creator_desk_ids"),
        (("circuit",), "steps-0-kind"),
    ):
        if any(word in message for word in words):
            return field
    return "name"


def _subtype_page(
    request: Request,
    db: Session,
    user: SignedIn,
    parent: SignatureType,
    row: Subtype | None,
    values: dict[str, Any],
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
    extra_steps: int = 1,
) -> Response:
    tenant_id = user.principal.tenant_id
    steps = list(values["steps"])
    spare = {"kind": "", "desks": [], "mode": "all", "quorum": "", "metadata": ""}
    steps += [dict(spare) for _ in range(max(0, min(extra_steps, MAX_FORM_STEPS - len(steps))))]
    flat = {
        f"steps-{index}-{part}": str(index + 1) if part == "position" else step.get(part, "")
        for index, step in enumerate(steps)
        for part in ("kind", "mode", "quorum", "metadata", "position")
    }
    context = {
        "type": parent,
        "subtype": row,
        "values": values | flat | {"steps": steps},
        "errors": errors or {},
        "desks": config.list_desks(db, tenant_id),
        "seals": identities.seal_rows(db, tenant_id),
        "step_kinds": circuits.STEP_KINDS,
        "deskless": circuits.DESKLESS_KINDS,
    }
    return render(request, "parapheur/admin_subtype.html", context, status=status, db=db)


def _save_subtype(
    request: Request, db: Session, user: SignedIn, form: FormData, parent: SignatureType, row: Subtype | None
) -> Response:
    values = _subtype_values(form)
    if _text(form, "action") == "add_step":  # no JavaScript needed: the page comes back with one more step
        # The steps typed, then one empty step: the empty ones sent (the spare offered) are not kept, or each
        # click would pile up one more (« Étape à ajouter » twice after the first click).
        values["steps"] = [step for step in values["steps"] if not _blank(step)]
        return _subtype_page(request, db, user, parent, row, values)
    errors: dict[str, str] = {}
    parsed, rows = _parsed_subtype(request, values, errors)
    status = 400
    if not errors:
        try:
            if row is None:
                row = config.create_subtype(db, user.principal, parent.id, parsed)
                message = t(request, "Sous-type « %(name)s » créé.", name=row.name)
            else:
                config.update_subtype(db, user.principal, row.id, parsed)
                message = t(request, "Sous-type « %(name)s » enregistré.", name=parsed["name"])
        except (InvalidInput, Conflict, NotFound) as exc:
            status = _refused(db, exc, _subtype_field(exc.detail, rows), errors)
    if errors:
        parent = config.get_type(db, user.principal.tenant_id, parent.id)
        row = config.get_subtype(db, user.principal.tenant_id, row.id) if row is not None else None
        return _subtype_page(request, db, user, parent, row, values, errors=errors, status=status)
    assert row is not None
    return redirect(f"/admin/parapheur/sous-types/{row.id}", db=db, user=user, message=message)


@router.get("/admin/parapheur/typologies/{type_id}/sous-types/nouveau", response_class=HTMLResponse)
def new_subtype_page(request: Request, db: DbDep, user: UserDep, type_id: str) -> Response:
    _admin(user)
    parent = config.get_type(db, user.principal.tenant_id, type_id)
    values: dict[str, Any] = {"creator_desk_ids": [], "reading_required": False, "steps": []}
    return _subtype_page(request, db, user, parent, None, values)


@router.post("/admin/parapheur/typologies/{type_id}/sous-types/nouveau", response_class=HTMLResponse)
def create_subtype(request: Request, db: DbDep, user: UserDep, form: FormDep, type_id: str) -> Response:
    _admin(user)
    parent = config.get_type(db, user.principal.tenant_id, type_id)
    return _save_subtype(request, db, user, form, parent, None)


@router.get("/admin/parapheur/sous-types/{subtype_id}", response_class=HTMLResponse)
def subtype_page(request: Request, db: DbDep, user: UserDep, subtype_id: str) -> Response:
    _admin(user)
    row = config.get_subtype(db, user.principal.tenant_id, subtype_id)
    return _subtype_page(request, db, user, row.type, row, _shown_subtype(row))


@router.post("/admin/parapheur/sous-types/{subtype_id}", response_class=HTMLResponse)
def update_subtype(request: Request, db: DbDep, user: UserDep, form: FormDep, subtype_id: str) -> Response:
    _admin(user)
    row = config.get_subtype(db, user.principal.tenant_id, subtype_id)
    return _save_subtype(request, db, user, form, row.type, row)


@router.post("/admin/parapheur/sous-types/{subtype_id}/suppression", response_class=HTMLResponse)
def delete_subtype(request: Request, db: DbDep, user: UserDep, form: FormDep, subtype_id: str) -> Response:
    _admin(user)
    row = config.get_subtype(db, user.principal.tenant_id, subtype_id)
    name, type_id = row.name, row.type_id
    try:
        config.delete_subtype(db, user.principal, row.id)
    except Conflict as exc:
        errors: dict[str, str] = {}
        status = _refused(db, exc, "form", errors)
        row = config.get_subtype(db, user.principal.tenant_id, subtype_id)
        return _subtype_page(request, db, user, row.type, row, _shown_subtype(row), errors=errors, status=status)
    message = t(request, "Sous-type « %(name)s » supprimé.", name=name)
    return redirect(f"/admin/parapheur/typologies/{type_id}", db=db, user=user, message=message)
