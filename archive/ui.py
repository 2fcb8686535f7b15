"""Web pages of the archive service, for archivists (server-rendered; see socle.ui).

The archive service never sees the GED's documents: what reached the end of its DUA is chosen by the GED
when a transfer asks for it (``dua_reached``, through GED_SELECT_FOR_ARCHIVE). These pages offer that
transfer, follow the transfers to the archival system's reply, inspect packages and edit the mappings.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select

from archive import ui_inspection, ui_mappings, ui_referentials, ui_transfers
from archive.models import Transfer
from archive.ui_shared import GROUPS, group_condition, require_archivist, transfer_rows
from socle.ui import rendering
from socle.ui.rendering import Section
from socle.ui.web import DbDep, UserDep, render

router = APIRouter(include_in_schema=False)
rendering.register("archive", Section("Archives", "/archives", frozenset({"archiviste"}), order=30))


@router.get("/archives", response_class=HTMLResponse)
def home(request: Request, db: DbDep, user: UserDep) -> Response:
    require_archivist(user)
    tenant_id = user.principal.tenant_id
    groups = [
        {
            "key": key,
            "title": title,
            "count": db.execute(
                select(func.count()).where(Transfer.tenant_id == tenant_id, group_condition(key))
            ).scalar_one(),
        }
        for key, (title, _statuses) in GROUPS.items()
    ]
    dua_transfers = list(
        db.execute(
            select(Transfer)
            .where(Transfer.tenant_id == tenant_id, Transfer.selection["kind"].as_string() == "dua_reached")
            .order_by(Transfer.created_at.desc())
            .limit(10)
        ).scalars()
    )
    context = {"groups": groups, "dua_transfers": transfer_rows(dua_transfers)}
    return render(request, "archive/home.html", context, db=db)


router.include_router(ui_transfers.router)
router.include_router(ui_inspection.router)
router.include_router(ui_mappings.router)
router.include_router(ui_referentials.router)
