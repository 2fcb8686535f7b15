"""Interop use cases: configuring connectors and delivering objects through them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from interop.connectors.api import Connector as ConnectorImpl
from interop.connectors.depot import DepotConnector, folder_for
from interop.models import Connector, Delivery
from interop.schemas import ConnectorIn
from socle import audit, messages
from socle.auth import Principal, Role
from socle.db import utcnow
from socle.errors import Conflict, InvalidInput, NotFound, SocleError
from socle.queue import enqueue
from socle.settings import get_settings
from socle.storage import get_store


def create_connector(session: Session, principal: Principal, body: ConnectorIn) -> Connector:
    principal.require(Role.ADMIN)
    exists = session.execute(
        select(Connector).where(Connector.tenant_id == principal.tenant_id, Connector.name == body.name)
    ).scalar_one_or_none()
    if exists is not None:
        raise Conflict(f"le connecteur « {body.name} » existe déjà")
    folder_for(get_settings().effective_deposit_root, principal.tenant_slug, body.config.path)  # validates the path
    connector = Connector(
        tenant_id=principal.tenant_id,
        name=body.name,
        kind=body.kind,
        config={**body.config.model_dump(), "tenant_slug": principal.tenant_slug},
    )
    session.add(connector)
    session.flush()
    audit.record(
        session,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        action="interop.connector.created",
        object_type="connector",
        object_id=connector.id,
        details={"name": body.name, "kind": body.kind},
    )
    session.commit()
    return connector


def get_connector(session: Session, tenant_id: str, name: str) -> Connector:
    connector = session.execute(
        select(Connector).where(Connector.tenant_id == tenant_id, Connector.name == name)
    ).scalar_one_or_none()
    if connector is None:
        raise NotFound(f"connecteur « {name} » introuvable")
    return connector


def list_connectors(session: Session, tenant_id: str) -> list[Connector]:
    return list(session.execute(select(Connector).where(Connector.tenant_id == tenant_id)).scalars())


def implementation(connector: Connector) -> ConnectorImpl:
    if connector.kind == "depot":
        root, slug = get_settings().effective_deposit_root, connector.config["tenant_slug"]
        return DepotConnector(folder_for(root, slug, connector.config["path"]), connector.name, root / slug)
    raise InvalidInput(f"type de connecteur inconnu : {connector.kind}")


def test_connector(session: Session, principal: Principal, name: str) -> tuple[bool, str]:
    try:
        return True, implementation(get_connector(session, principal.tenant_id, name)).test()
    except SocleError:
        raise
    except OSError as exc:
        return False, f"échec : {exc.strerror or exc}"


def deliver(
    session: Session,
    *,
    tenant_id: str,
    connector_name: str,
    object_key: str,
    size: int,
    filename: str,
    idempotency_key: str,
    reply: dict[str, Any] | None,
) -> None:
    """Deliver once: the delivery row is found again by its key, and the connector recognises a past send."""
    _check_reply(reply, tenant_id)
    try:
        connector = get_connector(session, tenant_id, connector_name)
        if not connector.enabled:
            raise Conflict(f"le connecteur « {connector_name} » est désactivé")
    except SocleError as exc:
        _reply(session, reply, failure=exc.detail)
        session.commit()
        return
    delivery = _delivery_for(session, tenant_id, connector, object_key, size, filename, idempotency_key)
    if delivery.status != "done":
        # The row exists before sending; the copy itself holds no transaction (on SQLite, the write lock). A
        # crash after the copy is harmless: the next run finds the deposit and its receipt already there.
        session.commit()
        try:
            receipt = implementation(connector).deliver(get_store(), object_key, filename, size)
        except SocleError as exc:  # refused by the destination: retrying would not help
            delivery.status, delivery.error = "failed", exc.detail
            _reply(session, reply, failure=exc.detail)
            session.commit()
            return
        delivery.status, delivery.receipt, delivery.delivered_at = "done", receipt, utcnow()
        audit.record(
            session,
            tenant_id=tenant_id,
            actor="service:interop",
            action="interop.delivered",
            object_type="delivery",
            object_id=delivery.id,
            details=receipt,
        )
    _reply(session, reply, receipt=delivery.receipt, key=f"reply:{delivery.id}")
    session.commit()


def _delivery_for(
    session: Session, tenant_id: str, connector: Connector, object_key: str, size: int, filename: str, key: str
) -> Delivery:
    delivery = session.execute(
        select(Delivery).where(
            Delivery.tenant_id == tenant_id, Delivery.connector_id == connector.id, Delivery.idempotency_key == key
        )
    ).scalar_one_or_none()
    if delivery is None:
        delivery = Delivery(
            tenant_id=tenant_id,
            connector_id=connector.id,
            idempotency_key=key,
            object_key=object_key,
            filename=filename,
            size=size,
        )
        session.add(delivery)
        session.flush()
    return delivery


def _check_reply(reply: dict[str, Any] | None, tenant_id: str) -> None:
    """No reply at all is fine; otherwise only documented messages, and only to the same tenant."""
    if reply is None:
        return
    if reply.get("arguments", {}).get("tenant_id") != tenant_id:
        raise InvalidInput("une réponse ne peut viser qu'un objet de la même collectivité")
    # Only documented messages may be named as replies: a job argument must not choose arbitrary code to run.
    for outcome, extra in (("success", "receipt"), ("failure", "reason")):
        message = messages.BY_FUNCTION.get(reply.get(outcome, ""))
        if message is None or set(message.parameters) != set(reply.get("arguments", {})) | {extra}:
            raise InvalidInput(f"réponse « {outcome} » invalide : {reply.get(outcome)!r}")


def _reply(
    session: Session,
    reply: dict[str, Any] | None,
    *,
    receipt: dict[str, Any] | None = None,
    failure: str | None = None,
    key: str | None = None,
) -> None:
    if reply is None:
        return
    arguments = dict(reply["arguments"])
    if failure is not None:
        message, arguments["reason"] = messages.BY_FUNCTION[reply["failure"]], failure
    else:
        message, arguments["receipt"] = messages.BY_FUNCTION[reply["success"]], receipt
    enqueue(session, message, key=key, **arguments)


def list_deliveries(session: Session, tenant_id: str, limit: int) -> list[tuple[Delivery, str]]:
    rows = session.execute(
        select(Delivery, Connector.name)
        .join(Connector, Connector.id == Delivery.connector_id)
        .where(Delivery.tenant_id == tenant_id)
        .order_by(Delivery.created_at.desc())
        .limit(limit)
    ).all()
    return [(row[0], row[1]) for row in rows]
