"""An archivist's review: zip names written without the UTF-8 flag (Info-ZIP's zip), the same ReSIP CSV through
`socle archive build` and the API whatever folder it names its files from, and libxml2's messages in French
when the manifest and its profile or schema are of two SEDA versions."""

from __future__ import annotations

import io
import zipfile
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree
from test_archive_folder_api import after_jobs, post_folder, requested, sip_of
from test_archive_sources import build

from archive import profiles, unpacking
from archive.packaging import describe_file
from archive.seda import NAMESPACES, Agency, ArchiveUnitSpec, TransferSpec, build_manifest
from archive.validation import validate_manifest

from conftest import SHARED_SEDA, Kit, make_pdf

AGENCIES = ("--archival-agency", "AD075", "--transferring-agency", "MAIRIE-01")


def unflagged_zip(entries: dict[bytes, bytes], extra: dict[bytes, bytes] | None = None) -> bytes:
    """A zip whose names are the given bytes, without the UTF-8 flag (bit 11), as Info-ZIP's zip writes them:
    written under ASCII stand-ins of the same length, then the stand-ins replaced in both headers."""
    buffer = io.BytesIO()
    stand_ins: dict[bytes, bytes] = {}
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for number, (raw, data) in enumerate(entries.items()):
            stand_in = f"{number:03d}".encode() + b"#" * (len(raw) - 3)
            if raw.endswith(b"/"):
                stand_in = stand_in[:-1] + b"/"
            stand_ins[stand_in] = raw
            info = zipfile.ZipInfo(stand_in.decode("ascii"), (2026, 1, 12, 9, 0, 0))
            info.extra = (extra or {}).get(raw, b"")
            archive.writestr(info, data)
    written = buffer.getvalue()
    for stand_in, raw in stand_ins.items():
        assert written.count(stand_in) == 2  # local header and central directory
        written = written.replace(stand_in, raw)
    return written


def unicode_path(raw: bytes, name: str) -> bytes:
    """Info-ZIP's Unicode Path extra field (0x7075) for the header name `raw`."""
    field = b"\x01" + zlib.crc32(raw).to_bytes(4, "little") + name.encode("utf-8")
    return (0x7075).to_bytes(2, "little") + len(field).to_bytes(2, "little") + field


DECLARATIONS = "Déclarations préalables"


def test_unflagged_utf8_names_are_read_as_utf8_not_ibm437(tmp_path: Path) -> None:
    archive = tmp_path / "dp.zip"
    archive.write_bytes(
        unflagged_zip(
            {
                f"{DECLARATIONS}/".encode(): b"",
                f"{DECLARATIONS}/arrêté n°1.txt".encode(): b"Arrete\n",
            }
        )
    )
    assert all(not info.flag_bits & 0x800 for info in zipfile.ZipFile(archive).infolist())

    folder = unpacking.unpack(archive, tmp_path / "out" / "dp")

    assert folder.name == DECLARATIONS  # not « D├⌐clarations pr├⌐alables »
    assert (folder / "arrêté n°1.txt").read_bytes() == b"Arrete\n"


def test_the_unicode_path_extra_field_gives_the_name_when_the_header_is_not_utf8(tmp_path: Path) -> None:
    raw = "Dossier/Décision.txt".encode("cp1252")
    archive = tmp_path / "windows.zip"
    archive.write_bytes(unflagged_zip({raw: b"Decision\n"}, {raw: unicode_path(raw, "Dossier/Décision.txt")}))

    folder = unpacking.unpack(archive, tmp_path / "out" / "windows")

    assert (folder / "Décision.txt").read_bytes() == b"Decision\n"


def test_a_stale_unicode_path_is_ignored_and_a_name_valid_in_no_way_is_refused_by_name(tmp_path: Path) -> None:
    raw = "Dossier/Décision.txt".encode("cp1252")
    stale = unicode_path(b"Dossier/Autre.txt", "Dossier/Autre nom.txt")  # its CRC is another name's
    archive = tmp_path / "windows.zip"
    archive.write_bytes(unflagged_zip({raw: b"Decision\n", b"Dossier/note.txt": b"Note\n"}, {raw: stale}))

    with pytest.raises(unpacking.Refused) as refused:
        unpacking.check_archive(archive)

    assert refused.value.problems == [
        "Entrée « Dossier/D\\xe9cision.txt » refusée : nom qui n'est pas en UTF-8 (ancien codage de Windows ?) ; "
        "renommez-la ou refaites le zip avec un outil qui écrit les noms en UTF-8."
    ]


