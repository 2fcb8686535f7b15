"""« Transmettre un acte » and « Transmettre un PES »: the forms that start an « actes » or a « helios » flow.

The API starts a flow with documents already in the store (object keys and their SHA-256); a form takes the
files themselves. Each is streamed into the store as the GED's upload does (spooled, its digest computed on the
way, refused past the upload limit), recorded as the collectivité's own (held through the interop service, in a
transaction of its own, before the flow's number lock is taken), then given to the same
:func:`interop.flows.start_flow` as ``POST /interop/flows``: same checks, same refusals in French, next to the
field they are about.

The act's nature and code matière are chosen from the classification @ctes kept for the TdT connector; a missing
or stale one is said, and administrators get the button that fetches it again (``POST
/interop/connectors/{nom}/classification``). Administrators also ask here for the collection of the PES Retour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from interop import actes, flows
from interop.models import Connector, TdtClassification
from interop.ui_agent import HOME, flash_error, is_admin, tdt_connectors
from socle.auth import Principal
from socle.dates import french_today
from socle.db import utcnow
from socle.errors import InvalidInput, NotFound, PayloadTooLarge, SocleError, message
from socle.files import display_name
from socle.settings import get_settings
from socle.storage import StoredObject, get_store
from socle.storage.ownership import record_held
from socle.ui.rendering import format_number
from socle.ui.web import DbDep, FormDep, UserDep, error_text, locale_of, redirect, render, safe_next, t
from socle.ui.web import form_text as text

router = APIRouter(include_in_schema=False)

ACT_FORM = HOME + "/acte"
PES_FORM = HOME + "/pes"
SUBJECT_MAX = 500  # as interop.actes.act_from_metadata
DEFAULT_MAX_AGE_DAYS = 30  # a connector's classification_max_age_days when it sets none (interop.flows)


# ---------------------------------------------------------------------------------------------------------
# The classification kept for a TdT connector


@dataclass(frozen=True)
class ClassificationState:
    """The classification @ctes kept for a connector, as the form needs it."""

    row: TdtClassification | None
    stale: bool
    max_age_days: int

    @property
    def usable(self) -> bool:
        return self.row is not None and not self.stale

    def nature_options(self) -> list[tuple[str, str]]:
        natures = self.row.natures if self.row else {}
        return [
            (code, str((natures[code] or {}).get("label") or actes.NATURES.get(int(code), ("", code))[1]))
            for code in sorted(natures, key=_number)
        ]

    def matiere_options(self) -> list[tuple[str, str]]:
        matieres = self.row.matieres if self.row else {}
        return [(code, f"{code} — {matieres[code]}") for code in sorted(matieres, key=_code_key)]

    def pj_types(self) -> list[str]:
        """The types of pièces the classification names, all natures together (each nature admits its own)."""
        natures = self.row.natures if self.row else {}
        found = {str(pj) for nature in natures.values() for pj in (nature or {}).get("pj_types") or [] if pj}
        return sorted(found)


def _number(code: str) -> int:
    return int(code) if code.isascii() and code.isdigit() else 0


def _code_key(code: str) -> tuple[int, ...]:
    return tuple(_number(part) for part in code.split("."))


def classification_state(db: Session, connector: Connector) -> ClassificationState:
    """The classification kept for ``connector`` and whether it is out of date (interop.actes.staleness: fetched
    more than ``classification_max_age_days`` ago, or older than the one the prefecture announced)."""
    max_age = int(connector.config.get("classification_max_age_days") or DEFAULT_MAX_AGE_DAYS)
    try:
        row = flows.get_classification(db, connector.tenant_id, connector.name)
    except NotFound:
        return ClassificationState(None, True, max_age)
    kept = actes.Classification(row.classification_date, row.fetched_at, row.platform_date, row.natures, row.matieres)
    return ClassificationState(row, actes.staleness(kept, max_age, utcnow()) is not None, max_age)


@router.post(HOME + "/classification/{name}", response_class=HTMLResponse)
def refresh_classification(request: Request, db: DbDep, user: UserDep, form: FormDep, name: str) -> Response:
    """Fetch the classification @ctes again from the TdT (administrators, as the API)."""
    back = safe_next(text(form, "suivant"), ACT_FORM)
    try:
        row = flows.fetch_classification(db, user.principal, name)
    except SocleError as exc:
        if exc.status in (403, 404):
            raise
        db.rollback()
        reason = error_text(request, exc)
        flash_error(
            db, user, t(request, "La classification n'a pas pu être récupérée. Motif : %(reason)s", reason=reason)
        )
        return redirect(back)
    message = t(
        request,
        "Classification @ctes du %(date)s récupérée auprès de « %(name)s ».",
        date=row.classification_date.strftime("%d/%m/%Y"),
        name=name,
    )
    return redirect(back, db=db, user=user, message=message)


@router.post(HOME + "/pes-retours/{name}", response_class=HTMLResponse)
def collect_pes_retours(request: Request, db: DbDep, user: UserDep, form: FormDep, name: str) -> Response:
    """Ask for the collection of the connector's unread PES Retour (administrators, as the API)."""
    try:
        flows.request_pes_retours(db, user.principal, name)
    except SocleError as exc:
        if exc.status in (403, 404):
            raise
        db.rollback()
        reason = error_text(request, exc)
        flash_error(
            db, user, t(request, "La relève des PES Retour n'a pas été demandée. Motif : %(reason)s", reason=reason)
        )
        return redirect(HOME)
    message = t(
        request, "Relève des PES Retour demandée à « %(name)s » : ils arriveront dans la GED d'ici peu.", name=name
    )
    return redirect(HOME, db=db, user=user, message=message)


