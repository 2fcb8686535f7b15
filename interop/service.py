"""Interop use cases: configuring connectors, delivering objects through them, following SAE operations."""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ValidationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from interop.connectors.api import Connector as ConnectorImpl
from interop.connectors.asalae import AsalaeConnector
from interop.connectors.cmis import CmisConnector
from interop.connectors.depot import DepotConnector, folder_for
from interop.connectors.layout import Layout
from interop.connectors.mail import MailConnector
from interop.connectors.parapheur import ParapheurConnector
from interop.connectors.s2low import S2lowConnector
from interop.connectors.sae import MAX_XML_BYTES, FollowResult, SaeUnavailable, parse_xml, seda_text
from interop.connectors.sftp import SftpConnector
from interop.connectors.vitam import VitamConnector
from interop.connectors.webdav import WebdavConnector
from interop.connectors.webhook import WebhookConnector
from interop.flows import TDT_KINDS, siren_holder
from interop.models import Connector, Delivery, Flow, TdtClassification
from interop.retry import DEFAULT_POLICY, RetryPolicy, parse_policy
from interop.schemas import CONFIG_MODELS, SECRET_FIELDS, ConnectorIn
from socle import audit, messages, secrets
from socle.auth import Principal, Role
from socle.db import utcnow
from socle.errors import Conflict, InvalidInput, NotFound, ServiceUnavailable, SocleError, message
from socle.models import Job, Tenant
from socle.queue import PENDING, QUEUED, enqueue
from socle.settings import get_settings
from socle.storage import ObjectStore, get_store
from socle.storage.ownership import record_held
from socle.validation_messages import french_message

log = logging.getLogger("interop")

# Connector kinds built from (name, config, decrypted secrets) alone.
OTHER_KINDS: dict[str, Callable[[str, dict[str, Any], dict[str, str]], ConnectorImpl]] = {
    "sftp": SftpConnector,
    "webdav": WebdavConnector,
    "mail": MailConnector,
    "webhook": WebhookConnector,
    "cmis": CmisConnector,
    "parapheur": ParapheurConnector,
    "s2low": S2lowConnector,
}

# The connector kinds that can carry an archival package to the SAE: the archive's transfer form offers these
# (messages.ARCHIVE_RECORD_SAE_CONNECTORS). Mail, webhooks, CMIS, S²LOW and the external parapheur are not for it.
SAE_KINDS = ("vitam", "asalae", "depot", "sftp", "webdav")

# The archive service's answer to a SEDA message from the SAE (declared by the archive in socle.messages).
RECORD_SAE_MESSAGE = "archive.jobs.record_sae_message"
RECORD_DELIVERY = "archive.jobs.record_delivery"


class FollowExhausted(SocleError):
    """The retry policy is spent and the SAE has not answered: the job fails, visible in ``socle jobs``."""

    status = 409


def create_connector(session: Session, principal: Principal, body: ConnectorIn) -> Connector:
    principal.require(Role.ADMIN)
    exists = session.execute(
        select(Connector).where(Connector.tenant_id == principal.tenant_id, Connector.name == body.name)
    ).scalar_one_or_none()
    if exists is not None:
        raise Conflict(message("le connecteur « %(body_name)s » existe déjà", body_name=body.name))
    config = body.config.model_dump()
    if body.kind == "depot":
        folder_for(get_settings().effective_deposit_root, principal.tenant_slug, config["path"])  # validates the path
    _check_siren_free(session, principal.tenant_id, body.kind, body.name, config)
    # Secrets are encrypted at rest and kept apart, under a key the API never returns (see ConnectorOut).
    hidden = {name: config.pop(name) for name in SECRET_FIELDS if name in config}
    config["secrets"] = {name: secrets.encrypt(value.encode()).decode() for name, value in hidden.items() if value}
    connector = Connector(
        tenant_id=principal.tenant_id,
        name=body.name,
        kind=body.kind,
        config={**config, "tenant_slug": principal.tenant_slug},
    )
    session.add(connector)
    session.flush()
    entry = audit.record(
        session,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        action="interop.connector.created",
        object_type="connector",
        object_id=connector.id,
        details={"name": body.name, "kind": body.kind},
    )
    if connector.kind in SAE_KINDS:
        _tell_archive(session, principal.tenant_id, entry.seq)
    session.commit()
    return connector


def get_connector(session: Session, tenant_id: str, name: str) -> Connector:
    connector = session.execute(
        select(Connector).where(Connector.tenant_id == tenant_id, Connector.name == name)
    ).scalar_one_or_none()
    if connector is None:
        raise NotFound(message("connecteur « %(name)s » introuvable", name=name))
    return connector


def list_connectors(session: Session, tenant_id: str) -> list[Connector]:
    return list(session.execute(select(Connector).where(Connector.tenant_id == tenant_id)).scalars())


