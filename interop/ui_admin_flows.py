"""Administration page of the flows (flux) and deliveries that need an operator: in error, or stuck.

A flow stops in error when a platform refuses it or its tries are spent; it is stuck when its next step
should have run long ago. Both are resumed here (``interop.flows.resume``), like deliveries in error
(``interop.service.resume_delivery``): the page shows the platform's own words and the flow's history.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from interop import flows, service
from interop.models import Connector, Delivery, Flow
from socle.auth import Role
from socle.errors import Conflict, InvalidInput
from socle.ui.sessions import SignedIn
from socle.ui.web import DbDep, FormDep, UserDep, redirect, render, require_role, t

router = APIRouter(include_in_schema=False)
LISTED = 200  # the most of each list a page shows: an operator works from the oldest problems
CANCELLED_LISTED = 20  # cancelled deliveries are shown for information only (nothing to do): the latest ones
# The domain's error texts end by telling an API user how to resume; here the page's button does that.
_API_HINT = re.compile(r"\s*Reprendre : POST /interop/\S+\s*$")


def plain_error(text: str | None) -> str:
    """An error as the page shows it: without the API's instruction to resume."""
    return _API_HINT.sub("", text or "")


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


def _can_take_transaction(flow: Flow) -> bool:
    """A Hélios flow stopped before it knew its S²LOW transaction: the operator may give the one found there."""
    return flow.kind == "helios" and flow.state == "prêt" and not (flow.data or {}).get("transaction_id")


def _flow_page(
    request: Request,
    db: Session,
    flow: Flow,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    stuck = any(row.id == flow.id for row in flows.list_flows(db, flow.tenant_id, "stuck", LISTED))
    context = {
        "flow": flow,
        "history": flows.history(db, flow),
        "resumable": flow.status == "error" or stuck,
        "stuck": stuck,
        "takes_transaction": _can_take_transaction(flow),
        "plain_error": plain_error,
        "values": values or {},
        "errors": errors or {},
    }
    return render(request, "interop/admin_flow.html", context, status=status, db=db)


@router.get("/admin/flux/{flow_id}", response_class=HTMLResponse)
def flow_page(request: Request, db: DbDep, user: UserDep, flow_id: str) -> Response:
    _admin(user)
    return _flow_page(request, db, flows.get_flow(db, user.principal.tenant_id, flow_id))


@router.post("/admin/flux/{flow_id}/reprendre", response_class=HTMLResponse)
def resume_flow(request: Request, db: DbDep, user: UserDep, form: FormDep, flow_id: str) -> Response:
    _admin(user)
    raw = form.get("transaction_id", "")
    transaction = raw.strip() if isinstance(raw, str) else ""
    try:
        flows.resume(db, user.principal, flow_id, transaction or None)
    except (Conflict, InvalidInput) as exc:
        db.rollback()
        flow = flows.get_flow(db, user.principal.tenant_id, flow_id)
        field = "transaction_id" if transaction else "form"
        values = {"transaction_id": transaction}
        return _flow_page(request, db, flow, values=values, errors={field: exc.detail}, status=exc.status)
    message = t(request, "Flux repris : son étape est relancée.")
    return redirect(f"/admin/flux/{flow_id}", db=db, user=user, message=message)


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
