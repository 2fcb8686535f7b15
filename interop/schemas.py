"""What the interop API accepts and returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from interop.models import Connector, Delivery


class DepotConfig(BaseModel):
    path: str = Field("", max_length=500, description="Sous-dossier du dépôt, relatif au dossier de la collectivité")


class ConnectorIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    kind: Literal["depot"]
    config: DepotConfig


class ConnectorOut(BaseModel):
    name: str
    kind: str
    enabled: bool
    config: dict[str, Any]
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
        )
