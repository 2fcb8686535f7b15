"""« Mes préférences »: how the signed-in person hears about folders (parapheur.notify): a mail per event
(immediate, the default), a daily digest, or none.

The page does what ``GET``/``PUT /parapheur/notifications/preferences`` do, for the signed-in person only: the
same functions, the same refusal of an unknown mode. Like the API, it is open to any signed-in person (anyone
may be made a member of a desk, and hear about its folders), and nothing of it is audited.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from parapheur import notify
from parapheur.ui_common import form_value
from socle.errors import InvalidInput
from socle.models import User
from socle.ui.sessions import SignedIn
from socle.ui.web import DbDep, FormDep, UserDep, redirect, render, t

router = APIRouter(include_in_schema=False)

URL = "/bureau/preferences"


def _page(
    request: Request,
    db: Session,
    user: SignedIn,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    principal = user.principal
    account = db.get(User, principal.user_id)
    context = {
        "email": account.email if account is not None else None,
        "modes": notify.MODES,
        "values": values or {"mode": notify.get_preference(db, principal.tenant_id, principal.username)},
        "errors": errors or {},
    }
    return render(request, "parapheur/preferences.html", context, status=status, db=db)


@router.get(URL, response_class=HTMLResponse)
def preferences_page(request: Request, db: DbDep, user: UserDep) -> Response:
    return _page(request, db, user)


@router.post(URL, response_class=HTMLResponse)
def save_preferences(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    errors: dict[str, str] = {}
    mode = ""
    try:
        mode = form_value(form, "mode", 20)
    except InvalidInput as exc:
        errors["mode"] = exc.detail
    if not errors and not mode:
        errors["mode"] = t(request, "Choisissez comment être prévenu.")
    status = 400
    if not errors:
        principal = user.principal
        try:
            notify.set_preference(db, principal.tenant_id, principal.username, mode)
        except InvalidInput as exc:  # a value no choice of the page sends (the form was edited)
            db.rollback()
            errors["mode"], status = exc.detail, exc.status
    if errors:
        return _page(request, db, user, values={"mode": mode}, errors=errors, status=status)
    db.commit()
    return redirect(URL, db=db, user=user, message=t(request, "Préférences enregistrées."))
