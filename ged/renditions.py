"""GED renditions made by background jobs for each new content version: extracted text (PDFium in the worker's
own process; then OCR with OCRmyPDF in French, as a job of its own, when a PDF has no text layer, or for an
image), a first-page preview and a thumbnail (PNG, pdftoppm or Pillow), and a PDF/A-2b copy (Ghostscript;
OCRmyPDF for a scan, which it makes searchable).

Each rendition is one job keyed by the version (``ged.text:<version id>``…): asking twice enqueues once, and a
job finding its rendition already made does nothing. The text job is quick (a few milliseconds for an act) and
runs on the GED's main queue; OCR, preview and PDF/A take a tenth of a second to minutes and run on the
« renditions » lane (see socle.messages), so that a document is searchable without waiting for them.

The heavy tools run outside any transaction, with a time limit and on bounded inputs; a store that does not
answer raises, so the queue retries later; a damaged file is recorded as such (``text_status`` "failed" with a
French reason in the audit log), never retried forever. A job that fails for good all the same (store
unreachable beyond the retries, a damaged object, a worker that keeps dying) is reported by the kernel to
``rendition_failed``, which records its rendition as failed in the same way: nothing stays « en cours » forever.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pikepdf
import pypdfium2
from PIL import Image
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from ged import indexing, journal
from ged.models import Document, Version
from socle import messages, queue
from socle.db import new_id, new_session, transaction
from socle.models import Job
from socle.queue import enqueue
from socle.storage import get_store, scratch_dir
from socle.storage.ownership import check_stored

log = logging.getLogger("ged.renditions")

PDF = "application/pdf"
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/tiff", "image/gif", "image/bmp", "image/webp"})

# text_status values (see ged.models.Version)
PENDING, DONE, OCR_UNAVAILABLE, FAILED, NONE = "pending", "done", "ocr_unavailable", "failed", "none"

PREVIEW_WIDTH = 1000
THUMBNAIL_WIDTH = 200
# Bounds on what the heavy tools are given: beyond them the rendition is refused, not attempted.
MAX_INPUT_BYTES = 200 * 1024 * 1024
MAX_TEXT_BYTES = 20 * 1024 * 1024
MAX_OCR_PAGES = 200
MAX_IMAGE_PIXELS = 100_000_000
TOOL_TIMEOUT = 120  # seconds, per tool run
OCR_TIMEOUT = 600

_SYSTEM = "système"  # actor of the audit entries written by the rendition jobs

# The renditions, as the audit entries of their failures name them (details « rendu »).
TEXT, PREVIEW, PDFA = "texte", "aperçu", "PDF/A"
# A rendition deliberately not made (RenditionNotApplicable) is no failure: its own audit action, with the cause.
FAILED_ACTION, SKIPPED_ACTION, REDO_ACTION = "ged.rendition.failed", "ged.rendition.skipped", "ged.rendition.redo"
SIGNED = "pdf_signé"  # the cause (details « cause ») of a PDF/A copy not made for a signed PDF

_ELIMINATED = "eliminated"  # ged.service.ELIMINATED, which cannot be imported: ged.service imports this module


def schedule(session: Session, document: Document, version: Version) -> None:
    """Enqueue the rendition jobs of a new content version, in the caller's transaction.

    PDFs get text extraction (OCR when no text layer), preview and thumbnail, and a PDF/A-2b copy; images a
    preview and thumbnail and OCR text; other types none (``text_status`` "none"). A version with the same
    bytes as an earlier one whose renditions are all made (a metadata change) takes them, without jobs.
    Idempotent: each job is keyed by the version, so scheduling the same version again enqueues nothing more.

    :param session: the caller's session; the jobs leave when it commits.
    :param document: the document the version belongs to.
    :param version: the new version (flushed here if it has no id yet).
    """
    if version.id is None or document.id is None:
        session.flush()
    kind = media_kind(version.media_type)
    if kind is None:
        version.text_status = NONE
        return
    if _copy_from_same_content(document, version) or _coming_for_same_content(session, document, version):
        return
    arguments: dict[str, Any] = {"tenant_id": document.tenant_id, "document_id": document.id, "version": version.number}
    asked = [
        (messages.GED_EXTRACT_TEXT, f"ged.text:{version.id}", arguments),
        (messages.GED_MAKE_PREVIEW, f"ged.preview:{version.id}", arguments),
    ]
    if kind == "pdf":
        asked.append((messages.GED_MAKE_PDFA, f"ged.pdfa:{version.id}", arguments))
    queue.enqueue_all(session, asked)  # one query and one flush for the lot, on every upload


def _copy_from_same_content(document: Document, version: Version) -> bool:
    """A version with the same bytes as an earlier one (a metadata change) takes its finished renditions."""
    for earlier in document.versions:
        if earlier is version or earlier.object_key != version.object_key or earlier.text_status == PENDING:
            continue
        if earlier.preview_key is None or (media_kind(version.media_type) == "pdf" and earlier.pdfa_key is None):
            continue  # not all made (or failed): this version gets its own jobs
        version.text_status, version.text_key = earlier.text_status, earlier.text_key
        version.preview_key, version.thumbnail_key, version.pdfa_key = (
            earlier.preview_key,
            earlier.thumbnail_key,
            earlier.pdfa_key,
        )
        return True
    return False


def _coming_for_same_content(session: Session, document: Document, version: Version) -> bool:
    """An earlier version with the same bytes still has its jobs to run: they fill this version in too."""
    earlier_ids = [
        earlier.id
        for earlier in document.versions
        if earlier is not version and earlier.object_key == version.object_key and earlier.text_status == PENDING
    ]
    if not earlier_ids:
        return False
    # The text job, or the OCR job it handed a scan over to.
    asked = or_(
        Job.key.in_([f"ged.text:{earlier_id}" for earlier_id in earlier_ids]),
        *(Job.key.startswith(f"ged.ocr:{earlier_id}:") for earlier_id in earlier_ids),
    )
    waiting = select(Job.id).where(asked, Job.status.in_((queue.PENDING, queue.QUEUED, queue.RUNNING)))
    return session.execute(waiting.limit(1)).first() is not None


def redo_text(
    session: Session, tenant_id: str | None, statuses: tuple[str, ...] = (OCR_UNAVAILABLE,), *, actor: str = _SYSTEM
) -> int:
    """Extract the text again of the versions whose ``text_status`` is one of ``statuses`` (after OCRmyPDF was
    installed, say); returns how many. Each goes back to "pending" with a new job, in the caller's transaction,
    written in the document's audit log; running it twice before the jobs ran finds them pending and enqueues
    nothing more.

    :param tenant_id: only this collectivité's documents, or every one with None.
    :param actor: who asked, for the audit log (e.g. ``cli:socle-ged-redo-text``).
    """
    query = select(Version, Document).join(Document, Document.id == Version.document_id)
    query = query.where(Version.text_status.in_(statuses), Document.deleted_at.is_(None))
    if tenant_id is not None:
        query = query.where(Document.tenant_id == tenant_id)
    count = 0
    for version, document in session.execute(query.with_for_update(of=Version)).all():
        journal.record_document(
            session,
            document.tenant_id,
            actor,
            "ged.rendition.redo",
            document.id,
            version=version.number,
            rendu=TEXT,
            statut=version.text_status,
        )
        version.text_status, version.text_key = PENDING, None
        arguments: dict[str, Any] = {"tenant_id": document.tenant_id, "document_id": document.id}
        key = f"ged.text:{version.id}:{new_id()}"  # a new run, not the first job (done, so kept)
        enqueue(session, messages.GED_EXTRACT_TEXT, key=key, version=version.number, **arguments)
        count += 1
    return count


def redo_renditions(
    session: Session,
    tenant_id: str | None,
    *,
    missing: bool = False,
    actor: str = _SYSTEM,
    batch_size: int = 500,
) -> int:
    """Ask again for the preview (and thumbnail) and the PDF/A copy of the versions whose latest such rendition
    failed (``rendition_failed``, a damaged file), or with ``missing`` of those that have none and no job on the
    way (a job lost, a tool installed since); returns how many renditions were asked for.

    Each one is written in the document's audit log (``ged.rendition.redo``), which also ends the failure it
    answers: the document page says « en préparation » again until the new job ends. The job's key names the
    job it follows, so running it twice before the jobs ran enqueues nothing more. Versions are read in
    batches of ``batch_size``, each committed, so that a large redo holds no lock for long.

    :param tenant_id: only this collectivité's documents, or every one with None.
    :param actor: who asked, for the audit log (e.g. ``cli:socle-ged-redo-renditions``).
    """
    count = 0
    after = ""
    while True:
        query = (
            select(Version, Document)
            .join(Document, Document.id == Version.document_id)
            .where(
                Document.deleted_at.is_(None),
                or_(Version.preview_key.is_(None), (Version.media_type == PDF) & Version.pdfa_key.is_(None)),
                Version.id > after,
            )
            .order_by(Version.id)
            .limit(batch_size)
        )
        if tenant_id is not None:
            query = query.where(Document.tenant_id == tenant_id)
        rows = session.execute(query).all()
        for version, document in rows:
            count += _redo_version(session, document, version, missing=missing, actor=actor)
        session.commit()
        if len(rows) < batch_size:
            return count
        after = rows[-1][0].id


_REDONE = {PREVIEW: ("ged.preview", messages.GED_MAKE_PREVIEW), PDFA: ("ged.pdfa", messages.GED_MAKE_PDFA)}
_ON_THE_WAY = (queue.PENDING, queue.QUEUED, queue.RUNNING)


def _redo_version(session: Session, document: Document, version: Version, *, missing: bool, actor: str) -> int:
    kind = media_kind(version.media_type)
    if kind is None:
        return 0
    absent = []
    if version.preview_key is None:
        absent.append(PREVIEW)
    if kind == "pdf" and version.pdfa_key is None:
        absent.append(PDFA)
    latest = _latest_jobs(session, version.id)
    reasons = failure_reasons(session, document.tenant_id, document.id, version.number)
    skipped = skipped_renditions(session, document.tenant_id, document.id, version.number)
    asked = 0
    for what in absent:
        job = latest.get(what)
        if job is not None and job.status in _ON_THE_WAY:
            continue  # on its way: nothing to redo
        if what in skipped:
            continue  # deliberately not made (a signed PDF): a new run would skip it again
        if what not in reasons and not missing:
            continue
        journal.record_document(
            session,
            document.tenant_id,
            actor,
            "ged.rendition.redo",
            document.id,
            version=version.number,
            rendu=what,
            statut="échec" if what in reasons else "absent",
        )
        prefix, message = _REDONE[what]
        # A new run after the given-up one (kept); keyed by it, so that asking twice enqueues once.
        key = f"{prefix}:{version.id}:{job.id if job is not None else 'aucun'}"
        enqueue(
            session, message, key=key, tenant_id=document.tenant_id, document_id=document.id, version=version.number
        )
        asked += 1
    return asked


def media_kind(media_type: str) -> str | None:
    """``"pdf"``, ``"image"`` or None (no rendition) for a version's media type."""
    if media_type == PDF:
        return "pdf"
    if media_type in IMAGE_TYPES:
        return "image"
    return None


