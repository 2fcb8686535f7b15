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
