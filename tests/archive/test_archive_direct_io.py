"""zipstream.SipZip writing its content entries with O_DIRECT, and through the page cache where it cannot.

The staging buffer is made small (a few blocks) so that a handful of entries cross it in every way: a header
sent before its entry ends, a header cut by the buffer's end, an entry discarded after part of it was sent.
Both paths must write the same bytes.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_archive_zip_format import DATA_DESCRIPTOR_FLAG, local_entries

from archive import packaging, zipstream
from archive.sources import folder_transfer

from conftest import missing

NOW = datetime(2026, 3, 4, 10, 30, tzinfo=UTC)
BLOCK = zipstream.ALIGNMENT


def entries_plan(stage: int) -> list[tuple[str, bytes, bool]]:
    """(name, data, discarded first) for entries that cross a `stage`-byte buffer in every way."""
    rng = random.Random(stage)
    first_name = "content/premier.bin"
    # Ends 100 bytes before the buffer's end: the next header is cut by it.
    first = rng.randbytes(stage - 30 - len(first_name) - 100)
    plan = [
        (first_name, first, False),
        ("content/" + "é" * 2_000 + ".txt", rng.randbytes(1_000), False),  # a 4 KB name: header over 2 blocks
        ("content/grand.bin", rng.randbytes(3 * stage + 1_234), False),  # header sent before the entry ends
        ("content/vide.txt", b"", False),  # no data: the header alone
        ("content/repris.bin", rng.randbytes(2 * stage + 77), True),  # discarded after part of it was sent
        ("content/petit-repris.bin", rng.randbytes(50), True),  # discarded while all in the buffer
    ]
    plan += [(f"content/piece-{number}.bin", rng.randbytes(rng.randrange(1, stage)), False) for number in range(20)]
    return plan


def write_plan(
    folder: Path, plan: list[tuple[str, bytes, bool]], *, direct: bool = True, insert_range: bool = True
) -> tuple[Path, zipstream.SipZip]:
    """The package of `plan` in `folder`; a discarded entry is first written with other bytes, then again."""
    work = folder / "travail"
    work.mkdir()
    manifest = work / "manifest.xml"
    manifest.write_bytes(b"<ArchiveTransfer/>\n" * 100)
    sip = zipstream.SipZip(folder / "sip.zip", work, direct=direct, insert_range=insert_range)
    try:
        for name, data, discarded in plan:
            if discarded:
                sip.begin(name, NOW, zipfile.ZIP_DEFLATED, len(data))
                for start in range(0, len(data), 7_000):
                    sip.write(data[start : start + 7_000][::-1])
                sip.discard()
                # What was written of it is dropped (a first block tried at offset 0 may remain).
                assert os.fstat(sip.fd).st_size <= max(sip.position, BLOCK)
            sip.begin(name, NOW, zipfile.ZIP_STORED, len(data))
            for start in range(0, len(data), 10_000):
                sip.write(data[start : start + 10_000])
            crc = zlib.crc32(data)
            sip.end(crc, len(data), len(data))
        sip.finish(manifest, NOW)
    except BaseException:
        sip.abort()
        raise
    return folder / "sip.zip", sip


def check_package(package: Path, plan: list[tuple[str, bytes, bool]]) -> None:
    entries = local_entries(package)  # a streaming reader's walk: every header patched, data where it says
    assert [entry.name for entry in entries] == ["manifest.xml"] + [name for name, _, _ in plan]
    assert all(entry.flags & DATA_DESCRIPTOR_FLAG == 0 for entry in entries)
    with zipfile.ZipFile(package) as archive:
        assert archive.testzip() is None
        for (name, data, _), entry in zip(plan, entries[1:], strict=True):
            assert archive.read(name) == data
            assert (entry.crc, entry.compressed, entry.size) == (zlib.crc32(data), len(data), len(data))
    # Info-ZIP's unzip: an independent reader (installed by `make system-deps`).
    if shutil.which("unzip") is None:
        missing("unzip absent (paquet Debian unzip)")
    tested = subprocess.run(["unzip", "-tq", str(package)], capture_output=True, text=True, check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.fixture
def shm_folder() -> Iterator[Path]:
    if not Path("/dev/shm").is_dir():
        missing("pas de /dev/shm (système de fichiers en mémoire)")
    folder = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="socle-direct-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def refuse_direct(monkeypatch: pytest.MonkeyPatch, *, on_open: bool) -> None:
    """Make O_DIRECT fail with EINVAL, at open or at the first write, as some file systems do."""
    real_open, real_pwrite = os.open, os.pwrite
    direct_fds: set[int] = set()

    def fake_open(path: str | os.PathLike[str], flags: int, *args: int, **kwargs: int) -> int:
        if flags & os.O_DIRECT and on_open:
            raise OSError(errno.EINVAL, "Invalid argument")
        fd = real_open(path, flags, *args, **kwargs)
        if flags & os.O_DIRECT:
            direct_fds.add(fd)
        return fd

    def fake_pwrite(fd: int, data: bytes, offset: int) -> int:
        if fd in direct_fds:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "pwrite", fake_pwrite)


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def files_open_in(folder: Path) -> list[str]:
    links = []
    for fd in open_fds():
        try:
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    return [link for link in links if link.startswith(str(folder))]


# --- the same bytes on both paths -------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", [BLOCK, 16 * BLOCK])
def test_direct_and_buffered_paths_write_the_same_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: int
) -> None:
    monkeypatch.setattr(zipstream, "STAGE_SIZE", stage)
    plan = entries_plan(stage)
    (tmp_path / "direct").mkdir()
    (tmp_path / "tampon").mkdir()

    direct, direct_sip = write_plan(tmp_path / "direct", plan)
    buffered, buffered_sip = write_plan(tmp_path / "tampon", plan, direct=False)

    assert direct_sip.direct_io  # /tmp is ext4 here: a file system that takes O_DIRECT
    assert not buffered_sip.direct_io
    assert direct_sip.shifted_by_copy == buffered_sip.shifted_by_copy
    check_package(direct, plan)
    assert direct.read_bytes() == buffered.read_bytes()


def test_headers_patched_behind_slow_buffer_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full buffer is written by the writing thread; the header blocks patched meanwhile must land after it,
    never under it (the buffer's old copy of a header holds a zero CRC). Buffer writes are slowed down so that
    a patch written at once, or by another thread, would be overwritten."""
    monkeypatch.setattr(zipstream, "STAGE_SIZE", 4 * BLOCK)
    plan = entries_plan(4 * BLOCK)
    (tmp_path / "direct").mkdir()
    (tmp_path / "tampon").mkdir()
    buffered, _ = write_plan(tmp_path / "tampon", plan, direct=False)
    real_pwrite = os.pwrite

    def slow_pwrite(fd: int, data: memoryview, offset: int) -> int:
        if len(data) == 4 * BLOCK:  # a whole buffer, not a header's blocks
            time.sleep(0.02)
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", slow_pwrite)

    direct, sip = write_plan(tmp_path / "direct", plan)

    assert sip.direct_io
    check_package(direct, plan)
    assert direct.read_bytes() == buffered.read_bytes()
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("sip-writer")]


