"""Bulk PAdES signing: many PDFs, one signing identity, results as they come.

Pure domain module, like ``pades``: it reads and writes the paths it is given and knows nothing about
folders, users or workflows. Signing is CPU-bound (PDF parsing, CMS encoding, RSA) and pyHanko holds the
GIL, so the documents are spread over a pool of processes; each worker loads the identity once, since
loading a PKCS#12 key (RSA consistency check) costs about as much as a signature.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from parapheur.pades import (
    IdentityError,
    PdfError,
    SignatureRequest,
    SigningError,
    SigningIdentity,
    sign_pdf,
)

# Tasks kept in flight per worker: enough for a worker never to wait for the parent, few enough for the
# memory of the parent to stay flat however long the batch is.
IN_FLIGHT_PER_WORKER = 4

UNEXPECTED_ERROR = "Erreur inattendue pendant la signature de ce document."
WORKER_LOST_ERROR = "Le processus de signature s'est arrêté pendant ce document : il n'a pas été signé, relancez-le."
WORKERS_UNAVAILABLE_ERROR = "Les processus de signature n'ont pas pu démarrer : ce document n'a pas été signé."

Job = tuple[Path, Path]


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
    ``workers`` defaults to the number of CPUs; with 1, everything runs in this process.

    :raises IdentityError: the PKCS#12 cannot be opened (checked before any document is touched).
    """
    # Loaded here too so that a wrong passphrase fails at once, not once per worker and per document.
    identity = SigningIdentity.from_pkcs12(pkcs12, passphrase)
    count = (os.cpu_count() or 1) if workers is None else workers
    if count < 1:
        raise ValueError("workers must be at least 1")
    if count == 1:
        return (_sign_one(source, destination, identity, request) for source, destination in jobs)
    return _sign_in_pool(iter(jobs), pkcs12, passphrase, request, count)


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


def _init_worker(pkcs12: bytes, passphrase: bytes, request: SignatureRequest) -> None:
    global _worker_identity, _worker_request
    _worker_identity = SigningIdentity.from_pkcs12(pkcs12, passphrase)
    _worker_request = request


def _sign_in_worker(source: Path, destination: Path) -> BulkResult:
    if _worker_identity is None or _worker_request is None:
        raise IdentityError("Le processus de signature n'a pas chargé le certificat.")
    return _sign_one(source, destination, _worker_identity, _worker_request)


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
    limit = workers * IN_FLIGHT_PER_WORKER
    pending: dict[Future[BulkResult], Job] = {}
    pool = _new_pool(pkcs12, passphrase, request, workers)
    signed_in_pool = 0
    try:
        while True:
            for job in islice(jobs, limit - len(pending)):
                pending[pool.submit(_sign_in_worker, *job)] = job
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            lost, signed = yield from _collect(done, pending)
            signed_in_pool += signed
            if not lost:
                continue
            # A worker died (native crash, out of memory): the pool is unusable. The documents it held are
            # reported and the rest of the batch goes on in a fresh pool, unless this pool never did any work:
            # then workers cannot run at all here, and retrying would only fail again.
            yield from _abandon(pending)
            pool.shutdown(wait=True, cancel_futures=True)
            if signed_in_pool == 0:
                yield from _abandon_all(jobs)
                return
            pool, signed_in_pool = _new_pool(pkcs12, passphrase, request, workers), 0
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _collect(
    done: set[Future[BulkResult]], pending: dict[Future[BulkResult], Job]
) -> Generator[BulkResult, None, tuple[bool, int]]:
    """Yield the results of ``done``; return whether the pool broke and how many tasks it completed."""
    lost, completed = False, 0
    for future in done:
        source, destination = pending.pop(future)
        try:
            result = future.result()
        except BrokenProcessPool:
            lost = True
            result = BulkResult(source, destination, ok=False, error=WORKER_LOST_ERROR)
        else:
            completed += 1
        yield result
    return lost, completed


def _abandon(pending: dict[Future[BulkResult], Job]) -> Iterator[BulkResult]:
    for source, destination in pending.values():
        yield BulkResult(source, destination, ok=False, error=WORKER_LOST_ERROR)
    pending.clear()


def _abandon_all(jobs: Iterator[Job]) -> Iterator[BulkResult]:
    for source, destination in jobs:
        yield BulkResult(source, destination, ok=False, error=WORKERS_UNAVAILABLE_ERROR)
