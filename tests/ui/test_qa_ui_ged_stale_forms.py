"""QA of the GED forms as a secretary meets them: a metadata form opened on a stale page (a colleague saved a
new version meanwhile) must not silently undo that colleague's changes; a double click on « Mettre à la
corbeille » is not a « not found » page; a file too large is refused with the size the hint gives."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ui_kit import csrf_of, sign_in

from conftest import Kit, make_pdf


def _document(kit: Kit) -> dict[str, Any]:
    files = {"file": ("acte.pdf", make_pdf("Arrêté"), "application/pdf")}
    form = {"title": "Arrêté de voirie", "document_type": "arrete", "date": "2026-03-12"}
    response = kit["agent"].post("/ged/documents", files=files, data=form)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_a_stale_metadata_form_keeps_the_colleague_s_change(app: Any, kit: Kit) -> None:
    document = _document(kit)
    url = f"/documents/{document['id']}/metadonnees"
    client = sign_in(app, kit, "agent")
    opened = client.get(url)
    assert opened.status_code == 200
    token = csrf_of(opened.text)

    # Meanwhile a colleague corrects the title (version 2).
    changed = kit["agent"].patch(f"/ged/documents/{document['id']}", json={"title": "Arrêté de voirie n° 12"})
    assert changed.status_code == 200, changed.text

    # The first form is sent as it was opened, with only the keywords added.
    sent = {
        "csrf": token,
        "type": "",
        "title": "Arrêté de voirie",
        "document_type": "arrete",
        "date": "2026-03-12",
        "tags": "voirie",
    }
    version = re.search(r'name="version" value="(\d+)"', opened.text)
    if version:
        sent["version"] = version.group(1)
    answer = client.post(url, data=sent)
    assert answer.status_code == 409, answer.headers.get("location")
    assert "modifié par quelqu&#39;un d&#39;autre" in answer.text and 'role="alert"' in answer.text
    assert 'value="voirie"' in answer.text  # what was typed is kept
    assert 'name="version" value="2"' in answer.text  # sending again is now a deliberate choice

    current = kit["agent"].get(f"/ged/documents/{document['id']}").json()
    assert current["current_version"] == 2
    assert "n° 12" in str(current)  # the colleague's title is still there


def test_an_up_to_date_metadata_form_still_saves(app: Any, kit: Kit) -> None:
    document = _document(kit)
    url = f"/documents/{document['id']}/metadonnees"
    client = sign_in(app, kit, "agent")
    opened = client.get(url)
    version = re.search(r'name="version" value="(\d+)"', opened.text)
    assert version and version.group(1) == "1"
    sent = {
        "csrf": csrf_of(opened.text),
        "type": "",
        "title": "Arrêté de voirie",
        "document_type": "arrete",
        "date": "2026-03-12",
        "tags": "voirie",
        "version": "1",
    }
    answer = client.post(url, data=sent)
    assert answer.status_code == 303, answer.text[:500]


def test_trashing_twice_says_it_is_already_in_the_trash(app: Any, kit: Kit) -> None:
    document = _document(kit)
    client = sign_in(app, kit, "agent")
    page = client.get(f"/documents/{document['id']}")
    token = csrf_of(page.text)
    first = client.post(f"/documents/{document['id']}/corbeille", data={"csrf": token})
    assert first.status_code == 303
    client.get(first.headers["location"])  # the first answer's page, with its message
    second = client.post(f"/documents/{document['id']}/corbeille", data={"csrf": token})  # the double click
    assert second.status_code == 303 and second.headers["location"] == "/corbeille"
    trash = client.get("/corbeille")
    assert "« Arrêté de voirie » est déjà à la corbeille." in trash.text
    assert document["id"] not in re.sub(r'(href|action|value)="[^"]*"', "", trash.text)  # no raw identifier shown


def test_a_file_too_large_is_refused_with_a_readable_size(app: Any, kit: Kit, use_env: Callable[..., None]) -> None:
    use_env(SOCLE_MAX_UPLOAD_BYTES=str(3 * 1024))
    big = make_pdf("Plan local d'urbanisme", pages=3) + b"%" * 4096
    client = sign_in(app, kit, "agent")
    form = client.get("/documents/nouveau")
    sent = {"csrf": csrf_of(form.text), "title": "PLU", "document_type": "urbanisme"}
    answer = client.post("/documents/nouveau", data=sent, files={"file": ("plu.pdf", big, "application/pdf")})
    assert answer.status_code == 413
    assert "Fichier trop volumineux : 3\u00a0Kio au plus." in answer.text
    assert "octets" not in answer.text and "3072" not in answer.text  # no raw count of bytes
    assert 'id="file-erreur"' in answer.text and 'value="PLU"' in answer.text

    document = _document(kit)
    page_url = f"/documents/{document['id']}"
    token = csrf_of(client.get(page_url).text)
    version = client.post(
        f"{page_url}/versions", data={"csrf": token}, files={"file": ("plu.pdf", big, "application/pdf")}
    )
    assert version.status_code == 413
    assert "Fichier trop volumineux : 3\u00a0Kio au plus." in version.text and "3072" not in version.text
