"""Administration page of the flows (flux) and deliveries that need an operator: in error, or stuck.

A flow stops in error when a platform refuses it or its tries are spent; it is stuck when its next step
should have run long ago. Both are resumed here (``interop.flows.resume``), like deliveries in error
(``interop.service.resume_delivery``): the page shows the platform's own words and the flow's history.

A flow's page (``/admin/flux/{id}``) is the one every reader of flows has in « Préfecture et trésorerie »
(:func:`interop.ui_agent.flow_page`), reached from here; another reader is sent to ``/flux/{id}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from interop import flows, service
from interop.models import Connector, Delivery
from interop.ui_agent import HOME, flow_page, plain_error
from socle.auth import Role
from socle.errors import Conflict, InvalidInput
from socle.ui.sessions import SignedIn
from socle.ui.web import DbDep, FormDep, UserDep, redirect, render, require_role, t
from socle.ui.web import form_text as text

router = APIRouter(include_in_schema=False)
LISTED = 200  # the most of each list a page shows: an operator works from the oldest problems
CANCELLED_LISTED = 20  # cancelled deliveries are shown for information only (nothing to do): the latest ones


def _admin(user: SignedIn) -> None:
    require_role(user, Role.ADMIN)


def _deliveries(db: Session, tenant_id: str, condition: ColumnElement[bool], limit: int) -> list[tuple[Delivery, str]]:
    rows = db.execute(
        select(Delivery, Connector.name)
        .outerjoin(Connector, Connector.id == Delivery.connector_id)
        .where(Delivery.tenant_id == tenant_id, condition)
        .order_by(Delivery.created_at.desc())
        .limit(limit)
    ).all()
    return [(row[0], row[1] or "?") for row in rows]


@router.get("/admin/flux", response_class=HTMLResponse)
def flows_page(request: Request, db: DbDep, user: UserDep) -> Response:
    _admin(user)
    return render(request, "interop/admin_flows.html", _flows_context(db, user.principal.tenant_id), db=db)


def _flows_context(db: Session, tenant_id: str) -> dict[str, Any]:
    return {
        "in_error": flows.list_flows(db, tenant_id, "error", LISTED),
        "stuck": flows.list_flows(db, tenant_id, "stuck", LISTED),
        "deliveries": _deliveries(
            db, tenant_id, or_(Delivery.status == "error", Delivery.follow_status == "error"), LISTED
        ),
        # Not resumable (service.resume_delivery refuses them): listed apart, without a button.
        "cancelled": _deliveries(db, tenant_id, Delivery.status == service.CANCELLED, CANCELLED_LISTED),
        "plain_error": plain_error,
    }


@router.get("/admin/flux/{flow_id}", response_class=HTMLResponse)
def flow_view(request: Request, db: DbDep, user: UserDep, flow_id: str) -> Response:
    """A flow's page in the administration, for administrators only, as every page under /admin; the other
    readers of flows have the same page in « Préfecture et trésorerie » (``/flux/{id}``)."""
    _admin(user)
    flow = flows.get_flow(db, user.principal.tenant_id, flow_id)
    return flow_page(request, db, user, flow, area="admin")


@router.post("/admin/flux/{flow_id}/reprendre", response_class=HTMLResponse)
def resume_flow(request: Request, db: DbDep, user: UserDep, form: FormDep, flow_id: str) -> Response:
    _admin(user)
    raw = form.get("transaction_id", "")
    transaction = raw.strip() if isinstance(raw, str) else ""
    area = "agent" if text(form, "retour") == "agent" else "admin"  # the page the form was sent from
    try:
        flows.resume(db, user.principal, flow_id, transaction or None)
    except (Conflict, InvalidInput) as exc:
        db.rollback()
        flow = flows.get_flow(db, user.principal.tenant_id, flow_id)
        field = "transaction_id" if transaction else "form"
        values = {"transaction_id": transaction}
        errors = {field: exc.detail}
        return flow_page(request, db, user, flow, area=area, values=values, errors=errors, status=exc.status)
    message = t(request, "Flux repris : son étape est relancée.")
    back = f"{HOME}/{flow_id}" if area == "agent" else f"/admin/flux/{flow_id}"
    return redirect(back, db=db, user=user, message=message)


@router.post("/admin/flux/envois/{delivery_id}/reprendre", response_class=HTMLResponse)
def resume_delivery(request: Request, db: DbDep, user: UserDep, form: FormDep, delivery_id: str) -> Response:
    _admin(user)
    try:
        service.resume_delivery(db, user.principal, delivery_id)
    except Conflict as exc:
        db.rollback()
        context = _flows_context(db, user.principal.tenant_id) | {"errors": {"form": exc.detail}}
        return render(request, "interop/admin_flows.html", context, status=exc.status, db=db)
    return redirect("/admin/flux", db=db, user=user, message=t(request, "Envoi repris."))
