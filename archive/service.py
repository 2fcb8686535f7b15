"""Archive use cases: request a transfer of GED documents, build and check its SEDA package, send it."""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from archive import (
    checks,
    mapping,
    packaging,
    profiles,
    referential,
    sae_connectors,
    seda,
    sources,
    unpacking,
    validation,
)
from archive.models import Transfer
from archive.schemas import FolderTransferIn, SendIn, TransferIn
from archive.statuses import (
    ABANDONABLE,
    ABANDONED,
    ABANDONED_AFTER_DELIVERY,
    AFTER_DELIVERY,
    BUILT,
    DELIVERED,
    DELIVERY_FAILED,
    ERROR,
    INVALID,
    REDOABLE,
    REQUESTED,
    SENDABLE,
    SENDING,
    STATUS_LABELS,
    UNVALIDATED,
)
from socle import audit, messages
from socle.auth import Principal, Role
from socle.db import new_id, utcnow
from socle.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge, UnsupportedMediaType, message
from socle.models import Tenant
from socle.queue import enqueue
from socle.settings import get_settings
from socle.storage import StoredObject, get_store
from socle.storage.ownership import record_held

# How a transfer's documents were chosen (Transfer.selection["kind"]).
DOCUMENTS, FOLDER, DUA_REACHED = "documents", "folder", "dua_reached"


def request_transfer(
    session: Session, principal: Principal, body: TransferIn, *, redo_of: str | None = None
) -> Transfer:
    """Ask the GED for documents to transfer: given by id, a folder of the plan (with its subtree), or those
    whose DUA ended with final action keep or sort; the package is built when the GED answers.

    ``redo_of``: the transfer of the collectivité this one does again (« Refaire ce versement »), kept as its
    link: that one is no longer « à corriger ». A transfer that cannot be redone (not REDOABLE) is not linked.

    :raises Forbidden: not an archivist. :raises NotFound: unknown collectivité, profile or transfer redone.
    """
    tenant = _archivist_tenant(session, principal, body)
    redone = get_transfer(session, principal.tenant_id, redo_of) if redo_of is not None else None
    transfer = _new_transfer(
        session, principal, tenant, body, list(dict.fromkeys(body.document_ids or [])), _selection(body)
    )
    if redone is not None and redone.status in REDOABLE:
        transfer.redo_of = redone.id
    if body.document_ids is not None:
        enqueue(
            session,
            messages.GED_EXPORT_FOR_ARCHIVE,
            key=f"ged.export:{transfer.id}",
            tenant_id=principal.tenant_id,
            transfer_id=transfer.id,
            document_ids=transfer.document_ids,
            username=principal.username,  # the GED gives only what this archivist may read
        )
    else:  # the GED chooses the documents: it alone knows its plan and its DUAs
        enqueue(
            session,
            messages.GED_SELECT_FOR_ARCHIVE,
            key=f"ged.export:{transfer.id}",
            tenant_id=principal.tenant_id,
            transfer_id=transfer.id,
            folder_id=body.folder_id,
            dua_reached=body.dua_reached,
            username=principal.username,
        )
    audit_transfer(
        session,
        principal.actor,
        "archive.transfer.requested",
        transfer,
        documents=transfer.document_ids,
        selection=transfer.selection,
        **({"redo_of": transfer.redo_of} if transfer.redo_of else {}),
    )
    session.commit()
    return transfer


def _archivist_tenant(session: Session, principal: Principal, body: TransferIn | FolderTransferIn) -> Tenant:
    """The archivist's collectivité, the transfer's profile checked now rather than at the build.

    :raises Forbidden: not an archivist. :raises NotFound: unknown collectivité or profile.
    """
    principal.require(Role.ARCHIVISTE)
    tenant = session.get(Tenant, principal.tenant_id)
    if tenant is None:
        raise NotFound(message("collectivité inconnue"))
    if body.profile is not None:
        profiles.get_profile(session, principal.tenant_id, body.profile)
    return tenant


def _new_transfer(
    session: Session,
    principal: Principal,
    tenant: Tenant,
    body: TransferIn | FolderTransferIn,
    document_ids: list[str],
    selection: dict[str, Any],
) -> Transfer:
    transfer_id = new_id()
    transfer = Transfer(
        id=transfer_id,
        message_identifier=f"{tenant.slug}-{utcnow():%Y%m%d}-{transfer_id[:8]}",
        tenant_id=principal.tenant_id,
        seda_version=body.seda_version,
        document_ids=document_ids,
        selection=selection,
        comment=body.comment,
        archival_agency=body.archival_agency,
        archival_agreement=body.archival_agreement,
        profile=body.profile,
        transferring_agency=tenant.siren or tenant.slug,
        created_by=principal.username,
    )
    session.add(transfer)
    session.flush()
    return transfer


def _selection(body: TransferIn) -> dict[str, Any]:
    if body.folder_id is not None:
        return {"kind": FOLDER, "folder_id": body.folder_id}
    return {"kind": DUA_REACHED} if body.dua_reached else {"kind": DOCUMENTS}