class RenditionFailed(Exception):
    """The file itself cannot be rendered (damaged, too big, unsupported): recorded, not retried."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RenditionNotApplicable(RenditionFailed):
    """Nothing is wrong with the file, but this rendition must not be made for it (e.g. PDF/A of a signed PDF):
    recorded as skipped (``ged.rendition.skipped``, with ``cause``), not as a failure, and never redone."""

    def __init__(self, reason: str, cause: str) -> None:
        super().__init__(reason)
        self.cause = cause


@dataclass(frozen=True)
class _Target:
    version_id: str
    object_key: str
    media_type: str
    size: int


def _load(tenant_id: str, document_id: str, number: int, done: Callable[[Version], bool]) -> _Target | None:
    """The version to render, or None when it is gone, its document eliminated (its bytes are gone too) or its
    rendition already made (a second run)."""
    with transaction() as session:
        found = session.execute(
            select(Version, Document.disposal)
            .join(Document, Document.id == Version.document_id)
            .where(Document.tenant_id == tenant_id, Document.id == document_id, Version.number == number)
        ).one_or_none()
        if found is None or found.disposal == _ELIMINATED or done(found.Version):
            return None
        version = found.Version
        return _Target(version.id, version.object_key, version.media_type, version.size)


@contextmanager
def _input_file(target: _Target) -> Iterator[Path]:
    if target.size > MAX_INPUT_BYTES:
        raise RenditionFailed(f"fichier trop volumineux pour les rendus ({target.size} octets)")
    # A store that does not answer raises here (not a RenditionFailed): the queue retries the job later.
    with get_store().local_path(target.object_key) as path:
        yield path


def _put_bytes(data: bytes) -> str:
    return get_store().put(io.BytesIO(data)).key


def _put_file(path: Path) -> str:
    with path.open("rb") as stream:
        return get_store().put(stream).key


def run_tool(
    arguments: list[str], *, timeout: float = TOOL_TIMEOUT, cwd: Path | None = None, scratch: Path | None = None
) -> str:
    """Run an external tool with a time limit; its failure becomes a RenditionFailed with a French reason.

    The tool runs in a process group of its own, killed whole on timeout or when the job is interrupted
    (OCRmyPDF starts Tesseract and Ghostscript, which would otherwise outlive it). When the worker itself dies
    (``kill -9``, the OOM killer), no Python code runs to do that: the kernel's signal on a parent's death
    (PR_SET_PDEATHSIG) reaches only the process the worker started, never what that one started in turn. So
    the tool is started by a keeper shell (``_KEEPER``) that leads the group and waits for it: the kernel
    sends the keeper SIGTERM when the worker dies, and the keeper kills the whole group, the tool and its
    Tesseract or Ghostscript with it. ``scratch``: the tool's TMPDIR, the job's own work folder, removed with
    it (OCRmyPDF's ``ocrmypdf.io.*``, Ghostscript's files).
    """
    env = {**os.environ, "TMPDIR": str(scratch)} if scratch is not None else None
    if shutil.which(arguments[0]) is None:  # the keeper would only say « not found », in English, as code 127
        raise RenditionFailed(f"{arguments[0]} : outil introuvable")
    try:
        process = subprocess.Popen(
            [*_KEEPER, *arguments],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            process_group=0,
            preexec_fn=_dying_with(os.getpid()),
        )
    except OSError as exc:
        raise RenditionFailed(f"{arguments[0]} : impossible de lancer l'outil ({exc.strerror})") from None
    with process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise RenditionFailed(f"{arguments[0]} : délai de {timeout:.0f} s dépassé") from None
        except BaseException:  # the job's own time limit (rq raises it in this thread), an interruption
            _kill_group(process)
            raise
    if process.returncode != 0:
        detail = stderr.decode("utf-8", "replace").strip().splitlines()
        last = detail[-1][:300] if detail else f"code de sortie {process.returncode}"
        raise RenditionFailed(f"{arguments[0]} a échoué : {last}")
    return stdout.decode("utf-8", "replace")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is already gone
        os.killpg(process.pid, signal.SIGKILL)  # the tool leads its group (process_group=0)
    process.wait()


# A POSIX shell that runs the tool in the background and waits for it, its exit status being the tool's: on
# SIGTERM (sent by the kernel when the worker's thread dies, _dying_with) the wait ends at once and the trap
# kills the process group, which the shell leads (process_group=0) and the tool's own children share.
_KEEPER = ["/bin/sh", "-c", 'trap "kill -KILL 0" TERM; "$@" & wait $!', "socle-tool"]

# Linux's prctl, looked up once here: the child between fork and exec only calls it (no import, no lock to
# take, which another thread of the parent might have held at the fork: the hazard of ``preexec_fn``).
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1
_SIGKILL, _SIGTERM = int(signal.SIGKILL), int(signal.SIGTERM)


def _dying_with(parent: int) -> Callable[[], None] | None:
    """The child's set-up that has the kernel signal it when its parent dies (PR_SET_PDEATHSIG): SIGTERM, which
    the keeper shell traps to kill the tool's whole group.

    The kernel sends the signal when the *thread* that forked the child ends, not the process. Safe here: that
    thread is the one blocked in ``run_tool`` until the tool ends or is killed, whichever thread it is: the
    embedded worker's thread (« socle-embedded-worker », which runs its jobs itself: rq's SimpleWorker), the
    main thread of rq's work horse (a forked process, whose only thread runs the job), the main thread of a
    ``--no-fork`` worker or of the tests. A thread cannot end without leaving ``run_tool`` first, through
    ``_kill_group``.
    """
    if _PRCTL is None:
        return None
    prctl = _PRCTL

    def set_up() -> None:
        prctl(_PR_SET_PDEATHSIG, _SIGTERM)
        if os.getppid() != parent:  # the parent died before the call: no signal will ever come, no tool started
            os.kill(os.getpid(), _SIGKILL)

    return set_up


def ocr_available() -> bool:
    """Whether OCRmyPDF (with Tesseract) is installed on this machine."""
    return shutil.which("ocrmypdf") is not None and shutil.which("tesseract") is not None


# ---------------------------------------------------------------------------------------------------------
# Text


def extract_text(tenant_id: str, document_id: str, number: int) -> None:
    """Job body: extract the text layer of a PDF version, store it, record its status and re-index; a scan or an
    image goes to the OCR job (``ocr_text``), or gets ``text_status`` "ocr_unavailable" without OCRmyPDF.

    Raises whatever the store raises when it does not answer (the queue retries); a damaged file ends with
    ``text_status`` "failed".
    """
    target = _load(tenant_id, document_id, number, lambda version: version.text_status != PENDING)
    if target is None:
        return
    try:
        with _input_file(target) as path:
            # No text layer: nothing a scanner made (blank or vector pages) means empty text, not OCR.
            text = pdf_text(path) if target.media_type == PDF else None
            needs_ocr = text is None or (not text.strip() and has_images(path))
    except RenditionFailed as exc:
        _record_text(tenant_id, document_id, target, _TextOutcome(FAILED, reason=exc.reason))
        return
    if not needs_ocr:
        _store_text(tenant_id, document_id, target, text or "")
    elif not ocr_available():
        _record_text(tenant_id, document_id, target, _TextOutcome(OCR_UNAVAILABLE))
    else:
        _ask_for_ocr(tenant_id, document_id, number, target)


def _ask_for_ocr(tenant_id: str, document_id: str, number: int, target: _Target) -> None:
    """Enqueue the OCR job of a version, unless one is already on its way (a second run of the text job)."""
    with transaction() as session:
        version = session.get(Version, target.version_id, with_for_update=True)  # one asker at a time
        if version is None or version.text_status != PENDING:
            return
        active = (queue.PENDING, queue.QUEUED, queue.RUNNING)
        coming = select(Job.id).where(Job.key.startswith(f"ged.ocr:{version.id}:"), Job.status.in_(active))
        if session.execute(coming.limit(1)).first() is not None:
            return
        # A new key for each OCR run: after « redo-text », the OCR done before must not stand for the new one.
        arguments: dict[str, Any] = {"tenant_id": tenant_id, "document_id": document_id, "version": number}
        enqueue(session, messages.GED_OCR_TEXT, key=f"ged.ocr:{version.id}:{new_id()}", **arguments)


def ocr_text_job(tenant_id: str, document_id: str, number: int) -> None:
    """Job body: recognise the text of a scanned PDF or an image in French (OCRmyPDF), store it, re-index."""
    target = _load(tenant_id, document_id, number, lambda version: version.text_status != PENDING)
    if target is None:
        return
    if not ocr_available():  # uninstalled since the text job asked
        _record_text(tenant_id, document_id, target, _TextOutcome(OCR_UNAVAILABLE))
        return
    try:
        with _input_file(target) as path, tempfile.TemporaryDirectory(prefix="ged-ocr-", dir=scratch_dir()) as work:
            text = ocr_text(path, target.media_type, Path(work))
    except RenditionFailed as exc:
        _record_text(tenant_id, document_id, target, _TextOutcome(FAILED, reason=exc.reason))
        return
    _store_text(tenant_id, document_id, target, text)


def _store_text(tenant_id: str, document_id: str, target: _Target, text: str) -> None:
    kept = _utf8_prefix(text.encode("utf-8")[:MAX_TEXT_BYTES])
    _record_text(tenant_id, document_id, target, _TextOutcome(DONE, key=_put_bytes(kept.encode()), text=kept))


# PDFium is not thread-safe: one text extraction at a time in a process (the embedded worker is a thread).
_PDFIUM = threading.Lock()
_PDFIUM_ERRORS = {  # why PDFium could not open a document (pypdfium2.raw.FPDF_ERR_*)
    2: "fichier introuvable ou illisible",
    3: "structure du fichier endommagée ou format inconnu",
    4: "protégé par un mot de passe",
    5: "chiffrement non pris en charge",
    6: "page introuvable ou endommagée",
}


def pdf_text(path: Path) -> str:
    """The text layer of a PDF, read by PDFium in this process (pages separated by form feeds, as pdftotext
    does), at most MAX_TEXT_BYTES: pages are read one at a time and the reading stops there.

    PDFium (Chromium's PDF engine) saves starting a pdftotext process per document, about half of its cost.
    :raises RenditionFailed: a damaged or encrypted PDF.
    """
    pieces: list[bytes] = []
    size = 0
    with _PDFIUM:
        try:
            document = pypdfium2.PdfDocument(path)
        except pypdfium2.PdfiumError as exc:
            raise RenditionFailed(f"PDF illisible : {_PDFIUM_ERRORS.get(exc.err_code, 'erreur inconnue')}") from None
        try:
            for index in range(len(document)):
                piece = (_page_text(document, index).replace("\r\n", "\n").replace("\r", "\n") + "\f").encode()
                pieces.append(piece)
                size += len(piece)
                if size >= MAX_TEXT_BYTES:
                    break
        except pypdfium2.PdfiumError:
            raise RenditionFailed("PDF illisible : une page ne peut pas être lue") from None
        finally:
            document.close()
    return _utf8_prefix(b"".join(pieces)[:MAX_TEXT_BYTES])


def _page_text(document: pypdfium2.PdfDocument, index: int) -> str:
    page = document[index]
    try:
        textpage = page.get_textpage()
        try:
            return str(textpage.get_text_range())
        finally:
            textpage.close()
    finally:
        page.close()


def _utf8_prefix(data: bytes) -> str:
    # A cut may fall inside a character: drop that partial character, nothing else.
    return data.decode("utf-8", "ignore") if len(data) >= MAX_TEXT_BYTES else data.decode("utf-8", "replace")


def ocr_text(path: Path, media_type: str, work: Path) -> str:
    """The text of a scanned PDF or an image, recognised in French by OCRmyPDF (Tesseract)."""
    source = path
    if media_type != PDF:
        source = image_to_pdf(path, work / "image.pdf")
    _check_pages(source)
    sidecar = work / "ocr.txt"
    run_tool(
        [
            "ocrmypdf",
            "--quiet",
            "-l",
            "fra",
            "--skip-text",
            "--output-type",
            "none",
            "--sidecar",
            str(sidecar),
            "--jobs",
            "1",
            str(source),
            "-",
        ],
        timeout=OCR_TIMEOUT,
        scratch=work,
    )
    # OCRmyPDF writes a marker for the pages it skipped (those that had text after all): not the document's text.
    lines = sidecar.read_text("utf-8", "replace").splitlines()
    return "\n".join(line for line in lines if not line.startswith("[OCR skipped on page")).strip() + "\n"


def image_to_pdf(path: Path, destination: Path) -> Path:
    """Wrap an image as a one-page PDF (at 300 dpi when the image does not say) for OCRmyPDF."""
    with _open_image(path) as image:
        dpi = image.info.get("dpi", (300, 300))
        image.convert("RGB").save(destination, "PDF", resolution=float(dpi[0] or 300))
    return destination


def _is_signed(path: Path) -> bool:
    try:
        with pikepdf.open(path) as pdf:
            form = pdf.Root.get("/AcroForm")
            return isinstance(form, pikepdf.Dictionary) and int(form.get("/SigFlags", 0)) & 1 == 1
    except (pikepdf.PdfError, ValueError) as exc:
        raise RenditionFailed(f"PDF illisible : {str(exc)[:200]}") from None


def has_images(path: Path) -> bool:
    """Whether a PDF holds any picture: without one (blank or vector pages), OCR has nothing to read."""
    try:
        with pikepdf.open(path) as pdf:
            return any(
                isinstance(obj, pikepdf.Stream) and obj.get("/Subtype") == pikepdf.Name.Image for obj in pdf.objects
            )
    except (pikepdf.PdfError, ValueError) as exc:
        raise RenditionFailed(f"PDF illisible : {str(exc)[:200]}") from None


def _check_pages(path: Path) -> None:
    try:
        with pikepdf.open(path) as pdf:
            pages = len(pdf.pages)
    except (pikepdf.PdfError, ValueError) as exc:
        raise RenditionFailed(f"PDF illisible : {str(exc)[:200]}") from None
    if pages > MAX_OCR_PAGES:
        raise RenditionFailed(f"trop de pages pour la reconnaissance de texte ({pages}, au plus {MAX_OCR_PAGES})")


@dataclass(frozen=True)
class _TextOutcome:
    """What a text job ends with: its status, the stored text's key and the text itself (given to the search
    index rather than read back from the store), or the reason it failed."""

    status: str
    key: str | None = None
    reason: str | None = None
    text: str | None = None


def _record_text(tenant_id: str, document_id: str, target: _Target, outcome: _TextOutcome) -> None:
    def record(session: Session) -> bool:
        return _set_text(session, tenant_id, document_id, target, outcome)

    _record_unless_eliminated(document_id, (outcome.key,) if outcome.key else (), record)


def _set_text(session: Session, tenant_id: str, document_id: str, target: _Target, outcome: _TextOutcome) -> bool:
    """Record the text's outcome on the version and its same-content siblings; whether anything was recorded."""
    version = session.get(Version, target.version_id, with_for_update=True)
    if version is None or version.text_status != PENDING:
        return False  # another run got there first
    if outcome.reason is not None:
        _audit_failure(session, tenant_id, document_id, version, TEXT, outcome.reason)
    if outcome.key is not None:
        check_stored(session, outcome.key)  # the same text may have been purged since it was put: retried
    numbers = set()
    for same in _same_content(session, target, Version.text_status == PENDING):
        same.text_status, same.text_key = outcome.status, outcome.key
        numbers.add(same.number)
    document = session.get(Document, document_id)
    if document is not None and document.current_version in numbers and outcome.key is not None:
        indexing.index_document(session, document, text=outcome.text)
    return True


