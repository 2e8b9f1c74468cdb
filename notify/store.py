"""The notifier's own state in one SQLite database (`<data_dir>/notify.sqlite3`), so a restart loses nothing.

Tables: `alerts` (every alert taken on, its team, escalation chain and level, acknowledgement), `messages` and
`message_alerts` (groups being collected and sent), `deliveries` (one per message and channel: the outbox the
senders work through, with attempts and the next retry time), `lifecycle_outbox` (alert.lifecycle events waiting
to be published; a row is marked published only after Kafka acknowledged it), `audit` (who logged in, saw and
acknowledged what), `sessions` (hashes of session tokens).

An alert is committed here, with its `raised` event and its place in a group, before the consumer commits its
Kafka offset: a crash between the two re-reads the alert, and the primary key drops the repeat. WAL mode with
`synchronous=FULL`: a committed alert survives a power cut. All access is from one thread (the service's event
loop); times are stored as epoch seconds.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from notify.core import (
    EscalationState,
    Timing,
    group_key,
    is_repeat,
    lifecycle,
    send_at,
)
from notify.rota import Rota
from schemas.alerts import AlertLifecycle, AlertRaised
from schemas.codec import decode_alert, encode

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id TEXT PRIMARY KEY,
    payload BLOB NOT NULL,
    rule_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    team TEXT NOT NULL,
    chain TEXT NOT NULL,
    received_at REAL NOT NULL,
    suppressed INTEGER NOT NULL DEFAULT 0,
    level INTEGER NOT NULL DEFAULT 0,
    level_started_at REAL NOT NULL,
    escalation_done INTEGER NOT NULL DEFAULT 0,
    acked_by TEXT,
    acked_at REAL,
    ack_note TEXT
);
CREATE INDEX IF NOT EXISTS alerts_team_open ON alerts (team, acked_at);
CREATE INDEX IF NOT EXISTS alerts_repeat ON alerts (team, rule_id, subject_id, suppressed);
CREATE INDEX IF NOT EXISTS alerts_escalation ON alerts (acked_at, escalation_done, level_started_at);
CREATE TABLE IF NOT EXISTS messages (
    message_id INTEGER PRIMARY KEY,
    group_key TEXT NOT NULL,
    team TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    level INTEGER NOT NULL,
    created_at REAL NOT NULL,
    send_at REAL NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_collecting ON messages (status, group_key);
CREATE INDEX IF NOT EXISTS messages_due ON messages (status, send_at);
CREATE TABLE IF NOT EXISTS message_alerts (
    message_id INTEGER NOT NULL,
    alert_id TEXT NOT NULL,
    PRIMARY KEY (message_id, alert_id)
);
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL,
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at);
CREATE TABLE IF NOT EXISTS lifecycle_outbox (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    alert_id TEXT NOT NULL,
    state TEXT NOT NULL,
    payload BLOB NOT NULL,
    published INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS lifecycle_pending ON lifecycle_outbox (published, seq);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    alert_ids TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    team TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
"""


def _ts(at: datetime) -> float:
    return at.timestamp()


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True)
class AlertRecord:
    """An alert as the notifier holds it."""

    alert: AlertRaised
    team: str
    chain: tuple[str, ...]
    received_at: datetime
    suppressed: bool
    level: int
    level_started_at: datetime
    acked_by: str | None
    acked_at: datetime | None
    ack_note: str | None

    def escalation(self) -> EscalationState:
        return EscalationState(
            self.alert.severity, self.acked_at is not None, self.level, self.level_started_at, self.chain
        )


@dataclass(frozen=True)
class DueDelivery:
    """A delivery whose time has come: one message to one address on one channel."""

    delivery_id: int
    message_id: int
    team: str
    contact_id: str
    level: int
    channel: str
    address: str
    attempts: int
    alerts: tuple[AlertRaised, ...]


@dataclass(frozen=True)
class DeliveryResult:
    delivery_id: int
    error: str | None  # None = accepted
    at: datetime


@dataclass(frozen=True)
class Session:
    user: str
    team: str
    csrf: str
    expires_at: datetime


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    alert_ids: tuple[str, ...]
    detail: str


