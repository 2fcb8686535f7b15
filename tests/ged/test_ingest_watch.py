"""The drop folder (``socle ged watch``): complete files become documents and move to traites/, refused ones
to erreurs/, each with a .txt reason; files still being written and temporary names wait; each file once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from ged import ingest
from ged.models import Document, ImportedFile
from socle.db import transaction

from conftest import Kit, make_pdf, socle_command


def titles(kit: Kit) -> list[str]:
    with transaction() as session:
        rows = session.execute(select(Document).where(Document.tenant_id == kit.tenant_id)).scalars().all()
        return sorted(row.current.title for row in rows)


def watch_once(kit: Kit, folder: Path, *extra: str) -> object:
    return socle_command(
        "ged", "watch", "--tenant", kit.slug, "--user", "agent", "--once", "--settle", "0.3", *extra, str(folder)
    )


def test_drop_folder_imports_complete_files_and_sorts_them(kit: Kit, tmp_path: Path) -> None:
    drop = tmp_path / "depot"
    drop.mkdir()
    letter = make_pdf("courrier entrant")
    (drop / "courrier.pdf").write_bytes(letter)
    (drop / "note.txt").write_text("Réunion de chantier jeudi.\n")
    (drop / "vide.pdf").write_bytes(b"")
    (drop / "en-cours.pdf.part").write_bytes(b"%PDF-1.7 pas fini")  # a copy tool's temporary name
    (drop / "~$brouillon.docx").write_bytes(b"PK")  # an office lock file
    (drop / "sous-dossier").mkdir()

    result = watch_once(kit, drop, "--type", "courrier", "--tag", "dépôt")
    assert result.returncode == 1  # one file was refused
    assert "importé : courrier.pdf" in result.stdout and "importé : note.txt" in result.stdout
    assert "refusé : vide.pdf : le fichier est vide" in result.stderr

    assert sorted(p.name for p in (drop / "traites").iterdir()) == [
        "courrier.pdf",
        "courrier.pdf.txt",
        "note.txt",
        "note.txt.txt",
    ]
    reason = (drop / "traites" / "courrier.pdf.txt").read_text()
    assert reason.startswith("importé : document ")
    assert sorted(p.name for p in (drop / "erreurs").iterdir()) == ["vide.pdf", "vide.pdf.txt"]
    assert "vide" in (drop / "erreurs" / "vide.pdf.txt").read_text()
    left = sorted(p.name for p in drop.iterdir())
    assert left == ["en-cours.pdf.part", "erreurs", "sous-dossier", "traites", "~$brouillon.docx"]
    assert titles(kit) == ["courrier", "note"]
    with transaction() as session:
        document = session.execute(select(Document).where(Document.tenant_id == kit.tenant_id)).scalars().first()
        assert document is not None
        assert document.current.tags == ["dépôt"] and document.current.document_type == "courrier"

    # The same file dropped again is recognised: moved aside, no second document.
    (drop / "courrier.pdf").write_bytes(letter)
    again = watch_once(kit, drop)
    assert again.returncode == 0, again.stderr
    assert "déjà importé : courrier.pdf" in again.stdout
    assert (drop / "traites" / "courrier-1.pdf").exists()
    assert (drop / "traites" / "courrier-1.pdf.txt").read_text().startswith("déjà importé : document ")
    assert titles(kit) == ["courrier", "note"]
    with transaction() as session:
        assert len(session.execute(select(ImportedFile).where(ImportedFile.tenant_id == kit.tenant_id)).all()) == 2


def test_a_file_still_growing_is_not_stable(tmp_path: Path) -> None:
    target = tmp_path / "scan.pdf"
    target.write_bytes(b"%PDF-1.7\n")
    first = ingest.snapshot(tmp_path)
    time.sleep(0.01)
    with target.open("ab") as handle:
        handle.write(b"page 2\n")
    second = ingest.snapshot(tmp_path)
    assert ingest.stable_files(first, second) == []
    assert ingest.stable_files(second, ingest.snapshot(tmp_path)) == ["scan.pdf"]
    for name in ("a.tmp", ".cache", "x.crdownload", "b.PART", "doc~", "~$c.xlsx"):
        assert ingest.is_temporary_name(name), name
    assert not ingest.is_temporary_name("délibération 2026.pdf")


def test_continuous_watch_waits_for_a_file_being_written(
    kit: Kit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop = tmp_path / "scanner"
    drop.mkdir()
    scan = drop / "scan.pdf"
    content = make_pdf("numérisation", pages=5)
    middle = len(content) // 2
    scan.write_bytes(content[:100])  # the scanner is still writing
    # The scanner writes on right after the watcher's 1st look (the previous look of its 1st pass) and after its
    # 3rd (the previous look of the 2nd pass): each of these passes finds a file still being written, the 1st
    # even an incomplete one; the 3rd pass finds it whole and still.
    writes = {1: content[100:middle], 3: content[middle:]}
    looks = 0
    look = ingest.snapshot

    def scanner_writes_meanwhile(directory: Path) -> ingest.Snapshot:
        nonlocal looks
        seen_now = look(directory)
        looks += 1
        if looks in writes:
            with scan.open("ab") as handle:
                handle.write(writes[looks])
        return seen_now

    monkeypatch.setattr(ingest, "snapshot", scanner_writes_meanwhile)
    seen: list[ingest.DropResult] = []
    with transaction() as session:
        principal = ingest.principal_for(session, kit.slug, "agent")
        total = ingest.watch(
            session,
            principal,
            drop,
            {"document_type": "numérisation"},
            once=False,
            interval=0.01,
            settle=0.01,
            max_passes=3,
            report=seen.append,
        )
    assert looks == 6  # a look before each pass and one in it
    assert [result.imported for result in seen[:2]] == [[], []]  # it grew: left alone
    assert [name for name, _ in total.imported] == ["scan.pdf"] and not total.failed
    with transaction() as session:
        document = session.execute(select(Document).where(Document.tenant_id == kit.tenant_id)).scalars().one()
        assert document.current.size == len(content)
