"""Review fixes of the GED: a metadata change with a move no longer deadlocks with an upload of the same bytes
(PostgreSQL) nor needs the bytes in the store; a rendition ending after the elimination attaches nothing and
leaves no bytes; renaming a folder under a hidden parent tells nothing of its siblings; the elimination proof
builds its rights clause once; a folder under a hidden one has a CMIS path; a metadata form checks the version
under the document's lock."""

from __future__ import annotations

import io
import re
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cmislib.exceptions import ObjectNotFoundException
from ga_helpers import make_folder, make_type, new_document
from pg_waits import someone_waits_on, someone_waits_on_a_row, wait_until
from sqlalchemy import select
from test_cmis_cmislib import repository, server  # noqa: F401  (server: the fixture cmislib talks to)
from test_renditions_jobs import text_pdf
from ui_kit import csrf_of, sign_in

from ged import access, journal, renditions, retention, service, ui_retention
from ged.models import Document, Version
from ged.schemas import Metadata, MetadataPatch
from socle.auth import Principal
from socle.db import new_session, transaction
from socle.migrating import upgrade_all
from socle.storage import get_store
from socle.storage.ownership import ObjectGone

from conftest import Kit, make_pdf, missing

# ---------------------------------------------------------------------------------------------------------
# 1. update_metadata: object lock before the audit head, none for the bytes the document already has


def _principal(kit: Kit, role: str = "admin") -> Principal:
    return Principal(kit.tenant_id, kit.slug, "Commune", str(uuid.uuid4()), role, role, frozenset({role}))


