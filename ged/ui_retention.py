"""GED pages for archivists: what reached the end of its DUA, and eliminations with their four-eyes approval.

They sit under /archives, the archivist's section, but read the GED: the archive service never sees the GED's
documents. A document at the end of its DUA follows its type's final action: « conserver » or « trier » ones
are chosen for a transfer (the archive's form, by link), « détruire » ones are proposed for elimination, which
another person approves before anyone carries it out. Everything goes through ged.retention, with the
signed-in principal: the same rights, tenant and messages as the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from ged import access, holds, retention, types
from ged.models import Document, DocumentType, Elimination
from ged.service import ARCHIVED, ELIMINATED
from ged.ui_common import page_number
from socle.auth import Principal, Role
from socle.errors import Conflict, Forbidden, InvalidInput, NotFound
from socle.models import AuditEntry
from socle.ui import rendering
from socle.ui.sessions import SignedIn
from socle.ui.web import DbDep, FormDep, UserDep, error_text, redirect, render, t
from socle.ui.web import form_text as _text
from socle.ui.web import sentence as _first_upper

router = APIRouter(include_in_schema=False)
rendering.register("ged")  # the templates are the GED's; the navigation entry is the archive's « Archives »

PAGE_SIZE = 50
SHOWN_DOCUMENTS = 200  # documents listed on an elimination's page: the page stays light whatever its size
PROOF_CHUNK = 500  # documents looked up per query on a proof page
MAX_COMMENT = 5000  # as the API's EliminationIn and DecisionIn
TRANSFER_FORM = "/archives/transferts/nouveau"


def _(message: str) -> str:
    """Marks a French text for the catalogues; the templates translate it when they show it."""
    return message


# The filter's words (in the URL) → the GED's final action; « tous » is every document whose DUA ended.
FINAL_ACTIONS: dict[str, str] = {"conserver": "keep", "trier": "sort", "detruire": retention.DESTROY}
FINAL_ACTION_NAMES: dict[str, str] = {"keep": _("Conserver"), "sort": _("Trier"), "destroy": _("Détruire")}
STATUS_NAMES: dict[str, str] = {
    retention.PROPOSED: _("Proposée, en attente d'approbation"),
    retention.APPROVED: _("Approuvée, à exécuter"),
    retention.REFUSED: _("Refusée"),
    retention.DONE: _("Exécutée"),
}
# The eliminations list's filter: the words in the URL → the domain's states.
STATUS_FILTERS: dict[str, str] = {
    "proposees": retention.PROPOSED,
    "approuvees": retention.APPROVED,
    "refusees": retention.REFUSED,
    "executees": retention.DONE,
}
OPEN = (retention.PROPOSED, retention.APPROVED)


def require_archivist(user: SignedIn) -> Principal:
    """These pages are the archivists' (and the administrators'): a Forbidden page for anyone else."""
    user.principal.require(Role.ARCHIVISTE)
    return user.principal


def sentence(message: str) -> str:
    """A domain message (« une élimination est… ») shown as a sentence of its own."""
    message = message.strip()
    if not message:
        return message
    return _first_upper(message) + ("" if message.endswith((".", "?", "!", ")")) else ".")


# ---------------------------------------------------------------------------------------------------------
# What reached the end of its DUA


@dataclass(frozen=True)
class Filters:
    sort: str  # "", "conserver", "trier", "detruire"
    type: str  # a document type's code, or ""
    page: int

    def url(self, **changes: Any) -> str:
        wanted = {"sort": self.sort, "type": self.type, "page": self.page, **changes}
        query = {key: value for key, value in wanted.items() if value and not (key == "page" and value == 1)}
        return "/archives/dua" + (f"?{urlencode(query)}" if query else "")


@dataclass(frozen=True)
class DuaRow:
    document: Document
    type_name: str
    type_code: str
    final_action: str
    held_by: list[str]
    elimination_id: str | None  # an open proposal that already includes it
    choice: str | None  # the selection it may join: "verser", "eliminer", or None
    refusal: retention.Refusal | None = None  # its latest refused elimination: when, by whom, why


def filters_of(sort: str, type_code: str, page: str) -> Filters:
    """The list's filters from the URL; unknown values are dropped rather than refused."""
    return Filters(sort if sort in FINAL_ACTIONS else "", type_code.strip()[:100], page_number(page))


