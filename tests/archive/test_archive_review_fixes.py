"""Fixes after a review of the archive service: Vitam's replies without request identifier, transfers never
answered, the entry contract of interop flows, duplicate ids, hostile packages, far dates, long names, usages."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from lxml import etree
from sae_messages import Event, acknowledgement, sae_sends, transfer_reply
from sqlalchemy import select
from test_archive_abandon import abandon, audit_lines, document
from test_archive_lifecycle import sent_transfer, transfer_of

from archive import checks, inspection, jobs, packaging, replies, seda, sources, validation, zipstream
from archive.models import Transfer
from archive.service import Controls, validate_package
from interop import flows
from socle import messages
from socle.db import new_session, transaction
from socle.errors import InvalidInput
from socle.models import Job
from socle.storage import get_store

from conftest import SHARED_SEDA, Kit, assert_problem, make_pdf, missing, run_jobs, upload_document

SANITY_KO = (Event("SANITY_CHECK_SIP", "Contrôle sanitaire", "KO", "SANITY_CHECK_SIP.KO", "virus"),)

# --- 1. Vitam's refusal of a package it could not read: MessageRequestIdentifier « Unknown » or empty ---------


@pytest.mark.parametrize("request_identifier", ["Unknown", ""])
def test_a_vitam_refusal_naming_no_request_ends_the_transfer_it_was_fetched_for(
    kit: Kit, request_identifier: str
) -> None:
    transfer = sent_transfer(kit)
    [document_id] = transfer["document_ids"]
    reply = transfer_reply("2.1", request_identifier, "KO", "aeeaaaaaaghf", events=SANITY_KO)

    sae_sends(kit.tenant_id, transfer["id"], "reply", reply)

    rejected = transfer_of(kit, transfer["id"])
    assert rejected["status"] == "rejected", rejected["messages"]
    assert rejected["error"].startswith("Transfert refusé par le système d'archivage (code KO).")
    assert "virus" in rejected["error"]
    assert [message["status"] for message in rejected["messages"]] == ["recorded"]
    assert document(kit, document_id)["disposal"] is None  # back in the GED, not transferred


def test_an_acceptance_naming_no_request_is_refused(kit: Kit) -> None:
    transfer = sent_transfer(kit)

    sae_sends(kit.tenant_id, transfer["id"], "reply", transfer_reply("2.2", "Unknown", "OK", units={"AU1": "s-1"}))

    seen = transfer_of(kit, transfer["id"])
    assert seen["status"] == "delivered" and seen["sae_identifiers"] is None
    [message] = seen["messages"]
    assert message["status"] == "refused"
    assert "accepte un paquet sans nommer le bordereau" in message["refusal"]
    assert transfer["message_identifier"] in message["refusal"]


def test_a_missing_request_identifier_is_still_unreadable() -> None:
    root = etree.fromstring(transfer_reply("2.2", "M-1", "KO"))
    root.remove(root.find(f"{{{seda.NAMESPACES['2.2']}}}MessageRequestIdentifier"))
    with pytest.raises(replies.ReplyError, match="MessageRequestIdentifier est absent"):
        replies.parse_sae_message(etree.tostring(root))


@pytest.mark.parametrize("acknowledged", [False, True])
def test_a_transfer_never_answered_may_be_abandoned(kit: Kit, acknowledged: bool) -> None:
    transfer = sent_transfer(kit)
    [document_id] = transfer["document_ids"]
    request = transfer["message_identifier"]
    if acknowledged:
        sae_sends(kit.tenant_id, transfer["id"], "acknowledgement", acknowledgement("2.2", request, "ACK-1"))
    assert document(kit, document_id)["disposal"] == "transferred"

    answer = abandon(kit, transfer["id"], "Aucune réponse du SAE depuis trois mois")

    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "abandoned"
    [(_, _, details)] = audit_lines(kit.tenant_id, transfer["id"], "archive.transfer.abandoned")
    assert details["previous"] == ("acknowledged" if acknowledged else "delivered")
    assert details["sae_has_package"] is True
    run_jobs()
    assert document(kit, document_id)["disposal"] is None  # back in the GED, as for any abandon
    with new_session() as session:  # the delivery went through: nothing to cancel in interop
        cancels = select(Job).where(Job.function == messages.INTEROP_CANCEL_DELIVERY.function)
        assert session.execute(cancels.where(Job.tenant_id == kit.tenant_id)).first() is None

    # The SAE answers after all: kept, refused, nothing moves.
    sae_sends(kit.tenant_id, transfer["id"], "reply", transfer_reply("2.2", request, "OK", units={"AU1": "s-1"}))
    seen = transfer_of(kit, transfer["id"])
    assert seen["status"] == "abandoned" and seen["messages"][-1]["status"] == "refused"
    assert "le versement a été abandonné" in seen["messages"][-1]["refusal"]
    run_jobs()
    assert document(kit, document_id)["disposal"] is None


def test_a_transfer_being_sent_or_ended_is_not_abandoned(kit: Kit) -> None:
    doc = upload_document(kit["agent"], make_pdf("Délibération"), title="Délibération")
    created = kit["archiviste"].post("/archive/transfers", json={"document_ids": [doc["id"]], "archival_agency": "A"})
    run_jobs()
    kit["admin"].post("/interop/connectors", json={"name": "sae", "kind": "depot", "config": {"path": "s"}})
    transfer_id = created.json()["id"]
    sent = kit["archiviste"].post(f"/archive/transfers/{transfer_id}/send", json={"connector": "sae"})
    assert sent.json()["status"] == "sending"

    refused = assert_problem(abandon(kit, transfer_id), 409)
    assert "pendant son envoi" in refused["detail"] and refused["transfer_status"] == "sending"

    run_jobs()
    request = transfer_of(kit, transfer_id)["message_identifier"]
    sae_sends(kit.tenant_id, transfer_id, "reply", transfer_reply("2.2", request, "KO", events=SANITY_KO))
    ended = assert_problem(abandon(kit, transfer_id), 409)
    assert "déjà terminé" in ended["detail"] and ended["transfer_status"] == "rejected"


# --- 2. The entry contract of an interop « actes » flow ---------------------------------------------------------


def archive_metadata(**archive: Any) -> dict[str, Any]:
    return {"archive": {"connector": "sae", "archival_agency": "AD037", **archive}}


def test_the_flow_settings_carry_the_entry_contract() -> None:
    settings = flows.archive_settings(archive_metadata(archival_agreement="  IC-000001 "))
    assert settings is not None and settings["archival_agreement"] == "IC-000001"
    without = flows.archive_settings(archive_metadata())
    assert without is not None and without["archival_agreement"] is None
    for wrong in ("I" * 101, "IC\x00", 12, ["IC"]):
        with pytest.raises(InvalidInput, match="archival_agreement"):
            flows.archive_settings(archive_metadata(archival_agreement=wrong))


def test_a_flow_transfer_is_built_under_the_flow_entry_contract(kit: Kit) -> None:
    doc = upload_document(kit["agent"], make_pdf("Délibération signée"), title="Délibération n° 9")
    flow = SimpleNamespace(
        id="flux-acte-9",
        tenant_id=kit.tenant_id,
        steps=4,
        created_by="user:agent",
        flow_metadata={"objet": "Budget", **archive_metadata(archival_agreement="IC-000001", document_ids=[doc["id"]])},
        data={"ged_documents": {"aracte": doc["id"]}, "act_id": "DEL_9"},
    )
    with transaction() as session:  # what the flow does once « classé »
        flows._actes_archive(session, flow, None)  # type: ignore[arg-type]
    with new_session() as session:
        request = select(Job).where(Job.function == messages.ARCHIVE_REQUEST_TRANSFER.function)
        job = session.execute(request.where(Job.tenant_id == kit.tenant_id)).scalar_one()
        assert job.arguments["archival_agreement"] == "IC-000001"

    run_jobs()  # the archive builds the package; its answer to this stand-in flow finds no flow (logged, harmless)

    with new_session() as session:
        transfer = session.execute(select(Transfer).where(Transfer.tenant_id == kit.tenant_id)).scalar_one()
        assert transfer.archival_agreement == "IC-000001" and transfer.status == "built", transfer.error
        sip_key = transfer.sip_key
    built = transfer_of(kit, transfer.id)
    assert built["validation"]["issues"] == []  # the contract is there: no warning
    with get_store().local_path(sip_key or "") as path, zipfile.ZipFile(path) as sip:
        assert b"<ArchivalAgreement>IC-000001</ArchivalAgreement>" in sip.read("manifest.xml")


def test_a_transfer_asked_before_the_entry_contract_existed_is_built_without_one(kit: Kit) -> None:
    """A job queued by the previous version (no « archival_agreement ») runs after the upgrade: null, no TypeError."""
    doc = upload_document(kit["agent"], make_pdf("Délibération d'avant"), title="Délibération n° 11")
    flow = SimpleNamespace(
        id="flux-acte-11",
        tenant_id=kit.tenant_id,
        steps=4,
        created_by="user:agent",
        flow_metadata={"objet": "Budget", **archive_metadata(document_ids=[doc["id"]])},
        data={"ged_documents": {"aracte": doc["id"]}, "act_id": "DEL_11"},
    )
    asked = select(Job).where(
        Job.tenant_id == kit.tenant_id, Job.function == messages.ARCHIVE_REQUEST_TRANSFER.function
    )
    with transaction() as session:
        flows._actes_archive(session, flow, None)  # type: ignore[arg-type]
        job = session.execute(asked).scalar_one()
        job.arguments = {name: value for name, value in job.arguments.items() if name != "archival_agreement"}

    run_jobs()

    with new_session() as session:
        job = session.execute(asked).scalar_one()
        assert "archival_agreement" not in job.arguments and job.status == "done", job.last_error
        transfer = session.execute(select(Transfer).where(Transfer.tenant_id == kit.tenant_id)).scalar_one()
        assert transfer.archival_agreement is None and transfer.status == "built", transfer.error


def test_a_package_without_entry_contract_is_warned_of(kit: Kit) -> None:
    doc = upload_document(kit["agent"], make_pdf("Sans contrat"), title="Délibération n° 10")
    created = kit["archiviste"].post(
        "/archive/transfers", json={"document_ids": [doc["id"]], "archival_agency": "AD037"}
    )
    run_jobs()
    built = transfer_of(kit, created.json()["id"])

    assert built["status"] == "built"  # a warning only: still sendable
    [warning] = built["validation"]["issues"]
    assert warning["level"] == "warning" and warning["check"] == "business"
    assert warning["message"] == (
        "/ArchiveTransfer : ArchivalAgreement absent : Vitam refuse le versement sans contrat d'entrée"
    )


def test_job_request_transfer_refuses_a_contract_written_by_hand(kit: Kit) -> None:
    with pytest.raises(InvalidInput, match="contrat d'entrée"):
        jobs.request_transfer(
            tenant_id=kit.tenant_id, flow_id="flux-x", document_ids=["d"], archival_agency="AD037",
            archival_agreement="I" * 101, connector="sae", profile=None, comment=None, username=None,
        )  # fmt: skip


# --- 3. Duplicate ids in the streamed validation ---------------------------------------------------------------


def one_file_spec(tmp_path: Path, usage: str = "BinaryMaster_1", filename: str = "a.txt") -> seda.TransferSpec:
    path = tmp_path / "a.txt"
    path.write_bytes(b"bonjour\n")
    described = packaging.describe_file(path, filename, identify=False)
    agency = seda.Agency("213700000")
    unit = seda.ArchiveUnitSpec(title="T", files=((described, usage),))
    when = datetime(2026, 12, 1, tzinfo=UTC)
    return seda.TransferSpec("M-1", "IC-1", seda.Agency("AD037"), agency, agency, agency, None, (unit,), when)


@pytest.mark.parametrize("version", ["2.2", "2.3"])
def test_a_group_and_a_unit_sharing_an_id_are_invalid(tmp_path: Path, version: str) -> None:
    manifest = seda.build_manifest(one_file_spec(tmp_path), version=version)
    assert validation.validate_manifest(manifest, SHARED_SEDA, version).valid
    shared = manifest.replace(b'id="GRP1"', b'id="AU1"').replace(
        b"<DataObjectGroupReferenceId>GRP1", b"<DataObjectGroupReferenceId>AU1"
    )

    report = validation.validate_manifest(shared, SHARED_SEDA, version)

    assert not report.valid
    assert any("AU1" in issue.message for issue in report.issues), report.issues


# --- 4, 6, 7. Inspecting hostile packages ------------------------------------------------------------------------

NS22 = seda.NAMESPACES["2.2"]


def package(tmp_path: Path, objects: str, units: str, files: dict[str, bytes]) -> Path:
    manifest = (
        f'<?xml version="1.0"?><ArchiveTransfer xmlns="{NS22}"><MessageIdentifier>m</MessageIdentifier>'
        f"<DataObjectPackage>{objects}<DescriptiveMetadata>{units}</DescriptiveMetadata></DataObjectPackage>"
        "</ArchiveTransfer>"
    )
    path = tmp_path / "paquet.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.xml", manifest)
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def binary(object_id: str, data: bytes, *, size: str | None = None, algorithm: str = "SHA-512") -> str:
    digest = hashlib.new(algorithm.replace("-", "").lower(), data).hexdigest()
    return (
        f'<BinaryDataObject id="{object_id}"><DataObjectVersion>BinaryMaster_1</DataObjectVersion>'
        f'<Uri>content/a.txt</Uri><MessageDigest algorithm="{algorithm}">{digest}</MessageDigest>'
        f"<Size>{size if size is not None else len(data)}</Size></BinaryDataObject>"
    )


def au(unit_id: str, group_id: str, inside: str = "") -> str:
    return (
        f'<ArchiveUnit id="{unit_id}"><Content><DescriptionLevel>File</DescriptionLevel><Title>{unit_id}</Title>'
        f"</Content><DataObjectReference>{inside}<DataObjectGroupReferenceId>{group_id}</DataObjectGroupReferenceId>"
        "</DataObjectReference></ArchiveUnit>"
    )


def test_objects_sharing_an_entry_read_it_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zeros = b"\0" * (1024 * 1024)
    objects = "".join(binary(f"B{index}", zeros) for index in range(50))
    path = package(
        tmp_path, f'<DataObjectGroup id="G">{objects}</DataObjectGroup>', au("U", "G"), {"content/a.txt": zeros}
    )
    reads: list[str] = []
    original = inspection.read_chunks

    def counted(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: inspection.InspectionLimits) -> Any:
        reads.append(info.filename)
        return original(archive, info, limits)

    monkeypatch.setattr(inspection, "read_chunks", counted)
    report = inspection.inspect_sip(path)

    assert reads.count("content/a.txt") == 1  # not 50 MB hashed for 1 MB of zeros
    assert all(obj.ok and obj.computed_size == len(zeros) for obj in report.objects)


def test_bytes_read_count_against_the_total_limit(tmp_path: Path) -> None:
    data = b"x" * (1024 * 1024)
    objects = "".join(binary(f"B{n}", data, algorithm=name) for n, name in enumerate(("SHA-512", "SHA-256", "MD5")))
    path = package(
        tmp_path, f'<DataObjectGroup id="G">{objects}</DataObjectGroup>', au("U", "G"), {"content/a.txt": data}
    )
    limits = inspection.InspectionLimits(max_total_size=2 * 1024 * 1024 + 512, max_ratio=10_000)

    report = inspection.inspect_sip(path, limits)

    # Each algorithm reads the entry once: the third read goes past the limit of two.
    [problem] = [p for p in report.all_problems if "en tout" in p]
    assert problem.startswith("L'objet B2 : lecture interrompue, le paquet fait lire plus de")


@pytest.mark.parametrize("size", ["²", "9" * 5000, "-5", "1e3"])
def test_a_size_that_is_not_ascii_digits_is_reported(tmp_path: Path, size: str) -> None:
    data = b"bonjour"
    group = f'<DataObjectGroup id="G">{binary("B1", data, size=size)}</DataObjectGroup>'
    path = package(tmp_path, group, au("U", "G"), {"content/a.txt": data})

    report = inspection.inspect_sip(path)
    verified = packaging.verify_sip(path, inspection.InspectionLimits())

    [problem] = report.all_problems
    assert problem.startswith("L'objet B1 déclare une taille invalide : « ") and len(problem) < 120
    assert verified == [problem]


def test_comments_and_paper_records_are_not_dangling_references(tmp_path: Path) -> None:
    data = b"bonjour"
    physical = (
        '<DataObjectGroup id="G2"><PhysicalDataObject id="P1"><DataObjectVersion>PhysicalMaster_1'
        "</DataObjectVersion><PhysicalId>boîte-12</PhysicalId></PhysicalDataObject></DataObjectGroup>"
    )
    groups = f'<DataObjectGroup id="G1">{binary("B1", data)}</DataObjectGroup>{physical}'
    units = au("U1", "G1", "<!-- numérisé -->") + au("U2", "G2", "<?pi x?>")
    path = package(tmp_path, groups, units, {"content/a.txt": data})

    report = inspection.inspect_sip(path)

    assert report.ok, report.all_problems
    assert [unit.object_ids for unit in report.units] == [("B1",), ("P1",)]
    assert "objet P1 (physique ou non vérifiable)" in "\n".join(inspection.render_text(report))


# --- 5. Dates a zip cannot hold, dates datetime cannot hold -------------------------------------------------------


def test_a_file_dated_after_2107_is_packed_with_the_last_zip_date(tmp_path: Path) -> None:
    folder = tmp_path / "Dossier"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"bonjour\n")
    in_2150 = datetime(2150, 1, 1, tzinfo=UTC).timestamp()
    os.utime(folder / "a.txt", (in_2150, in_2150))
    spec, plan = sources.folder_transfer(folder, archival_agency="AD037", transferring_agency="213700000")

    packaging.build_sip(spec, plan, tmp_path / "paquet.zip", identify=False)

    with zipfile.ZipFile(tmp_path / "paquet.zip") as sip:
        [entry] = [info for info in sip.infolist() if info.filename.startswith("content/")]
        assert entry.date_time == (2107, 12, 31, 23, 59, 58)
        assert b"<LastModified>2150-01-01T00:00:00" in sip.read("manifest.xml")  # the file's own date
    assert zipstream._dos_time(datetime(1970, 1, 1, tzinfo=UTC)) == (0, 1 << 5 | 1)


@pytest.fixture
def far_dated_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder whose file is dated in the year 33658, on a file system that keeps such a date (tmpfs; ext4
    stops in 2446), removed afterwards."""
    for base in (tmp_path, Path("/dev/shm")):
        if not base.is_dir():
            continue
        work = Path(tempfile.mkdtemp(dir=base))
        folder = work / "Dossier"
        folder.mkdir()
        (folder / "a.txt").write_bytes(b"bonjour\n")
        os.utime(folder / "a.txt", (1e12, 1e12))
        if (folder / "a.txt").stat().st_mtime == 1e12:
            yield folder
            shutil.rmtree(work)
            return
        shutil.rmtree(work)
    missing("aucun système de fichiers ici (dossier temporaire, /dev/shm) ne garde une date au-delà de l'an 9999")


