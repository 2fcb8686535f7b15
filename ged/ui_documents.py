"""GED pages: search with facets, a document (preview, versions, metadata, filing, trash, holds), upload.

Every page calls the GED's use cases with the signed-in principal, as the API does: a document the user may
not read, or another collectivité's, is « introuvable » (404 page).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ged import access, holds, ingest, plan, renditions, retention, service, types
from ged.api_search import MAX_OFFSET, check_words
from ged.models import Document, DocumentType, Version
from ged.schemas import Metadata, MetadataPatch
from ged.search import SORTS, SearchQuery, SearchResult, search
from ged.ui_common import (
    PAGE_SIZE,
    changed_values,
    error_field,
    field_form_values,
    field_inputs,
    fields_shown,
    folder_names,
    folder_options,
    folder_tree,
    form_values,
    is_archivist,
    page_number,
    pager,
    parse_date,
    split_tags,
    type_options,
    typed_values,
    upload,
    validation_errors,
    with_thumbnail,
)
from socle import audit
from socle.auth import Principal, display_names
from socle.errors import Conflict, Forbidden, InvalidInput, NotFound, PayloadTooLarge, SocleError, UnsupportedMediaType
from socle.settings import get_settings
from socle.storage import StoredObject
from socle.ui.rendering import format_number
from socle.ui.web import DbDep, FormDep, UserDep, locale_of, redirect, render, t
from socle.ui.web import form_text as text
from socle.web import object_response

router = APIRouter(include_in_schema=False)

# Errors shown in the form, next to their field; the others (rights, not found) are pages of their own.
FORM_ERRORS = (InvalidInput, Conflict, PayloadTooLarge, UnsupportedMediaType)
HISTORY_SHOWN = 50  # the document's latest audit entries on its page; the whole log is the audit's own
METADATA_FIELDS = {"title": "title", "document_type": "document_type", "type": "type", "date": "date", "tags": "tags"}


# ---------------------------------------------------------------------------------------------------------
# Search


def _search_params(request: Request) -> dict[str, Any]:
    query = request.query_params
    return {
        "q": query.get("q", "").strip(),
        "document_type": query.get("document_type", "").strip(),
        "type": query.get("type", "").strip(),
        "folder": query.get("folder", "").strip(),
        "tag": [tag.strip() for tag in query.getlist("tag") if tag.strip()],
        "date_from": query.get("date_from", "").strip(),
        "date_to": query.get("date_to", "").strip(),
        "sort": query.get("sort", "relevance"),
    }


def _url(params: dict[str, Any], **changes: Any) -> str:
    """The search page's address with ``params`` changed (back to page 1): facet and paging links."""
    merged = {**params, **changes}
    pairs: list[tuple[str, str]] = []
    for name, value in merged.items():
        if name == "sort" and value == "relevance":
            continue
        for item in value if isinstance(value, list) else [value]:
            if item not in ("", None):
                pairs.append((name, str(item)))
    return "/documents" + (f"?{urlencode(pairs)}" if pairs else "")


@router.get("/documents")
def search_page(request: Request, db: DbDep, user: UserDep) -> Response:
    params = _search_params(request)
    errors: dict[str, str] = {}
    dates: dict[str, date | None] = {}
    for name in ("date_from", "date_to"):
        try:
            dates[name] = parse_date(params[name], request)
        except ValueError as exc:
            errors[name] = str(exc)
    if dates.get("date_from") and dates.get("date_to") and dates["date_from"] > dates["date_to"]:  # type: ignore[operator]
        errors["date_to"] = t(request, "La date de fin précède la date de début.")
    if params["sort"] not in SORTS:
        params["sort"] = "relevance"
    try:
        check_words(params["q"])  # operators and SQL: said next to the field, as the API says them
    except InvalidInput as exc:
        errors["q"] = exc.detail
    page = page_number(request.query_params.get("page"))
    result: SearchResult | None = None
    if not errors:
        query = SearchQuery(
            q=params["q"],
            type=params["type"] or None,
            document_type=params["document_type"] or None,
            folder_id=params["folder"] or None,
            tags=params["tag"],
            date_from=dates.get("date_from"),
            date_to=dates.get("date_to"),
            sort=params["sort"],
            limit=PAGE_SIZE,
            offset=min((page - 1) * PAGE_SIZE, MAX_OFFSET),
        )
        try:
            result = search(db, user.principal, query)
        except InvalidInput as exc:
            db.rollback()
            errors[error_field(exc, "q")] = exc.detail
    context = _search_context(request, db, user.principal, params, page, result)
    context["errors"], context["values"] = errors, {**params, "tag": ", ".join(params["tag"])}
    return render(request, "ged/search.html", context, status=422 if errors else 200, db=db)


