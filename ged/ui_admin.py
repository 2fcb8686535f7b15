"""GED administration pages (role admin): document types and their metadata schema with their DUA and final
action, groups and their rights on folders and types, and the folders of the classification plan.

A type's pages (the type, its fields, its rights) are also open to whoever has « manage » on it, by the rule
the API applies (``access.require_type_manage``); creating or deleting a type stays the admin's.
Every change goes through the GED's own use cases (ged.types, ged.groups, ged.plan), audited there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ged import access, groups, plan, types
from ged.models import DocumentType, Folder, Group, Permission
from ged.schemas import DocumentTypeIn, DocumentTypePatch, FieldDef, FolderIn, FolderPatch, PermissionIn
from ged.ui_common import (
    folder_options,
    folder_tree,
    form_values,
    validation_errors,
)
from socle.auth import Principal, Role
from socle.errors import Conflict, InvalidInput, NotFound
from socle.models import User
from socle.ui import rendering
from socle.ui.web import DbDep, FormDep, UserDep, redirect, render, t
from socle.ui.web import form_text as text

router = APIRouter(include_in_schema=False)

TYPE_FIELDS = {"code": "code", "name": "name", "dua_months": "dua_months", "dua_event": "dua_event"}
FIELD_FORM = {"name": "field_name", "label": "field_label", "kind": "field_kind", "choices": "field_choices"}


def _admin(user: Any) -> Principal:
    principal: Principal = user.principal
    principal.require(Role.ADMIN)
    return principal


def _type_manager(db: Session, user: Any, type_id: str) -> Principal:
    """The admin, or a user with « manage » on this type. :raises NotFound, Forbidden: as the API does."""
    principal: Principal = user.principal
    access.require_type_manage(db, principal, type_id)
    return principal


def manages_types(principal: Principal) -> bool:
    """Whether the GED menu shows the types' pages: the admin, or a user managing at least one type.

    Templates call it (every GED page draws the menu), with the page's own session: a second one could wait
    on the first's lock.
    """
    if access.is_admin(principal):
        return True
    db: Session | None = rendering.current_session.get()
    return db is not None and bool(access.managed_type_ids(db, principal))


rendering.register_global("ged_manages_types", manages_types)


def _months(raw: str, request: Request) -> int | None:
    """The DUA in months; empty: no DUA. :raises ValueError: with the French message."""
    if not raw:
        return None
    if not re.fullmatch(r"[0-9]{1,5}", raw) or int(raw) > 12000:  # not 4,300 digits: int() would refuse them
        raise ValueError(t(request, "Nombre entier de mois attendu (de 0 à 12 000)."))
    return int(raw)


def _kind_labels(request: Request) -> dict[str, str]:
    return {
        "text": t(request, "Texte"),
        "integer": t(request, "Nombre entier"),
        "decimal": t(request, "Nombre décimal"),
        "date": t(request, "Date"),
        "boolean": t(request, "Oui / non"),
        "choice": t(request, "Liste de choix"),
        "reference": t(request, "Référence à un document"),
    }


def _formats(request: Request) -> dict[str, str]:
    """What a code or a field name may contain, said when one is refused."""
    return {
        "code": t(request, "Lettres, chiffres, point, tiret ou _, sans espace ni accent (par exemple deliberation)."),
        "field_name": t(
            request, "Minuscules sans accent, chiffres et _, en commençant par une lettre (par exemple date_seance)."
        ),
    }


def _choices(raw: str) -> list[str]:
    return [line.strip() for line in raw.splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------------------
# Document types


def _types_page(
    request: Request,
    db: Session,
    principal: Principal,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    managed = access.managed_type_ids(db, principal)
    context = {
        "types": [
            document_type
            for document_type in types.list_types(db, principal.tenant_id)
            if managed is None or document_type.id in managed
        ],
        "values": values or {"dua_event": "creation", "final_action": "keep"},
        "errors": errors or {},
    }
    return render(request, "ged/admin_types.html", context, status=status, db=db)


@router.get("/admin/ged/types")
def types_page(request: Request, db: DbDep, user: UserDep) -> Response:
    principal: Principal = user.principal
    if access.managed_type_ids(db, principal) == set():
        principal.require(Role.ADMIN)  # neither admin nor manager of a type: refused as the admin pages are
    return _types_page(request, db, principal)


@router.post("/admin/ged/types")
def create_type(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    principal = _admin(user)
    errors: dict[str, str] = {}
    months: int | None = None
    try:
        months = _months(text(form, "dua_months"), request)
    except ValueError as exc:
        errors["dua_months"] = str(exc)
    body: DocumentTypeIn | None = None
    try:
        body = DocumentTypeIn(
            code=text(form, "code"),
            name=text(form, "name"),
            dua_months=months,
            dua_event=text(form, "dua_event") or "creation",
            final_action=text(form, "final_action") or "keep",  # type: ignore[arg-type]
        )
    except ValidationError as exc:
        errors.update(
            {
                k: v
                for k, v in validation_errors(request, exc, TYPE_FIELDS, formats=_formats(request)).items()
                if k not in errors
            }
        )
    if body is not None and not errors:
        try:
            created = types.create_type(db, principal, body)
        except Conflict as exc:
            errors["code"] = exc.detail
        except InvalidInput as exc:
            errors["dua_event"] = exc.detail
        else:
            message = t(request, "Type « %(name)s » créé : ajoutez-lui ses champs.", name=created.name)
            return redirect(f"/admin/ged/types/{created.id}", db=db, user=user, message=message)
        db.rollback()
    return _types_page(request, db, principal, values=form_values(form), errors=errors, status=422)


def _type_page(
    request: Request,
    db: Session,
    principal: Principal,
    type_id: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    document_type = types.get_type(db, principal.tenant_id, type_id)
    date_fields = [f for f in document_type.fields if f["kind"] == "date" and not f.get("retired")]
    shown = values or {
        "name": document_type.name,
        "dua_months": "" if document_type.dua_months is None else str(document_type.dua_months),
        "dua_event": document_type.dua_event,
        "final_action": document_type.final_action,
        "field_kind": "text",
    }
    context = {
        "document_type": document_type,
        "events": [("creation", t(request, "Création du document")), ("document_date", t(request, "Date du document"))]
        + [(f["name"], t(request, "Champ « %(label)s »", label=f["label"])) for f in date_fields],
        "kind_labels": _kind_labels(request),
        "kind_options": list(_kind_labels(request).items()),
        "values": {"field_kind": "text", **shown},
        "errors": errors or {},
    }
    return render(request, "ged/admin_type.html", context, status=status, db=db)


@router.get("/admin/ged/types/{type_id}")
def type_page(request: Request, db: DbDep, user: UserDep, type_id: str) -> Response:
    return _type_page(request, db, _type_manager(db, user, type_id), type_id)


@router.post("/admin/ged/types/{type_id}")
def update_type(request: Request, db: DbDep, user: UserDep, form: FormDep, type_id: str) -> Response:
    principal = _type_manager(db, user, type_id)
    errors: dict[str, str] = {}
    changes: dict[str, Any] = {}
    try:
        changes["dua_months"] = _months(text(form, "dua_months"), request)
    except ValueError as exc:
        errors["dua_months"] = str(exc)
    changes.update(name=text(form, "name"), dua_event=text(form, "dua_event") or "creation")
    changes["final_action"] = text(form, "final_action") or "keep"
    patch: DocumentTypePatch | None = None
    try:
        patch = DocumentTypePatch(**changes)
    except ValidationError as exc:
        errors.update(
            {k: v for k, v in validation_errors(request, exc, TYPE_FIELDS, "final_action").items() if k not in errors}
        )
    if patch is not None and not errors:
        try:
            types.update_type(db, principal, type_id, patch)
        except InvalidInput as exc:
            db.rollback()
            errors["dua_event"] = exc.detail
        else:
            return redirect(f"/admin/ged/types/{type_id}", db=db, user=user, message=t(request, "Type enregistré."))
    return _type_page(request, db, principal, type_id, values=form_values(form), errors=errors, status=422)


def _live_fields(document_type: DocumentType) -> list[FieldDef]:
    return [FieldDef.model_validate(f) for f in document_type.fields if not f.get("retired")]


def _save_fields(db: Session, principal: Principal, type_id: str, fields: list[FieldDef]) -> None:
    types.update_type(db, principal, type_id, DocumentTypePatch(fields=fields))


@router.post("/admin/ged/types/{type_id}/champs")
def add_field(request: Request, db: DbDep, user: UserDep, form: FormDep, type_id: str) -> Response:
    principal = _type_manager(db, user, type_id)
    document_type = types.get_type(db, principal.tenant_id, type_id)
    errors: dict[str, str] = {}
    try:
        new = FieldDef(
            name=text(form, "field_name"),
            label=text(form, "field_label"),
            kind=text(form, "field_kind"),  # type: ignore[arg-type]
            required=bool(text(form, "field_required")),
            choices=_choices(text(form, "field_choices")),
        )
    except ValidationError as exc:
        errors = validation_errors(request, exc, FIELD_FORM, "field_choices", _formats(request))
    else:
        if any(f["name"] == new.name for f in document_type.fields):
            errors["field_name"] = t(request, "Un champ porte déjà ce nom (un champ retiré garde le sien).")
        else:
            try:
                _save_fields(db, principal, type_id, [*_live_fields(document_type), new])
            except InvalidInput as exc:
                db.rollback()
                errors["field_name"] = exc.detail
            else:
                message = t(request, "Champ « %(label)s » ajouté.", label=new.label)
                return redirect(f"/admin/ged/types/{type_id}", db=db, user=user, message=message)
    return _type_page(
        request, db, principal, type_id, values=_type_values(db, principal, type_id, form), errors=errors, status=422
    )


def _type_values(db: Session, principal: Principal, type_id: str, form: Any) -> dict[str, str]:
    """The type's saved values with what was typed in the field form (the two forms share the page)."""
    document_type = types.get_type(db, principal.tenant_id, type_id)
    return {
        "name": document_type.name,
        "dua_months": "" if document_type.dua_months is None else str(document_type.dua_months),
        "dua_event": document_type.dua_event,
        "final_action": document_type.final_action,
        **form_values(form),
    }


