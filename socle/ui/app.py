"""The web interface as one FastAPI app, mounted at ``/`` beside the services' APIs (``socle serve``).

Security headers are set on every answer: a strict Content Security Policy (no inline script or style, no
third party), no framing, no referrer leak, and no caching of pages that show public records.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from socle.errors import PayloadTooLarge, SocleError, message
from socle.ui import rendering
from socle.ui.web import LOCALE_COOKIE, CsrfRejected, LoginRequired, locale_of, login_url, render
from socle.web import (
    BodyLimit,
    UnexpectedErrors,
    french_detail,
    has_nul,
    log_unexpected,
    merge_headers,
    unique_conflict,
)
from socle.web import http_error as api_http_error

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
_SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


_NO_STORE = (b"cache-control", b"no-store")


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_static = scope["path"].startswith(rendering.STATIC_PREFIX + "/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                own = [h[1] for h in message.get("headers", []) if h[0].lower() == b"cache-control"]
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"cache-control"]
                # Assets carry their digest in the URL: cached for a year. Pages are never cached, except what a
                # route marks "private" itself (a document's page images, whose URL names the document's digest).
                cache = b"public, max-age=31536000, immutable" if is_static else _NO_STORE[1]
                if not is_static and own and own[0].startswith(b"private"):
                    cache = own[0]
                # A stricter referrer policy a route set itself stays (a page whose URL holds a secret: the
                # external signer's link); every other header is the interface's own.
                added = [*_SECURITY_HEADERS, (b"cache-control", cache)]
                message["headers"] = merge_headers(headers, added, keep={b"referrer-policy"})
            await send(message)

        await self.app(scope, receive, with_headers)


_refusal_locale: ContextVar[str] = ContextVar("refusal_locale", default=rendering.DEFAULT_LOCALE)


class PageBodyLimit(BodyLimit):
    """The kernel's body limit, answering with a page: a browser user reads why the upload was refused."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            # The page is written before any route runs: its language is the one the user chose (the cookie).
            chosen = Request(scope).cookies.get(LOCALE_COOKIE)
            _refusal_locale.set(chosen if chosen in rendering.LOCALES else rendering.DEFAULT_LOCALE)
        await super().__call__(scope, receive, send)

    @staticmethod
    async def _refuse(send: Any, limit: int) -> None:
        locale = _refusal_locale.get()
        detail = message(
            "Le fichier dépasse la taille maximale acceptée (%(size)s Mio). Rien n'a été enregistré.",
            size=limit // (1024 * 1024),
        )
        context: dict[str, Any] = {
            "title": rendering.translate(locale, PayloadTooLarge.title),
            "detail": rendering.translate(locale, detail),
            "user": None,
            "sections": [],
            "csrf": "",
            "locale": locale,
            "flash": [],
            "current_path": "/",
            "errors": {},
            "values": {},
        }
        body = rendering.render_template(locale, "socle/error.html", context).encode()
        headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers + _SECURITY_HEADERS})
        await send({"type": "http.response.body", "body": body})


def create_ui_app(routers: list[APIRouter]) -> FastAPI:
    from socle.ui import oidc, shell

    app = FastAPI(
        title="socle — interface",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(_refuse_nul)],
    )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(PageBodyLimit)
    app.mount(rendering.STATIC_PREFIX, StaticFiles(directory=rendering.STATIC_DIR), name="static")
    app.include_router(shell.router)
    app.include_router(oidc.router)
    for router in routers:
        app.include_router(router)
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(CsrfRejected, _csrf_rejected)
    app.add_exception_handler(SocleError, _socle_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(RequestValidationError, _bad_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # The last resort of Starlette, for an error in UnexpectedErrors itself: it answers 500 and raises again.
    app.add_exception_handler(Exception, _unexpected_error)
    # Outside every other middleware: an unexpected error ends the request with the page, logged once, and the
    # browser's connection stays usable (Starlette's last resort raises it again to the server, which closes it).
    app.add_middleware(UnexpectedErrors, answer=_unexpected_error)
    return app


def _refuse_nul(request: Request) -> None:
    """A NUL (%00) in the address is a bad request page before the route reads it (PostgreSQL refuses it)."""
    if has_nul(request.scope):
        raise RequestValidationError([{"type": "value_error", "loc": ("path",), "msg": "NUL"}])


def _unexpected_error(request: Request, exc: Exception) -> Response:
    # The trace goes to the log only, once (the kernel's, which UnexpectedErrors and the kit's app share): a user
    # never sees the inside of the kit.
    log_unexpected(request.method, request.url.path, exc)
    page = _error_page(request, 500, "Erreur interne", "Une erreur inattendue s'est produite ; elle est journalisée.")
    # Sent from outside SecurityHeaders (UnexpectedErrors, or Starlette's last resort): the headers go on here.
    page.headers.update({name.decode(): value.decode() for name, value in [*_SECURITY_HEADERS, _NO_STORE]})
    return page


async def _login_required(request: Request, exc: Exception) -> Response:
    return RedirectResponse(login_url(request), status_code=303)


async def _csrf_rejected(request: Request, exc: Exception) -> Response:
    return _error_page(
        request,
        403,
        "Formulaire expiré",
        "Ce formulaire a expiré ou ne vient pas de cette page. Rechargez la page puis recommencez.",
    )


async def _socle_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SocleError)
    return _error_page(request, exc.status, exc.title, exc.detail)


async def _integrity_error(request: Request, exc: Exception) -> Response:
    # The same form sent twice at once (a double click): the second is told to reload, not an internal error.
    conflict = unique_conflict(request, exc)
    return _unexpected_error(request, exc) if conflict is None else await _socle_error(request, conflict)


async def _bad_request(request: Request, exc: Exception) -> Response:
    return _error_page(request, 400, "Requête invalide", "L'adresse ou le formulaire contient une valeur invalide.")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if not _wants_a_page(request):
        # An API client that missed its route (/nulle-part, /archive) gets problem+json like the APIs give.
        return api_http_error(request, exc)
    if exc.status_code == 404:
        return _error_page(request, 404, "Page introuvable", "Cette page n'existe pas ou vous n'y avez pas accès.")
    return _error_page(request, exc.status_code, "Erreur", french_detail(exc.status_code, str(exc.detail)))


def _wants_a_page(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _error_page(request: Request, status: int, title: str, detail: str, **extra: Any) -> Response:
    # Translated here, once: the page prints them as they are (a "%" in a detail is only text).
    locale = locale_of(request)
    shown = {"title": rendering.translate(locale, title), "detail": rendering.translate(locale, detail)}
    return render(request, "socle/error.html", {**shown, **extra}, status=status)
