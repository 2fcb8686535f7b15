"""Durable, atomic file writes: a reader sees the old file or the complete new one, never a part."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def fsync_dir(folder: Path) -> None:
    # A rename or link is durable only once the directory entry itself is on disk.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_output(destination: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A seekable temporary file beside ``destination`` that replaces it, durably, only if the block succeeds."""
    handle, name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "w+b") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.chmod(name, mode)  # mkstemp's 0600 would hide the file from the other services' users
        os.replace(name, destination)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    fsync_dir(destination.parent)


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    with atomic_output(path, mode) as out:
        out.write(data)


def display_name(filename: str, default: str = "document") -> str:
    """A client's file name made safe to keep and show: last path component, no control characters.

    Names are shown and reused in headers and packages, never used as paths; a control character would
    make the Content-Disposition header unsendable.
    """
    name = _CONTROL.sub("", filename.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    return name[:255] or default
