"""Object storage: ``get_store()`` returns the backend chosen by the settings."""

from __future__ import annotations

import logging
import time
from functools import lru_cache
from pathlib import Path

from socle.settings import Settings, get_settings
from socle.storage.api import (
    DOWNLOAD_PREFIX,
    PROBE_PREFIX,
    UPLOAD_PREFIX,
    ObjectStore,
    StoredObject,
    check_key,
    remove_stale,
    sha256_of_file,
)

__all__ = [
    "ObjectStore",
    "StoredObject",
    "check_key",
    "clean_stale_spool",
    "get_store",
    "scratch_dir",
    "sha256_of_file",
    "store_for",
]

log = logging.getLogger("socle.storage")

# A temporary file untouched for this long belongs to no live process: every job ends within its timeout, and a
# spooled upload or download is written to as it goes. Twice the job timeout when that is longer.
STALE_AFTER = 24 * 3600


# The jobs' work folders (scratch_dir) are made in this folder of the spool, which nothing but the kit writes in.
SCRATCH_FOLDER = "socle-work"


def spool_dir(settings: Settings) -> Path:
    """The folder of the kit's temporary copies: S3 uploads (``.upload-*``) and downloads (``.download-*``), and
    the jobs' work folders (under ``socle-work``)."""
    return settings.data_dir.resolve() / "spool"


def store_for(settings: Settings) -> ObjectStore:
    if settings.storage_backend == "s3":
        from socle.storage.s3 import S3Store, client_for

        return S3Store(
            client_for(settings), settings.s3_bucket, spool_dir(settings), probe_client=client_for(settings, probe=True)
        )
    from socle.storage.local import LocalStore

    return LocalStore(settings.effective_storage_path)


@lru_cache(maxsize=1)
def get_store() -> ObjectStore:
    return store_for(get_settings())


def scratch_dir() -> Path:
    """Where a job makes its temporary folders (``tempfile.TemporaryDirectory(dir=scratch_dir())``), rather
    than the system's /tmp: what a killed job leaves there is removed at the next worker start
    (:func:`clean_stale_spool`), on the data disk, which is sized for documents. The folder is the kit's own:
    nothing else may be written in it."""
    folder = spool_dir(get_settings()) / SCRATCH_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def clean_stale_spool(now: float | None = None) -> int:
    """Remove the temporary copies that a killed process left (a job killed by ``kill -9`` or the OOM killer
    never reaches its clean-up), in which nothing was written for a day (or twice the job timeout): the spool's
    ``.upload-*`` and ``.download-*``, the jobs' work folders (``socle-work/*``), the local store's
    ``.tmp/.upload-*``. Newer ones may be another process's work in progress: kept. Nothing else is touched nor
    read, whatever its age: the data folder may be shared with other programs (a mistaken SOCLE_DATA_DIR=/var
    would make the spool /var/spool, with the crontabs and the mail queue). Returns how many entries were removed.
    Called at each worker's start."""
    settings = get_settings()
    older_than = (now if now is not None else time.time()) - max(STALE_AFTER, 2 * settings.job_timeout)
    spool = spool_dir(settings)
    scratch = spool / SCRATCH_FOLDER
    removed = remove_stale(spool, older_than, prefixes=(UPLOAD_PREFIX, DOWNLOAD_PREFIX))
    if scratch.is_dir() and not scratch.is_symlink():  # a link leads to a folder the kit did not make
        removed += remove_stale(scratch, older_than, prefixes=None)
    folders = [spool, scratch]
    if settings.storage_backend != "s3":
        local_tmp = settings.effective_storage_path / ".tmp"
        removed += remove_stale(local_tmp, older_than, prefixes=(UPLOAD_PREFIX, PROBE_PREFIX))
        folders.append(local_tmp)
    if removed:
        log.warning("removed %d stale temporary file(s) left by interrupted processes in %s", removed, folders)
    return removed
