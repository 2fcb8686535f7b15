"""Format identification with siegfried (pygfried), on a sample of each file, in a process of its own.

What siegfried costs, measured here (pygfried 2.2, siegfried 1.11.9, see docs/performances.md): it loads
its signatures once per process (about 85 MB of Go heap), then matches them byte after byte over wide
windows, 10 to 125 MB/s of scanned bytes depending on the format; PDF is the worst case, its PDF/A signatures
search the whole file. So siegfried is shown a sample of each file, kept during the single read that also
hashes it: its first IDENTIFY_HEAD and last IDENTIFY_TAIL bytes (the whole file when smaller), plus, in a
PDF, the bytes around its PDF/A identification metadata wherever they lie. Container formats (zip: DOCX,
ODT, XLSX…; OLE2: DOC, XLS…) are told apart from a plain zip or OLE2 file by their members: those are
identified on the file itself, whose directory and few named members siegfried reads (a real office
document takes it under a millisecond, however large).

siegfried runs Go code with the GIL held, and its Go heap grows to about twice the live heap with Go's
default GC setting (the "leak" of a few KB per call seen before): packaging.build_sip runs it in a process
of its own (Identifier, loop in archive.siegfried), fed in batches while the main process reads and
hashes, with GOMEMLIMIT to hold its heap near the live size, replaced every RECYCLE_AFTER files as a bound
on anything that would still grow. That process is started by exec, never forked: the Go runtime hangs in a
process forked after it started.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from archive.siegfried import UNKNOWN, Format, identify_paths, identify_samples, read_frame, scratch_parent, write_frame

__all__ = [
    "IDENTIFY_HEAD",
    "IDENTIFY_TAIL",
    "UNKNOWN",
    "Format",
    "IdentificationError",
    "Identifier",
    "Sample",
    "Sampler",
    "identify_here",
    "identify_paths",
    "worker_memory_limit",
]

# 4 KiB each way: on 3,835 files of 454 extensions found on a Debian system (bench/sip_build.py --fidelite),
# siegfried gives exactly its whole-file answer; 8 KiB costs half as much again per file.
IDENTIFY_HEAD = 4 * 1024
IDENTIFY_TAIL = 4 * 1024
# Formats whose kind is told by their members: identified on the file itself (see the module docstring).
CONTAINER_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")
PDF_MAGIC = b"%PDF-"
# The PDF/A identification schema (pdfaid:part, pdfaid:conformance in the XMP metadata), which the PRONOM
# PDF/A signatures look for anywhere in the file: the bytes around its first declaration are shown. The
# namespace URI is looked for rather than the `pdfaid` prefix: a long needle is found five times faster
# (7 GB/s against 1.5), and XMP declares it before, and near, the properties that use it.
PDF_MARKER = b"http://www.aiim.org/pdfa/ns/id/"
MARKER_BEFORE = 512
MARKER_AFTER = 7680
# The worker process is replaced after this many files.
RECYCLE_AFTER = 50_000
# Its memory. GOMEMLIMIT holds the Go heap near its live size (about 85 MB of signatures); each collection
# marks that whole heap, so a tighter limit costs CPU (per file, measured on the benchmark's samples: 0.59 ms
# at 100 MiB, 0.49 at 120, the same as with no collection at all; 0.75 at 100 and twice as much at 85 in
# earlier runs under load). So the limit is what the build's budget leaves: the whole process tree must stay
# under 200 MB (issue 5), TREE_BUDGET keeps a margin under it; the main process takes its RSS when the worker
# starts plus what it grows by while reading (the hash backlog, chunks and samples in flight: MAIN_GROWTH);
# the worker takes WORKER_OVERHEAD beside its Go heap (Python, pygfried's code, the Go runtime: 114 MiB of
# RSS at a 100 MiB limit, 131 to 133 at 120). Kept between the floor where collections start to cost twice
# as much and the ceiling beyond which they cost nothing measurable.
MIB = 1024 * 1024
TREE_BUDGET = 190 * MIB
MAIN_GROWTH = 10 * MIB
WORKER_OVERHEAD = 14 * MIB
WORKER_MEMORY_FLOOR = 100 * MIB
WORKER_MEMORY_CEILING = 128 * MIB
BATCH = 64
BATCH_WAIT = 0.05  # seconds

_SUFFIX = re.compile(r"\.[A-Za-z0-9_-]{1,15}")


class IdentificationError(RuntimeError):
    """siegfried could not be run (message in French)."""


# --- samples ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """What siegfried is shown of a file: these bytes, or the file itself when `data` is None."""

    data: bytes | None
    suffix: str  # the original extension: siegfried uses it when byte signatures tie


class Sampler:
    """Keeps, from the chunks of one read of a file, the bytes siegfried will be shown (see the module doc)."""

    def __init__(self, suffix: str = "") -> None:
        self.suffix = suffix if _SUFFIX.fullmatch(suffix) else ""
        self.head = bytearray()
        self.tail = b""
        self.size = 0
        self.pdf: bool | None = None  # known once the head holds the magic's length
        self.previous = b""  # the end of the previous chunks: what a window may need before a marker
        self.window = bytearray()
        self.window_start = -1
        self.window_missing = 0

    def feed(self, chunk: bytes) -> None:
        start = self.size
        self.size += len(chunk)
        if len(self.head) < IDENTIFY_HEAD:
            self.head += chunk[: IDENTIFY_HEAD - len(self.head)]
        self.tail = chunk[-IDENTIFY_TAIL:] if len(chunk) >= IDENTIFY_TAIL else (self.tail + chunk)[-IDENTIFY_TAIL:]
        if self.pdf is None and len(self.head) >= len(PDF_MAGIC):
            self.pdf = self.head.startswith(PDF_MAGIC)
        if self.pdf:
            self._find_marker(chunk, start)
            keep = MARKER_BEFORE + len(PDF_MARKER)  # a marker may start in these bytes, its window before it
            self.previous = (chunk if len(chunk) >= keep else self.previous + chunk)[-keep:]

    def _find_marker(self, chunk: bytes, start: int) -> None:
        if self.window_missing:
            taken = chunk[: self.window_missing]
            self.window += taken
            self.window_missing -= len(taken)
            return
        if self.window_start >= 0:
            return
        # A marker across the previous chunk and this one, then in this one (bytes.find: no copy).
        overlap = len(PDF_MARKER) - 1
        joined = self.previous[-overlap:] + chunk[:overlap]
        found = joined.find(PDF_MARKER)
        position = start - len(self.previous[-overlap:]) + found if found >= 0 else -1
        if position < 0 and (found := chunk.find(PDF_MARKER)) >= 0:
            position = start + found
        if position >= 0:
            low, high = position - MARKER_BEFORE, position + MARKER_AFTER
            self.window_start = max(low, start - len(self.previous))
            self.window = bytearray(self._between(self.window_start, high, chunk, start))
            self.window_missing = max(high - (start + len(chunk)), 0)

    def _between(self, low: int, high: int, chunk: bytes, start: int) -> bytes:
        """Bytes [low, high) of the file, from the previous chunk's end and this chunk."""
        before = start - len(self.previous)
        parts = []
        if low < start:
            parts.append(self.previous[low - before : max(min(high, start) - before, 0)])
        if high > start:
            parts.append(chunk[max(low - start, 0) : high - start])
        return b"".join(parts)

    def sample(self) -> Sample:
        size, head = self.size, bytes(self.head)
        if size <= IDENTIFY_HEAD + IDENTIFY_TAIL:  # every byte was kept: the whole file
            rest = size - len(head)
            return Sample(head + (self.tail[-rest:] if rest > 0 else b""), self.suffix)
        if head.startswith(CONTAINER_MAGIC):
            return Sample(None, self.suffix)
        middle = b""
        if self.window_start >= 0:  # only what the head and the tail do not already show
            low = max(self.window_start, IDENTIFY_HEAD)
            high = min(self.window_start + len(self.window), size - IDENTIFY_TAIL)
            if high > low:
                middle = bytes(self.window[low - self.window_start : high - self.window_start])
        return Sample(head + middle + self.tail, self.suffix)