def build_package(session: Session, tenant_id: str, transfer_id: str, documents: list[dict[str, Any]]) -> Transfer:
    """Build the SIP from the GED's export, validate it, keep it in the store. Runs once per transfer.

    The documents are described by the tenant's mappings (archive.mapping); for a selection (folder, DUA), the
    transfer's ``document_ids`` become the GED's choice. A document the mapping cannot describe fails it.
    """
    transfer = get_transfer(session, tenant_id, transfer_id)
    if transfer.status != REQUESTED:
        return transfer
    if not documents:
        transfer = get_transfer(session, tenant_id, transfer_id, for_update=True)
        empty = "aucun document à verser : la sélection est vide"
        return _fail(session, transfer, empty) if transfer.status == REQUESTED else transfer
    try:
        controls = _controls(session, transfer)
    except NotFound as exc:  # the transfer's profile is gone
        transfer = get_transfer(session, tenant_id, transfer_id, for_update=True)
        return _fail(session, transfer, exc.detail) if transfer.status == REQUESTED else transfer
    # The build reads and writes every file: hold no transaction meanwhile (on SQLite, the database's write lock).
    session.commit()
    failure: str | None = None
    try:
        stored, report, units = _build_sip(transfer, documents, controls)
    except (seda.SedaError, profiles.ProfileError) as exc:
        failure = str(exc)
    if failure is not None:
        return _keep_build(session, tenant_id, transfer_id, failure)
    document_ids = [doc["document_id"] for doc in documents]
    return _keep_build(
        session, tenant_id, transfer_id, None, stored, report, document_ids=document_ids, document_units=units
    )


def _keep_build(
    session: Session,
    tenant_id: str,
    transfer_id: str,
    failure: str | None,
    stored: StoredObject | None = None,
    report: dict[str, Any] | None = None,
    **documents: Any,
) -> Transfer:
    """Record what a build gave (its package and validation, or why it failed), unless another run of the job
    already did: the first result stands. ``documents``: the GED's choice (document_ids, document_units)."""
    transfer = get_transfer(session, tenant_id, transfer_id, for_update=True)
    if transfer.status != REQUESTED:
        return transfer
    if failure is not None or stored is None or report is None:
        return _fail(session, transfer, failure or "paquet non construit")
    transfer.sip_key, transfer.sip_size, transfer.validation = stored.key, stored.size, report
    record_held(session, transfer.tenant_id, stored.key, holder="archive")
    for name, value in documents.items():
        setattr(transfer, name, value)
    transfer.status = {"valid": BUILT, "invalid": INVALID}.get(report["status"], UNVALIDATED)
    transfer.updated_at = utcnow()
    extra = {"documents": transfer.document_ids} if documents else {}
    audit_transfer(
        session,
        "service:archive",
        "archive.transfer.built",
        transfer,
        sha256=stored.key,
        validation=report["status"],
        **extra,
    )
    session.commit()
    return transfer


@dataclass(frozen=True)
class Controls:
    """What a package is checked against after the XSD: the transfer's profile and the tenant's rules."""

    rules: checks.BusinessRules
    profile_name: str | None = None
    profile_key: str | None = None
    mapper: mapping.Mapper = field(default_factory=lambda: mapping.Mapper({}, None))
    # The SAE's id of the profile (ArchivalProfile in the manifest), as the profile is when the package is built.
    profile_identifier: str | None = None


def _controls(session: Session, transfer: Transfer) -> Controls:
    rules = referential.business_rules(session, transfer.tenant_id)
    mapper = mapping.Mapper.load(session, transfer.tenant_id)
    if transfer.profile is None:
        return Controls(rules, mapper=mapper)
    profile = profiles.get_profile(session, transfer.tenant_id, transfer.profile)
    return Controls(rules, profile.name, profile.object_key, mapper, profile.identifier)


def _build_sip(
    transfer: Transfer, documents: list[dict[str, Any]], controls: Controls
) -> tuple[StoredObject, dict[str, Any], dict[str, str]]:
    """Manifest, validation, zip, self-check, then the store; raise SedaError for a package that cannot be.

    Also returns each document's unit id in the package (document id → AU id).
    """
    work_dir = get_settings().data_dir / "tmp"
    work_dir.mkdir(parents=True, exist_ok=True)
    store = get_store()
    with ExitStack() as stack, tempfile.TemporaryDirectory(dir=work_dir) as scratch:
        files = {doc["document_id"]: stack.enter_context(store.local_path(doc["object_key"])) for doc in documents}
        documents = [_with_renditions(doc, stack) for doc in documents]
        spec = _transfer_spec(transfer, documents, files, controls)
        file_count = len(seda.sip_entries(spec))
        reports: list[dict[str, Any]] = []

        def check(manifest: Path) -> None:  # the report is kept whatever it says: an invalid package is kept too
            reports.append(
                validate_package(manifest.read_bytes(), transfer.seda_version, controls, file_count=file_count)
            )

        # Each file read once (digest, format, zip entry), as for a folder: packaging.build_sip.
        sip = Path(scratch) / "sip.zip"
        packaging.build_sip(
            spec, packaging.UnitsPlan(spec.units), sip, version=transfer.seda_version, check_manifest=check
        )
        report = reports[0]
        problems = packaging.verify_sip(sip)  # re-read what was written: digests and sizes from the zip itself
        if problems:
            raise seda.SedaError("; ".join(problems))
        with sip.open("rb") as stream:
            return store.put(stream), report, document_units(spec.units)


