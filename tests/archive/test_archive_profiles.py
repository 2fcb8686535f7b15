"""Archival profiles: a RelaxNG profile uploaded per tenant, then each transfer naming it validated against it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from archive import packaging, profiles, seda
from archive.seda import NAMESPACES
from socle.errors import InvalidInput

from conftest import Kit, assert_problem, make_pdf, run_jobs, socle_command, upload_document

SEDA = NAMESPACES["2.2"]

# A small profile in the way SHERPA writes them: every unit is an Item or a RecordGrp whose Title follows the
# pattern « Délibération n° N »; the rest of the message is left free.
PROFILE = f"""<?xml version="1.0" encoding="UTF-8"?>
<grammar xmlns="http://relaxng.org/ns/structure/1.0" ns="{SEDA}"
         datatypeLibrary="http://www.w3.org/2001/XMLSchema-datatypes">
  <start>
    <element name="ArchiveTransfer">
      <ref name="attributes"/>
      <zeroOrMore><ref name="not-the-package"/></zeroOrMore>
      <element name="DataObjectPackage">
        <ref name="attributes"/>
        <zeroOrMore><ref name="not-the-description"/></zeroOrMore>
        <element name="DescriptiveMetadata"><oneOrMore><ref name="unit"/></oneOrMore></element>
        <zeroOrMore><ref name="not-the-description"/></zeroOrMore>
      </element>
      <zeroOrMore><ref name="not-the-package"/></zeroOrMore>
    </element>
  </start>
  <define name="unit">
    <element name="ArchiveUnit">
      <ref name="attributes"/>
      <optional><element name="Management"><ref name="free"/></element></optional>
      <element name="Content">
        <element name="DescriptionLevel"><choice><value>Item</value><value>RecordGrp</value></choice></element>
        <element name="Title">
          <data type="string"><param name="pattern">Délibération n° [0-9]+</param></data>
        </element>
        <zeroOrMore><ref name="any"/></zeroOrMore>
      </element>
      <zeroOrMore>
        <choice><ref name="unit"/><element name="DataObjectReference"><ref name="free"/></element></choice>
      </zeroOrMore>
    </element>
  </define>
  <define name="not-the-package">
    <element><anyName><except><name>DataObjectPackage</name></except></anyName><ref name="free"/></element>
  </define>
  <define name="not-the-description">
    <element><anyName><except><name>DescriptiveMetadata</name></except></anyName><ref name="free"/></element>
  </define>
  <define name="attributes"><zeroOrMore><attribute><anyName/></attribute></zeroOrMore></define>
  <define name="free">
    <ref name="attributes"/><zeroOrMore><choice><text/><ref name="any"/></choice></zeroOrMore>
  </define>
  <define name="any"><element><anyName/><ref name="free"/></element></define>
