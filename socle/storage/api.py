"""Content-addressed object storage: the key of an object is the SHA-256 of its bytes.

Objects are written once and never changed: writing the same bytes twice stores them once. Every write is
streamed through a temporary file on disk while its digest is computed, so a document is never held whole
in memory, and only complete, verified objects become visible under their key.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from socle.errors import DigestMismatch, InvalidInput, NotFound, PayloadTooLarge, ServiceUnavailable, message

CHUNK_SIZE = 1024 * 1024
_KEY = re.compile(r"^[0-9a-f]{64}$")

# The names of the kit's own temporary entries, the only ones the clean-up at a worker's start may remove: the
# folders they are made in may hold other programs' files (SOCLE_DATA_DIR=/var makes the spool /var/spool).
UPLOAD_PREFIX = ".upload-"  # a stream being stored (spool)
DOWNLOAD_PREFIX = ".download-"  # an S3 object copied to a local file (S3Store.local_path)
PROBE_PREFIX = ".probe-"  # the readiness probe's file (LocalStore.check)


# Called on the complete temporary file before it is stored: a refusal (empty file, not a PDF…) leaves nothing.
FileCheck = Callable[[Path], None]


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int

    @property
    def sha256(self) -> str:
        return self.key


class ObjectStore(Protocol):
    def put(
        self,
        stream: BinaryIO,
        *,
        expected_sha256: str | None = None,
        max_size: int | None = None,
        check: FileCheck | None = None,
    ) -> StoredObject:
        """Store the stream's bytes; raise DigestMismatch or PayloadTooLarge without storing anything.

        ``check`` looks at the complete file before it is stored (e.g. refuses an empty file or a non-PDF).
        """

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        """Read an object as a stream; raise NotFound if there is none."""

    def local_path(self, key: str) -> AbstractContextManager[Path]:
        """A local file holding the object, for libraries that need a path (verified, read-only)."""

    def size(self, key: str) -> int: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove an object for good (purge, elimination); nothing happens if there is none. Callers make sure
        no one references the key any more: the store itself is shared and content-addressed."""

    def check(self) -> None:
        """Raise if the store cannot be written (readiness probe)."""


def check_key(key: str) -> str:
    """Keys come from clients and jobs: refuse anything that is not a SHA-256, so no path can be forged."""
    if not _KEY.match(key or ""):
        raise InvalidInput(f"clé d'objet invalide : {key!r}")
    return key


def nested_name(key: str) -> str:
    """Spread objects over two levels of folders, as a million files in one folder is slow to list."""
    return f"{key[:2]}/{key[2:4]}/{key}"


@dataclass(frozen=True)
class Spooled:
    path: Path
    sha256: str
    size: int


def spool(
    stream: BinaryIO,
    folder: Path,
    *,
    expected_sha256: str | None,
    max_size: int | None,
    check: FileCheck | None = None,
    durable: bool = True,
) -> Spooled:
    """Copy a stream into a temporary file of ``folder`` while hashing it, then check size and digest.

    The temporary file is removed on any failure; on success the caller moves or uploads it, then removes it.
    ``durable``: flushed to the disk before it is returned, for a file that becomes the stored object itself
    (local store); a copy only uploaded from, then removed (S3), needs not wait for the disk.
    """
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    handle, name = tempfile.mkstemp(dir=folder, prefix=UPLOAD_PREFIX)
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            while chunk := stream.read(CHUNK_SIZE):
                size += len(chunk)
                if max_size is not None and size > max_size:
                    raise PayloadTooLarge(
                        f"le fichier dépasse la taille maximale de {max_size} octets", max_size=max_size
                    )
                digest.update(chunk)
                out.write(chunk)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        sha256 = digest.hexdigest()
        if expected_sha256 is not None and sha256 != expected_sha256.lower():
            raise DigestMismatch(
                "l'empreinte SHA-256 reçue ne correspond pas au contenu", expected=expected_sha256, actual=sha256
            )
        if check is not None:
            check(path)
        return Spooled(path, sha256, size)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def remove_stale(folder: Path, older_than: float, *, prefixes: tuple[str, ...] | None) -> int:
    """Remove each entry of ``folder`` (a file, or a folder with all it holds) whose last change, and that of
    everything inside it, is before ``older_than`` (a POSIX time). Returns how many were removed.

    ``prefixes``: only the entries whose name starts with one of them are looked at, any other is left alone,
    unread (the kit did not make it); None only for a folder that the kit alone writes in (every entry)."""
    if prefixes is not None and not all(prefixes):
        raise ValueError("an empty prefix would match every name")
    removed = 0
    try:
        entries = [entry for entry in folder.iterdir() if prefixes is None or entry.name.startswith(prefixes)]
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            if _newest_change(entry) >= older_than:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
        except FileNotFoundError:  # removed meanwhile by its own process
            continue
    return removed


def _newest_change(path: Path) -> float:
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for parent, folders, files in os.walk(path):
            for name in folders + files:
                with contextlib.suppress(FileNotFoundError):
                    newest = max(newest, os.lstat(os.path.join(parent, name)).st_mtime)
    return newest


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def not_found(key: str) -> NotFound:
    return NotFound(f"objet {key} introuvable dans le stockage")


def unavailable() -> ServiceUnavailable:
    """The store does not answer (refused, timed out, unknown host, server error): a 503 for the API, a retry
    later for the queue (not a refusal: the same request will work once the store is back)."""
    return ServiceUnavailable(message("stockage des documents injoignable, réessayez dans un instant"))


def iter_chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK_SIZE):
        yield chunk