def _search_context(
    request: Request, db: Session, principal: Principal, params: dict[str, Any], page: int, result: SearchResult | None
) -> dict[str, Any]:
    total = result.total if result else 0
    paging = pager(str(page), total, PAGE_SIZE, MAX_OFFSET)
    hits = result.hits if result else []
    names = folder_names(db, principal.tenant_id, {hit.folder_id for hit in hits} | {params["folder"] or None})
    # The folder asked for is named only if the user may read it: a refused search (a bad date) has not checked it.
    shown = access.readable_folder_ids(db, principal, names)
    names = {folder_id: name for folder_id, name in names.items() if folder_id in shown}
    return {
        "params": params,
        "result": result,
        "hits": hits,
        "folder_names": names,
        "thumbnails": with_thumbnail(db, [(hit.document_id, hit.version) for hit in hits]),
        "facets": _facets(request, params, result) if result else [],
        "active": _active_filters(request, params, names),
        "pager": paging,
        "page_url": lambda number: _url(params, page=number),
        "sorts": [
            ("relevance", t(request, "Pertinence")),
            ("date", t(request, "Date du document")),
            ("title", t(request, "Titre")),
        ],
        "searched": any(params[name] for name in ("q", "document_type", "type", "folder", "tag", "date_from")),
        "anything": bool(result and result.total) or _has_documents(db, principal),
    }


def _has_documents(db: Session, principal: Principal) -> bool:
    _, total = service.list_documents(db, principal, limit=1)
    return total > 0


def _facets(request: Request, params: dict[str, Any], result: SearchResult) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []

    def group(title: str, values: list[dict[str, Any]]) -> None:
        if values:
            groups.append({"title": title, "values": values})

    group(
        t(request, "Type"),
        [
            {
                "label": v.value,
                "count": v.count,
                "active": v.value == params["document_type"],
                "url": _url(params, document_type="" if v.value == params["document_type"] else v.value),
            }
            for v in result.facets.get("type", [])
        ],
    )
    group(
        t(request, "Dossier"),
        [
            {
                "label": v.label or v.value,
                "count": v.count,
                "active": v.value == params["folder"],
                "url": _url(params, folder="" if v.value == params["folder"] else v.value),
            }
            for v in result.facets.get("folder", [])
        ],
    )
    group(
        t(request, "Mot-clé"),
        [
            {
                "label": v.value,
                "count": v.count,
                "active": v.value in params["tag"],
                "url": _url(
                    params,
                    tag=[tag for tag in params["tag"] if tag != v.value]
                    if v.value in params["tag"]
                    else [*params["tag"], v.value],
                ),
            }
            for v in result.facets.get("tag", [])
        ],
    )
    year_values = []
    for v in result.facets.get("year", []):
        first, last = f"{v.value}-01-01", f"{v.value}-12-31"
        active = params["date_from"] == first and params["date_to"] == last
        year_values.append(
            {
                "label": v.value,
                "count": v.count,
                "active": active,
                "url": _url(params, date_from="" if active else first, date_to="" if active else last),
            }
        )
    group(t(request, "Année"), year_values)
    return groups


