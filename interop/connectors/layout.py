"""Dépôt layouts: how a document lands in a folder — local, SFTP or WebDAV alike.

Options (:class:`LayoutFields`, part of each dépôt connector's configuration):

- ``packaging``: ``file`` (the document itself), ``folder`` (a folder per document holding it and its
  metadata) or ``zip`` (one zip per document, holding it and its metadata);
- ``metadata``: ``json``, ``xml`` or ``none`` — the deposit receipt written beside the document, as
  ``<document>.receipt.json`` or ``<document>.receipt.xml``;
- ``done_marker``: an empty-ish ``<entry>.done`` file written *last*, for receivers that poll the folder;
- ``on_conflict``: when the name is taken by a *different* document: ``refuse`` (an error, nothing written),
  ``suffix`` (``name-1.pdf``, ``name-2.pdf``…) or ``replace``.

Every piece is written under a hidden temporary name (``.name.part-…``) then renamed, so a receiver never
sees half a file; a rename that must not overwrite relies on the protocol's own refusal (``link`` locally,
SFTP's plain rename, WebDAV's ``Overwrite: F``). The same document delivered again is recognised by its
SHA-256 (read back from the target) and not written twice; a run interrupted before its metadata or marker
completes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Protocol

from lxml import etree
from pydantic import BaseModel, Field

from socle.errors import Conflict, DigestMismatch, InvalidInput, message
from socle.files import fsync_dir
from socle.storage import ObjectStore
from socle.storage.api import iter_chunks

RECEIPT_SUFFIX = ".receipt.json"
XML_RECEIPT_SUFFIX = ".receipt.xml"
DONE_SUFFIX = ".done"
MAX_SUFFIX = 999
_UNSAFE = re.compile(r"[^\w.\- ]", re.UNICODE)

Packaging = Literal["file", "folder", "zip"]
Metadata = Literal["json", "xml", "none"]
OnConflict = Literal["refuse", "suffix", "replace"]


class LayoutFields(BaseModel):
    """The layout options shared by the dépôt connectors (local folder, SFTP, WebDAV).

    Options left at their default are not stored (:meth:`Layout.of` fills them in again).
    """

    packaging: Packaging = Field(
        "file",
        description="file (le document), folder (un dossier par document), zip",
        exclude_if=lambda value: value == "file",
    )
    metadata: Metadata = Field(
        "json",
        description="Fichier de métadonnées à côté du document : json, xml ou none",
        exclude_if=lambda value: value == "json",
    )
    done_marker: bool = Field(
        False, description="Écrire en dernier un fichier « <nom>.done »", exclude_if=lambda value: value is False
    )
    on_conflict: OnConflict = Field(
        "refuse",
        description="Nom déjà pris par un autre document : refuse, suffix (nom-1…) ou replace",
        exclude_if=lambda value: value == "refuse",
    )


@dataclass(frozen=True)
class Layout:
    packaging: Packaging = "file"
    metadata: Metadata = "json"
    done_marker: bool = False
    on_conflict: OnConflict = "refuse"

    @classmethod
    def of(cls, config: dict[str, Any]) -> Layout:
        """The layout of a stored connector configuration (missing options take their defaults)."""
        fields = LayoutFields.model_validate({key: config[key] for key in LayoutFields.model_fields if key in config})
        return cls(**fields.model_dump())


class Target(Protocol):
    """A folder somewhere (local, SFTP, WebDAV). Paths are POSIX, relative to the connector's folder."""

    def exists(self, path: str) -> bool:
        """Whether a file or folder is at ``path``."""

    def makedirs(self, path: str) -> None:
        """Create the folder ``path`` and its parents (no error when it exists)."""

    def upload(self, local: Path, path: str) -> None:
        """Write the local file at ``path`` (a temporary name: the layout renames it afterwards)."""

    def rename(self, source: str, target: str, *, replace: bool) -> None:
        """Rename; without ``replace``, raise FileExistsError when ``target`` exists."""

    def remove(self, path: str) -> None:
        """Remove a file or a whole folder; no error when it is absent."""

    def download(self, path: str, local: Path, max_bytes: int) -> None:
        """Copy the file at ``path`` into the local file ``local``.

        :raises Oversized: the file holds more than ``max_bytes`` (the remote side decides what it sends: a
            file it grows without end must not fill the worker's disk).
        """


