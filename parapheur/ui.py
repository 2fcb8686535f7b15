"""Web pages of the parapheur service (server-rendered; see socle.ui): the agent's desk, folders, new folder.

The pages call the engine (parapheur.service and its neighbours) with the signed-in principal, as the API
does: same rights, same tenant confinement. The administration pages live in ``ui_admin*`` modules.
"""

from __future__ import annotations

from fastapi import APIRouter

from parapheur import ui_admin_identities, ui_desk, ui_external, ui_folder, ui_new, ui_pages, ui_preferences
from socle.ui import rendering
from socle.ui.rendering import Section

rendering.register("parapheur", Section("Parapheur", "/bureau", frozenset({"agent", "secretariat"}), order=10))

router = APIRouter(include_in_schema=False)
router.include_router(ui_desk.router)
router.include_router(ui_new.router)  # before the folder's page: « nouveau » is no folder id
router.include_router(ui_folder.router)
router.include_router(ui_pages.router)
router.include_router(ui_external.router)  # the external signer's page: public, the link's secret only
router.include_router(ui_preferences.router)  # « Mes préférences »: the signed-in person's notifications
router.include_router(ui_admin_identities.router)  # administration: agents' signing identities and the seals
