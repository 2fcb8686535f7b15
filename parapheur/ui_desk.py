"""The agent's desk (« bureau »): their desks' boxes, filters and paging, and bulk visa or signature."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from parapheur import bulk_actions, circuits, config, service
from parapheur.models import BulkItem, Desk, Folder, Subtype
from parapheur.ui_common import PAGE_SIZE, STATUSES, kept, parapheur_user, text, typology_names
from socle.auth import Principal, Role
from socle.errors import InvalidInput, Message, NotFound
from socle.ui import rendering
from socle.ui.web import DbDep, FormDep, UserDep, locale_of, redirect, render, t

router = APIRouter(include_in_schema=False)

# The boxes of a desk, by their French URL names; « tous » lists every folder the user may see.
BOXES = {"a-traiter": "to_act", "en-retard": "late", "en-cours": "in_progress", "delegues": "delegated"}
ALL = "tous"
SELECTABLE = frozenset({"a-traiter", "en-retard", "delegues"})  # boxes whose folders wait for this desk


@dataclass(frozen=True)
class View:
    """What the desk page shows: which desk and box, the filters and the page."""

    bureau: str = ""
    corbeille: str = "a-traiter"
    type: str = ""
    sous_type: str = ""
    statut: str = ""
    q: str = ""
    page: int = 1

    def url(self, **changes: Any) -> str:
        """This view's URL with ``changes``; a change of desk, box or filter goes back to the first page."""
        view = replace(self, **changes)
        if "page" not in changes:
            view = replace(view, page=1)
        params = {key: value for key, value in asdict(view).items() if value and (key != "page" or value > 1)}
        return "/bureau" + (f"?{urlencode(params)}" if params else "")


