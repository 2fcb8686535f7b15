"""Administration pages of the connectors (role admin): list, create, edit, enable or disable, test, delete.

Each kind's form is built from its configuration model (:data:`interop.schemas.CONFIG_MODELS`): one field per
setting, the model's French description as the hint. Secrets (:data:`interop.schemas.SECRET_FIELDS`) are
write-only: their inputs are always empty, a page only says which ones are recorded, an empty input keeps
the recorded value, and a form sent back with an error never carries a secret that was typed.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from interop import service
from interop.models import Connector
from interop.schemas import CONFIG_MODELS, SECRET_FIELDS, ConnectorIn
from socle.auth import Role
from socle.errors import Conflict, InvalidInput, SocleError
from socle.ui import rendering
from socle.ui.sessions import SignedIn, push_flash
from socle.ui.web import DbDep, FormDep, UserDep, error_text, redirect, render, require_role, t
from socle.ui.web import form_text as _text
from socle.validation_messages import french_message

router = APIRouter(include_in_schema=False)
rendering.register("interop")


def _(message: str) -> str:
    """Marks a French label for the catalogues (``socle ui catalogues``); the page translates it."""
    return message


KIND_LABELS = {
    "depot": _("Dépôt dans un dossier du serveur"),
    "sftp": _("Dépôt sur un serveur SFTP"),
    "webdav": _("Dépôt WebDAV"),
    "mail": _("Envoi par courriel"),
    "webhook": _("Webhook (événements signés)"),
    "cmis": _("GED externe (CMIS)"),
    "parapheur": _("Autre parapheur socle"),
    "s2low": _("Tiers de télétransmission S²LOW (@ctes, Hélios)"),
    "vitam": _("Système d'archivage Vitam"),
    "asalae": _("Système d'archivage As@lae"),
}

FIELD_LABELS = {
    "url": _("Adresse"),
    "path": _("Dossier"),
    "host": _("Serveur"),
    "port": _("Port"),
    "username": _("Utilisateur"),
    "password": _("Mot de passe"),
    "token": _("Jeton d'accès"),
    "client_key": _("Clé privée"),
    "client_certificate": _("Certificat client TLS"),
    "signing_secret": _("Secret de signature"),
    "host_key": _("Clé publique du serveur"),
    "ca_file": _("Autorités de confiance (fichier PEM)"),
    "timeout": _("Délai d'attente (secondes)"),
    "retry_policy": _("Relances"),
    "send_retry_policy": _("Relances de l'envoi"),
    "packaging": _("Présentation"),
    "metadata": _("Fichier de métadonnées"),
    "done_marker": _("Fichier « .done » en dernier"),
    "on_conflict": _("Nom déjà pris"),
    "tenant": _("Tenant Vitam"),
    "context_id": _("Contexte d'entrée"),
    "action": _("Action Vitam"),
    "application_id": _("Identifiant d'application"),
    "organization": _("Service versant"),
    "chunk_size": _("Taille des morceaux (octets)"),
    "chunk_retries": _("Essais par morceau"),
    "to": _("Destinataires"),
    "subject": _("Objet"),
    "body": _("Texte du message"),
    "mode": _("Mode d'envoi"),
    "link_url": _("Adresse du document"),
    "max_attachment_mb": _("Taille maximale d'une pièce jointe (Mo)"),
    "event": _("Type d'événement"),
    "repository_id": _("Dépôt CMIS"),
    "folder": _("Dossier de destination"),
    "create_folders": _("Créer les dossiers manquants"),
    "object_type": _("Type CMIS des documents"),
    "checksum_property": _("Propriété de l'empreinte"),
    "subtype_id": _("Sous-type du circuit"),
    "title": _("Titre du dossier"),
    "send": _("Envoyer le dossier dans le circuit dès sa création"),
    "siren": _("SIREN"),
    "department": _("Département"),
    "arrondissement": _("Arrondissement"),
    "collectivity_nature": _("Nature de la collectivité"),
    "return_emails": _("Adresses de retour de la préfecture"),
    "classification_max_age_days": _("Âge maximal de la classification (jours)"),
    "actes_trigram": _("Trigramme d'application"),
    "ged_folder": _("Dossier de la GED"),
    "ged_folder_aracte": _("Dossier de la GED des accusés de réception (ARActe)"),
    "ged_folder_courrier": _("Dossier de la GED des courriers de la préfecture"),
    "ged_folder_pes_acquit": _("Dossier de la GED des PES Acquit"),
    "ged_folder_pes_retour": _("Dossier de la GED des PES Retour"),
    "pes_retours": _("Relever les PES Retour (Hélios) chaque heure"),
    "prefecture_letters": _("Relever les courriers de la préfecture (@ctes) chaque heure"),
}
# Settings typed on several lines: PEM blocks, keys, message texts, retry policies.
_MULTILINE = frozenset({"client_certificate", "client_key", "host_key", "body", "retry_policy", "send_retry_policy"})


@dataclass(frozen=True)
class FieldSpec:
    """One setting of a connector kind, as its form shows it."""

    name: str
    label: str
    hint: str
    widget: Literal["text", "number", "textarea", "select", "checkbox", "lines", "secret", "secret_text"]
    required: bool
    choices: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        """Height of a text area: a PEM block or a message needs room, a retry policy two lines."""
        return 2 if self.name.endswith("retry_policy") else (3 if self.widget == "lines" else 6)


def _base_type(annotation: Any) -> Any:
    """``X | None`` → X and ``Annotated[X, …]`` → X."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def fields_of(kind: str) -> list[FieldSpec]:
    """The form fields of a connector kind, in the model's order, required ones first."""
    model: type[BaseModel] = CONFIG_MODELS[kind]
    specs = []
    for name, info in model.model_fields.items():
        if name == "kind":
            continue
        base = _base_type(info.annotation)
        choices: tuple[str, ...] = ()
        widget: Any
        if name in SECRET_FIELDS:
            widget = "secret_text" if name in _MULTILINE else "secret"
        elif typing.get_origin(base) is Literal:
            widget, choices = "select", tuple(str(arg) for arg in typing.get_args(base))
        elif base is bool:
            widget = "checkbox"
        elif base in (int, float):
            widget = "number"
        elif typing.get_origin(base) is list:
            widget = "lines"
        else:
            widget = "textarea" if name in _MULTILINE else "text"
        label = FIELD_LABELS.get(name, name)
        hint = info.description or ""
        if _words(hint) == _words(label):
            hint = ""  # the model's description only repeats the label
        specs.append(FieldSpec(name, label, hint, widget, info.is_required(), choices))
    return sorted(specs, key=lambda spec: not spec.required)


