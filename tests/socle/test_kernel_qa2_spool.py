"""What a killed job leaves in the spool (a full copy of a document, a rendition's work folder) is removed when
a worker starts, once it is old enough to belong to no live process; newer entries are someone's work."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from socle import queue
from socle.settings import get_settings
from socle.storage import STALE_AFTER, clean_stale_spool, scratch_dir

DAY = 24 * 3600


def _aged(path: Path, seconds: float) -> Path:
    """Set the path's times ``seconds`` in the past (as a file left there that long ago)."""
    when = time.time() - seconds
    os.utime(path, (when, when), follow_symlinks=False)
    return path


def _left_by_a_killed_job(folder: Path, name: str, age: float, *, fresh_inside: bool = False) -> Path:
    entry = folder / name
    entry.mkdir(parents=True)
    copy = entry / ("a" * 64)
    copy.write_bytes(b"%PDF-1.7 copie du document")
    _aged(copy, 0 if fresh_inside else age)
    return _aged(entry, age)


def test_stale_entries_are_removed_and_live_ones_kept(use_env: Callable[..., None], tmp_path: Path) -> None:
    use_env(SOCLE_DATA_DIR=str(tmp_path / "data"))
    spool = scratch_dir()
    stale_download = _left_by_a_killed_job(spool, "tmpabc123", 2 * DAY)
    stale_rendition = _left_by_a_killed_job(spool, "ged-pdfa-xyz", 2 * DAY)
    (spool / ".upload-q1w2e3").write_bytes(b"envoi S3 interrompu")
    stale_upload = _aged(spool / ".upload-q1w2e3", 2 * DAY)
    local_tmp = get_settings().effective_storage_path / ".tmp"
    local_tmp.mkdir(parents=True)
    (local_tmp / ".upload-r4t5y6").write_bytes(b"morceau")
    stale_local = _aged(local_tmp / ".upload-r4t5y6", 2 * DAY)
    running = _left_by_a_killed_job(spool, "tmpdef456", 60)  # another process is downloading right now
    still_written = _left_by_a_killed_job(spool, "ged-ocr-uvw", 2 * DAY, fresh_inside=True)  # OCR writing in it

    assert clean_stale_spool() == 4
    assert not stale_download.exists() and not stale_rendition.exists() and not stale_local.exists()
    assert not stale_upload.exists()
    assert running.exists() and still_written.exists() and (still_written / ("a" * 64)).exists()


def test_the_age_follows_a_longer_job_timeout(use_env: Callable[..., None], tmp_path: Path) -> None:
    """A job may run for as long as SOCLE_JOB_TIMEOUT: its work folder is never taken for a stale one."""
    use_env(SOCLE_DATA_DIR=str(tmp_path / "data"), SOCLE_JOB_TIMEOUT=str(2 * DAY))
    entry = _left_by_a_killed_job(scratch_dir(), "ged-ocr-long", STALE_AFTER + 3600)
    assert clean_stale_spool() == 0 and entry.exists()
    _aged(entry / ("a" * 64), 5 * DAY)
    _aged(entry, 5 * DAY)
    assert clean_stale_spool() == 1 and not entry.exists()


def test_the_embedded_worker_cleans_the_spool_when_it_starts(use_env: Callable[..., None], tmp_path: Path) -> None:
    use_env(SOCLE_DATA_DIR=str(tmp_path / "data"), SOCLE_DATABASE_URL=get_settings().effective_database_url)
    stale = _left_by_a_killed_job(scratch_dir(), "tmpghi789", 2 * DAY)
    worker = queue.EmbeddedWorker(poll_seconds=0.05)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while stale.exists() and time.monotonic() < deadline:  # a bound on the wait, not a measure
            time.sleep(0.05)
    finally:
        worker.stop()
    assert not stale.exists()
