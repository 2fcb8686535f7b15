"""« Préfecture et trésorerie »: the collectivité's acts and PES on their way, for everyone who may start flows.

The administration's pages (:mod:`interop.ui_admin_flows`) show only the flows to resume; here those who transmit
acts and PES (interop.flows.FLOW_ROLES: agent, secrétariat, archiviste, and administrators) follow them:

- ``/flux``: the acts and PES of the collectivité, newest first, filtered by state and kind, 25 a page, with
  what administrators do beside them (classification @ctes, PES Retour) per TdT connector;
- ``/flux/{id}``: one flow (any kind), its history in plain French (people by their names, « le système » for the
  service, dates in French), the stable address of a flow for the messages that tell of it; administrators find
  there the resume and the cancellation of an act. ``/admin/flux/{id}`` is the same page in the administration.

The forms that start acts and PES are in :mod:`interop.ui_transmit`, the prefecture's letters in
:mod:`interop.ui_letters`. Every page calls interop.flows as the API does: same rights, same confinement to the
collectivité (another's flow is « introuvable »).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from interop import actes, flows, service
from interop.models import Connector, Flow
from socle.auth import Principal, Role, display_names
from socle.errors import SocleError
from socle.ui import rendering
from socle.ui.rendering import Section
from socle.ui.sessions import SignedIn, push_flash
from socle.ui.web import DbDep, FormDep, UserDep, address_number, error_text, redirect, render, t
from socle.ui.web import form_text as text

router = APIRouter(include_in_schema=False)
rendering.register(
    "interop",
    Section("Préfecture et trésorerie", "/flux", frozenset(role.value for role in flows.FLOW_ROLES), order=25),
)

HOME = "/flux"
PAGE_SIZE = 25
AGENT_KINDS = ("actes", "helios")  # what goes to the préfecture (@ctes) and to the trésorerie (Hélios)
STUCK_LISTED = 200  # as the administration's page: a flow among the 200 oldest stuck ones is said stuck
# The domain's error texts end by telling an API user how to resume; here the page's button does that.
_API_HINT = re.compile(r"\s*Reprendre : POST /interop/\S+\s*$")


def _(message: str) -> str:
    """Marks a French label for the catalogues (``socle ui catalogues``); the page translates it."""
    return message


# The filters of the list: a word of the address → the statuses it shows.
STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    "en-cours": ("running", "waiting"),
    "erreur": ("error",),
    "termine": ("done",),
}
STATUS_FILTER_LABELS = {"en-cours": _("En cours"), "erreur": _("En erreur"), "termine": _("Terminés")}
KIND_FILTER_LABELS = {"actes": _("Actes (préfecture)"), "helios": _("PES (trésorerie)")}

KIND_LABELS = {
    "actes": _("Acte"),
    "helios": _("PES"),
    "depot": _("Dépôt"),
    "mail": _("Courriel"),
    "signature": _("Signature au parapheur"),
}
STATUS_LABELS = {
    "running": _("en cours"),
    "waiting": _("en attente d'une réponse"),
    "error": _("en erreur"),
    "done": _("terminé"),
}
# Where a flow stands, in words: the machine's states (interop.flows), some told apart by kind.
STATE_LABELS = {
    "nouveau": _("reçu, en préparation"),
    flows.SIGNED: _("signé, en préparation de l'envoi"),
    "prêt": _("prêt à partir"),
    "posté": _("déposé sur la plateforme de télétransmission"),
    "en attente de transmission": _("en attente de transmission"),
    "transmis": _("transmis"),
    flows.FILING: _("réponse reçue, en cours de classement dans la GED"),
    flows.FILED: _("terminé, classé dans la GED"),
    flows.ARCHIVED: _("reçu par la préfecture, classé et versé aux archives"),
    flows.CANCELLED: _("annulation demandée à la préfecture"),
    flows.REJECTED: _("rejeté au parapheur"),
    flows.DELIVERED: _("déposé"),
    "envoyé": _("envoyé"),
}
KIND_STATE_LABELS = {
    ("actes", "transmis"): _("transmis à la préfecture"),
    ("helios", "transmis"): _("transmis à la trésorerie"),
    ("actes", flows.FILING): _("accusé de réception reçu, en cours de classement dans la GED"),
    ("helios", flows.FILING): _("accepté par le comptable, PES Acquit en cours de classement dans la GED"),
    ("actes", flows.FILED): _("reçu par la préfecture, accusé de réception classé dans la GED"),
    ("helios", flows.FILED): _("accepté par le comptable, PES Acquit classé dans la GED"),
}
# Who did what in a flow's history, when it is not a person.
SERVICE_NAMES = {
    "service:interop": _("le système"),
    "service:ged": _("la GED"),
    "service:parapheur": _("le parapheur"),
    "service:archive": _("le service d'archives"),
}
# The files a flow filed in the GED (flow.data["ged_documents"]), by their name in the flow.
GED_DOCUMENT_LABELS = {
    "aracte": _("Accusé de réception de la préfecture (ARActe)"),
    "acquit": _("PES Acquit"),
    "retour": _("PES Retour"),
    "acte": _("Acte"),
}


def plain_error(text: str | None) -> str:
    """An error as a page shows it: without the API's instruction to resume."""
    return _API_HINT.sub("", text or "")


