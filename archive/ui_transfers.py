"""The transfers (versements) pages: build one, read its validation report, send it, follow it to the reply."""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from archive import profiles, sae_connectors, service
from archive.models import Transfer
from archive.package_titles import PackageTitles, package_titles
from archive.schemas import SendIn, TransferIn
from archive.statuses import (
    ABANDONABLE,
    ABANDONED,
    ACCEPTED,
    ACKNOWLEDGED,
    AFTER_DELIVERY,
    BUILT,
    DELIVERED,
    DELIVERY_FAILED,
    ERROR,
    INVALID,
    REDOABLE,
    REJECTED,
    REQUESTED,
    SENDABLE,
    SENDING,
    UNVALIDATED,
)
from archive.ui_shared import (
    GROUPS,
    SAE_NAMES,
    SELECTION_NAMES,
    STATUS_HELP,
    STATUS_NAMES,
    _,
    group_condition,
    require_archivist,
    selection_kind,
    transfer_rows,
)
from socle.errors import Conflict, InvalidInput, NotFound, message
from socle.ui.sessions import SignedIn
from socle.ui.web import DbDep, FormDep, UserDep, address_number, error_text, redirect, render, sentence, t
from socle.web import object_response

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
SEDA_VERSIONS = ("2.1", "2.2", "2.3")
SHOWN_ROWS = 200  # documents, issues, units listed on one page: the page stays light whatever the package
ABANDON_REASON_MAX = 2000  # as the API's (archive.schemas.AbandonIn)
FIELDS = (
    "selection",
    "document_ids",
    "folder_id",
    "archival_agency",
    "archival_agreement",
    "comment",
    "seda_version",
    "profile",
)


# ---------------------------------------------------------------------------------------------------------
# List