def test_a_date_beyond_year_9999_is_a_problem_naming_the_file(tmp_path: Path, far_dated_folder: Path) -> None:
    assert packaging.file_date(1e12) is None and packaging.file_date(0) == datetime(1970, 1, 1, tzinfo=UTC)
    folder = far_dated_folder
    expected = f"« a.txt » : {packaging.UNREADABLE_DATE}."

    with pytest.raises(sources.SourceError) as found:
        sources.folder_transfer(folder, archival_agency="AD037", transferring_agency="213700000")
    assert found.value.problems == [expected]

    # The date changed between the first walk and the build: the build refuses it the same way.
    spec = sources._transfer(folder, (), "AD037", "213700000", None, None, None)
    with pytest.raises(packaging.BuildRefused) as refused:
        packaging.build_sip(spec, sources.FolderPlan(folder), tmp_path / "paquet.zip", identify=False)
    assert expected in refused.value.problems
    with pytest.raises(OSError, match="années 1 à 9999"):
        packaging.describe_file(folder / "a.txt", identify=False)


# --- 8. Entry names within what unzip can write ---------------------------------------------------------------------


def test_a_long_cjk_name_fits_a_file_system_name(tmp_path: Path) -> None:
    name = "議事録" * 70 + ".pdf"
    spec = one_file_spec(tmp_path, filename=name)
    [(entry, _)] = seda.sip_entries(spec)
    last = entry.rpartition("/")[2]
    assert len(last.encode()) <= seda.MAX_NAME_BYTES and last.startswith("BDO1_議事録") and last.endswith(".pdf")
    last.encode().decode()  # never half a character

    sip = tmp_path / "paquet.zip"
    packaging.write_sip(seda.build_manifest(spec), seda.sip_entries(spec), sip)
    with zipfile.ZipFile(sip) as archive:
        archive.extractall(tmp_path / "extrait")  # « File name too long » before
    assert (tmp_path / "extrait" / entry).read_bytes() == b"bonjour\n"