def _transfer_spec(
    transfer: Transfer, documents: list[dict[str, Any]], files: dict[str, Path], controls: Controls
) -> seda.TransferSpec:
    mapped = [controls.mapper.map_document(doc, _files(doc, files[doc["document_id"]])) for doc in documents]
    selection = transfer.selection or {}
    if selection.get("kind") == FOLDER:
        units = _folder_units(selection["folder_id"], documents, [m.unit for m in mapped])
    else:
        units = tuple(m.unit for m in mapped)
        if len(units) > 1:
            title = transfer.comment or "Versement"
            units = (grouping_unit(title, "RecordGrp", units),)
    tenant = transfer.transferring_agency
    return seda.TransferSpec(
        message_identifier=transfer.message_identifier,
        archival_agreement=transfer.archival_agreement,
        archival_agency=seda.Agency(transfer.archival_agency),
        transferring_agency=seda.Agency(tenant),
        originating_agency=seda.Agency(_agency([m.originating_agency for m in mapped], tenant, "producteur")),
        submission_agency=seda.Agency(_agency([m.submission_agency for m in mapped], tenant, "versant")),
        comment=transfer.comment,
        units=units,
        date=transfer.created_at,
        archival_profile=controls.profile_identifier,
    )


def _agency(found: list[str | None], tenant: str, role: str) -> str:
    """The one agency of the package: the root units carry it for all their documents."""
    agencies = sorted({agency or tenant for agency in found})
    if len(agencies) > 1:
        raise mapping.MappingError(
            f"les documents n'ont pas le même service {role} ({', '.join(agencies)}) : faites un versement par service"
        )
    return agencies[0]


# The GED's renditions of a document, shipped beside its original in the same object group: the export's key
# of each, its usage, and the name FileInfo gives it (as the GED names them for download).
RENDITIONS = (("pdfa_key", "Dissemination_1", "{stem}-pdfa.pdf"), ("text_key", "TextContent_1", "{stem}.txt"))


def _with_renditions(document: dict[str, Any], stack: ExitStack) -> dict[str, Any]:
    """The document with a local file for each rendition the GED exported (``rendition_paths``, by usage)."""
    store = get_store()
    paths = {
        usage: stack.enter_context(store.local_path(document[key])) for key, usage, _ in RENDITIONS if document.get(key)
    }
    return {**document, "rendition_paths": paths}


def _files(document: dict[str, Any], path: Path) -> tuple[tuple[seda.DescribedFile, str], ...]:
    """The document's original as BinaryMaster_1, then its PDF/A copy (Dissemination_1) and its extracted text
    (TextContent_1) when the GED has them: versions of the same document, in one object group."""
    # The store's files are named by digest: give FileInfo the document's own modification time.
    modified = datetime.fromisoformat(document["modified_at"])
    described = packaging.undescribed(path, document["filename"])  # build_sip reads it
    files = [(replace(described, last_modified=modified), "BinaryMaster_1")]
    stem = PurePosixPath(document["filename"]).stem or "document"
    paths: dict[str, Path] = document.get("rendition_paths") or {}
    for _, usage, name in RENDITIONS:
        if usage not in paths:
            continue
        rendition = packaging.undescribed(paths[usage], name.format(stem=stem))
        if usage == "TextContent_1" and not _has_text(rendition.path):
            continue  # pages without text give form feeds alone: nothing to read (and the SEDA wants Size ≥ 1)
        files.append((replace(rendition, last_modified=modified), usage))
    return tuple(files)


def _has_text(path: Path) -> bool:
    """Whether an extracted text holds more than blanks (spaces, line breaks, the form feeds between pages)."""
    with path.open("rb") as stream:
        while chunk := stream.read(1024 * 1024):
            if chunk.strip():
                return True
    return False


@dataclass
class _FolderNode:
    """A folder of the plan in the package: a unit, its documents' units, then its subfolders' units."""

    title: str
    code: str | None = (
        None  # the folder's cote in the plan (« 1D2 »), written as OriginatingAgencyArchiveUnitIdentifier
    )
    items: list[seda.ArchiveUnitSpec] = field(default_factory=list)
    children: dict[str, _FolderNode] = field(default_factory=dict)

    def unit(self, level: str) -> seda.ArchiveUnitSpec:
        children = [*self.items, *(node.unit("SubGrp") for node in self.children.values())]
        return grouping_unit(self.title, level, children, code=self.code)


