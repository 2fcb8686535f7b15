"""Cross-cutting security of the web interface: CSRF on every form, tenant confinement, roles, redirects.

These tests walk the routes of the UI app itself, so a page added later is checked without being listed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from fastapi.routing import APIRoute
from parapheur_kit import desk, ok, sent_folder, typology
from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from starlette.routing import compile_path
from ui_kit import anonymous, csrf_of, post_form, sign_in

from socle.db import new_session
from socle.models import User
from socle.ui.web import read_form

from conftest import UI_PASSWORD, Kit, make_pdf, upload_document

MARK = "Zqxw"  # in the name of every object of the first collectivité: must never show to another
_PARAM = re.compile(r"\{([^}:]+)(:[^}]+)?\}")


def ui_app(app: Any) -> Any:
    """The web interface, mounted last at the root of the kit's app."""
    return app.routes[-1].app


def _walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        elif hasattr(route, "original_router"):  # FastAPI ≥ 0.160 keeps included routers as such
            yield from _walk(route.original_router.routes, prefix + route.include_context.prefix)


def ui_routes(app: Any, method: str) -> list[tuple[str, APIRoute]]:
    return sorted((path, route) for path, route in _walk(ui_app(app).routes) if method in route.methods)


def concrete(path: str) -> str:
    """A URL for a route, each path parameter filled with an id that names nothing."""
    return _PARAM.sub(lambda match: "1" if match.group(1) in {"page", "number"} else str(uuid.uuid4()), path)


def _dependencies(dependant: Any) -> set[Any]:
    found: set[Any] = set()
    for sub in dependant.dependencies:
        found |= {sub.call} | _dependencies(sub)
    return found


def test_every_post_route_checks_its_csrf_token_and_origin(app: Any, kit: Kit) -> None:
    posts = ui_routes(app, "POST")
    assert len(posts) > 50  # the walk found the services' pages, not only the kernel's
    without_form = [path for path, route in posts if read_form not in _dependencies(route.dependant)]
    assert without_form == [], "routes POST sans FormDep"
    admin = sign_in(app, kit, "admin")  # signed in with every role: a refusal can only be the CSRF one
    token = csrf_of(admin.get("/").text)
    for path, _route in posts:
        url = concrete(path)
        answer = admin.post(url, data={"nom": "x"})
        assert answer.status_code == 403 and "Formulaire expiré" in answer.text, f"sans jeton : {url}"
        answer = admin.post(url, data={"csrf": token}, headers={"Origin": "https://evil.example"})
        assert answer.status_code == 403 and "Formulaire expiré" in answer.text, f"autre origine : {url}"
    assert admin.get("/").status_code == 200  # still signed in: nothing above was carried out


def test_a_form_from_another_site_or_with_a_strange_token_is_refused_not_a_500(app: Any, kit: Kit) -> None:
    admin = sign_in(app, kit, "admin")
    token = csrf_of(admin.get("/").text)
    for site in ("cross-site", "same-site"):  # another site, or a sibling sub-domain that may set our cookies
        answer = admin.post("/deconnexion", data={"csrf": token}, headers={"Sec-Fetch-Site": site})
        assert answer.status_code == 403 and "Formulaire expiré" in answer.text, site
    for strange in ("é", "\u00e9" * 40, token + "é"):
        answer = admin.post("/deconnexion", data={"csrf": strange})
        assert answer.status_code == 403 and "Formulaire expiré" in answer.text, strange
    visitor = anonymous(app)
    page = visitor.get("/connexion")
    answer = visitor.post("/connexion", data={"csrf": "é", "tenant": kit.slug, "username": "x", "password": "y"})
    assert answer.status_code == 403 and page.status_code == 200
    assert admin.get("/").status_code == 200  # none of them signed the admin out


def test_the_session_cookie_goes_when_the_browser_closes(app: Any, kit: Kit) -> None:
    client = anonymous(app)
    page = client.get("/connexion")
    answer = client.post(
        "/connexion",
        data={"csrf": csrf_of(page.text), "tenant": kit.slug, "username": "agent", "password": UI_PASSWORD},
    )
    assert answer.status_code == 303, answer.text
    session = [value for value in answer.headers.get_list("set-cookie") if value.startswith("__Host-socle_session=")]
    assert len(session) == 1 and "max-age" not in session[0].lower() and "expires" not in session[0].lower()


