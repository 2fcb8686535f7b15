"""Settings of the whole kit, read from ``SOCLE_*`` environment variables and an optional TOML file.

The TOML file is named by ``SOCLE_CONFIG``; environment variables win over it. Every setting is validated
when the program starts, and a wrong one stops it with a message naming the setting
(:class:`SettingsError`), rather than failing later in the middle of a job.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from socle.errors import SettingsError
from socle.validation_messages import french_message

SERVICES = ("parapheur", "ged", "archive", "interop")


class OidcProvider(BaseModel):
    """An OpenID Connect provider offered on the sign-in page (Keycloak, ProConnect…)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,30}$", description="Identifiant court, dans les adresses.")
    title: str = Field(min_length=1, max_length=100, description="Nom affiché : « ProConnect », « Keycloak »…")
    issuer: str = Field(pattern=r"^https?://[^\s]+$", description="Émetteur ; la découverte est lue sous /.well-known.")
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    scopes: str = "openid email profile"
    # ProConnect signs its userinfo answers (application/jwt): a signature is then required, never optional.
    signed_userinfo: bool = False
    # PKCE is added unless the provider refuses unknown authorize parameters (ProConnect).
    pkce: bool = True
    # How a signed-in identity finds its collectivité: a fixed one (a Keycloak per collectivité), or the
    # SIREN at the head of the "siret" claim (ProConnect, matched with the collectivité's SIREN).
    tenant: str | None = None
    tenant_from_siret: bool = False


