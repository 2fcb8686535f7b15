"""The signed copy's size is kept with its document when the copy is stored (every signature, a droit de remords
putting the copy before back), so the folder's page shows it without asking the store; a copy signed before sizes
were kept (no size in its row) is measured by the store, as the page did, and kept at the folder's next act."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from parapheur_kit import Standard, act, ok, sent_folder, typology
from sqlalchemy import select, update
from ui_kit import sign_in

from parapheur.models import FolderDocument
from socle.db import transaction
from socle.storage import get_store
from socle.ui.rendering import _format_size

from conftest import Kit, make_pdf


def _document(folder_id: str) -> tuple[str | None, int | None]:
    """(signed_key, signed_size) of the folder's one document, as the database has them."""
    with transaction() as session:
        document = session.execute(select(FolderDocument).where(FolderDocument.folder_id == folder_id)).scalar_one()
        return document.signed_key, document.signed_size


def _set_size(folder_id: str, size: int | None) -> None:
    """Write the row's size directly (Core, as a row written by an older revision would have it)."""
    with transaction() as session:
        session.execute(
            update(FolderDocument.__table__).where(FolderDocument.folder_id == folder_id).values(signed_size=size)
        )


def _shown_size(app: Any, kit: Kit, folder_id: str) -> str:
    page = sign_in(app, kit, "agent").get(f"/dossiers/{folder_id}")
    assert page.status_code == 200, page.text
    shown = re.search(r"\(version signée\) — (\S+ (?:o|Kio|Mio))", " ".join(unescape(page.text).split()))
    assert shown, page.text
    return shown.group(1)


def _french(size: int) -> str:
    return " ".join(_format_size(size, "fr").split())


def test_the_size_is_kept_when_the_signed_copy_is_stored_and_the_page_shows_it(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    folder = sent_folder(kit, setup.sign_only, files=[("budget.pdf", make_pdf("Budget"), "application/pdf")])
    assert _document(folder["id"]) == (None, None)
    ok(act(kit, "maire", folder["id"], "sign"))
    signed_key, size = _document(folder["id"])
    assert signed_key and size == get_store().size(signed_key)
    assert _shown_size(app, kit, folder["id"]) == _french(size)
    # What the page shows is the size kept in the row, not one asked of the store.
    _set_size(folder["id"], 3 * 1024 * 1024)
    assert _shown_size(app, kit, folder["id"]) == "3 Mio"


def test_a_copy_signed_before_sizes_were_kept_is_measured_then_kept_at_the_next_act(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    signed_then_seen = [
        {"kind": "signature", "desk_ids": [setup.maire]},
        {"kind": "visa", "desk_ids": [setup.secretariat]},
    ]
    subtype = typology(kit, signed_then_seen, name="Signé puis visé")
    folder = sent_folder(kit, subtype)
    ok(act(kit, "maire", folder["id"], "sign"))
    signed_key, _ = _document(folder["id"])
    assert signed_key
    _set_size(folder["id"], None)  # as par0010 leaves a document signed before it
    assert _shown_size(app, kit, folder["id"]) == _french(get_store().size(signed_key))
    ok(act(kit, "agent", folder["id"], "visa"))
    assert _document(folder["id"]) == (signed_key, get_store().size(signed_key))


def test_a_signature_taken_back_gives_back_the_size_of_the_copy_before(kit: Kit) -> None:
    setup = Standard(kit)
    twice = [
        {"kind": "signature", "desk_ids": [setup.maire]},
        {"kind": "signature", "desk_ids": [setup.maire]},
        {"kind": "visa", "desk_ids": [setup.secretariat]},  # the folder still open: the droit de remords applies
    ]
    folder = sent_folder(kit, typology(kit, twice, name="Deux signatures puis visa"))
    ok(act(kit, "maire", folder["id"], "sign"))
    first_key, first_size = _document(folder["id"])
    ok(act(kit, "maire", folder["id"], "sign"))
    second_key, second_size = _document(folder["id"])
    assert first_key and second_key and second_key != first_key
    assert first_size == get_store().size(first_key) and second_size == get_store().size(second_key)
    assert second_size != first_size
    ok(kit["maire"].post(f"/parapheur/folders/{folder['id']}/undo"))
    assert _document(folder["id"]) == (first_key, first_size)
    ok(kit["maire"].post(f"/parapheur/folders/{folder['id']}/undo"))
    assert _document(folder["id"]) == (None, None)
