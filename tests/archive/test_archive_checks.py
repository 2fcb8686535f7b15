"""Business checks after the XSD, as an SAE makes them, and the tenant's referential that drives them."""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from archive import packaging, seda, validation
from archive.checks import BusinessRules, check_manifest, check_manifest_file

from conftest import SHARED_SEDA, Kit, assert_problem, make_pdf, run_jobs, upload_document

NS = {"s": seda.NAMESPACES["2.2"]}
REFERENTIAL = {"APP-10": "AppraisalRule", "ACC-25": "AccessRule"}


def manifest(tmp_path: Path, **unit: Any) -> etree._ElementTree:
    """A valid SEDA 2.2 manifest of one unit with one file; ``unit`` overrides the unit's fields."""
    path = tmp_path / "acte.pdf"
    path.write_bytes(make_pdf("contrôles"))
    described = packaging.describe_file(path, "acte.pdf", identify=False)
    fields: dict[str, Any] = {
        "title": "Délibération n° 3",
        "start_date": date(2024, 1, 1),
        "end_date": date(2024, 12, 31),
        "files": ((described, "BinaryMaster_1"),),
        "appraisal_rule": ("APP-10", date(2024, 12, 31), "Destroy"),
        "access_rule": ("ACC-25", None),
    }
    agency = seda.Agency("213700000")
    spec = seda.TransferSpec(
        "M-1", None, seda.Agency("AD037"), agency, agency, agency, None,
        (seda.ArchiveUnitSpec(**(fields | unit)),), datetime(2026, 12, 1, tzinfo=UTC),
    )  # fmt: skip
    data = seda.build_manifest(spec, version="2.2")
    assert validation.validate_manifest(data, SHARED_SEDA, "2.2").valid  # the XSD lets every case below through
    return etree.ElementTree(etree.fromstring(data))


def messages(tree: etree._ElementTree, rules: BusinessRules | None = None, file_count: int | None = 1) -> list[str]:
    rules = rules or BusinessRules(rules=REFERENTIAL)
    issues = check_manifest(tree, rules, file_count=file_count)
    assert all(issue.check == "business" for issue in issues)
    # The streamed reading (socle archive build) finds the same, but for the file count it does not check.
    with tempfile.NamedTemporaryFile(suffix=".xml") as file:
        file.write(etree.tostring(tree, xml_declaration=True, encoding="UTF-8"))
        file.flush()
        streamed = check_manifest_file(file.name, rules)
    assert [issue.message for issue in streamed] == [
        issue.message for issue in issues if "fichier(s)" not in issue.message
    ]
    return [issue.message for issue in issues]


def test_a_conforming_manifest_passes(tmp_path: Path) -> None:
    assert messages(manifest(tmp_path)) == []


def test_missing_title_and_description_level_are_reported_with_their_unit(tmp_path: Path) -> None:
    tree = manifest(tmp_path)
    content = tree.find(".//s:ArchiveUnit/s:Content", NS)
    content.remove(content.find("s:DescriptionLevel", NS))
    content.find("s:Title", NS).text = "  "
    unit = tree.find(".//s:ArchiveUnit", NS)
    path = "/ArchiveTransfer/DataObjectPackage/DescriptiveMetadata/ArchiveUnit[AU1]"
    assert messages(tree) == [
        f"Ligne {unit.sourceline}, {path} : DescriptionLevel manquant : le niveau de description est obligatoire",
        f"Ligne {unit.sourceline}, {path} : Title manquant : l'intitulé est obligatoire",
    ]


def test_end_date_before_start_date(tmp_path: Path) -> None:
    tree = manifest(tmp_path, start_date=date(2025, 3, 1), end_date=date(2024, 3, 1))
    [message] = messages(tree)
    assert message.endswith("Content/EndDate : la date de fin (2024-03-01) précède la date de début (2025-03-01)")
    # Dates of different precision compare on what both say: 2024 and 2024-06-30 are in order.
    end = tree.find(".//s:Content/s:EndDate", NS)
    tree.find(".//s:Content/s:StartDate", NS).text, end.text = "2024", "2024-06-30T12:00:00"
    assert messages(tree) == []


def test_digest_algorithm_must_be_accepted(tmp_path: Path) -> None:
    tree = manifest(tmp_path)
    [message] = messages(tree, BusinessRules(frozenset({"SHA-256"}), REFERENTIAL))
    assert message.endswith(
        "BinaryDataObject[BDO1]/MessageDigest : algorithme d'empreinte « SHA-512 » non accepté (acceptés : SHA-256)"
    )


def test_object_count_must_equal_file_count(tmp_path: Path) -> None:
    tree = manifest(tmp_path)
    assert messages(tree, file_count=2) == [
        "/ArchiveTransfer : le bordereau déclare 1 objet(s) binaire(s) mais le paquet contient 2 fichier(s) : "
        "chaque objet doit avoir exactement un fichier"
    ]
    assert messages(tree, file_count=None) == []  # a manifest alone: nothing to count