def grouping_unit(
    title: str, level: str, children: Sequence[seda.ArchiveUnitSpec], *, code: str | None = None
) -> seda.ArchiveUnitSpec:
    """A unit that groups others (a folder of the plan, a transfer of several documents): its StartDate and
    EndDate are the earliest and latest dates of its children, when any is known."""
    dates = sorted(
        _day(moment) for child in children for moment in (child.start_date, child.end_date) if moment is not None
    )
    return seda.ArchiveUnitSpec(
        title=title,
        description_level=level,
        originating_agency_archive_unit_identifier=code or None,
        start_date=dates[0] if dates else None,
        end_date=dates[-1] if dates else None,
        children=tuple(children),
    )


def _day(moment: date) -> date:
    return moment.date() if isinstance(moment, datetime) else moment


def _folder_units(
    folder_id: str, documents: list[dict[str, Any]], units: list[seda.ArchiveUnitSpec]
) -> tuple[seda.ArchiveUnitSpec, ...]:
    """The plan's folders as nested units, from the selected folder down: one unit per folder (RecordGrp,
    then SubGrp), each holding its documents' units. A document is placed by its path at export time."""
    root: _FolderNode | None = None
    for document, unit in zip(documents, units, strict=True):
        path = document.get("folder") or []
        start = next((index for index, folder in enumerate(path) if folder["id"] == folder_id), None)
        below = path[start:] if start is not None else []
        if root is None:
            root = _folder_node(below[0]) if below else _FolderNode("Dossier versé")
        node = root
        for folder in below[1:]:
            node = node.children.setdefault(folder["id"], _folder_node(folder))
        node.items.append(unit)
    assert root is not None  # documents is never empty here (checked by build_package)
    return (root.unit("RecordGrp"),)


def _folder_node(folder: dict[str, Any]) -> _FolderNode:
    """A folder as the GED exported it: its name is the unit's Title, its cote (``code``) an identifier of its
    own rather than glued to the title."""
    code = str(folder.get("code") or "").strip()
    return _FolderNode(str(folder["name"]), code or None)


def document_units(units: tuple[seda.ArchiveUnitSpec, ...]) -> dict[str, str]:
    """Each document's unit id (document id → AU n), numbered like seda.build_manifest: depth first, in order."""
    found: dict[str, str] = {}
    counter = 0

    def walk(unit: seda.ArchiveUnitSpec) -> None:
        nonlocal counter
        counter += 1
        if unit.files and unit.originating_agency_archive_unit_identifier:
            found[unit.originating_agency_archive_unit_identifier] = f"AU{counter}"
        for child in unit.children:
            walk(child)

    for unit in units:
        walk(unit)
    return found


def validate_package(manifest: bytes, version: str, controls: Controls, *, file_count: int | None) -> dict[str, Any]:
    """The validation report of a manifest: XSD, then the archival profile, then the business checks.

    Its shape: status (valid | invalid | skipped), schema, message (when skipped), issues (line, path, message,
    check, level) and checks (each one's own status). Without the XSDs, other findings still make it « invalid ».
    An issue of level « error » makes it invalid; a « warning » (a rule id made up for lack of a referential, no
    entry contract) is only said: the package is what the tenant's settings can give, the archivist decides.
    """
    report = _validate_schema(manifest, version)
    for issue in report["issues"]:
        issue["check"], issue["level"] = "schema", "error"
    report["checks"] = {"schema": report["status"], "profile": None, "business": None}
    report["profile"] = controls.profile_name
    try:
        tree = etree.ElementTree(
            etree.fromstring(manifest, etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True))
        )
    except etree.XMLSyntaxError:
        return report  # already reported by the schema check; nothing more can be read
    found: list[validation.ValidationIssue] = []
    if controls.profile_key is not None and controls.profile_name is not None:
        issues = profiles.validate_against_profile(
            tree, profiles.load_profile(controls.profile_key), controls.profile_name
        )
        report["checks"]["profile"] = "invalid" if issues else "valid"
        found += issues
    issues = checks.check_manifest(tree, controls.rules, file_count=file_count)
    report["checks"]["business"] = "invalid" if issues else "valid"
    found += issues
    warnings = checks.warnings(tree, controls.rules)
    report["issues"] += [
        {"line": issue.line, "path": issue.path, "message": issue.message, "check": issue.check, "level": level}
        for level, issues in (("error", found), ("warning", warnings))
        for issue in issues
    ]
    if found:
        report["status"] = "invalid"
    return report


def _validate_schema(manifest: bytes, version: str) -> dict[str, Any]:
    """Never call a package valid without validating it: missing schemas give « unvalidated », said plainly."""
    schemas = get_settings().seda_schemas
    if schemas is None:
        return {
            "status": "skipped",
            "message": "validation non faite : schémas SEDA non configurés (SOCLE_SEDA_SCHEMAS) ; "
            "installez-les avec « socle archive schemas install »",
            "issues": [],
        }
    try:
        report = validation.validate_manifest(manifest, schemas, version)
    except validation.SchemaUnavailable as exc:
        return {"status": "skipped", "message": str(exc), "issues": []}
    return {
        "status": "valid" if report.valid else "invalid",
        "schema": report.schema,
        "issues": [{"line": issue.line, "path": issue.path, "message": issue.message} for issue in report.issues],
    }