def test_an_unflagged_utf8_zip_through_the_api_keeps_its_names(kit: Kit, tmp_path: Path) -> None:
    data = unflagged_zip({f"{DECLARATIONS}/arrêté.pdf".encode(): make_pdf("Arrêté")})

    transfer = after_jobs(kit, requested(kit, data, "dp.zip"))

    assert transfer["status"] == "built", transfer["error"]
    with zipfile.ZipFile(sip_of(kit, transfer, tmp_path)) as sip:
        manifest = sip.read("manifest.xml").decode()
    assert f"<Title>{DECLARATIONS}</Title>" in manifest and "<Filename>arrêté.pdf</Filename>" in manifest
    assert "├" not in manifest


def test_a_non_utf8_name_is_refused_at_once_by_the_api(kit: Kit) -> None:
    data = unflagged_zip({"Dossier/Décision.txt".encode("cp1252"): b"Decision\n"})

    response = post_folder(kit, data, "windows.zip")

    assert response.status_code == 422, response.text
    assert "Entrée « Dossier/D\\xe9cision.txt » refusée : nom qui n'est pas en UTF-8" in response.json()["detail"]


# --- the same CSV through the command and the API ----------------------------------------------------------

HEADER = '"ID";"ParentID";"File";"Content.Title"'
# As ReSIP writes it next to the folder it describes (and as docs/archives.md shows it): from the folder's parent.
FROM_PARENT = (HEADER, '"1";"";"Courrier";"Courrier 2024"', '"2";"1";"Courrier\\lettre-prefet.pdf";"Lettre au préfet"')
# From the folder itself, as `socle archive build Courrier --csv` reads it.
FROM_FOLDER = (HEADER, '"1";"";"";"Courrier 2024"', '"2";"1";"lettre-prefet.pdf";"Lettre au préfet"')
LETTER = make_pdf("Lettre au préfet")


def csv_of(rows: tuple[str, ...]) -> bytes:
    return ("\n".join(rows) + "\n").encode()


@pytest.mark.parametrize("rows", [FROM_PARENT, FROM_FOLDER], ids=["from-parent", "from-folder"])
def test_the_api_builds_a_zip_of_one_folder_with_either_csv(kit: Kit, rows: tuple[str, ...], tmp_path: Path) -> None:
    data = unflagged_zip({b"Courrier/lettre-prefet.pdf": LETTER})

    transfer = after_jobs(kit, requested(kit, data, "Courrier.zip", csv=csv_of(rows)))

    assert transfer["status"] == "built", transfer["error"]
    with zipfile.ZipFile(sip_of(kit, transfer, tmp_path)) as sip:
        manifest = sip.read("manifest.xml").decode()
    assert "<Title>Courrier 2024</Title>" in manifest and "<Title>Lettre au préfet</Title>" in manifest


@pytest.mark.parametrize("rows", [FROM_PARENT, FROM_FOLDER], ids=["from-parent", "from-folder"])
def test_the_command_builds_the_folder_with_either_csv(tmp_path: Path, rows: tuple[str, ...]) -> None:
    folder = tmp_path / "Courrier"
    folder.mkdir()
    (folder / "lettre-prefet.pdf").write_bytes(LETTER)
    csv = tmp_path / "metadonnees.csv"
    csv.write_bytes(csv_of(rows))
    output = tmp_path / "paquet.zip"

    result = build(str(folder), *AGENCIES, "--csv", str(csv), "--output", str(output))

    assert result.exit_code == 0, result.output
    manifest = zipfile.ZipFile(output).read("manifest.xml").decode()
    assert "<Title>Courrier 2024</Title>" in manifest and "<Title>Lettre au préfet</Title>" in manifest


