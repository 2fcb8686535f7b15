"""Bulk import of a folder tree with a CSV of metadata, through the real ``socle ged import`` command: folders
of the tree become classification folders, typed metadata from the CSV, every problem reported at once (line
and column, in French) with nothing imported, and a rerun skips what is already there."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from ged.models import Document, Folder, ImportRun
from socle.db import transaction

from conftest import Kit, make_pdf, socle_command

HEADER = "path;title;type;date;tags;numero;vote\n"


def make_type(kit: Kit) -> None:
    body = {
        "code": "deliberation",
        "name": "Délibération",
        "fields": [
            {"name": "numero", "label": "Numéro", "kind": "integer", "required": True},
            {"name": "vote", "label": "Vote", "kind": "choice", "choices": ["unanimité", "majorité"]},
        ],
    }
    assert kit["admin"].post("/ged/types", json=body).status_code == 201


def make_tree(root: Path) -> None:
    (root / "Finances" / "Budget 2026").mkdir(parents=True)
    (root / "RH").mkdir()
    (root / "Finances" / "Budget 2026" / "budget.pdf").write_bytes(make_pdf("budget primitif"))
    (root / "Finances" / "compte.pdf").write_bytes(make_pdf("compte administratif"))
    (root / "RH" / "arrete.pdf").write_bytes(make_pdf("arrêté de nomination"))
    (root / "note.txt").write_text("Note de service : fermeture de la mairie le 24 décembre.\n")
    (root / ".DS_Store").write_bytes(b"\x00\x01")  # hidden: never imported


def documents(kit: Kit) -> list[Document]:
    with transaction() as session:
        rows = session.execute(select(Document).where(Document.tenant_id == kit.tenant_id)).scalars().all()
        for row in rows:
            _ = row.versions
        session.expunge_all()
        return list(rows)


def run_import(kit: Kit, root: Path, *extra: str) -> Any:
    return socle_command("ged", "import", "--tenant", kit.slug, "--user", "archiviste", *extra, str(root))


def test_tree_with_csv_becomes_folders_and_typed_documents_once(kit: Kit, tmp_path: Path) -> None:
    make_type(kit)
    root = tmp_path / "versement"
    make_tree(root)
    csv = root / "métadonnées.csv"  # inside the tree: read, never imported
    csv.write_text(
        "\ufeff"
        + HEADER
        + "Finances/Budget 2026/budget.pdf;Budget primitif 2026;deliberation;15/03/2026;budget|finances;42;majorité\n"
        + "Finances/compte.pdf;Compte administratif;deliberation;2026-06-30;;43;unanimité\n"
        + "RH/arrete.pdf;Arrêté de nomination;;;rh;;\n",
        encoding="utf-8",
    )
    result = run_import(kit, root, "--csv", str(csv))
    assert result.returncode == 0, result.stderr
    assert "4 fichier(s) importé(s), 0 déjà importé(s), 0 refusé(s) ; 3 dossier(s) créé(s)" in result.stdout

    by_title = {doc.current.title: doc for doc in documents(kit)}
    assert set(by_title) == {"Budget primitif 2026", "Compte administratif", "Arrêté de nomination", "note"}
    budget = by_title["Budget primitif 2026"].current
    assert budget.field_values == {"numero": 42, "vote": "majorité"}
    assert budget.document_date.isoformat() == "2026-03-15" and budget.tags == ["budget", "finances"]
    assert budget.media_type == "application/pdf" and budget.filename == "budget.pdf"
    assert by_title["note"].current.media_type == "text/plain"
    with transaction() as session:
        folders = {f.id: f for f in session.execute(select(Folder).where(Folder.tenant_id == kit.tenant_id)).scalars()}
        paths = {
            doc.current.title: "/".join(folders[i].name for i in folders[doc.folder_id].path.split("/"))
            for doc in by_title.values()
            if doc.folder_id
        }
    assert paths == {
        "Budget primitif 2026": "Finances/Budget 2026",
        "Compte administratif": "Finances",
        "Arrêté de nomination": "RH",
    }
    assert by_title["note"].folder_id is None

    again = run_import(kit, root, "--csv", str(csv))
    assert again.returncode == 0, again.stderr
    assert "0 fichier(s) importé(s), 4 déjà importé(s)" in again.stdout
    assert len(documents(kit)) == 4


def test_every_problem_is_reported_at_once_and_nothing_imported(kit: Kit, tmp_path: Path) -> None:
    make_type(kit)
    root = tmp_path / "arbo"
    make_tree(root)
    (root / "RH" / "vide.pdf").write_bytes(b"")
    csv = tmp_path / "meta.csv"
    csv.write_text(
        HEADER
        + "Finances/Budget 2026/budget.pdf;Budget;deliberation;2026-13-45;;42;majorité\n"
        + "Finances/compte.pdf;Compte;inconnu;;;;\n"
        + "absent.pdf;Absent;;;;;\n"
        + "RH/arrete.pdf;Arrêté;deliberation;;;quarante;à main levée\n"
        + "note.txt;Note;deliberation;;;;\n"
        + "note.txt;Note bis;;;;;\n",
        encoding="utf-8",
    )
    result = run_import(kit, root, "--csv", str(csv))
    assert result.returncode == 1
    errors = result.stderr
    expected = [
        "ligne 2, colonne « date » : date invalide « 2026-13-45 »",
        "ligne 3, colonne « type » : type de document « inconnu » inconnu",
        "ligne 4, colonne « path » : fichier « absent.pdf » absent de l'arborescence",
        "ligne 5, colonne « numero » : nombre entier attendu, « quarante » reçu",
        "ligne 5, colonne « vote » : « à main levée » n'est pas dans la liste",
        "ligne 6, colonne « numero » : champ obligatoire non renseigné",
        "ligne 7, colonne « path » : fichier déjà décrit à la ligne 6",
        "fichier « RH/vide.pdf » : le fichier est vide",
        "rien n'a été importé",
    ]
    for line in expected:
        assert line in errors, (line, errors)
    assert "Traceback" not in errors
    assert documents(kit) == []
    with transaction() as session:
        run = (
            session.execute(
                select(ImportRun).where(ImportRun.tenant_id == kit.tenant_id).order_by(ImportRun.created_at.desc())
            )
            .scalars()
            .first()
        )
        assert run is not None and run.status == "failed" and len(run.errors) == 8
        assert (
            session.execute(
                select(func.count()).select_from(Folder).where(Folder.tenant_id == kit.tenant_id)
            ).scalar_one()
            == 0
        )


def test_a_tree_needs_its_rights_and_bad_names_are_refused(kit: Kit, tmp_path: Path) -> None:
    root = tmp_path / "agent"
    (root / "Sous-dossier").mkdir(parents=True)
    (root / "Sous-dossier" / "a.pdf").write_bytes(make_pdf("a"))
    (root / "ok.pdf").write_bytes(make_pdf("ok"))
    # An agent may not create top-level classification folders: that file fails, the other is imported.
    result = socle_command("ged", "import", "--tenant", kit.slug, "--user", "agent", str(root))
    assert result.returncode == 1
    assert "refusé : Sous-dossier/a.pdf" in result.stderr and "1 fichier(s) importé(s)" in result.stdout

    bad = tmp_path / "noms"
    bad.mkdir()
    (bad / "ctrl\x07.pdf").write_bytes(make_pdf("b"))
    result = run_import(kit, bad)
    assert result.returncode == 1 and "caractères de contrôle" in result.stderr

    unknown = socle_command("ged", "import", "--tenant", kit.slug, "--user", "personne", str(root))
    assert unknown.returncode == 1 and "utilisateur « personne » inconnu" in unknown.stderr


def test_csv_decimals_are_kept_exact_and_read_like_the_api(kit: Kit, tmp_path: Path) -> None:
    fields = [{"name": "montant", "label": "Montant", "kind": "decimal"}]
    made = kit["admin"].post("/ged/types", json={"code": "facture", "name": "Facture", "fields": fields})
    assert made.status_code == 201, made.text
    amounts = {
        "grand.pdf": ("12345678901234567.89", "12345678901234567.89"),  # a float would give 12345678901234568
        "espaces.pdf": ("1 200,50", "1200.50"),  # the trailing zero is kept, as the API keeps it
        "insecable.pdf": ("1\u202f234\u00a0567,5", "1234567.5"),
        "negatif.pdf": ("-0,75", "-0.75"),
    }
    root = tmp_path / "factures"
    root.mkdir()
    lines = ["path;title;type;montant"]
    for name, (raw, _) in amounts.items():
        (root / name).write_bytes(make_pdf(name))
        lines.append(f"{name};{name};facture;{raw}")
    csv = tmp_path / "factures.csv"
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_import(kit, root, "--csv", str(csv))
    assert result.returncode == 0, result.stderr
    stored = {doc.current.title: doc.current.field_values["montant"] for doc in documents(kit)}
    assert stored == {name: kept for name, (_, kept) in amounts.items()}

    by_api = kit["agent"].post(
        "/ged/documents",
        files={"file": ("api.pdf", make_pdf("api"), "application/pdf")},
        data={"title": "API", "type": "facture", "field_values": '{"montant": "1200,50"}'},
    )
    assert by_api.status_code == 201, by_api.text
    assert by_api.json()["current"]["field_values"] == {"montant": stored["espaces.pdf"]}

    bad = tmp_path / "mauvais"
    bad.mkdir()
    (bad / "a.pdf").write_bytes(make_pdf("a"))
    (bad / "b.pdf").write_bytes(make_pdf("b"))
    bad_csv = tmp_path / "mauvais.csv"
    bad_csv.write_text("path;type;montant\na.pdf;facture;douze\nb.pdf;facture;NaN\n", encoding="utf-8")
    refused = run_import(kit, bad, "--csv", str(bad_csv))
    assert refused.returncode == 1
    assert "ligne 2, colonne « montant » : nombre décimal attendu, « douze » reçu" in refused.stderr
    assert "ligne 3, colonne « montant » : nombre décimal attendu, « NaN » reçu" in refused.stderr
    assert len(documents(kit)) == len(amounts) + 1  # nothing more imported


def test_a_csv_too_large_to_read_whole_is_refused_before_reading(kit: Kit, tmp_path: Path) -> None:
    make_type(kit)
    root = tmp_path / "arbo"
    make_tree(root)
    csv = tmp_path / "meta.csv"
    csv.write_text(HEADER, encoding="utf-8")
    os.truncate(csv, 64 * 1024 * 1024 + 1)  # sparse: the size says it all, nothing is written
    result = run_import(kit, root, "--csv", str(csv))
    assert result.returncode == 1, result.stdout
    assert "le fichier CSV dépasse 64 Mio : découpez l'import en plusieurs dossiers" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert documents(kit) == []
