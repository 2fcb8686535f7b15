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


def test_the_tool_and_its_own_children_die_with_the_process_that_runs_it(tmp_path: Path) -> None:
    """The worker killed by SIGKILL runs no clean-up: the kernel tells the tool's keeper, which kills the whole
    group, down to what the tool started (OCRmyPDF's Tesseract and Ghostscript)."""
    pid_file = tmp_path / "grandchild.pid"
    tool = f"sleep 60 & echo $! > {pid_file}; wait"
    script = f"from ged import renditions\nrenditions.run_tool(['sh', '-c', {tool!r}], timeout=600)\n"
    worker = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2])
    try:
        _wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), "the tool never started")
        grandchild = int(pid_file.read_text())
        assert Path(f"/proc/{grandchild}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"
        keeper = _children(worker.pid)
        assert keeper, "the tool's keeper is not the worker's child"
        worker.kill()  # SIGKILL: no Python clean-up runs in the worker
        worker.wait()
        _wait_for(lambda: not _alive(grandchild), "the tool's own child outlived the process that ran the tool")
        _wait_for(lambda: not any(_alive(pid) for pid in keeper), "the tool outlived the process that started it")
    finally:
        worker.kill()
        worker.wait()


def test_a_missing_tool_is_told_in_french() -> None:
    with pytest.raises(renditions.RenditionFailed) as caught:
        renditions.run_tool(["socle-no-such-tool", "--version"])
    assert caught.value.reason == "socle-no-such-tool : outil introuvable"


def test_the_tools_exit_status_and_output_pass_through_its_keeper() -> None:
    assert renditions.run_tool(["sh", "-c", "printf 'a b'; printf err >&2"]) == "a b"
    with pytest.raises(renditions.RenditionFailed) as caught:
        renditions.run_tool(["sh", "-c", "echo 'page 3 illisible' >&2; exit 3"])
    assert caught.value.reason == "sh a échoué : page 3 illisible"


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
