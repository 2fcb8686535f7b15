"""Tenant isolation, route by route: another collectivité's ids are unknown (404) and nothing of theirs moves.

The route list is read from the service's OpenAPI document, so a new route with an id in its path must be
added here (the test fails on a route it does not know).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from parapheur_kit import Standard, act, ok, sent_folder

from socle.auth import create_user, get_tenant
from socle.db import transaction

from conftest import Kit, assert_problem, identity_certificate, signing_identity

NOW = datetime.now(UTC)
_B64 = base64.b64encode(b"x").decode()
_PKCS12 = {"files": {"file": ("id.p12", signing_identity()[0], "application/x-pkcs12")}}
_PASSPHRASE = signing_identity()[1].decode()


def _victim(kit: Kit) -> dict[str, str]:
    """A collectivité with one of everything a path can name: desk, delegation, typology, folder, opinion…"""
    setup = Standard(kit)
    delegation = ok(
        kit["admin"].post(
            "/parapheur/delegations",
            json={
                "from_desk_id": setup.maire,
                "to_desk_id": setup.secretariat,
                "starts_at": (NOW + timedelta(days=1)).isoformat(),
                "ends_at": (NOW + timedelta(days=2)).isoformat(),
            },
        ),
        201,
    )
    folder = sent_folder(kit, setup.visa_then_sign)
    opinion = ok(act(kit, "agent", folder["id"], "opinions", {"desk_id": setup.maire, "question": "D'accord ?"}), 201)
    anchor = ok(
        kit["admin"].post(
            "/parapheur/trust-anchors", files={"file": ("ac.der", identity_certificate(), "application/pkix-cert")}
        ),
        201,
    )[0]
    bulk = ok(kit["agent"].post("/parapheur/folders/bulk", json={"action": "visa", "folder_ids": [folder["id"]]}), 202)
    subtype = ok(kit["admin"].get(f"/parapheur/subtypes/{setup.visa_then_sign}"))
    with transaction() as session:  # a user no other collectivité has: a username is only known in its own
        create_user(session, get_tenant(session, kit.slug), "victime", "Victime", ["agent"])
    seal = ok(
        kit["admin"].post(
            "/parapheur/identities/seals", data={"label": "Cachet", "passphrase": _PASSPHRASE}, **_PKCS12
        ),
        201,
    )
    return {
        "desk_id": setup.maire,
        "delegation_id": delegation["id"],
        "type_id": subtype["type_id"],
        "subtype_id": setup.visa_then_sign,
        "folder_id": folder["id"],
        "document_id": folder["documents"][0]["id"],
        "opinion_id": opinion["id"],
        "anchor_id": anchor["id"],
        "operation_id": bulk["id"],
        "username": "victime",
        "identity_id": seal["id"],
    }


# Each route with an id in its path, and a body that would pass validation, so that only the id can fail.
_CALLS: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/folders/{folder_id}"): {},
    ("get", "/folders/{folder_id}/history"): {},
    ("get", "/folders/{folder_id}/document"): {},
    ("get", "/folders/{folder_id}/documents/{document_id}"): {},
    ("post", "/folders/{folder_id}/send"): {"json": {}},
    ("patch", "/folders/{folder_id}/metadata"): {"json": {"metadata": {"objet": "pris"}}},
    ("post", "/folders/{folder_id}/visa"): {"json": {}},
    ("post", "/folders/{folder_id}/sign"): {"json": {}},
    ("post", "/folders/{folder_id}/read"): {"json": {}},
    ("post", "/folders/{folder_id}/reject"): {"json": {"reason": "non"}},
    ("post", "/folders/{folder_id}/undo"): {"json": {}},
    ("post", "/folders/{folder_id}/transfer"): {"json": {"desk_id": "{desk_id}"}},
    ("post", "/folders/{folder_id}/withdraw"): {"json": {}},
    ("post", "/folders/{folder_id}/external-link"): {},
    ("post", "/folders/{folder_id}/ged-filing/retry"): {},
    ("post", "/folders/{folder_id}/annotations"): {"json": {"text": "vu", "public": True}},
    ("post", "/folders/{folder_id}/opinions"): {"json": {"desk_id": "{desk_id}", "question": "?"}},
    ("post", "/folders/{folder_id}/opinions/{opinion_id}/answer"): {"json": {"answer": "oui"}},
    ("get", "/desks/{desk_id}"): {},
    ("patch", "/desks/{desk_id}"): {"json": {"name": "pris"}},
    ("delete", "/desks/{desk_id}"): {},
    ("post", "/desks/{desk_id}/members"): {"json": {"username": "agent"}},
    ("delete", "/desks/{desk_id}/members/{username}"): {},
    ("get", "/desks/{desk_id}/folders"): {},
    ("delete", "/delegations/{delegation_id}"): {},
    ("get", "/types/{type_id}"): {},
    ("patch", "/types/{type_id}"): {"json": {"name": "pris"}},
    ("delete", "/types/{type_id}"): {},
    ("post", "/types/{type_id}/subtypes"): {"json": {"name": "pris", "circuit": []}},
    ("get", "/subtypes/{subtype_id}"): {},
    ("patch", "/subtypes/{subtype_id}"): {"json": {"name": "pris"}},
    ("delete", "/subtypes/{subtype_id}"): {},
    ("delete", "/trust-anchors/{anchor_id}"): {},
    ("post", "/folders/{folder_id}/signature/prepare"): {"json": {"certificate": _B64}},
    ("post", "/folders/{folder_id}/signature/finish"): {"json": {"id": "{opinion_id}", "signature": _B64}},
    ("post", "/folders/{folder_id}/paper-signature"): {"files": {"file": ("scan.pdf", b"%PDF-1.4", "application/pdf")}},
    ("post", "/folders/{folder_id}/copy"): {},
    ("get", "/folders/{folder_id}/documents/{document_id}/signature"): {},
    ("get", "/folders/{folder_id}/documents/{document_id}/original"): {},
    ("get", "/folders/{folder_id}/bordereau"): {},
    ("get", "/bulk/{operation_id}"): {},
    ("post", "/identities/users/{username}"): {**_PKCS12, "data": {"passphrase": _PASSPHRASE}},
    ("delete", "/identities/users/{username}"): {},
    ("delete", "/identities/seals/{identity_id}"): {},
}
# Public routes of external signature: their secret is the credential (tested in test_parapheur_external).
_PUBLIC = {"/external/{secret}", "/external/{secret}/documents/{document_id}", "/external/{secret}/sign"}


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {key: _fill(item, ids) for key, item in value.items()}
    return value


def test_every_route_of_the_parapheur_is_covered_here() -> None:
    from parapheur.api import create_app

    paths = create_app().openapi()["paths"]
    with_ids = {(method, path) for path, operations in paths.items() if "{" in path for method in operations}
    assert {(m, p) for m, p in with_ids if p not in _PUBLIC} == set(_CALLS)


def test_another_tenants_ids_are_unknown_on_every_route(make_kit: Callable[..., Kit]) -> None:
    victim, intruder = make_kit(), make_kit()
    ids = _victim(victim)
    Standard(intruder)  # the intruder has desks and typologies of its own: it is not a matter of empty tables
    before = ok(victim["agent"].get(f"/parapheur/folders/{ids['folder_id']}"))
    unknown = {key: str(uuid.uuid4()) for key in ids} | {"username": "personne"}
    for (method, path), call in _CALLS.items():
        for user in ("admin", "agent", "maire"):
            answers = []
            for names in (ids, unknown):
                kwargs = {key: _fill(value, names) for key, value in call.items()}
                response = intruder[user].request(method.upper(), "/parapheur" + path.format(**names), **kwargs)
                detail = str(response.json().get("detail"))
                for name, value in names.items():
                    detail = detail.replace(value, name)
                answers.append((response.status_code, detail))
            # An administrator is told "not found"; anyone else may be refused first (configuration routes), but
            # never differently from an id that exists nowhere: the answer reveals nothing.
            assert answers[0] == answers[1], (user, method, path, answers)
            assert answers[0][0] == 404 or (user != "admin" and answers[0][0] == 403), (user, method, path, answers)
            assert_problem(response, answers[0][0])
    after = ok(victim["agent"].get(f"/parapheur/folders/{ids['folder_id']}"))
    assert after == before
    assert ok(victim["admin"].get(f"/parapheur/desks/{ids['desk_id']}"))["members"] == ["maire"]


def test_another_tenants_ids_in_a_body_are_refused(make_kit: Callable[..., Kit]) -> None:
    victim, intruder = make_kit(), make_kit()
    ids = _victim(victim)
    mine = Standard(intruder)
    window = {"starts_at": NOW.isoformat(), "ends_at": (NOW + timedelta(days=1)).isoformat()}
    refused = [
        ("post", "/parapheur/delegations", {"from_desk_id": mine.maire, "to_desk_id": ids["desk_id"], **window}),
        ("post", "/parapheur/delegations", {"from_desk_id": ids["desk_id"], "to_desk_id": mine.maire, **window}),
        (
            "post",
            "/parapheur/delegations",
            {"from_desk_id": mine.maire, "to_desk_id": mine.secretariat, "subtype_ids": [ids["subtype_id"]], **window},
        ),
        (
            "post",
            f"/parapheur/types/{ok(intruder['admin'].get(f'/parapheur/subtypes/{mine.sign_only}'))['type_id']}/subtypes",
            {"name": "Volé", "circuit": [{"kind": "visa", "desk_ids": [ids["desk_id"]]}]},
        ),
        (
            "patch",
            f"/parapheur/subtypes/{mine.sign_only}",
            {"creator_desk_ids": [ids["desk_id"]]},
        ),
        ("post", "/parapheur/folders", {"subtype_id": ids["subtype_id"], "title": "x", "ged_document_id": "x"}),
    ]
    for method, path, body in refused:
        response = intruder["admin"].request(method.upper(), path, json=body)
        assert response.status_code in (404, 422), (path, body, response.status_code, response.text)
        assert_problem(response, response.status_code)
    # An act naming another tenant's desk, on one's own folder.
    folder = sent_folder(intruder, mine.visa_then_sign)
    for action, body in (
        ("transfer", {"desk_id": ids["desk_id"]}),
        ("opinions", {"desk_id": ids["desk_id"], "question": "?"}),
        ("visa", {"desk_id": ids["desk_id"]}),
    ):
        response = act(intruder, "agent", folder["id"], action, body)
        assert response.status_code in (403, 404, 409, 422), (action, response.status_code, response.text)
        assert_problem(response, response.status_code)
