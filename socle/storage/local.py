"""Filesystem backend: objects under ``root/ab/cd/<sha256>``, made visible by an atomic rename."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from socle.files import fsync_dir
from socle.storage.api import (
    PROBE_PREFIX,
    FileCheck,
    StoredObject,
    check_key,
    nested_name,
    not_found,
    spool,
    unavailable,
)

log = logging.getLogger("socle.storage")


@contextmanager
def _answering() -> Iterator[None]:
    """A folder that cannot be read or written (network share gone, disk full or failing) raises
    ServiceUnavailable, as an S3 server that does not answer: 503 for the API, a later retry for a job."""
    try:
        yield
    except FileNotFoundError:
        raise  # the caller's to say: an object that is not there, or a folder to create
    except OSError as exc:
        log.warning("object store unusable: %s", exc)
        raise unavailable() from exc


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / ".tmp"

    def _path(self, key: str) -> Path:
        return self.root / nested_name(check_key(key))

    def put(
        self,
        stream: BinaryIO,
        *,
        expected_sha256: str | None = None,
        max_size: int | None = None,
        check: FileCheck | None = None,
    ) -> StoredObject:
        with _answering():
            spooled = spool(stream, self.tmp, expected_sha256=expected_sha256, max_size=max_size, check=check)
            target = self._path(spooled.sha256)
            try:
                if target.exists():
                    return StoredObject(spooled.sha256, spooled.size)  # write-once: same bytes already there
                target.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(spooled.path, 0o440)
                os.replace(spooled.path, target)
                fsync_dir(target.parent)
                return StoredObject(spooled.sha256, spooled.size)
            finally:
                spooled.path.unlink(missing_ok=True)

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        try:
            with _answering():
                handle = self._path(key).open("rb")
        except FileNotFoundError:
            raise not_found(key) from None
        with handle:
            yield handle

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        try:
            with _answering():
                path.stat()  # not exists(), which says False for a folder that cannot be read
        except FileNotFoundError:
            raise not_found(key) from None
        yield path

    def size(self, key: str) -> int:
        try:
            with _answering():
                return self._path(key).stat().st_size
        except FileNotFoundError:
            raise not_found(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def delete(self, key: str) -> None:
        with _answering():
            self._path(key).unlink(missing_ok=True)

    def check(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        probe = self.tmp / f"{PROBE_PREFIX}{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
