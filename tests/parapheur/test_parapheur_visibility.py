"""Who sees which folder, within one collectivité: the creator, the desks of the circuit (past, current, future),
their running delegates (for the sous-types covered), the desks asked for an opinion, administrators. Anyone
else is told the folder does not exist (404, the very answer for an unknown id) on every folder route, and
finds nothing in lists, searches and desk boxes. Desk boxes are SQL queries, paged; also run on PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from parapheur_kit import Standard, act, desk, ok, sent_folder, typology, upload_folder
from sqlalchemy import event
from test_parapheur_isolation import _CALLS, _fill

from parapheur.models import Folder
from socle.auth import create_user, get_tenant, issue_token
from socle.db import transaction
from socle.migrating import upgrade_all

from conftest import Kit, assert_problem

NOW = datetime.now(UTC)


def add_user(kit: Kit, app: Any, username: str) -> None:
    """One more agent of the kit's collectivité, with an API client."""
    with transaction() as session:
        user = create_user(session, get_tenant(session, kit.slug), username, username.capitalize(), ["agent"])
        kit.tokens[username] = issue_token(session, user, "tests")
    kit.clients[username] = TestClient(
        app, headers={"Authorization": f"Bearer {kit.tokens[username]}"}, raise_server_exceptions=False
    )


def delegate(kit: Kit, from_desk: str, to_desk: str, start: timedelta, end: timedelta, **fields: Any) -> None:
    window = {"starts_at": (NOW + start).isoformat(), "ends_at": (NOW + end).isoformat()}
    body = {"from_desk_id": from_desk, "to_desk_id": to_desk, **window, **fields}
    ok(kit["admin"].post("/parapheur/delegations", json=body), 201)


class Circle:
    """A folder (visa by « Secrétariat », then signature by « Maire ») and people around it, each kind once.

    agent creates it; second holds « Secrétariat » too; adjoint's desk has a running delegation from « Maire »,
    interim's one limited to another sous-type, ancien's one that has ended; juriste's desk is asked for an
    opinion; dehors holds a desk outside everything; archiviste holds none.
    """

    def __init__(self, kit: Kit, app: Any) -> None:
        for username in ("second", "adjoint", "interim", "ancien", "juriste", "dehors"):
            add_user(kit, app, username)
        self.setup = Standard(kit)
        ok(kit["admin"].post(f"/parapheur/desks/{self.setup.secretariat}/members", json={"username": "second"}))
        self.adjoint = desk(kit, "Adjoint", ["adjoint"])
        interim, ancien = desk(kit, "Intérim", ["interim"]), desk(kit, "Ancien", ["ancien"])
        self.juridique = desk(kit, "Juridique", ["juriste"])
        self.dehors = desk(kit, "Autre service", ["dehors"])
        delegate(kit, self.setup.maire, self.adjoint, timedelta(hours=-1), timedelta(days=1))
        delegate(
            kit, self.setup.maire, interim, timedelta(hours=-1), timedelta(days=1), subtype_ids=[self.setup.sign_only]
        )
        delegate(kit, self.setup.maire, ancien, timedelta(days=-10), timedelta(days=-1))
        self.folder = sent_folder(kit, self.setup.visa_then_sign, title="Subvention au club de boules")
        question = {"desk_id": self.juridique, "question": "Est-ce légal ?"}
        self.opinion = ok(act(kit, "agent", self.folder["id"], "opinions", question), 201)
        self.draft = ok(upload_folder(kit, self.setup.visa_then_sign, title="Brouillon de boules", send=False), 201)


ALLOWED = ("agent", "second", "maire", "adjoint", "juriste", "admin")
OUTSIDERS = ("dehors", "archiviste", "interim", "ancien")


def _listed(kit: Kit, user: str, **params: Any) -> list[str]:
    return [item["id"] for item in ok(kit[user].get("/parapheur/folders", params=params))]


