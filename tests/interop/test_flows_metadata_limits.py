"""A flow's metadata are free JSON, bounded by the kernel (socle.jsonvalues). Before, 256 to 990 levels of nesting
were saved, then no answer could hold them (« Maximum serialization depth exceeded »): the request got a 500 and
the list of flows too, for good; NaN was stored. Now they are refused with a French 422 and nothing is written."""

from __future__ import annotations

import json

import pytest
from s2low_helpers import start, store

from socle.jsonvalues import MAX_BYTES, MAX_DEPTH

from conftest import Kit, assert_problem, make_pdf

JSON = {"content-type": "application/json"}


def _flow(kit: Kit, metadata: str) -> bytes:
    """A « dépôt » flow's request, its metadata written as given (NaN included)."""
    documents = [{"object_key": store(make_pdf("Arrêté"), kit).key, "filename": "arrete.pdf"}]
    fields = json.dumps({"kind": "depot", "connector": "depot", "documents": documents})
    return (fields[:-1] + f', "metadata": {metadata}}}').encode()


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        pytest.param('{"n":' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1), "trop d'imbrication", id="11-deep"),
        pytest.param('{"n":' * 500 + "1" + "}" * 500, "trop d'imbrication", id="500-deep"),
        pytest.param('{"objet": "Dépôt", "montant": NaN}', "nombre fini", id="nan"),
        pytest.param('{"archive": {"comment": Infinity}}', "nombre fini", id="infinity"),
        pytest.param(json.dumps({"objet": "x" * MAX_BYTES}), "trop volumineux", id="too-big"),
        pytest.param('{"objet": "D\\u00e9p\\u00f4t\\u0007"}', "caractère de contrôle", id="control"),
    ],
)
def test_unbounded_flow_metadata_are_refused_and_nothing_is_written(kit: Kit, metadata: str, reason: str) -> None:
    created = kit["admin"].post("/interop/connectors", json={"name": "depot", "kind": "depot", "config": {}})
    assert created.status_code == 201, created.text
    agent = kit["agent"]
    problem = assert_problem(agent.post("/interop/flows", content=_flow(kit, metadata), headers=JSON), 422)
    assert problem["errors"][0]["field"] == "body.metadata", problem
    assert reason in problem["detail"] and problem["detail"].startswith("body.metadata : "), problem["detail"]
    listed = agent.get("/interop/flows")
    assert listed.status_code == 200 and listed.json() == []  # before: 500 for good once such a flow was saved
    # Metadata within the bounds still start a flow.
    assert start(kit, json.loads(_flow(kit, '{"objet": "Dépôt", "archive": {"comment": "ok", "n": [1.5]}}')))
