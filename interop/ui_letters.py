"""The prefecture's letters (courriers) for the collectivité: list, read, answer.

- ``/flux/courriers``: the letters waiting unread on each TdT connector (``GET
  /interop/connectors/{nom}/prefecture``), each with its act's flow;
- ``POST /flux/courriers/{connecteur}/{id}/lecture``: read a letter (``…/prefecture/{id}/fetch``): its files are
  filed in the GED, and the page shows what it says;
- ``/flux/courriers/{connecteur}/{id}/reponse``: answer it with a PDF (``…/prefecture/{id}/reply``), uploaded with
  the form and stored as the collectivité's own, as the act form does.

Who may read and answer is interop.flows' rule (``LETTER_ROLES``, ``may_read_letters``: whoever may send the
acts); its functions check it again.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from interop import flows, service
from interop.models import Flow
from interop.ui_agent import HOME, flash_error, iso_date, tdt_connectors
from interop.ui_transmit import store_files, too_large, uploaded
from socle.errors import Forbidden, NotFound, PayloadTooLarge, SocleError, message
from socle.ui.sessions import SignedIn
from socle.ui.web import DbDep, FormDep, UserDep, error_text, redirect, render, t
from socle.ui.web import form_text as text

router = APIRouter(include_in_schema=False)

LETTERS = HOME + "/courriers"


def _(text: str) -> str:
    """Marks a French label for the catalogues (``socle ui catalogues``); the page translates it."""
    return text


# The letters' kinds (S²LOW's type), as interop.actes.LETTER_TEXTS names them.
LETTER_LABELS = {
    "2": _("Courrier simple"),
    "3": _("Demande de pièces complémentaires"),
    "4": _("Lettre d'observations"),
    "5": _("Déféré au tribunal administratif"),
}
# The letters a collectivité answers through its TdT: not a déféré (5), which goes to the administrative court.
ANSWERED = frozenset({"2", "3", "4"})
# S²LOW's « type_envoie » of an answer (interop.connectors.s2low.reply_prefecture).
REPLY_TYPES = {"4": _("Réponse au courrier"), "3": _("Refus de répondre")}


RECEIVED_FLOWS = 50  # the act flows, most recently changed first, whose letters the page lists


def received_letters(request: Request, db: Session, tenant_id: str) -> list[dict[str, Any]]:
    """The letters already read (by an agent or by the schedule), as interop.flows notes them in their act's flow
    (``data.letters``), the most recent first: a letter read is no longer in the TdT's list of unread ones."""
    from interop.ui_agent import flow_letters, flow_title

    query = (
        select(Flow)
        .where(Flow.tenant_id == tenant_id, Flow.kind == "actes", Flow.data["letters"].as_string().is_not(None))
        .order_by(Flow.updated_at.desc())
        .limit(RECEIVED_FLOWS)
    )
    found: list[dict[str, Any]] = []
    for flow in db.execute(query).scalars():
        title = flow_title(request, flow)
        found.extend(letter | {"flow_id": flow.id, "act": title} for letter in flow_letters(request, flow))
    return sorted(found, key=lambda letter: (letter["date"] is not None, letter["date"]), reverse=True)


@router.get(LETTERS, response_class=HTMLResponse)
def letters_page(request: Request, db: DbDep, user: UserDep) -> Response:
    principal = user.principal
    principal.require(*flows.LETTER_ROLES)  # who reads the letters (interop.flows.may_read_letters)
    received = received_letters(request, db, principal.tenant_id)
    tdt_sections = []
    for connector in tdt_connectors(db, principal.tenant_id):
        letters: list[dict[str, Any]] = []
        problem = ""
        try:
            letters = flows.prefecture_letters(db, principal, connector.name)  # its rule: Forbidden for others
        except Forbidden:
            raise
        except SocleError as exc:  # the TdT did not answer: said for this connector, the others still listed
            db.rollback()
            problem = error_text(request, exc)
        tdt_sections.append(
            {
                "connector": connector,
                "problem": problem,
                "letters": [
                    {
                        "id": str(letter.get("id") or ""),
                        "label": t(request, LETTER_LABELS.get(str(letter.get("type")), _("Courrier"))),
                        "answered": str(letter.get("type")) in ANSWERED,
                        "number": letter.get("number") or "",
                        "act_id": letter.get("unique_id") or "",
                        "flow_id": letter.get("flow_id"),
                    }
                    for letter in letters
                    if flows.DIGITS_ID.fullmatch(str(letter.get("id") or ""))
                ],
            }
        )
    return render(request, "interop/letters.html", {"tdt_sections": tdt_sections, "received": received}, db=db)


