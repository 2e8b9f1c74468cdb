"""The notifier's own state in one SQLite database (`<data_dir>/notify.sqlite3`), so a restart loses nothing.

Tables: `alerts` (every alert taken on, its team, escalation chain and level, acknowledgement), `messages` and
`message_alerts` (groups being collected and sent), `deliveries` (one per message and channel: the outbox the
senders work through, with attempts and the next retry time), `lifecycle_outbox` (alert.lifecycle events waiting
to be published; a row is marked published only after Kafka acknowledged it), `audit` (who logged in, saw and
acknowledged what), `sessions` (hashes of session tokens), `silences` (made on the page or with the CLI; an
alert held by a silence or an inhibition rule carries `held_kind`, `held_by`, `held_until` and `held_note`).

**Versions.** `PRAGMA user_version` is the schema's version; `MIGRATIONS[n]` takes a database from version n to
n + 1 (in one transaction, when the store opens it). A database of a newer version is refused.

An alert is committed here, with its `raised` event and its place in a group, before the consumer commits its
Kafka offset: a crash between the two re-reads the alert, and the primary key drops the repeat. WAL mode with
`synchronous=FULL`: a committed alert survives a power cut. Times are stored as epoch seconds.

**Threads.** A `sqlite3` connection must not be shared between threads, so each thread that uses the store gets a
connection of its own (opened on first use, all closed by `close`). The service's event loop does the alert work;
the acknowledgement page reads pages and writes its audit rows from its own worker threads, so a large page never
holds the loop. WAL lets those readers run beside the loop's writes; `busy_timeout` covers two writers meeting.

**Permissions.** The database holds pseudonyms, session hashes and the audit trail: a data directory the store
creates is mode 0700, and the database file and its `-wal`, `-shm` and `-journal` files are 0600 (created so, and an
existing file is tightened when the store opens it).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import threading
import uuid
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
from notify.holds import (
    MATCHER_FIELDS,
    AlertFacts,
    Hold,
    OpenAlert,
    Silence,
    describe_matchers,
    hold_for,
    longest_window,
    matchers_of,
    sources_wanted,
)
from notify.rota import Rota
from schemas.alerts import AlertLifecycle, AlertRaised
from schemas.codec import decode_alert, encode

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600
_SIDE_FILES = ("-wal", "-shm", "-journal")

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
CREATE INDEX IF NOT EXISTS alerts_open_page ON alerts (
    team, (CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END),
    received_at DESC, alert_id
) WHERE acked_at IS NULL;
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


# Each entry takes the schema from version n (its index) to n + 1; statements separated by ";".
MIGRATIONS: tuple[str, ...] = (
    # 1: silences, and alerts held by a silence or an inhibition rule
    """
    ALTER TABLE alerts ADD COLUMN held_kind TEXT;
    ALTER TABLE alerts ADD COLUMN held_by TEXT;
    ALTER TABLE alerts ADD COLUMN held_until REAL;
    ALTER TABLE alerts ADD COLUMN held_note TEXT;
    CREATE INDEX alerts_held ON alerts (held_until) WHERE held_until IS NOT NULL;
    CREATE INDEX alerts_sources ON alerts (rule_id, received_at);
    CREATE TABLE silences (
        silence_id TEXT PRIMARY KEY,
        matchers TEXT NOT NULL,
        starts_at REAL NOT NULL,
        ends_at REAL NOT NULL,
        reason TEXT NOT NULL,
        author TEXT NOT NULL,
        created_at REAL NOT NULL,
        expired_at REAL,
        expired_by TEXT
    );
    CREATE INDEX silences_end ON silences (ends_at)
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreVersionError(RuntimeError):
    """The database was written by a newer notifier."""


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
    held_kind: str | None = None  # "silence" or "inhibition" while held back from messaging
    held_by: str | None = None  # the silence id, or the id of the alert holding it back
    held_until: datetime | None = None  # when it is looked at again (earlier if the hold ends early)
    held_note: str | None = None  # what holds it, for people (kept after the hold ends)

    @property
    def held(self) -> bool:
        return self.held_kind is not None

    def facts(self) -> AlertFacts:
        a = self.alert
        return AlertFacts(a.alert_id, a.rule_id, a.severity, a.la_code, self.team, a.subject_id, self.received_at)

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