def _fail(session: Session, transfer: Transfer, reason: str) -> Transfer:
    transfer.status, transfer.error, transfer.updated_at = ERROR, reason, utcnow()
    audit_transfer(session, "service:archive", "archive.transfer.failed", transfer, reason=reason)
    tell_ged_transfer_ended(session, transfer, "failed")
    session.commit()
    return transfer


def tell_ged_transfer_ended(session: Session, transfer: Transfer, outcome: str) -> None:
    """The transfer ended without the SAE's acceptance: the GED puts back the documents it marked « transferred »
    for it (in the caller's transaction, with the state that ends it). A transfer ends once: one message."""
    enqueue(
        session,
        messages.GED_TRANSFER_ENDED,
        key=f"ged.transfer-ended:{transfer.id}",
        tenant_id=transfer.tenant_id,
        transfer_id=transfer.id,
        outcome=outcome,
    )


def export_failed(session: Session, tenant_id: str, transfer_id: str, reason: str) -> Transfer:
    transfer = get_transfer(session, tenant_id, transfer_id, for_update=True)
    if transfer.status == REQUESTED:
        return _fail(session, transfer, reason)
    return transfer


def send(session: Session, principal: Principal, transfer_id: str, body: SendIn) -> Transfer:
    principal.require(Role.ARCHIVISTE)
    transfer = get_transfer(session, principal.tenant_id, transfer_id, for_update=True)
    if transfer.status not in SENDABLE:
        raise Conflict(
            message(
                "ce versement ne peut pas être envoyé (état : %(transfer_status)s)", transfer_status=transfer.status
            ),
            transfer_status=transfer.status,
        )
    if transfer.status == UNVALIDATED and not body.accept_unvalidated:
        raise Conflict(message("le paquet n'a pas été validé (schémas absents) : confirmez avec accept_unvalidated"))
    if transfer.sip_key is None or transfer.sip_size is None:
        raise Conflict(message("ce versement n'a pas de paquet construit"))
    sae_connectors.check(session, principal.tenant_id, body.connector)  # said now, not after a failed delivery
    transfer.status, transfer.connector, transfer.error, transfer.updated_at = SENDING, body.connector, None, utcnow()
    enqueue(
        session,
        messages.INTEROP_DELIVER,
        # No job key: after a failed delivery, sending again must run again. Sending twice is refused above
        # (a transfer being sent is not sendable) and the delivery's idempotency key stops a double deposit.
        tenant_id=principal.tenant_id,
        connector=body.connector,
        object_key=transfer.sip_key,
        size=transfer.sip_size,
        filename=f"{transfer.message_identifier}.zip",
        idempotency_key=f"archive:{transfer.id}",
        reply={
            "success": messages.ARCHIVE_RECORD_DELIVERY.function,
            "failure": messages.ARCHIVE_DELIVERY_FAILED.function,
            "arguments": {"tenant_id": principal.tenant_id, "transfer_id": transfer.id},
        },
    )
    audit_transfer(session, principal.actor, "archive.transfer.sent", transfer, connector=body.connector)
    session.commit()
    return transfer


# A built package can be validated again (its XSD, profile and referential as they are now) until it is sent.
REVALIDABLE = (BUILT, INVALID, UNVALIDATED)


def revalidate(session: Session, principal: Principal, transfer_id: str) -> Transfer:
    """Validate a built package again against the XSD, the transfer's profile and the tenant's referential as
    they are now: after the schemas are installed, or the referential or profile corrected. The package itself
    is unchanged (its content is what the GED exported); a wrong mapping needs a new transfer.

    :raises Conflict: the transfer has no package to validate, or its profile is gone.
    """
    principal.require(Role.ARCHIVISTE)
    transfer = get_transfer(session, principal.tenant_id, transfer_id)
    if transfer.status not in REVALIDABLE or transfer.sip_key is None:
        label = STATUS_LABELS.get(transfer.status, transfer.status)
        raise Conflict(
            message("ce versement n'a pas de paquet à valider (état : %(label)s)", label=label),
            transfer_status=transfer.status,
        )
    try:
        controls = _controls(session, transfer)
    except NotFound as exc:
        raise Conflict(message("validation impossible : %(exc_detail)s", exc_detail=exc.detail)) from None
    version, key = transfer.seda_version, transfer.sip_key
    session.commit()  # reading the package holds no transaction (SQLite's write lock)
    manifest, files = _read_manifest(key)
    report = validate_package(manifest, version, controls, file_count=files)
    transfer = get_transfer(session, principal.tenant_id, transfer_id, for_update=True)
    if transfer.status not in REVALIDABLE or transfer.sip_key != key:
        return transfer  # sent or rebuilt meanwhile: what happened stands
    transfer.validation = report
    transfer.status = {"valid": BUILT, "invalid": INVALID}.get(report["status"], UNVALIDATED)
    transfer.updated_at = utcnow()
    audit_transfer(session, principal.actor, "archive.transfer.revalidated", transfer, validation=report["status"])
    session.commit()
    return transfer


