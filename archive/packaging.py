"""Describing files (digest, size, CRC, format) and writing / checking the SIP zip."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import zipfile
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, NamedTuple

from lxml import etree

from archive.seda import DescribedFile, SedaError
from socle.files import atomic_output

__all__ = [
    "ALREADY_COMPRESSED_MIME_TYPES",
    "ALREADY_COMPRESSED_PUIDS",
    "MANIFEST_NAME",
    "compression_for",
    "describe_file",
    "verify_sip",
    "write_sip",
]

CHUNK_SIZE = 1024 * 1024
MANIFEST_NAME = "manifest.xml"

# Deflating these costs CPU (about 27 MB/s on incompressible data) for no gain: they are stored.
ALREADY_COMPRESSED_PUIDS = frozenset(
    {
        # PDF 1.0 to 2.0, PDF/A-1 to PDF/A-3
        "fmt/14",
        "fmt/15",
        "fmt/16",
        "fmt/17",
        "fmt/18",
        "fmt/19",
        "fmt/20",
        "fmt/276",
        "fmt/1129",
        "fmt/95",
        "fmt/354",
        "fmt/476",
        "fmt/477",
        "fmt/478",
        "fmt/479",
        "fmt/480",
        "fmt/481",
        # JPEG, PNG, GIF
        "fmt/42",
        "fmt/43",
        "fmt/44",
        "fmt/645",
        "fmt/11",
        "fmt/12",
        "fmt/13",
        "fmt/3",
        "fmt/4",
        # ZIP, GZIP and zip-based office documents (DOCX, XLSX, PPTX, ODT, ODS)
        "x-fmt/263",
        "x-fmt/266",
        "fmt/412",
        "fmt/214",
        "fmt/215",
        "fmt/290",
        "fmt/291",
        "fmt/294",
        "fmt/295",
        # MPEG-4
        "fmt/199",
    }
)
ALREADY_COMPRESSED_MIME_TYPES = frozenset(
    {
        "application/pdf",
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/jp2",
        "image/webp",
        "application/zip",
        "application/gzip",
        "application/x-gzip",
        "application/x-7z-compressed",
        "application/x-bzip2",
        "application/x-xz",
        "application/epub+zip",
    }
)
ALREADY_COMPRESSED_MIME_PREFIXES = (
    "video/",
    "audio/",
    "application/vnd.openxmlformats-officedocument.",
    "application/vnd.oasis.opendocument.",
)
# Only consulted when no format was identified (identify=False or no signature matched).
ALREADY_COMPRESSED_SUFFIXES = frozenset(
    {
        ".pdf",
        ".jpg",
        ".jpeg",
        ".png",
        ".gif",
        ".jp2",
        ".webp",
        ".zip",
        ".gz",
        ".tgz",
        ".7z",
        ".bz2",
        ".xz",
        ".docx",
        ".xlsx",
        ".pptx",
        ".odt",
        ".ods",
        ".odp",
        ".epub",
        ".mp4",
        ".mp3",
        ".ogg",
        ".webm",
    }
)


# --- description -----------------------------------------------------------------------------------


def describe_file(path: Path, filename: str | None = None, *, identify: bool = True) -> DescribedFile:
    """Describe a file for a SEDA manifest, reading its bytes once (SHA-512, CRC-32 and size together).

    `filename` is the original name (defaults to the path's name). An empty file is described
    (size 0): the manifest builder is the one that refuses it.
    """
    digest = hashlib.sha512()
    crc = 0
    size = 0
    with path.open("rb") as stream:
        # fstat on the open descriptor: the date belongs to the very file whose bytes are hashed.
        modified = datetime.fromtimestamp(os.fstat(stream.fileno()).st_mtime, tz=UTC)
        while chunk := stream.read(CHUNK_SIZE):
            digest.update(chunk)
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
    puid, mime_type, format_name = _identify(path) if identify and size > 0 else (None, None, None)
    return DescribedFile(
        path=path,
        filename=filename or path.name,
        size=size,
        sha512=digest.hexdigest(),
        crc32=crc,
        puid=puid,
        mime_type=mime_type,
        format_name=format_name,
        last_modified=modified.replace(microsecond=0),
    )


def _identify(path: Path) -> tuple[str | None, str | None, str | None]:
    """PRONOM id, MIME type and format name according to siegfried.

    pygfried only identifies by path, so siegfried opens the file a second time (reading the parts its
    signatures need): acceptable for now. It sees the path's extension, not the original filename's;
    byte signatures still identify PDFs and text without it.
    """
    # Imported here, never at module load: pygfried embeds the Go runtime, which hangs in a process forked
    # after it was loaded, and rq workers fork a work horse per job from a parent that imports this module.
    import pygfried

    result = pygfried.identify(str(path), detailed=True)
    for match in result["files"][0]["matches"]:
        if match["ns"] == "pronom" and match["id"] != "UNKNOWN":
            return match["id"], match["mime"] or None, match["format"] or None
    return None, None, None


def compression_for(file: DescribedFile) -> int:
    """ZIP_STORED for formats that are already compressed, ZIP_DEFLATED otherwise."""
    mime = (file.mime_type or "").lower()
    if file.puid is None and not mime:
        compressed = Path(file.filename).suffix.lower() in ALREADY_COMPRESSED_SUFFIXES
    else:
        compressed = (
            file.puid in ALREADY_COMPRESSED_PUIDS
            or mime in ALREADY_COMPRESSED_MIME_TYPES
            or mime.startswith(ALREADY_COMPRESSED_MIME_PREFIXES)
        )
    return zipfile.ZIP_STORED if compressed else zipfile.ZIP_DEFLATED


# --- writing ---------------------------------------------------------------------------------------


def write_sip(manifest: bytes, files: Iterable[tuple[str, DescribedFile]], destination: Path) -> None:
    """Write the SIP zip atomically: manifest.xml first, then each file under its entry name.

    The zip is written to a seekable temporary file next to the destination, so zipfile puts sizes and
    CRC in the local headers and never sets the data-descriptor flag (streaming readers such as Vitam's
    commons-compress cannot read stored entries that use one). Each file is checked against its
    description while copied; a mismatch raises SedaError and leaves no destination.
    """
    entries = list(files)
    _check_entry_names([name for name, _ in entries])
    with atomic_output(destination) as raw, zipfile.ZipFile(raw, "w", allowZip64=True) as archive:
        _write_manifest(archive, manifest)
        for name, file in entries:
            _write_file(archive, name, file)


def _check_entry_names(names: list[str]) -> None:
    seen = {MANIFEST_NAME}
    for name in names:
        if name.startswith("/") or "\\" in name or any(part in ("", ".", "..") for part in name.split("/")):
            raise SedaError(f"Nom d'entrée invalide dans le paquet : « {name} ».")
        if name in seen:
            raise SedaError(f"Nom d'entrée en double dans le paquet : « {name} ».")
        seen.add(name)


def _entry_info(name: str, modified: datetime, compression: int, size: int) -> zipfile.ZipInfo:
    timestamp = max(modified, datetime(1980, 1, 1, tzinfo=UTC))  # the zip format starts in 1980
    info = zipfile.ZipInfo(name, date_time=timestamp.timetuple()[:6])
    info.compress_type = compression
    info.external_attr = 0o644 << 16
    # Announcing the size lets zipfile choose zip64 headers up front for files over 4 GiB.
    info.file_size = size
    return info


def _write_manifest(archive: zipfile.ZipFile, manifest: bytes) -> None:
    info = _entry_info(MANIFEST_NAME, datetime.now(UTC), zipfile.ZIP_DEFLATED, len(manifest))
    archive.writestr(info, manifest)


def _write_file(archive: zipfile.ZipFile, name: str, file: DescribedFile) -> None:
    info = _entry_info(name, file.last_modified, compression_for(file), file.size)
    digest = hashlib.sha512()
    size = 0
    with file.path.open("rb") as source, archive.open(info, "w") as target:
        while chunk := source.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
            target.write(chunk)
    if size != file.size or digest.hexdigest() != file.sha512 or file.crc32 != info.CRC:
        raise SedaError(
            f"Le fichier « {file.filename} » a changé depuis sa description "
            f"({size} octets lus, {file.size} attendus) : paquet abandonné."
        )


# --- verification ----------------------------------------------------------------------------------


class _DeclaredObject(NamedTuple):
    object_id: str
    uri: str
    algorithm: str
    digest: str  # lowercase hex
    size: int | None


_HASH_NAMES = {"SHA-512": "sha512", "SHA-384": "sha384", "SHA-256": "sha256"}


def verify_sip(path: Path) -> list[str]:
    """Re-read a SIP and compare every declared BinaryDataObject with its zip entry.

    Returns French messages, empty when the package is consistent: digest or size mismatches,
    declared objects missing from the zip, zip entries the manifest does not declare.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return _verify_archive(archive)
    except (zipfile.BadZipFile, OSError) as error:
        return [f"Le paquet {path.name} est illisible : {error}."]


def _verify_archive(archive: zipfile.ZipFile) -> list[str]:
    names = {info.filename for info in archive.infolist() if not info.is_dir()}
    if MANIFEST_NAME not in names:
        return [f"Le paquet ne contient pas de {MANIFEST_NAME}."]
    try:
        objects = _declared_objects(archive.read(MANIFEST_NAME))
    except etree.XMLSyntaxError as error:
        return [f"Le {MANIFEST_NAME} du paquet est mal formé : {error}."]
    problems: list[str] = []
    declared: set[str] = set()
    for obj in objects:
        if obj.uri in declared:
            problems.append(f"L'entrée « {obj.uri} » est déclarée par plusieurs objets ({obj.object_id}…).")
        declared.add(obj.uri)
        if obj.uri in names:
            problems.extend(_check_entry(archive, obj))
        else:
            problems.append(f"L'objet {obj.object_id} déclare « {obj.uri} », absent du paquet.")
    problems.extend(
        f"L'entrée « {name} » du paquet n'est déclarée par aucun objet du manifeste."
        for name in sorted(names - declared - {MANIFEST_NAME})
    )
    return problems


def _declared_objects(manifest: bytes) -> list[_DeclaredObject]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    root = etree.fromstring(manifest, parser)
    objects = []
    for element in root.iter("{*}BinaryDataObject"):
        digest = element.find("{*}MessageDigest")
        size = (element.findtext("{*}Size") or "").strip()
        objects.append(
            _DeclaredObject(
                object_id=element.get("id", "?"),
                uri=(element.findtext("{*}Uri") or "").strip(),
                algorithm=digest.get("algorithm", "") if digest is not None else "",
                digest=_hex_digest(digest.text if digest is not None else None),
                size=int(size) if size.isdigit() else None,
            )
        )
    return objects


def _hex_digest(value: str | None) -> str:
    """MessageDigest is hexBinary or base64Binary (SEDA BinaryType): normalise to lowercase hex."""
    text = (value or "").strip()
    try:
        bytes.fromhex(text)
        return text.lower()
    except ValueError:
        pass
    try:
        return base64.b64decode(text, validate=True).hex()
    except (binascii.Error, ValueError):
        return text


def _check_entry(archive: zipfile.ZipFile, obj: _DeclaredObject) -> list[str]:
    where = f"« {obj.uri} » ({obj.object_id})"
    hash_name = _HASH_NAMES.get(obj.algorithm.upper())
    if hash_name is None:
        return [f"L'entrée {where} a une empreinte d'algorithme non pris en charge : « {obj.algorithm} »."]
    try:
        with archive.open(obj.uri) as stream:
            digest, size = _digest_stream(stream, hash_name)
    except zipfile.BadZipFile as error:
        return [f"L'entrée {where} est illisible : {error}."]
    problems = []
    if obj.size is not None and size != obj.size:
        problems.append(f"L'entrée {where} fait {size} octets, le manifeste en déclare {obj.size}.")
    if digest != obj.digest:
        problems.append(f"L'empreinte {obj.algorithm} de l'entrée {where} ne correspond pas au manifeste.")
    return problems


def _digest_stream(stream: IO[bytes], hash_name: str) -> tuple[str, int]:
    digest = hashlib.new(hash_name)
    size = 0
    while chunk := stream.read(CHUNK_SIZE):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size
