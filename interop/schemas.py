"""What the interop API accepts and returns."""

from __future__ import annotations

import re
from datetime import date, datetime
from string import Template
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, Field, field_validator, model_validator

from interop import actes
from interop.connectors.layout import LayoutFields
from interop.connectors.transport import forbidden_address
from interop.models import Connector, Delivery
from interop.retry import DEFAULT_POLICY, parse_policy
from socle.errors import InvalidInput
from socle.jsonvalues import JsonObject
from socle.text import BlankableLine, Line, Note, text_fault

# Configuration fields that are secrets: encrypted at rest (socle.secrets), never returned by the API.
SECRET_FIELDS = ("client_key", "password", "token", "signing_secret")


def _valid_policy(value: str | None) -> str | None:
    """A retry policy in Pastell's syntax (interop.retry), with the parser's French message on error."""
    if value is None:
        return None
    try:
        parse_policy(value)
    except InvalidInput as exc:
        raise ValueError(exc.detail) from None
    return value.strip()


class DeliveryRetry(BaseModel):
    """The delivery's own retries after a passing failure (unreachable, 5xx), for the connectors without follow-up."""

    retry_policy: str | None = Field(
        None,
        max_length=500,
        description="Relances de l'envoi après une panne passagère : « 1 X 3 » puis « 30 X 4 » (minutes) ; "
        "absent : celles de la file (SOCLE_JOB_BACKOFF)",
        exclude_if=lambda value: value is None,  # not stored when absent, like the layout options
    )

    _retry_policy = field_validator("retry_policy")(_valid_policy)


# For the connectors whose ``retry_policy`` paces the following of an operation (SAE, TdT, parapheur): the
# sending's own retries after a passing failure. Absent: the kernel's (deliveries) or ``retry_policy`` (flows).
SEND_RETRY_FIELD: Any = Field(
    None,
    max_length=500,
    description="Relances de l'envoi après une panne passagère : « 1 X 3 » puis « 30 X 4 » (minutes) ; "
    "absent : celles de la file pour un envoi, celles du suivi pour un flux",
    exclude_if=lambda value: value is None,
)


# For the connectors whose flows file what they bring back in the GED (TdT, parapheur): the folder of the plan.
GED_FOLDER_FIELD: Any = Field(
    None,
    max_length=1000,
    description="Dossier du plan de classement de la GED où classer ce que rapportent les flux de ce connecteur : "
    "son chemin (« Actes/2026 ») ou son identifiant ; ses droits disent qui le lit. Vide : rien n'est classé, "
    "les flux qui classent sont refusés",
    exclude_if=lambda value: value is None,  # not stored when absent, like the retry policies
)


# The placeholder a folder's path may hold: the year of the act (or of the document: PES, letter) filed there.
YEAR_PLACEHOLDER = "{année}"


def _valid_ged_folder(value: str | None) -> str | None:
    """A folder of the GED's plan: its path of names from the top (slashes at the ends ignored) or its id; None
    when blank. Only its form is checked: the folder lives in the GED, which interop cannot ask while an
    administrator saves; the GED resolves it when it files (ged.plan.folder_at) and refuses one it lacks.
    ``{année}`` stands for the year of what is filed (« Actes/{année} »); no other braces are taken."""
    if value is None:
        return None
    fault = text_fault(value, required=False)
    if fault is not None:
        raise ValueError(fault)
    if "{" in value.replace(YEAR_PLACEHOLDER, "") or "}" in value.replace(YEAR_PLACEHOLDER, ""):
        raise ValueError(
            "seul « {année} » (l'année de l'acte ou du document) peut figurer entre accolades dans le chemin du "
            "dossier de la GED, ex. « Actes/{année} »"
        )
    return value.strip(" /") or None


def _kind_folder_field(what: str) -> Any:
    return Field(
        None,
        max_length=1000,
        description=f"Dossier de la GED pour {what} (« Actes/{{année}} ») ; vide : le dossier de la GED ci-dessus",
        exclude_if=lambda value: value is None,
    )


