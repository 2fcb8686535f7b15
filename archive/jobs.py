"""Archive jobs: the GED's export and the connector's answers (see socle.messages)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from archive import lifecycle, profiles, sae_connectors, service
from archive.models import Transfer
from archive.schemas import sae_token
from socle import messages
from socle.db import transaction, utcnow
from socle.errors import InvalidInput, NotFound
from socle.models import Tenant
from socle.queue import enqueue


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


def record_sae_connectors(*, tenant_id: str, version: int, connectors: list[dict[str, Any]]) -> None:
    """The tenant's SAE connectors as the interop service has them now (messages.ARCHIVE_RECORD_SAE_CONNECTORS):
    kept unless a list of this version or a later one is kept already (a job run twice, or overtaken)."""
    with transaction() as session:
        sae_connectors.record(session, tenant_id, version, connectors)


# The namespace of the transfers asked by interop flows: the same flow always names the same transfer.
FLOW_TRANSFER_NAMESPACE = uuid.UUID("5b0f3c8e-2f4b-4d36-9a51-3f7c6e1d8a20")


def _flow_transfer_id(tenant_id: str, flow_id: str) -> str:
    """The id of the transfer asked by an interop flow: derived from the flow, so that asking again finds it."""
    return str(uuid.uuid5(FLOW_TRANSFER_NAMESPACE, f"{tenant_id}:{flow_id}"))


def request_transfer(
    *,
    tenant_id: str,
    flow_id: str,
    document_ids: list[str],
    archival_agency: str,
    archival_agreement: str | None,
    connector: str,
    profile: str | None,
    comment: str | None,
    username: str | None,
) -> None:
    """An interop flow asks for its GED documents to be archived: create the transfer once, then answer the flow.

    Like ``service.request_transfer`` for the API: the GED is asked for the documents, for the user who created
    the flow (``username``; None: a flow no user started, the GED answers as to the interop service), and the
    package is built when they come, under the SAE's entry contract the flow names (``archival_agreement``,
    written as ArchivalAgreement; None: none). The transfer's id is derived from the flow: a repeated message
    finds it and only answers again.

    :raises InvalidInput: no document, no archival agency, or an entry contract that is not an identifier.
    :raises NotFound: unknown collectivité or profile.
    """
    request = _FlowRequest(flow_id, document_ids, archival_agency, archival_agreement, connector, profile, comment)
    transfer_id = _flow_transfer_id(tenant_id, flow_id)
    with transaction() as session:
        if session.get(Transfer, transfer_id) is None:
            _create_flow_transfer(session, tenant_id, transfer_id, request, username)
        enqueue(
            session,
            messages.INTEROP_FLOW_DOCUMENT_STORED,
            key=f"interop.flow-transfer:{transfer_id}",
            tenant_id=tenant_id,
            flow_id=flow_id,
            name="versement",
            document_id=transfer_id,
        )


@dataclass(frozen=True)
class _FlowRequest:
    """What an interop flow asks to be archived, as ARCHIVE_REQUEST_TRANSFER carries it."""

    flow_id: str
    document_ids: list[str]
    archival_agency: str
    archival_agreement: str | None
    connector: str
    profile: str | None
    comment: str | None


def _create_flow_transfer(
    session: Session, tenant_id: str, transfer_id: str, request: _FlowRequest, username: str | None
) -> Transfer:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("collectivité inconnue")
    ids = list(dict.fromkeys(str(document_id) for document_id in request.document_ids))
    if not ids:
        raise InvalidInput("versement demandé par un flux sans aucun document de la GED")
    agency = (request.archival_agency or "").strip()
    if not agency or len(agency) > 100:
        raise InvalidInput("service d'archives destinataire absent ou trop long (100 caractères au plus)")
    if request.profile is not None:
        profiles.get_profile(session, tenant_id, request.profile)  # refused now rather than at the build
    flow_id = request.flow_id
    transfer = Transfer(
        id=transfer_id,
        message_identifier=f"{tenant.slug}-{utcnow():%Y%m%d}-{transfer_id[:8]}",
        tenant_id=tenant_id,
        document_ids=ids,
        comment=(request.comment or "")[:2000] or None,
        archival_agency=agency,
        archival_agreement=_agreement(request.archival_agreement),
        profile=request.profile,
        transferring_agency=tenant.siren or tenant.slug,
        # The SAE connector the flow names: what the archivist sends it with, once the package is built.
        connector=request.connector or None,
        # The flow asked, for its creator: both shown where the UI says who asked (no column of its own).
        created_by=(f"interop:{flow_id} (pour {username})" if username else f"interop:{flow_id}")[:100],
    )
    session.add(transfer)
    session.flush()
    enqueue(
        session,
        messages.GED_EXPORT_FOR_ARCHIVE,
        key=f"ged.export:{transfer.id}",
        tenant_id=tenant_id,
        transfer_id=transfer.id,
        document_ids=transfer.document_ids,
        # The GED gives only what the flow's creator may read; None (no user): as to the service.
        username=username,
    )
    service.audit_transfer(
        session,
        "service:interop",
        "archive.transfer.requested",
        transfer,
        documents=ids,
        flow_id=flow_id,
        username=username,
    )
    return transfer


def _agreement(value: str | None) -> str | None:
    """The entry contract as the API takes it (a token of 1 to 100 characters): the flow checked it already,
    this guards against a message written by hand."""
    if not value:
        return None
    try:
        return sae_token(value)
    except ValueError as error:
        raise InvalidInput(f"contrat d'entrée (archival_agreement) : {error}") from None


def build_folder_transfer(*, tenant_id: str, transfer_id: str, object_key: str, csv_key: str | None) -> None:
    """A folder tree sent through the API (POST /archive/transfers/folder): unpack it, build and check its package."""
    with transaction() as session:
        service.build_folder_transfer(session, tenant_id, transfer_id, object_key, csv_key)