def _record_unless_eliminated(document_id: str, keys: tuple[str, ...], record: Callable[[Session], bool]) -> None:
    """The last transaction of a rendition job: ``record`` what was made (it says whether it recorded anything),
    unless the document was eliminated or purged while the tool ran. Objects put for it and recorded nowhere
    are then removed from the store (when nothing else needs them): no version would ever point at them, and
    nothing else would ever look at them again.
    """
    with transaction() as session:
        recorded = _still_has_content(session, document_id) and record(session)
    if keys and not recorded:
        _remove_unrecorded(set(keys))


def _still_has_content(session: Session, document_id: str) -> bool:
    """Lock the document's row (for share) and say whether it still has content: not eliminated, not purged.

    An elimination locks that row for update: done before, it is seen here; begun after, it waits for this
    transaction, then finds what it recorded and removes it with the rest. The row comes before the objects'
    locks (``check_stored``), in the order of a new content version (``service.add_content_version``), the
    only other transaction that takes both: no transaction takes an object's lock and then this row.
    """
    document = session.get(Document, document_id, with_for_update={"read": True}, populate_existing=True)
    return document is not None and document.disposal != _ELIMINATED


def _remove_unrecorded(keys: set[str]) -> None:
    from ged.retention import remove_unreferenced  # ged.retention imports ged.service, which imports this module

    session = new_session()
    try:
        remove_unreferenced(session, keys)  # each key checked and removed under its lock; failures only logged
    finally:
        session.close()