class Settings(BaseSettings):
    """Configuration reference: every field is documented in ``docs/configuration.md``."""

    model_config = SettingsConfigDict(env_prefix="SOCLE_", extra="forbid", frozen=True)

    data_dir: Path = Field(Path("var"), description="Dossier des données locales (base SQLite, fichiers).")
    database_url: str | None = Field(None, description="URL SQLAlchemy ; par défaut une base SQLite dans data_dir.")
    storage_backend: Literal["local", "s3"] = Field("local", description="Stockage des documents.")
    storage_path: Path | None = Field(None, description="Dossier du stockage local ; par défaut data_dir/objects.")
    s3_endpoint: str | None = Field(None, description="Adresse du serveur S3 (hôte:port), ex. minio:9000.")
    s3_access_key: str | None = Field(None, description="Clé d'accès S3.")
    s3_secret_key: str | None = Field(None, description="Clé secrète S3.")
    s3_bucket: str = Field("socle", description="Compartiment S3 des documents.")
    s3_secure: bool = Field(True, description="Utiliser HTTPS pour S3.")
    s3_region: str | None = Field(None, description="Région S3, si le serveur l'exige.")
    # The first retry is at once, the next ones wait 0.4 s, doubled each time: with 3 an unreachable server
    # makes a request answer 503 after about 1.2 s, with the minio client's own 5 after about 6 s.
    s3_retries: int = Field(
        3, ge=0, le=10, description="Nouveaux essais d'une requête S3 sans réponse ou en erreur 5xx, avant l'échec."
    )
    s3_connect_timeout: float = Field(
        5, gt=0, le=300, description="Délai maximal d'établissement d'une connexion au serveur S3, en secondes."
    )
    redis_url: str | None = Field(
        None, description="URL Redis ; absente, la file de tâches est embarquée dans le processus."
    )
    queue_prefix: str = Field("", description="Préfixe des files rq, pour partager un Redis.")
    job_timeout: int = Field(600, ge=1, description="Durée maximale d'une tâche, en secondes.")
    job_max_attempts: int = Field(5, ge=1, description="Nombre d'essais d'une tâche avant l'échec visible.")
    # NoDecode: the environment gives a plain comma-separated list, not JSON.
    job_backoff: Annotated[tuple[float, ...], NoDecode] = Field(
        (10, 60, 300, 1800),
        description="Attentes entre deux essais, en secondes (la dernière se répète).",
    )
    max_upload_bytes: int = Field(
        200 * 1024 * 1024, ge=1, description="Taille maximale d'un fichier déposé, en octets."
    )
    secret_key: str | None = Field(
        None,
        description="Clé de chiffrement des secrets (Fernet) ; générée dans data_dir en mode local si absente.",
    )
    seda_schemas: Path | None = Field(
        None, description="Dossier des schémas XSD officiels du SEDA (voir `socle archive schemas install`)."
    )
    actes_schemas: Path | None = Field(
        None, description="Dossier du schéma XSD @ctes (actesv1_1.xsd et ses imports), pour valider avant l'envoi."
    )
    deposit_root: Path | None = Field(
        None, description="Racine des dossiers de dépôt (connecteur « dépôt ») ; par défaut data_dir/depots."
    )
    tsa_url: str | None = Field(
        None,
        description="Autorité d'horodatage (RFC 3161) des signatures au-delà du niveau B-B (B-T, B-LT, B-LTA).",
        max_length=500,
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
    )
    public_url: str | None = Field(
        None,
        description="Adresse publique du kit (ex. https://socle.mairie.fr), pour les liens des courriels.",
        max_length=500,
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
    )
    environment: Literal["development", "production"] = Field(
        "development", description="En production, les réglages par défaut risqués sont refusés."
    )
    smtp_host: str | None = Field(
        None, description="Serveur SMTP des courriels ; absent, ils sont écrits dans data_dir/mails (aucun envoi)."
    )
    smtp_port: int | None = Field(
        None, ge=1, le=65535, description="Port SMTP ; par défaut 25, 587 (starttls) ou 465 (tls)."
    )
    smtp_security: Literal["none", "starttls", "tls"] = Field(
        "starttls", description="Chiffrement SMTP : none, starttls ou tls (TLS implicite)."
    )
    smtp_username: str | None = Field(None, description="Identifiant SMTP, si le serveur demande une authentification.")
    # SecretStr: `socle settings`, logs and reprs show asterisks, never the password.
    smtp_password: SecretStr | None = Field(None, description="Mot de passe SMTP.")
    mail_from: str | None = Field(
        None, description="Expéditeur des courriels, ex. « Parapheur <parapheur@mairie.fr> »."
    )
    smtp_timeout: float = Field(30, gt=0, description="Délai maximal d'une opération SMTP, en secondes.")
    ged_trash_days: int = Field(
        30, ge=1, le=3650, description="Délai de restauration des documents de la corbeille GED, en jours."
    )
    oidc_providers: tuple[OidcProvider, ...] = Field(
        (), description="Fournisseurs OpenID Connect de l'interface web (JSON dans l'environnement)."
    )
    # NoDecode: a comma-separated list, like uvicorn's FORWARDED_ALLOW_IPS.
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = Field(
        ("127.0.0.1", "::1"),
        description="Proxys inverses dont `socle serve` croit les en-têtes X-Forwarded-For et X-Forwarded-Proto "
        "(adresses ou réseaux).",
    )

    # --- Periodic tasks (socle.schedule): begin ---------------------------------------------------------------
    # When each built-in periodic task is due: "HH:MM[,HH:MM…]" every day at those Paris times, "<N>min" or "<N>h"
    # every N minutes or hours, "off" never. Checked here with a pattern only: parsing them imports nothing.
    schedule_ged_purge_trash: str = Field(
        "03:00", description="Purge de la corbeille de la GED (chaque collectivité) : heures, période ou off."
    )
    schedule_ged_purge_uploads: str = Field(
        "03:30", description="Nettoyage des envois reprenables expirés de la GED : heures, période ou off."
    )
    schedule_parapheur_digests: str = Field(
        "07:30",
        description="Avis de retard et récapitulatifs du parapheur (chaque collectivité) : heures, période ou off.",
    )
    schedule_interop_pes_retours: str = Field(
        "60min", description="Relève des PES Retour des connecteurs S²LOW : heures, période ou off."
    )
    schedule_interop_prefecture_letters: str = Field(
        "60min", description="Relève des courriers de la préfecture des connecteurs S²LOW : heures, période ou off."
    )
    schedule_interop_sae_connectors: str = Field(
        "05:00",
        description="Envoi au service d'archives de la liste des connecteurs du système d'archivage (chaque "
        "collectivité) : heures, période ou off.",
    )
    schedule_housekeeping: str = Field(
        "04:30",
        description="Nettoyage du noyau (tâches terminées anciennes, sessions expirées, tentatives de connexion) : "
        "heures, période ou off.",
    )
    jobs_kept_days: int = Field(
        90,
        ge=7,
        le=3650,
        description="Conservation des tâches de fond terminées sans clé métier, en jours (nettoyage du noyau).",
    )

    @field_validator(
        "schedule_ged_purge_trash",
        "schedule_ged_purge_uploads",
        "schedule_parapheur_digests",
        "schedule_interop_pes_retours",
        "schedule_interop_prefecture_letters",
        "schedule_interop_sae_connectors",
        "schedule_housekeeping",
    )
    @classmethod
    def _schedule_rule(cls, value: str) -> str:
        return check_schedule_rule(value)

    # --- Periodic tasks: end -----------------------------------------------------------------------------------

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("SOCLE_CONFIG")
        if config_file:
            if not Path(config_file).is_file():  # a mistyped path must not silently fall back to the defaults
                raise FileNotFoundError(f"{config_file} introuvable")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @field_validator("job_backoff", mode="before")
    @classmethod
    def _split_backoff(cls, value: Any) -> Any:
        # Environment variables give "10,60,300"; TOML gives a list.
        if isinstance(value, str):
            return tuple(float(part) for part in value.split(",") if part.strip())
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # uvicorn takes a mistyped entry for a host name that never matches: say so at start-up instead. A
        # network with host bits (10.0.0.5/24) is written as the network it names: uvicorn reads it strictly.
        written = []
        for entry in value:
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"« {entry} » n'est ni une adresse IP ni un réseau (ex. 10.0.0.0/8)") from None
            written.append(str(network) if "/" in entry else entry)
        return tuple(written)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        if not value.startswith(("sqlite", "postgresql+psycopg://")):
            raise ValueError("seules SQLite et PostgreSQL sont prises en charge")
        return value

    @field_validator("mail_from")
    @classmethod
    def _mail_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _name, address = parseaddr(value)
        if "@" not in address or any(char in value for char in "\r\n"):
            raise ValueError("adresse d'expéditeur invalide (attendu : adresse@domaine ou « Nom <adresse@domaine> »)")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        self._coherent_smtp()
        if self.storage_backend == "s3":
            missing = [name for name in ("s3_endpoint", "s3_access_key", "s3_secret_key") if not getattr(self, name)]
            if missing:
                raise ValueError("le stockage S3 demande aussi " + ", ".join("SOCLE_" + m.upper() for m in missing))
        if self.environment == "production":
            if self.database_url is None:
                raise ValueError("SOCLE_DATABASE_URL est obligatoire en production (SQLite : essai seulement)")
            if self.s3_secret_key and "change" in self.s3_secret_key.lower():
                raise ValueError("SOCLE_S3_SECRET_KEY : remplacez la valeur d'exemple")
            if self.secret_key is None or len(self.secret_key) < 32 or "change" in self.secret_key.lower():
                raise ValueError("SOCLE_SECRET_KEY doit être une vraie clé d'au moins 32 caractères en production")
            if self.redis_url is None:
                raise ValueError("SOCLE_REDIS_URL est obligatoire en production (file embarquée : essai seulement)")
            self._coherent_production()
        if not self.job_backoff:
            raise ValueError("SOCLE_JOB_BACKOFF doit contenir au moins une durée")
        if any(step < 0 for step in self.job_backoff):
            raise ValueError("SOCLE_JOB_BACKOFF ne peut pas contenir de durée négative")
        return self

    def _coherent_production(self) -> None:
        # A relative folder follows the working directory: « var » under systemd (started in /) is /var, whose
        # spool, mails and depots folders belong to other programs.
        examples = {
            "data_dir": "/var/lib/socle",
            "storage_path": "/var/lib/socle/objects",
            "deposit_root": "/srv/depots",
        }
        for name, example in examples.items():
            folder = getattr(self, name)
            if folder is not None and not folder.is_absolute():
                raise ValueError(
                    f"SOCLE_{name.upper()} doit être un chemin absolu en production (ex. {example}) : "
                    f"« {folder} » dépendrait du dossier depuis lequel le service est lancé"
                )
        url = self.database_url or ""
        if url.startswith("sqlite"):
            raise ValueError(
                "SOCLE_DATABASE_URL : SQLite est réservée aux essais, la production demande PostgreSQL "
                "(postgresql://utilisateur:mot-de-passe@serveur:5432/base)"
            )
        password = unquote(urlsplit(url).password or "")
        if "changeme" in "".join(char for char in password.lower() if char.isalpha()):  # change-me, change_me…
            raise ValueError("SOCLE_DATABASE_URL : remplacez le mot de passe d'exemple (« change-me… ») de la base")

    def _coherent_smtp(self) -> None:
        if self.smtp_host and not self.mail_from:
            raise ValueError("SOCLE_SMTP_HOST demande aussi SOCLE_MAIL_FROM (l'expéditeur des courriels)")
        if bool(self.smtp_username) != bool(self.smtp_password and self.smtp_password.get_secret_value()):
            raise ValueError("SOCLE_SMTP_USERNAME et SOCLE_SMTP_PASSWORD vont ensemble")
        if (
            self.environment == "production"
            and self.smtp_username
            and self.smtp_security == "none"
            and self.smtp_host not in ("localhost", "127.0.0.1", "::1")
        ):
            raise ValueError("SOCLE_SMTP_SECURITY=none enverrait le mot de passe SMTP en clair : starttls ou tls")
        password = self.smtp_password.get_secret_value() if self.smtp_password else ""
        if self.environment == "production" and "change-me" in password.lower():
            raise ValueError("SOCLE_SMTP_PASSWORD : remplacez la valeur d'exemple")

    # Derived values: computed, never stored twice.
    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'socle.db').resolve()}"

    @property
    def effective_storage_path(self) -> Path:
        return (self.storage_path or self.data_dir / "objects").resolve()

    @property
    def effective_deposit_root(self) -> Path:
        return (self.deposit_root or self.data_dir / "depots").resolve()

    @property
    def effective_smtp_port(self) -> int:
        return self.smtp_port or {"none": 25, "starttls": 587, "tls": 465}[self.smtp_security]

    @property
    def mail_outbox(self) -> Path:
        return (self.data_dir / "mails").resolve()

    @property
    def embedded_queue(self) -> bool:
        return self.redis_url is None


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the settings; raise SettingsError naming each wrong setting."""
    _refuse_unknown_variables()
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    except (OSError, ValueError) as exc:  # unreadable or malformed TOML file
        raise SettingsError(f"SOCLE_CONFIG : fichier de configuration illisible ({exc})") from None


# Read by the kit but not settings: the TOML file's path, the test suite's own servers, what the smart-card
# client (`socle parapheur sign-with-card`) takes from its user's environment (an API token and a card PIN), and
# the PIN of a server seal's token that `socle parapheur seal-import` reads by default.
_NOT_SETTINGS = (
    "SOCLE_CONFIG",
    "SOCLE_TEST_",
    "SOCLE_API_TOKEN",
    "SOCLE_CARD_PIN",
    "SOCLE_CARD_MODULE",
    "SOCLE_SEAL_PIN",
)


def _refuse_unknown_variables() -> None:
    """A mistyped name would otherwise be ignored silently, and its default used instead (SQLite in production)."""
    known = {f"SOCLE_{name.upper()}" for name in Settings.model_fields}
    unknown = sorted(
        name
        for name in os.environ
        if name.startswith("SOCLE_") and name not in known and not name.startswith(_NOT_SETTINGS)
    )
    if unknown:
        lines = []
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=1)
            lines.append(f"{name} : réglage inconnu" + (f" (vouliez-vous dire {close[0]} ?)" if close else ""))
        raise SettingsError("Réglage invalide :\n  " + "\n  ".join(lines))


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"])
        label = f"SOCLE_{name.upper()}" if name else "configuration"
        message = french_message(error)
        lines.append(f"{label} : {message}")
    return "Réglage invalide :\n  " + "\n  ".join(lines)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once. Tests call ``reset_settings`` after changing the environment."""
    return load_settings()


