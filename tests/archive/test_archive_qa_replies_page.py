"""QA of the archivist's view of the SAE's messages: hostile texts escaped and bounded, every message
downloadable exactly as it came (the page shows a bounded summary), the acknowledgement step of a transfer the
SAE answered without acknowledging first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sae_messages import Event, acknowledgement, sae_sends, transfer_reply
from test_archive_lifecycle import sent_transfer, transfer_of
from ui_kit import sign_in

from archive import replies

from conftest import Kit

HOSTILE = '<script>alert("sae")</script>'


def test_a_hostile_refusal_is_escaped_bounded_and_downloadable_whole(app: Any, kit: Kit) -> None:
    transfer = sent_transfer(kit)
    events = tuple(Event(f"STEP_{n}", HOSTILE, "KO", None, "z" * 20_000) for n in range(120))
    data = transfer_reply("2.2", transfer["message_identifier"], "KO", "ATR-1", events=events, comment=HOSTILE)
    sae_sends(kit.tenant_id, transfer["id"], "reply", data)
    client = sign_in(app, kit, "archiviste")
    page = client.get(f"/archives/transferts/{transfer['id']}")
    assert page.status_code == 200
    assert HOSTILE not in page.text and "&lt;script&gt;alert(" in page.text
    assert "z" * replies.TEXT_LIMIT not in page.text and len(page.text) < 400_000  # was 2.5 MB of motifs
    assert "autre(s) motif(s), dans le message complet du système d&#39;archivage." in page.text

    [message] = transfer_of(kit, transfer["id"])["messages"]
    link = f"/archives/transferts/{transfer['id']}/messages/{message_id(kit, transfer['id'])}"
    assert f'href="{link}"' in page.text
    raw = client.get(link)
    assert raw.status_code == 200 and raw.content == data  # nothing lost: the message as it came
    assert raw.headers["content-disposition"].startswith("attachment;")
    assert raw.headers["content-type"].startswith("application/xml") and message["size"] == len(data)


def test_another_collectivite_cannot_download_the_message(app: Any, kit: Kit, make_kit: Callable[..., Kit]) -> None:
    transfer = sent_transfer(kit)
    sae_sends(kit.tenant_id, transfer["id"], "reply", transfer_reply("2.2", transfer["message_identifier"], "OK"))
    link = f"/archives/transferts/{transfer['id']}/messages/{message_id(kit, transfer['id'])}"
    other = make_kit(with_identity=False)
    assert sign_in(app, other, "archiviste").get(link).status_code == 404
    mine = sign_in(app, kit, "archiviste")
    assert mine.get(f"/archives/transferts/{transfer['id']}/messages/inconnu").status_code == 404
    assert sign_in(app, kit, "agent").get(link).status_code == 403


def test_an_answered_transfer_does_not_wait_for_its_acknowledgement(app: Any, kit: Kit) -> None:
    """Accepted without an acknowledgement first (As@lae may send it later, Vitam none): the step said « à venir »
    for ever; the late acknowledgement is kept, refused."""
    transfer = sent_transfer(kit)
    request = transfer["message_identifier"]
    sae_sends(kit.tenant_id, transfer["id"], "reply", transfer_reply("2.2", request, "OK", "ATR-1"))
    sae_sends(kit.tenant_id, transfer["id"], "acknowledgement", acknowledgement("2.2", request, "ACK-1"))
    page = sign_in(app, kit, "archiviste").get(f"/archives/transferts/{transfer['id']}").text
    step = page.split('<span class="step-name">Accusé de réception')[1].split("</li>")[0]
    assert "non reçu avant la réponse" in step and "à venir" not in step


def message_id(kit: Kit, transfer_id: str) -> str:
    from sqlalchemy import select

    from archive.models import SaeMessage
    from socle.db import transaction

    with transaction() as session:
        query = select(SaeMessage.id).where(
            SaeMessage.transfer_id == transfer_id, SaeMessage.tenant_id == kit.tenant_id
        )
        return str(session.execute(query.order_by(SaeMessage.received_at)).scalars().first())
