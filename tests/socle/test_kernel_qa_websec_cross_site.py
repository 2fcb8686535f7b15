"""A page of another site cannot make the APIs act with the credentials a browser keeps by itself.

CMIS answers 401 with a Basic challenge: a user who once typed a token at that prompt has the browser add it
to every request to the kit. A form posted by another site then carried it, and CMIS obeyed.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import Kit, make_pdf, upload_document

BASE_URL = "https://kit.example"


@pytest.fixture
def browser(app: Any) -> Iterator[TestClient]:
    """What a browser sends to the kit: the Basic credentials it keeps, and the headers it adds by itself."""
    client = TestClient(app, base_url=BASE_URL, raise_server_exceptions=False, follow_redirects=False)
    yield client
    client.close()


def _basic(kit: Kit, username: str) -> dict[str, str]:
    pair = f"{username}:{kit.tokens[username]}".encode()
    return {"Authorization": f"Basic {base64.b64encode(pair).decode()}"}


def _delete(browser: TestClient, kit: Kit, document_id: str, headers: dict[str, str]) -> Any:
    return browser.post(
        f"/ged/cmis/{kit.slug}/root",
        data={"cmisaction": "delete", "objectId": document_id},
        headers={**_basic(kit, "agent"), **headers},
    )


@pytest.mark.parametrize(
    "sent_by",
    [
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "https://evil.example"},  # an older browser: Origin only
        {"Sec-Fetch-Site": "cross-site"},  # no Origin (a privacy setting), the fetch metadata says it
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},  # a sandboxed frame of the other site
        {"Origin": "https://intranet.kit.example", "Sec-Fetch-Site": "same-site"},  # a neighbour subdomain
    ],
)
def test_a_form_of_another_site_cannot_delete_through_cmis(
    app: Any, kit: Kit, browser: TestClient, sent_by: dict[str, str]
) -> None:
    document = upload_document(kit["agent"], make_pdf("Arrêté"), title="Arrêté")
    answer = _delete(browser, kit, document["id"], sent_by)
    assert answer.status_code == 403, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "autre site" in answer.json()["detail"]
    assert kit["agent"].get(f"/ged/documents/{document['id']}").status_code == 200  # still there


def test_cmis_clients_and_the_kit_s_own_pages_still_act(app: Any, kit: Kit, browser: TestClient) -> None:
    for sent_by in ({}, {"Origin": BASE_URL, "Sec-Fetch-Site": "same-origin"}):
        document = upload_document(kit["agent"], make_pdf("Note"), title="Note")
        answer = _delete(browser, kit, document["id"], sent_by)
        assert answer.status_code == 200, answer.text
        assert kit["agent"].get(f"/ged/documents/{document['id']}").status_code == 404


def test_reads_and_bearer_tokens_are_not_concerned(app: Any, kit: Kit, browser: TestClient) -> None:
    foreign = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    # A read answers, but another site cannot read the answer (no CORS): nothing to refuse.
    assert browser.get(f"/ged/cmis/{kit.slug}/root", headers={**_basic(kit, "agent"), **foreign}).status_code == 200
    # A browser never adds a Bearer token by itself: a script did, with the token it was given.
    document = upload_document(kit["agent"], make_pdf("Acte"), title="Acte")
    bearer = {"Authorization": f"Bearer {kit.tokens['agent']}", **foreign}
    deleted = browser.post(
        f"/ged/cmis/{kit.slug}/root", data={"cmisaction": "delete", "objectId": document["id"]}, headers=bearer
    )
    assert deleted.status_code == 200, deleted.text
