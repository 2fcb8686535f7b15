"""Calls into siegfried (pygfried), and the loop of the process that runs them for identification.Identifier.

Kept apart, with the fewest imports, because it is what the worker process loads: every module imported
there stays in its memory beside siegfried's 85 MB of signatures (archive.identification alone would add
5 MB: threads, futures, subprocesses, dataclasses). pygfried is imported at the first call, never at module
load: it embeds the Go runtime, which hangs in a process forked after it started, and rq workers fork a work
horse per job from a parent that imports these modules.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
from collections.abc import Sequence
from typing import IO, Any

__all__ = ["UNKNOWN", "Format", "identify_paths", "identify_samples", "scratch_parent", "serve"]

# (PRONOM id, MIME type, format name), each None when siegfried does not say.
Format = tuple[str | None, str | None, str | None]
UNKNOWN: Format = (None, None, None)
_FRAME = struct.Struct("<Q")


def identify_paths(paths: Sequence[str]) -> list[Format]:
    """siegfried's PRONOM answer for each path, in order, in this process (one call for all of them)."""
    import pygfried

    try:
        result = pygfried.identify_many(list(paths), workers=1)
    except pygfried.GoError:  # one unreadable path fails the whole call: then one at a time
        return [_identify_one(path) for path in paths]
    found = {entry["filename"]: _pronom(entry["matches"]) for entry in result["files"]}
    return [found.get(path, UNKNOWN) for path in paths]


def _identify_one(path: str) -> Format:
    import pygfried

    try:
        result = pygfried.identify(path, detailed=True)
    except pygfried.GoError:
        return UNKNOWN
    return _pronom(result["files"][0]["matches"])


def _pronom(matches: list[Any]) -> Format:
    for match in matches:
        if match["ns"] == "pronom" and match["id"] != "UNKNOWN":
            return match["id"], match["mime"] or None, match["format"] or None
    return UNKNOWN


def identify_samples(items: Sequence[tuple[str | None, bytes | None, str]], scratch: str) -> list[Format]:
    """items: (path, None, suffix) for a file itself, (None, bytes, suffix) for a sample, copied into the
    folder `scratch` (pygfried only identifies paths). The copies are named by their place in the batch and
    overwritten by the next batches, not removed one by one: `scratch` goes away as a whole."""
    paths = []
    for number, (path, data, suffix) in enumerate(items):
        if data is None:
            paths.append(str(path))
            continue
        copy = os.path.join(scratch, f"{number}{suffix}")
        with open(copy, "wb") as out:
            out.write(data)
        paths.append(copy)
    return identify_paths(paths)


def scratch_parent() -> str | None:
    """Where sample copies go: a memory file system when there is one (creating and removing a small file
    costs a fifth of what it costs on ext4 here: 80 µs against 190 of CPU, 100 against 1,000 of wall time)."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


def write_frame(stream: IO[bytes], value: object) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_FRAME.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    """The next value, None at the end of the stream; EOFError when it stops inside a frame."""
    header = stream.read(_FRAME.size)
    if not header:
        return None
    if len(header) < _FRAME.size:
        raise EOFError("trame tronquée")
    (length,) = _FRAME.unpack(header)
    data = stream.read(length)
    if len(data) < length:
        raise EOFError("trame tronquée")
    return pickle.loads(data)  # our own worker process, over its own pipes: trusted


def serve() -> None:
    """The worker process's loop: batches of samples on stdin, their formats on stdout (identification)."""
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything else printed (Go, Python) goes to stderr, never into the answers
    scratch = os.path.join(scratch_parent() or os.environ.get("TMPDIR", "/tmp"), f"socle-siegfried-{os.getpid()}")
    os.mkdir(scratch, 0o700)
    try:
        while (request := read_frame(sys.stdin.buffer)) is not None:
            write_frame(answers, identify_samples(request, scratch))
    finally:
        for name in os.listdir(scratch):
            os.unlink(os.path.join(scratch, name))
        os.rmdir(scratch)