# --- siegfried -------------------------------------------------------------------------------------


_HERE: tuple[int, ThreadPoolExecutor] | None = None
_HERE_LOCK = threading.Lock()


def identify_here(sample: Sample, path: Path) -> Format:
    """Identify a sample in this process, in its single siegfried thread (see _siegfried_thread)."""
    return _siegfried_thread().submit(_identify_in_thread, sample, path).result()


def _siegfried_thread() -> ThreadPoolExecutor:
    """The process's single siegfried thread.

    siegfried is Go code called with the GIL held: calls from several threads run one at a time anyway, and
    three times slower (Go binds each new calling thread). Recreated in a forked child, where the parent's
    thread does not exist.
    """
    global _HERE
    with _HERE_LOCK:
        if _HERE is None or _HERE[0] != os.getpid():
            _HERE = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="siegfried"))
        return _HERE[1]


def _identify_in_thread(sample: Sample, path: Path) -> Format:
    with tempfile.TemporaryDirectory(prefix="socle-identify-", dir=scratch_parent()) as scratch:
        item = (str(path), None, sample.suffix) if sample.data is None else (None, sample.data, sample.suffix)
        return identify_samples([item], scratch)[0]


# --- the worker process ----------------------------------------------------------------------------


_Item = tuple[Sample, Path, "Future[Format]"]
_Request = tuple[str | None, bytes | None, str]  # (a file itself, or None and a sample's bytes; its suffix)
_WORKER_MAIN = "from archive.siegfried import serve; serve()"


