"""The services' error messages in the page's language: a user who chose English reads them in English next
to the field and on the error page, while the API keeps the French detail of the problem, byte for byte."""

from __future__ import annotations

import json
import pickle
from typing import Any

from fastapi.testclient import TestClient
from ui_kit import csrf_of, post_form, sign_in

from socle.errors import Conflict, Message, NotFound, message

from conftest import Kit, make_pdf


def in_english(client: TestClient) -> TestClient:
    home = client.get("/")
    assert client.post("/langue", data={"csrf": csrf_of(home.text), "locale": "en", "suivant": "/"}).status_code == 303
    return client


def test_a_message_is_its_french_text_and_keeps_its_template_and_values() -> None:
    detail = message("dossier %(folder_id)s introuvable : « %(name)s » à 100 %%", folder_id="f-1", name="Budget")
    assert detail == "dossier f-1 introuvable : « Budget » à 100 %" and isinstance(detail, str)
    assert (detail.template, detail.values) == (
        "dossier %(folder_id)s introuvable : « %(name)s » à 100 %%",
        {"folder_id": "f-1", "name": "Budget"},
    )
    assert message("taux à 100 %") == "taux à 100 %"  # no value: the template is the text, no escaping
    copy = pickle.loads(pickle.dumps(detail))
    assert isinstance(copy, Message) and copy == detail and copy.values == detail.values
    problem = NotFound(detail).problem()
    assert (problem["title"], problem["detail"]) == ("Introuvable", "dossier f-1 introuvable : « Budget » à 100 %")
    # Kept as JSON (a bulk action's result) and back, a message inside a message included.
    nested = message("étape %(step)s : %(reason)s", step=2, reason=detail)
    back = Message.from_record(json.loads(json.dumps(nested.record())))
    assert back == nested and back.template == nested.template and isinstance(back.values["reason"], Message)
    assert back.values["reason"].values == detail.values


def test_a_message_is_translated_with_its_values_and_the_messages_among_them(app: Any) -> None:
    from socle.ui import rendering  # the app registers every service's catalogues

    step = message("étape %(number)s", number=2)
    detail = message("%(label)s : au moins un bureau est requis", label=step)
    assert detail == "étape 2 : au moins un bureau est requis"
    assert rendering.translate("en", detail) == "step 2: at least one desk is required"
    assert rendering.translate("fr", detail) == "étape 2 : au moins un bureau est requis"
    # Values that are codes or names stay as they are, even when they happen to be a French word.
    assert rendering.translate("en", message("collectivité « %(slug)s » inconnue", slug="lecture")) == (
        "unknown local authority “lecture”"
    )
    assert rendering.translate("en", Conflict.title) == "Conflict"


def test_an_english_user_reads_a_domain_error_in_english_next_to_its_field(app: Any, kit: Kit) -> None:
    data = {"code": "arrete", "name": "Arrêté", "dua_months": "60", "dua_event": "creation", "final_action": "keep"}
    french = sign_in(app, kit, "admin")
    assert post_form(french, "/admin/ged/types", "/admin/ged/types", data).status_code == 303
    refused = post_form(french, "/admin/ged/types", "/admin/ged/types", data)
    assert refused.status_code == 422 and "le type de document « arrete » existe déjà" in refused.text

    english = in_english(sign_in(app, kit, "admin"))
    again = post_form(english, "/admin/ged/types", "/admin/ged/types", data)
    assert again.status_code == 422 and 'id="code-erreur"' in again.text
    assert "document type “arrete” already exists" in again.text
    assert "existe déjà" not in again.text

    api = kit["admin"].post("/ged/types", json={"code": "arrete", "name": "Arrêté"})
    assert api.status_code == 409
    assert (api.json()["title"], api.json()["detail"]) == ("Conflit", "le type de document « arrete » existe déjà")


def test_an_english_user_gets_not_found_in_english_for_another_authoritys_document(
    app: Any, kit: Kit, make_kit: Any
) -> None:
    other = make_kit(with_identity=False)
    files = {"file": ("acte.pdf", make_pdf("Autre commune"), "application/pdf")}
    created = other["agent"].post(
        "/ged/documents",
        files=files,
        data={"title": "Autre commune", "document_type": "deliberation", "date": "2026-03-12"},
    )
    assert created.status_code == 201, created.text
    foreign = created.json()["id"]

    english = in_english(sign_in(app, kit, "agent"))
    page = english.get(f"/documents/{foreign}")
    assert page.status_code == 404 and '<html lang="en">' in page.text
    assert "<h1>Not found</h1>" in page.text and f"document {foreign} not found" in page.text
    assert "introuvable" not in page.text.lower()

    french = sign_in(app, kit, "agent").get(f"/documents/{foreign}")
    assert french.status_code == 404 and "<h1>Introuvable</h1>" in french.text
    assert f"document {foreign} introuvable" in french.text

    api = kit["agent"].get(f"/ged/documents/{foreign}")
    assert api.status_code == 404 and api.headers["content-type"].startswith("application/problem+json")
    assert (api.json()["title"], api.json()["detail"]) == ("Introuvable", f"document {foreign} introuvable")


def test_an_upload_over_the_limit_is_refused_in_the_chosen_language(app: Any, kit: Kit, use_env: Any) -> None:
    use_env(SOCLE_MAX_UPLOAD_BYTES=str(1024 * 1024))
    english = in_english(sign_in(app, kit, "agent"))
    token = csrf_of(english.get("/").text)
    big = {"fichier": ("gros.pdf", b"%PDF-" + b"0" * (2 * 1024 * 1024))}
    answer = english.post("/langue", data={"csrf": token}, files=big)
    assert answer.status_code == 413 and '<html lang="en">' in answer.text
    assert "File too large" in answer.text and "(1 MiB). Nothing has been saved." in answer.text


def test_a_percent_sign_in_an_error_is_only_text_in_either_language(app: Any, kit: Kit) -> None:
    from socle.ui import rendering

    client = sign_in(app, kit, "agent")
    for locale in ("fr", "en"):
        client.cookies.set("__Host-socle_langue", locale)
        page = client.get("/dossiers/100%25d")  # a "%d" in the detail once made the page itself fail (500)
        assert page.status_code == 404, page.text
        assert "100%d" in page.text
    assert rendering.translate("en", "") == ""  # not the catalogue's header
