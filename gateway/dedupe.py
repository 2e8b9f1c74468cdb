"""The accepted-event index: which event ids this gateway has published (and Kafka acknowledged).

An event whose id is in the index is answered `duplicate` and not published again; the same id with different
content is rejected (`event_id_reused`). The index is SQLite in `gateway.data_dir`, one per gateway instance,
and bounded: past `dedupe_max_entries` ids the oldest are forgotten. So the window is "the last N ids accepted by
this instance" (5 million by default, months of a partnership's events). Outside it — an id older than the
window, another gateway instance, an id written to Kafka directly — a repeat is published again; consumers
dedupe by event_id (the worker's state and the sink's tables), so a repeat never doubles an alert or a row.
An id is recorded only after Kafka acknowledged it (also when the acknowledgement comes after the request
gave up and answered 503), so a 503 is never turned into a false `duplicate`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

_PRUNE_EVERY = 10_000


class AcceptedIndex:
    """event_id → content digest of every event this gateway published, bounded to the newest `max_entries`."""

    def __init__(self, path: Path | str, *, max_entries: int) -> None:
        if isinstance(path, Path):
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS accepted (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL "
            "UNIQUE, digest BLOB NOT NULL, principal TEXT NOT NULL)"
        )
        self._lock = threading.Lock()
        self._max = max_entries
        self._since_prune = 0

    def lookup(self, event_ids: Iterable[str]) -> dict[str, bytes]:
        """The digests of those of `event_ids` already accepted."""
        ids = list(set(event_ids))
        found: dict[str, bytes] = {}
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT event_id, digest FROM accepted WHERE event_id IN ({marks})", chunk)  # noqa: S608
                found.update((row[0], bytes(row[1])) for row in rows)
        return found

    def record(self, entries: Iterable[tuple[str, bytes, str]]) -> None:
        """Remember (event_id, digest, principal) of acknowledged events; an id already there is kept as it was."""
        rows = list(entries)
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR IGNORE INTO accepted (event_id, digest, principal) VALUES (?, ?, ?)", rows)
            self._db.execute("COMMIT")
            self._since_prune += len(rows)
            if self._since_prune >= min(_PRUNE_EVERY, self._max // 10 or 1):
                self._since_prune = 0
                self._db.execute("DELETE FROM accepted WHERE seq <= (SELECT MAX(seq) FROM accepted) - ?", (self._max,))

    def close(self) -> None:
        with self._lock:
            self._db.close()
