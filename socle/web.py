"""What every service's FastAPI app shares: errors as problem+json, authentication, health and readiness."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from socle.auth import Principal, authenticate
from socle.db import new_session
from socle.errors import PayloadTooLarge, SocleError
from socle.settings import get_settings

log = logging.getLogger("socle.web")
PROBLEM = "application/problem+json"
_STATUS_TITLES = {401: "Authentification requise", 404: "Introuvable", 405: "Méthode non autorisée"}


def problem_response(status: int, title: str, detail: str, slug: str, **extra: Any) -> JSONResponse:
    body = {"type": f"urn:socle:problem:{slug}", "title": title, "status": status, "detail": detail, **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _socle_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SocleError)
    if exc.status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc.detail)
    body = exc.problem()
    return problem_response(
        body.pop("status"),
        body.pop("title"),
        body.pop("detail"),
        exc.slug,
        **{key: value for key, value in body.items() if key != "type"},
    )


def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": ".".join(str(part) for part in error["loc"]), "message": error["msg"]} for error in exc.errors()
    ]
    detail = "; ".join(f"{error['field']} : {error['message']}" for error in errors)
    return problem_response(422, "Données invalides", detail, "invalid-input", errors=errors)


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    title = _STATUS_TITLES.get(exc.status_code, "Erreur")
    return problem_response(exc.status_code, title, str(exc.detail), f"http-{exc.status_code}")


def _unexpected_error(request: Request, exc: Exception) -> Response:
    # The trace goes to the log only: a client never sees the inside of the kit.
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        500, "Erreur interne", "une erreur inattendue s'est produite ; elle est journalisée", "internal"
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SocleError, _socle_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


def _limit_upload_size(app: FastAPI) -> None:
    """Refuse an oversized body from its announced length, before reading it; storage enforces it too."""

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        limit = get_settings().max_upload_bytes
        # The multipart envelope adds a few hundred bytes around the file.
        if length and length.isdigit() and int(length) > limit + 64 * 1024:
            error = PayloadTooLarge(f"le fichier dépasse la taille maximale de {limit} octets", max_size=limit)
            return _socle_error(request, error)
        return await call_next(request)


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
    principal = authenticate(session, token.strip() if scheme.lower() == "bearer" else None)
    session.rollback()  # end the read transaction: the route starts its own unit of work
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def content_disposition(filename: str) -> str:
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


def create_service_app(name: str, title: str, description: str, routers: list[APIRouter]) -> FastAPI:
    """A service's app: its routers, registered explicitly, plus what every service has."""
    # No /docs nor /redoc: FastAPI serves them with scripts from a CDN, a third-party request; the
    # OpenAPI document (/openapi.json) is served and documented instead.
    app = FastAPI(title=title, description=description, version="0.1.0", docs_url=None, redoc_url=None)
    install_error_handlers(app)
    _limit_upload_size(app)
    app.include_router(health_router())
    for router in routers:
        app.include_router(router)
    app.state.service = name
    return app


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
    }
    return StreamingResponse(body(), media_type=media_type, headers=headers)
