"""Mappings per GED document type (correspondances GED → SEDA): the archivists view and edit them.

The archive service does not know the GED's types: a type is opened by its code, and the fields a mapping
names are checked against each document when a package is built.
"""

from __future__ import annotations

from typing import Any, get_args

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from archive import mapping, referential
from archive.schemas import AGENT_FIELDS, SOURCES, DescriptionLevel
from archive.ui_shared import _, require_archivist
from socle.errors import Conflict, InvalidInput
from socle.ui.sessions import SignedIn
from socle.ui.web import DbDep, FormDep, UserDep, error_text, redirect, render, sentence, t

router = APIRouter(include_in_schema=False)

SOURCE_FIELDS = ("title", "description", "start_date", "end_date", "access_start")
AGENCY_FIELDS = ("originating_agency", "submission_agency")
RULE_FIELDS = (("appraisal_rule", "AppraisalRule"), ("access_rule", "AccessRule"))
FORM_FIELDS = (
    *SOURCE_FIELDS,
    *AGENCY_FIELDS,
    "description_level",
    "keywords_from_tags",
    "keyword_fields",
    "appraisal_rule",
    "access_rule",
    *AGENT_FIELDS,
)
SOURCE_NAMES = {
    "title": _("titre du document"),
    "document_type": _("code du type de document"),
    "type_name": _("nom du type de document"),
    "author": _("auteur"),
    "document_date": _("date du document"),
    "created_at": _("date d'enregistrement dans la GED"),
    "modified_at": _("date de dernière modification"),
    "dua_start": _("date de départ de la DUA"),
}
PREFIX = "correspondance invalide : "


@router.get("/archives/correspondances", response_class=HTMLResponse)
def mappings_list(request: Request, db: DbDep, user: UserDep, code: str = Query("", alias="type")) -> Response:
    """The saved mappings; a type code typed in the box opens its mapping (the default one if none is saved)."""
    require_archivist(user)
    code = code.strip()
    if code:
        try:
            mapping.get_mapping(db, user.principal.tenant_id, code)
        except InvalidInput:
            message = t(request, "Code de type invalide : lettres, chiffres, point, tiret ou souligné.")
            return _list_page(request, db, user, {"type": code}, {"type": message}, status=422)
        return redirect(f"/archives/correspondances/{code}")
    return _list_page(request, db, user, {}, {})


def _list_page(
    request: Request,
    db: Session,
    user: SignedIn,
    values: dict[str, str],
    errors: dict[str, str],
    *,
    status: int = 200,
) -> Response:
    context = {
        "mappings": mapping.list_mappings(db, user.principal.tenant_id),
        "untyped": mapping.UNTYPED,
        "values": values,
        "errors": errors,
    }
    return render(request, "archive/mappings.html", context, status=status, db=db)


@router.get("/archives/correspondances/{type_code}", response_class=HTMLResponse)
def mapping_page(request: Request, db: DbDep, user: UserDep, type_code: str) -> Response:
    require_archivist(user)
    found = mapping.get_mapping(db, user.principal.tenant_id, type_code)
    # A mapping saved before a check existed is still applied as it is; what saving it again would refuse is shown
    # next to its boxes now, not discovered when the archivist saves another change.
    errors = _field_errors(mapping.save_problems(found)) if not found.default else {}
    if errors:
        errors = {
            "form": t(
                request,
                "Cette correspondance a été enregistrée avant les contrôles actuels : les versements l'appliquent "
                "telle quelle, mais elle ne peut être enregistrée de nouveau qu'une fois corrigée.",
            ),
            **errors,
        }
    return _mapping_page(request, db, user, type_code, _values(found.model_dump()), errors, found=found)


@router.post("/archives/correspondances/{type_code}", response_class=HTMLResponse)
def save_mapping(request: Request, db: DbDep, user: UserDep, form: FormDep, type_code: str) -> Response:
    require_archivist(user)
    values = {name: str(form.get(name, "")) for name in FORM_FIELDS}
    values["keywords_from_tags"] = "1" if form.get("keywords_from_tags") else ""
    # The version the archivist edited (absent from a form of an older page: not checked).
    version = str(form["version"]) if "version" in form else None
    try:
        mapping.set_mapping(db, user.principal, type_code, _raw(form), version=version)
    except Conflict as exc:
        # Another archivist saved meanwhile: their mapping is not overwritten; this form's values stay shown.
        db.rollback()
        return _mapping_page(request, db, user, type_code, values, {"form": error_text(request, exc)}, status=409)
    except InvalidInput as exc:
        db.rollback()
        return _mapping_page(request, db, user, type_code, values, _errors(exc), status=422)
    message = t(request, "Correspondance du type « %(code)s » enregistrée.", code=type_code)
    return redirect(f"/archives/correspondances/{type_code}", db=db, user=user, message=message)


