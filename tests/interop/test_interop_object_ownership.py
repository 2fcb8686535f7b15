"""A flow is given only its collectivité's own documents: the store is shared and content-addressed, so a key
read elsewhere (another collectivité's GED document) is refused exactly as a key of nothing, and nothing is made.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Callable

import pytest
from parapheur_kit import Standard, act, ok, sent_folder
from s2low_helpers import S2low, add_s2low, drive
from sqlalchemy import func, select

from interop.models import Flow
from socle import messages
from socle.db import new_session, transaction
from socle.migrating import upgrade_all
from socle.models import Job
from socle.settings import get_settings
from socle.storage import get_store
from socle.storage.ownership import record_held

from conftest import Kit, assert_problem, make_pdf, upload_document


def _absent(key: str) -> str:
    return f"document absent du stockage de la collectivité : {key[:16]}"


def _depot(key: str, filename: str = "arrete.pdf") -> dict[str, object]:
    return {
        "kind": "depot",
        "connector": "depot",
        "documents": [{"object_key": key, "sha256": key, "filename": filename}],
        "metadata": {"objet": "Dépôt"},
    }


def _flows_and_steps(tenant_id: str) -> tuple[int, int]:
    with new_session() as session:
        flows = session.execute(select(func.count()).select_from(Flow).where(Flow.tenant_id == tenant_id)).scalar()
        steps = session.execute(
            select(func.count())
            .select_from(Job)
            .where(Job.tenant_id == tenant_id, Job.function == messages.INTEROP_FLOW_STEP.function)
        ).scalar()
    return int(flows or 0), int(steps or 0)


def _refuses_the_other_collectivites_document(make_kit: Callable[..., Kit]) -> tuple[Kit, str, bytes]:
    """Tenant B files a PDF in its GED; tenant A's agent names its key in a « dépôt » flow: the same 422 as a key
    of nothing, no flow, no job. A's own GED document goes. Returns A, its accepted flow's id and its file."""
    a, b = make_kit(with_identity=False), make_kit(with_identity=False)
    created = a["admin"].post("/interop/connectors", json={"name": "depot", "kind": "depot", "config": {"path": "f"}})
    assert created.status_code == 201, created.text
    secret = make_pdf(f"Arrêté confidentiel de B {uuid.uuid4()}")
    upload_document(b["agent"], secret)
    theirs, nothing = hashlib.sha256(secret).hexdigest(), hashlib.sha256(uuid.uuid4().bytes).hexdigest()

    refused = assert_problem(a["agent"].post("/interop/flows", json=_depot(theirs)), 422)
    unknown = assert_problem(a["agent"].post("/interop/flows", json=_depot(nothing)), 422)
    assert refused["detail"] == _absent(theirs) and unknown["detail"] == _absent(nothing)
    assert {k: v for k, v in refused.items() if k != "detail"} == {k: v for k, v in unknown.items() if k != "detail"}
    assert _flows_and_steps(a.tenant_id) == (0, 0)

    mine = make_pdf(f"Arrêté de A {uuid.uuid4()}")
    upload_document(a["agent"], mine)
    accepted = a["agent"].post("/interop/flows", json=_depot(hashlib.sha256(mine).hexdigest()))
    assert accepted.status_code == 201, accepted.text
    assert _flows_and_steps(a.tenant_id) == (1, 1)
    return a, str(accepted.json()["id"]), mine


def test_a_flow_refuses_another_collectivites_document_like_an_absent_one(make_kit: Callable[..., Kit]) -> None:
    a, flow_id, mine = _refuses_the_other_collectivites_document(make_kit)
    flow = drive(flow_id)
    assert flow.status == "done" and flow.state == "déposé", flow.error
    deposited = get_settings().effective_deposit_root / a.slug / "f"
    assert sorted(path.name for path in deposited.glob("*.pdf")) == ["arrete.pdf"]
    assert (deposited / "arrete.pdf").read_bytes() == mine  # A's own file, nothing of B's


def test_the_same_bytes_filed_by_both_collectivites_are_each_ones_own(make_kit: Callable[..., Kit]) -> None:
    """Content-addressed: B's copy does not stop A from sending the same file it filed itself."""
    a, b = make_kit(with_identity=False), make_kit(with_identity=False)
    a["admin"].post("/interop/connectors", json={"name": "depot", "kind": "depot", "config": {"path": "g"}})
    shared = make_pdf(f"Modèle d'arrêté {uuid.uuid4()}")
    upload_document(b["agent"], shared)
    key = hashlib.sha256(shared).hexdigest()
    assert_problem(a["agent"].post("/interop/flows", json=_depot(key)), 422)
    upload_document(a["agent"], shared)
    accepted = a["agent"].post("/interop/flows", json=_depot(key))
    assert accepted.status_code == 201, accepted.text
    assert drive(str(accepted.json()["id"])).state == "déposé"


