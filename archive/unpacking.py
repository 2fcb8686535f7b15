"""Unpacking an uploaded folder tree (zip or tar) into a work folder, with the inspection's defences.

Domain code: reads an archive sent from the web, writes its files under a folder the caller owns (and
removes). The archive is untrusted input, so, as archive.inspection does for a package:
- names that are absolute, climb out (``../``), hold a backslash, a NUL or a control character, or are not
  UTF-8 are refused, as are links (symbolic or hard), devices and FIFOs: only files and folders are written;
- an entry whose declared size or compression ratio exceeds the limits is refused before reading, and while
  reading the bytes are counted, never trusting the header; the total written is bounded too;
- every problem found in the listing is collected, so that the archivist sees them all at once (Refused).
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tarfile
import time
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from archive.inspection import InspectionLimits, entry_refusal, read_chunks, unreadable_zip_reason, unsafe_name
from archive.inspection import Refused as InspectionRefused

__all__ = ["LIMITS", "Refused", "archive_kind", "check_archive", "unpack"]

CHUNK_SIZE = 1024 * 1024
# Lower than a package's inspection: these files are written to the data folder's disk.
LIMITS = InspectionLimits(max_entries=100_000, max_entry_size=4 * 1024**3, max_total_size=32 * 1024**3)
# What macOS's Finder adds to the zips it makes (resource forks): not part of the folder that was zipped.
FINDER_FOLDER = "__MACOSX"
# General purpose bit 11: the entry's name is UTF-8. Without it the format says IBM 437, but Info-ZIP's zip
# (Debian's zip 3.0) writes the system's bytes unflagged: UTF-8 on any current system.
_UTF8_FLAG = 0x800
_UNICODE_PATH = 0x7075  # Info-ZIP's Unicode Path extra field: version 1, CRC-32 of the header's name, UTF-8 name
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The user's own mistakes in names (too long, a file where a folder is expected): refused, not retried; in
# French (the system's words are English).
_NAME_ERRORS = {
    errno.ENAMETOOLONG: "nom trop long pour le système de fichiers",
    errno.EISDIR: "un dossier porte déjà ce nom",
    errno.ENOTDIR: "un élément de son chemin est un fichier, pas un dossier",
    errno.EEXIST: "ce nom existe déjà",
    errno.EINVAL: "nom refusé par le système de fichiers",
    errno.EILSEQ: "nom refusé par le système de fichiers",
}
MAX_SHOWN_NAME = 200  # characters of an entry's name in a message: a 5,000-character name is cut


class Refused(ValueError):
    """The archive cannot be unpacked safely; `problems` lists every reason, in French."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def archive_kind(path: Path) -> str | None:
    """« zip », « tar » (compressed or not), or None for anything else."""
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        return "tar" if tarfile.is_tarfile(path) else None
    except (OSError, tarfile.TarError, EOFError):
        return None


def check_archive(path: Path, limits: InspectionLimits = LIMITS) -> str:
    """The archive's kind, after the checks that need no decompression (a zip's listing); raises Refused.

    A tar's listing is only known by decompressing it: it is checked while unpacked.
    """
    kind = archive_kind(path)
    if kind is None:
        raise Refused(["L'arborescence doit être envoyée en zip ou en tar (éventuellement compressé)."])
    if kind == "zip":
        try:
            with zipfile.ZipFile(path) as archive:
                _zip_entries(archive, limits)
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise Refused([f"Le zip est illisible : {unreadable_zip_reason(error)}."]) from None
    return kind


