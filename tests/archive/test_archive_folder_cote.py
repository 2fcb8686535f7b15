"""A folder of the plan in the package: its cote (the GED folder's code) is an identifier of its own, not glued
to its Title, and a grouping unit spans the dates of the units it holds."""

from __future__ import annotations

from typing import Any

import pytest
import xmlschema
from test_archive_from_ged import Manifest, add_document, make_folder, make_type, manifest_of, put_mapping, transfer

from archive.validation import validate_manifest

from conftest import SHARED_SEDA, Kit


@pytest.mark.parametrize("version", ["2.1", "2.2", "2.3"])
def test_the_folder_cote_is_an_identifier_and_groups_span_their_childrens_dates(
    kit: Kit, version: str, seda_schema: xmlschema.XMLSchema
) -> None:
    make_type(kit, "arrete", fields=[{"name": "signe", "label": "Signé le", "kind": "date"}])
    put_mapping(kit, "arrete", start_date="field:signe")
    registry = make_folder(kit, "Arrêtés du maire", code="1D2")
    year = make_folder(kit, "2025", registry)  # no cote: the title alone, no identifier
    add_document(kit, "Arrêté de voirie", type="arrete", folder_id=registry, date="2025-06-30",
                 field_values={"signe": "2025-06-02"})  # fmt: skip
    add_document(kit, "Arrêté de police", type="arrete", folder_id=year, date="2025-11-20",
                 field_values={"signe": "2025-02-11"})  # fmt: skip
    make_type(kit, "note")
    add_document(kit, "Note sans date", type="note", folder_id=year)

    built = transfer(kit, folder_id=registry, seda_version=version)
    data = manifest_of(kit, built)
    assert built["validation"]["status"] == "valid", built["validation"]
    report = validate_manifest(data, SHARED_SEDA, version)
    assert report.valid, report.issues
    if version == "2.2":
        assert [str(error.reason) for error in seda_schema.iter_errors(data)] == []

    manifest = Manifest(data, version)
    [root] = manifest.roots()
    assert manifest.title(root) == "Arrêtés du maire"
    assert manifest.text(root, "s:Content/s:OriginatingAgencyArchiveUnitIdentifier") == "1D2"
    # The earliest and latest dates of everything below it, the subfolder's documents included.
    assert manifest.text(root, "s:Content/s:StartDate") == "2025-02-11"
    end: Any = manifest.text(root, "s:Content/s:EndDate")
    assert end is not None and end >= "2025-11-20"
    subfolder = next(unit for unit in manifest.children(root) if manifest.title(unit) == "2025")
    assert manifest.text(subfolder, "s:Content/s:OriginatingAgencyArchiveUnitIdentifier") is None
    assert manifest.text(subfolder, "s:Content/s:StartDate") == "2025-02-11"
    assert manifest.text(subfolder, "s:Content/s:EndDate") == end