def _same_content(session: Session, target: _Target, missing: ColumnElement[bool]) -> list[Version]:
    """The target version and the document's other versions with the same bytes still missing a rendition
    (metadata changes made meanwhile): one rendition serves them all, locked for the update."""
    document_id = select(Version.document_id).where(Version.id == target.version_id).scalar_subquery()
    query = select(Version).where(Version.document_id == document_id, Version.object_key == target.object_key)
    return list(session.execute(query.where(missing).with_for_update()).scalars())


def _audit_failure(
    session: Session,
    tenant_id: str,
    document_id: str,
    version: Version,
    what: str,
    reason: str,
) -> None:
    log.warning("rendition %s of document %s v%d not made: %s", what, document_id, version.number, reason)
    details = {"version": version.number, "rendu": what, "raison": reason}
    journal.record_document(session, tenant_id, _SYSTEM, FAILED_ACTION, document_id, **details)


def _audit_skipped(
    session: Session, tenant_id: str, document_id: str, version: Version, what: str, exc: RenditionNotApplicable
) -> None:
    """A rendition deliberately not made (a PDF/A copy of a signed PDF): recorded, not as a failure."""
    log.info("rendition %s of document %s v%d skipped: %s", what, document_id, version.number, exc.reason)
    details = {"version": version.number, "rendu": what, "raison": exc.reason, "cause": exc.cause}
    journal.record_document(session, tenant_id, _SYSTEM, SKIPPED_ACTION, document_id, **details)


