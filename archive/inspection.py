"""Inspecting any SEDA 2.x package (socle's, ReSIP's, Vitam's samples): its tree, and every digest re-computed.

Domain code: reads a zip, returns an InspectionReport (messages in French), writes nothing. A package is
untrusted input, so:
- nothing is extracted; entry names that are absolute or climb out (``../``) are refused and never read;
- an entry whose declared size or compression ratio exceeds the limits is refused before reading, and
  while reading the bytes are counted, never trusting the header (a lying header cannot inflate further);
- the manifest is parsed without DTD, entity substitution or network, and any DOCTYPE is refused
  (external entities, billion laughs).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import lzma
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO
from urllib.parse import unquote

from lxml import etree

from archive.seda import version_of_namespace

__all__ = [
    "InspectedObject",
    "InspectedUnit",
    "InspectionLimits",
    "InspectionReport",
    "PackageRefused",
    "ReadPackage",
    "Refused",
    "entry_refusal",
    "inspect_sip",
    "layout_problems",
    "read_chunks",
    "read_package",
    "render_text",
    "unsafe_name",
]

CHUNK_SIZE = 1024 * 1024
MAX_DEPTH = 200  # units nested (or chained by reference) deeper than this are not listed
# The SEDA code list of digest algorithms (MessageDigestAlgorithmCodeList), spelled as in manifests.
HASH_NAMES = {"SHA-512": "sha512", "SHA-384": "sha384", "SHA-256": "sha256", "SHA-1": "sha1", "MD5": "md5"}
# What reading a damaged entry may raise: corrupt deflate/LZMA data surfaces as zlib.error / LZMAError.
UNREADABLE = (zipfile.BadZipFile, OSError, NotImplementedError, EOFError, zlib.error, lzma.LZMAError)


@dataclass(frozen=True)
class InspectionLimits:
    """What an inspection accepts; lower them for uploads from the web, or in tests."""

    max_entries: int = 200_000
    max_entry_size: int = 16 * 1024**3
    max_total_size: int = 256 * 1024**3
    max_manifest_size: int = 512 * 1024**2
    # Deflate gives about 1,000:1 on zeros, real documents rarely 20:1; small entries may legitimately
    # compress far better (a blank page), so the ratio is only checked above ratio_floor bytes.
    max_ratio: float = 100.0
    ratio_floor: int = 1024 * 1024


@dataclass(frozen=True)
class InspectedObject:
    object_id: str
    group_id: str | None
    usage: str | None
    uri: str | None
    entry: str | None  # the zip entry actually read (Content/ and content/ are both accepted)
    filename: str | None
    algorithm: str | None
    declared_digest: str | None
    computed_digest: str | None
    declared_size: int | None
    computed_size: int | None
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class InspectedUnit:
    unit_id: str
    title: str | None
    level: str | None
    object_ids: tuple[str, ...]
    children: tuple[InspectedUnit, ...] = ()


@dataclass(frozen=True)
class InspectionReport:
    filename: str
    version: str | None = None
    message_identifier: str | None = None
    units: tuple[InspectedUnit, ...] = ()
    objects: tuple[InspectedObject, ...] = ()
    # Package-level problems; each object's own are in InspectedObject.problems (see all_problems).
    problems: tuple[str, ...] = ()

    @property
    def all_problems(self) -> tuple[str, ...]:
        return (*self.problems, *(problem for obj in self.objects for problem in obj.problems))

    @property
    def ok(self) -> bool:
        return not self.all_problems


class Refused(Exception):
    """A reason to stop the inspection (French message)."""


class PackageRefused(Refused):
    """The package cannot be read past its manifest; `problems` ends with why, after the entries refused."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[-1])
        self.problems = tuple(problems)


# --- entries -----------------------------------------------------------------------------------------