def is_admin(principal: Principal) -> bool:
    return Role.ADMIN in principal.roles


def tdt_connectors(db: Session, tenant_id: str, *, enabled_only: bool = True) -> list[Connector]:
    """The collectivité's connectors to a TdT (S²LOW), by name."""
    found = [
        connector
        for connector in service.list_connectors(db, tenant_id)
        if connector.kind in flows.TDT_KINDS and (connector.enabled or not enabled_only)
    ]
    return sorted(found, key=lambda connector: connector.name)


def state_text(request: Request, flow: Flow) -> str:
    """Where the flow stands, in a sentence of the page's language (« transmis à la préfecture »)."""
    state = flow.state
    if state.startswith(flows.AT_PARAPHEUR):  # « au parapheur : étape 2 sur 3 »
        return t(request, "au parapheur pour signature") + state[len(flows.AT_PARAPHEUR) :]
    label = KIND_STATE_LABELS.get((flow.kind, state)) or STATE_LABELS.get(state)
    return t(request, label) if label else state


def status_text(request: Request, flow: Flow) -> str:
    label = STATUS_LABELS.get(flow.status)
    return t(request, label) if label else flow.status


def flow_title(request: Request, flow: Flow) -> str:
    """How a flow is named on a page: an act by its number and subject, a PES by its file."""
    metadata = flow.flow_metadata or {}
    if flow.kind == "actes" and metadata.get("numero"):
        return t(
            request, "Acte n° %(number)s — %(subject)s", number=metadata["numero"], subject=metadata.get("objet") or ""
        )
    kind = t(request, KIND_LABELS[flow.kind]) if flow.kind in KIND_LABELS else flow.kind
    filename = flow.documents[0]["filename"] if flow.documents else flow.id
    return f"{kind} — {filename}"


def actor_names(request: Request, db: Session, tenant_id: str, actors: set[str]) -> dict[str, str]:
    """Each actor of a history (« user:claire », « service:interop ») as a reader knows them: a person by their
    full name (a former user keeps their username), a service by its French name, anything else « le système »."""
    names = display_names(db, tenant_id, (actor.removeprefix("user:") for actor in actors if actor.startswith("user:")))
    shown = {}
    for actor in actors:
        if actor.startswith("user:"):
            username = actor.removeprefix("user:")
            shown[actor] = names.get(username, username)
        else:
            shown[actor] = t(request, SERVICE_NAMES.get(actor, "le système"))
    return shown


def iso_date(value: Any) -> date | None:
    """A date kept as text (« 2026-11-30 »), for the pages' French dates; None when it is not one."""
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------------------
# The list


@dataclass(frozen=True)
class Listing:
    """The filters of ``/flux``, as the address gives them (unknown values are ignored)."""

    etat: str = ""
    type: str = ""
    page: int = 1

    def url(self, **changes: Any) -> str:
        values = {"etat": self.etat, "type": self.type, "page": self.page} | changes
        if "page" not in changes:
            values["page"] = 1  # a new filter starts at its first page
        query = {name: value for name, value in values.items() if value and not (name == "page" and value == 1)}
        return HOME + (f"?{urlencode(query)}" if query else "")