</grammar>
""".encode()


def upload(kit: Kit, name: str, data: bytes, user: str = "archiviste") -> Any:
    return kit[user].put(f"/archive/profiles/{name}", files={"file": ("profil.rng", data, "application/xml")})


def transfer_with(kit: Kit, title: str, profile: str | None = "deliberations") -> dict[str, Any]:
    document = upload_document(kit["agent"], make_pdf(title), title=title)
    # Under an entry contract: no warning besides what the profile says.
    body = {"document_ids": [document["id"]], "archival_agency": "AD037", "profile": profile}
    created = kit["archiviste"].post("/archive/transfers", json=body | {"archival_agreement": "IC-000001"})
    assert created.status_code == 202, created.text
    assert created.json()["profile"] == profile
    run_jobs()
    return kit["archiviste"].get(f"/archive/transfers/{created.json()['id']}").json()


def test_upload_list_and_download(kit: Kit) -> None:
    saved = upload(kit, "deliberations", PROFILE)
    assert saved.status_code == 200, saved.text
    assert saved.json()["sha256"] == hashlib.sha256(PROFILE).hexdigest() and saved.json()["size"] == len(PROFILE)
    assert [p["name"] for p in kit["agent"].get("/archive/profiles").json()] == ["deliberations"]
    downloaded = kit["archiviste"].get("/archive/profiles/deliberations")
    assert downloaded.status_code == 200 and downloaded.content == PROFILE
    # Uploading under the same name replaces it.
    other = PROFILE.replace(b"RecordGrp", b"File")
    assert upload(kit, "deliberations", other).json()["sha256"] == hashlib.sha256(other).hexdigest()
    assert len(kit["archiviste"].get("/archive/profiles").json()) == 1


def test_transfer_following_the_profile_is_valid(kit: Kit) -> None:
    upload(kit, "deliberations", PROFILE)
    transfer = transfer_with(kit, "Délibération n° 12")
    assert transfer["status"] == "built", transfer
    report = transfer["validation"]
    assert report["profile"] == "deliberations" and report["issues"] == []
    assert report["checks"] == {"schema": "valid", "profile": "valid", "business": "valid"}


def test_transfer_departing_from_the_profile_is_invalid_with_the_element_path(kit: Kit) -> None:
    upload(kit, "deliberations", PROFILE)
    transfer = transfer_with(kit, "Arrêté du maire")
    assert transfer["status"] == "invalid", transfer
    report = transfer["validation"]
    assert report["checks"] == {"schema": "valid", "profile": "invalid", "business": "valid"}
    [issue] = report["issues"]
    assert issue["check"] == "profile" and issue["line"]
    assert issue["path"] == "/ArchiveTransfer/DataObjectPackage/DescriptiveMetadata/ArchiveUnit[AU1]/Content/Title"
    assert issue["message"] == (
        f"Ligne {issue['line']}, {issue['path']} : non conforme au profil « deliberations » — "
        "valeur « Arrêté du maire » refusée par le profil (valeurs ou motif imposés)"
    )
    send = kit["archiviste"].post(f"/archive/transfers/{transfer['id']}/send", json={"connector": "sae"})
    assert_problem(send, 409)  # an invalid package never leaves


def test_description_level_outside_the_profile(kit: Kit) -> None:
    """Two documents make a RecordGrp: allowed here, refused by a profile that only takes Item."""
    upload(kit, "items", PROFILE.replace(b"<value>RecordGrp</value>", b""))
    first = upload_document(kit["agent"], make_pdf("1"), title="Délibération n° 1")
    second = upload_document(kit["agent"], make_pdf("2"), title="Délibération n° 2")
    body = {"document_ids": [first["id"], second["id"]], "archival_agency": "A", "profile": "items"}
    created = kit["archiviste"].post("/archive/transfers", json=body)
    run_jobs()
    report = kit["archiviste"].get(f"/archive/transfers/{created.json()['id']}").json()["validation"]
    assert report["status"] == "invalid"
    messages = [issue["message"] for issue in report["issues"]]
    assert any(
        "ArchiveUnit[AU1]/Content/DescriptionLevel" in m and "valeur « RecordGrp » refusée" in m for m in messages
    ), messages


def test_unknown_profile_is_refused_at_request(kit: Kit) -> None:
    document = upload_document(kit["agent"], make_pdf("x"))
    body = {"document_ids": [document["id"]], "archival_agency": "A", "profile": "absent"}
    assert "absent" in assert_problem(kit["archiviste"].post("/archive/transfers", json=body), 404)["detail"]
    assert kit["archiviste"].get("/archive/transfers").json() == []


def test_profiles_are_per_tenant(make_kit: Callable[..., Kit]) -> None:
    kit, other = make_kit(with_identity=False), make_kit(with_identity=False)
    upload(other, "deliberations", PROFILE)
    assert kit["archiviste"].get("/archive/profiles").json() == []
    assert_problem(kit["archiviste"].get("/archive/profiles/deliberations"), 404)
    document = upload_document(kit["agent"], make_pdf("x"))
    body = {"document_ids": [document["id"]], "archival_agency": "A", "profile": "deliberations"}
    assert_problem(kit["archiviste"].post("/archive/transfers", json=body), 404)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"<grammar", "XML mal formé"),
        (b'<schema xmlns="http://www.w3.org/2001/XMLSchema"/>', "pas un schéma RelaxNG"),
        (
            b'<!DOCTYPE g [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<grammar xmlns="http://relaxng.org/ns/structure/1.0"><start><element name="a">'
            b"<value>&x;</value></element></start></grammar>",
            "DTD",
        ),
        (
            b'<grammar xmlns="http://relaxng.org/ns/structure/1.0"><include href="/etc/passwd"/>'
            b'<start><element name="a"><empty/></element></start></grammar>',
            "autonome",
        ),
        (
            b'<grammar xmlns="http://relaxng.org/ns/structure/1.0"><start><ref name="absent"/></start></grammar>',
            "schéma RelaxNG incorrect",
        ),
    ],
)
def test_unusable_profiles_are_refused_in_french(kit: Kit, data: bytes, expected: str) -> None:
    assert expected in assert_problem(upload(kit, "mauvais", data), 422)["detail"]
    assert kit["archiviste"].get("/archive/profiles").json() == []


def test_upload_rules(kit: Kit) -> None:
    assert_problem(upload(kit, "deliberations", PROFILE, user="agent"), 403)
    # The refused field is named (the screens show the message next to it).
    assert assert_problem(upload(kit, "nom invalide!", PROFILE), 422)["field"] == "name"
    refused = kit["archiviste"].put(
        "/archive/profiles/deliberations",
        params={"identifier": "PR\x01"},
        files={"file": ("profil.rng", PROFILE, "application/xml")},
    )
    assert assert_problem(refused, 422)["field"] == "identifier"
    with pytest.raises(InvalidInput) as raised:
        profiles.sae_identifier("x" * (profiles.MAX_IDENTIFIER_LENGTH + 1))
    assert raised.value.extra == {"field": "identifier"}
    too_big = PROFILE + b"<!--" + b"x" * profiles.MAX_PROFILE_BYTES + b"-->"
    assert_problem(upload(kit, "gros", too_big), 413)
    assert kit["archiviste"].get("/archive/profiles").json() == []


# --- the same checks from the command line -------------------------------------------------------------


def test_verify_command_checks_profile_and_business_rules(tmp_path: Path) -> None:
    source = tmp_path / "deliberation.pdf"
    source.write_bytes(make_pdf("ligne de commande"))
    described = packaging.describe_file(source, identify=False)
    agency = seda.Agency("213700000")
    unit = seda.ArchiveUnitSpec(title="Délibération n° 9", files=((described, "BinaryMaster_1"),))
    spec = seda.TransferSpec(
        "CLI-1", None, seda.Agency("AD037"), agency, agency, agency, None, (unit,), datetime(2026, 12, 1, tzinfo=UTC)
    )
    sip = tmp_path / "paquet.zip"
    packaging.write_sip(seda.build_manifest(spec), seda.sip_entries(spec), sip)
    profile = tmp_path / "deliberations.rng"
    profile.write_bytes(PROFILE)

    ok = socle_command("archive", "verify", str(sip), "--profile", str(profile))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Paquet conforme au schéma, profil, contrôles métier passés" in ok.stdout

    strict = tmp_path / "items.rng"
    strict.write_bytes(PROFILE.replace("Délibération".encode(), b"Arr\xc3\xaat\xc3\xa9"))
    refused = socle_command("archive", "verify", str(sip), "--profile", str(strict), "--algorithm", "SHA-256")
    assert refused.returncode == 1
    lines = [line for line in refused.stdout.splitlines() if line.startswith("- ")]
    assert len(lines) == 2, refused.stdout
    assert "Content/Title : non conforme au profil « items.rng » — valeur « Délibération n° 9 »" in lines[0]
    assert "algorithme d'empreinte « SHA-512 » non accepté (acceptés : SHA-256)" in lines[1]


def test_verify_command_shows_the_invented_rules_as_warnings(tmp_path: Path) -> None:
    """Rule ids made up for lack of a referential (« DUA-P18M ») pass the XSD and the checks, not the SAE:
    said as warnings, as the transfer's validation report does; the exit code stays 0."""
    source = tmp_path / "bon.pdf"
    source.write_bytes(make_pdf("bon de commande"))
    described = packaging.describe_file(source, identify=False)
    agency = seda.Agency("213700000")
    rule = ("DUA-P18M", datetime(2025, 1, 1, tzinfo=UTC).date(), "Destroy")
    units = tuple(
        seda.ArchiveUnitSpec(title=f"Bon {n}", files=((described, "BinaryMaster_1"),), appraisal_rule=rule)
        for n in (1, 2)
    )
    group = seda.ArchiveUnitSpec(title="Bons", description_level="RecordGrp", children=units)
    spec = seda.TransferSpec(
        "CLI-2", "IC-1", seda.Agency("AD037"), agency, agency, agency, None, (group,), datetime(2026, 12, 1, tzinfo=UTC)
    )
    sip = tmp_path / "paquet.zip"
    packaging.write_sip(seda.build_manifest(spec), seda.sip_entries(spec), sip)

    found = socle_command("archive", "verify", str(sip))

    assert found.returncode == 0, found.stdout + found.stderr
    warnings = [line for line in found.stdout.splitlines() if line.startswith("avertissement : ")]
    assert len(warnings) == 1, found.stdout
    assert "règle DUA-P18M inventée faute de référentiel" in warnings[0] and "(2 unités concernées)" in warnings[0]
    assert "AppraisalRule/Rule" in warnings[0]
    assert not [line for line in found.stdout.splitlines() if line.startswith("- ")]