def set_enabled(session: Session, principal: Principal, name: str, enabled: bool) -> Connector:
    """Enable or disable a connector (administrator); a disabled connector refuses deliveries.

    :raises NotFound: no such connector in the tenant.
    """
    principal.require(Role.ADMIN)
    connector = get_connector(session, principal.tenant_id, name)
    if connector.enabled != enabled:
        connector.enabled = enabled
        entry = audit.record(
            session,
            tenant_id=principal.tenant_id,
            actor=principal.actor,
            action="interop.connector.enabled" if enabled else "interop.connector.disabled",
            object_type="connector",
            object_id=connector.id,
            details={"name": name},
        )
        if connector.kind in SAE_KINDS:
            _tell_archive(session, principal.tenant_id, entry.seq)
    session.commit()
    return connector


def update_connector(session: Session, principal: Principal, name: str, config: dict[str, Any]) -> Connector:
    """Replace a connector's configuration (administrator), validated as at creation.

    Secret fields are write-only: absent, the stored encrypted value is kept; given, it is encrypted anew;
    given as null, it is removed. The audit entry names the changed fields, never a secret's value.

    :raises NotFound: no such connector. :raises InvalidInput: the configuration is refused (French message).
    """
    principal.require(Role.ADMIN)
    connector = get_connector(session, principal.tenant_id, name)
    kept = connector_secrets(connector)
    given = {key: config[key] for key in SECRET_FIELDS if key in config}
    merged = {**{key: value for key, value in kept.items() if key not in given}, **config}
    checked = _validated(CONFIG_MODELS[connector.kind], merged)
    if connector.kind == "depot":
        folder_for(get_settings().effective_deposit_root, principal.tenant_slug, checked["path"])
    _check_siren_free(session, principal.tenant_id, connector.kind, name, checked)
    tokens = dict(connector.config.get("secrets") or {})
    for key, value in given.items():
        tokens.pop(key, None)
        if value:
            tokens[key] = secrets.encrypt(str(value).encode()).decode()
    for key in SECRET_FIELDS:
        checked.pop(key, None)
    before = {key: value for key, value in connector.config.items() if key not in ("secrets", "tenant_slug")}
    changed = sorted(key for key in set(before) | set(checked) if before.get(key) != checked.get(key))
    # A new dict, not an in-place change: the JSON column is only written when the attribute is reassigned.
    connector.config = {**checked, "secrets": tokens, "tenant_slug": connector.config["tenant_slug"]}
    entry = audit.record(
        session,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        action="interop.connector.updated",
        object_type="connector",
        object_id=connector.id,
        details={"name": name, "changed": changed, "secrets_changed": sorted(given)},
    )
    if connector.kind in SAE_KINDS:
        _tell_archive(session, principal.tenant_id, entry.seq)
    session.commit()
    return connector


def _check_siren_free(session: Session, tenant_id: str, kind: str, name: str, config: dict[str, Any]) -> None:
    """A TdT connector's ``siren`` may not be another collectivité's of the installation (its ``Tenant.siren``, or
    the ``siren`` of one of its TdT connectors): its acts would leave, and that collectivité's letters, ARActe and
    PES Retour come back, under it. The collectivité's own SIREN is always its connectors' to name.

    :raises InvalidInput: it is another's (the flows refuse it too, for a connector saved before this check).
    """
    siren = str(config.get("siren") or "").strip()
    if kind not in TDT_KINDS or not siren:
        return
    tenant = session.get(Tenant, tenant_id)
    if tenant is not None and tenant.siren == siren:
        return
    if siren_holder(session, tenant_id, siren) is not None:
        raise InvalidInput(
            message(
                "le SIREN %(siren)s du connecteur « %(name)s » est déjà celui d'une autre collectivité de "
                "l'installation (ou de l'un de ses connecteurs) : renseignez celui de la collectivité, ou demandez à "
                "l'exploitant",
                siren=siren,
                name=name,
            )
        )


def _validated(model: type[BaseModel], config: dict[str, Any]) -> dict[str, Any]:
    """The configuration read by its kind's model, or InvalidInput with the validators' (French) messages."""
    try:
        return model.model_validate(config).model_dump()
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in error['loc']) or 'config'} : {french_message(error)}"
            for error in exc.errors()
        ]
        raise InvalidInput("configuration refusée : " + " ; ".join(problems)) from None


def delete_connector(session: Session, principal: Principal, name: str) -> None:
    """Delete a connector (administrator); its past deliveries stay in the history.

    :raises NotFound: no such connector. :raises Conflict: deliveries or flows in progress still use it.
    """
    principal.require(Role.ADMIN)
    connector = get_connector(session, principal.tenant_id, name)
    sending = session.execute(
        select(Delivery.id).where(
            Delivery.connector_id == connector.id,
            Delivery.status.in_(("pending", "sending")) | (Delivery.follow_status == "following"),
        )
    ).all()
    flows = session.execute(
        select(Flow).where(Flow.tenant_id == principal.tenant_id, Flow.status.in_(("running", "waiting")))
    ).scalars()
    using = [flow.id for flow in flows if name in (flow.connector, _signature_connector(flow))]
    if sending or using:
        raise Conflict(
            message(
                "le connecteur « %(name)s » est utilisé par %(sending_count)s envoi(s) et "
                "%(using_count)s flux en cours : attendez leur fin ou désactivez-le",
                name=name,
                sending_count=len(sending),
                using_count=len(using),
            )
        )
    session.execute(delete(TdtClassification).where(TdtClassification.connector_id == connector.id))
    entry = audit.record(
        session,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        action="interop.connector.deleted",
        object_type="connector",
        object_id=connector.id,
        details={"name": name, "kind": connector.kind},
    )
    session.delete(connector)
    if connector.kind in SAE_KINDS:
        _tell_archive(session, principal.tenant_id, entry.seq)
    session.commit()


