"""Parapheur configuration through the API: desks and members, delegations, types and sous-types."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from parapheur_kit import Standard, desk, ok, upload_folder
from sqlalchemy import select

from parapheur.identities import import_seal_pkcs12
from socle.auth import get_tenant
from socle.db import transaction
from socle.models import User

from conftest import Kit, assert_problem, signing_identity

NOW = datetime.now(UTC)


def test_desks_are_managed_by_the_admin(kit: Kit) -> None:
    created = ok(
        kit["admin"].post(
            "/parapheur/desks",
            json={"name": "Direction générale", "stamp_role": "DGS", "members": ["agent", "maire"]},
        ),
        201,
    )
    desk_id = created["id"]
    assert created["members"] == ["agent", "maire"] and created["stamp_role"] == "DGS"
    assert_problem(kit["agent"].post("/parapheur/desks", json={"name": "Pirate"}), 403)
    assert_problem(kit["agent"].patch(f"/parapheur/desks/{desk_id}", json={"name": "x"}), 403)
    assert (
        "existe déjà"
        in assert_problem(kit["admin"].post("/parapheur/desks", json={"name": "Direction générale"}), 409)["detail"]
    )

    renamed = ok(kit["admin"].patch(f"/parapheur/desks/{desk_id}", json={"name": "DGS", "members": ["maire"]}))
    assert renamed["name"] == "DGS" and renamed["members"] == ["maire"]
    unchanged = ok(kit["admin"].patch(f"/parapheur/desks/{desk_id}", json={"name": None, "stamp_role": None}))
    assert unchanged["name"] == "DGS" and unchanged["stamp_role"] is None and unchanged["members"] == ["maire"]
    assert ok(kit["admin"].post(f"/parapheur/desks/{desk_id}/members", json={"username": "agent"}))["members"] == [
        "agent",
        "maire",
    ]
    assert ok(kit["admin"].delete(f"/parapheur/desks/{desk_id}/members/maire"))["members"] == ["agent"]
    assert_problem(kit["admin"].delete(f"/parapheur/desks/{desk_id}/members/maire"), 404)
    assert [item["name"] for item in ok(kit["agent"].get("/parapheur/desks"))] == ["DGS"]
    assert ok(kit["agent"].get(f"/parapheur/desks/{desk_id}"))["name"] == "DGS"

    assert kit["admin"].delete(f"/parapheur/desks/{desk_id}").status_code == 204
    assert_problem(kit["agent"].get(f"/parapheur/desks/{desk_id}"), 404)


def test_desk_members_must_be_active_users_of_the_tenant(make_kit: Callable[..., Kit]) -> None:
    kit, other = make_kit(with_identity=False), make_kit(with_identity=False)
    with transaction() as session:
        user = session.execute(
            select(User).where(User.tenant_id == kit.tenant_id, User.username == "archiviste")
        ).scalar_one()
        user.active = False
    for members, name in ((["inconnu"], "inconnu"), (["archiviste"], "archiviste")):
        body = assert_problem(kit["admin"].post("/parapheur/desks", json={"name": "B", "members": members}), 422)
        assert name in body["detail"]
    foreign = desk(other, "Étranger", ["agent"])
    # Another tenant's desk does not exist here, whatever the route.
    assert_problem(kit["admin"].get(f"/parapheur/desks/{foreign}"), 404)
    assert_problem(kit["admin"].patch(f"/parapheur/desks/{foreign}", json={"name": "x"}), 404)
    assert_problem(kit["admin"].post(f"/parapheur/desks/{foreign}/members", json={"username": "agent"}), 404)
    assert_problem(kit["admin"].delete(f"/parapheur/desks/{foreign}"), 404)
    assert_problem(kit["admin"].get(f"/parapheur/desks/{foreign}/folders"), 404)
    assert ok(other["agent"].get(f"/parapheur/desks/{foreign}"))["name"] == "Étranger"


def test_a_desk_in_use_cannot_be_deleted(kit: Kit) -> None:
    setup = Standard(kit)
    body = assert_problem(kit["admin"].delete(f"/parapheur/desks/{setup.maire}"), 409)
    assert "Délibération" in body["detail"] and "Arrêté" in body["detail"]


def delegation(kit: Kit, user: str, from_desk: str, to_desk: str, **fields: object) -> object:
    body = {
        "from_desk_id": from_desk,
        "to_desk_id": to_desk,
        "starts_at": (NOW - timedelta(hours=1)).isoformat(),
        "ends_at": (NOW + timedelta(days=7)).isoformat(),
        **fields,
    }
    return kit[user].post("/parapheur/delegations", json=body)


def test_delegations_by_the_desk_members_or_admin(make_kit: Callable[..., Kit]) -> None:
    kit, other = make_kit(with_identity=False), make_kit(with_identity=False)
    setup = Standard(kit)
    # The maire may delegate the Maire desk; the agent may not, the admin may.
    first = ok(delegation(kit, "maire", setup.maire, setup.secretariat), 201)
    assert first["active"] and first["subtype_ids"] is None and first["created_by"] == "maire"
    assert "Maire" in assert_problem(delegation(kit, "agent", setup.maire, setup.secretariat), 403)["detail"]
    later = {"starts_at": (NOW + timedelta(days=3)).isoformat(), "ends_at": (NOW + timedelta(days=20)).isoformat()}
    second = ok(delegation(kit, "admin", setup.maire, setup.secretariat, subtype_ids=[setup.sign_only], **later), 201)
    assert second["subtype_ids"] == [setup.sign_only] and not second["active"]

    assert "lui-même" in assert_problem(delegation(kit, "maire", setup.maire, setup.maire), 422)["detail"]
    reversed_range = {"starts_at": NOW.isoformat(), "ends_at": (NOW - timedelta(days=1)).isoformat()}
    assert (
        "fin"
        in assert_problem(delegation(kit, "maire", setup.maire, setup.secretariat, **reversed_range), 422)["detail"]
    )
    foreign = Standard(other)
    assert_problem(delegation(kit, "admin", setup.maire, foreign.maire), 404)
    assert_problem(delegation(kit, "admin", setup.maire, setup.secretariat, subtype_ids=[foreign.sign_only]), 404)

    # Overlapping delegations are allowed, and the list says so.
    listed = {item["id"]: item for item in ok(kit["agent"].get("/parapheur/delegations"))}
    assert listed[first["id"]]["overlaps"] == [second["id"]] and listed[second["id"]]["overlaps"] == [first["id"]]
    assert [item["id"] for item in ok(kit["agent"].get("/parapheur/delegations", params={"desk_id": setup.maire}))]
    assert ok(other["agent"].get("/parapheur/delegations")) == []

    assert_problem(kit["agent"].delete(f"/parapheur/delegations/{first['id']}"), 403)
    assert_problem(other["admin"].delete(f"/parapheur/delegations/{first['id']}"), 404)
    assert kit["maire"].delete(f"/parapheur/delegations/{first['id']}").status_code == 204
    assert ok(kit["agent"].get("/parapheur/delegations"))[0]["overlaps"] == []
    # A desk with delegations is not deleted behind them.
    assert_problem(kit["admin"].delete(f"/parapheur/desks/{setup.secretariat}"), 409)


def test_types_validate_format_level_and_stamp(make_kit: Callable[..., Kit]) -> None:
    kit, other = make_kit(with_identity=False), make_kit(with_identity=False)
    created = ok(
        kit["admin"].post(
            "/parapheur/types",
            json={
                "name": "Actes",
                "signature_format": "pades",
                "level": "B-T",
                "stamp_page": 1,
                "stamp_x": 50,
                "stamp_y": 40,
                "stamp_width": 180,
                "stamp_height": 50,
            },
        ),
        201,
    )
    assert created["level"] == "B-T" and created["stamp_x"] == 50
    bad = [
        ({"signature_format": "pdf"}, None),
        ({"level": "B-X"}, None),
        ({"stamp_page": 0}, "page"),
        ({"stamp_x": 10}, "ensemble"),
        ({"stamp_x": -1, "stamp_y": 10}, "positives"),
        ({"stamp_width": 0}, "largeur"),
        # Levels a format cannot reach are refused, not silently lowered at signing time.
        ({"signature_format": "xades", "level": "B-T"}, "XAdES"),
        ({"signature_format": "cades", "level": "B-LT"}, "CAdES"),
    ]
    for fields, expected in bad:
        body = assert_problem(kit["admin"].post("/parapheur/types", json={"name": "Mauvais", **fields}), 422)
        assert expected is None or expected in body["detail"], (fields, body)
    assert_problem(kit["agent"].post("/parapheur/types", json={"name": "Agent"}), 403)
    assert_problem(kit["admin"].post("/parapheur/types", json={"name": "Actes"}), 409)

    still_b_t = kit["admin"].patch(f"/parapheur/types/{created['id']}", json={"signature_format": "xades"})
    assert "B-B" in assert_problem(still_b_t, 422)["detail"]
    to_xades = {"signature_format": "xades", "level": "B-B"}
    changed = ok(kit["admin"].patch(f"/parapheur/types/{created['id']}", json=to_xades))
    assert changed["signature_format"] == "xades" and changed["stamp_page"] == 1
    assert_problem(kit["admin"].patch(f"/parapheur/types/{created['id']}", json={"stamp_height": -5}), 422)
    # A null leaves a required field as it is, and clears an optional one.
    cleared = ok(
        kit["admin"].patch(
            f"/parapheur/types/{created['id']}",
            json={"name": None, "stamp_page": None, "stamp_x": None, "stamp_y": None},
        )
    )
    assert (cleared["name"], cleared["stamp_page"], cleared["stamp_x"]) == ("Actes", 1, None)
    assert [row["name"] for row in ok(kit["agent"].get("/parapheur/types"))] == ["Actes"]
    assert_problem(other["admin"].get(f"/parapheur/types/{created['id']}"), 404)
    assert_problem(other["admin"].patch(f"/parapheur/types/{created['id']}", json={"name": "x"}), 404)
    assert kit["admin"].delete(f"/parapheur/types/{created['id']}").status_code == 204


def test_subtypes_reference_the_tenants_desks_only(make_kit: Callable[..., Kit]) -> None:
    kit, other = make_kit(with_identity=False), make_kit(with_identity=False)
    setup, foreign = Standard(kit), Standard(other)
    type_id = ok(kit["admin"].post("/parapheur/types", json={"name": "Conventions"}), 201)["id"]
    url = f"/parapheur/types/{type_id}/subtypes"
    three = [setup.secretariat, setup.maire, desk(kit, "Juridique", ["archiviste"])]
    created = ok(
        kit["admin"].post(
            url,
            json={
                "name": "Convention",
                "circuit": [
                    {"kind": "visa", "desk_ids": three, "mode": "quorum", "quorum": 2},
                    {"kind": "signature", "desk_ids": [setup.maire], "mandatory_metadata": ["montant"]},
                ],
                "mandatory_metadata": ["objet"],
                "creator_desk_ids": [setup.secretariat],
                "reading_required": True,
                "due_days": 15,
            },
        ),
        201,
    )
    assert created["circuit"][0] == {
        "kind": "visa",
        "desk_ids": three,
        "mode": "quorum",
        "quorum": 2,
        "mandatory_metadata": [],
    }
    assert created["circuit"][1]["mode"] == "all" and created["reading_required"] and created["due_days"] == 15

    def refused(status: int, expected: str, **fields: object) -> None:
        body = {"name": "Mauvais", "circuit": [{"kind": "visa", "desk_ids": [setup.maire]}], **fields}
        problem = assert_problem(kit["admin"].post(url, json=body), status)
        assert expected in problem["detail"], problem

    refused(422, "entre 1 et 2", circuit=[{"kind": "visa", "desk_ids": three[:2], "mode": "quorum", "quorum": 3}])
    refused(422, "au moins une étape", circuit=[])
    refused(422, "type d'étape inconnu", circuit=[{"kind": "tampon", "desk_ids": [setup.maire]}])
    refused(422, "type d'étape inconnu", circuit=[{"kind": ["visa"], "desk_ids": [setup.maire]}])  # was a 500
    refused(422, "mode inconnu", circuit=[{"kind": "visa", "desk_ids": [setup.maire], "mode": ["all"]}])
    refused(422, "desk_ids", circuit=[{"kind": "visa", "desk_ids": [[setup.maire]]}])
    refused(404, foreign.maire, circuit=[{"kind": "visa", "desk_ids": [foreign.maire]}])
    refused(404, foreign.maire, creator_desk_ids=[foreign.maire])
    refused(422, "identité de cachet", circuit=[{"kind": "seal"}])
    refused(404, "cachet", circuit=[{"kind": "seal"}], seal_identity_id="00000000-0000-0000-0000-000000000000")
    refused(422, "due_days", due_days=-1)
    refused(409, "existe déjà", name="Convention")
    assert_problem(kit["agent"].post(url, json={"name": "x", "circuit": [{"kind": "seal"}]}), 403)
    foreign_type = ok(other["admin"].get(f"/parapheur/subtypes/{foreign.sign_only}"))["type_id"]
    valid = {"name": "Ailleurs", "circuit": [{"kind": "visa", "desk_ids": [setup.maire]}]}
    assert_problem(kit["admin"].post(f"/parapheur/types/{foreign_type}/subtypes", json=valid), 404)

    listed = ok(kit["agent"].get("/parapheur/subtypes", params={"type_id": type_id}))
    assert [row["name"] for row in listed] == ["Convention"]
    patched = ok(kit["admin"].patch(f"/parapheur/subtypes/{created['id']}", json={"due_days": 3}))
    assert patched["due_days"] == 3 and patched["circuit"] == created["circuit"]
    nulls = {"name": None, "circuit": None, "mandatory_metadata": None, "due_days": None}
    patched = ok(kit["admin"].patch(f"/parapheur/subtypes/{created['id']}", json=nulls))
    assert patched["due_days"] is None and patched["circuit"] == created["circuit"] and patched["name"] == "Convention"
    assert_problem(
        kit["admin"].patch(f"/parapheur/subtypes/{created['id']}", json={"circuit": [{"kind": "visa"}]}), 422
    )
    assert_problem(other["admin"].get(f"/parapheur/subtypes/{created['id']}"), 404)
    assert_problem(other["admin"].patch(f"/parapheur/subtypes/{created['id']}", json={"due_days": 1}), 404)
    assert_problem(kit["admin"].delete(f"/parapheur/types/{type_id}"), 409)  # it has a sous-type

    # A sous-type with folders stays; one without goes.
    assert ok(upload_folder(kit, setup.sign_only), 201)
    assert_problem(kit["admin"].delete(f"/parapheur/subtypes/{setup.sign_only}"), 409)
    assert kit["admin"].delete(f"/parapheur/subtypes/{created['id']}").status_code == 204
    assert_problem(kit["agent"].get(f"/parapheur/subtypes/{created['id']}"), 404)


def test_subtype_names_the_seal_identity_of_its_tenant(make_kit: Callable[..., Kit]) -> None:
    from parapheur.models import SigningIdentity

    kit = make_kit()
    setup = Standard(kit)
    with transaction() as session:
        user_identity = session.execute(
            select(SigningIdentity.id).where(SigningIdentity.tenant_id == kit.tenant_id)
        ).scalar_one()
    circuit = [{"kind": "visa", "desk_ids": [setup.secretariat]}, {"kind": "seal"}]
    # The maire's own identity is not a seal.
    body = {"name": "Cacheté", "circuit": circuit, "seal_identity_id": user_identity}
    type_id = ok(kit["admin"].get(f"/parapheur/subtypes/{setup.sign_only}"))["type_id"]
    assert_problem(kit["admin"].post(f"/parapheur/types/{type_id}/subtypes", json=body), 404)
    # The tenant's seal is accepted; another tenant's is unknown.
    other = make_kit(with_identity=False)
    seals = {}
    for owner in (kit, other):
        with transaction() as session:
            tenant = get_tenant(session, owner.slug)
            seals[owner.slug] = import_seal_pkcs12(session, tenant, "Cachet de la mairie", *signing_identity()).id
    body["seal_identity_id"] = seals[other.slug]
    assert_problem(kit["admin"].post(f"/parapheur/types/{type_id}/subtypes", json=body), 404)
    body["seal_identity_id"] = seals[kit.slug]
    assert (
        ok(kit["admin"].post(f"/parapheur/types/{type_id}/subtypes", json=body), 201)["seal_identity_id"]
        == (seals[kit.slug])
    )
