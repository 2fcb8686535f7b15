"""A user review of the parapheur's administration and wording: the circuit editor, a desk's own delegations,
the role names of a refusal, the bulk results in sentences."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from parapheur_kit import Standard, desk, ok, sent_folder, typology
from ui_kit import csrf_of, post_form, sign_in

from conftest import Kit, run_jobs


def _step_options(html: str) -> list[bool]:
    """For each step of the circuit editor, whether its rule, quorum and metadata are shown unfolded."""
    return [" open" in found for found in re.findall(r'<details class="step-options"( open)?>', html)]


def test_adding_a_step_offers_one_empty_step_not_two(app: Any, kit: Kit) -> None:
    secretariat = desk(kit, "Secrétariat", ["agent"])
    type_id = ok(kit["admin"].post("/parapheur/types", json={"name": "Actes"}), 201)["id"]
    admin = sign_in(app, kit, "admin")
    url = f"/admin/parapheur/typologies/{type_id}/sous-types/nouveau"
    # What a browser sends: the step typed in the spare row, and nothing else.
    typed = {"steps-0-kind": "visa", "steps-0-desks": [secretariat], "steps-0-mode": "all", "steps-0-position": "1"}
    more = post_form(admin, url, url, {"name": "Délibération", "action": "add_step", **typed})
    assert more.status_code == 200
    assert more.text.count("Étape à ajouter (facultative)") == 1
    assert 'name="steps-1-kind"' in more.text and 'name="steps-2-kind"' not in more.text
    # Clicked again with the spare row left empty (sent as it is by the browser): still one empty step.
    again = post_form(
        admin,
        url,
        url,
        {"name": "Délibération", "action": "add_step", **typed, "steps-1-kind": "", "steps-1-mode": "all"},
    )
    assert again.text.count("Étape à ajouter (facultative)") == 1 and 'name="steps-2-kind"' not in again.text


def test_rule_and_quorum_are_folded_for_a_step_of_one_desk(app: Any, kit: Kit) -> None:
    maire = desk(kit, "Maire", ["maire"])
    adjoints = [desk(kit, name, ["agent"]) for name in ("Adjoint 1", "Adjoint 2")]
    subtype_id = typology(
        kit,
        [
            {"kind": "visa", "desk_ids": adjoints, "mode": "any"},
            {"kind": "signature", "desk_ids": [maire]},
        ],
        name="Arrêté",
    )
    page = sign_in(app, kit, "admin").get(f"/admin/parapheur/sous-types/{subtype_id}")
    assert page.status_code == 200
    # Two desks: unfolded; one desk: folded; the spare step: folded.
    assert _step_options(page.text) == [True, False, False]
    assert 'id="steps-1-mode"' in page.text  # folded, still there: the form works without JavaScript


def test_the_due_days_hint_says_it_counts_from_the_sending(app: Any, kit: Kit) -> None:
    type_id = ok(kit["admin"].post("/parapheur/types", json={"name": "Actes"}), 201)["id"]
    page = sign_in(app, kit, "admin").get(f"/admin/parapheur/typologies/{type_id}/sous-types/nouveau")
    assert "Compté à partir de l'envoi du dossier dans le circuit" in unescape(page.text)


def test_the_mayor_sets_and_ends_her_own_delegation(app: Any, kit: Kit) -> None:
    maire = desk(kit, "Maire", ["maire"])
    adjoint = desk(kit, "Adjoint", ["agent"])
    other = desk(kit, "Finances", ["agent"])
    ok(
        kit["admin"].post(
            "/parapheur/delegations",
            json={
                "from_desk_id": other,
                "to_desk_id": adjoint,
                "starts_at": "2026-07-01T08:00:00+02:00",
                "ends_at": "2026-07-02T08:00:00+02:00",
            },
        ),
        201,
    )
    mayor = sign_in(app, kit, "maire")
    for url in ("/bureau/delegations", "/admin/parapheur/delegations"):
        page = mayor.get(url)
        assert page.status_code == 200, url
        # Her own desk only, chosen already; another desk's delegation is not hers to see.
        assert (
            f'<option value="{maire}" selected' in page.text
            and f'<option value="{other}"' not in page.text.split('id="to_desk_id"')[0].split('id="from_desk_id"')[1]
        )
        assert "Aucune délégation pour l'instant." in page.text
    url = "/bureau/delegations"
    fields = {"to_desk_id": adjoint, "starts_at": "2026-12-21T00:00", "ends_at": "2027-01-04T00:00"}
    refused = post_form(mayor, url, url, {"from_desk_id": other, **fields})
    assert refused.status_code == 403 and 'id="from_desk_id-erreur"' in refused.text
    assert "seuls les membres du bureau « Finances »" in unescape(refused.text)
    answer = post_form(mayor, url, url, {"from_desk_id": maire, **fields})
    assert answer.status_code == 303 and answer.headers["location"] == url
    created = [row for row in ok(kit["admin"].get("/parapheur/delegations")) if row["from_desk_id"] == maire]
    assert len(created) == 1 and created[0]["to_desk_id"] == adjoint
    listed = mayor.get(url)
    assert "Délégation enregistrée." in unescape(listed.text) and f"{url}/{created[0]['id']}/suppression" in listed.text
    # The adjoint sees the delegation to his desk, and may not end it: the mayor's desk set it.
    adjoint_page = sign_in(app, kit, "agent").get(url)
    assert adjoint_page.status_code == 200 and "posée par le bureau absent" in adjoint_page.text
    assert f"{created[0]['id']}/suppression" not in adjoint_page.text
    ended = post_form(mayor, url, f"{url}/{created[0]['id']}/suppression", {})
    assert ended.status_code == 303 and ended.headers["location"] == url
    assert [row for row in ok(kit["admin"].get("/parapheur/delegations")) if row["from_desk_id"] == maire] == []


def test_refusals_name_roles_in_words(app: Any, kit: Kit) -> None:
    agent = sign_in(app, kit, "agent")
    page = agent.get("/admin/parapheur/bureaux")
    assert page.status_code == 403
    text = unescape(page.text)
    assert "cette action demande le rôle administrateur" in text and "rôles : admin" not in text
    archives = agent.get("/gels")
    assert archives.status_code == 403
    assert "l'un des rôles : archiviste ou administrateur" in unescape(archives.text)
    # Without a desk, the delegations page says why.
    nobody = sign_in(app, kit, "archiviste").get("/bureau/delegations")
    assert nobody.status_code == 403 and "vous n'êtes membre d'aucun bureau" in unescape(nobody.text)


def test_an_administrator_of_a_collectivite_without_a_desk_is_told_to_create_them(app: Any, kit: Kit) -> None:
    assert ok(kit["admin"].get("/parapheur/desks")) == []
    page = sign_in(app, kit, "admin").get("/admin/parapheur/delegations")
    assert page.status_code == 200, page.text
    text = " ".join(unescape(page.text).split())
    assert 'Il faut au moins deux bureaux pour déléguer. <a href="/admin/parapheur/bureaux">Créer un bureau</a>' in text
    assert "vous n'êtes membre d'aucun bureau" not in text


def test_a_bulk_failure_is_a_sentence_naming_what_the_step_waits_for(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    folder = sent_folder(kit, setup.sign_only, title="Arrêté de voirie")  # waits for the mayor's signature
    mayor = sign_in(app, kit, "maire")
    page = mayor.get("/bureau")
    answer = mayor.post(
        "/bureau/actions-groupees", data={"csrf": csrf_of(page.text), "action": "visa", "dossiers": [folder["id"]]}
    )
    assert answer.status_code == 303, answer.text
    run_jobs()
    result = unescape(mayor.get(answer.headers["location"]).text)
    assert "Échec</span> : l'étape en cours attend une signature, pas un visa" in result