def unsafe_name(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return (
        name.startswith(("/", "\\"))
        or "\\" in name
        or "\x00" in name
        or re.match(r"[A-Za-z]:", name) is not None
        or ".." in parts
    )


def _check_entries(
    infos: list[zipfile.ZipInfo], limits: InspectionLimits
) -> tuple[dict[str, zipfile.ZipInfo], list[str]]:
    """The entries safe to read, by name, and why the others are refused."""
    if len(infos) > limits.max_entries:
        raise Refused(f"Le paquet contient {len(infos)} entrées, plus que la limite de {limits.max_entries}.")
    safe: dict[str, zipfile.ZipInfo] = {}
    problems: list[str] = []
    for info in infos:
        reason = entry_refusal(info, limits)
        if reason is None and info.filename in safe:
            reason = "nom en double dans le zip"
        if reason:
            problems.append(f"Entrée « {info.filename} » refusée : {reason}.")
        elif not info.is_dir():
            safe[info.filename] = info
    total = sum(info.file_size for info in safe.values())
    if total > limits.max_total_size:
        raise Refused(
            f"Le paquet déclare {total} octets une fois décompressé, plus que la limite de {limits.max_total_size}."
        )
    return safe, problems


def entry_refusal(info: zipfile.ZipInfo, limits: InspectionLimits) -> str | None:
    if unsafe_name(info.filename):
        return "chemin absolu ou sortant du paquet"
    if info.flag_bits & 0x1:
        return "entrée chiffrée"
    if info.file_size > limits.max_entry_size:
        return f"taille déclarée {info.file_size} octets, au-delà de la limite de {limits.max_entry_size}"
    if info.file_size > limits.ratio_floor and info.file_size > limits.max_ratio * max(info.compress_size, 1):
        ratio = info.file_size / max(info.compress_size, 1)
        limit = f"{limits.max_ratio:.0f}:1"
        return f"taux de compression {ratio:.0f}:1 au-delà de la limite de {limit} (bombe de décompression ?)"
    return None


def read_chunks(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: InspectionLimits) -> Iterator[bytes]:
    """An entry's bytes, counted: more than declared, than the size limit or than the ratio stops the reading."""
    size = 0
    ceiling = min(info.file_size, limits.max_entry_size)
    with archive.open(info) as stream:
        while chunk := stream.read(CHUNK_SIZE):
            size += len(chunk)
            if size > ceiling:
                raise Refused(f"l'entrée « {info.filename} » donne plus d'octets que déclaré ({info.file_size})")
            if size > limits.ratio_floor and size > limits.max_ratio * max(info.compress_size, 1):
                raise Refused(f"l'entrée « {info.filename} » dépasse le taux de compression autorisé")
            yield chunk


def _unreadable_reason(error: Exception) -> str:
    if isinstance(error, (zlib.error, lzma.LZMAError)):
        return f"données compressées corrompues : {error}"
    return unreadable_zip_reason(error)


def unreadable_zip_reason(error: Exception) -> str:
    """Why a zip cannot be opened, in French: zipfile's own words are English."""
    if isinstance(error, zipfile.BadZipFile):
        if str(error) == "File is not a zip file":  # zipfile's words when it finds no central directory
            return "ce n'est pas un fichier zip, ou il est tronqué"
        return f"zip endommagé ({error})"
    if isinstance(error, EOFError):
        return "fichier tronqué"
    if isinstance(error, OSError) and error.strerror:
        return f"lecture impossible ({error.strerror})"
    return str(error)


# --- manifest ----------------------------------------------------------------------------------------


def _find_manifest(safe: dict[str, zipfile.ZipInfo], infos: list[zipfile.ZipInfo]) -> zipfile.ZipInfo:
    found = [info for name, info in safe.items() if name.lower() == "manifest.xml"]
    if not found and any(info.filename.lower() == "manifest.xml" for info in infos):
        raise Refused("Le manifest.xml ayant été refusé, ni l'arborescence ni les empreintes ne sont vérifiées.")
    if len(found) != 1:
        raise Refused(
            "Le paquet ne contient pas de manifest.xml à sa racine." if not found else "Plusieurs manifest.xml."
        )
    return found[0]


def _read_manifest(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: InspectionLimits) -> bytes:
    if info.file_size > limits.max_manifest_size:
        raise Refused(f"Le manifeste fait {info.file_size} octets, plus que la limite de {limits.max_manifest_size}.")
    try:
        return b"".join(read_chunks(archive, info, limits))
    except UNREADABLE as error:
        raise Refused(f"Le manifeste est illisible : {_unreadable_reason(error)}.") from None
    except Refused as refused:
        raise Refused(f"Manifeste refusé : {refused}.") from None


def _parse_manifest(data: bytes) -> etree._Element:
    # No DTD loaded, no entity substituted, no network; huge_tree=False keeps libxml2's depth and size guards.
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )
    try:
        tree = etree.ElementTree(etree.fromstring(data, parser))
    except etree.XMLSyntaxError as error:
        if "entit" in str(error).lower() or b"<!DOCTYPE" in data[:65536]:
            raise Refused("Manifeste refusé : il déclare une DTD ou des entités XML, interdites ici.") from None
        raise Refused(f"Le manifeste est mal formé : {error}.") from None
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise Refused("Manifeste refusé : il déclare une DTD (DOCTYPE), interdite ici (entités externes).")
    return tree.getroot()


