"""The ReSIP CSV of `socle archive build DIR --csv`: line breaks, long values, odd files, names and trees."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import Literal

import pytest

from archive import sources
from archive.packaging import UnitsPlan, describe_file
from archive.seda import DescribedFile
from archive.sources import MAX_CELL_CHARS, SourceError, folder_transfer, iter_units, transfer_from_folder

AGENCIES = {"archival_agency": "AD37", "transferring_agency": "MAIRIE-01"}
HEADER = "ID;ParentID;File;Content.Title"
Form = Literal["NFC", "NFD"]


def fast_describe(path: Path, name: str) -> DescribedFile:
    return describe_file(path, name, identify=False)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """dossier/{a.txt, b.txt}"""
    root = tmp_path / "dossier"
    root.mkdir()
    (root / "a.txt").write_text("A", encoding="utf-8")
    (root / "b.txt").write_text("B", encoding="utf-8")
    return root


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def titles(folder: Path, csv_path: Path) -> list[str]:
    spec = transfer_from_folder(folder, csv_path=csv_path, describe=fast_describe, **AGENCIES)  # type: ignore[arg-type]
    return [unit.title for unit in iter_units(spec.units)]


def problems_of(folder: Path, csv_path: Path | None) -> list[str]:
    with pytest.raises(SourceError) as raised:
        transfer_from_folder(folder, csv_path=csv_path, describe=fast_describe, **AGENCIES)  # type: ignore[arg-type]
    return raised.value.problems


def test_quoted_line_breaks_and_unicode_separators_stay_in_their_cell(folder: Path, tmp_path: Path) -> None:
    text = f'\ufeff{HEADER}\r\n1;;;"Racine\u2028suite"\r\n2;1;a.txt;"A\x85B"\r\n3;1;b.txt;"B multi\r\nligne"\r\n'
    assert titles(folder, write(tmp_path / "m.csv", text)) == ["Racine\u2028suite", "A\x85B", "B multi\nligne"]


def test_lines_are_counted_as_in_the_file_after_a_multi_line_record(folder: Path, tmp_path: Path) -> None:
    text = f'{HEADER};Content.StartDate\n1;;;"Racine\nsur deux lignes";\n\n2;1;a.txt;A;\n3;1;b.txt;B;pasunedate\n'
    problems = problems_of(folder, write(tmp_path / "m.csv", text))
    assert problems == ["CSV ligne 6, Content.StartDate : date invalide « pasunedate » (attendu AAAA-MM-JJ)."]


def test_an_unterminated_quote_is_refused_naming_its_line(folder: Path, tmp_path: Path) -> None:
    text = f'{HEADER}\n1;;;R\n2;1;a.txt;"A\n3;1;b.txt;B\n'
    problems = problems_of(folder, write(tmp_path / "u.csv", text))
    assert len(problems) == 1 and "ligne 3 : guillemet ouvert jamais refermé" in problems[0], problems


def test_a_last_line_without_line_break_is_read_whole(folder: Path, tmp_path: Path) -> None:
    text = f'{HEADER}\n1;;;R\n2;1;a.txt;A\n3;1;b.txt;"B"'
    assert titles(folder, write(tmp_path / "n.csv", text)) == ["R", "A", "B"]


def test_long_values_are_read_and_too_long_ones_named_with_line_and_column(folder: Path, tmp_path: Path) -> None:
    long = "x" * 200_000  # past csv's default limit of 131,072
    assert titles(folder, write(tmp_path / "l.csv", f"{HEADER}\n1;;;R\n2;1;a.txt;{long}\n3;1;b.txt;B\n"))[1] == long
    text = f'{HEADER}\n1;;;R\n2;1;a.txt;A\n3;1;b.txt;"{"y" * (MAX_CELL_CHARS + 1)}"\n'
    problems = problems_of(folder, write(tmp_path / "t.csv", text))
    assert problems == [
        f"CSV ligne 4, colonne Content.Title : valeur de {MAX_CELL_CHARS + 1} caractères, "
        f"au-delà des {MAX_CELL_CHARS} acceptés."
    ]


def test_a_long_parent_chain_is_checked_with_a_linear_number_of_parent_lookups(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups = 0
    get = sources._Row.get

    def counted(row: sources._Row, key: str) -> str:
        nonlocal lookups
        lookups += key == "ParentID"
        return get(row, key)

    monkeypatch.setattr(sources._Row, "get", counted)
    for length in (2_000, 4_000):
        rows = [f"{HEADER}", "1;;;R", "2;1;a.txt;A", "3;1;b.txt;B"]
        rows += [f"{n};{n - 1 if n > 4 else 1};;U{n}" for n in range(4, length + 4)]
        lookups = 0
        problems = problems_of(folder, write(tmp_path / f"chain-{length}.csv", "\n".join(rows) + "\n"))
        assert problems == ["CSV ligne 105 : arborescence trop profonde (plus de 100 niveaux)."]
        # A few per row (reading the tree, the loop check); each row walking its whole chain made length² / 2.
        assert lookups <= 3 * len(rows), (length, lookups)


def test_rows_in_or_under_a_loop_are_each_reported(folder: Path, tmp_path: Path) -> None:
    text = f"{HEADER}\n1;;;R\n2;1;a.txt;A\n3;1;b.txt;B\n4;5;;X\n5;4;;Y\n6;5;;Z\n"
    problems = problems_of(folder, write(tmp_path / "loop.csv", text))
    assert [problem for problem in problems if "boucle" in problem] == [
        f"CSV ligne {line} : la chaîne des ParentID de « {identifier} » forme une boucle."
        for line, identifier in ((5, "4"), (6, "5"), (7, "6"))
    ]


@pytest.mark.parametrize(("disk", "typed"), [("NFD", "NFC"), ("NFC", "NFD")])
def test_names_match_whatever_their_unicode_normalisation(tmp_path: Path, disk: Form, typed: Form) -> None:
    root = tmp_path / "versement"
    (root / unicodedata.normalize(disk, "Été")).mkdir(parents=True)
    on_disk = root / unicodedata.normalize(disk, "Été") / unicodedata.normalize(disk, "été.txt")
    on_disk.write_text("été", encoding="utf-8")
    name = unicodedata.normalize(typed, "Été\\été.txt")
    csv_path = write(tmp_path / "n.csv", f"{HEADER}\n1;;{unicodedata.normalize(typed, 'Été')};R\n2;1;{name};A\n")

    spec = transfer_from_folder(root, csv_path=csv_path, describe=fast_describe, **AGENCIES)  # type: ignore[arg-type]

    ((file, _),) = spec.units[0].children[0].files
    assert file.path == on_disk  # the disk's own name, to read it


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"{HEADER};Content.Couleur\n1;;;R;\n2;1;a.txt;A;\n", "Colonnes inconnues"),
        ("", "Le CSV c.csv est vide."),
        ("\n\n", "Le CSV c.csv est vide."),
        (f"{HEADER}\n", "Le CSV c.csv n'a aucune ligne sous son en-tête"),
        ("sep=;\nID;File;Content.Title\n1;a.txt;A\n", "colonnes obligatoires : ParentID"),
    ],
)
def test_a_refused_csv_is_reported_alone(folder: Path, tmp_path: Path, text: str, expected: str) -> None:
    problems = problems_of(folder, write(tmp_path / "c.csv", text))
    assert len(problems) == 1 and expected in problems[0], problems


def test_a_latin_1_csv_is_reported_alone(folder: Path, tmp_path: Path) -> None:
    csv_path = tmp_path / "c.csv"
    csv_path.write_bytes(f"{HEADER}\n1;;;été\n".encode("latin-1"))
    problems = problems_of(folder, csv_path)
    assert len(problems) == 1 and "n'est pas en UTF-8" in problems[0], problems


def test_excel_separator_line_is_understood(folder: Path, tmp_path: Path) -> None:
    text = 'sep=,\r\nID,ParentID,File,Content.Title\r\n1,,,R\r\n2,1,a.txt,A\r\n3,1,b.txt,"B; b"\r\n4,1,,bad-date\r\n'
    assert titles(folder, write(tmp_path / "s.csv", text)) == ["R", "A", "B; b", "bad-date"]


def test_a_file_described_twice_is_refused_naming_both_lines(folder: Path, tmp_path: Path) -> None:
    text = f"{HEADER}\n1;;;R\n2;1;a.txt;A\n3;1;./a.txt;A bis\n4;1;b.txt;B\n"
    problems = problems_of(folder, write(tmp_path / "d.csv", text))
    assert problems == ["CSV ligne 4 : File « ./a.txt » est déjà décrit ligne 3 (un fichier se verse une seule fois)."]


def test_the_csv_kept_in_the_folder_is_not_a_document(folder: Path) -> None:
    (folder / "meta").mkdir()
    csv_path = write(folder / "meta" / "métadonnées.csv", f"{HEADER}\n1;;;R\n2;1;a.txt;A\n3;1;b.txt;B\n")
    assert titles(folder, csv_path) == ["R", "A", "B"]
    _, plan = folder_transfer(folder, csv_path=csv_path, **AGENCIES)  # type: ignore[arg-type]
    assert isinstance(plan, UnitsPlan)
    assert [file.filename for unit in iter_units(plan.units) for file, _ in unit.files] == ["a.txt", "b.txt"]


def test_a_root_folder_named_in_invalid_utf8_is_refused_as_its_files_are(tmp_path: Path) -> None:
    raw = os.path.join(os.fsencode(tmp_path), b"rac\xffine")
    os.mkdir(raw)
    with open(os.path.join(raw, b"a.txt"), "wb") as out:
        out.write(b"A")
    root = Path(os.fsdecode(raw))
    expected = f"Nom non valide en UTF-8 : {raw!r} (renommez le fichier ou le dossier)."
    assert problems_of(root, None) == [expected]
    with pytest.raises(SourceError) as raised:
        folder_transfer(root, **AGENCIES)  # type: ignore[arg-type]
    assert raised.value.problems == [expected]
