"""Administration page of the signing identities: agents' PKCS#12 identities and the collectivité's seals
(cachets serveur). Administrators only, as the API (parapheur.api_identities).

Every change goes through :mod:`parapheur.identities` with the administrator as actor, as the API's routes do:
same checks, same audit entries, same refusals (a domain refusal is shown next to its field). The page shows the
certificate only (subject, issuer, serial number, validity: parapheur.schemas.IdentityOut, the API's listing),
never a file or a secret; the passphrase typed is never shown again, not even with an error.

A seal held by a PKCS#11 token (HSM, card) is imported on the command line (``socle parapheur seal-import``):
the page lists it and can remove it.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from parapheur import identities
from parapheur.schemas import IdentityOut
from parapheur.ui_common import form_value
from socle.auth import Role
from socle.db import utcnow
from socle.errors import Conflict, InvalidInput, NotFound, SocleError
from socle.models import Tenant, User
from socle.ui.sessions import SignedIn
from socle.ui.web import DbDep, FormDep, UserDep, redirect, render, require_role, t

router = APIRouter(include_in_schema=False)

URL = "/admin/parapheur/identites"
FILE_MAX = 1024 * 1024  # a PKCS#12 file or a stamp image, as the API (parapheur.api_identities)
LABEL_MAX = 200  # a seal's name, as the API
Form = Literal["user", "seal"]


def _require_admin(user: SignedIn) -> None:
    require_role(user, Role.ADMIN)


def _page(
    request: Request,
    db: Session,
    user: SignedIn,
    *,
    failed: Form | Literal["remove"] | None = None,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    tenant_id = user.principal.tenant_id
    accounts = list(
        db.execute(select(User).where(User.tenant_id == tenant_id).order_by(User.display_name, User.username)).scalars()
    )
    rows = [IdentityOut.of(row) for row in identities.list_rows(db, tenant_id)]
    context = {
        "users": [row for row in rows if row.purpose == identities.USER],
        "seals": [row for row in rows if row.purpose == identities.SEAL],
        "people": {account.username: account.display_name for account in accounts},
        "user_options": [
            (account.username, f"{account.display_name} ({account.username})") for account in accounts if account.active
        ],
        "now": utcnow(),
        "failed": failed,
        "file_max": FILE_MAX,
        "values": values or {},
        "errors": errors or {},
    }
    return render(request, "parapheur/admin_identities.html", context, status=status, db=db)


@router.get(URL, response_class=HTMLResponse)
def identities_page(request: Request, db: DbDep, user: UserDep) -> Response:
    _require_admin(user)
    return _page(request, db, user)


# ---------------------------------------------------------------------------------------------------------
# Importing: the agent's identity or a seal, from a PKCS#12 file and its passphrase


def _upload(form: FormData, name: str) -> UploadFile | None:
    item = form.get(name)
    return item if isinstance(item, UploadFile) and item.filename else None


def _file_faults(request: Request, field: str) -> tuple[str, str]:
    """What is said of a file too big, or empty, in the page's language."""
    size = FILE_MAX // (1024 * 1024)
    if field.endswith("_image"):
        return t(request, "L'image du cachet dépasse %(size)s Mio.", size=size), t(
            request, "L'image du cachet est vide."
        )
    return t(request, "Le fichier PKCS#12 dépasse %(size)s Mio.", size=size), t(request, "Le fichier PKCS#12 est vide.")


def _read(request: Request, form: FormData, field: str, errors: dict[str, str]) -> bytes | None:
    """The bytes of the file chosen in ``field`` (``FILE_MAX`` at most); None if none was chosen, or, with the
    reason in ``errors``, if it cannot be used (the API's rules: 1 Mio at most, not empty)."""
    upload = _upload(form, field)
    if upload is None:
        return None
    too_big, empty = _file_faults(request, field)
    data = upload.file.read(FILE_MAX + 1)
    if len(data) > FILE_MAX:
        errors[field] = too_big
    elif not data:
        errors[field] = empty
    else:
        return data
    return None


def _field_of(exc: SocleError, kind: Form, name_field: str) -> str:
    """The field a refusal of parapheur.identities is about: the seal's name (a text the kit refuses names its
    field), the stamp image, the passphrase, else the file (pades' messages, in French, say which)."""
    detail = str(exc.detail)
    if exc.extra.get("field"):
        return name_field
    if "image" in detail.lower():
        return f"{kind}_image"
    if "phrase de passe" in detail:
        return f"{kind}_passphrase"
    return f"{kind}_file"


