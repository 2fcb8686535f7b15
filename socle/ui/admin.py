"""Administration pages of the kernel: the index of the administration areas, the collectivité and its user
accounts (role admin).

Every change goes through ``socle.auth`` and is audited with the administrator as actor. A page that refuses
its input rolls the transaction back before showing the form again: nothing is half-written.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from socle.auth import (
    Role,
    create_user,
    get_user_by_id,
    set_active,
    set_password,
    update_tenant,
    update_user,
)
from socle.errors import Conflict, InvalidInput, SocleError
from socle.models import Tenant, User
from socle.ui import rendering
from socle.ui.passwords import check_strength
from socle.ui.rendering import Section
from socle.ui.sessions import SignedIn
from socle.ui.web import DbDep, FormDep, UserDep, redirect, render, require_role, t

router = APIRouter(include_in_schema=False)
rendering.register("socle.ui", Section("Administration", "/admin", frozenset({Role.ADMIN.value}), order=90))

ROLES = [role.value for role in Role]


def _admin(user: SignedIn) -> None:
    require_role(user, Role.ADMIN)


def _tenant(db: Session, user: SignedIn) -> Tenant:
    tenant = db.get(Tenant, user.principal.tenant_id)
    assert tenant is not None  # the session row points to it
    return tenant


def _text(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def _refused(db: Session, exc: SocleError, field: str, errors: dict[str, str]) -> int:
    """Undo what the refused attempt wrote, tie the domain's message to ``field``; return the page's status."""
    db.rollback()
    errors[field] = exc.detail
    return exc.status


# ---------------------------------------------------------------------------------------------------------
# Index and collectivité


@router.get("/admin", response_class=HTMLResponse)
def index(request: Request, db: DbDep, user: UserDep) -> Response:
    _admin(user)
    return render(request, "socle/admin_index.html", {}, db=db)


@router.get("/admin/collectivite", response_class=HTMLResponse)
def tenant_page(request: Request, db: DbDep, user: UserDep) -> Response:
    _admin(user)
    tenant = _tenant(db, user)
    values = {"name": tenant.name, "siren": tenant.siren or ""}
    return render(request, "socle/admin_tenant.html", {"tenant": tenant, "values": values}, db=db)


@router.post("/admin/collectivite", response_class=HTMLResponse)
def tenant_update(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    _admin(user)
    tenant = _tenant(db, user)
    values = {"name": _text(form, "name"), "siren": _text(form, "siren").replace(" ", "")}
    errors: dict[str, str] = {}
    if not values["name"]:
        errors["name"] = t(request, "Saisissez le nom de la collectivité.")
    status = 400 if errors else 200
    if not errors:
        try:
            update_tenant(db, tenant, name=values["name"], siren=values["siren"] or None, actor=user.principal.actor)
        except (InvalidInput, Conflict) as exc:
            status = _refused(db, exc, "siren" if "SIREN" in exc.detail else "name", errors)
    if errors:
        tenant = _tenant(db, user)
        context = {"tenant": tenant, "values": values, "errors": errors}
        return render(request, "socle/admin_tenant.html", context, status=status, db=db)
    return redirect("/admin/collectivite", db=db, user=user, message=t(request, "Collectivité enregistrée."))


# ---------------------------------------------------------------------------------------------------------
# Users


@router.get("/admin/utilisateurs", response_class=HTMLResponse)
def users_page(request: Request, db: DbDep, user: UserDep) -> Response:
    _admin(user)
    users = db.execute(
        select(User).where(User.tenant_id == user.principal.tenant_id).order_by(User.active.desc(), User.username)
    ).scalars()
    return render(request, "socle/admin_users.html", {"users": list(users)}, db=db)


@router.get("/admin/utilisateurs/nouveau", response_class=HTMLResponse)
def new_user_page(request: Request, db: DbDep, user: UserDep) -> Response:
    _admin(user)
    values: dict[str, Any] = {"roles": [Role.AGENT.value]}
    return render(request, "socle/admin_user_new.html", {"values": values, "all_roles": ROLES}, db=db)


def _profile(form: FormData) -> dict[str, Any]:
    roles = [role for role in form.getlist("roles") if isinstance(role, str)]
    return {"display_name": _text(form, "display_name"), "email": _text(form, "email"), "roles": roles}


def _profile_field(message: str) -> str:
    """The form field a kernel message is about (socle.auth's messages name what they refuse)."""
    for word, field in (("identifiant", "username"), ("nom affiché", "display_name"), ("courriel", "email")):
        if word in message:
            return field
    if "rôle" in message or "administrateur" in message:
        return "roles"
    return "form"


def _password_errors(request: Request, form: FormData, errors: dict[str, str], *, required: bool) -> str:
    """The password typed twice, checked; "" when none was typed (and none is required)."""
    password, confirm = str(form.get("password", "")), str(form.get("password_confirm", ""))
    if not password and not required:
        if confirm:
            errors["password"] = t(request, "Saisissez le mot de passe dans les deux champs.")
        return ""
    if not password:
        errors["password"] = t(request, "Saisissez le nouveau mot de passe.")
        return ""
    try:
        check_strength(password)
    except InvalidInput as exc:
        errors["password"] = exc.detail
    if password != confirm:
        errors["password_confirm"] = t(request, "Les deux mots de passe saisis diffèrent.")
    return password


@router.post("/admin/utilisateurs/nouveau", response_class=HTMLResponse)
def new_user(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    _admin(user)
    values = {"username": _text(form, "username"), **_profile(form)}
    errors: dict[str, str] = {}
    if not values["username"]:
        errors["username"] = t(request, "Saisissez l'identifiant de connexion.")
    if not values["display_name"]:
        errors["display_name"] = t(request, "Saisissez le nom affiché.")
    password = _password_errors(request, form, errors, required=False)
    if not password and not values["email"] and "password" not in errors:
        errors["email"] = t(
            request, "Un compte sans mot de passe se connecte par OpenID Connect : son courriel est nécessaire."
        )
    status = 400 if errors else 201
    if not errors:
        try:
            actor = user.principal.actor
            created = create_user(
                db,
                _tenant(db, user),
                values["username"],
                values["display_name"],
                values["roles"],
                values["email"] or None,
                actor=actor,
            )
            if password:
                set_password(db, created, password, actor=actor)
        except (InvalidInput, Conflict) as exc:
            field = "username" if isinstance(exc, Conflict) else _profile_field(exc.detail)
            status = _refused(db, exc, field, errors)
    if errors:
        context = {"values": values, "errors": errors, "all_roles": ROLES}
        return render(request, "socle/admin_user_new.html", context, status=status, db=db)
    message = t(request, "Utilisateur « %(name)s » ajouté.", name=values["username"])
    return redirect(f"/admin/utilisateurs/{created.id}", db=db, user=user, message=message)


def _user_page(
    request: Request,
    db: Session,
    target: User,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    shown = values or {"display_name": target.display_name, "email": target.email or "", "roles": target.roles}
    context = {"target": target, "values": shown, "errors": errors or {}, "all_roles": ROLES}
    return render(request, "socle/admin_user.html", context, status=status, db=db)


@router.get("/admin/utilisateurs/{user_id}", response_class=HTMLResponse)
def user_page(request: Request, db: DbDep, user: UserDep, user_id: str) -> Response:
    _admin(user)
    return _user_page(request, db, get_user_by_id(db, user.principal.tenant_id, user_id))


@router.post("/admin/utilisateurs/{user_id}", response_class=HTMLResponse)
def user_update(request: Request, db: DbDep, user: UserDep, form: FormDep, user_id: str) -> Response:
    _admin(user)
    target = get_user_by_id(db, user.principal.tenant_id, user_id)
    values = _profile(form)
    errors: dict[str, str] = {}
    if not values["display_name"]:
        errors["display_name"] = t(request, "Saisissez le nom affiché.")
    if not values["email"] and not target.password_hash:
        errors["email"] = t(
            request, "Un compte sans mot de passe se connecte par OpenID Connect : son courriel est nécessaire."
        )
    status = 400
    if not errors:
        try:
            update_user(
                db,
                target,
                display_name=values["display_name"],
                email=values["email"] or None,
                roles=values["roles"],
                actor=user.principal.actor,
            )
        except (InvalidInput, Conflict) as exc:
            status = _refused(db, exc, _profile_field(exc.detail), errors)
    if errors:
        target = get_user_by_id(db, user.principal.tenant_id, user_id)
        return _user_page(request, db, target, values=values, errors=errors, status=status)
    return redirect(f"/admin/utilisateurs/{target.id}", db=db, user=user, message=t(request, "Utilisateur enregistré."))


@router.post("/admin/utilisateurs/{user_id}/activation", response_class=HTMLResponse)
def user_activation(request: Request, db: DbDep, user: UserDep, form: FormDep, user_id: str) -> Response:
    _admin(user)
    target = get_user_by_id(db, user.principal.tenant_id, user_id)
    active = _text(form, "active") == "1"
    try:
        set_active(db, target, active, actor=user.principal.actor)
    except Conflict as exc:
        errors: dict[str, str] = {}
        status = _refused(db, exc, "form", errors)
        target = get_user_by_id(db, user.principal.tenant_id, user_id)
        return _user_page(request, db, target, errors=errors, status=status)
    if target.id == user.principal.user_id and not active:
        return redirect("/connexion")  # an administrator who disabled their own account is signed out
    message = t(request, "Compte réactivé.") if active else t(request, "Compte désactivé ; ses sessions sont fermées.")
    return redirect(f"/admin/utilisateurs/{target.id}", db=db, user=user, message=message)


@router.post("/admin/utilisateurs/{user_id}/mot-de-passe", response_class=HTMLResponse)
def user_password(request: Request, db: DbDep, user: UserDep, form: FormDep, user_id: str) -> Response:
    _admin(user)
    target = get_user_by_id(db, user.principal.tenant_id, user_id)
    actor = user.principal.actor
    if _text(form, "action") == "remove":
        if not target.email:
            errors = {
                "form": t(
                    request,
                    "Donnez d'abord un courriel au compte : sans mot de passe, il se connecte par OpenID Connect.",
                )
            }
            return _user_page(request, db, target, errors=errors, status=409)
        set_password(db, target, None, actor=actor)
        message = t(request, "Mot de passe retiré : le compte se connecte par OpenID Connect.")
    else:
        errors = {}
        password = _password_errors(request, form, errors, required=True)
        if errors:
            return _user_page(request, db, target, errors=errors, status=400)
        set_password(db, target, password, actor=actor)
        message = t(request, "Mot de passe enregistré ; les sessions ouvertes du compte sont fermées.")
    if target.id == user.principal.user_id:
        return redirect("/connexion")  # their own sessions were closed with the others
    return redirect(f"/admin/utilisateurs/{target.id}", db=db, user=user, message=message)
