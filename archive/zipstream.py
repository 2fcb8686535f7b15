"""The SIP zip written in one pass over the files, manifest first all the same.

The manifest must be the zip's first entry, but it can only be written once every file has been read (it
holds their digests). So the content entries are written first, from offset 0 of a temporary file beside the
destination, as the files are read; the manifest entry is then put in front of them. On ext4 and XFS this is
`fallocate(FALLOC_FL_INSERT_RANGE)`: the file system shifts the entries' blocks, no byte is copied. The
inserted length must be a multiple of the block size: the manifest's local header carries the difference as
padding in an extra field (id 0xa11e, the alignment field that commons-compress, which Vitam reads SIPs with,
itself writes and reads). Elsewhere (tmpfs, btrfs, NFS…) the entries are copied after the manifest into a
second file, with copy_file_range.

Every local header carries the entry's CRC-32 and sizes (patched in place once the entry is written): no
data descriptor, which streaming readers cannot handle for stored entries. Zip64 records are written where
sizes, offsets or the entry count need them, with zipfile's own thresholds (ZIP64_LIMIT,
ZIP_FILECOUNT_LIMIT), so the layout is the one zipfile writes. The central directory is spooled to a file
as the entries are written: nothing per entry stays in memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from socle.files import fsync_dir

__all__ = ["MANIFEST_NAME", "SipZip"]

MANIFEST_NAME = "manifest.xml"
CHUNK_SIZE = 1024 * 1024
# Deflate level for the entries that are compressed, manifest included. Level 1 deflates text at 120 MB/s
# here, level 6 (zlib's default) at 38 MB/s: text then takes 15 % of its size in the package instead of 9 %.
# The already-compressed formats (PDF, images, office documents), most of an archive's bytes, are stored.
DEFLATE_LEVEL = 1
# Dirty pages are handed to the disk every WRITEBACK_EVERY bytes, while the next files are read: the final
# fsync then has little left to wait for (Linux would otherwise start only at 10 % of memory, or after 30 s).
WRITEBACK_EVERY = 64 * 1024 * 1024

_LOCAL = struct.Struct("<4s2B4HL2L2H")  # zipfile.structFileHeader
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # zipfile.structCentralDir
_END = struct.Struct("<4s4H2LH")  # zipfile.structEndArchive
_END64 = struct.Struct("<4sQ2H2L4Q")  # zipfile.structEndArchive64
_LOCATOR64 = struct.Struct("<4sLQL")  # zipfile.structEndArchive64Locator
# One spooled central directory record: zip64 local header?, flags, method, time, date, CRC, compressed
# size, size, offset from the first content entry, name length (the name follows).
_SPOOLED = struct.Struct("<B4HL3QH")
_DEFAULT_VERSION = 20
_ZIP64_VERSION = 45
_UNIX = 3
_UTF8_FLAG = 0x800
_FILE_ATTRIBUTES = 0o644 << 16
_ALIGNMENT_EXTRA = 0xA11E
_FALLOC_FL_INSERT_RANGE = 0x20
_SYNC_FILE_RANGE_WRITE = 2


def _temporary_beside(destination: Path) -> tuple[int, str]:
    return tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")


def _dos_time(moment: datetime) -> tuple[int, int]:
    moment = max(moment, datetime(1980, 1, 1, tzinfo=UTC))  # the zip format starts in 1980
    date = (moment.year - 1980) << 9 | moment.month << 5 | moment.day
    time = moment.hour << 11 | moment.minute << 5 | moment.second // 2
    return time, date


def _encoded(name: str) -> tuple[bytes, int]:
    if name.isascii():
        return name.encode("ascii"), 0
    return name.encode("utf-8"), _UTF8_FLAG


def _local_header(
    name: bytes, flags: int, method: int, when: tuple[int, int], crc: int, compressed: int, size: int, *,
    zip64: bool, extra: bytes = b"",
) -> bytes:  # fmt: skip
    version = _DEFAULT_VERSION
    if zip64:
        extra = struct.pack("<HHQQ", 1, 16, size, compressed) + extra
        compressed = size = 0xFFFFFFFF
        version = _ZIP64_VERSION
    time, date = when
    header = _LOCAL.pack(
        b"PK\x03\x04", version, 0, flags, method, time, date, crc, compressed, size, len(name), len(extra)
    )
    return header + name + extra


class _Libc:
    """fallocate and sync_file_range, which the os module lacks; None where libc does not have them."""

    fallocate: Any
    sync_file_range: Any

    def __init__(self) -> None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            self.fallocate = libc.fallocate
            self.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
            self.sync_file_range = libc.sync_file_range
            self.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
        except (OSError, AttributeError):
            self.fallocate = self.sync_file_range = None

    def insert_range(self, fd: int, length: int) -> None:
        """Shift the whole file `length` bytes further, leaving a hole at its start; OSError if unsupported."""
        if self.fallocate is None:
            raise OSError("fallocate indisponible")
        if self.fallocate(fd, _FALLOC_FL_INSERT_RANGE, 0, length) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))

    def start_writeback(self, fd: int, offset: int, length: int) -> None:
        if self.sync_file_range is not None:
            self.sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # asynchronous, errors ignored


_LIBC = _Libc()


class SipZip:
    """A SIP zip being written beside `destination`; it appears there complete (finish) or not at all.

    Content entries are written one after the other (begin, write…, end) from offset 0; finish() puts the
    manifest in front, writes the central directory and renames the file into place. `work` is a folder
    for the spooled central directory and the compressed manifest. Not thread-safe: one writer.
    `insert_range=False` forces the copy that file systems without FALLOC_FL_INSERT_RANGE get.
    """

    def __init__(self, destination: Path, work: Path, *, insert_range: bool = True) -> None:
        self.destination = destination
        self.work = work
        self.insert_range = insert_range
        handle, name = _temporary_beside(destination)
        self.fd, self.path = handle, Path(name)
        self.position = 0
        self.entries = 0
        self.central = (work / "central").open("w+b")
        self._entry: tuple[bytes, int, int, tuple[int, int], int, bool] | None = None
        self._header = b""  # the current entry's local header, written with its first bytes
        self._flushed = 0
        self.shifted_by_copy = False  # whether finish() had to copy the entries (no INSERT_RANGE)
        self.padding = b""  # the manifest's padding field, repeated in its central record (as zipinfo expects)

    # --- content entries

    def begin(self, name: str, modified: datetime, method: int, size: int) -> None:
        """Start an entry; `size` is the file's announced size (it decides the Zip64 header)."""
        encoded, flags = _encoded(name)
        when = _dos_time(modified)
        expected = size * 1.05 if method == zipfile.ZIP_DEFLATED else size  # zipfile's own margin
        zip64 = expected > zipfile.ZIP64_LIMIT
        self._entry = (encoded, flags, method, when, self.position, zip64)
        self._header = _local_header(encoded, flags, method, when, 0, 0, 0, zip64=zip64)

    def write(self, data: bytes) -> None:
        header, self._header = self._header, b""
        self._write(header, data)  # the header goes with the entry's first bytes: one system call

    def end(self, crc: int, compressed: int, size: int) -> None:
        """Put the CRC-32 and sizes into the entry's local header, and its record into the spool."""
        assert self._entry is not None
        if self._header:  # an entry without data
            self.write(b"")
        name, flags, method, when, offset, zip64 = self._entry
        if not zip64 and max(size, compressed) > zipfile.ZIP64_LIMIT:
            raise OSError(f"l'entrée {name.decode()} dépasse la taille annoncée (Zip64 non prévu)")
        header = _local_header(name, flags, method, when, crc, compressed, size, zip64=zip64)
        os.pwrite(self.fd, header, offset)
        self.central.write(_SPOOLED.pack(zip64, flags, method, *when, crc, compressed, size, offset, len(name)) + name)
        self.entries += 1
        self._entry = None

    def discard(self) -> None:
        """Forget the entry being written (to write it again another way): the file is cut at its header."""
        assert self._entry is not None
        self.position = self._entry[4]
        self._header = b""
        os.ftruncate(self.fd, self.position)
        self._flushed = min(self._flushed, self.position)
        self._entry = None

    def _write(self, *parts: bytes) -> None:
        length = sum(len(part) for part in parts)
        written = os.pwritev(self.fd, parts, self.position)
        if written < length:  # a short write (signal, disk nearly full): the rest one call at a time
            rest = memoryview(b"".join(parts))[written:]
            while rest:
                done = os.pwrite(self.fd, rest, self.position + length - len(rest))
                rest = rest[done:]
        self.position += length
        if self.position - self._flushed >= WRITEBACK_EVERY:
            _LIBC.start_writeback(self.fd, self._flushed, self.position - self._flushed)
            self._flushed = self.position

    # --- the end

    def finish(self, manifest: Path, modified: datetime | None = None) -> None:
        """Put the manifest (a file) in front as a deflated entry, write the central directory, sync, rename."""
        compressed = self.work / "manifest.deflate"
        crc, size, packed = _deflate_file(manifest, compressed)
        name, flags = _encoded(MANIFEST_NAME)
        when = _dos_time(modified or datetime.now(UTC))
        zip64 = max(size, packed) > zipfile.ZIP64_LIMIT

        def header(extra: bytes = b"") -> bytes:
            return _local_header(name, flags, zipfile.ZIP_DEFLATED, when, crc, packed, size, zip64=zip64, extra=extra)

        shift = self._insert_in_front(header, compressed, packed) if self.insert_range else None
        if shift is None:
            shift = self._copy_behind(header(), compressed)
        record = _SPOOLED.pack(zip64, flags, zipfile.ZIP_DEFLATED, *when, crc, packed, size, 0, len(name)) + name
        self._write_central(record, shift)
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1
        os.chmod(self.path, 0o644)  # mkstemp's 0600 would hide the package from the other services' users
        os.replace(self.path, self.destination)
        fsync_dir(self.destination.parent)

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.path.unlink(missing_ok=True)
        self.central.close()

    def _insert_in_front(self, header: Callable[[bytes], bytes], compressed: Path, packed: int) -> int | None:
        """Insert the manifest entry at offset 0 in place; its length, or None when the file system cannot."""
        block = os.fstatvfs(self.fd).f_bsize
        if self.position == 0 or block > 0x8000:
            return None
        # The padding field: its id, its length, a two-byte alignment value (1: none asked), then zeros.
        padding = -(len(header(b"")) + 6 + packed) % block
        self.padding = struct.pack("<HHH", _ALIGNMENT_EXTRA, 2 + padding, 1) + bytes(padding)
        entry_head = header(self.padding)
        length = len(entry_head) + packed
        try:
            _LIBC.insert_range(self.fd, length)
        except OSError:
            return None
        os.pwrite(self.fd, entry_head, 0)
        _copy_range(compressed, self.fd, len(entry_head))
        self.position += length
        return length

    def _copy_behind(self, header: bytes, compressed: Path) -> int:
        """The manifest entry, then the content entries copied behind it, in a new temporary file."""
        handle, name = tempfile.mkstemp(
            dir=self.destination.parent, prefix=f".{self.destination.name}.", suffix=".part"
        )
        try:
            os.write(handle, header)
            shift = len(header) + _copy_range(compressed, handle, len(header))
            _copy_fd(self.fd, handle, self.position, shift)
        except BaseException:
            os.close(handle)
            Path(name).unlink(missing_ok=True)
            raise
        os.close(self.fd)
        self.path.unlink(missing_ok=True)
        self.fd, self.path = handle, Path(name)
        self.position += shift
        self.shifted_by_copy = True
        return shift

    def _write_central(self, manifest_record: bytes, shift: int) -> None:
        start = self.position
        self._write(self._central_record(manifest_record, 0, self.padding))
        self.central.seek(0)
        for _ in range(self.entries):
            fixed = self.central.read(_SPOOLED.size)
            record = fixed + self.central.read(_SPOOLED.unpack(fixed)[-1])
            self._write(self._central_record(record, shift))
        self.central.close()
        self._write(_end_records(1 + self.entries, start, self.position - start, self.position))

    @staticmethod
    def _central_record(record: bytes, shift: int, padding: bytes = b"") -> bytes:
        zip64_local, flags, method, time, date, crc, compressed, size, offset, length = _SPOOLED.unpack_from(record)
        name = record[_SPOOLED.size :]
        offset += shift
        extra: list[int] = []
        if size > zipfile.ZIP64_LIMIT or compressed > zipfile.ZIP64_LIMIT:
            extra += [size, compressed]
            size = compressed = 0xFFFFFFFF
        if offset > zipfile.ZIP64_LIMIT:
            extra.append(offset)
            offset = 0xFFFFFFFF
        data = (struct.pack("<HH" + "Q" * len(extra), 1, 8 * len(extra), *extra) if extra else b"") + padding
        version = _ZIP64_VERSION if extra or zip64_local else _DEFAULT_VERSION
        central = _CENTRAL.pack(
            b"PK\x01\x02", version, _UNIX, version, 0, flags, method, time, date, crc, compressed, size,
            length, len(data), 0, 0, 0, _FILE_ATTRIBUTES, offset,
        )  # fmt: skip
        return central + name + data