class Oversized(Exception):
    """A file read back from a target is larger than it may be: it is not the one we look for."""


MAX_RECEIPT_BYTES = 1024 * 1024


def copy_at_most(source: Any, out: Any, max_bytes: int) -> None:
    """Copy a binary stream into ``out``; :raises Oversized: more than ``max_bytes`` bytes."""
    copied = 0
    while chunk := source.read(1024 * 1024):
        copied += len(chunk)
        if copied > max_bytes:
            raise Oversized(max_bytes)
        out.write(chunk)


def safe_filename(filename: str) -> str:
    """The document's name reduced to a safe base name; names the layout itself uses are refused.

    :raises InvalidInput: empty, or ending like a receipt or a « done » marker.
    """
    name = _UNSAFE.sub("_", filename.replace("\\", "/").rsplit("/", 1)[-1]).strip(". ")
    if not name or name.endswith((RECEIPT_SUFFIX, XML_RECEIPT_SUFFIX, DONE_SUFFIX)):
        raise InvalidInput(message("nom de fichier refusé pour un dépôt : %(filename)s", filename=repr(filename)))
    return name[:200]


def copy_verified(store: ObjectStore, object_key: str, size: int, local: Path) -> None:
    """Copy the stored object into ``local``, checking its SHA-256 and size on the way.

    :raises DigestMismatch: the stored bytes do not match their key (nothing is deposited then).
    """
    digest = hashlib.sha256()
    with local.open("wb") as out, store.open(object_key) as stream:
        for chunk in iter_chunks(stream):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != object_key or local.stat().st_size != size:
        raise DigestMismatch(
            message(
                "l'objet %(object_key)s lu dans le stockage ne correspond pas à son empreinte", object_key=object_key
            )
        )


def deposit(
    target: Target,
    layout: Layout,
    store: ObjectStore,
    object_key: str,
    filename: str,
    size: int,
    *,
    connector: str,
    shown_folder: str = "",
) -> dict[str, Any]:
    """Deposit a stored object on ``target`` following ``layout``; return the receipt (also the metadata).

    :param shown_folder: the folder as shown in the receipt's ``path`` (never a server path).
    :raises Conflict: the name is taken by another document and the policy is ``refuse`` (or no free suffix).
    :raises DigestMismatch: the stored object is corrupted.
    """
    document = safe_filename(filename)
    with tempfile.TemporaryDirectory(prefix="socle-depot-") as work:
        staged = Path(work) / "document"
        copy_verified(store, object_key, size, staged)
        writer = _Writer(target, layout, document, object_key, Path(work), size)
        for entry in _candidates(writer.entry_name(), layout.on_conflict):
            found = writer.existing(entry)
            if found is _ABSENT:
                receipt = _receipt(connector, shown_folder, entry, document, size, object_key, layout)
                writer.write(entry, staged, receipt, replace=False)
                return receipt
            if found is not _OTHER:  # the same document: an earlier deposit, perhaps interrupted
                receipt = found or _receipt(connector, shown_folder, entry, document, size, object_key, layout)
                writer.complete(entry, receipt)
                return receipt
            if layout.on_conflict == "replace":
                receipt = _receipt(connector, shown_folder, entry, document, size, object_key, layout)
                writer.write(entry, staged, receipt, replace=True)
                return receipt
            if layout.on_conflict == "refuse":
                break
    raise Conflict(message("un autre fichier porte déjà le nom %(writer)s dans le dépôt", writer=writer.entry_name()))


