"""QA of the archivist's GED → SEDA mapping when saved: what would make every package of the type fail or be
refused is refused at once, in French, naming the element; two archivists never silently overwrite each other."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event
from test_archive_from_ged import Manifest, add_document, make_type, manifest_of, put_mapping, transfer

from archive import mapping
from archive.models import TransferMapping
from archive.seda import NAMESPACES
from socle.auth import Principal
from socle.db import new_session, transaction
from socle.errors import Conflict
from socle.migrating import upgrade_all

from conftest import Kit, assert_problem

URL = "/archive/mappings/arrete"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"appraisal_rule": "]]><x>"}, ["appraisal_rule", "identifiant de règle invalide", "]]><x>"]),
        ({"appraisal_rule": "APP\u202e01"}, ["appraisal_rule", "\\u202e"]),
        ({"access_rule": "A\x00R"}, ["access_rule", "\\x00"]),
        ({"access_rule": "AR 038"}, ["access_rule", "lettres, chiffres"]),
        ({"start_date": "title"}, ["start_date", "« title » n'est pas une date"]),
        ({"end_date": "type_name"}, ["end_date", "n'est pas une date"]),
        ({"access_start": "author"}, ["access_start", "« author »"]),
    ],
)
def test_a_mapping_that_cannot_make_a_valid_package_is_refused_naming_the_element(
    kit: Kit, body: dict[str, Any], words: list[str]
) -> None:
    # No referential: rule ids are not checked against one, but still written as is in every package.
    problem = assert_problem(kit["archiviste"].put(URL, json=body), 422)
    assert problem["detail"].startswith("correspondance invalide : ")
    assert all(word in problem["detail"] for word in words), problem["detail"]
    assert kit["archiviste"].get(URL).json()["default"] is True  # nothing saved


def test_a_blank_rule_is_no_rule_and_a_typed_date_field_is_a_date_source(kit: Kit) -> None:
    saved = put_mapping(kit, "arrete", appraisal_rule="  ", access_rule="", start_date="field:seance")
    assert (saved["appraisal_rule"], saved["access_rule"], saved["start_date"]) == (None, None, "field:seance")


FIELDS = [{"name": "seance", "label": "Séance", "kind": "text"}]


def test_a_typed_value_that_only_starts_like_a_date_fails_the_transfer_naming_it(kit: Kit) -> None:
    make_type(kit, "arrete", fields=FIELDS)
    put_mapping(kit, "arrete", start_date="field:seance", end_date="field:seance")

    bad = add_document(kit, "AR-1", type="arrete", date="2026-02-01", field_values={"seance": "2026-02-01zzz"})
    failed = transfer(kit, document_ids=[bad])
    assert failed["status"] == "error", failed
    assert "start_date" in failed["error"] and "field:seance" in failed["error"] and "2026-02-01zzz" in failed["error"]

    # A date-time is a date: its day.
    good = add_document(kit, "AR-2", type="arrete", date="2026-02-01", field_values={"seance": "2026-03-12T18:30:00"})
    manifest = Manifest(manifest_of(kit, transfer(kit, document_ids=[good])), "2.2")
    unit = manifest.unit_of(good)
    assert manifest.text(unit, "s:Content/s:StartDate") == "2026-03-12"
    assert manifest.ns == {"s": NAMESPACES["2.2"]}


def test_two_archivists_editing_the_same_mapping_do_not_lose_an_update(kit: Kit) -> None:
    archivist, admin = kit["archiviste"], kit["admin"]
    first_read = archivist.get(URL)
    second_read = admin.get(URL)
    assert first_read.headers["ETag"] == second_read.headers["ETag"] == '"default"'

    saved = archivist.put(URL, json={"title": "field:objet"}, headers={"If-Match": first_read.headers["ETag"]})
    assert saved.status_code == 200, saved.text
    assert saved.headers["ETag"] == archivist.get(URL).headers["ETag"] != '"default"'

    # The second one edited the version they read: refused, the first one's mapping stays.
    stale = admin.put(URL, json={"description_level": "File"}, headers={"If-Match": second_read.headers["ETag"]})
    problem = assert_problem(stale, 409)
    assert "« arrete »" in problem["detail"] and "archiviste" in problem["detail"] and "rechargez" in problem["detail"]
    assert archivist.get(URL).json()["title"] == "field:objet"

    # With the version read again, the save goes through; without If-Match, as before, it is not checked.
    again = admin.put(URL, json={"description_level": "File"}, headers={"If-Match": archivist.get(URL).headers["ETag"]})
    assert again.status_code == 200, again.text
    assert archivist.put(URL, json={}).status_code == 200


TENANT = "00000000-0000-0000-0000-00000000a001"
ARCHIVIST = Principal(TENANT, "qa", "Commune QA", "u1", "archiviste", "Alix Bernard", frozenset({"archiviste"}))


@pytest.mark.integration
def test_two_first_saves_at_once_give_a_conflict_not_a_crash(
    own_postgres_url: str, use_env: Callable[..., None]
) -> None:
    """Both archivists find no saved mapping (nothing to lock yet); the other one's row is committed before
    ours is written. On PostgreSQL, the unique key refuses ours: a Conflict in French, not an error 500."""
    use_env(SOCLE_DATABASE_URL=own_postgres_url)
    upgrade_all()
    session = new_session()
    done: list[bool] = []

    def the_other_archivist_commits_first(*_: Any) -> None:
        if done:
            return
        done.append(True)
        with transaction() as other:
            other.add(
                TransferMapping(
                    tenant_id=TENANT, type_code="arrete", mapping={"title": "field:objet"}, updated_by="collegue"
                )
            )

    event.listen(session, "before_flush", the_other_archivist_commits_first)
    try:
        with pytest.raises(Conflict) as raised:
            mapping.set_mapping(session, ARCHIVIST, "arrete", {"title": "title"})
    finally:
        session.close()
    assert "« arrete »" in raised.value.detail and "collegue" in raised.value.detail
    with transaction() as session:
        kept = mapping.get_mapping(session, TENANT, "arrete")
    assert (kept.title, kept.updated_by) == ("field:objet", "collegue")  # theirs stands, nothing half-written
