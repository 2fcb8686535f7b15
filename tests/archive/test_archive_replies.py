"""Reading the archival system's SEDA messages: Acknowledgement and ArchiveTransferReply, SEDA 2.1 to 2.3."""

from __future__ import annotations

import pytest
from lxml import etree
from sae_messages import VITAM_REFUSAL, Event, acknowledgement, transfer_reply

from archive import validation
from archive.replies import MAX_MESSAGE_BYTES, ReplyError, parse_sae_message
from archive.seda import NAMESPACES

from conftest import SHARED_SEDA

VERSIONS = sorted(NAMESPACES)


def assert_schema_valid(message: bytes, version: str) -> None:
    """The test messages are messages of the official schemas (2.1 through xmlschema's XSD 1.1)."""
    report = validation.validate_manifest(message, SHARED_SEDA, version)
    assert report.valid, [issue.message for issue in report.issues]


def test_the_schemas_check_the_test_messages() -> None:
    """A reply without its mandatory ArchivalAgency is refused by the XSD: the validity checks below can fail."""
    root = etree.fromstring(transfer_reply("2.2", "MSG-1", "OK"))
    root.remove(root.find(f"{{{NAMESPACES['2.2']}}}ArchivalAgency"))
    report = validation.validate_manifest(etree.tostring(root), SHARED_SEDA, "2.2")
    assert not report.valid and "TransferringAgency" in report.issues[0].message


@pytest.mark.parametrize("version", VERSIONS)
def test_acknowledgement_of_each_version(version: str) -> None:
    data = acknowledgement(version, "commune-20261201-abcd", "ACK-42", comment="Paquet reçu")
    assert_schema_valid(data, version)
    message = parse_sae_message(data)
    assert (message.kind, message.version, message.outcome) == ("acknowledgement", version, "received")
    assert message.message_identifier == "ACK-42" and message.request_identifier == "commune-20261201-abcd"
    assert message.reply_code is None and message.reasons() == ["Commentaire : Paquet reçu"]
    summary = message.summary()
    assert summary["type"] == "accusé de réception" and summary["issue"] == "reçu" and summary["motifs"] == []


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("code", "reservation"),
    [("OK", None), ("000", None), ("WARNING", "accepté avec avertissements")],
)
def test_accepting_reply_keeps_the_sae_identifiers(version: str, code: str, reservation: str | None) -> None:
    data = transfer_reply(
        version,
        "commune-20261201-abcd",
        code,
        "aeeaaaaaache2",
        units={"UA1": "aeaqaaaaaahg6", "UA2": "aeaqaaaaaahg7"},
        archival_ids={"UA2": "FRAD037_2026_0042"},
        objects={"BDO1": ("aeaaaaaaaahg8", "aebaaaaaaahg9")},
    )
    assert_schema_valid(data, version)
    message = parse_sae_message(data)
    assert (message.kind, message.outcome, message.reply_code) == ("reply", "accepted", code)
    assert message.request_identifier == "commune-20261201-abcd" and message.message_identifier == "aeeaaaaaache2"
    assert message.units == {
        "UA1": {"system_ids": ["aeaqaaaaaahg6"], "archival_agency_identifiers": []},
        "UA2": {"system_ids": ["aeaqaaaaaahg7"], "archival_agency_identifiers": ["FRAD037_2026_0042"]},
    }
    assert message.objects == {"BDO1": {"system_id": "aeaaaaaaaahg8", "group_system_id": "aebaaaaaaahg9"}}
    assert message.archival_agency == "AD037" and message.grant_date == "2026-12-01T10:05:00"
    assert message.reservation == reservation
    assert message.verdict().startswith(f"Transfert accepté par le système d'archivage (code {code}")
    assert message.summary()["motifs"] == []