def probe(target: Target) -> None:
    """Check that the folder exists (created if needed) and is writable: write then remove a hidden file."""
    target.makedirs("")
    with tempfile.TemporaryDirectory(prefix="socle-depot-") as work:
        local = Path(work) / "probe"
        local.write_bytes(b"socle\n")
        name = f".test-{secrets.token_hex(6)}"
        target.upload(local, name)
        target.remove(name)


# ----------------------------------------------------------------------------------------------------------


class _Marker:
    """Sentinels for :meth:`_Writer.existing` (absent / another document)."""


_ABSENT: Any = _Marker()
_OTHER: Any = _Marker()


def _candidates(entry: str, on_conflict: OnConflict) -> list[str]:
    if on_conflict != "suffix":
        return [entry]
    stem, dot, extension = entry.partition(".") if not entry.startswith(".") else (entry, "", "")
    return [entry] + [f"{stem}-{number}{dot}{extension}" for number in range(1, MAX_SUFFIX + 1)]


def _receipt(
    connector: str, shown_folder: str, entry: str, document: str, size: int, key: str, layout: Layout
) -> dict[str, Any]:
    return {
        "connector": connector,
        "name": entry,
        "path": (PurePosixPath(shown_folder) / entry).as_posix() if shown_folder else entry,
        "document": document if layout.packaging != "file" else entry,
        "packaging": layout.packaging,
        "size": size,
        "sha256": key,
        "deposited_at": datetime.now(UTC).isoformat(),
    }