@pytest.mark.parametrize("insert_range", [True, False])
@pytest.mark.parametrize("plan", [[], [("content/a.txt", b"abc", False)]], ids=["sans entrée", "une entrée"])
def test_a_small_package_is_cut_to_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plan: list[tuple[str, bytes, bool]], insert_range: bool
) -> None:
    """The last block goes out padded (and the first write tried a block at offset 0): the file is cut back
    to the entries' end before finish() puts the manifest in front."""
    (tmp_path / "direct").mkdir()
    (tmp_path / "tampon").mkdir()
    seen: list[tuple[int, int]] = []  # (file size, position) when finish() starts on the file
    for method in ("_insert_in_front", "_copy_behind"):
        real = getattr(zipstream.SipZip, method)

        def recording(sip: zipstream.SipZip, *args: object, real: Callable[..., int | None] = real) -> int | None:
            seen.append((os.fstat(sip.fd).st_size, sip.position))
            return real(sip, *args)

        monkeypatch.setattr(zipstream.SipZip, method, recording)

    direct, sip = write_plan(tmp_path / "direct", plan, insert_range=insert_range)
    buffered, _ = write_plan(tmp_path / "tampon", plan, direct=False, insert_range=insert_range)

    assert sip.direct_io
    assert seen and all(size == position for size, position in seen)
    check_package(direct, plan)
    assert direct.read_bytes() == buffered.read_bytes()


