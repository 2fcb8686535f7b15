"""Parapheur administration pages: desks and members, delegations, types and sous-types with their circuits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from parapheur_kit import desk, ok, sent_folder, typology
from ui_kit import anonymous, csrf_of, post_form, sign_in

from conftest import Kit


def _desks(kit: Kit) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in ok(kit["admin"].get("/parapheur/desks"))}


def test_desks_page_lists_desks_and_creates_one_with_members(app: Any, kit: Kit) -> None:
    admin = sign_in(app, kit, "admin")
    empty = admin.get("/admin/parapheur/bureaux")
    assert empty.status_code == 200 and "Aucun bureau pour l'instant" in empty.text
    assert "Camille Martin (agent)" in empty.text  # every active account can be ticked as a member
    answer = post_form(
        admin,
        "/admin/parapheur/bureaux",
        "/admin/parapheur/bureaux",
        {"name": "Maire", "stamp_role": "Le Maire", "description": "", "members": ["maire", "agent"]},
    )
    assert answer.status_code == 303
    created = _desks(kit)["Maire"]
    assert created["members"] == ["agent", "maire"] and created["stamp_role"] == "Le Maire"
    listed = admin.get("/admin/parapheur/bureaux")
    assert "Bureau « Maire » créé." in listed.text
    assert f'href="/admin/parapheur/bureaux/{created["id"]}"' in listed.text and "Dominique Dupont" in listed.text


def test_desk_errors_keep_the_input(app: Any, kit: Kit) -> None:
    desk(kit, "Maire", ["maire"])
    admin = sign_in(app, kit, "admin")
    url = "/admin/parapheur/bureaux"
    taken = post_form(admin, url, url, {"name": "Maire", "stamp_role": "Adjoint", "members": ["agent"]})
    assert taken.status_code == 409 and 'id="name-erreur"' in taken.text and "existe déjà" in taken.text
    assert 'value="Adjoint"' in taken.text and 'value="agent" checked' in taken.text
    empty = post_form(admin, url, url, {"name": "", "members": []})
    assert empty.status_code == 400 and 'id="name-erreur"' in empty.text
    assert list(_desks(kit)) == ["Maire"]


def test_desk_is_edited_its_members_replaced_then_deleted(app: Any, kit: Kit) -> None:
    desk_id = desk(kit, "Secrétariat", ["agent"])
    admin = sign_in(app, kit, "admin")
    url = f"/admin/parapheur/bureaux/{desk_id}"
    page = admin.get(url)
    assert page.status_code == 200 and 'value="agent" checked' in page.text
    answer = post_form(
        admin, url, url, {"name": "Secrétariat général", "stamp_role": "", "description": "DGS", "members": ["maire"]}
    )
    assert answer.status_code == 303
    edited = ok(kit["admin"].get(f"/parapheur/desks/{desk_id}"))
    assert edited["name"] == "Secrétariat général" and edited["members"] == ["maire"]
    assert edited["description"] == "DGS" and edited["stamp_role"] is None
    deleted = post_form(admin, url, f"{url}/suppression", {})
    assert deleted.status_code == 303 and deleted.headers["location"] == "/admin/parapheur/bureaux"
    assert "Secrétariat général" not in _desks(kit)


def test_a_desk_in_use_cannot_be_deleted_and_says_why(app: Any, kit: Kit) -> None:
    desk_id = desk(kit, "Maire", ["maire"])
    typology(kit, [{"kind": "signature", "desk_ids": [desk_id]}], name="Arrêté")
    admin = sign_in(app, kit, "admin")
    url = f"/admin/parapheur/bureaux/{desk_id}"
    refused = post_form(admin, url, f"{url}/suppression", {})
    assert refused.status_code == 409 and "Arrêté" in refused.text and 'role="alert"' in refused.text
    assert "Maire" in _desks(kit)


def test_delegations_are_created_listed_and_deleted(app: Any, kit: Kit) -> None:
    maire = desk(kit, "Maire", ["maire"])
    adjoint = desk(kit, "Adjoint", ["agent"])
    subtype_id = typology(kit, [{"kind": "signature", "desk_ids": [maire]}], name="Arrêté")
    admin = sign_in(app, kit, "admin")
    url = "/admin/parapheur/delegations"
    page = admin.get(url)
    assert page.status_code == 200 and "Aucune délégation" in page.text and "Arrêté" in page.text
    answer = post_form(
        admin,
        url,
        url,
        {
            "from_desk_id": maire,
            "to_desk_id": adjoint,
            "starts_at": "2026-07-01T08:00",
            "ends_at": "2026-07-15T18:30",
            "subtype_ids": [subtype_id],
        },
    )
    assert answer.status_code == 303
    (created,) = ok(kit["admin"].get("/parapheur/delegations"))
    assert created["from_desk_id"] == maire and created["to_desk_id"] == adjoint
    assert created["subtype_ids"] == [subtype_id]
    # Typed in Paris time (summer: UTC+2), kept in UTC.
    assert datetime.fromisoformat(created["starts_at"]).astimezone(UTC) == datetime(2026, 7, 1, 6, 0, tzinfo=UTC)
    listed = admin.get(url)
    assert "Délégation enregistrée." in listed.text and "<caption>" in listed.text
    removed = post_form(admin, url, f"{url}/{created['id']}/suppression", {})
    assert removed.status_code == 303 and ok(kit["admin"].get("/parapheur/delegations")) == []


def test_delegation_errors_are_shown_next_to_the_fields(app: Any, kit: Kit) -> None:
    maire = desk(kit, "Maire", ["maire"])
    adjoint = desk(kit, "Adjoint", ["agent"])
    admin = sign_in(app, kit, "admin")
    url = "/admin/parapheur/delegations"
    reversed_range = post_form(
        admin,
        url,
        url,
        {"from_desk_id": maire, "to_desk_id": adjoint, "starts_at": "2026-07-15T08:00", "ends_at": "2026-07-01T08:00"},
    )
    assert reversed_range.status_code == 422 and 'id="ends_at-erreur"' in reversed_range.text
    assert 'value="2026-07-15T08:00"' in reversed_range.text
    itself = post_form(
        admin,
        url,
        url,
        {"from_desk_id": maire, "to_desk_id": maire, "starts_at": "2026-07-01T08:00", "ends_at": "2026-07-02T08:00"},
    )
    assert itself.status_code == 422 and "lui-même" in itself.text
    missing = post_form(
        admin, url, url, {"from_desk_id": "", "to_desk_id": adjoint, "starts_at": "hier", "ends_at": ""}
    )
    assert missing.status_code == 400
    for field in ("from_desk_id", "starts_at", "ends_at"):
        assert f'id="{field}-erreur"' in missing.text
    assert ok(kit["admin"].get("/parapheur/delegations")) == []


def test_a_type_is_created_then_edited(app: Any, kit: Kit) -> None:
    admin = sign_in(app, kit, "admin")
    url = "/admin/parapheur/typologies"
    page = admin.get(url)
    assert page.status_code == 200 and "Aucun type" in page.text
    answer = post_form(
        admin,
        url,
        url,
        {"name": "Actes", "signature_format": "pades", "level": "B-T", "stamp_page": "1", "stamp_x": "", "stamp_y": ""},
    )
    assert answer.status_code == 303
    (created,) = ok(kit["admin"].get("/parapheur/types"))
    assert created["level"] == "B-T" and created["stamp_page"] == 1 and created["stamp_width"] == 200
    assert answer.headers["location"] == f"/admin/parapheur/typologies/{created['id']}"
    type_url = answer.headers["location"]
    edit = post_form(
        admin,
        type_url,
        type_url,
        {
            "name": "Actes réglementaires",
            "signature_format": "pades",
            "level": "B-B",
            "stamp_page": "-1",
            "stamp_x": "300,5",
            "stamp_y": "40",
            "stamp_width": "180",
            "stamp_height": "50",
        },
    )
    assert edit.status_code == 303
    edited = ok(kit["admin"].get(f"/parapheur/types/{created['id']}"))
    assert edited["name"] == "Actes réglementaires" and edited["stamp_x"] == 300.5 and edited["stamp_width"] == 180
    assert "Actes réglementaires" in admin.get(url).text


def test_type_errors_are_tied_to_their_field(app: Any, kit: Kit) -> None:
    admin = sign_in(app, kit, "admin")
    url = "/admin/parapheur/typologies"
    xades = post_form(admin, url, url, {"name": "PES", "signature_format": "xades", "level": "B-LTA"})
    assert xades.status_code == 422 and 'id="level-erreur"' in xades.text and "B-B" in xades.text
    assert 'value="PES"' in xades.text
    half = post_form(admin, url, url, {"name": "Actes", "stamp_x": "10", "stamp_y": ""})
    assert half.status_code == 422 and 'id="stamp_x-erreur"' in half.text
    not_a_number = post_form(admin, url, url, {"name": "Actes", "stamp_page": "dernière"})
    assert not_a_number.status_code == 400 and 'id="stamp_page-erreur"' in not_a_number.text
    assert ok(kit["admin"].get("/parapheur/types")) == []


def test_a_subtype_with_its_circuit_is_built_without_javascript(app: Any, kit: Kit) -> None:
    secretariat = desk(kit, "Secrétariat", ["agent"])
    elus = [desk(kit, name, ["maire"]) for name in ("Maire", "Adjoint 1", "Adjoint 2")]
    type_id = ok(kit["admin"].post("/parapheur/types", json={"name": "Actes"}), 201)["id"]
    admin = sign_in(app, kit, "admin")
    url = f"/admin/parapheur/typologies/{type_id}/sous-types/nouveau"
    page = admin.get(url)
    assert page.status_code == 200 and 'name="steps-0-kind"' in page.text and 'name="steps-1-kind"' not in page.text
    first_step = {
        "steps-0-kind": "visa",
        "steps-0-desks": [secretariat],
        "steps-0-mode": "all",
        "steps-0-position": "1",
    }
    more = post_form(admin, url, url, {"name": "Délibération", "action": "add_step", **first_step})
    assert more.status_code == 200 and 'name="steps-1-kind"' in more.text  # the step typed, then one empty one
    assert 'name="steps-2-kind"' not in more.text
    assert 'value="Délibération"' in more.text
    answer = post_form(
        admin,
        url,
        url,
        {
            "name": "Délibération",
            "action": "save",
            # Typed in the second row but ordered first: « ordre » decides.
            "steps-0-kind": "signature",
            "steps-0-desks": elus,
            "steps-0-mode": "quorum",
            "steps-0-quorum": "2",
            "steps-0-position": "2",
            "steps-1-kind": "visa",
            "steps-1-desks": [secretariat],
            "steps-1-mode": "all",
            "steps-1-metadata": "objet, montant",
            "steps-1-position": "1",
            "steps-2-kind": "",  # the spare step left empty
            "steps-2-position": "3",
            "mandatory_metadata": "objet",
            "creator_desk_ids": [secretariat],
            "reading_required": "1",
            "due_days": "15",
        },
    )
    assert answer.status_code == 303, answer.text
    (created,) = ok(kit["admin"].get("/parapheur/subtypes", params={"type_id": type_id}))
    assert [step["kind"] for step in created["circuit"]] == ["visa", "signature"]
    assert created["circuit"][0]["mandatory_metadata"] == ["objet", "montant"]
    assert created["circuit"][1] | {"desk_ids": sorted(created["circuit"][1]["desk_ids"])} == {
        "kind": "signature",
        "desk_ids": sorted(elus),
        "mode": "quorum",
        "quorum": 2,
        "mandatory_metadata": [],
    }
    assert created["creator_desk_ids"] == [secretariat] and created["reading_required"] and created["due_days"] == 15
    shown = admin.get(answer.headers["location"])
    assert "Sous-type « Délibération » créé." in shown.text and 'value="objet, montant"' in shown.text
    assert "Délibération" in admin.get("/admin/parapheur/typologies").text


def test_circuit_errors_are_shown_next_to_the_faulty_step(app: Any, kit: Kit) -> None:
    maire = desk(kit, "Maire", ["maire"])
    type_id = ok(kit["admin"].post("/parapheur/types", json={"name": "Actes"}), 201)["id"]
    admin = sign_in(app, kit, "admin")
    url = f"/admin/parapheur/typologies/{type_id}/sous-types/nouveau"
    no_desk = post_form(
        admin,
        url,
        url,
        {
            "name": "Arrêté",
            "steps-0-kind": "",
            "steps-1-kind": "visa",
            "steps-1-desks": [maire],
            "steps-2-kind": "signature",
            "steps-2-mode": "all",
        },
    )
    # « étape 2 » of the circuit is the form's third row (the first was left empty).
    assert no_desk.status_code == 422 and 'id="steps-2-desks-erreur"' in no_desk.text
    assert "au moins un bureau" in no_desk.text and 'value="Arrêté"' in no_desk.text
    bad_quorum = post_form(
        admin,
        url,
        url,
        {
            "name": "Arrêté",
            "steps-0-kind": "signature",
            "steps-0-desks": [maire],
            "steps-0-mode": "quorum",
            "steps-0-quorum": "3",
        },
    )
    assert bad_quorum.status_code == 422 and 'id="steps-0-quorum-erreur"' in bad_quorum.text
    empty = post_form(admin, url, url, {"name": "Arrêté", "steps-0-kind": ""})
    assert empty.status_code == 400 and 'id="steps-0-kind-erreur"' in empty.text
    # A step number of 5,000 digits, typed in a hand-made form: no step of the form (int() refused it: a 500).
    numbered = post_form(admin, url, url, {"name": "Arrêté", f"steps-{'9' * 5000}-kind": "visa"})
    assert numbered.status_code == 400 and 'id="steps-0-kind-erreur"' in numbered.text
    seal = post_form(admin, url, url, {"name": "Arrêté", "steps-0-kind": "seal"})
    assert seal.status_code == 422 and 'id="seal_identity_id-erreur"' in seal.text
    assert ok(kit["admin"].get("/parapheur/subtypes")) == []


def test_a_subtype_is_edited_and_deleted_only_while_unused(app: Any, kit: Kit) -> None:
    maire = desk(kit, "Maire", ["maire"])
    desk(kit, "Secrétariat", ["agent"])  # the agent creates the folder from their desk
    subtype_id = typology(kit, [{"kind": "signature", "desk_ids": [maire]}], name="Arrêté")
    admin = sign_in(app, kit, "admin")
    url = f"/admin/parapheur/sous-types/{subtype_id}"
    page = admin.get(url)
    assert page.status_code == 200 and 'value="Arrêté"' in page.text
    assert '<option value="signature" selected>' in page.text
    edit = post_form(
        admin,
        url,
        url,
        {
            "name": "Arrêté du maire",
            "steps-0-kind": "signature",
            "steps-0-desks": [maire],
            "steps-0-mode": "all",
            "due_days": "",
        },
    )
    assert edit.status_code == 303
    assert ok(kit["admin"].get(f"/parapheur/subtypes/{subtype_id}"))["name"] == "Arrêté du maire"
    sent_folder(kit, subtype_id)
    refused = post_form(admin, url, f"{url}/suppression", {})
    assert refused.status_code == 409 and "a des dossiers" in refused.text
    type_id = ok(kit["admin"].get(f"/parapheur/subtypes/{subtype_id}"))["type_id"]
    type_refused = post_form(admin, url, f"/admin/parapheur/typologies/{type_id}/suppression", {})
    assert type_refused.status_code == 409 and "sous-types" in type_refused.text


def test_an_unused_subtype_and_its_type_are_deleted(app: Any, kit: Kit) -> None:
    maire = desk(kit, "Maire", ["maire"])
    subtype_id = typology(kit, [{"kind": "signature", "desk_ids": [maire]}], name="Arrêté")
    type_id = ok(kit["admin"].get(f"/parapheur/subtypes/{subtype_id}"))["type_id"]
    admin = sign_in(app, kit, "admin")
    url = f"/admin/parapheur/sous-types/{subtype_id}"
    removed = post_form(admin, url, f"{url}/suppression", {})
    assert removed.status_code == 303 and removed.headers["location"] == f"/admin/parapheur/typologies/{type_id}"
    type_url = removed.headers["location"]
    assert post_form(admin, type_url, f"{type_url}/suppression", {}).status_code == 303
    assert ok(kit["admin"].get("/parapheur/types")) == []


def test_parapheur_administration_is_for_admins_and_confined_to_the_collectivite(
    app: Any, kit: Kit, make_kit: Callable[..., Kit]
) -> None:
    agent = sign_in(app, kit, "agent")
    for url in ("/admin/parapheur/bureaux", "/admin/parapheur/delegations", "/admin/parapheur/typologies"):
        assert agent.get(url).status_code == 403
    other = make_kit(with_identity=False)
    foreign_desk = desk(other, "Maire", ["maire"])
    foreign_subtype = typology(other, [{"kind": "signature", "desk_ids": [foreign_desk]}], name="Arrêté")
    foreign_type = ok(other["admin"].get(f"/parapheur/subtypes/{foreign_subtype}"))["type_id"]
    admin = sign_in(app, kit, "admin")
    for url in (
        f"/admin/parapheur/bureaux/{foreign_desk}",
        f"/admin/parapheur/typologies/{foreign_type}",
        f"/admin/parapheur/sous-types/{foreign_subtype}",
        f"/admin/parapheur/typologies/{foreign_type}/sous-types/nouveau",
    ):
        assert admin.get(url).status_code == 404, url
    deleted = post_form(admin, "/admin/parapheur/bureaux", f"/admin/parapheur/bureaux/{foreign_desk}/suppression", {})
    assert deleted.status_code == 404
    assert [row["id"] for row in ok(other["admin"].get("/parapheur/desks"))] == [foreign_desk]


def test_the_story_an_administrator_adds_a_user_and_her_desk(app: Any, kit: Kit) -> None:
    admin = sign_in(app, kit, "admin")
    password = "la phrase de passe de Claude"
    added = post_form(
        admin,
        "/admin/utilisateurs/nouveau",
        "/admin/utilisateurs/nouveau",
        {
            "username": "claude",
            "display_name": "Claude Durand",
            "roles": ["agent"],
            "password": password,
            "password_confirm": password,
        },
    )
    assert added.status_code == 303, added.text
    form = admin.get("/admin/parapheur/bureaux")
    assert "Claude Durand (claude)" in form.text  # the new account can be ticked at once
    created = post_form(
        admin,
        "/admin/parapheur/bureaux",
        "/admin/parapheur/bureaux",
        {"name": "Secrétariat général", "stamp_role": "La secrétaire générale", "members": ["claude"]},
    )
    assert created.status_code == 303
    assert _desks(kit)["Secrétariat général"]["members"] == ["claude"]
    claude = anonymous(app)
    page = claude.get("/connexion")
    signed = claude.post(
        "/connexion",
        data={"csrf": csrf_of(page.text), "tenant": kit.slug, "username": "claude", "password": password},
    )
    assert signed.status_code == 303 and "Claude Durand" in claude.get("/").text


def test_administration_pages_speak_english_when_asked(app: Any, kit: Kit) -> None:
    admin = sign_in(app, kit, "admin")
    home = admin.get("/admin")
    admin.post("/langue", data={"csrf": csrf_of(home.text), "locale": "en", "suivant": "/admin"})
    for url, words in (
        ("/admin", "Desks and members"),
        ("/admin/utilisateurs", "Display name"),
        ("/admin/parapheur/bureaux", "Create a desk"),
        ("/admin/parapheur/typologies", "Create a type"),
        ("/admin/connecteurs", "Add a connector"),
        ("/admin/flux", "No flow in error."),
    ):
        page = admin.get(url)
        assert page.status_code == 200 and words in page.text, url