# --- 9. Replies without code, Vitam's test ingests ----------------------------------------------------------------


def test_a_reply_without_code_is_unreadable_and_moves_nothing(kit: Kit) -> None:
    transfer = sent_transfer(kit)
    with pytest.raises(replies.ReplyError, match="ReplyCode absent ou vide"):
        replies.parse_sae_message(transfer_reply("2.2", transfer["message_identifier"], None))

    sae_sends(kit.tenant_id, transfer["id"], "reply", transfer_reply("2.2", transfer["message_identifier"], None))

    seen = transfer_of(kit, transfer["id"])
    assert seen["status"] == "delivered"
    [message] = seen["messages"]
    assert message["status"] == "refused" and "ReplyCode absent ou vide" in message["refusal"]


@pytest.mark.parametrize("code", ["Test OK", "Test WARNING", "Test KO"])
def test_a_vitam_test_ingest_is_said_and_never_accepted(code: str) -> None:
    reply = replies.parse_sae_message(transfer_reply("2.1", "M-1", code))
    assert reply.outcome == "rejected" and reply.test_ingest
    assert reply.verdict().startswith(f"Entrée de test (test à blanc) du système d'archivage (code {code})")
    assert "rien n'a été archivé" in reply.verdict()


# --- 10. Object usages --------------------------------------------------------------------------------------------


