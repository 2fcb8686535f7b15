"""What every service's FastAPI app shares: errors as problem+json, authentication, security headers, health
and readiness."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable, Collection, Container, Iterable, Iterator
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from socle.auth import Principal, authenticate
from socle.db import is_unique_violation, new_session
from socle.errors import Conflict, Forbidden, InvalidInput, PayloadTooLarge, SocleError, message
from socle.files import display_name
from socle.settings import get_settings
from socle.text import surrogate_fault
from socle.validation_messages import french_message, json_message

log = logging.getLogger("socle.web")
PROBLEM = "application/problem+json"
_STATUS_TITLES = {401: "Authentification requise", 404: "Introuvable", 405: "Méthode non autorisée"}
RETRY_AFTER_SECONDS = 10


def problem_response(status: int, title: str, detail: str, slug: str, **extra: Any) -> JSONResponse:
    body = {"type": f"urn:socle:problem:{slug}", "title": title, "status": status, "detail": detail, **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _socle_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SocleError)
    if exc.status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc.detail)
    body = exc.problem()
    response = problem_response(
        body.pop("status"),
        body.pop("title"),
        body.pop("detail"),
        exc.slug,
        **{key: value for key, value in body.items() if key != "type"},
    )
    if exc.status == 503:  # a service expected back soon (object store, identity provider…): when to try again
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [_field_error(error, exc.body) for error in exc.errors()]
    # The body as a whole is named in French in the sentence; ``field`` keeps the path a program reads.
    detail = "; ".join(
        f"{'corps de la requête' if error['field'] == 'body' else error['field']} : {error['message']}"
        for error in errors
    )
    return problem_response(422, "Données invalides", detail, "invalid-input", errors=errors)


def _field_error(error: Any, body: Any) -> dict[str, str]:
    if error.get("type") == "json_invalid":
        # Its ``loc`` ends with an offset in characters (« body.1 »), not a field: told as a line and a column.
        return {"field": "body", "message": json_message(error, body)}
    return {"field": ".".join(str(part) for part in error["loc"]), "message": french_message(error)}


# The framework's own refusals (the kit raises SocleError, never HTTPException): their English detail told in
# French, figures kept; a detail not known here gets its status's French sentence, never the English text.
def french_detail(status: int, detail: str) -> str:
    if found := re.fullmatch(r"Part exceeded maximum size of (\d+)KB\.", detail):
        return message("une partie du formulaire dépasse la taille maximale de %(size)s Ko", size=found.group(1))
    if found := re.fullmatch(r"Too many fields\. Maximum number of fields is (\d+)\.", detail):
        return message("trop de champs dans le formulaire : %(count)s au plus", count=found.group(1))
    if found := re.fullmatch(r"Too many files\. Maximum number of files is (\d+)\.", detail):
        return message("trop de fichiers dans le formulaire : %(count)s au plus", count=found.group(1))
    by_status = {
        400: message("requête illisible (formulaire ou corps mal formé)"),
        401: message("authentification requise"),
        404: message("aucune ressource à cette adresse"),
        405: message("méthode non autorisée à cette adresse"),
    }
    return by_status.get(status) or message("requête refusée")


def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    title = _STATUS_TITLES.get(exc.status_code, "Erreur")
    response = problem_response(
        exc.status_code, title, french_detail(exc.status_code, str(exc.detail)), f"http-{exc.status_code}"
    )
    response.headers.update(exc.headers or {})  # 405's Allow
    return response


def log_unexpected(method: str, path: str, exc: BaseException) -> None:
    """Log an unexpected error with its trace, once: every layer it goes through may be told of it (a service's
    app, the whole kit's around it, the last resort of each)."""
    if getattr(exc, "_socle_logged", False):
        return
    log.error("unexpected error on %s %s", method, path, exc_info=exc)
    with contextlib.suppress(AttributeError, TypeError):  # a type without attributes of its own: logged again
        exc._socle_logged = True  # type: ignore[attr-defined]


def _unexpected_error(request: Request, exc: Exception) -> Response:
    # The trace goes to the log only: a client never sees the inside of the kit.
    log_unexpected(request.method, request.url.path, exc)
    response = problem_response(
        500, "Erreur interne", "une erreur inattendue s'est produite ; elle est journalisée", "internal"
    )
    # Starlette sends this answer from its outermost layer, around every middleware: the headers go on here.
    response.headers.update({name.decode(): value.decode() for name, value in API_SECURITY_HEADERS})
    return response


def unique_conflict(request: Request, exc: Exception) -> Conflict | None:
    """The safety net of every check-then-insert: two identical requests at once both find no row (neither sees
    the other's uncommitted one), both insert, and the database refuses the second. Its unit of work is rolled
    back by the session's closing (``get_session``, ``transaction``) before a handler runs; the client is told
    to reload, as a service's own existence check would have told it. None for any other error: another
    integrity error is a bug, not a race, and stays a 500."""
    if not isinstance(exc, IntegrityError) or not is_unique_violation(exc):
        return None
    log.warning("%s %s: unique constraint hit by a concurrent request: %s", request.method, request.url.path, exc.orig)
    return Conflict(
        message(
            "conflit : la même ressource vient d'être créée ou modifiée par une autre requête ; "
            "rechargez et recommencez"
        )
    )


def _integrity_error(request: Request, exc: Exception) -> Response:
    conflict = unique_conflict(request, exc)
    return _unexpected_error(request, exc) if conflict is None else _socle_error(request, conflict)


def _unencodable_text(request: Request, exc: Exception) -> Response:
    """The safety net behind JsonTextGuard and socle.text: a lone surrogate that reached a database driver (no
    UTF-8 encoder takes it) came from the request, never from the kit: 422, not 500. The unit of work is rolled
    back by the session's closing before a handler runs: nothing is written. Any other encoding error is a bug."""
    assert isinstance(exc, UnicodeEncodeError)
    bad = exc.object[exc.start : exc.end] if isinstance(exc.object, str) else ""
    if not bad or not all("\ud800" <= char <= "\udfff" for char in bad):
        return _unexpected_error(request, exc)
    log.warning("%s %s: a lone surrogate reached the database: %s", request.method, request.url.path, exc)
    detail = message("texte reçu : %(fault)s", fault=surrogate_fault(bad[0]))
    return problem_response(422, message("Données invalides"), detail, "invalid-input")


def install_error_handlers(app: FastAPI) -> None:
    """Every error answered as problem+json, for ``app`` and what is mounted in it that raises through it.

    Call it once the app's other middleware are added: its UnexpectedErrors wraps them all."""
    app.add_exception_handler(SocleError, _socle_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(UnicodeEncodeError, _unencodable_text)
    # The last resort of Starlette, for an error in UnexpectedErrors itself: it answers 500 and raises again.
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_middleware(UnexpectedErrors)


class UnexpectedErrors:
    """Answer an unexpected error with a complete 500 problem, logged once, and stop it there.

    Starlette's last resort (its ServerErrorMiddleware) sends the 500, then raises the error again for the server:
    uvicorn logged it once more and closed the connection without saying so (no ``Connection: close``), and the
    client's next request on it got no answer; a service mounted in the whole kit raised it through the kit's app,
    which logged it once more. Here the error ends the request, the connection stays usable. An error once the
    answer began and before its end (a download failing halfway) is raised again: the server must cut the
    connection, or the client would take a truncated file for a whole one.

    ``answer`` writes the 500 (the web interface answers with its page); the error is logged here, before it.
    """

    def __init__(self, app: ASGIApp, answer: Callable[[Request, Exception], Response] = _unexpected_error) -> None:
        self.app = app
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = complete = False

        async def watching_send(message: Message) -> None:
            nonlocal started, complete
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                complete = True
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        except Exception as exc:
            log_unexpected(scope["method"], scope["path"], exc)
            if not started:
                await self.answer(Request(scope), exc)(scope, receive, send)
                return
            if not complete:
                raise


def has_nul(scope: Any) -> bool:
    """Whether a request's path or query string holds a NUL (``%00``): no database takes it (PostgreSQL
    refuses it in any text), and no identifier or filter needs it."""
    return "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")


async def send_problem(send: Any, error: SocleError) -> None:
    """Answer with ``error`` as problem+json from a middleware, before any route (and its handlers) runs."""
    body = json.dumps(error.problem()).encode()
    headers = [(b"content-type", PROBLEM.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class NulGuard:
    """Refuse a request whose address holds a NUL (has_nul) before any route reads it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and has_nul(scope):
            error = InvalidInput(message("l'adresse de la requête contient un caractère nul (U+0000)"))
            await send_problem(send, error)
            return
        await self.app(scope, receive, send)


# What every API answer carries (JSON, problem+json, a stored file): never run as a page, even a downloaded HTML
# or SVG file opened in the browser (the sandbox gives it no script, no origin), never framed, never embedded by
# another site, no referrer, and not kept in a cache unless the route said how (its own Cache-Control).
API_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"
API_SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", API_CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
_API_HEADER_NAMES = frozenset(name for name, _ in API_SECURITY_HEADERS)


def merge_headers(
    headers: Iterable[tuple[bytes, bytes]], added: Iterable[tuple[bytes, bytes]], keep: Container[bytes]
) -> list[tuple[bytes, bytes]]:
    """A response's ``headers`` followed by ``added`` (lower-case names), except an added header whose name is in
    ``keep`` and which the response already carries: the route's own value stays, never doubled."""
    own = list(headers)
    present = {name.lower() for name, _ in own}
    return [*own, *((name, value) for name, value in added if not (name in keep and name in present))]


def route_path(scope: Scope) -> str:
    """The request's path within the app that serves it, without the root path (a mount, a proxy's prefix)."""
    root = scope.get("root_path", "")
    path: str = scope["path"]
    return path[len(root) :] if root and path.startswith(root) else path


class ApiSecurityHeaders:
    """Add API_SECURITY_HEADERS to every answer, keeping any of them a route set itself.

    ``paths``: only the answers to these paths (the whole kit's own routes, beside mounted apps that add their
    own headers, the web interface's stricter ones included); None: every answer.
    """

    def __init__(self, app: ASGIApp, paths: Collection[str] | None = None) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.paths is not None and route_path(scope) not in self.paths):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = merge_headers(message.get("headers", []), API_SECURITY_HEADERS, _API_HEADER_NAMES)
            await send(message)

        await self.app(scope, receive, with_headers)


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def cross_site_by_browser(headers: dict[str, str]) -> bool:
    """Whether a browser says it sent this request for a page of another site (``Sec-Fetch-Site``, ``Origin``).

    An ``Origin`` of ``null`` counts as another site: it is what a sandboxed frame of any page sends.
    Programs (CMIS clients, scripts, the card client) send neither header."""
    if headers.get("sec-fetch-site", "") in ("cross-site", "same-site"):
        return True
    origin = headers.get("origin")
    return origin is not None and (origin == "null" or urlsplit(origin).netloc != headers.get("host", ""))


class CrossSiteGuard:
    """Refuse a change asked by a page of another site with credentials the browser sends by itself.

    A browser keeps the HTTP Basic credentials typed once at the prompt of an API (CMIS answers 401 with
    ``WWW-Authenticate: Basic``) and adds them to every later request to the kit, including a form posted by
    another site: without this guard, that site could delete or change documents in the user's name. A Bearer
    token is never sent by the browser on its own (a script must add it, and a cross-site script needs CORS,
    which the APIs do not grant): such a request goes through, as do reads and requests from programs.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] not in _SAFE_METHODS:
            headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
            scheme = headers.get("authorization", "").partition(" ")[0].lower()
            if scheme and scheme != "bearer" and cross_site_by_browser(headers):
                error = Forbidden(
                    message(
                        "requête refusée : envoyée depuis un autre site avec les identifiants enregistrés par le "
                        "navigateur ; un programme s'authentifie par un jeton (Authorization: Bearer …)"
                    )
                )
                await send_problem(send, error)
                return
        await self.app(scope, receive, send)


JSON_BODY_LIMIT = 1024 * 1024
_MULTIPART_MARGIN = 64 * 1024  # the multipart envelope around the file


class BodyLimit:
    """Refuse an oversized request body as its bytes arrive, before the app buffers it anywhere.

    The announced length is checked first, but a chunked body announces none: bytes are counted as they
    are received, and past the limit the client gets 413 and the app sees a disconnection.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        limit, shown = self._limit(headers.get("content-type", ""))
        length = headers.get("content-length", "")
        # ASCII digits only (isdigit() takes « ² », which int() refuses); past 19 of them, beyond any limit (and
        # int() refuses 4,300): refused unread, never converted.
        if length.isascii() and length.isdigit() and (len(length) > 19 or int(length) > limit):
            await self._refuse(send, shown)
            return
        received, refused, started = 0, False, False

        async def counting_receive() -> dict[str, Any]:
            nonlocal received, refused
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit and not refused:
                    refused = True
                    if not started:
                        await self._refuse(send, shown)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started
            if refused:
                return  # the 413 is already sent: whatever the app answers after the disconnection is dropped
            started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise

    @staticmethod
    def _limit(content_type: str) -> tuple[int, int]:
        """The byte limit of the body, and the one to tell the user (the file's, without the envelope)."""
        if content_type.startswith("multipart/form-data"):
            file_limit = get_settings().max_upload_bytes
            return file_limit + _MULTIPART_MARGIN, file_limit
        return JSON_BODY_LIMIT, JSON_BODY_LIMIT

    @staticmethod
    async def _refuse(send: Any, limit: int) -> None:
        await send_problem(
            send, PayloadTooLarge(f"la requête dépasse la taille maximale de {limit} octets", max_size=limit)
        )


# A JSON escape of a surrogate (U+D800–U+DFFF), either half of a pair: whether the body holds one alone is then
# told by reading it.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def json_media_type(content_type: str) -> bool:
    """Whether FastAPI reads a body of this type as JSON: none said, application/json or application/…+json."""
    media = content_type.partition(";")[0].strip().lower()
    return not media or media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def lone_surrogate(body: bytes) -> tuple[str, str] | None:
    """Where a JSON ``body`` holds a lone surrogate (``"\\ud800"`` without its other half: JSON can write it,
    no text holds it), as a field path (``body.name``, ``body.tags.0``) and the reason; None when it holds none
    or cannot be read (the route then says why)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    stack: list[tuple[Any, str]] = [(document, "body")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if found := _SURROGATES.search(item):
                return path, surrogate_fault(found.group())
        elif isinstance(item, list):
            stack.extend(reversed([(child, f"{path}.{index}") for index, child in enumerate(item)]))
        elif isinstance(item, dict):
            children = []
            for name, child in item.items():
                if found := _SURROGATES.search(name):
                    return path, message("nom de champ : %(fault)s", fault=surrogate_fault(found.group()))
                children.append((child, f"{path}.{name}"))
            stack.extend(reversed(children))
    return None


_SURROGATES = re.compile("[\ud800-\udfff]")


class JsonTextGuard:
    """Refuse a JSON body holding a lone surrogate, before any route reads it (422 problem+json).

    ``"\\ud800"`` is valid JSON, and Python reads it as a str holding U+D800, which no UTF-8 encoder takes: the
    database driver raised a 500 on every route storing a text. Cheap: the body is only read again when its bytes
    hold a surrogate's escape (``\\ud8``…``\\udf``, either case); a pair, an emoji written in ASCII, goes
    through. Raw bytes cannot carry one (invalid UTF-8: the body is unreadable), nor can the query string, the
    path or a form (Starlette decodes them with replacement characters).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        content_type = next((value for name, value in scope.get("headers", []) if name.lower() == b"content-type"), b"")
        if scope["type"] != "http" or not json_media_type(content_type.decode("latin-1")):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []  # the app's own chunks, kept by reference (BodyLimit bounds them)
        tail = b""  # the last bytes received: an escape may be cut between chunks, however small
        suspect = refused = False

        async def checking_receive() -> Message:
            nonlocal tail, suspect, refused
            event = await receive()
            if event["type"] != "http.request" or refused:
                return event
            chunk = event.get("body", b"")
            if not suspect:
                suspect = bool(_SURROGATE_ESCAPE.search(chunk) or _SURROGATE_ESCAPE.search(tail + chunk[:3]))
                tail = (tail + chunk[-3:])[-3:]
            chunks.append(chunk)
            if suspect and not event.get("more_body", False) and (found := lone_surrogate(b"".join(chunks))):
                refused = True
                field, fault = found
                detail = message("%(field)s : %(fault)s", field=field, fault=fault)
                await send_problem(send, InvalidInput(detail, errors=[{"field": field, "message": fault}]))
                return {"type": "http.disconnect"}
            return event

        async def guarded_send(event: Message) -> None:
            if not refused:  # the 422 is sent: whatever the app answers after the disconnection is dropped
                await send(event)

        try:
            await self.app(scope, checking_receive, guarded_send)
        except Exception:
            if not refused:
                raise


# ---------------------------------------------------------------------------------------------------------
# Dependencies


def get_session() -> Iterator[Session]:
    session = new_session()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]


def get_principal(request: Request, session: SessionDep) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    bearer = token.strip() if scheme.lower() == "bearer" else None
    principal = authenticate(session, bearer, (request.method, service_path(request)))  # for scoped tokens
    session.rollback()  # end the read transaction: the route starts its own unit of work
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def service_path(request: Request) -> str:
    """The request's path within its service: the same whether the service runs alone (/folders/…) or mounted
    in the whole kit (/parapheur/folders/…), behind a proxy's prefix or not."""
    return route_path(request.scope)


def content_disposition(filename: str) -> str:
    filename = display_name(filename)
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


# ---------------------------------------------------------------------------------------------------------
# Health


def readiness() -> dict[str, str]:
    """Check the database, the storage and the queue; raise ServiceUnavailable naming what is down."""
    from socle.errors import ServiceUnavailable
    from socle.queue import get_redis
    from socle.storage import get_store

    checks: dict[str, str] = {}
    probes: dict[str, Callable[[], Any]] = {
        "database": lambda: _ping_database(),
        "storage": lambda: get_store().check(),
        "queue": lambda: get_redis().ping(),
    }
    for name, probe in probes.items():
        try:
            probe()
            checks[name] = "ok"
        except Exception as exc:
            log.warning("readiness: %s is down: %s", name, exc)
            checks[name] = "indisponible"
    if any(state != "ok" for state in checks.values()):
        down = ", ".join(name for name, state in checks.items() if state != "ok")
        raise ServiceUnavailable(f"non prêt : {down}", checks=checks)
    return checks


def _ping_database() -> None:
    with new_session() as session:
        session.execute(text("SELECT 1"))


def health_router() -> APIRouter:
    router = APIRouter(tags=["santé"])

    @router.get("/healthz", summary="Le processus répond")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Base, stockage et file de tâches joignables")
    def readyz() -> dict[str, Any]:
        return {"status": "ok", "checks": readiness()}

    return router


# What every error answer holds (SocleError.problem, problem_response), for the OpenAPI documents.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "Erreur au format RFC 9457 (application/problem+json), expliquée en français dans detail",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {
            "type": "string",
            "description": "urn:socle:problem:<code>",
            "examples": ["urn:socle:problem:not-found"],
        },
        "title": {"type": "string", "description": "Intitulé de l'erreur"},
        "status": {"type": "integer", "description": "Statut HTTP"},
        "detail": {"type": "string", "description": "Ce qui est refusé, et pourquoi"},
        "errors": {
            "type": "array",
            "description": "422 : chaque champ fautif (chemin, message)",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,  # a problem may carry its own figures (max_size, current, checks…)
}
PROBLEM_CONTENT = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def document_problems(document: dict[str, Any]) -> dict[str, Any]:
    """Tell in an OpenAPI ``document`` how the kit answers errors: problem+json (PROBLEM_SCHEMA), as the 422 of
    each operation (FastAPI writes application/json and its own schema, which no answer follows) and as its
    default answer (401, 403, 404, 409, 413, 415, 503… which FastAPI does not list)."""
    document.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for operations in document.get("paths", {}).values():
        for method, operation in operations.items():
            if method not in _HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            if "default" in responses:  # a route that answers its errors its own way (CMIS) documents them itself
                responses.pop("422", None)  # FastAPI's, for its parameters: such a route never answers it
                continue
            if "422" in responses:
                responses["422"] = {"description": "Données invalides", "content": PROBLEM_CONTENT}
            responses.setdefault(
                "default",
                {
                    "description": "Erreur (401, 403, 404, 409, 413, 415, 422, 503…) : RFC 9457",
                    "content": PROBLEM_CONTENT,
                },
            )
    schemas = document["components"]["schemas"]
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's, named by its 422 only: then unused
        if name in schemas and f"#/components/schemas/{name}" not in json.dumps(document):
            del schemas[name]
    return document


