"""Bulk PAdES signing: many PDFs, one signing identity, results as they come.

Pure domain module, like ``pades``: it reads and writes the paths it is given and knows nothing about
folders, users or workflows. Signing is CPU-bound (PDF parsing, CMS encoding, RSA) and pyHanko holds the
GIL, so the documents are spread over a pool of processes; each worker loads the identity once, since
loading a PKCS#12 key (RSA consistency check) costs about as much as a signature, and prepares its CMS
template once (``parapheur.fastsign``), which makes a plain B-B signature about six times cheaper.
Documents travel to the workers in small chunks: one task per document cost the parent as much CPU as a
signature's PDF work. Inside a worker, two threads overlap one document's durable write with the next one's
computation. A small batch is signed in the calling process, since starting the pool would cost more.
"""

from __future__ import annotations

import glob
import logging
import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from itertools import chain, islice
from pathlib import Path

from parapheur.fastsign import TemplateError, fast_identity
from parapheur.pades import (
    IdentityError,
    PdfError,
    SignatureRequest,
    SigningError,
    SigningIdentity,
    sign_pdf,
)

# Documents per task, at most: enough to make the pool's per-task cost negligible, few enough for results
# to keep flowing. The first chunks are smaller so that a short batch still keeps every worker busy.
CHUNK_SIZE = 8
# Tasks kept in flight per worker: enough for a worker never to wait for the parent, few enough for the
# memory of the parent to stay flat however long the batch is.
CHUNKS_IN_FLIGHT_PER_WORKER = 2
# Documents a worker signs at the same time. Each one ends with two fsync calls (atomic_output), which wait
# on the disk from under a millisecond to ten when other programs write: a second thread computes meanwhile.
THREADS_PER_WORKER = 2
# Below this many documents, and unless the caller sets ``workers``, the batch is signed in this process:
# starting the pool (an interpreter importing pyHanko, keys loaded) costs 0.3 to 1 s of processor time, what
# one process needs for 100 to 300 signatures.
SMALL_BATCH = 200
# Documents handed out and not yet reported, per worker, at most.
IN_FLIGHT_PER_WORKER = CHUNK_SIZE * CHUNKS_IN_FLIGHT_PER_WORKER

UNEXPECTED_ERROR = "Erreur inattendue pendant la signature de ce document."
WORKER_LOST_ERROR = "Le processus de signature s'est arrêté pendant ce document : il n'a pas été signé, relancez-le."
WORKERS_UNAVAILABLE_ERROR = "Les processus de signature n'ont pas pu démarrer : ce document n'a pas été signé."

Job = tuple[Path, Path]
# Which file a path named when the job was handed out (st_dev, st_ino), None if none: see _lost.
FileIdentity = tuple[int, int] | None
Chunk = tuple[tuple[Path, Path, FileIdentity], ...]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BulkResult:
    source: Path
    destination: Path
    ok: bool
    error: str | None = None


def sign_many(
    jobs: Iterable[Job],
    pkcs12: bytes,
    passphrase: bytes,
    request: SignatureRequest,
    *,
    workers: int | None = None,
) -> Iterator[BulkResult]:
    """Sign every ``(source, destination)`` of ``jobs``, yielding one result per job as soon as it is done.

    Results come in completion order, not in the order of ``jobs``. A document that cannot be signed gets
    ``ok=False`` and a French message; the others go on. Each destination appears atomically, or not at all.
    ``workers`` defaults to the number of CPUs, or to this process alone for a batch of fewer than
    ``SMALL_BATCH`` documents (read ahead to know); with 1, everything runs in this process. Plain B-B signatures
    with an RSA key get their CMS container from a template prepared once per process (``parapheur.fastsign``);
    the document side, visible stamp included, is ``pades.sign_pdf``'s.

    :raises IdentityError: the PKCS#12 cannot be opened (checked before any document is touched).
    """
    # Loaded here too so that a wrong passphrase fails at once, not once per worker and per document.
    identity = SigningIdentity.from_pkcs12(pkcs12, passphrase)
    if workers is not None and workers < 1:
        raise ValueError("workers must be at least 1")
    pending = iter(jobs)
    if workers is None:
        head = list(islice(pending, SMALL_BATCH))
        if len(head) < SMALL_BATCH:
            return _sign_in_process(iter(head), _fast_or_plain(identity), request)
        pending = chain(head, pending)
    count = workers or os.cpu_count() or 1
    if count == 1:
        return _sign_in_process(pending, _fast_or_plain(identity), request)
    return _sign_in_pool(pending, pkcs12, passphrase, request, count)


def _fast_or_plain(identity: SigningIdentity) -> SigningIdentity:
    try:
        return fast_identity(identity)
    except TemplateError:
        # A pyHanko upgrade that changes its containers must slow bulk signing down, not stop it.
        logger.exception("CMS template unavailable: bulk signing goes through pyHanko's full path")
        return identity


def _sign_in_process(jobs: Iterator[Job], identity: SigningIdentity, request: SignatureRequest) -> Iterator[BulkResult]:
    """Sign in this process's threads, chunk by chunk (bounded reading of ``jobs``), in the order of ``jobs``."""
    sign = partial(_sign_job, identity=identity, request=request)
    with ThreadPoolExecutor(THREADS_PER_WORKER, thread_name_prefix="signature") as threads:
        while chunk := _next_chunk(jobs, CHUNK_SIZE):
            yield from threads.map(sign, chunk)


# --------------------------------------------------------------------------- one document


def _sign_one(source: Path, destination: Path, identity: SigningIdentity, request: SignatureRequest) -> BulkResult:
    try:
        sign_pdf(source, destination, identity, request)
    except (PdfError, SigningError) as exc:
        return BulkResult(source, destination, ok=False, error=str(exc))
    except Exception:
        # A bug or an unforeseen library failure on one document must not end the whole batch.
        return BulkResult(source, destination, ok=False, error=UNEXPECTED_ERROR)
    return BulkResult(source, destination, ok=True)


