"""Building a SEDA ArchiveTransfer manifest from plain dataclasses.

Pure domain code: no database, no storage, no network. The element order follows the official XSDs
(seda-2.2-main.xsd, -technical, -management, -ontology); lxml does not reorder anything, so the
functions below append children exactly in schema order.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import BinaryIO

from lxml import etree

__all__ = [
    "NAMESPACES",
    "Agency",
    "ArchiveUnitSpec",
    "DescribedFile",
    "SedaError",
    "TransferSpec",
    "build_manifest",
    "sip_entries",
    "version_of_namespace",
    "write_manifest",
]

# One entry per supported SEDA version. Compared in the XSDs for everything this builder writes (header,
# CodeListVersions, DataObjectGroup/BinaryDataObject, Content, AppraisalRule/AccessRule, agencies): the
# three versions declare the same elements in the same order; only the namespace changes. 2.3 differs from
# 2.2 in the technical and ontology parts alone (SigningInformation replaces Signature, PersistentIdentifier,
# DataObjectUse/DataObjectNumber), all optional and not written here. The Vitam edition of 2.1 relaxes
# its sequences with xsd:any (hence XSD 1.1) but accepts the same elements.
NAMESPACES: dict[str, str] = {
    "2.1": "fr:gouv:culture:archivesdefrance:seda:v2.1",
    "2.2": "fr:gouv:culture:archivesdefrance:seda:v2.2",
    "2.3": "fr:gouv:culture:archivesdefrance:seda:v2.3",
}

# None of them is mandatory in 2.2 (each group is minOccurs=0, CodeListVersions may even be empty),
# but archiving systems (Vitam, As@lae) expect the usual ones; values follow the ReSIP convention.
CODE_LIST_VERSIONS: tuple[str, ...] = (
    "ReplyCodeListVersion",
    "MessageDigestAlgorithmCodeListVersion",
    "MimeTypeCodeListVersion",
    "FileFormatCodeListVersion",
    "DataObjectVersionCodeListVersion",
    "AppraisalRuleCodeListVersion",
    "AccessRuleCodeListVersion",
)

DESCRIPTION_LEVELS = frozenset(
    {
        "Fonds",
        "Subfonds",
        "Class",
        "Collection",
        "Series",
        "Subseries",
        "RecordGrp",
        "SubGrp",
        "File",
        "Item",
        "OtherLevel",
    }
)
FINAL_ACTIONS = frozenset({"Keep", "Destroy"})
# Vitam refuses any other DataObjectVersion; PhysicalMaster is left out: it is not a binary object.
USAGE_PATTERN = re.compile(r"(BinaryMaster|Dissemination|Thumbnail|TextContent)(_[1-9][0-9]*)?")
DIGEST_ALGORITHM = "SHA-512"
CONTENT_FOLDER = "content"
MAX_NAME_LENGTH = 120


class SedaError(ValueError):
    """A transfer that cannot be expressed as a valid SEDA message (message in French)."""


@dataclass(frozen=True)
class Agency:
    identifier: str
    # Kept for display: the standard OrganizationDescriptiveMetadata only accepts elements from another
    # namespace, so the name is not written into the manifest.
    name: str | None = None


@dataclass(frozen=True, slots=True)
class DescribedFile:
    path: Path
    filename: str
    size: int
    sha512: str
    crc32: int
    puid: str | None
    mime_type: str | None
    format_name: str | None
    last_modified: datetime


@dataclass(frozen=True, slots=True)
class ArchiveUnitSpec:
    title: str
    description_level: str = "Item"
    description: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    keywords: tuple[str, ...] = ()
    document_type: str | None = None
    originating_agency_archive_unit_identifier: str | None = None
    files: tuple[tuple[DescribedFile, str], ...] = ()
    children: tuple[ArchiveUnitSpec, ...] = ()
    # (rule id, start date, final action); the start date may be unknown (StartDate is optional in SEDA).
    appraisal_rule: tuple[str, date | None, str] | None = None
    access_rule: tuple[str, date | None] | None = None


@dataclass(frozen=True)
class TransferSpec:
    message_identifier: str
    archival_agreement: str | None
    archival_agency: Agency
    transferring_agency: Agency
    originating_agency: Agency
    submission_agency: Agency
    comment: str | None
    units: tuple[ArchiveUnitSpec, ...]
    date: datetime


_NAMESPACE_PATTERN = re.compile(r"fr:gouv:culture:archivesdefrance:seda:v(2\.[0-9]+)")


def version_of_namespace(namespace: str) -> str | None:
    """'2.1', '2.2'… for a SEDA 2.x namespace (even one this builder does not write), None otherwise."""
    match = _NAMESPACE_PATTERN.fullmatch(namespace.strip())
    return match.group(1) if match else None


# --- identifiers ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PlannedObject:
    object_id: str
    uri: str
    usage: str
    file: DescribedFile


@dataclass(frozen=True, slots=True)
class _PlannedUnit:
    unit_id: str
    spec: ArchiveUnitSpec
    group_id: str | None
    objects: tuple[_PlannedObject, ...]
    children: tuple[_PlannedUnit, ...]


class _Counters:
    def __init__(self) -> None:
        self.unit = self.group = self.object = 0


def _plan_units(units: tuple[ArchiveUnitSpec, ...]) -> tuple[_PlannedUnit, ...]:
    """Assign AU/GRP/BDO ids in document order; the same walk serves the manifest and the zip."""
    if not units:
        raise SedaError("Le transfert ne contient aucune unité d'archives.")
    counters = _Counters()
    return tuple(_plan_unit(unit, counters) for unit in units)


def _plan_unit(unit: ArchiveUnitSpec, counters: _Counters) -> _PlannedUnit:
    _check_unit(unit)
    counters.unit += 1
    unit_id = f"AU{counters.unit}"
    group_id = None
    if unit.files:
        # One group per unit: its files are versions (usages) of the same document, and Vitam lets a
        # unit reference a single object group.
        counters.group += 1
        group_id = f"GRP{counters.group}"
    objects = tuple(_plan_object(file, usage, counters) for file, usage in unit.files)
    children = tuple(_plan_unit(child, counters) for child in unit.children)
    return _PlannedUnit(unit_id, unit, group_id, objects, children)


def _plan_object(file: DescribedFile, usage: str, counters: _Counters) -> _PlannedObject:
    if file.size <= 0:
        raise SedaError(f"Le fichier « {file.filename} » est vide : le SEDA impose une taille strictement positive.")
    counters.object += 1
    object_id = f"BDO{counters.object}"
    # The id prefix makes the name unique even when two files share a filename.
    uri = f"{CONTENT_FOLDER}/{object_id}_{_safe_name(file.filename)}"
    return _PlannedObject(object_id, uri, usage, file)


def _check_unit(unit: ArchiveUnitSpec) -> None:
    if not unit.title.strip():
        raise SedaError("Une unité d'archives n'a pas de titre.")
    if unit.description_level not in DESCRIPTION_LEVELS:
        raise SedaError(f"Niveau de description inconnu pour « {unit.title} » : {unit.description_level}.")
    usages = [usage for _, usage in unit.files]
    for usage in usages:
        if not USAGE_PATTERN.fullmatch(usage):
            raise SedaError(f"Usage inconnu pour « {unit.title} » : {usage} (attendu p. ex. BinaryMaster_1).")
    if len(set(usages)) != len(usages):
        raise SedaError(f"L'unité « {unit.title} » déclare deux fichiers avec le même usage.")
    if unit.appraisal_rule and unit.appraisal_rule[2] not in FINAL_ACTIONS:
        action = unit.appraisal_rule[2]
        raise SedaError(f"Sort final inconnu pour « {unit.title} » : {action} (Keep ou Destroy).")


def _safe_name(filename: str) -> str:
    """A zip- and URI-friendly version of a filename: letters and digits (UTF-8 allowed), '.', '-', '_'."""
    name = unicodedata.normalize("NFC", Path(filename.replace("\\", "/")).name)
    name = re.sub(r"[^\w.\-]+", "_", name).strip("._") or "fichier"
    if len(name) > MAX_NAME_LENGTH:
        stem, dot, suffix = name.rpartition(".")
        keep = MAX_NAME_LENGTH - len(suffix) - 1
        name = f"{stem[:keep]}.{suffix}" if dot and 0 < len(suffix) < 16 else name[:MAX_NAME_LENGTH]
    return name


def _walk(units: tuple[_PlannedUnit, ...]) -> Iterator[_PlannedUnit]:
    for unit in units:
        yield unit
        yield from _walk(unit.children)


def sip_entries(spec: TransferSpec) -> list[tuple[str, DescribedFile]]:
    """The (zip entry name, file) pairs to give to packaging.write_sip, matching the manifest's Uri."""
    return [(obj.uri, obj.file) for unit in _walk(_plan_units(spec.units)) for obj in unit.objects]


