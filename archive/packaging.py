"""Describing files (digest, size, CRC, format) and writing / checking the SIP zip.

Two ways to a package. build_sip, which every transfer takes (a folder tree, a CSV, the GED's documents),
builds it from a plan of units in one read of each file and in bounded memory: the SHA-512, the CRC-32, the
size, the sample siegfried identifies and the zip entry all come from that read (see build_sip and
archive.zipstream). The other, describe_file for each file, seda.build_manifest, then write_sip, which
reads each file a second time, is the reference the tests compare build_sip with.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import queue
import shutil
import stat
import sys
import threading
import time
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

try:  # CRC-32 with SIMD: 10 GB/s here against 2.3 for the system zlib, the same values
    from zlib_ng.zlib_ng import crc32
except ImportError:  # pragma: no cover - zlib-ng is a dependency; zlib does the same, slower
    from zlib import crc32

from archive.identification import (
    IDENTIFY_HEAD,
    IDENTIFY_TAIL,
    UNKNOWN,
    Format,
    Identifier,
    Sampler,
    identify_here,
)
from archive.inspection import (
    InspectionLimits,
    PackageRefused,
    ReadPackage,
    layout_problems,
    read_package,
    unreadable_zip_reason,
)
from archive.seda import (
    ROOT_UNIT_DEPTH,
    ArchiveUnitSpec,
    DescribedFile,
    ManifestParts,
    Numbering,
    PlannedObject,
    SedaError,
    TransferSpec,
    check_unit,
)
from archive.zipstream import DEFLATE_LEVEL, MANIFEST_NAME, SipZip, dos_clamped, work_folder_beside
from socle.files import atomic_output

__all__ = [
    "ALREADY_COMPRESSED_MIME_TYPES",
    "ALREADY_COMPRESSED_PUIDS",
    "IDENTIFY_HEAD",
    "IDENTIFY_TAIL",
    "MANIFEST_NAME",
    "BuildRefused",
    "BuiltSip",
    "Plan",
    "SourceFile",
    "UnitEnd",
    "UnitStart",
    "UnitsPlan",
    "build_sip",
    "check_sip",
    "compression_for",
    "describe_file",
    "file_date",
    "undescribed",
    "verify_sip",
    "write_sip",
]

CHUNK_SIZE = 1024 * 1024

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

    The format is identified by siegfried, in this process, on the sample kept during that read (see
    archive.identification: the first and last bytes, a PDF's PDF/A marker; a larger zip or OLE2 file is
    identified on the file itself, whose members siegfried reads).
    `filename` is the original name (defaults to the path's name). An empty file is described (size 0): the
    manifest builder is the one that refuses it. Raises OSError when the file cannot be read.
    """
    digest = hashlib.sha512()
    crc = 0
    size = 0
    sampler = Sampler(Path(filename or path.name).suffix)
    with path.open("rb") as stream:
        # fstat on the open descriptor: the date belongs to the very file whose bytes are hashed.
        modified = _date_or_error(os.fstat(stream.fileno()).st_mtime)
        while chunk := stream.read(CHUNK_SIZE):
            digest.update(chunk)
            crc = crc32(chunk, crc)
            size += len(chunk)
            if identify:
                sampler.feed(chunk)
    puid, mime_type, format_name = identify_here(sampler.sample(), path) if identify and size > 0 else UNKNOWN
    return DescribedFile(
        path=path,
        filename=filename or path.name,
        size=size,
        sha512=digest.hexdigest(),
        crc32=crc,
        puid=puid,
        mime_type=mime_type,
        format_name=format_name,
        last_modified=modified,
    )


def undescribed(path: Path, filename: str) -> DescribedFile:
    """A file as a plan names it before build_sip reads it: size and date from stat, no digest yet.

    For sources.transfer_from_folder(describe=undescribed): an empty file is still seen (size 0), an
    unreadable one only when build_sip opens it.
    """
    info = path.stat()
    return DescribedFile(
        path=path,
        filename=filename,
        size=info.st_size,
        sha512="",
        crc32=0,
        puid=None,
        mime_type=None,
        format_name=None,
        last_modified=_date_or_error(info.st_mtime),
    )


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
    timestamp = dos_clamped(modified)  # the zip format holds 1980 to 2107 only
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


