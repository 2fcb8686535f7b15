"""Bulk signing: many PDFs, one identity, in a process pool; failures stay per document."""

import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from parapheur import bulk as parapheur_bulk
from parapheur.bulk import IN_FLIGHT_PER_WORKER, SMALL_BATCH, WORKER_LOST_ERROR, BulkResult, sign_many
from parapheur.pades import IdentityError, SignatureRequest, verify_pdf

from conftest import identity_certificate, make_pdf, pdfsig, signing_identity

REQUEST = SignatureRequest(signer_name="Dominique Dupont", reason="Visa du maire", location="Saint-Test")
GOOD_COUNT = 30
BROKEN_NAME = "15-casse.pdf"
BROKEN_ERROR = "Le fichier PDF est endommagé ou illisible."


def batch(folder: Path) -> list[tuple[Path, Path]]:
    """30 good PDFs and, in the middle, one that is not a PDF despite its header."""
    sources = folder / "a-signer"
    sources.mkdir()
    (folder / "signes").mkdir()
    paths = [sources / f"{index:02d}.pdf" for index in range(GOOD_COUNT)]
    for index, path in enumerate(paths):
        path.write_bytes(make_pdf(f"Arrêté n° {index}"))
    broken = sources / BROKEN_NAME
    broken.write_bytes(b"%PDF-1.7\nceci n'est pas un PDF\n%%EOF\n")
    paths.insert(GOOD_COUNT // 2, broken)
    return [(path, folder / "signes" / path.name) for path in paths]


class CountingJobs:
    """The jobs, counting how many the consumer has pulled so far."""

    def __init__(self, jobs: list[tuple[Path, Path]]) -> None:
        self._jobs = jobs
        self.pulled = 0

    def __iter__(self) -> Iterator[tuple[Path, Path]]:
        for job in self._jobs:
            self.pulled += 1
            yield job


def run(jobs: list[tuple[Path, Path]], workers: int) -> list[BulkResult]:
    counting = CountingJobs(jobs)
    results = []
    for result in sign_many(counting, *signing_identity(), REQUEST, workers=workers):
        results.append(result)
        # Bounded submission: never more than a few tasks per worker ahead of what was handed back.
        assert counting.pulled - len(results) <= IN_FLIGHT_PER_WORKER * workers
    return results


def check_results(jobs: list[tuple[Path, Path]], results: list[BulkResult]) -> None:
    assert sorted(r.source for r in results) == sorted(source for source, _ in jobs)  # each input exactly once
    failed = [r for r in results if not r.ok]
    assert [(r.source.name, r.error) for r in failed] == [(BROKEN_NAME, BROKEN_ERROR)]
    assert not failed[0].destination.exists()
    assert all(
        r.error is None and r.destination == r.source.parent.parent / "signes" / r.source.name for r in results if r.ok
    )


def test_batch_in_two_workers_every_output_valid(tmp_path: Path) -> None:
    jobs = batch(tmp_path)
    results = run(jobs, workers=2)
    check_results(jobs, results)
    signed = sorted(r.destination for r in results if r.ok)
    assert len(signed) == GOOD_COUNT
    trusted = [identity_certificate()]
    for path in signed:
        [check] = verify_pdf(path, trusted)
        assert check.intact and check.valid and check.covers_whole_document, path.name
        assert check.signer_name == "Dominique Dupont"
        assert "Signature is Valid" in pdfsig(path), path.name
    # Written atomically: no temporary file left beside the outputs.
    assert {p.name for p in (tmp_path / "signes").iterdir()} == {p.name for p in signed}


def test_in_process_gives_the_same_results(tmp_path: Path) -> None:
    jobs = batch(tmp_path)
    results = run(jobs, workers=1)
    check_results(jobs, results)
    # In-process, results come in the order of the jobs.
    assert [r.source for r in results] == [source for source, _ in jobs]
    [check] = verify_pdf(results[0].destination, [identity_certificate()])
    assert check.valid


def test_small_batch_by_default_needs_no_pool(tmp_path: Path) -> None:
    jobs = batch(tmp_path)
    assert len(jobs) < SMALL_BATCH
    results = []
    for result in sign_many(jobs, *signing_identity(), REQUEST):
        assert pool_workers() == []  # signed in this process: no worker was started for it
        results.append(result)
    check_results(jobs, results)
    [check] = verify_pdf(results[-1].destination, [identity_certificate()])
    assert check.valid


def test_wrong_passphrase_fails_before_any_document(tmp_path: Path) -> None:
    jobs = batch(tmp_path)
    pkcs12, _ = signing_identity()
    with pytest.raises(IdentityError, match="phrase de passe incorrecte"):
        sign_many(jobs, pkcs12, b"mauvaise", REQUEST, workers=2)
    assert not any((tmp_path / "signes").iterdir())


def test_empty_batch(tmp_path: Path) -> None:
    assert list(sign_many([], *signing_identity(), REQUEST, workers=2)) == []


def pool_workers() -> list[int]:
    """Pids of the signing workers: the children of this process's fork server."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
    servers = {pid for pid, parent in parents.items() if parent == os.getpid() and is_fork_server(pid)}
    return [pid for pid, parent in parents.items() if parent in servers]


def is_fork_server(pid: int) -> bool:
    try:
        return b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_killed_worker_loses_only_its_unfinished_documents(tmp_path: Path) -> None:
    sources = tmp_path / "a-signer"
    sources.mkdir()
    (tmp_path / "signes").mkdir()
    jobs = []
    for index in range(60):
        path = sources / f"{index:02d}.pdf"
        path.write_bytes(make_pdf(f"Arrêté n° {index}"))
        jobs.append((path, tmp_path / "signes" / path.name))
    results: list[BulkResult] = []
    for result in sign_many(jobs, *signing_identity(), REQUEST, workers=2):
        if not results:
            workers = pool_workers()
            assert len(workers) == 2
            os.kill(workers[0], signal.SIGKILL)  # as the kernel's OOM killer would
        results.append(result)

    assert sorted(r.source for r in results) == sorted(source for source, _ in jobs)  # each exactly once
    lost = [r for r in results if not r.ok]
    assert lost and all(r.error == WORKER_LOST_ERROR and not r.destination.exists() for r in lost)
    signed = [r.destination for r in results if r.ok]
    # Those finished by the pool that broke are reported signed, and the batch went on in a fresh pool.
    assert len(signed) > 1 and {p.name for p in (tmp_path / "signes").iterdir()} == {p.name for p in signed}
    trusted = [identity_certificate()]
    for path in signed:
        [check] = verify_pdf(path, trusted)
        assert check.valid, path.name


def test_a_pool_that_already_knows_its_worker_died_refuses_the_chunk_as_lost() -> None:
    """The killed worker's death may be noticed before the next submission: submit then raises, and the chunk must
    go the way of the running ones (lost, the batch going on), not end the whole batch with an error."""
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    try:
        os.kill(pool.submit(os.getpid).result(timeout=60), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            future = parapheur_bulk._submit(pool, ())
            if future.done() and isinstance(future.exception(), BrokenProcessPool):
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the pool never noticed its worker's death")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
