"""The evidence behind an alert, for the page's timeline: each evidence event's type, time and agency.

An alert carries only the ids of its evidence events; the events themselves are in the sink's store (ClickHouse or
embedded chDB). `StoreEvidence` looks a page's worth of ids up in one query over the five event tables, read with
FINAL so that an erased event (a purge tombstone) is not shown. The page calls it from its own thread pool; when
the store cannot be reached, or an event is not stored yet, the page shows the bare id instead (never an error).
The lookup returns what the contract's envelope says and nothing else: no names, no free text.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

log = logging.getLogger(__name__)

EVENT_TABLES = ("contacts", "contact_decisions", "missing_episodes", "domestic_incidents", "cp_plans")
MAX_IDS = 2000


@dataclass(frozen=True)
class Evidence:
    event_id: str
    event_type: str
    occurred_at: datetime
    agency_type: str
    agency_code: str


class EvidenceSource(Protocol):
    def lookup(self, event_ids: Sequence[str]) -> Mapping[str, Evidence]: ...


def timeline(event_ids: Sequence[str], found: Mapping[str, Evidence]) -> list[tuple[str, Evidence | None]]:
    """An alert's evidence in time order (the events found), then the ids not found, in the alert's order."""
    known = sorted((found[e] for e in event_ids if e in found), key=lambda ev: (ev.occurred_at, ev.event_id))
    return [(e.event_id, e) for e in known] + [(i, None) for i in event_ids if i not in found]


class StoreEvidence:
    """Evidence from the sink's tables through a clickhouse-connect client (made on first use by `connect`)."""

    def __init__(self, connect: Callable[[], Any], database: str) -> None:
        self._connect = connect
        self._database = database
        self._client: Any = None
        self._lock = threading.Lock()  # the page's threads take turns: a client is not shared between queries

    def lookup(self, event_ids: Sequence[str]) -> Mapping[str, Evidence]:
        wanted = sorted(set(event_ids))[:MAX_IDS]
        if not wanted:
            return {}
        with self._lock:
            return self._lookup(wanted)

    def _lookup(self, wanted: list[str]) -> Mapping[str, Evidence]:
        try:
            if self._client is None:
                self._client = self._connect()
            union = " UNION ALL ".join(
                f"SELECT event_id, event_type, occurred_at, agency_type, agency_code FROM `{self._database}`.{t} "  # noqa: S608 (constant names; the database name is checked by the sink's settings)
                "FINAL WHERE event_id IN {ids:Array(String)}"
                for t in EVENT_TABLES
            )
            rows = self._client.query(union, parameters={"ids": wanted}).result_rows
        except Exception as exc:  # the page shows the ids alone; the store being away is not the page's failure
            log.warning("evidence lookup failed (the page shows event ids only): %s", str(exc).splitlines()[0][:200])
            self._client = None
            return {}
        found: dict[str, Evidence] = {}
        for event_id, event_type, occurred_at, agency_type, agency_code in rows:
            at = occurred_at if occurred_at.tzinfo else occurred_at.replace(tzinfo=UTC)
            found[str(event_id)] = Evidence(str(event_id), str(event_type), at, str(agency_type), str(agency_code))
        return found