# --- a package in one pass --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A file of a plan, not read yet."""

    path: Path
    filename: str  # the original name, for FileInfo and the entry name
    usage: str = "BinaryMaster_1"
    label: str = ""  # how problems name it (its path in the versed folder); the filename when empty
    modified: datetime | None = None  # FileInfo's date when not the file's own (a store names files by digest)


@dataclass(frozen=True, slots=True)
class UnitStart:
    """A unit opens: its own files, then its children's events, then UnitEnd. `unit.files` and
    `unit.children` are not read: the plan gives them as `files` and as the events that follow."""

    unit: ArchiveUnitSpec
    files: tuple[SourceFile, ...] = ()


@dataclass(frozen=True, slots=True)
class UnitEnd:
    pass


class Plan(Protocol):
    """The units of a transfer in document order, produced while the package is built (a folder walk).

    `problems` collects what the plan found wrong on the way (in French); build_sip refuses the package if
    there is any, after listing them all.
    """

    problems: list[str]

    def __iter__(self) -> Iterator[UnitStart | UnitEnd]: ...


class UnitsPlan:
    """A plan from units held in memory (a CSV's tree) whose files are described or undescribed() ones."""

    def __init__(self, units: tuple[ArchiveUnitSpec, ...], root: Path | None = None) -> None:
        self.units = units
        self.root = root
        self.problems: list[str] = []

    def __iter__(self) -> Iterator[UnitStart | UnitEnd]:
        for unit in self.units:
            yield from self._unit(unit)

    def _unit(self, unit: ArchiveUnitSpec) -> Iterator[UnitStart | UnitEnd]:
        files = tuple(
            SourceFile(file.path, file.filename, usage, self._label(file), file.last_modified)
            for file, usage in unit.files
        )
        yield UnitStart(unit, files)
        for child in unit.children:
            yield from self._unit(child)
        yield UnitEnd()

    def _label(self, file: DescribedFile) -> str:
        if self.root is not None and file.path.is_relative_to(self.root):
            return file.path.relative_to(self.root).as_posix()
        return file.filename


