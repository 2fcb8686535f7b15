"""The pages every service shares: home, sign-in, sign-out, language."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from socle.models import Tenant, User
from socle.ui import rendering, sessions
from socle.ui.passwords import verify_password
from socle.ui.web import LOCALE_COOKIE, DbDep, FormDep, LoginRequired, UserDep, current_user, render, safe_next, t

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, db: DbDep) -> Response:
    try:
        user = current_user(request, db)
    except LoginRequired:
        return RedirectResponse("/connexion", status_code=303)
    return render(request, "socle/home.html", {"signed_in": user}, db=db)


@router.get("/connexion", response_class=HTMLResponse)
def login_page(request: Request, db: DbDep, suivant: str = "", expiree: str = "") -> Response:
    return _login_form(request, db, suivant, expired=bool(expiree))


@router.post("/connexion", response_class=HTMLResponse)
def login(request: Request, db: DbDep, form: FormDep) -> Response:
    values = {key: str(form.get(key, "")) for key in ("tenant", "username", "suivant")}
    password = str(form.get("password", ""))
    errors: dict[str, str] = {}
    if not values["tenant"].strip():
        errors["tenant"] = t(request, "Choisissez votre collectivité.")
    if not values["username"].strip():
        errors["username"] = t(request, "Saisissez votre identifiant.")
    if not password:
        errors["password"] = t(request, "Saisissez votre mot de passe.")
    if errors:
        return _login_form(request, db, values["suivant"], values=values, errors=errors, status=400)
    # Bounded: the keys are stored (a typed name of any length is only a wrong one).
    account_key = f"account:{values['tenant'][:63]}/{values['username'].strip().lower()[:150]}"
    address_key = f"address:{request.client.host if request.client else '?'}"
    device = request.cookies.get(sessions.DEVICE_COOKIE)
    counted = sessions.limit_key(device, account_key)  # this browser's own count when the account knows it
    known = counted != account_key
    attempt = sessions.start_attempt(db, counted, address_key, known_device=known)  # a failure until proved right
    if attempt.wait:
        message = t(
            request, "Trop de tentatives de connexion. Réessayez dans %(minutes)s minutes.", minutes=attempt.wait
        )
        return _login_form(request, db, values["suivant"], values=values, errors={"form": message}, status=429)
    user = db.execute(
        select(User)
        .join(Tenant, Tenant.id == User.tenant_id)
        .where(Tenant.slug == values["tenant"], User.username == values["username"].strip())
    ).scalar_one_or_none()
    if not verify_password(password, user.password_hash if user else None) or user is None or not user.active:
        message = t(request, "Identifiant ou mot de passe incorrect.")
        return _login_form(request, db, values["suivant"], values=values, errors={"form": message}, status=401)
    sessions.succeeded(db, attempt, counted)
    sessions.close_session(db, request.cookies.get(sessions.COOKIE))  # the browser's previous session ends here
    cookie = sessions.open_session(db, user, client=address_key)
    response = signed_in_redirect(safe_next(values["suivant"]), cookie)
    response.set_cookie(
        sessions.DEVICE_COOKIE,
        sessions.remember_device(device, account_key),
        max_age=int(sessions.DEVICE_LIFETIME.total_seconds()),
        httponly=True,
        secure=True,
        samesite="strict",  # only read by this site's own sign-in form
    )
    return response


def signed_in_redirect(target: str, cookie: str) -> Response:
    """Answer a successful sign-in: set the session cookie and go where the user was going."""
    response = RedirectResponse(target, status_code=303)
    # No max_age: the cookie goes when the browser closes (a shared desk at the town hall: the next person
    # does not find the session open); the server ends it anyway after its idle and total lifetimes.
    response.set_cookie(
        sessions.COOKIE,
        cookie,
        httponly=True,
        secure=True,
        samesite="lax",  # lax, not strict: a link from a notification mail must open the folder signed in
    )
    return response


def _login_form(
    request: Request,
    db: DbDep,
    suivant: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
    expired: bool = False,
) -> Response:
    tenants = db.execute(select(Tenant.slug, Tenant.name).order_by(Tenant.name)).all()
    values = values or {}
    if len(tenants) == 1 and not values.get("tenant"):
        values["tenant"] = tenants[0].slug
    context = {
        "tenants": tenants,
        "suivant": safe_next(suivant, ""),
        "values": values,
        "errors": errors or {},
        "providers": login_providers(),
        "expired": expired,  # a form was sent after the session ended: nothing of it was recorded
    }
    return render(request, "socle/login.html", context, status=status)


def login_providers() -> list[dict[str, str]]:
    """OpenID Connect providers offered on the sign-in page (title, start URL)."""
    from socle.ui.oidc import login_providers as configured

    return configured()


@router.post("/deconnexion")
def logout(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    from socle.ui.oidc import LOGOUT_COOKIE, PENDING_SECONDS, provider_logout

    closed = sessions.close_session(db, request.cookies.get(sessions.COOKIE))
    db.commit()  # the kit's session ends here, whatever the provider answers afterwards
    ending = provider_logout(request, closed.method, closed.id_token) if closed else None
    if ending is None:
        response: Response = RedirectResponse("/connexion", status_code=303)
    else:
        # Not a 303 to the provider: a redirect answering a form stays under the page's CSP form-action
        # ('self'), which browsers enforce on redirects. An immediate Refresh is a new navigation; the page
        # keeps a link for a browser that ignores it.
        request.state.signed_in = None
        response = render(request, "socle/logged_out.html", {"provider_logout": ending.url})
        response.headers["refresh"] = f"0; url={ending.url}"
        response.set_cookie(
            LOGOUT_COOKIE, ending.cookie, max_age=PENDING_SECONDS, httponly=True, secure=True, samesite="lax"
        )
    response.delete_cookie(sessions.COOKIE, httponly=True, secure=True, samesite="lax")
    return response


@router.post("/langue")
def choose_language(request: Request, form: FormDep) -> Response:
    locale = str(form.get("locale", ""))
    target = safe_next(str(form.get("suivant", "")))
    response = RedirectResponse(target, status_code=303)
    if locale in rendering.LOCALES:
        response.set_cookie(LOCALE_COOKIE, locale, max_age=365 * 24 * 3600, secure=True, samesite="lax")
    return response
