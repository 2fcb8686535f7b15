"""Durable, atomic file writes: a reader sees the old file or the complete new one, never a part."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def fsync_dir(folder: Path) -> None:
    # A rename or link is durable only once the directory entry itself is on disk.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(name, mode)
        os.replace(name, path)
        fsync_dir(path.parent)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def display_name(filename: str, default: str = "document") -> str:
    """A client's file name made safe to keep and show: last path component, no control characters.

    Names are shown and reused in headers and packages, never used as paths; a control character would
    make the Content-Disposition header unsendable.
    """
    name = _CONTROL.sub("", filename.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    return name[:255] or default