def reset_settings() -> None:
    get_settings.cache_clear()


# --- Periodic tasks (socle.schedule): begin -----------------------------------------------------------------------
_SCHEDULE_TIMES = re.compile(r"^(\d{1,2}):(\d{2})$")
_SCHEDULE_EVERY = re.compile(r"^(\d{1,4})\s*(min|h)$")
SCHEDULE_MIN_MINUTES, SCHEDULE_MAX_MINUTES = 5, 24 * 60


def check_schedule_rule(value: str) -> str:
    """A periodic task's rule, written as socle.schedule reads it: "off", "03:00" or "08:00,14:00" (every day at
    those Paris times), "60min" or "6h" (every N minutes or hours, 5 minutes to 24 hours). Spaces and case are
    dropped. :raises ValueError: in French, with the forms accepted."""
    rule = value.strip().lower().replace(" ", "")
    if rule == "off":
        return rule
    every = _SCHEDULE_EVERY.match(rule)
    if every:
        minutes = int(every.group(1)) * (60 if every.group(2) == "h" else 1)
        if not SCHEDULE_MIN_MINUTES <= minutes <= SCHEDULE_MAX_MINUTES:
            raise ValueError(f"« {value} » : une période va de {SCHEDULE_MIN_MINUTES}min à 24h")
        return rule
    times = rule.split(",")
    for text in times:
        found = _SCHEDULE_TIMES.match(text)
        if not found or int(found.group(1)) > 23 or int(found.group(2)) > 59:
            raise ValueError(
                f"« {value} » n'est pas une planification : attendu des heures de Paris « HH:MM » séparées par des "
                "virgules (ex. 03:00 ou 08:00,14:00), une période « <N>min » ou « <N>h » (ex. 60min), ou « off »"
            )
    if len(set(times)) != len(times):
        raise ValueError(f"« {value} » : la même heure est donnée deux fois")
    return ",".join(f"{int(text[:-3]):02d}:{text[-2:]}" for text in times)


# --- Periodic tasks: end ------------------------------------------------------------------------------------------