def _active_filters(request: Request, params: dict[str, Any], names: dict[str, str]) -> list[dict[str, str]]:
    active = []
    if params["document_type"]:
        active.append(
            {"label": t(request, "Type : %(v)s", v=params["document_type"]), "url": _url(params, document_type="")}
        )
    if params["type"]:
        active.append({"label": t(request, "Type : %(v)s", v=params["type"]), "url": _url(params, type="")})
    if params["folder"]:
        label = names.get(params["folder"], params["folder"])
        active.append({"label": t(request, "Dossier : %(v)s", v=label), "url": _url(params, folder="")})
    for tag in params["tag"]:
        others = [other for other in params["tag"] if other != tag]
        active.append({"label": t(request, "Mot-clé : %(v)s", v=tag), "url": _url(params, tag=others)})
    if params["date_from"] or params["date_to"]:
        label = t(
            request, "Dates : %(start)s – %(end)s", start=params["date_from"] or "…", end=params["date_to"] or "…"
        )
        active.append({"label": label, "url": _url(params, date_from="", date_to="")})
    return active


# ---------------------------------------------------------------------------------------------------------
# Upload


def _tenant_types(db: Session, principal: Principal) -> list[DocumentType]:
    return types.list_types(db, principal.tenant_id)


def _chosen_type(db: Session, principal: Principal, code: str) -> DocumentType | None:
    return types.find_by_code(db, principal.tenant_id, code) if code else None