# --- objects -----------------------------------------------------------------------------------------


@dataclass
class _Context:
    archive: zipfile.ZipFile
    safe: dict[str, zipfile.ZipInfo]
    limits: InspectionLimits
    namespace: str
    used_entries: set[str] = field(default_factory=set)
    # (entry, hash name) → (digest, size): objects declaring the same entry read it once (a few KB of zip could
    # make two thousand objects hash the same 1 MB of zeros, 2 GB in all).
    digests: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    read_bytes: int = 0  # every byte read for the objects, counted against limits.max_total_size

    def tag(self, name: str) -> str:
        return f"{{{self.namespace}}}{name}"

    def text(self, element: etree._Element, path: str) -> str | None:
        found = element.find("/".join(self.tag(part) for part in path.split("/")))
        value = (found.text or "").strip() if found is not None else ""
        return value or None


def _group_of(context: _Context, element: etree._Element) -> str | None:
    parent = element.getparent()
    if parent is not None and parent.tag == context.tag("DataObjectGroup"):
        return str(parent.get("id", "")) or None
    # SEDA 2.1 style: objects beside each other, grouped by a DataObjectGroupId / ReferenceId child.
    return context.text(element, "DataObjectGroupId") or context.text(element, "DataObjectGroupReferenceId")


def _entry_for(context: _Context, uri: str) -> str | None:
    for candidate in dict.fromkeys((uri, unquote(uri), uri.removeprefix("./"), unquote(uri).removeprefix("./"))):
        if candidate in context.safe:
            return candidate
    # ReSIP writes Content/, socle content/: a case-insensitive match is accepted when it is unambiguous.
    lowered = [name for name in context.safe if name.lower() == unquote(uri).removeprefix("./").lower()]
    return lowered[0] if len(lowered) == 1 else None


def _inspect_object(context: _Context, element: etree._Element) -> InspectedObject:
    object_id = element.get("id") or "?"
    uri = context.text(element, "Uri")
    digest_element = element.find(context.tag("MessageDigest"))
    algorithm = digest_element.get("algorithm") if digest_element is not None else None
    declared_digest = _hex_digest(digest_element.text if digest_element is not None else None)
    size_text = context.text(element, "Size")
    declared_size = _declared_size(size_text)
    entry = _entry_for(context, uri) if uri else None
    base = InspectedObject(
        object_id=object_id,
        group_id=_group_of(context, element),
        usage=context.text(element, "DataObjectVersion"),
        uri=uri,
        entry=entry,
        filename=context.text(element, "FileInfo/Filename"),
        algorithm=algorithm,
        declared_digest=declared_digest,
        computed_digest=None,
        declared_size=declared_size,
        computed_size=None,
    )
    return _check_object(context, base, size_text)


