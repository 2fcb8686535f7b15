"""Administration pages of the parapheur: desks (bureaux) and their members (role admin), delegations (role
admin, or a member of the delegating desk, as the API allows).

Typologies and circuits are in :mod:`parapheur.ui_admin_typologies`, included here. Every change goes through
:mod:`parapheur.config` with the administrator's principal, exactly as the API does: same checks, same audit,
same 404 for another collectivité's desk.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from parapheur import config, ui_admin_typologies
from parapheur.models import Desk
from parapheur.ui_common import form_value as text
from parapheur.ui_common import refuse_nul
from socle.auth import Role
from socle.dates import PARIS  # what an administrator types is French local time; the kit keeps UTC
from socle.db import utcnow
from socle.errors import Conflict, Forbidden, InvalidInput, NotFound, SocleError, message
from socle.models import User
from socle.ui import rendering
from socle.ui.sessions import SignedIn
from socle.ui.web import DbDep, FormDep, UserDep, redirect, render, require_role, safe_next, t

router = APIRouter(include_in_schema=False)
router.include_router(ui_admin_typologies.router)
rendering.register("parapheur")


def require_admin(user: SignedIn) -> None:
    require_role(user, Role.ADMIN)


def strings(form: FormData, name: str) -> list[str]:
    values = [value for value in form.getlist(name) if isinstance(value, str) and value]
    for value in values:
        refuse_nul(value, name)
    return values


def refused(db: Session, exc: SocleError, field: str, errors: dict[str, str]) -> int:
    """Undo the refused attempt, tie the domain's message to ``field``; return the page's status."""
    db.rollback()
    errors[field] = exc.detail
    return exc.status


def tenant_users(db: Session, tenant_id: str) -> list[User]:
    """The collectivité's active accounts, who may become desk members."""
    query = select(User).where(User.tenant_id == tenant_id, User.active).order_by(User.display_name, User.username)
    return list(db.execute(query).scalars())


def user_options(db: Session, tenant_id: str) -> list[tuple[str, str]]:
    """(username, « Name (username) ») of the active accounts, for the members' checkboxes."""
    return [
        (account.username, f"{account.display_name} ({account.username})") for account in tenant_users(db, tenant_id)
    ]


# ---------------------------------------------------------------------------------------------------------
# Desks


def _desk_values(form: FormData) -> dict[str, Any]:
    return {
        "name": text(form, "name"),
        "description": text(form, "description"),
        "stamp_role": text(form, "stamp_role"),
        "members": strings(form, "members"),
    }


