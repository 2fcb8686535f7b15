"""Every GED write is recorded in the tenant's audit log: each write route of the API (and CMIS action, and
« socle ged redo-text ») is performed for real, and the log must gain its entry (action, actor, object).

The table below names the routes it covers: a new write route of the GED API without its case here fails
``test_every_write_route_of_the_api_has_its_case``, so a write cannot be added without its audit being tested.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from ga_helpers import make_folder, make_type, new_document
from sqlalchemy import func, select, update

from ged.models import Document, Version
from socle import audit
from socle.db import transaction, utcnow
from socle.models import AuditEntry

from conftest import Kit, make_pdf, socle_command

Context = dict[str, Any]
# What a write must leave in the log: (action, object_type, object_id).
Expected = tuple[str, str, str]
PDF = "application/pdf"


@dataclass(frozen=True)
class Write:
    name: str
    routes: tuple[str, ...]  # « METHOD /path » of the GED API (OpenAPI paths); empty for a command
    user: str  # who performs it: the entry's actor is « user:<user> », unless ``actor`` says otherwise
    act: Callable[[Kit, Context], Expected]
    prepare: Callable[[Kit], Context] = field(default=lambda kit: {})
    actor: str | None = None


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else {}


# ---------------------------------------------------------------------------------------------------------
# Preparations


def a_document(kit: Kit) -> Context:
    return {"document": new_document(kit)["id"]}


def a_trashed_document(kit: Kit) -> Context:
    context = a_document(kit)
    ok(kit["agent"].delete(f"/ged/documents/{context['document']}"))
    return context


def a_document_past_the_trash_window(kit: Kit) -> Context:
    context = a_trashed_document(kit)
    with transaction() as session:
        past = utcnow() - timedelta(days=400)
        session.execute(update(Document).where(Document.id == context["document"]).values(deleted_at=past))
    return context


def a_document_and_a_folder(kit: Kit) -> Context:
    return {**a_document(kit), "folder": make_folder(kit, "Courrier")["id"]}


def a_folder(kit: Kit) -> Context:
    return {"folder": make_folder(kit, "Courrier")["id"]}


def two_folders(kit: Kit) -> Context:
    return {"folder": make_folder(kit, "Courrier")["id"], "other": make_folder(kit, "Marchés")["id"]}


def a_type(kit: Kit) -> Context:
    return {"type": make_type(kit, "contrat")["id"]}


def a_group(kit: Kit) -> Context:
    return {"group": ok(kit["admin"].post("/ged/groups", json={"name": "Finances"}), 201)["id"]}


def a_group_with_a_member(kit: Kit) -> Context:
    context = a_group(kit)
    ok(kit["admin"].post(f"/ged/groups/{context['group']}/members", json={"username": "maire"}))
    return context


def a_group_and_a_folder(kit: Kit) -> Context:
    return {**a_group(kit), **a_folder(kit)}


def a_group_and_a_type(kit: Kit) -> Context:
    return {**a_group(kit), **a_type(kit)}


def a_hold_and_a_document(kit: Kit) -> Context:
    hold = ok(kit["archiviste"].post("/ged/holds", json={"name": "Litige", "reason": "recours"}), 201)
    return {**a_document(kit), "hold": hold["id"]}


def a_hold_on_a_document(kit: Kit) -> Context:
    context = a_hold_and_a_document(kit)
    body = {"document_ids": [context["document"]]}
    ok(kit["archiviste"].post(f"/ged/holds/{context['hold']}/documents", json=body))
    return context


def a_document_past_its_dua(kit: Kit) -> Context:
    make_type(kit, "destroy", dua_months=1, dua_event="document_date", final_action="destroy")
    return {"document": new_document(kit, type="destroy", date="2020-01-01")["id"]}


def a_proposed_elimination(kit: Kit) -> Context:
    context = a_document_past_its_dua(kit)
    body = {"document_ids": [context["document"]]}
    return {**context, "elimination": ok(kit["archiviste"].post("/ged/eliminations", json=body), 201)["id"]}


def an_approved_elimination(kit: Kit) -> Context:
    context = a_proposed_elimination(kit)
    ok(kit["admin"].post(f"/ged/eliminations/{context['elimination']}/approve"))
    return context


UPLOADED = make_pdf("envoi reprenable")


def an_open_upload(kit: Kit) -> Context:
    body = {
        "filename": "acte.pdf",
        "size": len(UPLOADED),
        "media_type": PDF,
        "sha256": hashlib.sha256(UPLOADED).hexdigest(),
        "metadata": {"title": "Arrêté reçu en morceaux", "document_type": "arrete"},
    }
    return {"upload": ok(kit["agent"].post("/ged/uploads", json=body), 201)["id"]}


def a_complete_upload(kit: Kit) -> Context:
    context = an_open_upload(kit)
    headers = {"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream", "Tus-Resumable": "1.0.0"}
    response = kit["agent"].patch(f"/ged/uploads/{context['upload']}", content=UPLOADED, headers=headers)
    assert response.status_code == 204, response.text
    return context


def a_cmis_document(kit: Kit) -> Context:
    form = {
        "cmisaction": "createDocument",
        "objectId": "root",
        "propertyId[0]": "cmis:name",
        "propertyValue[0]": "Acte",
    }
    files = {"content": ("acte.pdf", make_pdf("cmis"), PDF)}
    created = ok(kit["archiviste"].post(cmis_url(kit), data=form, files=files), 201)
    return {"document": created["properties"]["cmis:objectId"]["value"]}


def a_checked_out_document(kit: Kit) -> Context:
    context = a_cmis_document(kit)
    ok(kit["archiviste"].post(cmis_url(kit), data={"cmisaction": "checkOut", "objectId": context["document"]}))
    return context


def a_cmis_document_and_a_folder(kit: Kit) -> Context:
    return {**a_cmis_document(kit), **a_folder(kit)}


def a_document_whose_text_failed(kit: Kit) -> Context:
    context = a_document(kit)
    with transaction() as session:
        session.execute(update(Version).where(Version.document_id == context["document"]).values(text_status="failed"))
    return context


def cmis_url(kit: Kit, path: str = "/root") -> str:
    return f"/ged/cmis/{kit.slug}{path}"


def cmis(kit: Kit, user: str, action: str, object_id: str, data: Context | None = None, **files: Any) -> Any:
    form = {"cmisaction": action, "objectId": object_id, **(data or {})}
    return ok(kit[user].post(cmis_url(kit), data=form, **files))


# ---------------------------------------------------------------------------------------------------------
# The writes


def _create_document(kit: Kit, _: Context) -> Expected:
    document = new_document(kit)
    return "ged.document.created", "document", document["id"]


def _patch_document(kit: Kit, c: Context) -> Expected:
    ok(kit["agent"].patch(f"/ged/documents/{c['document']}", json={"title": "Arrêté modifié"}))
    return "ged.version.created", "document", c["document"]


def _trash_document(kit: Kit, c: Context) -> Expected:
    ok(kit["agent"].delete(f"/ged/documents/{c['document']}"))
    return "ged.document.trashed", "document", c["document"]


def _restore_document(kit: Kit, c: Context) -> Expected:
    ok(kit["agent"].post(f"/ged/documents/{c['document']}/restore"))
    return "ged.document.restored", "document", c["document"]


def _file_document(kit: Kit, c: Context) -> Expected:
    ok(kit["agent"].put(f"/ged/documents/{c['document']}/folder", json={"folder_id": c["folder"]}))
    return "ged.document.filed", "document", c["document"]


def _new_version(kit: Kit, c: Context) -> Expected:
    files = {"file": ("v2.pdf", make_pdf("deuxième version"), PDF)}
    ok(kit["agent"].post(f"/ged/documents/{c['document']}/versions", files=files), 201)
    return "ged.version.created", "document", c["document"]


def _deliver(kit: Kit, c: Context) -> Expected:
    ok(kit["agent"].post(f"/ged/documents/{c['document']}/deliver", json={"connector": "depot"}), 202)
    return "ged.document.delivery_requested", "document", c["document"]


def _purge_trash(kit: Kit, c: Context) -> Expected:
    assert c["document"] in ok(kit["admin"].post("/ged/trash/purge"))["purged"]
    return "ged.document.purged", "document", c["document"]


def _create_type(kit: Kit, _: Context) -> Expected:
    return "ged.type.created", "document_type", make_type(kit, "marche")["id"]


def _change_type_schema(kit: Kit, c: Context) -> Expected:
    fields = [{"name": "montant", "label": "Montant", "kind": "decimal"}]
    ok(kit["admin"].patch(f"/ged/types/{c['type']}", json={"fields": fields, "dua_months": 60}))
    return "ged.type.updated", "document_type", c["type"]


def _delete_type(kit: Kit, c: Context) -> Expected:
    assert kit["admin"].delete(f"/ged/types/{c['type']}").status_code == 204
    return "ged.type.deleted", "document_type", c["type"]


def _set_type_permissions(kit: Kit, c: Context) -> Expected:
    body = [{"group_id": c["group"], "rights": ["read", "write"]}]
    ok(kit["admin"].put(f"/ged/types/{c['type']}/permissions", json=body))
    return "ged.permissions.set", "type", c["type"]


def _create_folder(kit: Kit, _: Context) -> Expected:
    return "ged.folder.created", "folder", make_folder(kit, "Délibérations")["id"]


def _rename_folder(kit: Kit, c: Context) -> Expected:
    ok(kit["admin"].patch(f"/ged/plan/{c['folder']}", json={"name": "Courrier arrivé", "code": "CA"}))
    return "ged.folder.updated", "folder", c["folder"]


def _move_folder(kit: Kit, c: Context) -> Expected:
    ok(kit["admin"].patch(f"/ged/plan/{c['folder']}", json={"parent_id": c["other"]}))
    return "ged.folder.updated", "folder", c["folder"]


def _delete_folder(kit: Kit, c: Context) -> Expected:
    assert kit["admin"].delete(f"/ged/plan/{c['folder']}").status_code == 204
    return "ged.folder.deleted", "folder", c["folder"]


def _set_folder_permissions(kit: Kit, c: Context) -> Expected:
    ok(kit["admin"].put(f"/ged/plan/{c['folder']}/permissions", json=[{"group_id": c["group"], "rights": ["read"]}]))
    return "ged.permissions.set", "folder", c["folder"]


def _create_group(kit: Kit, _: Context) -> Expected:
    return "ged.group.created", "group", ok(kit["admin"].post("/ged/groups", json={"name": "Urbanisme"}), 201)["id"]


def _delete_group(kit: Kit, c: Context) -> Expected:
    assert kit["admin"].delete(f"/ged/groups/{c['group']}").status_code == 204
    return "ged.group.deleted", "group", c["group"]


def _add_member(kit: Kit, c: Context) -> Expected:
    ok(kit["admin"].post(f"/ged/groups/{c['group']}/members", json={"username": "maire"}))
    return "ged.group.member_added", "group", c["group"]


def _remove_member(kit: Kit, c: Context) -> Expected:
    ok(kit["admin"].delete(f"/ged/groups/{c['group']}/members/maire"))
    return "ged.group.member_removed", "group", c["group"]


def _create_hold(kit: Kit, _: Context) -> Expected:
    hold = ok(kit["archiviste"].post("/ged/holds", json={"name": "Contentieux", "reason": "requête"}), 201)
    return "ged.hold.created", "hold", hold["id"]


def _hold_documents(kit: Kit, c: Context) -> Expected:
    ok(kit["archiviste"].post(f"/ged/holds/{c['hold']}/documents", json={"document_ids": [c["document"]]}))
    return "ged.hold.documents_added", "hold", c["hold"]


def _unhold_document(kit: Kit, c: Context) -> Expected:
    ok(kit["archiviste"].delete(f"/ged/holds/{c['hold']}/documents/{c['document']}"))
    return "ged.hold.document_removed", "hold", c["hold"]


def _release_hold(kit: Kit, c: Context) -> Expected:
    ok(kit["archiviste"].post(f"/ged/holds/{c['hold']}/release", json={"reason": "jugement rendu"}))
    return "ged.hold.released", "hold", c["hold"]


def _propose_elimination(kit: Kit, c: Context) -> Expected:
    body = {"document_ids": [c["document"]], "comment": "tri annuel"}
    elimination = ok(kit["archiviste"].post("/ged/eliminations", json=body), 201)
    return "ged.elimination.proposed", "elimination", elimination["id"]


def _approve_elimination(kit: Kit, c: Context) -> Expected:
    ok(kit["admin"].post(f"/ged/eliminations/{c['elimination']}/approve", json={"comment": "vu"}))
    return "ged.elimination.approved", "elimination", c["elimination"]


def _refuse_elimination(kit: Kit, c: Context) -> Expected:
    ok(kit["admin"].post(f"/ged/eliminations/{c['elimination']}/refuse", json={"comment": "à garder"}))
    return "ged.elimination.refused", "elimination", c["elimination"]


def _carry_out_elimination(kit: Kit, c: Context) -> Expected:
    ok(kit["archiviste"].post(f"/ged/eliminations/{c['elimination']}/execute"))
    return "ged.elimination.done", "elimination", c["elimination"]


def _start_upload(kit: Kit, _: Context) -> Expected:
    return "ged.upload.started", "upload", an_open_upload(kit)["upload"]


def _finish_upload(kit: Kit, c: Context) -> Expected:
    ok(kit["agent"].post(f"/ged/uploads/{c['upload']}/finish"), 201)
    return "ged.upload.completed", "upload", c["upload"]


def _cancel_upload(kit: Kit, c: Context) -> Expected:
    assert kit["agent"].delete(f"/ged/uploads/{c['upload']}").status_code == 204
    return "ged.upload.cancelled", "upload", c["upload"]


def _cmis_create_folder(kit: Kit, _: Context) -> Expected:
    # At the repository's own URL this time (« folderId »): that route writes too.
    form = {"propertyId[0]": "cmis:name", "propertyValue[0]": "Arrêtés", "propertyId[1]": "cmis:objectTypeId"}
    form |= {"propertyValue[1]": "cmis:folder", "cmisaction": "createFolder", "folderId": "root"}
    folder = ok(kit["archiviste"].post(cmis_url(kit, ""), data=form), 201)
    return "ged.folder.created", "folder", folder["properties"]["cmis:objectId"]["value"]


def _cmis_create_document(kit: Kit, _: Context) -> Expected:
    return "ged.document.created", "document", a_cmis_document(kit)["document"]


def _cmis_update(kit: Kit, c: Context) -> Expected:
    form = {"propertyId[0]": "cmis:name", "propertyValue[0]": "Acte renommé"}
    cmis(kit, "archiviste", "update", c["document"], form)
    return "ged.version.created", "document", c["document"]


def _cmis_set_content(kit: Kit, c: Context) -> Expected:
    files = {"content": ("v2.pdf", make_pdf("contenu remplacé"), PDF)}
    cmis(kit, "archiviste", "setContent", c["document"], files=files)
    return "ged.version.created", "document", c["document"]


def _cmis_move(kit: Kit, c: Context) -> Expected:
    cmis(kit, "archiviste", "move", c["document"], {"targetFolderId": c["folder"], "sourceFolderId": "root"})
    return "ged.document.filed", "document", c["document"]


def _cmis_delete(kit: Kit, c: Context) -> Expected:
    # Addressed by its path this time: the routes « …/root/{path} » write too.
    ok(kit["archiviste"].post(cmis_url(kit, "/root/Acte"), data={"cmisaction": "delete"}))
    return "ged.document.trashed", "document", c["document"]


def _cmis_check_out(kit: Kit, c: Context) -> Expected:
    cmis(kit, "archiviste", "checkOut", c["document"])
    return "ged.document.checked_out", "document", c["document"]


def _cmis_cancel_check_out(kit: Kit, c: Context) -> Expected:
    cmis(kit, "archiviste", "cancelCheckOut", c["document"])
    return "ged.document.checkout_cancelled", "document", c["document"]


def _cmis_check_in(kit: Kit, c: Context) -> Expected:
    files = {"content": ("v2.pdf", make_pdf("rendu après extraction"), PDF)}
    cmis(kit, "archiviste", "checkIn", c["document"], {"checkinComment": "relu"}, files=files)
    return "ged.document.checked_in", "document", c["document"]


def _redo_text(kit: Kit, c: Context) -> Expected:
    result = socle_command("ged", "redo-text", "--tenant", kit.slug, "--failed")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 version(s) remise(s) en extraction" in result.stdout
    return "ged.rendition.redo", "document", c["document"]


CMIS = ("POST /cmis/{repository_id}/root",)
WRITES = [
    Write("document created", ("POST /documents",), "agent", _create_document),
    Write("metadata changed", ("PATCH /documents/{document_id}",), "agent", _patch_document, a_document),
    Write("document trashed", ("DELETE /documents/{document_id}",), "agent", _trash_document, a_document),
    Write(
        "document restored", ("POST /documents/{document_id}/restore",), "agent", _restore_document, a_trashed_document
    ),
    Write("document filed", ("PUT /documents/{document_id}/folder",), "agent", _file_document, a_document_and_a_folder),
    Write("new content version", ("POST /documents/{document_id}/versions",), "agent", _new_version, a_document),
    Write("delivery asked", ("POST /documents/{document_id}/deliver",), "agent", _deliver, a_document),
    Write("trash purged", ("POST /trash/purge",), "admin", _purge_trash, a_document_past_the_trash_window),
    Write("type created", ("POST /types",), "admin", _create_type),
    Write("type schema changed", ("PATCH /types/{type_id}",), "admin", _change_type_schema, a_type),
    Write("type deleted", ("DELETE /types/{type_id}",), "admin", _delete_type, a_type),
    Write("type rights set", ("PUT /types/{type_id}/permissions",), "admin", _set_type_permissions, a_group_and_a_type),
    Write("folder created", ("POST /plan",), "admin", _create_folder),
    Write("folder renamed", ("PATCH /plan/{folder_id}",), "admin", _rename_folder, a_folder),
    Write("folder moved", ("PATCH /plan/{folder_id}",), "admin", _move_folder, two_folders),
    Write("folder deleted", ("DELETE /plan/{folder_id}",), "admin", _delete_folder, a_folder),
    Write(
        "folder rights set",
        ("PUT /plan/{folder_id}/permissions",),
        "admin",
        _set_folder_permissions,
        a_group_and_a_folder,
    ),
    Write("group created", ("POST /groups",), "admin", _create_group),
    Write("group deleted", ("DELETE /groups/{group_id}",), "admin", _delete_group, a_group),
    Write("member added", ("POST /groups/{group_id}/members",), "admin", _add_member, a_group),
    Write(
        "member removed",
        ("DELETE /groups/{group_id}/members/{username}",),
        "admin",
        _remove_member,
        a_group_with_a_member,
    ),
    Write("hold created", ("POST /holds",), "archiviste", _create_hold),
    Write("documents held", ("POST /holds/{hold_id}/documents",), "archiviste", _hold_documents, a_hold_and_a_document),
    Write(
        "document unheld",
        ("DELETE /holds/{hold_id}/documents/{document_id}",),
        "archiviste",
        _unhold_document,
        a_hold_on_a_document,
    ),
    Write("hold released", ("POST /holds/{hold_id}/release",), "archiviste", _release_hold, a_hold_on_a_document),
    Write("elimination proposed", ("POST /eliminations",), "archiviste", _propose_elimination, a_document_past_its_dua),
    Write(
        "elimination approved",
        ("POST /eliminations/{elimination_id}/approve",),
        "admin",
        _approve_elimination,
        a_proposed_elimination,
    ),
    Write(
        "elimination refused",
        ("POST /eliminations/{elimination_id}/refuse",),
        "admin",
        _refuse_elimination,
        a_proposed_elimination,
    ),
    Write(
        "elimination carried out",
        ("POST /eliminations/{elimination_id}/execute",),
        "archiviste",
        _carry_out_elimination,
        an_approved_elimination,
    ),
    Write("upload started", ("POST /uploads",), "agent", _start_upload),
    Write("upload completed", ("POST /uploads/{upload_id}/finish",), "agent", _finish_upload, a_complete_upload),
    Write("upload cancelled", ("DELETE /uploads/{upload_id}",), "agent", _cancel_upload, an_open_upload),
    Write("cmis createFolder", ("POST /cmis/{repository_id}",), "archiviste", _cmis_create_folder),
    Write("cmis createDocument", CMIS, "archiviste", _cmis_create_document),
    Write("cmis update", CMIS, "archiviste", _cmis_update, a_cmis_document),
    Write("cmis setContent", CMIS, "archiviste", _cmis_set_content, a_cmis_document),
    Write("cmis move", CMIS, "archiviste", _cmis_move, a_cmis_document_and_a_folder),
    Write("cmis delete", ("POST /cmis/{repository_id}/root/{path}",), "archiviste", _cmis_delete, a_cmis_document),
    Write("cmis checkOut", CMIS, "archiviste", _cmis_check_out, a_cmis_document),
    Write("cmis cancelCheckOut", CMIS, "archiviste", _cmis_cancel_check_out, a_checked_out_document),
    Write("cmis checkIn", CMIS, "archiviste", _cmis_check_in, a_checked_out_document),
    Write("redo-text", (), "", _redo_text, a_document_whose_text_failed, actor="cli:socle-ged-redo-text"),
]

# Write routes that record nothing on purpose, with the reason.
NOT_AUDITED = {
    "PATCH /uploads/{upload_id}": "un morceau d'un envoi reprenable : l'ouverture, la fin et l'abandon le sont",
}


def last_seq(tenant_id: str) -> int:
    with transaction() as session:
        found = session.execute(select(func.max(AuditEntry.seq)).where(AuditEntry.tenant_id == tenant_id)).scalar()
        return int(found or 0)


def entries_after(tenant_id: str, seq: int) -> list[tuple[str, str, str, str]]:
    with transaction() as session:
        query = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id, AuditEntry.seq > seq)
        return [
            (entry.action, entry.actor, entry.object_type, entry.object_id)
            for entry in session.execute(query.order_by(AuditEntry.seq)).scalars()
        ]


@pytest.mark.parametrize("write", WRITES, ids=lambda write: write.name)
def test_each_write_is_recorded_in_the_audit_log(kit: Kit, write: Write) -> None:
    context = write.prepare(kit)
    before = last_seq(kit.tenant_id)
    action, object_type, object_id = write.act(kit, context)

    actor = write.actor or f"user:{write.user}"
    recorded = entries_after(kit.tenant_id, before)
    assert (action, actor, object_type, object_id) in recorded, recorded
    with transaction() as session:
        assert audit.verify(session, kit.tenant_id).intact  # appended to the chain, not beside it


def test_every_write_route_of_the_api_has_its_case() -> None:
    from ged.api import create_app

    paths = create_app().openapi()["paths"]
    routes = {
        f"{method.upper()} {path}"
        for path, operations in paths.items()
        for method in operations
        if method in ("post", "put", "patch", "delete")
    }
    covered = {route for write in WRITES for route in write.routes}
    assert routes - covered - set(NOT_AUDITED) == set(), "écriture sans cas dans WRITES (journal d'audit non vérifié)"
    assert covered <= routes and set(NOT_AUDITED) <= routes  # no case for a route that is gone
