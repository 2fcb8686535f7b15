"""A flow's object keys are as good as its documents: start_flow can check only that the collectivité holds a key,
not that the user may read the document in the GED or the parapheur. So the keys of a flow's files are shown whole
only to who started it and to administrators; any other agent, archivist or secretariat reads the flow (names,
sizes, states, history) and its deliveries with each key cut to 16 characters, of no use to start another flow.

And the secrétariat des assemblées starts, lists and reads flows like an agent.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from s2low_helpers import S2low, act_request, add_s2low, drive, start

from socle.auth import create_user, issue_token
from socle.db import transaction
from socle.models import Tenant

from conftest import Kit, assert_problem, make_pdf, run_jobs, upload_document

# A whole object key anywhere in an answer (a cut one is 16 characters and « … »).
WHOLE_KEY = re.compile(r"[0-9a-fA-F]{64}")


pytestmark = pytest.mark.usefixtures("actes_schemas")


def _cut(key: str) -> str:
    return f"{key[:16]}…"


def _confidential_document(kit: Kit) -> tuple[str, str, bytes]:
    """A PDF in a GED folder only the group « rh » (the agent) may read: (document id, object key, bytes)."""
    admin = kit["admin"]
    folder = admin.post("/ged/plan", json={"name": "Ressources humaines", "parent_id": None})
    assert folder.status_code == 201, folder.text
    group = admin.post("/ged/groups", json={"name": "rh"}).json()
    assert admin.post(f"/ged/groups/{group['id']}/members", json={"username": "agent"}).status_code == 200
    rights = [{"group_id": group["id"], "rights": ["read", "write", "delete"]}]
    assert admin.put(f"/ged/plan/{folder.json()['id']}/permissions", json=rights).status_code == 200
    content = make_pdf(f"Sanction disciplinaire {uuid.uuid4()}")
    document = upload_document(kit["agent"], content, "sanction.pdf", folder_id=folder.json()["id"])
    assert kit["maire"].get(f"/ged/documents/{document['id']}").status_code == 404  # not for the other agent
    return str(document["id"]), hashlib.sha256(content).hexdigest(), content


def _user(kit: Kit, app: Any, username: str, roles: list[str]) -> TestClient:
    with transaction() as session:
        tenant = session.get(Tenant, kit.tenant_id)
        assert tenant is not None
        token = issue_token(session, create_user(session, tenant, username, username.capitalize(), roles), "tests")
    return TestClient(app, headers={"Authorization": f"Bearer {token}"}, raise_server_exceptions=False)


def _listed(client: TestClient, flow_id: str) -> tuple[str, dict[str, Any]]:
    """The answer of GET /interop/flows as text, and the flow in it."""
    response = client.get("/interop/flows")
    assert response.status_code == 200, response.text
    return response.text, next(flow for flow in response.json() if flow["id"] == flow_id)


def test_another_agent_reads_a_flow_and_its_deliveries_without_their_keys(kit: Kit) -> None:
    created = kit["admin"].post("/interop/connectors", json={"name": "depot", "kind": "depot", "config": {"path": "f"}})
    assert created.status_code == 201, created.text
    _, key, content = _confidential_document(kit)
    body = {
        "kind": "depot",
        "connector": "depot",
        "documents": [{"object_key": key, "sha256": key, "filename": "sanction.pdf"}],
        "metadata": {"objet": "Dépôt au centre de gestion"},
    }
    started = kit["agent"].post("/interop/flows", json=body)
    assert started.status_code == 201, started.text
    assert started.json()["documents"][0]["object_key"] == key  # its creator keeps the key
    flow = drive(started.json()["id"])
    assert flow.status == "done" and flow.state == "déposé", flow.error
    shown = kit["agent"].get(f"/interop/flows/{flow.id}")
    assert shown.status_code == 200 and shown.json()["documents"][0]["object_key"] == key

    # The other agent, who may not read the document in the GED, and the archivist: the flow, not the key.
    for reader in ("maire", "archiviste"):
        text, listed = _listed(kit[reader], flow.id)
        assert WHOLE_KEY.search(text) is None, text
        assert listed["documents"] == [{"object_key": _cut(key), "filename": "sanction.pdf", "size": len(content)}]
        assert listed["state"] == "déposé" and listed["status"] == "done" and listed["created_by"] == "user:agent"
        detail = kit[reader].get(f"/interop/flows/{flow.id}")
        assert detail.status_code == 200 and WHOLE_KEY.search(detail.text) is None, detail.text
        assert detail.json()["documents"] == listed["documents"]
        assert [event["to_state"] for event in detail.json()["history"]] == ["nouveau", "déposé"]
        deliveries = kit[reader].get("/interop/deliveries")
        assert deliveries.status_code == 200 and WHOLE_KEY.search(deliveries.text) is None, deliveries.text
        (delivery,) = deliveries.json()
        assert delivery["sha256"] == _cut(key) and delivery["filename"] == "sanction.pdf"
        one = kit[reader].get(f"/interop/deliveries/{delivery['id']}")
        assert one.status_code == 200 and WHOLE_KEY.search(one.text) is None, one.text
        # Nothing left to start a flow with: the cut key is refused like any malformed one.
        again = body | {"documents": [{"object_key": listed["documents"][0]["object_key"], "filename": "x.pdf"}]}
        assert_problem(kit[reader].post("/interop/flows", json=again), 422)

    # Its creator and the administrator: all of it, unchanged.
    for reader in ("agent", "admin"):
        _, listed = _listed(kit[reader], flow.id)
        assert listed["documents"] == [{"object_key": key, "filename": "sanction.pdf", "size": len(content)}]
        (delivery,) = kit[reader].get("/interop/deliveries").json()
        assert delivery["sha256"] == key and kit[reader].get(f"/interop/deliveries/{delivery['id']}").json() == delivery
    assert kit["agent"].get(f"/interop/flows/{flow.id}").json() == kit["admin"].get(f"/interop/flows/{flow.id}").json()


def test_a_ged_send_shows_its_key_to_administrators_only(kit: Kit) -> None:
    """« Envoyer vers » from the GED: interop does not know who asked, the GED shows the key to its readers."""
    created = kit["admin"].post("/interop/connectors", json={"name": "depot", "kind": "depot", "config": {"path": "g"}})
    assert created.status_code == 201, created.text
    document_id, key, _ = _confidential_document(kit)
    asked = kit["agent"].post(f"/ged/documents/{document_id}/deliver", json={"connector": "depot"})
    assert asked.status_code == 202, asked.text
    run_jobs()
    (delivery,) = kit["admin"].get("/interop/deliveries").json()
    assert delivery["status"] == "done" and delivery["sha256"] == key
    for reader in ("agent", "maire", "archiviste"):
        answer = kit[reader].get(f"/interop/deliveries/{delivery['id']}")
        assert answer.status_code == 200 and WHOLE_KEY.search(answer.text) is None, answer.text
        assert answer.json()["sha256"] == _cut(key) and answer.json()["status"] == "done"


def test_the_secretariat_transmits_an_act_and_reads_it_with_its_keys(kit: Kit, sim: S2low, app: Any) -> None:
    add_s2low(kit, sim)
    with _user(kit, app, "greffe", ["secretariat"]) as greffe, _user(kit, app, "elu", []) as no_role:
        response = greffe.post("/interop/flows", json=act_request(kit, "DEL_SEC_1"))
        assert response.status_code == 201, response.text
        flow = drive(response.json()["id"])
        assert flow.status == "done" and flow.state == "classé", flow.error
        package, aracte = flow.data["package_key"], flow.data["aracte_key"]

        # The secretariat lists and reads its flow, keys included; the administrator sees the same.
        _, listed = _listed(greffe, flow.id)
        assert listed["data"]["package_key"] == package and listed["data"]["aracte_key"] == aracte
        mine = greffe.get(f"/interop/flows/{flow.id}").json()
        assert mine == kit["admin"].get(f"/interop/flows/{flow.id}").json()
        assert {event["details"]["sha256"] for event in mine["history"] if "sha256" in (event["details"] or {})} == {
            package,
            aracte,
        }

        # An agent who did not start it: the @ctes package and the ARActe are not theirs to send elsewhere.
        other = kit["maire"].get(f"/interop/flows/{flow.id}")
        assert other.status_code == 200 and WHOLE_KEY.search(other.text) is None, other.text
        theirs = other.json()
        assert theirs["data"]["package_key"] == _cut(package) and theirs["data"]["aracte_key"] == _cut(aracte)
        assert [event["to_state"] for event in theirs["history"]] == [event["to_state"] for event in mine["history"]]
        assert [document["filename"] for document in theirs["documents"]] == ["deliberation.pdf", "annexe-0.pdf"]

        # The secretariat reads another's flow as any agent does: without its keys.
        by_agent = start(kit, act_request(kit, "DEL_SEC_2"))
        seen = greffe.get(f"/interop/flows/{by_agent}")
        assert seen.status_code == 200 and WHOLE_KEY.search(seen.text) is None, seen.text

        # A user with no role at all reads no flow.
        assert_problem(no_role.get("/interop/flows"), 403)
        assert_problem(no_role.get(f"/interop/flows/{flow.id}"), 403)
