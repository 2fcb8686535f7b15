"""A folder tree sent through the API (POST /archive/transfers/folder): unpacked safely by a job, built as
`socle archive build` builds it, validated like any transfer, then sent and followed like any other."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import xmlschema
from lxml import etree
from sae_messages import acknowledgement, transfer_reply
from sqlalchemy import func, select

from archive import jobs, packaging
from socle import messages
from socle.db import transaction
from socle.models import AuditEntry, Job
from socle.queue import enqueue
from socle.settings import get_settings
from socle.storage import get_store

from conftest import Kit, assert_problem, make_pdf, run_jobs

SEDA = "fr:gouv:culture:archivesdefrance:seda:v2.2"
NS = {"s": SEDA}
CSV_HEADER = (
    '"ID";"ParentID";"File";"DescriptionLevel";"Content.Title";"Content.Description";"Content.StartDate";'
    '"Content.EndDate";"Content.Keyword.0.KeywordContent"'
)
CSV_ROWS = (
    '"1";"";"";"RecordGrp";"Conseil municipal 2026";"Séances et délibérations";"2026-01-01";"2026-12-31";"conseil"',
    '"2";"1";"Séances\\janvier";"File";"Séance du 12 janvier";;"2026-01-12";"2026-01-12";',
    '"3";"2";"Séances\\janvier\\délibération-1.pdf";"Item";"Budget primitif";;"2026-01-12";"2026-01-12";"budget"',
    '"4";"2";"Séances/janvier/ordre du jour.txt";"Item";"Ordre du jour";;;;',
    '"5";"1";"note.txt";"Item";"Note de synthèse";;;;',
)
TREE = {
    "Conseil 2026/Séances/janvier/délibération-1.pdf": make_pdf("Budget primitif 2026"),
    "Conseil 2026/Séances/janvier/ordre du jour.txt": b"1. Budget primitif\n2. Questions diverses\n",
    "Conseil 2026/note.txt": "Note de synthèse du conseil.\n".encode(),
}


def zipped(entries: dict[str, bytes], *, symlinks: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def tarred(entries: dict[str, bytes], *, symlinks: dict[str, str] | None = None, mode: str = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:  # type: ignore[call-overload]
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1767225600  # 2026-01-01
            archive.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return buffer.getvalue()


def post_folder(
    kit: Kit,
    data: bytes,
    filename: str = "Conseil 2026.zip",
    *,
    csv: bytes | None = None,
    user: str = "archiviste",
    **fields: str,
) -> Any:
    files: dict[str, tuple[str, bytes]] = {"file": (filename, data)}
    if csv is not None:
        files["csv"] = ("métadonnées.csv", csv)
    form = {"archival_agency": "AD037", **fields}
    return kit[user].post("/archive/transfers/folder", files=files, data=form)


def requested(kit: Kit, data: bytes, filename: str = "Conseil 2026.zip", **extra: Any) -> dict[str, Any]:
    response = post_folder(kit, data, filename, **extra)
    assert response.status_code == 202, response.text
    transfer = dict(response.json())
    assert transfer["status"] == "requested" and transfer["document_ids"] == []
    assert transfer["selection"]["kind"] == "folder_tree"
    return transfer


def after_jobs(kit: Kit, transfer: dict[str, Any]) -> dict[str, Any]:
    run_jobs()
    response = kit["archiviste"].get(f"/archive/transfers/{transfer['id']}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def sip_of(kit: Kit, transfer: dict[str, Any], tmp_path: Path) -> Path:
    response = kit["archiviste"].get(f"/archive/transfers/{transfer['id']}/sip")
    assert response.status_code == 200, response.text
    path = tmp_path / "sip.zip"
    path.write_bytes(response.content)
    return path


def work_folders() -> list[Path]:
    return list((get_settings().data_dir / "tmp").glob("folder-*"))


def csv_bytes(*rows: str, header: str = CSV_HEADER) -> bytes:
    return ("\n".join((header, *rows)) + "\n").encode()


# --- a tree that makes a package ---------------------------------------------------------------------


def test_zipped_tree_and_csv_make_a_built_transfer_whose_package_checks_out(
    kit: Kit, tmp_path: Path, seda_schema: xmlschema.XMLSchema
) -> None:
    transfer = requested(kit, zipped(TREE), csv=csv_bytes(*CSV_ROWS), comment="Conseil municipal 2026")
    assert transfer["selection"]["csv_filename"] == "métadonnées.csv"

    built = after_jobs(kit, transfer)

    assert built["status"] == "built", built
    assert built["validation"]["status"] == "valid" and built["validation"]["checks"]["schema"] == "valid"
    assert built["document_ids"] == [] and built["error"] is None
    sip = sip_of(kit, built, tmp_path)
    assert packaging.verify_sip(sip) == []  # every digest and size against the zip's own bytes
    with zipfile.ZipFile(sip) as archive:
        manifest = archive.read("manifest.xml")
        entries = {name: archive.read(name) for name in archive.namelist() if name != "manifest.xml"}
    assert [str(error.reason) for error in seda_schema.iter_errors(manifest)] == []
    root = etree.fromstring(manifest)
    assert root.findtext("s:MessageIdentifier", namespaces=NS) == built["message_identifier"]
    assert root.findtext("s:Comment", namespaces=NS) == "Conseil municipal 2026"
    titles = [title.text for title in root.iterfind(".//s:ArchiveUnit/s:Content/s:Title", NS)]
    assert titles == [
        "Conseil municipal 2026",
        "Séance du 12 janvier",
        "Budget primitif",
        "Ordre du jour",
        "Note de synthèse",
    ]
    # The files themselves, byte for byte, whatever the zip named them.
    assert sorted(entries.values()) == sorted(TREE.values())
    assert work_folders() == []  # the unpacked tree is gone


def test_tar_without_csv_is_the_folder_itself(kit: Kit, tmp_path: Path) -> None:
    built = after_jobs(kit, requested(kit, tarred(TREE), "envoi.tar.gz"))

    assert built["status"] == "built", built
    sip = sip_of(kit, built, tmp_path)
    assert packaging.verify_sip(sip) == []
    with zipfile.ZipFile(sip) as archive:
        root = etree.fromstring(archive.read("manifest.xml"))
    # The archive's only top-level folder is the root unit, as `socle archive build "Conseil 2026"` would make it.
    units = root.findall("s:DataObjectPackage/s:DescriptiveMetadata/s:ArchiveUnit", NS)
    assert [unit.findtext("s:Content/s:Title", namespaces=NS) for unit in units] == ["Conseil 2026"]
    dates = {
        obj.findtext("s:FileInfo/s:Filename", namespaces=NS): obj.findtext("s:FileInfo/s:LastModified", namespaces=NS)
        for obj in root.iter(f"{{{SEDA}}}BinaryDataObject")
    }
    assert dates["note.txt"].startswith("2026-01-01T00:00:00")  # the tar's date, not the unpacking's


def test_running_the_job_twice_keeps_one_package(kit: Kit) -> None:
    transfer = requested(kit, zipped(TREE))
    selection = transfer["selection"]
    built = after_jobs(kit, transfer)
    assert built["status"] == "built", built

    jobs.build_folder_transfer(
        tenant_id=kit.tenant_id, transfer_id=built["id"], object_key=selection["object_key"], csv_key=None
    )
    with transaction() as session:  # the same message again: the queue knows its key
        enqueue(
            session,
            messages.ARCHIVE_BUILD_FOLDER_TRANSFER,
            key=f"archive.folder:{built['id']}",
            tenant_id=kit.tenant_id,
            transfer_id=built["id"],
            object_key=selection["object_key"],
            csv_key=None,
        )
    again = after_jobs(kit, built)

    assert (again["status"], again["sip_sha256"], again["updated_at"]) == (
        "built",
        built["sip_sha256"],
        built["updated_at"],
    )
    with transaction() as session:
        built_events = session.execute(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.object_id == built["id"], AuditEntry.action == "archive.transfer.built")
        ).scalar_one()
        job_count = session.execute(
            select(func.count()).select_from(Job).where(Job.key == f"archive.folder:{built['id']}")
        ).scalar_one()
    assert (built_events, job_count) == (1, 1)


def test_folder_transfer_is_sent_and_followed_without_the_ged(kit: Kit) -> None:
    built = after_jobs(kit, requested(kit, zipped(TREE)))
    connector = kit["admin"].post("/interop/connectors", json={"name": "sae", "kind": "depot", "config": {"path": "s"}})
    assert connector.status_code == 201, connector.text
    sent = kit["archiviste"].post(f"/archive/transfers/{built['id']}/send", json={"connector": "sae"})
    assert sent.status_code == 202, sent.text
    delivered = after_jobs(kit, built)
    assert delivered["status"] == "delivered", delivered

    request = delivered["message_identifier"]
    for kind, data in (
        ("acknowledgement", acknowledgement("2.2", request, "ACK-1")),
        ("reply", transfer_reply("2.2", request, "OK", "ATR-1", units={"AU1": "sys-1"})),
    ):
        stored = get_store().put(io.BytesIO(data))
        with transaction() as session:
            enqueue(
                session,
                messages.ARCHIVE_RECORD_SAE_MESSAGE,
                tenant_id=kit.tenant_id,
                transfer_id=built["id"],
                message_kind=kind,
                object_key=stored.key,
                size=stored.size,
            )
    accepted = after_jobs(kit, built)

    assert accepted["status"] == "accepted", accepted
    assert accepted["sae_identifiers"]["units"]["AU1"]["system_ids"] == ["sys-1"]
    with transaction() as session:  # no GED document: nothing to mark archived
        marks = session.execute(select(Job).where(Job.key == f"ged.archived:{built['id']}")).scalars().all()
    assert marks == []


# --- refusals ----------------------------------------------------------------------------------------


def assert_no_transfer(kit: Kit) -> None:
    assert kit["archiviste"].get("/archive/transfers").json() == []


def test_entry_climbing_out_of_the_tree_is_refused_at_once(kit: Kit) -> None:
    data = zipped({"Conseil/note.txt": b"note", "../evil.txt": b"ailleurs", "/etc/cron.d/x": b"racine"})

    problem = assert_problem(post_folder(kit, data), 422)

    assert "« ../evil.txt » refusée : chemin absolu ou sortant de l'arborescence" in problem["detail"]
    assert len(problem["problems"]) == 2 and "/etc/cron.d/x" in problem["problems"][1]
    assert_no_transfer(kit)


def test_zip_bomb_is_refused_at_once(kit: Kit) -> None:
    data = zipped({"Conseil/zeros.txt": bytes(50 * 1024 * 1024)})  # about 50 KB compressed
    assert len(data) < 200_000

    problem = assert_problem(post_folder(kit, data), 422)

    assert "bombe de décompression" in problem["detail"]
    assert_no_transfer(kit)


def test_tar_bomb_puts_the_transfer_in_error_before_it_is_unpacked(kit: Kit) -> None:
    transfer = requested(kit, tarred({"Conseil/zeros.txt": bytes(50 * 1024 * 1024)}), "conseil.tar.gz")

    failed = after_jobs(kit, transfer)

    assert failed["status"] == "error" and failed["sip_sha256"] is None
    assert "taux de compression" in failed["error"] and "bombe de décompression" in failed["error"]
    assert work_folders() == []


def test_links_and_special_files_are_refused(kit: Kit) -> None:
    problem = assert_problem(post_folder(kit, zipped(TREE, symlinks={"Conseil 2026/passwd": "/etc/passwd"})), 422)
    assert "« Conseil 2026/passwd » refusée : lien symbolique" in problem["detail"]

    transfer = requested(kit, tarred(TREE, symlinks={"Conseil 2026/passwd": "/etc/passwd"}), "conseil.tgz")
    failed = after_jobs(kit, transfer)
    assert failed["status"] == "error" and failed["sip_sha256"] is None
    assert "« Conseil 2026/passwd » refusée : lien symbolique ou physique" in failed["error"]


def test_csv_with_an_unknown_column_puts_the_transfer_in_error_with_the_reason(kit: Kit) -> None:
    csv = csv_bytes(*CSV_ROWS, header=CSV_HEADER + ';"Content.Inconnue"')

    failed = after_jobs(kit, requested(kit, zipped(TREE), csv=csv))

    assert failed["status"] == "error" and failed["sip_sha256"] is None, failed
    assert failed["error"].startswith("Versement refusé :")
    assert "Content.Inconnue" in failed["error"]
    assert work_folders() == []


def test_tree_not_described_by_its_csv_is_refused_with_every_reason(kit: Kit) -> None:
    tree = {**TREE, "Conseil 2026/oubli.txt": b"absent du CSV", "Conseil 2026/vide.txt": b""}

    failed = after_jobs(kit, requested(kit, zipped(tree), csv=csv_bytes(*CSV_ROWS)))

    assert failed["status"] == "error", failed
    assert "oubli.txt" in failed["error"] and "vide.txt" in failed["error"]


def test_errors_name_the_tree_as_sent_never_the_servers_work_folder(kit: Kit) -> None:
    long_name = "n" * 5000 + ".txt"
    long_shown = f"Conseil/{long_name}"[:200]  # from the tree's top as the zip has it, cut at 200 characters
    only_group = '"1";"";"";"RecordGrp";"Conseil municipal 2026";;;;'
    cases = [
        (zipped({}), None, "Le dossier « Conseil 2026 » ne contient aucun fichier à verser."),
        (zipped({"Vide/": b""}), None, "Le dossier « Vide » ne contient aucun fichier à verser."),
        (zipped({}), csv_bytes(only_group), "Le dossier « Conseil 2026 » ne contient aucun fichier à verser."),
        (
            zipped({f"Conseil/{long_name}": b"x"}),
            None,
            f"Fichier impossible à écrire : nom trop long pour le système de fichiers (« {long_shown}… »).",
        ),
    ]
    work = str(get_settings().data_dir)
    for data, csv, expected in cases:
        failed = after_jobs(kit, requested(kit, data, csv=csv))
        assert failed["status"] == "error", failed
        assert failed["error"] == f"Versement refusé : {expected}", failed["error"]
        assert work not in failed["error"] and "folder-" not in failed["error"]
    assert work_folders() == []


def test_request_is_checked_before_anything_is_kept(kit: Kit) -> None:
    assert_problem(post_folder(kit, zipped(TREE), user="agent"), 403)
    assert_problem(post_folder(kit, b"ceci n'est pas une archive", "dossier.zip"), 415)
    missing = assert_problem(post_folder(kit, zipped(TREE), archival_agency=""), 422)
    assert missing["errors"][0]["field"] == "body.archival_agency"
    unknown = assert_problem(post_folder(kit, zipped(TREE), inconnu="x"), 422)
    assert unknown["errors"][0]["field"] == "body.inconnu"
    assert_problem(post_folder(kit, zipped(TREE), seda_version="3.0"), 422)
    assert_problem(post_folder(kit, zipped(TREE), profile="absent"), 404)
    no_file = kit["archiviste"].post(
        "/archive/transfers/folder", data={"archival_agency": "AD037"}, files={"autre": ("a.zip", b"x")}
    )
    assert "aucun dossier reçu" in assert_problem(no_file, 422)["detail"]
    assert_no_transfer(kit)
    assert work_folders() == []
