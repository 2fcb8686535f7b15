"""A file dropped on the GED's upload zone (drag and drop) is the file the GED keeps."""

from __future__ import annotations

import base64
import hashlib

from browsing import Visitors

from conftest import Kit, make_pdf, run_jobs

pytest_plugins = ["browser_plugin"]  # the browser, the live server, the visitors and the report

# A drop as the browser delivers it: dragover (the zone accepts), then drop with a DataTransfer holding the file.
_DROP = """([zoneSelector, name, encoded]) => {
    const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], name, { type: "application/pdf" }));
    const zone = document.querySelector(zoneSelector);
    const over = new DragEvent("dragover", { bubbles: true, cancelable: true, dataTransfer: transfer });
    zone.dispatchEvent(over);
    const highlighted = zone.classList.contains("over");
    zone.dispatchEvent(new DragEvent("drop", { bubbles: true, cancelable: true, dataTransfer: transfer }));
    const input = zone.querySelector("input[type=file]");
    return { accepted: over.defaultPrevented, highlighted, files: [...input.files].map((file) => file.name) };
}"""


def test_a_pdf_dropped_on_the_zone_is_uploaded(visitors: Visitors, kit: Kit) -> None:
    pdf = make_pdf("Courrier déposé par glisser-déposer")
    page = visitors.page_of("agent")
    page.goto("/documents/nouveau")
    dropped = page.evaluate(_DROP, [".ged-drop", "courrier.pdf", base64.b64encode(pdf).decode()])
    assert dropped == {"accepted": True, "highlighted": True, "files": ["courrier.pdf"]}
    page.get_by_label("Titre").fill("Courrier glissé")
    page.get_by_label("Libellé du type").fill("courrier")
    with page.expect_navigation():
        page.get_by_role("button", name="Déposer", exact=True).click()
    run_jobs()
    found = kit["agent"].get("/ged/documents", params={"document_type": "courrier"}).json()["items"]
    kept = [(item["current"]["title"], item["current"]["content"]) for item in found]
    assert len(kept) == 1 and kept[0][0] == "Courrier glissé", found
    assert kept[0][1]["filename"] == "courrier.pdf" and kept[0][1]["sha256"] == hashlib.sha256(pdf).hexdigest()
