"""SEDA messages as an archival system sends them back, written here for the tests (Vitam and As@lae styles).

Each builder writes the elements in the order of the official XSD; the tests validate what they build
against those XSDs, so a message accepted here is one the schemas accept.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from lxml import etree

from archive.seda import NAMESPACES
from socle import messages
from socle.db import transaction
from socle.queue import enqueue
from socle.storage import get_store

from conftest import run_jobs


@dataclass(frozen=True)
class Event:
    type_code: str
    type: str
    outcome: str
    outcome_detail: str | None = None
    message: str | None = None


def _writer(version: str, root_name: str) -> tuple[etree._Element, str]:
    namespace = NAMESPACES[version]
    return etree.Element(f"{{{namespace}}}{root_name}", nsmap={None: namespace}), namespace


def _add(
    parent: etree._Element, namespace: str, tag: str, text: str | None = None, **attributes: str
) -> etree._Element:
    element = etree.SubElement(parent, f"{{{namespace}}}{tag}", **attributes)
    if text is not None:
        element.text = text
    return element


def acknowledgement(version: str, received: str, identifier: str = "ACK-0001", *, comment: str | None = None) -> bytes:
    root, ns = _writer(version, "Acknowledgement")
    if comment:
        _add(root, ns, "Comment", comment)
    _add(root, ns, "Date", "2026-12-01T10:00:00")
    _add(root, ns, "MessageIdentifier", identifier)
    _add(root, ns, "MessageReceivedIdentifier", received)
    _add(_add(root, ns, "Sender"), ns, "Identifier", "AD037")
    _add(_add(root, ns, "Receiver"), ns, "Identifier", "213700000")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def transfer_reply(
    version: str,
    request: str,
    code: str | None,
    identifier: str = "ATR-0001",
    *,
    events: tuple[Event, ...] = (),
    units: dict[str, str] | None = None,
    objects: dict[str, tuple[str, str]] | None = None,
    comment: str | None = None,
    archival_ids: dict[str, str] | None = None,
) -> bytes:
    """An ArchiveTransferReply; ``units`` maps a unit id to its SystemId, ``objects`` an object id to its
    (DataObjectSystemId, DataObjectGroupSystemId), as Vitam lists them in its replies; ``archival_ids`` a unit
    id to the archives' own reference (ArchivalAgencyArchiveUnitIdentifier)."""
    root, ns = _writer(version, "ArchiveTransferReply")
    if comment:
        _add(root, ns, "Comment", comment)
    _add(root, ns, "Date", "2026-12-01T10:05:00")
    _add(root, ns, "MessageIdentifier", identifier)
    _add(root, ns, "ArchivalAgreement", "IC-000001")
    code_lists = _add(root, ns, "CodeListVersions")
    _add(code_lists, ns, "ReplyCodeListVersion", "ReplyCodeListVersion0")
    if units or objects:
        package = _add(root, ns, "DataObjectPackage")
        for number, (object_id, (system_id, group_id)) in enumerate((objects or {}).items()):
            group = _add(package, ns, "DataObjectGroup", id=f"GRP{number}")
            obj = _add(group, ns, "BinaryDataObject", id=object_id)
            _add(obj, ns, "DataObjectSystemId", system_id)
            _add(obj, ns, "DataObjectGroupSystemId", group_id)
            _add(obj, ns, "DataObjectVersion", "BinaryMaster_1")
        descriptive = _add(package, ns, "DescriptiveMetadata")
        for unit_id, system_id in (units or {}).items():
            content = _add(_add(descriptive, ns, "ArchiveUnit", id=unit_id), ns, "Content")
            _add(content, ns, "SystemId", system_id)
            if archival_ids and unit_id in archival_ids:
                _add(content, ns, "ArchivalAgencyArchiveUnitIdentifier", archival_ids[unit_id])
        _add(package, ns, "ManagementMetadata")
    if code is not None:
        _add(root, ns, "ReplyCode", code)
    if events:
        operation = _add(root, ns, "Operation")
        for event in events:
            element = _add(operation, ns, "Event")
            _add(element, ns, "EventTypeCode", event.type_code)
            _add(element, ns, "EventType", event.type)
            _add(element, ns, "EventDateTime", "2026-12-01T10:04:00")
            _add(element, ns, "Outcome", event.outcome)
            if event.outcome_detail:
                _add(element, ns, "OutcomeDetail", event.outcome_detail)
            if event.message:
                _add(element, ns, "OutcomeDetailMessage", event.message)
    _add(root, ns, "MessageRequestIdentifier", request)
    _add(root, ns, "GrantDate", "2026-12-01T10:05:00")
    _add(_add(root, ns, "ArchivalAgency"), ns, "Identifier", "AD037")
    _add(_add(root, ns, "TransferringAgency"), ns, "Identifier", "213700000")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


VITAM_REFUSAL = (
    Event(
        "CHECK_SEDA", "Contrôle global du SIP", "KO", "CHECK_SEDA.KO", "Échec du contrôle de conformité du bordereau"
    ),
    Event("CHECK_DIGEST", "Vérification de l'empreinte", "OK", "CHECK_DIGEST.OK"),
    Event(
        "CHECK_RULES",
        "Vérification des règles de gestion",
        "KO",
        "CHECK_RULES.KO",
        "Règle de gestion APP-99 inconnue du référentiel",
    ),
)


def sae_sends(tenant_id: str, transfer_id: str, kind: str, data: bytes) -> str:
    """What interop does with each message the SAE sends back: store the XML, then hand it to the archive
    service (ARCHIVE_RECORD_SAE_MESSAGE), and run the jobs; returns the message's object key."""
    stored = get_store().put(io.BytesIO(data))
    with transaction() as session:
        enqueue(
            session,
            messages.ARCHIVE_RECORD_SAE_MESSAGE,
            tenant_id=tenant_id,
            transfer_id=transfer_id,
            message_kind=kind,
            object_key=stored.key,
            size=stored.size,
        )
    run_jobs()
    return stored.key