# ---------------------------------------------------------------------------------------------------------
# Files sent with a form


def uploaded(form: FormData, name: str) -> list[UploadFile]:
    """The files a form's field ``name`` carries (a browser sends an empty part for a field left empty)."""
    return [value for value in form.getlist(name) if isinstance(value, UploadFile) and value.filename]


def store_files(db: Session, principal: Principal, files: list[UploadFile]) -> list[StoredObject]:
    """Stream each file into the store (digest computed on the way, the upload limit applied) and record it as the
    collectivité's own, held through the interop service: a flow may then be given it, as a GED document.

    No transaction is held while the bytes are copied; the holding is committed in a transaction of its own (its
    object locks before any flow's number lock, as an upload's are).

    :raises InvalidInput: an empty file. :raises PayloadTooLarge: a file past the upload limit. Either carries
        ``file_index``, the position of the file refused.
    """
    db.rollback()
    stored = []
    for index, file in enumerate(files):
        try:
            if not file.file.read(1):
                raise InvalidInput(
                    message("« %(name)s » : le fichier est vide", name=display_name(file.filename or ""))
                )
            file.file.seek(0)
            stored.append(get_store().put(file.file, max_size=get_settings().max_upload_bytes))
        except SocleError as exc:
            exc.extra["file_index"] = index
            raise
    record_held(db, principal.tenant_id, *(item.key for item in stored), holder="interop")
    db.commit()
    return stored


def too_large(request: Request) -> str:
    """The upload limit as the GED's form says it (« 200 Mio »)."""
    value = float(get_settings().max_upload_bytes)
    unit = "o"
    for unit in ("o", "Kio", "Mio", "Gio"):
        if value < 1024 or unit == "Gio":
            break
        value /= 1024
    locale = locale_of(request)
    size = f"{format_number(round(value, 1), locale)}\u00a0{unit if locale == 'fr' else unit.replace('o', 'B')}"
    return t(request, "Fichier trop volumineux : %(size)s au plus. Réduisez-le ou découpez-le.", size=size)


def _file_error(request: Request, exc: SocleError) -> str:
    return too_large(request) if isinstance(exc, PayloadTooLarge) else error_text(request, exc)


def _chosen(
    db: Session, principal: Principal, name: str, *, or_first: bool = False
) -> tuple[list[Connector], Connector | None]:
    """The enabled TdT connectors, and the one the form is for: the one named; with none named (or, for a page
    shown, ``or_first``, an unknown one), the first."""
    connectors = tdt_connectors(db, principal.tenant_id)
    chosen = next((connector for connector in connectors if connector.name == name), None)
    if chosen is None and connectors and (not name or or_first):
        chosen = connectors[0]
    return connectors, chosen


def _parse_date(raw: str) -> date | None:
    """A date as a date field sends it (AAAA-MM-JJ), or as typed where the browser has none (JJ/MM/AAAA)."""
    for pattern in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(raw, pattern).date()
        except ValueError:
            continue
    return None


# ---------------------------------------------------------------------------------------------------------
# « Transmettre un acte »