class ServiceApp(FastAPI):
    """A service's FastAPI app: its OpenAPI document tells its errors as they are answered (document_problems)."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = document_problems(super().openapi())
        return self.openapi_schema


def create_service_app(name: str, title: str, description: str, routers: list[APIRouter]) -> FastAPI:
    """A service's app: its routers, registered explicitly, plus what every service has."""
    # No /docs nor /redoc: FastAPI serves them with scripts from a CDN, a third-party request; the
    # OpenAPI document (/openapi.json) is served and documented instead.
    app = ServiceApp(title=title, description=description, version="0.1.0", docs_url=None, redoc_url=None)
    app.add_middleware(JsonTextGuard)
    app.add_middleware(BodyLimit)
    app.add_middleware(NulGuard)
    app.add_middleware(CrossSiteGuard)
    app.add_middleware(ApiSecurityHeaders)  # the guards' refusals carry the headers too
    install_error_handlers(app)  # the outermost: an error anywhere is answered (with the headers) and stops there
    app.include_router(health_router())
    for router in routers:
        app.include_router(router)
    app.state.service = name
    return app


ANY_FILE = "*/*"  # a stored file's own type (its Content-Type says which): a media type range, as OpenAPI allows
# The headers of a download (content_disposition), and of a stored file's (object_response).
_DOWNLOAD_HEADERS = {"Content-Disposition": "attachment, avec le nom du fichier (filename, et filename* en UTF-8)"}
_STORED_HEADERS = {
    "ETag": "Empreinte SHA-256 du contenu, en hexadécimal entre guillemets",
    "Repr-Digest": "Empreinte SHA-256 du contenu (RFC 9530 : sha-256=:base64:)",
}


