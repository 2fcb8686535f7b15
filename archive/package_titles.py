"""The titles a transfer's pages show for its documents and units, read from the package the transfer holds.

The archive service keeps no copy of the GED's export: what it described of each document is in the manifest
of the package it built (each document's unit carries the document's id as its
OriginatingAgencyArchiveUnitIdentifier, and its Title). The manifest is the zip's first entry, with its sizes in
its local header (archive.zipstream): it is read as a stream from the store, without fetching the documents'
bytes behind it, and only the first MAX_MANIFEST_BYTES of it. The GED is not asked.

A page shows a few hundred titles of a package that may describe tens of thousands of documents: given the ids it
shows, the reading stops as soon as each one's title is found (the units come in the manifest's order, after the
objects), and only those are kept.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from lxml import etree

from socle.errors import SocleError
from socle.storage import get_store

__all__ = ["MAX_MANIFEST_BYTES", "PackageTitles", "package_titles"]

MAX_MANIFEST_BYTES = 64 * 1024 * 1024
CHUNK = 256 * 1024
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_ZIP64_EXTRA = 0x0001
# What the titles are read from (Content), and what is forgotten once read: everything else the manifest holds
# per document (its object group, its objects, its unit) is inside these.
_STREAMED = tuple(
    "{*}" + local
    for local in (
        "Content",
        "ArchiveUnit",
        "DataObjectGroup",
        "BinaryDataObject",
        "PhysicalDataObject",
        "DescriptiveMetadata",
    )
)


@dataclass
class PackageTitles:
    """Titles by GED document id (``documents``) and by unit id in the package (``units``)."""

    documents: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)


@dataclass
class _Wanted:
    """The ids whose titles are asked for (None: every one), and whether each has been found."""

    documents: set[str] | None
    units: set[str] | None

    def complete(self, found: PackageTitles) -> bool:
        """Every title asked for is found: nothing further in the manifest can change the answer."""
        return (
            self.documents is not None
            and self.units is not None
            and self.documents.issubset(found.documents)
            and self.units.issubset(found.units)
        )


def package_titles(
    sip_key: str | None, *, documents: Iterable[str] | None = None, units: Iterable[str] | None = None
) -> PackageTitles:
    """The titles of the package stored under ``sip_key``; empty when there is none or it cannot be read.

    :param documents: the GED document ids whose titles are wanted (those a page shows), None for all of them;
    :param units: likewise, the package's unit ids. With both given, only their titles are kept, and the manifest
        is read no further than where the last of them is found: the titles of these ids are those a whole reading
        gives (a document's first unit, as always).
    """
    found = PackageTitles()
    wanted = _Wanted(set(documents) if documents is not None else None, set(units) if units is not None else None)
    if sip_key is None or wanted.complete(found):
        return found  # no package, or nothing asked: the store is not even opened
    parser = etree.XMLPullParser(
        events=("end",),
        tag=_STREAMED,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    )
    try:
        with get_store().open(sip_key) as stream:
            for chunk in _manifest_chunks(stream):
                parser.feed(chunk)
                if _collect(parser, found, wanted) or wanted.complete(found):
                    return found  # the units are all described, or those asked for: what follows is not read
        parser.close()
        _collect(parser, found, wanted)
    except (SocleError, OSError, ValueError, zlib.error, etree.XMLSyntaxError, LookupError):
        pass  # the package gone or unreadable: what was read stays, and the page shows ids for the rest
    return found


def _collect(parser: etree.XMLPullParser, found: PackageTitles, wanted: _Wanted) -> bool:
    """Read the parsed elements' titles, then forget them; True once DescriptiveMetadata has ended.

    The manifest is read in a stream, as archive.checks.check_manifest_file does: each unit's Content, each unit
    and each object, once ended, is cleared and its earlier siblings deleted, so the tree keeps only the path to
    the element being read (a 55 MB manifest kept whole took 131 MiB per page view)."""
    for _event, element in parser.read_events():
        local = etree.QName(element).localname
        if local == "DescriptiveMetadata":
            return True
        if local == "Content":
            _read_content(element, found, wanted)
        element.clear()
        while element.getprevious() is not None:  # the siblings before it, already read
            del element.getparent()[0]
    return False


def _read_content(content: etree._Element, found: PackageTitles, wanted: _Wanted) -> None:
    unit = content.getparent()
    title = (content.findtext("{*}Title") or "").strip()
    if unit is not None and title:
        unit_id = unit.get("id")
        if unit_id and (wanted.units is None or unit_id in wanted.units):
            found.units[str(unit_id)] = title
        # A document's unit carries its GED id (a folder's, its cote: never a document's id).
        identifier = (content.findtext("{*}OriginatingAgencyArchiveUnitIdentifier") or "").strip()
        if identifier and (wanted.documents is None or identifier in wanted.documents):
            found.documents.setdefault(identifier, title)


def _manifest_chunks(stream: BinaryIO) -> Iterator[bytes]:
    """The uncompressed bytes of the zip's first entry (manifest.xml), up to MAX_MANIFEST_BYTES."""
    header = _read(stream, _LOCAL_HEADER.size)
    signature, _version, flags, method, _time, _date, _crc, compressed, _size, name_length, extra_length = (
        _LOCAL_HEADER.unpack(header)
    )
    if signature != b"PK\x03\x04" or flags & 0x1:  # not a zip, or encrypted
        raise ValueError("not a readable zip")
    name = _read(stream, name_length)
    extra = _read(stream, extra_length)
    if name.decode("utf-8", "replace").lower() != "manifest.xml":
        raise ValueError("the manifest is not the first entry")
    if compressed == 0xFFFFFFFF:
        compressed = _zip64_compressed(extra)
    if method == 0 and not flags & 0x8:
        remaining = min(compressed, MAX_MANIFEST_BYTES)
        while remaining > 0:
            data = stream.read(min(CHUNK, remaining))
            if not data:
                return
            remaining -= len(data)
            yield data
    elif method == 8:
        inflater, produced = zlib.decompressobj(-15), 0
        while not inflater.eof and produced < MAX_MANIFEST_BYTES:
            data = stream.read(CHUNK)
            if not data:
                return
            while data and not inflater.eof and produced < MAX_MANIFEST_BYTES:
                out = inflater.decompress(data, min(CHUNK, MAX_MANIFEST_BYTES - produced))
                data = inflater.unconsumed_tail
                produced += len(out)
                yield out
    else:
        raise ValueError("unsupported compression")


def _zip64_compressed(extra: bytes) -> int:
    offset = 0
    while offset + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, offset)
        if tag == _ZIP64_EXTRA and length >= 16:
            return int(struct.unpack_from("<Q", extra, offset + 12)[0])
        offset += 4 + length
    raise ValueError("zip64 sizes missing")


def _read(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise ValueError("truncated zip")
    return data