def test_every_cookie_is_bound_to_this_host_alone(app: Any, kit: Kit) -> None:
    """A sibling sub-domain (another commune's site under the same intercommunal domain) cannot set or overwrite
    the kit's cookies: the browser accepts a ``__Host-`` cookie only Secure, for the path / and without Domain."""
    client = anonymous(app)
    page = client.get("/connexion")
    signed = client.post(
        "/connexion",
        data={"csrf": csrf_of(page.text), "tenant": kit.slug, "username": "agent", "password": UI_PASSWORD},
    )
    chosen = client.post("/langue", data={"csrf": csrf_of(client.get("/").text), "locale": "en", "suivant": "/"})
    assert chosen.status_code == 303, chosen.text
    cookies = [value for answer in (page, signed, chosen) for value in answer.headers.get_list("set-cookie")]
    names = {value.partition("=")[0] for value in cookies}
    assert {"__Host-socle_csrf", "__Host-socle_session", "__Host-socle_appareil", "__Host-socle_langue"} <= names
    for value in cookies:
        attributes = [part.strip().lower() for part in value.split(";")[1:]]
        assert value.startswith("__Host-"), value
        assert "secure" in attributes and "path=/" in attributes, value
        assert not [part for part in attributes if part.startswith("domain=")], value


def _kit_user_id(kit: Kit, username: str) -> str:
    with new_session() as db:
        return str(
            db.execute(select(User.id).where(User.tenant_id == kit.tenant_id, User.username == username)).scalar_one()
        )


def _objects(app: Any, kit: Kit) -> dict[str, tuple[str, str]]:
    """One object of each kind in ``kit``: its page, and who of the kit may open it."""
    api = kit["admin"]
    secretariat = desk(kit, f"Secrétariat {MARK}", ["agent"])
    subtype = typology(kit, [{"kind": "visa", "desk_ids": [secretariat]}], name=f"Arrêté {MARK}")
    folder = sent_folder(kit, subtype, title=f"Arrêté {MARK}")
    document = upload_document(kit["agent"], make_pdf("Note"), title=f"Note {MARK}")
    plan = ok(api.post("/ged/plan", json={"name": f"Urbanisme {MARK}"}), 201)
    hold = ok(kit["archiviste"].post("/ged/holds", json={"name": f"Contentieux {MARK}", "reason": "recours"}), 201)
    ok(api.post("/interop/connectors", json={"name": "sae", "kind": "depot", "config": {"path": "sae"}}), 201)
    ged_type = ok(api.post("/ged/types", json=_destroyed_type()), 201)
    group = ok(api.post("/ged/groups", json={"name": f"Urbanisme {MARK}"}), 201)
    old = upload_document(
        kit["agent"], make_pdf("Bon 2018"), title="Bon 2018", document_type="bon", type="bon", date="2019-01-01"
    )
    archivist = sign_in(app, kit, "archiviste")
    eliminated = post_form(archivist, "/archives/dua", "/archives/dua/eliminer", {"eliminer": [old["id"]]})
    assert eliminated.status_code == 303, eliminated.text
    asked = post_form(
        archivist,
        "/archives/transferts/nouveau",
        "/archives/transferts/nouveau",
        {"archival_agency": "AD037", "seda_version": "2.2", "selection": "documents", "document_ids": document["id"]},
    )
    assert asked.status_code == 303, asked.text
    return {
        "dossier": (f"/dossiers/{folder['id']}", "agent"),
        "document GED": (f"/documents/{document['id']}", "agent"),
        "métadonnées": (f"/documents/{document['id']}/metadonnees", "agent"),
        "plan": (f"/plan/{plan['id']}", "agent"),
        "transfert": (asked.headers["location"], "archiviste"),
        "connecteur": ("/admin/connecteurs/sae", "admin"),
        "utilisateur": (f"/admin/utilisateurs/{_kit_user_id(kit, 'agent')}", "admin"),
        "bureau": (f"/admin/parapheur/bureaux/{secretariat}", "admin"),
        "sous-type": (f"/admin/parapheur/sous-types/{subtype}", "admin"),
        "type GED": (f"/admin/ged/types/{ged_type['id']}", "admin"),
        "groupe": (f"/admin/ged/groupes/{group['id']}", "admin"),
        "droits d'un dossier du plan": (f"/admin/ged/plan/{plan['id']}/droits", "admin"),
        "gel": (f"/gels/{hold['id']}", "archiviste"),
        "élimination": (eliminated.headers["location"], "archiviste"),
    }


