"""Interop jobs: deliveries asked by the other services (see socle.messages)."""

from __future__ import annotations

import logging
from typing import Any

from interop import service
from socle.db import transaction

log = logging.getLogger("interop.jobs")


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


def flow_step(*, tenant_id: str, flow_id: str, state: str, step: int) -> None:
    """One transition of a flow (messages.INTEROP_FLOW_STEP); the next one is enqueued by the flow itself.

    ``step``: the flow's step number when this job was enqueued; a job the flow has moved past does nothing.
    """
    from interop import flows

    flows.run_step(tenant_id, flow_id, state, step)


def flow_failed(*, tenant_id: str, flow_id: str, reason: str) -> None:
    """A job of the flow failed for good (messages.INTEROP_FLOW_FAILED): the flow stops in error."""
    from interop import flows

    flows.fail_from_job(tenant_id, flow_id, reason)


def flow_document_stored(*, tenant_id: str, flow_id: str, name: str, document_id: str) -> None:
    """The GED stored a document of the flow (messages.INTEROP_FLOW_DOCUMENT_STORED)."""
    from interop import flows

    flows.document_stored(tenant_id, flow_id, name, document_id)


def delivery_failed(
    *, tenant_id: str, connector: str, idempotency_key: str, reply: dict[str, Any] | None, reason: str
) -> None:
    """A delivery job failed for good (messages.INTEROP_DELIVERY_FAILED): the delivery is in error, the asker told."""
    with transaction() as session:
        service.delivery_failed(
            session,
            tenant_id=tenant_id,
            connector_name=connector,
            idempotency_key=idempotency_key,
            reply=reply,
            reason=reason,
        )


def cancel_delivery(*, tenant_id: str, idempotency_key: str, reason: str, actor: str) -> None:
    """The asker gave up the delivery (messages.INTEROP_CANCEL_DELIVERY): not to be sent or resumed any more."""
    with transaction() as session:
        service.cancel_delivery(
            session, tenant_id=tenant_id, idempotency_key=idempotency_key, reason=reason, actor=actor
        )


def collect_pes_retours(*, tenant_id: str, connector: str) -> None:
    """File a TdT connector's unread PES Retour in the GED (messages.INTEROP_COLLECT_PES_RETOURS)."""
    from interop import flows

    with transaction() as session:
        counts = flows.collect_pes_retours(session, tenant_id, connector)
    log.info("PES Retour of %s: %s", connector, counts)


def collect_all_pes_retours(*, period: str) -> None:
    """Ask the PES Retour collection of every enabled TdT connector of every tenant, one job per connector
    (messages.INTEROP_COLLECT_ALL_PES_RETOURS, sent by the kernel's schedule): each keyed by its connector and
    ``period``, so that this job run again asks nothing twice, and each failing or retried on its own. An account
    the administrator says has no Hélios (pes_retours false) is left out: S²LOW would refuse each collection."""
    from socle import messages

    _ask_each_tdt_connector(messages.INTEROP_COLLECT_PES_RETOURS, "interop.pes-retours", "pes_retours", period)


def collect_prefecture_letters(*, tenant_id: str, connector: str) -> None:
    """File a TdT connector's unread letters of the prefecture in the GED, each noted in its act's flow and told to
    who started it (messages.INTEROP_COLLECT_PREFECTURE_LETTERS); another collectivité's are refused."""
    from interop import flows

    with transaction() as session:
        counts = flows.collect_prefecture_letters(session, tenant_id, connector)
    log.info("prefecture letters of %s: %s", connector, counts)


def collect_all_prefecture_letters(*, period: str) -> None:
    """Ask the letter collection of every enabled TdT connector that has a GED folder, of every tenant, one job per
    connector (messages.INTEROP_COLLECT_ALL_PREFECTURE_LETTERS, sent by the kernel's schedule), each keyed by its
    connector and ``period``: run again, it asks nothing twice. An account the administrator says has no @ctes
    (prefecture_letters false) is left out: it would be refused each time."""
    from socle import messages

    _ask_each_tdt_connector(
        messages.INTEROP_COLLECT_PREFECTURE_LETTERS, "interop.prefecture-letters", "prefecture_letters", period
    )


def _ask_each_tdt_connector(message: Any, key_prefix: str, switch: str, period: str) -> None:
    """One ``message`` job per enabled TdT connector of every tenant that has a GED folder and whose ``switch``
    is not false, keyed ``<key_prefix>:<connector id>:<period>``. A connector with no GED folder could file
    nothing: its collection would fail every period (asked by hand, it is refused with the reason)."""
    from sqlalchemy import select

    from interop.flows import TDT_KINDS
    from interop.models import Connector
    from socle.queue import enqueue_all

    with transaction() as session:
        found = session.execute(
            select(Connector.id, Connector.tenant_id, Connector.name, Connector.config)
            .where(Connector.kind.in_(TDT_KINDS), Connector.enabled.is_(True))
            .order_by(Connector.created_at)
        ).all()
        connectors = [
            (id_, tenant, name)
            for id_, tenant, name, config in found
            if config and config.get("ged_folder") and config.get(switch, True) is not False
        ]
        enqueue_all(
            session,
            [
                (message, f"{key_prefix}:{connector_id}:{period}", {"tenant_id": tenant_id, "connector": name})
                for connector_id, tenant_id, name in connectors
            ],
        )
    log.info(
        "%s asked of %d connector(s) for %s (%d without GED folder or switched off)",
        message.function,
        len(connectors),
        period,
        len(found) - len(connectors),
    )


def send_notice(*, tenant_id: str, recipient: str, notice: dict[str, Any]) -> None:
    """Mail one notice about a flow or a TdT document to one user, once (messages.INTEROP_SEND_NOTICE)."""
    from interop import notices

    notices.send_notice(tenant_id, recipient, notice)


def publish_sae_connectors(*, tenant_id: str) -> None:
    """Send the archive service the tenant's SAE connectors again (messages.INTEROP_PUBLISH_SAE_CONNECTORS, sent
    by the kernel's schedule each day): a list the archive lost or never had comes back by itself. Twice is
    harmless: the archive keeps the list of the greater version, the same connectors."""
    with transaction() as session:
        service.publish_sae_connectors(session, tenant_id, "service:interop")
