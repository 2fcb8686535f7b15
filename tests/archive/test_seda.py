"""SEDA 2.2 manifest, SIP zip and XSD validation, checked against the official schemas."""

from __future__ import annotations

import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import pikepdf
import pytest
import xmlschema
from lxml import etree

from archive.packaging import ALREADY_COMPRESSED_PUIDS, describe_file, verify_sip, write_sip
from archive.seda import (
    NAMESPACES,
    Agency,
    AgentSpec,
    ArchiveUnitSpec,
    DescribedFile,
    SedaError,
    TransferSpec,
    build_manifest,
    sip_entries,
)
from archive.validation import SchemaUnavailable, validate_manifest

from conftest import SHARED_SEDA, missing

NS = {"s": NAMESPACES["2.2"]}


@pytest.fixture(scope="module")
def seda_dir() -> Path:
    if not (SHARED_SEDA / "2.2" / "seda-2.2-main.xsd").is_file():
        missing(f"schémas SEDA officiels absents de {SHARED_SEDA} (variable SOCLE_TEST_SEDA_SCHEMAS)")
    return SHARED_SEDA


@pytest.fixture
def pdf(tmp_path: Path) -> DescribedFile:
    path = tmp_path / "blob-pdf"  # stored like a storage key: no extension
    with pikepdf.new() as document:
        document.add_blank_page()
        document.save(path)
    return describe_file(path, "Délibération n°12.pdf")


@pytest.fixture
def txt(tmp_path: Path) -> DescribedFile:
    path = tmp_path / "texte.txt"
    path.write_text("Délibération du conseil municipal du 3 mars.\n" * 40, encoding="utf-8")
    return describe_file(path, "Délibération n°12.txt")


def make_spec(units: tuple[ArchiveUnitSpec, ...]) -> TransferSpec:
    return TransferSpec(
        message_identifier="VERSEMENT-2024-0001",
        archival_agreement="ACCORD-DELIB",
        archival_agency=Agency("AD67", "Archives départementales"),
        transferring_agency=Agency("MAIRIE-01", "Mairie"),
        originating_agency=Agency("MAIRIE-01-SG", "Secrétariat général"),
        submission_agency=Agency("MAIRIE-01"),
        comment="Versement des délibérations",
        units=units,
        date=datetime(2024, 3, 4, 10, 30, tzinfo=UTC),
    )


@pytest.fixture
def spec(pdf: DescribedFile, txt: DescribedFile) -> TransferSpec:
    annex = ArchiveUnitSpec(title="Annexe : texte intégral", files=((txt, "BinaryMaster_1"),))
    deliberation = ArchiveUnitSpec(
        title="Délibération n°12 : budget primitif",
        description_level="File",
        description="Adoption du budget primitif 2024",
        start_date=date(2024, 3, 3),
        end_date=date(2024, 3, 4),
        keywords=("budget", "finances"),
        document_type="Délibération",
        originating_agency_archive_unit_identifier="GED-0042",
        files=((pdf, "BinaryMaster_1"), (txt, "TextContent_1")),
        children=(annex,),
        appraisal_rule=("APP1234-1", date(2024, 3, 4), "Keep"),
        access_rule=("ACC-00001", date(2024, 3, 4)),
    )
    return make_spec((deliberation,))


def test_pdf_is_identified_as_pronom_pdf(pdf: DescribedFile, txt: DescribedFile) -> None:
    assert pdf.puid is not None and pdf.puid.startswith("fmt/")
    assert pdf.puid in ALREADY_COMPRESSED_PUIDS
    assert pdf.mime_type == "application/pdf"
    assert pdf.format_name and "PDF" in pdf.format_name
    assert txt.mime_type == "text/plain"
    assert len(pdf.sha512) == 128 and pdf.size == pdf.path.stat().st_size
    assert pdf.last_modified.tzinfo is not None


def test_manifest_is_valid_against_official_xsd(spec: TransferSpec, seda_dir: Path) -> None:
    report = validate_manifest(build_manifest(spec), seda_dir)

    assert report.valid, report.issues
    assert report.issues == ()
    assert report.schema.endswith("seda-2.2-main.xsd")


def test_manifest_structure(spec: TransferSpec) -> None:
    root = etree.fromstring(build_manifest(spec))

    ids = root.xpath("//@id")
    assert len(ids) == len(set(ids))
    references = root.xpath("//s:DataObjectGroupReferenceId/text()", namespaces=NS)
    assert references and set(references) <= set(ids)
    # Every object is wrapped in a group; the Uris are exactly the zip entry names.
    assert root.xpath("count(//s:DataObjectPackage/s:BinaryDataObject)", namespaces=NS) == 0
    uris = root.xpath("//s:BinaryDataObject/s:Uri/text()", namespaces=NS)
    assert uris == [name for name, _ in sip_entries(spec)]
    assert len(set(uris)) == 3  # the text file is used twice, each use gets its own entry
    content = root.find(".//s:ArchiveUnit/s:Content", NS)
    assert [etree.QName(child).localname for child in content][:2] == ["DescriptionLevel", "Title"]
    assert root.findtext("s:Date", namespaces=NS) == "2024-03-04T10:30:00+00:00"