def usage_tree(tmp_path: Path, binary_usage: str, physical_usage: str = "PhysicalMaster") -> etree._ElementTree:
    manifest = seda.build_manifest(one_file_spec(tmp_path), version="2.2")
    manifest = manifest.replace(b"BinaryMaster_1", binary_usage.encode())
    physical = (
        f'<DataObjectGroup id="GRP9"><PhysicalDataObject id="PDO1"><DataObjectVersion>{physical_usage}'
        "</DataObjectVersion><PhysicalId>boîte-3</PhysicalId></PhysicalDataObject></DataObjectGroup>"
    )
    manifest = manifest.replace(b"<DescriptiveMetadata>", physical.encode() + b"<DescriptiveMetadata>", 1)
    return etree.ElementTree(etree.fromstring(manifest))


@pytest.mark.parametrize("usage", ["BinaryMaster_0", "BinaryMaster", "Dissemination_12", "TextContent_1"])
def test_usages_vitam_accepts_pass(tmp_path: Path, usage: str) -> None:
    tree = usage_tree(tmp_path, usage, "PhysicalMaster_0")
    assert checks.check_manifest(tree, checks.BusinessRules()) == []
    assert seda.USAGE_PATTERN.fullmatch(usage)
    seda.build_manifest(one_file_spec(tmp_path, usage))  # socle builds it too