def _file_schema(media_type: str) -> dict[str, Any]:
    essence = media_type.partition(";")[0].strip().lower()
    if json_media_type(essence):
        return {}  # a JSON answer of the same route (CMIS): any JSON value
    if essence.startswith("text/") or essence == "application/xml" or essence.endswith("+xml"):
        return {"type": "string"}
    return {"type": "string", "format": "binary"}


def file_responses(*media_types: str, description: str, stored: bool = True) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route answering a file, with ``response_class=Response`` (FastAPI's default would
    document a JSON 200): its 200 in each of ``media_types`` (ANY_FILE when it is the stored file's own type),
    told by ``description`` (French, user-facing), with the Content-Disposition it carries, and ``stored`` (sent
    by object_response) its ETag and Repr-Digest. Its errors stay problem+json, as every route's (document_problems).
    """
    told = {**_DOWNLOAD_HEADERS, **(_STORED_HEADERS if stored else {})}
    headers = {name: {"description": text, "schema": {"type": "string"}} for name, text in told.items()}
    content = {media_type: {"schema": _file_schema(media_type)} for media_type in media_types}
    return {200: {"description": description, "content": content, "headers": headers}}


def object_response(key: str, filename: str, media_type: str) -> Response:
    """Stream an object from the store to the client, chunk by chunk, with its digest as ETag."""
    import base64

    from fastapi.responses import StreamingResponse

    from socle.storage import get_store
    from socle.storage.api import iter_chunks

    store = get_store()
    size = store.size(key)  # raises NotFound before any byte is sent

    def body() -> Iterator[bytes]:
        with store.open(key) as stream:
            yield from iter_chunks(stream)

    digest = base64.b64encode(bytes.fromhex(key)).decode()
    headers = {
        "Content-Disposition": content_disposition(filename),
        "Content-Length": str(size),
        "ETag": f'"{key}"',
        "Repr-Digest": f"sha-256=:{digest}:",
        "X-Content-Type-Options": "nosniff",  # a stored file is served as what it was labelled, never sniffed
    }
    return StreamingResponse(body(), media_type=media_type, headers=headers)
