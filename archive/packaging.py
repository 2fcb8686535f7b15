"""Describing files (digest, size, CRC, format) and writing / checking the SIP zip."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
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
# Bytes siegfried sees of each file: the beginning and the end, DROID's default scan limit (64 KiB each way).
# Signatures anchored at either end (PDF, JPEG, PNG, ZIP, office files…) are all there; a marker searched
# anywhere in a large file (a PDF/A identifier deep inside) may be missed: the generic format is then given.
IDENTIFY_HEAD = 64 * 1024
IDENTIFY_TAIL = 64 * 1024
_ZIP_SIGNATURE = b"PK\x03\x04"
_IDENTIFIER: tuple[int, ThreadPoolExecutor] | None = None
_IDENTIFIER_LOCK = threading.Lock()
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
    """Describe a file for a SEDA manifest, reading its bytes once: SHA-512, CRC-32, size and format together.

    The format is identified by siegfried on the bytes kept during that read (the first IDENTIFY_HEAD and last
    IDENTIFY_TAIL bytes, the whole file when smaller), as DROID does with its default scan limit; a larger
    zip-based file is identified on the file itself, whose members siegfried reads.
    `filename` is the original name (defaults to the path's name). An empty file is described (size 0): the
    manifest builder is the one that refuses it. Raises OSError when the file cannot be read.
    """
    digest = hashlib.sha512()
    crc = 0
    size = 0
    head = bytearray()
    tail = b""
    with path.open("rb") as stream:
        # fstat on the open descriptor: the date belongs to the very file whose bytes are hashed.
        modified = datetime.fromtimestamp(os.fstat(stream.fileno()).st_mtime, tz=UTC)
        while chunk := stream.read(CHUNK_SIZE):
            digest.update(chunk)
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
            if len(head) < IDENTIFY_HEAD:
                head += chunk[: IDENTIFY_HEAD - len(head)]
            tail = (tail + chunk)[-IDENTIFY_TAIL:] if len(chunk) < IDENTIFY_TAIL else chunk[-IDENTIFY_TAIL:]
    identified: tuple[str | None, str | None, str | None] = (None, None, None)
    if identify and size > IDENTIFY_HEAD + IDENTIFY_TAIL and head.startswith(_ZIP_SIGNATURE):
        # Office documents (DOCX, ODT…) are told apart from plain zips by their members: siegfried opens the
        # file itself and reads its central directory and those few members, not the whole file.
        identified = _identifier().submit(_identify, path).result()
    elif identify and size > 0:
        sample = bytes(head) if size <= IDENTIFY_HEAD else bytes(head) + _tail_after_head(tail, size)
        identified = _identify_sample(sample, path.suffix)
    puid, mime_type, format_name = identified
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


def _tail_after_head(tail: bytes, size: int) -> bytes:
    """The part of the tail that the head does not already hold (files a little larger than the head)."""
    return tail[-(size - IDENTIFY_HEAD) :]


def _identify_sample(sample: bytes, suffix: str) -> tuple[str | None, str | None, str | None]:
    """Identify a sample in the identification thread (see _identifier), waiting for the answer."""
    return _identifier().submit(_identify_in_thread, sample, suffix).result()


def _identifier() -> ThreadPoolExecutor:
    """The process's single siegfried thread.

    siegfried is Go code called with the GIL held: calls from several threads run one at a time anyway, and
    three times slower (Go binds each new calling thread). One thread does them all while the other threads
    read and hash. Recreated in a forked child, where the parent's thread does not exist.
    """
    global _IDENTIFIER
    with _IDENTIFIER_LOCK:
        if _IDENTIFIER is None or _IDENTIFIER[0] != os.getpid():
            _IDENTIFIER = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="siegfried"))
        return _IDENTIFIER[1]


def _identify_in_thread(sample: bytes, suffix: str) -> tuple[str | None, str | None, str | None]:
    # pygfried only identifies by path: the sample goes to a temporary file with the original extension
    # (siegfried uses it when byte signatures tie).
    with tempfile.NamedTemporaryFile(prefix="socle-identify-", suffix=suffix) as copy:
        copy.write(sample)
        copy.flush()
        return _identify(Path(copy.name))


def _identify(path: Path) -> tuple[str | None, str | None, str | None]:
    """PRONOM id, MIME type and format name according to siegfried."""
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


def write_sip(manifest: bytes | Path, files: Iterable[tuple[str, DescribedFile]], destination: Path) -> None:
    """Write the SIP zip atomically: manifest.xml first, then each file under its entry name.

    `manifest` is the manifest's bytes, or a file holding them (seda.write_manifest): a large manifest then
    never sits in memory.

    The zip is written to a seekable temporary file next to the destination, so zipfile puts sizes and
    CRC in the local headers and never sets the data-descriptor flag (streaming readers such as Vitam's
    commons-compress cannot read stored entries that use one). Zip64 records are added where sizes or offsets
    need them; non-ASCII names get the UTF-8 flag. Already-compressed formats are stored; the others are
    deflated, and stored after all when deflating does not make them smaller. Each file is read once and
    checked against its description (size and CRC-32) while copied; a mismatch raises SedaError and leaves
    no destination.
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


def _write_manifest(archive: zipfile.ZipFile, manifest: bytes | Path) -> None:
    if isinstance(manifest, bytes):
        info = _entry_info(MANIFEST_NAME, datetime.now(UTC), zipfile.ZIP_DEFLATED, len(manifest))
        archive.writestr(info, manifest)
        return
    info = _entry_info(MANIFEST_NAME, datetime.now(UTC), zipfile.ZIP_DEFLATED, manifest.stat().st_size)
    with manifest.open("rb") as source, archive.open(info, "w") as target:
        while chunk := source.read(CHUNK_SIZE):
            target.write(chunk)


def _write_file(archive: zipfile.ZipFile, name: str, file: DescribedFile) -> None:
    compression = compression_for(file)
    info = _copy_entry(archive, name, file, compression)
    if compression == zipfile.ZIP_DEFLATED and info.compress_size >= info.file_size:
        _drop_last_entry(archive, info)
        info = _copy_entry(archive, name, file, zipfile.ZIP_STORED)


def _copy_entry(archive: zipfile.ZipFile, name: str, file: DescribedFile, compression: int) -> zipfile.ZipInfo:
    info = _entry_info(name, file.last_modified, compression, file.size)
    size = 0
    with file.path.open("rb") as source, archive.open(info, "w") as target:
        while chunk := source.read(CHUNK_SIZE):
            size += len(chunk)
            target.write(chunk)
    # zipfile computed the CRC-32 of the bytes it wrote: with the size, it tells whether the file changed
    # since its digest was taken, without hashing it a second time.
    if size != file.size or file.crc32 != info.CRC:
        raise SedaError(
            f"Le fichier « {file.filename} » a changé depuis sa description "
            f"({size} octets lus, {file.size} attendus) : paquet abandonné."
        )
    return info


def _drop_last_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Forget the entry just written, so that it can be written again (stored) in its place.

    zipfile has no API for this: the entry is the last one of `filelist`, and the central directory is only
    written on close, from `start_dir`; truncating the file there leaves the archive as before the entry.
    """
    archive.filelist.remove(info)
    del archive.NameToInfo[info.filename]
    assert archive.fp is not None
    archive.fp.seek(info.header_offset)
    archive.fp.truncate()
    archive.start_dir = info.header_offset


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