def _declared_size(text: str | None) -> int | None:
    """Size as ASCII digits only: str.isdigit takes « ² » (int() then fails) and int() refuses more than 4,300
    digits; twenty digits hold any real size."""
    return int(text) if text is not None and re.fullmatch(r"[0-9]{1,20}", text) else None


def _check_object(context: _Context, obj: InspectedObject, size_text: str | None) -> InspectedObject:
    where = f"L'objet {obj.object_id}"
    problems = []
    if size_text is not None and obj.declared_size is None:
        problems.append(f"{where} déclare une taille invalide : « {_shown(size_text)} ».")
    if obj.uri is None:
        return _with(obj, [*problems, f"{where} n'a pas d'Uri : son fichier ne peut pas être vérifié."])
    if obj.entry is None:
        return _with(obj, [*problems, f"{where} déclare « {obj.uri} », absent du paquet (ou refusé)."])
    context.used_entries.add(obj.entry)
    hash_name = HASH_NAMES.get(re.sub(r"^SHA-?", "SHA-", (obj.algorithm or "").strip().upper()))
    if hash_name is None:
        return _with(
            obj, [*problems, f"{where} a une empreinte d'algorithme non pris en charge : « {obj.algorithm} »."]
        )
    try:
        digest, size = _digest_entry(context, context.safe[obj.entry], hash_name)
    except Refused as refused:
        return _with(obj, [*problems, f"{where} : lecture interrompue, {refused}."])
    except UNREADABLE as error:
        reason = _unreadable_reason(error)
        return _with(obj, [*problems, f"{where} : l'entrée « {obj.entry} » est illisible ({reason})."])
    if obj.declared_size is not None and size != obj.declared_size:
        problems.append(f"{where} (« {obj.entry} ») fait {size} octets, le manifeste en déclare {obj.declared_size}.")
    if digest != obj.declared_digest:
        problems.append(f"{where} (« {obj.entry} ») : l'empreinte {obj.algorithm} ne correspond pas au manifeste.")
    return InspectedObject(
        **{**obj.__dict__, "computed_digest": digest, "computed_size": size, "problems": tuple(problems)}
    )


def _with(obj: InspectedObject, problems: list[str]) -> InspectedObject:
    return InspectedObject(**{**obj.__dict__, "problems": tuple(problems)})


def _shown(text: str, limit: int = 40) -> str:
    """A value of the manifest quoted in a problem: a 5,000-digit Size is not repeated whole."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _digest_entry(context: _Context, info: zipfile.ZipInfo, hash_name: str) -> tuple[str, int]:
    """The entry's digest and size, read once per algorithm; the bytes read count for the whole inspection."""
    key = (info.filename, hash_name)
    if key not in context.digests:
        digest = hashlib.new(hash_name)
        size = 0
        for chunk in read_chunks(context.archive, info, context.limits):
            _count_read(context, len(chunk))
            digest.update(chunk)
            size += len(chunk)
        context.digests[key] = (digest.hexdigest(), size)
    return context.digests[key]


def _count_read(context: _Context, size: int) -> None:
    """Each entry's declared size is bounded, their sum too; what is read is bounded as well, whatever the
    manifest makes read (several algorithms for one entry)."""
    context.read_bytes += size
    limit = context.limits.max_total_size
    if context.read_bytes > limit:
        raise Refused(f"le paquet fait lire plus de {limit} octets en tout, la limite de l'inspection")


def _hex_digest(value: str | None) -> str | None:
    """MessageDigest is hexBinary or base64Binary (SEDA BinaryType): normalised to lowercase hex."""
    text = (value or "").strip()
    if not text:
        return None
    if re.fullmatch(r"[0-9A-Fa-f]+", text) and len(text) % 2 == 0:
        return text.lower()
    try:
        return base64.b64decode(text, validate=True).hex()
    except (binascii.Error, ValueError):
        return text