def test_manifest_copied_in_front_after_direct_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without INSERT_RANGE the entries are read back (copy_file_range) from what O_DIRECT wrote."""
    monkeypatch.setattr(zipstream, "STAGE_SIZE", 2 * BLOCK)
    plan = entries_plan(2 * BLOCK)
    (tmp_path / "direct").mkdir()
    (tmp_path / "tampon").mkdir()

    direct, sip = write_plan(tmp_path / "direct", plan, insert_range=False)
    buffered, _ = write_plan(tmp_path / "tampon", plan, direct=False, insert_range=False)

    assert sip.direct_io and sip.shifted_by_copy
    check_package(direct, plan)
    assert direct.read_bytes() == buffered.read_bytes()


def test_tmpfs_package_is_the_same(tmp_path: Path, shm_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tmpfs takes O_DIRECT since Linux 6.6 and refused it before: either way, the same bytes."""
    monkeypatch.setattr(zipstream, "STAGE_SIZE", 2 * BLOCK)
    plan = entries_plan(2 * BLOCK)

    on_tmpfs, _ = write_plan(shm_folder, plan, insert_range=False)
    on_ext4, _ = write_plan(tmp_path, plan, direct=False, insert_range=False)

    check_package(on_tmpfs, plan)
    assert on_tmpfs.read_bytes() == on_ext4.read_bytes()


# --- the fallback -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("on_open", [True, False], ids=["refusée à l'ouverture", "refusée à la première écriture"])
def test_refused_o_direct_falls_back_to_the_page_cache(
    tmp_path: Path, shm_folder: Path, monkeypatch: pytest.MonkeyPatch, on_open: bool
) -> None:
    monkeypatch.setattr(zipstream, "STAGE_SIZE", 2 * BLOCK)
    plan = entries_plan(2 * BLOCK)
    (tmp_path / "direct").mkdir()
    expected, _ = write_plan(tmp_path / "direct", plan)
    refuse_direct(monkeypatch, on_open=on_open)

    package, sip = write_plan(shm_folder, plan)

    monkeypatch.undo()
    assert not sip.direct_io
    assert files_open_in(shm_folder) == []  # the refused descriptor is closed
    check_package(package, plan)
    assert [(entry.name, entry.crc, entry.size) for entry in local_entries(package)[1:]] == [
        (entry.name, entry.crc, entry.size) for entry in local_entries(expected)[1:]
    ]
    # The entries' bytes, after the manifest entry (in place on ext4, copied on tmpfs): the same.
    with zipfile.ZipFile(package) as archive, zipfile.ZipFile(expected) as reference:
        shift = archive.getinfo(plan[0][0]).header_offset - reference.getinfo(plan[0][0]).header_offset
        start = reference.getinfo(plan[0][0]).header_offset
        end = reference.start_dir
    assert package.read_bytes()[start + shift : end + shift] == expected.read_bytes()[start:end]


# --- errors -------------------------------------------------------------------------------------------------------


def failing_direct_writes(monkeypatch: pytest.MonkeyPatch, after: int, result: Callable[[int], int]) -> list[int]:
    """Direct writes after the first `after` ones return `result(length)` bytes (or raise, from result); the
    list returned counts the direct writes."""
    real_open, real_pwrite = os.open, os.pwrite
    direct_fds: set[int] = set()
    count = [0]

    def fake_open(path: str | os.PathLike[str], flags: int, *args: int, **kwargs: int) -> int:
        fd = real_open(path, flags, *args, **kwargs)
        if flags & os.O_DIRECT:
            direct_fds.add(fd)
        return fd

    def fake_pwrite(fd: int, data: memoryview, offset: int) -> int:
        if fd in direct_fds:
            count[0] += 1
            if count[0] > after:
                return result(len(data))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "pwrite", fake_pwrite)
    return count


def disk_full(length: int) -> int:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    "result", [lambda length: length // 2 + 1, lambda length: 0, disk_full], ids=["courte", "nulle", "ENOSPC"]
)
@pytest.mark.parametrize("last", [False, True], ids=["en cours", "dernière"])
def test_a_failed_direct_write_raises_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, result: Callable[[int], int], last: bool
) -> None:
    """A write fails after the probe and three buffers, or the very last one (finish() sends the rest)."""
    plan = entries_plan(2 * BLOCK)
    after = 4
    if last:
        (tmp_path / "essai").mkdir()
        with monkeypatch.context() as counting:
            counting.setattr(zipstream, "STAGE_SIZE", 2 * BLOCK)
            count = failing_direct_writes(counting, after=1_000_000, result=result)
            write_plan(tmp_path / "essai", plan)
        shutil.rmtree(tmp_path / "essai")
        after = count[0] - 1
    monkeypatch.setattr(zipstream, "STAGE_SIZE", 2 * BLOCK)
    failing_direct_writes(monkeypatch, after=after, result=result)

    with pytest.raises(OSError) as raised:
        write_plan(tmp_path, plan)

    assert raised.value.errno == errno.ENOSPC
    assert sorted(path.name for path in tmp_path.iterdir()) == ["travail"]
    assert files_open_in(tmp_path) == []


