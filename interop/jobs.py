"""Interop jobs: deliveries asked by the other services (see socle.messages)."""

from __future__ import annotations

from typing import Any

from interop import service
from socle.db import transaction


def deliver(
    *,
    tenant_id: str,
    connector: str,
    object_key: str,
    size: int,
    filename: str,
    idempotency_key: str,
    reply: dict[str, Any] | None,
) -> None:
    with transaction() as session:
        service.deliver(
            session,
            tenant_id=tenant_id,
            connector_name=connector,
            object_key=object_key,
            size=size,
            filename=filename,
            idempotency_key=idempotency_key,
            reply=reply,
        )


def follow_sae(*, tenant_id: str, delivery_id: str) -> None:
    """One check of an SAE operation (messages.INTEROP_FOLLOW_SAE); the next one is scheduled by the service."""
    with transaction() as session:
        service.follow_sae(session, tenant_id, delivery_id)
