"""What every history mapping shares: times in England, and events checked as every producer checks them.

A mapping builds an event's fields, `checked` validates them against the contract's models and limits and
the event-time window; a failure comes back as a `Problem` (code and a reason that never repeats a value),
for the mapping to report at the element or cell the event came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from producers.history.codes import Moment, Problem
from schemas.codec import validate_event
from schemas.deadletter import safe_error
from schemas.errors import ContractError
from schemas.events import AgencyEvent
from schemas.limits import EventTimeWindow, event_time_issues

LONDON = ZoneInfo("Europe/London")


@dataclass(frozen=True, slots=True)
class Mapped:
    """An event with the element or cell it came from (for a rejection found later, e.g. by the window)."""

    event: AgencyEvent
    path: str
    line: int


def midnight(day: date) -> datetime:
    """Local midnight of a day in England, with the fixed offset a clock there showed (+00:00 or +01:00)."""
    return local_time(Moment(day))


def local_time(moment: Moment) -> datetime:
    """The instant of a moment, with a fixed offset: its own, else the one a clock in England showed then."""
    day = moment.day
    if moment.offset is not None:
        sign = -1 if moment.offset.startswith("-") else 1
        digits = moment.offset.lstrip("+-").replace(":", "")
        zone = (
            UTC if moment.offset == "Z" else timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        )
        return datetime(day.year, day.month, day.day, moment.hour, moment.minute, moment.second, tzinfo=zone)
    local = datetime(day.year, day.month, day.day, moment.hour, moment.minute, moment.second, tzinfo=LONDON)
    offset = local.utcoffset()
    assert offset is not None
    return local.replace(tzinfo=timezone(offset))


def checked(fields: dict[str, Any], *, reference: datetime, window: EventTimeWindow) -> AgencyEvent | Problem:
    """The event, validated as every producer validates (the contract's models and limits, the time window)."""
    try:
        event = validate_event(fields)
    except ContractError as exc:
        return Problem(exc.reason_code, safe_error(exc.reason))
    issues = event_time_issues(event, reference=reference, window=window)
    if issues:
        return Problem(issues[0].code, safe_error("; ".join(str(i) for i in issues)))
    return event