def sae_connectors(session: Session, tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's connectors an archival package can go through, as this transaction sees them, by name."""
    session.flush()  # the caller's own change included
    query = (
        select(Connector.name, Connector.kind, Connector.enabled)
        .where(Connector.tenant_id == tenant_id, Connector.kind.in_(SAE_KINDS))
        .order_by(Connector.name)
    )
    return [{"name": name, "kind": kind, "enabled": bool(enabled)} for name, kind, enabled in session.execute(query)]


def _tell_archive(session: Session, tenant_id: str, version: int) -> list[dict[str, Any]]:
    """Send the archive service the tenant's whole list of SAE connectors (messages.ARCHIVE_RECORD_SAE_CONNECTORS),
    in the caller's transaction, after its audit entry.

    ``version`` is that entry's number in the tenant's audit chain: the chain's head is locked until the commit,
    so the tenant's connector changes are serialised, each list read here holds every change committed before
    it, and a later list always has a greater number. The archive keeps the greatest it has received.
    """
    connectors = sae_connectors(session, tenant_id)
    enqueue(
        session, messages.ARCHIVE_RECORD_SAE_CONNECTORS, tenant_id=tenant_id, version=version, connectors=connectors
    )
    return connectors


def publish_sae_connectors(session: Session, tenant_id: str, actor: str) -> list[dict[str, Any]]:
    """Send the archive service the tenant's SAE connectors again, as they are (``socle interop sae-connectors``):
    after an upgrade (connectors made before the archive kept a list) or the archive's database restored.

    Journalled (``interop.sae_connectors.published``), which gives the list its version as for a change (the
    list is read after the entry, under the chain's lock: it cannot be named in the entry). Commits.
    """
    entry = audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="interop.sae_connectors.published",
        object_type="tenant",
        object_id=tenant_id,
    )
    connectors = _tell_archive(session, tenant_id, entry.seq)
    session.commit()
    return connectors


def _signature_connector(flow: Flow) -> str | None:
    signature = (flow.flow_metadata or {}).get("signature")
    return signature.get("connector") if isinstance(signature, dict) else None


def connector_secrets(connector: Connector) -> dict[str, str]:
    """The connector's stored credentials, decrypted (name -> value); never sent back by the API."""
    stored = connector.config.get("secrets") or {}
    return {name: secrets.decrypt(token.encode()).decode() for name, token in stored.items()}


def implementation(connector: Connector) -> ConnectorImpl:
    if connector.kind == "depot":
        root, slug = get_settings().effective_deposit_root, connector.config["tenant_slug"]
        folder = folder_for(root, slug, connector.config["path"])
        return DepotConnector(folder, connector.name, root / slug, Layout.of(connector.config))
    if connector.kind == "vitam":
        return VitamConnector(connector.name, connector.config, connector_secrets(connector))
    if connector.kind == "asalae":
        return AsalaeConnector(connector.name, connector.config, connector_secrets(connector))
    if connector.kind in OTHER_KINDS:
        return OTHER_KINDS[connector.kind](connector.name, connector.config, connector_secrets(connector))
    raise InvalidInput(message("type de connecteur inconnu : %(connector_kind)s", connector_kind=connector.kind))


def test_connector(session: Session, principal: Principal, name: str) -> tuple[bool, str]:
    """Try the connector for real (a write in the folder, a call to the platform); failures are reported, not raised."""
    connector = get_connector(session, principal.tenant_id, name)
    try:
        said = implementation(connector).test()
        if connector.kind in TDT_KINDS and not _siren_known(session, connector):
            said += (
                " ; aucun SIREN connu (celui de la collectivité ou « siren » du connecteur) : les PES Retour et les "
                "courriers de la préfecture ne sont pas relevés tant qu'il n'est pas renseigné"
            )
        return True, said
    except OSError as exc:
        return False, f"échec : {exc.strerror or exc}"
    except SocleError as exc:
        if connector.kind == "depot" and exc.status < 500:
            raise
        return False, f"échec : {exc.detail}"