def test_rules_come_from_the_referential(tmp_path: Path) -> None:
    tree = manifest(tmp_path, appraisal_rule=("APP-99", None, "Keep"), access_rule=("APP-10", None))
    found = messages(tree)
    assert len(found) == 2
    assert found[0].endswith(
        "Management/AppraisalRule/Rule : règle « APP-99 » inconnue du référentiel de la collectivité"
    )
    assert found[1].endswith(
        "Management/AccessRule/Rule : règle « APP-10 » de catégorie AppraisalRule, utilisée comme AccessRule"
    )
    assert messages(tree, BusinessRules(rules=None)) == []  # no referential: identifiers are not checked


# --- the referential through the API, and the checks in a transfer's report --------------------------------


def test_referential_defaults_then_replaced(kit: Kit) -> None:
    client = kit["archiviste"]
    assert client.get("/archive/referential").json() == {
        "rules": [], "digest_algorithms": ["SHA-512"], "updated_by": None, "updated_at": None,
    }  # fmt: skip
    body = {
        "rules": [
            {"id": "APP-10", "category": "AppraisalRule", "duration": "P10Y", "description": "DUA de dix ans"},
            {"id": "ACC-25", "category": "AccessRule", "duration": "P25Y"},
            {"id": "ACC-00", "category": "AccessRule", "duration": None},
        ],
        "digest_algorithms": ["SHA-512", "SHA-256"],
    }
    saved = client.put("/archive/referential", json=body)
    assert saved.status_code == 200, saved.text
    assert saved.json()["updated_by"] == "archiviste" and saved.json()["digest_algorithms"] == ["SHA-512", "SHA-256"]
    assert [rule["id"] for rule in client.get("/archive/referential").json()["rules"]] == ["APP-10", "ACC-25", "ACC-00"]


@pytest.mark.parametrize(
    "body",
    [
        {"rules": [{"id": "A", "category": "AppraisalRule"}, {"id": "A", "category": "AccessRule"}]},
        {"rules": [{"id": "A", "category": "RègleInconnue"}]},
        {"rules": [{"id": "A", "category": "AccessRule", "duration": "10 ans"}]},
        {"rules": [{"id": "A/../b", "category": "AccessRule"}]},
        {"rules": [], "digest_algorithms": []},
        {"rules": [], "digest_algorithms": ["CRC32"]},
    ],
)
def test_bad_referentials_are_refused(kit: Kit, body: dict[str, Any]) -> None:
    assert_problem(kit["archiviste"].put("/archive/referential", json=body), 422)
    assert kit["archiviste"].get("/archive/referential").json()["updated_by"] is None


def test_only_an_archiviste_sets_the_referential(kit: Kit) -> None:
    assert_problem(kit["agent"].put("/archive/referential", json={"rules": []}), 403)


def test_transfer_report_carries_the_business_findings(kit: Kit) -> None:
    document = upload_document(kit["agent"], make_pdf("empreinte"), title="Délibération n° 5")
    accepted = kit["archiviste"].put("/archive/referential", json={"rules": [], "digest_algorithms": ["SHA-256"]})
    assert accepted.status_code == 200
    body = {"document_ids": [document["id"]], "archival_agency": "AD037", "archival_agreement": "IC-000001"}
    created = kit["archiviste"].post("/archive/transfers", json=body)
    run_jobs()
    transfer = kit["archiviste"].get(f"/archive/transfers/{created.json()['id']}").json()
    assert transfer["status"] == "invalid", transfer
    report = transfer["validation"]
    assert report["status"] == "invalid"
    assert report["checks"] == {"schema": "valid", "profile": None, "business": "invalid"}
    [issue] = report["issues"]
    assert issue["check"] == "business" and issue["line"] and issue["path"].endswith("/MessageDigest")
    assert "algorithme d'empreinte « SHA-512 » non accepté (acceptés : SHA-256)" in issue["message"]

    # Back to what Vitam accepts: the next transfer is valid, every check said (another document: the first one
    # stays in its transfer, which may be validated again).
    kit["archiviste"].put("/archive/referential", json={"rules": []})
    other = upload_document(kit["agent"], make_pdf("empreinte 2"), title="Délibération n° 6")
    again = kit["archiviste"].post(
        "/archive/transfers", json={"document_ids": [other["id"]], "archival_agency": "AD037"}
    )
    run_jobs()
    transfer = kit["archiviste"].get(f"/archive/transfers/{again.json()['id']}").json()
    assert transfer["status"] == "built"
    assert [issue["level"] for issue in transfer["validation"]["issues"]] == ["warning"]  # no entry contract
    assert transfer["validation"]["checks"] == {"schema": "valid", "profile": None, "business": "valid"}
