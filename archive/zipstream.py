"""The SIP zip written in one pass over the files, manifest first all the same.

The manifest must be the zip's first entry, but it can only be written once every file has been read (it holds
their digests). So the content entries are written first, from offset 0 of a temporary file in the work folder
beside the destination (work_folder_beside), as the files are read; the manifest entry is then put in front of
them. On ext4 and XFS this is `fallocate(FALLOC_FL_INSERT_RANGE)`: the file system shifts the entries' blocks,
no byte is copied. The inserted length must be a multiple of the block size: the manifest's local header
carries the difference as padding in an extra field (id 0xa11e, the alignment field that commons-compress,
which Vitam reads SIPs with, itself writes and reads). Elsewhere (tmpfs, btrfs, NFS…) the entries are copied
after the manifest into a second file, with copy_file_range.

Every local header carries the entry's CRC-32 and sizes (patched in place once the entry is written): no
data descriptor, which streaming readers cannot handle for stored entries. Zip64 records are written where
sizes, offsets or the entry count need them, with zipfile's own thresholds (ZIP64_LIMIT,
ZIP_FILECOUNT_LIMIT), so the layout is the one zipfile writes. The central directory is spooled to a file
as the entries are written: nothing per entry stays in memory.

The content entries go to the disk with O_DIRECT, from a page-aligned staging buffer (_DirectStage): copying
them into the page cache, and that cache's bookkeeping, cost this process more than half the CPU their SHA-512
costs (1.2 s against 2 s for 1.9 GB here; 0.5 s with O_DIRECT), for pages nobody reads again: the package is
fsynced anyway. The buffer's start is always block-aligned in the file; a local header is patched in the
buffer while it is there, or in a copy of its blocks kept when they left. Where the file system refuses
O_DIRECT (some FUSE, tmpfs before Linux 6.6) the entries go through the page cache. The manifest and the
central directory always do: they are small, and written where the entries' last block ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import mmap
import os
import secrets
import shutil
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from socle.files import fsync_dir

__all__ = ["MANIFEST_NAME", "SipZip", "work_folder_beside"]

MANIFEST_NAME = "manifest.xml"
CHUNK_SIZE = 1024 * 1024
# Deflate level for the entries that are compressed, manifest included. Level 1 deflates text at 120 MB/s
# here, level 6 (zlib's default) at 38 MB/s: text then takes 15 % of its size in the package instead of 9 %.
# The already-compressed formats (PDF, images, office documents), most of an archive's bytes, are stored.
DEFLATE_LEVEL = 1
# Dirty pages are handed to the disk every WRITEBACK_EVERY bytes, while the next files are read: the final
# fsync then has little left to wait for (Linux would otherwise start only at 10 % of memory, or after 30 s).
WRITEBACK_EVERY = 64 * 1024 * 1024
# O_DIRECT: offsets, lengths and memory aligned on 4096 bytes suit 512-byte and 4 KiB sectors alike. The
# staging buffer goes to the disk whole. Reading and writing 1.9 GB here took 1.0 s of CPU with 4 MiB, 1.2 s
# with 1 MiB, the same with 8 MiB (4 MiB more of RSS), 1.5 s through the page cache. Two buffers: a thread
# writes one while the other fills. A synchronous 4 MiB write waits about 5 ms for the disk: 4 to 4.6 s of
# a 10,000-file build in which the reading thread did nothing, and the hashing thread and siegfried, fed by
# it, soon nothing either.
ALIGNMENT = 4096
STAGE_SIZE = 4 * 1024 * 1024

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
# What a file system that cannot do O_DIRECT answers, to the open or to the first write.
_NO_DIRECT_IO = {errno.EINVAL, errno.EOPNOTSUPP}
# The longest local header: fixed part, a name of 65,535 bytes, the Zip64 field.
_LONGEST_HEADER = _LOCAL.size + 0xFFFF + 20


@contextlib.contextmanager
def work_folder_beside(destination: Path) -> Iterator[Path]:
    """A private folder beside `destination` (so on its file system: the package is renamed from it into
    place), removed on the way out, whatever ends the build.

    Its name is chosen before it is created, and removed by that name: a signal that the CLI turns into
    SystemExit can land between the mkdir and the line that would have kept its name (tempfile.mkdtemp's
    window, which left a folder behind). 128 random bits: no other file has that name. The name is the
    destination's, shortened so that the whole stays within the 255 bytes a file system accepts."""
    name = destination.name.encode("utf-8")[:180].decode("utf-8", "ignore")
    folder = destination.parent / f".{name}.{secrets.token_hex(16)}"
    try:
        folder.mkdir(mode=0o700)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _temporary_in(work: Path) -> tuple[int, str]:
    return tempfile.mkstemp(dir=work, prefix="paquet-", suffix=".part")