class BuildRefused(SedaError):
    """The plan's files cannot make a package; `problems` lists every reason, in French."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class BuiltSip:
    units: int
    files: int
    size: int  # bytes of content
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, for the benchmark


# Bounds on what is in flight: bytes waiting to be hashed; files whose description waits for its digest or
# its format (their siegfried samples, 16 KiB or less each, waiting too). About 20 MiB whatever the plan.
HASH_BACKLOG = 4 * 1024 * 1024
INLINE_HASH = 64 * 1024
MAX_PENDING_FILES = 256
# A file whose first bytes say it is already compressed is stored; the others are deflated when a trial
# says it helps (the whole file if it is read in one chunk, else its first PROBE_SIZE bytes, at level 1).
COMPRESSED_MAGIC = (
    b"%PDF-",
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"PK\x03\x04",  # zip, and the office formats and EPUB built on it
    b"\x1f\x8b",  # gzip
    b"7z\xbc\xaf\x27\x1c",
    b"BZh",
    b"\xfd7zXZ\x00",
    b"Rar!\x1a\x07",
    b"OggS",
    b"fLaC",
    b"ID3",  # MP3
    b"\x00\x00\x00\x0cjP  \r\n\x87\n",  # JPEG 2000
)
PROBE_SIZE = 64 * 1024
PROBE_GAIN = 0.95
EMPTY_FILE = "le SEDA impose une taille d'au moins 1 octet (Size ≥ 1)"
UNREADABLE_DATE = "date de modification hors des années 1 à 9999, qu'un bordereau ne peut pas écrire : corrigez-la"


def _date_or_error(seconds: float) -> datetime:
    """file_date, or the OSError callers already report as a file they cannot read (with this reason)."""
    found = file_date(seconds)
    if found is None:
        raise OSError(errno.EOVERFLOW, UNREADABLE_DATE)
    return found


def file_date(seconds: float) -> datetime | None:
    """A file's modification time as FileInfo/LastModified writes it; None beyond what datetime holds (a file
    system such as tmpfs keeps a date in the year 33658, a tar can give one)."""
    try:
        return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=0)
    except (OverflowError, OSError, ValueError):
        return None


def _compressor(size: int) -> zlib._Compress:
    """Raw deflate (as zipfile writes it), its window no larger than the file: zlib clears its window and hash
    tables on creation, 300 µs at full size, which for a 1 KB file cost ten times the compression itself.
    Any inflater reads a smaller window."""
    window = min(max(size - 1, 1).bit_length(), 15)
    window = max(window, 9)
    return zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, -window, max(window - 7, 1))


def _already_compressed(first: bytes, suffix: str) -> bool:
    if first.startswith(COMPRESSED_MAGIC) or suffix.lower() in ALREADY_COMPRESSED_SUFFIXES:
        return True
    if first[4:8] == b"ftyp":  # MP4, MOV, HEIC
        return True
    return first[:4] == b"RIFF" and first[8:12] == b"WEBP"


def build_sip(
    spec: TransferSpec,
    plan: Plan,
    destination: Path,
    *,
    version: str = "2.2",
    check_manifest: Callable[[Path], None] | None = None,
    identify: bool = True,
    insert_range: bool = True,
) -> BuiltSip:
    """Build the SIP of `plan`'s units in one read of each file, in bounded memory; write it atomically.

    `spec` gives the message's header (identifier, agencies, date, comment); its `units` are ignored. Each
    file is read once: a second thread hashes it (SHA-512) while this one computes its CRC-32, keeps
    siegfried's sample and writes its zip entry, and siegfried identifies the samples in a process of its own
    (identification.Identifier). Each DataObjectGroup and each unit is written to a spool as soon as known,
    then the manifest is assembled, given to `check_manifest` (which raises to refuse it: XSD validation),
    and put in front of the entries (zipstream.SipZip).

    Raises BuildRefused listing every problem found (unreadable, empty or changing files, and the plan's
    own); SedaError for a unit the SEDA cannot express; IdentificationError if siegfried cannot run; OSError
    when writing fails. Nothing is left at `destination` (nor beside it) unless the package is complete.
    """
    parts = ManifestParts(spec, version)
    destination = destination.absolute()
    with work_folder_beside(destination) as work:
        sip: SipZip | None = None
        try:
            sip = SipZip(destination, work, insert_range=insert_range)
            build = _Build(parts, sip, work, identify)
            built = build.run(plan)
            start = time.perf_counter()
            manifest = build.manifest(work / MANIFEST_NAME)
            built.timings["manifeste"] = time.perf_counter() - start
            if check_manifest is not None:
                start = time.perf_counter()
                check_manifest(manifest)
                built.timings["validation XSD"] = time.perf_counter() - start
            start = time.perf_counter()
            sip.finish(manifest)
            built.timings["zip : manifeste en tête, répertoire central, fsync"] = time.perf_counter() - start
            return built
        except BaseException:
            if sip is not None:
                sip.abort()
            raise


@dataclass
class _PendingObject:
    object_id: str
    uri: str
    source: SourceFile
    modified: datetime
    size: int
    crc: int
    digest: Future[str]
    format: Future[Format] | None

    def done(self) -> bool:
        return self.digest.done() and (self.format is None or self.format.done())


@dataclass
class _PendingGroup:
    group_id: str
    objects: list[_PendingObject | None]  # None: a file that could not be read (the build is refused)


class _Build:
    """One build_sip run: reads and writes the zip in this thread, hashes in another, while siegfried runs in
    its own process; spools the manifest's groups and units as they are known."""

    def __init__(self, parts: ManifestParts, sip: SipZip, work: Path, identify: bool) -> None:
        self.parts = parts
        self.entries = _EntryWriter(sip)
        self.groups = (work / "groups.xml").open("w+b")
        self.units = (work / "units.xml").open("w+b")
        self.numbering = Numbering()
        self.depths: list[int] = []
        self.pending: deque[_PendingGroup] = deque()
        self.pending_files = 0
        self.problems: list[str] = []
        self.size = 0
        self.identify = identify

    def run(self, plan: Plan) -> BuiltSip:
        identifier = Identifier() if self.identify else None
        hasher = _Hasher()
        start = time.perf_counter()
        try:
            for event in plan:
                if isinstance(event, UnitStart):
                    self._open(event, hasher, identifier, plan)
                else:
                    self.parts.close_unit(self.units, self.depths.pop())
                self._drain(block=False)
            hasher.close()
            read = time.perf_counter()
            if identifier is not None:
                identifier.close()
            self._drain(block=True)
        finally:
            hasher.close()
            if identifier is not None:
                identifier.close()
        timings = {"lecture, empreintes, zip": read - start, "attente de siegfried": time.perf_counter() - read}
        problems = plan.problems + self.problems
        if problems:
            raise BuildRefused(problems)
        if self.numbering.units == 0:
            raise SedaError("Le transfert ne contient aucune unité d'archives.")
        assert not self.depths, "plan déséquilibré : unité ouverte et jamais fermée"
        return BuiltSip(self.numbering.units, self.numbering.objects, self.size, timings)

    def manifest(self, path: Path) -> Path:
        with path.open("wb") as out:
            self.parts.head(out)
            _append(out, self.groups)
            self.parts.units_start(out)
            _append(out, self.units)
            self.parts.tail(out)
        return path

    def _open(self, event: UnitStart, hasher: _Hasher, identifier: Identifier | None, plan: Plan) -> None:
        check_unit(event.unit, [file.usage for file in event.files])
        unit_id = self.numbering.unit()
        group_id = self.numbering.group() if event.files else None
        depth = ROOT_UNIT_DEPTH + len(self.depths)
        self.parts.open_unit(self.units, unit_id, event.unit, group_id, depth)
        self.depths.append(depth)
        if group_id is None:
            return
        objects = [self._read(source, hasher, identifier, plan) for source in event.files]
        self.pending.append(_PendingGroup(group_id, objects))
        self.pending_files += len(objects)
        while self.pending_files > MAX_PENDING_FILES:
            self._drain_one()

    def _read(
        self, source: SourceFile, hasher: _Hasher, identifier: Identifier | None, plan: Plan
    ) -> _PendingObject | None:
        """Read a file once: its chunks to the hashing thread, CRC-32, sample and zip entry here."""
        object_id, uri = self.numbering.object(source.filename)
        label = source.label or source.filename
        try:
            stream = source.path.open("rb", buffering=0)
        except OSError as error:
            self.problems.append(f"Fichier illisible « {label} » : {error.strerror or error}.")
            return None
        with stream:
            info = os.fstat(stream.fileno())
            if not stat.S_ISREG(info.st_mode):
                self.problems.append(f"« {label} » n'est pas un fichier ordinaire : versement refusé.")
                return None
            if info.st_size == 0:
                self.problems.append(f"Fichier vide « {label} » : {EMPTY_FILE}.")
                return None
            modified = source.modified or file_date(info.st_mtime)
            if modified is None:
                self.problems.append(f"« {label} » : {UNREADABLE_DATE}.")
            if self.problems or plan.problems or modified is None:
                return None  # the package is refused anyway: only look for the other problems
            digest: Future[str] = Future()
            inline = hashlib.sha512() if info.st_size <= INLINE_HASH else None
            entry = self.entries.begin(uri, source.path, modified, info.st_size, os.path.splitext(source.filename)[1])
            size = 0
            while chunk := self._chunk(stream, size, info.st_size, label):
                if size >= info.st_size:  # it grew while read (refused below): its hash was already finished
                    size += len(chunk)
                    break
                size += len(chunk)
                if inline is not None:
                    inline.update(chunk)
                else:
                    hasher.feed(digest, chunk, last=size >= info.st_size)
                # A write error (disk full) is not the source file's: it fails the build, nothing is kept.
                self.entries.feed(entry, chunk)
            if inline is not None:
                digest.set_result(inline.hexdigest())
            elif size < info.st_size:  # shorter than announced: the hashing thread still waits for the end
                hasher.feed(digest, b"", last=True)
            self.entries.end(entry)
        if size != info.st_size and not self.problems:
            self.problems.append(
                f"Le fichier « {label} » a changé pendant sa lecture ({size} octets lus, {info.st_size} annoncés)."
            )
        self.size += size
        identified = identifier.submit(entry.sampler.sample(), source.path) if identifier is not None else None
        return _PendingObject(object_id, uri, source, modified, size, entry.crc, digest, identified)

    def _chunk(self, stream: BinaryIO, done: int, size: int, label: str) -> bytes:
        """The file's next bytes (exact sizes: a 1 MiB read buffer for a 20 KB file would be allocated, then
        shrunk); b"" at its end, or when it cannot be read (recorded as a problem of the package)."""
        try:
            return stream.read(min(CHUNK_SIZE, size - done) or 1)
        except OSError as error:
            self.problems.append(f"Fichier illisible « {label} » : {error.strerror or error}.")
            return b""

    def _drain(self, *, block: bool) -> None:
        while self.pending and (block or all(obj is None or obj.done() for obj in self.pending[0].objects)):
            self._drain_one()

    def _drain_one(self) -> None:
        group = self.pending.popleft()
        self.pending_files -= len(group.objects)
        planned = []
        for obj in group.objects:
            described = self._described(obj) if obj is not None else None
            if obj is not None and described is not None:
                planned.append(PlannedObject(obj.object_id, obj.uri, obj.source.usage, described))
        if not self.problems and len(planned) == len(group.objects):
            self.parts.group(self.groups, group.group_id, planned)

    def _described(self, obj: _PendingObject) -> DescribedFile | None:
        digest = obj.digest.result()
        puid, mime_type, format_name = obj.format.result() if obj.format is not None else UNKNOWN
        if self.problems:
            return None
        return DescribedFile(
            path=obj.source.path,
            filename=obj.source.filename,
            size=obj.size,
            sha512=digest,
            crc32=obj.crc,
            puid=puid,
            mime_type=mime_type,
            format_name=format_name,
            last_modified=obj.modified,
        )


