"""`socle archive inspect` and POST /archive/inspections: any SEDA 2.x package checked, hostile ones survived."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from archive import cli
from archive.inspection import InspectionLimits, inspect_sip
from archive.packaging import describe_file, write_sip
from archive.seda import NAMESPACES, build_manifest, sip_entries
from archive.sources import transfer_from_folder
from socle.settings import get_settings

from conftest import Kit, assert_problem

SEDA_21 = NAMESPACES["2.1"]


def socle_sip(tmp_path: Path, version: str = "2.2") -> Path:
    folder = tmp_path / "versement"
    (folder / "Conseil").mkdir(parents=True, exist_ok=True)
    (folder / "Conseil" / "delib.txt").write_text("Délibération\n" * 50, encoding="utf-8")
    (folder / "note.txt").write_text("Note\n", encoding="utf-8")
    spec = transfer_from_folder(
        folder,
        archival_agency="AD37",
        transferring_agency="M1",
        describe=lambda path, name: describe_file(path, name, identify=False),
    )
    sip = tmp_path / f"sip-{version}.zip"
    write_sip(build_manifest(spec, version=version), sip_entries(spec), sip)
    return sip


def write_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return path


def resip_like_manifest(pdf: bytes, txt: bytes) -> bytes:
    """The shape ReSIP and Vitam's samples use: SEDA 2.1, objects outside groups, flat units, Content/."""
    sha256 = hashlib.sha256(pdf).hexdigest()
    sha384 = base64.b64encode(hashlib.sha384(txt).digest()).decode()  # base64Binary is allowed too
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<ArchiveTransfer xmlns="{SEDA_21}">
  <Date>2024-01-01T00:00:00</Date>
  <MessageIdentifier>RESIP-1</MessageIdentifier>
  <CodeListVersions/>
  <DataObjectPackage>
    <BinaryDataObject id="ID7">
      <DataObjectGroupId>ID6</DataObjectGroupId>
      <DataObjectVersion>BinaryMaster_1</DataObjectVersion>
      <Uri>Content/ID7.pdf</Uri>
      <MessageDigest algorithm="SHA-256">{sha256}</MessageDigest>
      <Size>{len(pdf)}</Size>
      <FileInfo><Filename>acte.pdf</Filename></FileInfo>
    </BinaryDataObject>
    <BinaryDataObject id="ID9">
      <DataObjectGroupReferenceId>ID6</DataObjectGroupReferenceId>
      <DataObjectVersion>TextContent_1</DataObjectVersion>
      <Uri>Content/ID9.txt</Uri>
      <MessageDigest algorithm="SHA-384">{sha384}</MessageDigest>
      <Size>{len(txt)}</Size>
    </BinaryDataObject>
    <DescriptiveMetadata>
      <ArchiveUnit id="ID3">
        <Content><DescriptionLevel>Item</DescriptionLevel><Title>Acte</Title></Content>
        <DataObjectReference><DataObjectGroupReferenceId>ID6</DataObjectGroupReferenceId></DataObjectReference>
      </ArchiveUnit>
      <ArchiveUnit id="ID1">
        <Content><DescriptionLevel>RecordGrp</DescriptionLevel><Title>Dossier</Title></Content>
        <ArchiveUnit id="ID2"><ArchiveUnitRefId>ID3</ArchiveUnitRefId></ArchiveUnit>
      </ArchiveUnit>
    </DescriptiveMetadata>
    <ManagementMetadata/>
  </DataObjectPackage>
