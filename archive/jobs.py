"""Archive jobs: the GED's export and the connector's answers (see socle.messages)."""

from __future__ import annotations

from typing import Any

from archive import lifecycle, service
from socle.db import transaction


def build_package(*, tenant_id: str, transfer_id: str, documents: list[dict[str, Any]]) -> None:
    with transaction() as session:
        service.build_package(session, tenant_id, transfer_id, documents)


def export_failed(*, tenant_id: str, transfer_id: str, reason: str) -> None:
    with transaction() as session:
        service.export_failed(session, tenant_id, transfer_id, reason)


def record_delivery(*, tenant_id: str, transfer_id: str, receipt: dict[str, Any]) -> None:
    with transaction() as session:
        service.record_delivery(session, tenant_id, transfer_id, receipt)


def delivery_failed(*, tenant_id: str, transfer_id: str, reason: str) -> None:
    with transaction() as session:
        service.delivery_failed(session, tenant_id, transfer_id, reason)


def record_sae_message(*, tenant_id: str, transfer_id: str, message_kind: str, object_key: str, size: int) -> None:
    with transaction() as session:
        lifecycle.record_sae_message(session, tenant_id, transfer_id, message_kind, object_key, size)