def _end_records(count: int, start: int, size: int, end: int) -> bytes:
    """The end of central directory record, preceded by the Zip64 ones when zipfile would write them."""
    records = b""
    if count > zipfile.ZIP_FILECOUNT_LIMIT or start > zipfile.ZIP64_LIMIT or size > zipfile.ZIP64_LIMIT:
        records += _END64.pack(
            b"PK\x06\x06", 44, _ZIP64_VERSION, _ZIP64_VERSION, 0, 0, count, count, size, start
        ) + _LOCATOR64.pack(b"PK\x06\x07", 0, end, 1)  # fmt: skip
        count, size, start = min(count, 0xFFFF), min(size, 0xFFFFFFFF), min(start, 0xFFFFFFFF)
    return records + _END.pack(b"PK\x05\x06", 0, 0, count, count, size, start, 0)


def _deflate_file(source: Path, target: Path) -> tuple[int, int, int]:
    """Raw deflate (as zipfile writes it) of a file into another: CRC-32, size, compressed size."""
    compressor = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, -15)
    crc = size = packed = 0
    with source.open("rb") as reader, target.open("wb") as writer:
        while chunk := reader.read(CHUNK_SIZE):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
            packed += writer.write(compressor.compress(chunk))
        packed += writer.write(compressor.flush())
    return crc, size, packed


def _copy_range(source: Path, fd: int, offset: int) -> int:
    """Write a whole file into `fd` at `offset`; returns its length."""
    with source.open("rb") as reader:
        length = os.fstat(reader.fileno()).st_size
        _copy_fd(reader.fileno(), fd, length, offset)
    return length


def _copy_fd(source: int, target: int, length: int, offset: int) -> None:
    """Copy the first `length` bytes of `source` to `target` at `offset`, in the kernel when it can."""
    done = 0
    try:
        while done < length:
            copied = os.copy_file_range(source, target, length - done, done, offset + done)
            if copied == 0:
                raise OSError("copie interrompue : fichier source raccourci")
            done += copied
    except OSError as error:
        if done or error.errno is None:
            raise
        _copy_by_reading(source, target, length, offset)


def _copy_by_reading(source: int, target: int, length: int, offset: int) -> None:
    done = 0
    while done < length:
        chunk = os.pread(source, min(CHUNK_SIZE, length - done), done)
        if not chunk:
            raise OSError("copie interrompue : fichier source raccourci")
        os.pwrite(target, chunk, offset + done)
        done += len(chunk)