def _shown(value: Any, spec: FieldSpec) -> Any:
    if value is None:
        return ""
    if spec.widget == "lines":
        return "\n".join(str(item) for item in value)
    if spec.widget == "checkbox":
        return bool(value)
    if spec.widget == "number" and isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def default_values(kind: str) -> dict[str, Any]:
    """What a new connector's form starts with: the model's defaults, never a secret."""
    model = CONFIG_MODELS[kind]
    values = {}
    for spec in fields_of(kind):
        default = model.model_fields[spec.name].get_default(call_default_factory=True)
        if not spec.widget.startswith("secret") and default is not None and not spec.required:
            values[spec.name] = _shown(default, spec)
    return values


def stored_values(connector: Connector) -> dict[str, Any]:
    """A connector's recorded settings as its form shows them (secrets left out)."""
    values = default_values(connector.kind)
    for spec in fields_of(connector.kind):
        if spec.name in connector.config and not spec.widget.startswith("secret"):
            values[spec.name] = _shown(connector.config[spec.name], spec)
    return values


def read_config(form: FormData, kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The configuration a form sends (for the model), and what to show again (without any secret).

    An empty field is left out (the model's default applies); an empty secret too (the recorded one is kept);
    a ticked « retirer » removes a recorded secret (null).
    """
    config: dict[str, Any] = {}
    shown: dict[str, Any] = {}
    for spec in fields_of(kind):
        raw = form.get(spec.name, "")
        text = raw.strip() if isinstance(raw, str) else ""
        if spec.widget == "checkbox":
            config[spec.name] = shown[spec.name] = bool(text)
        elif spec.widget.startswith("secret"):
            if form.get(f"{spec.name}__retirer"):
                config[spec.name] = None
            elif text:
                config[spec.name] = raw if spec.widget == "secret_text" else text
        elif spec.widget == "lines":
            shown[spec.name] = text
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if lines:
                config[spec.name] = lines
        elif text:
            shown[spec.name] = text
            config[spec.name] = text.replace(",", ".") if spec.widget == "number" else text
    return config, shown


# ---------------------------------------------------------------------------------------------------------
# Validation messages in French, tied to their field


def _french(request: Request, error: Any) -> str:
    kind, context = error["type"], error.get("ctx") or {}
    messages = {
        "missing": lambda: t(request, "Champ obligatoire."),
        "int_parsing": lambda: t(request, "Saisissez un nombre entier."),
        "int_from_float": lambda: t(request, "Saisissez un nombre entier."),
        "float_parsing": lambda: t(request, "Saisissez un nombre."),
        "greater_than": lambda: t(request, "Doit être supérieur à %(limit)s.", limit=context.get("gt")),
        "greater_than_equal": lambda: t(request, "Doit valoir au moins %(limit)s.", limit=context.get("ge")),
        "less_than": lambda: t(request, "Doit être inférieur à %(limit)s.", limit=context.get("lt")),
        "less_than_equal": lambda: t(request, "Doit valoir au plus %(limit)s.", limit=context.get("le")),
        "string_too_short": lambda: t(request, "Champ obligatoire."),
        "string_too_long": lambda: t(request, "%(count)s caractères au plus.", count=context.get("max_length")),
        "string_pattern_mismatch": lambda: t(request, "Format invalide."),
        "literal_error": lambda: t(request, "Choisissez l'une des valeurs proposées."),
        "too_short": lambda: t(request, "Au moins %(count)s valeur(s).", count=context.get("min_length")),
        "too_long": lambda: t(request, "%(count)s valeurs au plus.", count=context.get("max_length")),
    }
    if kind in messages:
        return messages[kind]()
    return french_message(error)


def validation_errors(request: Request, exc: ValidationError, kind: str) -> dict[str, str]:
    """Each error under the field it is about; errors about the whole configuration under "form"."""
    names = {spec.name for spec in fields_of(kind)} | {"name"}
    errors: dict[str, str] = {}
    for error in exc.errors():
        field = next((str(part) for part in reversed(error["loc"]) if str(part) in names), "form")
        if field == "form" and errors.get("form"):
            errors["form"] += " " + _french(request, error)
        else:
            errors.setdefault(field, _french(request, error))
    return errors


# ---------------------------------------------------------------------------------------------------------
# Pages


def _admin(user: SignedIn) -> None:
    require_role(user, Role.ADMIN)


@router.get("/admin/connecteurs", response_class=HTMLResponse)
def connectors_page(request: Request, db: DbDep, user: UserDep) -> Response:
    _admin(user)
    connectors = sorted(service.list_connectors(db, user.principal.tenant_id), key=lambda row: row.name)
    context = {"connectors": connectors, "kind_labels": KIND_LABELS, "field_labels": FIELD_LABELS}
    return render(request, "interop/admin_connectors.html", context, db=db)


def _form_page(
    request: Request,
    db: Session,
    kind: str,
    connector: Connector | None,
    values: dict[str, Any],
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    context = {
        "kind": kind,
        "kind_labels": KIND_LABELS,
        "connector": connector,
        "fields": fields_of(kind),
        "recorded_secrets": sorted((connector.config.get("secrets") or {}) if connector else []),
        "values": values,
        "errors": errors or {},
    }
    return render(request, "interop/admin_connector.html", context, status=status, db=db)


@router.get("/admin/connecteurs/nouveau", response_class=HTMLResponse)
def new_connector_page(request: Request, db: DbDep, user: UserDep, type: str = "") -> Response:
    _admin(user)
    if type not in CONFIG_MODELS:
        context = {"kind_labels": KIND_LABELS, "errors": {"type": t(request, "Choisissez un type.")} if type else {}}
        return render(request, "interop/admin_connector_kind.html", context, status=400 if type else 200, db=db)
    return _form_page(request, db, type, None, default_values(type))


@router.post("/admin/connecteurs/nouveau", response_class=HTMLResponse)
def create_connector(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    _admin(user)
    kind = _text(form, "type")
    if kind not in CONFIG_MODELS:
        return RedirectResponse("/admin/connecteurs/nouveau", status_code=303)
    config, shown = read_config(form, kind)
    values = {"name": _text(form, "name"), **shown}
    config = {key: value for key, value in config.items() if value is not None}  # nothing recorded to remove yet
    try:
        body = ConnectorIn.model_validate({"name": values["name"], "kind": kind, "config": config})
    except ValidationError as exc:
        return _form_page(request, db, kind, None, values, errors=validation_errors(request, exc, kind), status=422)
    try:
        service.create_connector(db, user.principal, body)
    except (Conflict, InvalidInput) as exc:
        db.rollback()
        field = "name" if isinstance(exc, Conflict) else ("path" if kind == "depot" else "form")
        return _form_page(request, db, kind, None, values, errors={field: exc.detail}, status=exc.status)
    message = t(request, "Connecteur « %(name)s » créé. Testez la connexion.", name=body.name)
    return redirect(f"/admin/connecteurs/{body.name}", db=db, user=user, message=message)


@router.get("/admin/connecteurs/{name}", response_class=HTMLResponse)
def connector_page(request: Request, db: DbDep, user: UserDep, name: str) -> Response:
    _admin(user)
    connector = service.get_connector(db, user.principal.tenant_id, name)
    return _form_page(request, db, connector.kind, connector, {"name": connector.name, **stored_values(connector)})


@router.post("/admin/connecteurs/{name}", response_class=HTMLResponse)
def update_connector(request: Request, db: DbDep, user: UserDep, form: FormDep, name: str) -> Response:
    _admin(user)
    connector = service.get_connector(db, user.principal.tenant_id, name)
    config, shown = read_config(form, connector.kind)
    values = {"name": connector.name, **shown}
    # Checked first with the recorded secrets, so that each problem shows next to its field.
    kept = {key: value for key, value in service.connector_secrets(connector).items() if key not in config}
    try:
        CONFIG_MODELS[connector.kind].model_validate({**kept, **config})
    except ValidationError as exc:
        errors = validation_errors(request, exc, connector.kind)
        return _form_page(request, db, connector.kind, connector, values, errors=errors, status=422)
    try:
        service.update_connector(db, user.principal, name, config)
    except InvalidInput as exc:
        db.rollback()
        connector = service.get_connector(db, user.principal.tenant_id, name)
        field = "path" if connector.kind == "depot" else "form"
        return _form_page(request, db, connector.kind, connector, values, errors={field: exc.detail}, status=422)
    message = t(request, "Connecteur « %(name)s » enregistré.", name=name)
    return redirect(f"/admin/connecteurs/{name}", db=db, user=user, message=message)


@router.post("/admin/connecteurs/{name}/activation", response_class=HTMLResponse)
def connector_activation(request: Request, db: DbDep, user: UserDep, form: FormDep, name: str) -> Response:
    _admin(user)
    enabled = _text(form, "enabled") == "1"
    service.set_enabled(db, user.principal, name, enabled)
    message = (
        t(request, "Connecteur « %(name)s » activé.", name=name)
        if enabled
        else t(request, "Connecteur « %(name)s » désactivé : il refuse les nouveaux envois.", name=name)
    )
    return redirect(_back(form, name), db=db, user=user, message=message)


def _back(form: FormData, name: str) -> str:
    return "/admin/connecteurs" if _text(form, "suivant") == "liste" else f"/admin/connecteurs/{name}"


@router.post("/admin/connecteurs/{name}/test", response_class=HTMLResponse)
def connector_test(request: Request, db: DbDep, user: UserDep, form: FormDep, name: str) -> Response:
    _admin(user)
    try:
        ok, detail = service.test_connector(db, user.principal, name)
    except SocleError as exc:
        if exc.status == 404:
            raise
        ok, detail = False, error_text(request, exc)
    detail = detail.removeprefix("échec : ")
    if ok:
        message = t(request, "« %(name)s » : la connexion fonctionne (%(detail)s).", name=name, detail=detail)
    else:
        message = t(request, "« %(name)s » : la connexion a échoué. Motif : %(detail)s", name=name, detail=detail)
    push_flash(db, user.session_id, message, kind="success" if ok else "error")
    return RedirectResponse(_back(form, name), status_code=303)


@router.post("/admin/connecteurs/{name}/suppression", response_class=HTMLResponse)
def delete_connector(request: Request, db: DbDep, user: UserDep, form: FormDep, name: str) -> Response:
    _admin(user)
    try:
        service.delete_connector(db, user.principal, name)
    except Conflict as exc:
        db.rollback()
        connector = service.get_connector(db, user.principal.tenant_id, name)
        values = {"name": connector.name, **stored_values(connector)}
        return _form_page(request, db, connector.kind, connector, values, errors={"form": exc.detail}, status=409)
    return redirect(
        "/admin/connecteurs", db=db, user=user, message=t(request, "Connecteur « %(name)s » supprimé.", name=name)
    )
