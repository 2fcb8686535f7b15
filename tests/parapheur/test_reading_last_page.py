"""« Lecture obligatoire »: a read counts once the reader was shown the whole document (its LAST page's image),
or downloaded it; the images of the other pages, loaded as they come near the screen, do not count."""

from __future__ import annotations

import re
from typing import Any

from parapheur_kit import Standard, act, folder_of, ok, sent_folder
from ui_kit import sign_in

from conftest import Kit, make_pdf


def _page_urls(client: Any, folder_id: str) -> list[str]:
    html = client.get(f"/dossiers/{folder_id}").text
    return [url.replace("&amp;", "&") for url in re.findall(r'<img src="([^"]+)" alt="Page', html)]


def _history(kit: Kit, folder_id: str) -> list[str]:
    return [event["action"] for event in ok(kit["maire"].get(f"/parapheur/folders/{folder_id}/history"))]


def test_reading_counts_only_once_the_last_page_was_shown(app: Any, kit: Kit) -> None:
    setup = Standard(kit, reading_required=True)
    files = [("trois-pages.pdf", make_pdf("Trois pages", pages=3), "application/pdf")]
    folder = sent_folder(kit, setup.visa_then_sign, files=files)
    ok(act(kit, "agent", folder["id"], "visa"))
    mayor = sign_in(app, kit, "maire")
    urls = _page_urls(mayor, folder["id"])
    assert len(urls) == 3
    for url in urls[:2]:  # pages 1 and 2, as a browser loads them with the page
        assert mayor.get(url).status_code == 200
    assert "document_read" not in _history(kit, folder["id"])
    refused = act(kit, "maire", folder["id"], "sign")
    assert refused.status_code == 409 and "lecture obligatoire" in refused.json()["detail"]
    assert mayor.get(urls[2]).status_code == 200  # the last page: the whole document was shown
    assert _history(kit, folder["id"]).count("document_read") == 1
    assert ok(act(kit, "maire", folder["id"], "sign"))["status"] == "completed"


def test_a_one_page_document_is_read_when_its_page_is_shown(app: Any, kit: Kit) -> None:
    setup = Standard(kit, reading_required=True)
    folder = sent_folder(kit, setup.visa_then_sign)
    ok(act(kit, "agent", folder["id"], "visa"))
    mayor = sign_in(app, kit, "maire")
    (url,) = _page_urls(mayor, folder["id"])
    assert act(kit, "maire", folder["id"], "sign").status_code == 409
    assert mayor.get(url).status_code == 200
    assert ok(act(kit, "maire", folder["id"], "sign"))["status"] == "completed"


def test_a_download_still_counts_as_reading(app: Any, kit: Kit) -> None:
    setup = Standard(kit, reading_required=True)
    files = [("trois-pages.pdf", make_pdf("Trois pages", pages=3), "application/pdf")]
    folder = sent_folder(kit, setup.visa_then_sign, files=files)
    ok(act(kit, "agent", folder["id"], "visa"))
    assert act(kit, "maire", folder["id"], "sign").status_code == 409
    assert kit["maire"].get(f"/parapheur/folders/{folder['id']}/document").status_code == 200  # the API's download
    assert ok(act(kit, "maire", folder["id"], "sign"))["status"] == "completed"
    assert folder_of(kit, folder["id"])["status"] == "completed"
