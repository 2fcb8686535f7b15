"""The external signer's page (« signature externe »): the one-time link mailed to someone with no account.

``/signature-externe/{secret}`` shows the folder's title, who is expected to sign, until when the link works,
the documents to download, then a plain POST form: a consent box, the signer's name, « Signer ». Signing goes
through ``parapheur.external.sign``, as the API's route does (same checks, same single use). No session: the
form's CSRF token is the anonymous one of the sign-in page (``socle.ui.web.csrf_token``, a cookie).

A used, expired or unknown link gets one page, 404, always the same (nothing tells a guesser which secrets
were real), saying to ask the collectivité for a new link. The secret is in the address: every answer is
``no-store`` and asks for no referrer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from babel.dates import format_date, format_time
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from parapheur import external
from parapheur.ui_common import form_value, kept
from socle.dates import PARIS
from socle.errors import InvalidInput, NotFound, SocleError
from socle.models import Tenant
from socle.ui.web import DbDep, FormDep, locale_of, render, t
from socle.web import object_response

router = APIRouter(include_in_schema=False)

PREFIX = "/signature-externe"
NAME_LIMIT = 200  # as parapheur.external.sign
_PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def page_url(secret: str) -> str:
    return f"{PREFIX}/{secret}"


@router.get(PREFIX + "/{secret}", response_class=HTMLResponse)
def external_page(request: Request, db: DbDep, secret: str) -> Response:
    try:
        return _form(request, db, secret)
    except NotFound:
        return _dead_link(request)


@router.get(PREFIX + "/{secret}/documents/{document_id}")
def external_document(request: Request, db: DbDep, secret: str, document_id: str) -> Response:
    """A document as it stands (signed so far), as an attachment: the API's ``external.document``."""
    try:
        external.find(db, secret)
    except NotFound:
        return _dead_link(request)
    key, document = external.document(db, secret, document_id)  # another id: the error page, 404
    return _private(object_response(key, document.filename, document.media_type))


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
        if errors:
            external.find(db, secret)  # a dead link says so, rather than asking to fix the form
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
        "name_limit": NAME_LIMIT,
        "values": values if values is not None else {"nom": seen.signer_name or ""},
        "errors": errors or {},
    }
    return _private(render(request, "parapheur/externe.html", context, status=status))


def _expiry(at: datetime | None, locale: str) -> dict[str, str] | None:
    """The link's end in Paris time, in the page's language: the date in words, the time (hours:minutes)."""
    if at is None:
        return None
    return {
        "date": format_date(at.astimezone(PARIS).date(), format="long", locale=locale),
        "time": format_time(at, format="short", tzinfo=PARIS, locale=locale),
    }


def _dead_link(request: Request) -> Response:
    return _private(render(request, "parapheur/externe_lien.html", status=404))


def _private(response: Response) -> Response:
    response.headers.update(_PRIVATE)
    return response
