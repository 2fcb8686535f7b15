"""Retry policies of the connectors, in Pastell's small syntax: one line per stage, « délai X nombre ».

``10 X 3`` then ``60 X 24`` means: every 10 minutes, 3 times, then every hour, 24 times. The delay is in
minutes, or in seconds with ``s`` (``30s``), or in hours with ``h`` (``2h``); a line without « X nombre » is
one try. Lines may also be separated by ``;`` or ``,``. Every wait gets ±10 % of jitter so that operations
which started together do not all ask the platform at the same second.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import timedelta

from socle.errors import InvalidInput, message

DEFAULT_POLICY = "10 X 3\n60 X 24"
_LINE = re.compile(r"^\s*(\d+)\s*([smh]?)\s*(?:[xX×]\s*(\d+))?\s*$")
_UNITS = {"s": 1, "": 60, "m": 60, "h": 3600}
MAX_TRIES = 10_000
MAX_DELAY = 31 * 24 * 3600  # a month between tries at most: farther, the next try's date could not be computed


@dataclass(frozen=True)
class RetryPolicy:
    stages: tuple[tuple[int, int], ...]  # (seconds between tries, number of tries)
    text: str

    @property
    def total_tries(self) -> int:
        return sum(count for _, count in self.stages)

    def delay(self, tries_done: int, *, jitter: bool = True) -> timedelta | None:
        """The wait before try number ``tries_done + 1``; None when the policy is exhausted."""
        remaining = tries_done
        for seconds, count in self.stages:
            if remaining < count:
                factor = random.uniform(0.9, 1.1) if jitter else 1.0
                return timedelta(seconds=seconds * factor)
            remaining -= count
        return None

    def describe(self) -> str:
        """The policy in words, for the operator (French)."""
        return ", puis ".join(f"toutes les {_duration(seconds)} × {count}" for seconds, count in self.stages)


def parse_policy(text: str) -> RetryPolicy:
    """Read a policy; :raises InvalidInput: a line that is not « délai X nombre », a zero delay or count, a
    delay of more than a month."""
    stages: list[tuple[int, int]] = []
    for raw in re.split(r"[\n;,]", text):
        if not raw.strip():
            continue
        match = _LINE.match(raw)
        if match is None:
            raise InvalidInput(
                message(
                    "politique de relance illisible : « %(raw)s » (attendu « 10 X 3 », « 30s X 5 »)", raw=raw.strip()
                )
            )
        amount, unit, count = int(match[1]), match[2], int(match[3] or 1)
        if amount == 0 or count == 0:
            raise InvalidInput(
                message("politique de relance : délai et nombre doivent être positifs (« %(raw)s »)", raw=raw.strip())
            )
        if amount * _UNITS[unit] > MAX_DELAY:
            raise InvalidInput(
                message("politique de relance : un mois au plus entre deux essais (« %(raw)s »)", raw=raw.strip())
            )
        stages.append((amount * _UNITS[unit], count))
    if not stages:
        raise InvalidInput(message("politique de relance vide"))
    if sum(count for _, count in stages) > MAX_TRIES:
        raise InvalidInput(message("politique de relance : plus de %(max_tries)s essais", max_tries=MAX_TRIES))
    return RetryPolicy(tuple(stages), text.strip())


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return "heures" if seconds == 3600 else f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