def test_a_build_whose_direct_writes_fail_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zipstream, "STAGE_SIZE", 2 * BLOCK)
    folder = tmp_path / "versement"
    folder.mkdir()
    for number in range(6):
        (folder / f"piece-{number}.bin").write_bytes(random.Random(number).randbytes(30_000))
    out = tmp_path / "sortie"
    out.mkdir()
    failing_direct_writes(monkeypatch, after=4, result=disk_full)
    spec, plan = folder_transfer(folder, archival_agency="AD37", transferring_agency="MAIRIE-01")

    # The disk's failure, not the file's: never « Fichier illisible ».
    with pytest.raises(OSError) as raised:
        packaging.build_sip(spec, plan, out / "sip.zip", identify=False)
    assert raised.value.errno == errno.ENOSPC

    assert list(out.iterdir()) == []
    # No descriptor on the package's temporary file (build_sip's spools, in its work folder, wait for the GC).
    assert not [link for link in files_open_in(out) if link.endswith((".part", ".part (deleted)"))]


def test_abort_closes_the_direct_descriptor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zipstream, "STAGE_SIZE", 2 * BLOCK)
    work = tmp_path / "travail"
    work.mkdir()
    sip = zipstream.SipZip(tmp_path / "sip.zip", work)
    sip.begin("content/BDO1_a.bin", NOW, zipfile.ZIP_STORED, 20_000)
    sip.write(random.Random(1).randbytes(20_000))  # several buffers sent, the header among them
    assert sip.direct_io

    sip.abort()

    # Only the package's descriptors: the worker's other threads (servers of other tests) open and close theirs.
    assert files_open_in(tmp_path) == []
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("sip-writer")]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["travail"]


# --- through build_sip ----------------------------------------------------------------------------------------------


def test_build_stores_after_a_failed_deflate_trial_on_the_direct_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """_EntryWriter._store_instead discards an entry whose deflated bytes left the buffer already."""
    monkeypatch.setattr(zipstream, "STAGE_SIZE", 4 * BLOCK)
    monkeypatch.setattr(packaging, "CHUNK_SIZE", 4096)
    monkeypatch.setattr(packaging, "PROBE_GAIN", 2.0)  # every trial says deflate
    sips: list[zipstream.SipZip] = []

    class Recorded(zipstream.SipZip):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            sips.append(self)

    monkeypatch.setattr(packaging, "SipZip", Recorded)
    folder = tmp_path / "versement"
    folder.mkdir()
    noise = random.Random(6).randbytes(200_000)  # 12 buffers of deflated bytes sent, then discarded
    (folder / "bruit.bin").write_bytes(noise)
    (folder / "texte.txt").write_text("Budget primitif 2026.\n" * 20_000, encoding="utf-8")
    packages = {}
    for name, direct in (("direct", True), ("tampon", False)):
        monkeypatch.setattr(zipstream, "_open_direct", zipstream._open_direct if direct else lambda path: None)
        spec, plan = folder_transfer(
            folder, archival_agency="AD37", transferring_agency="MAIRIE-01", message_identifier="SIP-1", now=NOW
        )
        packages[name] = tmp_path / f"{name}.zip"
        packaging.build_sip(spec, plan, packages[name], identify=False)

    assert [sip.direct_io for sip in sips] == [True, False]
    entries = local_entries(packages["direct"])
    methods = {entry.name.rsplit("_", 1)[-1]: entry.method for entry in entries[1:]}
    assert methods == {"bruit.bin": zipfile.ZIP_STORED, "texte.txt": zipfile.ZIP_DEFLATED}
    with zipfile.ZipFile(packages["direct"]) as archive:
        assert archive.testzip() is None
        assert archive.read(entries[1].name if entries[1].name.endswith("bruit.bin") else entries[2].name) == noise
    assert packaging.verify_sip(packages["direct"]) == []
    # The same entries, header for header, as through the page cache (the manifest's date aside).
    assert entries[1:] == local_entries(packages["tampon"])[1:]
    with zipfile.ZipFile(packages["direct"]) as archive, zipfile.ZipFile(packages["tampon"]) as reference:
        assert archive.read("manifest.xml") == reference.read("manifest.xml")
        start = archive.infolist()[1].header_offset
        assert start == reference.infolist()[1].header_offset
        assert archive.start_dir == reference.start_dir
        end = archive.start_dir
    assert packages["direct"].read_bytes()[start:end] == packages["tampon"].read_bytes()[start:end]