def _import(request: Request, db: Session, user: SignedIn, form: FormData, kind: Form) -> Response:
    """Read the form of ``kind`` (an agent's identity, a seal), import it through parapheur.identities, commit."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    name_field = "user" if kind == "user" else "seal_label"
    try:
        values[name_field] = form_value(form, name_field, LABEL_MAX + 1)
    except InvalidInput as exc:
        values[name_field], errors[name_field] = "", exc.detail
    if name_field not in errors and not values[name_field]:
        errors[name_field] = (
            t(request, "Choisissez l'agent.") if kind == "user" else t(request, "Saisissez le nom du cachet.")
        )
    elif len(values[name_field]) > LABEL_MAX:
        errors[name_field] = t(request, "%(count)s caractères au plus.", count=LABEL_MAX)
    pkcs12 = _read(request, form, f"{kind}_file", errors)
    if pkcs12 is None and f"{kind}_file" not in errors:
        errors[f"{kind}_file"] = t(request, "Choisissez le fichier PKCS#12 (.p12 ou .pfx).")
    passphrase = form.get(f"{kind}_passphrase")  # as typed: never trimmed, never shown again
    if not isinstance(passphrase, str) or not passphrase:
        errors[f"{kind}_passphrase"] = t(request, "Saisissez la phrase de passe du fichier PKCS#12.")
    image = _read(request, form, f"{kind}_image", errors)
    status = 400
    if not errors and pkcs12 is not None and isinstance(passphrase, str):
        tenant = db.get(Tenant, user.principal.tenant_id)
        if tenant is None:
            raise NotFound("collectivité introuvable")
        importer = identities.import_identity if kind == "user" else identities.import_seal_pkcs12
        try:
            row = importer(
                db,
                tenant,
                values[name_field],
                pkcs12,
                passphrase.encode(),
                stamp_image=image,
                actor=user.principal.actor,
            )
        except NotFound as exc:  # an agent unknown to the collectivité (a stale choice): told next to the list
            db.rollback()
            errors[name_field], status = exc.detail, 422
        except InvalidInput as exc:  # not a PKCS#12, wrong passphrase, an image pades refuses, a bad name
            db.rollback()
            errors[_field_of(exc, kind, name_field)], status = exc.detail, exc.status
        else:
            subject = row.subject
            db.commit()
            done = (
                t(
                    request,
                    "Identité de signature de %(user)s enregistrée : %(subject)s.",
                    user=values[name_field],
                    subject=subject,
                )
                if kind == "user"
                else t(
                    request, "Cachet « %(label)s » enregistré : %(subject)s.", label=values[name_field], subject=subject
                )
            )
            return redirect(URL, db=db, user=user, message=done)
    return _page(request, db, user, failed=kind, values=values, errors=errors, status=status)


@router.post(URL + "/agents", response_class=HTMLResponse)
def import_user_identity(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    _require_admin(user)
    return _import(request, db, user, form, "user")


@router.post(URL + "/cachets", response_class=HTMLResponse)
def import_seal(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    _require_admin(user)
    return _import(request, db, user, form, "seal")


# ---------------------------------------------------------------------------------------------------------
# Removing


@router.post(URL + "/agents/{username}/suppression", response_class=HTMLResponse)
def remove_user_identity(request: Request, db: DbDep, user: UserDep, form: FormDep, username: str) -> Response:
    _require_admin(user)
    # None for this agent (removed meanwhile, or another collectivité's): the « introuvable » page, as the API's 404.
    identities.remove_user_identity(db, user.principal.tenant_id, username, actor=user.principal.actor)
    db.commit()
    return redirect(
        URL, db=db, user=user, message=t(request, "Identité de signature de %(user)s retirée.", user=username)
    )


@router.post(URL + "/cachets/{identity_id}/suppression", response_class=HTMLResponse)
def remove_seal(request: Request, db: DbDep, user: UserDep, form: FormDep, identity_id: str) -> Response:
    _require_admin(user)
    rows = {row.id: row for row in identities.seal_rows(db, user.principal.tenant_id)}
    label = rows[identity_id].label if identity_id in rows else None
    try:
        identities.remove_seal(db, user.principal.tenant_id, identity_id, actor=user.principal.actor)
    except Conflict as exc:  # still used by a sous-type, or owed by a folder on its way: the page says which
        db.rollback()
        return _page(request, db, user, failed="remove", errors={"form": exc.detail}, status=exc.status)
    db.commit()
    return redirect(URL, db=db, user=user, message=t(request, "Cachet « %(label)s » retiré.", label=label or ""))