# The dates a zip header can hold: its year is 7 bits from 1980, its seconds counted by two.
DOS_FIRST = datetime(1980, 1, 1, tzinfo=UTC)
DOS_LAST = datetime(2107, 12, 31, 23, 59, 58, tzinfo=UTC)


def dos_clamped(moment: datetime) -> datetime:
    """A file's date as a zip header can say it: before 1980 or after 2107 (a file dated 2150 on purpose, a
    broken clock), the nearest bound. The manifest keeps the file's own date."""
    return min(max(moment, DOS_FIRST), DOS_LAST)


def _dos_time(moment: datetime) -> tuple[int, int]:
    moment = dos_clamped(moment)
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


def _aligned_down(offset: int) -> int:
    return offset - offset % ALIGNMENT


def _aligned_up(offset: int) -> int:
    return -(-offset // ALIGNMENT) * ALIGNMENT


def _pwrite_all(fd: int, data: memoryview | mmap.mmap, offset: int) -> None:
    """Write all of `data` at `offset`; OSError on a short write, which O_DIRECT cannot resume unaligned."""
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        if done <= 0 or done % ALIGNMENT:
            message = f"écriture du paquet interrompue ({done} octets écrits sur {len(view)}) : disque plein ?"
            raise OSError(errno.ENOSPC, message)
        view, offset = view[done:], offset + done


def _open_direct(path: Path) -> int | None:
    """A second descriptor on `path` with O_DIRECT, tried with one block at offset 0; None where refused."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | flag)
    except OSError as error:
        if error.errno in _NO_DIRECT_IO:
            return None
        raise
    try:
        # A larger preferred block may mean larger alignment constraints than ALIGNMENT: not worth guessing.
        if os.fstat(fd).st_blksize > ALIGNMENT:
            os.close(fd)
            return None
        # Some file systems accept the flag and refuse the write (EINVAL): the first write decides, before any
        # entry is staged. The block is overwritten by the entries; the file is cut to their end on close.
        _pwrite_all(fd, mmap.mmap(-1, ALIGNMENT), 0)  # unmapped when collected (an error's traceback holds it)
    except OSError as error:
        os.close(fd)
        if error.errno in _NO_DIRECT_IO:
            return None
        raise
    return fd


class _DirectStage:
    """The content entries on their way to an O_DIRECT descriptor of the temporary file.

    Bytes are gathered in a page-aligned buffer that covers the file from `base` (block-aligned) to `base +
    fill`, and written whole when full, by a thread of its own while the other buffer fills (a buffer is
    filled again only once written). When it leaves with the open entry's local header in it, the blocks
    holding the header are copied aside: end() patches that copy and queues it behind the buffer's own write
    (one writing thread: writes land in the order queued), discard() takes the blocks' first bytes back from
    it. At most one header per buffer: 473 for 1.9 GB, 2 MB written twice; reading the blocks back, or
    waiting for the buffer's write before patching, would wait for the disk each time (3.6 s of a
    10,000-file build). A failed write is raised by the next call that waits for the writes.
    """

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.buffer, self.spare = mmap.mmap(-1, size), mmap.mmap(-1, size)
        for page in range(0, size, mmap.PAGESIZE):  # resident now, before siegfried's memory limit is set
            self.spare[page] = 0
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="sip-writer")
        self.in_flight: list[Future[None]] = []
        self.base = 0  # the file offset of the buffer's first byte, always block-aligned
        self.fill = 0
        self.entry: tuple[int, int] | None = None  # the open entry's header: offset, length
        # The open entry's header blocks already written, from file offset held_at to held_end (0: none).
        self.held = mmap.mmap(-1, _aligned_up(_LONGEST_HEADER) + ALIGNMENT)
        self.held_at = self.held_end = 0

    @classmethod
    def open(cls, path: Path) -> _DirectStage | None:
        """The stage of the file at `path`; None where its file system refuses O_DIRECT."""
        fd = _open_direct(path)
        if fd is None:
            return None
        try:
            return cls(fd, STAGE_SIZE)
        except BaseException:
            os.close(fd)
            raise

    @property
    def position(self) -> int:
        return self.base + self.fill

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            length = min(len(view), len(self.buffer) - self.fill)
            self.buffer[self.fill : self.fill + length] = view[:length]
            self.fill += length
            view = view[length:]
            if self.fill == len(self.buffer):
                self._send()

    def begin(self, offset: int, length: int) -> None:
        self.entry = (offset, length)

    def patch(self, header: bytes) -> None:
        """Put the open entry's final header in place, wherever its bytes are now; the entry is closed."""
        assert self.entry is not None
        offset, end = self.entry[0], self.entry[0] + len(header)
        if end > self.base:  # still in the buffer, at least in part
            start = max(offset, self.base)
            self.buffer[start - self.base : end - self.base] = header[start - offset :]
        if offset < self.base:  # sent already, at least in part: its blocks again, behind them
            written = min(end, self.base)
            self.held[offset - self.held_at : written - self.held_at] = header[: written - offset]
            blocks = mmap.mmap(-1, self.held_end - self.held_at)  # aligned, and free of the next entry's use
            blocks[:] = self.held[: self.held_end - self.held_at]
            self.in_flight.append(self.writer.submit(_pwrite_all, self.fd, blocks, self.held_at))
        self.entry = None
        self.held_at = self.held_end = 0

    def discard(self) -> None:
        """Go back to the open entry's header offset, and forget the entry."""
        assert self.entry is not None
        offset = self.entry[0]
        if offset < self.base:  # the buffer starts again at the header's block, whose first bytes were kept
            self._wait()  # before the cut: a write still in flight would extend the file again
            kept = offset - self.held_at
            self.buffer[:kept] = self.held[:kept]
            self.base = self.held_at
            os.ftruncate(self.fd, offset)  # what was written of the entry is dropped
        self.fill = offset - self.base
        self.entry = None
        self.held_at = self.held_end = 0

    def close(self) -> None:
        """Write what is left (its last block padded with zeros), cut the file to its end, close."""
        assert self.entry is None
        try:
            self._wait()
            if self.fill:
                padded = _aligned_up(self.fill)
                self.buffer[self.fill : padded] = bytes(padded - self.fill)
                _pwrite_all(self.fd, memoryview(self.buffer)[:padded], self.base)
            os.ftruncate(self.fd, self.position)
        finally:
            self.abort()

    def abort(self) -> None:
        self.writer.shutdown(wait=True)  # a write in flight ends before its descriptor closes (errors dropped)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _send(self) -> None:
        """Hand the full buffer to the writing thread and go on in the other one, once its write is done."""
        self._hold()
        self._wait()
        self.in_flight.append(self.writer.submit(_pwrite_all, self.fd, self.buffer, self.base))
        self.buffer, self.spare = self.spare, self.buffer
        self.base += self.fill
        self.fill = 0

    def _wait(self) -> None:
        """Wait for the writes in flight; raises the first one's error (disk full…)."""
        flights, self.in_flight = self.in_flight, []
        for flight in flights:
            flight.result()

    def _hold(self) -> None:
        """Copy aside the blocks of the open entry's header that are in the (full) buffer about to leave."""
        if self.entry is None:
            return
        offset, length = self.entry
        first, last = max(offset, self.base), min(offset + length, self.base + self.fill)
        if first >= last:
            return
        if not self.held_end:
            self.held_at = _aligned_down(offset)
        start, stop = _aligned_down(first), _aligned_up(last)  # within the buffer, whose ends are aligned
        self.held[start - self.held_at : stop - self.held_at] = self.buffer[start - self.base : stop - self.base]
        self.held_end = stop