def agent_flows(db: Session, tenant_id: str, listing: Listing) -> tuple[list[Flow], bool]:
    """The collectivité's acts and PES flows of the listing's page, newest first, and whether a next page exists."""
    query = select(Flow).where(Flow.tenant_id == tenant_id)
    query = query.where(Flow.kind == listing.type) if listing.type else query.where(Flow.kind.in_(AGENT_KINDS))
    if listing.etat:
        query = query.where(Flow.status.in_(STATUS_FILTERS[listing.etat]))
    query = query.order_by(Flow.created_at.desc(), Flow.id.desc())
    rows = list(db.execute(query.offset((listing.page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)).scalars())
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


@router.get(HOME, response_class=HTMLResponse)
def flows_page(request: Request, db: DbDep, user: UserDep, etat: str = "", type: str = "", page: str = "") -> Response:
    principal = user.principal
    principal.require(*flows.FLOW_ROLES)
    listing = Listing(
        etat=etat if etat in STATUS_FILTERS else "",
        type=type if type in AGENT_KINDS else "",
        page=address_number(page) or 1,
    )
    rows, has_next = agent_flows(db, principal.tenant_id, listing)
    names = actor_names(request, db, principal.tenant_id, {flow.created_by for flow in rows})
    connectors = tdt_connectors(db, principal.tenant_id, enabled_only=False)
    context = {
        "listing": listing,
        "filter_values": {"etat": listing.etat, "type": listing.type},
        "status_options": [(code, t(request, label)) for code, label in STATUS_FILTER_LABELS.items()],
        "kind_options": [(code, t(request, label)) for code, label in KIND_FILTER_LABELS.items()],
        "rows": [
            {
                "flow": flow,
                "title": flow_title(request, flow),
                "kind": t(request, KIND_LABELS.get(flow.kind, flow.kind)),
                "state": state_text(request, flow),
                "status": status_text(request, flow),
                "by": names.get(flow.created_by, ""),
            }
            for flow in rows
        ],
        "has_next": has_next,
        "connectors": connectors,
        "can_send": any(connector.enabled for connector in connectors),
        "may_read_letters": flows.may_read_letters(principal),
        "admin": is_admin(principal),
        "classifications": _classifications(db, connectors) if is_admin(principal) else {},
    }
    return render(request, "interop/flows.html", context, db=db)


def _classifications(db: Session, connectors: list[Connector]) -> dict[str, Any]:
    """Each enabled TdT connector's classification as kept (None: never fetched), for the administrators' part."""
    from interop.ui_transmit import classification_state

    return {connector.name: classification_state(db, connector) for connector in connectors if connector.enabled}


# ---------------------------------------------------------------------------------------------------------
# A flow


def flow_page(
    request: Request,
    db: Session,
    user: SignedIn,
    flow: Flow,
    *,
    area: str = "agent",
    values: dict[str, Any] | None = None,
    errors: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    """The page of a flow, for its readers; ``area``: « admin » (reached from the flows to resume) or « agent »."""
    principal = user.principal
    admin = is_admin(principal)
    events = flows.history(db, flow)
    keys = flows.shows_keys(principal, flow)

    def shown(value: str | None) -> str:  # a text of the flow, its object keys cut for who may not read them
        return str(flows.without_keys(value or "")) if not keys else value or ""

    stuck = any(row.id == flow.id for row in flows.list_flows(db, flow.tenant_id, "stuck", STUCK_LISTED))
    names = actor_names(request, db, flow.tenant_id, {flow.created_by, *(event.actor for event in events)})
    metadata = flow.flow_metadata or {}
    nature = actes.NATURES.get(metadata["nature"]) if isinstance(metadata.get("nature"), int) else None
    context = {
        "flow": flow,
        "area": area,
        "title": flow_title(request, flow),
        "kind": t(request, KIND_LABELS.get(flow.kind, flow.kind)),
        "state": state_text(request, flow),
        "status_text": status_text(request, flow),
        "started_by": names.get(flow.created_by, ""),
        "error": plain_error(shown(flow.error)),
        "act": {
            "number": metadata.get("numero"),
            "subject": metadata.get("objet"),
            "date": iso_date(metadata.get("date")),
            "nature": nature[1] if nature else metadata.get("nature"),
            "matiere": metadata.get("matiere"),
            "act_id": (flow.data or {}).get("act_id"),
            "received": iso_date(((flow.data or {}).get("aracte") or {}).get("date_reception")),
        }
        if flow.kind == "actes"
        else None,
        "filed": [
            (t(request, _ged_label(name)), document_id)
            for name, document_id in ((flow.data or {}).get("ged_documents") or {}).items()
        ],
        "history": [
            {
                "at": event.at,
                "from": event.from_state,
                "to": event.to_state,
                "by": names.get(event.actor, ""),
                "message": shown(event.message),
            }
            for event in events
        ],
        "letters": flow_letters(request, flow),
        "may_answer": flows.may_read_letters(principal),
        "stuck": stuck,
        "resumable": admin and (flow.status == "error" or stuck),
        "takes_transaction": admin and _can_take_transaction(flow),
        "cancellable": admin and _cancellable(flow),
        "admin": admin,
        "values": values or {},
        "errors": errors or {},
    }
    return render(request, "interop/flow.html", context, status=status, db=db)


def flow_letters(request: Request, flow: Flow) -> list[dict[str, Any]]:
    """The prefecture's letters about the flow's act, as interop.flows notes them when they are read
    (``data.letters``: id, type, label, date, text), each with what the page needs to answer it."""
    from interop.ui_letters import ANSWERED, LETTER_LABELS

    found = []
    for letter in (flow.data or {}).get("letters") or []:
        letter_id, kind = str(letter.get("id") or ""), str(letter.get("type") or "")
        if not flows.DIGITS_ID.fullmatch(letter_id):
            continue
        found.append(
            {
                "id": letter_id,
                "label": t(request, LETTER_LABELS[kind]) if kind in LETTER_LABELS else str(letter.get("label") or ""),
                "date": iso_date(letter.get("date")),
                "text": str(letter.get("text") or ""),
                "answered": kind in ANSWERED,
                "connector": flow.connector,
            }
        )
    return found


def _ged_label(name: str) -> str:
    if name.startswith("annexe-"):
        return _("Annexe")
    if name.startswith("document-"):
        return _("Document signé")
    return GED_DOCUMENT_LABELS.get(name, name)


def _can_take_transaction(flow: Flow) -> bool:
    """A Hélios flow stopped before it knew its S²LOW transaction: the operator may give the one found there."""
    return flow.kind == "helios" and flow.state == "prêt" and not (flow.data or {}).get("transaction_id")


def _cancellable(flow: Flow) -> bool:
    """An act the TdT has received and that is not cancelled yet (interop.flows.cancel_act's own condition)."""
    return flow.kind == "actes" and bool((flow.data or {}).get("transaction_id")) and flow.state != flows.CANCELLED


@router.get(HOME + "/{flow_id}", response_class=HTMLResponse)
def flow_view(request: Request, db: DbDep, user: UserDep, flow_id: str) -> Response:
    user.principal.require(*flows.FLOW_ROLES)  # as GET /interop/flows/{id}
    return flow_page(request, db, user, flows.get_flow(db, user.principal.tenant_id, flow_id))


@router.post(HOME + "/{flow_id}/annulation", response_class=HTMLResponse)
def cancel_act(request: Request, db: DbDep, user: UserDep, form: FormDep, flow_id: str) -> Response:
    """Ask the TdT to cancel a transmitted act (administrators, as POST /interop/flows/{id}/cancel)."""
    principal = user.principal
    principal.require(Role.ADMIN)
    flow = flows.get_flow(db, principal.tenant_id, flow_id)  # another collectivité's: « introuvable »
    if text(form, "confirmation") != "1":
        error = t(request, "Cochez la case pour confirmer l'annulation de l'acte.")
        return flow_page(request, db, user, flow, errors={"confirmation": error}, status=422)
    try:
        flows.cancel_act(db, principal, flow_id)
    except SocleError as exc:
        if exc.status in (403, 404):
            raise
        db.rollback()
        flow = flows.get_flow(db, principal.tenant_id, flow_id)
        return flow_page(request, db, user, flow, errors={"form": error_text(request, exc)}, status=exc.status)
    message = t(request, "Annulation de l'acte demandée à la préfecture.")
    return redirect(f"{HOME}/{flow_id}", db=db, user=user, message=message)


def flash_error(db: Session, user: SignedIn, message: str) -> None:
    push_flash(db, user.session_id, message, kind="error")