@pytest.mark.parametrize("version", VERSIONS)
def test_vitam_refusal_lists_the_failed_events_in_french(version: str) -> None:
    data = transfer_reply(version, "MSG-1", "KO", events=VITAM_REFUSAL, comment="Règles inconnues")
    assert_schema_valid(data, version)
    message = parse_sae_message(data)
    assert message.outcome == "rejected"
    assert message.verdict() == "Transfert refusé par le système d'archivage (code KO)."
    assert message.reasons() == [
        "Contrôle global du SIP (CHECK_SEDA) : KO [CHECK_SEDA.KO] — Échec du contrôle de conformité du bordereau",
        "Vérification des règles de gestion (CHECK_RULES) : KO [CHECK_RULES.KO] — "
        "Règle de gestion APP-99 inconnue du référentiel",
        "Commentaire : Règles inconnues",
    ]
    events = message.summary()["evenements"]
    assert [event["type_code"] for event in events] == ["CHECK_SEDA", "CHECK_DIGEST", "CHECK_RULES"]
    assert events[1]["outcome"] == "OK"  # every event is kept, only failed ones are reasons


def test_asalae_refusal_code_and_fatal() -> None:
    refused = parse_sae_message(
        transfer_reply("2.1", "MSG-1", "300", events=(Event("ACCORD", "Accord de versement", "KO", None, "Inconnu"),))
    )
    assert refused.outcome == "rejected" and refused.verdict().endswith("(code 300).")
    assert refused.reasons() == ["Accord de versement (ACCORD) : KO — Inconnu"]
    fatal = parse_sae_message(transfer_reply("2.2", "MSG-1", "FATAL"))
    assert fatal.outcome == "rejected" and "erreur technique" in fatal.verdict()


def test_reply_without_code_is_unreadable() -> None:
    data = transfer_reply("2.2", "MSG-1", None)
    assert_schema_valid(data, "2.2")  # ReplyCode is optional in the schema…
    with pytest.raises(ReplyError, match="ReplyCode absent ou vide"):  # …but silence is neither yes nor no
        parse_sae_message(data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "vide"),
        (b"<ArchiveTransferReply", "mal formé"),
        (b'<ArchiveTransferReply xmlns="urn:autre"/>', "espace de noms"),
        (b'<ArchiveTransfer xmlns="fr:gouv:culture:archivesdefrance:seda:v2.2"/>', "ni un Acknowledgement"),
        (b'<Acknowledgement xmlns="fr:gouv:culture:archivesdefrance:seda:v1.0"/>', "espace de noms"),
    ],
)
def test_unreadable_messages_are_refused_in_french(data: bytes, expected: str) -> None:
    with pytest.raises(ReplyError, match=expected):
        parse_sae_message(data)


def test_missing_request_identifier_is_refused() -> None:
    root = etree.fromstring(transfer_reply("2.3", "MSG-1", "OK"))
    root.remove(root.find(f"{{{NAMESPACES['2.3']}}}MessageRequestIdentifier"))
    with pytest.raises(ReplyError, match="MessageRequestIdentifier est absent"):
        parse_sae_message(etree.tostring(root))


def test_entities_dtd_and_oversize_are_refused() -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<ArchiveTransferReply xmlns="fr:gouv:culture:archivesdefrance:seda:v2.2"><MessageIdentifier>&b;'
        b"</MessageIdentifier></ArchiveTransferReply>"
    )
    with pytest.raises(ReplyError, match="DTD"):
        parse_sae_message(laughs)
    external = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<Acknowledgement xmlns="fr:gouv:culture:archivesdefrance:seda:v2.2">&x;</Acknowledgement>'
    )
    with pytest.raises(ReplyError, match="DTD"):
        parse_sae_message(external)
    big = transfer_reply("2.2", "MSG-1", "OK", comment="x" * 2000)
    with pytest.raises(ReplyError, match="limite"):
        parse_sae_message(big, max_size=1000)
    assert MAX_MESSAGE_BYTES >= 1024 * 1024
