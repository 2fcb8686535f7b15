"""@ctes packaging: the act message and its envelope valid against the ACTES XSD, names, tar.gz, classification."""

from __future__ import annotations

import io
import tarfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree
from s2low_helpers import ACTES_SCHEMAS, store

from interop import actes
from interop.simulators.s2low import classification_xml
from socle.errors import InvalidInput
from socle.storage import get_store

from conftest import make_pdf

SENDER = actes.Sender("213700000", "037", return_emails=("greffe@mairie-test.fr",))


pytestmark = pytest.mark.usefixtures("actes_schemas")


def an_act(number: str = "DEL2026_042", annexes: int = 2, subject: str = "Budget primitif – œuvres d'art") -> actes.Act:
    document = actes.ActFile(store(make_pdf("Délibération")).key, "Délibération n°42.PDF", "99_DE")
    extra = tuple(actes.ActFile(store(make_pdf(f"Annexe {i}")).key, f"annexe {i}.pdf") for i in range(annexes))
    return actes.Act(number, date(2026, 11, 30), 1, (7, 1), subject, document, extra)


def test_the_package_follows_the_naming_convention_and_is_valid_against_the_xsd() -> None:
    act = an_act()
    package = actes.build_package(get_store(), SENDER, act, date(2026, 1, 15), "1a2b3c4d", ACTES_SCHEMAS)
    today = datetime.now().strftime("%Y%m%d")
    assert package.filename == f"TRI-EACT--213700000--{today}-1a2b3c4d.tar.gz"
    assert package.act_id == "037-213700000-20261130-DEL2026_042-DE"
    with get_store().open(package.stored.key) as stream:
        files = actes.read_package(stream.read())
    base = "037-213700000-20261130-DEL2026_042-DE-1-1"
    assert sorted(files) == sorted(
        [
            f"EACT--213700000--{today}-1a2b3c4d.xml",
            f"{base}_0.xml",
            f"99_DE-{base}_1.pdf",
            f"99_AU-{base}_2.pdf",
            f"99_AU-{base}_3.pdf",
        ]
    )
    message = files[f"{base}_0.xml"]
    assert message.startswith(b"<?xml version='1.0' encoding='ISO-8859-1'?>")
    # Independent check with xmlschema (not the lxml validator the packaging uses).
    import xmlschema

    schema = xmlschema.XMLSchema(str(ACTES_SCHEMAS / "actesv1_1.xsd"))
    schema.validate(message.decode("iso-8859-1").split("?>", 1)[1])
    schema.validate(files[f"EACT--213700000--{today}-1a2b3c4d.xml"].decode("iso-8859-1").split("?>", 1)[1])
    root = etree.fromstring(message)
    ns = {"a": actes.NS}
    assert root.findtext("a:Objet", namespaces=ns) == "Budget primitif – œuvres d'art"  # survives ISO-8859-1
    assert root.get(f"{{{actes.NS}}}CodeNatureActe") == "1"
    assert root.find("a:CodeMatiere1", ns).get(f"{{{actes.NS}}}CodeMatiere") == "7"  # type: ignore[union-attr]
    assert root.find("a:Annexes", ns).get(f"{{{actes.NS}}}Nombre") == "2"  # type: ignore[union-attr]
    assert files[f"99_DE-{base}_1.pdf"].startswith(b"%PDF")


def test_the_same_act_gives_the_same_package() -> None:
    act = an_act(annexes=0)
    first = actes.build_package(get_store(), SENDER, act, date(2026, 1, 15), "00000001", ACTES_SCHEMAS)
    again = actes.build_package(get_store(), SENDER, act, date(2026, 1, 15), "00000001", ACTES_SCHEMAS)
    assert first.stored.key == again.stored.key


def test_an_act_message_invalid_against_the_xsd_is_refused_before_sending() -> None:
    act = an_act(subject="x" * 501)  # the XSD limits Objet to 500 characters
    with pytest.raises(InvalidInput, match="non conforme au schéma ACTES"):
        actes.build_package(get_store(), SENDER, act, date(2026, 1, 15), "1", ACTES_SCHEMAS)


