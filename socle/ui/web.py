"""What every page of the web interface shares: who is signed in, CSRF, rendering, errors as pages.

A service's pages live in its own ``ui.py`` (an ``APIRouter``) and call its domain functions with the
signed-in principal, exactly as its API does: same rights, same tenant confinement, same 404 for another
collectivité's objects.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from socle.auth import Role
from socle.db import new_session
from socle.errors import Message, SocleError
from socle.ui import rendering
from socle.ui.sessions import COOKIE, SignedIn, pop_flash, push_flash, read_session

ANON_CSRF_COOKIE = "__Host-socle_csrf"  # double-submit token for the forms shown before sign-in
LOCALE_COOKIE = "__Host-socle_langue"


class LoginRequired(Exception):
    """No valid session: the page answers with a redirect to sign-in, then back to where the user was."""


class CsrfRejected(Exception):
    pass


def get_db() -> Iterator[Session]:
    db = new_session()
    try:
        yield db
        db.commit()  # session bookkeeping (last seen, flash messages) is kept even on read-only pages
    except BaseException:
        db.rollback()
        raise
    finally:
        db.close()


DbDep = Annotated[Session, Depends(get_db)]


def current_user(request: Request, db: DbDep) -> SignedIn:
    signed_in = read_session(db, request.cookies.get(COOKIE))
    if signed_in is None:
        db.commit()  # an expired session row is removed even though the page is refused
        raise LoginRequired()
    request.state.signed_in = signed_in
    return signed_in


UserDep = Annotated[SignedIn, Depends(current_user)]


def require_role(user: SignedIn, *roles: Role) -> None:
    """Raise Forbidden (shown as a page) unless the user holds one of ``roles`` or is an admin."""
    user.principal.require(*roles)


# ---------------------------------------------------------------------------------------------------------
# CSRF: every form carries a token bound to the session (or, before sign-in, to a cookie).


def csrf_token(request: Request) -> str:
    signed_in: SignedIn | None = getattr(request.state, "signed_in", None)
    if signed_in is not None:
        return signed_in.csrf_token
    token = request.cookies.get(ANON_CSRF_COOKIE) or getattr(request.state, "new_anon_csrf", None)
    if not token:
        token = secrets.token_urlsafe(32)
        request.state.new_anon_csrf = token  # set as a cookie by render()
    return token


async def read_form(request: Request) -> FormData:
    """The submitted form, after checking its CSRF token and that it comes from this site."""
    form = await request.form()
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise CsrfRejected()
    # What the browser says of the page the form came from: another site, or a sibling sub-domain, never.
    if request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        raise CsrfRejected()
    sent = form.get("csrf")
    expected = [token for token in (_session_csrf(request), request.cookies.get(ANON_CSRF_COOKIE)) if token]
    # Bytes, not str: compare_digest refuses a str with non-ASCII characters (a 500 for « csrf=é »).
    if not isinstance(sent, str) or not any(hmac.compare_digest(sent.encode(), token.encode()) for token in expected):
        raise CsrfRejected()
    return form


def _session_csrf(request: Request) -> str | None:
    """The CSRF token of the request's session, also on pages that don't require one (language choice)."""
    signed_in: SignedIn | None = getattr(request.state, "signed_in", None)
    if signed_in is None and request.cookies.get(COOKIE):
        db = new_session()
        try:
            signed_in = read_session(db, request.cookies.get(COOKIE))
        finally:
            db.rollback()
            db.close()
    return signed_in.csrf_token if signed_in is not None else None


FormDep = Annotated[FormData, Depends(read_form)]


def form_text(form: FormData, name: str, limit: int | None = None) -> str:
    """A text field of a form, trimmed (and cut to ``limit`` characters if given); absent or a file: empty."""
    value = form.get(name)
    return (value.strip()[:limit] if limit is not None else value.strip()) if isinstance(value, str) else ""


# ---------------------------------------------------------------------------------------------------------
# Rendering


# A number typed in an address (a page): ASCII digits only (str.isdigit() takes « ² », which int() refuses), and
# not 4,300 of them (int() refuses those too): either was a 500.
_ADDRESS_NUMBER = re.compile(r"[0-9]{1,9}")


def address_number(raw: str | None) -> int | None:
    """The number an address gives (``?page=3``), or None when it is not one (the caller shows the first page)."""
    return int(raw) if raw and _ADDRESS_NUMBER.fullmatch(raw) else None


def locale_of(request: Request) -> str:
    chosen = request.cookies.get(LOCALE_COOKIE)
    if chosen in rendering.LOCALES:
        return chosen
    signed_in: SignedIn | None = getattr(request.state, "signed_in", None)
    return signed_in.locale if signed_in is not None else rendering.DEFAULT_LOCALE


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    db: Session | None = None,
) -> HTMLResponse:
    """Render a page with what the layout needs: the user, navigation, CSRF token, flash messages, language."""
    signed_in: SignedIn | None = getattr(request.state, "signed_in", None)
    locale = locale_of(request)
    flash = pop_flash(db, signed_in.session_id) if db is not None and signed_in is not None else []
    page = {
        "request": request,
        "user": signed_in.principal if signed_in else None,
        "sections": rendering.sections_for(signed_in.principal.roles) if signed_in else [],
        "csrf": csrf_token(request),
        "locale": locale,
        "flash": flash,
        "current_path": request.url.path,
        "errors": {},
        "values": {},
        **(context or {}),
    }
    _translate_errors(locale, page)
    drawing = rendering.current_session.set(db)
    try:
        response = HTMLResponse(rendering.render_template(locale, template, page), status_code=status)
    finally:
        rendering.current_session.reset(drawing)
    new_token = getattr(request.state, "new_anon_csrf", None)
    if new_token:
        response.set_cookie(ANON_CSRF_COOKIE, new_token, httponly=True, secure=True, samesite="strict")
    return response


def _translate_errors(locale: str, page: dict[str, Any]) -> None:
    """Domain errors given to a page as they were raised (``errors[field] = exc.detail``, ``error``) are shown
    in the page's language: each route need not translate them itself."""
    if isinstance(page["errors"], dict):
        page["errors"] = {name: _shown(locale, text) for name, text in page["errors"].items()}
    for key, value in page.items():
        if isinstance(value, Message):
            page[key] = rendering.translate(locale, value)


