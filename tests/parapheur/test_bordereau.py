"""The bordereau PDF, read back by independent tools: poppler's pdftotext/pdfinfo/pdffonts and qpdf --check."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from parapheur.bordereau import BordereauData, HistoryLine, render_bordereau

from conftest import missing

SHA_A = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
SHA_B = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
EDITED = datetime(2026, 12, 3, 16, 45, tzinfo=UTC)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(f"{name} absent (paquets Debian poppler-utils et qpdf : make system-deps)")
    assert path is not None
    return path


def _text(pdf: Path) -> str:
    result = subprocess.run([_tool("pdftotext"), "-layout", str(pdf), "-"], capture_output=True, check=True)
    return result.stdout.decode("utf-8")


def _pdfinfo(pdf: Path) -> dict[str, str]:
    result = subprocess.run([_tool("pdfinfo"), str(pdf)], capture_output=True, check=True)
    lines = result.stdout.decode("utf-8").splitlines()
    return {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in lines)}


def _qpdf_check(pdf: Path) -> None:
    result = subprocess.run([_tool("qpdf"), "--check", str(pdf)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No syntax or stream encoding errors" in result.stdout


def _data(history: list[HistoryLine], **fields: object) -> BordereauData:
    values: dict[str, object] = {
        "tenant_name": "Commune de Démo-sur-Loire",
        "folder_id": "de48907b-5c1e-4f4e-9a51-2b8c1a3f6d10",
        "title": "Délibération n° 2026-042 : budget primitif de l'exercice",
        "typology": "Délibération / Finances",
        "status": "Terminé",
        "created_by": "Élodie Ménard",
        "created_at": datetime(2026, 11, 30, 14, 0, tzinfo=UTC),
        "documents": [("délibération signée.pdf", SHA_A), ("annexe budgétaire n°1.pdf", SHA_B)],
        "history": history,
    }
    values.update(fields)
    return BordereauData(**values)  # type: ignore[arg-type]


HISTORY = [
    HistoryLine(datetime(2026, 12, 1, 8, 5, tzinfo=UTC), "Élodie Ménard", "Dépôt"),
    HistoryLine(datetime(2026, 12, 1, 9, 30, tzinfo=UTC), "Camille Martin", "Visa", comment="Vu, conforme à l'avis."),
    HistoryLine(
        datetime(2026, 12, 2, 7, 15, tzinfo=UTC),
        "François Lefèvre",
        "Signature",
        on_behalf_of="Dominique Dupont",
        comment="Signé pendant les congés du maire <b>&</b> transmis",
    ),
    HistoryLine(datetime(2026, 12, 2, 23, 10, tzinfo=UTC), "Zoé Nguyễn", "Annotation", comment="Œuvre à citer."),
]


def test_labels_accents_and_every_history_line(tmp_path: Path) -> None:
    pdf = tmp_path / "bordereau.pdf"
    render_bordereau(_data(HISTORY), pdf, generated_at=EDITED)
    _qpdf_check(pdf)
    text = _text(pdf)
    for label in (
        "Bordereau de dossier",
        "Collectivité",
        "Commune de Démo-sur-Loire",
        "Typologie",
        "Délibération / Finances",
        "État",
        "Terminé",
        "Créé par",
        "Élodie Ménard",
        "Créé le",
        "30/11/2026 à 15:00",  # Paris time
        "Bordereau édité le",
        "03/12/2026 à 17:45",
        "Délibération n° 2026-042 : budget primitif de l'exercice",
        "de48907b-5c1e-4f4e-9a51-2b8c1a3f6d10",
        "Documents (2)",
        "Empreinte SHA-256",
        "Historique (4 actions)",
        "Heures locales (Europe/Paris)",
        "En l'absence de",
        "Commentaire",
        "Page 1 sur 1",
    ):
        assert label in text, label
    for name, digest in (("délibération signée.pdf", SHA_A), ("annexe budgétaire n°1.pdf", SHA_B)):
        assert re.search(rf"{re.escape(name)}\s+{digest}", text), name
    rows = [
        r"01/12/2026\s+09:05\s+Élodie Ménard\s+Dépôt",
        r"01/12/2026\s+10:30\s+Camille Martin\s+Visa\s+Vu, conforme à l'avis\.",
        r"02/12/2026\s+08:15\s+François Lefèvre\s+Signature\s+Dominique Dupont\s+Signé pendant",
        r"03/12/2026\s+00:10\s+Zoé Nguy.n\s+Annotation\s+Œuvre à citer\.",  # ễ: not in the font, approached
    ]
    positions = []
    for row in rows:
        found = re.search(row, text)
        assert found, row
        positions.append(found.start())
    assert positions == sorted(positions), "l'historique garde l'ordre des actions"
    assert "<b>&</b> transmis" in " ".join(text.split()), "le texte saisi s'affiche tel quel"


def test_pdf_is_a4_with_metadata_and_embedded_fonts(tmp_path: Path) -> None:
    pdf = tmp_path / "bordereau.pdf"
    render_bordereau(_data(HISTORY), pdf)
    info = _pdfinfo(pdf)
    assert info["Title"] == "Bordereau — Délibération n° 2026-042 : budget primitif de l'exercice"
    assert info["Author"] == "Commune de Démo-sur-Loire"
    assert info["Page size"].startswith("595.276 x 841.89 pts (A4)")
    fonts = subprocess.run([_tool("pdffonts"), str(pdf)], capture_output=True, text=True, check=True).stdout
    rows = fonts.splitlines()[2:]
    assert rows, fonts
    for row in rows:
        # Columns: name, type…, encoding, emb, sub, uni, object, generation; every font embedded, with ToUnicode.
        emb, _sub, uni = row.split()[-5:-2]
        assert (emb, uni) == ("yes", "yes"), row


def test_long_history_runs_over_several_numbered_pages(tmp_path: Path) -> None:
    start = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)
    history = [
        HistoryLine(
            start + timedelta(hours=index),
            f"Agent n° {index:03d}",
            ("Visa", "Signature", "Annotation", "Rejet")[index % 4],
            on_behalf_of="Dominique Dupont" if index % 7 == 0 else None,
            comment=f"Remarque numéro {index:03d} sur la pièce jointe." if index % 3 == 0 else None,
        )
        for index in range(200)
    ]
    pdf = tmp_path / "long.pdf"
    render_bordereau(_data(history), pdf)
    _qpdf_check(pdf)
    pages = int(_pdfinfo(pdf)["Pages"])
    assert pages >= 4
    text = _text(pdf)
    for index in range(200):
        assert len(re.findall(rf"Agent n° {index:03d}\b", text)) == 1, index
        if index % 3 == 0:
            assert f"Remarque numéro {index:03d}" in text
    assert "Historique (200 actions)" in text
    for page in range(1, pages + 1):
        assert f"Page {page} sur {pages}" in text
    # The table starts on page 1 and its header is repeated on every page.
    assert text.count("En l'absence de") == pages
    assert len(re.findall(r"Date\s+Heure\s+Acteur\s+Action", text)) == pages


def test_a_very_long_comment_goes_on_to_the_next_page(tmp_path: Path) -> None:
    comment = " ".join(f"mot{index}" for index in range(3000))
    pdf = tmp_path / "comment.pdf"
    render_bordereau(
        _data([HistoryLine(datetime(2026, 12, 1, tzinfo=UTC), "Camille Martin", "Rejet", comment=comment)]), pdf
    )
    _qpdf_check(pdf)
    assert int(_pdfinfo(pdf)["Pages"]) >= 2
    words = set(_text(pdf).split())
    assert all(f"mot{index}" in words for index in range(3000))


def test_empty_folder(tmp_path: Path) -> None:
    pdf = tmp_path / "vide.pdf"
    render_bordereau(_data([], documents=[], typology=None), pdf)
    text = _text(pdf)
    assert "Aucun document." in text and "Aucune action enregistrée." in text
    assert re.search(r"Typologie\s+—", text)


def test_output_is_atomic(tmp_path: Path) -> None:
    pdf = tmp_path / "bordereau.pdf"
    pdf.write_bytes(b"ancienne version")
    broken = _data([*HISTORY, HistoryLine(None, "X", "Visa")])  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        render_bordereau(broken, pdf)
    assert pdf.read_bytes() == b"ancienne version"
    render_bordereau(_data(HISTORY), pdf)
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert [path.name for path in tmp_path.iterdir()] == ["bordereau.pdf"], "aucun fichier temporaire ne reste"


def test_missing_destination_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dossier de destination introuvable"):
        render_bordereau(_data(HISTORY), tmp_path / "absent" / "bordereau.pdf")
