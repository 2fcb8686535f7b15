"""A version signed in the parapheur keeps its signatories as data (``signatories``), shown with the version and
exported to the archive; a comment that reads « Signé par … » names nobody; ged0006 gives the versions signed
before it their signatories, from their comment."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import command
from sqlalchemy import select

from ged import jobs as ged_jobs
from ged.models import Document, Version
from socle.db import new_session
from socle.migrating import PACKAGES, alembic_config, upgrade_all
from socle.storage import get_store

from conftest import Kit, make_pdf, upload_document


def _sign(kit: Kit, document_id: str, signatories: list[str], signed_by: list[str] | None = None) -> None:
    signed = get_store().put(io.BytesIO(make_pdf(f"{document_id} (signé)")))
    ged_jobs.store_signed_version(
        tenant_id=kit.tenant_id,
        document_id=document_id,
        folder_id=f"circuit-{document_id}",
        object_key=signed.key,
        size=signed.size,
        filename="acte-signé.pdf",
        signatories=signatories,
        signed_by=signed_by,  # None: a message queued before the parapheur sent names, the usernames then
    )


def _exported_signatories(document_id: str) -> list[dict[str, Any]]:
    """The signatories as the GED exports them to the archive (SEDA agents)."""
    with new_session() as session:
        document = session.get(Document, document_id)
        assert document is not None
        return list(ged_jobs._export(session, document)["signatories"])


def test_a_signed_version_carries_its_signatories(kit: Kit) -> None:
    document = upload_document(kit["agent"], make_pdf("Arrêté"), title="Arrêté de voirie")
    _sign(kit, document["id"], ["maire", "agent"])

    versions = kit["agent"].get(f"/ged/documents/{document['id']}/versions").json()
    assert [(version["signatories"], version["comment"]) for version in versions] == [
        (None, None),
        (["maire", "agent"], "Signé par maire, agent"),  # the comment stays, for people
    ]
    assert _exported_signatories(document["id"]) == [
        {"username": "maire", "name": "Dominique Dupont"},
        {"username": "agent", "name": "Camille Martin"},
    ]
    # A later metadata change whose comment reads the same does not change who signed the content.
    patched = kit["agent"].patch(
        f"/ged/documents/{document['id']}", json={"title": "Arrêté", "comment": "Signé par admin"}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["current"]["signatories"] is None
    assert [person["username"] for person in _exported_signatories(document["id"])] == ["maire", "agent"]


def test_the_comment_names_the_signatories_as_the_parapheur_sends_them(kit: Kit) -> None:
    """« Signé par maire » read like a login: the parapheur sends names and qualities for the comment, the
    usernames stay the data (signatories, the SEDA agents)."""
    document = upload_document(kit["agent"], make_pdf("Délibération"), title="Délibération")
    _sign(kit, document["id"], ["maire", "agent"], ["Dominique Dupont, Maire", "Camille Martin, Adjointe"])
    versions = kit["agent"].get(f"/ged/documents/{document['id']}/versions").json()
    assert (versions[-1]["signatories"], versions[-1]["comment"]) == (
        ["maire", "agent"],
        "Signé par Dominique Dupont, Maire ; Camille Martin, Adjointe",
    )


def test_a_comment_reading_signed_by_names_no_signatory(kit: Kit) -> None:
    """The bug this fixes: signatories came from any comment « Signé par … »; only the parapheur names them."""
    document = upload_document(kit["agent"], make_pdf("Courrier"), title="Courrier")
    patched = kit["agent"].patch(
        f"/ged/documents/{document['id']}", json={"title": "Courrier signé", "comment": "Signé par maire, agent"}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["current"]["signatories"] is None
    uploaded = kit["agent"].post(
        f"/ged/documents/{document['id']}/versions", files={"file": ("v3.pdf", make_pdf("v3"), "application/pdf")}
    )
    assert uploaded.status_code == 201, uploaded.text

    assert _exported_signatories(document["id"]) == []
    with new_session() as session:
        # Even on a version of the parapheur's origin, a comment alone names nobody: the data does.
        query = select(Version).where(Version.document_id == document["id"]).order_by(Version.number.desc())
        version = session.execute(query).scalars().first()
        assert version is not None and version.number == 3
        version.origin, version.comment = "parapheur:ancien", "Signé par maire"
        session.commit()
    assert _exported_signatories(document["id"]) == []


def test_a_document_filed_by_the_parapheur_keeps_every_signatory(kit: Kit) -> None:
    """The comment is cut at 2000 characters; the signatories are not."""
    many = [f"signataire{number:03d}" for number in range(200)]
    signed = get_store().put(io.BytesIO(make_pdf("Délibération (signée)")))
    assert kit["admin"].post("/ged/plan", json={"name": "Délibérations", "parent_id": None}).status_code == 201
    ged_jobs.file_signed_document(
        tenant_id=kit.tenant_id,
        folder_id="circuit-long",
        object_key=signed.key,
        size=signed.size,
        filename="deliberation-signee.pdf",
        media_type="application/pdf",
        title="Délibération",
        document_type="Délibération",
        signatories=["maire", *many],
        signed_by=None,
        ged_folder="Délibérations",
    )
    with new_session() as session:
        version = session.execute(select(Version).where(Version.origin == "parapheur:circuit-long")).scalar_one()
        document_id = version.document_id
        assert version.comment is not None and len(version.comment) == 2000
        assert version.signatories == ["maire", *many]
    exported = _exported_signatories(document_id)
    assert [person["username"] for person in exported] == ["maire", *many]
    assert exported[0]["name"] == "Dominique Dupont" and exported[1]["name"] is None  # not a user


# --- ged0006: the versions signed before it ------------------------------------------------------------------


# (origin, comment) of versions written at ged0005, and the signatories ged0006 gives each.
CUT = "Signé par " + ", ".join(f"signataire{number:03d}" for number in range(200))
OLD_VERSIONS: dict[str, tuple[str | None, str | None, list[str] | None]] = {
    "signed": ("parapheur:dossier-1", "Signé par maire, agent", ["maire", "agent"]),
    "filed": ("parapheur:dossier-2", CUT[:2000], CUT[:2000].removeprefix("Signé par ").split(", ")[:-1]),
    "unnamed": ("parapheur:dossier-3", None, None),
    "by_user": (None, "Signé par maire", None),
    "by_flow": ("interop:flux:acte", "Signé par maire", None),
    "lowercase": ("parapheur:dossier-4", "signé par maire", None),
}


def _write_old_versions(url: str, tenant_id: str) -> dict[str, str]:
    now = datetime.now(UTC).replace(tzinfo=None)
    ids = {name: str(uuid.uuid4()) for name in OLD_VERSIONS}
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for name, (origin, comment, _) in OLD_VERSIONS.items():
            document_id = str(uuid.uuid4())
            connection.execute(
                sa.text(
                    "INSERT INTO ged_documents (id, tenant_id, current_version, created_by, created_at, updated_at) "
                    "VALUES (:id, :tenant, 1, 'agent', :now, :now)"
                ),
                {"id": document_id, "tenant": tenant_id, "now": now},
            )
            connection.execute(
                sa.text(
                    "INSERT INTO ged_versions (id, document_id, number, object_key, size, media_type, filename, "
                    "title, document_type, tags, author, created_at, origin, comment, field_values, text_status) "
                    "VALUES (:id, :document, 1, :key, 1, 'application/pdf', 'acte.pdf', 'Acte', 'Arrêté', '[]', "
                    "'parapheur', :now, :origin, :comment, '{}', 'done')"
                ),
                {"id": ids[name], "document": document_id, "key": "0" * 64, "now": now}
                | {"origin": origin, "comment": comment},
            )
    engine.dispose()
    return ids


def test_the_migration_gives_versions_signed_before_their_signatories(old_database_url: str) -> None:
    url = old_database_url
    for package in PACKAGES:
        if package != "ged":
            command.upgrade(alembic_config(package, url), "head")
    command.upgrade(alembic_config("ged", url), "ged0005")
    ids = _write_old_versions(url, str(uuid.uuid4()))

    upgrade_all(url)

    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT id, signatories FROM ged_versions")).all()
    engine.dispose()
    found = {
        row.id: json.loads(row.signatories) if isinstance(row.signatories, str) else row.signatories for row in rows
    }
    assert {name: found[ids[name]] for name in OLD_VERSIONS} == {
        name: expected for name, (_, _, expected) in OLD_VERSIONS.items()
    }
    # SQL NULL, not JSON null, where there are none: the ORM reads None either way, SQL would not.
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        nulls = connection.execute(sa.text("SELECT COUNT(*) FROM ged_versions WHERE signatories IS NULL")).scalar()
    engine.dispose()
    assert nulls == 4