def test_the_command_on_the_parent_folder_reads_the_csv_as_written(tmp_path: Path) -> None:
    (tmp_path / "export" / "Courrier").mkdir(parents=True)
    (tmp_path / "export" / "Courrier" / "lettre-prefet.pdf").write_bytes(LETTER)
    csv = tmp_path / "metadonnees.csv"
    csv.write_bytes(csv_of(FROM_PARENT))
    output = tmp_path / "paquet.zip"

    result = build(str(tmp_path / "export"), *AGENCIES, "--csv", str(csv), "--output", str(output))

    assert result.exit_code == 0, result.output


def test_a_csv_mixing_both_readings_is_refused_line_by_line(kit: Kit) -> None:
    data = unflagged_zip({b"Courrier/lettre-prefet.pdf": LETTER, b"Courrier/note.txt": b"Note\n"})
    rows = (*FROM_PARENT, '"3";"1";"note.txt";"Note"')  # « Courrier\… » and « note.txt »: one reading or the other

    transfer = after_jobs(kit, requested(kit, data, "Courrier.zip", csv=csv_of(rows)))

    assert transfer["status"] == "error"
    assert "File « Courrier\\lettre-prefet.pdf » n'existe pas dans le dossier" in transfer["error"]


def test_the_literal_reading_wins_when_both_would_do(tmp_path: Path) -> None:
    """A folder « Courrier » holding its own « Courrier » folder: the CSV is read from the folder, as the command
    always did."""
    inner = tmp_path / "Courrier" / "Courrier"
    inner.mkdir(parents=True)
    (inner / "lettre-prefet.pdf").write_bytes(LETTER)
    (tmp_path / "Courrier" / "lettre-prefet.pdf").write_bytes(make_pdf("Autre lettre"))
    csv = tmp_path / "metadonnees.csv"
    rows = (HEADER, '"1";"";"Courrier";"Dossier intérieur"', '"2";"1";"Courrier/lettre-prefet.pdf";"Intérieure"')
    csv.write_bytes(csv_of(rows))

    result = build(str(tmp_path / "Courrier"), *AGENCIES, "--csv", str(csv), "--output", str(tmp_path / "p.zip"))

    # Read from the folder, the outer letter is described by no line: refused, never silently swapped.
    assert result.exit_code != 0
    assert (
        "Le fichier « lettre-prefet.pdf » est dans le dossier mais aucune ligne du CSV ne le décrit." in result.output
    )


# --- a profile or a schema of another SEDA version -------------------------------------------------------

RELAXNG = "http://relaxng.org/ns/structure/1.0"


def manifest(version: str, tmp_path: Path) -> bytes:
    path = tmp_path / "note.txt"
    path.write_text("Note\n", encoding="utf-8")
    spec = TransferSpec(
        message_identifier="M-1",
        archival_agreement="IC-1",
        archival_agency=Agency("AD037"),
        transferring_agency=Agency("MAIRIE"),
        originating_agency=Agency("MAIRIE"),
        submission_agency=Agency("MAIRIE"),
        comment="Versement",
        units=(ArchiveUnitSpec(title="Note", files=((describe_file(path, "note.txt"), "BinaryMaster_1"),)),),
        date=datetime(2026, 1, 12, tzinfo=UTC),
    )
    return build_manifest(spec, version=version)


def profile(body: str, namespace: str = NAMESPACES["2.2"]) -> etree.RelaxNG:
    return profiles.compile_profile(
        f'<grammar xmlns="{RELAXNG}" ns="{namespace}"><start>{body}</start></grammar>'.encode()
    )


def profile_messages(grammar: etree.RelaxNG, document: bytes) -> list[str]:
    tree = etree.ElementTree(etree.fromstring(document))
    return [issue.message for issue in profiles.validate_against_profile(tree, grammar, "deliberations")]


def test_a_profile_for_another_seda_version_says_both_versions(tmp_path: Path) -> None:
    grammar = profile('<element name="ArchiveTransfer"><text/></element>')  # the root's namespace fails first

    found = profile_messages(grammar, manifest("2.1", tmp_path))

    assert found == [
        "Ligne 2, /ArchiveTransfer : non conforme au profil « deliberations » — élément ArchiveTransfer d'une autre "
        "version du SEDA : le profil est écrit pour SEDA 2.2 ; ce versement est en SEDA 2.1 (choisissez la "
        "version du profil, ou un profil pour SEDA 2.1)"
    ]


