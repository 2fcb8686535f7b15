"""`socle archive verify` on hostile or damaged packages: refused or reported in French, never a traceback.

The packages are built here from a good one: a decompression bomb, a DOCTYPE, a ``../`` entry, corrupt deflate
data, the encrypted flag, the Deflate64 method id, no manifest; and a SEDA 2.1 package verified without --version.
"""

from __future__ import annotations

import struct
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archive import packaging, seda

from conftest import socle_command

TEXT = b"bonjour le monde\n" * 2000  # compresses well: deflated, so its deflate data can be damaged


def good_package(folder: Path, version: str = "2.2") -> Path:
    source = folder / "note.txt"
    source.write_bytes(TEXT)
    described = packaging.describe_file(source, identify=False)
    agency = seda.Agency("213700000")
    unit = seda.ArchiveUnitSpec(title="Note de service", files=((described, "BinaryMaster_1"),))
    spec = seda.TransferSpec(
        "HOSTILE-1",
        None,
        seda.Agency("AD037"),
        agency,
        agency,
        agency,
        None,
        (unit,),
        datetime(2026, 12, 1, tzinfo=UTC),
    )
    sip = folder / f"base-{version}.zip"
    packaging.write_sip(seda.build_manifest(spec, version=version), seda.sip_entries(spec), sip)
    return sip


def rewritten(
    base: Path, target: Path, replace: dict[str, bytes | None], extra: dict[str, bytes] | None = None
) -> Path:
    """A copy of `base`, every entry deflated; `replace` gives new bytes (None drops the entry)."""
    with zipfile.ZipFile(base) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as copy:
        for info in source.infolist():
            data = replace.get(info.filename, source.read(info))
            if data is not None:
                copy.writestr(info.filename, data)
        for name, data in (extra or {}).items():
            copy.writestr(name, data)
    return target


def entry_names(sip: Path) -> tuple[str, str]:
    with zipfile.ZipFile(sip) as archive:
        content = next(name for name in archive.namelist() if name != "manifest.xml")
    return "manifest.xml", content


def patched(sip: Path, name: str, *, flags: int = 0, method: int | None = None, damage: bool = False) -> Path:
    """Set general-purpose flags / the method id of entry `name` in its local and central headers, or damage
    its compressed data, as a hostile producer would."""
    data = bytearray(sip.read_bytes())
    with zipfile.ZipFile(sip) as archive:
        info = archive.getinfo(name)
    local = info.header_offset
    central = 0
    offsets = [(local, 6, 8)]
    while (central := data.find(b"PK\x01\x02", central)) >= 0:
        name_length = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46 : central + 46 + name_length] == name.encode():
            offsets.append((central, 8, 10))
        central += 4
    for start, flag_at, method_at in offsets:
        struct.pack_into("<H", data, start + flag_at, struct.unpack_from("<H", data, start + flag_at)[0] | flags)
        if method is not None:
            struct.pack_into("<H", data, start + method_at, method)
    if damage:
        name_length, extra_length = struct.unpack_from("<HH", data, local + 26)
        begin = local + 30 + name_length + extra_length
        data[begin + 3 : begin + 30] = b"\xff" * 27
    target = sip.with_name(f"patched-{sip.name}")
    target.write_bytes(bytes(data))
    return target


def verify(sip: Path, *options: str) -> subprocess.CompletedProcess[str]:
    done: subprocess.CompletedProcess[str] = socle_command("archive", "verify", str(sip), *options)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def refused(sip: Path, expected: str) -> str:
    done = verify(sip)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert expected in output, output
    assert "conforme" not in done.stdout.lower().replace("non conforme", "")
    return output


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return rewritten(good_package(tmp_path), tmp_path / "deflated.zip", {})


def test_the_good_package_passes(base: Path) -> None:
    done = verify(base)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Version SEDA 2.2, lue dans l'espace de noms du manifeste." in done.stdout


def test_a_manifest_bomb_is_refused_before_reading(base: Path, tmp_path: Path) -> None:
    manifest = zipfile.ZipFile(base).read("manifest.xml")
    declaration, _, rest = manifest.partition(b"?>")
    bomb = declaration + b"?>" + b" " * (4 * 1024 * 1024) + rest  # 4 MB of blanks deflate to about 4 KB
    output = refused(rewritten(base, tmp_path / "bomb.zip", {"manifest.xml": bomb}), "bombe de décompression")
    assert "Entrée « manifest.xml » refusée" in output


