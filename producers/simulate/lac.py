"""The simulated missing episodes of looked-after children as an SSDA903 return, for round trips.

The 903 holds looked-after children only, and days only: each episode is written with the day (in England)
it was reported and, once found, the day found. Children get CHILD ids LAC0000001, LAC0000002, ... in order
of first appearance; the mapping is returned so a test can follow each child through an import.
"""

from __future__ import annotations

from collections.abc import Iterable
from zoneinfo import ZoneInfo

from producers.history.lac_writer import MissingRecord
from schemas.events import AgencyEvent, MissingFound, MissingReported

LONDON = ZoneInfo("Europe/London")


def lac_missing(events: Iterable[AgencyEvent]) -> tuple[list[MissingRecord], dict[str, str]]:
    """The looked-after children's episodes (in the order reported) and each child pseudonym's CHILD id."""
    events = list(events)
    found = {e.episode_id: e.occurred_at.astimezone(LONDON).date() for e in events if isinstance(e, MissingFound)}
    children: dict[str, str] = {}
    records = []
    for event in events:
        if isinstance(event, MissingReported) and event.looked_after:
            child = children.setdefault(event.child_id, f"LAC{len(children) + 1:07d}")
            start = event.occurred_at.astimezone(LONDON).date()
            records.append(MissingRecord(child, event.absence_type, start, found.get(event.episode_id)))
    return records, children