def failure_reasons(session: Session, tenant_id: str, document_id: str, number: int) -> dict[str, str]:
    """Why renditions of a version were not made (from the audit log), by rendition (TEXT, PREVIEW, PDFA), the
    latest reason of each: a failure, or a rendition deliberately not made (``skipped_renditions``); a failure
    followed by a redo (``redo_text``, ``redo_renditions``) is over. The caller shows one only while that
    rendition is missing."""
    return {what: reason for what, (_, reason) in _latest_outcomes(session, tenant_id, document_id, number).items()}


def skipped_renditions(session: Session, tenant_id: str, document_id: str, number: int) -> dict[str, str]:
    """The renditions of a version deliberately not made (``ged.rendition.skipped``): rendition → cause
    (``SIGNED``); not failures, so never redone."""
    return {
        what: cause
        for what, (cause, _) in _latest_outcomes(session, tenant_id, document_id, number).items()
        if cause is not None
    }


def _latest_outcomes(
    session: Session, tenant_id: str, document_id: str, number: int
) -> dict[str, tuple[str | None, str]]:
    """Rendition → (the skip's cause or None for a failure, the reason) of its latest failure or skip not
    followed by a redo."""
    from socle.models import AuditEntry

    entries = session.execute(
        select(AuditEntry.action, AuditEntry.details)
        .where(
            AuditEntry.tenant_id == tenant_id,
            AuditEntry.object_type == "document",
            AuditEntry.object_id == document_id,
            AuditEntry.action.in_((FAILED_ACTION, SKIPPED_ACTION, REDO_ACTION)),
        )
        .order_by(AuditEntry.seq.desc())
    ).all()
    latest: dict[str, tuple[str | None, str] | None] = {}
    for action, details in entries:
        if (details or {}).get("version") == number:
            outcome = None
            if action != REDO_ACTION:
                cause = str(details.get("cause") or "?") if action == SKIPPED_ACTION else None
                outcome = (cause, str(details.get("raison")))
            latest.setdefault(str(details.get("rendu")), outcome)
    return {what: outcome for what, outcome in latest.items() if outcome is not None}