# --- layout ------------------------------------------------------------------------------------------
# zipfile trusts the central directory; a streaming reader (Vitam reads SIPs with one) walks the local
# headers from the first byte. Whatever makes the two disagree hides data from one of them.

LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
LOCAL_SIGNATURE = b"PK\x03\x04"
DESCRIPTOR_SIGNATURE = b"PK\x07\x08"


def layout_problems(archive: zipfile.ZipFile) -> list[str]:
    """Data before the first entry, between entries or before the central directory; local headers that
    disagree with their central record."""
    if archive.fp is None:
        return []
    problems: list[str] = []
    spans: list[tuple[int, int, str]] = []
    for info in archive.infolist():
        end, differences = _local_entry(archive.fp, info)
        if end is None:
            problems.append(f"Entrée « {info.filename} » : aucun en-tête local à la position {info.header_offset}.")
            continue
        spans.append((info.header_offset, end, info.filename))
        if differences:
            fields = ", ".join(differences)
            problems.append(f"Entrée « {info.filename} » : l'en-tête local contredit le répertoire central ({fields}).")
    return problems + _gaps(sorted(spans), archive.start_dir)


def _gaps(spans: list[tuple[int, int, str]], directory: int) -> list[str]:
    first = spans[0][0] if spans else directory
    problems = []
    if first > 0:
        problems.append(f"{first} octets précèdent la première entrée du zip (données cachées ou paquets concaténés).")
    # Each entry against the next one, the last against the central directory; no entry: nothing between.
    for (_, end, name), (start, _, following) in itertools.pairwise([*spans, (directory, directory, "")]):
        after = f"l'entrée « {following} »" if following else "le répertoire central"
        if start < end:
            problems.append(f"L'entrée « {name} » chevauche {after} ({end - start} octets en commun).")
        elif start > end:
            problems.append(f"{start - end} octets non déclarés entre l'entrée « {name} » et {after}.")
    return problems


def _local_entry(fp: IO[bytes], info: zipfile.ZipInfo) -> tuple[int | None, list[str]]:
    """Where the entry's bytes end (data descriptor included) and how its local header differs."""
    fp.seek(info.header_offset)
    header = fp.read(LOCAL_HEADER.size)
    if len(header) < LOCAL_HEADER.size or header[:4] != LOCAL_SIGNATURE:
        return None, []
    _, _, _, flags, method, _, _, crc, compressed, size, name_length, extra_length = LOCAL_HEADER.unpack(header)
    name = fp.read(name_length).decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
    zip64 = _zip64_sizes(fp.read(extra_length))
    end = info.header_offset + LOCAL_HEADER.size + name_length + extra_length + info.compress_size
    if flags & 0x08:  # sizes and CRC follow the data, in a data descriptor
        crc, compressed, size, length = _descriptor(fp, end, zip64 is not None)
        end += length
    elif zip64 is not None and 0xFFFFFFFF in (compressed, size):
        size, compressed = zip64
    differences = [
        label
        for label, local, central in (
            ("nom", name, info.orig_filename),
            ("méthode de compression", method, info.compress_type),
            ("CRC", crc, info.CRC),
            ("taille compressée", compressed, info.compress_size),
            ("taille", size, info.file_size),
        )
        if local != central
    ]
    return end, differences


def _zip64_sizes(extra: bytes) -> tuple[int, int] | None:
    """The (size, compressed size) of a local header's ZIP64 extra field, if it has one."""
    while len(extra) >= 4:
        kind, length = struct.unpack("<2H", extra[:4])
        if kind == 0x0001 and length >= 16:
            size, compressed = struct.unpack("<2Q", extra[4:20])
            return size, compressed
        extra = extra[4 + length :]
    return None


