"""The external signer's page (« signature externe »): the one-time link mailed to someone with no account.

``/signature-externe/{secret}`` shows the folder's title, who is expected to sign, until when the link works,
the documents to download, then a plain POST form: a consent box, the signer's name, « Signer ». Signing goes
through ``parapheur.external.sign``, as the API's route does (same checks, same single use). No session: the
form's CSRF token is the anonymous one of the sign-in page (``socle.ui.web.csrf_token``, a cookie).

The documents to sign are also shown as page images, as on an agent's folder page (parapheur.ui_pages: rendered
on the server, ten pages at a time), through ``/signature-externe/{secret}/pages/{document}/{page}``: the link's
secret opens only its own folder's documents. Being shown a document's last page, or downloading it, counts as
reading it (lecture obligatoire, parapheur.external_reading); a folder whose sous-type asks for reading cannot be
signed on this page before.

A used, expired or unknown link gets one page, 404, always the same (nothing tells a guesser which secrets
were real), saying to ask the collectivité for a new link. The secret is in the address: every answer is
``no-store`` and asks for no referrer (page images included: they are not kept in a cache either).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from babel.dates import format_date, format_time
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from sqlalchemy.orm import Session

from parapheur import external, external_reading
from parapheur.models import FolderDocument
from parapheur.ui_common import form_value, kept
from parapheur.ui_pages import is_pdf, page_count, page_image, page_window
from socle.dates import PARIS
from socle.errors import InvalidInput, NotFound, SocleError
from socle.models import Tenant
from socle.ui import rendering
from socle.ui.web import DbDep, FormDep, locale_of, render, t
from socle.web import object_response

router = APIRouter(include_in_schema=False)

PREFIX = "/signature-externe"
NAME_LIMIT = 200  # as parapheur.external.sign
_PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def page_url(secret: str) -> str:
    return f"{PREFIX}/{secret}"


def image_url(secret: str, document: FolderDocument, page: int) -> str:
    return f"{PREFIX}/{secret}/pages/{document.id}/{page}"


@router.get(PREFIX + "/{secret}", response_class=HTMLResponse)
def external_page(
    request: Request, db: DbDep, secret: str, debut: Annotated[int, Query(ge=1, le=100_000)] = 1
) -> Response:
    try:
        return _form(request, db, secret, first_page=debut)
    except NotFound:
        return _dead_link(request)


@router.get(PREFIX + "/{secret}/documents/{document_id}")
def external_document(request: Request, db: DbDep, secret: str, document_id: str) -> Response:
    """A document as it stands (signed so far), as an attachment: the API's ``external.document``.

    A download counts as reading the document (lecture obligatoire), as an agent's does."""
    try:
        folder, step = external.find(db, secret)
    except NotFound:
        return _dead_link(request)
    try:
        key, document = external.document(db, secret, document_id)
    except NotFound as exc:  # another id (another folder's document): the error page, 404, kept private too
        return _error(request, exc)
    external_reading.record_read(db, folder, step, document)
    return _private(object_response(key, document.filename, document.media_type))


@router.get(PREFIX + "/{secret}/pages/{document_id}/{page}")
def external_page_image(request: Request, db: DbDep, secret: str, document_id: str, page: int) -> Response:
    """One page image of a document of the link's folder (``external.document``: another folder's is not found).

    The LAST page's image counts as reading the document, as for agents (parapheur.ui_pages.page_png); the other
    pages do not (they load as they come near the screen). Never cached: the secret is in the address."""
    try:
        folder, step = external.find(db, secret)
    except NotFound:
        return _dead_link(request)
    try:
        key, document = external.document(db, secret, document_id)
        if not is_pdf(document):
            raise NotFound("ce document n'a pas d'aperçu en images")
        image = page_image(key, page)  # no such page: NotFound; pdftoppm missing or busy: ServiceUnavailable
    except SocleError as exc:  # another id (another folder's document): the error page, 404, kept private too
        return _error(request, exc)
    if page == page_count(key):
        external_reading.record_read(db, folder, step, document)
    return _private(FileResponse(image, media_type="image/png"))