def test_each_allowed_kind_sees_the_folder_and_its_parts(kit: Kit, app: Any) -> None:
    circle = Circle(kit, app)
    folder_id = circle.folder["id"]
    for user in ALLOWED:
        detail = ok(kit[user].get(f"/parapheur/folders/{folder_id}"))
        assert detail["title"] == "Subvention au club de boules", user
        assert [opinion["id"] for opinion in detail["opinions"]] == [circle.opinion["id"]]
        assert ok(kit[user].get(f"/parapheur/folders/{folder_id}/history"))
        assert kit[user].get(f"/parapheur/folders/{folder_id}/document").content.startswith(b"%PDF")
        assert kit[user].get(f"/parapheur/folders/{folder_id}/bordereau").content.startswith(b"%PDF")
        assert folder_id in _listed(kit, user), user
        assert _listed(kit, user, q="boules", status="in_progress") == [folder_id], user
    # The asked desk answers; the past step's other member still sees the folder once it moved on.
    ok(
        kit["juriste"].post(
            f"/parapheur/folders/{folder_id}/opinions/{circle.opinion['id']}/answer", json={"answer": "Oui"}
        )
    )
    ok(act(kit, "agent", folder_id, "visa"))
    assert ok(kit["second"].get(f"/parapheur/folders/{folder_id}"))["current_step"] == 1
    # The running delegate acts for « Maire ».
    assert (
        ok(kit["adjoint"].get(f"/parapheur/desks/{circle.adjoint}/folders", params={"box": "delegated"}))[0]["id"]
        == folder_id
    )


def test_anyone_else_of_the_tenant_is_told_the_folder_does_not_exist(kit: Kit, app: Any) -> None:
    circle = Circle(kit, app)
    folder = circle.folder
    ids = {
        "folder_id": folder["id"],
        "document_id": folder["documents"][0]["id"],
        "desk_id": circle.juridique,
        "opinion_id": circle.opinion["id"],
    }
    unknown = {key: str(uuid.uuid4()) for key in ids}
    before = ok(kit["agent"].get(f"/parapheur/folders/{folder['id']}"))
    folder_routes = {key: call for key, call in _CALLS.items() if key[1].startswith("/folders/{folder_id}")}
    assert len(folder_routes) >= 20  # every folder route of the isolation test: detail, acts, documents, signing…
    for user in OUTSIDERS:
        for (method, path), call in folder_routes.items():
            answers = []
            for names in (ids, unknown):
                kwargs = {key: _fill(value, names) for key, value in call.items()}
                response = kit[user].request(method.upper(), "/parapheur" + path.format(**names), **kwargs)
                detail = str(response.json().get("detail"))
                for name, value in names.items():
                    detail = detail.replace(value, name)
                answers.append((response.status_code, detail))
                assert_problem(response, 404)
            assert answers[0] == answers[1], (user, method, path, answers)
        # Lists, searches and filters find nothing either.
        assert _listed(kit, user) == [], user
        for params in ({"q": "boules"}, {"status": "in_progress"}, {"subtype_id": circle.setup.visa_then_sign}):
            assert _listed(kit, user, **params) == [], (user, params)
    for box in ("to_act", "in_progress", "late", "delegated"):
        assert ok(kit["dehors"].get(f"/parapheur/desks/{circle.dehors}/folders", params={"box": box})) == []
    # A bulk visa over a folder one cannot see: the item fails as for an unknown folder, nothing moves.
    bulk = ok(kit["dehors"].post("/parapheur/folders/bulk", json={"action": "visa", "folder_ids": [folder["id"]]}), 202)
    from conftest import run_jobs

    run_jobs()
    (item,) = ok(kit["dehors"].get(f"/parapheur/bulk/{bulk['id']}"))["items"]
    assert item["status"] == "failed" and item["error"] == f"dossier {folder['id']} introuvable"
    after = ok(kit["agent"].get(f"/parapheur/folders/{folder['id']}"))
    assert after == before


def test_a_draft_is_its_creators_until_sent(kit: Kit, app: Any) -> None:
    circle = Circle(kit, app)
    draft_id = circle.draft["id"]
    for user in ("maire", "second", "adjoint", "dehors"):
        assert_problem(kit[user].get(f"/parapheur/folders/{draft_id}"), 404)
        assert draft_id not in _listed(kit, user), user
    assert draft_id in _listed(kit, "agent") and draft_id in _listed(kit, "admin")
    ok(kit["agent"].post(f"/parapheur/folders/{draft_id}/send"))
    assert ok(kit["maire"].get(f"/parapheur/folders/{draft_id}"))["status"] == "in_progress"
    assert draft_id in _listed(kit, "second")


def test_a_delegation_shows_only_the_subtypes_it_covers(kit: Kit, app: Any) -> None:
    circle = Circle(kit, app)
    covered = sent_folder(kit, circle.setup.sign_only, title="Arrêté couvert")
    assert _listed(kit, "interim") == [covered["id"]]
    assert ok(kit["interim"].get(f"/parapheur/folders/{covered['id']}"))["title"] == "Arrêté couvert"
    assert_problem(kit["interim"].get(f"/parapheur/folders/{circle.folder['id']}"), 404)


