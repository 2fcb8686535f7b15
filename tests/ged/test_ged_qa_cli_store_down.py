"""``socle ged watch`` and ``socle ged import`` while the object store does not answer: an outage refuses no
file. The drop folder keeps its files for the next pass (erreurs/ is for files at fault), the bulk import
stops at once instead of failing every file in turn, and says to run it again."""

from __future__ import annotations

import socket
from pathlib import Path

from sqlalchemy import func, select

from ged.models import Document, ImportRun
from socle.db import transaction

from conftest import Kit, socle_command


def store_down() -> dict[str, str]:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return {
        "SOCLE_STORAGE_BACKEND": "s3",
        "SOCLE_S3_ENDPOINT": f"127.0.0.1:{port}",
        "SOCLE_S3_ACCESS_KEY": "socle",
        "SOCLE_S3_SECRET_KEY": "socle-secret",
        "SOCLE_S3_SECURE": "false",
        "SOCLE_S3_RETRIES": "0",
    }


def documents(kit: Kit) -> int:
    with transaction() as session:
        return int(session.execute(select(func.count()).where(Document.tenant_id == kit.tenant_id)).scalar_one())


def test_drop_folder_keeps_its_files_while_the_store_is_down(kit: Kit, tmp_path: Path) -> None:
    drop = tmp_path / "depot"
    drop.mkdir()
    for name in ("courrier.txt", "note.txt", "rapport.txt"):
        (drop / name).write_text(f"Contenu de {name}\n")

    run = socle_command(
        "ged", "watch", "--tenant", kit.slug, "--user", "agent", "--once", "--settle", "0", str(drop), env=store_down()
    )
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert "stockage des documents injoignable, réessayez dans un instant (le fichier reste en attente" in run.stderr
    assert sorted(path.name for path in drop.iterdir()) == ["courrier.txt", "note.txt", "rapport.txt"]
    assert documents(kit) == 0

    back = socle_command("ged", "watch", "--tenant", kit.slug, "--user", "agent", "--once", "--settle", "0", str(drop))
    assert back.returncode == 0, back.stderr
    assert "3 importé(s), 0 déjà importé(s), 0 refusé(s)." in back.stdout
    assert documents(kit) == 3


def test_bulk_import_stops_at_the_first_outage_and_says_to_run_it_again(kit: Kit, tmp_path: Path) -> None:
    root = tmp_path / "versement"
    root.mkdir()
    for number in range(20):
        (root / f"note-{number:02}.txt").write_text(f"Note {number}\n")

    run = socle_command("ged", "import", "--tenant", kit.slug, "--user", "agent", str(root), env=store_down())
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert run.stderr.count("stockage des documents injoignable") == 1  # said once, not for each of the 20 files
    assert (
        "Erreur : stockage des documents injoignable, réessayez dans un instant ; import arrêté à note-00.txt après "
        "0 fichier(s) importé(s) : relancez la même commande, les fichiers déjà importés seront sautés"
    ) in run.stderr
    with transaction() as session:
        stopped = session.execute(select(ImportRun).where(ImportRun.tenant_id == kit.tenant_id)).scalar_one()
        assert stopped.status == "interrupted" and stopped.failed == 1

    again = socle_command("ged", "import", "--tenant", kit.slug, "--user", "agent", str(root))
    assert again.returncode == 0, again.stderr
    assert "20 fichier(s) importé(s), 0 déjà importé(s), 0 refusé(s)" in again.stdout
    assert documents(kit) == 20
