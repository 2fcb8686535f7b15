"""GED pages: the classification plan (plan de classement) as a tree, and the documents of a folder."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from ged import access, plan, service
from ged.ui_common import folder_tree, open_ids, paged, with_thumbnail
from socle.auth import Principal
from socle.ui.web import DbDep, UserDep, render

router = APIRouter(include_in_schema=False)


def _plan_page(request: Request, db: Session, principal: Principal, folder_id: str | None) -> Response:
    folder = None
    if folder_id is not None:
        access.require_folder(db, principal, folder_id, "read")  # unknown, another tenant's, unreadable: 404
        folder = plan.get_folder(db, principal.tenant_id, folder_id)
    tree = folder_tree(db, principal)
    context: dict[str, Any] = {
        "tree": tree,
        "open": open_ids(tree, folder),
        "folder": folder,
        "trail": plan.visible_ancestors(db, principal, folder)[0] if folder else [],
        "documents": [],
        "pager": None,
        "thumbnails": {},
    }
    if folder is not None:
        documents, paging = paged(
            lambda limit, offset: service.list_documents(
                db, principal, folder_id=folder.id, limit=limit, offset=offset
            ),
            request.query_params.get("page"),
        )
        context.update(
            documents=documents,
            pager=paging,
            page_url=lambda number: f"/plan/{folder.id}?page={number}",
            thumbnails=with_thumbnail(db, [(d.id, d.current_version) for d in documents]),
            can_write="write" in access.folder_rights(db, principal, folder.id),
        )
    return render(request, "ged/plan.html", context, db=db)


@router.get("/plan")
def plan_root(request: Request, db: DbDep, user: UserDep) -> Response:
    return _plan_page(request, db, user.principal, None)


@router.get("/plan/{folder_id}")
def plan_folder(request: Request, db: DbDep, user: UserDep, folder_id: str) -> Response:
    return _plan_page(request, db, user.principal, folder_id)
