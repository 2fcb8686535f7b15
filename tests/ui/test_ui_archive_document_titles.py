"""The transfer page names its documents and the SAE's units by their titles (WCAG 2.4.4: meaningful link
texts), read from the package the transfer built; the ids stay as secondary text."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

from lxml import etree
from test_ui_archive_transfers import (
    api_transfer,
    ask_transfer,
    built_transfer,
    sae_messages,
    sent_transfer,
    set_referential,
)
from ui_kit import sign_in

from archive.package_titles import package_titles
from socle.storage import get_store

from conftest import Kit, make_pdf, run_jobs, upload_document


def links_to(page: str, document_id: str) -> list[str]:
    """The texts of the page's links to a GED document."""
    return re.findall(rf'<a href="/documents/{document_id}">([^<]*)</a>', page)


def test_the_documents_of_a_transfer_are_listed_by_title(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    first = upload_document(kit["agent"], make_pdf("Arrêté n° 41"), title="Arrêté n° 41")
    second = upload_document(kit["agent"], make_pdf("Délibération n° 7"), title="Délibération n° 7")
    transfer_id = ask_transfer(client, selection="documents", document_ids=f"{first['id']}\n{second['id']}")

    waiting = client.get(f"/archives/transferts/{transfer_id}").text  # no package yet: the ids, said as such
    assert links_to(waiting, first["id"]) == [f"Document {first['id']}"]

    run_jobs()
    page = client.get(f"/archives/transferts/{transfer_id}").text
    listed = page.split("Documents du versement")[1]
    assert links_to(listed, first["id"]) == ["Arrêté n° 41"]
    assert links_to(listed, second["id"]) == ["Délibération n° 7"]
    assert f'<span class="muted"><code>{first["id"]}</code></span>' in listed  # the id, as secondary text


def test_a_report_the_referential_explains_links_to_its_screen(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    set_referential(kit, ["SHA-256"])  # the package's SHA-512 is then refused by the business checks
    transfer_id, _document_id = built_transfer(kit, client)
    page = client.get(f"/archives/transferts/{transfer_id}").text
    assert "status-invalid" in page
    assert '<a href="/archives/referentiel">' in page and '<a href="/archives/profils">' in page


def test_the_sae_units_are_named_by_their_titles(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    transfer_id, document_id = sent_transfer(kit, client)
    builders = sae_messages()
    request = api_transfer(kit, transfer_id)["message_identifier"]
    reply = builders.transfer_reply("2.2", request, "OK", "ATR-9", units={"AU1": "aeaqaaaaaahg9"})
    builders.sae_sends(kit.tenant_id, transfer_id, "reply", reply)
    table = client.get(f"/archives/transferts/{transfer_id}").text.split("Unités d'archives dans le système")[1]
    table = table.split("</table>")[0]
    assert '<th scope="row">Délibération à verser<br><span class="muted">AU1</span></th>' in table
    assert links_to(table, document_id) == ["Délibération à verser"]
    assert document_id in table.split("</a>")[1]  # the id after the link, as secondary text


def test_titles_are_read_from_the_manifest_entry_alone_whatever_its_compression(kit: Kit) -> None:
    manifest = (
        '<ArchiveTransfer xmlns="fr:gouv:culture:archivesdefrance:seda:v2.2"><DataObjectPackage><DescriptiveMetadata>'
        '<ArchiveUnit id="AU1"><Content><DescriptionLevel>RecordGrp</DescriptionLevel><Title>Voirie</Title>'
        "<OriginatingAgencyArchiveUnitIdentifier>2T</OriginatingAgencyArchiveUnitIdentifier></Content>"
        '<ArchiveUnit id="AU2"><Content><DescriptionLevel>Item</DescriptionLevel><Title>Arrêté &amp; plan</Title>'
        "<OriginatingAgencyArchiveUnitIdentifier>doc-1</OriginatingAgencyArchiveUnitIdentifier></Content>"
        "</ArchiveUnit></ArchiveUnit></DescriptiveMetadata></DataObjectPackage></ArchiveTransfer>"
    ).encode()

    def stored(compression: int, first: str = "manifest.xml") -> str:
        data = io.BytesIO()
        with zipfile.ZipFile(data, "w", compression) as package:
            for name in dict.fromkeys([first, "manifest.xml"]):
                package.writestr(name, manifest if name == "manifest.xml" else b"%PDF")
        data.seek(0)
        return get_store().put(data).key

    for compression in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        titles = package_titles(stored(compression))
        assert titles.units == {"AU1": "Voirie", "AU2": "Arrêté & plan"}
        assert titles.documents["doc-1"] == "Arrêté & plan"
    # Not a package as socle builds them (the manifest behind a content file), or no package: no title, no error.
    assert package_titles(stored(zipfile.ZIP_DEFLATED, first="content/a.pdf")).units == {}
    assert package_titles("0" * 64).units == {} and package_titles(None).documents == {}


def test_titles_are_read_in_a_stream_that_forgets_each_document_once_read(kit: Kit, monkeypatch: Any) -> None:
    """The manifest is never held whole: after each chunk, the tree keeps a few elements, not one per document
    (a 55 MB manifest kept whole took 131 MiB per view); what follows the units is not read."""
    count = 10_000
    groups = "".join(
        f'<DataObjectGroup id="GO{i}"><BinaryDataObject id="BO{i}"><DataObjectVersion>BinaryMaster_1'
        f"</DataObjectVersion><Uri>content/{i}.pdf</Uri><Size>12</Size></BinaryDataObject></DataObjectGroup>"
        for i in range(count)
    )
    units = "".join(
        f'<ArchiveUnit id="AU{i}"><Management/><Content><DescriptionLevel>Item</DescriptionLevel>'
        f"<Title>Délibération n° {i}</Title><OriginatingAgencyArchiveUnitIdentifier>doc-{i}"
        f"</OriginatingAgencyArchiveUnitIdentifier></Content><DataObjectReference><DataObjectGroupReferenceId>"
        f"GO{i}</DataObjectGroupReferenceId></DataObjectReference></ArchiveUnit>"
        for i in range(count)
    )
    trailer = "<ManagementMetadata>" + "<!--" + "x" * 2_000_000 + "-->" + "</ManagementMetadata>"
    manifest = (
        '<ArchiveTransfer xmlns="fr:gouv:culture:archivesdefrance:seda:v2.2"><DataObjectPackage>'
        f'{groups}<DescriptiveMetadata><ArchiveUnit id="AU"><Content><Title>Conseil</Title></Content>{units}'
        f"</ArchiveUnit></DescriptiveMetadata>{trailer}</DataObjectPackage></ArchiveTransfer>"
    ).encode()
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("manifest.xml", manifest)
    data.seek(0)
    key = get_store().put(data).key

    kept: list[int] = []  # the elements the tree holds after each chunk is read
    fed: list[int] = []

    class Observed(etree.XMLPullParser):  # the real parser, observed
        root: etree._Element | None = None

        def feed(self, data: bytes) -> None:
            fed.append(len(data))
            super().feed(data)

        def read_events(self) -> Iterator[tuple[str, etree._Element]]:
            for event in super().read_events():
                if self.root is None:
                    self.root = event[1].getroottree().getroot()
                yield event
            if self.root is not None:
                kept.append(sum(1 for _ in self.root.iter()))

    monkeypatch.setattr(etree, "XMLPullParser", Observed)
    titles = package_titles(key)
    assert len(titles.documents) == count and titles.documents["doc-9999"] == "Délibération n° 9999"
    assert len(titles.units) == count + 1 and titles.units["AU"] == "Conseil"
    assert len(kept) > 5 and max(kept) < 50  # one document alone is 13 elements
    assert sum(fed) < len(manifest) - 1_000_000  # the trailer after the units is not read
