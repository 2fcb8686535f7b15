"""Building a SEDA ArchiveTransfer manifest from plain dataclasses.

Pure domain code: no database, no storage, no network. The element order follows the official XSDs
(seda-2.2-main.xsd, -technical, -management, -ontology); lxml does not reorder anything, so the
functions below append children exactly in schema order.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import BinaryIO

from lxml import etree

__all__ = [
    "AGENT_ROLES",
    "NAMESPACES",
    "ROOT_UNIT_DEPTH",
    "Agency",
    "AgentSpec",
    "ArchiveUnitSpec",
    "DescribedFile",
    "ManifestParts",
    "Numbering",
    "PlannedObject",
    "SedaError",
    "TransferSpec",
    "build_manifest",
    "check_size",
    "check_unit",
    "sip_entries",
    "version_of_namespace",
    "write_manifest",
]

# One entry per supported SEDA version. Compared in the XSDs for everything this builder writes (header,
# CodeListVersions, DataObjectGroup/BinaryDataObject, Content, AppraisalRule/AccessRule, agencies): the
# three versions declare the same elements in the same order; only the namespace changes. 2.3 differs from
# 2.2 in the technical and ontology parts alone (SigningInformation replaces Signature, PersistentIdentifier,
# DataObjectUse/DataObjectNumber), all optional and not written here. The Vitam edition of 2.1 relaxes
# its sequences with xsd:any (hence XSD 1.1) but accepts the same elements, except the generic Agent (only
# an abstract AgentAbstract there): see _agents.
NAMESPACES: dict[str, str] = {
    "2.1": "fr:gouv:culture:archivesdefrance:seda:v2.1",
    "2.2": "fr:gouv:culture:archivesdefrance:seda:v2.2",
    "2.3": "fr:gouv:culture:archivesdefrance:seda:v2.3",
}
_VERSIONS = {namespace: version for version, namespace in NAMESPACES.items()}

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
# The usages Vitam accepts as DataObjectVersion (CHECK_MANIFEST_DATAOBJECT_VERSION), each optionally followed by
# a version number, « un entier positif ou nul » (BinaryMaster_0 included); any other usage is refused.
BINARY_USAGES = ("BinaryMaster", "Dissemination", "Thumbnail", "TextContent")
OBJECT_USAGES = (*BINARY_USAGES, "PhysicalMaster")
# What socle builds: PhysicalMaster is left out, it is not a binary object.
USAGE_PATTERN = re.compile(rf"({'|'.join(BINARY_USAGES)})(_[0-9]+)?")
DIGEST_ALGORITHM = "SHA-512"
CONTENT_FOLDER = "content"
MAX_NAME_LENGTH = 120
# A zip entry's last path component (BDO{n}_name) in UTF-8 bytes: unzip and most file systems stop at 255 per
# component (« File name too long »), and 120 CJK characters are 360 bytes.
MAX_NAME_BYTES = 240


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


# The roles of the people and bodies a unit names (SEDA AgentType), in the order of the XSD's Content sequence
# (2.1, 2.2 and 2.3 alike): AuthorizedAgent, Writer, then the audience (Addressee, Recipient, Transmitter,
# Sender). Signer is not an AgentType anywhere: see _signers for where signatories go in each version.
AGENT_ROLES = ("AuthorizedAgent", "Writer", "Addressee", "Recipient", "Transmitter", "Sender", "Signer")
SIGNER_ROLE = "Signataire"  # the Role (BusinessGroup) that tells a signatory from the other agents


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """A person (names) or a body (corpname) as SEDA's AgentType describes it (written in the XSD's order)."""

    full_name: str | None = None
    first_name: str | None = None
    birth_name: str | None = None
    given_name: str | None = None
    corpname: str | None = None  # a body: the XSD's other branch, without the person's names
    identifiers: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()
    activities: tuple[str, ...] = ()
    positions: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()


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
    # Further rules of the same block, after the first one (SEDA repeats Rule/StartDate; one FinalAction).
    more_appraisal_rules: tuple[tuple[str, date | None], ...] = ()
    more_access_rules: tuple[tuple[str, date | None], ...] = ()
    file_plan_positions: tuple[str, ...] = ()
    originating_system_ids: tuple[str, ...] = ()
    archival_agency_archive_unit_identifiers: tuple[str, ...] = ()
    transferring_agency_archive_unit_identifiers: tuple[str, ...] = ()
    custodial_history: tuple[str, ...] = ()  # CustodialHistoryItem texts, in order
    languages: tuple[str, ...] = ()  # xsd:language codes (fr, fr-FR…)
    description_language: str | None = None
    # role (AGENT_ROLES) → the agents in that role, in order.
    agents: Mapping[str, tuple[AgentSpec, ...]] = field(default_factory=dict)
    # SEDA DateType: a date, or a date-time when the time is known (a mail's SentDate).
    created_date: date | datetime | None = None
    transacted_date: date | datetime | None = None
    acquired_date: date | datetime | None = None
    sent_date: date | datetime | None = None
    received_date: date | datetime | None = None
    registered_date: date | datetime | None = None


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
    # The SAE's id of the archival profile the package follows (ManagementMetadata/ArchivalProfile). With
    # archival_agreement, what an SAE such as Vitam checks the package against first.
    archival_profile: str | None = None


_NAMESPACE_PATTERN = re.compile(r"fr:gouv:culture:archivesdefrance:seda:v(2\.[0-9]+)")


def version_of_namespace(namespace: str) -> str | None:
    """'2.1', '2.2'… for a SEDA 2.x namespace (even one this builder does not write), None otherwise."""
    match = _NAMESPACE_PATTERN.fullmatch(namespace.strip())
    return match.group(1) if match else None


# --- identifiers ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedObject:
    object_id: str
    uri: str
    usage: str
    file: DescribedFile


@dataclass(frozen=True, slots=True)
class _PlannedUnit:
    unit_id: str
    spec: ArchiveUnitSpec
    group_id: str | None
    objects: tuple[PlannedObject, ...]
    children: tuple[_PlannedUnit, ...]


class Numbering:
    """AU/GRP/BDO ids and zip entry names in document order: the manifest, the zip and a streamed build
    (packaging.build_sip) all number the same way."""

    def __init__(self) -> None:
        self.units = self.groups = self.objects = 0

    def unit(self) -> str:
        self.units += 1
        return f"AU{self.units}"

    def group(self) -> str:
        # One group per unit with files: its files are versions (usages) of the same document, and Vitam
        # lets a unit reference a single object group.
        self.groups += 1
        return f"GRP{self.groups}"

    def object(self, filename: str) -> tuple[str, str]:
        """The next object id and its entry name in the zip (the manifest's Uri)."""
        self.objects += 1
        object_id = f"BDO{self.objects}"
        # The id prefix makes the name unique even when two files share a filename.
        prefix = f"{object_id}_"
        return object_id, f"{CONTENT_FOLDER}/{prefix}{_safe_name(filename, MAX_NAME_BYTES - len(prefix))}"


def _plan_units(units: tuple[ArchiveUnitSpec, ...]) -> tuple[_PlannedUnit, ...]:
    """Assign AU/GRP/BDO ids in document order; the same walk serves the manifest and the zip."""
    if not units:
        raise SedaError("Le transfert ne contient aucune unité d'archives.")
    numbering = Numbering()
    return tuple(_plan_unit(unit, numbering) for unit in units)


def _plan_unit(unit: ArchiveUnitSpec, numbering: Numbering) -> _PlannedUnit:
    check_unit(unit, [usage for _, usage in unit.files])
    unit_id = numbering.unit()
    group_id = numbering.group() if unit.files else None
    objects = tuple(_plan_object(file, usage, numbering) for file, usage in unit.files)
    children = tuple(_plan_unit(child, numbering) for child in unit.children)
    return _PlannedUnit(unit_id, unit, group_id, objects, children)


def _plan_object(file: DescribedFile, usage: str, numbering: Numbering) -> PlannedObject:
    check_size(file)
    object_id, uri = numbering.object(file.filename)
    return PlannedObject(object_id, uri, usage, file)


def check_size(file: DescribedFile) -> None:
    if file.size <= 0:
        raise SedaError(f"Le fichier « {file.filename} » est vide : le SEDA impose une taille strictement positive.")


def check_unit(unit: ArchiveUnitSpec, usages: list[str]) -> None:
    """Raise SedaError for what the XSD or an SAE would refuse in a unit whose files have these usages."""
    if not unit.title.strip():
        raise SedaError("Une unité d'archives n'a pas de titre.")
    if unit.description_level not in DESCRIPTION_LEVELS:
        raise SedaError(f"Niveau de description inconnu pour « {unit.title} » : {unit.description_level}.")
    for usage in usages:
        if not USAGE_PATTERN.fullmatch(usage):
            raise SedaError(f"Usage inconnu pour « {unit.title} » : {usage} (attendu p. ex. BinaryMaster_1).")
    if len(set(usages)) != len(usages):
        raise SedaError(f"L'unité « {unit.title} » déclare deux fichiers avec le même usage.")
    if unit.appraisal_rule and unit.appraisal_rule[2] not in FINAL_ACTIONS:
        action = unit.appraisal_rule[2]
        raise SedaError(f"Sort final inconnu pour « {unit.title} » : {action} (Keep ou Destroy).")
    if (unit.more_appraisal_rules and not unit.appraisal_rule) or (unit.more_access_rules and not unit.access_rule):
        raise SedaError(f"L'unité « {unit.title} » a des règles supplémentaires sans première règle.")
    for role, agents in unit.agents.items():
        if role not in AGENT_ROLES:
            raise SedaError(f"Rôle inconnu pour « {unit.title} » : {role} (attendu {', '.join(AGENT_ROLES)}).")
        for agent in agents:
            _check_agent(unit.title, role, agent)


def _check_agent(title: str, role: str, agent: AgentSpec) -> None:
    names = (agent.first_name, agent.birth_name, agent.full_name, agent.given_name)
    if not any(value and value.strip() for value in (*names, agent.corpname, *agent.identifiers)):
        raise SedaError(f"Un agent ({role}) de « {title} » n'a ni nom ni identifiant.")
    if agent.corpname and any(names):
        # The XSD's choice: the names of a person, or the name of a body (Corpname), never both.
        raise SedaError(f"Un agent ({role}) de « {title} » a à la fois un nom de personne et Corpname.")


def _safe_name(filename: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """A zip- and URI-friendly version of a filename: letters and digits (UTF-8 allowed), '.', '-', '_'; at most
    MAX_NAME_LENGTH characters and ``max_bytes`` UTF-8 bytes, its extension kept."""
    name = unicodedata.normalize("NFC", Path(filename.replace("\\", "/")).name)
    name = re.sub(r"[^\w.\-]+", "_", name).strip("._") or "fichier"
    if len(name) > MAX_NAME_LENGTH or len(name.encode()) > max_bytes:
        stem, dot, suffix = name.rpartition(".")
        if dot and 0 < len(suffix) < 16:
            name = _cut(stem, MAX_NAME_LENGTH - len(suffix) - 1, max_bytes - len(suffix.encode()) - 1) + "." + suffix
        else:
            name = _cut(name, MAX_NAME_LENGTH, max_bytes)
    return name


def _cut(text: str, characters: int, size: int) -> str:
    """The start of ``text``: at most ``characters`` characters and ``size`` UTF-8 bytes, never half a character."""
    text = text[:characters]
    while text and len(text.encode()) > size:
        text = text[: -max(1, (len(text.encode()) - size) // 4)]  # a character is 1 to 4 bytes: few rounds
    return text


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


class _Output:
    """Writes blocks exactly as lxml pretty-prints the whole tree (two spaces a level).

    Only the blocks (a DataObjectGroup, a unit's Content…) exist as lxml elements, one at a time: memory does not
    grow with the number of files. The elements that hold many blocks are opened and closed by hand.
    """

    def __init__(self, namespace: str) -> None:
        self.declaration = f' xmlns="{namespace}"'.encode()

    def open(self, out: BinaryIO, tag: str, depth: int, attributes: str = "") -> None:
        out.write(f"{'  ' * depth}<{tag}{attributes}>\n".encode())

    def close(self, out: BinaryIO, tag: str, depth: int) -> None:
        out.write(f"{'  ' * depth}</{tag}>\n".encode())

    def block(self, out: BinaryIO, element: etree._Element, depth: int) -> None:
        etree.indent(element, space="  ", level=depth)
        text = etree.tostring(element, encoding="UTF-8")
        # A detached element declares its namespace; in the document, the root already does.
        out.write(b"  " * depth + text.replace(self.declaration, b"", 1) + b"\n")


ROOT_UNIT_DEPTH = 3  # ArchiveTransfer > DataObjectPackage > DescriptiveMetadata > ArchiveUnit


class ManifestParts:
    """The pieces of a manifest, each written on its own: head, groups, units, tail.

    A manifest is `head`, every `group`, `units_start`, every unit (`open_unit`, its children, `close_unit`),
    then `tail`. write_manifest writes them in that order to one output; packaging.build_sip writes groups
    and units to two spools while it reads the files, then joins them. Raises SedaError for an unsupported
    version or a naive date.
    """

    def __init__(self, spec: TransferSpec, version: str = "2.2") -> None:
        namespace = NAMESPACES.get(version)
        if namespace is None:
            supported = ", ".join(sorted(NAMESPACES))
            raise SedaError(f"Version SEDA non prise en charge : {version} (versions disponibles : {supported}).")
        if spec.date.tzinfo is None:
            raise SedaError("La date du message doit comporter un fuseau horaire.")
        self.spec = spec
        self.namespace = namespace
        self.writer = _Writer(namespace)
        self.output = _Output(namespace)

    def head(self, out: BinaryIO) -> None:
        spec, output = self.spec, self.output
        out.write(b"<?xml version='1.0' encoding='UTF-8'?>\n")
        output.open(out, "ArchiveTransfer", 0, f' xmlns="{self.namespace}"')
        if spec.comment:
            self._leaf(out, "Comment", spec.comment)
        self._leaf(out, "Date", _datetime(spec.date))
        self._leaf(out, "MessageIdentifier", spec.message_identifier)
        if spec.archival_agreement:
            self._leaf(out, "ArchivalAgreement", spec.archival_agreement)
        output.block(out, _code_lists(self.writer), 1)
        output.open(out, "DataObjectPackage", 1)

    def group(self, out: BinaryIO, group_id: str, objects: Sequence[PlannedObject]) -> None:
        block = _Block(2)
        with block.element("DataObjectGroup", f' id="{group_id}"'):
            for obj in objects:
                _binary_object(block, obj)
        out.write(block.bytes())

    def units_start(self, out: BinaryIO) -> None:
        self.output.open(out, "DescriptiveMetadata", 2)

    def open_unit(self, out: BinaryIO, unit_id: str, unit: ArchiveUnitSpec, group_id: str | None, depth: int) -> None:
        """A unit's opening tag and own blocks; its children follow, then close_unit. Root units are at
        ROOT_UNIT_DEPTH."""
        block = _Block(depth)
        block.open("ArchiveUnit", f' id="{unit_id}"')  # generated ids (AU12): nothing to escape
        if unit.appraisal_rule or unit.access_rule:
            with block.element("Management"):
                _management(block, unit)
        with block.element("Content"):
            _content(block, unit, self.spec if depth == ROOT_UNIT_DEPTH else None, _VERSIONS[self.namespace])
        if group_id:
            with block.element("DataObjectReference"):
                block.leaf("DataObjectGroupReferenceId", group_id)
        out.write(block.bytes())

    def close_unit(self, out: BinaryIO, depth: int) -> None:
        self.output.close(out, "ArchiveUnit", depth)

    def tail(self, out: BinaryIO) -> None:
        spec, writer, output = self.spec, self.writer, self.output
        output.close(out, "DescriptiveMetadata", 2)
        management = writer.element("ManagementMetadata")
        # The XSD order (2.1, 2.2 and 2.3 alike): ArchivalProfile, ServiceLevel, AcquisitionInformation,
        # LegalStatus, OriginatingAgencyIdentifier, SubmissionAgencyIdentifier, then the management rules.
        if spec.archival_profile:
            writer.add(management, "ArchivalProfile", spec.archival_profile)
        writer.add(management, "OriginatingAgencyIdentifier", spec.originating_agency.identifier)
        writer.add(management, "SubmissionAgencyIdentifier", spec.submission_agency.identifier)
        output.block(out, management, 2)
        output.close(out, "DataObjectPackage", 1)
        output.block(out, _agency(writer, "ArchivalAgency", spec.archival_agency), 1)
        output.block(out, _agency(writer, "TransferringAgency", spec.transferring_agency), 1)
        output.close(out, "ArchiveTransfer", 0)

    def _leaf(self, out: BinaryIO, tag: str, text: str) -> None:
        element = self.writer.element(tag)
        element.text = text
        self.output.block(out, element, 1)


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
    parts = ManifestParts(spec, version)
    units = _plan_units(spec.units)
    parts.head(out)
    for unit in _walk(units):
        if unit.group_id:
            parts.group(out, unit.group_id, unit.objects)
    parts.units_start(out)
    for unit in units:
        _write_unit(parts, out, unit, ROOT_UNIT_DEPTH)
    parts.tail(out)


def _write_unit(parts: ManifestParts, out: BinaryIO, unit: _PlannedUnit, depth: int) -> None:
    parts.open_unit(out, unit.unit_id, unit.spec, unit.group_id, depth)
    for child in unit.children:
        _write_unit(parts, out, child, depth + 1)
    parts.close_unit(out, depth)


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


# --- the blocks written for every file, as text ------------------------------------------------------
# These are written once per file (a group, a unit): as lxml elements, indented then serialised, they cost
# 80 µs a file, a tenth of the time to build a package. Written as text here, byte for byte what lxml writes
# (tests/archive/test_archive_streaming_build.py compares them on awkward values).

# What lxml refuses to serialise (C0 controls but tab, newline and carriage return; U+FFFE, U+FFFF;
# surrogates): refused here too, in French.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


_SPECIAL = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _escaped(text: str) -> str:
    """Text content as libxml2 escapes it."""
    if not _SPECIAL.search(text):  # nearly always: one scan, no copy
        return text
    if _NOT_XML.search(text):
        shown = text.encode("unicode_escape").decode("ascii")
        raise SedaError(f"Caractère interdit en XML dans « {shown} » : corrigez ce nom ou cette valeur.")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


class _Block:
    """Lines of XML indented two spaces a level from `depth`, as lxml pretty-prints them."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.lines: list[str] = []

    def open(self, tag: str, attributes: str = "") -> None:
        self.lines.append(f"{'  ' * self.depth}<{tag}{attributes}>\n")
        self.depth += 1

    def close(self, tag: str) -> None:
        self.depth -= 1
        self.lines.append(f"{'  ' * self.depth}</{tag}>\n")

    @contextmanager
    def element(self, tag: str, attributes: str = "") -> Iterator[None]:
        self.open(tag, attributes)
        yield
        self.close(tag)

    def leaf(self, tag: str, text: str, attributes: str = "") -> None:
        self.lines.append(f"{'  ' * self.depth}<{tag}{attributes}>{_escaped(text)}</{tag}>\n")

    def optional(self, tag: str, text: str | None) -> None:
        if text:
            self.leaf(tag, text)

    def bytes(self) -> bytes:
        return "".join(self.lines).encode("utf-8")


def _binary_object(block: _Block, obj: PlannedObject) -> None:
    # Written out rather than through open/leaf/close: this runs for every file.
    file, lines = obj.file, block.lines
    at, inner, deepest = "  " * block.depth, "  " * (block.depth + 1), "  " * (block.depth + 2)
    lines.append(f'{at}<BinaryDataObject id="{obj.object_id}">\n')
    lines.append(f"{inner}<DataObjectVersion>{_escaped(obj.usage)}</DataObjectVersion>\n")
    lines.append(f"{inner}<Uri>{_escaped(obj.uri)}</Uri>\n")
    lines.append(f'{inner}<MessageDigest algorithm="{DIGEST_ALGORITHM}">{_escaped(file.sha512)}</MessageDigest>\n')
    lines.append(f"{inner}<Size>{file.size}</Size>\n")
    if file.format_name or file.mime_type or file.puid:
        lines.append(f"{inner}<FormatIdentification>\n")
        for tag, value in (("FormatLitteral", file.format_name), ("MimeType", file.mime_type), ("FormatId", file.puid)):
            if value:
                lines.append(f"{deepest}<{tag}>{_escaped(value)}</{tag}>\n")
        lines.append(f"{inner}</FormatIdentification>\n")
    lines.append(f"{inner}<FileInfo>\n")
    lines.append(f"{deepest}<Filename>{_escaped(file.filename)}</Filename>\n")
    lines.append(f"{deepest}<LastModified>{_datetime(file.last_modified)}</LastModified>\n")
    lines.append(f"{inner}</FileInfo>\n")
    lines.append(f"{at}</BinaryDataObject>\n")


def _management(block: _Block, unit: ArchiveUnitSpec) -> None:
    if unit.appraisal_rule:
        first_id, first_start, final_action = unit.appraisal_rule
        with block.element("AppraisalRule"):
            for rule_id, start in ((first_id, first_start), *unit.more_appraisal_rules):
                block.leaf("Rule", rule_id)
                block.optional("StartDate", start.isoformat() if start else None)
            block.leaf("FinalAction", final_action)
    if unit.access_rule:
        with block.element("AccessRule"):
            for rule_id, start in (unit.access_rule, *unit.more_access_rules):
                block.leaf("Rule", rule_id)
                block.optional("StartDate", start.isoformat() if start else None)


def _content(block: _Block, unit: ArchiveUnitSpec, root_spec: TransferSpec | None, version: str) -> None:
    """The unit's Content in the order of the XSD's sequence (BaseObjectGroup in the ontology XSD), the same in
    2.1, 2.2 and 2.3 for the elements written here but the signatories (see _agents)."""
    block.leaf("DescriptionLevel", unit.description_level)
    block.leaf("Title", unit.title)
    for tag, values in (
        ("FilePlanPosition", unit.file_plan_positions),
        ("OriginatingSystemId", unit.originating_system_ids),
        ("ArchivalAgencyArchiveUnitIdentifier", unit.archival_agency_archive_unit_identifiers),
    ):
        for value in values:
            block.leaf(tag, value)
    block.optional("OriginatingAgencyArchiveUnitIdentifier", unit.originating_agency_archive_unit_identifier)
    for value in unit.transferring_agency_archive_unit_identifiers:
        block.leaf("TransferringAgencyArchiveUnitIdentifier", value)
    block.optional("Description", unit.description)
    if unit.custodial_history:
        with block.element("CustodialHistory"):
            for item in unit.custodial_history:
                block.leaf("CustodialHistoryItem", item)
    block.optional("DocumentType", unit.document_type)
    for language in unit.languages:
        block.leaf("Language", language)
    block.optional("DescriptionLanguage", unit.description_language)
    for keyword in unit.keywords:
        with block.element("Keyword"):
            block.leaf("KeywordContent", keyword)
    if root_spec is not None:
        # Children inherit the agencies of their root unit: repeating them would only add noise.
        for tag, agency in (
            ("OriginatingAgency", root_spec.originating_agency),
            ("SubmissionAgency", root_spec.submission_agency),
        ):
            with block.element(tag):
                block.leaf("Identifier", agency.identifier)
    if unit.agents:
        _agents(block, unit.agents, version)
    # SEDA DateType is a union that accepts xsd:date and xsd:dateTime: a plain date is exact, a date-time keeps
    # the time (and its offset when known).
    for tag, moment in (
        ("CreatedDate", unit.created_date),
        ("TransactedDate", unit.transacted_date),
        ("AcquiredDate", unit.acquired_date),
        ("SentDate", unit.sent_date),
        ("ReceivedDate", unit.received_date),
        ("RegisteredDate", unit.registered_date),
        ("StartDate", unit.start_date),
        ("EndDate", unit.end_date),
    ):
        if moment:
            block.leaf(tag, moment.isoformat())


_AUDIENCE = ("Addressee", "Recipient", "Transmitter", "Sender")


def _agents(block: _Block, agents: Mapping[str, tuple[AgentSpec, ...]], version: str) -> None:
    """The agents at their places: Agent, AuthorizedAgent, Writer, then Addressee, Recipient, Transmitter, Sender.

    Signatories have no place of their own: SEDA's Signer exists only inside Signature (2.1, 2.2), which also
    requires the signature's Validator with its ValidationTime and the signed object's digest, and inside 2.3's
    SigningInformation/SignatureDescription, which requires the SigningTime. Who signed is all a GED knows of a
    signature, so signatories are written as agents whose Role is « Signataire »: the generic Agent in 2.2 and
    2.3; in 2.1, which has no generic Agent (only an abstract one), as Writer, rather than being left out.
    """
    signers = tuple(
        agent if SIGNER_ROLE in agent.roles else replace(agent, roles=(*agent.roles, SIGNER_ROLE))
        for agent in agents.get("Signer", ())
    )
    if version != "2.1":
        _agent_list(block, "Agent", signers)
    _agent_list(block, "AuthorizedAgent", agents.get("AuthorizedAgent", ()))
    _agent_list(block, "Writer", agents.get("Writer", ()))
    if version == "2.1":
        _agent_list(block, "Writer", signers)
    for role in _AUDIENCE:
        _agent_list(block, role, agents.get(role, ()))


def _agent_list(block: _Block, tag: str, agents: Sequence[AgentSpec]) -> None:
    for agent in agents:
        with block.element(tag):
            # PersonOrEntityGroup: the person's names or Corpname (check_unit refuses both), then Identifier.
            block.optional("FirstName", agent.first_name)
            block.optional("BirthName", agent.birth_name)
            block.optional("FullName", agent.full_name)
            block.optional("GivenName", agent.given_name)
            block.optional("Corpname", agent.corpname)
            # Identifier, then BusinessGroup (Function, Activity, Position, Role); blank values are left out.
            for name, values in (
                ("Identifier", agent.identifiers),
                ("Function", agent.functions),
                ("Activity", agent.activities),
                ("Position", agent.positions),
                ("Role", agent.roles),
            ):
                for value in values:
                    block.optional(name, value)
