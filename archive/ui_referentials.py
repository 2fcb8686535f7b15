"""What the archival system knows, given to socle by the archivists: its archival profiles (RelaxNG) and its
referential of rules (rules and digest algorithms). The pages list, upload, download and delete them through
the same service functions as the API (archive.profiles, archive.referential): same checks, same French
errors, same audit.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from archive import profiles, referential
from archive.schemas import ReferentialIn
from archive.ui_shared import require_archivist
from socle.errors import Conflict, InvalidInput, NotFound
from socle.ui.sessions import SignedIn
from socle.ui.web import DbDep, FormDep, UserDep, error_text, form_text, redirect, render, sentence, t
from socle.validation_messages import french_message, json_message
from socle.web import object_response

router = APIRouter(include_in_schema=False)

PROFILES = "/archives/profils"
REFERENTIAL = "/archives/referentiel"
# A referential of Vitam's size (a few hundred rules) is some 100 kB; the API's body limit is far above it.
MAX_REFERENTIAL_BYTES = 5 * 1024 * 1024
REFERENTIAL_FILENAME = "referentiel.json"


def _uploaded(form: FormData, limit: int) -> tuple[str, bytes] | None:
    """The file of the form's « file » field (its name, at most ``limit`` + 1 bytes), None if none was chosen."""
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None
    return upload.filename, upload.file.read(limit + 1)


# --- archival profiles -----------------------------------------------------------------------------------


@router.get(PROFILES, response_class=HTMLResponse)
def profiles_page(request: Request, db: DbDep, user: UserDep) -> Response:
    require_archivist(user)
    return _profiles_page(request, db, user, {}, {})


def _profiles_page(
    request: Request,
    db: Session,
    user: SignedIn,
    values: dict[str, str],
    errors: dict[str, str],
    *,
    status: int = 200,
) -> Response:
    context = {"profiles": profiles.list_profiles(db, user.principal.tenant_id), "values": values, "errors": errors}
    return render(request, "archive/profiles.html", context, status=status, db=db)


