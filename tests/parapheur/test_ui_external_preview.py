"""The external signer's page shows the documents to sign as page images, through the link's secret only; with
« lecture obligatoire », the last page shown (or a download) is the reading the signature waits for, as for agents.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from parapheur_kit import act, desk, folder_of, ok, sent_folder, typology
from signing_helpers import history, import_seal
from smtp import SmtpServer, kit_mailbox
from testpki import TestPki
from ui_kit import anonymous, csrf_of

from conftest import Kit, make_pdf, run_jobs

LINK = re.compile(r"/signature-externe/([A-Za-z0-9_\-]{20,})")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def mailbox(use_env: Callable[..., None]) -> Iterator[SmtpServer]:
    with kit_mailbox(use_env) as server:
        yield server


class Setup:
    """One collectivité's external signature circuit: the secretariat visas, then an outside signer signs."""

    def __init__(self, kit: Kit, pki: TestPki, mailbox: SmtpServer, *, reading_required: bool = False) -> None:
        self.kit, self.mailbox = kit, mailbox
        secretariat = desk(kit, "Secrétariat", ["agent"])
        seal_id = import_seal(kit, pki)
        circuit = [{"kind": "visa", "desk_ids": [secretariat]}, {"kind": "external_signature"}]
        self.subtype = typology(
            kit, circuit, name="Convention", seal_identity_id=seal_id, reading_required=reading_required
        )

    def folder(self, email: str, pages: int = 1, **upload: Any) -> tuple[dict[str, Any], str]:
        """A folder waiting for the signer ``email``, and the path of the link mailed to them."""
        signer = {"name": "Claude Lefèvre", "email": email}
        files = [("convention.pdf", make_pdf(f"Convention {email}", pages=pages), "application/pdf")]
        folder = sent_folder(
            self.kit, self.subtype, title="Convention", external_signers=[signer], files=files, **upload
        )
        ok(act(self.kit, "agent", folder["id"], "visa"))
        run_jobs()
        mails = [mail for mail in self.mailbox.messages if email in mail.rcpt_tos]
        assert len(mails) == 1, [mail.rcpt_tos for mail in self.mailbox.messages]
        body = mails[0].message.get_body(preferencelist=("plain",))
        assert body is not None
        found = LINK.search(body.get_content())
        assert found, body.get_content()
        return folder, f"/signature-externe/{found.group(1)}"


def image_urls(html: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)" alt="Page', html)


def assert_private(response: Any) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert response.headers.get_list("referrer-policy") == ["no-referrer"]


def sign(browser: TestClient, link: str) -> Any:
    token = csrf_of(browser.get(link).text)
    return browser.post(link, data={"csrf": token, "consentement": "1", "nom": "Claude Lefèvre"})


def test_the_pages_are_shown_through_the_link_ten_at_a_time(
    kit: Kit, pki: TestPki, mailbox: SmtpServer, app: Any
) -> None:
    setup = Setup(kit, pki, mailbox)
    annex = ("plan.pdf", make_pdf("Plan des locaux"), "application/pdf")
    folder, link = setup.folder("claude@exemple.fr", pages=12, annexes=[annex])
    main = folder["documents"][0]["id"]
    browser = anonymous(app)

    page = browser.get(link)
    assert page.status_code == 200
    assert_private(page)
    assert "Aperçu de « convention.pdf »" in page.text and "Pages 1 à 10 sur 12." in page.text
    urls = image_urls(page.text)
    assert urls == [f"{link}/pages/{main}/{number}" for number in range(1, 11)]
    assert 'alt="Page 1 sur 12" loading="lazy"' in page.text
    assert "Aperçu de « plan.pdf »" not in page.text  # annexes are downloads, as on an agent's folder page
    assert "Lecture obligatoire" not in page.text
    image = browser.get(urls[0])
    assert image.status_code == 200 and image.content.startswith(PNG)
    assert image.headers["content-type"] == "image/png"
    assert_private(image)  # the secret is in the address: no cache keeps the image, no referrer carries it

    following = browser.get(f"{link}?debut=11")
    assert following.status_code == 200 and "Pages 11 à 12 sur 12." in following.text
    assert image_urls(following.text) == [f"{link}/pages/{main}/11", f"{link}/pages/{main}/12"]
    assert f'href="{link}?debut=1"' in following.text  # « Pages précédentes »
    assert f'href="{link}?debut=11"' in page.text  # « Pages suivantes »
    assert browser.get(f"{link}/pages/{main}/13").status_code == 404
    # The last page shown is a reading, as for agents (recorded even when no reading is required); nothing more.
    assert browser.get(f"{link}/pages/{main}/12").status_code == 200
    assert "document_read" in [event.action for event in history(folder["id"])]
    assert folder_of(kit, folder["id"])["status"] == "in_progress"