def _siren_known(session: Session, connector: Connector) -> bool:
    """Whether a TdT connector's collectivité has a SIREN (its own or the connector's): without one, nothing S²LOW
    brings back unasked is collected (interop.flows.skip_without_siren)."""
    tenant = session.get(Tenant, connector.tenant_id)
    return bool(str(connector.config.get("siren") or (tenant.siren if tenant else "") or "").strip())


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
            raise Conflict(message("le connecteur « %(connector_name)s » est désactivé", connector_name=connector_name))
    except SocleError as exc:
        # No delivery row without a connector: the refusal is kept in the audit log, so that an asker that
        # waits for no reply (a GED « envoyer vers ») leaves a trace an administrator can find.
        log.warning("delivery %s refused: %s", idempotency_key, exc.detail)
        _audit_refused(session, tenant_id, connector_name, idempotency_key, filename, exc.detail)
        _reply(session, reply, failure=exc.detail)
        session.commit()
        return
    delivery = _delivery_for(session, tenant_id, connector, object_key, size, filename, idempotency_key)
    if delivery.status == CANCELLED:
        log.info("delivery %s cancelled by its asker before this send: not sent", delivery.id)
        session.commit()
        return
    delivery.reply = reply
    if delivery.status != "done":
        # « sending » is committed before the send: a run that finds it knows an earlier one may have reached
        # the platform (a worker killed, a timeout after the upload) and asks the platform before sending again.
        interrupted = delivery.status in ("sending", "error")
        delivery.status, delivery.error = "sending", None
        # The send itself holds no transaction (on SQLite, the write lock).
        session.commit()
        try:
            receipt = _send(implementation(connector), object_key, filename, size, interrupted)
        except SocleError as exc:
            if _cancelled_meanwhile(session, delivery):
                session.commit()
                return  # the asker gave up during the send: no retry, no reply
            if exc.status >= 500:
                if _retry_later(session, connector, delivery, exc.detail):
                    return  # the connector's own policy: a new job at its time, or the delivery in error
                raise  # the platform did not answer as it should: the kernel retries, still « sending »
            delivery.status, delivery.error = "failed", exc.detail  # refused: retrying would not help
            _reply(session, reply, failure=exc.detail)
            session.commit()
            return
        late = _cancelled_meanwhile(session, delivery)
        reason = delivery.error
        delivery.status, delivery.receipt, delivery.delivered_at, delivery.error = "done", receipt, utcnow(), None
        if late:  # the platform has it all the same: done, and the asker told so (its success reply)
            _audit_late_cancel(session, delivery, "service:interop", reason)
        if receipt.get("sae") or receipt.get("follow"):
            delivery.follow_status, delivery.follow_state = "following", "envoyé, en attente de la plateforme"
            _schedule_check(session, delivery, utcnow())
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


def _retry_later(session: Session, connector: Connector, delivery: Delivery, detail: str) -> bool:
    """Apply the connector's delivery retry policy after a passing failure; False when it has none.

    Each retry is a new INTEROP_DELIVER job, keyed by the delivery, the round (resumes) and the try, delayed with
    ``not_before``: the jobs table counts the tries. Once the policy is spent, the delivery is in error.
    """
    # SAE, TdT and parapheur configurations have a ``retry_policy`` too, but for following their operations:
    # their sending is paced by ``send_retry_policy`` (absent: the kernel's retries).
    field = "retry_policy" if connector.kind in DELIVERY_RETRY_KINDS else "send_retry_policy"
    text = connector.config.get(field)
    if not text:
        return False
    policy = parse_policy(str(text))
    prefix = f"{RETRY_KEY}:{delivery.id}:{_count_keys(session, f'{RESUME_KEY}:{delivery.id}:')}:"
    tries = _count_keys(session, prefix) + 1  # the first try is the asker's own job
    wait = policy.delay(tries - 1)
    if wait is None:
        _fail(session, delivery, connector.name, f"échec après {tries} essai(s) ({policy.describe()}) : {detail}")
        session.commit()
        return True
    delivery.error = f"essai {tries} en échec, nouvel essai dans {round(wait.total_seconds())} s : {detail}"
    _enqueue_delivery(session, delivery, connector.name, key=f"{prefix}{tries}", not_before=utcnow() + wait)
    session.commit()
    return True


RETRY_KEY, RESUME_KEY = "interop.deliver-retry", "interop.deliver-resume"
DELIVERY_RETRY_KINDS = ("depot", "sftp", "webdav", "mail", "webhook", "cmis")


def _count_keys(session: Session, prefix: str) -> int:
    return int(session.execute(select(func.count()).select_from(Job).where(Job.key.like(f"{prefix}%"))).scalar_one())


def _enqueue_delivery(
    session: Session, delivery: Delivery, connector_name: str, *, key: str, not_before: datetime | None = None
) -> None:
    """Ask INTEROP_DELIVER again for this delivery: same idempotency key, same reply."""
    enqueue(
        session,
        messages.INTEROP_DELIVER,
        key=key,
        not_before=not_before,
        tenant_id=delivery.tenant_id,
        connector=connector_name,
        object_key=delivery.object_key,
        size=delivery.size,
        filename=delivery.filename,
        idempotency_key=delivery.idempotency_key,
        reply=delivery.reply,
    )


@runtime_checkable
class _FindsSent(Protocol):
    """A connector that can tell whether the platform already has an object (the SAE ones, SaeConnector)."""

    def find_sent(self, store: ObjectStore, object_key: str, size: int) -> dict[str, Any] | None: ...


