"""Filesystem backend: objects under ``root/ab/cd/<sha256>``, made visible by an atomic rename."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from socle.files import fsync_dir
from socle.storage.api import FileCheck, StoredObject, check_key, nested_name, not_found, spool


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
            handle = self._path(key).open("rb")
        except FileNotFoundError:
            raise not_found(key) from None
        with handle:
            yield handle

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        if not path.exists():
            raise not_found(key)
        yield path

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise not_found(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def check(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        probe = self.tmp / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
