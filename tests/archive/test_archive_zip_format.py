"""The SIP zip as streaming readers see it (local headers read byte by byte), and one read per file.

A package over 4 GiB is too big for the suite: Zip64 is tested by lowering zipfile's own thresholds
(ZIP64_LIMIT, ZIP_FILECOUNT_LIMIT), which makes zipfile write the very records it writes for large packages.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
import subprocess
import sys
import threading
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pikepdf
import pygfried
import pytest
from lxml import etree

from archive import packaging
from archive.packaging import describe_file, verify_sip, write_sip
from archive.seda import (
    Agency,
    ArchiveUnitSpec,
    DescribedFile,
    TransferSpec,
    build_manifest,
    sip_entries,
    write_manifest,
)
from archive.validation import validate_manifest

LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
DATA_DESCRIPTOR_FLAG = 0x08
UTF8_FLAG = 0x800


@dataclass
class LocalEntry:
    name: str
    flags: int
    method: int
    crc: int
    compressed: int
    size: int
    extra: bytes


def local_entries(path: Path) -> list[LocalEntry]:
    """Walk the local headers from the start of the file, as a streaming reader does.

    Each entry's data must be followed directly by the next local header: a data descriptor, or sizes not
    known in the header, would break the walk.
    """
    data = path.read_bytes()
    entries, offset = [], 0
    while data[offset : offset + 4] == b"PK\x03\x04":
        _, _, flags, method, _, _, crc, compressed, size, name_length, extra_length = LOCAL_HEADER.unpack_from(
            data, offset
        )
        offset += LOCAL_HEADER.size
        name = data[offset : offset + name_length].decode("utf-8" if flags & UTF8_FLAG else "cp437")
        extra = data[offset + name_length : offset + name_length + extra_length]
        offset += name_length + extra_length
        if compressed == 0xFFFFFFFF:  # Zip64: the real sizes are in the extra field (id 1)
            size, compressed = zip64_sizes(extra)
        entries.append(LocalEntry(name, flags, method, crc, compressed, size, extra))
        offset += compressed
    assert data[offset : offset + 4] == b"PK\x01\x02", "les données ne sont pas suivies de l'entrée suivante"
    return entries


def zip64_sizes(extra: bytes) -> tuple[int, int]:
    offset = 0
    while offset < len(extra):
        header_id, length = struct.unpack_from("<HH", extra, offset)
        if header_id == 1:
            size, compressed = struct.unpack_from("<QQ", extra, offset + 4)
            return size, compressed
        offset += 4 + length
    raise AssertionError("en-tête Zip64 absent")


def make_spec(files: list[DescribedFile]) -> TransferSpec:
    agency = Agency("MAIRIE-01")
    units = tuple(ArchiveUnitSpec(title=file.filename, files=((file, "BinaryMaster_1"),)) for file in files)
    return TransferSpec(
        message_identifier="SIP-1",
        archival_agreement=None,
        archival_agency=Agency("AD67"),
        transferring_agency=agency,
        originating_agency=agency,
        submission_agency=agency,
        comment=None,
        units=(ArchiveUnitSpec(title="Versement", description_level="File", children=units),),
        date=datetime(2024, 3, 4, 10, 30, tzinfo=UTC),
    )


def write_package(files: list[DescribedFile], destination: Path) -> Path:
    spec = make_spec(files)
    write_sip(build_manifest(spec), sip_entries(spec), destination)
    return destination


def make_pdf(path: Path, payload: int) -> Path:
    """A real PDF carrying `payload` random bytes in an image stream (incompressible, like a scan)."""
    with pikepdf.new() as document:
        document.add_blank_page()
        stream = pikepdf.Stream(document, random.Random(1).randbytes(payload))
        document.pages[0].Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=stream))
        document.save(path)
    return path


@pytest.fixture
def mixed(tmp_path: Path) -> list[DescribedFile]:
    """A PDF, a French text, random bytes of no known format, under names with accents."""
    pdf = make_pdf(tmp_path / "acte.pdf", 300_000)
    text = tmp_path / "note.txt"
    text.write_text("Délibération du conseil municipal.\n" * 2_000, encoding="utf-8")
    noise = tmp_path / "mesures.dat"
    noise.write_bytes(random.Random(2).randbytes(200_000))
    return [
        describe_file(pdf, "Délibération n°12.pdf"),
        describe_file(text, "Procès-verbal.txt"),
        describe_file(noise, "Relevé.dat"),
    ]


def test_local_headers_carry_crc_and_sizes_without_data_descriptor(mixed: list[DescribedFile], tmp_path: Path) -> None:
    package = write_package(mixed, tmp_path / "sip.zip")

    entries = local_entries(package)

    assert entries[0].name == "manifest.xml"
    assert all(entry.name.startswith("content/") for entry in entries[1:])
    assert all(entry.flags & DATA_DESCRIPTOR_FLAG == 0 for entry in entries)
    with zipfile.ZipFile(package) as archive:
        central = {info.filename: info for info in archive.infolist()}
    for entry in entries:
        assert (entry.crc, entry.compressed, entry.size) == (
            central[entry.name].CRC,
            central[entry.name].compress_size,
            central[entry.name].file_size,
        )
        assert entry.size > 0
    assert [entry.crc for entry in entries[1:]] == [file.crc32 for file in mixed]
    assert verify_sip(package) == []


def test_non_ascii_names_are_flagged_utf8(mixed: list[DescribedFile], tmp_path: Path) -> None:
    entries = local_entries(write_package(mixed, tmp_path / "sip.zip"))

    accented = [entry for entry in entries if not entry.name.isascii()]
    assert {entry.name.rsplit("_", 1)[-1] for entry in accented} >= {"12.pdf", "Procès-verbal.txt"}
    assert all(entry.flags & UTF8_FLAG for entry in accented)


def test_compressed_formats_stored_others_deflated_only_when_smaller(
    mixed: list[DescribedFile], tmp_path: Path
) -> None:
    package = write_package(mixed, tmp_path / "sip.zip")

    methods = {entry.name.rsplit(".", 1)[-1]: entry for entry in local_entries(package)[1:]}
    assert mixed[0].puid in packaging.ALREADY_COMPRESSED_PUIDS
    assert methods["pdf"].method == zipfile.ZIP_STORED
    assert methods["txt"].method == zipfile.ZIP_DEFLATED
    assert methods["txt"].compressed < methods["txt"].size / 10
    # Random bytes of no compressed format: deflate is tried, makes them larger, so they are stored after all.
    assert packaging.compression_for(mixed[2]) == zipfile.ZIP_DEFLATED
    assert methods["dat"].method == zipfile.ZIP_STORED
    with zipfile.ZipFile(package) as archive:
        assert archive.testzip() is None
        assert archive.read(methods["dat"].name) == mixed[2].path.read_bytes()
    assert verify_sip(package) == []


def test_zip64_entries_when_sizes_need_it(
    mixed: list[DescribedFile], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # zipfile switches to Zip64 above ZIP64_LIMIT (4 GiB - 1): lowered, files of 100 KB+ get Zip64 headers.
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 100_000)
    package = write_package(mixed, tmp_path / "sip.zip")

    entries = local_entries(package)
    large = [entry for entry in entries[1:] if entry.size * 1.05 > 100_000]
    assert len(large) == 2
    for entry in large:
        assert zip64_sizes(entry.extra) == (entry.size, entry.compressed)
        assert entry.flags & DATA_DESCRIPTOR_FLAG == 0
    monkeypatch.undo()
    with zipfile.ZipFile(package) as archive:
        assert archive.testzip() is None
    assert verify_sip(package) == []


def test_zip64_end_record_for_many_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Over 65,535 entries (ZIP_FILECOUNT_LIMIT) the count only fits in the Zip64 end of central directory.
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 10)
    files = []
    for number in range(12):
        path = tmp_path / f"piece-{number}.txt"
        path.write_text(f"pièce {number}\n", encoding="utf-8")
        files.append(describe_file(path, identify=False))
    package = write_package(files, tmp_path / "sip.zip")

    data = package.read_bytes()
    assert b"PK\x06\x06" in data[-200:]  # Zip64 end of central directory record
    monkeypatch.undo()
    with zipfile.ZipFile(package) as archive:
        assert len(archive.infolist()) == 13
    assert verify_sip(package) == []


DESCRIBE_FIFO = """
import json, sys
from pathlib import Path
from archive.packaging import describe_file
described = describe_file(Path(sys.argv[1]))
print(json.dumps([described.size, described.sha512, described.puid, described.mime_type]))
"""


def test_describe_reads_the_file_once(tmp_path: Path) -> None:
    """A named pipe can be read only once: identifying it by reopening its path would block for ever.

    Described in a child process, so that a regression fails on the timeout instead of hanging the suite.
    """
    pdf = make_pdf(tmp_path / "source.pdf", 200_000).read_bytes()
    fifo = tmp_path / "tube.pdf"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_bytes, args=(pdf,), daemon=True)
    writer.start()
    try:
        done = subprocess.run(
            [sys.executable, "-c", DESCRIBE_FIFO, str(fifo)], capture_output=True, text=True, timeout=60, check=True
        )
    except subprocess.TimeoutExpired:
        pytest.fail("describe_file a rouvert le fichier")
    writer.join()

    size, sha512, puid, mime_type = json.loads(done.stdout)
    assert size == len(pdf)
    assert sha512 == hashlib.sha512(pdf).hexdigest()
    assert puid == pygfried.identify(str(tmp_path / "source.pdf"))
    assert mime_type == "application/pdf"


def test_sample_identification_matches_whole_file(tmp_path: Path) -> None:
    """Small files are identified on all their bytes; large ones on their first and last bytes."""
    small = make_pdf(tmp_path / "petit.pdf", packaging.IDENTIFY_HEAD // 2)
    large = make_pdf(tmp_path / "grand.pdf", 3 * packaging.IDENTIFY_HEAD)
    between = make_pdf(tmp_path / "moyen.pdf", packaging.IDENTIFY_HEAD + 100)
    for path in (small, large, between):
        assert describe_file(path).puid == pygfried.identify(str(path)), path.name
    assert small.stat().st_size < packaging.IDENTIFY_HEAD < between.stat().st_size
    assert large.stat().st_size > packaging.IDENTIFY_HEAD + packaging.IDENTIFY_TAIL


def test_manifest_written_to_a_file_is_the_pretty_printed_tree(mixed: list[DescribedFile], tmp_path: Path) -> None:
    """Written block by block, the manifest is byte for byte what lxml pretty-prints for the whole tree."""
    spec = make_spec(mixed)
    manifest = tmp_path / "manifest.xml"
    with manifest.open("wb") as out:
        write_manifest(spec, out, version="2.3")

    written = manifest.read_bytes()
    tree = etree.fromstring(written, etree.XMLParser(remove_blank_text=True))
    assert etree.tostring(tree, xml_declaration=True, encoding="UTF-8", pretty_print=True) == written
    assert written == build_manifest(spec, version="2.3")
    assert written.count(b"<BinaryDataObject ") == 3


def test_package_from_a_manifest_file(mixed: list[DescribedFile], tmp_path: Path) -> None:
    spec = make_spec(mixed)
    manifest = tmp_path / "manifest.xml"
    manifest.write_bytes(build_manifest(spec))
    package = tmp_path / "sip.zip"

    write_sip(manifest, sip_entries(spec), package)

    entries = local_entries(package)
    assert entries[0].name == "manifest.xml"
    assert entries[0].flags & DATA_DESCRIPTOR_FLAG == 0
    with zipfile.ZipFile(package) as archive:
        assert archive.read("manifest.xml") == manifest.read_bytes()
    assert verify_sip(package) == []


WORD_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)


def make_docx(path: Path, picture: int) -> Path:
    """A minimal Word document (what siegfried needs to tell it from a zip) with a picture of `picture` bytes."""
    with zipfile.ZipFile(path, "w") as document:
        document.writestr("[Content_Types].xml", WORD_CONTENT_TYPES)
        document.writestr("word/document.xml", '<w:document xmlns:w="urn:w"><w:body/></w:document>')
        document.writestr("word/media/image1.jpeg", random.Random(3).randbytes(picture))
    return path


def test_large_office_document_is_not_taken_for_a_plain_zip(tmp_path: Path) -> None:
    """Its members, beyond the sampled bytes, make a DOCX: such files are identified on the file itself."""
    small = make_docx(tmp_path / "petit.docx", 1_000)
    large = make_docx(tmp_path / "grand.docx", 4 * packaging.IDENTIFY_HEAD)
    assert large.stat().st_size > packaging.IDENTIFY_HEAD + packaging.IDENTIFY_TAIL

    assert describe_file(small).puid == describe_file(large).puid == pygfried.identify(str(large)) == "fmt/412"
    assert packaging.compression_for(describe_file(large)) == zipfile.ZIP_STORED


def test_streamed_validation_never_misses_a_dangling_reference(mixed: list[DescribedFile]) -> None:
    """Valid against the XSD, but an object's Relationship points nowhere: the streamed check must not say valid."""
    manifest = build_manifest(make_spec(mixed))
    broken = manifest.replace(
        b"<DataObjectVersion>", b'<Relationship target="NULLE-PART" type="voir"/>\n<DataObjectVersion>', 1
    )
    schemas = Path(os.environ["SOCLE_SEDA_SCHEMAS"])  # the official XSDs, set by conftest
    sound = validate_manifest(manifest, schemas)
    report = validate_manifest(broken, schemas)

    assert sound.valid
    assert not report.valid
    assert [issue.message for issue in report.issues if "NULLE-PART" in issue.message]
    assert all("NULLE-PART" in issue.message for issue in report.issues)  # schema-valid otherwise