def _read_manifest(key: str) -> tuple[bytes, int]:
    """The package's manifest and its number of files, read from the store."""
    with get_store().local_path(key) as path, zipfile.ZipFile(path) as package:
        files = sum(1 for info in package.infolist() if not info.is_dir() and info.filename != "manifest.xml")
        try:
            return package.read("manifest.xml"), files
        except KeyError:
            raise InvalidInput(message("le paquet stocké n'a pas de manifeste (manifest.xml)")) from None


def abandon(session: Session, principal: Principal, transfer_id: str, reason: str) -> Transfer:
    """Give up a transfer the SAE never answered (built, invalid, unvalidated, delivery failed, or delivered and
    acknowledged but never replied to): it is « abandoned » with the archivist's reason (kept in ``error``, as a
    failure's), and the GED puts its documents back, not transferred. The package stays in the store:
    content-addressed, it may be another transfer's too. A reply that comes after is kept and refused (see
    archive.lifecycle): the archivist checks with the SAE what it did with the package.

    The same request again (same reason) answers the abandoned transfer as it is: a retried request.

    :raises Forbidden: not an archivist. :raises NotFound: unknown transfer (or another tenant's).
    :raises InvalidInput: an empty reason. :raises Conflict: the package is being sent or still in preparation,
        or the transfer has already ended.
    """
    principal.require(Role.ARCHIVISTE)
    reason = reason.strip()
    if not reason:
        raise InvalidInput(message("dites pourquoi le versement est abandonné"))
    transfer = get_transfer(session, principal.tenant_id, transfer_id, for_update=True)
    if transfer.status == ABANDONED and transfer.error == reason:
        session.commit()
        return transfer
    if transfer.status not in ABANDONABLE:
        raise _not_abandonable(transfer)
    previous = transfer.status
    transfer.status, transfer.error, transfer.updated_at = ABANDONED, reason, utcnow()
    details: dict[str, Any] = {"reason": reason, "previous": previous}
    if previous in ABANDONED_AFTER_DELIVERY:  # said in the journal: the SAE has the package, its reply may come
        details["sae_has_package"] = True
    audit_transfer(session, principal.actor, "archive.transfer.abandoned", transfer, **details)
    tell_ged_transfer_ended(session, transfer, "abandoned")
    if previous == DELIVERY_FAILED:
        _cancel_delivery(session, transfer, reason, principal.actor)
    session.commit()
    return transfer


def _not_abandonable(transfer: Transfer) -> Conflict:
    label = STATUS_LABELS.get(transfer.status, transfer.status)
    if transfer.status == REQUESTED:
        text = message("ce versement est en préparation : attendez que son paquet soit construit")
    elif transfer.status == SENDING:
        # The connector's outcome decides: delivered (then abandonable) or failed (then abandonable too).
        text = message(
            "ce versement ne peut pas être abandonné pendant son envoi (état : %(label)s) : attendez le résultat "
            "du dépôt",
            label=label,
        )
    else:  # error, abandoned, accepted, rejected
        text = message("ce versement est déjà terminé (état : %(label)s)", label=label)
    return Conflict(text, transfer_status=transfer.status)


def _cancel_delivery(session: Session, transfer: Transfer, reason: str, actor: str) -> None:
    """Interop still holds the failed delivery, which an operator could resume: it is cancelled there.

    Only « delivery_failed » leaves one behind among what may be abandoned (built, invalid and unvalidated
    packages were never sent). Keyed: a transfer is abandoned once, so is its delivery cancelled.
    """
    enqueue(
        session,
        messages.INTEROP_CANCEL_DELIVERY,
        key=f"interop.cancel-delivery:{transfer.id}",
        tenant_id=transfer.tenant_id,
        idempotency_key=f"archive:{transfer.id}",
        reason=reason,
        actor=actor,
    )


def record_delivery(session: Session, tenant_id: str, transfer_id: str, receipt: dict[str, Any]) -> Transfer:
    """Keep the connector's receipt. The SAE's first message may have come first: the state then stays.

    A transfer whose delivery failed comes back too: an operator resumed the delivery and it went through.
    An abandoned one keeps its state: the receipt is kept and audited (``delivered_after_abandon``).
    """
    transfer = get_transfer(session, tenant_id, transfer_id, for_update=True)
    if transfer.status in (SENDING, DELIVERY_FAILED):
        transfer.status, transfer.receipt, transfer.error, transfer.updated_at = DELIVERED, receipt, None, utcnow()
        audit_transfer(session, "service:interop", "archive.transfer.delivered", transfer, receipt=receipt)
        session.commit()
    elif transfer.status in AFTER_DELIVERY and transfer.receipt is None:
        transfer.receipt, transfer.updated_at = receipt, utcnow()
        if transfer.sae_identifiers is not None:  # accepted before the receipt came: add the SAE's operation
            transfer.sae_identifiers = {
                **transfer.sae_identifiers,
                "sae": receipt.get("sae"),
                "operation_id": receipt.get("operation_id"),
            }
        audit_transfer(session, "service:interop", "archive.transfer.delivered", transfer, receipt=receipt)
        session.commit()
    elif transfer.status == ABANDONED and transfer.receipt is None:
        # Resumed in interop before the abandon reached it: the SAE has the package of an abandoned transfer.
        # The state stays (its documents are already back in the GED); the archivist must see it, once.
        transfer.receipt, transfer.updated_at = receipt, utcnow()
        audit_transfer(
            session, "service:interop", "archive.transfer.delivered_after_abandon", transfer, receipt=receipt
        )
        session.commit()
    return transfer