def _destroyed_type() -> dict[str, Any]:
    return {
        "code": "bon",
        "name": f"Bon de commande {MARK}",
        "dua_months": 12,
        "dua_event": "document_date",
        "final_action": "destroy",
    }


def test_another_collectivite_s_objects_are_not_found(app: Any, kit: Kit, make_kit: Callable[..., Kit]) -> None:
    objects = _objects(app, kit)
    for kind, (url, username) in objects.items():
        assert sign_in(app, kit, username).get(url).status_code == 200, f"{kind} : {url}"
    other = make_kit(with_identity=False)
    for username in ("admin", "archiviste", "agent"):
        stranger = sign_in(app, other, username)
        for kind, (url, _owner) in objects.items():
            answer = stranger.get(url)
            assert answer.status_code in (403, 404), f"{username} d'une autre collectivité, {kind} : {url}"
            if username == "admin":  # every right in the other collectivité: only the tenant can refuse
                assert answer.status_code == 404, f"{kind} : {url}"
            assert MARK not in answer.text, f"{kind} : {url}"


def _ids(objects: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Path parameter values naming ``objects``, by the prefix of the routes that take them."""
    last = {kind: url.rstrip("/").split("/")[-1] for kind, (url, _owner) in objects.items()}
    return {
        "/dossiers/{folder_id}": last["dossier"],
        "/documents/{document_id}": objects["document GED"][0].split("/")[2],
        "/corbeille/{document_id}": objects["document GED"][0].split("/")[2],
        "/gels/{hold_id}": last["gel"],
        "/admin/ged/plan/{folder_id}": objects["plan"][0].split("/")[2],
        "/admin/ged/types/{type_id}": last["type GED"],
        "/admin/ged/groupes/{group_id}": last["groupe"],
        "/admin/parapheur/sous-types/{subtype_id}": last["sous-type"],
        "/admin/parapheur/bureaux/{desk_id}": last["bureau"],
        "/archives/eliminations/{elimination_id}": last["élimination"],
        "/archives/transferts/{transfer_id}": last["transfert"],
        "/admin/connecteurs/{name}": last["connecteur"],
        "/admin/utilisateurs/{user_id}": last["utilisateur"],
    }


def _pages_naming(app: Any, ids: dict[str, str]) -> list[str]:
    """Pages whose query may name an object (a desk, a type, a folder…), each given each object's id."""
    urls = []
    for path, route in ui_routes(app, "GET"):
        if "{" in path or path.startswith("/connexion"):
            continue
        names = [param.alias for param in route.dependant.query_params if param.field_info.annotation is not int]
        urls += [f"{path}?{name}={value}" for name in names for value in sorted(set(ids.values()))]
    return urls


def test_another_collectivite_s_objects_cannot_be_acted_on(app: Any, kit: Kit, make_kit: Callable[..., Kit]) -> None:
    objects = _objects(app, kit)
    ids = _ids(objects)
    stranger = sign_in(app, make_kit(with_identity=False), "admin")
    token = csrf_of(stranger.get("/").text)
    acted = 0
    for path, _route in ui_routes(app, "POST"):
        prefix = next((prefix for prefix in ids if path.startswith(prefix)), None)
        if prefix is None:
            continue
        rest = path[len(prefix) :]
        url = prefix.split("{")[0] + ids[prefix] + concrete(rest)
        assert compile_path(path)[0].match(url), url  # the 404 below is the domain's, not a missed route
        answer = stranger.post(url, data={"csrf": token})
        assert answer.status_code == 404, f"{url} → {answer.status_code}"
        acted += 1
    assert acted > 30
    naming = _pages_naming(app, ids)
    owner = sign_in(app, kit, "admin")
    assert any(MARK in owner.get(url).text for url in naming)  # these pages do name the objects they are given
    for url in naming:
        answer = stranger.get(url)
        assert MARK not in answer.text, f"{url} → {answer.status_code}"
    for kind, (url, username) in objects.items():  # nothing of the first collectivité was touched
        assert sign_in(app, kit, username).get(url).status_code == 200, f"{kind} : {url}"


def _sections(app: Any) -> dict[str, list[str]]:
    """Every page and form of Administration (admin only) and of Archives (archivist)."""
    found: dict[str, list[str]] = {"admin": [], "archiviste": []}
    for method in ("GET", "POST"):
        for path, _route in ui_routes(app, method):
            if path == "/admin" or path.startswith("/admin/"):
                found["admin"].append(f"{method} {path}")
            elif path.split("/")[1] in {"archives", "gels"}:
                found["archiviste"].append(f"{method} {path}")
    return found


def test_administration_needs_an_admin_and_archives_an_archivist(app: Any, kit: Kit) -> None:
    sections = _sections(app)
    assert len(sections["admin"]) > 30 and len(sections["archiviste"]) > 10
    refusals = {"agent": sections["admin"] + sections["archiviste"], "archiviste": sections["admin"]}
    # A type's pages also open to whoever manages that type: an existing type, which nobody manages, is refused
    # (an unknown one is not found, for them as through the API).
    type_id = kit["admin"].post("/ged/types", json={"code": "securite", "name": "Sécurité"}).json()["id"]
    for username, routes in refusals.items():
        client = sign_in(app, kit, username)
        token = csrf_of(client.get("/").text)
        for route in routes:
            method, path = route.split(" ", 1)
            url = concrete(path.replace("{type_id}", type_id))
            answer = client.get(url) if method == "GET" else client.post(url, data={"csrf": token})
            assert answer.status_code == 403, f"{username} : {method} {url} → {answer.status_code}"


# What a page may write while it is only shown: the session's bookkeeping (last seen, flash messages) and the
# proof that a document of a folder was opened (lecture obligatoire, as the API records it too).
_BOOKKEEPING = ("ui_sessions", "parapheur_reads")


def _writes(statements: list[str]) -> list[str]:
    found = []
    for statement in statements:
        words = statement.split(None, 3)
        if words and words[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            table = (words[2] if words[0].upper() != "UPDATE" else words[1]).strip('"')
            if table not in _BOOKKEEPING:
                found.append(statement.split("\n")[0][:120])
    return found


def test_showing_a_page_changes_nothing(app: Any, kit: Kit) -> None:
    objects = _objects(app, kit)
    document = objects["document GED"][0]
    pages = [url for url, _owner in objects.values()] + [f"{document}/versions/1/fichier", f"{document}/texte"]
    pages += [path for path, _route in ui_routes(app, "GET") if "{" not in path and not path.startswith("/connexion")]
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    clients = {username: sign_in(app, kit, username) for username in ("agent", "archiviste", "admin")}
    event.listen(Engine, "before_cursor_execute", record)
    try:
        for client in clients.values():
            for url in pages:
                before = len(statements)
                client.get(url)
                assert _writes(statements[before:]) == [], url
        # The listener does see a write: a form that records something.
        before = len(statements)
        created = post_form(clients["archiviste"], "/gels", "/gels", {"name": "Recours", "reason": "contentieux"})
        assert created.status_code == 303 and _writes(statements[before:])
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert statements  # the listener saw the pages' reads


def test_the_page_after_a_form_is_always_on_this_site(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "agent")
    token = csrf_of(client.get("/").text)
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)"):
        answer = client.post("/langue", data={"csrf": token, "locale": "fr", "suivant": target})
        assert answer.status_code == 303 and answer.headers["location"] == "/", target
    answer = client.post("/langue", data={"csrf": token, "locale": "fr", "suivant": "/documents?q=x"})
    assert answer.headers["location"] == "/documents?q=x"