def _descriptor(fp: IO[bytes], offset: int, zip64: bool) -> tuple[int, int, int, int]:
    """(CRC, compressed size, size, length) of the data descriptor at `offset`; unreadable → -1 values."""
    fp.seek(offset)
    data = fp.read(24 if zip64 else 16)
    signed = data[:4] == DESCRIPTOR_SIGNATURE
    body = data[4:] if signed else data
    layout = struct.Struct("<L2Q" if zip64 else "<3L")
    if len(body) < layout.size:
        return -1, -1, -1, len(data)
    crc, compressed, size = layout.unpack(body[: layout.size])
    return crc, compressed, size, layout.size + (4 if signed else 0)


# --- units -------------------------------------------------------------------------------------------


@dataclass
class _Tree:
    context: _Context
    declared: dict[str, etree._Element]  # top-level units, by id (targets of ArchiveUnitRefId)
    groups: dict[str, list[str]]  # group id → object ids
    object_ids: set[str]
    problems: list[str]
    # unit id → where it was first listed: a unit reached again (shared by several parents) is not walked
    # again, so the walk stays linear whatever the references (each sharing doubles the work otherwise).
    listed: dict[str, str] = field(default_factory=dict)
    too_deep: bool = False


def _units(
    context: _Context, root: etree._Element, objects: list[InspectedObject]
) -> tuple[tuple[InspectedUnit, ...], list[str]]:
    descriptive = root.find(f"{context.tag('DataObjectPackage')}/{context.tag('DescriptiveMetadata')}")
    if descriptive is None:
        return (), ["Le manifeste n'a pas de DescriptiveMetadata : aucune unité d'archives."]
    top = [element for element in descriptive if element.tag == context.tag("ArchiveUnit")]
    groups: dict[str, list[str]] = {}
    for obj in objects:
        if obj.group_id:
            groups.setdefault(obj.group_id, []).append(obj.object_id)
    physical: set[str] = set()
    for element in root.iter(context.tag("PhysicalDataObject")):
        # A group of paper records only (PhysicalMaster) is a group too: its units reference it.
        object_id = element.get("id", "")
        physical.add(object_id)
        if group_id := _group_of(context, element):
            groups.setdefault(group_id, []).append(object_id)
    tree = _Tree(
        context, {unit.get("id", ""): unit for unit in top}, groups, {o.object_id for o in objects} | physical, []
    )
    # Flat packages (ReSIP, Vitam) list every unit at the top and nest references: the roots are the
    # top-level units that no ArchiveUnitRefId points to.
    referenced = {(ref.text or "").strip() for ref in descriptive.iter(context.tag("ArchiveUnitRefId"))}
    roots = [unit for unit in top if unit.get("id") not in referenced]
    if top and not roots:
        tree.problems.append("Toutes les unités sont référencées par une autre : l'arborescence forme une boucle.")
    units = tuple(_unit(tree, element, set(), 0, "la racine") for element in roots)
    if roots and not tree.too_deep:  # top-level units only reachable from each other: a loop apart
        tree.problems += [
            f"Unité {unit_id} : inaccessible depuis les unités racines (boucle de références ?), non listée."
            for unit_id in tree.declared
            if unit_id and unit_id not in tree.listed
        ]
    return units, tree.problems


def _unit(tree: _Tree, element: etree._Element, ancestors: set[str], depth: int, parent: str) -> InspectedUnit:
    context = tree.context
    unit_id = element.get("id") or "?"
    if depth > MAX_DEPTH:
        tree.problems.append(f"Unité {unit_id} : arborescence trop profonde (plus de {MAX_DEPTH} niveaux), non listée.")
        tree.too_deep = True
        return InspectedUnit(unit_id, None, None, ())
    if element.get("id"):
        tree.listed[unit_id] = parent
    children = []
    for child in element.findall(context.tag("ArchiveUnit")):
        target = context.text(child, "ArchiveUnitRefId")
        if target is None:
            target_element, target = child, child.get("id") or ""
        elif target in ancestors or target == unit_id:
            tree.problems.append(f"Unité {unit_id} : la référence à {target} forme une boucle.")
            continue
        elif target not in tree.declared:
            tree.problems.append(f"Unité {unit_id} : ArchiveUnitRefId « {target} » ne désigne aucune unité.")
            continue
        else:
            target_element = tree.declared[target]
        if target in tree.listed:
            tree.problems.append(_shared(target, tree.listed[target], unit_id))
        else:
            children.append(_unit(tree, target_element, ancestors | {unit_id}, depth + 1, f"l'unité {unit_id}"))
    return InspectedUnit(
        unit_id=unit_id,
        title=context.text(element, "Content/Title"),
        level=context.text(element, "Content/DescriptionLevel"),
        object_ids=_unit_objects(tree, element, unit_id),
        children=tuple(children),
    )