# The kinds of documents a TdT connector files, each in its own folder when one is set (else ``ged_folder``).
GED_FOLDER_KINDS = ("aracte", "courrier", "pes_acquit", "pes_retour")


class DepotConfig(LayoutFields, DeliveryRetry):
    kind: Literal["depot"] = Field("depot", exclude=True)
    path: BlankableLine = Field(
        "", max_length=500, description="Sous-dossier du dépôt, relatif au dossier de la collectivité"
    )


def _platform_url(value: str) -> str:
    """An address a connector may call: no credentials in it (they would be shown, logged and stored in clear:
    ``username``/``password``/``token`` are the secrets), no link-local or unspecified address (169.254.169.254,
    a cloud's metadata service). Names are checked again when they are resolved (interop.connectors.transport)."""
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
    except ValueError:
        raise ValueError("adresse invalide : attendu « https://… » (ou http://)") from None
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "identifiants refusés dans l'adresse (ils y seraient visibles) : utiliser les champs username et password"
        )
    _reachable_host(host)
    return value


def _reachable_host(host: str) -> str:
    if forbidden_address(host.strip("[]")):
        raise ValueError("adresse refusée : lien local ou non spécifiée (169.254.x.x, 0.0.0.0, fe80::…)")
    return host


class SaeConfig(BaseModel):
    """What both SAE connectors need: where, how to trust it, how long to wait, how often to ask again."""

    url: Annotated[Line, AfterValidator(_platform_url)] = Field(
        max_length=500, pattern=r"^https?://[^\s]+$", description="Adresse de base de la plateforme"
    )
    ca_file: BlankableLine | None = Field(None, max_length=500, description="Fichier des autorités de confiance (PEM)")
    client_certificate: str | None = Field(None, max_length=20_000, description="Certificat client TLS (PEM)")
    client_key: str | None = Field(None, max_length=20_000, description="Clé privée du certificat client (secret)")
    timeout: float = Field(60, gt=0, le=600, description="Délai d'attente d'une réponse, en secondes")
    retry_policy: str = Field(
        DEFAULT_POLICY, max_length=500, description="Relances du suivi : « 10 X 3 » puis « 60 X 24 » (minutes)"
    )
    send_retry_policy: str | None = SEND_RETRY_FIELD

    _policy = field_validator("retry_policy", "send_retry_policy")(_valid_policy)


class VitamConfig(SaeConfig):
    kind: Literal["vitam"] = Field("vitam", exclude=True)
    tenant: int = Field(ge=0, description="Tenant Vitam (X-Tenant-Id)")
    context_id: BlankableLine = Field(
        "DEFAULT_WORKFLOW", max_length=100, description="Contexte d'entrée (X-Context-Id)"
    )
    action: Literal["RESUME", "NEXT"] = "RESUME"
    application_id: BlankableLine | None = Field(None, max_length=100, description="X-Application-Id (facultatif)")


class AsalaeConfig(SaeConfig):
    kind: Literal["asalae"] = Field("asalae", exclude=True)
    organization: BlankableLine | None = Field(
        None, max_length=200, description="Identifiant du service versant chez As@lae (défaut : celui du bordereau)"
    )
    username: BlankableLine | None = Field(None, max_length=200, description="Utilisateur (authentification basique)")
    password: str | None = Field(None, max_length=500, description="Mot de passe (secret)")
    token: str | None = Field(None, max_length=2000, description="Jeton d'accès (secret), à la place du mot de passe")
    chunk_size: int = Field(
        0, ge=0, description="Au-delà de cette taille (octets), l'archive part en morceaux ; 0 : jamais"
    )
    chunk_retries: int = Field(3, ge=1, le=20, description="Essais d'un même morceau avant d'abandonner l'exécution")


# --- I2's connector kinds: SFTP and WebDAV dépôts, mail, signed webhooks, external CMIS GED, external parapheur