def _append(out: BinaryIO, spool: BinaryIO) -> None:
    spool.flush()
    spool.seek(0)
    shutil.copyfileobj(spool, out, CHUNK_SIZE)
    spool.close()


class _Hasher:
    """SHA-512 of each file in a thread of its own, beside the reading (hashlib releases the GIL on large
    buffers). One SimpleQueue item per chunk, carrying its file's future; a file of at most INLINE_HASH bytes
    is hashed by the caller: waking the thread would cost more. At most HASH_BACKLOG bytes wait."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[tuple[Future[str], bytes, bool] | None] = queue.SimpleQueue()
        self.queued = 0  # bytes handed over, written by the reading thread only
        self.hashed = 0  # bytes hashed, written by the hashing thread only
        self.thread = threading.Thread(target=self._run, name="sha512", daemon=True)
        self.thread.start()
        self.closed = False

    def feed(self, future: Future[str], chunk: bytes, *, last: bool) -> None:
        while self.queued - self.hashed > HASH_BACKLOG:
            time.sleep(0.0005)  # the hashing thread is behind: it frees about 400 KB a millisecond
        self.queued += len(chunk)
        self.queue.put((future, chunk, last))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put(None)
            self.thread.join()

    def _run(self) -> None:
        digest, current = hashlib.sha512(), None
        while (item := self.queue.get()) is not None:
            future, chunk, last = item
            if future is not current:
                digest, current = hashlib.sha512(), future
            digest.update(chunk)
            self.hashed += len(chunk)
            if last:
                future.set_result(digest.hexdigest())


@dataclass
class _Entry:
    name: str
    path: Path
    modified: datetime
    announced: int
    sampler: Sampler
    method: int | None = None
    compressor: zlib._Compress | None = None
    crc: int = 0
    size: int = 0
    packed: int = 0
    flushed: bool = False


class _EntryWriter:
    """The zip's content entries: CRC-32, siegfried's sample, deflate when it helps, write."""

    def __init__(self, sip: SipZip) -> None:
        self.sip = sip

    def begin(self, name: str, path: Path, modified: datetime, announced: int, suffix: str) -> _Entry:
        return _Entry(name, path, modified, announced, Sampler(suffix))

    def feed(self, entry: _Entry, chunk: bytes) -> None:
        entry.crc = crc32(chunk, entry.crc)
        entry.size += len(chunk)
        entry.sampler.feed(chunk)
        if entry.method is None:
            chunk = self._start(entry, chunk)
        elif entry.compressor is not None:
            chunk = entry.compressor.compress(chunk)
        entry.packed += len(chunk)
        self.sip.write(chunk)

    def _start(self, entry: _Entry, first: bytes) -> bytes:
        """Choose the entry's method from its first chunk, write its header; returns what to write of it."""
        method, data = zipfile.ZIP_STORED, first
        if not _already_compressed(first, entry.sampler.suffix):
            compressor = _compressor(entry.announced)
            if len(first) >= entry.announced:  # the whole file: its own trial
                packed = compressor.compress(first) + compressor.flush()
                if len(packed) < len(first):
                    method, data, entry.flushed = zipfile.ZIP_DEFLATED, packed, True
            elif len(zlib.compress(first[:PROBE_SIZE], 1)) < PROBE_GAIN * min(len(first), PROBE_SIZE):
                method, data, entry.compressor = zipfile.ZIP_DEFLATED, compressor.compress(first), compressor
        entry.method = method
        self.sip.begin(entry.name, entry.modified, method, entry.announced)
        return data

    def end(self, entry: _Entry) -> None:
        if entry.method is None:  # nothing read: the build is refused, the entry only closes
            self.sip.begin(entry.name, entry.modified, zipfile.ZIP_STORED, 0)
            entry.method = zipfile.ZIP_STORED
        if entry.compressor is not None and not entry.flushed:
            tail = entry.compressor.flush()
            entry.packed += len(tail)
            self.sip.write(tail)
        if entry.method == zipfile.ZIP_DEFLATED and entry.packed >= entry.size:
            self._store_instead(entry)  # deflating made it larger after all (rare: the trial said otherwise)
        self.sip.end(entry.crc, entry.packed, entry.size)

    def _store_instead(self, entry: _Entry) -> None:
        """Write the entry again, stored: the file is read a second time (its CRC-32 must not change)."""
        self.sip.discard()
        self.sip.begin(entry.name, entry.modified, zipfile.ZIP_STORED, entry.size)
        crc = size = 0
        with entry.path.open("rb") as stream:
            while chunk := stream.read(CHUNK_SIZE):
                crc = crc32(chunk, crc)
                size += len(chunk)
                self.sip.write(chunk)
        if (crc, size) != (entry.crc, entry.size):
            raise SedaError(f"Le fichier « {entry.path.name} » a changé pendant la construction du paquet.")
        entry.method, entry.compressor, entry.packed = zipfile.ZIP_STORED, None, size