@router.post(PREFIX + "/{secret}", response_class=HTMLResponse)
def external_sign(request: Request, db: DbDep, form: FormDep, secret: str) -> Response:
    consent = form.get("consentement") == "1"
    errors: dict[str, str] = {}
    try:
        name = " ".join(form_value(form, "nom").split())
    except InvalidInput as exc:
        name, errors["nom"] = "", exc.detail
    if not consent:
        errors["consentement"] = t(request, "Cochez la case pour accepter de signer les documents.")
    if "nom" not in errors and not name:
        errors["nom"] = t(request, "Indiquez vos nom et prénom.")
    elif len(name) > NAME_LIMIT:
        errors["nom"] = t(request, "Indiquez vos nom et prénom en %(limit)s caractères au plus.", limit=NAME_LIMIT)
    try:
        external.find(db, secret)  # a dead link says so, rather than asking to fix the form
        if errors:
            return _form(request, db, secret, values=kept(form), errors=errors, status=422)
        folder = external.sign(db, secret, consent, name)
    except NotFound:
        db.rollback()
        return _dead_link(request)
    except SocleError as exc:
        # The step stays current and the link alive: the form again, with the reason (a name the engine
        # refuses is told next to its field; anything else, a document that cannot be signed, above).
        db.rollback()
        target = "nom" if isinstance(exc, InvalidInput) and exc.extra.get("field") else "form"
        return _form(request, db, secret, values=kept(form), errors={target: exc.detail}, status=exc.status)
    return _private(render(request, "parapheur/externe_signe.html", {"title": folder.title}))


def _form(
    request: Request,
    db: Session,
    secret: str,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
    first_page: int = 1,
) -> Response:
    """The page of a live link. :raises NotFound: the link is used, expired or unknown."""
    folder, step = external.find(db, secret)
    seen = external.view(db, secret)
    tenant = db.get(Tenant, folder.tenant_id)
    locale = locale_of(request)
    context = {
        "secret": secret,
        "title": seen.title,
        "tenant_name": tenant.name if tenant is not None else "",
        "signer_name": seen.signer_name or "",
        "signer_email": seen.signer_email or "",
        "expires": _expiry(step.token_expires_at, locale),
        "documents": seen.documents,
        "previews": [_preview(secret, document, first_page) for document in folder.main_documents],
        "reading_required": external_reading.reading_required(db, folder),
        "name_limit": NAME_LIMIT,
        "values": values if values is not None else {"nom": seen.signer_name or ""},
        "errors": errors or {},
    }
    return _private(render(request, "parapheur/externe.html", context, status=status))


def _preview(secret: str, document: FolderDocument, first_page: int) -> dict[str, Any]:
    """A document to sign and the window of its pages shown as images (none for a file that is not a PDF)."""
    view: dict[str, Any] = {"document": document, "pages": [], "count": 0, "error": None}
    page_window(view, document, first_page, lambda number: image_url(secret, document, number))
    return view


def _expiry(at: datetime | None, locale: str) -> dict[str, str] | None:
    """The link's end in Paris time, in the page's language: the date in words, the time (hours:minutes)."""
    if at is None:
        return None
    return {
        "date": format_date(at.astimezone(PARIS).date(), format="long", locale=locale),
        "time": format_time(at, format="short", tzinfo=PARIS, locale=locale),
    }


def _error(request: Request, exc: SocleError) -> Response:
    """The error page (a document or page the live link does not open: 404), with the link's private headers."""
    locale = locale_of(request)
    context = {"title": rendering.translate(locale, exc.title), "detail": rendering.translate(locale, exc.detail)}
    return _private(render(request, "socle/error.html", context, status=exc.status))


def _dead_link(request: Request) -> Response:
    return _private(render(request, "parapheur/externe_lien.html", status=404))


def _private(response: Response) -> Response:
    response.headers.update(_PRIVATE)
    return response