@router.get("/bureau", response_class=HTMLResponse)
def desk_page(
    request: Request,
    db: DbDep,
    user: UserDep,
    bureau: Annotated[str, Query(max_length=36)] = "",
    corbeille: Annotated[str, Query(max_length=20)] = "a-traiter",
    type: Annotated[str, Query(max_length=36)] = "",
    sous_type: Annotated[str, Query(max_length=36)] = "",
    statut: Annotated[str, Query(max_length=20)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    principal = parapheur_user(user)
    return _render_desk(request, db, principal, View(bureau, corbeille, type, sous_type, statut, q.strip(), page))


def _render_desk(
    request: Request,
    db: Session,
    principal: Principal,
    view: View,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    desks = _desks_of(db, principal)
    desk, landing_box = _chosen_desk(db, principal, desks, view.bureau)
    if not view.bureau and view.corbeille == "a-traiter" and landing_box is not None:
        view = replace(view, corbeille=landing_box)  # the landing opens the box where their folders are
    if view.corbeille not in BOXES and view.corbeille != ALL:
        view = replace(view, corbeille="a-traiter")
    if desk is None:
        view = replace(view, corbeille=ALL)  # no desk: the folders they created or may see
    view = replace(view, bureau=desk.id if desk else "")
    subtypes = config.list_subtypes(db, principal.tenant_id)
    folders = _folders(db, principal, desk, view, _subtype_filter(subtypes, view))
    context = {
        "view": view,
        "filter_values": asdict(view),
        "desks": desks,
        "desk": desk,
        "counts": {slug: service.desk_box_count(db, principal, desk.id, box) for slug, box in BOXES.items()}
        if desk
        else {},
        "folders": folders[:PAGE_SIZE],
        "has_next": len(folders) > PAGE_SIZE,
        "selectable": view.corbeille in SELECTABLE and bool(folders),
        "type_options": [(row.id, row.name) for row in config.list_types(db, principal.tenant_id)],
        "statuses": STATUSES,
        "typologies": typology_names(db, principal.tenant_id),
        "desk_names": config.desk_names(db, principal.tenant_id),
        "today": service.today(),
        "is_late": circuits.is_late,
        "errors": errors or {},
        "values": values or {},
    }
    return render(request, "parapheur/bureau.html", context, status=status, db=db)


def _desks_of(db: Session, principal: Principal) -> list[Desk]:
    """The desks whose boxes the user may open: theirs (every desk for an administrator)."""
    desks = config.list_desks(db, principal.tenant_id)
    if Role.ADMIN in principal.roles:
        return desks
    held = config.user_desk_ids(db, principal.tenant_id, principal.username)
    return [desk for desk in desks if desk.id in held]


def _chosen_desk(db: Session, principal: Principal, desks: list[Desk], desk_id: str) -> tuple[Desk | None, str | None]:
    """The desk shown, and on landing (no desk asked for) the box to open."""
    if not desk_id:
        # The first desk with something to act on: its own folders first, else those received by delegation
        # (a delegate whose own box is empty lands in the box of the replaced desk's folders), else the first.
        for slug in ("a-traiter", "delegues"):
            box = BOXES[slug]
            waiting = next((desk for desk in desks if service.desk_box_count(db, principal, desk.id, box)), None)
            if waiting is not None:
                return waiting, slug
        return (desks[0] if desks else None), None
    for desk in desks:
        if desk.id == desk_id:
            return desk, None
    # Another desk of the tenant: the domain says who may see it (403); an unknown one is a 404.
    service.desk_folders(db, principal, config.get_desk(db, principal.tenant_id, desk_id).id, "to_act", 1)
    raise NotFound(f"bureau {desk_id} introuvable")


def _subtype_filter(subtypes: list[Subtype], view: View) -> list[str] | None:
    if view.sous_type:
        return [s.id for s in subtypes if s.id == view.sous_type and (not view.type or s.type_id == view.type)]
    if view.type:
        return [s.id for s in subtypes if s.type_id == view.type]
    return None


def _folders(
    db: Session, principal: Principal, desk: Desk | None, view: View, subtype_ids: list[str] | None
) -> list[Folder]:
    """One page of the view's folders, and one more to know whether a next page exists."""
    offset = (view.page - 1) * PAGE_SIZE
    if view.corbeille == ALL or desk is None:
        return service.list_folders(
            db,
            principal.tenant_id,
            visible_to=principal,
            status=view.statut if view.statut in STATUSES else None,
            subtype_ids=subtype_ids,
            q=view.q or None,
            limit=PAGE_SIZE + 1,
            offset=offset,
        )
    box = BOXES[view.corbeille]
    return service.desk_folders(
        db, principal, desk.id, box, PAGE_SIZE + 1, offset, subtype_ids=subtype_ids, q=view.q or None
    )


# ---------------------------------------------------------------------------------------------------------
# Bulk visa or signature


@router.post("/bureau/actions-groupees", response_class=HTMLResponse)
def bulk(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    principal = parapheur_user(user)
    action = text(form, "action", 10)
    folder_ids = [value for value in form.getlist("dossiers") if isinstance(value, str) and value]
    comment = text(form, "commentaire") or None
    view = View(
        bureau=text(form, "bureau", 36),
        corbeille=text(form, "corbeille", 20),
        type=text(form, "type", 36),
        sous_type=text(form, "sous_type", 36),
        statut=text(form, "statut", 20),
        q=text(form, "q", 200),
    )
    errors: dict[str, str] = {}
    if action not in bulk_actions.ACTIONS:
        errors["form"] = t(request, "Choisissez « Viser la sélection » ou « Signer la sélection ».")
    if not folder_ids:
        errors["dossiers"] = t(request, "Cochez au moins un dossier.")
    if not errors:
        try:
            operation = bulk_actions.create(db, principal, action, folder_ids, comment)
        except InvalidInput as exc:
            db.rollback()
            errors["dossiers"] = exc.detail
    if errors:
        values = {**kept(form), "dossiers": folder_ids}
        return _render_desk(request, db, principal, view, errors=errors, values=values, status=422)
    message = t(request, "Action groupée enregistrée pour %(count)s dossier(s).", count=len(operation.items))
    return redirect(f"/bureau/actions-groupees/{operation.id}", db=db, user=user, message=message)


@router.get("/bureau/actions-groupees/{operation_id}", response_class=HTMLResponse)
def bulk_result(request: Request, db: DbDep, user: UserDep, operation_id: str) -> Response:
    principal = parapheur_user(user)
    operation = bulk_actions.get(db, principal, operation_id)
    titles = service.folder_titles(db, principal, [item.folder_id for item in operation.items])
    counts = {status: sum(1 for item in operation.items if item.status == status) for status in ("done", "failed")}
    reasons = {item.id: _reason(request, item) for item in operation.items if item.status == "failed"}
    context = {"operation": operation, "titles": titles, "counts": counts, "reasons": reasons}
    return render(request, "parapheur/actions_groupees.html", context, db=db)


def _reason(request: Request, item: BulkItem) -> str:
    """Why a folder of the operation failed, in the reader's language when it was kept translatable."""
    if item.error_message is None:
        return item.error or ""
    return rendering.translate(locale_of(request), Message.from_record(item.error_message))
