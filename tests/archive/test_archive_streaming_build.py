"""packaging.build_sip: a package from a folder in one read of each file, the same package as the two-pass path.

The reference is the path that reads each file twice (describe_file, build_manifest, write_sip): the one-pass
build must give byte for byte the same manifest (ids, digests, formats, dates) and the same entries.
"""

from __future__ import annotations

import io
import os
import random
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pygfried
import pytest
from lxml import etree
from test_archive_zip_format import DATA_DESCRIPTOR_FLAG, local_entries, make_docx, make_pdf, zip64_sizes

from archive import identification, packaging, sources, validation, zipstream
from archive.inspection import inspect_sip
from archive.seda import (
    Agency,
    AgentSpec,
    ArchiveUnitSpec,
    DescribedFile,
    SedaError,
    TransferSpec,
    build_manifest,
    sip_entries,
)
from archive.sources import folder_transfer, transfer_from_folder

from conftest import SHARED_SEDA

AGENCIES = {"archival_agency": "AD37", "transferring_agency": "MAIRIE-01"}
NOW = datetime(2026, 3, 4, 10, 30, tzinfo=UTC)
HEADER = {"message_identifier": "SIP-42", "now": NOW}
# The XMP packet of a PDF/A-2b as Ghostscript writes it (what the PRONOM PDF/A signatures look for).
PDFA_XMP = (
    b"<?xpacket begin='\xef\xbb\xbf' id='W5M0MpCehiHzreSzNTczkc9d'?>\n"
    b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>\n"
    b"<rdf:Description rdf:about=\"\" xmlns:pdfaid='http://www.aiim.org/pdfa/ns/id/' pdfaid:part='2' "
    b"pdfaid:conformance='B'/></rdf:RDF>\n</x:xmpmeta>\n<?xpacket end='w'?>"
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """versement/{Actes/{délib 1.pdf, annexe.docx}, Actes/2024/mesures.dat, notes.txt, Procès-verbal.txt}"""
    root = tmp_path / "versement"
    (root / "Actes" / "2024").mkdir(parents=True)
    make_pdf(root / "Actes" / "délib 1.pdf", 40_000)
    make_docx(root / "Actes" / "annexe.docx", 50_000)
    (root / "Actes" / "2024" / "mesures.dat").write_bytes(random.Random(5).randbytes(30_000))
    (root / "notes.txt").write_text("Séance du conseil municipal.\n" * 3_000, encoding="utf-8")
    (root / "Procès-verbal.txt").write_text("Procès-verbal\n", encoding="utf-8")
    return root


def header_only() -> TransferSpec:
    agency = Agency("MAIRIE-01")
    return TransferSpec("SIP-42", None, Agency("AD37"), agency, agency, agency, None, (), NOW)


def one_pass(folder: Path, destination: Path, **options: object) -> packaging.BuiltSip:
    spec, plan = folder_transfer(folder, **AGENCIES, **HEADER)  # type: ignore[arg-type]
    return packaging.build_sip(spec, plan, destination, **options)  # type: ignore[arg-type]


def manifest_of(package: Path) -> bytes:
    with zipfile.ZipFile(package) as archive:
        return archive.read("manifest.xml")


def test_one_pass_gives_the_package_of_the_two_pass_path(tree: Path, tmp_path: Path) -> None:
    package = tmp_path / "sip.zip"

    built = one_pass(tree, package)

    reference = transfer_from_folder(tree, **AGENCIES, **HEADER)  # type: ignore[arg-type]
    assert manifest_of(package) == build_manifest(reference)
    with zipfile.ZipFile(package) as archive:
        assert archive.namelist() == ["manifest.xml", *(name for name, _ in sip_entries(reference))]
        assert archive.testzip() is None
        for name, file in sip_entries(reference):
            assert archive.read(name) == file.path.read_bytes()
    assert (built.units, built.files) == (8, 5)  # the folder, Actes, 2024 and one unit per file
    assert built.size == sum(file.size for _, file in sip_entries(reference))
    assert b"<FormatId>fmt/412</FormatId>" in manifest_of(package)  # the DOCX, identified on the file itself
    assert packaging.verify_sip(package) == []
    assert inspect_sip(package).ok
    assert sorted(path.name for path in tmp_path.iterdir()) == ["sip.zip", "versement"]  # nothing else left


def test_csv_plan_gives_the_package_of_the_two_pass_path(tree: Path, tmp_path: Path) -> None:
    csv_path = tmp_path / "metadata.csv"
    csv_path.write_text(
        '"ID";"ParentID";"File";"Content.Title"\n"1";"";"";"Versement"\n"2";"1";"notes.txt";"Notes"\n'
        '"3";"1";"Actes\\délib 1.pdf";"Délibération"\n"4";"1";"Actes/annexe.docx";"Annexe"\n'
        '"5";"1";"Actes/2024/mesures.dat";"Mesures"\n"6";"";"Procès-verbal.txt";"PV"\n',
        encoding="utf-8",
    )
    spec, plan = folder_transfer(tree, csv_path=csv_path, **AGENCIES, **HEADER)  # type: ignore[arg-type]

    packaging.build_sip(spec, plan, tmp_path / "sip.zip")

    reference = transfer_from_folder(tree, csv_path=csv_path, **AGENCIES, **HEADER)  # type: ignore[arg-type]
    assert manifest_of(tmp_path / "sip.zip") == build_manifest(reference)


def test_local_headers_carry_crc_and_sizes_and_the_manifest_comes_first(tree: Path, tmp_path: Path) -> None:
    package = tmp_path / "sip.zip"
    one_pass(tree, package)

    entries = local_entries(package)

    assert entries[0].name == "manifest.xml"
    assert all(entry.flags & DATA_DESCRIPTOR_FLAG == 0 for entry in entries)
    with zipfile.ZipFile(package) as archive:
        central = {info.filename: info for info in archive.infolist()}
    for entry in entries:
        info = central[entry.name]
        assert (entry.crc, entry.compressed, entry.size) == (info.CRC, info.compress_size, info.file_size)
    methods = {entry.name.rsplit(".", 1)[-1]: entry.method for entry in entries[1:]}
    assert methods == {
        "pdf": zipfile.ZIP_STORED,  # already compressed, by its first bytes
        "docx": zipfile.ZIP_STORED,
        "dat": zipfile.ZIP_STORED,  # random bytes: the trial says deflating would not help
        "txt": zipfile.ZIP_DEFLATED,
    }
    accented = [entry for entry in entries if not entry.name.isascii()]
    assert accented and all(entry.flags & 0x800 for entry in accented)


def test_manifest_put_in_front_in_place_or_by_copy_gives_the_same_entries(tree: Path, tmp_path: Path) -> None:
    in_place, copied = tmp_path / "en-place.zip", tmp_path / "copie.zip"
    one_pass(tree, in_place)
    one_pass(tree, copied, insert_range=False)

    with zipfile.ZipFile(in_place) as first, zipfile.ZipFile(copied) as second:
        assert [info.filename for info in first.infolist()] == [info.filename for info in second.infolist()]
        assert all(first.read(name) == second.read(name) for name in first.namelist() if name != "manifest.xml")
    padded, plain = local_entries(in_place), local_entries(copied)
    assert plain[0].extra == b""
    if padded[0].extra:  # the file system inserted the manifest in place (ext4, XFS): block-aligned
        assert padded[0].extra[:2] == b"\x1e\xa1"  # the alignment field (id 0xa11e), as commons-compress reads it
        first_content = 30 + len("manifest.xml") + len(padded[0].extra) + padded[0].compressed
        assert first_content % os.statvfs(tmp_path).f_bsize == 0
    assert packaging.verify_sip(in_place) == packaging.verify_sip(copied) == []


def test_deflated_after_a_hopeful_trial_then_stored_when_it_did_not_help(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files longer than one chunk get a trial on their first bytes; if deflating still makes them larger,
    the entry is written again, stored (the file is read a second time, and must not have changed)."""
    monkeypatch.setattr(packaging, "CHUNK_SIZE", 4096)
    monkeypatch.setattr(packaging, "PROBE_GAIN", 2.0)  # every trial says deflate
    folder = tmp_path / "versement"
    folder.mkdir()
    (folder / "bruit.bin").write_bytes(random.Random(6).randbytes(50_000))
    (folder / "texte.txt").write_text("Budget primitif 2026.\n" * 5_000, encoding="utf-8")
    package = tmp_path / "sip.zip"

    one_pass(folder, package)

    methods = {entry.name.rsplit("_", 1)[-1]: entry.method for entry in local_entries(package)[1:]}
    assert methods == {"bruit.bin": zipfile.ZIP_STORED, "texte.txt": zipfile.ZIP_DEFLATED}
    with zipfile.ZipFile(package) as archive:
        assert archive.testzip() is None
    assert packaging.verify_sip(package) == []


def test_zip64_records_when_sizes_and_count_need_them(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # zipfile's own thresholds, lowered: the records are those a package over 4 GiB or 65,535 entries gets.
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 40_000)
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 3)
    package = tmp_path / "sip.zip"
    one_pass(tree, package)

    entries = local_entries(package)
    large = [entry for entry in entries[1:] if entry.size > 40_000]
    assert large
    for entry in large:
        assert zip64_sizes(entry.extra) == (entry.size, entry.compressed)
    assert b"PK\x06\x06" in package.read_bytes()[-400:]  # Zip64 end of central directory record
    monkeypatch.undo()
    with zipfile.ZipFile(package) as archive:
        assert len(archive.infolist()) == 6
        assert archive.testzip() is None
    assert packaging.verify_sip(package) == []


# --- refusals: every problem listed, nothing written ------------------------------------------------------------


class ListPlan:
    def __init__(self, events: list[packaging.UnitStart | packaging.UnitEnd]) -> None:
        self.events = events
        self.problems: list[str] = []

    def __iter__(self) -> Iterator[packaging.UnitStart | packaging.UnitEnd]:
        return iter(self.events)


def flat_plan(*files: Path) -> ListPlan:
    events: list[packaging.UnitStart | packaging.UnitEnd] = [packaging.UnitStart(ArchiveUnitSpec(title="Versement"))]
    for path in files:
        events += [packaging.UnitStart(ArchiveUnitSpec(title=path.name), (packaging.SourceFile(path, path.name),))]
        events.append(packaging.UnitEnd())
    return ListPlan([*events, packaging.UnitEnd()])


def test_unreadable_and_empty_files_are_all_reported_and_nothing_written(tmp_path: Path) -> None:
    folder = tmp_path / "versement"
    folder.mkdir()
    (folder / "bon.txt").write_text("bon\n", encoding="utf-8")
    (folder / "vide.pdf").touch()
    spec = header_only()
    plan = flat_plan(folder / "bon.txt", folder / "disparu.pdf", folder / "vide.pdf", folder / "bon.txt")

    with pytest.raises(packaging.BuildRefused) as refused:
        packaging.build_sip(spec, plan, tmp_path / "sip.zip")

    text = "\n".join(refused.value.problems)
    assert "Fichier illisible « disparu.pdf »" in text and "Fichier vide « vide.pdf »" in text
    assert len(refused.value.problems) == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == ["versement"]


@pytest.mark.parametrize("size", [100, 200_000], ids=["haché sur place", "haché par le fil"])
def test_a_file_that_grows_while_read_is_refused_without_a_thread_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """The file is longer than its size when opened (it grew in between): stat is made to say so, the race
    a busy share produces. The build is refused; the hashing thread never sees the extra bytes."""
    folder = tmp_path / "versement"
    folder.mkdir()
    (folder / "grandit.bin").write_bytes(random.Random(size).randbytes(size))
    real_fstat = os.fstat

    def earlier_fstat(fd: int) -> os.stat_result:
        info = real_fstat(fd)
        if info.st_size == size:
            fields = list(info)
            fields[6] = size - 10  # st_size, as when the file was opened
            return os.stat_result(fields)
        return info

    thread_errors: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda hook: thread_errors.append(hook.exc_value))
    monkeypatch.setattr(packaging.os, "fstat", earlier_fstat)
    plan = flat_plan(folder / "grandit.bin")

    with pytest.raises(packaging.BuildRefused) as refused:
        packaging.build_sip(header_only(), plan, tmp_path / "sip.zip", identify=False)

    assert any("a changé pendant sa lecture" in problem for problem in refused.value.problems), refused.value
    assert thread_errors == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["versement"]


def test_a_refused_manifest_leaves_nothing(tree: Path, tmp_path: Path) -> None:
    def refuse(manifest: Path) -> None:
        assert manifest.read_bytes().startswith(b"<?xml")
        raise SedaError("refusé par le contrôle")

    with pytest.raises(SedaError, match="refusé par le contrôle"):
        one_pass(tree, tmp_path / "sip.zip", check_manifest=refuse)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["versement"]


def test_a_unit_the_seda_cannot_express_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a", encoding="utf-8")
    spec = header_only()
    plan = ListPlan([packaging.UnitStart(ArchiveUnitSpec(title="X", description_level="Dossier")), packaging.UnitEnd()])

    with pytest.raises(SedaError, match="Niveau de description inconnu"):
        packaging.build_sip(spec, plan, tmp_path / "sip.zip")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.txt"]


def fast_describe(path: Path, name: str) -> DescribedFile:
    return packaging.describe_file(path, name, identify=False)


def test_folder_plan_reports_what_the_folder_scan_reports(tree: Path) -> None:
    (tree / "vide.pdf").touch()
    os.mkfifo(tree / "tube")
    os.close(os.open(os.path.join(os.fsencode(tree), b"caf\xe9.txt"), os.O_CREAT | os.O_WRONLY))
    (tree / "Actes" / "lien").symlink_to(tree.parent)

    with pytest.raises(sources.SourceError) as early:
        folder_transfer(tree, **AGENCIES)
    with pytest.raises(sources.SourceError) as scanned:
        transfer_from_folder(tree, describe=fast_describe, **AGENCIES)

    assert sorted(early.value.problems) == sorted(scanned.value.problems)
    assert len(early.value.problems) == 4


# --- identification ---------------------------------------------------------------------------------------------


def pdf_with_marker_inside(path: Path) -> Path:
    """A PDF whose PDF/A metadata lies far from both ends: only the marker's window shows it to siegfried."""
    rng = random.Random(8)
    head = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    tail = b"\ntrailer\n<< /Root 1 0 R >>\nstartxref\n0\n%%EOF\n"
    path.write_bytes(head + rng.randbytes(200_000) + PDFA_XMP + rng.randbytes(200_000) + tail)
    return path


def test_pdfa_marker_far_inside_is_shown_to_siegfried(tmp_path: Path) -> None:
    folder = tmp_path / "versement"
    folder.mkdir()
    pdf = pdf_with_marker_inside(folder / "acte.pdf")
    whole = pygfried.identify(str(pdf))
    sampler = identification.Sampler(".pdf")
    sampler.feed(pdf.read_bytes())
    sampler.window_start = -1  # head and tail alone
    without_window = identification.identify_here(sampler.sample(), pdf)[0]
    assert (whole, without_window) == ("fmt/477", "fmt/276")  # the case is real: the window decides

    one_pass(folder, tmp_path / "sip.zip")

    assert b"<FormatId>fmt/477</FormatId>" in manifest_of(tmp_path / "sip.zip")
    assert packaging.describe_file(pdf).puid == "fmt/477"


@pytest.mark.parametrize("chunk", [1, 7, 511, 4096, 65_536, 1 << 20])
def test_sample_does_not_depend_on_how_the_file_is_read(tmp_path: Path, chunk: int) -> None:
    data = pdf_with_marker_inside(tmp_path / "acte.pdf").read_bytes()
    whole = identification.Sampler(".pdf")
    whole.feed(data)
    pieces = identification.Sampler(".pdf")
    for start in range(0, len(data), chunk):
        pieces.feed(data[start : start + chunk])

    assert pieces.sample() == whole.sample()
    sample = whole.sample().data
    assert sample is not None and PDFA_XMP in sample
    assert sample.startswith(data[: identification.IDENTIFY_HEAD]) and sample.endswith(
        data[-identification.IDENTIFY_TAIL :]
    )


def test_worker_answers_as_siegfried_and_is_replaced_as_it_goes(tmp_path: Path) -> None:
    files = [
        make_pdf(tmp_path / "a.pdf", 1_000),
        make_docx(tmp_path / "b.docx", 100_000),  # larger than the sample: the file itself
        pdf_with_marker_inside(tmp_path / "c.pdf"),
    ]
    (tmp_path / "d.txt").write_text("Délibération\n", encoding="utf-8")
    files.append(tmp_path / "d.txt")

    with identification.Identifier(recycle_after=1) as identifier:
        answers = []
        for path in files:  # one at a time: each batch of one file goes to a new process
            sampler = identification.Sampler(path.suffix)
            sampler.feed(path.read_bytes())
            answers.append(identifier.submit(sampler.sample(), path).result())

    assert [answer[0] for answer in answers] == [pygfried.identify(str(path)) for path in files]
    assert identifier.processes == len(files)


def test_worker_memory_is_what_the_build_budget_leaves_beside_this_process() -> None:
    mib = identification.MIB
    # 190 MiB for the tree, less this process (40), what it grows by (10) and the worker beside its Go heap (14).
    assert identification.worker_memory_limit(40 * mib) == 126 * mib
    # Never under the floor where collections cost twice as much, nor over the ceiling where they cost nothing.
    assert identification.worker_memory_limit(120 * mib) == identification.WORKER_MEMORY_FLOOR
    assert identification.worker_memory_limit(5 * mib) == identification.WORKER_MEMORY_CEILING
    assert identification.WORKER_MEMORY_FLOOR < 126 * mib < identification.WORKER_MEMORY_CEILING


# --- the streamed XSD validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"<DataObjectVersion>", b"texte<DataObjectVersion>"),  # text where only elements may be
        (b"<DataObjectVersion>", "\u00a0<DataObjectVersion>".encode()),  # a non-breaking space is not blank
        (b"<DataObjectVersion>", b"<![CDATA[ ]]><DataObjectVersion>"),
        (b"<DataObjectVersion>", b"<!-- note --><DataObjectVersion>"),
        (b"<LastModified>", b"<LastModified>\n"),
        (b"<Uri>", b"<Uri> "),
        (b"</Size>", b" </Size>"),
    ],
)
def test_streamed_validation_without_blank_text_gives_libxml2s_verdict(
    tree: Path, tmp_path: Path, old: bytes, new: bytes
) -> None:
    """Indentation is not built into text nodes while streaming: the verdict must stay the whole tree's."""
    one_pass(tree, tmp_path / "sip.zip")
    manifest = manifest_of(tmp_path / "sip.zip")
    schema = validation.load_schema(SHARED_SEDA, "2.2")
    variant = manifest.replace(old, new, 1)
    assert variant != manifest

    streamed = validation._valid_streamed(variant, schema)

    assert streamed == schema.validate(etree.parse(io.BytesIO(variant)))
    assert validation._valid_streamed(manifest, schema)