# --- verification ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SipVerification:
    problems: list[str]  # in French, empty when the package is consistent
    package: ReadPackage | None  # None when it could not be read as far as a SEDA manifest


# socle's own packages, just written: their sizes and ratios are the documents', not an attack's.
OWN_PACKAGE_LIMITS = InspectionLimits(
    max_entries=sys.maxsize,
    max_entry_size=sys.maxsize,
    max_total_size=sys.maxsize,
    max_manifest_size=sys.maxsize,
    max_ratio=math.inf,
)


def verify_sip(path: Path, limits: InspectionLimits = OWN_PACKAGE_LIMITS) -> list[str]:
    """Re-read a SIP and compare every declared BinaryDataObject with its zip entry.

    Returns French messages, empty when the package is consistent: digest or size mismatches, declared
    objects missing from the zip, zip entries the manifest does not declare, entries refused. Pass
    InspectionLimits() for a package from elsewhere (see check_sip).
    """
    return check_sip(path, limits).problems


def check_sip(path: Path, limits: InspectionLimits) -> SipVerification:
    """verify_sip's problems and the package read (manifest, version) with inspect's guards: no DTD or
    entity, no ``../`` or absolute entry, no encrypted entry, every byte counted against `limits`."""
    try:
        with zipfile.ZipFile(path) as archive:
            return _verify_archive(archive, limits)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as error:
        return SipVerification([f"Le paquet {path.name} est illisible : {unreadable_zip_reason(error)}."], None)


def _verify_archive(archive: zipfile.ZipFile, limits: InspectionLimits) -> SipVerification:
    try:
        package = read_package(archive, limits)
    except PackageRefused as refused:
        return SipVerification(list(refused.problems), None)
    problems = [*package.problems, *(problem for obj in package.objects for problem in obj.problems)]
    # What a streaming reader (Vitam's) would see differently: data hidden before, between or behind entries.
    layout = layout_problems(archive) if len(archive.infolist()) <= limits.max_entries else []
    return SipVerification([*layout, *problems, *package.undeclared()], package)