def _new_form(
    request: Request,
    db: Session,
    principal: Principal,
    *,
    type_code: str,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    document_type = _chosen_type(db, principal, type_code)
    errors = dict(errors or {})
    if type_code and document_type is None:
        errors.setdefault("type", t(request, "Type de document inconnu : choisissez-en un dans la liste."))
    context = {
        "types": type_options(_tenant_types(db, principal)),
        "document_type": document_type,
        "fields": field_inputs(document_type),
        "folders": folder_options(folder_tree(db, principal)),
        "max_size": get_settings().max_upload_bytes,
        "values": {"type": type_code, **values},
        "errors": errors,
    }
    return render(request, "ged/new.html", context, status=status, db=db)


@router.get("/documents/nouveau")
def new_document_page(request: Request, db: DbDep, user: UserDep, type: str = "", dossier: str = "") -> Response:
    return _new_form(request, db, user.principal, type_code=type.strip(), values={"folder_id": dossier})


@router.post("/documents/nouveau")
def new_document(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    principal = user.principal
    values = form_values(form)
    type_code = text(form, "type")
    document_type = _chosen_type(db, principal, type_code)
    errors: dict[str, str] = {}
    file = upload(form, "file")
    if file is None:
        errors["file"] = t(request, "Choisissez le fichier à déposer.")
    if not type_code and not text(form, "document_type"):
        errors["document_type"] = t(request, "Indiquez le libellé du type, ou choisissez un type de document.")
    try:
        document_date = parse_date(text(form, "date"), request)
    except ValueError as exc:
        errors["date"], document_date = str(exc), None
    metadata: Metadata | None = None
    try:
        metadata = Metadata(
            title=text(form, "title"),
            document_type=text(form, "document_type") or None,
            type=type_code or None,
            date=document_date,
            tags=split_tags(text(form, "tags")),
            folder_id=text(form, "folder_id") or None,
            field_values={k: v for k, v in typed_values(form, field_inputs(document_type)).items() if v is not None},
        )
    except ValidationError as exc:
        for name, message in validation_errors(request, exc, METADATA_FIELDS, "document_type").items():
            errors.setdefault(name, message)
    if metadata is not None and not errors:
        try:
            service.check_can_create(db, principal, metadata)  # rights, folder, type, values: before any byte
        except (InvalidInput, Forbidden) as exc:
            errors[_metadata_error_field(exc)] = exc.detail
        db.rollback()
    if errors or metadata is None or file is None:
        return _refused_upload(request, db, principal, type_code, values, errors, file is not None)
    try:
        document = _store_new(db, principal, file, metadata)
    except FORM_ERRORS as exc:
        db.rollback()
        errors = {
            _upload_error_field(exc): _too_large(request, exc) if isinstance(exc, PayloadTooLarge) else exc.detail
        }
        return _refused_upload(request, db, principal, type_code, values, errors, True, status=exc.status)
    message = t(request, "Document « %(title)s » déposé.", title=metadata.title)
    return redirect(f"/documents/{document.id}", db=db, user=user, message=message)


def _store_new(db: Session, principal: Principal, file: Any, metadata: Metadata) -> Document:
    stored, filename, media_type = _store_file(file)
    return service.create_document(db, principal, stored, filename, media_type, metadata)


def _store_file(file: Any) -> tuple[StoredObject, str, str]:
    """Check a sent file (name, not empty, content matching its declared type) and store it.

    :raises InvalidInput, UnsupportedMediaType, PayloadTooLarge: what to tell the user, next to the file.
    """
    filename = ingest.check_filename(file.filename or "document")
    head = file.file.read(4096)
    file.file.seek(0)
    if not head:
        raise InvalidInput("le fichier est vide")  # said before a type check that would find nothing to read
    media_type = ingest.checked_media_type(head, file.content_type, filename)
    return service.store_upload(file.file), filename, media_type


def _too_large(request: Request, exc: PayloadTooLarge) -> str:
    """The size limit as the form's hint says it (« 200 Mio »), not the domain's count of bytes."""
    value = float(exc.extra.get("max_size") or get_settings().max_upload_bytes)
    locale = locale_of(request)
    unit = "o"
    for unit in ("o", "Kio", "Mio", "Gio"):  # the units of the templates' ``filesize`` filter
        if value < 1024 or unit == "Gio":
            break
        value /= 1024
    shown = format_number(round(value, 1), locale)
    size = f"{shown}\u00a0{unit if locale == 'fr' else unit.replace('o', 'B')}"
    return t(request, "Fichier trop volumineux : %(size)s au plus. Réduisez-le ou découpez-le.", size=size)


def _metadata_error_field(exc: SocleError) -> str:
    if isinstance(exc, Forbidden):
        return "type" if "type" in exc.detail else "folder_id"
    field = error_field(exc, "")
    if field:
        return field
    return "type" if exc.detail.startswith("type") else "form"


def _upload_error_field(exc: SocleError) -> str:
    field = error_field(exc, "")
    return field or "file"


def _refused_upload(
    request: Request,
    db: Session,
    principal: Principal,
    type_code: str,
    values: dict[str, str],
    errors: dict[str, str],
    had_file: bool,
    *,
    status: int = 422,
) -> Response:
    if had_file and "file" not in errors:
        # A browser never fills a file input again: say so, next to the field.
        errors["file"] = t(request, "Le fichier n'a pas été déposé : choisissez-le à nouveau.")
    return _new_form(request, db, principal, type_code=type_code, values=values, errors=errors, status=status)


# ---------------------------------------------------------------------------------------------------------
# A document


def _rendition_reasons(db: Session, tenant_id: str, document_id: str, current: Version) -> dict[str, str | None]:
    kind = renditions.media_kind(current.media_type)
    missing = current.text_status == renditions.FAILED or (kind is not None and current.preview_key is None)
    missing = missing or (kind == "pdf" and current.pdfa_key is None)
    reasons = renditions.failure_reasons(db, tenant_id, document_id, current.number) if missing else {}
    skipped = renditions.skipped_renditions(db, tenant_id, document_id, current.number) if missing else {}
    return {
        "text_reason": reasons.get(renditions.TEXT) if current.text_status == renditions.FAILED else None,
        "preview_reason": reasons.get(renditions.PREVIEW) if current.preview_key is None else None,
        "pdfa_reason": reasons.get(renditions.PDFA) if current.pdfa_key is None else None,
        # A PDF/A copy deliberately not made (a signed PDF): said as such, not as a failure.
        "pdfa_skipped": skipped.get(renditions.PDFA) if current.pdfa_key is None else None,
    }


def _history(db: Session, tenant_id: str, document_id: str) -> list[tuple[Any, str, str]]:
    """The document's latest audit entries: (when, who, what), ``who`` the audit actor (``user:claire``,
    ``service:interop``: the page names them, _people), ``what`` the action, or for a rendition deliberately not
    made the action and its cause (« ged.rendition.skipped:pdf_signé »): the page names it."""
    history = []
    for entry in audit.entries_about(db, tenant_id, "document", document_id, limit=HISTORY_SHOWN):
        action = entry.action
        if action == renditions.SKIPPED_ACTION and (entry.details or {}).get("cause"):
            action = f"{action}:{entry.details['cause']}"
        history.append((entry.at, entry.actor, action))
    return history


def _people(db: Session, tenant_id: str, who: Iterable[str]) -> dict[str, str]:
    """Display name of each user among the authors or audit actors ``who`` (``claire`` or ``user:claire``); the
    page names the services itself (``interop``, ``service:interop``), and a former user by their username."""
    bare = {name: name.removeprefix("user:") for name in who if ":" not in name.removeprefix("user:")}
    users = display_names(db, tenant_id, bare.values())
    return {name: users[username] for name, username in bare.items() if username in users}


def _signed_by(versions: list[Version], people: dict[str, str]) -> dict[int, str]:
    """Version number → who signed it in the parapheur, by display name (``signatories`` keeps usernames; ``people``
    from _people, as the export resolves them: ged.jobs._people); a former user keeps their username."""
    return {
        version.number: ", ".join(people.get(name, name) for name in dict.fromkeys(version.signatories) if name)
        for version in versions
        if version.signatories
    }


def _untyped(db: Session, tenant_id: str, label: str | None) -> DocumentType | bool:
    """For a document without a GED type: the GED type its free label names (code or name), or False when it
    names none (a label the parapheur or an import gave, « Délibération »)."""
    if not label:
        return False
    query = select(DocumentType).where(
        DocumentType.tenant_id == tenant_id,
        (DocumentType.code == label) | (func.lower(DocumentType.name) == label.lower()),
    )
    return db.execute(query.limit(1)).scalar_one_or_none() or False


def _document_context(db: Session, principal: Principal, document: Document) -> dict[str, Any]:
    current = document.current
    document_type = db.get(DocumentType, document.type_id) if document.type_id else None
    folder = plan.get_folder(db, principal.tenant_id, document.folder_id) if document.folder_id else None
    rights = access.rights_on(db, principal, document)
    held_by = holds.active_holds(db, [document.id]).get(document.id, [])
    eliminated = document.disposal == service.ELIMINATED
    # Archived (accepted by the SAE), or in a transfer in progress until it ends: its GED copy is frozen
    # (service.check_writable); it may still be filed.
    archived = document.disposal == service.ARCHIVED
    transferred = document.disposal == service.TRANSFERRED
    frozen = bool(held_by) or eliminated
    archivist = is_archivist(principal)
    versions = sorted(document.versions, key=lambda version: version.number, reverse=True)
    history = _history(db, principal.tenant_id, document.id)
    # Everyone the page names, in one query: the depositor, the versions' authors and signatories, the log's actors.
    named = {document.created_by, *(v.author for v in versions), *(h[1] for h in history)}
    named |= {name for version in versions for name in version.signatories or [] if name}
    people = _people(db, principal.tenant_id, named)
    return {
        "document": document,
        "current": current,
        "versions": versions,
        "signed_by": _signed_by(versions, people),
        "history": history,
        "people": people,
        "document_type": document_type,
        "untyped_match": _untyped(db, principal.tenant_id, current.document_type) if document_type is None else False,
        "archived": archived,
        "transferred": transferred,
        # Archivists see the latest refused elimination of the document: when, by whom, why.
        "refusal": retention.refusals(db, principal.tenant_id, [document.id]).get(document.id) if archivist else None,
        "fields": fields_shown(document_type, current.field_values or {}),
        "trail": plan.visible_ancestors(db, principal, folder)[0] if folder else [],
        "held_by": held_by,
        "eliminated": eliminated,
        "can_write": "write" in rights and not frozen and not archived and not transferred,
        "can_delete": "delete" in rights and not frozen and not archived and not transferred,
        "can_file": "write" in rights and not frozen,
        "kind": renditions.media_kind(current.media_type),
        # Why a rendition could not be made, shown while it is missing (not « en préparation » forever).
        **_rendition_reasons(db, principal.tenant_id, document.id, current),
        "folders": folder_options(folder_tree(db, principal)) if "write" in rights and not frozen else [],
        "hold_options": [(hold.id, hold.name) for hold in holds.list_holds(db, principal.tenant_id, active_only=True)]
        if archivist
        else [],
        "archivist": archivist,
        "max_size": get_settings().max_upload_bytes,
    }


def document_page_response(
    request: Request,
    db: Session,
    principal: Principal,
    document_id: str,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    document = service.read_document(db, principal, document_id)
    context = _document_context(db, principal, document)
    context["errors"], context["values"] = errors or {}, values or {"folder_id": document.folder_id or ""}
    return render(request, "ged/document.html", context, status=status, db=db)


@router.get("/documents/{document_id}")
def document_page(request: Request, db: DbDep, user: UserDep, document_id: str) -> Response:
    return document_page_response(request, db, user.principal, document_id)


def refuse_on_document_page(
    request: Request, db: Session, principal: Principal, document_id: str, field: str, exc: SocleError, form: Any
) -> Response:
    db.rollback()
    values = form_values(form) if form is not None else None
    return document_page_response(
        request, db, principal, document_id, errors={field: exc.detail}, values=values, status=exc.status
    )


@router.post("/documents/{document_id}/classer")
def file_document(request: Request, db: DbDep, user: UserDep, form: FormDep, document_id: str) -> Response:
    folder_id = text(form, "folder_id") or None
    try:
        service.file_document(db, user.principal, document_id, folder_id)
    except FORM_ERRORS as exc:
        return refuse_on_document_page(request, db, user.principal, document_id, "folder_id", exc, form)
    message = t(request, "Document classé.") if folder_id else t(request, "Document retiré du plan de classement.")
    return redirect(f"/documents/{document_id}", db=db, user=user, message=message)


@router.post("/documents/{document_id}/versions")
def new_version(request: Request, db: DbDep, user: UserDep, form: FormDep, document_id: str) -> Response:
    principal = user.principal
    file = upload(form, "file")
    if file is None:
        return refuse_on_document_page(
            request, db, principal, document_id, "file", InvalidInput(t(request, "Choisissez le fichier.")), None
        )
    try:
        # Held, archived, eliminated: about the document, not the file (whose input the page no longer shows).
        service.check_writable(db, principal, service.read_document(db, principal, document_id))
    except FORM_ERRORS as exc:
        return refuse_on_document_page(request, db, principal, document_id, "form", exc, None)
    try:
        db.rollback()
        stored, filename, media_type = _store_file(file)
        document = service.add_content_version(db, principal, document_id, stored, filename, media_type)
    except FORM_ERRORS as exc:
        if isinstance(exc, PayloadTooLarge):
            exc = PayloadTooLarge(_too_large(request, exc))
        return refuse_on_document_page(request, db, principal, document_id, "file", exc, None)
    message = t(request, "Version %(number)s déposée.", number=document.current_version)
    return redirect(f"/documents/{document_id}", db=db, user=user, message=message)


@router.post("/documents/{document_id}/corbeille")
def trash_document(request: Request, db: DbDep, user: UserDep, form: FormDep, document_id: str) -> Response:
    try:
        document = service.trash_document(db, user.principal, document_id)
    except FORM_ERRORS as exc:
        return refuse_on_document_page(request, db, user.principal, document_id, "form", exc, None)
    except NotFound:
        # A double click, or a page left open after someone else trashed it: the wish is fulfilled, so say so
        # on the trash page rather than show a « not found » page naming the document by its identifier.
        db.rollback()
        trashed = _trashed_for(db, user.principal, document_id)
        if trashed is None:
            raise
        message = t(request, "« %(title)s » est déjà à la corbeille.", title=trashed.current.title)
        return redirect("/corbeille", db=db, user=user, message=message)
    message = t(
        request,
        "« %(title)s » est à la corbeille : il peut être restauré pendant %(days)s jours.",
        title=document.current.title,
        days=service.trash_days(),
    )
    return redirect("/corbeille", db=db, user=user, message=message)


def _trashed_for(db: Session, principal: Principal, document_id: str) -> Document | None:
    """The document if it is in the trash and the user may read it (only a reader may learn where it is)."""
    try:
        document = service.get_document(db, principal.tenant_id, document_id, trashed=True)
        access.require(db, principal, document, "read")
    except (NotFound, Forbidden):
        return None
    return document if document.deleted_at is not None else None


# ---------------------------------------------------------------------------------------------------------
# Metadata


def _metadata_form(
    request: Request,
    db: Session,
    principal: Principal,
    document: Document,
    *,
    type_code: str,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    current = document.current
    current_type = db.get(DocumentType, document.type_id) if document.type_id else None
    errors = dict(errors or {})
    chosen = _chosen_type(db, principal, type_code)
    if type_code and chosen is None:
        errors.setdefault("type", t(request, "Type de document inconnu : choisissez-en un dans la liste."))
        chosen = current_type
    same_type = (chosen.id if chosen else None) == document.type_id
    if values is None:
        values = {
            "title": current.title,
            "document_type": current.document_type,
            "date": current.document_date.isoformat() if current.document_date else "",
            "tags": ", ".join(current.tags or []),
            **(field_form_values(current.field_values or {}) if same_type else {}),
            "version": str(document.current_version),
        }
    context = {
        "document": document,
        "current": current,
        "types": type_options(_tenant_types(db, principal)),
        "document_type": chosen,
        "current_type": current_type,
        "type_changes": not same_type,
        "fields": field_inputs(chosen),
        "values": {**values, "type": chosen.code if chosen else ""},
        "errors": errors,
    }
    return render(request, "ged/metadata.html", context, status=status, db=db)


def _writable(db: Session, principal: Principal, document_id: str, *, for_update: bool = False) -> Document:
    document = service.read_document(db, principal, document_id, for_update=for_update)
    service.check_writable(db, principal, document)  # Forbidden → 403 page; held → 409 page naming the hold
    return document


@router.get("/documents/{document_id}/metadonnees")
def metadata_page(request: Request, db: DbDep, user: UserDep, document_id: str, type: str | None = None) -> Response:
    document = _writable(db, user.principal, document_id)
    current_code = _type_code(db, document)
    return _metadata_form(request, db, user.principal, document, type_code=current_code if type is None else type)


def _type_code(db: Session, document: Document) -> str:
    document_type = db.get(DocumentType, document.type_id) if document.type_id else None
    return document_type.code if document_type else ""


@router.post("/documents/{document_id}/metadonnees")
def update_metadata(request: Request, db: DbDep, user: UserDep, form: FormDep, document_id: str) -> Response:
    principal = user.principal
    # Locked until the save commits: a version saved by someone else after the check below would otherwise
    # slip in before this form's, which was based on the version before it.
    document = _writable(db, principal, document_id, for_update=True)
    type_code = text(form, "type")
    values = form_values(form)
    based_on = text(form, "version")
    if based_on and based_on != str(document.current_version):
        # Someone saved a new version since this form was opened: the fields left as they were would otherwise
        # silently undo that person's changes. The typed values are shown again, now based on the new version.
        message = t(
            request,
            "Ce document a été modifié par quelqu'un d'autre depuis l'ouverture du formulaire (version %(number)s). "
            "Vérifiez vos saisies ci-dessous, puis enregistrez à nouveau.",
            number=document.current_version,
        )
        values["version"] = str(document.current_version)
        return _metadata_form(
            request, db, principal, document, type_code=type_code, values=values, errors={"form": message}, status=409
        )
    patch, errors = _patch_from(request, db, principal, document, form, type_code)
    if patch is not None and not errors:
        try:
            service.update_metadata(db, principal, document_id, patch)
        except (InvalidInput, Conflict) as exc:
            db.rollback()
            errors[_metadata_error_field(exc)] = exc.detail
    if errors or patch is None:
        document = service.read_document(db, principal, document_id)
        return _metadata_form(
            request, db, principal, document, type_code=type_code, values=values, errors=errors, status=422
        )
    return redirect(f"/documents/{document_id}", db=db, user=user, message=t(request, "Métadonnées enregistrées."))


def _patch_from(
    request: Request, db: Session, principal: Principal, document: Document, form: Any, type_code: str
) -> tuple[MetadataPatch | None, dict[str, str]]:
    """Only what changed, so that an unchanged form adds no version (the domain then says so)."""
    current = document.current
    errors: dict[str, str] = {}
    changes: dict[str, Any] = {}
    title, label = text(form, "title"), text(form, "document_type")
    if title != current.title:
        changes["title"] = title
    if label and label != current.document_type:
        changes["document_type"] = label
    try:
        document_date = parse_date(text(form, "date"), request)
        if document_date != current.document_date:
            changes["date"] = document_date
    except ValueError as exc:
        errors["date"] = str(exc)
    tags = split_tags(text(form, "tags"))
    if tags != list(current.tags or []):
        changes["tags"] = tags
    if type_code != _type_code(db, document):
        changes["type"] = type_code or None
        chosen = _chosen_type(db, principal, type_code)
        if type_code and chosen is None:
            errors["type"] = t(request, "Type de document inconnu : choisissez-en un dans la liste.")
        fields = field_inputs(chosen)
        changes["field_values"] = {k: v for k, v in typed_values(form, fields).items() if v is not None}
    else:
        current_type = db.get(DocumentType, document.type_id) if document.type_id else None
        changed = changed_values(form, field_inputs(current_type), current.field_values or {})
        if changed:
            changes["field_values"] = changed
    comment = text(form, "comment")
    if comment:
        changes["comment"] = comment
    try:
        return MetadataPatch(**changes), errors
    except ValidationError as exc:
        for name, message in validation_errors(request, exc, {**METADATA_FIELDS, "comment": "comment"}).items():
            errors.setdefault(name, message)
        return None, errors


# ---------------------------------------------------------------------------------------------------------
# Files: versions, preview, thumbnail, extracted text, PDF/A copy (the document's read right is checked)


def _version(db: Session, principal: Principal, document_id: str, number: int | None = None) -> Version:
    document = service.read_document(db, principal, document_id)
    version = document.current if number is None else service.get_version(document, number)
    return service.readable_content(document, version)  # eliminated: 410 page


def _stem(filename: str) -> str:
    return filename.rsplit(".", 1)[0] if "." in filename else filename


@router.get("/documents/{document_id}/versions/{number}/fichier")
def download_version(request: Request, db: DbDep, user: UserDep, document_id: str, number: int) -> Response:
    version = _version(db, user.principal, document_id, number)
    return object_response(version.object_key, version.filename, version.media_type)


@router.get("/documents/{document_id}/pages/apercu.png")
def preview(request: Request, db: DbDep, user: UserDep, document_id: str, v: str = "") -> Response:
    version = _version(db, user.principal, document_id)
    if version.preview_key is None:
        raise NotFound(t(request, "Aperçu pas encore disponible."))
    response = object_response(version.preview_key, f"{_stem(version.filename)}-apercu.png", "image/png")
    return _cached_if_current(response, version.preview_key, v)


@router.get("/documents/{document_id}/pages/vignette.png")
def thumbnail(request: Request, db: DbDep, user: UserDep, document_id: str, v: str = "") -> Response:
    version = _version(db, user.principal, document_id)
    if version.thumbnail_key is None:
        raise NotFound(t(request, "Vignette pas encore disponible."))
    response = object_response(version.thumbnail_key, f"{_stem(version.filename)}-vignette.png", "image/png")
    return _cached_if_current(response, version.thumbnail_key, v)


def _cached_if_current(response: Response, key: str, asked: str) -> Response:
    """A page image asked for with its digest (``?v=``) never changes: the browser keeps it (privately, as it
    is a document the user may read); without it, the image is not cached, like every page."""
    if len(asked) >= 16 and key.startswith(asked):
        response.headers["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


@router.get("/documents/{document_id}/texte")
def extracted_text(request: Request, db: DbDep, user: UserDep, document_id: str) -> Response:
    version = _version(db, user.principal, document_id)
    if version.text_key is None:
        raise NotFound(t(request, "Pas de texte extrait pour ce document."))
    return object_response(version.text_key, f"{_stem(version.filename)}.txt", "text/plain; charset=utf-8")


@router.get("/documents/{document_id}/pdfa")
def pdfa_copy(request: Request, db: DbDep, user: UserDep, document_id: str) -> Response:
    version = _version(db, user.principal, document_id)
    if version.pdfa_key is None:
        raise NotFound(t(request, "Pas de copie PDF/A pour ce document."))
    return object_response(version.pdfa_key, f"{_stem(version.filename)}-pdfa.pdf", "application/pdf")


def purge_day(document: Document) -> date | None:
    """The day a document in the trash may be purged (restorable until then)."""
    if document.deleted_at is None:
        return None
    return (document.deleted_at + timedelta(days=service.trash_days())).date()
