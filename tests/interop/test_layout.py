"""Dépôt layouts on a local folder: packaging, metadata, « done » marker, name collisions, races, API options.

The same engine runs over SFTP and WebDAV (tests/interop/test_sftp.py, test_webdav.py).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from interop.connectors.layout import Layout, LocalTarget, deposit, safe_filename
from socle.errors import Conflict, InvalidInput
from socle.settings import get_settings
from socle.storage import StoredObject, get_store

from conftest import Kit, run_jobs


def put(content: bytes) -> StoredObject:
    return get_store().put(io.BytesIO(content))


def drop(folder: Path, content: bytes, name: str = "acte.pdf", **layout: Any) -> dict[str, Any]:
    obj = put(content)
    return deposit(LocalTarget(folder), Layout(**layout), get_store(), obj.key, name, obj.size, connector="essai")


def names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_file_layout_with_json_receipt(tmp_path: Path) -> None:
    receipt = drop(tmp_path, b"%PDF-1.7 un")
    assert names(tmp_path) == ["acte.pdf", "acte.pdf.receipt.json"]
    assert json.loads((tmp_path / "acte.pdf.receipt.json").read_text()) == receipt
    assert receipt["packaging"] == "file" and receipt["name"] == receipt["document"] == "acte.pdf"
    assert oct((tmp_path / "acte.pdf").stat().st_mode & 0o777) == "0o644"


def test_folder_layout_with_xml_metadata_and_marker_written_last(tmp_path: Path) -> None:
    seen: list[str] = []

    class Watching(LocalTarget):  # records the order in which names appear
        def rename(self, source: str, target: str, *, replace: bool) -> None:
            super().rename(source, target, replace=replace)
            seen.append(target)

    obj = put(b"%PDF-1.7 deux")
    receipt = deposit(
        Watching(tmp_path),
        Layout(packaging="folder", metadata="xml", done_marker=True),
        get_store(),
        obj.key,
        "Délibération 7.pdf",
        obj.size,
        connector="essai",
    )
    assert names(tmp_path) == ["Délibération 7", "Délibération 7.done"]
    assert names(tmp_path / "Délibération 7") == ["Délibération 7.pdf", "Délibération 7.pdf.receipt.xml"]
    assert seen == ["Délibération 7", "Délibération 7.done"]  # the marker after the whole folder
    root = etree.fromstring((tmp_path / "Délibération 7" / "Délibération 7.pdf.receipt.xml").read_bytes())
    values = {etree.QName(child).localname: child.text for child in root}
    assert values["sha256"] == obj.key == receipt["sha256"] and values["document"] == "Délibération 7.pdf"


def test_a_receipt_read_back_keeps_a_size_that_is_no_ascii_number_as_text(tmp_path: Path) -> None:
    # The same document found again (a deposit interrupted, or a shared folder): its receipt is read back. A size
    # in « ² » (a digit to str.isdigit(), not to int()) or in 5,000 digits (int() refuses them) was a ValueError.
    first = drop(tmp_path, b"%PDF-1.7 relu", metadata="xml")
    assert first["size"] == len(b"%PDF-1.7 relu")
    written = tmp_path / "acte.pdf.receipt.xml"
    original = written.read_text()
    for size in ("²", "1" * 5000):
        written.write_text(original.replace(f"<size>{first['size']}</size>", f"<size>{size}</size>"))
        again = drop(tmp_path, b"%PDF-1.7 relu", metadata="xml")
        assert again["size"] == size and again["sha256"] == first["sha256"]
    written.write_text(original)
    assert drop(tmp_path, b"%PDF-1.7 relu", metadata="xml")["size"] == first["size"]  # an ASCII number: a number


def test_zip_layout_without_metadata(tmp_path: Path) -> None:
    drop(tmp_path, b"%PDF-1.7 trois", "budget.pdf", packaging="zip", metadata="none", done_marker=True)
    assert names(tmp_path) == ["budget.zip", "budget.zip.done"]
    with zipfile.ZipFile(tmp_path / "budget.zip") as archive:
        assert archive.namelist() == ["budget.pdf"] and archive.read("budget.pdf") == b"%PDF-1.7 trois"
        assert archive.getinfo("budget.pdf").compress_type == zipfile.ZIP_STORED


def test_collision_policies(tmp_path: Path) -> None:
    drop(tmp_path, b"A", "pv.tar.gz")
    with pytest.raises(Conflict, match="porte déjà le nom"):
        drop(tmp_path, b"B", "pv.tar.gz")
    assert drop(tmp_path, b"B", "pv.tar.gz", on_conflict="suffix")["name"] == "pv-1.tar.gz"
    assert drop(tmp_path, b"A", "pv.tar.gz", on_conflict="suffix")["name"] == "pv.tar.gz"  # the same: found
    drop(tmp_path, b"C", "pv.tar.gz", on_conflict="replace")
    assert (tmp_path / "pv.tar.gz").read_bytes() == b"C" and (tmp_path / "pv-1.tar.gz").read_bytes() == b"B"
    assert not [name for name in names(tmp_path) if name.startswith(".")]


def test_a_file_appearing_during_the_deposit_is_not_overwritten(tmp_path: Path) -> None:
    class Racing(LocalTarget):  # another writer takes the name between the check and the rename
        def rename(self, source: str, target: str, *, replace: bool) -> None:
            if target == "acte.pdf" and not replace:
                (tmp_path / "acte.pdf").write_bytes(b"arrive entre-temps")
            super().rename(source, target, replace=replace)

    obj = put(b"%PDF-1.7 le notre")
    with pytest.raises(Conflict, match="porte déjà le nom"):
        deposit(Racing(tmp_path), Layout(), get_store(), obj.key, "acte.pdf", obj.size, connector="essai")
    assert (tmp_path / "acte.pdf").read_bytes() == b"arrive entre-temps" and names(tmp_path) == ["acte.pdf"]


def test_unsafe_and_reserved_names() -> None:
    assert safe_filename("../../etc/passwd") == "passwd" and safe_filename("a\\b:c?.pdf") == "b_c_.pdf"
    for name in ("x.receipt.json", "x.receipt.xml", "x.done", "..", ""):
        with pytest.raises(InvalidInput, match="nom de fichier refusé"):
            safe_filename(name)


def test_local_depot_with_layout_options_through_the_api(kit: Kit) -> None:
    bad = {"path": "zips", "packaging": "tar"}
    refused = kit["admin"].post("/interop/connectors", json={"name": "d", "kind": "depot", "config": bad})
    assert refused.status_code == 422
    config = {"path": "zips", "packaging": "zip", "done_marker": True, "on_conflict": "suffix"}
    created = kit["admin"].post("/interop/connectors", json={"name": "d", "kind": "depot", "config": config})
    assert created.status_code == 201, created.text
    assert created.json()["config"] == {**config, "tenant_slug": kit.slug}  # defaults (metadata json) not stored
    from test_interop_depot import ask_delivery, sending_transfer, transfer_row

    first, second = put(os.urandom(2048)), put(os.urandom(2048))
    for number, obj in enumerate((first, second, first)):
        transfer = sending_transfer(kit)
        ask_delivery(kit, obj, "paquet.bin", f"cle-layout-{number}", transfer, connector="d")
        run_jobs()
        assert transfer_row(transfer).status == "delivered"
    folder = get_settings().effective_deposit_root / kit.slug / "zips"
    assert names(folder) == ["paquet-1.zip", "paquet-1.zip.done", "paquet.zip", "paquet.zip.done"]
    with zipfile.ZipFile(folder / "paquet-1.zip") as archive:
        assert json.loads(archive.read("paquet.bin.receipt.json"))["sha256"] == second.key