@router.get("/archives/transferts", response_class=HTMLResponse)
def transfers_list(request: Request, db: DbDep, user: UserDep, etat: str = "", page: str = "1") -> Response:
    require_archivist(user)
    # A typed or truncated address (page=abc, page=) shows the first page, as the GED lists do, not a 400.
    number = address_number(page.strip()) or 1
    query = select(Transfer).where(Transfer.tenant_id == user.principal.tenant_id)
    if etat in GROUPS:
        query = query.where(group_condition(etat))
    elif etat in STATUS_NAMES:
        query = query.where(Transfer.status == etat)
    else:
        etat = ""
    total = db.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    pages = max(1, -(-total // PAGE_SIZE))
    number = min(max(number, 1), pages)
    found = db.execute(
        query.order_by(Transfer.created_at.desc(), Transfer.id).limit(PAGE_SIZE).offset((number - 1) * PAGE_SIZE)
    ).scalars()
    context = {
        "transfers": transfer_rows(list(found)),
        "total": total,
        "page": number,
        "pages": pages,
        "etat": etat,
        "groups": [(key, group[0]) for key, group in GROUPS.items()],
        "statuses": list(STATUS_NAMES.items()),
    }
    return render(request, "archive/transfers.html", context, db=db)


# ---------------------------------------------------------------------------------------------------------
# New transfer


@router.get("/archives/transferts/nouveau", response_class=HTMLResponse)
def new_transfer_form(
    request: Request,
    db: DbDep,
    user: UserDep,
    selection: str = "",
    documents: str = "",
    dossier: str = "",
    depuis: str = "",
) -> Response:
    """The form, prefilled from a link (GED pages: ``?documents=ID,ID`` or ``?dossier=ID``; ``?selection=dua``)
    or from an earlier transfer to do again (``?depuis=ID``)."""
    require_archivist(user)
    values = {"seda_version": "2.2", **_last_recipient(db, user.principal.tenant_id)}
    if depuis:
        redone = service.get_transfer(db, user.principal.tenant_id, depuis)
        values |= _values_of(redone) | {"depuis": redone.id if redone.status in REDOABLE else ""}
    if documents:
        values |= {"selection": "documents", "document_ids": "\n".join(_split_ids(documents))}
    elif dossier:
        values |= {"selection": "dossier", "folder_id": dossier.strip()}
    elif selection in ("documents", "dossier", "dua"):
        values["selection"] = selection
    return _form_page(request, db, user, values)


@router.post("/archives/transferts/nouveau", response_class=HTMLResponse)
def new_transfer(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    require_archivist(user)
    values = {name: str(form.get(name, "")) for name in (*FIELDS, "depuis")}
    body, errors = _transfer_body(request, values)
    if body is None:
        return _form_page(request, db, user, values, errors, status=422)
    try:
        transfer = service.request_transfer(db, user.principal, body, redo_of=_redone(db, user, values["depuis"]))
    except NotFound as exc:  # the profile was removed meanwhile
        db.rollback()
        return _form_page(request, db, user, values, {"profile": exc.detail}, status=422)
    message = t(request, "Versement demandé : la GED prépare les documents, puis le paquet est construit et validé.")
    return redirect(f"/archives/transferts/{transfer.id}", db=db, user=user, message=message)


def _form_page(
    request: Request,
    db: Session,
    user: SignedIn,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    *,
    status: int = 200,
) -> Response:
    names = [profile.name for profile in profiles.list_profiles(db, user.principal.tenant_id)]
    context = {
        "values": values,
        "errors": errors or {},
        "profiles": [(name, name) for name in names],
        "versions": [(version, f"SEDA {version}") for version in SEDA_VERSIONS],
    }
    return render(request, "archive/transfer_new.html", context, status=status, db=db)


def _redone(db: Session, user: SignedIn, transfer_id: str) -> str | None:
    """The transfer the form does again (its hidden « depuis »), if it is one of the collectivité's."""
    transfer_id = transfer_id.strip()
    if not _is_id(transfer_id):
        return None
    query = select(Transfer.id).where(Transfer.id == transfer_id, Transfer.tenant_id == user.principal.tenant_id)
    return db.execute(query).scalar_one_or_none()


def _last_recipient(db: Session, tenant_id: str) -> dict[str, str]:
    """The archival agency and entry contract of the tenant's last transfer: most collectivités send to one
    service only, under one contract."""
    query = select(Transfer.archival_agency, Transfer.archival_agreement).where(Transfer.tenant_id == tenant_id)
    last = db.execute(query.order_by(Transfer.created_at.desc()).limit(1)).one_or_none()
    return {"archival_agency": last[0] if last else "", "archival_agreement": (last[1] or "") if last else ""}


def _values_of(transfer: Transfer) -> dict[str, str]:
    selection = transfer.selection or {"kind": "documents"}
    kind = {"documents": "documents", "folder": "dossier", "dua_reached": "dua"}.get(selection.get("kind", ""), "")
    return {
        "selection": kind,
        "document_ids": "\n".join(transfer.document_ids or []) if kind == "documents" else "",
        "folder_id": str(selection.get("folder_id") or ""),
        "archival_agency": transfer.archival_agency,
        "archival_agreement": transfer.archival_agreement or "",
        "comment": transfer.comment or "",
        "seda_version": transfer.seda_version,
        "profile": transfer.profile or "",
    }


def _split_ids(text: str) -> list[str]:
    return list(dict.fromkeys(part for part in re.split(r"[\s,;]+", text) if part))


def _is_id(text: str) -> bool:
    """Whether ``text`` has the shape of a GED identifier (a UUID, as shown on the document and folder pages)."""
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _transfer_body(request: Request, values: dict[str, str]) -> tuple[TransferIn | None, dict[str, str]]:
    """The API's request from the form, or the errors of each field (in the page's language)."""
    errors: dict[str, str] = {}
    body: dict[str, Any] = {
        "archival_agency": values["archival_agency"].strip(),
        "archival_agreement": values["archival_agreement"].strip() or None,
        "comment": values["comment"].strip() or None,
        "profile": values["profile"].strip() or None,
        "seda_version": values["seda_version"] or "2.2",
    }
    kind = values["selection"]
    if kind == "documents":
        body["document_ids"] = _split_ids(values["document_ids"])
        wrong = [part for part in body["document_ids"] if not _is_id(part)]
        if not body["document_ids"]:
            errors["document_ids"] = t(request, "Indiquez au moins un identifiant de document.")
        elif wrong:
            # Said now, next to the field: otherwise the transfer is created and only fails later, in the job.
            errors["document_ids"] = t(
                request,
                "Identifiant non reconnu : « %(value)s ». Copiez-le depuis la page du document.",
                value=wrong[0][:60],
            )
    elif kind == "dossier":
        body["folder_id"] = values["folder_id"].strip()
        if not body["folder_id"]:
            errors["folder_id"] = t(request, "Indiquez l'identifiant du dossier du plan de classement.")
        elif not _is_id(body["folder_id"]):
            errors["folder_id"] = t(
                request,
                "Identifiant non reconnu : « %(value)s ». Copiez-le depuis la page du dossier.",
                value=body["folder_id"][:60],
            )
    elif kind == "dua":
        body["dua_reached"] = True
    else:
        errors["selection"] = t(request, "Choisissez ce qu'il faut verser.")
    if not body["archival_agency"]:
        errors["archival_agency"] = t(request, "Indiquez l'identifiant du service d'archives destinataire.")
    if errors:
        return None, errors
    try:
        return TransferIn.model_validate(body), {}
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "selection"
            errors.setdefault(field if field in FIELDS else "selection", _field_message(request, error))
        return None, errors


def _field_message(request: Request, error: Any) -> str:
    limit = (error.get("ctx") or {}).get("max_length")
    if error["type"] == "too_long":
        return t(request, "Trop d'éléments : %(max)s au plus.", max=limit)
    if error["type"] == "string_too_long":
        return t(request, "Texte trop long : %(max)s caractères au plus.", max=limit)
    if error["type"] == "literal_error":
        return t(request, "Valeur non admise.")
    return t(request, "Valeur invalide.")


# ---------------------------------------------------------------------------------------------------------
# One transfer


@router.get("/archives/transferts/{transfer_id}", response_class=HTMLResponse)
def transfer_page(request: Request, db: DbDep, user: UserDep, transfer_id: str) -> Response:
    require_archivist(user)
    transfer = service.get_transfer(db, user.principal.tenant_id, transfer_id)
    return _detail_page(request, db, transfer)


@router.get("/archives/transferts/{transfer_id}/paquet")
def download_package(db: DbDep, user: UserDep, transfer_id: str) -> Response:
    require_archivist(user)
    transfer = service.get_transfer(db, user.principal.tenant_id, transfer_id)
    if transfer.sip_key is None:
        raise NotFound("le paquet de ce versement n'est pas encore construit")
    return object_response(transfer.sip_key, f"{transfer.message_identifier}.zip", "application/zip")


@router.get("/archives/transferts/{transfer_id}/messages/{message_id}")
def download_sae_message(db: DbDep, user: UserDep, transfer_id: str, message_id: str) -> Response:
    """A message of the archival system exactly as it came (refused ones too): what the page shows of it is
    bounded, the whole is here. Served as a download, never shown inline."""
    require_archivist(user)
    transfer = service.get_transfer(db, user.principal.tenant_id, transfer_id)
    for number, received in enumerate(transfer.messages, start=1):
        if received.id == message_id:
            kind = "accuse-reception" if received.kind == "acknowledgement" else "reponse"
            filename = f"{transfer.message_identifier}-{kind}-{number}.xml"
            return object_response(received.object_key, filename, "application/xml")
    raise NotFound(message("message du système d'archivage introuvable pour ce versement"))


@router.post("/archives/transferts/{transfer_id}/envoyer", response_class=HTMLResponse)
def send_transfer(request: Request, db: DbDep, user: UserDep, form: FormDep, transfer_id: str) -> Response:
    require_archivist(user)
    values = {"connector": str(form.get("connector", "")).strip(), "accept_unvalidated": _checked(form)}
    if not values["connector"]:
        errors = {"connector": t(request, "Indiquez le connecteur du système d'archivage.")}
        return _detail_again(request, db, user, transfer_id, values, errors, 422)
    try:
        body = SendIn(connector=values["connector"], accept_unvalidated=bool(values["accept_unvalidated"]))
    except ValidationError:
        errors = {"connector": t(request, "Texte trop long : %(max)s caractères au plus.", max=100)}
        return _detail_again(request, db, user, transfer_id, values, errors, 422)
    try:
        service.send(db, user.principal, transfer_id, body)
    except Conflict as exc:
        db.rollback()
        transfer = service.get_transfer(db, user.principal.tenant_id, transfer_id)
        field = "accept_unvalidated" if transfer.status == UNVALIDATED else "form"
        return _detail_again(request, db, user, transfer_id, values, {field: exc.detail}, 409)
    except InvalidInput as exc:  # a connector the known list does not offer (unknown, or disabled)
        db.rollback()
        return _detail_again(
            request, db, user, transfer_id, values, {"connector": sentence(error_text(request, exc))}, 422
        )
    message = t(request, "Versement envoyé : le connecteur dépose le paquet auprès du système d'archivage.")
    return redirect(f"/archives/transferts/{transfer_id}", db=db, user=user, message=message)


@router.post("/archives/transferts/{transfer_id}/valider", response_class=HTMLResponse)
def revalidate_transfer(request: Request, db: DbDep, user: UserDep, form: FormDep, transfer_id: str) -> Response:
    require_archivist(user)
    try:
        transfer = service.revalidate(db, user.principal, transfer_id)
    except Conflict as exc:
        db.rollback()
        return _detail_again(request, db, user, transfer_id, {}, {"form": exc.detail}, 409)
    message = {
        BUILT: t(request, "Paquet validé : il est conforme."),
        INVALID: t(request, "Paquet validé : il n'est pas conforme, voir le rapport."),
    }.get(transfer.status, t(request, "Validation non faite : les schémas SEDA ne sont pas installés."))
    return redirect(f"/archives/transferts/{transfer_id}", db=db, user=user, message=message)


@router.post("/archives/transferts/{transfer_id}/abandonner", response_class=HTMLResponse)
def abandon_transfer(request: Request, db: DbDep, user: UserDep, form: FormDep, transfer_id: str) -> Response:
    require_archivist(user)
    reason = str(form.get("raison", "")).strip()
    values = {"raison": reason}
    if not reason:
        errors = {"raison": t(request, "Dites pourquoi le versement est abandonné.")}
        return _detail_again(request, db, user, transfer_id, values, errors, 422)
    if len(reason) > ABANDON_REASON_MAX:
        errors = {"raison": t(request, "Texte trop long : %(max)s caractères au plus.", max=ABANDON_REASON_MAX)}
        return _detail_again(request, db, user, transfer_id, values, errors, 422)
    try:
        service.abandon(db, user.principal, transfer_id, reason)
    except (Conflict, InvalidInput) as exc:
        db.rollback()
        return _detail_again(request, db, user, transfer_id, values, {"form": exc.detail}, exc.status)
    message = t(request, "Versement abandonné : ses documents sont rendus à la GED.")
    return redirect(f"/archives/transferts/{transfer_id}", db=db, user=user, message=message)


def _checked(form: FormData) -> str:
    return "1" if form.get("accept_unvalidated") else ""


def _detail_again(
    request: Request,
    db: Session,
    user: SignedIn,
    transfer_id: str,
    values: dict[str, str],
    errors: dict[str, str],
    status: int,
) -> Response:
    transfer = service.get_transfer(db, user.principal.tenant_id, transfer_id)
    return _detail_page(request, db, transfer, values=values, errors=errors, status=status)


def _detail_page(
    request: Request,
    db: Session,
    transfer: Transfer,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    kind = selection_kind(transfer)
    # The documents' titles as the package describes them (the GED's export, as built): the GED is not asked.
    # Only those the page shows: the manifest is read no further than the last of them.
    titles = package_titles(
        transfer.sip_key,
        documents=(transfer.document_ids or [])[:SHOWN_ROWS],
        units=list((transfer.sae_identifiers or {}).get("units") or {})[:SHOWN_ROWS],
    )
    context = {
        "transfer": transfer,
        "status_name": STATUS_NAMES.get(transfer.status, transfer.status),
        "status_help": STATUS_HELP.get(transfer.status, ""),
        "selection_name": SELECTION_NAMES.get(kind, kind),
        "folder_id": (transfer.selection or {}).get("folder_id"),
        "steps": steps(transfer),
        "report": report_view(transfer.validation),
        "documents": [
            {"id": document_id, "title": titles.documents.get(document_id)}
            for document_id in (transfer.document_ids or [])[:SHOWN_ROWS]
        ],
        "units": _units_view(transfer, titles),
        "sae_messages": transfer.messages,
        "can_send": transfer.status in SENDABLE and transfer.sip_key is not None,
        "sendable": transfer.status in SENDABLE,
        "sae_name": _sae_name((transfer.sae_identifiers or {}).get("sae")),
        "can_revalidate": transfer.status in service.REVALIDABLE and transfer.sip_key is not None,
        "can_redo": transfer.status in REDOABLE,
        "redo_of": _transfer_link(db, transfer.tenant_id, transfer.redo_of),
        "redone_by": _redos(db, transfer),
        "can_abandon": transfer.status in ABANDONABLE,
        "errors": errors or {},
        "shown_rows": SHOWN_ROWS,
    }
    chosen = ""
    if context["can_send"]:
        chosen, context["connector_options"], context["connectors_known"] = _connector_field(request, db, transfer)
    context["values"] = {"connector": chosen, **(values or {})}
    return render(request, "archive/transfer.html", context, status=status, db=db)


# The kinds of the connectors to an archival system, in words (as the interop's administration pages say them).
CONNECTOR_KINDS = {
    "vitam": _("Système d'archivage Vitam"),
    "asalae": _("Système d'archivage As@lae"),
    "depot": _("Dépôt dans un dossier du serveur"),
    "sftp": _("Dépôt sur un serveur SFTP"),
    "webdav": _("Dépôt WebDAV"),
}


def _connector_field(request: Request, db: Session, transfer: Transfer) -> tuple[str, list[tuple[str, str]], bool]:
    """The send form's connector: the one chosen beforehand, the list of the tenant's enabled SAE connectors
    (name, then name and kind in words) and whether the interop service has told them. The last one used is
    chosen, or the only one; no list known or none enabled, the form keeps a text field."""
    known = sae_connectors.known(db, transfer.tenant_id)
    usable = [connector for connector in known or [] if connector.enabled]
    chosen = transfer.connector or _last_connector(db, transfer.tenant_id)
    if usable and chosen not in {connector.name for connector in usable}:
        chosen = usable[0].name if len(usable) == 1 else ""
    options = [
        (connector.name, f"{connector.name} — {t(request, CONNECTOR_KINDS.get(connector.kind, connector.kind))}")
        for connector in usable
    ]
    return chosen, options, known is not None


def _transfer_link(db: Session, tenant_id: str, transfer_id: str | None) -> dict[str, str] | None:
    if transfer_id is None:
        return None
    query = select(Transfer.message_identifier).where(Transfer.id == transfer_id, Transfer.tenant_id == tenant_id)
    identifier = db.execute(query).scalar_one_or_none()
    return {"id": transfer_id, "message_identifier": identifier} if identifier else None


def _redos(db: Session, transfer: Transfer) -> list[dict[str, str]]:
    """The transfers that do this one again, newest first."""
    query = select(Transfer.id, Transfer.message_identifier, Transfer.status).where(
        Transfer.tenant_id == transfer.tenant_id, Transfer.redo_of == transfer.id
    )
    rows = db.execute(query.order_by(Transfer.created_at.desc()).limit(SHOWN_ROWS)).all()
    return [
        {"id": row.id, "message_identifier": row.message_identifier, "status_name": STATUS_NAMES.get(row.status, "")}
        for row in rows
    ]


def _sae_name(kind: Any) -> str | None:
    """The archival system's product name (« As@lae ») for the connector's kind (« asalae »)."""
    return SAE_NAMES.get(str(kind), str(kind)) if kind else None


def _last_connector(db: Session, tenant_id: str) -> str:
    query = select(Transfer.connector).where(Transfer.tenant_id == tenant_id, Transfer.connector.is_not(None))
    return db.execute(query.order_by(Transfer.updated_at.desc()).limit(1)).scalar_one_or_none() or ""


# ---------------------------------------------------------------------------------------------------------
# The transfer's life in steps, and its validation report in plain words

DONE, CURRENT, TODO, FAILED, WARNING = "done", "current", "todo", "failed", "warning"
SKIPPED = "skipped"  # the SAE answered without acknowledging first (or its acknowledgement came too late)
STOPPED = "stopped"  # a step the transfer never reached: the archivist abandoned it before
GIVEN_UP = "abandoned"  # the last step of an abandoned transfer: the archivist's decision, not the SAE's
STEP_STATES = {
    DONE: _("fait"),
    CURRENT: _("en cours"),
    TODO: _("à venir"),
    FAILED: _("en échec"),
    WARNING: _("fait, sans validation complète"),
    SKIPPED: _("non reçu avant la réponse"),
    STOPPED: _("non fait : versement abandonné avant"),
    GIVEN_UP: _("abandonné par l'archiviste, sans réponse du système d'archivage"),
}


def steps(transfer: Transfer) -> list[dict[str, Any]]:
    """Prepared → validated → sent → acknowledged → accepted or rejected: each step's state and date."""
    status = transfer.status
    # An abandoned transfer may have been deposited first (abandoned for want of a reply): its receipt says so.
    sent = status in (DELIVERED, *AFTER_DELIVERY) or (status == ABANDONED and transfer.receipt is not None)
    validation = (transfer.validation or {}).get("status")
    prepared = {REQUESTED: CURRENT, ERROR: FAILED}.get(status, DONE)
    if status in (REQUESTED, ERROR):
        validated = TODO
    elif status == INVALID or validation == "invalid":  # an abandoned one keeps its report
        validated = FAILED
    else:
        validated = DONE if validation == "valid" else WARNING
    sending = {SENDING: CURRENT, DELIVERY_FAILED: FAILED}.get(status, DONE if sent else TODO)
    if status == ACKNOWLEDGED or (status in (ACCEPTED, REJECTED, ABANDONED) and transfer.acknowledged_at):
        acknowledged = DONE
    elif status in (ACCEPTED, REJECTED):
        acknowledged = SKIPPED  # answered: no acknowledgement is awaited any more
    else:
        acknowledged = CURRENT if status == DELIVERED else TODO
    replied = {ACCEPTED: DONE, REJECTED: FAILED, ABANDONED: GIVEN_UP}.get(
        status, CURRENT if status == ACKNOWLEDGED else TODO
    )
    last = {REJECTED: _("Versement refusé"), ABANDONED: _("Fin du versement")}.get(status, _("Versement accepté"))
    found: list[dict[str, Any]] = [
        {"name": _("Paquet préparé"), "state": prepared, "at": None},
        {"name": _("Paquet validé"), "state": validated, "at": None},
        {"name": _("Paquet envoyé"), "state": sending, "at": None},
        {
            "name": _("Accusé de réception du système d'archivage"),
            "state": acknowledged,
            "at": transfer.acknowledged_at,
        },
        {"name": last, "state": replied, "at": transfer.updated_at if status == ABANDONED else transfer.replied_at},
    ]
    if status == ABANDONED:  # nothing more will happen: not « à venir »
        found = [{**step, "state": STOPPED} if step["state"] == TODO else step for step in found]
    return [{**step, "state_name": STEP_STATES[step["state"]]} for step in found]


CHECKS = (
    ("schema", _("Schéma XSD du SEDA")),
    ("profile", _("Profil d'archivage")),
    ("business", _("Contrôles métier du système d'archivage")),
)
CHECK_STATES = {"valid": _("conforme"), "invalid": _("non conforme"), "skipped": _("non fait")}


def report_view(validation: dict[str, Any] | None) -> dict[str, Any] | None:
    """The validation report for people: each check's verdict, then each problem with the element it concerns."""
    if not validation:
        return None
    statuses = validation.get("checks") or {"schema": validation.get("status")}
    issues = validation.get("issues") or []
    checks = []
    for key, name in CHECKS:
        found = [issue for issue in issues if issue.get("check", "schema") == key]
        checks.append(
            {
                "key": key,
                "name": name,
                "errors": sum(1 for issue in found if issue.get("level") != "warning"),
                "status": statuses.get(key),
                "verdict": CHECK_STATES.get(statuses.get(key) or "", _("sans objet")),
                "count": len(found),
                "warnings": sum(1 for issue in found if issue.get("level") == "warning"),
                "issues": [issue_view(issue) for issue in found[:SHOWN_ROWS]],
            }
        )
    warnings = sum(1 for issue in issues if issue.get("level") == "warning")
    return {
        "status": validation.get("status"),
        "message": validation.get("message"),
        "profile": validation.get("profile"),
        "count": len(issues) - warnings,
        "warnings": warnings,
        "checks": checks,
    }


_ID_PART = re.compile(r"^(?P<name>[^\[]+)\[(?P<id>.+)\]$")
ELEMENT_KINDS = {
    "ArchiveUnit": _("unité d'archives"),
    "BinaryDataObject": _("objet binaire"),
    "PhysicalDataObject": _("objet physique"),
    "DataObjectGroup": _("groupe d'objets"),
}


def issue_view(issue: dict[str, Any]) -> dict[str, Any]:
    """One problem: the element (its name, and the unit or object it belongs to), the line, the French message
    without the location it starts with (shown apart)."""
    path = str(issue.get("path") or "")
    line = issue.get("line")
    parts = [part for part in path.split("/") if part]
    element = _ID_PART.sub(r"\g<name>", parts[-1]) if parts else None
    owner = None
    for part in reversed(parts):
        found = _ID_PART.match(part)
        if found:
            owner = {"kind": ELEMENT_KINDS.get(found["name"], found["name"]), "id": found["id"]}
            break
    return {
        "element": element,
        "owner": owner,
        "path": path or None,
        "line": line,
        "problem": _without_location(str(issue.get("message") or ""), line, path),
        # Reports made before levels existed hold errors only.
        "warning": issue.get("level") == "warning",
    }


def _without_location(message: str, line: Any, path: str) -> str:
    """The message without the « Ligne 12, /ArchiveTransfer/… : » it starts with: the page shows both apart."""
    prefixes = [f"Ligne {line}, {path} : ", f"Manifeste, {path} : ", f"{path} : "] if path else []
    prefixes += [f"Ligne {line} : ", "Manifeste : "]
    for prefix in prefixes:
        if message.startswith(prefix):
            message = message[len(prefix) :]
            break
    return sentence(message)


def _units_view(transfer: Transfer, titles: PackageTitles) -> list[dict[str, Any]]:
    """Each unit the archival system identified, with its title and the GED document it holds when known."""
    units = (transfer.sae_identifiers or {}).get("units") or {}
    documents = {unit: document for document, unit in (transfer.document_units or {}).items()}
    return [
        {
            "unit": unit_id,
            "title": titles.units.get(unit_id),
            "document": documents.get(unit_id),
            "system_ids": ", ".join(found.get("system_ids") or []),
            "archival_ids": ", ".join(found.get("archival_agency_identifiers") or []),
        }
        for unit_id, found in list(units.items())[:SHOWN_ROWS]
    ]