def text_reason(session: Session, tenant_id: str, document_id: str, number: int) -> str | None:
    """Why the text of a version could not be extracted (from the audit log), if it failed."""
    return failure_reasons(session, tenant_id, document_id, number).get(TEXT)


# ---------------------------------------------------------------------------------------------------------
# A rendition job that failed for good


def rendition_failed(tenant_id: str, document_id: str, number: int, reason: str) -> None:
    """Job body, sent by the kernel when a rendition job of a version has failed for good: its rendition is
    recorded as failed with the kernel's reason (``text_status`` "failed"; for the preview and the PDF/A copy,
    which have no status, the audit entry that GET …/renditions and the document page show), as a damaged file's.

    Only the renditions whose latest job is failed are touched: one made meanwhile, or asked again since
    (« redo-text »), is left alone. Idempotent: a rendition already reported is not reported twice.
    """
    with transaction() as session:
        version = session.execute(
            select(Version)
            .join(Document, Document.id == Version.document_id)
            .where(Document.tenant_id == tenant_id, Document.id == document_id, Version.number == number)
            .with_for_update(of=Version)
        ).scalar_one_or_none()
        if version is None:
            return
        target = _Target(version.id, version.object_key, version.media_type, version.size)
        given_up = {what: job for what, job in _latest_jobs(session, version.id).items() if job.status == queue.FAILED}
        # Each failed job sends its own message: take the renditions whose job this reason names (their reasons
        # differ), or, should the reason name none, every given-up one rather than leave it « en cours ».
        named = [what for what, job in given_up.items() if job.function in reason]
        for what in named or list(given_up):
            if what == TEXT:
                for same in _same_content(session, target, Version.text_status == PENDING):
                    _audit_failure(session, tenant_id, document_id, same, TEXT, reason)
                    same.text_status, same.text_key = FAILED, None
                continue
            missing = Version.preview_key.is_(None) if what == PREVIEW else Version.pdfa_key.is_(None)
            for same in _same_content(session, target, missing):
                if what not in failure_reasons(session, tenant_id, document_id, same.number):
                    _audit_failure(session, tenant_id, document_id, same, what, reason)