def _shared(target: str, first: str, unit_id: str) -> str:
    return (
        f"Unité {target} : référencée une nouvelle fois par l'unité {unit_id} (déjà listée sous {first}) ; "
        "une unité partagée n'est listée qu'une fois."
    )


def _unit_objects(tree: _Tree, element: etree._Element, unit_id: str) -> tuple[str, ...]:
    ids: list[str] = []
    for reference in element.findall(tree.context.tag("DataObjectReference")):
        for child in reference.iterchildren(etree.Element):  # comments and processing instructions skipped
            target = (child.text or "").strip()
            name = etree.QName(child).localname
            if name == "DataObjectGroupReferenceId" and target in tree.groups:
                ids.extend(tree.groups[target])
            elif name == "DataObjectReferenceId" and target in tree.object_ids:
                ids.append(target)
            elif name in ("DataObjectGroupReferenceId", "DataObjectReferenceId"):
                tree.problems.append(f"Unité {unit_id} : {name} « {target} » ne désigne aucun objet du paquet.")
    return tuple(dict.fromkeys(ids))


# --- entry point -------------------------------------------------------------------------------------


def inspect_sip(path: Path, limits: InspectionLimits | None = None, *, filename: str | None = None) -> InspectionReport:
    """Inspect the package at `path`; `filename` is the name to report (an upload's original name)."""
    name = filename or path.name
    try:
        with zipfile.ZipFile(path) as archive:
            return _inspect(archive, name, limits or InspectionLimits())
    except (zipfile.LargeZipFile, *UNREADABLE) as error:
        reason = _unreadable_reason(error)
        return InspectionReport(name, problems=(f"Le paquet {name} n'est pas un zip lisible : {reason}.",))
    except Refused as refused:
        return InspectionReport(name, problems=(str(refused),))


@dataclass(frozen=True)
class ReadPackage:
    """A package read under the limits, every object re-digested: what inspect and verify share."""

    context: _Context
    manifest_entry: str
    manifest: bytes  # the manifest's bytes, free of DTD and entities
    root: etree._Element
    version: str | None
    objects: tuple[InspectedObject, ...]
    problems: tuple[str, ...]  # entries refused, entries declared twice

    @property
    def files(self) -> tuple[str, ...]:
        """The entries safe to read, the manifest excepted."""
        return tuple(name for name in self.context.safe if name != self.manifest_entry)

    def undeclared(self) -> list[str]:
        return [
            f"L'entrée « {entry} » du paquet n'est déclarée par aucun objet du manifeste."
            for entry in sorted(set(self.context.safe) - self.context.used_entries)
        ]


def read_package(archive: zipfile.ZipFile, limits: InspectionLimits) -> ReadPackage:
    """Raises PackageRefused when the manifest is missing, refused or not SEDA 2.x."""
    safe, problems = _check_entries(archive.infolist(), limits)
    try:
        manifest = _find_manifest(safe, archive.infolist())
        data = _read_manifest(archive, manifest, limits)
        root = _parse_manifest(data)
        namespace = _seda_namespace(root)
    except Refused as refused:  # the entries refused so far are reported too
        raise PackageRefused([*problems, str(refused)]) from None
    context = _Context(archive, safe, limits, namespace, {manifest.filename})
    objects = [_inspect_object(context, element) for element in root.iter(context.tag("BinaryDataObject"))]
    problems += _duplicates(objects)
    version = version_of_namespace(namespace)
    return ReadPackage(context, manifest.filename, data, root, version, tuple(objects), tuple(problems))


