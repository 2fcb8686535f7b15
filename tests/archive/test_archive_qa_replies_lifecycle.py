"""QA of a transfer followed to the SAE's reply (archive.lifecycle): replies late, replayed, contradicting,
for an abandoned transfer or one whose delivery failed, and codes or texts too long for their columns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sae_messages import Event, acknowledgement, sae_sends, transfer_reply
from sqlalchemy import select
from test_abandon_cancels_delivery import failed_transfer
from test_archive_abandon import abandon
from test_archive_lifecycle import audit_actions, sent_transfer, transfer_of

from archive import jobs as archive_jobs
from archive import lifecycle
from socle.db import transaction
from socle.migrating import upgrade_all
from socle.models import Job

from conftest import Kit


def refusals(transfer: dict[str, Any]) -> list[str]:
    return [m["refusal"] for m in transfer["messages"] if m["status"] == "refused"]


def test_an_overlong_reply_code_is_recorded_on_postgresql(
    request: pytest.FixtureRequest, make_kit: Callable[..., Kit], use_env: Callable[..., None]
) -> None:
    """archive_transfers.reply_code is 50 characters: an unknown code longer than that made the job fail on
    PostgreSQL (value too long), so the reply was never recorded and the transfer waited for ever."""
    use_env(SOCLE_DATABASE_URL=request.getfixturevalue("postgres_url"))
    upgrade_all()
    kit = make_kit(with_identity=False)
    transfer = sent_transfer(kit)
    sae_sends(kit.tenant_id, transfer["id"], "reply", transfer_reply("2.2", transfer["message_identifier"], "E" * 80))
    with transaction() as session:
        query = select(Job.status).where(
            Job.tenant_id == kit.tenant_id, Job.function == "archive.jobs.record_sae_message"
        )
        assert session.execute(query).scalars().all() == ["done"]
    seen = transfer_of(kit, transfer["id"])
    assert seen["status"] == "rejected" and len(seen["reply_code"]) <= lifecycle.CODE_COLUMN
    assert seen["messages"][0]["status"] == "recorded" and seen["reply_code"].startswith("EEEE")


def test_a_reply_after_a_failed_delivery_was_resumed_is_taken(kit: Kit) -> None:
    """A resumed delivery went through and the SAE answered before its receipt was recorded (the two jobs run
    in either order): the reply proves the SAE has the package. It was refused (« delivery_failed »), and the
    transfer waited for a reply already come, still abandonable though the SAE holds the package."""
    transfer = failed_transfer(kit)
    request = transfer["message_identifier"]
    sae_sends(kit.tenant_id, transfer["id"], "acknowledgement", acknowledgement("2.2", request, "ACK-1"))
    acknowledged = transfer_of(kit, transfer["id"])
    assert acknowledged["status"] == "acknowledged" and acknowledged["error"] is None

    accepting = transfer_reply("2.2", request, "OK", "ATR-1", units={"AU1": "s1"})
    sae_sends(kit.tenant_id, transfer["id"], "reply", accepting)
    archive_jobs.record_delivery(tenant_id=kit.tenant_id, transfer_id=transfer["id"], receipt={"sae": "depot"})
    accepted = transfer_of(kit, transfer["id"])
    assert accepted["status"] == "accepted" and accepted["receipt"] == {"sae": "depot"}
    assert [m["status"] for m in accepted["messages"]] == ["recorded", "recorded"]
    [document_id] = accepted["document_ids"]
    document = kit["agent"].get(f"/ged/documents/{document_id}").json()
    assert (document["disposal"], document["sae_identifier"]) == ("archived", "s1")


def test_the_same_reply_stored_again_is_refused_as_already_received(kit: Kit) -> None:
    """Same identifier, other bytes (the SAE's reply fetched again, its date rewritten): said as a replay."""
    transfer = sent_transfer(kit)
    request = transfer["message_identifier"]
    sae_sends(kit.tenant_id, transfer["id"], "reply", transfer_reply("2.2", request, "OK", "ATR-1"))
    sae_sends(kit.tenant_id, transfer["id"], "reply", transfer_reply("2.3", request, "OK", "ATR-1"))
    seen = transfer_of(kit, transfer["id"])
    assert seen["status"] == "accepted" and [m["status"] for m in seen["messages"]] == ["recorded", "refused"]
    assert refusals(seen) == [
        "Message refusé : le message « ATR-1 » a déjà été reçu et pris en compte pour ce versement."
    ]
    assert audit_actions(kit.tenant_id, transfer["id"]).count("archive.transfer.accepted") == 1


def test_a_refusal_after_an_acceptance_is_kept_and_said_to_contradict_it(kit: Kit) -> None:
    transfer = sent_transfer(kit)
    request = transfer["message_identifier"]
    accepting = transfer_reply("2.2", request, "OK", "ATR-1", units={"AU1": "s1"})
    sae_sends(kit.tenant_id, transfer["id"], "reply", accepting)
    sae_sends(kit.tenant_id, transfer["id"], "reply", transfer_reply("2.2", request, "KO", "ATR-2"))
    seen = transfer_of(kit, transfer["id"])
    assert seen["status"] == "accepted" and seen["sae_message_identifier"] == "ATR-1"
    assert refusals(seen) == [
        "Message refusé : le système d'archivage a déjà répondu à ce versement (« ATR-1 », accepté) ; cette autre "
        "réponse le refuse. Vérifiez auprès du système d'archivage."
    ]
    [document_id] = seen["document_ids"]
    assert kit["agent"].get(f"/ged/documents/{document_id}").json()["disposal"] == "archived"  # nothing undone
    # The acknowledgement coming after the reply is kept, refused: the reply already ended the transfer.
    sae_sends(kit.tenant_id, transfer["id"], "acknowledgement", acknowledgement("2.2", request, "ACK-9"))
    assert transfer_of(kit, transfer["id"])["status"] == "accepted"


def test_an_acceptance_of_an_abandoned_transfer_tells_the_archivist_to_check(kit: Kit) -> None:
    transfer = failed_transfer(kit)
    assert abandon(kit, transfer["id"]).status_code == 200
    sae_sends(
        kit.tenant_id, transfer["id"], "reply", transfer_reply("2.2", transfer["message_identifier"], "OK", "ATR-1")
    )
    seen = transfer_of(kit, transfer["id"])
    assert seen["status"] == "abandoned"
    assert refusals(seen) == [
        "Message refusé : le versement a été abandonné (ses documents sont rendus à la GED), mais le système "
        "d'archivage a accepté le paquet : vérifiez auprès de lui le sort de ce paquet."
    ]


def test_a_refusal_with_countless_long_reasons_keeps_a_bounded_error(kit: Kit) -> None:
    transfer = sent_transfer(kit)
    events = tuple(Event(f"STEP_{n}", f"Étape {n}", "KO", None, "x" * 5000) for n in range(200))
    data = transfer_reply("2.2", transfer["message_identifier"], "KO", events=events, comment="y" * 100_000)
    sae_sends(kit.tenant_id, transfer["id"], "reply", data)
    seen = transfer_of(kit, transfer["id"])
    assert seen["status"] == "rejected"
    assert len(seen["error"]) <= lifecycle.ERROR_LIMIT
    assert seen["error"].startswith("Transfert refusé par le système d'archivage (code KO). Étape 0 (STEP_0) : KO")
    assert seen["error"].endswith("autre(s) motif(s), dans la réponse du système d'archivage.")
    assert len(seen["reply"]["motifs"]) == 51 and len(str(seen)) < 3_000_000