def receipt_xml(receipt: dict[str, Any]) -> bytes:
    """The XML form of a receipt: ``<depot>`` with one element per field."""
    root = etree.Element("depot", nsmap={None: "urn:socle:interop:depot:1"})
    for key, value in receipt.items():
        etree.SubElement(root, key).text = str(value)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _receipt_from_xml(data: bytes) -> dict[str, Any] | None:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return None
    receipt: dict[str, Any] = {etree.QName(child).localname: child.text or "" for child in root}
    if "size" in receipt and re.fullmatch(r"[0-9]{1,19}", str(receipt["size"])):  # not « ² », nor 4,300 digits
        receipt["size"] = int(receipt["size"])
    return receipt


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _Writer:
    """Writes one entry (file, folder or zip) with its metadata and marker, each under a temporary name first."""

    def __init__(self, target: Target, layout: Layout, document: str, key: str, work: Path, size: int) -> None:
        self.target, self.layout, self.document, self.key, self.work = target, layout, document, key, work
        self.size = size  # the document's: a file read back is never allowed to be larger

    def entry_name(self) -> str:
        stem = self.document.rsplit(".", 1)[0] if "." in self.document else self.document
        return {"file": self.document, "folder": stem, "zip": f"{stem}.zip"}[self.layout.packaging]

    # -- reading back what is there ---------------------------------------------------------------------

    def existing(self, entry: str) -> Any:
        """_ABSENT, _OTHER, or (same document) its receipt read back — None when there is no readable one."""
        if not self.target.exists(entry):
            return _ABSENT
        local = self.work / f"existing-{secrets.token_hex(4)}"
        try:
            if self.layout.packaging == "zip":
                return self._existing_zip(entry, local)
            document = f"{entry}/{self.document}" if self.layout.packaging == "folder" else entry
            self.target.download(document, local, self.size)
            if _sha256(local) != self.key:
                return _OTHER
            return self._read_receipt(self._metadata_path(entry))
        except (FileNotFoundError, IsADirectoryError):  # e.g. a folder without our document: someone else's
            return _OTHER
        except Oversized:  # larger than our document: another one
            return _OTHER
        finally:
            local.unlink(missing_ok=True)

    def _existing_zip(self, entry: str, local: Path) -> Any:
        # Our zip holds the document (deflated at worst a little larger) and a small receipt.
        self.target.download(entry, local, self.size + self.size // 100 + MAX_RECEIPT_BYTES + 64 * 1024)
        try:
            with zipfile.ZipFile(local) as archive:
                digest = hashlib.sha256()
                with archive.open(self.document) as member:
                    for chunk in iter(lambda: member.read(1024 * 1024), b""):
                        digest.update(chunk)
                if digest.hexdigest() != self.key:
                    return _OTHER
                names = set(archive.namelist())
                metadata = self._metadata_name()
                return self._parse_receipt(archive.read(metadata)) if metadata in names else None
        except (zipfile.BadZipFile, KeyError):
            return _OTHER

    def _read_receipt(self, path: str | None) -> dict[str, Any] | None:
        if path is None or not self.target.exists(path):
            return None
        local = self.work / f"receipt-{secrets.token_hex(4)}"
        try:
            self.target.download(path, local, MAX_RECEIPT_BYTES)
            return self._parse_receipt(local.read_bytes())
        except Oversized:
            return None
        finally:
            local.unlink(missing_ok=True)

    def _parse_receipt(self, data: bytes) -> dict[str, Any] | None:
        if self.layout.metadata == "xml":
            return _receipt_from_xml(data)
        try:
            loaded = json.loads(data)
        except ValueError:
            return None
        return dict(loaded) if isinstance(loaded, dict) and loaded.get("sha256") == self.key else None

    # -- writing ----------------------------------------------------------------------------------------

    def _metadata_name(self) -> str:
        suffix = {"json": RECEIPT_SUFFIX, "xml": XML_RECEIPT_SUFFIX, "none": ""}[self.layout.metadata]
        return f"{self.document}{suffix}"

    def _metadata_path(self, entry: str) -> str | None:
        """Where the metadata file lives on the target; None when it is inside a zip or not written."""
        if self.layout.metadata == "none" or self.layout.packaging == "zip":
            return None
        if self.layout.packaging == "folder":
            return f"{entry}/{self._metadata_name()}"
        suffix = RECEIPT_SUFFIX if self.layout.metadata == "json" else XML_RECEIPT_SUFFIX
        return f"{entry}{suffix}"

    def _metadata_bytes(self, receipt: dict[str, Any]) -> bytes:
        if self.layout.metadata == "xml":
            return receipt_xml(receipt)
        return json.dumps(receipt, ensure_ascii=False, indent=2).encode()

    def write(self, entry: str, staged: Path, receipt: dict[str, Any], *, replace: bool) -> None:
        """Write a new entry; with ``replace``, over a different document of the same name (its marker first)."""
        if replace and self.layout.done_marker:
            self.target.remove(entry + DONE_SUFFIX)  # a receiver must not take the new entry for the old one
        if self.layout.packaging == "folder":
            self._write_folder(entry, staged, receipt, replace)
        else:
            local = self._zip(staged, receipt) if self.layout.packaging == "zip" else staged
            self._put(local, entry, replace=replace, exclusive=True)
            metadata = self._metadata_path(entry)
            if metadata is not None:
                self._put_bytes(self._metadata_bytes(receipt), metadata)
        self._marker(entry)

    def complete(self, entry: str, receipt: dict[str, Any]) -> None:
        """An earlier deposit of the same document: write whatever it did not (metadata, marker)."""
        metadata = self._metadata_path(entry)
        if metadata is not None and not self.target.exists(metadata):
            self._put_bytes(self._metadata_bytes(receipt), metadata)
        if self.layout.done_marker and not self.target.exists(entry + DONE_SUFFIX):
            self._marker(entry)

    def _write_folder(self, entry: str, staged: Path, receipt: dict[str, Any], replace: bool) -> None:
        temporary = self._temporary(entry)
        self.target.makedirs(temporary)
        try:
            self.target.upload(staged, f"{temporary}/{self.document}")
            if self.layout.metadata != "none":
                local = self.work / "metadata"
                local.write_bytes(self._metadata_bytes(receipt))
                self.target.upload(local, f"{temporary}/{self._metadata_name()}")
            if replace:
                # Folders cannot be swapped in one step everywhere: the old one is moved aside, then removed.
                aside = self._temporary(entry) + ".old"
                self.target.rename(entry, aside, replace=False)
                self.target.rename(temporary, entry, replace=False)
                self.target.remove(aside)
            else:
                self._rename_exclusive(temporary, entry)
        except BaseException:
            self.target.remove(temporary)
            raise

    def _zip(self, staged: Path, receipt: dict[str, Any]) -> Path:
        local = self.work / "package.zip"
        with zipfile.ZipFile(local, "w") as archive:
            # Documents are mostly PDFs and images: stored, not deflated (deflating them gains nothing).
            archive.write(staged, self.document, compress_type=zipfile.ZIP_STORED)
            if self.layout.metadata != "none":
                archive.writestr(self._metadata_name(), self._metadata_bytes(receipt), zipfile.ZIP_DEFLATED)
        return local

    def _marker(self, entry: str) -> None:
        if self.layout.done_marker:
            self._put_bytes(f"{self.key}\n".encode(), entry + DONE_SUFFIX)

    def _put_bytes(self, data: bytes, path: str) -> None:
        local = self.work / f"piece-{secrets.token_hex(4)}"
        local.write_bytes(data)
        try:
            self._put(local, path, replace=True, exclusive=False)
        finally:
            local.unlink(missing_ok=True)

    def _put(self, local: Path, path: str, *, replace: bool, exclusive: bool) -> None:
        temporary = self._temporary(path)
        self.target.upload(local, temporary)
        try:
            if exclusive and not replace:
                self._rename_exclusive(temporary, path)
            else:
                self.target.rename(temporary, path, replace=True)
        finally:
            self.target.remove(temporary)  # left only when the rename failed

    def _rename_exclusive(self, temporary: str, path: str) -> None:
        try:
            self.target.rename(temporary, path, replace=False)
        except FileExistsError:
            # Written meanwhile by someone else: only the same document is acceptable.
            if self.existing(path) is _OTHER:
                raise Conflict(
                    message("un autre fichier porte déjà le nom %(path)s dans le dépôt", path=path)
                ) from None

    @staticmethod
    def _temporary(path: str) -> str:
        parent, _, name = path.rpartition("/")
        hidden = f".{name}.part-{secrets.token_hex(4)}"
        return f"{parent}/{hidden}" if parent else hidden


class LocalTarget:
    """A local folder as a :class:`Target` (the « dépôt » connector)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, path: str) -> Path:
        return self.root / path if path else self.root

    def exists(self, path: str) -> bool:
        return self._path(path).exists()

    def makedirs(self, path: str) -> None:
        self._path(path).mkdir(parents=True, exist_ok=True)

    def upload(self, local: Path, path: str) -> None:
        destination = self._path(path)
        with local.open("rb") as source, destination.open("xb") as out:
            shutil.copyfileobj(source, out, 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
        destination.chmod(0o644)
        fsync_dir(destination.parent)

    def rename(self, source: str, target: str, *, replace: bool) -> None:
        origin, destination = self._path(source), self._path(target)
        if replace:
            os.replace(origin, destination)
        elif origin.is_dir():
            if destination.exists():
                raise FileExistsError(target)
            os.rename(origin, destination)  # a folder: no link(); the check above narrows the race
        else:
            os.link(origin, destination)  # atomic, and never replaces a file deposited meanwhile
            origin.unlink()
        fsync_dir(destination.parent)

    def remove(self, path: str) -> None:
        found = self._path(path)
        if found.is_dir() and not found.is_symlink():
            shutil.rmtree(found, ignore_errors=True)
        else:
            found.unlink(missing_ok=True)

    def download(self, path: str, local: Path, max_bytes: int) -> None:
        with self._path(path).open("rb") as source, local.open("wb") as out:
            copy_at_most(source, out, max_bytes)
