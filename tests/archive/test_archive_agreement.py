"""Every package names its entry contract (ArchivalAgreement) and, with a profile, the SAE's id of that profile
(ManagementMetadata/ArchivalProfile); `socle archive build` checks what `verify` checks before writing anything;
rule ids made up for lack of a referential are said in the report."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from click.testing import CliRunner, Result
from lxml import etree
from sqlalchemy import create_engine, text

from archive import checks, cli, profiles, seda
from archive.packaging import describe_file
from archive.validation import validate_manifest
from socle.db import reset_engines
from socle.migrating import alembic_config, upgrade_all

from conftest import SHARED_SEDA, Kit, assert_problem, make_pdf, run_jobs, upload_document

AGREEMENT, PROFILE_ID = "IC-000001", "PR-000001"


def sherpa_profile(version: str = "2.2", agreement: str = AGREEMENT, profile: str = PROFILE_ID) -> bytes:
    """A profile written the way SHERPA and PASTIS export them (rng: prefix, annotations, rng:value for the
    values they impose): the header and ManagementMetadata are fixed, the rest of the message is left free."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rng:grammar xmlns:rng="http://relaxng.org/ns/structure/1.0"
    xmlns:a="http://relaxng.org/ns/compatibility/annotations/1.0"
    xmlns="{seda.NAMESPACES[version]}" ns="{seda.NAMESPACES[version]}"
    datatypeLibrary="http://www.w3.org/2001/XMLSchema-datatypes">
  <rng:start>
    <rng:element name="ArchiveTransfer">
      <rng:ref name="attributes"/>
      <rng:optional><rng:element name="Comment"><rng:data type="string"/></rng:element></rng:optional>
      <rng:element name="Date"><rng:data type="dateTime"/></rng:element>
      <rng:element name="MessageIdentifier"><rng:data type="token"/></rng:element>
      <rng:element name="ArchivalAgreement">
        <a:documentation>Contrat d'entrée donné par le service d'archives</a:documentation>
        <rng:value>{agreement}</rng:value>
      </rng:element>
      <rng:element name="CodeListVersions"><rng:ref name="free"/></rng:element>
      <rng:element name="DataObjectPackage">
        <rng:ref name="attributes"/>
        <rng:zeroOrMore><rng:element name="DataObjectGroup"><rng:ref name="free"/></rng:element></rng:zeroOrMore>
        <rng:element name="DescriptiveMetadata"><rng:ref name="free"/></rng:element>
        <rng:element name="ManagementMetadata">
          <rng:element name="ArchivalProfile">
            <a:documentation>Profil d'archivage</a:documentation>
            <rng:value>{profile}</rng:value>
          </rng:element>
          <rng:zeroOrMore><rng:ref name="any"/></rng:zeroOrMore>
        </rng:element>
      </rng:element>
      <rng:element name="ArchivalAgency"><rng:ref name="free"/></rng:element>
      <rng:element name="TransferringAgency"><rng:ref name="free"/></rng:element>
    </rng:element>
  </rng:start>
  <rng:define name="attributes">
    <rng:zeroOrMore><rng:attribute><rng:anyName/></rng:attribute></rng:zeroOrMore>
  </rng:define>
  <rng:define name="free">
    <rng:ref name="attributes"/>
    <rng:zeroOrMore><rng:choice><rng:text/><rng:ref name="any"/></rng:choice></rng:zeroOrMore>
  </rng:define>
  <rng:define name="any"><rng:element><rng:anyName/><rng:ref name="free"/></rng:element></rng:define>