def test_without_the_schema_folder_nothing_is_packaged(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="actes_schemas absent"):
        actes.build_package(get_store(), SENDER, an_act(), date(2026, 1, 15), "1", None)
    with pytest.raises(InvalidInput, match="schéma ACTES introuvable"):
        actes.build_package(get_store(), SENDER, an_act(), date(2026, 1, 15), "1", tmp_path)


@pytest.mark.parametrize(
    ("sender", "message"),
    [
        (actes.Sender("21370000", "037", return_emails=("a@b.fr",)), "SIREN"),
        (actes.Sender("213700000", "37", return_emails=("a@b.fr",)), "département"),
        (actes.Sender("213700000", "037"), "adresse de retour"),
    ],
)
def test_a_bad_sender_is_refused_in_french(sender: actes.Sender, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        actes.build_package(get_store(), sender, an_act(), date(2026, 1, 15), "1", ACTES_SCHEMAS)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nature": 9}, "nature d'acte invalide"),
        ({"numero": "trop-long-pour-actes"}, "numéro interne invalide"),
        ({"numero": "avec espace"}, "numéro interne invalide"),
        ({"matiere": "7"}, "code matière invalide"),
        ({"matiere": "7.a"}, "code matière invalide"),
        ({"date": "30/11/2026"}, "date de la décision"),
        ({"objet": ""}, "objet de l'acte obligatoire"),
    ],
)
def test_bad_act_metadata_is_refused_in_french(change: dict[str, object], message: str) -> None:
    metadata = {"numero": "D1", "date": "2026-11-30", "nature": 1, "matiere": "7.1", "objet": "Budget"} | change
    with pytest.raises(InvalidInput, match=message):
        actes.act_from_metadata(metadata, [{"object_key": "0" * 64, "filename": "acte.pdf"}])


def test_a_file_missing_from_the_store_is_refused() -> None:
    act = actes.Act("D1", date(2026, 11, 30), 1, (7, 1), "Budget", actes.ActFile("f" * 64, "acte.pdf"))
    with pytest.raises(InvalidInput, match="introuvable dans le stockage"):
        actes.build_package(get_store(), SENDER, act, date(2026, 1, 15), "1", ACTES_SCHEMAS)


def test_the_classification_is_read_and_its_freshness_checked() -> None:
    xml = classification_xml("2026-01-15")
    actes.validate(xml, ACTES_SCHEMAS, "classification")  # what the simulator sends is valid ACTES
    when, natures, matieres = actes.parse_classification(etree.fromstring(xml))
    assert when == date(2026, 1, 15)
    assert natures["1"]["abbreviation"] == "DE" and matieres["7.1"] == "Décisions budgétaires"
    now = datetime.now(UTC)
    kept = actes.Classification(when, now, None, natures, matieres)
    act = actes.Act("D1", date(2026, 11, 30), 1, (7, 1), "Budget", actes.ActFile("k", "acte.pdf"))
    actes.check_classification(act, kept, 30, now)  # fresh: accepted

    newer = actes.Classification(when, now, date(2026, 6, 1), natures, matieres)
    with pytest.raises(InvalidInput, match="classification @ctes périmée : celle de la préfecture date du 01/06/2026"):
        actes.check_classification(act, newer, 30, now)
    old = actes.Classification(when, now - timedelta(days=31), None, natures, matieres)
    with pytest.raises(InvalidInput, match="trop ancienne"):
        actes.check_classification(act, old, 30, now)
    with pytest.raises(InvalidInput, match="absente"):
        actes.check_classification(act, None, 30, now)
    unknown = actes.Act("D1", date(2026, 11, 30), 1, (9, 9), "Budget", actes.ActFile("k", "acte.pdf"))
    with pytest.raises(InvalidInput, match=r"code matière « 9\.9 » absent"):
        actes.check_classification(unknown, kept, 30, now)


def test_a_package_with_a_path_in_it_is_refused_when_read() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("../evil.xml")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(InvalidInput, match="entrée inattendue"):
        actes.read_package(buffer.getvalue())
    with pytest.raises(InvalidInput, match=r"tar\.gz lisible"):
        actes.read_package(b"pas une archive")