def test_a_folder_signed_in_the_parapheur_may_go_to_its_own_collectivites_flow(make_kit: Callable[..., Kit]) -> None:
    """The uploaded original and the signed copy (made by the server) are the collectivité's, not another's."""
    a, b = make_kit(), make_kit(with_identity=False)
    for kit in (a, b):
        kit["admin"].post("/interop/connectors", json={"name": "depot", "kind": "depot", "config": {"path": "p"}})
    folder = sent_folder(a, Standard(a).sign_only, title=f"Arrêté {uuid.uuid4()}")
    signed = ok(act(a, "maire", folder["id"], "sign"))
    assert signed["status"] == "completed" and signed["document_sha256"] != folder["document_sha256"]
    for key in (folder["document_sha256"], signed["document_sha256"]):
        assert b["agent"].post("/interop/flows", json=_depot(key)).json()["detail"] == _absent(key)
        assert a["agent"].post("/interop/flows", json=_depot(key)).status_code == 201


def test_a_reply_to_the_prefecture_refuses_another_collectivites_document(
    make_kit: Callable[..., Kit], sim: S2low
) -> None:
    a, b = make_kit(with_identity=False), make_kit(with_identity=False)
    add_s2low(a, sim, fetch=False)
    secret = make_pdf(f"Courrier de B {uuid.uuid4()}")
    upload_document(b["agent"], secret)
    theirs, nothing = hashlib.sha256(secret).hexdigest(), "0" * 64
    body = {"type": "3", "object_key": theirs, "filename": "reponse.pdf"}
    refused = assert_problem(a["admin"].post("/interop/connectors/tdt/prefecture/L1/reply", json=body), 422)
    unknown = assert_problem(
        a["admin"].post("/interop/connectors/tdt/prefecture/L1/reply", json=body | {"object_key": nothing}), 422
    )
    assert refused["detail"] == _absent(theirs) and unknown["detail"] == _absent(nothing)
    assert sim.state.replies == []  # nothing reached the TdT


@pytest.mark.integration
def test_a_flow_refuses_another_collectivites_document_on_postgresql(
    own_postgres_url: str, use_env: Callable[..., None], make_kit: Callable[..., Kit]
) -> None:
    use_env(SOCLE_DATABASE_URL=own_postgres_url)
    upgrade_all()
    _refuses_the_other_collectivites_document(make_kit)


def test_a_flow_is_never_given_an_archive_package(make_kit: Callable[..., Kit]) -> None:
    """A SEDA package holds whole documents, of folders the agent may not read: its key (shown with the transfer)
    never makes a flow send it elsewhere; only the archive service sends it, to the SAE."""
    kit = make_kit(with_identity=False)
    kit["admin"].post("/interop/connectors", json={"name": "depot", "kind": "depot", "config": {"path": "h"}})
    package = get_store().put(io.BytesIO(f"PK paquet {uuid.uuid4()}".encode()))
    with transaction() as session:
        record_held(session, kit.tenant_id, package.key, holder="archive")
    refused = assert_problem(kit["agent"].post("/interop/flows", json=_depot(package.key, "paquet.zip")), 422)
    assert refused["detail"] == _absent(package.key)
    assert _flows_and_steps(kit.tenant_id) == (0, 0)