def delivery_failed(session: Session, tenant_id: str, transfer_id: str, reason: str) -> Transfer:
    transfer = get_transfer(session, tenant_id, transfer_id, for_update=True)
    if transfer.status == SENDING:
        transfer.status, transfer.error, transfer.updated_at = DELIVERY_FAILED, reason, utcnow()
        audit_transfer(session, "service:interop", "archive.transfer.delivery_failed", transfer, reason=reason)
        session.commit()
    return transfer


def get_transfer(session: Session, tenant_id: str, transfer_id: str, *, for_update: bool = False) -> Transfer:
    query = select(Transfer).where(Transfer.id == transfer_id, Transfer.tenant_id == tenant_id)
    if for_update:
        query = query.with_for_update()
    transfer = session.execute(query).scalar_one_or_none()
    if transfer is None:
        raise NotFound(message("versement %(transfer_id)s introuvable", transfer_id=transfer_id))
    return transfer


def list_transfers(session: Session, tenant_id: str, limit: int, offset: int) -> list[Transfer]:
    query = select(Transfer).where(Transfer.tenant_id == tenant_id).order_by(Transfer.created_at.desc())
    return list(session.execute(query.limit(limit).offset(offset)).scalars())


def audit_transfer(session: Session, actor: str, action: str, transfer: Transfer, **details: object) -> None:
    audit.record(
        session,
        tenant_id=transfer.tenant_id,
        actor=actor,
        action=action,
        object_type="transfer",
        object_id=transfer.id,
        details={"message_identifier": transfer.message_identifier, **details},
    )


# --- a folder tree sent through the API ------------------------------------------------------------------

# The selection of a transfer built from a folder tree the archivist sent (a zip or a tar, and a CSV): its
# package holds no GED document.
FOLDER_TREE = "folder_tree"
# archive.sources reads the CSV whole: bounded apart from the archive.
MAX_CSV_BYTES = 64 * 1024 * 1024
ARCHIVE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".txz", ".tar", ".zip")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def request_folder_transfer(
    session: Session,
    principal: Principal,
    body: FolderTransferIn,
    upload: Path,
    filename: str,
    csv: Path | None = None,
    csv_filename: str | None = None,
) -> Transfer:
    """Keep a folder tree sent as a zip or a tar (with its ReSIP-style CSV, optional) and ask for its package.

    What needs no unpacking is refused at once: not an archivist, unknown profile, neither zip nor tar, a zip
    whose listing has unsafe or oversized entries, a CSV too large. The rest (unpacking, the tree and the CSV,
    the build and its validation) is the job's (ARCHIVE_BUILD_FOLDER_TRANSFER): the transfer is « requested »
    until it is built, invalid or in error. The archive and the CSV are kept in the store, named by the
    transfer's selection.

    :raises Forbidden, NotFound, UnsupportedMediaType, InvalidInput, PayloadTooLarge.
    """
    tenant = _archivist_tenant(session, principal, body)
    if unpacking.archive_kind(upload) is None:
        raise UnsupportedMediaType(message("envoyez l'arborescence en zip ou en tar (éventuellement compressé)"))
    try:
        kind = unpacking.check_archive(upload)
    except unpacking.Refused as exc:
        raise InvalidInput(
            message("arborescence refusée : %(problems)s", problems=" ".join(exc.problems)), problems=exc.problems
        ) from None
    if csv is not None and csv.stat().st_size > MAX_CSV_BYTES:
        raise PayloadTooLarge(
            message("le CSV dépasse la taille maximale de %(max_size)s octets", max_size=MAX_CSV_BYTES),
            max_size=MAX_CSV_BYTES,
        )
    store = get_store()
    with upload.open("rb") as stream:
        stored = store.put(stream)
    csv_stored = None
    if csv is not None:
        with csv.open("rb") as stream:
            csv_stored = store.put(stream)
    selection: dict[str, Any] = {
        "kind": FOLDER_TREE,
        "format": kind,
        "filename": filename,
        "object_key": stored.key,
        "size": stored.size,
        "csv_filename": (csv_filename or "metadonnees.csv") if csv_stored is not None else None,
        "csv_key": csv_stored.key if csv_stored is not None else None,
    }
    transfer = _new_transfer(session, principal, tenant, body, [], selection)
    record_held(session, transfer.tenant_id, stored.key, selection["csv_key"], holder="archive")
    enqueue(
        session,
        messages.ARCHIVE_BUILD_FOLDER_TRANSFER,
        key=f"archive.folder:{transfer.id}",
        tenant_id=principal.tenant_id,
        transfer_id=transfer.id,
        object_key=stored.key,
        csv_key=selection["csv_key"],
    )
    audit_transfer(session, principal.actor, "archive.transfer.requested", transfer, selection=selection)
    session.commit()
    return transfer


