"""« Lecture du document » is recorded when a reading matters: a signer opening the copy their own signature made
(the folder's page shows it again right after they sign) reads nothing new, and adds no history line; anyone else
opening it, or the signer opening a state someone else made, is a reading as before."""

from __future__ import annotations

import re
from typing import Any

from parapheur_kit import Standard, act, ok, sent_folder, typology
from ui_kit import sign_in

from conftest import Kit, make_pdf


def _readings(kit: Kit, folder_id: str) -> list[str]:
    history = ok(kit["maire"].get(f"/parapheur/folders/{folder_id}/history"))
    return [event["actor"] for event in history if event["action"] == "document_read"]


def _page_urls(client: Any, folder_id: str) -> list[str]:
    html = client.get(f"/dossiers/{folder_id}").text
    return [url.replace("&amp;", "&") for url in re.findall(r'<img src="([^"]+)" alt="Page', html)]


def _download(kit: Kit, user: str, folder: dict[str, Any]) -> bytes:
    response = kit[user].get(f"/parapheur/folders/{folder['id']}/documents/{folder['documents'][0]['id']}")
    assert response.status_code == 200, response.text
    return bytes(response.content)


def test_a_signer_opening_their_own_signed_copy_reads_nothing_new(app: Any, kit: Kit) -> None:
    setup = Standard(kit, reading_required=True)
    files = [("deux-pages.pdf", make_pdf("Deux pages", pages=2), "application/pdf")]
    folder = sent_folder(kit, setup.visa_then_sign, files=files)
    ok(act(kit, "agent", folder["id"], "visa"))
    original = _download(kit, "maire", folder)  # the reading the signature needs
    assert _readings(kit, folder["id"]) == ["maire"]
    ok(act(kit, "maire", folder["id"], "sign"))

    # Back on the folder's page, then downloading it: their signed copy, not a new reading.
    mayor = sign_in(app, kit, "maire")
    urls = _page_urls(mayor, folder["id"])
    assert len(urls) == 2 and all(mayor.get(url).status_code == 200 for url in urls)
    signed = _download(kit, "maire", folder)
    assert signed != original and signed.startswith(b"%PDF")
    assert _readings(kit, folder["id"]) == ["maire"]
    # The agent opening the signed copy reads it: recorded, once.
    _download(kit, "agent", folder)
    _download(kit, "agent", folder)
    assert _readings(kit, folder["id"]) == ["maire", "agent"]


def test_a_signer_who_signed_without_opening_is_not_said_to_read_their_copy(kit: Kit) -> None:
    setup = Standard(kit)  # no lecture obligatoire: signed without opening the document
    folder = sent_folder(kit, setup.sign_only)
    ok(act(kit, "maire", folder["id"], "sign"))
    _download(kit, "maire", folder)
    assert _readings(kit, folder["id"]) == []


def test_their_own_signature_is_no_state_to_read_again_but_another_s_is(kit: Kit) -> None:
    """The same desk signs two steps in a row, lecture obligatoire: read once, signed twice. The next signer read
    the document before those signatures: the state the mayor made is new to them, to be read before signing."""
    setup = Standard(kit)
    steps = [
        {"kind": "signature", "desk_ids": [setup.maire]},
        {"kind": "signature", "desk_ids": [setup.maire]},
        {"kind": "signature", "desk_ids": [setup.secretariat]},
    ]
    subtype = typology(kit, steps, name="Deux signatures du maire, puis le secrétariat", reading_required=True)
    folder = sent_folder(kit, subtype)
    _download(kit, "agent", folder)
    _download(kit, "maire", folder)
    assert ok(act(kit, "maire", folder["id"], "sign"))["current_step"] == 1
    assert ok(act(kit, "maire", folder["id"], "sign"))["current_step"] == 2
    assert _readings(kit, folder["id"]) == ["agent", "maire"]
    refused = act(kit, "agent", folder["id"], "sign")  # the agent read the unsigned state only
    assert refused.status_code == 409 and "lecture obligatoire" in refused.json()["detail"]
    _download(kit, "agent", folder)
    assert _readings(kit, folder["id"]) == ["agent", "maire", "agent"]
