"""GED pages: legal holds (gels). An archivist places documents under a hold, with its reason, and lifts it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from ged import access, holds, service
from ged.models import Document
from ged.ui_common import form_values
from ged.ui_documents import document_page_response, refuse_on_document_page
from socle.auth import Principal, Role
from socle.errors import Conflict, InvalidInput, NotFound
from socle.ui.web import DbDep, FormDep, UserDep, redirect, render, t
from socle.ui.web import form_text as text

router = APIRouter(include_in_schema=False)
MAX_SHOWN = 500  # documents listed on a hold's page


def _holds_page(
    request: Request,
    db: Session,
    principal: Principal,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    principal.require(Role.ARCHIVISTE)
    found = holds.list_holds(db, principal.tenant_id)
    rows = [(hold, len(holds.held_document_ids(db, hold.id))) for hold in found]
    context = {
        "active": [row for row in rows if row[0].released_at is None],
        "released": [row for row in rows if row[0].released_at is not None],
        "values": values or {},
        "errors": errors or {},
    }
    return render(request, "ged/holds.html", context, status=status, db=db)


@router.get("/gels")
def holds_page(request: Request, db: DbDep, user: UserDep) -> Response:
    return _holds_page(request, db, user.principal)


def _hold_errors(request: Request, name: str, reason: str) -> dict[str, str]:
    errors = {}
    if not name:
        errors["name"] = t(request, "Donnez un nom au gel (par exemple le contentieux qu'il concerne).")
    elif len(name) > 200:
        errors["name"] = t(request, "200 caractères au plus.")
    if not reason:
        errors["reason"] = t(request, "Indiquez le motif du gel.")
    elif len(reason) > 5000:
        errors["reason"] = t(request, "5 000 caractères au plus.")
    return errors


@router.post("/gels")
def create_hold(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    principal = user.principal
    principal.require(Role.ARCHIVISTE)
    name, reason = text(form, "name"), text(form, "reason")
    errors = _hold_errors(request, name, reason)
    if errors:
        return _holds_page(request, db, principal, values=form_values(form), errors=errors, status=422)
    hold = holds.create_hold(db, principal, name, reason)
    message = t(request, "Gel « %(name)s » créé : ajoutez-y les documents à geler.", name=hold.name)
    return redirect(f"/gels/{hold.id}", db=db, user=user, message=message)


@dataclass(frozen=True)
class HeldItem:
    id: str
    document: Document | None  # None: a document this user may not read; only its id is shown


def _documents(db: Session, principal: Principal, hold_id: str) -> list[HeldItem]:
    """The hold's documents as the user may see them: title and type of those they may read, the id alone for
    the others (another archivist or the admin may have held documents of a folder this user may not read)."""
    ids = holds.held_document_ids(db, hold_id)[:MAX_SHOWN]
    kept = set(
        db.execute(select(Document.id).where(Document.id.in_(ids), Document.tenant_id == principal.tenant_id)).scalars()
    )
    readable = access.readable_documents(db, principal, ids)
    # A document purged meanwhile has nothing left to show.
    return [HeldItem(document_id, readable.get(document_id)) for document_id in ids if document_id in kept]


def _hold_page(
    request: Request,
    db: Session,
    principal: Principal,
    hold_id: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    principal.require(Role.ARCHIVISTE)
    hold = holds.get_hold(db, principal.tenant_id, hold_id)
    context = {
        "hold": hold,
        "documents": _documents(db, principal, hold.id),
        "total": len(holds.held_document_ids(db, hold.id)),
        "values": values or {},
        "errors": errors or {},
    }
    return render(request, "ged/hold.html", context, status=status, db=db)


@router.get("/gels/{hold_id}")
def hold_page(request: Request, db: DbDep, user: UserDep, hold_id: str) -> Response:
    return _hold_page(request, db, user.principal, hold_id)


@router.post("/gels/{hold_id}/documents")
def add_document(request: Request, db: DbDep, user: UserDep, form: FormDep, hold_id: str) -> Response:
    principal = user.principal
    principal.require(Role.ARCHIVISTE)
    document_id = text(form, "document_id")
    if not document_id:
        errors = {"document_id": t(request, "Indiquez l'identifiant du document (il figure sur sa page).")}
        return _hold_page(request, db, principal, hold_id, values=form_values(form), errors=errors, status=422)
    try:
        holds.add_documents(db, principal, hold_id, [document_id])
    except (NotFound, Conflict) as exc:
        db.rollback()
        holds.get_hold(db, principal.tenant_id, hold_id)  # an unknown hold stays a 404 page
        errors = {"document_id": exc.detail}
        return _hold_page(request, db, principal, hold_id, values=form_values(form), errors=errors, status=exc.status)
    return redirect(f"/gels/{hold_id}", db=db, user=user, message=t(request, "Document gelé."))


@router.post("/gels/{hold_id}/documents/{document_id}/retirer")
def remove_document(
    request: Request, db: DbDep, user: UserDep, form: FormDep, hold_id: str, document_id: str
) -> Response:
    try:
        holds.remove_document(db, user.principal, hold_id, document_id)
    except Conflict as exc:
        db.rollback()
        return _hold_page(request, db, user.principal, hold_id, errors={"form": exc.detail}, status=409)
    return redirect(f"/gels/{hold_id}", db=db, user=user, message=t(request, "Document retiré du gel."))


@router.post("/gels/{hold_id}/lever")
def release(request: Request, db: DbDep, user: UserDep, form: FormDep, hold_id: str) -> Response:
    reason = text(form, "raison")
    if not reason:
        missing = {"raison": t(request, "Dites pourquoi le gel est levé (jugement, accord, fin du contentieux…).")}
        return _hold_page(request, db, user.principal, hold_id, errors=missing, values={"raison": ""}, status=422)
    try:
        hold = holds.release_hold(db, user.principal, hold_id, reason)
    except (Conflict, InvalidInput) as exc:
        db.rollback()
        return _hold_page(request, db, user.principal, hold_id, errors={"form": exc.detail}, status=exc.status)
    message = t(request, "Gel « %(name)s » levé : ses documents peuvent de nouveau être modifiés.", name=hold.name)
    return redirect(f"/gels/{hold_id}", db=db, user=user, message=message)


@router.post("/documents/{document_id}/geler")
def hold_document(request: Request, db: DbDep, user: UserDep, form: FormDep, document_id: str) -> Response:
    """From a document's page: under an active hold, or under a new one (name and reason)."""
    principal = user.principal
    principal.require(Role.ARCHIVISTE)
    service.read_document(db, principal, document_id)  # 404 before anything else
    hold_id = text(form, "hold_id")
    try:
        if not hold_id:
            name, reason = text(form, "hold_name"), text(form, "hold_reason")
            errors = _hold_errors(request, name, reason)
            if errors:
                return _document_errors(request, db, principal, document_id, errors, form)
            hold_id = holds.create_hold(db, principal, name, reason).id
        hold = holds.add_documents(db, principal, hold_id, [document_id])
    except (NotFound, Conflict, InvalidInput) as exc:
        return refuse_on_document_page(request, db, principal, document_id, "hold_id", exc, form)
    message = t(request, "Document gelé par « %(name)s ».", name=hold.name)
    return redirect(f"/documents/{document_id}", db=db, user=user, message=message)


def _document_errors(
    request: Request, db: Session, principal: Principal, document_id: str, errors: dict[str, str], form: Any
) -> Response:
    renamed = {"name": "hold_name", "reason": "hold_reason"}
    shown = {renamed.get(name, name): message for name, message in errors.items()}
    return document_page_response(
        request, db, principal, document_id, errors=shown, values=form_values(form), status=422
    )