ACT_FIELDS = ("connecteur", "numero", "date", "nature", "matiere", "objet", "type_acte", "type_annexes")
# A refusal of interop.flows / interop.actes, by the start of its French text → the field it is about.
_ACT_ERROR_FIELDS = (
    ("numéro interne", "numero"),
    ("code matière", "matiere"),
    ("nature d'acte", "nature"),
    ("date de la décision", "date"),
    ("objet de l'acte", "objet"),
    ("l'acte lui-même", "fichier"),
    ("annexe", "annexes"),
    ("acte et annexes", "annexes"),
)


def _act_error_field(detail: str, act_filename: str) -> str:
    if detail.startswith("type de pièce"):  # « type de pièce « 99_AU » de « acte.pdf » absent… »
        return "type_acte" if f"de « {act_filename} »" in detail else "type_annexes"
    return next((field for start, field in _ACT_ERROR_FIELDS if detail.startswith(start)), "form")


def _act_page(
    request: Request,
    db: Session,
    principal: Principal,
    values: dict[str, str],
    *,
    errors: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    connectors, connector = _chosen(db, principal, values.get("connecteur", ""), or_first=True)
    state = classification_state(db, connector) if connector is not None else None
    pj_types = state.pj_types() if state is not None else []
    shown = dict(values)
    if connector is not None:
        shown["connecteur"] = connector.name
    for name in ("type_acte", "type_annexes"):
        if not shown.get(name) and actes.DEFAULT_PJ_TYPE in pj_types:
            shown[name] = actes.DEFAULT_PJ_TYPE
    context = {
        "connectors": connectors,
        "connector": connector,
        "classification": state,
        "pj_types": pj_types,
        "admin": is_admin(principal),
        "max_size": get_settings().max_upload_bytes,
        "values": shown,
        "errors": errors or {},
        "today": french_today().isoformat(),
    }
    return render(request, "interop/transmit_act.html", context, status=status, db=db)


@router.get(ACT_FORM, response_class=HTMLResponse)
def act_form(request: Request, db: DbDep, user: UserDep, connecteur: str = "") -> Response:
    user.principal.require(*flows.FLOW_ROLES)  # who starts a flow (interop.flows.start_flow)
    return _act_page(request, db, user.principal, {"connecteur": connecteur.strip()})


@router.post(ACT_FORM, response_class=HTMLResponse)
def send_act(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    principal = user.principal
    principal.require(*flows.FLOW_ROLES)
    values = {name: text(form, name) for name in ACT_FIELDS}
    values["objet"] = " ".join(values["objet"].split())
    connector = _chosen(db, principal, values["connecteur"])[1]
    main, annexes = uploaded(form, "fichier"), uploaded(form, "annexes")
    errors: dict[str, Any] = {}
    if connector is None:
        errors["connecteur"] = t(request, "Choisissez le tiers de télétransmission.")
        return _refused_act(request, db, principal, values, errors, bool(main or annexes))
    state = classification_state(db, connector)
    if not state.usable:
        errors["form"] = t(request, "La classification @ctes n'est pas à jour : l'acte ne peut pas partir.")
        return _refused_act(request, db, principal, values, errors, bool(main or annexes))
    if not actes.valid_number(values["numero"]):
        errors["numero"] = t(
            request, "Indiquez le numéro de l'acte : 1 à 15 caractères, lettres sans accent, chiffres ou _."
        )
    decision = _parse_date(values["date"])
    if decision is None:
        errors["date"] = t(request, "Indiquez la date de la décision (par exemple 2026-11-30).")
    if values["nature"] not in dict(state.nature_options()):
        errors["nature"] = t(request, "Choisissez la nature de l'acte dans la liste.")
    if values["matiere"] not in dict(state.matiere_options()):
        errors["matiere"] = t(request, "Choisissez la matière dans la liste.")
    if not values["objet"] or len(values["objet"]) > SUBJECT_MAX:
        errors["objet"] = t(request, "Indiquez l'objet de l'acte, %(count)s caractères au plus.", count=SUBJECT_MAX)
    if len(main) != 1:
        errors["fichier"] = t(request, "Choisissez le fichier PDF de l'acte signé.")
    pj_types = state.pj_types()
    for name in ("type_acte", "type_annexes"):
        if values[name] and values[name] not in pj_types:
            errors[name] = t(request, "Choisissez le type de pièce dans la liste.")
    if errors:
        return _refused_act(request, db, principal, values, errors, bool(main or annexes))
    try:
        stored = store_files(db, principal, [*main, *annexes])
    except (InvalidInput, PayloadTooLarge) as exc:
        db.rollback()
        field = "fichier" if exc.extra.get("file_index") == 0 else "annexes"
        return _refused_act(request, db, principal, values, {field: _file_error(request, exc)}, True, status=exc.status)
    documents = []
    names = [display_name(file.filename or "", "annexe.pdf") for file in [*main, *annexes]]
    for index, (filename, item) in enumerate(zip(names, stored, strict=True)):
        document: dict[str, Any] = {"object_key": item.key, "sha256": item.key, "filename": filename}
        pj_type = values["type_acte"] if index == 0 else values["type_annexes"]
        if pj_type:
            document["type_pj"] = pj_type
        documents.append(document)
    metadata = {
        "numero": values["numero"],
        "date": decision.isoformat() if decision else "",
        "nature": int(values["nature"]),
        "matiere": values["matiere"],
        "objet": values["objet"],
    }
    try:
        flow = flows.start_flow(db, principal, "actes", connector.name, documents, metadata)
    except SocleError as exc:
        if exc.status in (403, 404):
            raise
        db.rollback()
        errors = {_act_error_field(str(exc.detail), names[0]): exc.detail}
        return _refused_act(request, db, principal, values, errors, True, status=exc.status)
    message = t(
        request,
        "Acte n° %(number)s enregistré : sa transmission à la préfecture est en cours.",
        number=values["numero"],
    )
    return redirect(f"{HOME}/{flow.id}", db=db, user=user, message=message)


def _refused_act(
    request: Request,
    db: Session,
    principal: Principal,
    values: dict[str, str],
    errors: dict[str, Any],
    had_files: bool,
    *,
    status: int = 422,
) -> Response:
    if had_files:
        # A browser never fills a file input again: say so, next to the field.
        errors.setdefault("fichier", t(request, "Les fichiers n'ont pas été transmis : choisissez-les à nouveau."))
    return _act_page(request, db, principal, values, errors=errors, status=status)


# ---------------------------------------------------------------------------------------------------------
# « Transmettre un PES »


def _pes_page(
    request: Request,
    db: Session,
    principal: Principal,
    values: dict[str, str],
    *,
    errors: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    connectors, connector = _chosen(db, principal, values.get("connecteur", ""), or_first=True)
    context = {
        "connectors": connectors,
        "connector": connector,
        "max_size": get_settings().max_upload_bytes,
        "values": {**values, "connecteur": connector.name if connector else ""},
        "errors": errors or {},
    }
    return render(request, "interop/transmit_pes.html", context, status=status, db=db)


@router.get(PES_FORM, response_class=HTMLResponse)
def pes_form(request: Request, db: DbDep, user: UserDep, connecteur: str = "") -> Response:
    user.principal.require(*flows.FLOW_ROLES)
    return _pes_page(request, db, user.principal, {"connecteur": connecteur.strip()})


@router.post(PES_FORM, response_class=HTMLResponse)
def send_pes(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    principal = user.principal
    principal.require(*flows.FLOW_ROLES)
    values = {"connecteur": text(form, "connecteur")}
    connector = _chosen(db, principal, values["connecteur"])[1]
    files = uploaded(form, "fichier")
    errors: dict[str, Any] = {}
    if connector is None:
        errors["connecteur"] = t(request, "Choisissez le tiers de télétransmission.")
    if len(files) != 1:
        errors["fichier"] = t(request, "Choisissez le fichier du PES Aller signé.")
    elif files and errors:
        errors["fichier"] = t(request, "Le fichier n'a pas été transmis : choisissez-le à nouveau.")
    if errors or connector is None:
        return _pes_page(request, db, principal, values, errors=errors, status=422)
    try:
        stored = store_files(db, principal, files)
        document = {
            "object_key": stored[0].key,
            "sha256": stored[0].key,
            "filename": display_name(files[0].filename or "", "PES.xml"),
        }
        flow = flows.start_flow(db, principal, "helios", connector.name, [document], {})
    except SocleError as exc:
        if exc.status in (403, 404):
            raise
        db.rollback()
        detail = _file_error(request, exc) if isinstance(exc, PayloadTooLarge) else exc.detail
        return _pes_page(request, db, principal, values, errors={"fichier": detail}, status=exc.status)
    message = t(
        request,
        "PES « %(name)s » enregistré : sa transmission à la trésorerie est en cours.",
        name=flow.documents[0]["filename"],
    )
    return redirect(f"{HOME}/{flow.id}", db=db, user=user, message=message)