def _latest_jobs(session: Session, version_id: str) -> dict[str, Job]:
    """The last job asked for each rendition of a version, by their keys (see ``schedule``, ``redo_text`` and
    ``_ask_for_ocr``): for the text, the latest extraction or OCR."""
    keys = {f"ged.text:{version_id}": TEXT, f"ged.preview:{version_id}": PREVIEW, f"ged.pdfa:{version_id}": PDFA}
    query = select(Job).where(
        or_(
            Job.key.in_(list(keys)),
            *(Job.key.startswith(f"{prefix}:") for prefix in keys),  # later runs (redo-text, redo-renditions)
            Job.key.startswith(f"ged.ocr:{version_id}:"),
        )
    )
    latest: dict[str, Job] = {}
    for job in session.execute(query.order_by(Job.created_at, Job.id)).scalars():
        first_run = (job.key or "").rsplit(":", 1)[0] if (job.key or "").count(":") > 1 else job.key or ""
        latest[keys.get(first_run, TEXT)] = job
    return latest


# ---------------------------------------------------------------------------------------------------------
# Preview and thumbnail


def make_preview(tenant_id: str, document_id: str, number: int) -> None:
    """Job body: the first page as a PNG preview (PREVIEW_WIDTH px wide) and thumbnail (THUMBNAIL_WIDTH px)."""
    target = _load(tenant_id, document_id, number, lambda version: version.preview_key is not None)
    if target is None:
        return
    try:
        with _input_file(target) as path, tempfile.TemporaryDirectory(prefix="ged-preview-", dir=scratch_dir()) as work:
            preview, thumbnail = _first_page_pngs(path, target.media_type, Path(work))
        preview_key, thumbnail_key = _put_bytes(preview), _put_bytes(thumbnail)
    except RenditionFailed as exc:
        _record_failure(tenant_id, document_id, target, PREVIEW, exc)
        return

    def record(session: Session) -> bool:
        # An identical preview purged since it was put would leave the version pointing at nothing: the job is
        # retried (ObjectGone) and puts it again.
        check_stored(session, preview_key, thumbnail_key)
        missing = _same_content(session, target, Version.preview_key.is_(None))
        for same in missing:
            same.preview_key, same.thumbnail_key = preview_key, thumbnail_key
        return bool(missing)

    _record_unless_eliminated(document_id, (preview_key, thumbnail_key), record)


def _record_failure(tenant_id: str, document_id: str, target: _Target, what: str, exc: RenditionFailed) -> None:
    """Audit why a preview or a PDF/A copy could not be made; nothing for an eliminated document (a tombstone)."""

    def record(session: Session) -> bool:
        version = session.get(Version, target.version_id)
        if version is not None and isinstance(exc, RenditionNotApplicable):
            _audit_skipped(session, tenant_id, document_id, version, what, exc)
        elif version is not None:
            _audit_failure(session, tenant_id, document_id, version, what, exc.reason)
        return True

    _record_unless_eliminated(document_id, (), record)


def _first_page_pngs(path: Path, media_type: str, work: Path) -> tuple[bytes, bytes]:
    """The first page as PNG, PREVIEW_WIDTH then THUMBNAIL_WIDTH wide (never enlarged)."""
    source = path
    if media_type == PDF:
        # Raw pixels out of pdftoppm, PNG by Pillow: pdftoppm's own PNG output compresses at a slow level, and
        # the thumbnail is made from the same decoded page. -H crops a freakishly tall page (a banner).
        run_tool(
            ["pdftoppm", "-f", "1", "-l", "1", "-singlefile", "-scale-to-x", str(PREVIEW_WIDTH), "-scale-to-y",
             "-1", "-H", str(PREVIEW_WIDTH * 10), str(path), str(work / "page")],
            scratch=work,
        )  # fmt: skip
        source = work / "page.ppm"
    with _open_image(source) as image:
        return _png(image, PREVIEW_WIDTH), _png(image, THUMBNAIL_WIDTH)