def _inspect(archive: zipfile.ZipFile, name: str, limits: InspectionLimits) -> InspectionReport:
    # Too many entries is refused by read_package, before the layout is walked entry by entry.
    layout = layout_problems(archive) if len(archive.infolist()) <= limits.max_entries else []
    try:
        package = read_package(archive, limits)
    except PackageRefused as refused:
        return InspectionReport(name, problems=(*layout, *refused.problems))
    units, unit_problems = _units(package.context, package.root, list(package.objects))
    return InspectionReport(
        filename=name,
        version=package.version,
        message_identifier=package.context.text(package.root, "MessageIdentifier"),
        units=units,
        objects=package.objects,
        problems=(*layout, *package.problems, *unit_problems, *package.undeclared()),
    )


def _seda_namespace(root: etree._Element) -> str:
    name = etree.QName(root)
    if name.localname != "ArchiveTransfer" or version_of_namespace(name.namespace or "") is None:
        raise Refused(
            f"Le manifeste n'est pas un ArchiveTransfer SEDA 2.x "
            f"(élément {name.localname}, espace de noms « {name.namespace or ''} »)."
        )
    return name.namespace or ""


def _duplicates(objects: list[InspectedObject]) -> list[str]:
    seen: dict[str, str] = {}
    problems = []
    for obj in objects:
        if obj.entry and obj.entry in seen:
            problems.append(
                f"L'entrée « {obj.entry} » est déclarée par deux objets ({seen[obj.entry]} et {obj.object_id})."
            )
        elif obj.entry:
            seen[obj.entry] = obj.object_id
    return problems


# --- text rendering (CLI) ----------------------------------------------------------------------------


def render_text(report: InspectionReport) -> list[str]:
    """The report as lines for a terminal: header, unit tree with objects, then every discrepancy."""
    lines = [f"Paquet {report.filename} : SEDA {report.version or '?'}, message {report.message_identifier or '?'}"]
    objects = {obj.object_id: obj for obj in report.objects}
    if report.units:
        lines.append("Unités d'archives :")
        for unit, depth in _walk(report.units, 1):
            lines.append(f"{'  ' * depth}- [{unit.level or '?'}] {unit.title or '(sans titre)'} ({unit.unit_id})")
            for object_id in unit.object_ids:
                lines.append(f"{'  ' * (depth + 2)}{_object_line(objects.get(object_id), object_id)}")
    checked = sum(1 for obj in report.objects if obj.computed_digest is not None)
    lines.append(f"Objets : {len(report.objects)} déclaré(s), {checked} relu(s) et recalculé(s).")
    problems = report.all_problems
    if problems:
        lines.append(f"Écarts ({len(problems)}) :")
        lines += [f"  - {problem}" for problem in problems]
    else:
        lines.append("Aucun écart : empreintes et tailles conformes au manifeste.")
    # Titles, ids and entry names come from the package: a line break there could fake report lines.
    return [CONTROL.sub(_escaped, line) for line in lines]


CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char) or f"\\u{ord(char):04x}"


def _walk(units: tuple[InspectedUnit, ...], depth: int) -> Iterator[tuple[InspectedUnit, int]]:
    for unit in units:
        yield unit, depth
        yield from _walk(unit.children, depth + 1)


def _object_line(obj: InspectedObject | None, object_id: str) -> str:
    if obj is None:
        return f"objet {object_id} (physique ou non vérifiable)"
    state = "conforme" if obj.ok else "ÉCART"
    where = obj.entry or obj.uri or "?"
    size = obj.computed_size if obj.computed_size is not None else "?"
    return f"objet {obj.object_id} [{obj.usage or '?'}] {where} : {size} octets, {obj.algorithm or '?'} {state}"