def _retention_query(db: Session, principal: Principal, filters: Filters) -> Any:
    """The GED's own selection (ged.retention.retention_query), narrowed by final action and type."""
    action = FINAL_ACTIONS.get(filters.sort)
    state = {None: "reached", retention.DESTROY: "to_eliminate"}.get(action, "to_transfer")
    query = retention.retention_query(db, principal, state)
    if action in retention.TRANSFER_ACTIONS:
        query = query.where(DocumentType.final_action == action)
    if filters.type:
        query = query.where(DocumentType.code == filters.type)
    return query


def dua_rows(db: Session, principal: Principal, filters: Filters) -> tuple[list[DuaRow], Filters, int, int]:
    """One page of the documents whose DUA ended, oldest end first: (rows, filters on the page shown, total,
    pages). Past the last page, the last page."""
    principal.require(Role.ARCHIVISTE)
    query = _retention_query(db, principal, filters)
    total = db.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    pages = max(1, -(-total // PAGE_SIZE))
    filters = Filters(filters.sort, filters.type, min(filters.page, pages))
    documents = list(
        db.execute(
            query.options(selectinload(Document.versions))
            .order_by(Document.dua_ends_on, Document.id)
            .limit(PAGE_SIZE)
            .offset((filters.page - 1) * PAGE_SIZE)
        ).scalars()
    )
    ids = [document.id for document in documents]
    held = holds.active_holds(db, ids)
    pending = _open_proposals(db, principal)
    refused = retention.refusals(db, principal.tenant_id, ids)
    type_of = _types(db, {document.type_id for document in documents})
    rows = []
    for document in documents:
        document_type = type_of[document.type_id or ""]
        elimination_id = pending.get(document.id)
        if held.get(document.id):
            choice = None  # a held document is neither transferred nor eliminated until the hold is lifted
        elif document_type.final_action == retention.DESTROY:
            choice = None if elimination_id else "eliminer"
        else:
            choice = "verser"
        rows.append(
            DuaRow(
                document=document,
                type_name=document_type.name,
                type_code=document_type.code,
                final_action=document_type.final_action,
                held_by=held.get(document.id, []),
                elimination_id=elimination_id,
                choice=choice,
                refusal=refused.get(document.id),
            )
        )
    return rows, filters, total, pages


def _types(db: Session, type_ids: set[str | None]) -> dict[str, DocumentType]:
    wanted = [type_id for type_id in type_ids if type_id]
    if not wanted:
        return {}
    return {found.id: found for found in db.execute(select(DocumentType).where(DocumentType.id.in_(wanted))).scalars()}


def _open_proposals(db: Session, principal: Principal) -> dict[str, str]:
    """Document id → the open (proposed or approved) elimination that includes it."""
    found: dict[str, str] = {}
    for elimination in retention.list_eliminations(db, principal):
        if elimination.status in OPEN:
            found.update(dict.fromkeys(elimination.document_ids, elimination.id))
    return found


def _dua_page(
    request: Request,
    db: Session,
    principal: Principal,
    filters: Filters,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    rows, filters, total, pages = dua_rows(db, principal, filters)
    type_options = [(found.code, f"{found.name} ({found.code})") for found in types.list_types(db, principal.tenant_id)]
    context = {
        "rows": rows,
        "filters": filters,
        "total": total,
        "pages": pages,
        "sort_options": [(key, FINAL_ACTION_NAMES[code]) for key, code in FINAL_ACTIONS.items()],
        "type_options": type_options,
        "filter_values": {"sort": filters.sort, "type": filters.type},
        "final_action_names": FINAL_ACTION_NAMES,
        "to_transfer": any(row.choice == "verser" for row in rows),
        "to_eliminate": any(row.choice == "eliminer" for row in rows),
        "archived": ARCHIVED,
        "values": {"eliminer": [], "verser": [], **(values or {})},
        "errors": errors or {},
    }
    return render(request, "ged/retention.html", context, status=status, db=db)


TypeQuery = Annotated[str, Query(alias="type")]


@router.get("/archives/dua", response_class=HTMLResponse)
def dua_page(
    request: Request, db: DbDep, user: UserDep, sort: str = "", type_code: TypeQuery = "", page: str = "1"
) -> Response:
    return _dua_page(request, db, require_archivist(user), filters_of(sort, type_code, page))


def _ticked(values: list[Any]) -> list[str]:
    """The ids ticked in one column, once each, in order."""
    return [value for value in dict.fromkeys(v.strip() for v in values if isinstance(v, str)) if value]


def left_out_of_transfer(request: Request, count: int) -> str:
    """What the transfer leaves out: the documents ticked « à éliminer » (a transfer takes only those to
    transfer). Said, never dropped silently; their ticks are not carried over."""
    if count == 1:
        return t(
            request,
            "1 document à éliminer n'a pas été retenu pour le versement : proposez son élimination depuis la page "
            "« Fin de DUA ».",
        )
    return t(
        request,
        "%(count)s documents à éliminer n'ont pas été retenus pour le versement : proposez leur élimination depuis "
        "la page « Fin de DUA ».",
        count=count,
    )


def left_out_of_elimination(request: Request, count: int) -> str:
    """What an elimination proposal leaves out: the documents ticked « à verser »."""
    if count == 1:
        return t(
            request,
            "1 document à verser n'a pas été retenu pour l'élimination : préparez son versement depuis la page "
            "« Fin de DUA ».",
        )
    return t(
        request,
        "%(count)s documents à verser n'ont pas été retenus pour l'élimination : préparez leur versement depuis la "
        "page « Fin de DUA ».",
        count=count,
    )


def _to_transfer(
    request: Request, db: Session, user: SignedIn, filters: Filters, chosen: list[str], others: list[str]
) -> Response:
    """The documents ticked for a transfer → the archive's transfer form, prefilled with them. Those ticked « à
    éliminer » as well go on with the transfer's documents, and the transfer form says how many were left out:
    preparing a transfer changes nothing, the archivist then proposes their elimination on their own."""
    principal = require_archivist(user)
    chosen = chosen[:PAGE_SIZE]
    if not chosen:
        error = t(request, "Cochez au moins un document à verser.")
        if others:
            error += " " + t(
                request,
                "Les documents cochés « à éliminer » ne se versent pas : proposez leur élimination avec le bouton "
                "« Proposer l'élimination des documents cochés ».",
            )
        values = {"eliminer": others}
        return _dua_page(request, db, principal, filters, values=values, errors={"verser": error}, status=422)
    target = f"{TRANSFER_FORM}?{urlencode({'documents': ','.join(chosen)})}"
    if others:
        return redirect(target, db=db, user=user, message=left_out_of_transfer(request, len(others)))
    return redirect(target)


@router.get("/archives/dua/verser", response_class=HTMLResponse)
def choose_for_transfer(
    request: Request,
    db: DbDep,
    user: UserDep,
    verser: Annotated[list[str] | None, Query()] = None,
    eliminer: Annotated[list[str] | None, Query()] = None,
    sort: str = "",
    type_code: TypeQuery = "",
    page: str = "1",
) -> Response:
    """The transfer's selection by link (the page's form posts it, below)."""
    filters = filters_of(sort, type_code, page)
    return _to_transfer(request, db, user, filters, _ticked(verser or []), _ticked(eliminer or []))


@router.post("/archives/dua/verser", response_class=HTMLResponse)
def choose_for_transfer_form(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    """The page's one selection form, sent by « Préparer le versement »: both columns' ticks come with it."""
    filters = filters_of(_text(form, "sort"), _text(form, "type"), _text(form, "page") or "1")
    return _to_transfer(request, db, user, filters, _ticked(form.getlist("verser")), _ticked(form.getlist("eliminer")))


@router.post("/archives/dua/eliminer", response_class=HTMLResponse)
def propose(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    """The page's selection form, sent by « Proposer l'élimination »: the documents ticked « à éliminer » are
    proposed; those ticked « à verser » are left out, and the elimination's page says how many."""
    principal = require_archivist(user)
    filters = filters_of(_text(form, "sort"), _text(form, "type"), _text(form, "page") or "1")
    chosen = _ticked(form.getlist("eliminer"))
    others = _ticked(form.getlist("verser"))
    comment = _text(form, "commentaire")
    values = {"eliminer": chosen, "verser": others, "commentaire": comment}
    errors: dict[str, str] = {}
    if not chosen:
        errors["eliminer"] = t(request, "Cochez au moins un document à éliminer.")
        if others:
            errors["eliminer"] += " " + t(
                request,
                "Les documents cochés « à verser » ne s'éliminent pas : préparez leur versement avec le bouton "
                "« Préparer le versement des documents cochés ».",
            )
    if len(comment) > MAX_COMMENT:
        errors["commentaire"] = t(request, "%(count)s caractères au plus.", count=MAX_COMMENT)
    if errors:
        return _dua_page(request, db, principal, filters, values=values, errors=errors, status=422)
    try:
        elimination = retention.propose_elimination(db, principal, chosen, comment or None)
    except (InvalidInput, Conflict, NotFound) as exc:
        db.rollback()
        errors = {"eliminer": sentence(error_text(request, exc))}
        return _dua_page(request, db, principal, filters, values=values, errors=errors, status=exc.status)
    db.commit()
    message = t(request, "Élimination proposée : une autre personne doit maintenant l'approuver.")
    if others:
        message += " " + left_out_of_elimination(request, len(others))
    return redirect(f"/archives/eliminations/{elimination.id}", db=db, user=user, message=message)


# ---------------------------------------------------------------------------------------------------------
# Eliminations


@router.get("/archives/eliminations", response_class=HTMLResponse)
def eliminations_page(request: Request, db: DbDep, user: UserDep, etat: str = "", page: str = "1") -> Response:
    principal = require_archivist(user)
    status = STATUS_FILTERS.get(etat)
    found = retention.list_eliminations(db, principal, status)
    pages = max(1, -(-len(found) // PAGE_SIZE))
    number = min(page_number(page), pages)
    context = {
        "eliminations": found[(number - 1) * PAGE_SIZE : number * PAGE_SIZE],
        "total": len(found),
        "page": number,
        "pages": pages,
        "etat": etat if status else "",
        "status_filters": [(key, STATUS_NAMES[value]) for key, value in STATUS_FILTERS.items()],
        "status_names": STATUS_NAMES,
        "username": principal.username,
    }
    return render(request, "ged/eliminations.html", context, db=db)


@dataclass(frozen=True)
class EliminationDocument:
    id: str
    document: Document | None  # None: not readable by this user (or gone); only its id is shown
    type_name: str
    held_by: list[str]


def _documents(db: Session, principal: Principal, elimination: Elimination) -> list[EliminationDocument]:
    """The proposal's documents that the user may read (one query), with their type and active holds."""
    ids = elimination.document_ids[:SHOWN_DOCUMENTS]
    readable = access.readable_documents(db, principal, ids)
    held = holds.active_holds(db, ids)
    type_of = _types(db, {document.type_id for document in readable.values()})
    return [
        EliminationDocument(
            id=document_id,
            document=readable.get(document_id),
            type_name=type_of[readable[document_id].type_id or ""].name
            if document_id in readable and readable[document_id].type_id in type_of
            else "",
            held_by=held.get(document_id, []),
        )
        for document_id in ids
    ]


def proof_of(db: Session, elimination: Elimination) -> AuditEntry | None:
    """The audit entry that proves a carried-out elimination (which documents, the digests, who, when)."""
    query = select(AuditEntry).where(
        AuditEntry.tenant_id == elimination.tenant_id,
        AuditEntry.object_type == "elimination",
        AuditEntry.object_id == elimination.id,
        AuditEntry.action == "ged.elimination.done",
    )
    return db.execute(query.order_by(AuditEntry.seq.desc()).limit(1)).scalar_one_or_none()


def _proof_documents(db: Session, principal: Principal, proof: AuditEntry) -> tuple[list[dict[str, Any]], int]:
    """The proof's documents the user may read (title, digests and sizes of every version), and how many others
    it holds: of those, not even the digests are shown (a digest identifies a content one may hold elsewhere).
    The audit entry itself stays whole: it is the legal record, read in the audit log."""
    proven = proof.details.get("documents") or []
    ids = [str(item.get("document_id")) for item in proven]
    readable: set[str] = set()
    allowed = access.readable(db, principal)  # its own queries (groups, permissions, folders): once, not per chunk
    # An elimination may hold tens of thousands of documents: a bounded IN list per query (SQLite caps its
    # parameters, PostgreSQL plans a huge list slowly).
    for start in range(0, len(ids), PROOF_CHUNK):
        chunk = ids[start : start + PROOF_CHUNK]
        found = db.execute(select(Document.id).where(Document.id.in_(chunk), allowed))
        readable.update(found.scalars())
    shown = [item for item in proven if item.get("document_id") in readable][:SHOWN_DOCUMENTS]
    return shown, sum(1 for item in proven if item.get("document_id") not in readable)


def _proof_kept(proof: AuditEntry, documents: list[EliminationDocument]) -> list[dict[str, Any]]:
    """The documents the carrying out kept (held, transferred, no longer eliminable), with the reason; the
    reason names the document, so it is shown only to a user who may read it."""
    readable = {item.id: item.document for item in documents if item.document is not None}
    return [
        {
            "document_id": item.get("document_id"),
            "title": readable[item["document_id"]].current.title if item.get("document_id") in readable else None,
            "reason": item.get("reason") if item.get("document_id") in readable else None,
        }
        for item in (proof.details.get("kept") or [])[:SHOWN_DOCUMENTS]
    ]


def _elimination_page(
    request: Request,
    db: Session,
    principal: Principal,
    elimination_id: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    principal.require(Role.ARCHIVISTE)
    elimination = retention.get_elimination(db, principal.tenant_id, elimination_id)
    documents = _documents(db, principal, elimination)
    proof = proof_of(db, elimination) if elimination.status == retention.DONE else None
    proof_documents, proof_hidden = _proof_documents(db, principal, proof) if proof else ([], 0)
    context = {
        "elimination": elimination,
        "status_name": STATUS_NAMES.get(elimination.status, elimination.status),
        "documents": documents,
        "hidden": len(elimination.document_ids) - len(documents),
        "held": [item for item in documents if item.held_by],
        "is_proposer": elimination.proposed_by == principal.username,
        "can_decide": elimination.status == retention.PROPOSED,
        "can_carry_out": elimination.status == retention.APPROVED,
        "proof": proof,
        "proof_documents": proof_documents,
        "proof_hidden": proof_hidden,
        "proof_kept": _proof_kept(proof, documents) if proof else [],
        "refusal_reason": retention.refusal_reasons(db, principal.tenant_id, {elimination.id}).get(elimination.id)
        if elimination.status == retention.REFUSED
        else None,
        "final_action_names": FINAL_ACTION_NAMES,
        "eliminated": ELIMINATED,
        "values": values or {},
        "errors": errors or {},
    }
    return render(request, "ged/elimination.html", context, status=status, db=db)


@router.get("/archives/eliminations/{elimination_id}", response_class=HTMLResponse)
def elimination_page(request: Request, db: DbDep, user: UserDep, elimination_id: str) -> Response:
    return _elimination_page(request, db, require_archivist(user), elimination_id)


@router.post("/archives/eliminations/{elimination_id}/decision", response_class=HTMLResponse)
def decide(request: Request, db: DbDep, user: UserDep, form: FormDep, elimination_id: str) -> Response:
    """Approve or refuse a proposal; the domain refuses the person who proposed it (four eyes)."""
    principal = require_archivist(user)
    decision, comment = _text(form, "decision"), _text(form, "commentaire")
    values = {"commentaire": comment}
    if decision not in ("approuver", "refuser"):
        errors = {"form": t(request, "Choisissez d'approuver ou de refuser l'élimination.")}
        return _elimination_page(request, db, principal, elimination_id, values=values, errors=errors, status=422)
    if len(comment) > MAX_COMMENT:
        errors = {"commentaire": t(request, "%(count)s caractères au plus.", count=MAX_COMMENT)}
        return _elimination_page(request, db, principal, elimination_id, values=values, errors=errors, status=422)
    try:
        retention.decide_elimination(db, principal, elimination_id, decision == "approuver", comment or None)
    except InvalidInput as exc:  # a refusal without its reason (checked once the elimination may be decided)
        db.rollback()
        # Its documents come back among those to eliminate, with this reason: the next proposer reads it.
        errors = {"commentaire": t(request, "Indiquez le motif du refus : il sera montré avec les documents refusés.")}
        if exc.extra.get("field") != "comment":
            errors = {"commentaire": sentence(error_text(request, exc))}
        return _elimination_page(request, db, principal, elimination_id, values=values, errors=errors, status=422)
    except (Forbidden, Conflict) as exc:
        db.rollback()
        errors = {"form": sentence(error_text(request, exc))}
        return _elimination_page(
            request, db, principal, elimination_id, values=values, errors=errors, status=exc.status
        )
    if decision == "approuver":
        message = t(request, "Élimination approuvée : elle peut maintenant être exécutée.")
    else:
        message = t(request, "Élimination refusée : les documents sont conservés.")
    return redirect(f"/archives/eliminations/{elimination_id}", db=db, user=user, message=message)


@router.post("/archives/eliminations/{elimination_id}/executer", response_class=HTMLResponse)
def carry_out(request: Request, db: DbDep, user: UserDep, form: FormDep, elimination_id: str) -> Response:
    principal = require_archivist(user)
    try:
        elimination = retention.carry_out_elimination(db, principal, elimination_id)
    except Conflict as exc:
        db.rollback()
        errors = {"form": sentence(error_text(request, exc))}
        return _elimination_page(request, db, principal, elimination_id, errors=errors, status=exc.status)
    proof = proof_of(db, elimination)
    kept = len(proof.details.get("kept") or []) if proof else 0
    if kept:
        message = t(
            request,
            "Élimination exécutée ; %(count)s document(s) gardé(s) (gel, versement en cours ou règle de conservation "
            "changée depuis la proposition) : voir la preuve.",
            count=kept,
        )
    else:
        message = t(request, "Élimination exécutée : la preuve est inscrite au journal d'audit.")
    return redirect(f"/archives/eliminations/{elimination_id}", db=db, user=user, message=message)
