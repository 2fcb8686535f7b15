"""`socle archive build DIR`: a folder tree (and a ReSIP-style CSV) into a validated SIP, bad input refused."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from lxml import etree

from archive import cli, sources
from archive.packaging import describe_file, verify_sip
from archive.seda import NAMESPACES, DescribedFile, build_manifest
from archive.sources import SourceError, transfer_from_folder
from archive.validation import validate_manifest

from conftest import SHARED_SEDA

NS = {"s": NAMESPACES["2.2"]}
AGENCIES = {"archival_agency": "AD37", "transferring_agency": "MAIRIE-01"}


def fast_describe(path: Path, name: str) -> DescribedFile:
    return describe_file(path, name, identify=False)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """versement/{Conseil/2024/delib-1.txt, Conseil/2024/delib-2.txt, RH/arrêté.txt, note.txt}"""
    root = tmp_path / "versement"
    (root / "Conseil" / "2024").mkdir(parents=True)
    (root / "RH").mkdir()
    (root / "Conseil" / "2024" / "delib-1.txt").write_text("Délibération 1\n", encoding="utf-8")
    (root / "Conseil" / "2024" / "delib-2.txt").write_text("Délibération 2\n", encoding="utf-8")
    (root / "RH" / "arrêté.txt").write_text("Arrêté\n", encoding="utf-8")
    (root / "note.txt").write_text("Note\n", encoding="utf-8")
    return root


def build(*args: str) -> Result:
    return CliRunner().invoke(cli.group, ["build", *args])


def problems_of(folder: Path, **options: object) -> list[str]:
    with pytest.raises(SourceError) as raised:
        transfer_from_folder(folder, describe=fast_describe, **AGENCIES, **options)  # type: ignore[arg-type]
    return raised.value.problems


# --- the command's process ------------------------------------------------------------------------------


def test_build_loads_neither_the_database_layer_nor_the_other_services(tree: Path, tmp_path: Path) -> None:
    # Its memory goes to siegfried's worker instead (archive/identification.py: worker_memory_limit).
    script = (
        "import sys\n"
        "from socle.cli import cli\n"
        "try:\n"
        f"    cli(['archive', 'build', {str(tree)!r}, '--output', {str(tmp_path / 'sip.zip')!r},"
        " '--archival-agency', 'AD37', '--transferring-agency', 'MAIRIE-01'])\n"
        "except SystemExit as end:\n"
        "    assert not end.code, end.code\n"
        "loaded = {module.split('.')[0] for module in sys.modules}\n"
        "print(sorted(loaded & {'sqlalchemy', 'ged', 'parapheur', 'interop', 'fastapi'}))\n"
    )
    env = {**os.environ, "SOCLE_SEDA_SCHEMAS": str(SHARED_SEDA)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]", done.stdout
    assert zipfile.is_zipfile(tmp_path / "sip.zip")
    # Listing the commands still loads every service's group: a broken module fails loudly there.
    listing = [sys.executable, "-c", "from socle.cli import main; main()", "--help"]
    listed = subprocess.run(listing, capture_output=True, text=True, env=env, timeout=120)
    assert all(name in listed.stdout for name in ("archive", "ged", "interop", "parapheur")), listed.stderr


# --- the folder alone -----------------------------------------------------------------------------------


def test_folder_tree_becomes_units(tree: Path) -> None:
    spec = transfer_from_folder(tree, describe=fast_describe, **AGENCIES)

    (root,) = spec.units
    assert (root.title, root.description_level) == ("versement", "RecordGrp")
    conseil, rh, note = root.children
    assert (conseil.title, conseil.description_level) == ("Conseil", "RecordGrp")
    assert (conseil.children[0].title, conseil.children[0].description_level) == ("2024", "File")
    assert [item.title for item in conseil.children[0].children] == ["delib-1.txt", "delib-2.txt"]
    assert (rh.description_level, rh.children[0].title) == ("File", "arrêté.txt")
    assert note.description_level == "Item" and note.files[0][1] == "BinaryMaster_1"
    assert validate_manifest(build_manifest(spec), SHARED_SEDA).valid


@pytest.mark.parametrize("version", ["2.1", "2.2", "2.3"])
def test_build_command_writes_a_valid_verified_sip(tree: Path, tmp_path: Path, version: str) -> None:
    output = tmp_path / "out" / "sip.zip"
    output.parent.mkdir()

    result = build(
        str(tree),
        "--version",
        version,
        "--archival-agency",
        "AD37",
        "--transferring-agency",
        "M1",
        "--output",
        str(output),
    )

    assert result.exit_code == 0, result.output
    assert f"conforme au schéma SEDA {version}" in result.output
    assert "4 fichier(s)" in result.output
    assert verify_sip(output) == []
    with zipfile.ZipFile(output) as archive:
        manifest = archive.read("manifest.xml")
    assert NAMESPACES[version].encode() in manifest
    assert [path.name for path in output.parent.iterdir()] == ["sip.zip"]  # no temporary file left


def test_default_output_is_next_to_the_folder(tree: Path) -> None:
    result = build(str(tree), "--archival-agency", "AD37", "--transferring-agency", "M1")
    assert result.exit_code == 0, result.output
    assert (tree.parent / "versement.zip").is_file()


def test_skipped_validation_is_said_plainly(tree: Path, tmp_path: Path, use_env: Callable[..., None]) -> None:
    use_env(SOCLE_SEDA_SCHEMAS=None)
    output = tmp_path / "sip.zip"

    result = build(str(tree), "--archival-agency", "A", "--transferring-agency", "T", "--output", str(output))

    assert result.exit_code == 0, result.output
    assert "Validation XSD non faite" in result.output and "non validé" in result.output
    assert output.is_file()


def test_usage_problems_are_refused_in_french(tree: Path, tmp_path: Path) -> None:
    result = build(str(tree), "--version", "3.0", "--output", str(tree / "sip.zip"))

    assert result.exit_code == 1
    assert "Version SEDA inconnue : 3.0" in result.output
    assert "--archival-agency" in result.output and "--transferring-agency" in result.output
    assert "ne peut pas être écrit dans le dossier versé" in result.output
    assert build(str(tmp_path / "absent"), "--archival-agency", "A", "--transferring-agency", "T").exit_code == 1


# --- bad folders ------------------------------------------------------------------------------------


def test_symlink_leading_outside_is_refused_and_nothing_written(tree: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("hors du versement", encoding="utf-8")
    (tree / "RH" / "lien").symlink_to(secret)
    output = tmp_path / "out.zip"

    result = build(str(tree), "--archival-agency", "A", "--transferring-agency", "T", "--output", str(output))

    assert result.exit_code == 1
    assert "Lien symbolique « RH/lien » vers l'extérieur du dossier" in result.output
    assert not output.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["secret.txt", "versement"]


def test_symlink_to_a_file_inside_is_followed(tree: Path) -> None:
    (tree / "RH" / "copie.txt").symlink_to(tree / "note.txt")
    spec = transfer_from_folder(tree, describe=fast_describe, **AGENCIES)
    rh = spec.units[0].children[1]
    assert [unit.title for unit in rh.children] == ["arrêté.txt", "copie.txt"]


def test_empty_unreadable_and_badly_named_files_are_all_reported(tree: Path) -> None:
    (tree / "vide.pdf").touch()
    (tree / "RH" / "secret.txt").write_text("illisible", encoding="utf-8")
    os.mkfifo(tree / "tube")
    os.close(os.open(os.path.join(os.fsencode(tree), b"caf\xe9.txt"), os.O_CREAT | os.O_WRONLY))

    def describe(path: Path, name: str) -> DescribedFile:
        # Root reads everything: a permission error is simulated where the real one would occur.
        if name == "secret.txt":
            raise PermissionError(13, "Permission non accordée", str(path))
        return fast_describe(path, name)

    with pytest.raises(SourceError) as raised:
        transfer_from_folder(tree, describe=describe, **AGENCIES)
    text = "\n".join(raised.value.problems)

    assert "Fichier vide « vide.pdf »" in text and "Size ≥ 1" in text
    assert "Fichier illisible « RH/secret.txt »" in text
    assert "Nom non valide en UTF-8" in text and "caf\\xe9.txt" in text
    assert "« tube » n'est ni un fichier ni un dossier" in text
    assert len(raised.value.problems) == 4


# --- the CSV ---------------------------------------------------------------------------------------------

CSV_HEADER = (
    '"ID";"ParentID";"File";"DescriptionLevel";"Content.Title";"Content.Description";"Content.StartDate";'
    '"Content.EndDate";"Content.Keyword.0.KeywordContent";"Content.Keyword.1.KeywordContent";'
    '"Management.AppraisalRule.Rule";"Management.AppraisalRule.StartDate";"Management.AppraisalRule.FinalAction"'
)


def write_csv(folder: Path, *rows: str, header: str = CSV_HEADER) -> Path:
    path = folder.parent / "metadata.csv"
    path.write_text("\n".join((header, *rows)) + "\n", encoding="utf-8")
    return path


def resip_csv(tree: Path) -> Path:
    return write_csv(
        tree,
        '"1";"";"";"Series";"Conseil municipal";"Délibérations";"2024-01-01";"2024-12-31";"conseil";;;;',
        '"2";"1";"Conseil\\2024";"RecordGrp";"Séances 2024";;;;;;;;',
        '"3";"2";"Conseil\\2024\\delib-1.txt";"Item";"Délibération 1";;"2024-03-01";"2024-03-01";"budget";"vote";'
        '"APP-10";"2024-03-01";"Destroy"',
        '"4";"2";"Conseil/2024/delib-2.txt";;"Délibération 2";;;;;;"APP-10";;"Keep"',
        '"5";"1";"RH\\arrêté.txt";"Item";"Arrêté";;;;;;;;',
        '"6";"";"note.txt";;;;;;;;;;',
    )


def test_resip_csv_gives_the_tree_and_metadata(tree: Path) -> None:
    spec = transfer_from_folder(tree, csv_path=resip_csv(tree), describe=fast_describe, **AGENCIES)

    series, note = spec.units
    assert (series.title, series.description_level, series.keywords) == ("Conseil municipal", "Series", ("conseil",))
    seances, arrete = series.children
    assert arrete.files[0][0].filename == "arrêté.txt"
    assert (seances.title, seances.files) == ("Séances 2024", ())  # a folder: no object
    delib1, delib2 = seances.children
    assert delib1.keywords == ("budget", "vote")
    assert delib1.appraisal_rule is not None and delib1.appraisal_rule[2] == "Destroy"
    assert delib1.files[0][0].filename == "delib-1.txt"
    assert delib2.description_level == "Item" and delib2.appraisal_rule == ("APP-10", None, "Keep")
    assert (note.title, note.description_level) == ("note.txt", "Item")  # defaults from the file
    manifest = build_manifest(spec)
    assert validate_manifest(manifest, SHARED_SEDA).valid
    root = etree.fromstring(manifest)
    assert root.xpath("//s:Keyword/s:KeywordContent/text()", namespaces=NS) == ["conseil", "budget", "vote"]
    assert root.xpath("count(//s:AppraisalRule)", namespaces=NS) == 2


def test_build_command_with_csv(tree: Path, tmp_path: Path) -> None:
    output = tmp_path / "sip.zip"
    result = build(
        str(tree), "--csv", str(resip_csv(tree)), "--archival-agency", "A", "--transferring-agency", "T",
        "--output", str(output),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "6 unité(s), 4 fichier(s)" in result.output
    assert verify_sip(output) == []


@pytest.mark.parametrize(
    ("rows", "header", "expected"),
    [
        (
            ['"1";"";"";"Series";"X";"";"";"";"";"";"";"";"";"?"'],
            CSV_HEADER + ';"Content.Couleur"',
            "Colonnes inconnues",
        ),
        (['"1";"9";"note.txt";;"X";;;;;;;;'], CSV_HEADER, "ParentID « 9 » ne désigne aucun ID"),
        (['"1";"";"absent.txt";;"X";;;;;;;;'], CSV_HEADER, "File « absent.txt » n'existe pas"),
        (['"1";"";"..\\..\\secret.txt";;"X";;;;;;;;'], CSV_HEADER, "sort du dossier versé"),
        (['"1";"";"/etc/passwd";;"X";;;;;;;;'], CSV_HEADER, "sort du dossier versé"),
        (['"1";"";"note.txt";"Dossier";"X";;;;;;;;'], CSV_HEADER, "niveau de description inconnu « Dossier »"),
        (['"1";"";"note.txt";;"X";;"2024-31-01";;;;;;'], CSV_HEADER, "date invalide « 2024-31-01 »"),
        (['"1";"";"note.txt";;"X";;"2024-02-01";"2024-01-01";;;;;'], CSV_HEADER, "est postérieure"),
        (['"1";"";"note.txt";;"X";;;;;;"APP";;"Jeter"'], CSV_HEADER, "FinalAction (Keep ou Destroy)"),
        (['"1";"2";"note.txt";;"X";;;;;;;;', '"2";"1";"";;"Y";;;;;;;;'], CSV_HEADER, "forme une boucle"),
        (['"1";"";"note.txt";;"X";;;;;;;;', '"1";"";"";;"Y";;;;;;;;'], CSV_HEADER, "déjà utilisé ligne 2"),
        (['"1";"";"note.txt"'], '"ID";"File";"Content.Title"', "colonnes obligatoires : ParentID"),
    ],
)
def test_bad_csv_is_refused(tmp_path: Path, rows: list[str], header: str, expected: str) -> None:
    folder = tmp_path / "dossier"
    folder.mkdir()
    (folder / "note.txt").write_text("note", encoding="utf-8")

    problems = problems_of(folder, csv_path=write_csv(folder, *rows, header=header))

    assert any(expected in problem for problem in problems), problems


def test_files_left_out_of_the_csv_are_reported(tree: Path) -> None:
    csv_path = write_csv(tree, '"1";"";"note.txt";;"Note";;;;;;;;')
    problems = problems_of(tree, csv_path=csv_path)
    assert sum("aucune ligne du CSV ne le décrit" in problem for problem in problems) == 3
    assert any("Conseil/2024/delib-1.txt" in problem for problem in problems)


def test_bad_csv_through_the_command_writes_nothing(tree: Path, tmp_path: Path) -> None:
    csv_path = write_csv(tree, '"1";"";"note.txt";;"Note";;;;;;;;', header=CSV_HEADER + ';"Content.Inconnue"')
    output = tmp_path / "sip.zip"
    result = build(
        str(tree),
        "--csv",
        str(csv_path),
        "--archival-agency",
        "A",
        "--transferring-agency",
        "T",
        "--output",
        str(output),
    )
    assert result.exit_code == 1
    assert "Versement refusé" in result.output and "Content.Inconnue" in result.output
    assert not output.exists()


def test_known_columns_are_documented() -> None:
    assert {"ID", "ParentID", "File", "Content.Title", "Management.AppraisalRule.FinalAction"} <= sources.KNOWN_COLUMNS


# --- the common ReSIP columns -------------------------------------------------------------------------------

COMMON_COLUMNS = {
    "ID": "1",
    "ParentID": "",
    "File": "note.txt",
    "Content.DescriptionLevel": "Item",
    "Content.Title": "Courrier au préfet",
    "Content.OriginatingSystemId": "courrier:77",
    "Content.OriginatingSystemId.1": "ged:42",
    "Content.ArchivalAgencyArchiveUnitIdentifier.0": "3 W 12",
    "Content.OriginatingAgencyArchiveUnitIdentifier": "SG-12",
    "Content.CustodialHistory.CustodialHistoryItem.0": "Reçu par le secrétariat",
    "Content.CustodialHistory.CustodialHistoryItem.1": "Numérisé",
    "Content.DocumentType": "Courrier",
    "Content.Language": "fr",
    "Content.Language.1": "oc",
    "Content.DescriptionLanguage": "fr",
    "Content.Keyword.KeywordContent": "subvention",
    "Content.Writer.0.FullName": "Camille Martin",
    "Content.Writer.0.Identifier": "agent",
    "Content.Writer.0.Function.0": "Chargée de mission",
    "Content.Writer.1.FirstName": "Lou",
    "Content.Writer.1.BirthName": "Roy",
    "Content.Addressee.0.FullName": "Claire Préfète",
    "Content.Addressee.1.Corpname": "Préfecture",
    "Content.Recipient.FullName": "Service financier",
    "Content.Transmitter.0.FullName": "Secrétariat général",
    "Content.Sender.0.FullName": "Mairie",
    "Content.AuthorizedAgent.0.Corpname": "Commune",
    "Content.CreatedDate": "2024-03-01",
    "Content.TransactedDate": "2024-03-02",
    "Content.AcquiredDate": "2024-03-03T09:15:00",
    "Content.SentDate": "2024-03-04T10:30:00+01:00",
    "Content.ReceivedDate": "2024-03-05",
    "Content.RegisteredDate": "2024-03-06",
    "Content.StartDate": "2024-03-01",
    "Content.EndDate": "2024-03-06",
    "Management.AppraisalRule.Rule.0": "APP-10",
    "Management.AppraisalRule.StartDate.0": "2024-03-06",
    "Management.AppraisalRule.Rule.1": "APP-20",
    "Management.AppraisalRule.FinalAction": "Keep",
    "Management.AccessRule.Rule": "ACC-00001",
    "Management.AccessRule.Rule.1": "ACC-00002",
    "Management.AccessRule.StartDate.1": "2024-03-06",
}


def one_row_csv(tmp_path: Path, columns: dict[str, str]) -> tuple[Path, Path]:
    folder = tmp_path / "courrier"
    folder.mkdir()
    (folder / "note.txt").write_text("Courrier\n", encoding="utf-8")
    header = ";".join(f'"{name}"' for name in columns)
    return folder, write_csv(folder, ";".join(f'"{value}"' for value in columns.values()), header=header)


@pytest.mark.parametrize("version", ["2.1", "2.2", "2.3"])
def test_common_resip_columns_build_a_valid_package_with_each_value_in_place(tmp_path: Path, version: str) -> None:
    folder, csv_path = one_row_csv(tmp_path, COMMON_COLUMNS)

    spec = transfer_from_folder(folder, csv_path=csv_path, describe=fast_describe, **AGENCIES)
    manifest = build_manifest(spec, version=version)

    report = validate_manifest(manifest, SHARED_SEDA, version)
    assert report.valid, report.issues
    ns = {"s": NAMESPACES[version]}
    unit = etree.fromstring(manifest).find(".//s:ArchiveUnit", ns)

    def texts(path: str) -> list[str]:
        return [str(found.text) for found in unit.iterfind(path, ns)]

    content = "s:Content/s:"
    assert texts(content + "OriginatingSystemId") == ["courrier:77", "ged:42"]
    assert texts(content + "ArchivalAgencyArchiveUnitIdentifier") == ["3 W 12"]
    assert texts(content + "OriginatingAgencyArchiveUnitIdentifier") == ["SG-12"]
    assert texts(content + "CustodialHistory/s:CustodialHistoryItem") == ["Reçu par le secrétariat", "Numérisé"]
    assert texts(content + "Language") == ["fr", "oc"] and texts(content + "DescriptionLanguage") == ["fr"]
    assert texts(content + "Keyword/s:KeywordContent") == ["subvention"]
    assert texts(content + "Writer[1]/*") == ["Camille Martin", "agent", "Chargée de mission"]
    assert texts(content + "Writer[2]/*") == ["Lou", "Roy"]
    assert texts(content + "Addressee/s:FullName") == ["Claire Préfète"]
    assert texts(content + "Addressee/s:Corpname") == ["Préfecture"]
    assert texts(content + "Recipient/s:FullName") == ["Service financier"]
    assert texts(content + "Transmitter/s:FullName") == ["Secrétariat général"]
    assert texts(content + "Sender/s:FullName") == ["Mairie"]
    assert texts(content + "AuthorizedAgent/s:Corpname") == ["Commune"]
    dates = [(etree.QName(found).localname, found.text) for found in unit.iterfind("s:Content/*", ns)][-8:]
    assert dates == [
        ("CreatedDate", "2024-03-01"),
        ("TransactedDate", "2024-03-02"),
        ("AcquiredDate", "2024-03-03T09:15:00"),  # the time is kept: SEDA DateType takes dateTime
        ("SentDate", "2024-03-04T10:30:00+01:00"),
        ("ReceivedDate", "2024-03-05"),
        ("RegisteredDate", "2024-03-06"),
        ("StartDate", "2024-03-01"),
        ("EndDate", "2024-03-06"),
    ]
    assert texts("s:Management/s:AppraisalRule/*") == ["APP-10", "2024-03-06", "APP-20", "Keep"]
    assert texts("s:Management/s:AccessRule/*") == ["ACC-00001", "ACC-00002", "2024-03-06"]


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        ({"Content.Couleur": "bleu"}, ["Colonnes inconnues", "Content.Couleur", "agents : Content.<rôle>.N.<champ>"]),
        ({"Content.Title.1": "X"}, ["Colonnes inconnues", "Content.Title.1"]),  # Title takes no rank here
        ({"Content.Writer.0.FullName.2": "X"}, ["Colonnes inconnues"]),  # FullName is not repeated
        (
            {"Content.Language": "fr", "Content.Language.0": "oc"},
            ["le même élément", "Content.Language = Content.Language.0"],
        ),
        ({"Content.Writer.0.Function": "Maire"}, ["Content.Writer.0 : un agent demande un nom"]),
        ({"Content.Sender.0.Corpname": "A", "Content.Sender.0.FullName": "B"}, ["Corpname (une organisation)"]),
        ({"Content.Language": "français !"}, ["code de langue invalide « français ! »"]),
        ({"Content.SentDate": "04/03/2024"}, ["Content.SentDate : date invalide"]),
        ({"Management.AccessRule.Rule": "A", "Management.AccessRule.StartDate.1": "2024-01-01"}, ["sans la règle"]),
    ],
)
def test_common_columns_problems_are_refused_in_french(
    tmp_path: Path, columns: dict[str, str], expected: list[str]
) -> None:
    folder, csv_path = one_row_csv(tmp_path, {"ID": "1", "ParentID": "", "File": "note.txt", **columns})

    text = "\n".join(problems_of(folder, csv_path=csv_path))

    assert all(words in text for words in expected), text


def test_the_refusal_lists_the_accepted_columns_by_group() -> None:
    text = sources.accepted_columns()
    for group in ("arborescence :", "description :", "identifiants :", "dates :", "agents :", "règles de gestion :"):
        assert group in text
    assert "Management.AppraisalRule.Rule.N" in text and "Content.Writer" not in text  # roles named once