def test_a_content_bomb_is_refused_not_decompressed(base: Path, tmp_path: Path) -> None:
    _, content = entry_names(base)
    sip = rewritten(base, tmp_path / "bomb.zip", {content: b"\0" * (4 * 1024 * 1024)})
    output = refused(sip, "bombe de décompression")
    assert f"Entrée « {content} » refusée" in output
    assert "empreinte" not in output  # never read, so never digested


@pytest.mark.parametrize(
    "doctype",
    [
        b'<!DOCTYPE ArchiveTransfer [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
        b'<!DOCTYPE ArchiveTransfer [<!ENTITY x "valeur interne">]>',
    ],
    ids=["external-entity", "internal-entity"],
)
def test_a_doctype_is_refused(base: Path, tmp_path: Path, doctype: bytes) -> None:
    manifest = zipfile.ZipFile(base).read("manifest.xml")
    declaration, _, rest = manifest.partition(b"?>")
    hostile = declaration + b"?>" + doctype + rest.replace(b"<Comment>", b"<Comment>&x;", 1)
    hostile = hostile.replace(b"<Title>", b"<Title>&x;", 1)
    refused(rewritten(base, tmp_path / "doctype.zip", {"manifest.xml": hostile}), "DTD")


def test_an_entry_climbing_out_is_refused(base: Path, tmp_path: Path) -> None:
    _, content = entry_names(base)
    archive = zipfile.ZipFile(base)
    manifest = archive.read("manifest.xml").replace(f"<Uri>{content}</Uri>".encode(), b"<Uri>../../etc/passwd</Uri>")
    sip = rewritten(base, tmp_path / "climb.zip", {"manifest.xml": manifest, content: None}, {"../../etc/passwd": TEXT})
    refused(sip, "Entrée « ../../etc/passwd » refusée : chemin absolu ou sortant du paquet")


@pytest.mark.parametrize("which", [0, 1], ids=["manifest", "content"])
def test_corrupt_deflate_data_is_reported(base: Path, which: int) -> None:
    name = entry_names(base)[which]
    output = refused(patched(base, name, damage=True), "données compressées corrompues")
    assert "illisible" in output


@pytest.mark.parametrize("which", [0, 1], ids=["manifest", "content"])
def test_an_encrypted_entry_is_refused(base: Path, which: int) -> None:
    name = entry_names(base)[which]
    refused(patched(base, name, flags=0x1), f"Entrée « {name} » refusée : entrée chiffrée")


@pytest.mark.parametrize("which", [0, 1], ids=["manifest", "content"])
def test_deflate64_is_reported_unreadable(base: Path, which: int) -> None:
    name = entry_names(base)[which]
    refused(patched(base, name, method=9), "illisible")


def test_a_missing_manifest_is_said_in_french(base: Path, tmp_path: Path) -> None:
    output = refused(rewritten(base, tmp_path / "none.zip", {"manifest.xml": None}), "pas de manifest.xml")
    assert "There is no item" not in output


def test_the_version_comes_from_the_manifest(tmp_path: Path) -> None:
    done = verify(good_package(tmp_path, "2.1"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Version SEDA 2.1, lue dans l'espace de noms du manifeste." in done.stdout
    assert "Paquet conforme au schéma" in done.stdout


def test_schema_messages_give_their_location_once(base: Path, tmp_path: Path) -> None:
    manifest = zipfile.ZipFile(base).read("manifest.xml").replace(b"<Title>", b"<Intrus/><Title>", 1)
    done = verify(rewritten(base, tmp_path / "invalid.zip", {"manifest.xml": manifest}))
    assert done.returncode == 1
    [line] = [line for line in done.stdout.splitlines() if "Intrus" in line]
    assert line.startswith("- Ligne ") and line.lower().count("ligne") == 1, line


def test_data_hidden_before_the_entries_is_refused(base: Path, tmp_path: Path) -> None:
    """Another package (or anything) in front: the central directory never sees it, a streaming reader does."""
    concatenated = tmp_path / "deux.zip"
    concatenated.write_bytes(b"PK\x03\x04" + b"\x00" * 1496 + base.read_bytes())
    refused(concatenated, "1500 octets précèdent la première entrée")