def _send(impl: ConnectorImpl, object_key: str, filename: str, size: int, interrupted: bool) -> dict[str, Any]:
    store = get_store()
    if interrupted and isinstance(impl, _FindsSent):
        found = impl.find_sent(store, object_key, size)
        if found is not None:
            log.info("send of %s found on the platform after an interruption: not sent again", object_key)
            return found
    return impl.deliver(store, object_key, filename, size)


def _audit_refused(session: Session, tenant_id: str, connector_name: str, key: str, filename: str, reason: str) -> None:
    """Once per delivery key (a job run twice audits once)."""
    entries = audit.entries_about(session, tenant_id, "connector", connector_name)
    if any(
        entry.action == "interop.delivery.refused" and entry.details.get("idempotency_key") == key for entry in entries
    ):
        return
    audit.record(
        session,
        tenant_id=tenant_id,
        actor="service:interop",
        action="interop.delivery.refused",
        object_type="connector",
        object_id=connector_name,
        details={"idempotency_key": key, "filename": filename, "reason": reason},
    )


def _delivery_for(
    session: Session, tenant_id: str, connector: Connector, object_key: str, size: int, filename: str, key: str
) -> Delivery:
    # Locked: a cancel (cancel_delivery) and this run's « sending » must not cross.
    delivery = session.execute(
        select(Delivery)
        .where(Delivery.tenant_id == tenant_id, Delivery.connector_id == connector.id, Delivery.idempotency_key == key)
        .with_for_update()
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
        raise InvalidInput(message("une réponse ne peut viser qu'un objet de la même collectivité"))
    # Only documented messages may be named as replies: a job argument must not choose arbitrary code to run.
    for outcome, extra in (("success", "receipt"), ("failure", "reason")):
        declared = messages.BY_FUNCTION.get(reply.get(outcome, ""))
        if declared is None or set(declared.parameters) != set(reply.get("arguments", {})) | {extra}:
            raise InvalidInput(
                message("réponse « %(outcome)s » invalide : %(reply)s", outcome=outcome, reply=repr(reply.get(outcome)))
            )


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
    rows = session.execute(  # outer join: the deliveries of a deleted connector stay in the history
        select(Delivery, Connector.name)
        .outerjoin(Connector, Connector.id == Delivery.connector_id)
        .where(Delivery.tenant_id == tenant_id)
        .order_by(Delivery.created_at.desc())
        .limit(limit)
    ).all()
    return [(row[0], row[1] or "?") for row in rows]


# --------------------------------------------------------------------------------------------------------
# Following an SAE operation


def _schedule_check(session: Session, delivery: Delivery, when: datetime) -> None:
    """Enqueue the next check of the operation, to run at ``when`` (the sweeper pushes it when it is due)."""
    enqueue(
        session,
        messages.INTEROP_FOLLOW_SAE,
        key=f"interop.follow:{delivery.id}:{delivery.follow_checks}",
        not_before=when,
        tenant_id=delivery.tenant_id,
        delivery_id=delivery.id,
    )
    delivery.next_check_at = when


def _policy(connector: Connector) -> RetryPolicy:
    return parse_policy(str(connector.config.get("retry_policy") or DEFAULT_POLICY))


def follow_sae(session: Session, tenant_id: str, delivery_id: str) -> Delivery:
    """One check of an SAE operation: forward what the platform has, then schedule the next check or stop.

    Each distinct SEDA message received (Acknowledgement, ArchiveTransferReply, a corrected reply after the
    first) is kept in the store and, when the delivery was asked by the archive service, sent to it once
    (ARCHIVE_RECORD_SAE_MESSAGE).

    :raises FollowExhausted: the retry policy is spent without a reply (the delivery's follow-up is in error).
    """
    delivery = _delivery(session, tenant_id, delivery_id)
    if delivery.follow_status not in ("following", "error") or not delivery.receipt:
        return delivery  # done, or not an SAE delivery: a second run of the same check does nothing
    if _next_check_waiting(session, delivery):
        return delivery  # a check run again after it scheduled the next one: that one will look
    checks = delivery.follow_checks
    connector = session.get(Connector, delivery.connector_id)
    if connector is None:
        raise NotFound(message("connecteur de l'envoi introuvable"))
    impl, receipt = implementation(connector), dict(delivery.receipt)
    session.commit()  # no transaction held during the calls to the platform
    result: FollowResult | None = None
    problem: str | None = None
    try:
        follow = getattr(impl, "follow", None)  # SAE connectors and the external parapheur follow their sends
        if follow is None:
            raise Conflict(
                message("le connecteur « %(connector_name)s » ne suit pas ses envois", connector_name=connector.name)
            )
        result = follow(receipt)
    except SocleError as exc:  # unreachable, 5xx, HTML or malformed XML: counted as a try of the policy
        problem = exc.detail
    delivery = _delivery(session, tenant_id, delivery_id, for_update=True)
    if delivery.follow_checks != checks or delivery.follow_status not in ("following", "error"):
        return delivery  # another run of this check recorded it meanwhile: its result stands
    delivery.follow_checks += 1
    delivery.last_check_at, delivery.next_check_at = utcnow(), None
    delivery.follow_state = result.state if result is not None else problem
    if result is not None:
        _forward(session, delivery, "acknowledgement", result.acknowledgement)
        _forward(session, delivery, "reply", result.reply)
        if result.finished:
            delivery.follow_status, delivery.follow_error = "done", None
            _audit_follow(session, delivery, "interop.sae.replied", state=result.state)
            session.commit()
            return delivery
    tries_in_round = delivery.follow_checks - delivery.follow_round_start
    wait = _policy(connector).delay(tries_in_round - 1)
    if wait is None:
        return _exhausted(session, delivery, connector, tries_in_round)
    delivery.follow_status = "following"
    _schedule_check(session, delivery, utcnow() + wait)
    session.commit()
    return delivery


def _next_check_waiting(session: Session, delivery: Delivery) -> bool:
    """Whether the next check (the job ``_schedule_check`` made after the last recorded one) waits in the queue.

    The running check is claimed (``running``) when this runs: a waiting one is another job, so this run is an
    earlier check run again (its worker died after the commit). Counting it would take a try of the policy and
    start a second chain of checks.
    """
    key = f"interop.follow:{delivery.id}:{delivery.follow_checks}"
    status = session.execute(select(Job.status).where(Job.key == key)).scalar_one_or_none()
    return status in (PENDING, QUEUED)


def _exhausted(session: Session, delivery: Delivery, connector: Connector, tries: int) -> Delivery:
    error = (
        f"pas de réponse de la plateforme après {tries} essai(s) ({_policy(connector).describe()}) ; "
        f"dernier état : {delivery.follow_state or 'inconnu'}. "
        f"Reprendre : POST /interop/deliveries/{delivery.id}/resume"
    )
    delivery.follow_status, delivery.follow_error = "error", error
    _audit_follow(session, delivery, "interop.sae.follow_failed", error=error)
    session.commit()
    raise FollowExhausted(error)


def _forward(session: Session, delivery: Delivery, kind: str, xml: bytes | None) -> None:
    """Keep a SEDA message in the store and tell the archive service, once per distinct message.

    Distinct: another MessageIdentifier, or other bytes when the message has none. A message fetched again
    (each check asks the platform for everything it has) is the same message, even when the platform rewrote
    its date. The first message of each kind stays the delivery's (``*_key``); a later one (a corrected reply)
    is added to ``sae_messages``, audited, and forwarded too: the archive service decides what it is worth.
    """
    if xml is None:
        return
    field = "acknowledgement_key" if kind == "acknowledgement" else "reply_key"
    identifier, digest = _message_identifier(xml), hashlib.sha256(xml).hexdigest()
    history = _sae_messages(delivery)
    for seen in history:
        if seen["kind"] == kind and (
            seen["key"] == digest or (identifier and seen["message_identifier"] == identifier)
        ):
            return
    stored = get_store().put(io.BytesIO(xml))
    record_held(session, delivery.tenant_id, stored.key, holder="interop")
    first = getattr(delivery, field) is None
    if first:
        setattr(delivery, field, stored.key)
    entry: dict[str, Any] = {
        "kind": kind,
        "key": stored.key,
        "message_identifier": identifier,
        "size": stored.size,
        "received_at": utcnow().isoformat(),
    }
    delivery.sae_messages = [*history, entry]  # a new list: the JSON column sees the change
    if not first:
        _audit_follow(session, delivery, "interop.sae.later_message", first_key=getattr(delivery, field), **entry)
    reply = delivery.reply or {}
    # The rule: only a delivery asked by the archive service (its success reply is record_delivery) is told,
    # with that reply's fixed arguments unchanged (tenant_id, transfer_id) plus the message.
    if reply.get("success") != RECORD_DELIVERY:
        return
    declared = messages.BY_FUNCTION.get(RECORD_SAE_MESSAGE)
    if declared is None:
        raise ServiceUnavailable(
            message(
                "le message %(record_sae_message)s n'est pas déclaré (service d'archives trop ancien)",
                record_sae_message=RECORD_SAE_MESSAGE,
            )
        )
    arguments = dict(reply.get("arguments") or {})
    if arguments.get("tenant_id") != delivery.tenant_id:
        raise InvalidInput(message("une réponse ne peut viser qu'un objet de la même collectivité"))
    # The first message of a kind keeps its key of always (a job queued before this version is not doubled).
    job_key = f"interop.sae-message:{delivery.id}:{kind}" + ("" if first else f":{stored.key}")
    enqueue(session, declared, key=job_key, **arguments, message_kind=kind, object_key=stored.key, size=stored.size)


def _message_identifier(xml: bytes) -> str | None:
    """The SEDA MessageIdentifier of a message (already read safely by the connector), None when it has none."""
    try:
        return seda_text(parse_xml(xml, "message du SAE"), "MessageIdentifier")
    except SaeUnavailable:
        return None


def _sae_messages(delivery: Delivery) -> list[dict[str, Any]]:
    """The delivery's distinct SEDA messages; for a delivery older than that list, its first ones (from the store)."""
    if delivery.sae_messages is not None:
        return list(delivery.sae_messages)
    history: list[dict[str, Any]] = []
    for kind, key in (("acknowledgement", delivery.acknowledgement_key), ("reply", delivery.reply_key)):
        if key is None:
            continue
        store = get_store()
        with store.open(key) as stream:
            identifier = _message_identifier(stream.read(MAX_XML_BYTES + 1))
        history.append({"kind": kind, "key": key, "message_identifier": identifier, "size": None, "received_at": None})
    return history


def delivery_failed(
    session: Session,
    *,
    tenant_id: str,
    connector_name: str,
    idempotency_key: str,
    reply: dict[str, Any] | None,
    reason: str,
) -> None:
    """The delivery job failed for good: the delivery goes to « error » with that message, the asker is told.

    A delivery already done or cancelled is left alone (its success reply has gone, or nobody waits), and so is
    one already in error (this failure told again: recorded, audited and answered once). The
    failure reply is sent only when it names a documented message of the same tenant (messages.reply_failure),
    once per delivery key.
    """
    delivery = session.execute(
        select(Delivery)
        .join(Connector, Connector.id == Delivery.connector_id)
        .where(
            Delivery.tenant_id == tenant_id,
            Connector.name == connector_name,
            Delivery.idempotency_key == idempotency_key,
        )
        .with_for_update()
    ).scalar_one_or_none()
    if delivery is not None and delivery.status in ("done", CANCELLED):
        return  # delivered, or given up by its asker: nothing to resume, nobody waiting for the failure
    if delivery is not None and delivery.status == "error":
        return  # this failure is recorded and answered (a second run); a resume sets « sending » first
    if delivery is not None:
        _fail(session, delivery, connector_name, reason)
    else:
        _reply_failure(session, tenant_id, connector_name, idempotency_key, reply, reason)
    session.commit()


def _fail(session: Session, delivery: Delivery, connector_name: str, reason: str) -> None:
    """The delivery in error (resumable), audited, and the asker's failure reply sent."""
    delivery.status, delivery.error = "error", f"{reason}. Reprendre : POST /interop/deliveries/{delivery.id}/resume"
    audit.record(
        session,
        tenant_id=delivery.tenant_id,
        actor="service:interop",
        action="interop.delivery.failed",
        object_type="delivery",
        object_id=delivery.id,
        details={"error": delivery.error},
    )
    _reply_failure(session, delivery.tenant_id, connector_name, delivery.idempotency_key, delivery.reply, reason)


def _reply_failure(
    session: Session, tenant_id: str, connector: str, key: str, reply: dict[str, Any] | None, reason: str
) -> None:
    # Once per delivery key: a resumed delivery that fails again does not tell the asker twice.
    found = messages.reply_failure({"tenant_id": tenant_id, "reply": reply}, reason)
    if found is not None:
        target, arguments = found
        enqueue(session, target, key=f"reply-failure:{tenant_id}:{connector}:{key}", **arguments)


# Given up by its asker (the archive abandoned the transfer): never sent or resumed again; ``error`` keeps why.
CANCELLED = "cancelled"
# What may still be cancelled: failed but resumable, or resumed and not sent yet (or being sent, see below).
CANCELLABLE = ("error", "pending", "sending")


def cancel_delivery(session: Session, *, tenant_id: str, idempotency_key: str, reason: str, actor: str) -> None:
    """The asker gives up its deliveries under this key (one per connector it tried): they are cancelled.

    « sending » cannot tell a send not started yet (an operator's resume, its job still queued) from one under
    way: both are cancelled. The deliver job reads the status under lock when it starts, so one not started is
    never sent; one under way ends « done » if the platform took it (a late cancel, audited, and the asker gets
    its success reply), otherwise stays cancelled. A delivery already done only has the late cancel audited.
    Unknown key, or already cancelled or refused (« failed », not resumable): nothing. Twice: the effect of once.
    """
    rows = session.execute(
        select(Delivery)
        .where(Delivery.tenant_id == tenant_id, Delivery.idempotency_key == idempotency_key)
        .with_for_update()
    ).scalars()
    for delivery in rows:
        if delivery.status == "done":
            _audit_late_cancel(session, delivery, actor, reason)
        elif delivery.status in CANCELLABLE:
            previous = delivery.status
            delivery.status, delivery.error = CANCELLED, reason
            audit.record(
                session,
                tenant_id=tenant_id,
                actor=actor,
                action="interop.delivery.cancelled",
                object_type="delivery",
                object_id=delivery.id,
                details={"idempotency_key": idempotency_key, "reason": reason, "previous": previous},
            )
    session.commit()


def _cancelled_meanwhile(session: Session, delivery: Delivery) -> bool:
    """Read the delivery again, locked, after its send: its asker may have cancelled it during the send."""
    session.refresh(delivery, with_for_update=True)
    return delivery.status == CANCELLED


LATE_CANCEL = "interop.delivery.cancel_too_late"


def _audit_late_cancel(session: Session, delivery: Delivery, actor: str, reason: str | None) -> None:
    """Once per delivery: the platform has the object, the cancel came too late (« annulation tardive »)."""
    entries = audit.entries_about(session, delivery.tenant_id, "delivery", delivery.id)
    if any(entry.action == LATE_CANCEL for entry in entries):
        return
    audit.record(
        session,
        tenant_id=delivery.tenant_id,
        actor=actor,
        action=LATE_CANCEL,
        object_type="delivery",
        object_id=delivery.id,
        details={"idempotency_key": delivery.idempotency_key, "reason": reason, "note": "annulation tardive"},
    )


def resume_delivery(session: Session, principal: Principal, delivery_id: str) -> Delivery:
    """An operator resumes a delivery in error (its send again, same idempotency key) or its stopped follow-up.

    The send is asked again as « sending »: the connector first looks for an earlier send that reached the
    platform (``find_sent``), so what was delivered is not sent twice.

    :raises Conflict: neither the delivery nor its follow-up is in error, or its asker cancelled it.
    """
    principal.require(Role.ADMIN)
    delivery = _delivery(session, principal.tenant_id, delivery_id, for_update=True)
    if delivery.status == CANCELLED:
        raise Conflict(
            message("envoi annulé par le service d'archives : %(reason)s", reason=delivery.error or ""),
            delivery_status=CANCELLED,
        )
    if delivery.status != "error":
        return resume_follow(session, principal, delivery_id)
    connector = session.get(Connector, delivery.connector_id)
    if connector is None:
        raise Conflict(message("le connecteur de cet envoi a été supprimé : l'envoi ne peut pas être repris"))
    delivery.status, delivery.error = "sending", None
    resumes = _count_keys(session, f"{RESUME_KEY}:{delivery.id}:")
    _enqueue_delivery(session, delivery, connector.name, key=f"{RESUME_KEY}:{delivery.id}:{resumes + 1}")
    audit.record(
        session,
        tenant_id=delivery.tenant_id,
        actor=principal.actor,
        action="interop.delivery.resumed",
        object_type="delivery",
        object_id=delivery.id,
        details={"idempotency_key": delivery.idempotency_key},
    )
    session.commit()
    return delivery


def resume_follow(session: Session, principal: Principal, delivery_id: str) -> Delivery:
    """An operator resumes a follow-up stopped in error: a new round of the retry policy, starting now.

    An As@lae follow-up done may be resumed too: As@lae can replace its reply (a corrected ArchiveTransferReply
    at the same address), and the check asks it again; a new reply is forwarded, the same one is not. Vitam's
    reply ends its operation: a Vitam follow-up done is not resumed.

    :raises Conflict: the delivery's follow-up is not in error (nor an As@lae follow-up done).
    """
    principal.require(Role.ADMIN)
    delivery = _delivery(session, principal.tenant_id, delivery_id, for_update=True)
    if delivery.follow_status != "error" and not _replies_may_change(session, delivery):
        raise Conflict(
            message(
                "seul un envoi ou un suivi en erreur peut être repris "
                "(envoi : %(delivery_status)s, suivi : %(follow_status)s)",
                delivery_status=delivery.status,
                follow_status=delivery.follow_status or "aucun",
            )
        )
    delivery.follow_status, delivery.follow_error = "following", None
    delivery.follow_round_start = delivery.follow_checks
    _schedule_check(session, delivery, utcnow())
    _audit_follow(session, delivery, "interop.sae.follow_resumed", actor=principal.actor)
    session.commit()
    return delivery


def _replies_may_change(session: Session, delivery: Delivery) -> bool:
    """A follow-up done with a reply from a platform that may replace it (As@lae): worth asking again."""
    if delivery.follow_status != "done" or delivery.reply_key is None:
        return False
    connector = session.get(Connector, delivery.connector_id)
    return connector is not None and connector.kind == AsalaeConnector.kind


def _delivery(session: Session, tenant_id: str, delivery_id: str, *, for_update: bool = False) -> Delivery:
    query = select(Delivery).where(Delivery.id == delivery_id, Delivery.tenant_id == tenant_id)
    if for_update:
        query = query.with_for_update()
    delivery = session.execute(query).scalar_one_or_none()
    if delivery is None:
        raise NotFound(message("envoi %(delivery_id)s introuvable", delivery_id=delivery_id))
    return delivery


def get_delivery(session: Session, tenant_id: str, delivery_id: str) -> tuple[Delivery, str]:
    delivery = _delivery(session, tenant_id, delivery_id)
    connector = session.get(Connector, delivery.connector_id)
    return delivery, connector.name if connector is not None else "?"


def _audit_follow(
    session: Session, delivery: Delivery, action: str, actor: str = "service:interop", **details: Any
) -> None:
    audit.record(
        session,
        tenant_id=delivery.tenant_id,
        actor=actor,
        action=action,
        object_type="delivery",
        object_id=delivery.id,
        details={"checks": delivery.follow_checks, **details},
    )