def test_xmlschema_agrees_manifest_is_valid(spec: TransferSpec, seda_schema: xmlschema.XMLSchema) -> None:
    errors = [str(error.reason) for error in seda_schema.iter_errors(build_manifest(spec))]
    assert errors == []


def test_sip_layout_and_verification(spec: TransferSpec, tmp_path: Path) -> None:
    destination = tmp_path / "sip.zip"
    write_sip(build_manifest(spec), sip_entries(spec), destination)

    with zipfile.ZipFile(destination) as archive:
        infos = archive.infolist()
    assert infos[0].filename == "manifest.xml"
    assert all(info.flag_bits & 0x08 == 0 for info in infos)  # no data descriptors
    by_suffix = {Path(info.filename).suffix: info for info in infos[1:]}
    assert by_suffix[".pdf"].compress_type == zipfile.ZIP_STORED
    assert by_suffix[".txt"].compress_type == zipfile.ZIP_DEFLATED
    assert [info.filename for info in infos[1:]] == [name for name, _ in sip_entries(spec)]
    assert verify_sip(destination) == []
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


def rewrite_zip(source: Path, destination: Path, *, replace: dict[str, bytes], drop: str = "") -> None:
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(destination, "w") as copy:
        for info in original.infolist():
            if info.filename != drop:
                copy.writestr(info.filename, replace.get(info.filename, original.read(info)))


def test_verify_sip_reports_tampered_missing_and_undeclared(spec: TransferSpec, tmp_path: Path) -> None:
    sip = tmp_path / "sip.zip"
    write_sip(build_manifest(spec), sip_entries(spec), sip)
    first_txt, second_txt = [name for name, _ in sip_entries(spec) if name.endswith(".txt")]
    tampered = tmp_path / "tampered.zip"
    rewrite_zip(sip, tampered, replace={first_txt: b"texte falsifie"}, drop=second_txt)
    with zipfile.ZipFile(tampered, "a") as archive:
        archive.writestr("content/intrus.txt", b"pas dans le manifeste")

    problems = verify_sip(tampered)

    assert any(first_txt in problem and "empreinte" in problem.lower() for problem in problems)
    assert any(first_txt in problem and "octets" in problem for problem in problems)
    assert any(second_txt in problem and "absent" in problem for problem in problems)
    assert any("content/intrus.txt" in problem for problem in problems)


def test_file_changed_after_description_aborts_packaging(
    spec: TransferSpec, txt: DescribedFile, tmp_path: Path
) -> None:
    txt.path.write_text("contenu modifié entre la description et l'empaquetage", encoding="utf-8")
    destination = tmp_path / "out" / "sip.zip"
    destination.parent.mkdir()

    with pytest.raises(SedaError, match="a changé"):
        write_sip(build_manifest(spec), sip_entries(spec), destination)
    assert list(destination.parent.iterdir()) == []


def test_same_filename_gets_distinct_entries(txt: DescribedFile) -> None:
    units = (
        ArchiveUnitSpec(title="A", files=((txt, "BinaryMaster_1"),)),
        ArchiveUnitSpec(title="B", files=((txt, "BinaryMaster_1"),)),
    )
    names = [name for name, _ in sip_entries(make_spec(units))]
    assert len(set(names)) == 2
    assert all(name.startswith("content/BDO") and name.endswith("Délibération_n_12.txt") for name in names)


def test_invalid_manifest_reports_element_path(spec: TransferSpec, seda_dir: Path) -> None:
    root = etree.fromstring(build_manifest(spec))
    root.remove(root.find("s:MessageIdentifier", NS))

    report = validate_manifest(etree.tostring(root, xml_declaration=True, encoding="UTF-8"), seda_dir)

    assert not report.valid
    issue = report.issues[0]
    assert issue.line and issue.path == "/ArchiveTransfer/ArchivalAgreement"
    assert issue.path in issue.message and "MessageIdentifier" in issue.message
    assert "inattendu" in issue.message


