"""The four services together in one app, each under its own prefix (``socle serve`` with no service)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from starlette.routing import Route

import archive.api
import archive.ui
import ged.api
import ged.ui
import ged.ui_retention
import interop.api
import interop.ui
import parapheur.api
import parapheur.ui
import parapheur.ui_admin
from socle.ui import admin as kernel_admin
from socle.ui.app import create_ui_app
from socle.web import ApiSecurityHeaders, health_router, install_error_handlers

# Registered explicitly: a service whose module fails to import stops the kit loudly.
SERVICE_APPS: dict[str, Callable[[], FastAPI]] = {
    "parapheur": parapheur.api.create_app,
    "ged": ged.api.create_app,
    "archive": archive.api.create_app,
    "interop": interop.api.create_app,
}


def create_app() -> FastAPI:
    app = FastAPI(
        title="socle",
        description="Kit de dématérialisation des collectivités : parapheur, GED, archives SEDA, interopérabilité.",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)  # each mounted service limits its own request bodies
    health = health_router()
    app.include_router(health)
    for name, factory in SERVICE_APPS.items():
        app.mount(f"/{name}", factory())
    # The web interface last: its pages use French paths (/bureau, /documents…) that no API prefix shadows.
    app.mount("/", create_ui_app(UI_ROUTERS))
    # Each mounted app adds its own security headers (an API's, or the interface's own for its pages): here only
    # the kit's own routes (/healthz, /readyz, /openapi.json), so that none is sent twice nor changes a page's.
    own_paths = {route.path for route in [*health.routes, *app.routes] if isinstance(route, Route)}
    app.add_middleware(ApiSecurityHeaders, paths=own_paths)
    return app


# Each service's pages (its ui.py), plus the kernel's administration of accounts.
UI_ROUTERS = [
    parapheur.ui.router,
    parapheur.ui_admin.router,
    ged.ui.router,
    ged.ui_retention.router,
    archive.ui.router,
    interop.ui.router,
    kernel_admin.router,
]


def create_service(name: str) -> FastAPI:
    return SERVICE_APPS[name]()