def _shown(locale: str, text: Any) -> Any:
    return rendering.translate(locale, text) if isinstance(text, Message) else text


def redirect(
    url: str, *, db: Session | None = None, user: SignedIn | None = None, message: str = ""
) -> RedirectResponse:
    """POST-redirect-GET, with an optional message shown once on the next page."""
    if message and db is not None and user is not None:
        push_flash(db, user.session_id, message)
    return RedirectResponse(url, status_code=303)


def t(request: Request, message: str, **values: Any) -> str:
    """Translate a French message of Python code (flash messages, errors) into the page's language."""
    return rendering.gettext(locale_of(request), message, **values)


def error_text(request: Request, exc: SocleError) -> str:
    """A domain error's detail in the page's language (the API keeps the French detail as it is)."""
    return rendering.translate(locale_of(request), exc.detail)


def sentence(text: str) -> str:
    """A domain message (« nom de profil invalide… ») as a page shows it on its own: its first letter upper case."""
    return text[:1].upper() + text[1:]


def safe_next(target: str | None, default: str = "/") -> str:
    """Only a path on this site may be a redirect target (no open redirect to another host)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def login_url(request: Request) -> str:
    """Sign-in, then back where the user was. A form sent after the session expired cannot be sent again (its
    CSRF token died with the session, and its address may answer only POST): back to the page it was sent
    from, and the sign-in page says that nothing was recorded."""
    if request.method in ("GET", "HEAD"):
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return f"/connexion?suivant={quote(here, safe='')}"
    return f"/connexion?expiree=1&suivant={quote(_sending_page(request), safe='')}"


def _sending_page(request: Request) -> str:
    sent_from = urlsplit(request.headers.get("referer", ""))
    if sent_from.netloc != request.url.netloc:
        return "/"  # no Referer, or another site's: the home page
    return safe_next(sent_from.path + (f"?{sent_from.query}" if sent_from.query else ""))