def build_folder_transfer(
    session: Session, tenant_id: str, transfer_id: str, object_key: str, csv_key: str | None
) -> Transfer:
    """Unpack the folder tree in a work folder, build its package as « socle archive build » does, validate it
    like any transfer's, keep it in the store; the work folder is removed whatever happens.

    Runs once per transfer: a transfer no longer « requested » is left as it is. A tree, a CSV or an archive
    that cannot make a package puts the transfer in error, with every reason; nothing is kept of it.
    """
    transfer = get_transfer(session, tenant_id, transfer_id)
    if transfer.status != REQUESTED:
        return transfer
    selection = transfer.selection or {}
    try:
        # The message names the objects the request kept: never another transfer's (or tenant's) upload.
        if [selection.get("kind"), selection.get("object_key"), selection.get("csv_key")] != [
            FOLDER_TREE,
            object_key,
            csv_key,
        ]:
            raise NotFound(message("ce versement n'a pas été demandé pour cette arborescence"))
        controls = _controls(session, transfer)
    except NotFound as exc:  # not this upload's transfer, or its profile is gone
        transfer = get_transfer(session, tenant_id, transfer_id, for_update=True)
        return _fail(session, transfer, exc.detail) if transfer.status == REQUESTED else transfer
    # Unpacking and building read and write every file: hold no transaction meanwhile.
    session.commit()
    failure: str | None = None
    try:
        stored, report = _build_folder_sip(transfer, controls)
    except (unpacking.Refused, sources.SourceError, packaging.BuildRefused) as exc:
        failure = f"Versement refusé : {' '.join(exc.problems)}"
    except (seda.SedaError, profiles.ProfileError) as exc:
        failure = str(exc)
    if failure is not None:
        return _keep_build(session, tenant_id, transfer_id, failure)
    return _keep_build(session, tenant_id, transfer_id, None, stored, report)


def _build_folder_sip(transfer: Transfer, controls: Controls) -> tuple[StoredObject, dict[str, Any]]:
    """Unpack, build, validate and re-read the package, then store it; raise for a tree that cannot make one."""
    selection = transfer.selection or {}
    work_root = get_settings().data_dir / "tmp"
    work_root.mkdir(parents=True, exist_ok=True)
    store = get_store()
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=work_root, prefix="folder-")))
        upload = stack.enter_context(store.local_path(selection["object_key"]))
        folder = unpacking.unpack(upload, work / "tree" / _folder_name(selection.get("filename")))
        csv_path = None
        if selection.get("csv_key"):
            # Copied under its own name: the problems found in it name the file the archivist sent.
            csv_path = work / "csv" / _plain_name(selection.get("csv_filename"), "metadonnees.csv")
            csv_path.parent.mkdir()
            with store.open(selection["csv_key"]) as source, csv_path.open("wb") as out:
                shutil.copyfileobj(source, out)
        spec, plan = sources.folder_transfer(
            folder,
            archival_agency=transfer.archival_agency,
            transferring_agency=transfer.transferring_agency,
            csv_path=csv_path,
            message_identifier=transfer.message_identifier,
            comment=transfer.comment,
            now=transfer.created_at,
            shown=folder.name,  # as the archivist named it (the zip's folder, else the zip): not our work folder
        )
        spec = replace(
            spec, archival_agreement=transfer.archival_agreement, archival_profile=controls.profile_identifier
        )
        reports: list[dict[str, Any]] = []

        def check(manifest: Path) -> None:  # the report is kept whatever it says, as for the GED's transfers
            count = _planned_files(plan)
            reports.append(validate_package(manifest.read_bytes(), transfer.seda_version, controls, file_count=count))

        sip = work / "sip.zip"
        packaging.build_sip(spec, plan, sip, version=transfer.seda_version, check_manifest=check)
        problems = packaging.verify_sip(sip)  # re-read what was written: digests and sizes from the zip itself
        if problems:
            raise seda.SedaError("; ".join(problems))
        with sip.open("rb") as stream:
            return store.put(stream), reports[0]


def _planned_files(plan: packaging.Plan) -> int | None:
    """The number of files of a plan walked by the build: what the manifest must declare."""
    if isinstance(plan, sources.FolderPlan):
        return plan.files
    if isinstance(plan, packaging.UnitsPlan):
        return sum(len(unit.files) for unit in sources.iter_units(plan.units))
    return None


def _plain_name(filename: str | None, default: str) -> str:
    """A file name sent by a client, as a single harmless path component."""
    name = _CONTROL.sub("", PurePosixPath((filename or "").replace("\\", "/")).name).strip()
    return name[:200] if name not in ("", ".", "..") else default


def _folder_name(filename: str | None) -> str:
    """The folder an archive holds, named after it (« Conseil 2026.zip » → « Conseil 2026 »): the root unit's
    title when the archive does not hold a single folder of its own."""
    name = _plain_name(filename, "")
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)].strip()
            break
    return name if name not in ("", ".", "..") else "Dossier versé"
