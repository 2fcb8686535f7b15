"""What a killed job leaves in the spool (a full copy of a document, a rendition's work folder) is removed when
a worker starts, once it is old enough to belong to no live process; newer entries are someone's work."""

from __future__ import annotations

import io
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from socle import queue
from socle.settings import get_settings
from socle.storage import STALE_AFTER, clean_stale_spool, scratch_dir, spool_dir
from socle.storage.api import spool
from socle.storage.local import LocalStore

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
    spool, work = spool_dir(get_settings()), scratch_dir()
    stale_download = _left_by_a_killed_job(spool, ".download-abc123", 2 * DAY)
    stale_rendition = _left_by_a_killed_job(work, "ged-pdfa-xyz", 2 * DAY)
    (spool / ".upload-q1w2e3").write_bytes(b"envoi S3 interrompu")
    stale_upload = _aged(spool / ".upload-q1w2e3", 2 * DAY)
    local_tmp = get_settings().effective_storage_path / ".tmp"
    local_tmp.mkdir(parents=True)
    (local_tmp / ".upload-r4t5y6").write_bytes(b"morceau")
    stale_local = _aged(local_tmp / ".upload-r4t5y6", 2 * DAY)
    running = _left_by_a_killed_job(spool, ".download-def456", 60)  # another process is downloading right now
    still_written = _left_by_a_killed_job(work, "ged-ocr-uvw", 2 * DAY, fresh_inside=True)  # OCR writing in it

    assert clean_stale_spool() == 4
    assert not stale_download.exists() and not stale_rendition.exists() and not stale_local.exists()
    assert not stale_upload.exists()
    assert running.exists() and still_written.exists() and (still_written / ("a" * 64)).exists()
    assert work.is_dir()  # the jobs' folder itself stays


def test_the_kit_s_own_temporary_entries_carry_the_names_the_clean_up_looks_for(
    use_env: Callable[..., None], tmp_path: Path
) -> None:
    """Each place that writes in the spool or the local store's .tmp names its entry so that a killed job's
    leftover is found, and only such names are (see the next test)."""
    use_env(SOCLE_DATA_DIR=str(tmp_path / "data"))
    settings = get_settings()
    local = LocalStore(settings.effective_storage_path)
    seen: list[str] = []

    def look(path: Path) -> None:
        seen.append(path.name)

    local.put(io.BytesIO(b"contenu"), check=look)
    spool(io.BytesIO(b"copie"), spool_dir(settings), expected_sha256=None, max_size=None, check=look).path.unlink()
    with tempfile.TemporaryDirectory(dir=scratch_dir()) as work:
        seen.append(str(Path(work).relative_to(spool_dir(settings))))
    assert [name.startswith(".upload-") for name in seen[:2]] == [True, True]
    assert seen[2].startswith("socle-work/")


def test_nothing_the_kit_did_not_make_is_removed(
    use_env: Callable[..., None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service started from / with the default data folder (« var ») has /var/spool for its spool: the
    crontabs, the mail queue and the print jobs there are days old, and none of them is the kit's."""
    monkeypatch.chdir(tmp_path)  # the service's working directory: / under systemd
    use_env(SOCLE_DATA_DIR=None)
    spool = spool_dir(get_settings())
    assert spool == tmp_path / "var" / "spool"
    crontab = spool / "cron" / "crontabs" / "root"
    crontab.parent.mkdir(parents=True)
    crontab.write_text("0 3 * * * /usr/local/bin/sauvegarde\n")
    for path in (crontab, crontab.parent, crontab.parent.parent):
        _aged(path, 30 * DAY)
    foreign = [
        crontab.parent.parent,
        _left_by_a_killed_job(spool, "postfix", 30 * DAY),
        _left_by_a_killed_job(spool, "cups", 30 * DAY),
        _left_by_a_killed_job(spool, "tmpabc123", 30 * DAY),  # tempfile's default name: anyone's
        _left_by_a_killed_job(spool, "upload-x", 30 * DAY),
    ]
    (spool / "lpd.lock").write_text("")
    foreign.append(_aged(spool / "lpd.lock", 30 * DAY))
    elsewhere = _left_by_a_killed_job(tmp_path / "ailleurs", "fichier", 30 * DAY)
    (spool / "socle-work").symlink_to(elsewhere, target_is_directory=True)  # not a folder the kit made
    local_tmp = get_settings().effective_storage_path / ".tmp"
    foreign.append(_left_by_a_killed_job(local_tmp, "index", 30 * DAY))
    (spool / ".upload-k9l8m7").write_bytes(b"envoi S3 interrompu")
    own = _aged(spool / ".upload-k9l8m7", 30 * DAY)

    assert clean_stale_spool() == 1 and not own.exists()
    assert all(path.exists() for path in foreign), [path for path in foreign if not path.exists()]
    assert crontab.read_text().startswith("0 3") and (elsewhere / ("a" * 64)).exists()


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