# --- XML -------------------------------------------------------------------------------------------


class _Writer:
    """Appends namespaced children; kept tiny so each SEDA block reads like the XSD sequence."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def element(self, tag: str, **attributes: str) -> etree._Element:
        """A detached block, serialised on its own by _Output.block."""
        return etree.Element(f"{{{self.namespace}}}{tag}", attributes, nsmap={None: self.namespace})

    def add(self, parent: etree._Element, tag: str, text: str | None = None, **attributes: str) -> etree._Element:
        element = etree.SubElement(parent, f"{{{self.namespace}}}{tag}", attributes)
        if text is not None:
            element.text = text
        return element

    def add_optional(self, parent: etree._Element, tag: str, text: str | None) -> None:
        if text:
            self.add(parent, tag, text)


class _Output:
    """Writes the manifest block by block, exactly as lxml pretty-prints the whole tree (two spaces a level).

    Only the blocks (a DataObjectGroup, a unit's Content…) exist as lxml elements, one at a time: memory does not
    grow with the number of files. The elements that hold many blocks are opened and closed by hand.
    """

    def __init__(self, out: BinaryIO, namespace: str) -> None:
        self.out = out
        self.declaration = f' xmlns="{namespace}"'.encode()

    def open(self, tag: str, depth: int, attributes: str = "") -> None:
        self.out.write(f"{'  ' * depth}<{tag}{attributes}>\n".encode())

    def close(self, tag: str, depth: int) -> None:
        self.out.write(f"{'  ' * depth}</{tag}>\n".encode())

    def block(self, element: etree._Element, depth: int) -> None:
        etree.indent(element, space="  ", level=depth)
        text = etree.tostring(element, encoding="UTF-8")
        # A detached element declares its namespace; in the document, the root already does.
        self.out.write(b"  " * depth + text.replace(self.declaration, b"", 1) + b"\n")


def build_manifest(spec: TransferSpec, *, version: str = "2.2") -> bytes:
    """Return the ArchiveTransfer manifest as UTF-8 XML with declaration.

    Raises SedaError for an unsupported version, a naive date, an empty file or an inconsistent unit.
    """
    out = io.BytesIO()
    write_manifest(spec, out, version=version)
    return out.getvalue()


def write_manifest(spec: TransferSpec, out: BinaryIO, *, version: str = "2.2") -> None:
    """Write the ArchiveTransfer manifest (UTF-8 XML with declaration) to `out`, in constant memory.

    The same bytes as build_manifest. Raises SedaError for an unsupported version, a naive date, an empty
    file or an inconsistent unit (before anything is written).
    """
    namespace = NAMESPACES.get(version)
    if namespace is None:
        supported = ", ".join(sorted(NAMESPACES))
        raise SedaError(f"Version SEDA non prise en charge : {version} (versions disponibles : {supported}).")
    if spec.date.tzinfo is None:
        raise SedaError("La date du message doit comporter un fuseau horaire.")
    units = _plan_units(spec.units)
    writer = _Writer(namespace)
    output = _Output(out, namespace)
    out.write(b"<?xml version='1.0' encoding='UTF-8'?>\n")
    output.open("ArchiveTransfer", 0, f' xmlns="{namespace}"')
    if spec.comment:
        _leaf(writer, output, "Comment", spec.comment)
    _leaf(writer, output, "Date", _datetime(spec.date))
    _leaf(writer, output, "MessageIdentifier", spec.message_identifier)
    if spec.archival_agreement:
        _leaf(writer, output, "ArchivalAgreement", spec.archival_agreement)
    output.block(_code_lists(writer), 1)
    _write_package(writer, output, spec, units)
    output.block(_agency(writer, "ArchivalAgency", spec.archival_agency), 1)
    output.block(_agency(writer, "TransferringAgency", spec.transferring_agency), 1)
    output.close("ArchiveTransfer", 0)


def _leaf(writer: _Writer, output: _Output, tag: str, text: str) -> None:
    element = writer.element(tag)
    element.text = text
    output.block(element, 1)


def _datetime(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def _code_lists(writer: _Writer) -> etree._Element:
    code_lists = writer.element("CodeListVersions")
    for name in CODE_LIST_VERSIONS:
        writer.add(code_lists, name, f"{name}0")
    return code_lists


def _agency(writer: _Writer, tag: str, agency: Agency) -> etree._Element:
    element = writer.element(tag)
    writer.add(element, "Identifier", agency.identifier)
    return element


def _add_agency(writer: _Writer, parent: etree._Element, tag: str, agency: Agency) -> None:
    writer.add(writer.add(parent, tag), "Identifier", agency.identifier)


def _write_package(writer: _Writer, output: _Output, spec: TransferSpec, units: tuple[_PlannedUnit, ...]) -> None:
    output.open("DataObjectPackage", 1)
    for unit in _walk(units):
        if unit.group_id:
            group = writer.element("DataObjectGroup", id=unit.group_id)
            for obj in unit.objects:
                _add_binary_object(writer, group, obj)
            output.block(group, 2)
    output.open("DescriptiveMetadata", 2)
    for unit in units:
        _write_unit(writer, output, unit, spec, depth=3)
    output.close("DescriptiveMetadata", 2)
    management = writer.element("ManagementMetadata")
    writer.add(management, "OriginatingAgencyIdentifier", spec.originating_agency.identifier)
    writer.add(management, "SubmissionAgencyIdentifier", spec.submission_agency.identifier)
    output.block(management, 2)
    output.close("DataObjectPackage", 1)


def _add_binary_object(writer: _Writer, group: etree._Element, obj: _PlannedObject) -> None:
    file = obj.file
    element = writer.add(group, "BinaryDataObject", id=obj.object_id)
    writer.add(element, "DataObjectVersion", obj.usage)
    writer.add(element, "Uri", obj.uri)
    writer.add(element, "MessageDigest", file.sha512, algorithm=DIGEST_ALGORITHM)
    writer.add(element, "Size", str(file.size))
    if file.format_name or file.mime_type or file.puid:
        identification = writer.add(element, "FormatIdentification")
        writer.add_optional(identification, "FormatLitteral", file.format_name)
        writer.add_optional(identification, "MimeType", file.mime_type)
        writer.add_optional(identification, "FormatId", file.puid)
    info = writer.add(element, "FileInfo")
    writer.add(info, "Filename", file.filename)
    writer.add(info, "LastModified", _datetime(file.last_modified))


def _write_unit(writer: _Writer, output: _Output, unit: _PlannedUnit, spec: TransferSpec, *, depth: int) -> None:
    output.open("ArchiveUnit", depth, f' id="{unit.unit_id}"')  # generated ids (AU12): nothing to escape
    if unit.spec.appraisal_rule or unit.spec.access_rule:
        management = writer.element("Management")
        _add_management(writer, management, unit.spec)
        output.block(management, depth + 1)
    content = writer.element("Content")
    _add_content(writer, content, unit.spec, spec if depth == 3 else None)
    output.block(content, depth + 1)
    if unit.group_id:
        reference = writer.element("DataObjectReference")
        writer.add(reference, "DataObjectGroupReferenceId", unit.group_id)
        output.block(reference, depth + 1)
    for child in unit.children:
        _write_unit(writer, output, child, spec, depth=depth + 1)
    output.close("ArchiveUnit", depth)


def _add_management(writer: _Writer, management: etree._Element, unit: ArchiveUnitSpec) -> None:
    if unit.appraisal_rule:
        rule_id, start, final_action = unit.appraisal_rule
        rule = writer.add(management, "AppraisalRule")
        writer.add(rule, "Rule", rule_id)
        writer.add_optional(rule, "StartDate", start.isoformat() if start else None)
        writer.add(rule, "FinalAction", final_action)
    if unit.access_rule:
        rule_id, start = unit.access_rule
        rule = writer.add(management, "AccessRule")
        writer.add(rule, "Rule", rule_id)
        writer.add_optional(rule, "StartDate", start.isoformat() if start else None)


def _add_content(
    writer: _Writer, content: etree._Element, unit: ArchiveUnitSpec, root_spec: TransferSpec | None
) -> None:
    writer.add(content, "DescriptionLevel", unit.description_level)
    writer.add(content, "Title", unit.title)
    writer.add_optional(
        content, "OriginatingAgencyArchiveUnitIdentifier", unit.originating_agency_archive_unit_identifier
    )
    writer.add_optional(content, "Description", unit.description)
    writer.add_optional(content, "DocumentType", unit.document_type)
    for keyword in unit.keywords:
        writer.add(writer.add(content, "Keyword"), "KeywordContent", keyword)
    if root_spec is not None:
        # Children inherit the agencies of their root unit: repeating them would only add noise.
        _add_agency(writer, content, "OriginatingAgency", root_spec.originating_agency)
        _add_agency(writer, content, "SubmissionAgency", root_spec.submission_agency)
    # StartDate/EndDate are SEDA DateType (a union that accepts xsd:date): a plain date is exact.
    if unit.start_date:
        writer.add(content, "StartDate", unit.start_date.isoformat())
    if unit.end_date:
        writer.add(content, "EndDate", unit.end_date.isoformat())