def _field(document_type: DocumentType, name: str) -> dict[str, Any]:
    found = next((f for f in document_type.fields if f["name"] == name), None)
    if found is None:
        raise NotFound(f"champ « {name} » introuvable dans le type « {document_type.code} »")
    return found


def _field_page(
    request: Request,
    db: Session,
    principal: Principal,
    type_id: str,
    name: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    document_type = types.get_type(db, principal.tenant_id, type_id)
    current = _field(document_type, name)
    shown = values or {
        "field_label": current["label"],
        "field_choices": "\n".join(current.get("choices") or []),
    }
    if values is None and current.get("required"):
        shown["field_required"] = "1"
    context = {
        "document_type": document_type,
        "field": current,
        "kind_labels": _kind_labels(request),
        "values": shown,
        "errors": errors or {},
    }
    return render(request, "ged/admin_field.html", context, status=status, db=db)


@router.get("/admin/ged/types/{type_id}/champs/{name}")
def field_page(request: Request, db: DbDep, user: UserDep, type_id: str, name: str) -> Response:
    return _field_page(request, db, _type_manager(db, user, type_id), type_id, name)


@router.post("/admin/ged/types/{type_id}/champs/{name}")
def update_field(request: Request, db: DbDep, user: UserDep, form: FormDep, type_id: str, name: str) -> Response:
    principal = _type_manager(db, user, type_id)
    document_type = types.get_type(db, principal.tenant_id, type_id)
    current = _field(document_type, name)
    action = text(form, "action")
    fields = _live_fields(document_type)
    if action == "retirer":
        fields = [f for f in fields if f.name != name]
        message = t(request, "Champ « %(label)s » retiré : ses valeurs restent lisibles.", label=current["label"])
    elif action == "retablir":
        fields.append(FieldDef.model_validate({**current, "retired": False}))
        message = t(request, "Champ « %(label)s » rétabli.", label=current["label"])
    else:
        try:
            edited = FieldDef.model_validate(
                {
                    **current,
                    "label": text(form, "field_label"),
                    "required": bool(text(form, "field_required")),
                    "choices": _choices(text(form, "field_choices")) if current["kind"] == "choice" else [],
                }
            )
        except ValidationError as exc:
            errors = validation_errors(request, exc, FIELD_FORM, "field_choices", _formats(request))
            return _field_page(
                request, db, principal, type_id, name, values=form_values(form), errors=errors, status=422
            )
        fields = [edited if f.name == name else f for f in fields]
        message = t(request, "Champ « %(label)s » enregistré.", label=edited.label)
    try:
        _save_fields(db, principal, type_id, fields)
    except InvalidInput as exc:
        db.rollback()
        return _field_page(request, db, principal, type_id, name, errors={"form": exc.detail}, status=422)
    return redirect(f"/admin/ged/types/{type_id}", db=db, user=user, message=message)


@router.post("/admin/ged/types/{type_id}/supprimer")
def delete_type(request: Request, db: DbDep, user: UserDep, form: FormDep, type_id: str) -> Response:
    principal = _admin(user)
    try:
        types.delete_type(db, principal, type_id)
    except Conflict as exc:
        db.rollback()
        return _type_page(request, db, principal, type_id, errors={"form": exc.detail}, status=409)
    return redirect("/admin/ged/types", db=db, user=user, message=t(request, "Type supprimé."))


# ---------------------------------------------------------------------------------------------------------
# Rights: groups × rights on a folder or a type


def _target(db: Session, principal: Principal, kind: str, target_id: str) -> tuple[str, str]:
    """(title of the page, address to go back to) for a folder or a type."""
    if kind == access.FOLDER:
        folder = plan.get_folder(db, principal.tenant_id, target_id)
        return folder.name, f"/admin/ged/plan/{folder.id}"
    document_type = types.get_type(db, principal.tenant_id, target_id)
    return document_type.name, f"/admin/ged/types/{document_type.id}"


def _rights_page(
    request: Request,
    db: Session,
    principal: Principal,
    kind: str,
    target_id: str,
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    name, back = _target(db, principal, kind, target_id)
    granted = {p.group_id: set(p.rights) for p in groups.permissions(db, principal.tenant_id, kind, target_id)}
    context = {
        "kind": kind,
        "target_name": name,
        "back": back,
        "action": f"{back}/droits",
        "groups": groups.list_groups(db, principal.tenant_id),
        "granted": granted,
        "rights": access.RIGHTS,
        "errors": errors or {},
    }
    return render(request, "ged/admin_rights.html", context, status=status, db=db)


def _save_rights(request: Request, db: Session, user: Any, form: Any, kind: str, target_id: str) -> Response:
    principal = _type_manager(db, user, target_id) if kind == access.TYPE else _admin(user)
    _target(db, principal, kind, target_id)
    wanted = []
    for group in groups.list_groups(db, principal.tenant_id):
        rights = [right for right in form.getlist(f"droits_{group.id}") if right in access.RIGHTS]
        if rights:
            wanted.append(PermissionIn(group_id=group.id, rights=rights))
    try:
        groups.set_permissions(db, principal, kind, target_id, wanted)
    except InvalidInput as exc:
        db.rollback()
        return _rights_page(request, db, principal, kind, target_id, errors={"form": exc.detail}, status=422)
    message = (
        t(request, "Droits enregistrés.")
        if wanted
        else t(request, "Droits enregistrés : aucun groupe n'est nommé, l'accès est ouvert à tous.")
    )
    _, back = _target(db, principal, kind, target_id)
    return redirect(f"{back}/droits", db=db, user=user, message=message)


@router.get("/admin/ged/types/{type_id}/droits")
def type_rights(request: Request, db: DbDep, user: UserDep, type_id: str) -> Response:
    return _rights_page(request, db, _type_manager(db, user, type_id), access.TYPE, type_id)


@router.post("/admin/ged/types/{type_id}/droits")
def save_type_rights(request: Request, db: DbDep, user: UserDep, form: FormDep, type_id: str) -> Response:
    return _save_rights(request, db, user, form, access.TYPE, type_id)


@router.get("/admin/ged/plan/{folder_id}/droits")
def folder_rights(request: Request, db: DbDep, user: UserDep, folder_id: str) -> Response:
    return _rights_page(request, db, _admin(user), access.FOLDER, folder_id)


@router.post("/admin/ged/plan/{folder_id}/droits")
def save_folder_rights(request: Request, db: DbDep, user: UserDep, form: FormDep, folder_id: str) -> Response:
    return _save_rights(request, db, user, form, access.FOLDER, folder_id)


# ---------------------------------------------------------------------------------------------------------
# Groups


def _groups_page(
    request: Request,
    db: Session,
    principal: Principal,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    context = {
        "groups": groups.list_groups(db, principal.tenant_id),
        "values": values or {},
        "errors": errors or {},
    }
    return render(request, "ged/admin_groups.html", context, status=status, db=db)


@router.get("/admin/ged/groupes")
def groups_page(request: Request, db: DbDep, user: UserDep) -> Response:
    return _groups_page(request, db, _admin(user))


@router.post("/admin/ged/groupes")
def create_group(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    principal = _admin(user)
    name = text(form, "name")
    if not name or len(name) > 200:
        errors = {"name": t(request, "Nom du groupe attendu (200 caractères au plus).")}
        return _groups_page(request, db, principal, values=form_values(form), errors=errors, status=422)
    try:
        group = groups.create_group(db, principal, name)
    except Conflict as exc:
        db.rollback()
        return _groups_page(request, db, principal, values=form_values(form), errors={"name": exc.detail}, status=409)
    message = t(request, "Groupe « %(name)s » créé.", name=group.name)
    return redirect(f"/admin/ged/groupes/{group.id}", db=db, user=user, message=message)


def _group_rights(db: Session, principal: Principal, group: Group) -> list[dict[str, Any]]:
    """What the group may do, target by target, with the page where it is set."""
    rows = db.execute(
        select(Permission).where(Permission.tenant_id == principal.tenant_id, Permission.group_id == group.id)
    ).scalars()
    shown = []
    for permission in rows:
        if permission.target_kind == access.FOLDER:
            folder = db.get(Folder, permission.target_id)
            name, url = (
                (folder.name if folder else permission.target_id),
                f"/admin/ged/plan/{permission.target_id}/droits",
            )
        else:
            document_type = db.get(DocumentType, permission.target_id)
            name = document_type.name if document_type else permission.target_id
            url = f"/admin/ged/types/{permission.target_id}/droits"
        shown.append({"kind": permission.target_kind, "name": name, "url": url, "rights": permission.rights})
    return sorted(shown, key=lambda row: (row["kind"], row["name"]))


def _group_page(
    request: Request,
    db: Session,
    principal: Principal,
    group_id: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    group = groups.get_group(db, principal.tenant_id, group_id)
    members = {member.username for member in group.members}
    users = db.execute(
        select(User.username, User.display_name)
        .where(User.tenant_id == principal.tenant_id, User.active.is_(True))
        .order_by(User.display_name)
    ).all()
    context = {
        "group": group,
        "names": {row.username: row.display_name for row in users},
        "candidates": [
            (row.username, f"{row.display_name} ({row.username})") for row in users if row.username not in members
        ],
        "rights": _group_rights(db, principal, group),
        "values": values or {},
        "errors": errors or {},
    }
    return render(request, "ged/admin_group.html", context, status=status, db=db)


@router.get("/admin/ged/groupes/{group_id}")
def group_page(request: Request, db: DbDep, user: UserDep, group_id: str) -> Response:
    return _group_page(request, db, _admin(user), group_id)


@router.post("/admin/ged/groupes/{group_id}/membres")
def add_member(request: Request, db: DbDep, user: UserDep, form: FormDep, group_id: str) -> Response:
    principal = _admin(user)
    username = text(form, "username")
    try:
        if not username:
            raise InvalidInput(t(request, "Choisissez la personne à ajouter."))
        groups.add_member(db, principal, group_id, username)
    except InvalidInput as exc:
        db.rollback()
        errors = {"username": exc.detail}
        return _group_page(request, db, principal, group_id, values=form_values(form), errors=errors, status=422)
    return redirect(f"/admin/ged/groupes/{group_id}", db=db, user=user, message=t(request, "Membre ajouté."))


@router.post("/admin/ged/groupes/{group_id}/membres/{username}/retirer")
def remove_member(request: Request, db: DbDep, user: UserDep, form: FormDep, group_id: str, username: str) -> Response:
    groups.remove_member(db, _admin(user), group_id, username)
    return redirect(f"/admin/ged/groupes/{group_id}", db=db, user=user, message=t(request, "Membre retiré."))


@router.post("/admin/ged/groupes/{group_id}/supprimer")
def delete_group(request: Request, db: DbDep, user: UserDep, form: FormDep, group_id: str) -> Response:
    groups.delete_group(db, _admin(user), group_id)
    return redirect("/admin/ged/groupes", db=db, user=user, message=t(request, "Groupe supprimé, avec ses droits."))


# ---------------------------------------------------------------------------------------------------------
# Classification plan


def _plan_page(
    request: Request,
    db: Session,
    principal: Principal,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    tree = folder_tree(db, principal)
    context = {
        "tree": tree,
        "folders": folder_options(tree),
        "values": values or {},
        "errors": errors or {},
    }
    return render(request, "ged/admin_plan.html", context, status=status, db=db)


@router.get("/admin/ged/plan")
def plan_page(request: Request, db: DbDep, user: UserDep) -> Response:
    return _plan_page(request, db, _admin(user))


FOLDER_FIELDS = {"name": "name", "code": "code", "parent_id": "parent_id"}


@router.post("/admin/ged/plan")
def create_folder(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    principal = _admin(user)
    try:
        body = FolderIn(
            name=text(form, "name"), code=text(form, "code") or None, parent_id=text(form, "parent_id") or None
        )
        folder = plan.create_folder(db, principal, body)
    except ValidationError as exc:
        errors = validation_errors(request, exc, FOLDER_FIELDS, "name")
        return _plan_page(request, db, principal, values=form_values(form), errors=errors, status=422)
    except (InvalidInput, Conflict, NotFound) as exc:
        db.rollback()
        field = "parent_id" if isinstance(exc, NotFound) else "name"
        return _plan_page(
            request, db, principal, values=form_values(form), errors={field: exc.detail}, status=exc.status
        )
    message = t(request, "Dossier « %(name)s » créé.", name=folder.name)
    return redirect("/admin/ged/plan", db=db, user=user, message=message)


def _folder_page(
    request: Request,
    db: Session,
    principal: Principal,
    folder_id: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    folder = plan.get_folder(db, principal.tenant_id, folder_id)
    tree = folder_tree(db, principal)
    context = {
        "folder": folder,
        "trail": plan.ancestors(db, folder),
        "parents": folder_options(tree, exclude_subtree=folder.id),
        "values": values or {"name": folder.name, "code": folder.code or "", "parent_id": folder.parent_id or ""},
        "errors": errors or {},
    }
    return render(request, "ged/admin_folder.html", context, status=status, db=db)


@router.get("/admin/ged/plan/{folder_id}")
def folder_page(request: Request, db: DbDep, user: UserDep, folder_id: str) -> Response:
    return _folder_page(request, db, _admin(user), folder_id)


def _update_folder(
    request: Request,
    db: Session,
    user: Any,
    form: Any,
    folder_id: str,
    patch: dict[str, Any],
    done: Callable[[str], str],
) -> Response:
    principal = _admin(user)
    plan.get_folder(db, principal.tenant_id, folder_id)
    try:
        folder = plan.update_folder(db, principal, folder_id, FolderPatch(**patch))
    except ValidationError as exc:
        errors = validation_errors(request, exc, FOLDER_FIELDS, "name")
        return _folder_page(request, db, principal, folder_id, values=form_values(form), errors=errors, status=422)
    except (InvalidInput, Conflict, NotFound) as exc:
        db.rollback()
        field = "parent_id" if "parent_id" in patch else "name"
        values = {**_folder_values(db, principal, folder_id), **form_values(form)}
        return _folder_page(
            request, db, principal, folder_id, values=values, errors={field: exc.detail}, status=exc.status
        )
    return redirect(f"/admin/ged/plan/{folder_id}", db=db, user=user, message=done(folder.name))


def _folder_values(db: Session, principal: Principal, folder_id: str) -> dict[str, str]:
    folder = plan.get_folder(db, principal.tenant_id, folder_id)
    return {"name": folder.name, "code": folder.code or "", "parent_id": folder.parent_id or ""}


@router.post("/admin/ged/plan/{folder_id}")
def rename_folder(request: Request, db: DbDep, user: UserDep, form: FormDep, folder_id: str) -> Response:
    patch = {"name": text(form, "name"), "code": text(form, "code") or None}
    return _update_folder(
        request,
        db,
        user,
        form,
        folder_id,
        patch,
        lambda name: t(request, "Dossier « %(name)s » enregistré.", name=name),
    )


@router.post("/admin/ged/plan/{folder_id}/deplacer")
def move_folder(request: Request, db: DbDep, user: UserDep, form: FormDep, folder_id: str) -> Response:
    patch = {"parent_id": text(form, "parent_id") or None}
    return _update_folder(
        request, db, user, form, folder_id, patch, lambda name: t(request, "Dossier « %(name)s » déplacé.", name=name)
    )


@router.post("/admin/ged/plan/{folder_id}/supprimer")
def delete_folder(request: Request, db: DbDep, user: UserDep, form: FormDep, folder_id: str) -> Response:
    principal = _admin(user)
    try:
        plan.delete_folder(db, principal, folder_id)
    except Conflict as exc:
        db.rollback()
        return _folder_page(request, db, principal, folder_id, errors={"form": exc.detail}, status=409)
    return redirect("/admin/ged/plan", db=db, user=user, message=t(request, "Dossier supprimé."))
