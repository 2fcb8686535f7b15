"""SEDA 2.1 (Vitam edition, XSD 1.1), 2.2 and 2.3: the same transfer built and validated in each version."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from lxml import etree

from archive.packaging import describe_file
from archive.seda import NAMESPACES, Agency, ArchiveUnitSpec, TransferSpec, build_manifest, version_of_namespace
from archive.validation import load_schema, validate_manifest

from conftest import SHARED_SEDA

VERSIONS = ("2.1", "2.2", "2.3")


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> TransferSpec:
    folder = tmp_path_factory.mktemp("versions")
    text = folder / "deliberation.txt"
    text.write_text("Délibération du conseil municipal.\n" * 20, encoding="utf-8")
    described = describe_file(text, "Délibération n°3.txt", identify=False)
    item = ArchiveUnitSpec(
        title="Délibération n°3",
        description="Budget",
        start_date=date(2024, 3, 1),
        end_date=date(2024, 3, 2),
        keywords=("budget", "finances"),
        document_type="Délibération",
        files=((described, "BinaryMaster_1"),),
        appraisal_rule=("APP-10", None, "Destroy"),  # a rule without start date is valid SEDA
        access_rule=("ACC-00001", date(2024, 3, 2)),
    )
    group = ArchiveUnitSpec(title="Conseil municipal 2024", description_level="RecordGrp", children=(item,))
    agency = Agency("MAIRIE-01")
    return TransferSpec(
        message_identifier="V-2024-1",
        archival_agreement=None,
        archival_agency=Agency("AD37"),
        transferring_agency=agency,
        originating_agency=agency,
        submission_agency=agency,
        comment="Versement",
        units=(group,),
        date=datetime(2024, 3, 4, 10, 0, tzinfo=UTC),
    )


def broken(manifest: bytes, version: str) -> bytes:
    """Two schema errors: MessageIdentifier missing, a Size of 0."""
    root = etree.fromstring(manifest)
    ns = NAMESPACES[version]
    root.remove(root.find(f"{{{ns}}}MessageIdentifier"))
    root.find(f".//{{{ns}}}Size").text = "0"
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@pytest.mark.parametrize("version", VERSIONS)
def test_same_spec_is_valid_in_each_version(spec: TransferSpec, version: str) -> None:
    manifest = build_manifest(spec, version=version)

    root = etree.fromstring(manifest)
    assert etree.QName(root).namespace == f"fr:gouv:culture:archivesdefrance:seda:v{version}"
    assert version_of_namespace(etree.QName(root).namespace) == version
    report = validate_manifest(manifest, SHARED_SEDA, version)
    assert report.valid, report.issues
    assert f"/{version}/" in report.schema


@pytest.mark.parametrize("version", VERSIONS)
def test_invalid_manifest_is_reported_in_each_version(spec: TransferSpec, version: str) -> None:
    report = validate_manifest(broken(build_manifest(spec, version=version), version), SHARED_SEDA, version)

    assert not report.valid
    assert report.issues
    # Same report format whatever the validator: a line, a readable path, a French message.
    for issue in report.issues:
        assert issue.line and issue.path and issue.path.startswith("/ArchiveTransfer")
        assert issue.message.startswith(f"Ligne {issue.line}, {issue.path} : ")
    text = " ".join(issue.message for issue in report.issues)
    assert "MessageIdentifier" in text


def test_version_21_reports_each_error_with_its_element(spec: TransferSpec) -> None:
    report = validate_manifest(broken(build_manifest(spec, version="2.1"), "2.1"), SHARED_SEDA, "2.1")

    paths = [issue.path for issue in report.issues]
    assert any(path and path.endswith("BinaryDataObject[BDO1]/Size") for path in paths)
    assert all("non conforme au schéma" in issue.message for issue in report.issues)


def test_wrong_namespace_for_the_version_is_invalid(spec: TransferSpec) -> None:
    report = validate_manifest(build_manifest(spec, version="2.3"), SHARED_SEDA, "2.1")
    assert not report.valid


def test_schemas_are_compiled_once_per_folder() -> None:
    assert load_schema(SHARED_SEDA, "2.1") is load_schema(SHARED_SEDA, "2.1")
    assert load_schema(SHARED_SEDA, "2.3") is load_schema(SHARED_SEDA, "2.3")


def test_version_of_namespace() -> None:
    assert version_of_namespace("fr:gouv:culture:archivesdefrance:seda:v2.0") == "2.0"
    assert version_of_namespace("fr:gouv:culture:archivesdefrance:seda:v1.0") is None
    assert version_of_namespace("urn:autre") is None
