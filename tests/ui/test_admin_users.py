"""Kernel administration pages: the index, the collectivité, user accounts (add, edit, disable, passwords)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from ui_kit import anonymous, csrf_of, post_form, sign_in

from socle.db import new_session, transaction
from socle.models import AuditEntry, Tenant, UiSession, User

from conftest import UI_PASSWORD, Kit

NEW_PASSWORD = "une phrase de passe assez longue"


def _user(kit: Kit, username: str) -> User:
    with new_session() as db:
        user = db.execute(select(User).where(User.tenant_id == kit.tenant_id, User.username == username)).scalar_one()
        db.expunge(user)
        return user


def _audit_actions(kit: Kit) -> list[tuple[str, str]]:
    with new_session() as db:
        rows = db.execute(
            select(AuditEntry.actor, AuditEntry.action).where(AuditEntry.tenant_id == kit.tenant_id)
        ).all()
        return [(row.actor, row.action) for row in rows]


def _signs_in(app: Any, kit: Kit, username: str, password: str) -> bool:
    client = anonymous(app)
    page = client.get("/connexion")
    answer = client.post(
        "/connexion",
        data={"csrf": csrf_of(page.text), "tenant": kit.slug, "username": username, "password": password},
    )
    return answer.status_code == 303


def test_index_links_every_administration_area_and_is_for_admins_only(app: Any, kit: Kit) -> None:
    admin = sign_in(app, kit, "admin")
    page = admin.get("/admin")
    assert page.status_code == 200
    for url in (
        "/admin/collectivite",
        "/admin/utilisateurs",
        "/admin/parapheur/bureaux",
        "/admin/parapheur/delegations",
        "/admin/parapheur/typologies",
        "/admin/ged/types",
        "/admin/ged/groupes",
        "/admin/ged/plan",
        "/admin/connecteurs",
        "/admin/flux",
    ):
        assert f'href="{url}"' in page.text
    assert page.text.count("<h1>") == 1
    home = admin.get("/")
    assert 'href="/admin"' in home.text  # the navigation shows the area to admins
    agent = sign_in(app, kit, "agent")
    assert 'href="/admin"' not in agent.get("/").text
    for url in ("/admin", "/admin/collectivite", "/admin/utilisateurs", "/admin/utilisateurs/nouveau"):
        refused = agent.get(url)
        assert refused.status_code == 403 and "Action non autorisée" in refused.text


def test_collectivite_name_and_siren_are_edited_and_audited(app: Any, kit: Kit) -> None:
    admin = sign_in(app, kit, "admin")
    page = admin.get("/admin/collectivite")
    assert page.status_code == 200 and kit.slug in page.text and 'value="213700000"' in page.text
    answer = post_form(
        admin, "/admin/collectivite", "/admin/collectivite", {"name": "Ville de Tours", "siren": "217 202 618"}
    )
    assert answer.status_code == 303
    with new_session() as db:
        tenant = db.get(Tenant, kit.tenant_id)
        assert tenant is not None and tenant.name == "Ville de Tours" and tenant.siren == "217202618"
    shown = admin.get("/admin/collectivite")
    assert "Collectivité enregistrée." in shown.text and "Ville de Tours" in shown.text
    assert ("user:admin", "tenant.updated") in _audit_actions(kit)


def test_collectivite_errors_are_shown_next_to_the_fields(app: Any, kit: Kit) -> None:
    admin = sign_in(app, kit, "admin")
    answer = post_form(
        admin, "/admin/collectivite", "/admin/collectivite", {"name": "Ville de Tours", "siren": "12345"}
    )
    assert answer.status_code == 422
    assert 'id="siren-erreur"' in answer.text and "9 chiffres" in answer.text
    assert 'value="Ville de Tours"' in answer.text and 'value="12345"' in answer.text  # what was typed is kept
    empty = post_form(admin, "/admin/collectivite", "/admin/collectivite", {"name": " ", "siren": ""})
    assert empty.status_code == 400 and 'id="name-erreur"' in empty.text
    with new_session() as db:
        tenant = db.get(Tenant, kit.tenant_id)
        assert tenant is not None and tenant.name == f"Commune {kit.slug}"  # nothing written


def test_users_list_shows_every_account_with_roles_and_state(app: Any, kit: Kit) -> None:
    admin = sign_in(app, kit, "admin")
    page = admin.get("/admin/utilisateurs")
    assert page.status_code == 200
    for name in ("Camille Martin", "Dominique Dupont", "Alix Bernard", "Sacha Petit"):
        assert name in page.text
    assert "Archiviste" in page.text and "<caption>" in page.text and 'scope="col"' in page.text


def test_admin_adds_a_user_who_then_signs_in(app: Any, kit: Kit) -> None:
    admin = sign_in(app, kit, "admin")
    form = admin.get("/admin/utilisateurs/nouveau")
    assert form.status_code == 200 and 'name="roles"' in form.text
    answer = post_form(
        admin,
        "/admin/utilisateurs/nouveau",
        "/admin/utilisateurs/nouveau",
        {
            "username": "c.durand",
            "display_name": "Claude Durand",
            "email": "claude.durand@commune.test",
            "roles": ["agent", "secretariat"],
            "password": NEW_PASSWORD,
            "password_confirm": NEW_PASSWORD,
        },
    )
    assert answer.status_code == 303, answer.text
    created = _user(kit, "c.durand")
    assert answer.headers["location"] == f"/admin/utilisateurs/{created.id}"
    assert sorted(created.roles) == ["agent", "secretariat"] and created.email == "claude.durand@commune.test"
    page = admin.get(answer.headers["location"])
    assert "Utilisateur « c.durand » ajouté." in page.text and "Claude Durand" in page.text
    assert NEW_PASSWORD not in page.text
    assert _signs_in(app, kit, "c.durand", NEW_PASSWORD)
    assert ("user:admin", "user.created") in _audit_actions(kit)
    assert ("user:admin", "user.password_set") in _audit_actions(kit)


def test_an_oidc_only_account_needs_an_email_and_gets_no_password(app: Any, kit: Kit) -> None:
    admin = sign_in(app, kit, "admin")
    data = {"username": "federe", "display_name": "Dominique Fédéré", "roles": ["agent"]}
    refused = post_form(admin, "/admin/utilisateurs/nouveau", "/admin/utilisateurs/nouveau", data)
    assert refused.status_code == 400 and 'id="email-erreur"' in refused.text
    assert 'value="federe"' in refused.text and 'value="Dominique Fédéré"' in refused.text
    accepted = post_form(
        admin, "/admin/utilisateurs/nouveau", "/admin/utilisateurs/nouveau", data | {"email": "d.federe@commune.test"}
    )
    assert accepted.status_code == 303
    assert _user(kit, "federe").password_hash is None


def test_add_user_errors_are_tied_to_their_fields_and_keep_the_input(app: Any, kit: Kit) -> None:
    admin = sign_in(app, kit, "admin")
    url = "/admin/utilisateurs/nouveau"
    short = post_form(
        admin,
        url,
        url,
        {
            "username": "nouvel",
            "display_name": "Nouvel Agent",
            "email": "nouvel@commune.test",
            "roles": ["archiviste"],
            "password": "court",
            "password_confirm": "autre",
        },
    )
    assert short.status_code == 400
    assert 'id="password-erreur"' in short.text and "12 caractères" in short.text
    assert 'id="password_confirm-erreur"' in short.text
    assert 'value="nouvel@commune.test"' in short.text and 'value="court"' not in short.text  # never a password
    assert 'value="archiviste" checked' in short.text  # the roles ticked stay ticked
    taken = post_form(
        admin, url, url, {"username": "agent", "display_name": "Doublon", "email": "d@commune.test", "roles": ["agent"]}
    )
    assert taken.status_code == 409 and 'id="username-erreur"' in taken.text and "existe déjà" in taken.text
    bad_name = post_form(
        admin, url, url, {"username": "avec espace", "display_name": "X", "email": "x@commune.test", "roles": []}
    )
    assert bad_name.status_code == 422 and 'id="username-erreur"' in bad_name.text
    bad_mail = post_form(admin, url, url, {"username": "x", "display_name": "X", "email": "pas-un-courriel"})
    assert bad_mail.status_code == 422 and 'id="email-erreur"' in bad_mail.text
    with new_session() as db:
        usernames = set(db.execute(select(User.username).where(User.tenant_id == kit.tenant_id)).scalars())
    assert usernames == {"agent", "maire", "archiviste", "admin"}  # nothing half-written


def test_roles_and_profile_are_edited(app: Any, kit: Kit) -> None:
    admin = sign_in(app, kit, "admin")
    target = _user(kit, "agent")
    url = f"/admin/utilisateurs/{target.id}"
    page = admin.get(url)
    assert page.status_code == 200 and 'value="Camille Martin"' in page.text
    answer = post_form(
        admin,
        url,
        url,
        {"display_name": "Camille Martin-Roux", "email": "camille@commune.test", "roles": ["archiviste"]},
    )
    assert answer.status_code == 303
    changed = _user(kit, "agent")
    assert changed.display_name == "Camille Martin-Roux" and changed.roles == ["archiviste"]
    assert "Utilisateur enregistré." in admin.get(url).text
    # The new roles apply at once: the agent's next page already knows them.
    agent = sign_in(app, kit, "agent")
    assert "Camille Martin-Roux" in agent.get("/").text
    assert ("user:admin", "user.updated") in _audit_actions(kit)


def test_the_last_active_administrator_is_kept(app: Any, kit: Kit) -> None:
    admin = sign_in(app, kit, "admin")
    me = _user(kit, "admin")
    url = f"/admin/utilisateurs/{me.id}"
    demoted = post_form(admin, url, url, {"display_name": "Sacha Petit", "email": "", "roles": ["agent"]})
    assert demoted.status_code == 409 and 'id="roles-erreur"' in demoted.text and "administrateur actif" in demoted.text
    disabled = post_form(admin, url, f"{url}/activation", {"active": "0"})
    assert disabled.status_code == 409 and "administrateur actif" in disabled.text
    kept = _user(kit, "admin")
    assert kept.active and kept.roles == ["admin"]


def test_disabling_closes_the_sessions_and_enabling_opens_sign_in_again(app: Any, kit: Kit) -> None:
    agent = sign_in(app, kit, "agent")
    assert agent.get("/").status_code == 200
    admin = sign_in(app, kit, "admin")
    target = _user(kit, "agent")
    url = f"/admin/utilisateurs/{target.id}"
    answer = post_form(admin, url, f"{url}/activation", {"active": "0"})
    assert answer.status_code == 303
    assert "Compte désactivé" in admin.get(url).text
    assert agent.get("/").headers["location"] == "/connexion"  # the open session is gone
    with new_session() as db:
        assert db.execute(select(UiSession).where(UiSession.user_id == target.id)).first() is None
    assert not _signs_in(app, kit, "agent", UI_PASSWORD)
    assert kit["agent"].get("/parapheur/desks").status_code == 401  # the API token no longer works either
    assert "désactivé" in admin.get("/admin/utilisateurs").text
    post_form(admin, url, f"{url}/activation", {"active": "1"})
    assert _user(kit, "agent").active and _signs_in(app, kit, "agent", UI_PASSWORD)
    actions = _audit_actions(kit)
    assert ("user:admin", "user.disabled") in actions and ("user:admin", "user.enabled") in actions


def test_password_reset_and_removal(app: Any, kit: Kit) -> None:
    maire = sign_in(app, kit, "maire")
    admin = sign_in(app, kit, "admin")
    target = _user(kit, "maire")
    url = f"/admin/utilisateurs/{target.id}"
    mismatch = post_form(admin, url, f"{url}/mot-de-passe", {"password": NEW_PASSWORD, "password_confirm": "autre"})
    assert mismatch.status_code == 400 and 'id="password_confirm-erreur"' in mismatch.text
    answer = post_form(admin, url, f"{url}/mot-de-passe", {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert answer.status_code == 303
    assert maire.get("/").status_code == 303  # signed out everywhere
    assert _signs_in(app, kit, "maire", NEW_PASSWORD) and not _signs_in(app, kit, "maire", UI_PASSWORD)
    no_mail = post_form(admin, url, f"{url}/mot-de-passe", {"action": "remove"})
    assert no_mail.status_code == 409 and "courriel" in no_mail.text
    post_form(admin, url, url, {"display_name": "Dominique Dupont", "email": "maire@commune.test", "roles": ["agent"]})
    removed = post_form(admin, url, f"{url}/mot-de-passe", {"action": "remove"})
    assert removed.status_code == 303 and _user(kit, "maire").password_hash is None
    assert ("user:admin", "user.password_removed") in _audit_actions(kit)


def test_another_collectivites_user_is_not_found(app: Any, kit: Kit, make_kit: Callable[..., Kit]) -> None:
    other = make_kit(with_identity=False)
    stranger = _user(other, "agent")
    admin = sign_in(app, kit, "admin")
    url = f"/admin/utilisateurs/{stranger.id}"
    assert admin.get(url).status_code == 404
    answer = post_form(admin, "/admin/utilisateurs", f"{url}/activation", {"active": "0"})
    assert answer.status_code == 404 and "Introuvable" in answer.text
    assert _user(other, "agent").active


def test_a_siren_another_collectivite_has_is_refused(app: Any, kit: Kit, make_kit: Callable[..., Kit]) -> None:
    """ProConnect finds an agent's collectivité by their employer's SIREN: taking another's would receive its
    agents at sign-in."""
    other = make_kit(with_identity=False)
    with transaction() as db:
        tenant = db.get(Tenant, other.tenant_id)
        assert tenant is not None
        tenant.siren = "217202618"
    admin = sign_in(app, kit, "admin")
    answer = post_form(
        admin, "/admin/collectivite", "/admin/collectivite", {"name": "Ville de Tours", "siren": "217 202 618"}
    )
    assert answer.status_code == 409 and "déjà celui d&#39;une autre collectivité" in answer.text
    with new_session() as db:
        mine = db.get(Tenant, kit.tenant_id)
        assert mine is not None and mine.siren == "213700000"