# --------------------------------------------------------------------------- worker processes

# Set in each worker process by _init_worker; never used in the parent.
_worker_identity: SigningIdentity | None = None
_worker_request: SignatureRequest | None = None
_worker_threads: ThreadPoolExecutor | None = None


def _init_worker(pkcs12: bytes, passphrase: bytes, request: SignatureRequest) -> None:
    global _worker_identity, _worker_request, _worker_threads
    _worker_identity = _fast_or_plain(SigningIdentity.from_pkcs12(pkcs12, passphrase))
    _worker_request = request
    _worker_threads = ThreadPoolExecutor(THREADS_PER_WORKER, thread_name_prefix="signature")


def _sign_chunk_in_worker(chunk: Chunk) -> list[BulkResult]:
    if _worker_identity is None or _worker_request is None or _worker_threads is None:
        raise IdentityError("Le processus de signature n'a pas chargé le certificat.")
    sign = partial(_sign_job, identity=_worker_identity, request=_worker_request)
    return list(_worker_threads.map(sign, chunk))


def _sign_job(job: tuple[Path, Path, FileIdentity], identity: SigningIdentity, request: SignatureRequest) -> BulkResult:
    source, destination, _ = job
    return _sign_one(source, destination, identity, request)


def _new_pool(pkcs12: bytes, passphrase: bytes, request: SignatureRequest, workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_process_context(),
        initializer=_init_worker,
        initargs=(pkcs12, passphrase, request),
    )


def _process_context() -> multiprocessing.context.BaseContext:
    # Never fork: the parent (web server, job runner) may hold threads, sockets or native libraries that a
    # forked copy would inherit in an unusable state. The fork server starts from a clean interpreter and,
    # with the preload, imports pyHanko once for all the workers it forks.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


def _sign_in_pool(
    jobs: Iterator[Job], pkcs12: bytes, passphrase: bytes, request: SignatureRequest, workers: int
) -> Iterator[BulkResult]:
    limit = workers * CHUNKS_IN_FLIGHT_PER_WORKER
    pending: dict[Future[list[BulkResult]], Chunk] = {}
    pool = _new_pool(pkcs12, passphrase, request, workers)
    completed_in_pool = handed_out = 0
    try:
        while True:
            while len(pending) < limit and (chunk := _next_chunk(jobs, _chunk_size(handed_out, workers))):
                pending[_submit(pool, chunk)] = chunk
                handed_out += len(chunk)
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            if not any(isinstance(future.exception(), BrokenProcessPool) for future in done):
                for future in done:
                    del pending[future]
                    completed_in_pool += 1
                    yield from future.result()
                continue
            # A worker died (native crash, out of memory): the pool is unusable. Once every worker has stopped,
            # the files tell which documents were finished; the rest of the batch goes on in a fresh pool,
            # unless this pool never did any work: then workers cannot run at all here, and retrying would
            # only fail again.
            pool.shutdown(wait=True, cancel_futures=True)
            yield from _drain(pending)
            if completed_in_pool == 0:
                yield from _abandon_all(jobs)
                return
            pool, completed_in_pool = _new_pool(pkcs12, passphrase, request, workers), 0
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _submit(pool: ProcessPoolExecutor, chunk: Chunk) -> Future[list[BulkResult]]:
    """The chunk's future; when the pool already knows a worker died, submit refuses: then a future that failed
    as the pool's running ones did, so that the chunk goes the same way (reported lost, the batch goes on)."""
    try:
        return pool.submit(_sign_chunk_in_worker, chunk)
    except BrokenProcessPool as exc:
        refused: Future[list[BulkResult]] = Future()
        refused.set_exception(exc)
        return refused


def _chunk_size(handed_out: int, workers: int) -> int:
    # 1, 1, 1, 1, 2, 2, 3… up to CHUNK_SIZE for two workers: small batches are spread over every worker.
    return min(CHUNK_SIZE, 1 + handed_out // (workers * CHUNKS_IN_FLIGHT_PER_WORKER))


def _next_chunk(jobs: Iterator[Job], size: int) -> Chunk:
    return tuple((source, destination, _file_identity(destination)) for source, destination in islice(jobs, size))


def _file_identity(path: Path) -> FileIdentity:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _drain(pending: dict[Future[list[BulkResult]], Chunk]) -> Iterator[BulkResult]:
    """Results of every chunk of a stopped pool, finished or not."""
    for future, chunk in pending.items():
        if future.done() and not future.cancelled() and future.exception() is None:
            yield from future.result()
        else:
            yield from _lost(chunk)
    pending.clear()


def _lost(chunk: Chunk) -> Iterator[BulkResult]:
    """Results of a chunk whose worker was stopped: the documents it had finished are signed all the same.

    A finished document was renamed into place (``atomic_output``), so its destination is a new file; the
    others must neither be reported as signed nor be signed twice when the caller retries them.
    """
    for source, destination, before in chunk:
        if _file_identity(destination) not in (before, None):
            yield BulkResult(source, destination, ok=True)
            continue
        # A killed worker could not remove its temporary file (atomic_output's ".<name>.*.part").
        for leftover in destination.parent.glob(f".{glob.escape(destination.name)}.*.part"):
            leftover.unlink(missing_ok=True)
        yield BulkResult(source, destination, ok=False, error=WORKER_LOST_ERROR)


def _abandon_all(jobs: Iterator[Job]) -> Iterator[BulkResult]:
    for source, destination in jobs:
        yield BulkResult(source, destination, ok=False, error=WORKERS_UNAVAILABLE_ERROR)