</rng:grammar>
""".encode()


def spec_of(tmp_path: Path, agreement: str | None, profile: str | None) -> seda.TransferSpec:
    source = tmp_path / "deliberation.pdf"
    source.write_bytes(make_pdf("contrat"))
    unit = seda.ArchiveUnitSpec(
        title="Délibération n° 1", files=((describe_file(source, identify=False), "BinaryMaster_1"),)
    )
    agency = seda.Agency("213700000")
    return seda.TransferSpec(
        message_identifier="MSG-1",
        archival_agreement=agreement,
        archival_agency=seda.Agency("AD037"),
        transferring_agency=agency,
        originating_agency=agency,
        submission_agency=agency,
        comment="Contrat et profil",
        units=(unit,),
        date=datetime(2026, 12, 3, tzinfo=UTC),
        archival_profile=profile,
    )


def parsed(manifest: bytes) -> etree._ElementTree:
    return etree.ElementTree(etree.fromstring(manifest))


def local_names(element: etree._Element) -> list[str]:
    return [etree.QName(child).localname for child in element]


# --- the manifest -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.1", "2.2", "2.3"])
def test_agreement_and_profile_are_written_where_the_xsd_wants_them(tmp_path: Path, version: str) -> None:
    manifest = seda.build_manifest(spec_of(tmp_path, AGREEMENT, PROFILE_ID), version=version)

    report = validate_manifest(manifest, SHARED_SEDA, version)
    assert report.valid, report.issues
    root = parsed(manifest).getroot()
    header = local_names(root)
    assert header[header.index("MessageIdentifier") + 1 : header.index("MessageIdentifier") + 3] == [
        "ArchivalAgreement",
        "CodeListVersions",
    ]
    ns = {"s": seda.NAMESPACES[version]}
    assert root.findtext("s:ArchivalAgreement", namespaces=ns) == AGREEMENT
    management = root.find("s:DataObjectPackage/s:ManagementMetadata", ns)
    assert management is not None
    assert local_names(management) == ["ArchivalProfile", "OriginatingAgencyIdentifier", "SubmissionAgencyIdentifier"]
    assert management.findtext("s:ArchivalProfile", namespaces=ns) == PROFILE_ID
    # The profile SHERPA would give this SAE accepts it.
    compiled = profiles.compile_profile(sherpa_profile(version))
    assert profiles.validate_against_profile(parsed(manifest), compiled, "contrat") == []


def test_without_them_neither_element_is_written(tmp_path: Path) -> None:
    manifest = seda.build_manifest(spec_of(tmp_path, None, None))
    assert b"ArchivalAgreement" not in manifest and b"ArchivalProfile" not in manifest
    assert validate_manifest(manifest, SHARED_SEDA).valid


@pytest.mark.parametrize(
    ("agreement", "profile", "expected"),
    [
        # libxml2 says where the header goes wrong, not what is missing there.
        (None, PROFILE_ID, "/ArchiveTransfer/CodeListVersions : non conforme au profil « contrat » — élément"),
        ("IC-000002", PROFILE_ID, "valeur « IC-000002 » refusée par le profil"),
        (AGREEMENT, None, "ArchivalProfile"),
    ],
)
def test_a_profile_imposing_them_refuses_a_manifest_without_them(
    tmp_path: Path, agreement: str | None, profile: str | None, expected: str
) -> None:
    manifest = seda.build_manifest(spec_of(tmp_path, agreement, profile))
    assert validate_manifest(manifest, SHARED_SEDA).valid  # the XSD lets it through: only the profile sees it
    issues = profiles.validate_against_profile(parsed(manifest), profiles.compile_profile(sherpa_profile()), "contrat")
    assert issues, "the profile should refuse it"
    assert any(expected in issue.message for issue in issues), [issue.message for issue in issues]
    assert all(issue.check == "profile" for issue in issues)


# --- through the API: a transfer's agreement, a profile's identifier -----------------------------------------


def upload(kit: Kit, name: str, data: bytes, identifier: str | None = None) -> Any:
    query = {"identifier": identifier} if identifier is not None else None
    files = {"file": ("profil.rng", data, "application/xml")}
    return kit["archiviste"].put(f"/archive/profiles/{name}", params=query, files=files)


def transfer(kit: Kit, **extra: Any) -> dict[str, Any]:
    document = upload_document(kit["agent"], make_pdf("Délibération"), title="Délibération n° 3")
    body = {"document_ids": [document["id"]], "archival_agency": "AD037", **extra}
    created = kit["archiviste"].post("/archive/transfers", json=body)
    assert created.status_code == 202, created.text
    run_jobs()
    found = kit["archiviste"].get(f"/archive/transfers/{created.json()['id']}")
    assert found.status_code == 200, found.text
    return dict(found.json())


def manifest_of(kit: Kit, built: dict[str, Any]) -> bytes:
    response = kit["archiviste"].get(f"/archive/transfers/{built['id']}/sip")
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as package:
        return package.read("manifest.xml")


def test_a_profile_identifier_defaults_to_its_name_and_survives_a_new_version(kit: Kit) -> None:
    first = upload(kit, "contrat", sherpa_profile())
    assert first.status_code == 200, first.text
    assert first.json()["identifier"] == "contrat"
    named = upload(kit, "contrat", sherpa_profile(), identifier="  PR-000001 ")
    assert named.json()["identifier"] == PROFILE_ID  # spaces dropped, as the SAE reads a token
    again = upload(kit, "contrat", sherpa_profile("2.2", agreement="IC-000009"))
    assert again.json()["identifier"] == PROFILE_ID  # a new version of the same SAE profile
    assert [p["identifier"] for p in kit["archiviste"].get("/archive/profiles").json()] == [PROFILE_ID]

    for bad in ("   ", "PR\x01", "P" * 101):
        assert_problem(upload(kit, "autre", sherpa_profile(), identifier=bad), 422)
    assert [p["name"] for p in kit["archiviste"].get("/archive/profiles").json()] == ["contrat"]


def test_a_transfer_without_the_agreement_its_profile_imposes_is_invalid(kit: Kit) -> None:
    upload(kit, "contrat", sherpa_profile(), identifier=PROFILE_ID)

    missing = transfer(kit, profile="contrat")
    assert missing["archival_agreement"] is None
    assert missing["status"] == "invalid", missing["validation"]
    assert missing["validation"]["checks"] == {"schema": "valid", "profile": "invalid", "business": "valid"}
    # The profile's refusal, then the warning every package without contract gets.
    found = [(issue["path"], issue["level"]) for issue in missing["validation"]["issues"]]
    assert found == [("/ArchiveTransfer/CodeListVersions", "error"), ("/ArchiveTransfer", "warning")]

    built = transfer(kit, profile="contrat", archival_agreement=f" {AGREEMENT} ")
    assert built["archival_agreement"] == AGREEMENT
    assert built["status"] == "built", built["validation"]
    assert built["validation"]["checks"] == {"schema": "valid", "profile": "valid", "business": "valid"}
    root = parsed(manifest_of(kit, built)).getroot()
    ns = {"s": seda.NAMESPACES["2.2"]}
    assert root.findtext("s:ArchivalAgreement", namespaces=ns) == AGREEMENT
    assert root.findtext("s:DataObjectPackage/s:ManagementMetadata/s:ArchivalProfile", namespaces=ns) == PROFILE_ID
    listed = kit["archiviste"].get("/archive/transfers").json()
    assert {t["id"]: t["archival_agreement"] for t in listed} == {missing["id"]: None, built["id"]: AGREEMENT}


@pytest.mark.parametrize("agreement", ["", "  ", "I" * 101, "IC\x07"])
def test_an_unusable_agreement_is_refused(kit: Kit, agreement: str) -> None:
    body = {"dua_reached": True, "archival_agency": "AD037", "archival_agreement": agreement}
    assert_problem(kit["archiviste"].post("/archive/transfers", json=body), 422)
    assert kit["archiviste"].get("/archive/transfers").json() == []


# --- rule ids made up for lack of a referential ---------------------------------------------------------------


def test_a_made_up_rule_is_a_warning_until_the_referential_is_loaded(kit: Kit) -> None:
    made = kit["admin"].post(
        "/ged/types", json={"code": "bon", "name": "Bon", "dua_months": 18, "final_action": "destroy"}
    )
    assert made.status_code == 201, made.text
    ids = []
    for title in ("Bon 1", "Bon 2"):
        added = kit["admin"].post(
            "/ged/documents",
            files={"file": ("bon.pdf", make_pdf(title), "application/pdf")},
            data={"title": title, "type": "bon"},
        )
        assert added.status_code == 201, added.text
        ids.append(added.json()["id"])
    created = kit["archiviste"].post("/archive/transfers", json={"document_ids": ids, "archival_agency": "AD037"})
    assert created.status_code == 202, created.text
    run_jobs()
    built = kit["archiviste"].get(f"/archive/transfers/{created.json()['id']}").json()

    assert built["status"] == "built"  # still sendable: the archivist decides
    report = built["validation"]
    assert report["status"] == "valid" and report["checks"]["business"] == "valid"
    missing, warning = report["issues"]  # no entry contract in this transfer either
    assert missing["level"] == "warning" and "ArchivalAgreement absent" in missing["message"]
    assert warning["level"] == "warning" and warning["check"] == "business"
    assert warning["path"].endswith("/Management/AppraisalRule/Rule") and warning["line"]
    assert warning["message"] == (
        f"Ligne {warning['line']}, {warning['path']} : règle DUA-P18M inventée faute de référentiel : "
        "chargez le référentiel de règles de votre SAE (2 unités concernées)"
    )

    rules = [{"id": "APP-18", "category": "AppraisalRule", "duration": "P18M"}]
    assert kit["archiviste"].put("/archive/referential", json={"rules": rules}).status_code == 200
    again = kit["archiviste"].post(f"/archive/transfers/{built['id']}/validate")
    assert again.status_code == 200, again.text
    report = again.json()["validation"]
    assert again.json()["status"] == "invalid"  # the referential now says the SAE does not know it
    errors = [issue for issue in report["issues"] if issue["level"] == "error"]
    assert errors and all("DUA-P18M » inconnue du référentiel" in issue["message"] for issue in errors)
    assert [issue["message"] for issue in report["issues"] if issue["level"] == "warning"] == [
        "/ArchiveTransfer : ArchivalAgreement absent : Vitam refuse le versement sans contrat d'entrée"
    ]


def test_invented_rules_are_only_those_made_up_without_referential() -> None:
    ns = seda.NAMESPACES["2.2"]
    tree = parsed(
        f'<ArchiveTransfer xmlns="{ns}"><ArchiveUnit id="AU1"><Management>'
        "<AppraisalRule><Rule>DUA-P10Y</Rule><FinalAction>Keep</FinalAction></AppraisalRule>"
        "<AccessRule><Rule>ACC-25</Rule></AccessRule></Management></ArchiveUnit></ArchiveTransfer>".encode()
    )
    [issue] = checks.invented_rules(tree, checks.BusinessRules())
    assert "règle DUA-P10Y inventée faute de référentiel" in issue.message and issue.check == "business"
    assert checks.invented_rules(tree, checks.BusinessRules(rules={"DUA-P10Y": "AppraisalRule"})) == []


# --- `socle archive build` --------------------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "versement"
    root.mkdir()
    (root / "deliberation.txt").write_text("Délibération\n", encoding="utf-8")
    return root


def build(folder: Path, output: Path, *args: str) -> Result:
    options = ["--archival-agency", "AD037", "--transferring-agency", "M1", "--output", str(output)]
    return CliRunner().invoke(cli.group, ["build", str(folder), *options, *args])


@pytest.mark.parametrize("version", ["2.1", "2.2", "2.3"])
def test_build_writes_agreement_and_profile_and_follows_the_profile(folder: Path, tmp_path: Path, version: str) -> None:
    profile = tmp_path / "contrat.rng"
    profile.write_bytes(sherpa_profile(version))
    output = tmp_path / "sip.zip"

    done = build(
        folder, output, "--version", version, "--archival-agreement", AGREEMENT,
        "--archival-profile", PROFILE_ID, "--profile", str(profile),
    )  # fmt: skip

    assert done.exit_code == 0, done.output
    assert f"conforme au schéma SEDA {version}" in done.output
    assert "Profil « contrat.rng » respecté." in done.output and "Contrôles métier passés." in done.output
    with zipfile.ZipFile(output) as package:
        manifest = package.read("manifest.xml")
    root = parsed(manifest).getroot()
    ns = {"s": seda.NAMESPACES[version]}
    assert root.findtext("s:ArchivalAgreement", namespaces=ns) == AGREEMENT
    assert root.findtext("s:DataObjectPackage/s:ManagementMetadata/s:ArchivalProfile", namespaces=ns) == PROFILE_ID


def test_build_refuses_what_the_profile_or_the_sae_would_and_writes_nothing(folder: Path, tmp_path: Path) -> None:
    profile = tmp_path / "contrat.rng"
    profile.write_bytes(sherpa_profile())
    output = tmp_path / "out" / "sip.zip"
    output.parent.mkdir()

    refused = build(folder, output, "--archival-profile", PROFILE_ID, "--profile", str(profile))
    assert refused.exit_code == 1, refused.output
    assert "aucun paquet écrit : le manifeste n'est pas conforme au profil « contrat.rng »." in refused.output
    assert "/ArchiveTransfer/CodeListVersions : non conforme au profil « contrat.rng »" in refused.output
    assert list(output.parent.iterdir()) == []  # neither the package nor a temporary file

    algorithm = build(folder, output, "--algorithm", "SHA-256", "--archival-agreement", AGREEMENT)
    assert algorithm.exit_code == 1, algorithm.output
    assert "n'est pas conforme aux contrôles métier." in algorithm.output
    assert "algorithme d'empreinte « SHA-512 » non accepté (acceptés : SHA-256)" in algorithm.output
    assert list(output.parent.iterdir()) == []

    both = build(folder, output, "--algorithm", "SHA-256", "--archival-profile", PROFILE_ID, "--profile", str(profile))
    assert both.exit_code == 1
    assert "n'est pas conforme au profil « contrat.rng » ni aux contrôles métier." in both.output

    accepted = build(folder, output, "--algorithm", "SHA-256", "--algorithm", "SHA-512")
    assert accepted.exit_code == 0, accepted.output
    assert [path.name for path in output.parent.iterdir()] == ["sip.zip"]


def test_build_refuses_bad_options_before_reading_anything(folder: Path, tmp_path: Path) -> None:
    output = tmp_path / "sip.zip"
    absent = build(folder, output, "--profile", str(tmp_path / "absent.rng"), "--archival-agreement", " ")
    assert absent.exit_code == 1
    assert "Le profil « " in absent.output and "absent.rng » n'existe pas." in absent.output
    assert "--archival-agreement : identifiant invalide" in absent.output
    not_relaxng = tmp_path / "profil.rng"
    not_relaxng.write_bytes(b"<grammar")
    bad = build(folder, output, "--profile", str(not_relaxng))
    assert bad.exit_code == 1 and "XML mal formé" in bad.output
    assert not output.exists()


# --- the migration ---------------------------------------------------------------------------------------------


def _profiles_keep_their_name_as_identifier(url: str) -> None:
    upgrade_all(url)
    command.downgrade(alembic_config("archive", url), "arc0003")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO archive_profiles (id, tenant_id, name, object_key, size, uploaded_by, uploaded_at) "
                "VALUES ('p1', 't1', 'deliberations', :key, 10, 'archiviste', CURRENT_TIMESTAMP)"
            ),
            {"key": "a" * 64},
        )
    engine.dispose()
    command.upgrade(alembic_config("archive", url), "head")
    engine = create_engine(url)
    with engine.begin() as connection:
        found = connection.execute(text("SELECT identifier FROM archive_profiles WHERE id = 'p1'")).scalar_one()
        assert found == "deliberations"
        connection.execute(text("DELETE FROM archive_profiles WHERE id = 'p1'"))
    engine.dispose()
    command.downgrade(alembic_config("archive", url), "arc0003")
    command.upgrade(alembic_config("archive", url), "head")


def test_arc0004_gives_existing_profiles_their_name_on_sqlite(tmp_path: Path) -> None:
    try:
        _profiles_keep_their_name_as_identifier(f"sqlite:///{tmp_path / 'old.db'}")
    finally:
        reset_engines()


@pytest.mark.integration
def test_arc0004_gives_existing_profiles_their_name_on_postgresql(own_postgres_url: str) -> None:
    try:
        _profiles_keep_their_name_as_identifier(own_postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    finally:
        reset_engines()
