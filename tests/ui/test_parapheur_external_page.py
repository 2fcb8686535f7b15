"""The external signer's page: the mailed one-time link opens a form in the browser, no account, no JavaScript.

The link of the mail (parapheur.events.external_url) is the page ``/signature-externe/{secret}``: the folder's
title, the expected signer, the link's end, the documents to download, a consent box, the name, « Signer ».
Signing goes through the same domain function as the API; a used, expired or unknown link is one 404 page.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from parapheur_kit import folder_of
from smtp import SmtpServer, kit_mailbox
from sqlalchemy import update
from testpki import TestPki
from ui_kit import anonymous, csrf_of

from parapheur import pades
from parapheur.models import Step
from socle.db import transaction, utcnow

from conftest import ROOT, Kit, make_pdf, pdfsig

sys.path.insert(0, str(ROOT / "tests" / "parapheur"))  # the signing helpers, beside the parapheur's tests
import test_parapheur_external as api_tests
from signing_helpers import actions, history, object_path, save, stamp_lines

SIGNER = api_tests.SIGNER
TITLE = "Convention de mise à disposition"
DEAD = "Ce lien de signature ne fonctionne plus"
# Words of English a page of this kit could hold if a text escaped translation (the footer's language list
# names English in English, on purpose: it is left out, as every element marked lang="en").
ENGLISH = re.compile(
    r"\b(the|and|your|you|sign|signed|signing|download|name|link|expires?|valid|until|please|folder|required"
    r"|thank|error|errors|language|change|skip|content|document signed|full name)\b",
    re.IGNORECASE,
)


@pytest.fixture
def mailbox(use_env: Callable[..., None]) -> Iterator[SmtpServer]:
    with kit_mailbox(use_env) as server:
        yield server


def external_folder(kit: Kit, pki: TestPki) -> dict[str, Any]:
    """The API tests' folder waiting for its external signer, with an annex: two documents on the page."""
    annex = ("plan-des-locaux.pdf", make_pdf("Plan des locaux"), "application/pdf")
    return api_tests.external_folder(kit, pki, annexes=[annex])


def mailed_link(server: SmtpServer) -> str:
    """The path of the link mailed to the external signer (the page, not the API's JSON)."""
    return f"/signature-externe/{api_tests.mailed_secret(server)}"


