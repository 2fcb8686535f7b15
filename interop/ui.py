"""Web pages of the interop service (server-rendered; see socle.ui).

For those who transmit acts and PES (« Préfecture et trésorerie »): their flows and a flow's page in
:mod:`interop.ui_agent`, the forms that start them in :mod:`interop.ui_transmit`, the prefecture's letters in
:mod:`interop.ui_letters`. For administrators: connectors in :mod:`interop.ui_admin`, flows and deliveries to
resume in :mod:`interop.ui_admin_flows`.
"""

from __future__ import annotations

from fastapi import APIRouter

from interop import ui_admin, ui_admin_flows, ui_agent, ui_letters, ui_transmit

router = APIRouter(include_in_schema=False)
router.include_router(ui_admin.router)
router.include_router(ui_admin_flows.router)
# /flux/acte, /flux/pes and /flux/courriers… before /flux/{id}, which would take their last word for an id.
router.include_router(ui_transmit.router)
router.include_router(ui_letters.router)
router.include_router(ui_agent.router)
