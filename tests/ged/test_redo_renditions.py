"""« socle ged redo-renditions »: the preview and PDF/A copy of a version whose rendition failed are asked
again, once, written in the audit log; the document page says « en préparation » again until the jobs end."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import select
from ui_kit import sign_in

from ged import renditions
from ged.models import Document, Version
from socle.db import transaction
from socle.models import AuditEntry, Job

from conftest import Kit, make_pdf, run_jobs, socle_command

DAMAGED = b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n" + os.urandom(2000) + b"\n%%EOF\n"


def _upload(kit: Kit, content: bytes) -> str:
    response = kit["agent"].post(
        "/ged/documents",
        files={"file": ("abime.pdf", content, "application/pdf")},
        data={"title": "Délibération abîmée", "document_type": "deliberation"},
    )
    assert response.status_code == 201, response.text
    document_id: str = response.json()["id"]
    with transaction() as session:
        document = session.get(Document, document_id)
        assert document is not None
        renditions.schedule(session, document, document.current)
    run_jobs()
    return document_id


def _state(kit: Kit, document_id: str) -> dict[str, Any]:
    response = kit["agent"].get(f"/ged/documents/{document_id}/renditions")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _redo_jobs(document_id: str) -> list[tuple[str, str]]:
    with transaction() as session:
        version_id = session.execute(select(Version.id).where(Version.document_id == document_id)).scalar_one()
        jobs = session.execute(
            select(Job.key, Job.status).where(
                Job.key.startswith(f"ged.preview:{version_id}:") | Job.key.startswith(f"ged.pdfa:{version_id}:")
            )
        ).all()
        return sorted((str(key).split(":")[0], status) for key, status in jobs)


def test_failed_preview_and_pdfa_are_asked_again_once(app: Any, kit: Kit) -> None:
    document_id = _upload(kit, DAMAGED)
    before = _state(kit, document_id)
    assert before["preview_reason"] and before["pdfa_reason"]  # failed, said so

    for expected in ("2 rendu(s)", "0 rendu(s)"):  # the second run finds them on their way: nothing more
        result = socle_command("ged", "redo-renditions", "--tenant", kit.slug, "--batch-size", "1")
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout, result.stdout
    assert _redo_jobs(document_id) == [("ged.pdfa", "pending"), ("ged.preview", "pending")]
    after = _state(kit, document_id)
    assert after["preview_reason"] is None and after["pdfa_reason"] is None
    page = sign_in(app, kit, "agent").get(f"/documents/{document_id}")
    assert page.status_code == 200 and "en préparation" in page.text
    with transaction() as session:
        redone = session.execute(
            select(AuditEntry.actor, AuditEntry.details).where(
                AuditEntry.object_id == document_id, AuditEntry.action == "ged.rendition.redo"
            )
        ).all()
    assert sorted(details["rendu"] for _, details in redone) == [renditions.PDFA, renditions.PREVIEW]
    assert {actor for actor, _ in redone} == {"cli:socle-ged-redo-renditions"}

    # The file is still damaged: the new jobs fail again and say so, ready for another redo.
    run_jobs()
    again = _state(kit, document_id)
    assert again["preview_reason"] and again["pdfa_reason"]
    assert socle_command("ged", "redo-renditions", "--tenant", kit.slug).stdout.startswith("2 rendu(s)")


def test_missing_renditions_only_with_the_option(kit: Kit) -> None:
    document_id = _upload(kit, make_pdf())
    with transaction() as session:  # renditions lost without a failure (a job gone): nothing says « échec »
        version = session.execute(select(Version).where(Version.document_id == document_id)).scalar_one()
        version.preview_key, version.thumbnail_key, version.pdfa_key = None, None, None
    assert "0 rendu(s)" in socle_command("ged", "redo-renditions", "--tenant", kit.slug).stdout
    result = socle_command("ged", "redo-renditions", "--tenant", kit.slug, "--absents")
    assert "2 rendu(s)" in result.stdout, result.stdout + result.stderr
    assert "0 rendu(s)" in socle_command("ged", "redo-renditions", "--tenant", kit.slug, "--absents").stdout
    run_jobs()
    made = _state(kit, document_id)
    assert made["preview"] is True and made["pdfa"] is True