def test_dangling_reference_is_reported(spec: TransferSpec, seda_dir: Path) -> None:
    # libxml2 does not check IDREF targets: validate_manifest does it itself.
    root = etree.fromstring(build_manifest(spec))
    root.find(".//s:DataObjectGroupReferenceId", NS).text = "GRP99"

    report = validate_manifest(etree.tostring(root), seda_dir)

    assert not report.valid
    assert any("GRP99" in issue.message and issue.path for issue in report.issues)


def test_manifest_file_path_is_accepted(spec: TransferSpec, seda_dir: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.xml"
    manifest.write_bytes(build_manifest(spec))
    assert validate_manifest(manifest, seda_dir).valid


def test_malformed_xml_is_invalid(seda_dir: Path) -> None:
    report = validate_manifest(b"<ArchiveTransfer>", seda_dir)
    assert not report.valid and "mal formé" in report.issues[0].message


def test_empty_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "vide.pdf"
    empty.touch()
    described = describe_file(empty)
    assert described.size == 0

    with pytest.raises(SedaError, match="vide"):
        build_manifest(make_spec((ArchiveUnitSpec(title="Vide", files=((described, "BinaryMaster_1"),)),)))


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        (ArchiveUnitSpec(title="  "), "titre"),
        (ArchiveUnitSpec(title="X", description_level="Dossier"), "Niveau de description"),
        (ArchiveUnitSpec(title="X", appraisal_rule=("R", date(2024, 1, 1), "Eliminer")), "Sort final"),
        (ArchiveUnitSpec(title="X", agents={"Writer": (AgentSpec(functions=("Maire",)),)}), "ni nom ni identifiant"),
        (ArchiveUnitSpec(title="X", agents={"Sender": (AgentSpec("A", corpname="B"),)}), "Corpname"),
        (ArchiveUnitSpec(title="X", agents={"Auteur": (AgentSpec("A"),)}), "Rôle inconnu"),
        (ArchiveUnitSpec(title="X", more_access_rules=(("ACC-2", None),)), "sans première règle"),
    ],
)
def test_inconsistent_units_are_refused(unit: ArchiveUnitSpec, expected: str) -> None:
    with pytest.raises(SedaError, match=expected):
        build_manifest(make_spec((unit,)))


def test_duplicate_or_unknown_usage_is_refused(txt: DescribedFile) -> None:
    with pytest.raises(SedaError, match="même usage"):
        build_manifest(make_spec((ArchiveUnitSpec(title="X", files=((txt, "BinaryMaster_1"),) * 2),)))
    with pytest.raises(SedaError, match="Usage inconnu"):
        build_manifest(make_spec((ArchiveUnitSpec(title="X", files=((txt, "Original"),)),)))


def test_unsupported_version_and_naive_date_are_refused(spec: TransferSpec) -> None:
    with pytest.raises(SedaError, match="non prise en charge"):
        build_manifest(spec, version="1.0")
    naive = TransferSpec(**{**spec.__dict__, "date": datetime(2024, 3, 4, 10, 30)})
    with pytest.raises(SedaError, match="fuseau"):
        build_manifest(naive)


def test_missing_schemas_dir_raises_schema_unavailable(spec: TransferSpec, tmp_path: Path) -> None:
    missing = tmp_path / "nulle-part"
    with pytest.raises(SchemaUnavailable) as raised:
        validate_manifest(build_manifest(spec), missing)
    assert str(missing) in str(raised.value)
    assert "socle archive schemas install" in str(raised.value)


# --- agents and the other common descriptive elements ----------------------------------------------------------

# The Content of described_unit, as the XSD orders it; the signatories' place depends on the version.
CONTENT_ORDER = [
    "DescriptionLevel", "Title", "FilePlanPosition", "OriginatingSystemId", "OriginatingSystemId",
    "ArchivalAgencyArchiveUnitIdentifier", "OriginatingAgencyArchiveUnitIdentifier",
    "TransferringAgencyArchiveUnitIdentifier", "Description", "CustodialHistory", "DocumentType", "Language",
    "Language", "DescriptionLanguage", "Keyword", "OriginatingAgency", "SubmissionAgency", "SIGNERS",
    "AuthorizedAgent", "Writer", "WRITER_SIGNERS", "Addressee", "Addressee", "Recipient", "Transmitter", "Sender",
    "CreatedDate", "TransactedDate", "AcquiredDate", "SentDate", "ReceivedDate", "RegisteredDate", "StartDate",
    "EndDate",
]  # fmt: skip