def test_sip_zip_leaves_nothing_when_aborted(tmp_path: Path) -> None:
    work = tmp_path / "travail"
    work.mkdir()
    sip = zipstream.SipZip(tmp_path / "sip.zip", work)
    sip.begin("content/BDO1_a.txt", datetime.now(UTC), zipfile.ZIP_STORED, 3)
    sip.write(b"abc")

    sip.abort()

    assert sorted(path.name for path in tmp_path.iterdir()) == ["travail"]


# --- the manifest's blocks written as text ----------------------------------------------------------------------

AWKWARD = ("a & b < c > d", "« guillemets » \"doubles\" 'simples'", "retour\r\nligne\ttab", "émoji 😀 ŒÆ", "", " ")


@pytest.mark.parametrize("value", AWKWARD)
def test_blocks_written_as_text_are_what_lxml_writes(tmp_path: Path, value: str) -> None:
    """Every block is parsed back and pretty-printed by lxml: the bytes must not change."""
    text = tmp_path / f"{len(value)}.txt"
    text.write_text("Délibération\n", encoding="utf-8")
    described = packaging.describe_file(text, f"nom {value}.txt", identify=False)
    described = replace(described, format_name=value or None)
    unit = ArchiveUnitSpec(
        title=f"titre {value}",
        description=value or None,
        keywords=(value or "vide", f"mot {value}"),
        document_type=value or None,
        files=((described, "BinaryMaster_1"),),
        appraisal_rule=(f"APP {value}", None, "Keep"),
        access_rule=(f"ACC {value}", None),
        more_appraisal_rules=((f"APP2 {value}", None),),
        originating_system_ids=(f"sys {value}",),
        custodial_history=(f"historique {value}",),
        agents={
            "Writer": (AgentSpec(f"nom {value}", identifiers=(f"id {value}",), functions=(value,), roles=(value,)),),
            "Signer": (AgentSpec(f"signataire {value}"),),
            "Addressee": (AgentSpec(corpname=f"organisme {value}", positions=(value,)),),
        },
    )
    spec = TransferSpec(
        "SIP-1", None, Agency("AD37"), Agency("M"), Agency("M"), Agency("M"), value or None, (unit,), NOW
    )

    manifest = build_manifest(spec)

    tree = etree.fromstring(manifest, etree.XMLParser(remove_blank_text=True))
    assert etree.tostring(tree, xml_declaration=True, encoding="UTF-8", pretty_print=True) == manifest
    assert validation.validate_manifest(manifest, SHARED_SEDA).valid


@pytest.mark.parametrize("character", ["\x00", "\x0b", "\x1f", "\ufffe", "\ud800"])
def test_characters_xml_cannot_hold_are_refused_in_french(tmp_path: Path, character: str) -> None:
    text = tmp_path / "note.txt"
    text.write_text("note\n", encoding="utf-8")
    described = packaging.describe_file(text, f"note{character}.txt", identify=False)
    unit = ArchiveUnitSpec(title="X", files=((described, "BinaryMaster_1"),))
    spec = TransferSpec("SIP-1", None, Agency("AD37"), Agency("M"), Agency("M"), Agency("M"), None, (unit,), NOW)

    with pytest.raises(SedaError, match="Caractère interdit en XML"):
        build_manifest(spec)