class NotifyStore:
    """The SQLite state. Every public method is one transaction."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- taking alerts on -------------------------------------------------------------------------------------

    def take(self, alerts: Sequence[AlertRaised], rota: Rota, timing: Timing, now: datetime) -> list[str]:
        """Record new alerts (ids already held are ignored), route each, and add it to its group.

        Returns the ids that were new. Runs as one transaction: afterwards the Kafka offsets may be committed."""
        new: list[str] = []
        with self._tx() as db:
            for alert in alerts:
                if (
                    alert.alert_id in new
                    or db.execute("SELECT 1 FROM alerts WHERE alert_id = ?", (alert.alert_id,)).fetchone()
                ):
                    continue
                duty = rota.route(alert.la_code, alert.rule_id, alert.severity, now)
                team = duty.team.name
                row = db.execute(
                    "SELECT MAX(received_at) FROM alerts WHERE team = ? AND rule_id = ? AND subject_id = ? "
                    "AND suppressed = 0",
                    (team, alert.rule_id, alert.subject_id),
                ).fetchone()
                last = _dt(row[0]) if row and row[0] is not None else None
                suppressed = is_repeat(alert.severity, last, now, timing)
                db.execute(
                    "INSERT INTO alerts (alert_id, payload, rule_id, severity, subject_id, team, chain, received_at, "
                    "suppressed, level, level_started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
                    (
                        alert.alert_id,
                        encode(alert),
                        alert.rule_id,
                        alert.severity,
                        alert.subject_id,
                        team,
                        json.dumps(list(duty.chain)),
                        _ts(now),
                        int(suppressed),
                        _ts(now),
                    ),
                )
                note = "repeat of an alert messaged recently: shown on the page, not messaged" if suppressed else None
                self._lifecycle(db, lifecycle(alert, "raised", now, team=team, recipient=duty.chain[0], note=note))
                if not suppressed:
                    self._join_group(db, alert, team, duty.chain[0], 0, timing, now)
                new.append(alert.alert_id)
        return new

    def _join_group(
        self, db: sqlite3.Connection, alert: AlertRaised, team: str, contact: str, level: int, timing: Timing,
        now: datetime, *, immediately: bool = False,
    ) -> int:  # fmt: skip
        key = group_key(team, contact, level, alert.subject_id)
        row = db.execute(
            "SELECT message_id, send_at FROM messages WHERE status = 'collecting' AND group_key = ?", (key,)
        ).fetchone()
        when = now if immediately else send_at(alert.severity, now, timing, _dt(row[1]) if row else None)
        if row:
            message_id = int(row[0])
            db.execute("UPDATE messages SET send_at = ? WHERE message_id = ?", (_ts(when), message_id))
        else:
            cur = db.execute(
                "INSERT INTO messages (group_key, team, contact_id, level, created_at, send_at, status) "
                "VALUES (?, ?, ?, ?, ?, ?, 'collecting')",
                (key, team, contact, level, _ts(now), _ts(when)),
            )
            message_id = int(cur.lastrowid or 0)
        db.execute("INSERT OR IGNORE INTO message_alerts VALUES (?, ?)", (message_id, alert.alert_id))
        return message_id

    # -- sending ----------------------------------------------------------------------------------------------

    def release_due(self, now: datetime, channels_of: Callable[[str], list[tuple[str, str]]]) -> int:
        """Messages whose collecting time is over get one delivery per channel of their contact."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT message_id, contact_id FROM messages WHERE status = 'collecting' AND send_at <= ?",
                (_ts(now),),
            ).fetchall()
            for message_id, contact_id in rows:
                for channel, address in channels_of(contact_id):
                    db.execute(
                        "INSERT INTO deliveries (message_id, channel, address, status, next_attempt_at) "
                        "VALUES (?, ?, ?, 'pending', ?)",
                        (message_id, channel, address, _ts(now)),
                    )
                db.execute("UPDATE messages SET status = 'sending' WHERE message_id = ?", (message_id,))
        return len(rows)

    def next_send_at(self) -> datetime | None:
        """The earliest time a collecting message or a pending retry falls due (for the service's sleep)."""
        row = self._db.execute(
            "SELECT MIN(t) FROM (SELECT MIN(send_at) AS t FROM messages WHERE status = 'collecting' "
            "UNION ALL SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending')"
        ).fetchone()
        return _dt(row[0]) if row and row[0] is not None else None

    def due_deliveries(self, now: datetime, exclude: set[int], limit: int = 500) -> list[DueDelivery]:
        rows = self._db.execute(
            "SELECT d.delivery_id, d.message_id, m.team, m.contact_id, m.level, d.channel, d.address, d.attempts "
            "FROM deliveries d JOIN messages m USING (message_id) "
            "WHERE d.status = 'pending' AND d.next_attempt_at <= ? ORDER BY d.next_attempt_at LIMIT ?",
            (_ts(now), limit + len(exclude)),
        ).fetchall()
        due: list[DueDelivery] = []
        for delivery_id, message_id, team, contact, level, channel, address, attempts in rows:
            if delivery_id in exclude:
                continue
            due.append(
                DueDelivery(
                    delivery_id,
                    message_id,
                    team,
                    contact,
                    level,
                    channel,
                    address,
                    attempts,
                    self._message_alerts(message_id),
                )
            )
            if len(due) >= limit:
                break
        return due

    def _message_alerts(self, message_id: int) -> tuple[AlertRaised, ...]:
        rows = self._db.execute(
            "SELECT a.payload FROM message_alerts ma JOIN alerts a USING (alert_id) WHERE ma.message_id = ?",
            (message_id,),
        ).fetchall()
        return tuple(decode_alert(bytes(r[0])) for r in rows)

    def record_results(self, results: Sequence[DeliveryResult], timing: Timing) -> None:
        """Apply finished attempts in one transaction: accepted ones are done, refused ones wait to retry."""
        from notify.core import retry_delay

        if not results:
            return
        with self._tx() as db:
            for result in results:
                row = db.execute(
                    "SELECT d.message_id, d.channel, d.attempts, m.team, m.contact_id, m.level "
                    "FROM deliveries d JOIN messages m USING (message_id) WHERE d.delivery_id = ? "
                    "AND d.status = 'pending'",
                    (result.delivery_id,),
                ).fetchone()
                if row is None:
                    continue
                message_id, channel, attempts, team, contact, level = row
                attempts += 1
                alerts = self._message_alerts(message_id)
                if result.error is None:
                    db.execute(
                        "UPDATE deliveries SET status = 'done', attempts = ?, delivered_at = ?, last_error = NULL "
                        "WHERE delivery_id = ?",
                        (attempts, _ts(result.at), result.delivery_id),
                    )
                    for alert in alerts:
                        event = lifecycle(
                            alert, "notified", result.at, team=team, channel=channel, recipient=contact, level=level
                        )
                        self._lifecycle(db, event)
                    left = db.execute(
                        "SELECT COUNT(*) FROM deliveries WHERE message_id = ? AND status = 'pending'", (message_id,)
                    ).fetchone()[0]
                    if not left:
                        db.execute("UPDATE messages SET status = 'sent' WHERE message_id = ?", (message_id,))
                else:
                    retry_at = _ts(result.at) + retry_delay(attempts, timing)
                    db.execute(
                        "UPDATE deliveries SET attempts = ?, last_error = ?, next_attempt_at = ? WHERE delivery_id = ?",
                        (attempts, result.error[:1000], retry_at, result.delivery_id),
                    )
                    for alert in alerts:
                        event = lifecycle(
                            alert, "delivery_failed", result.at, team=team, channel=channel, recipient=contact,
                            level=level, error=result.error, attempt=attempts,
                        )  # fmt: skip
                        self._lifecycle(db, event)

    # -- escalation -------------------------------------------------------------------------------------------

    def escalation_candidates(self, now: datetime, shortest_after_s: float) -> list[AlertRecord]:
        """Open urgent alerts whose level started at least `shortest_after_s` ago (the caller decides per team)."""
        rows = self._db.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE acked_at IS NULL AND escalation_done = 0 "  # noqa: S608 (constant columns)
            "AND severity IN ('high', 'critical') AND level_started_at <= ?",
            (_ts(now) - shortest_after_s,),
        ).fetchall()
        return [_record(r) for r in rows]

    def escalate(self, record: AlertRecord, level: int, contact: str, timing: Timing, now: datetime) -> bool:
        """Move an alert to `level` and message `contact` at once. False if it was acknowledged meanwhile."""
        alert = record.alert
        with self._tx() as db:
            cur = db.execute(
                "UPDATE alerts SET level = ?, level_started_at = ? WHERE alert_id = ? AND acked_at IS NULL "
                "AND level = ?",
                (level, _ts(now), alert.alert_id, record.level),
            )
            if cur.rowcount != 1:
                return False
            self._lifecycle(db, lifecycle(alert, "escalated", now, team=record.team, recipient=contact, level=level))
            self._join_group(db, alert, record.team, contact, level, timing, now, immediately=True)
        return True

    def escalation_exhausted(self, alert_id: str, now: datetime) -> None:
        with self._tx() as db:
            db.execute("UPDATE alerts SET escalation_done = 1 WHERE alert_id = ?", (alert_id,))
            self._audit(db, now, "system", "escalation_exhausted", [alert_id], "no further contact in the chain")

    # -- the acknowledgement page -----------------------------------------------------------------------------

    def alert(self, alert_id: str) -> AlertRecord | None:
        row = self._db.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE alert_id = ?",  # noqa: S608 (constant columns)
            (alert_id,),
        ).fetchone()
        return _record(row) if row else None

    def open_alerts(self, team: str) -> list[AlertRecord]:
        rows = self._db.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE team = ? AND acked_at IS NULL ORDER BY received_at",  # noqa: S608 (constant columns)
            (team,),
        ).fetchall()
        return [_record(r) for r in rows]

    def recently_acknowledged(self, team: str, limit: int = 20) -> list[AlertRecord]:
        rows = self._db.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE team = ? AND acked_at IS NOT NULL "  # noqa: S608 (constant columns)
            "ORDER BY acked_at DESC LIMIT ?",
            (team, limit),
        ).fetchall()
        return [_record(r) for r in rows]

    def message_alert_ids(self, message_id: int) -> list[str]:
        rows = self._db.execute("SELECT alert_id FROM message_alerts WHERE message_id = ?", (message_id,))
        return [r[0] for r in rows.fetchall()]

    def acknowledge(self, alert_id: str, user: str, team: str, note: str | None, now: datetime) -> str:
        """`acknowledged`, `already` (someone was first), or `not_found` (no such alert in this user's team)."""
        with self._tx() as db:
            row = db.execute(
                f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE alert_id = ? AND team = ?",  # noqa: S608 (constant columns)
                (alert_id, team),
            ).fetchone()
            if row is None:
                self._audit(db, now, user, "ack_refused", [alert_id], "not an alert of the user's team")
                return "not_found"
            record = _record(row)
            if record.acked_at is not None:
                return "already"
            db.execute(
                "UPDATE alerts SET acked_by = ?, acked_at = ?, ack_note = ? WHERE alert_id = ?",
                (user, _ts(now), note, alert_id),
            )
            event = lifecycle(
                record.alert, "acknowledged", now, team=team, actor=user, level=record.level, note=note or None
            )
            self._lifecycle(db, event)
            self._audit(db, now, user, "acknowledged", [alert_id], note or "")
        return "acknowledged"

    # -- audit ------------------------------------------------------------------------------------------------

    def audit(self, now: datetime, actor: str, action: str, alert_ids: Sequence[str] = (), detail: str = "") -> None:
        with self._tx() as db:
            self._audit(db, now, actor, action, alert_ids, detail)

    @staticmethod
    def _audit(
        db: sqlite3.Connection, now: datetime, actor: str, action: str, alert_ids: Sequence[str], detail: str
    ) -> None:
        db.execute(
            "INSERT INTO audit (at, actor, action, alert_ids, detail) VALUES (?, ?, ?, ?, ?)",
            (_ts(now), actor, action, ",".join(alert_ids), detail[:1000]),
        )

    def audit_trail(self, limit: int = 200, actor: str | None = None) -> list[AuditEntry]:
        query = "SELECT at, actor, action, alert_ids, detail FROM audit"
        args: tuple[object, ...] = ()
        if actor is not None:
            query += " WHERE actor = ?"
            args = (actor,)
        rows = self._db.execute(query + " ORDER BY seq DESC LIMIT ?", (*args, limit)).fetchall()
        return [
            AuditEntry(_dt(at), who, action, tuple(ids.split(",")) if ids else (), detail)
            for at, who, action, ids, detail in rows
        ]

    # -- sessions ---------------------------------------------------------------------------------------------

    def create_session(self, token_hash: str, user: str, team: str, csrf: str, now: datetime, ttl_s: float) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM sessions WHERE expires_at <= ?", (_ts(now),))
            db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
                (token_hash, user, team, csrf, _ts(now), _ts(now) + ttl_s),
            )

    def session(self, token_hash: str, now: datetime) -> Session | None:
        row = self._db.execute(
            "SELECT user, team, csrf, expires_at FROM sessions WHERE token_hash = ? AND expires_at > ?",
            (token_hash, _ts(now)),
        ).fetchone()
        return Session(row[0], row[1], row[2], _dt(row[3])) if row else None

    def end_session(self, token_hash: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

    # -- lifecycle outbox -------------------------------------------------------------------------------------

    @staticmethod
    def _lifecycle(db: sqlite3.Connection, event: AlertLifecycle) -> None:
        db.execute(
            "INSERT OR IGNORE INTO lifecycle_outbox (event_id, alert_id, state, payload) VALUES (?, ?, ?, ?)",
            (event.event_id, event.alert_id, event.state, encode(event)),
        )

    def pending_lifecycle(self, limit: int = 1000) -> list[tuple[int, str, bytes]]:
        """(seq, alert_id, encoded event) not yet acknowledged by Kafka, oldest first."""
        rows = self._db.execute(
            "SELECT seq, alert_id, payload FROM lifecycle_outbox WHERE published = 0 ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        return [(int(s), str(a), bytes(p)) for s, a, p in rows]

    def mark_published(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        with self._tx() as db:
            db.executemany("UPDATE lifecycle_outbox SET published = 1 WHERE seq = ?", [(s,) for s in seqs])

    def lifecycle_events(self, alert_id: str | None = None) -> list[AlertLifecycle]:
        """Every lifecycle event recorded (for one alert), in order: for tests and `safeguard notify status`."""
        from schemas.codec import decode_alert_lifecycle

        if alert_id is None:
            rows = self._db.execute("SELECT payload FROM lifecycle_outbox ORDER BY seq").fetchall()
        else:
            rows = self._db.execute(
                "SELECT payload FROM lifecycle_outbox WHERE alert_id = ? ORDER BY seq", (alert_id,)
            ).fetchall()
        return [decode_alert_lifecycle(bytes(r[0])) for r in rows]

    def counts(self) -> dict[str, int]:
        """Numbers for status output: alerts, open, pending deliveries, unpublished lifecycle events."""
        one = self._db.execute
        return {
            "alerts": one("SELECT COUNT(*) FROM alerts").fetchone()[0],
            "open": one("SELECT COUNT(*) FROM alerts WHERE acked_at IS NULL").fetchone()[0],
            "pending_deliveries": one("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'").fetchone()[0],
            "failing_deliveries": one(
                "SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND attempts > 0"
            ).fetchone()[0],
            "unpublished_lifecycle": one("SELECT COUNT(*) FROM lifecycle_outbox WHERE published = 0").fetchone()[0],
        }


_ALERT_COLUMNS = "payload, team, chain, received_at, suppressed, level, level_started_at, acked_by, acked_at, ack_note"


def _record(row: Sequence[object]) -> AlertRecord:
    payload, team, chain, received, suppressed, level, started, acked_by, acked_at, note = row
    assert isinstance(payload, bytes | str) and isinstance(chain, str)
    return AlertRecord(
        alert=decode_alert(payload if isinstance(payload, bytes) else payload.encode()),
        team=str(team),
        chain=tuple(json.loads(chain)),
        received_at=_dt(float(received)),  # type: ignore[arg-type]
        suppressed=bool(suppressed),
        level=int(level),  # type: ignore[call-overload]
        level_started_at=_dt(float(started)),  # type: ignore[arg-type]
        acked_by=None if acked_by is None else str(acked_by),
        acked_at=None if acked_at is None else _dt(float(acked_at)),  # type: ignore[arg-type]
        ack_note=None if note is None else str(note),
    )