class SipZip:
    """A SIP zip being written in `work`; it appears at `destination` complete (finish) or not at all.

    Content entries are written one after the other (begin, write…, end) from offset 0; finish() puts the
    manifest in front, writes the central directory and renames the file into place. `work` is a folder on
    the destination's file system (work_folder_beside), whose owner removes it with whatever is left in it:
    the package being written, the spooled central directory, the compressed manifest. Not thread-safe: one writer.
    `insert_range=False` forces the copy that file systems without FALLOC_FL_INSERT_RANGE get; `direct=False`
    the page cache that file systems without O_DIRECT get (`direct_io` tells which path the entries took).
    """

    def __init__(self, destination: Path, work: Path, *, insert_range: bool = True, direct: bool = True) -> None:
        self.destination = destination
        self.work = work
        self.insert_range = insert_range
        self.position = 0
        self.entries = 0
        self.central = (work / "central").open("w+b")  # in `work`, whose owner removes it
        self._entry: tuple[bytes, int, int, tuple[int, int], int, bool] | None = None
        self._header = b""  # the current entry's local header, written with its first bytes
        self._flushed = 0
        self.shifted_by_copy = False  # whether finish() had to copy the entries (no INSERT_RANGE)
        self.padding = b""  # the manifest's padding field, repeated in its central record (as zipinfo expects)
        # `fd` stays buffered for finish(); the entries go through a second descriptor when O_DIRECT works.
        self._stage: _DirectStage | None = None
        self.fd = -1
        # Anything that stops the construction (an error, a signal turned into SystemExit by the CLI) closes
        # the temporary file; the work folder, removed by its owner, takes it away.
        handle, name = _temporary_in(work)
        self.fd, self.path = handle, Path(name)
        try:
            self._stage = _DirectStage.open(self.path) if direct else None
        except BaseException:
            self.abort()
            raise
        self.direct_io = self._stage is not None  # whether the entries were written with O_DIRECT

    # --- content entries

    def begin(self, name: str, modified: datetime, method: int, size: int) -> None:
        """Start an entry; `size` is the file's announced size (it decides the Zip64 header)."""
        encoded, flags = _encoded(name)
        when = _dos_time(modified)
        expected = size * 1.05 if method == zipfile.ZIP_DEFLATED else size  # zipfile's own margin
        zip64 = expected > zipfile.ZIP64_LIMIT
        self._entry = (encoded, flags, method, when, self.position, zip64)
        self._header = _local_header(encoded, flags, method, when, 0, 0, 0, zip64=zip64)
        if self._stage is not None:
            self._stage.begin(self.position, len(self._header))

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
        if self._stage is not None:
            self._stage.patch(header)
        else:
            os.pwrite(self.fd, header, offset)
        self.central.write(_SPOOLED.pack(zip64, flags, method, *when, crc, compressed, size, offset, len(name)) + name)
        self.entries += 1
        self._entry = None

    def discard(self) -> None:
        """Forget the entry being written (to write it again another way): the file is cut at its header."""
        assert self._entry is not None
        self.position = self._entry[4]
        self._header = b""
        if self._stage is not None:
            self._stage.discard()
        else:
            os.ftruncate(self.fd, self.position)
            self._flushed = min(self._flushed, self.position)
        self._entry = None

    def _write(self, *parts: bytes) -> None:
        if self._stage is not None:
            for part in parts:
                self._stage.write(part)
            self.position = self._stage.position
            return
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
        if self._stage is not None:  # the entries on the disk, the file cut to their end: the rest is buffered
            stage, self._stage = self._stage, None
            stage.close()
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
        if self._stage is not None:
            stage, self._stage = self._stage, None
            stage.abort()
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
        handle, name = _temporary_in(self.work)
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
