"""Inspecting an uploaded SEDA package from the browser: the checks of ``socle archive inspect``, in plain words.

Nothing is kept: the upload goes to a temporary file, is inspected, then removed.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile

from archive import inspection
from archive.ui_shared import require_archivist
from socle.settings import get_settings
from socle.ui.web import DbDep, FormDep, UserDep, render, t

router = APIRouter(include_in_schema=False)

SHOWN_UNITS = 300  # units and objects listed: the page stays light whatever the package; problems are all counted
CHUNK = 1024 * 1024


@router.get("/archives/inspection", response_class=HTMLResponse)
def inspection_form(request: Request, db: DbDep, user: UserDep) -> Response:
    require_archivist(user)
    return render(request, "archive/inspection.html", {"report": None}, db=db)


@router.post("/archives/inspection", response_class=HTMLResponse)
def inspect_package(request: Request, db: DbDep, user: UserDep, form: FormDep) -> Response:
    require_archivist(user)
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        errors = {"file": t(request, "Choisissez le paquet à inspecter (un fichier zip).")}
        return render(request, "archive/inspection.html", {"report": None, "errors": errors}, status=422, db=db)
    filename = PurePosixPath(upload.filename.replace("\\", "/")).name[:200] or "paquet.zip"
    path = _spool(upload)
    try:
        if path.stat().st_size == 0:
            errors = {"file": t(request, "Le fichier « %(name)s » est vide.", name=filename)}
            return render(request, "archive/inspection.html", {"report": None, "errors": errors}, status=422, db=db)
        report = inspection.inspect_sip(path, None, filename=filename)
    finally:
        path.unlink(missing_ok=True)
    return render(request, "archive/inspection.html", {"report": report_view(report)}, db=db)


def _spool(upload: UploadFile) -> Path:
    """Copy the upload to a file of our own: the inspection reads the zip's directory at its end."""
    folder = get_settings().data_dir / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".inspection-", suffix=".zip", delete=False) as target:
        shutil.copyfileobj(upload.file, target, CHUNK)
    return Path(target.name)


def report_view(report: inspection.InspectionReport) -> dict[str, Any]:
    """What the page shows: the verdict, every problem, and the package's tree and objects (first ones)."""
    budget = [SHOWN_UNITS]

    def units(found: tuple[inspection.InspectedUnit, ...]) -> list[dict[str, Any]]:
        shown = []
        for unit in found:
            if budget[0] <= 0:
                break
            budget[0] -= 1
            shown.append(
                {
                    "id": unit.unit_id,
                    "title": unit.title,
                    "level": unit.level,
                    "objects": list(unit.object_ids),
                    "children": units(unit.children),
                }
            )
        return shown

    tree = units(report.units)
    problems = list(report.all_problems)
    return {
        "filename": report.filename,
        "version": report.version,
        "message_identifier": report.message_identifier,
        "ok": report.ok,
        "problems": problems,
        "units": tree,
        "unit_count": _count(report.units),
        "objects": list(report.objects[:SHOWN_UNITS]),
        "object_count": len(report.objects),
        "checked": sum(1 for obj in report.objects if obj.computed_digest is not None),
        "shown": SHOWN_UNITS,
    }


def _count(units: tuple[inspection.InspectedUnit, ...]) -> int:
    return sum(1 + _count(unit.children) for unit in units)
