"""``socle archive verify`` and ``inspect`` on a file that is no zip (empty, random bytes, a zip cut short): the
reason is said in French, not in zipfile's English words."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from conftest import socle_command


def cut_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.xml", "<ArchiveTransfer/>" * 100)
    return buffer.getvalue()[:60]  # the central directory is gone


@pytest.mark.parametrize("content", [b"", os.urandom(3000), cut_zip()], ids=["empty", "random-bytes", "cut-short"])
@pytest.mark.parametrize("command", ["verify", "inspect"])
def test_a_file_that_is_no_zip_is_said_so_in_french(tmp_path: Path, command: str, content: bytes) -> None:
    package = tmp_path / "paquet.zip"
    package.write_bytes(content)
    run = socle_command("archive", command, str(package))
    assert run.returncode == 1, run.stderr
    said = run.stdout + run.stderr
    assert "Traceback" not in said and "File is not a zip file" not in said
    assert "paquet.zip" in said and "ce n'est pas un fichier zip, ou il est tronqué." in said