def test_only_the_links_own_folder_is_shown_and_a_wrong_secret_is_a_dead_link(
    kit: Kit, make_kit: Callable[..., Kit], pki: TestPki, mailbox: SmtpServer, app: Any
) -> None:
    setup = Setup(kit, pki, mailbox)
    folder, link = setup.folder("claude@exemple.fr")
    other, other_link = setup.folder("dominique@exemple.fr")
    elsewhere, _ = Setup(make_kit(with_identity=False), pki, mailbox).folder("alix@exemple.fr")
    browser = anonymous(app)
    own = folder["documents"][0]["id"]
    assert browser.get(f"{link}/pages/{own}/1").status_code == 200
    for document in (other["documents"][0]["id"], elsewhere["documents"][0]["id"], "inconnu"):
        refused = browser.get(f"{link}/pages/{document}/1")  # another folder's document, this collectivité's or not
        assert refused.status_code == 404 and not refused.content.startswith(PNG), document
        assert_private(refused)
        assert "Convention" not in refused.text
    assert browser.get(f"{other_link}/pages/{other['documents'][0]['id']}/1").status_code == 200  # its own link
    secret = link.rsplit("/", 1)[1]
    for wrong in ("x" * 43, secret[:-1] + ("B" if secret.endswith("A") else "A"), "x" * 300):
        dead = browser.get(f"/signature-externe/{wrong}/pages/{own}/1")
        assert dead.status_code == 404 and "Ce lien de signature ne fonctionne plus" in dead.text, wrong
        assert_private(dead)
    # Once signed, the link is dead for the images too.
    assert sign(browser, link).status_code == 200
    dead = browser.get(f"{link}/pages/{own}/1")
    assert dead.status_code == 404 and "Ce lien de signature ne fonctionne plus" in dead.text


def test_with_reading_required_the_last_page_shown_is_the_reading(
    kit: Kit, pki: TestPki, mailbox: SmtpServer, app: Any
) -> None:
    setup = Setup(kit, pki, mailbox, reading_required=True)
    folder, link = setup.folder("claude@exemple.fr", pages=3)
    browser = anonymous(app)
    page = browser.get(link)
    assert "Lecture obligatoire : faites défiler le document jusqu'à sa dernière page" in page.text
    urls = image_urls(page.text)
    assert len(urls) == 3
    for url in urls[:2]:  # pages 1 and 2, as a browser loads them with the page
        assert browser.get(url).status_code == 200

    refused = sign(browser, link)
    assert refused.status_code == 409
    assert "lecture obligatoire avant de signer : ouvrez d&#39;abord convention.pdf" in refused.text
    assert 'role="alert"' in refused.text and 'value="Claude Lefèvre"' in refused.text
    assert_private(refused)
    assert folder_of(kit, folder["id"])["status"] == "in_progress"
    assert "document_read" not in [event.action for event in history(folder["id"])]

    assert browser.get(urls[2]).status_code == 200  # the last page: the whole document was shown
    assert browser.get(urls[2]).status_code == 200  # shown again: read once
    (read,) = [event for event in history(folder["id"]) if event.action == "document_read"]
    assert read.actor == "externe:claude@exemple.fr" and read.actor_name == "Claude Lefèvre (claude@exemple.fr)"
    signed = sign(browser, link)
    assert signed.status_code == 200 and "Document signé. Merci." in signed.text
    assert folder_of(kit, folder["id"])["status"] == "completed"


def test_with_reading_required_a_download_is_a_reading_too(
    kit: Kit, pki: TestPki, mailbox: SmtpServer, app: Any
) -> None:
    setup = Setup(kit, pki, mailbox, reading_required=True)
    folder, link = setup.folder("claude@exemple.fr", pages=3)
    browser = anonymous(app)
    assert sign(browser, link).status_code == 409
    download = browser.get(f"{link}/documents/{folder['documents'][0]['id']}")
    assert download.status_code == 200 and download.content.startswith(b"%PDF")
    assert sign(browser, link).status_code == 200
    assert folder_of(kit, folder["id"])["status"] == "completed"
