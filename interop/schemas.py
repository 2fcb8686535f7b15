"""What the interop API accepts and returns."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from interop.models import Connector, Delivery
from interop.retry import DEFAULT_POLICY, parse_policy
from socle.errors import InvalidInput

# Configuration fields that are secrets: encrypted at rest (socle.secrets), never returned by the API.
SECRET_FIELDS = ("client_key", "password", "token")


class DepotConfig(BaseModel):
    kind: Literal["depot"] = Field("depot", exclude=True)
    path: str = Field("", max_length=500, description="Sous-dossier du dépôt, relatif au dossier de la collectivité")


class SaeConfig(BaseModel):
    """What both SAE connectors need: where, how to trust it, how long to wait, how often to ask again."""

    url: str = Field(max_length=500, pattern=r"^https?://[^\s]+$", description="Adresse de base de la plateforme")
    ca_file: str | None = Field(None, max_length=500, description="Fichier des autorités de confiance (PEM)")
    client_certificate: str | None = Field(None, max_length=20_000, description="Certificat client TLS (PEM)")
    client_key: str | None = Field(None, max_length=20_000, description="Clé privée du certificat client (secret)")
    timeout: float = Field(60, gt=0, le=600, description="Délai d'attente d'une réponse, en secondes")
    retry_policy: str = Field(
        DEFAULT_POLICY, max_length=500, description="Relances du suivi : « 10 X 3 » puis « 60 X 24 » (minutes)"
    )

    @field_validator("retry_policy")
    @classmethod
    def _policy(cls, value: str) -> str:
        try:
            parse_policy(value)
        except InvalidInput as exc:
            raise ValueError(exc.detail) from None
        return value.strip()


class VitamConfig(SaeConfig):
    kind: Literal["vitam"] = Field("vitam", exclude=True)
    tenant: int = Field(ge=0, description="Tenant Vitam (X-Tenant-Id)")
    context_id: str = Field("DEFAULT_WORKFLOW", max_length=100, description="Contexte d'entrée (X-Context-Id)")
    action: Literal["RESUME", "NEXT"] = "RESUME"
    application_id: str | None = Field(None, max_length=100, description="X-Application-Id (facultatif)")


class AsalaeConfig(SaeConfig):
    kind: Literal["asalae"] = Field("asalae", exclude=True)
    organization: str | None = Field(
        None, max_length=200, description="Identifiant du service versant chez As@lae (défaut : celui du bordereau)"
    )
    username: str | None = Field(None, max_length=200, description="Utilisateur (authentification basique)")
    password: str | None = Field(None, max_length=500, description="Mot de passe (secret)")
    token: str | None = Field(None, max_length=2000, description="Jeton d'accès (secret), à la place du mot de passe")


CONFIG_MODELS: dict[str, type[BaseModel]] = {"depot": DepotConfig, "vitam": VitamConfig, "asalae": AsalaeConfig}


class ConnectorIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    kind: Literal["depot", "vitam", "asalae"]
    config: Annotated[DepotConfig | VitamConfig | AsalaeConfig, Field(discriminator="kind")]

    @model_validator(mode="before")
    @classmethod
    def _config_of_kind(cls, data: Any) -> Any:
        # The configuration is read with the model of the declared kind, not whichever happens to fit.
        if isinstance(data, dict) and isinstance(data.get("config"), dict):
            data = {**data, "config": {**data["config"], "kind": data.get("kind")}}
        return data


class ConnectorPatch(BaseModel):
    enabled: bool = Field(description="Activer ou désactiver le connecteur")


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