class Identifier:
    """siegfried in a process of its own: submit() samples from any thread, answers come as futures.

    A thread of this process sends what was submitted since its last batch (up to BATCH samples) and waits
    for the answers, while the caller goes on reading and hashing. Use as a context manager: leaving it waits
    for every answer and stops the process.
    """

    def __init__(self, *, recycle_after: int = RECYCLE_AFTER) -> None:
        self.recycle_after = recycle_after
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._process: subprocess.Popen[bytes] | None = None
        self._identified = 0  # by the current process
        self.processes = 0  # started so far (each replacement counts)
        self._thread = threading.Thread(target=self._run, name="siegfried-feeder", daemon=True)
        self._thread.start()

    def submit(self, sample: Sample, path: Path) -> Future[Format]:
        future: Future[Format] = Future()
        self._queue.put((sample, path, future))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def __enter__(self) -> Identifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                self._answer(batch)
        finally:
            self._stop_worker()

    def _next_batch(self) -> list[_Item] | None:
        """Up to BATCH samples; waits up to BATCH_WAIT after the first one for the others to come. siegfried
        keeps up with the reading, so without that wait most batches held one file, and each paid the whole
        round trip (pickling, two pipes, a call into Go): 0.3 ms more per file."""
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        deadline = time.monotonic() + BATCH_WAIT
        while len(batch) < BATCH:
            try:
                item = self._queue.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # seen again once this batch is answered
                break
            batch.append(item)
        return batch

    def _answer(self, batch: list[_Item]) -> None:
        request: list[_Request] = [
            (str(path), None, sample.suffix) if sample.data is None else (None, sample.data, sample.suffix)
            for sample, path, _ in batch
        ]
        try:
            try:
                answers = self._call(request)
            except _WorkerDied:  # once more with a new process: a crash on one batch should not end the build
                answers = self._call(request)
        except (_WorkerDied, OSError) as error:
            failure = IdentificationError(f"L'identification des formats (siegfried) a échoué : {error}")
            for _, _, future in batch:
                future.set_exception(failure)
            return
        for (_, _, future), answer in zip(batch, answers, strict=True):
            future.set_result(answer)
        self._identified += len(batch)
        if self._identified >= self.recycle_after:
            self._stop_worker()

    def _call(self, request: list[_Request]) -> list[Format]:
        process = self._worker()
        assert process.stdin is not None and process.stdout is not None
        try:
            write_frame(process.stdin, request)
            answer = read_frame(process.stdout)
        except (BrokenPipeError, EOFError, pickle.UnpicklingError) as error:
            self._stop_worker()
            raise _WorkerDied(str(error) or type(error).__name__) from error
        if answer is None or len(answer) != len(request):
            self._stop_worker()
            raise _WorkerDied("réponse incomplète du processus d'identification")
        return list(answer)

    def _worker(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            env = dict(os.environ)
            env.setdefault("GOMEMLIMIT", f"{worker_memory_limit() // MIB}MiB")
            # One Go thread: the batches are identified one file at a time anyway, and Go's other threads
            # (collection workers, idle ones looking for work) cost 15 to 30 % more CPU per file here.
            env.setdefault("GOMAXPROCS", "1")
            self._process = subprocess.Popen(
                [sys.executable, "-c", _WORKER_MAIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
            )
            self._identified = 0
            self.processes += 1
        return self._process

    def _stop_worker(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None and process.stdout is not None
        with contextlib.suppress(OSError):
            process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


class _WorkerDied(Exception):
    pass


def worker_memory_limit(main_rss: int | None = None) -> int:
    """The worker's GOMEMLIMIT in bytes: what TREE_BUDGET leaves beside this process (see the constants)."""
    if main_rss is None:
        main_rss = _own_rss()
    if main_rss is None:  # no /proc: the limit that held the budget beside the CLI's process
        return WORKER_MEMORY_FLOOR
    left = TREE_BUDGET - main_rss - MAIN_GROWTH - WORKER_OVERHEAD
    return max(WORKER_MEMORY_FLOOR, min(left // MIB * MIB, WORKER_MEMORY_CEILING))


def _own_rss() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
