"""GED pages: the trash (corbeille), with restore and the date each document may be purged."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ged import retention, service
from ged.ui_common import is_admin, paged
from ged.ui_documents import purge_day
from socle.auth import Role
from socle.errors import Conflict
from socle.ui.web import DbDep, FormDep, UserDep, redirect, render, t

router = APIRouter(include_in_schema=False)


def _trash_page(request: Request, db: DbDep, user: UserDep, *, errors: dict[str, str], status: int) -> Response:
    principal = user.principal
    documents, paging = paged(
        lambda limit, offset: service.list_trash(db, principal, limit=limit, offset=offset),
        request.query_params.get("page"),
    )
    context = {
        "documents": [(document, purge_day(document)) for document in documents],
        "pager": paging,
        "page_url": lambda number: f"/corbeille?page={number}",
        "trash_days": service.trash_days(),
        "can_purge": is_admin(principal),
        "errors": errors,
    }
    return render(request, "ged/trash.html", context, status=status, db=db)


@router.get("/corbeille")
def trash_page(request: Request, db: DbDep, user: UserDep) -> Response:
    return _trash_page(request, db, user, errors={}, status=200)


@router.post("/corbeille/{document_id}/restaurer")
def restore(request: Request, db: DbDep, user: UserDep, form: FormDep, document_id: str) -> Response:
    try:
        document = service.restore_document(db, user.principal, document_id)
    except Conflict as exc:
        db.rollback()
        return _trash_page(request, db, user, errors={"form": exc.detail}, status=409)
    message = t(request, "« %(title)s » est restauré.", title=document.current.title)
    return redirect(f"/documents/{document_id}", db=db, user=user, message=message)


@router.post("/corbeille/purger")
def purge(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    user.principal.require(Role.ADMIN)
    report = retention.purge(db, user.principal.tenant_id, actor=user.principal.actor)
    message = t(
        request,
        "Corbeille purgée : %(purged)s document(s) supprimé(s), %(kept)s gardé(s) (gel, DUA en cours ou non "
        "commencée, versement ou élimination en cours).",
        purged=len(report.purged),
        kept=len(report.kept),
    )
    return redirect("/corbeille", db=db, user=user, message=message)
