"""`socle archive build` at its edges: an existing output, the CSV as output, identifiers the SAE could not
read, a very long output name, and a build stopped by a signal (nothing left behind, even when the signal
lands right after a temporary file is created)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_archive_sources import build

from archive import packaging
from archive.sources import folder_transfer

from conftest import SHARED_SEDA

AGENCIES = ("--archival-agency", "AD075", "--transferring-agency", "MAIRIE-01")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "versement"
    root.mkdir()
    (root / "note.txt").write_text("Note de service\n", encoding="utf-8")
    return root


def test_an_existing_package_is_replaced_only_when_asked(folder: Path, tmp_path: Path) -> None:
    output = tmp_path / "paquet.zip"
    output.write_bytes(b"un paquet d'hier")

    refused = build(str(folder), *AGENCIES, "--output", str(output))

    assert refused.exit_code != 0
    assert "existe déjà" in refused.output and "--overwrite" in refused.output, refused.output
    assert output.read_bytes() == b"un paquet d'hier"
    replaced = build(str(folder), *AGENCIES, "--output", str(output), "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert output.read_bytes()[:4] == b"PK\x03\x04"


def test_the_csv_given_is_never_the_output(folder: Path, tmp_path: Path) -> None:
    csv = tmp_path / "metadonnees.csv"
    csv.write_text("ID,ParentID,File,Content.Title\n1,,note.txt,Note\n", encoding="utf-8")

    refused = build(str(folder), *AGENCIES, "--csv", str(csv), "--output", str(csv), "--overwrite")

    assert refused.exit_code != 0 and "remplacerait le CSV" in refused.output, refused.output
    assert csv.read_text(encoding="utf-8").startswith("ID,ParentID")


@pytest.mark.parametrize("agency", ["x" * 101, "AD\x01075", "   "])
def test_an_agency_identifier_the_sae_could_not_read_is_refused(folder: Path, tmp_path: Path, agency: str) -> None:
    output = tmp_path / "paquet.zip"
    refused = build(
        str(folder), "--archival-agency", agency, "--transferring-agency", "MAIRIE-01", "--output", str(output)
    )
    assert refused.exit_code != 0 and "--archival-agency" in refused.output, refused.output
    assert not output.exists()


def test_a_long_output_name_leaves_room_for_the_temporary_files(folder: Path, tmp_path: Path) -> None:
    output = tmp_path / ("p" * 245 + ".zip")  # 249 bytes: legal, but not with a prefix and a random suffix
    result = build(str(folder), *AGENCIES, "--output", str(output))
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([output.name, "versement"])


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_build_stopped_by_a_signal_leaves_nothing(tmp_path: Path, stop: signal.Signals) -> None:
    """A real process: the package and its work folder are temporary files beside the output until the end."""
    folder = tmp_path / "versement"
    folder.mkdir()
    for number in range(40):
        (folder / f"piece-{number:02}.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    out = tmp_path / "sortie"
    out.mkdir()
    environment = {**os.environ, "SOCLE_SEDA_SCHEMAS": str(SHARED_SEDA)}
    command = [sys.executable, "-m", "socle", "archive", "build", str(folder), *AGENCIES]
    process = subprocess.Popen(
        [*command, "--output", str(out / "paquet.zip")], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while not any(out.iterdir()) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)  # the temporary package appears: the build is under way
    assert process.poll() is None, "the build ended before it could be stopped"
    process.send_signal(stop)
    _, error = process.communicate(timeout=60)

    assert process.returncode == 128 + stop, error.decode()
    assert "Construction interrompue" in error.decode() and "Traceback" not in error.decode(), error.decode()
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("created", ["the work folder", "the temporary package"])
def test_a_signal_right_after_a_temporary_file_is_created_leaves_nothing(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, created: str
) -> None:
    """The signal lands between the system call that creates the temporary and the line that keeps its name
    (a handler raises at the first bytecode boundary after the call): what the test above once hit in CI."""
    out = tmp_path / "sortie"
    out.mkdir()
    real_mkdir, real_open = os.mkdir, os.open

    def mkdir_then_signal(path: str | os.PathLike[str], *args: object, **kwargs: object) -> None:
        real_mkdir(path, *args, **kwargs)  # type: ignore[arg-type]
        if created == "the work folder" and Path(path).parent == out:
            raise SystemExit(128 + signal.SIGTERM)

    def open_then_signal(path: str | os.PathLike[str], flags: int, *args: object, **kwargs: object) -> int:
        fd = real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]
        if created == "the temporary package" and str(path).endswith(".part") and flags & os.O_CREAT:
            raise SystemExit(128 + signal.SIGTERM)
        return fd

    monkeypatch.setattr(os, "mkdir", mkdir_then_signal)
    monkeypatch.setattr(os, "open", open_then_signal)
    spec, plan = folder_transfer(folder, archival_agency="AD075", transferring_agency="MAIRIE-01")

    with pytest.raises(SystemExit):
        packaging.build_sip(spec, plan, out / "paquet.zip", identify=False)
    assert list(out.iterdir()) == []
