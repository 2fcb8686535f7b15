"""Ctrl-C in the middle of the GED's long commands (``socle ged import``, ``socle ged purge``): a French line,
status 130, nothing half-written (each file or document in its own transaction), the interruption recorded,
and the same command run again finishes the work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from ged.models import Document, ImportedFile, ImportRun
from socle import audit
from socle.db import transaction, utcnow

from conftest import ROOT, Kit, socle_command

FILES = 300


def make_tree(root: Path) -> None:
    for number in range(FILES):
        folder = root / f"lot-{number % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"note-{number:03}.txt").write_text(f"Note de service numéro {number}.\n")


def interrupted(args: list[str], started: Callable[[], bool]) -> subprocess.CompletedProcess[str]:
    """Run ``socle ARGS``, send it SIGINT (Ctrl-C) once ``started()`` says its work is under way, wait for it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "socle", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=dict(os.environ),
        # A test runner's worker may ignore SIGINT; the command must get it as from a terminal.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        while process.poll() is None and not started():
            time.sleep(0.01)  # polled, not timed: the signal goes once the work is seen under way
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def imported_files(kit: Kit) -> int:
    with transaction() as session:
        count = session.execute(select(func.count()).where(ImportedFile.tenant_id == kit.tenant_id)).scalar_one()
        return int(count)


def documents(kit: Kit) -> int:
    with transaction() as session:
        return int(session.execute(select(func.count()).where(Document.tenant_id == kit.tenant_id)).scalar_one())


def test_import_interrupted_keeps_whole_files_records_the_run_and_resumes(kit: Kit, tmp_path: Path) -> None:
    root = tmp_path / "versement"
    make_tree(root)
    args = ["ged", "import", "--tenant", kit.slug, "--user", "archiviste", str(root)]

    stopped = interrupted(args, lambda: imported_files(kit) >= 3)
    assert stopped.returncode == 130, stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert "Interrompu : relancez la même commande, les fichiers déjà importés seront sautés." in stopped.stderr
    done = imported_files(kit)
    assert 3 <= done < FILES
    assert documents(kit) == done  # every file marked imported has its document, and no document is unmarked
    with transaction() as session:
        run = session.execute(select(ImportRun).where(ImportRun.tenant_id == kit.tenant_id)).scalar_one()
        assert run.status == "interrupted" and run.finished_at is not None and run.imported == done

    again = socle_command(*args)
    assert again.returncode == 0, again.stderr
    assert f"{FILES - done} fichier(s) importé(s), {done} déjà importé(s), 0 refusé(s)" in again.stdout
    assert documents(kit) == FILES


def test_purge_interrupted_says_what_is_kept_and_a_rerun_finishes(kit: Kit, tmp_path: Path) -> None:
    root = tmp_path / "corbeille"
    make_tree(root)
    imported = socle_command("ged", "import", "--tenant", kit.slug, "--user", "archiviste", str(root))
    assert imported.returncode == 0, imported.stderr
    with transaction() as session:  # in the trash for a year: past the restore window
        session.execute(
            update(Document)
            .where(Document.tenant_id == kit.tenant_id)
            .values(deleted_at=utcnow() - timedelta(days=365), deleted_by="agent")
        )

    stopped = interrupted(["ged", "purge", "--tenant", kit.slug], lambda: documents(kit) <= FILES - 3)
    assert stopped.returncode == 130, stopped.stderr
    assert "Traceback" not in stopped.stderr and "Aborted" not in stopped.stderr
    assert "Purge interrompue : les documents déjà purgés le restent (inscrits au journal)" in stopped.stderr
    left = documents(kit)
    assert 0 < left <= FILES - 3

    again = socle_command("ged", "purge", "--tenant", kit.slug)
    assert again.returncode == 0, again.stderr
    assert f"{left} document(s) supprimé(s), 0 gardé(s)" in again.stdout
    assert documents(kit) == 0
    with transaction() as session:
        result = audit.verify(session, kit.tenant_id)
        assert result.intact, result.problems