def _mapping_page(
    request: Request,
    db: Session,
    user: SignedIn,
    type_code: str,
    values: dict[str, str],
    errors: dict[str, str],
    *,
    found: Any = None,
    status: int = 200,
) -> Response:
    if found is None:
        found = mapping.get_mapping(db, user.principal.tenant_id, type_code)
    saved = referential.get_referential(db, user.principal.tenant_id)
    rules = list(saved.rules) if saved is not None else None
    rule_choices = None
    if rules is not None:
        rule_choices = {}
        for name, category in RULE_FIELDS:
            choices = [(rule["id"], _rule_label(rule)) for rule in rules if rule["category"] == category]
            chosen = values.get(name, "")
            if chosen and chosen not in {rule_id for rule_id, _label in choices}:
                # A rule the referential lost since the mapping was saved: shown as chosen, not silently
                # replaced by « no rule » when the form is saved again (saving it is refused, naming it).
                choices.insert(0, (chosen, t(request, "%(id)s — absente du référentiel", id=chosen)))
                errors = {**errors}
                errors.setdefault(
                    name,
                    t(
                        request,
                        "La règle « %(id)s » n'est plus dans le référentiel : choisissez-en une autre.",
                        id=chosen,
                    ),
                )
            rule_choices[name] = choices
    context = {
        "type_code": type_code,
        "untyped": mapping.UNTYPED,
        "mapping": found,
        "version": mapping.mapping_version(found),
        "values": values,
        "errors": errors,
        "levels": [(level, level) for level in get_args(DescriptionLevel)],
        "sources": [(source, SOURCE_NAMES[source]) for source in SOURCES],
        "rule_choices": rule_choices,
    }
    return render(request, "archive/mapping.html", context, status=status, db=db)


def _rule_label(rule: dict[str, Any]) -> str:
    parts = [rule["id"], rule.get("duration") or "", rule.get("description") or ""]
    return " — ".join(part for part in parts if part)


def _values(saved: dict[str, Any]) -> dict[str, str]:
    """A mapping as the form shows it."""
    values = {name: "" if saved.get(name) is None else str(saved[name]) for name in FORM_FIELDS}
    values["keywords_from_tags"] = "1" if saved.get("keywords_from_tags") else ""
    values["keyword_fields"] = ", ".join(saved.get("keyword_fields") or [])
    for name in AGENT_FIELDS:
        values[name] = ", ".join(saved.get(name) or [])
    return values


def _raw(form: FormData) -> dict[str, Any]:
    """The mapping as the API receives it: empty optional values are absent, keywords a list."""
    raw: dict[str, Any] = {}
    for name in (*SOURCE_FIELDS, *AGENCY_FIELDS, "description_level"):
        value = str(form.get(name, "")).strip()
        if value:
            raw[name] = value
    for name, _category in RULE_FIELDS:
        raw[name] = str(form.get(name, "")).strip() or None
    raw["keywords_from_tags"] = bool(form.get("keywords_from_tags"))
    raw["keyword_fields"] = _names(str(form.get("keyword_fields", "")))
    for name in AGENT_FIELDS:
        if name in form:  # absent (a form of an older page): the mapping's default; empty: nobody in that role
            raw[name] = _names(str(form.get(name, "")))
    return raw


def _names(text: str) -> list[str]:
    """A list typed in one box: names separated by commas (or semicolons)."""
    return [name.strip() for name in text.replace(";", ",").split(",") if name.strip()]


def _errors(exc: InvalidInput) -> dict[str, str]:
    """Each wrong element's message next to its field: from the refusal's ``errors`` (archive.mapping names each
    element apart, the value quoted in its message may hold anything), else from its detail (« correspondance
    invalide : appraisal_rule : … »)."""
    found = exc.extra.get("errors")
    if not isinstance(found, list) or not found:
        return _detail_errors(exc.detail)
    problems = [(str(item["field"]), str(item["message"])) for item in found]
    errors = _field_errors(problems)
    if any(where.split(".")[0] not in FORM_FIELDS for where, _message in problems):
        errors["form"] = exc.detail  # an element the form has no box for: said whole, above the form
    return errors


def _field_errors(problems: list[tuple[str, str]]) -> dict[str, str]:
    """(element, message) pairs as the form shows them: the first message of each box (« writer.1 » is the box
    writer), as a sentence."""
    errors: dict[str, str] = {}
    for where, message in problems:
        field = where.split(".")[0]
        if field in FORM_FIELDS:
            errors.setdefault(field, sentence(message))
    return errors


def _detail_errors(detail: str) -> dict[str, str]:
    """The domain names each wrong element (« correspondance invalide : title : … ; start_date : … »): each
    message goes next to its field."""
    errors: dict[str, str] = {}
    for part in detail.removeprefix(PREFIX).split(" ; "):
        element, separator, message = part.partition(" : ")
        field = element.split(".")[0]
        if separator and field in FORM_FIELDS:
            errors.setdefault(field, sentence(message))
        else:
            errors["form"] = detail
    return errors
