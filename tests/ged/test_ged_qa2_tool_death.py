"""An external tool of the renditions (OCRmyPDF, Ghostscript, pdftoppm…) never outlives its job.

Real process trees: a Python process that runs ``run_tool`` and is killed with SIGKILL, as a worker killed by
``kill -9`` or the OOM killer; a tool whose own child is still running when its time limit passes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ged import renditions


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie, dead but not yet reaped by its new parent, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _wait_for(condition: object, what: str, limit: float = 30.0) -> None:
    """Wait for ``condition()`` (a bound on the wait, not a measure: the test checks what happens, not when)."""
    deadline = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(what)
        time.sleep(0.05)


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            fields = stat.rpartition(")")[2].split()
            if int(fields[1]) == parent:
                found.append(int(entry.name))
    return found


def test_the_tool_dies_with_the_process_that_runs_it(tmp_path: Path) -> None:
    script = "from ged import renditions\nrenditions.run_tool(['sleep', '60'], timeout=600)\n"
    worker = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2])
    try:
        sleeping: list[int] = []
        _wait_for(lambda: sleeping.extend(_children(worker.pid)) or sleeping, "the tool never started")
        tool = sleeping[0]
        assert Path(f"/proc/{tool}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"
        worker.kill()  # SIGKILL: no Python clean-up runs in the worker
        worker.wait()
        _wait_for(lambda: not _alive(tool), "the tool outlived the process that started it")
    finally:
        worker.kill()
        worker.wait()


def test_on_timeout_the_tools_own_children_are_killed_too(tmp_path: Path) -> None:
    """OCRmyPDF starts Tesseract and Ghostscript: killing OCRmyPDF alone would leave them running. (5 s: a loaded
    machine may take more than a second to start the shell and its child.)"""
    pid_file = tmp_path / "grandchild.pid"
    with pytest.raises(renditions.RenditionFailed) as caught:
        renditions.run_tool(["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"], timeout=5)
    assert caught.value.reason == "sh : délai de 5 s dépassé"
    grandchild = int(pid_file.read_text())
    _wait_for(lambda: not _alive(grandchild), "the tool's own child outlived its time limit")


def test_a_tool_writes_its_temporary_files_in_the_jobs_work_folder(tmp_path: Path) -> None:
    """OCRmyPDF's ``ocrmypdf.io.*`` and Ghostscript's files go where the job's clean-up (or the worker's) finds them."""
    assert renditions.run_tool(["sh", "-c", 'printf %s "$TMPDIR"'], scratch=tmp_path) == str(tmp_path)
    assert renditions.run_tool(["sh", "-c", 'printf %s "${TMPDIR-unset}"']) == os.environ.get("TMPDIR", "unset")
