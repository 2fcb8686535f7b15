"""French local time: collectivités work in Paris time, the kit stores UTC (socle.db.UTCDateTime).

Dates with a legal meaning (the start and end of a DUA) and every date or time shown to a user are Paris ones:
2026-03-14T23:30Z is 15 March in Paris.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")


def french_date(moment: datetime) -> date:
    """The Paris date of an aware instant."""
    return moment.astimezone(PARIS).date()


def french_today() -> date:
    """Today in Paris."""
    return french_date(datetime.now(UTC))


_MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)


def spelled_date(day: date) -> str:
    """A date as a French sentence writes it: ``date(2026, 12, 1)`` → « 1er décembre 2026 »."""
    return f"{'1er' if day.day == 1 else day.day} {_MONTHS[day.month - 1]} {day.year}"


def spelled_datetime(moment: datetime) -> str:
    """An aware instant in Paris time, as a sentence writes it: « 3 décembre 2026 à 9 h 05 »."""
    local = moment.astimezone(PARIS)
    return f"{spelled_date(local.date())} à {local.hour} h {local.minute:02d}"
