"""Web pages of the ged service (server-rendered; see socle.ui).

The pages are split by topic: search, documents and upload (ui_documents), the classification plan
(ui_plan), the trash (ui_trash), legal holds (ui_holds) and the GED's administration (ui_admin). They are
gathered here in one router, the one socle.app mounts.
"""

from __future__ import annotations

from fastapi import APIRouter

from ged import ui_admin, ui_documents, ui_holds, ui_plan, ui_trash
from socle.auth import Role
from socle.ui import rendering
from socle.ui.rendering import Section

router = APIRouter(include_in_schema=False)
for _module in (ui_documents, ui_plan, ui_trash, ui_holds, ui_admin):
    router.include_router(_module.router)

rendering.register(
    "ged", Section("Documents", "/documents", frozenset({Role.AGENT, Role.SECRETARIAT, Role.ARCHIVISTE}), order=20)
)