def test_a_desk_that_transferred_its_step_still_sees_the_folder(kit: Kit, app: Any) -> None:
    circle = Circle(kit, app)
    folder_id = circle.folder["id"]
    assert_problem(kit["dehors"].get(f"/parapheur/folders/{folder_id}"), 404)
    moved = ok(act(kit, "second", folder_id, "transfer", {"desk_id": circle.dehors}))
    assert circle.setup.secretariat not in moved["steps"][0]["desk_ids"]
    assert ok(kit["dehors"].get(f"/parapheur/folders/{folder_id}"))["id"] == folder_id  # now on the circuit
    assert ok(kit["second"].get(f"/parapheur/folders/{folder_id}"))["id"] == folder_id  # acted on it: still shown
    assert _listed(kit, "second", q="club") == [folder_id]


def test_desk_boxes_are_paged_sql_queries(kit: Kit) -> None:
    setup = Standard(kit)
    maire_visa = typology(kit, [{"kind": "visa", "desk_ids": [setup.maire, setup.secretariat]}], name="Visa commun")
    made = [sent_folder(kit, maire_visa, title=f"Dossier {index}") for index in range(5)]
    newest_first = [folder["id"] for folder in reversed(made)]

    def box(name: str, user: str = "agent", desk_id: str | None = None, **page: int) -> list[str]:
        params = {"box": name, **page}
        url = f"/parapheur/desks/{desk_id or setup.secretariat}/folders"
        return [item["id"] for item in ok(kit[user].get(url, params=params))]

    assert box("to_act") == newest_first
    assert box("to_act", limit=2) == newest_first[:2]
    assert box("to_act", limit=2, offset=2) == newest_first[2:4]
    assert box("to_act", limit=2, offset=4) == newest_first[4:]
    # The secretariat visas one: it leaves the secretariat's to_act for its in_progress, the maire still waits.
    ok(act(kit, "agent", made[0]["id"], "visa"))
    assert made[0]["id"] not in box("to_act") and box("in_progress") == [made[0]["id"]]
    assert made[0]["id"] in box("to_act", "maire", setup.maire)
    # Taken back (droit de remords): an undone act does not count, the folder waits for the desk again.
    ok(act(kit, "agent", made[0]["id"], "undo"))
    assert made[0]["id"] in box("to_act") and box("in_progress") == []
    assert_problem(kit["agent"].get(f"/parapheur/desks/{setup.secretariat}/folders", params={"box": "x"}), 422)
    # Only the page is loaded from the database, not every folder in progress.
    loaded: list[str] = []

    def count(target: Folder, _context: Any) -> None:
        loaded.append(target.id)

    event.listen(Folder, "load", count)
    try:
        assert len(box("to_act", "maire", setup.maire, limit=2)) == 2
        assert len(_listed(kit, "maire", limit=2)) == 2
    finally:
        event.remove(Folder, "load", count)
    assert len(loaded) == 4


@pytest.mark.integration
def test_visibility_and_boxes_on_postgres(
    postgres_url: str, use_env: Callable[..., None], make_kit: Callable[..., Kit], app: Any
) -> None:
    use_env(SOCLE_DATABASE_URL=postgres_url)
    upgrade_all()
    kit = make_kit(with_identity=False)
    circle = Circle(kit, app)
    folder_id = circle.folder["id"]
    for user in ALLOWED:
        assert _listed(kit, user, q="club") == [folder_id], user
    for user in OUTSIDERS:
        assert _listed(kit, user) == [], user
        assert_problem(kit[user].get(f"/parapheur/folders/{folder_id}"), 404)
    setup = circle.setup
    assert [f["id"] for f in ok(kit["agent"].get(f"/parapheur/desks/{setup.secretariat}/folders"))] == [folder_id]
    ok(act(kit, "agent", folder_id, "visa"))
    boxes = {
        box: [
            f["id"] for f in ok(kit["adjoint"].get(f"/parapheur/desks/{circle.adjoint}/folders", params={"box": box}))
        ]
        for box in ("to_act", "delegated")
    }
    assert boxes == {"to_act": [], "delegated": [folder_id]}
    in_progress = ok(kit["agent"].get(f"/parapheur/desks/{setup.secretariat}/folders", params={"box": "in_progress"}))
    assert [f["id"] for f in in_progress] == [folder_id]