def unpack(path: Path, destination: Path, limits: InspectionLimits = LIMITS) -> Path:
    """Write the archive's files under `destination` (created, empty); return the folder to transfer.

    That folder is the archive's only top-level folder when it has one and nothing beside it (a zip of
    « Dossier/ »), else `destination` itself. Raises Refused listing what cannot be written safely; OSError
    for a failure of this machine (disk full), worth another try.
    """
    destination.mkdir(parents=True)
    kind = check_archive(path, limits)
    try:
        if kind == "zip":
            _unpack_zip(path, destination, limits)
        else:
            _unpack_tar(path, destination, limits)
    except OSError as error:
        if error.errno in _NAME_ERRORS:
            reason = _NAME_ERRORS[error.errno]
            raise Refused([f"Fichier impossible à écrire : {reason} (« {_shown(error, destination)} »)."]) from None
        raise
    entries = list(destination.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return destination


# --- names ---------------------------------------------------------------------------------------------


def _shown(error: OSError, destination: Path) -> str:
    """The path that could not be written as the archive names it: from the tree's top, never the server's
    work folder; a very long name is cut."""
    name = "" if error.filename is None else os.fsdecode(error.filename)
    try:
        shown = Path(name).relative_to(destination).as_posix()
    except ValueError:
        shown = Path(name).name
    return shown if len(shown) <= MAX_SHOWN_NAME else f"{shown[:MAX_SHOWN_NAME]}…"


def _name_refusal(name: str) -> str | None:
    if unsafe_name(name):
        return "chemin absolu ou sortant de l'arborescence"
    if _CONTROL.search(name):
        return "caractère de contrôle dans le nom"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "nom non valide en UTF-8"
    if not PurePosixPath(name).parts:
        return "nom vide"
    return None


def _skipped(name: str) -> bool:
    return PurePosixPath(name).parts[:1] == (FINDER_FOLDER,)


def _conflicts(files: list[str]) -> list[str]:
    """Names that are both a file and the folder of another entry: they cannot both be written."""
    folders = {str(parent) for name in files for parent in PurePosixPath(name).parents}
    return [
        f"Entrée « {name} » refusée : c'est à la fois un fichier et un dossier." for name in files if name in folders
    ]


def _target(destination: Path, name: str) -> Path:
    target = destination.joinpath(*PurePosixPath(name).parts)
    # Names are checked already; links are never written: this only guards against a mistake here.
    if not target.resolve().is_relative_to(destination.resolve()):
        raise Refused([f"Entrée « {name} » refusée : chemin sortant de l'arborescence."])
    return target


# --- zip -----------------------------------------------------------------------------------------------


def _zip_name(info: zipfile.ZipInfo) -> str | None:
    """The entry's name as its author wrote it, or None when it is not UTF-8.

    A name flagged UTF-8 is zipfile's. An unflagged one (zipfile read it as IBM 437) is read from its raw bytes:
    the Unicode Path extra field when present and matching them, else the bytes as UTF-8, which is what
    Info-ZIP's zip writes on a UTF-8 system; bytes that are not UTF-8 (an old Windows code page) are refused,
    never guessed. Only `filename` changes: zipfile checks the local header against `orig_filename`.
    """
    if info.flag_bits & _UTF8_FLAG:
        return info.filename
    raw = info.orig_filename.encode("cp437")  # zipfile's decoding, undone: every byte maps to one character
    extra = info.extra
    while len(extra) >= 4:
        kind, length = int.from_bytes(extra[:2], "little"), int.from_bytes(extra[2:4], "little")
        field = extra[4 : 4 + length]
        # Version 1 only; a CRC-32 of another name means the name was changed since: the field is stale.
        fresh = len(field) >= 5 and field[0] == 1 and int.from_bytes(field[1:5], "little") == zlib.crc32(raw)
        if kind == _UNICODE_PATH and fresh:
            try:
                return field[5:].decode("utf-8")
            except UnicodeDecodeError:
                break
        extra = extra[4 + length :]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _shown_raw(info: zipfile.ZipInfo) -> str:
    """A name that is not UTF-8, shown with its odd bytes as \\xNN: what the archivist must rename."""
    return info.orig_filename.encode("cp437").decode("utf-8", "backslashreplace")


def _zip_entries(archive: zipfile.ZipFile, limits: InspectionLimits) -> list[zipfile.ZipInfo]:
    """The entries to write, in order (their names as written: see _zip_name); raises Refused listing every entry
    that cannot be."""
    problems: list[str] = []
    not_utf8: set[int] = set()
    infos = [info for info in archive.infolist() if not _skipped(info.filename)]  # « __MACOSX » reads the same
    for info in infos:
        name = _zip_name(info)
        if name is None:
            not_utf8.add(id(info))
            problems.append(
                f"Entrée « {_shown_raw(info)} » refusée : nom qui n'est pas en UTF-8 (ancien codage de Windows ?) ; "
                "renommez-la ou refaites le zip avec un outil qui écrit les noms en UTF-8."
            )
        else:
            info.filename = name
    if len(infos) > limits.max_entries:
        raise Refused([f"L'archive contient {len(infos)} entrées, plus que la limite de {limits.max_entries}."])
    seen: set[str] = set()
    for info in infos:
        if id(info) in not_utf8:
            continue  # reported above
        reason = _name_refusal(info.filename) or entry_refusal(info, limits)
        kind = stat.S_IFMT(info.external_attr >> 16)
        if reason is None and kind and not info.is_dir() and kind != stat.S_IFREG:
            reason = "lien symbolique ou fichier spécial" if kind == stat.S_IFLNK else "fichier spécial"
        name = info.filename.rstrip("/")
        if reason is None and name in seen:
            reason = "nom en double dans l'archive"
        seen.add(name)
        if reason:
            problems.append(f"Entrée « {info.filename} » refusée : {reason}.")
    files = [info.filename for info in infos if not info.is_dir()]
    problems += _conflicts(files)
    total = sum(info.file_size for info in infos)
    if total > limits.max_total_size:
        problems.append(
            f"L'archive déclare {total} octets une fois décompressée, plus que la limite de {limits.max_total_size}."
        )
    if problems:
        raise Refused(problems)
    return infos


def _unpack_zip(path: Path, destination: Path, limits: InspectionLimits) -> None:
    written = 0
    with zipfile.ZipFile(path) as archive:
        for info in _zip_entries(archive, limits):
            target = _target(destination, info.filename)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with target.open("xb") as out:
                    for chunk in read_chunks(archive, info, limits):
                        written += len(chunk)
                        if written > limits.max_total_size:
                            raise Refused(
                                [f"L'archive donne plus de {limits.max_total_size} octets une fois décompressée."]
                            )
                        out.write(chunk)
            except InspectionRefused as refused:
                raise Refused([f"Entrée « {info.filename} » refusée : {refused}."]) from None
            except (zipfile.BadZipFile, EOFError, NotImplementedError) as error:
                raise Refused([f"Entrée « {info.filename} » illisible : {error}."]) from None
            # The date the file had when zipped (local time, as zip keeps it), not the unpacking's: FileInfo.
            modified = time.mktime((*info.date_time, 0, 0, -1))
            os.utime(target, (modified, modified))


# --- tar -----------------------------------------------------------------------------------------------


def _unpack_tar(path: Path, destination: Path, limits: InspectionLimits) -> None:
    """Stream the tar (decompressing once): members are checked as they come, before their bytes are read."""
    compressed = max(path.stat().st_size, 1)
    problems: list[str] = []
    files: list[str] = []
    seen: set[str] = set()
    count = written = 0
    try:
        with tarfile.open(path, "r|*") as archive:
            for member in archive:
                if _skipped(member.name):
                    continue
                count += 1
                if count > limits.max_entries:
                    raise Refused([*problems, f"L'archive contient plus de {limits.max_entries} entrées."])
                # Where this member's bytes end in the decompressed stream: checked before they are read.
                end = member.offset_data + member.size
                if end > limits.ratio_floor and end > limits.max_ratio * compressed:
                    limit = f"{limits.max_ratio:.0f}:1"
                    raise Refused(
                        [*problems, f"L'archive dépasse le taux de compression de {limit} (bombe de décompression ?)."]
                    )
                reason = _member_refusal(member, limits)
                name = member.name.rstrip("/")
                if reason is None and name in seen:
                    reason = "nom en double dans l'archive"
                seen.add(name)
                if reason is not None:
                    problems.append(f"Entrée « {member.name} » refusée : {reason}.")
                    continue
                if member.isdir():
                    _target(destination, member.name).mkdir(parents=True, exist_ok=True)
                    continue
                files.append(member.name)
                written += member.size
                if written > limits.max_total_size:
                    raise Refused(
                        [*problems, f"L'archive donne plus de {limits.max_total_size} octets une fois décompressée."]
                    )
                if not problems:  # refused anyway: only look for the other problems
                    _write_member(archive, member, _target(destination, member.name))
    except (tarfile.TarError, EOFError, zipfile.BadZipFile) as error:
        raise Refused([*problems, f"L'archive tar est illisible : {error}."]) from None
    problems += _conflicts(files)
    if problems:
        raise Refused(problems)


def _member_refusal(member: tarfile.TarInfo, limits: InspectionLimits) -> str | None:
    reason = _name_refusal(member.name)
    if reason is not None:
        return reason
    if member.issym() or member.islnk():
        return "lien symbolique ou physique"
    if not (member.isreg() or member.isdir()):
        return "fichier spécial"
    if member.size > limits.max_entry_size:
        return f"taille déclarée {member.size} octets, au-delà de la limite de {limits.max_entry_size}"
    return None


def _write_member(archive: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    source = archive.extractfile(member)
    if source is None:  # pragma: no cover - a regular member always has a stream
        raise Refused([f"Entrée « {member.name} » illisible."])
    target.parent.mkdir(parents=True, exist_ok=True)
    with source, target.open("xb") as out:
        while chunk := source.read(CHUNK_SIZE):  # a member gives exactly its size: tarfile stops there
            out.write(chunk)
    os.utime(target, (member.mtime, member.mtime))