# --- what the profile expects, when libxml2 says it ----------------------------------------------------------

# A profile requiring ArchivalAgreement (Vitam's entry contract) after MessageIdentifier; {rest}: what follows
# CodeListVersions, any element by default.
AGREEMENT_PROFILE = f"""<grammar xmlns="http://relaxng.org/ns/structure/1.0" ns="{SEDA}">
  <start>
    <element name="ArchiveTransfer">
      <zeroOrMore><attribute><anyName/></attribute></zeroOrMore>
      <optional><element name="Comment"><text/></element></optional>
      <element name="Date"><text/></element>
      <element name="MessageIdentifier"><text/></element>
      <element name="ArchivalAgreement"><text/></element>
      <element name="CodeListVersions"><ref name="free"/></element>
      {{rest}}
    </element>
  </start>
  <define name="free">
    <zeroOrMore><attribute><anyName/></attribute></zeroOrMore>
    <zeroOrMore><choice><text/><ref name="any"/></choice></zeroOrMore>
  </define>
  <define name="any"><element><anyName/><ref name="free"/></element></define>
</grammar>
"""


def agreement_issues(agreement: str | None, rest: str = '<zeroOrMore><ref name="any"/></zeroOrMore>') -> list[str]:
    agency = seda.Agency("213700000")
    unit = seda.ArchiveUnitSpec(title="Délibération n° 3")
    spec = seda.TransferSpec(
        "P-1", agreement, seda.Agency("AD037"), agency, agency, agency, None, (unit,), datetime(2026, 1, 5, tzinfo=UTC)
    )
    tree = etree.ElementTree(etree.fromstring(seda.build_manifest(spec)))
    profile = profiles.compile_profile(AGREEMENT_PROFILE.format(rest=rest).encode())
    return [issue.message for issue in profiles.validate_against_profile(tree, profile, "vitam")]


def test_a_missing_element_is_named_when_libxml2_names_it() -> None:
    assert agreement_issues("CONTRAT-1") == []
    [message] = agreement_issues(None)
    assert message.endswith(
        "/ArchiveTransfer/CodeListVersions : non conforme au profil « vitam » — élément CodeListVersions inattendu "
        "à cet endroit : le profil attend ArchivalAgreement avant CodeListVersions"
    ), message


def test_without_the_expected_name_in_libxml2_s_log_the_message_says_only_what_is_there() -> None:
    # Every element named, as SHERPA writes them: libxml2 validates ArchiveTransfer's content with an automaton,
    # whose error names nothing expected (« Did not expect element CodeListVersions there »): nothing is made up.
    rest = "".join(
        f'<element name="{name}"><ref name="free"/></element>'
        for name in ("DataObjectPackage", "ArchivalAgency", "TransferringAgency")
    )
    assert agreement_issues("CONTRAT-1", rest) == []
    [message] = agreement_issues(None, rest)
    assert message.endswith(
        "/ArchiveTransfer/CodeListVersions : non conforme au profil « vitam » — élément "
        "CodeListVersions inattendu à cet endroit"
    ), message