def described_unit(txt: DescribedFile) -> ArchiveUnitSpec:
    return ArchiveUnitSpec(
        title="Courrier au préfet",
        description="Demande de subvention",
        document_type="Courrier",
        originating_agency_archive_unit_identifier="GED-0042",
        file_plan_positions=("2.1.3",),
        originating_system_ids=("ged:0042", "courrier:77"),
        archival_agency_archive_unit_identifiers=("3 W 12",),
        transferring_agency_archive_unit_identifiers=("SG-2024-12",),
        custodial_history=("Enregistré dans la GED", "Signé dans le parapheur"),
        languages=("fr", "oc"),
        description_language="fr",
        keywords=("subvention",),
        agents={
            "Writer": (AgentSpec("Camille Martin", identifiers=("agent",), positions=("Chargée de mission",)),),
            "Signer": (AgentSpec("Dominique Dupont", identifiers=("maire",), functions=("Maire",)),),
            "Addressee": (
                AgentSpec(corpname="Préfecture d'Indre-et-Loire"),
                AgentSpec(first_name="Lou", birth_name="Roy"),
            ),
            "Recipient": (AgentSpec("Service financier"),),
            "Transmitter": (AgentSpec("Secrétariat général"),),
            "Sender": (AgentSpec("Mairie", identifiers=("213700000",)),),
            "AuthorizedAgent": (AgentSpec(corpname="Commune", activities=("Administration",), roles=("Titulaire",)),),
        },
        created_date=date(2024, 3, 1),
        transacted_date=date(2024, 3, 2),
        acquired_date=datetime(2024, 3, 3, 9, 15),
        sent_date=datetime(2024, 3, 4, 10, 30, tzinfo=UTC),
        received_date=date(2024, 3, 5),
        registered_date=date(2024, 3, 6),
        start_date=date(2024, 3, 1),
        end_date=date(2024, 3, 6),
        files=((txt, "BinaryMaster_1"),),
        appraisal_rule=("APP-10", date(2024, 3, 6), "Keep"),
        more_appraisal_rules=(("APP-20", None),),
        access_rule=("ACC-00001", None),
        more_access_rules=(("ACC-00002", date(2024, 3, 6)),),
    )


@pytest.mark.parametrize("version", ["2.1", "2.2", "2.3"])
def test_agents_and_common_elements_are_in_xsd_order_and_valid(
    txt: DescribedFile, seda_dir: Path, version: str
) -> None:
    manifest = build_manifest(make_spec((described_unit(txt),)), version=version)

    report = validate_manifest(manifest, seda_dir, version)
    assert report.valid, report.issues
    ns = {"s": NAMESPACES[version]}
    content = etree.fromstring(manifest).find(".//s:ArchiveUnit/s:Content", ns)
    # Signatories: an Agent with Role « Signataire » in 2.2 and 2.3; 2.1 has no generic Agent, so a Writer.
    signers = {
        "SIGNERS": [] if version == "2.1" else ["Agent"],
        "WRITER_SIGNERS": ["Writer"] if version == "2.1" else [],
    }
    expected = [name for entry in CONTENT_ORDER for name in signers.get(entry, [entry])]
    assert [etree.QName(child).localname for child in content] == expected
    signer = content.find("s:Writer[2]" if version == "2.1" else "s:Agent", ns)
    assert [etree.QName(child).localname for child in signer] == ["FullName", "Identifier", "Function", "Role"]
    assert [child.text for child in signer] == ["Dominique Dupont", "maire", "Maire", "Signataire"]
    writer = content.find("s:Writer", ns)
    assert [child.text for child in writer] == ["Camille Martin", "agent", "Chargée de mission"]
    assert content.findtext("s:Addressee/s:Corpname", namespaces=ns) == "Préfecture d'Indre-et-Loire"
    assert [child.text for child in content.find("s:Addressee[2]", ns)] == ["Lou", "Roy"]  # FirstName, BirthName
    assert content.findtext("s:AcquiredDate", namespaces=ns) == "2024-03-03T09:15:00"
    assert content.findtext("s:SentDate", namespaces=ns) == "2024-03-04T10:30:00+00:00"
    items = content.findall("s:CustodialHistory/s:CustodialHistoryItem", ns)
    assert [item.text for item in items] == ["Enregistré dans la GED", "Signé dans le parapheur"]
    appraisal = etree.fromstring(manifest).find(".//s:Management/s:AppraisalRule", ns)
    assert [etree.QName(child).localname for child in appraisal] == ["Rule", "StartDate", "Rule", "FinalAction"]
    access = etree.fromstring(manifest).find(".//s:Management/s:AccessRule", ns)
    assert [child.text for child in access] == ["ACC-00001", "ACC-00002", "2024-03-06"]


def test_units_without_agents_are_written_as_before(spec: TransferSpec) -> None:
    content = etree.fromstring(build_manifest(spec)).find(".//s:ArchiveUnit/s:Content", NS)
    names = [etree.QName(child).localname for child in content]
    assert not {"Agent", "Writer", "Addressee", "CreatedDate", "Language"} & set(names)
