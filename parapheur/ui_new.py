"""A new folder (« nouveau dossier »): typology and circuit preview (a GET form, no JavaScript needed), then
upload of the documents and annexes, metadata and due date, created as a draft or sent at once."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from parapheur import circuits, config, service
from parapheur.models import Subtype
from parapheur.ui_common import files, kept, parapheur_user, text
from socle.auth import Principal
from socle.errors import NotFound, SocleError
from socle.files import display_name
from socle.ui.web import DbDep, FormDep, UserDep, error_text, redirect, render, t

router = APIRouter(include_in_schema=False)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def creatable(db: Session, principal: Principal) -> list[Subtype]:
    """The sous-types this user may create folders of (the engine's rule: a member of one of its creator desks,
    or of any desk when it names none)."""
    held = config.user_desk_ids(db, principal.tenant_id, principal.username)
    if not held:
        return []
    return [
        subtype
        for subtype in config.list_subtypes(db, principal.tenant_id)
        if not subtype.creator_desk_ids or held & set(subtype.creator_desk_ids)
    ]


@router.get("/dossiers/nouveau", response_class=HTMLResponse)
def new_folder_page(
    request: Request,
    db: DbDep,
    user: UserDep,
    type: Annotated[str, Query(max_length=36)] = "",
    sous_type: Annotated[str, Query(max_length=36)] = "",
) -> Response:
    principal = parapheur_user(user)
    errors: dict[str, str] = {}
    if sous_type and sous_type not in {subtype.id for subtype in creatable(db, principal)}:
        errors["sous_type"] = t(request, "Ce sous-type n'existe pas ou ne vous est pas ouvert.")
    values = {"type": type, "sous_type": "" if errors else sous_type, "classer_ged": "1"}
    return _render_new(request, db, principal, values, errors=errors, status=422 if errors else 200)


def _render_new(
    request: Request,
    db: Session,
    principal: Principal,
    values: dict[str, Any],
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    subtypes = creatable(db, principal)
    chosen = next((subtype for subtype in subtypes if subtype.id == values.get("sous_type")), None)
    shown = [subtype for subtype in subtypes if not values.get("type") or subtype.type_id == values["type"]]
    types = {subtype.type_id: subtype.type.name for subtype in subtypes}
    context = {
        "values": {**values, "type": chosen.type_id if chosen else values.get("type", "")},
        "errors": errors or {},
        "type_options": sorted(types.items(), key=lambda item: item[1]),
        "subtype_options": [(subtype.id, f"{subtype.type.name} / {subtype.name}") for subtype in shown],
        "no_subtype": not subtypes,
        "chosen": chosen,
        "steps": chosen.circuit if chosen else [],
        "desk_names": config.desk_names(db, principal.tenant_id),
        "metadata": _metadata_fields(chosen) if chosen else [],
        "externals": circuits.external_step_count(chosen.circuit) if chosen else 0,
        "max_size": _max_upload(),
    }
    return render(request, "parapheur/nouveau.html", context, status=status, db=db)


def _max_upload() -> int:
    from socle.settings import get_settings

    return get_settings().max_upload_bytes


def _metadata_fields(subtype: Subtype) -> list[tuple[str, str, bool]]:
    """(field name, metadata name, needed to send) for the sous-type's and its steps' mandatory metadata."""
    needed = list(subtype.mandatory_metadata or [])
    later = [name for step in subtype.circuit for name in step.get("mandatory_metadata") or []]
    names = list(dict.fromkeys([*needed, *later]))
    return [(f"meta-{index}", name, name in needed) for index, name in enumerate(names)]


@router.post("/dossiers/nouveau", response_class=HTMLResponse)
def create_folder(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    principal = parapheur_user(user)
    values = kept(form)
    sending = text(form, "envoyer", 1) == "1"
    subtype = next((row for row in creatable(db, principal) if row.id == text(form, "sous_type", 36)), None)
    if subtype is None:
        errors = {"sous_type": t(request, "Choisissez un sous-type, puis « Voir le circuit ».")}
        return _render_new(request, db, principal, values, errors=errors, status=422)
    errors, spec = _checked_spec(request, form, subtype, sending)
    mains, annexes = files(form, "fichiers"), files(form, "annexes")
    if not mains:
        errors["fichiers"] = t(request, "Choisissez le document à faire viser ou signer.")
    if errors:
        return _render_new(request, db, principal, values, errors=errors, status=422)
    try:
        folder_id = _create(db, principal, spec, mains, annexes)
    except NotFound:
        raise
    except SocleError as exc:
        db.rollback()
        return _render_new(request, db, principal, values, errors=_upload_errors(request, exc), status=exc.status)
    message = t(request, "Dossier créé et envoyé dans son circuit.") if sending else t(request, "Brouillon créé.")
    return redirect(f"/dossiers/{folder_id}", db=db, user=user, message=message)


def _checked_spec(
    request: Request, form: FormData, subtype: Subtype, sending: bool
) -> tuple[dict[str, str], service.FolderSpec]:
    """The folder's spec from the form, and the errors of its fields (French, by field name)."""
    errors: dict[str, str] = {}
    title = text(form, "titre", 500)
    if not title:
        errors["titre"] = t(request, "Donnez un titre au dossier.")
    due: date | None = None
    if text(form, "echeance", 20):
        due = _date(text(form, "echeance", 20))
        if due is None:
            errors["echeance"] = t(request, "Date invalide : indiquez-la au format JJ/MM/AAAA.")
    metadata: dict[str, Any] = {}
    for field_name, name, needed in _metadata_fields(subtype):
        value = text(form, field_name)
        if value:
            metadata[name] = value
        elif needed and sending:
            errors[field_name] = t(request, "« %(name)s » est obligatoire pour envoyer le dossier.", name=name)
    signers = []
    for number in range(1, circuits.external_step_count(subtype.circuit) + 1):
        name, email = text(form, f"externe_nom_{number}", 200), text(form, f"externe_courriel_{number}", 254)
        if not name:
            errors[f"externe_nom_{number}"] = t(request, "Indiquez le nom du signataire externe.")
        if not _EMAIL.match(email):
            errors[f"externe_courriel_{number}"] = t(request, "Indiquez une adresse électronique valide.")
        signers.append({"name": name, "email": email})
    spec = service.FolderSpec(
        subtype_id=subtype.id,
        title=title,
        metadata=metadata,
        due_date=due,
        external_signers=signers,
        send=sending,
        ged_filing=form.get("classer_ged") == "1" and bool(subtype.ged_folder),
    )
    return errors, spec


