"""ged.jobs.store_flow_document: what an interop flow brings back is filed in the folder of the plan the message
names (the connector's, or the one the flow's creator may write in), never at the root of the plan, where every
user of the collectivité reads it."""

from __future__ import annotations

import io
from typing import Any

import pytest
from ga_helpers import make_folder
from sqlalchemy import select

from ged import jobs as ged_jobs
from ged.models import Document, Version
from socle.db import new_session
from socle.errors import Forbidden, NotFound
from socle.models import Job
from socle.storage import get_store

from conftest import Kit, assert_problem


def arguments(kit: Kit, name: str, **values: Any) -> dict[str, Any]:
    stored = get_store().put(io.BytesIO(f"<?xml version='1.0'?><ARActe n='{name}'/>".encode()))
    return {
        "tenant_id": kit.tenant_id,
        "flow_id": f"flux-{kit.tenant_id}",  # flow ids are unique (the GED's answer is keyed by them)
        "name": name,
        "object_key": stored.key,
        "size": stored.size,
        "filename": "ARActe.xml",
        "media_type": "application/xml",
        "title": f"Accusé de réception — {name}",
        "document_type": "actes",
        "ged_folder": None,
        "username": None,
        "document_date": None,
        "type_code": None,
        "description": None,
    } | values


def filed(kit: Kit, name: str) -> list[tuple[str, str | None]]:
    with new_session() as session:
        rows = session.execute(
            select(Document.id, Document.folder_id)
            .join(Version, Version.document_id == Document.id)
            .where(Document.tenant_id == kit.tenant_id, Version.origin == f"interop:flux-{kit.tenant_id}:{name}")
        )
        return [(str(document), folder) for document, folder in rows]


def answers(kit: Kit) -> int:
    with new_session() as session:
        query = select(Job.id).where(
            Job.tenant_id == kit.tenant_id, Job.function == "interop.jobs.flow_document_stored"
        )
        return len(session.execute(query).all())


def restricted(kit: Kit, name: str, rights: list[str]) -> str:
    """A folder at the top of the plan whose rights go to a group of the mayor only (and ``rights`` to the
    agent's group)."""
    folder = make_folder(kit, name)["id"]
    permissions = []
    for username, granted in (("maire", ["read", "write"]), ("agent", rights)):
        group = kit["admin"].post("/ged/groups", json={"name": f"{name} — {username}"}).json()["id"]
        assert kit["admin"].post(f"/ged/groups/{group}/members", json={"username": username}).status_code == 200
        if granted:
            permissions.append({"group_id": group, "rights": granted})
    assert kit["admin"].put(f"/ged/plan/{folder}/permissions", json=permissions).status_code == 200
    return str(folder)


def test_a_flow_document_is_filed_in_the_folder_named_by_path_or_id(kit: Kit) -> None:
    actes = make_folder(kit, "Actes")["id"]
    year = make_folder(kit, "2026", actes)["id"]
    cabinet = restricted(kit, "Cabinet", [])

    ged_jobs.store_flow_document(**arguments(kit, "aracte", ged_folder="Actes/2026"))
    ged_jobs.store_flow_document(**arguments(kit, "acquit", ged_folder=cabinet))
    [(aracte, in_year)] = filed(kit, "aracte")
    [(acquit, in_cabinet)] = filed(kit, "acquit")
    assert (in_year, in_cabinet) == (year, cabinet)
    # The cabinet's folder says who reads it: not the agent, in any list, nor by its id.
    assert_problem(kit["agent"].get(f"/ged/documents/{acquit}"), 404)
    assert acquit not in {item["id"] for item in kit["agent"].get("/ged/documents").json()["items"]}
    searched = kit["agent"].get("/ged/search", params={"document_type": "actes"}).json()["items"]
    assert {item["document_id"] for item in searched} == {aracte}
    assert kit["maire"].get(f"/ged/documents/{acquit}").status_code == 200
    assert answers(kit) == 2


def test_no_folder_or_an_unknown_one_is_refused_and_nothing_is_filed(kit: Kit) -> None:
    # None: a connector without « ged_folder », or a job queued before the message had it (the kernel's null).
    with pytest.raises(NotFound, match=r"aucun dossier de la GED n'est désigné .* « ged_folder »"):
        ged_jobs.store_flow_document(**arguments(kit, "aracte"))
    with pytest.raises(NotFound, match="dossier « Actes/2026 » introuvable dans le plan de classement"):
        ged_jobs.store_flow_document(**arguments(kit, "aracte", ged_folder="Actes/2026"))
    assert filed(kit, "aracte") == [] and answers(kit) == 0
    with new_session() as session:
        assert session.execute(select(Document.id).where(Document.tenant_id == kit.tenant_id)).first() is None


def test_a_folder_chosen_by_the_flows_creator_needs_their_right_to_write(kit: Kit) -> None:
    read_only = restricted(kit, "Lecture seule", ["read"])
    hidden = restricted(kit, "Cabinet", [])

    with pytest.raises(Forbidden, match="n'a pas le droit d'écriture dans le dossier « Lecture seule »"):
        ged_jobs.store_flow_document(**arguments(kit, "aracte", ged_folder="Lecture seule", username="agent"))
    # Hidden from them: told as a folder that does not exist (same words), by path or by id.
    for reference in ("Cabinet", hidden):
        with pytest.raises(NotFound) as refused:
            ged_jobs.store_flow_document(**arguments(kit, "aracte", ged_folder=reference, username="agent"))
        assert str(refused.value.detail) == f"dossier « {reference} » introuvable dans le plan de classement"
    assert filed(kit, "aracte") == [] and answers(kit) == 0

    # The mayor may write there; and a folder the administrator chose (no username) needs no right of the agent's.
    ged_jobs.store_flow_document(**arguments(kit, "aracte", ged_folder="Cabinet", username="maire"))
    ged_jobs.store_flow_document(**arguments(kit, "acquit", ged_folder=read_only))
    assert [folder for _id, folder in filed(kit, "aracte")] == [hidden]
    assert [folder for _id, folder in filed(kit, "acquit")] == [read_only]


def test_a_second_run_answers_with_the_document_filed_wherever_it_is_now(kit: Kit) -> None:
    first = make_folder(kit, "Actes")["id"]
    asked = arguments(kit, "aracte", ged_folder="Actes")
    ged_jobs.store_flow_document(**asked)
    [(document, folder)] = filed(kit, "aracte")
    assert folder == first
    # Renamed since (the job run again finds the document by its origin, not the folder by its name).
    assert kit["admin"].patch(f"/ged/plan/{first}", json={"name": "Actes 2026"}).status_code == 200
    ged_jobs.store_flow_document(**asked)
    assert filed(kit, "aracte") == [(document, first)] and answers(kit) == 1
