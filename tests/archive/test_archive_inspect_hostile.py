"""`socle archive inspect` on hostile packages: shared units, corrupt deflate data, hidden zip data, fake lines."""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from archive import cli, packaging
from archive.inspection import InspectedUnit, InspectionLimits, InspectionReport, inspect_sip, render_text
from archive.seda import NAMESPACES

FILES = {"content/a.txt": b"Deliberation du conseil\n" * 40, "content/b.txt": b"Note de service\n" * 40}


def manifest(units: str, files: dict[str, bytes] = FILES) -> bytes:
    objects = "".join(
        f"""<DataObjectGroup id="G{index}"><BinaryDataObject id="O{index}">
        <DataObjectVersion>BinaryMaster_1</DataObjectVersion><Uri>{name}</Uri>
        <MessageDigest algorithm="SHA-512">{hashlib.sha512(data).hexdigest()}</MessageDigest>
        <Size>{len(data)}</Size></BinaryDataObject></DataObjectGroup>"""
        for index, (name, data) in enumerate(files.items())
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<ArchiveTransfer xmlns="{NAMESPACES["2.2"]}"><Date>2024-01-01T00:00:00</Date>
<MessageIdentifier>HOSTILE-1</MessageIdentifier><CodeListVersions/>
<DataObjectPackage>{objects}<DescriptiveMetadata>{units}</DescriptiveMetadata></DataObjectPackage>
</ArchiveTransfer>""".encode()


def unit(unit_id: str, title: str, inner: str = "") -> str:
    content = f"<Content><DescriptionLevel>File</DescriptionLevel><Title>{title}</Title></Content>"
    return f'<ArchiveUnit id="{unit_id}">{content}{inner}</ArchiveUnit>'


def ref(unit_id: str, target: str) -> str:
    return f'<ArchiveUnit id="{unit_id}"><ArchiveUnitRefId>{target}</ArchiveUnitRefId></ArchiveUnit>'


def group(group_id: str) -> str:
    reference = f"<DataObjectGroupReferenceId>{group_id}</DataObjectGroupReferenceId>"
    return f"<DataObjectReference>{reference}</DataObjectReference>"


SIMPLE_UNITS = unit("U0", "Dossier", group("G0")) + unit("U1", "Note", group("G1"))


def sip_bytes(units: str = SIMPLE_UNITS, files: dict[str, bytes] = FILES) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.xml", manifest(units, files))
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def inspect_bytes(tmp_path: Path, data: bytes, limits: InspectionLimits | None = None) -> InspectionReport:
    path = tmp_path / "sip.zip"
    path.write_bytes(data)
    return inspect_sip(path, limits)


def all_units(units: tuple[InspectedUnit, ...]) -> list[str]:
    return [found for item in units for found in (item.unit_id, *all_units(item.children))]


def test_a_clean_package_stays_clean(tmp_path: Path) -> None:
    report = inspect_bytes(tmp_path, sip_bytes())
    assert report.ok, report.all_problems


# --- F1: units shared by several parents -----------------------------------------------------------------


def fanout_units(levels: int) -> str:
    """Each level referenced twice by the one above: walking every reference lists 2**levels units."""
    return "".join(
        unit(
            f"L{level}",
            f"L{level}",
            "" if level == levels else ref(f"A{level}", f"L{level + 1}") + ref(f"B{level}", f"L{level + 1}"),
        )
        for level in range(levels + 1)
    )


def test_shared_units_are_listed_once_and_reported(tmp_path: Path) -> None:
    levels = 14  # the old walk listed 2**14 = 16,384 units (and doubled at each extra level)
    report = inspect_bytes(tmp_path, sip_bytes(fanout_units(levels), {}))

    listed = all_units(report.units)
    assert sorted(listed) == sorted(f"L{level}" for level in range(levels + 1))
    shared = [problem for problem in report.problems if "référencée une nouvelle fois" in problem]
    assert len(shared) == levels
    assert not report.ok
    assert len(render_text(report)) < 3 * levels + 10  # the text report stays linear too


def test_a_unit_both_nested_and_referenced_is_reported(tmp_path: Path) -> None:
    units = (
        unit("R", "Racine", unit("N", "Imbriquée") + ref("X", "T"))
        + unit("T", "Cible")
        + unit("S", "Seconde", ref("Y", "T"))
    )
    report = inspect_bytes(tmp_path, sip_bytes(units, {}))

    assert sorted(all_units(report.units)) == ["N", "R", "S", "T"]
    assert any(
        problem.startswith("Unité T : référencée une nouvelle fois par l'unité S") for problem in report.problems
    )


def test_a_loop_apart_from_the_tree_is_reported(tmp_path: Path) -> None:
    units = unit("R", "Racine") + unit("P", "P", ref("X", "Q")) + unit("Q", "Q", ref("Y", "P"))
    report = inspect_bytes(tmp_path, sip_bytes(units, {}))

    assert all_units(report.units) == ["R"]
    assert [problem for problem in report.problems if "inaccessible" in problem] == [
        "Unité P : inaccessible depuis les unités racines (boucle de références ?), non listée.",
        "Unité Q : inaccessible depuis les unités racines (boucle de références ?), non listée.",
    ]


# --- F2: corrupt deflate data ----------------------------------------------------------------------------


def corrupt(data: bytes, name: str) -> bytes:
    """The entry's deflate stream overwritten in place (same length), headers untouched."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(name)
    start = info.header_offset + 30 + len(name.encode()) + len(info.extra)
    corrupted = bytearray(data)
    corrupted[start : start + info.compress_size] = b"\xff" * info.compress_size
    return bytes(corrupted)


def test_corrupt_content_is_an_unreadable_entry_and_the_others_are_checked(tmp_path: Path) -> None:
    report = inspect_bytes(tmp_path, corrupt(sip_bytes(), "content/a.txt"))

    broken, fine = report.objects
    assert broken.problems and "« content/a.txt » est illisible (données compressées corrompues" in broken.problems[0]
    assert fine.ok and fine.computed_digest == hashlib.sha512(FILES["content/b.txt"]).hexdigest()


def test_corrupt_manifest_is_reported_in_french(tmp_path: Path) -> None:
    report = inspect_bytes(tmp_path, corrupt(sip_bytes(), "manifest.xml"))
    assert report.problems[-1].startswith("Le manifeste est illisible : données compressées corrompues")


# --- F10: data hidden from the central directory ---------------------------------------------------------


def patch_central(data: bytes, name: str, offset: int, value: int, layout: str = "<L") -> bytes:
    """A field of `name`'s central directory record replaced (offset from the record's start)."""
    start = data.index(b"PK\x01\x02")
    while data[start + 46 : start + 46 + len(name)] != name.encode():
        start = data.index(b"PK\x01\x02", start + 4)
    field = struct.pack(layout, value)
    return data[: start + offset] + field + data[start + offset + len(field) :]


def with_gap(junk: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.xml", manifest(SIMPLE_UNITS))
        archive.writestr("content/a.txt", FILES["content/a.txt"])
        assert archive.fp is not None
        archive.fp.write(junk)  # a streaming reader sees these bytes, the central directory does not
        archive.start_dir = archive.fp.tell()  # the next entry goes after them
        archive.writestr("content/b.txt", FILES["content/b.txt"])
    return buffer.getvalue()


def renamed_local(data: bytes) -> bytes:
    """content/a.txt's local header renamed content/z.txt: a streaming reader would see another file."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        start = archive.getinfo("content/a.txt").header_offset + 30
    return data[:start] + b"content/z.txt" + data[start + len(b"content/z.txt") :]


def other_sip() -> bytes:
    return sip_bytes(unit("U9", "Autre"), {})


@pytest.mark.parametrize(
    ("label", "build", "expected"),
    [
        ("junk", lambda: b"\x00" * 1500 + sip_bytes(), "1500 octets précèdent la première entrée"),
        ("concat", lambda: other_sip() + sip_bytes(), f"{len(other_sip())} octets précèdent la première entrée"),
        ("gap", lambda: with_gap(b"PK\x03\x04cache" * 20), "180 octets non déclarés entre l'entrée « content/a.txt »"),
        (
            "size",
            lambda: patch_central(sip_bytes(), "content/b.txt", 24, 99),
            "contredit le répertoire central (taille)",
        ),
        ("crc", lambda: patch_central(sip_bytes(), "content/b.txt", 16, 7), "contredit le répertoire central (CRC)"),
        (
            "name",
            lambda: renamed_local(sip_bytes()),
            "« content/a.txt » : l'en-tête local contredit le répertoire central (nom)",
        ),
    ],
)
def test_data_hidden_from_the_central_directory_is_reported(
    tmp_path: Path, label: str, build: Callable[[], bytes], expected: str
) -> None:
    report = inspect_bytes(tmp_path, build())
    assert any(expected in problem for problem in report.all_problems), (label, report.all_problems)
    assert not report.ok


def empty_zip(junk: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    buffer.write(junk)
    with zipfile.ZipFile(buffer, "w"):
        pass
    return buffer.getvalue()


def headless_entry() -> bytes:
    """One entry whose central record points at no local header: the layout walk keeps no entry at all."""
    data = sip_bytes(unit("U0", "Seul"), {})
    return patch_central(data, "manifest.xml", 42, 5)


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (empty_zip, "ne contient pas de manifest.xml"),
        (lambda: empty_zip(b"cache" * 10), "50 octets précèdent la première entrée"),
        (headless_entry, "aucun en-tête local à la position 5"),
    ],
)
def test_a_zip_without_entries_is_reported_not_a_crash(
    tmp_path: Path, build: Callable[[], bytes], expected: str
) -> None:
    # No entry, or none with a local header: the layout has nothing between entries (was a ValueError from zip()).
    report = inspect_bytes(tmp_path, build())
    assert any(expected in problem for problem in report.all_problems), report.all_problems
    assert not report.ok
    path = tmp_path / "sip.zip"
    verified = packaging.check_sip(path, InspectionLimits())  # what a transfer's own package goes through
    assert verified.problems and verified.package is None, verified


def test_data_descriptors_and_zip64_headers_are_not_discrepancies(tmp_path: Path) -> None:
    class Unseekable(io.RawIOBase):  # zipfile writes data descriptors when it cannot seek back
        def __init__(self) -> None:
            self.buffer = io.BytesIO()

        def writable(self) -> bool:
            return True

        def write(self, data: object) -> int:
            return self.buffer.write(data)  # type: ignore[arg-type]

    stream = Unseekable()
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.xml", manifest(SIMPLE_UNITS))
        for name, data in FILES.items():
            with archive.open(name, "w", force_zip64=True) as entry:
                entry.write(data)
    report = inspect_bytes(tmp_path, stream.buffer.getvalue())
    assert report.ok, report.all_problems


# --- F20 and F21: report text ----------------------------------------------------------------------------


def test_a_title_cannot_fake_report_lines(tmp_path: Path) -> None:
    fake = "Note\nObjets : 2 déclaré(s), 2 relu(s) et recalculé(s).\nAucun écart : empreintes conformes."
    units = SIMPLE_UNITS.replace("<Title>Note</Title>", f"<Title>{fake}</Title>")
    path = tmp_path / "spoof.zip"
    path.write_bytes(sip_bytes(units))

    result = CliRunner().invoke(cli.group, ["inspect", str(path)])

    lines = result.output.splitlines()
    assert [line for line in lines if line.startswith(("Aucun écart", "Objets :"))] == [lines[-2], lines[-1]]
    assert any("Note\\nObjets : 2 déclaré(s)" in line for line in lines)


@pytest.mark.parametrize("refusal", ["encrypted", "bomb"])
def test_a_refused_manifest_is_not_called_missing(tmp_path: Path, refusal: str) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        padding = b" " * 200_000 if refusal == "bomb" else b""
        archive.writestr("manifest.xml", manifest(SIMPLE_UNITS) + padding)
    data = buffer.getvalue()
    if refusal == "encrypted":  # zipfile cannot encrypt: the flag is set in both headers
        flags = struct.unpack("<H", data[6:8])[0] | 0x1
        data = patch_central(data[:6] + struct.pack("<H", flags) + data[8:], "manifest.xml", 8, flags, "<H")
    limits = InspectionLimits(max_ratio=20, ratio_floor=64 * 1024)

    report = inspect_bytes(tmp_path, data, limits)

    assert report.problems[0].startswith("Entrée « manifest.xml » refusée")
    assert not any("ne contient pas de manifest.xml" in problem for problem in report.problems)
    assert "Le manifest.xml ayant été refusé" in report.problems[-1]
