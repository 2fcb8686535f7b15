"""A folder's PDF shown as page images rendered on the server (no PDF viewer in the browser).

Pages are rendered lazily, one per request, by poppler's ``pdftoppm`` at a modest size, and cached in a
folder under the storage path, named by the document's digest: a page is rendered once whoever asks, and a
new signature (a new digest) gets new images. At most ``RENDER_SLOTS`` renderings run at once in a process;
a request that cannot get a slot in time is told to come back (503).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from parapheur import pades, service
from parapheur.models import FolderDocument
from parapheur.ui_common import parapheur_user
from socle.errors import InvalidInput, NotFound, ServiceUnavailable, SocleError
from socle.settings import get_settings
from socle.storage import get_store
from socle.ui.web import DbDep, UserDep

log = logging.getLogger("parapheur.ui")
router = APIRouter(include_in_schema=False)

LONGEST_SIDE_PX = 1000  # about 85 dpi for an A4 page: readable, some 50 to 150 KB of PNG per page
RENDER_SLOTS = 2
SLOT_WAIT_SECONDS = 30.0
RENDER_TIMEOUT_SECONDS = 60.0
_slots = threading.BoundedSemaphore(RENDER_SLOTS)
_KEY = re.compile(r"^[0-9a-f]{64}$")
_IMMUTABLE = "private, max-age=31536000, immutable"
VERSION_CHARS = 16  # of the digest, in an image's URL
PAGE_WINDOW = 10  # page images shown at once; the next ones are a link away


def image_url(folder_id: str, document: FolderDocument, page: int) -> str:
    return f"/dossiers/{folder_id}/documents/{document.id}/pages/{page}?v={document.current_key[:VERSION_CHARS]}"


def page_window(view: dict[str, Any], document: FolderDocument, first_page: int, url: Callable[[int], str]) -> None:
    """Fill ``view`` with the window of a PDF's pages shown as images from ``first_page`` (``count``, ``first``,
    ``last``, ``previous``, ``pages``: (number, ``url(number)``)), or ``error`` when its pages cannot be counted;
    nothing for a file that is not a PDF. Shared by the folder's page and the external signer's."""
    if not is_pdf(document):
        return
    try:
        count = page_count(document.current_key)
    except SocleError as exc:
        view["error"] = exc.detail
        return
    first = min(first_page, count)
    last = min(first + PAGE_WINDOW - 1, count)
    view.update(
        count=count,
        first=first,
        last=last,
        previous=max(first - PAGE_WINDOW, 1),
        pages=[(number, url(number)) for number in range(first, last + 1)],
    )


def is_pdf(document: FolderDocument) -> bool:
    return document.media_type == "application/pdf" or document.filename.lower().endswith(".pdf")


def cache_dir(key: str) -> Path:
    if not _KEY.match(key):
        raise NotFound("document introuvable")
    return get_settings().effective_storage_path / "cache" / "parapheur-pages" / key[:2] / key


def page_count(key: str) -> int:
    """How many pages the PDF stored under ``key`` has (read once, then kept beside its images)."""
    known = cache_dir(key) / "pages.txt"
    if known.is_file():
        return int(known.read_text(encoding="ascii"))
    try:
        with get_store().local_path(key) as path:
            count = pades.inspect_pdf(path).page_count
    except pades.PdfError as exc:
        raise InvalidInput(str(exc)) from None
    _write_atomically(known, str(count).encode("ascii"))
    return count


def page_image(key: str, page: int) -> Path:
    """The PNG of page ``page`` (1-based) of the PDF stored under ``key``, rendered if not cached yet.

    :raises NotFound: no such page. :raises ServiceUnavailable: too many renderings running.
    """
    if not 1 <= page <= page_count(key):
        raise NotFound(f"page {page} introuvable")
    target = cache_dir(key) / f"{page}-{LONGEST_SIDE_PX}.png"
    if target.is_file():
        return target
    if not _slots.acquire(timeout=SLOT_WAIT_SECONDS):
        raise ServiceUnavailable("trop de pages sont en cours de préparation : réessayez dans un instant")
    try:
        if not target.is_file():  # another request may have rendered it while this one waited
            _render(key, page, target)
    finally:
        _slots.release()
    return target


def _render(key: str, page: int, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with get_store().local_path(key) as pdf, tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        prefix = Path(scratch) / "page"
        command = ["pdftoppm", "-png", "-f", str(page), "-l", str(page), "-scale-to", str(LONGEST_SIDE_PX)]
        try:
            subprocess.run(
                [*command, "-singlefile", str(pdf), str(prefix)],
                check=True,
                capture_output=True,
                timeout=RENDER_TIMEOUT_SECONDS,
            )
        except FileNotFoundError:
            raise ServiceUnavailable("l'aperçu des pages n'est pas disponible (pdftoppm absent du serveur)") from None
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            log.warning("pdftoppm failed on %s page %s: %s", key, page, exc)
            raise InvalidInput(f"la page {page} n'a pas pu être affichée : téléchargez le document") from None
        os.replace(prefix.with_suffix(".png"), target)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.replace(name, path)


@router.get("/dossiers/{folder_id}/documents/{document_id}/pages/{page}")
def page_png(
    request: Request, db: DbDep, user: UserDep, folder_id: str, document_id: str, page: int, v: str = ""
) -> Response:
    """One page image. The LAST page's image counts as reading the document (lecture obligatoire), as a download
    does: the reader was shown it all. Other pages do not: images load as they come near the screen, and the first
    ones load with the page, unread."""
    principal = parapheur_user(user)
    document = service.open_document(db, principal, folder_id, document_id, read=False)
    if not is_pdf(document):
        raise NotFound("ce document n'a pas d'aperçu en images")
    image = page_image(document.current_key, page)
    if page == page_count(document.current_key):
        service.record_read(db, principal, document)
    # The URL names the document's digest (v): the same URL always shows the same image, cached for long.
    fresh = len(v) >= VERSION_CHARS and document.current_key.startswith(v)
    headers = {"Cache-Control": _IMMUTABLE if fresh else "no-store"}
    return FileResponse(image, media_type="image/png", headers=headers)
