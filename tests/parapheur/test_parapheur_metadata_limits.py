"""A folder's metadata are free JSON, bounded by the kernel (socle.jsonvalues). Before, 256 to 990 levels of nesting
were saved, then no answer could hold them (« Maximum serialization depth exceeded »): the request got a 500, and
every later list of folders too, for good; NaN was stored. Now each way in (JSON creation, upload, PATCH) refuses
them with a French 422 and nothing is written."""

from __future__ import annotations

import json
from typing import Any

import pytest
from parapheur_kit import Standard, folder_of, ok, sent_folder, upload_folder
from sqlalchemy import func, select

from socle.db import transaction
from socle.jsonvalues import MAX_BYTES, MAX_DEPTH
from socle.migrating import upgrade_all
from socle.models import AuditEntry

from conftest import Kit, assert_problem, upload_document

JSON = {"content-type": "application/json"}


def _nested(depth: int) -> str:
    """Metadata ``depth`` levels deep (the metadata object counted), as JSON text."""
    return '{"n":' * depth + "1" + "}" * depth


def _audit_count(kit: Kit) -> int:
    with transaction() as session:
        query = select(func.count()).select_from(AuditEntry).where(AuditEntry.tenant_id == kit.tenant_id)
        return int(session.execute(query).scalar_one())


REFUSED = [
    pytest.param(_nested(MAX_DEPTH + 1), "trop d'imbrication", id="11-deep"),
    pytest.param(_nested(300), "trop d'imbrication", id="300-deep"),
    pytest.param(_nested(900), "trop d'imbrication", id="900-deep"),
    pytest.param('{"montant": NaN}', "nombre fini", id="nan"),
    pytest.param('{"montant": [1, -Infinity]}', "nombre fini", id="infinity"),
    pytest.param(json.dumps({"texte": "x" * MAX_BYTES}), "trop volumineux", id="too-big"),
]


def _check_refusals(kit: Kit, metadata: str, reason: str) -> None:
    setup = Standard(kit)
    agent = kit["agent"]
    folder = sent_folder(kit, setup.visa_then_sign)
    document = upload_document(agent, b"%PDF-1.7\n%%EOF\n", filename="deliberation.pdf")
    audited = _audit_count(kit)
    fields = {"subtype_id": setup.visa_then_sign, "title": "Délibération", "ged_document_id": document["id"]}
    created = json.dumps(fields)[:-1] + f', "metadata": {metadata}}}'  # the metadata as written, NaN included
    refusals = {
        "création": agent.post("/parapheur/folders", content=created.encode(), headers=JSON),
        "dépôt": upload_folder(kit, setup.sign_only, metadata=metadata),
        "modification": agent.patch(
            f"/parapheur/folders/{folder['id']}/metadata", content=f'{{"metadata": {metadata}}}', headers=JSON
        ),
    }
    for way, response in refusals.items():
        problem = assert_problem(response, 422)
        assert problem["detail"].startswith("métadonnées : ") and reason in problem["detail"], (way, problem)
    # Nothing written, and the lists still answer (before: 500 for good once such a folder was saved).
    assert [row["id"] for row in ok(agent.get("/parapheur/folders"))] == [folder["id"]]
    assert folder_of(kit, folder["id"])["metadata"] == {}
    assert _audit_count(kit) == audited


@pytest.mark.parametrize(("metadata", "reason"), REFUSED)
def test_unbounded_metadata_are_refused_before_anything_is_written(kit: Kit, metadata: str, reason: str) -> None:
    _check_refusals(kit, metadata, reason)


@pytest.mark.integration
def test_unbounded_metadata_are_refused_on_postgres_too(
    postgres_url: str, use_env: Any, make_kit: Any, app: Any
) -> None:
    # PostgreSQL's json refuses NaN: before, a 500 there.
    use_env(SOCLE_DATABASE_URL=postgres_url)
    upgrade_all()
    for param in REFUSED[3:5]:
        _check_refusals(make_kit(), *param.values)


def test_legitimate_metadata_are_kept_and_their_sum_is_bounded(kit: Kit) -> None:
    setup = Standard(kit)
    agent = kit["agent"]
    metadata = {"objet": "Tarifs de la cantine", "numero": "2026-042", "lignes": [{"tarif": 3.5, "cas": ["a"]}]}
    folder = sent_folder(kit, setup.sign_only, metadata=metadata)
    assert folder["metadata"] == metadata
    url = f"/parapheur/folders/{folder['id']}/metadata"
    half = "x" * (MAX_BYTES // 2)
    first = kit["maire"].patch(url, json={"metadata": {"annexe_1": half}})
    assert first.status_code == 200, first.text
    # Each call within the bound, their sum beyond it: refused, the first kept.
    problem = assert_problem(kit["maire"].patch(url, json={"metadata": {"annexe_2": half}}), 422)
    assert "trop volumineux" in problem["detail"]
    assert set(folder_of(kit, folder["id"])["metadata"]) == {"objet", "numero", "lignes", "annexe_1"}
    assert kit["maire"].patch(url, json={"metadata": {"annexe_1": None, "annexe_2": half}}).status_code == 200
    assert ok(agent.get("/parapheur/folders"))[0]["id"] == folder["id"]