def _desk_errors(request: Request, values: dict[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not values["name"]:
        errors["name"] = t(request, "Saisissez le nom du bureau.")
    for field, limit in (("name", 200), ("stamp_role", 200), ("description", 2000)):
        if len(values[field]) > limit:
            errors[field] = t(request, "%(count)s caractères au plus.", count=limit)
    return errors


def _desk_field(exc: SocleError) -> str:
    return "members" if "utilisateur" in exc.detail else "name"


def _desks_page(
    request: Request,
    db: Session,
    user: SignedIn,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    tenant_id = user.principal.tenant_id
    people = {account.username: account.display_name for account in tenant_users(db, tenant_id)}
    context = {
        "desks": config.list_desks(db, tenant_id),
        "user_options": user_options(db, tenant_id),
        "people": people,
        "values": values or {"members": []},
        "errors": errors or {},
    }
    return render(request, "parapheur/admin_desks.html", context, status=status, db=db)


@router.get("/admin/parapheur/bureaux", response_class=HTMLResponse)
def desks_page(request: Request, db: DbDep, user: UserDep) -> Response:
    require_admin(user)
    return _desks_page(request, db, user)


@router.post("/admin/parapheur/bureaux", response_class=HTMLResponse)
def create_desk(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    require_admin(user)
    values = _desk_values(form)
    errors = _desk_errors(request, values)
    status = 400
    if not errors:
        try:
            desk = config.create_desk(
                db,
                user.principal,
                values["name"],
                values["description"] or None,
                values["stamp_role"] or None,
                values["members"],
            )
        except (InvalidInput, Conflict) as exc:
            status = refused(db, exc, _desk_field(exc), errors)
    if errors:
        return _desks_page(request, db, user, values=values, errors=errors, status=status)
    message = t(request, "Bureau « %(name)s » créé.", name=desk.name)
    return redirect("/admin/parapheur/bureaux", db=db, user=user, message=message)


def _desk_page(
    request: Request,
    db: Session,
    user: SignedIn,
    desk: Desk,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    shown = values or {
        "name": desk.name,
        "description": desk.description or "",
        "stamp_role": desk.stamp_role or "",
        "members": [member.username for member in desk.members],
    }
    tenant_id = user.principal.tenant_id
    context = {
        "desk": desk,
        "user_options": user_options(db, tenant_id),
        "delegations": config.list_delegations(db, tenant_id, desk.id),
        "desk_names": config.desk_names(db, tenant_id),
        "values": shown,
        "errors": errors or {},
    }
    return render(request, "parapheur/admin_desk.html", context, status=status, db=db)


@router.get("/admin/parapheur/bureaux/{desk_id}", response_class=HTMLResponse)
def desk_page(request: Request, db: DbDep, user: UserDep, desk_id: str) -> Response:
    require_admin(user)
    return _desk_page(request, db, user, config.get_desk(db, user.principal.tenant_id, desk_id))


@router.post("/admin/parapheur/bureaux/{desk_id}", response_class=HTMLResponse)
def update_desk(request: Request, db: DbDep, user: UserDep, form: FormDep, desk_id: str) -> Response:
    require_admin(user)
    desk = config.get_desk(db, user.principal.tenant_id, desk_id)
    values = _desk_values(form)
    errors = _desk_errors(request, values)
    status = 400
    if not errors:
        changes = {
            "name": values["name"],
            "description": values["description"] or None,
            "stamp_role": values["stamp_role"] or None,
            "members": values["members"],
        }
        try:
            config.update_desk(db, user.principal, desk.id, changes)
        except (InvalidInput, Conflict) as exc:
            status = refused(db, exc, _desk_field(exc), errors)
    if errors:
        desk = config.get_desk(db, user.principal.tenant_id, desk_id)
        return _desk_page(request, db, user, desk, values=values, errors=errors, status=status)
    message = t(request, "Bureau « %(name)s » enregistré.", name=values["name"])
    return redirect(f"/admin/parapheur/bureaux/{desk.id}", db=db, user=user, message=message)


@router.post("/admin/parapheur/bureaux/{desk_id}/suppression", response_class=HTMLResponse)
def delete_desk(request: Request, db: DbDep, user: UserDep, form: FormDep, desk_id: str) -> Response:
    require_admin(user)
    desk = config.get_desk(db, user.principal.tenant_id, desk_id)
    name = desk.name
    try:
        config.delete_desk(db, user.principal, desk.id)
    except Conflict as exc:
        errors: dict[str, str] = {}
        status = refused(db, exc, "form", errors)
        desk = config.get_desk(db, user.principal.tenant_id, desk_id)
        return _desk_page(request, db, user, desk, errors=errors, status=status)
    message = t(request, "Bureau « %(name)s » supprimé.", name=name)
    return redirect("/admin/parapheur/bureaux", db=db, user=user, message=message)


# ---------------------------------------------------------------------------------------------------------
# Delegations


def local_moment(value: str) -> datetime | None:
    """A ``datetime-local`` field (French local time) as an aware instant, or None if it cannot be read."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=PARIS) if moment.tzinfo is None else moment


def _delegation_values(form: FormData) -> dict[str, Any]:
    return {
        "from_desk_id": text(form, "from_desk_id"),
        "to_desk_id": text(form, "to_desk_id"),
        "starts_at": text(form, "starts_at"),
        "ends_at": text(form, "ends_at"),
        "subtype_ids": strings(form, "subtype_ids"),
    }


# The page answers at two addresses: the administration's, and the parapheur's for a desk's own members (a
# mayor sets her own delegation, as the API lets her). Both show what the caller may manage, no more.
DELEGATION_PAGES = ("/admin/parapheur/delegations", "/bureau/delegations")


def _delegating_desks(db: Session, user: SignedIn) -> list[Desk]:
    """The desks whose delegations the user may set and end; Forbidden when a member of no desk (same rule as the
    API). An administrator may have none yet (no desk in the collectivité): the page then says to create them."""
    desks = config.delegating_desks(db, user.principal)
    if not desks and Role.ADMIN not in user.principal.roles:
        raise Forbidden(
            message(
                "les délégations d'un bureau sont posées par ses membres ou par un administrateur ; "
                "vous n'êtes membre d'aucun bureau"
            )
        )
    return desks


def _delegations_page(
    request: Request,
    db: Session,
    user: SignedIn,
    base: str,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    tenant_id = user.principal.tenant_id
    own = {desk.id for desk in _delegating_desks(db, user)}
    is_admin = Role.ADMIN in user.principal.roles
    everything = config.list_delegations(db, tenant_id)
    # A member sees the delegations from or to their desks; an administrator, all of them.
    shown = [row for row in everything if is_admin or row.from_desk_id in own or row.to_desk_id in own]
    desks = config.list_desks(db, tenant_id)
    subtype_names = {row.id: f"{row.type.name} / {row.name}" for row in config.list_subtypes(db, tenant_id)}
    now = utcnow()
    context = {
        "base": base,
        "is_admin": is_admin,
        "delegations": [
            {
                "row": delegation,
                "state": "running"
                if delegation.starts_at <= now < delegation.ends_at
                else ("ended" if delegation.ends_at <= now else "coming"),
                "overlaps": bool(config.overlapping(delegation, everything)),
                "may_end": delegation.from_desk_id in own,
            }
            for delegation in shown
        ],
        "desks": desks,
        "from_choices": [(desk.id, desk.name) for desk in desks if desk.id in own],
        "desk_choices": [(desk.id, desk.name) for desk in desks],
        "desk_names": {desk.id: desk.name for desk in desks},
        "subtype_choices": list(subtype_names.items()),
        "subtype_names": subtype_names,
        "values": values or {"subtype_ids": [], "from_desk_id": next(iter(own)) if len(own) == 1 else ""},
        "errors": errors or {},
    }
    return render(request, "parapheur/admin_delegations.html", context, status=status, db=db)


def _delegation_base(request: Request) -> str:
    path = request.url.path
    return next((base for base in DELEGATION_PAGES if path.startswith(base)), DELEGATION_PAGES[0])


@router.get("/admin/parapheur/delegations", response_class=HTMLResponse)
@router.get("/bureau/delegations", response_class=HTMLResponse)
def delegations_page(request: Request, db: DbDep, user: UserDep) -> Response:
    return _delegations_page(request, db, user, _delegation_base(request))


@router.post("/admin/parapheur/delegations", response_class=HTMLResponse)
@router.post("/bureau/delegations", response_class=HTMLResponse)
def create_delegation(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    base = _delegation_base(request)
    _delegating_desks(db, user)
    values = _delegation_values(form)
    errors: dict[str, str] = {}
    for field, wording in (
        ("from_desk_id", t(request, "Choisissez le bureau absent.")),
        ("to_desk_id", t(request, "Choisissez le bureau qui le remplace.")),
    ):
        if not values[field]:
            errors[field] = wording
    moments: dict[str, datetime] = {}
    for field in ("starts_at", "ends_at"):
        moment = local_moment(values[field])
        if moment is None:
            errors[field] = t(request, "Saisissez une date et une heure (jj/mm/aaaa hh:mm).")
        else:
            moments[field] = moment
    status = 400
    if not errors:
        try:
            config.create_delegation(
                db,
                user.principal,
                values["from_desk_id"],
                values["to_desk_id"],
                moments["starts_at"],
                moments["ends_at"],
                values["subtype_ids"] or None,
            )
        except Forbidden as exc:  # a desk the user is no member of (a form of another page, or edited)
            status = refused(db, exc, "from_desk_id", errors)
        except (InvalidInput, NotFound) as exc:
            field = exc.extra.get("field") or (
                "ends_at" if "fin" in exc.detail else ("subtype_ids" if "sous-type" in exc.detail else "to_desk_id")
            )
            status = refused(db, exc, field, errors)
            status = 422 if isinstance(exc, NotFound) else status  # a stale choice in the form, not a missing page
    if errors:
        return _delegations_page(request, db, user, base, values=values, errors=errors, status=status)
    return redirect(base, db=db, user=user, message=t(request, "Délégation enregistrée."))


@router.post("/admin/parapheur/delegations/{delegation_id}/suppression", response_class=HTMLResponse)
@router.post("/bureau/delegations/{delegation_id}/suppression", response_class=HTMLResponse)
def delete_delegation(request: Request, db: DbDep, user: UserDep, form: FormDep, delegation_id: str) -> Response:
    base = _delegation_base(request)
    _delegating_desks(db, user)  # someone who may end no delegation is refused as on the page, before any lookup
    config.delete_delegation(db, user.principal, delegation_id)  # its desk's members or an administrator
    back = text(form, "suivant")
    # Back to the desk's page or the list it was deleted from: a path of this site, within these pages.
    target = safe_next(back, base)
    if not target.startswith(("/admin/parapheur/", *DELEGATION_PAGES)):
        target = base
    return redirect(target, db=db, user=user, message=t(request, "Délégation supprimée."))