def _date(value: str) -> date | None:
    """A date as a date field sends it (AAAA-MM-JJ) or as typed where the browser has none (JJ/MM/AAAA)."""
    found = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", value)
    try:
        if found:
            return date(int(found.group(3)), int(found.group(2)), int(found.group(1)))
        return date.fromisoformat(value)
    except ValueError:
        return None


def _create(
    db: Session, principal: Principal, spec: service.FolderSpec, mains: list[UploadFile], annexes: list[UploadFile]
) -> str:
    """Check the spec, spool and check every file, then create the folder: a refusal leaves nothing stored."""
    subtype = service.check_spec(db, principal, spec)
    signature_format = subtype.type.signature_format
    db.rollback()  # no transaction held while the files are copied and checked
    uploads = [_upload(file, "document.pdf") for file in mains] + [_upload(file, "annexe") for file in annexes]
    spooled = service.spool_uploads(signature_format, uploads[: len(mains)], uploads[len(mains) :])
    try:
        folder = service.create_from_upload(db, principal, spec, spooled, uploads)
    finally:
        service.discard(spooled)
    return folder.id


def _upload(file: UploadFile, fallback: str) -> service.Upload:
    return service.Upload(
        stream=file.file,
        filename=display_name(file.filename or "", fallback),
        media_type=file.content_type or "application/octet-stream",
    )


def _upload_errors(request: Request, exc: SocleError) -> dict[str, str]:
    """A refused upload said next to its field (« fichiers » or « annexes »), with the file's name."""
    role = exc.extra.get("role")
    if role is None:
        return {"form": exc.detail}
    filename = exc.extra.get("filename", "")
    detail = error_text(request, exc) if exc.detail.startswith("«") else f"« {filename} » : {error_text(request, exc)}"
    if exc.status == 413:
        detail = t(
            request, "« %(name)s » est trop volumineux : %(size)s octets au plus.", name=filename, size=_max_upload()
        )
    return {"fichiers" if role == "main" else "annexes": detail}