@pytest.mark.parametrize(("usage", "physical"), [("Original_1", "PhysicalMaster"), ("BinaryMaster_1", "Papier_1")])
def test_an_unknown_usage_is_a_business_error(tmp_path: Path, usage: str, physical: str) -> None:
    tree = usage_tree(tmp_path, usage, physical)
    path = tmp_path / "manifest.xml"
    tree.write(str(path))

    for issues in (
        checks.check_manifest(tree, checks.BusinessRules()),
        checks.check_manifest_file(str(path), checks.BusinessRules()),
    ):
        [issue] = issues
        assert issue.check == "business" and issue.path and issue.path.endswith("/DataObjectVersion")
        wrong = usage if usage != "BinaryMaster_1" else physical
        assert f"usage « {wrong} » inconnu : attendu BinaryMaster, Dissemination" in issue.message


def test_validate_package_reports_a_wrong_usage(tmp_path: Path, kit: Kit) -> None:
    manifest = seda.build_manifest(one_file_spec(tmp_path), version="2.2").replace(b"BinaryMaster_1", b"Original")

    report = validate_package(manifest, "2.2", Controls(checks.BusinessRules()), file_count=1)

    assert report["status"] == "invalid" and report["checks"] == {
        "schema": "valid",
        "profile": None,
        "business": "invalid",
    }
    [issue] = report["issues"]  # the manifest names its entry contract (IC-1): no warning
    assert issue["level"] == "error" and "usage « Original » inconnu" in issue["message"]