def _template_names(allowed: frozenset[str]) -> Any:
    """A validator for a « $name » template (string.Template): only the listed names may appear."""

    def check(value: str | None) -> str | None:
        if value is None:
            return None
        template = Template(value)
        if not template.is_valid():
            raise ValueError("modèle invalide : un « $ » doit précéder un nom (écrire « $$ » pour un dollar)")
        unknown = set(template.get_identifiers()) - allowed
        if unknown:
            names = ", ".join(f"${name}" for name in sorted(allowed))
            raise ValueError(f"variable(s) inconnue(s) : {', '.join(sorted(unknown))} (possibles : {names})")
        return value

    return check


TEMPLATE_NAMES = frozenset({"filename", "size", "sha256", "connector", "link"})


def _matching(pattern: str, message: str) -> AfterValidator:
    """A check by regular expression with a French message (pydantic's own pattern message is English)."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(message)
        return value

    return AfterValidator(check)


UrlText = Annotated[
    Line,  # a control character (NUL…) is no whitespace: « [^\s] » lets it through
    Field(max_length=500),
    _matching(r"https?://[^\s]+", "adresse invalide : attendu « https://… » (ou http://)"),
    AfterValidator(_platform_url),
]


class SftpConfig(LayoutFields, DeliveryRetry):
    kind: Literal["sftp"] = Field("sftp", exclude=True)
    host: Annotated[
        str,
        _matching(r"[A-Za-z0-9.:\[\]-]+", "nom ou adresse de serveur SFTP invalide"),
        AfterValidator(_reachable_host),
    ] = Field(min_length=1, max_length=253, description="Serveur SFTP")
    port: int = Field(22, ge=1, le=65535)
    username: Line = Field(min_length=1, max_length=200, description="Utilisateur")
    password: str | None = Field(None, max_length=500, description="Mot de passe (secret)")
    client_key: str | None = Field(None, max_length=20_000, description="Clé privée OpenSSH (secret), sans phrase")
    host_key: str = Field(max_length=20_000, description="Clé publique du serveur (« ssh-ed25519 AAAA… »)")
    path: Line = Field(".", min_length=1, max_length=500, description="Dossier distant")
    timeout: float = Field(30, gt=0, le=600, description="Délai d'attente, en secondes")

    @field_validator("host_key")
    @classmethod
    def _host_key(cls, value: str) -> str:
        from interop.connectors.sftp import parse_host_key

        try:
            parse_host_key(value)
        except InvalidInput as exc:
            raise ValueError(exc.detail) from None
        return value.strip()

    @model_validator(mode="after")
    def _credentials(self) -> SftpConfig:
        from interop.connectors.sftp import parse_private_key

        if not self.password and not self.client_key:
            raise ValueError("il faut un mot de passe ou une clé privée pour le serveur SFTP")
        if self.client_key:
            try:
                parse_private_key(self.client_key)
            except InvalidInput as exc:
                raise ValueError(exc.detail) from None
        return self


class WebdavConfig(LayoutFields, DeliveryRetry):
    kind: Literal["webdav"] = Field("webdav", exclude=True)
    url: UrlText = Field(description="Adresse de la collection de dépôt")
    username: BlankableLine | None = Field(None, max_length=200, description="Utilisateur (authentification basique)")
    password: str | None = Field(None, max_length=500, description="Mot de passe (secret)")
    ca_file: BlankableLine | None = Field(None, max_length=500, description="Fichier des autorités de confiance (PEM)")
    timeout: float = Field(60, gt=0, le=600, description="Délai d'attente, en secondes")


class MailConfig(DeliveryRetry):
    kind: Literal["mail"] = Field("mail", exclude=True)
    to: list[Line] = Field(min_length=1, max_length=50, description="Destinataires")
    subject: Annotated[str, _matching(r"[^\r\n]*", "l'objet d'un courriel ne peut pas contenir de saut de ligne")] = (
        Field("Document transmis : $filename", min_length=1, max_length=300, description="Objet ($filename…)")
    )
    body: Note | None = Field(None, max_length=20_000, description="Texte du message ($filename, $link…)")
    mode: Literal["attachment", "link"] = Field("attachment", description="Le document en pièce jointe, ou un lien")
    link_url: UrlText | None = Field(None, description="Adresse du document pour le mode lien ($sha256, $filename)")
    max_attachment_mb: float = Field(10, gt=0, le=50, description="Taille maximale d'une pièce jointe, en Mo")

    _subject = field_validator("subject")(_template_names(TEMPLATE_NAMES))
    _body = field_validator("body")(_template_names(TEMPLATE_NAMES))
    _link = field_validator("link_url")(_template_names(TEMPLATE_NAMES - {"link"}))

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            local, at, domain = address.strip().rpartition("@")
            if not at or not local or "." not in domain or any(char in address for char in "\r\n,;<> "):
                raise ValueError(f"adresse de courriel invalide : « {address} »")
        return [address.strip() for address in value]

    @model_validator(mode="after")
    def _link_mode(self) -> MailConfig:
        if self.mode == "link" and not self.link_url:
            raise ValueError("le mode « link » demande l'adresse du document (link_url)")
        return self


class WebhookConfig(DeliveryRetry):
    kind: Literal["webhook"] = Field("webhook", exclude=True)
    url: UrlText = Field(description="Adresse qui reçoit les événements (POST)")
    signing_secret: Annotated[
        str, _matching(r".{32,}", "le secret de signature doit compter 32 caractères au moins")
    ] = Field(max_length=500, description="Secret partagé de la signature HMAC-SHA256 (32 caractères au moins)")
    event: Annotated[str, _matching(r"[a-z0-9_.-]+", "type d'événement invalide (a-z, 0-9, « . », « _ », « - »)")] = (
        Field("document.delivered", max_length=100, description="Type d'événement")
    )
    link_url: UrlText | None = Field(None, description="Adresse du document ($sha256…)")
    ca_file: BlankableLine | None = Field(None, max_length=500, description="Fichier des autorités de confiance (PEM)")
    timeout: float = Field(15, gt=0, le=120, description="Délai d'attente, en secondes")

    _link = field_validator("link_url")(_template_names(TEMPLATE_NAMES - {"link"}))


class CmisConfig(DeliveryRetry):
    kind: Literal["cmis"] = Field("cmis", exclude=True)
    url: UrlText = Field(description="Point d'accès CMIS Browser Binding (…/browser)")
    repository_id: BlankableLine | None = Field(
        None, max_length=200, description="Dépôt CMIS (défaut : le premier annoncé)"
    )
    folder: BlankableLine = Field("/", max_length=500, description="Dossier de destination (« /Actes/2026 »)")
    create_folders: bool = Field(True, description="Créer les dossiers manquants")
    object_type: BlankableLine = Field("cmis:document", max_length=200, description="Type CMIS des documents créés")
    checksum_property: Annotated[str, _matching(r"[A-Za-z][\w:.-]*", "nom de propriété CMIS invalide")] | None = Field(
        None,
        max_length=200,
        description="Propriété recevant « sha256:<empreinte> », cherchée avant tout envoi (ex. cmis:description)",
    )
    username: BlankableLine | None = Field(None, max_length=200, description="Utilisateur (authentification basique)")
    password: str | None = Field(None, max_length=500, description="Mot de passe (secret)")
    ca_file: BlankableLine | None = Field(None, max_length=500, description="Fichier des autorités de confiance (PEM)")
    timeout: float = Field(60, gt=0, le=600, description="Délai d'attente, en secondes")

    @field_validator("folder")
    @classmethod
    def _folder(cls, value: str) -> str:
        if ".." in value.split("/"):
            raise ValueError("le dossier CMIS ne peut pas contenir « .. »")
        return "/" + value.strip("/") if value.strip("/") else "/"


class ParapheurConfig(BaseModel):
    kind: Literal["parapheur"] = Field("parapheur", exclude=True)
    url: UrlText = Field(description="Adresse de l'autre instance socle")
    token: str = Field(min_length=1, max_length=2000, description="Jeton d'accès à son API (secret)")
    subtype_id: Line = Field(min_length=1, max_length=36, description="Sous-type du circuit de signature")
    title: Line = Field("$filename", min_length=1, max_length=500, description="Titre du dossier créé ($filename…)")
    send: bool = Field(True, description="Envoyer le dossier dans le circuit dès sa création")
    ca_file: BlankableLine | None = Field(None, max_length=500, description="Fichier des autorités de confiance (PEM)")
    timeout: float = Field(60, gt=0, le=600, description="Délai d'attente, en secondes")
    retry_policy: str = Field(
        DEFAULT_POLICY, max_length=500, description="Relances du suivi du dossier : « 10 X 3 » puis « 60 X 24 »"
    )
    send_retry_policy: str | None = SEND_RETRY_FIELD
    ged_folder: str | None = GED_FOLDER_FIELD

    _title = field_validator("title")(_template_names(TEMPLATE_NAMES - {"link"}))
    _ged_folder = field_validator("ged_folder")(_valid_ged_folder)

    _policy = field_validator("retry_policy", "send_retry_policy")(_valid_policy)


class S2lowConfig(SaeConfig):
    """A S²LOW account (TdT): certificate, optional basic auth, and how the prefecture knows the collectivité."""

    kind: Literal["s2low"] = Field("s2low", exclude=True)
    username: BlankableLine | None = Field(None, max_length=200, description="Utilisateur (authentification basique)")
    password: str | None = Field(None, max_length=500, description="Mot de passe (secret)")
    siren: str | None = Field(None, pattern=r"^[0-9]{9}$", description="SIREN (défaut : celui de la collectivité)")
    department: str = Field(pattern=r"^[09][0-9][AB0-9]$", description="Département, 3 caractères (037, 02A)")
    arrondissement: str = Field("0", pattern=r"^[0-9]$", description="Arrondissement (1 chiffre)")
    collectivity_nature: str = Field("01", pattern=r"^[0-9]{2}$", description="Code nature de la collectivité")
    return_emails: list[str] = Field(
        min_length=1, max_length=10, description="Adresses de retour de la préfecture (au moins une)"
    )
    classification_max_age_days: int = Field(
        30, ge=1, le=3650, description="Âge maximal de la classification @ctes avant l'envoi, en jours"
    )
    actes_trigram: str = Field(
        "TRI",
        pattern=r"^[A-Za-z0-9]{3}$",
        description="Trigramme d'application de la plateforme S²LOW (nom des archives)",
    )
    ged_folder: str | None = GED_FOLDER_FIELD
    ged_folder_aracte: str | None = _kind_folder_field("les accusés de réception des actes (ARActe)")
    ged_folder_courrier: str | None = _kind_folder_field("les courriers de la préfecture")
    ged_folder_pes_acquit: str | None = _kind_folder_field("les PES Acquit")
    ged_folder_pes_retour: str | None = _kind_folder_field("les PES Retour")
    pes_retours: bool = Field(
        True,
        description="Relever les PES Retour (Hélios) chaque heure ; non pour un compte S²LOW sans Hélios, dont "
        "chaque relève échouerait",
    )
    prefecture_letters: bool = Field(
        True,
        description="Relever les courriers de la préfecture (@ctes) chaque heure ; non pour un compte S²LOW sans "
        "@ctes (Hélios seulement), dont chaque relève échouerait",
    )

    _ged_folder = field_validator("ged_folder", *(f"ged_folder_{kind}" for kind in GED_FOLDER_KINDS))(_valid_ged_folder)

    @field_validator("return_emails")
    @classmethod
    def _return_emails(cls, value: list[str]) -> list[str]:
        # The ACTES XSD's own pattern: an address it refuses would stop every act at its packaging, not here.
        for address in value:
            if not actes.valid_email(address):
                raise ValueError(f"adresse de retour refusée par le schéma ACTES : « {address[:100]} »")
        return value


CONFIG_MODELS: dict[str, type[BaseModel]] = {
    "s2low": S2lowConfig,
    "depot": DepotConfig,
    "vitam": VitamConfig,
    "asalae": AsalaeConfig,
    **{
        "sftp": SftpConfig,
        "webdav": WebdavConfig,
        "mail": MailConfig,
        "webhook": WebhookConfig,
        "cmis": CmisConfig,
        "parapheur": ParapheurConfig,
    },
}


class ConnectorIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    kind: Literal["depot", "vitam", "asalae", "sftp", "webdav", "mail", "webhook", "cmis", "parapheur", "s2low"]
    config: Annotated[
        DepotConfig
        | VitamConfig
        | AsalaeConfig
        | SftpConfig
        | WebdavConfig
        | MailConfig
        | WebhookConfig
        | CmisConfig
        | ParapheurConfig
        | S2lowConfig,
        Field(discriminator="kind"),
    ]

    @model_validator(mode="before")
    @classmethod
    def _config_of_kind(cls, data: Any) -> Any:
        # The configuration is read with the model of the declared kind, not whichever happens to fit.
        if isinstance(data, dict) and isinstance(data.get("config"), dict):
            data = {**data, "config": {**data["config"], "kind": data.get("kind")}}
        return data


class ConnectorPatch(BaseModel):
    enabled: bool | None = Field(None, description="Activer ou désactiver le connecteur")
    config: dict[str, Any] | None = Field(
        None,
        description="Nouvelle configuration complète, validée comme à la création ; un secret absent est gardé, "
        "donné il est remplacé, null il est retiré",
    )

    @model_validator(mode="after")
    def _something(self) -> ConnectorPatch:
        if self.enabled is None and self.config is None:
            raise ValueError("rien à modifier : donner « enabled » ou « config »")
        return self


class ConnectorOut(BaseModel):
    name: str
    kind: str
    enabled: bool
    config: dict[str, Any]
    secrets: list[str] = Field(description="Secrets enregistrés (noms seulement : leur valeur n'est jamais renvoyée)")
    created_at: datetime

    @classmethod
    def of(cls, connector: Connector) -> ConnectorOut:
        # Only the public part of the configuration is returned: secrets never leave the server.
        public = {key: value for key, value in connector.config.items() if not key.startswith("secret")}
        return cls(
            name=connector.name,
            kind=connector.kind,
            enabled=connector.enabled,
            config=public,
            secrets=sorted(connector.config.get("secrets") or {}),
            created_at=connector.created_at,
        )


class TestResult(BaseModel):
    ok: bool
    message: str


class DeliveryOut(BaseModel):
    id: str
    connector: str
    filename: str
    size: int
    sha256: str
    status: str
    receipt: dict[str, Any] | None
    error: str | None
    created_at: datetime
    delivered_at: datetime | None
    follow: FollowOut | None = Field(None, description="Suivi de l'opération chez le SAE (connecteurs Vitam, As@lae)")

    @classmethod
    def of(cls, delivery: Delivery, connector_name: str) -> DeliveryOut:
        return cls(
            id=delivery.id,
            connector=connector_name,
            filename=delivery.filename,
            size=delivery.size,
            sha256=delivery.object_key,
            status=delivery.status,
            receipt=delivery.receipt,
            error=delivery.error,
            created_at=delivery.created_at,
            delivered_at=delivery.delivered_at,
            follow=FollowOut.of(delivery) if delivery.follow_status else None,
        )


class FollowOut(BaseModel):
    status: str = Field(description="following (suivi en cours), done (réponse reçue), error (relances épuisées)")
    checks: int
    state: str | None = Field(description="Dernier état donné par la plateforme, ou son dernier message d'erreur")
    error: str | None
    last_check_at: datetime | None
    next_check_at: datetime | None
    acknowledgement_sha256: str | None
    reply_sha256: str | None

    @classmethod
    def of(cls, delivery: Delivery) -> FollowOut:
        return cls(
            status=delivery.follow_status or "",
            checks=delivery.follow_checks,
            state=delivery.follow_state,
            error=delivery.follow_error,
            last_check_at=delivery.last_check_at,
            next_check_at=delivery.next_check_at,
            acknowledgement_sha256=delivery.acknowledgement_key,
            reply_sha256=delivery.reply_key,
        )


# --------------------------------------------------------------------------------------------------------
# Flows (interop.flows)


class FlowDocumentIn(BaseModel):
    object_key: str = Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$", description="Clé d'objet")
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="Empreinte attendue (vérifiée)")
    filename: str = Field(min_length=1, max_length=255, description="Nom du fichier")
    type_pj: str | None = Field(None, max_length=10, description="@ctes : type de pièce (99_AU, 99_DE…)")


class FlowIn(BaseModel):
    kind: Literal["actes", "helios", "depot", "mail", "signature"]
    connector: str = Field(
        min_length=1, max_length=100, description="Connecteur (S²LOW pour actes et helios, parapheur pour signature)"
    )
    documents: list[FlowDocumentIn] = Field(min_length=1, max_length=100, description="Acte puis annexes, ou PES")
    metadata: JsonObject = Field(
        default_factory=dict,
        description="actes : numero, date (AAAA-MM-JJ), nature (1 à 6), matiere (« 1.2 »), objet ; actes et helios : "
        'signature {"connector"} (passage au parapheur d\'abord) ; actes, helios et signature : ged_folder (dossier '
        "de la GED où classer ce que rapporte le flux, à la place de celui du connecteur : il faut pouvoir y écrire)",
    )


class FlowResumeIn(BaseModel):
    transaction_id: str | None = Field(
        None,
        min_length=1,
        max_length=20,
        pattern=r"^[0-9]+$",
        description="Hélios : la transaction S²LOW du PES reçu malgré une réponse perdue (vérifiée, puis suivie)",
    )


class FlowEventOut(BaseModel):
    at: datetime
    from_state: str | None
    to_state: str
    actor: str
    message: str
    details: dict[str, Any] | None


class FlowOut(BaseModel):
    id: str
    kind: str
    connector: str
    state: str
    status: str = Field(description="running, waiting (plateforme ou GED), error (reprenable), done")
    error: str | None
    documents: list[dict[str, Any]]
    metadata: dict[str, Any]
    data: dict[str, Any] = Field(description="Ce que les étapes ont appris (transaction, empreintes des retours…)")
    checks: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    next_check_at: datetime | None
    history: list[FlowEventOut] | None = None

    @classmethod
    def of(cls, flow: Any, events: list[Any] | None = None) -> FlowOut:
        return cls(
            id=flow.id,
            kind=flow.kind,
            connector=flow.connector,
            state=flow.state,
            status=flow.status,
            error=flow.error,
            documents=flow.documents,
            metadata=flow.flow_metadata,
            data={key: value for key, value in (flow.data or {}).items() if key != "sending"},
            checks=flow.checks,
            created_by=flow.created_by,
            created_at=flow.created_at,
            updated_at=flow.updated_at,
            next_check_at=flow.next_check_at,
            history=[FlowEventOut.model_validate(event, from_attributes=True) for event in events]
            if events is not None
            else None,
        )


class ClassificationOut(BaseModel):
    connector: str
    classification_date: date
    fetched_at: datetime
    platform_date: date | None = Field(description="Date annoncée par la préfecture, si plus récente (périmée)")
    natures: dict[str, Any]
    matieres: dict[str, Any]
    sha256: str


class PrefectureReplyIn(BaseModel):
    type: Literal["3", "4"] = Field(description="Type de réponse S²LOW : 3, refus ; 4, réponse à la lettre")
    object_key: str = Field(pattern=r"^[0-9a-f]{64}$", description="Clé d'objet du document de réponse")
    filename: str = Field(min_length=1, max_length=255)