def _act_flow(db: Session, tenant_id: str, act_id: str) -> str | None:
    """The flow of the collectivité that transmitted the act ``act_id`` (« 037-213700000-20261130-DEL_1-DE »)."""
    if not act_id:
        return None
    query = select(Flow.id).where(
        Flow.tenant_id == tenant_id, Flow.kind == "actes", Flow.data["act_id"].as_string() == act_id
    )
    return db.execute(query.order_by(Flow.created_at.desc()).limit(1)).scalar_one_or_none()


@router.post(LETTERS + "/{connector}/{letter_id}/lecture", response_class=HTMLResponse)
def read_letter(request: Request, db: DbDep, user: UserDep, form: FormDep, connector: str, letter_id: str) -> Response:
    """Fetch the letter from the TdT (its files filed in the GED) and show what it says."""
    principal = user.principal
    try:
        letter = flows.fetch_prefecture_letter(db, principal, connector, letter_id)
    except SocleError as exc:
        if exc.status in (403, 404):
            raise
        db.rollback()
        reason = error_text(request, exc)
        flash_error(db, user, t(request, "Le courrier n'a pas pu être lu. Motif : %(reason)s", reason=reason))
        return redirect(LETTERS)
    context = {
        "connector": connector,
        "letter": letter,
        "label": t(request, LETTER_LABELS.get(str(letter.get("type")), _("Courrier"))),
        "date": iso_date(letter.get("date")),
        "flow_id": _act_flow(db, principal.tenant_id, str(letter.get("act_id") or "")),
        "answered": str(letter.get("type")) in ANSWERED,
        "folder": str(service.get_connector(db, principal.tenant_id, connector).config.get("ged_folder") or ""),
    }
    return render(request, "interop/letter.html", context, db=db)


def _reply_page(
    request: Request,
    db: Session,
    user: SignedIn,
    connector: str,
    letter_id: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    context = {
        "connector": connector,
        "letter_id": letter_id,
        "reply_types": [(code, t(request, label)) for code, label in REPLY_TYPES.items()],
        "values": values or {"type": "4"},
        "errors": errors or {},
    }
    return render(request, "interop/letter_reply.html", context, status=status, db=db)


def _checked_letter(db: Session, tenant_id: str, connector: str, letter_id: str) -> None:
    """The connector is one of the collectivité's TdT connectors and the id one of S²LOW's: else « introuvable »."""
    if service.get_connector(db, tenant_id, connector).kind not in flows.TDT_KINDS:
        raise NotFound(message("connecteur « %(name)s » introuvable", name=connector))
    if not flows.DIGITS_ID.fullmatch(letter_id):
        raise NotFound(message("courrier %(letter_id)s introuvable", letter_id=letter_id[:40]))


@router.get(LETTERS + "/{connector}/{letter_id}/reponse", response_class=HTMLResponse)
def reply_form(request: Request, db: DbDep, user: UserDep, connector: str, letter_id: str) -> Response:
    user.principal.require(*flows.LETTER_ROLES)
    _checked_letter(db, user.principal.tenant_id, connector, letter_id)
    return _reply_page(request, db, user, connector, letter_id)


@router.post(LETTERS + "/{connector}/{letter_id}/reponse", response_class=HTMLResponse)
def send_reply(request: Request, db: DbDep, user: UserDep, form: FormDep, connector: str, letter_id: str) -> Response:
    principal = user.principal
    principal.require(*flows.LETTER_ROLES)  # before any byte is stored; answer_prefecture checks it again
    _checked_letter(db, principal.tenant_id, connector, letter_id)
    values = {"type": text(form, "type")}
    files = uploaded(form, "fichier")
    errors: dict[str, Any] = {}
    if values["type"] not in REPLY_TYPES:
        errors["type"] = t(request, "Choisissez le type de réponse.")
    if len(files) != 1:
        errors["fichier"] = t(request, "Choisissez le PDF de la réponse.")
    elif errors:
        errors["fichier"] = t(request, "Le fichier n'a pas été transmis : choisissez-le à nouveau.")
    if errors:
        return _reply_page(request, db, user, connector, letter_id, values=values, errors=errors, status=422)
    try:
        stored = store_files(db, principal, files)
        filename = files[0].filename or "reponse.pdf"
        answer = flows.answer_prefecture(db, principal, connector, letter_id, values["type"], stored[0].key, filename)
    except SocleError as exc:
        if exc.status in (403, 404):
            raise
        db.rollback()
        detail = too_large(request) if isinstance(exc, PayloadTooLarge) else exc.detail
        return _reply_page(
            request, db, user, connector, letter_id, values=values, errors={"fichier": detail}, status=exc.status
        )
    message_text = t(
        request, "Réponse envoyée à la préfecture (transaction S²LOW n° %(transaction)s).", transaction=answer
    )
    return redirect(LETTERS, db=db, user=user, message=message_text)