@router.post(PROFILES, response_class=HTMLResponse)
def upload_profile(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    require_archivist(user)
    values = {"name": form_text(form, "name", 200), "identifier": form_text(form, "identifier", 200)}
    errors: dict[str, str] = {}
    if not values["name"]:
        errors["name"] = t(request, "Indiquez le nom du profil.")
    uploaded = _uploaded(form, profiles.MAX_PROFILE_BYTES)
    if uploaded is None:
        errors["file"] = t(request, "Choisissez le fichier du profil (RelaxNG, .rng).")
    elif not uploaded[1]:
        errors["file"] = t(request, "Le fichier « %(name)s » est vide.", name=uploaded[0])
    if errors or uploaded is None:
        return _profiles_page(request, db, user, values, errors, status=422)
    try:
        profile = profiles.upload_profile(db, user.principal, values["name"], uploaded[1], values["identifier"] or None)
    except InvalidInput as exc:
        db.rollback()
        # The domain names the typed field it refuses (name, identifier); anything else is about the file.
        field = exc.extra.get("field")
        field = field if field in ("name", "identifier") else "file"
        return _profiles_page(request, db, user, values, {field: sentence(error_text(request, exc))}, status=422)
    message = t(request, "Profil « %(name)s » enregistré.", name=profile.name)
    return redirect(PROFILES, db=db, user=user, message=message)


@router.get(PROFILES + "/{name}/fichier")
def download_profile(db: DbDep, user: UserDep, name: str) -> Response:
    require_archivist(user)
    profile = profiles.get_profile(db, user.principal.tenant_id, name)
    return object_response(profile.object_key, f"{profile.name}.rng", "application/xml")


@router.post(PROFILES + "/{name}/supprimer", response_class=HTMLResponse)
def delete_profile(request: Request, db: DbDep, user: UserDep, form: FormDep, name: str) -> Response:
    require_archivist(user)
    try:
        profiles.delete_profile(db, user.principal, name)
    except (Conflict, NotFound) as exc:
        db.rollback()
        return _profiles_page(request, db, user, {}, {"form": error_text(request, exc)}, status=exc.status)
    message = t(request, "Profil « %(name)s » supprimé.", name=name)
    return redirect(PROFILES, db=db, user=user, message=message)


# --- the referential of rules ----------------------------------------------------------------------------


@router.get(REFERENTIAL, response_class=HTMLResponse)
def referential_page(request: Request, db: DbDep, user: UserDep) -> Response:
    require_archivist(user)
    return _referential_page(request, db, user, {})


def _referential_page(
    request: Request, db: Session, user: SignedIn, errors: dict[str, str], *, status: int = 200
) -> Response:
    context = {
        "referential": referential.get_referential(db, user.principal.tenant_id),
        "errors": errors,
        "example": json.dumps(_EXAMPLE, ensure_ascii=False, indent=2),
    }
    return render(request, "archive/referential.html", context, status=status, db=db)


_EXAMPLE: dict[str, Any] = {
    "rules": [
        {"id": "APP-0001", "category": "AppraisalRule", "duration": "P10Y", "description": "Délibérations"},
        {"id": "ACC-00003", "category": "AccessRule", "duration": "P25Y", "description": "Secret des affaires"},
    ],
    "digest_algorithms": ["SHA-512"],
}


@router.post(REFERENTIAL, response_class=HTMLResponse)
def upload_referential(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    require_archivist(user)
    uploaded = _uploaded(form, MAX_REFERENTIAL_BYTES)
    if uploaded is None:
        problem = t(request, "Choisissez le fichier du référentiel (JSON).")
    elif not uploaded[1]:
        problem = t(request, "Le fichier « %(name)s » est vide.", name=uploaded[0])
    elif len(uploaded[1]) > MAX_REFERENTIAL_BYTES:
        problem = t(request, "Le fichier dépasse la taille maximale de %(size)s octets.", size=MAX_REFERENTIAL_BYTES)
    else:
        body, problem = _referential_body(request, uploaded[1])
        if body is not None:
            try:
                saved = referential.set_referential(db, user.principal, body)
            except InvalidInput as exc:
                db.rollback()
                problem = sentence(error_text(request, exc))
            else:
                message = t(request, "Référentiel enregistré : %(count)s règle(s).", count=len(saved.rules))
                return redirect(REFERENTIAL, db=db, user=user, message=message)
    return _referential_page(request, db, user, {"file": problem}, status=422)


def _referential_body(request: Request, data: bytes) -> tuple[ReferentialIn | None, str]:
    """The file as the API's body (ReferentialIn), or the French reasons it is not one."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None, t(request, "Le fichier n'est pas du texte UTF-8 : enregistrez le référentiel en JSON UTF-8.")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        error = {"type": "json_invalid", "loc": ("body", exc.pos), "ctx": {"error": exc.msg}}
        return None, t(request, "JSON invalide : %(reason)s.", reason=json_message(error, text))
    try:
        return ReferentialIn.model_validate(document), ""
    except ValidationError as exc:
        reasons = [
            f"{'.'.join(str(part) for part in error['loc']) or t(request, 'le fichier')} : {french_message(error)}"
            for error in exc.errors()[:10]
        ]
        return None, t(request, "Référentiel refusé : %(reasons)s.", reasons=" ; ".join(reasons))


@router.get(REFERENTIAL + "/fichier")
def download_referential(db: DbDep, user: UserDep) -> Response:
    """The referential in the format the API and this page take (ReferentialIn): downloaded, edited, uploaded."""
    require_archivist(user)
    found = referential.get_referential(db, user.principal.tenant_id)
    if found is None:
        raise NotFound("aucun référentiel n'est chargé pour cette collectivité")
    body = {"rules": list(found.rules), "digest_algorithms": list(found.digest_algorithms)}
    return Response(
        json.dumps(body, ensure_ascii=False, indent=2).encode(),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{REFERENTIAL_FILENAME}"'},
    )


@router.post(REFERENTIAL + "/supprimer", response_class=HTMLResponse)
def delete_referential(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    require_archivist(user)
    try:
        referential.delete_referential(db, user.principal)
    except NotFound as exc:
        db.rollback()
        return _referential_page(request, db, user, {"form": error_text(request, exc)}, status=404)
    return redirect(REFERENTIAL, db=db, user=user, message=t(request, "Référentiel supprimé."))
