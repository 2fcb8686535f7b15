"""The retry policy syntax of the connectors (Pastell's « délai X nombre » lines), with jitter."""

from __future__ import annotations

from datetime import timedelta

import pytest

from interop.retry import DEFAULT_POLICY, parse_policy
from socle.errors import InvalidInput


def test_the_default_policy_every_10_minutes_3_times_then_every_hour_24_times() -> None:
    policy = parse_policy(DEFAULT_POLICY)
    assert policy.stages == ((600, 3), (3600, 24)) and policy.total_tries == 27
    waits = [policy.delay(n, jitter=False) for n in range(28)]
    assert waits[:3] == [timedelta(minutes=10)] * 3
    assert waits[3:27] == [timedelta(hours=1)] * 24
    assert waits[27] is None
    assert policy.describe() == "toutes les 10 min × 3, puis toutes les heures × 24"


def test_units_separators_and_a_single_try() -> None:
    policy = parse_policy("30s X 2; 2h x 1, 5")
    assert policy.stages == ((30, 2), (7200, 1), (300, 1))
    assert policy.describe() == "toutes les 30 s × 2, puis toutes les 2 h × 1, puis toutes les 5 min × 1"


def test_jitter_spreads_the_waits_within_ten_percent() -> None:
    policy = parse_policy("10 X 50")
    waits = {policy.delay(0).total_seconds() for _ in range(50)}
    assert len(waits) > 1 and all(540 <= wait <= 660 for wait in waits)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", "vide"),
        ("toutes les heures", "illisible"),
        ("10 X 0", "positifs"),
        ("0 X 3", "positifs"),
        ("10 X 3 X 2", "illisible"),
        ("1s X 20000", "plus de 10000 essais"),
        ("999999999h X 2", "un mois au plus"),
        ("745h", "un mois au plus"),
    ],
)
def test_a_bad_policy_is_refused_in_french(text: str, said: str) -> None:
    with pytest.raises(InvalidInput, match=said):
        parse_policy(text)
