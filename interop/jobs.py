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


def flow_step(*, tenant_id: str, flow_id: str, state: str) -> None:
    """One transition of a flow (messages.INTEROP_FLOW_STEP); the next one is enqueued by the flow itself."""
    from interop import flows

    flows.run_step(tenant_id, flow_id, state)


def flow_failed(*, tenant_id: str, flow_id: str, reason: str) -> None:
    """A job of the flow failed for good (messages.INTEROP_FLOW_FAILED): the flow stops in error."""
    from interop import flows

    flows.fail_from_job(tenant_id, flow_id, reason)


def flow_document_stored(*, tenant_id: str, flow_id: str, name: str, document_id: str) -> None:
    """The GED stored a document of the flow (messages.INTEROP_FLOW_DOCUMENT_STORED)."""
    from interop import flows

    flows.document_stored(tenant_id, flow_id, name, document_id)