def _png(image: Image.Image, width: int) -> bytes:
    scaled = image.copy()
    scaled.thumbnail((width, width * 10))  # keeps the ratio; never enlarges
    if scaled.mode not in ("RGB", "RGBA", "L", "LA"):
        scaled = scaled.convert("RGBA" if "transparency" in scaled.info or scaled.mode == "PA" else "RGB")
    out = io.BytesIO()
    scaled.save(out, "PNG", compress_level=3)  # a fair size for a quarter of the default level's time
    return out.getvalue()


@contextmanager
def _open_image(path: Path) -> Iterator[Image.Image]:
    try:
        image = Image.open(path)
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise RenditionFailed(f"image trop grande ({image.width} × {image.height} pixels)")
        image.load()
    except (OSError, Image.DecompressionBombError, SyntaxError) as exc:
        raise RenditionFailed(f"image illisible : {str(exc)[:200]}") from None
    with image:
        yield image


# ---------------------------------------------------------------------------------------------------------
# PDF/A-2b


def make_pdfa(tenant_id: str, document_id: str, number: int) -> None:
    """Job body: a PDF/A-2b copy of a PDF version (see to_pdfa)."""
    target = _load(tenant_id, document_id, number, lambda version: version.pdfa_key is not None)
    if target is None:
        return
    try:
        with _input_file(target) as path, tempfile.TemporaryDirectory(prefix="ged-pdfa-", dir=scratch_dir()) as work:
            output = to_pdfa(path, Path(work))
            pdfa_key = _put_file(output)
    except RenditionFailed as exc:
        _record_failure(tenant_id, document_id, target, PDFA, exc)
        return

    def record(session: Session) -> bool:
        check_stored(session, pdfa_key)  # as for the preview: purged meanwhile, the job is retried
        missing = _same_content(session, target, Version.pdfa_key.is_(None))
        for same in missing:
            same.pdfa_key = pdfa_key
        return bool(missing)

    _record_unless_eliminated(document_id, (pdfa_key,), record)


def to_pdfa(path: Path, work: Path) -> Path:
    """Convert a PDF to PDF/A-2b in ``work``; returns the output's path. Raises RenditionFailed.

    Ghostscript converts a PDF that has text (a tenth of a second); a scan without text goes through
    OCRmyPDF when installed, which adds a French text layer, so that its PDF/A copy is searchable too.
    """
    output = work / "pdfa.pdf"
    if _is_signed(path):
        # Converting rewrites the file: the copy would carry a broken signature. The signed original stays.
        raise RenditionNotApplicable(
            "Copie PDF/A non faite : le PDF est signé (la convertir invaliderait la signature)", SIGNED
        )
    scanned = not pdf_text(path).strip() and has_images(path)
    if scanned and ocr_available():
        run_tool(
            ["ocrmypdf", "--quiet", "-l", "fra", "--skip-text", "--output-type", "pdfa-2", "--jobs", "1",
             "--optimize", "0", str(path), str(output)],
            timeout=OCR_TIMEOUT,
            scratch=work,
        )  # fmt: skip
    elif shutil.which("gs"):
        run_tool(
            ["gs", "-q", "-dPDFA=2", "-dBATCH", "-dNOPAUSE", "-dSAFER", f"--permit-file-read={work}/",
             "-dPDFACompatibilityPolicy=1", "-sColorConversionStrategy=RGB", "-sDEVICE=pdfwrite",
             f"-sOutputFile={output}", str(_output_intent(work)), str(path)],
            scratch=work,
        )  # fmt: skip
    else:
        raise RenditionFailed("Ghostscript n'est pas installé : pas de copie PDF/A")
    return output


def _output_intent(work: Path) -> Path:
    """The PostScript that gives Ghostscript's PDF/A its OutputIntent (PDF/A demands one for RGB): an sRGB
    profile made by Pillow's LittleCMS, written beside it."""
    from PIL import ImageCms

    profile = work / "srgb.icc"
    profile.write_bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    definition = work / "pdfa-intent.ps"
    definition.write_text(
        "%!\n"
        "[/_objdef {socle_icc} /type /stream /OBJ pdfmark\n"
        "[{socle_icc} << /N 3 >> /PUT pdfmark\n"
        f"[{{socle_icc}} ({_ps_string(str(profile))}) (r) file /PUT pdfmark\n"
        "[/_objdef {socle_intent} /type /dict /OBJ pdfmark\n"
        "[{socle_intent} << /Type /OutputIntent /S /GTS_PDFA1 /DestOutputProfile {socle_icc}"
        " /OutputConditionIdentifier (sRGB) /Info (sRGB IEC61966-2.1) >> /PUT pdfmark\n"
        "[{Catalog} << /OutputIntents [ {socle_intent} ] >> /PUT pdfmark\n",
        encoding="ascii",
    )
    return definition


def _ps_string(text: str) -> str:
    # A temporary folder's path inside a PostScript string: its backslashes and parentheses escaped.
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