class _Text(HTMLParser):
    """The page's visible text (title included), without what is marked as another language than French."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip or dict(attrs).get("lang", "fr") != "fr" or tag in ("script", "style"):
            self._skip.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._skip and self._skip[-1] == tag:
            self._skip.pop()

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.parts.append(data.strip())


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(parser.parts)


def assert_french(html: str) -> None:
    assert '<html lang="fr">' in html
    found = ENGLISH.findall(visible_text(html))
    assert not found, found


def assert_private(response: Any) -> None:
    """The secret is in the address: never kept in a cache, and the page asks for no referrer."""
    assert response.headers["cache-control"] == "no-store"
    assert "no-referrer" in response.headers.get_list("referrer-policy")


def download_links(html: str) -> list[str]:
    return re.findall(r'href="(/signature-externe/[^"]+/documents/[^"]+)"', html)


def test_the_mailed_link_opens_the_page_then_signs_once(
    kit: Kit, pki: TestPki, mailbox: SmtpServer, app: Any, tmp_path: Path
) -> None:
    folder = external_folder(kit, pki)
    link = mailed_link(mailbox)
    browser = anonymous(app)

    page = browser.get(link)
    assert page.status_code == 200, page.text
    assert_private(page)
    assert_french(page.text)
    assert f"<h1>{TITLE}</h1>" in page.text
    assert "Claude Lefèvre" in page.text and SIGNER["email"] in page.text
    assert re.search(r"jusqu'au \d{1,2} \w+ \d{4} à \d{2}:\d{2} \(heure de Paris\)", page.text), page.text
    assert 'value="Claude Lefèvre"' in page.text  # the name field, filled with the expected name
    assert "<label for=\"consentement\">J'ai lu les documents et j'accepte de les signer" in page.text
    assert '<label for="nom">Nom et prénom' in page.text and 'autocomplete="name"' in page.text
    assert "<script" not in page.text.split("</head>")[1]  # nothing in the page needs JavaScript
    assert "__Host-socle_csrf=" in page.headers["set-cookie"]  # the anonymous form's token, as /connexion

    # The documents: the one to sign and its annex, each a download.
    assert "Télécharger « acte.pdf »" in page.text and "Télécharger « plan-des-locaux.pdf »" in page.text
    main, annex = download_links(page.text)
    pdf = browser.get(main)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-disposition"].startswith("attachment;")
    assert_private(pdf)
    assert browser.get(annex).content.startswith(b"%PDF")
    assert browser.get(f"{link}/documents/inconnu").status_code == 404

    # A form from another site, or without its token, signs nothing.
    token = csrf_of(page.text)
    assert browser.post(link, data={"consentement": "1", "nom": "Claude Lefèvre"}).status_code == 403
    forged = browser.post(
        link,
        data={"csrf": token, "consentement": "1", "nom": "Claude Lefèvre"},
        headers={"origin": "https://ailleurs.example"},
    )
    assert forged.status_code == 403

    # No consent: the form again, the reason next to the box, the name as typed.
    refused = browser.post(link, data={"csrf": token, "nom": "Claude Lefèvre"})
    assert refused.status_code == 422
    assert_private(refused)
    assert_french(refused.text)
    box = re.search(r'<input id="consentement"[^>]*>', refused.text)
    assert box and 'aria-invalid="true"' in box.group(0) and 'aria-describedby="consentement-erreur"' in box.group(0)
    assert (
        '<p class="field-error" id="consentement-erreur">Cochez la case pour accepter de signer les documents.</p>'
        in refused.text
    )
    assert '<div class="error-summary" role="alert" tabindex="-1">' in refused.text
    assert '<a href="#consentement">' in refused.text
    # No name: told next to the name field, the box stays ticked.
    nameless = browser.post(link, data={"csrf": token, "consentement": "1", "nom": "   "})
    assert nameless.status_code == 422 and 'id="nom-erreur">Indiquez vos nom et prénom.</p>' in nameless.text
    assert re.search(r'<input id="consentement"[^>]*checked', nameless.text)
    # A name too long, or one the engine refuses (a control character), is told next to the field too.
    for wrong in ("C" * 201, "Claude\x07Lefèvre", "Claude\x00Lefèvre"):
        refused = browser.post(link, data={"csrf": token, "consentement": "1", "nom": wrong})
        assert refused.status_code == 422 and 'id="nom-erreur"' in refused.text, (wrong, refused.text)
    assert folder_of(kit, folder["id"])["status"] == "in_progress"

    signed = browser.post(link, data={"csrf": token, "consentement": "1", "nom": " Claude   Lefèvre "})
    assert signed.status_code == 200, signed.text
    assert_private(signed)
    assert_french(signed.text)
    assert "<h1>Document signé. Merci.</h1>" in signed.text
    assert "<form" not in signed.text.split("<footer")[0]  # nothing more to do

    after = folder_of(kit, folder["id"])
    assert after["status"] == "completed"
    (event,) = [e for e in history(folder["id"]) if e.action == "external_signature"]
    assert event.actor == f"externe:{SIGNER['email']}" and "Claude Lefèvre" in event.actor_name
    path = save(tmp_path, "signe.pdf", object_path(after["documents"][0]["current_sha256"]).read_bytes())
    assert "Signature is Valid" in pdfsig(path)
    assert len(pades.verify_pdf(path, [pki.root_der])) == 1
    assert stamp_lines(path)[0] == f"Signé par Claude Lefèvre ({SIGNER['email']}) — lien à usage unique"

    # Used: the page, the documents and the form are the dead link's page.
    for dead in (browser.get(link), browser.get(main), browser.post(link, data={"csrf": token, "consentement": "1"})):
        assert dead.status_code == 404 and DEAD in dead.text, dead.text
        assert "demandez un nouveau lien à la collectivité" in dead.text
        assert_private(dead)
        assert_french(dead.text)
    assert actions(folder["id"]).count("external_signature") == 1


def test_an_expired_or_unknown_link_shows_the_dead_link_page(
    kit: Kit, pki: TestPki, mailbox: SmtpServer, app: Any
) -> None:
    folder = external_folder(kit, pki)
    link = mailed_link(mailbox)
    browser = anonymous(app)
    token = csrf_of(browser.get(link).text)
    with transaction() as session:  # the signer let the 14 days go by
        session.execute(
            update(Step)
            .where(Step.folder_id == folder["id"], Step.position == 1)
            .values(token_expires_at=utcnow() - timedelta(seconds=1))
        )
    for dead in (
        browser.get(link),
        browser.post(link, data={"csrf": token, "consentement": "1", "nom": "Claude Lefèvre"}),
        browser.get("/signature-externe/" + "x" * 43),
        browser.get("/signature-externe/" + "x" * 300),
    ):
        assert dead.status_code == 404 and DEAD in dead.text
        assert_french(dead.text)
    assert folder_of(kit, folder["id"])["status"] == "in_progress"


def test_the_page_in_english(kit: Kit, pki: TestPki, mailbox: SmtpServer, app: Any) -> None:
    external_folder(kit, pki)
    link = mailed_link(mailbox)
    browser: TestClient = anonymous(app)
    browser.cookies.set("__Host-socle_langue", "en")
    page = browser.get(link)
    assert page.status_code == 200 and '<html lang="en">' in page.text
    assert "I have read the documents and I agree to sign them" in page.text and "Full name" in page.text
    assert "(Paris time)" in page.text and "J'ai lu" not in page.text


def test_the_browser_is_told_no_referrer_only(kit: Kit, pki: TestPki, mailbox: SmtpServer, app: Any) -> None:
    external_folder(kit, pki)
    page = anonymous(app).get(mailed_link(mailbox))
    assert page.status_code == 200
    assert page.headers.get_list("referrer-policy") == ["no-referrer"]