@dataclass(frozen=True)
class AlertPage:
    """One page of a team's open alerts, most severe first, newest first within a severity."""

    records: tuple[AlertRecord, ...]
    page: int  # 1-based, within 1..pages
    pages: int  # at least 1, also when there are no open alerts
    total: int  # open alerts of the team
    linked: frozenset[str]  # ids of the asked-for message's alerts (highlighted where shown)
    linked_open: int  # how many of those are open (on this page or another)


class NotifyStore:
    """The SQLite state. Every public method is one transaction; any thread may call any method."""

    def __init__(self, path: Path | str) -> None:
        if str(path) == ":memory:":  # one database shared by the threads' connections while the store is open
            self._target, self._uri = f"file:notify-{uuid.uuid4().hex}?mode=memory&cache=shared", True
        else:
            _private_directory(Path(path).parent)
            _private_file(Path(path))
            self._target, self._uri = str(path), False
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = False
        db = self._db
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA)
        self._migrate(db)
        if not self._uri:
            _tighten_side_files(Path(path))

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Bring the schema to SCHEMA_VERSION, one migration per transaction (another process may race us)."""
        while True:
            with self._tx() as tx:
                version = int(tx.execute("PRAGMA user_version").fetchone()[0])
                if version > SCHEMA_VERSION:
                    raise StoreVersionError(
                        f"the notifier database is at schema version {version}, newer than this notifier "
                        f"({SCHEMA_VERSION}): run the newer notifier, or restore a backup"
                    )
                if version == SCHEMA_VERSION:
                    return
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        tx.execute(statement)
                tx.execute(f"PRAGMA user_version = {version + 1}")
                log.info("notifier store: schema migrated to version %d", version + 1)

    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @property
    def _db(self) -> sqlite3.Connection:
        """This thread's connection (opened on its first use)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            self._local.db = db
        return db

    def _connect(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise sqlite3.ProgrammingError("the notifier store is closed")
            # check_same_thread=False only so that close() may close every thread's connection; each connection
            # is used by the thread that opened it.
            db = sqlite3.connect(self._target, isolation_level=None, check_same_thread=False, uri=self._uri)
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=10000")
            self._connections.append(db)
        return db

    def close(self) -> None:
        """Close every thread's connection. Call it when no thread uses the store any more."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for db in reversed(connections):  # the first one last: it keeps an in-memory database alive
            db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction. This process's writers take turns on a lock first: a thread waiting for another's
        commit then waits exactly that long, where SQLite's busy handler would sleep in growing steps (up to 100 ms
        each, on the event loop when the loop is the one waiting)."""
        db = self._db
        with self._write_lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query in it sees the same snapshot (a page and its count agree)."""
        db = self._db
        db.execute("BEGIN")
        try:
            yield db
        finally:
            db.execute("COMMIT")

    # -- taking alerts on -------------------------------------------------------------------------------------

    def take(self, alerts: Sequence[AlertRaised], rota: Rota, timing: Timing, now: datetime) -> list[str]:
        """Record new alerts (ids already held are ignored), route each, and add it to its group.

        Returns the ids that were new. Runs as one transaction: afterwards the Kafka offsets may be committed."""
        new: list[str] = []
        rules = rota.inhibitions
        # possible sources first, so that an incident's alerts arriving in one batch hold back their targets
        batch = sorted(alerts, key=lambda a: not any(a.rule_id in r.source_rules for r in rules))
        with self._tx() as db:
            silences = self._active_silences(db, now)
            for alert in batch:
                if (
                    alert.alert_id in new
                    or db.execute("SELECT 1 FROM alerts WHERE alert_id = ?", (alert.alert_id,)).fetchone()
                ):
                    continue
                duty = rota.route(alert.la_code, alert.rule_id, alert.severity, now)
                team = duty.team.name
                row = db.execute(
                    "SELECT MAX(received_at) FROM alerts WHERE team = ? AND rule_id = ? AND subject_id = ? "
                    "AND suppressed = 0 AND held_kind IS NULL",
                    (team, alert.rule_id, alert.subject_id),
                ).fetchone()
                last = _dt(row[0]) if row and row[0] is not None else None
                suppressed = is_repeat(alert.severity, last, now, timing)
                facts = AlertFacts(
                    alert.alert_id, alert.rule_id, alert.severity, alert.la_code, team, alert.subject_id, now
                )
                hold = hold_for(facts, silences, rules, self._possible_sources(db, rota, facts, now), now)
                db.execute(
                    "INSERT INTO alerts (alert_id, payload, rule_id, severity, subject_id, team, chain, received_at, "
                    "suppressed, level, level_started_at, held_kind, held_by, held_until, held_note) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
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
                        *_hold_columns(hold),
                    ),
                )
                notes = ["repeat of an alert messaged recently: shown on the page, not messaged"] if suppressed else []
                if hold is not None:
                    notes.append(f"{hold.note}: shown on the page, messaged if still open when the hold ends")
                    self._audit(db, now, "system", f"held_{hold.kind}", [alert.alert_id], hold.note)
                note = "; ".join(notes)[:1000] or None
                self._lifecycle(db, lifecycle(alert, "raised", now, team=team, recipient=duty.chain[0], note=note))
                if not suppressed and hold is None:
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

    # -- holds: silences and inhibition ---------------------------------------------------------------------

    @staticmethod
    def _active_silences(db: sqlite3.Connection, now: datetime) -> list[Silence]:
        rows = db.execute(
            f"SELECT {_SILENCE_COLUMNS} FROM silences WHERE starts_at <= ? AND ends_at > ? "  # noqa: S608 (constant columns)
            "AND (expired_at IS NULL OR expired_at > ?)",
            (_ts(now), _ts(now), _ts(now)),
        ).fetchall()
        return [_silence(r) for r in rows]

    @staticmethod
    def _possible_sources(db: sqlite3.Connection, rota: Rota, facts: AlertFacts, now: datetime) -> list[OpenAlert]:
        """Alerts that could hold `facts` back by an inhibition rule (the pure function picks among them)."""
        wanted = sources_wanted(rota.inhibitions, facts)
        if not wanted:
            return []
        targeting = [r for r in rota.inhibitions if r.is_target(facts)]
        since = _ts(now - longest_window(targeting))
        query = (
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE rule_id IN ({','.join('?' * len(wanted))}) "  # noqa: S608 (placeholders)
            "AND received_at > ? AND acked_at IS NULL AND held_kind IS NULL"
        )
        args: list[object] = [*sorted(wanted), since]
        if all("subject" in r.equal for r in targeting):
            query += " AND subject_id = ?"
            args.append(facts.subject)
        return [OpenAlert(_record(r).facts()) for r in db.execute(query, args).fetchall()]

    def release_held(self, now: datetime, rota: Rota, timing: Timing) -> int:
        """Look again at held alerts whose hold has ended: one still open is held again if another silence or
        inhibition applies now, else messaged (through its group; its escalation wait starts now). An acknowledged
        one is only let go. Returns how many were released to be messaged."""
        released = 0
        due = self._db.execute(
            "SELECT 1 FROM alerts WHERE held_until IS NOT NULL AND held_until <= ? LIMIT 1", (_ts(now),)
        ).fetchone()
        if due is None:  # the usual case, every tick: no write transaction, no lock
            return 0
        with self._tx() as db:
            rows = db.execute(
                f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE held_until IS NOT NULL AND held_until <= ?",  # noqa: S608 (constant columns)
                (_ts(now),),
            ).fetchall()
            if not rows:
                return 0
            silences = self._active_silences(db, now)
            for row in rows:
                record = _record(row)
                alert_id = record.alert.alert_id
                if record.acked_at is not None:
                    db.execute(_CLEAR_HOLD, (alert_id,))
                    continue
                facts = record.facts()
                hold = hold_for(facts, silences, rota.inhibitions, self._possible_sources(db, rota, facts, now), now)
                if hold is not None:
                    db.execute(_SET_HOLD, (*_hold_columns(hold), alert_id))
                    self._audit(db, now, "system", f"held_{hold.kind}", [alert_id], hold.note)
                    continue
                db.execute(_CLEAR_HOLD, (alert_id,))
                db.execute("UPDATE alerts SET level_started_at = ? WHERE alert_id = ?", (_ts(now), alert_id))
                detail = f"hold ended ({record.held_note or record.held_kind}); "
                if record.suppressed:
                    detail += "a repeat: shown, not messaged"
                else:
                    contact = record.chain[record.level] if record.level < len(record.chain) else record.chain[0]
                    self._join_group(db, record.alert, record.team, contact, record.level, timing, now)
                    released += 1
                    detail += "messaged now"
                self._audit(db, now, "system", "hold_released", [alert_id], detail)
        return released

    def create_silence(self, silence: Silence, via: str) -> None:
        """Record a silence (checked by the caller with `notify.holds.check_silence`) and audit it."""
        matchers = {field: sorted(values) for field, values in silence.matchers}
        with self._tx() as db:
            db.execute(
                f"INSERT INTO silences ({_SILENCE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608 (constant columns)
                (
                    silence.silence_id, json.dumps(matchers), _ts(silence.starts_at), _ts(silence.ends_at),
                    silence.reason, silence.author, _ts(silence.created_at), None, None,
                ),
            )  # fmt: skip
            detail = (
                f"silence {silence.silence_id} via {via}: {describe_matchers(silence.matchers)} from "
                f"{silence.starts_at.isoformat(timespec='minutes')} to {silence.ends_at.isoformat(timespec='minutes')}"
                f"; reason: {silence.reason}"
            )
            self._audit(db, silence.created_at, silence.author, "silence_created", (), detail)

    def silence(self, silence_id: str) -> Silence | None:
        row = self._db.execute(
            f"SELECT {_SILENCE_COLUMNS} FROM silences WHERE silence_id = ?",  # noqa: S608 (constant columns)
            (silence_id,),
        ).fetchone()
        return _silence(row) if row else None

    def silences(self, now: datetime, *, ended_within_s: float = 0.0, limit: int = 200) -> list[Silence]:
        """Silences not yet over (active and pending), and those that ended within `ended_within_s`; by start."""
        since = _ts(now) - ended_within_s
        rows = self._db.execute(
            f"SELECT {_SILENCE_COLUMNS} FROM silences WHERE MIN(ends_at, COALESCE(expired_at, ends_at)) > ? "  # noqa: S608 (constant columns)
            "ORDER BY starts_at, silence_id LIMIT ?",
            (since, limit),
        ).fetchall()
        return [_silence(r) for r in rows]

    def expire_silence(self, silence_id: str, actor: str, now: datetime, via: str, team: str | None = None) -> str:
        """End a silence now: `expired`, `not_found`, `ended` (already over), or `not_yours` (with `team`: a
        silence not limited to exactly that team). The alerts it holds are looked at again at the next tick."""
        with self._tx() as db:
            row = db.execute(
                f"SELECT {_SILENCE_COLUMNS} FROM silences WHERE silence_id = ?",  # noqa: S608 (constant columns)
                (silence_id,),
            ).fetchone()
            if row is None:
                return "not_found"
            silence = _silence(row)
            if team is not None and silence.teams() != frozenset({team}):
                self._audit(db, now, actor, "silence_expire_refused", (), f"silence {silence_id}: not of team {team}")
                return "not_yours"
            if now >= silence.end:
                return "ended"
            db.execute(
                "UPDATE silences SET expired_at = ?, expired_by = ? WHERE silence_id = ?", (_ts(now), actor, silence_id)
            )
            held = [
                r[0]
                for r in db.execute(
                    "SELECT alert_id FROM alerts WHERE held_kind = 'silence' AND held_by = ?", (silence_id,)
                ).fetchall()
            ]
            db.execute(
                "UPDATE alerts SET held_until = ? WHERE held_kind = 'silence' AND held_by = ?", (_ts(now), silence_id)
            )
            detail = f"silence {silence_id} via {via} ({describe_matchers(silence.matchers)}); {len(held)} held alerts"
            self._audit(db, now, actor, "silence_expired", held, detail)
        return "expired"

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
            "UNION ALL SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending' "
            "UNION ALL SELECT MIN(held_until) FROM alerts WHERE held_until IS NOT NULL)"
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
            "AND severity IN ('high', 'critical') AND held_kind IS NULL AND level_started_at <= ?",
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

    def alerts_page(self, team: str, page: int | None, size: int, message_id: int | None = None) -> AlertPage:
        """Page `page` (1-based) of the team's open alerts; out of range gives the nearest page (the last one).

        Without a page, the one holding the first open alert of `message_id` (a message's link), else the first."""
        size = max(1, size)
        with self._read() as db:
            total = int(db.execute(_COUNT_OPEN, (team,)).fetchone()[0])
            pages = max(1, -(-total // size))
            linked: frozenset[str] = frozenset()
            linked_open = 0
            if message_id is not None:
                linked = frozenset(r[0] for r in db.execute(_MESSAGE_IDS, (message_id,)).fetchall())
                first, linked_open = db.execute(_FIRST_LINKED, (team, message_id)).fetchone()
                if page is None and first is not None:
                    page = int(first) // size + 1
            page = min(max(1, page or 1), pages)
            rows = db.execute(_OPEN_PAGE, (team, size, (page - 1) * size)).fetchall()
        return AlertPage(tuple(_record(r) for r in rows), page, pages, total, linked, int(linked_open or 0))

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
                "UPDATE alerts SET acked_by = ?, acked_at = ?, ack_note = ?, held_kind = NULL, held_by = NULL, "
                "held_until = NULL WHERE alert_id = ?",
                (user, _ts(now), note, alert_id),
            )
            # alerts this one held back by an inhibition are looked at again now (messaged if still open)
            db.execute(
                "UPDATE alerts SET held_until = ? WHERE held_kind = 'inhibition' AND held_by = ? AND held_until > ?",
                (_ts(now), alert_id, _ts(now)),
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
            "held": one("SELECT COUNT(*) FROM alerts WHERE held_kind IS NOT NULL").fetchone()[0],
            "pending_deliveries": one("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'").fetchone()[0],
            "failing_deliveries": one(
                "SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND attempts > 0"
            ).fetchone()[0],
            "unpublished_lifecycle": one("SELECT COUNT(*) FROM lifecycle_outbox WHERE published = 0").fetchone()[0],
        }


_ALERT_COLUMNS = (
    "payload, team, chain, received_at, suppressed, level, level_started_at, acked_by, acked_at, ack_note, "
    "held_kind, held_by, held_until, held_note"
)
_SILENCE_COLUMNS = "silence_id, matchers, starts_at, ends_at, reason, author, created_at, expired_at, expired_by"
_SET_HOLD = "UPDATE alerts SET held_kind = ?, held_by = ?, held_until = ?, held_note = ? WHERE alert_id = ?"
_CLEAR_HOLD = "UPDATE alerts SET held_kind = NULL, held_by = NULL, held_until = NULL WHERE alert_id = ?"
# The page order; the same expression as the index alerts_open_page, so a page is read from it without sorting.
_PAGE_ORDER = (
    "CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END, "
    "received_at DESC, alert_id"
)
_COUNT_OPEN = "SELECT COUNT(*) FROM alerts WHERE team = ? AND acked_at IS NULL"
_OPEN_PAGE = (
    f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE team = ? AND acked_at IS NULL "  # noqa: S608 (constant text)
    f"ORDER BY {_PAGE_ORDER} LIMIT ? OFFSET ?"
)
_MESSAGE_IDS = "SELECT alert_id FROM message_alerts WHERE message_id = ?"
# The position (0-based, in page order) of a message's first open alert, and how many of its alerts are open.
_FIRST_LINKED = (
    "SELECT MIN(pos), COUNT(*) FROM (SELECT alert_id, ROW_NUMBER() OVER (ORDER BY "  # noqa: S608 (constant text)
    f"{_PAGE_ORDER}) - 1 AS pos FROM alerts WHERE team = ? AND acked_at IS NULL) "
    "WHERE alert_id IN (SELECT alert_id FROM message_alerts WHERE message_id = ?)"
)


def _private_directory(directory: Path) -> None:
    """Create `directory` (and missing parents) with mode 0700; warn about an existing one others can enter."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:  # made meanwhile by someone else: leave its mode alone
            continue
        os.chmod(d, DIR_MODE)  # mkdir's mode is reduced by the umask; this sets it exactly
    if not missing and stat.S_IMODE(directory.stat().st_mode) & 0o077:
        log.warning("the notifier's data directory %s is open to other users; chmod 700 it", directory)


def _private_file(path: Path) -> None:
    """Create the database file 0600 before SQLite opens it (no moment of a wider mode), or tighten an existing one.

    SQLite creates the `-wal`, `-shm` and `-journal` files with the database file's mode."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    os.close(fd)
    _tighten(path)
    _tighten_side_files(path)


def _tighten_side_files(path: Path) -> None:
    for suffix in _SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            _tighten(side)


def _tighten(path: Path) -> None:
    try:
        if stat.S_IMODE(path.stat().st_mode) != FILE_MODE:
            os.chmod(path, FILE_MODE)
    except FileNotFoundError:  # a side file SQLite removed meanwhile
        return
    except PermissionError:  # another user's file: we can read it, but not change it
        log.warning("cannot make %s private (mode 0600): it belongs to another user", path)


def _record(row: Sequence[object]) -> AlertRecord:
    payload, team, chain, received, suppressed, level, started, acked_by, acked_at, note = row[:10]
    held_kind, held_by, held_until, held_note = row[10:14]
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
        held_kind=None if held_kind is None else str(held_kind),
        held_by=None if held_by is None else str(held_by),
        held_until=None if held_until is None else _dt(float(held_until)),  # type: ignore[arg-type]
        held_note=None if held_note is None else str(held_note),
    )


def _hold_columns(hold: Hold | None) -> tuple[str | None, str | None, float | None, str | None]:
    if hold is None:
        return None, None, None, None
    return hold.kind, hold.by, _ts(hold.until), hold.note[:1000]


def _silence(row: Sequence[object]) -> Silence:
    silence_id, matchers, starts, ends, reason, author, created, expired_at, expired_by = row
    given = json.loads(str(matchers))
    return Silence(
        silence_id=str(silence_id),
        matchers=matchers_of({f: given[f] for f in MATCHER_FIELDS if f in given}),
        starts_at=_dt(float(starts)),  # type: ignore[arg-type]
        ends_at=_dt(float(ends)),  # type: ignore[arg-type]
        reason=str(reason),
        author=str(author),
        created_at=_dt(float(created)),  # type: ignore[arg-type]
        expired_at=None if expired_at is None else _dt(float(expired_at)),  # type: ignore[arg-type]
        expired_by=None if expired_by is None else str(expired_by),
    )
