"""QA of archive.replies against hostile or odd SAE messages: ambiguous verdicts, texts too long to show,
characters that turn a line around, ids given twice, Vitam's warnings."""

from __future__ import annotations

import pytest
from lxml import etree
from sae_messages import Event, transfer_reply

from archive import replies
from archive.replies import ReplyError, parse_sae_message
from archive.seda import NAMESPACES

NS = NAMESPACES["2.2"]


def with_extra(data: bytes, after: str, tag: str, text: str) -> bytes:
    """The message with one more element ``tag`` (in the SEDA namespace) right after the first ``after``."""
    root = etree.fromstring(data)
    anchor = root.find(f"{{{NS}}}{after}")
    extra = etree.Element(f"{{{NS}}}{tag}")
    extra.text = text
    anchor.addnext(extra)
    return etree.tostring(root)


@pytest.mark.parametrize(
    ("after", "tag", "text"),
    [
        ("ReplyCode", "ReplyCode", "KO"),  # OK then KO: which is the verdict?
        ("MessageRequestIdentifier", "MessageRequestIdentifier", "autre-versement"),
        ("MessageIdentifier", "MessageIdentifier", "ATR-2"),
    ],
)
def test_an_element_that_says_what_the_message_is_given_twice_is_refused(after: str, tag: str, text: str) -> None:
    data = with_extra(transfer_reply("2.2", "MSG-1", "OK"), after, tag, text)
    with pytest.raises(ReplyError, match=f"l'élément {tag} y figure plusieurs fois"):
        parse_sae_message(data)


def test_refusals_quote_the_message_briefly() -> None:
    """A refusal names what it refuses, never a whole megabyte of it (it is kept, audited and shown)."""
    namespace = "urn:" + "x" * 100_000
    with pytest.raises(ReplyError) as refused:
        parse_sae_message(f'<ArchiveTransferReply xmlns="{namespace}"/>'.encode())
    assert "espace de noms « urn:xxx" in str(refused.value) and len(str(refused.value)) < 500
    tag = "B" * 50_000  # libxml2 names the unclosed tag in its message
    with pytest.raises(ReplyError, match="mal formé") as refused:
        parse_sae_message(f'<ArchiveTransferReply xmlns="{NS}"><{tag}></C></ArchiveTransferReply>'.encode())
    assert len(str(refused.value)) < replies.TEXT_LIMIT + 100


def test_long_texts_and_many_reasons_are_bounded_in_what_is_kept() -> None:
    events = tuple(Event(f"STEP_{n}", f"Étape {n}", "KO", None, "é" * 20_000) for n in range(300))
    message = parse_sae_message(transfer_reply("2.2", "MSG-1", "KO", events=events, comment="c" * 200_000))
    assert message.comments == ("c" * (replies.TEXT_LIMIT - 1) + "…",)
    assert all(len(event.outcome_detail_message or "") == replies.TEXT_LIMIT for event in message.events)
    reasons = message.reasons()
    assert len(reasons) == replies.MAX_REASONS + 1
    assert reasons[-1] == (
        f"… et {300 + 1 - replies.MAX_REASONS} autre(s) motif(s), dans le message complet du système d'archivage."
    )
    summary = message.summary()
    assert len(summary["evenements"]) == replies.MAX_EVENTS and summary["evenements_omis"] == 300 - replies.MAX_EVENTS
    assert len(str(summary)) < 2_000_000


def test_an_overlong_reply_code_is_kept_short_and_is_a_refusal() -> None:
    message = parse_sae_message(transfer_reply("2.2", "MSG-1", "OK" + "K" * 200))
    assert message.outcome == "rejected"
    assert message.reply_code is not None and len(message.reply_code) == replies.CODE_LIMIT
    assert message.reply_code.endswith("…") and len(message.verdict()) < 120


def test_control_and_bidi_characters_of_the_sae_are_replaced() -> None:
    """« Règle inconnue\u202e » would show the rest of the line backwards; C1 controls are legal XML 1.0."""
    data = transfer_reply(
        "2.2",
        "MSG-1",
        "KO",
        events=(Event("CHECK", "Contrôle\u202egnp.exe", "KO", None, "Motif\x85caché\u2066"),),
        comment="Refus\u202d manuel",
    )
    message = parse_sae_message(data)
    assert message.comments == ("Refus\ufffd manuel",)
    assert message.reasons()[0] == "Contrôle\ufffdgnp.exe (CHECK) : KO — Motif\ufffdcaché\ufffd"
    assert message.request_identifier == "MSG-1"


def test_a_unit_given_twice_keeps_every_identifier_the_first_first() -> None:
    root = etree.fromstring(transfer_reply("2.2", "MSG-1", "OK", units={"AU1": "sys-1", "AU2": "sys-2"}))
    second = root.find(f".//{{{NS}}}ArchiveUnit[@id='AU2']")
    second.set("id", "AU1")
    message = parse_sae_message(etree.tostring(root))
    assert message.units == {"AU1": {"system_ids": ["sys-1", "sys-2"], "archival_agency_identifiers": []}}


def test_an_acceptance_with_warnings_says_which() -> None:
    events = (
        Event("CHECK_DIGEST", "Vérification de l'empreinte", "OK"),
        Event("CHECK_FORMAT", "Identification des formats", "WARNING", "CHECK_FORMAT.WARNING", "Format non identifié"),
    )
    message = parse_sae_message(transfer_reply("2.2", "MSG-1", "WARNING", events=events))
    assert message.outcome == "accepted" and message.summary()["motifs"] == []
    assert message.summary()["avertissements"] == [
        "Identification des formats (CHECK_FORMAT) : WARNING [CHECK_FORMAT.WARNING] — Format non identifié"
    ]
    refused = parse_sae_message(transfer_reply("2.2", "MSG-1", "KO", events=events))
    assert refused.summary()["avertissements"] == []