</ArchiveTransfer>""".encode()


# --- packages that are fine ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.1", "2.2", "2.3"])
def test_socle_sips_inspect_clean(tmp_path: Path, version: str) -> None:
    report = inspect_sip(socle_sip(tmp_path, version))

    assert report.ok, report.all_problems
    assert report.version == version and report.message_identifier
    (root,) = report.units
    assert (root.title, root.level) == ("versement", "RecordGrp")
    assert [unit.title for unit in root.children] == ["Conseil", "note.txt"]
    assert len(report.objects) == 2
    assert all(obj.computed_digest == obj.declared_digest and obj.algorithm == "SHA-512" for obj in report.objects)


def test_resip_like_package_with_flat_units_and_capital_content(tmp_path: Path) -> None:
    pdf, txt = b"%PDF-1.4 acte", b"texte de l'acte"
    sip = write_zip(
        tmp_path / "resip.zip",
        {"manifest.xml": resip_like_manifest(pdf, txt), "Content/ID7.pdf": pdf, "Content/ID9.txt": txt},
    )

    report = inspect_sip(sip)

    assert report.ok, report.all_problems
    assert report.version == "2.1"
    (root,) = report.units  # ID3 is referenced by ID2: not a root
    # The reference (ID2) stands for the unit it points to: the tree shows ID3 under ID1.
    (acte,) = root.children
    assert (root.title, acte.unit_id, acte.title) == ("Dossier", "ID3", "Acte")
    assert acte.object_ids == ("ID7", "ID9")
    assert {obj.algorithm for obj in report.objects} == {"SHA-256", "SHA-384"}
    assert {obj.group_id for obj in report.objects} == {"ID6"}


def test_lowercase_content_folder_matches_uri_case_insensitively(tmp_path: Path) -> None:
    pdf, txt = b"%PDF-1.4 acte", b"texte"
    sip = write_zip(
        tmp_path / "p.zip",
        {"manifest.xml": resip_like_manifest(pdf, txt), "content/ID7.pdf": pdf, "content/ID9.txt": txt},
    )
    report = inspect_sip(sip)
    assert report.ok, report.all_problems
    assert {obj.entry for obj in report.objects} == {"content/ID7.pdf", "content/ID9.txt"}


# --- discrepancies -----------------------------------------------------------------------------------


def test_every_discrepancy_is_reported_and_the_command_fails(tmp_path: Path) -> None:
    pdf, txt = b"%PDF-1.4 acte", b"texte"
    sip = write_zip(
        tmp_path / "p.zip",
        {
            "manifest.xml": resip_like_manifest(pdf, txt),
            "Content/ID7.pdf": b"%PDF-1.4 acte falsifie",  # other digest, other size
            "Content/intrus.txt": b"non declare",
        },  # ID9.txt missing
    )

    report = inspect_sip(sip)
    text = "\n".join(report.all_problems)

    assert not report.ok
    assert "ID7" in text and "l'empreinte SHA-256 ne correspond pas" in text
    assert f"le manifeste en déclare {len(pdf)}" in text
    assert "« Content/ID9.txt », absent du paquet" in text
    assert "« Content/intrus.txt » du paquet n'est déclarée par aucun objet" in text
    result = CliRunner().invoke(cli.group, ["inspect", str(sip)])
    assert result.exit_code == 1
    assert "Écarts (4)" in result.output and "- [RecordGrp] Dossier (ID1)" in result.output


def test_inspect_command_prints_the_tree(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli.group, ["inspect", str(socle_sip(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "SEDA 2.2" in result.output and "- [Item] delib.txt (AU3)" in result.output
    assert "Aucun écart" in result.output


def test_not_a_zip_or_not_seda(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"pas un zip")
    assert "n'est pas un zip lisible" in inspect_sip(junk).problems[0]
    other = write_zip(tmp_path / "other.zip", {"manifest.xml": b"<a xmlns='urn:x'/>"})
    assert "n'est pas un ArchiveTransfer SEDA 2.x" in inspect_sip(other).problems[0]
    empty = write_zip(tmp_path / "empty.zip", {"content/x.txt": b"x"})
    assert "pas de manifest.xml" in inspect_sip(empty).all_problems[-1]


# --- hostile packages ------------------------------------------------------------------------------------


def test_zip_bomb_is_refused_before_reading(tmp_path: Path) -> None:
    zeros = bytes(4 * 1024 * 1024)
    manifest = resip_like_manifest(b"a", b"b").replace(b"Content/ID7.pdf", b"Content/bomb.bin")
    sip = write_zip(tmp_path / "bomb.zip", {"manifest.xml": manifest, "Content/bomb.bin": zeros})
    limits = InspectionLimits(max_entry_size=8 * 1024 * 1024, max_ratio=50, ratio_floor=64 * 1024)

    report = inspect_sip(sip, limits)

    text = "\n".join(report.all_problems)
    assert "« Content/bomb.bin » refusée : taux de compression" in text
    assert "bombe de décompression" in text
    assert not any(obj.computed_size for obj in report.objects if obj.uri == "Content/bomb.bin")
    # Declared size above the entry limit: refused too.
    small = InspectionLimits(max_entry_size=1024 * 1024)
    assert "au-delà de la limite de 1048576" in "\n".join(inspect_sip(sip, small).all_problems)


def test_lying_header_cannot_inflate(tmp_path: Path) -> None:
    """The central directory says 100 bytes; the entry inflates to 4 MB: reading stops, nothing trusted."""
    zeros = bytes(4 * 1024 * 1024)
    sip = write_zip(tmp_path / "liar.zip", {"manifest.xml": resip_like_manifest(b"a", b"b"), "Content/ID7.pdf": zeros})
    data = bytearray(sip.read_bytes())
    central = data.rfind(b"PK\x01\x02")  # the last central header is Content/ID7.pdf's
    data[central + 24 : central + 28] = (100).to_bytes(4, "little")
    sip.write_bytes(bytes(data))

    report = inspect_sip(sip)

    (bad,) = [obj for obj in report.objects if obj.object_id == "ID7"]
    assert not bad.ok and (bad.computed_size or 0) <= 100


def test_entries_escaping_the_package_are_refused_never_read(tmp_path: Path) -> None:
    manifest = resip_like_manifest(b"a", b"b").replace(b"Content/ID7.pdf", b"../evil")
    sip = write_zip(
        tmp_path / "evil.zip",
        {"manifest.xml": manifest, "../evil": b"a", "/etc/cron.d/x": b"x", "Content/ID9.txt": b"b"},
    )

    report = inspect_sip(sip)
    text = "\n".join(report.all_problems)

    assert "Entrée « ../evil » refusée : chemin absolu ou sortant du paquet" in text
    assert "Entrée « /etc/cron.d/x » refusée" in text
    assert "« ../evil », absent du paquet (ou refusé)" in text
    assert next(obj for obj in report.objects if obj.object_id == "ID9").ok  # the rest is still checked
    assert not (tmp_path.parent / "evil").exists()


def test_billion_laughs_manifest_is_refused_for_its_dtd(tmp_path: Path) -> None:
    entities = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    manifest = (
        f'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">{entities}]>'
        f'<ArchiveTransfer xmlns="{SEDA_21}"><Comment>&lol9;</Comment></ArchiveTransfer>'
    ).encode()
    sip = write_zip(tmp_path / "laughs.zip", {"manifest.xml": manifest})

    report = inspect_sip(sip)

    assert "Manifeste refusé" in report.problems[0] and "DTD" in report.problems[0]


def test_external_entity_is_never_read(tmp_path: Path) -> None:
    manifest = (
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        f'<ArchiveTransfer xmlns="{SEDA_21}"><Comment>&xxe;</Comment>'
        "<MessageIdentifier>&xxe;</MessageIdentifier></ArchiveTransfer>"
    ).encode()
    sip = write_zip(tmp_path / "xxe.zip", {"manifest.xml": manifest})

    report = inspect_sip(sip)

    assert not report.ok and "DOCTYPE" in report.problems[0]
    assert report.message_identifier is None
    assert "root:" not in repr(report)


# --- the API ---------------------------------------------------------------------------------------------


def test_api_inspects_an_uploaded_package(kit: Kit, tmp_path: Path) -> None:
    sip = socle_sip(tmp_path)
    response = kit["agent"].post(
        "/archive/inspections", files={"file": ("mon paquet.zip", sip.read_bytes(), "application/zip")}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True and body["problems"] == [] and body["version"] == "2.2"
    assert body["filename"] == "mon paquet.zip"
    assert body["units"][0]["children"][0]["title"] == "Conseil"
    assert {obj["computed_digest"] == obj["declared_digest"] for obj in body["objects"]} == {True}


def test_api_reports_hostile_packages_as_json(kit: Kit, tmp_path: Path) -> None:
    manifest = b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>'
    sip = write_zip(tmp_path / "xxe.zip", {"manifest.xml": manifest, "../evil": b"x"})

    response = kit["agent"].post("/archive/inspections", files={"file": ("xxe.zip", sip.read_bytes())})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is False and len(body["problems"]) == 2
    assert "root:" not in response.text


def test_api_reports_an_empty_zip(kit: Kit, tmp_path: Path) -> None:
    empty = write_zip(tmp_path / "vide.zip", {})

    response = kit["agent"].post("/archive/inspections", files={"file": ("vide.zip", empty.read_bytes())})

    assert response.status_code == 200, response.text  # was a 500: the layout walk zipped no entry with one end
    body = response.json()
    assert body["ok"] is False and any("manifest.xml" in problem for problem in body["problems"]), body


def test_api_needs_authentication_and_a_file(kit: Kit, app: object) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app) as anonymous:  # type: ignore[arg-type]
        assert_problem(anonymous.post("/archive/inspections", files={"file": ("a.zip", b"x")}), 401)
    assert_problem(kit["agent"].post("/archive/inspections", files={"autre": ("a.zip", b"x")}), 422)
    assert_problem(kit["agent"].post("/archive/inspections", json={"file": "x"}), 415)


def test_api_streams_with_the_size_limit_even_without_content_length(kit: Kit, use_env: Callable[..., None]) -> None:
    use_env(SOCLE_MAX_UPLOAD_BYTES="100000")
    boundary = "limite"

    def body() -> Iterator[bytes]:  # chunked: no Content-Length for the middleware to check
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="gros.zip"\r\n\r\n'.encode()
        for _ in range(50):
            yield bytes(10_000)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = kit["agent"].post(
        "/archive/inspections", content=body(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )

    assert_problem(response, 413)
    assert list((get_settings().data_dir / "tmp").glob(".inspection-*")) == []  # the partial upload is gone