@pytest.mark.parametrize(
    ("body", "document", "expected"),
    [
        (
            '<element name="A"><text/></element>',
            b'<A xmlns="urn:autre">x</A>',
            "élément A dans l'espace de noms « urn:autre » ; le profil attend « fr:gouv:culture:archivesdefrance:"
            "seda:v2.2 »",
        ),
        ('<element name="A"><text/></element>', b"<A>x</A>", "élément A sans espace de noms"),
        (
            '<element name="A"><empty/></element>',
            f'<A xmlns="{NAMESPACES["2.2"]}">x</A>'.encode(),
            "texte inattendu dans A",
        ),
        (
            '<element name="A"><list><oneOrMore><data type="integer" '
            'datatypeLibrary="http://www.w3.org/2001/XMLSchema-datatypes"/></oneOrMore></list></element>',
            f'<A xmlns="{NAMESPACES["2.2"]}">1 deux</A>'.encode(),
            "valeur en trop dans la liste : « deux »",
        ),
        (
            '<element name="A"><interleave><element name="B"><text/></element><element name="C"><text/></element>'
            "</interleave></element>",
            f'<A xmlns="{NAMESPACES["2.2"]}"><B>x</B><D/></A>'.encode(),
            "éléments dans un ordre ou un nombre que le profil n'admet pas",
        ),
    ],
    ids=["other-namespace", "no-namespace", "text", "list", "interleave"],
)
def test_other_relaxng_messages_are_in_french(body: str, document: bytes, expected: str) -> None:
    found = " | ".join(profile_messages(profile(body), document))

    assert expected in found, found
    for english in ("wrong namespace", "Expecting a namespace", "Did not expect text", "Extra data", "interleave"):
        assert english not in found, found


def test_no_namespace_profile_is_named_as_the_cause() -> None:
    found = profile_messages(
        profile('<element name="A"><text/></element>', ""), f'<A xmlns="{NAMESPACES["2.2"]}">x</A>'.encode()
    )

    assert found == [
        "Ligne 1, /A : non conforme au profil « deliberations » — élément A dans un espace de noms : le profil le "
        "déclare sans espace de noms (profil à corriger ?)"
    ]


def test_a_manifest_of_another_version_than_its_schema_says_both(tmp_path: Path) -> None:
    for written, schema in (("2.1", "2.2"), ("2.2", "2.1")):  # lxml (XSD 1.0), then xmlschema (XSD 1.1)
        report = validate_manifest(manifest(written, tmp_path), SHARED_SEDA, schema)

        assert [issue.message for issue in report.issues] == [
            "Ligne 2, /ArchiveTransfer : manifeste d'une autre version du SEDA : "
            f"le schéma est celui du SEDA {schema} ; ce versement est en SEDA {written}"
        ]


def test_libxml2_schema_messages_are_in_french(tmp_path: Path) -> None:
    text = manifest("2.2", tmp_path).decode()
    broken = (
        text.replace("<DescriptionLevel>Item</DescriptionLevel>", "<DescriptionLevel>Dossier</DescriptionLevel>")
        .replace("<Comment>Versement</Comment>", '<Comment statut="1">Versement</Comment>texte')
        .replace("<MessageIdentifier>M-1</MessageIdentifier>", "<MessageIdentifier><b/></MessageIdentifier>")
    )

    found = " | ".join(issue.message for issue in validate_manifest(broken.encode(), SHARED_SEDA, "2.2").issues)

    assert "élément DescriptionLevel — valeur « Dossier » hors de la liste admise ('Fonds', 'Subfonds'," in found
    assert "élément Comment, attribut statut — attribut non autorisé à cet endroit" in found
    assert "élément ArchiveTransfer — texte non admis : cet élément ne contient que des éléments" in found
    assert "élément MessageIdentifier — élément enfant non admis : une valeur simple (du texte) est attendue" in found
    assert "élément MessageIdentifier — valeur trop courte : 0 caractère(s), 1 au moins" in found
    assert "not allowed" not in found and "underruns" not in found and "set ." not in found, found
