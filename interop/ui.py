"""Web pages of the interop service (server-rendered; see socle.ui): its administration only, for now.

Connectors are in :mod:`interop.ui_admin`, flows and deliveries to resume in :mod:`interop.ui_admin_flows`.
"""

from __future__ import annotations

from fastapi import APIRouter

from interop import ui_admin, ui_admin_flows

router = APIRouter(include_in_schema=False)
router.include_router(ui_admin.router)
router.include_router(ui_admin_flows.router)
