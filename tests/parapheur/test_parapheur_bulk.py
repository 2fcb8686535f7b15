"""Bulk signing: many PDFs, one identity, in a process pool; failures stay per document."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from parapheur.bulk import IN_FLIGHT_PER_WORKER, BulkResult, sign_many
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
    for path in signed[:: GOOD_COUNT // 3]:
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


def test_wrong_passphrase_fails_before_any_document(tmp_path: Path) -> None:
    jobs = batch(tmp_path)
    pkcs12, _ = signing_identity()
    with pytest.raises(IdentityError, match="phrase de passe incorrecte"):
        sign_many(jobs, pkcs12, b"mauvaise", REQUEST, workers=2)
    assert not any((tmp_path / "signes").iterdir())


def test_empty_batch(tmp_path: Path) -> None:
    assert list(sign_many([], *signing_identity(), REQUEST, workers=2)) == []
