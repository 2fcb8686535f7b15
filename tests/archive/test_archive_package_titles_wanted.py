"""The transfer page shows the titles of a few hundred documents and units of a package that may describe tens of
thousands: given those ids, the manifest is read (in a stream) only until each one's title is found, and the
titles are those a whole reading gives."""

from __future__ import annotations

import io
import zipfile
from typing import Any

from lxml import etree

from archive.package_titles import package_titles
from socle.storage import get_store

from conftest import Kit

COUNT = 10_000


def stored_package() -> tuple[str, int, int]:
    """A package of COUNT documents under a folder unit, as socle builds them (objects first, then the units);
    its key, the manifest's size and where its units start."""
    groups = "".join(
        f'<DataObjectGroup id="GO{i}"><BinaryDataObject id="BO{i}"><DataObjectVersion>BinaryMaster_1'
        f"</DataObjectVersion><Uri>content/{i}.pdf</Uri><Size>12</Size></BinaryDataObject></DataObjectGroup>"
        for i in range(COUNT)
    )
    units = "".join(
        f'<ArchiveUnit id="AU{i}"><Management/><Content><DescriptionLevel>Item</DescriptionLevel>'
        f"<Title>Délibération n° {i}</Title><OriginatingAgencyArchiveUnitIdentifier>doc-{i}"
        f"</OriginatingAgencyArchiveUnitIdentifier></Content><DataObjectReference><DataObjectGroupReferenceId>"
        f"GO{i}</DataObjectGroupReferenceId></DataObjectReference></ArchiveUnit>"
        for i in range(COUNT)
    )
    manifest = (
        '<ArchiveTransfer xmlns="fr:gouv:culture:archivesdefrance:seda:v2.2"><DataObjectPackage>'
        f'{groups}<DescriptiveMetadata><ArchiveUnit id="AU"><Content><Title>Conseil</Title></Content>{units}'
        "</ArchiveUnit></DescriptiveMetadata><ManagementMetadata/></DataObjectPackage></ArchiveTransfer>"
    ).encode()
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("manifest.xml", manifest)
    data.seek(0)
    return get_store().put(data).key, len(manifest), manifest.index(b"<DescriptiveMetadata>")


def test_the_reading_stops_once_the_titles_asked_for_are_found(kit: Kit, monkeypatch: Any) -> None:
    key, size, first_unit = stored_package()
    whole = package_titles(key)
    documents = [f"doc-{i}" for i in range(200)]  # the page's first 200 documents, and the SAE's units
    units = ["AU", "AU0", "AU150"]

    fed: list[int] = []

    class Observed(etree.XMLPullParser):  # the real parser, observed
        def feed(self, data: bytes) -> None:
            fed.append(len(data))
            super().feed(data)

    monkeypatch.setattr(etree, "XMLPullParser", Observed)
    titles = package_titles(key, documents=documents, units=units)

    assert titles.documents == {document: whole.documents[document] for document in documents}
    assert titles.units == {unit: whole.units[unit] for unit in units}
    # The objects come first, then the units: the 9,800 units after the 200th are not read.
    assert sum(fed) < first_unit + (size - first_unit) * 0.2, (sum(fed), size)

    fed.clear()
    # An id the package does not have: read to the end of the units, as before, and not made up.
    missing = package_titles(key, documents=["doc-1", "doc-absent"], units=[])
    assert missing.documents == {"doc-1": "Délibération n° 1"} and missing.units == {}
    assert sum(fed) > size * 0.9
    # Nothing asked: the store is not even opened.
    fed.clear()
    assert package_titles(key, documents=[], units=[]) == package_titles(None)
    assert fed == []