@pytest.mark.integration
def test_a_move_with_a_title_change_does_not_deadlock_with_an_upload_of_the_same_bytes(
    own_postgres_url: str, use_env: Any, make_kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_env(SOCLE_DATABASE_URL=own_postgres_url)
    upgrade_all()
    kit = make_kit(with_identity=False)
    folder = make_folder(kit, "Voirie")
    document = new_document(kit, text="Arrêté identique", title="Original")
    stored = get_store().put(io.BytesIO(make_pdf("Arrêté identique")))
    assert stored.key == document["current"]["content"]["sha256"]
    errors: dict[str, Exception] = {}
    main, record = threading.get_ident(), journal.record_document

    def move_and_rename() -> None:
        try:
            with new_session() as session:
                patch = MetadataPatch(folder_id=folder["id"], title="Renommé")
                service.update_metadata(session, _principal(kit), document["id"], patch)
        except Exception as exc:  # reported by the assertion below
            errors["update"] = exc

    mover = threading.Thread(target=move_and_rename)

    def upload_holds_the_object_lock(session: Any, tenant_id: str, actor: str, action: str, *args: Any, **kw: Any):
        # The upload holds the object's lock and is about to take the audit head: the edit runs now, whole.
        if threading.get_ident() == main and action == "ged.document.created":
            mover.start()
            wait_until(lambda: not mover.is_alive() or someone_waits_on(stored.key), "the edit ends or waits")
        return record(session, tenant_id, actor, action, *args, **kw)

    monkeypatch.setattr(journal, "record_document", upload_holds_the_object_lock)
    try:
        with new_session() as upload:
            metadata = Metadata(title="Copie", document_type="arrete")
            service.create_document(upload, _principal(kit), stored, "copie.pdf", "application/pdf", metadata)
    except Exception as exc:  # reported by the assertion below
        errors["create"] = exc
    mover.join(timeout=30)
    assert not errors, {name: f"{type(exc).__name__}: {str(exc)[:300]}" for name, exc in errors.items()}
    moved = kit["admin"].get(f"/ged/documents/{document['id']}").json()
    assert (moved["folder_id"], moved["current"]["title"]) == (folder["id"], "Renommé")


def test_a_metadata_edit_works_when_the_bytes_are_missing_from_the_store(kit: Kit) -> None:
    folder = make_folder(kit, "Courrier")
    document = new_document(kit, text=f"perdu {uuid.uuid4()}", title="Acte")
    get_store().delete(document["current"]["content"]["sha256"])  # lost (an old purge race, a restore)
    for patch in ({"title": "Nouveau titre"}, {"tags": ["x"]}, {"folder_id": folder["id"], "title": "Classé"}):
        answer = kit["agent"].patch(f"/ged/documents/{document['id']}", json=patch)
        assert answer.status_code == 200, answer.text
    assert kit["agent"].get(f"/ged/documents/{document['id']}").json()["current_version"] == 4


def test_a_new_content_is_still_checked_in_the_store(kit: Kit) -> None:
    document = new_document(kit, text=f"premier {uuid.uuid4()}")
    stored = get_store().put(io.BytesIO(make_pdf(f"second {uuid.uuid4()}")))
    get_store().delete(stored.key)  # purged between its upload and the version
    with new_session() as session, pytest.raises(ObjectGone):
        service.add_content_version(session, _principal(kit), document["id"], stored, "b.pdf", "application/pdf")


# ---------------------------------------------------------------------------------------------------------
# 2. A rendition that ends after the elimination


def _eliminate(kit: Kit, document_id: str) -> None:
    proposal = kit["archiviste"].post("/ged/eliminations", json={"document_ids": [document_id]})
    assert proposal.status_code == 201, proposal.text
    elimination = proposal.json()["id"]
    assert kit["admin"].post(f"/ged/eliminations/{elimination}/approve").status_code == 200
    done = kit["archiviste"].post(f"/ged/eliminations/{elimination}/execute")
    assert done.status_code == 200, done.text


def _eliminable_document(kit: Kit, content: bytes | None = None) -> dict[str, Any]:
    """A document whose retention has run out, ready to be eliminated; ``content``: a PDF of the test's own."""
    make_type(kit, "bon", dua_months=12, dua_event="document_date", final_action="destroy")
    if content is None:
        return new_document(kit, type="bon", date="2019-05-02", title="Bon de commande", text=f"bon {uuid.uuid4()}")
    data = {"title": "Bon de commande", "document_type": "arrete", "type": "bon", "date": "2019-05-02"}
    answer = kit["agent"].post("/ged/documents", files={"file": ("bon.pdf", content, "application/pdf")}, data=data)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def _put_keys(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys the rendition jobs put in the store."""
    keys: list[str] = []
    put_bytes, put_file = renditions._put_bytes, renditions._put_file

    def remember(put: Callable[[Any], str]) -> Callable[[Any], str]:
        def wrapped(data: Any) -> str:
            keys.append(put(data))
            return keys[-1]

        return wrapped

    monkeypatch.setattr(renditions, "_put_bytes", remember(put_bytes))
    monkeypatch.setattr(renditions, "_put_file", remember(put_file))
    return keys


def _version(document_id: str) -> Version:
    with transaction() as session:
        version = session.execute(select(Version).where(Version.document_id == document_id)).scalar_one()
        session.expunge(version)
        return version


def test_a_preview_ending_after_the_elimination_is_not_attached_and_its_bytes_go(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = _eliminable_document(kit)
    keys, first_page = _put_keys(monkeypatch), renditions._first_page_pngs

    def eliminated_meanwhile(*args: Any, **kwargs: Any) -> Any:
        preview, thumbnail = first_page(*args, **kwargs)  # the tool has read the content; the archivist eliminates
        _eliminate(kit, document["id"])
        # Bytes of this test's own: the test PDFs' blank pages give every document the same preview, which another
        # test's document may still hold (and then rightly keep).
        marker = uuid.uuid4().bytes
        return preview + marker, thumbnail + marker

    monkeypatch.setattr(renditions, "_first_page_pngs", eliminated_meanwhile)
    renditions.make_preview(kit.tenant_id, document["id"], 1)
    version = _version(document["id"])
    assert (version.preview_key, version.thumbnail_key) == (None, None)
    assert len(keys) == 2 and not any(get_store().exists(key) for key in keys)


def test_a_text_ending_after_the_elimination_is_not_attached_and_its_bytes_go(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = f"Bon de commande {uuid.uuid4()}"  # a text of this test's own, which no other document holds
    document = _eliminable_document(kit, text_pdf([marker]))
    keys, read_text = _put_keys(monkeypatch), renditions.pdf_text
    extracted: list[str] = []

    def eliminated_meanwhile(path: Any) -> str:
        extracted.append(read_text(path))  # PDFium has read the text layer; the archivist eliminates
        _eliminate(kit, document["id"])
        return extracted[-1]

    monkeypatch.setattr(renditions, "pdf_text", eliminated_meanwhile)
    renditions.extract_text(kit.tenant_id, document["id"], 1)
    assert len(extracted) == 1 and marker in extracted[0]
    version = _version(document["id"])
    assert (version.text_status, version.text_key) == (renditions.PENDING, None)
    assert len(keys) == 1 and not get_store().exists(keys[0])


def test_a_pdfa_ending_after_the_elimination_is_not_attached_and_its_bytes_go(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("gs") is None:
        missing("Ghostscript absent (paquet Debian ghostscript, installé avec ocrmypdf par « make system-deps »)")
    document = _eliminable_document(kit)
    keys, convert = _put_keys(monkeypatch), renditions.to_pdfa
    made: list[Path] = []

    def eliminated_meanwhile(path: Path, work: Path) -> Path:
        made.append(convert(path, work))  # Ghostscript has made the copy (of a PDF of this test's own: its
        _eliminate(kit, document["id"])  # title is in the copy's metadata); the archivist eliminates
        return made[-1]

    monkeypatch.setattr(renditions, "to_pdfa", eliminated_meanwhile)
    renditions.make_pdfa(kit.tenant_id, document["id"], 1)
    assert len(made) == 1
    assert _version(document["id"]).pdfa_key is None
    assert len(keys) == 1 and not get_store().exists(keys[0])
    # A later run of the job (a retry) finds the document eliminated: no tool, nothing put.
    renditions.make_preview(kit.tenant_id, document["id"], 1)
    assert len(keys) == 1


def test_a_live_document_still_gets_its_preview(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    document = new_document(kit, text=f"vivant {uuid.uuid4()}")
    keys = _put_keys(monkeypatch)
    renditions.make_preview(kit.tenant_id, document["id"], 1)
    version = _version(document["id"])
    assert [version.preview_key, version.thumbnail_key] == keys and all(get_store().exists(key) for key in keys)


def test_a_rendition_named_by_an_eliminated_document_is_not_needed(kit: Kit) -> None:
    document = _eliminable_document(kit)
    _eliminate(kit, document["id"])
    stray = get_store().put(io.BytesIO(f"aperçu attaché trop tard {uuid.uuid4()}".encode())).key
    with transaction() as session:  # what a job ending after the elimination left before the fix
        session.execute(select(Version).where(Version.document_id == document["id"])).scalar_one().preview_key = stray
    with transaction() as session:
        assert not retention.referenced(session, stray)
        assert not retention._needed(session, stray, kit.tenant_id)


# ---------------------------------------------------------------------------------------------------------
# 4. Renaming a folder whose parent the user may not read


def _group(kit: Kit, name: str, *members: str) -> str:
    group = kit["admin"].post("/ged/groups", json={"name": name}).json()
    for member in members:
        added = kit["admin"].post(f"/ged/groups/{group['id']}/members", json={"username": member})
        assert added.status_code == 200, added.text
    return str(group["id"])


def _grant(kit: Kit, folder_id: str, group_id: str, rights: list[str]) -> None:
    granted = kit["admin"].put(f"/ged/plan/{folder_id}/permissions", json=[{"group_id": group_id, "rights": rights}])
    assert granted.status_code == 200, granted.text


def test_renaming_under_a_hidden_parent_tells_nothing_of_its_subfolders(kit: Kit) -> None:
    secret = make_folder(kit, "Direction")
    mine = make_folder(kit, "Mon service", secret["id"])
    make_folder(kit, "Marchés confidentiels", secret["id"])
    _grant(kit, secret["id"], _group(kit, "Direction"), ["read"])
    _grant(kit, mine["id"], _group(kit, "Équipe", "agent"), ["read", "write", "manage"])
    guesses = ("Marchés confidentiels", "Rien de tel")  # a hidden sibling's name, and a free one
    answers = [kit["agent"].patch(f"/ged/plan/{mine['id']}", json={"name": name}) for name in guesses]
    assert [answer.status_code for answer in answers] == [403, 403]
    assert answers[0].json()["detail"] == answers[1].json()["detail"]
    assert "vous n'avez pas accès au dossier qui contient celui-ci" in answers[0].json()["detail"]
    assert kit["agent"].get(f"/ged/plan/{mine['id']}").json()["folder"]["name"] == "Mon service"
    # Its code may change (no name checked), and whoever reads the parent may rename it.
    assert kit["agent"].patch(f"/ged/plan/{mine['id']}", json={"code": "MS"}).status_code == 200
    assert kit["admin"].patch(f"/ged/plan/{mine['id']}", json={"name": "Service"}).status_code == 200


def test_renaming_under_a_readable_parent_still_works(kit: Kit) -> None:
    parent = make_folder(kit, "Urbanisme")
    mine = make_folder(kit, "Permis", parent["id"])
    _grant(kit, mine["id"], _group(kit, "Équipe", "agent"), ["read", "write", "manage"])
    answer = kit["agent"].patch(f"/ged/plan/{mine['id']}", json={"name": "Permis de construire"})
    assert answer.status_code == 200, answer.text


# ---------------------------------------------------------------------------------------------------------
# 7. The elimination proof: the rights clause once, whatever the number of chunks


def test_the_proof_page_builds_the_rights_clause_once(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    documents = [new_document(kit, text=f"preuve {n} {uuid.uuid4()}") for n in range(3)]
    proof = SimpleNamespace(details={"documents": [{"document_id": d["id"]} for d in documents]})
    calls, readable = [], access.readable

    def counted(*args: Any) -> Any:
        calls.append(args)
        return readable(*args)

    monkeypatch.setattr(ui_retention, "PROOF_CHUNK", 1)
    monkeypatch.setattr(access, "readable", counted)
    with transaction() as session:
        shown, hidden = ui_retention._proof_documents(session, _principal(kit, "agent"), proof)  # type: ignore[arg-type]
    assert (len(shown), hidden, len(calls)) == (3, 0, 1)


# ---------------------------------------------------------------------------------------------------------
# 8. cmis:path of a folder under a hidden one


def _hidden_plan(kit: Kit) -> dict[str, str]:
    top = make_folder(kit, "Direction générale confidentielle")
    hr = make_folder(kit, "Ressources humaines", top["id"])
    careers = make_folder(kit, "Carrières", hr["id"])
    _grant(kit, top["id"], _group(kit, "dg", "maire"), ["read", "write", "delete", "manage"])
    _grant(kit, hr["id"], _group(kit, "rh", "agent"), ["read", "write"])
    document = new_document(kit, user="admin", folder_id=hr["id"], title="Tableau des effectifs")
    return {"top": top["id"], "hr": hr["id"], "careers": careers["id"], "document": document["id"]}


def test_cmislib_gets_a_path_for_a_folder_under_a_hidden_one(kit: Kit, server: str) -> None:  # noqa: F811
    ids = _hidden_plan(kit)
    repo = repository(server, kit, "agent")
    hr, careers = repo.getObject(ids["hr"]), repo.getObject(ids["careers"])
    assert hr.getProperties()["cmis:path"] == "/…/Ressources humaines"
    assert careers.getPaths() == ["/…/Ressources humaines/Carrières"]
    # A document's paths are its parents' paths and its segment: cmislib added them to null before.
    assert repo.getObject(ids["document"]).getPaths() == ["/…/Ressources humaines/Tableau des effectifs"]
    with pytest.raises(ObjectNotFoundException):
        repo.getObjectByPath("/…/Ressources humaines")  # a placeholder, never a walk
    admin = repository(server, kit, "admin")
    assert admin.getObject(ids["careers"]).getPaths() == [
        "/Direction générale confidentielle/Ressources humaines/Carrières"
    ]


def test_no_folder_at_the_top_of_the_plan_takes_the_placeholder_name(kit: Kit) -> None:
    refused = kit["admin"].post("/ged/plan", json={"name": "…"})
    assert refused.status_code == 422 and "réservé" in refused.text
    top = make_folder(kit, "Archives")
    assert kit["admin"].patch(f"/ged/plan/{top['id']}", json={"name": " … "}).status_code == 422
    assert make_folder(kit, "…", top["id"])["name"] == "…"  # below the top, a name like any other


# ---------------------------------------------------------------------------------------------------------
# The metadata form checks its version under the document's lock


@pytest.mark.integration
def test_a_save_between_the_form_s_check_and_its_write_waits_for_it(
    own_postgres_url: str, use_env: Any, make_kit: Any, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ged import ui_documents

    use_env(SOCLE_DATABASE_URL=own_postgres_url)
    upgrade_all()
    kit = make_kit(with_identity=False)
    document = new_document(kit, text=f"formulaire {uuid.uuid4()}", title="Arrêté")
    url = f"/documents/{document['id']}/metadonnees"
    client = sign_in(app, kit, "agent")
    opened = client.get(url)
    version = re.search(r'name="version" value="(\d+)"', opened.text)
    assert version and version.group(1) == "1"
    colleague = threading.Thread(
        target=lambda: kit["maire"].patch(f"/ged/documents/{document['id']}", json={"title": "Arrêté n° 12"})
    )
    patch_from = ui_documents._patch_from

    def colleague_saves_now(*args: Any) -> Any:  # after the form's version check, before its write
        colleague.start()
        saves = "the colleague's save ends or waits on the document's row"
        wait_until(lambda: not colleague.is_alive() or someone_waits_on_a_row("ged_documents"), saves, seconds=10)
        return patch_from(*args)

    monkeypatch.setattr(ui_documents, "_patch_from", colleague_saves_now)
    form = {"csrf": csrf_of(opened.text), "type": "", "title": "Arrêté", "document_type": "arrete", "date": ""}
    answer = client.post(url, data={**form, "tags": "voirie", "version": "1"})
    colleague.join(timeout=30)
    assert answer.status_code == 303, answer.text[:500]
    with transaction() as session:
        versions = session.execute(
            select(Version.number, Version.author).where(Version.document_id == document["id"]).order_by(Version.number)
        ).all()
    # The form's save (based on version 1) is version 2; the colleague's, which waited, version 3.
    assert [author for _, author in versions] == ["agent", "agent", "maire"]


def test_a_rendition_is_recorded_only_for_a_document_that_still_has_content(kit: Kit) -> None:
    """A live document has; an eliminated one has not, nor a purged one (absent)."""
    live = new_document(kit, text=f"vivant {uuid.uuid4()}")
    with transaction() as session:
        assert renditions._still_has_content(session, live["id"])
        assert not renditions._still_has_content(session, str(uuid.uuid4()))
        session.get(Document, live["id"]).disposal = service.ELIMINATED  # type: ignore[union-attr]
        session.flush()
        assert not renditions._still_has_content(session, live["id"])
        session.rollback()
