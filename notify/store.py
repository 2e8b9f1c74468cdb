"""The notifier's own state in one SQLite database (`<data_dir>/notify.sqlite3`), so a restart loses nothing; or
in a PostgreSQL database that several notifier instances share (`notify.db`; docs/notifier.md, "High
availability"): deliveries are claimed by one instance for a lease (`claim_deliveries`), and the work only one
instance should do goes with a named lease (`acquire_lease`).

Tables: `alerts` (every alert taken on, its team, escalation chain and level, acknowledgement), `messages` and
`message_alerts` (groups being collected and sent), `deliveries` (one per message and channel: the outbox the
senders work through, with attempts and the next retry time), `lifecycle_outbox` (alert.lifecycle events waiting
to be published; a row is marked published only after Kafka acknowledged it), `audit` (who logged in, saw and
acknowledged what), `sessions` (hashes of session tokens), `silences` (made on the page or with the CLI; an
alert held by a silence or an inhibition rule carries `held_kind`, `held_by`, `held_until` and `held_note`),
`rota_changes` (overrides and swaps) and `duty_seen` (each team's primary at the last look, for hand-overs). An
alert's resolution (`resolved_by`, `resolved_at`, `outcome`, `resolve_note`) and reminders (`reminded_at`,
`reminders`) are columns of `alerts`; a message's `purpose` is `alert`, `reminder` or `handover`.

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
    OUTCOMES,
    EscalationState,
    Timing,
    group_key,
    is_repeat,
    lifecycle,
    send_at,
)
from notify.cover import RotaChange, apply_changes, handover_due
from notify.db import Db, connect_postgres, connect_sqlite, is_postgres_url, statements
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
from schemas.alerts import AlertLifecycle, AlertRaised, ResolutionOutcome
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
    "user" TEXT NOT NULL,
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
    # 2: resolution with an outcome, reminders of acknowledged alerts not resolved, reminder messages
    """
    ALTER TABLE alerts ADD COLUMN resolved_by TEXT;
    ALTER TABLE alerts ADD COLUMN resolved_at REAL;
    ALTER TABLE alerts ADD COLUMN outcome TEXT;
    ALTER TABLE alerts ADD COLUMN resolve_note TEXT;
    ALTER TABLE alerts ADD COLUMN reminded_at REAL;
    ALTER TABLE alerts ADD COLUMN reminders INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN purpose TEXT NOT NULL DEFAULT 'alert';
    CREATE INDEX alerts_unresolved ON alerts (team, acked_at) WHERE acked_at IS NOT NULL AND resolved_at IS NULL
    """,
    # 3: rota overrides and swaps, and who was last seen on duty per team (hand-overs)
    """
    CREATE TABLE rota_changes (
        change_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        team TEXT NOT NULL,
        contact TEXT NOT NULL,
        level INTEGER NOT NULL DEFAULT 0,
        other TEXT,
        starts_at REAL NOT NULL,
        ends_at REAL NOT NULL,
        reason TEXT NOT NULL,
        author TEXT NOT NULL,
        created_at REAL NOT NULL,
        cancelled_at REAL,
        cancelled_by TEXT
    );
    CREATE INDEX rota_changes_end ON rota_changes (ends_at);
    CREATE TABLE duty_seen (
        team TEXT PRIMARY KEY,
        contact TEXT NOT NULL,
        at REAL NOT NULL
    )
    """,
    # 4: several instances on one store: a delivery is claimed by one instance for a while (renewed while it is
    # being sent), and the work only one instance should do (publishing, hand-overs) goes with a named lease
    """
    ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
    ALTER TABLE deliveries ADD COLUMN lease_until REAL;
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at REAL NOT NULL
    )
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
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    outcome: ResolutionOutcome | None = None
    resolve_note: str | None = None
    reminded_at: datetime | None = None  # the last reminder (acknowledged, not resolved in time)
    reminders: int = 0

    @property
    def held(self) -> bool:
        return self.held_kind is not None

    @property
    def resolved(self) -> bool:
        return self.resolved_at is not None

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
    purpose: str = "alert"  # or "reminder": acknowledged alerts not resolved in time


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
class AlertFilter:
    """What the page's filters ask for (each empty: any): one severity, one rule, a pseudonym's first characters."""

    severity: str = ""
    rule: str = ""
    subject_prefix: str = ""  # lower-case hex

    def sql(self) -> tuple[str, tuple[object, ...]]:
        """` AND ...` conditions (constant text) and their values."""
        parts: list[str] = []
        args: list[object] = []
        if self.severity:
            parts.append("severity = ?")
            args.append(self.severity)
        if self.rule:
            parts.append("rule_id = ?")
            args.append(self.rule)
        if self.subject_prefix:  # a range, so that the prefix is compared as text (hex sorts before "g")
            parts.append("subject_id >= ? AND subject_id < ?")
            args += [self.subject_prefix, self.subject_prefix + "g"]
        return "".join(f" AND {p}" for p in parts), tuple(args)

    @property
    def active(self) -> bool:
        return bool(self.severity or self.rule or self.subject_prefix)


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
    """The notifier's state. Every public method is one transaction; any thread may call any method.

    `target` is a SQLite file (or ":memory:"), or a PostgreSQL URL (`postgresql://user@host:port/db`, the password
    given apart as `password`), which any number of notifier instances share (see `notify.db`)."""

    def __init__(self, target: Path | str, *, password: str | None = None) -> None:
        self.postgres = is_postgres_url(target)
        self._password = password
        if self.postgres:
            self._target, self._uri = str(target), False
        elif str(target) == ":memory:":  # one database shared by the threads' connections while the store is open
            self._target, self._uri = f"file:notify-{uuid.uuid4().hex}?mode=memory&cache=shared", True
        else:
            _private_directory(Path(target).parent)
            _private_file(Path(target))
            self._target, self._uri = str(target), False
        self._local = threading.local()
        self._connections: list[Db] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = False
        db = self._db
        if self.postgres:
            with self._tx() as tx:  # under the write lock: instances starting together create the tables once
                tx.execute("CREATE TABLE IF NOT EXISTS notify_schema (version INTEGER NOT NULL)")
                if tx.execute("SELECT COUNT(*) FROM notify_schema").fetchone()[0] == 0:
                    tx.execute("INSERT INTO notify_schema VALUES (0)")
                    tx.script(SCHEMA)
        else:
            db.execute("PRAGMA journal_mode=WAL")
            db.script(SCHEMA)
        self._migrate()
        if not self._uri and not self.postgres:
            _tighten_side_files(Path(target))

    def _version(self, db: Db) -> int:
        query = "SELECT version FROM notify_schema" if self.postgres else "PRAGMA user_version"
        return int(db.execute(query).fetchone()[0])

    def _migrate(self) -> None:
        """Bring the schema to SCHEMA_VERSION, one migration per transaction (another process may race us)."""
        while True:
            with self._tx() as tx:
                version = self._version(tx)
                if version > SCHEMA_VERSION:
                    raise StoreVersionError(
                        f"the notifier database is at schema version {version}, newer than this notifier "
                        f"({SCHEMA_VERSION}): run the newer notifier, or restore a backup"
                    )
                if version == SCHEMA_VERSION:
                    return
                if self.postgres:
                    tx.script(MIGRATIONS[version])
                    tx.execute("UPDATE notify_schema SET version = ?", (version + 1,))
                else:
                    for statement in statements(MIGRATIONS[version]):
                        tx.execute(statement)
                    tx.execute(f"PRAGMA user_version = {version + 1}")
                log.info("notifier store: schema migrated to version %d", version + 1)

    def schema_version(self) -> int:
        return self._version(self._db)

    @property
    def _db(self) -> Db:
        """This thread's connection (opened on its first use; opened again after a lost PostgreSQL connection)."""
        db: Db | None = getattr(self._local, "db", None)
        if db is None or db.broken:
            db = self._connect()
            self._local.db = db
        return db

    def _connect(self) -> Db:
        with self._lock:
            if self._closed:
                raise sqlite3.ProgrammingError("the notifier store is closed")
        db = (
            connect_postgres(self._target, self._password) if self.postgres else connect_sqlite(self._target, self._uri)
        )
        with self._lock:
            self._connections = [c for c in self._connections if not c.broken]
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
    def _tx(self) -> Iterator[Db]:
        """A write transaction. This process's writers take turns on a lock first: a thread waiting for another's
        commit then waits exactly that long, where SQLite's busy handler would sleep in growing steps (up to 100 ms
        each, on the event loop when the loop is the one waiting). On PostgreSQL the transaction then takes the
        store's advisory lock, so that writers of every instance take turns (see `notify.db`)."""
        db = self._db
        with self._write_lock:
            db.begin_write()
            try:
                yield db
            except BaseException:
                if not db.broken:
                    db.rollback()
                raise
            db.commit()

    @contextmanager
    def _read(self) -> Iterator[Db]:
        """A read transaction: every query in it sees the same snapshot (a page and its count agree)."""
        db = self._db
        db.begin_read()
        try:
            yield db
        finally:
            if not db.broken:
                db.commit()

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
            changes = self._changes(db, now)
            held: set[str] = set()
            for chunk in _chunks(sorted({a.alert_id for a in batch})):
                held.update(
                    str(r[0])
                    for r in db.execute(
                        f"SELECT alert_id FROM alerts WHERE alert_id IN ({','.join('?' * len(chunk))})",  # noqa: S608 (placeholders)
                        tuple(chunk),
                    ).fetchall()
                )
            fresh = [a for a in batch if a.alert_id not in held]
            # what the loop asks for each alert, read for the whole batch at once (kept up to date as it goes):
            # the last messaged alert of the same rule and subject, and the groups still collecting
            routes = {}
            for alert in fresh:
                duty = rota.route(alert.la_code, alert.rule_id, alert.severity, now)
                chain = apply_changes(duty.chain, duty.team.name, changes, now) if changes else duty.chain
                routes[alert.alert_id] = (duty.team.name, chain)
            last_seen = self._last_messaged(db, {a.subject_id for a in fresh})
            groups = self._collecting(
                db, {group_key(routes[a.alert_id][0], routes[a.alert_id][1][0], 0, a.subject_id) for a in fresh}
            )
            for alert in fresh:
                if alert.alert_id in new:
                    continue
                team, chain = routes[alert.alert_id]
                seen = last_seen.get((team, alert.rule_id, alert.subject_id))
                last = _dt(seen) if seen is not None else None
                suppressed = is_repeat(alert.severity, last, now, timing)
                facts = AlertFacts(
                    alert.alert_id, alert.rule_id, alert.severity, alert.la_code, team, alert.subject_id, now
                )
                hold = hold_for(facts, silences, rules, self._possible_sources(db, rota, facts, now), now)
                db.later(  # read again in this transaction only by _possible_sources, which flushes first
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
                        json.dumps(list(chain)),
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
                self._lifecycle(db, lifecycle(alert, "raised", now, team=team, recipient=chain[0], note=note))
                if not suppressed and hold is None:
                    self._join_group(db, alert, team, chain[0], 0, timing, now, groups=groups)
                    last_seen[(team, alert.rule_id, alert.subject_id)] = _ts(now)
                new.append(alert.alert_id)
        return new

    def _join_group(
        self, db: Db, alert: AlertRaised, team: str, contact: str, level: int, timing: Timing,
        now: datetime, *, immediately: bool = False, purpose: str = "alert",
        groups: dict[str, tuple[int, float]] | None = None,
    ) -> int:  # fmt: skip
        """Add the alert to its collecting group (a new one if none). `groups`: the collecting groups of every key
        the caller may ask for, read beforehand (`_collecting`) and kept up to date here."""
        key = group_key(team, contact, level, alert.subject_id)
        if purpose != "alert":  # a reminder never joins (nor is joined by) a message about new alerts
            key = f"{purpose}|{key}"
        row: tuple[int, float] | None
        if groups is not None:
            row = groups.get(key)
        else:
            found = db.execute(
                "SELECT message_id, send_at FROM messages WHERE status = 'collecting' AND group_key = ?", (key,)
            ).fetchone()
            row = None if found is None else (int(found[0]), float(found[1]))
        when = now if immediately else send_at(alert.severity, now, timing, _dt(row[1]) if row else None)
        message_id: int
        if row:
            message_id = row[0]
            db.execute("UPDATE messages SET send_at = ? WHERE message_id = ?", (_ts(when), message_id))
        else:
            cur = db.execute(
                "INSERT INTO messages (group_key, team, contact_id, level, created_at, send_at, status, purpose) "
                "VALUES (?, ?, ?, ?, ?, ?, 'collecting', ?) RETURNING message_id",
                (key, team, contact, level, _ts(now), _ts(when), purpose),
            )
            message_id = int(cur.fetchone()[0])
        if groups is not None:
            groups[key] = (message_id, _ts(when))
        db.later("INSERT OR IGNORE INTO message_alerts VALUES (?, ?)", (message_id, alert.alert_id))
        return message_id

    @staticmethod
    def _last_messaged(db: Db, subjects: set[str]) -> dict[tuple[str, str, str], float]:
        """(team, rule, subject) → when the last alert of it that was messaged (not a repeat, not held) came."""
        found: dict[tuple[str, str, str], float] = {}
        for chunk in _chunks(sorted(subjects)):
            rows = db.execute(
                "SELECT team, rule_id, subject_id, MAX(received_at) FROM alerts WHERE subject_id IN "  # noqa: S608 (placeholders)
                f"({','.join('?' * len(chunk))}) AND suppressed = 0 AND held_kind IS NULL "
                "GROUP BY team, rule_id, subject_id",
                tuple(chunk),
            ).fetchall()
            found.update({(str(t), str(r), str(s)): float(m) for t, r, s, m in rows})
        return found

    @staticmethod
    def _collecting(db: Db, keys: set[str]) -> dict[str, tuple[int, float]]:
        """The collecting message of each of these group keys that has one: key → (message id, send_at)."""
        found: dict[str, tuple[int, float]] = {}
        for chunk in _chunks(sorted(keys)):
            rows = db.execute(
                "SELECT group_key, message_id, send_at FROM messages WHERE status = 'collecting' AND group_key IN "  # noqa: S608 (placeholders)
                f"({','.join('?' * len(chunk))})",
                tuple(chunk),
            ).fetchall()
            found.update({str(k): (int(m), float(t)) for k, m, t in rows})
        return found

    # -- holds: silences and inhibition ---------------------------------------------------------------------

    @staticmethod
    def _active_silences(db: Db, now: datetime) -> list[Silence]:
        rows = db.execute(
            f"SELECT {_SILENCE_COLUMNS} FROM silences WHERE starts_at <= ? AND ends_at > ? "  # noqa: S608 (constant columns)
            "AND (expired_at IS NULL OR expired_at > ?)",
            (_ts(now), _ts(now), _ts(now)),
        ).fetchall()
        return [_silence(r) for r in rows]

    @staticmethod
    def _possible_sources(db: Db, rota: Rota, facts: AlertFacts, now: datetime) -> list[OpenAlert]:
        """Alerts that could hold `facts` back by an inhibition rule (the pure function picks among them)."""
        wanted = sources_wanted(rota.inhibitions, facts)
        if not wanted:
            return []
        db.flush()  # the alerts taken earlier in this transaction are possible sources too
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
            f"SELECT {_SILENCE_COLUMNS} FROM silences WHERE ends_at > ? AND COALESCE(expired_at, ends_at) > ? "  # noqa: S608 (constant columns)
            "ORDER BY starts_at, silence_id LIMIT ?",
            (since, since, limit),
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

    # -- rota changes: overrides and swaps ----------------------------------------------------------------------

    @staticmethod
    def _changes(db: Db, now: datetime, *, active_only: bool = True) -> list[RotaChange]:
        """Changes active at `now` (or, without `active_only`, not over yet), oldest first (a later one wins)."""
        query = (
            f"SELECT {_CHANGE_COLUMNS} FROM rota_changes "  # noqa: S608 (constant columns)
            "WHERE ends_at > ? AND (cancelled_at IS NULL OR cancelled_at > ?)"
        )
        args: tuple[object, ...] = (_ts(now), _ts(now))
        if active_only:
            query += " AND starts_at <= ?"
            args += (_ts(now),)
        return [_change(r) for r in db.execute(query + " ORDER BY created_at, change_id", args).fetchall()]

    def active_changes(self, now: datetime) -> list[RotaChange]:
        """Overrides and swaps not over yet at `now` (active and pending), oldest first: what routing, reminders,
        hand-overs and the coverage check apply (each looks at its own instant)."""
        return self._changes(self._db, now, active_only=False)

    def create_change(self, change: RotaChange, via: str) -> None:
        """Record an override or swap (checked by the caller with `notify.cover.check_change`) and audit it."""
        with self._tx() as db:
            db.execute(
                f"INSERT INTO rota_changes ({_CHANGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608 (constant columns)
                (
                    change.change_id, change.kind, change.team, change.contact, change.level, change.other,
                    _ts(change.starts_at), _ts(change.ends_at), change.reason, change.author, _ts(change.created_at),
                    None, None,
                ),
            )  # fmt: skip
            detail = (
                f"{change.describe()} via {via}, from {change.starts_at.isoformat(timespec='minutes')} to "
                f"{change.ends_at.isoformat(timespec='minutes')}; reason: {change.reason}"
            )
            self._audit(db, change.created_at, change.author, f"{change.kind}_created", (), detail)

    def changes(self, now: datetime, *, ended_within_s: float = 0.0, limit: int = 200) -> list[RotaChange]:
        """Changes not over yet, and those that ended within `ended_within_s`; by start."""
        rows = self._db.execute(
            f"SELECT {_CHANGE_COLUMNS} FROM rota_changes WHERE ends_at > ? AND COALESCE(cancelled_at, ends_at) > ? "  # noqa: S608 (constant columns)
            "ORDER BY starts_at, change_id LIMIT ?",
            (_ts(now) - ended_within_s, _ts(now) - ended_within_s, limit),
        ).fetchall()
        return [_change(r) for r in rows]

    def cancel_change(self, change_id: str, actor: str, now: datetime, via: str, team: str | None = None) -> str:
        """End an override or swap now: `cancelled`, `not_found`, `ended` (already over), or `not_yours` (with
        `team`: a change of another team)."""
        with self._tx() as db:
            row = db.execute(
                f"SELECT {_CHANGE_COLUMNS} FROM rota_changes WHERE change_id = ?",  # noqa: S608 (constant columns)
                (change_id,),
            ).fetchone()
            if row is None:
                return "not_found"
            change = _change(row)
            if team is not None and change.team != team:
                self._audit(db, now, actor, "rota_change_cancel_refused", (), f"{change_id}: not of team {team}")
                return "not_yours"
            if now >= change.end:
                return "ended"
            db.execute(
                "UPDATE rota_changes SET cancelled_at = ?, cancelled_by = ? WHERE change_id = ?",
                (_ts(now), actor, change_id),
            )
            self._audit(db, now, actor, f"{change.kind}_cancelled", (), f"{change.describe()} via {via}")
        return "cancelled"

    # -- hand-overs -------------------------------------------------------------------------------------------

    def open_for_handover(self, team: str, limit: int = 100) -> list[AlertRecord]:
        """The team's alerts still to be dealt with: not acknowledged, or acknowledged and not resolved."""
        return [_record(r) for r in self._db.execute(_HANDOVER, (team, limit)).fetchall()]

    def duty_changed(self, team: str, chain: tuple[str, ...], timing: Timing, now: datetime) -> str | None:
        """Note who is on duty for `team` now; when duty passed to someone new, message them the team's open alerts
        (a hand-over) and return their contact id. The first look only takes note."""
        current = chain[0] if chain else ""
        row = self._db.execute("SELECT contact FROM duty_seen WHERE team = ?", (team,)).fetchone()
        if row is not None and row[0] == current:
            return None  # the usual case: no write transaction
        with self._tx() as db:
            row = db.execute("SELECT contact FROM duty_seen WHERE team = ?", (team,)).fetchone()
            previous = None if row is None else str(row[0])
            incoming = handover_due(previous, chain)
            db.execute(
                "INSERT INTO duty_seen (team, contact, at) VALUES (?, ?, ?) "
                "ON CONFLICT (team) DO UPDATE SET contact = excluded.contact, at = excluded.at",
                (team, current, _ts(now)),
            )
            if incoming is None:
                return None
            ids = [_record(r).alert.alert_id for r in db.execute(_HANDOVER, (team, 100)).fetchall()]
            cur = db.execute(
                "INSERT INTO messages (group_key, team, contact_id, level, created_at, send_at, status, purpose) "
                "VALUES (?, ?, ?, 0, ?, ?, 'collecting', 'handover') RETURNING message_id",
                (f"handover|{team}|{incoming}|{_ts(now)}", team, incoming, _ts(now), _ts(now)),
            )
            message_id = int(cur.fetchone()[0])
            db.executemany("INSERT OR IGNORE INTO message_alerts VALUES (?, ?)", [(message_id, a) for a in ids])
            detail = f"duty of team {team} passed from {previous or 'nobody'} to {incoming}: {len(ids)} open alerts"
            self._audit(db, now, "system", "handover", ids, detail)
        return incoming

    # -- sending ----------------------------------------------------------------------------------------------

    def release_due(self, now: datetime, channels_of: Callable[[str], list[tuple[str, str]]]) -> int:
        """Messages whose collecting time is over get one delivery per channel of their contact."""
        due = self._db.execute(
            "SELECT 1 FROM messages WHERE status = 'collecting' AND send_at <= ? LIMIT 1", (_ts(now),)
        ).fetchone()
        if due is None:  # the usual case, every tick: no write transaction, no lock
            return 0
        with self._tx() as db:
            rows = db.execute(
                "SELECT message_id, contact_id FROM messages WHERE status = 'collecting' AND send_at <= ?",
                (_ts(now),),
            ).fetchall()
            for message_id, contact_id in rows:
                for channel, address in channels_of(contact_id):
                    db.later(
                        "INSERT INTO deliveries (message_id, channel, address, status, next_attempt_at) "
                        "VALUES (?, ?, ?, 'pending', ?)",
                        (message_id, channel, address, _ts(now)),
                    )
                db.later("UPDATE messages SET status = 'sending' WHERE message_id = ?", (message_id,))
        return len(rows)

    def next_send_at(self) -> datetime | None:
        """The earliest time a collecting message or a pending retry falls due (for the service's sleep)."""
        row = self._db.execute(
            "SELECT MIN(t) FROM (SELECT MIN(send_at) AS t FROM messages WHERE status = 'collecting' "
            "UNION ALL SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending' "
            "UNION ALL SELECT MIN(held_until) FROM alerts WHERE held_until IS NOT NULL) AS due"
        ).fetchone()
        return _dt(row[0]) if row and row[0] is not None else None

    def due_deliveries(
        self, now: datetime, exclude: set[int], limit: int = 500, ids: Sequence[int] | None = None
    ) -> list[DueDelivery]:
        """Due deliveries (or, with `ids`, those deliveries), not claimed: `claim_deliveries` claims them."""
        if ids is not None:
            rows = self._db.execute(
                "SELECT d.delivery_id, d.message_id, m.team, m.contact_id, m.level, d.channel, d.address, "  # noqa: S608 (placeholders)
                "d.attempts, m.purpose FROM deliveries d JOIN messages m USING (message_id) "
                f"WHERE d.delivery_id IN ({','.join('?' * len(ids))}) ORDER BY d.next_attempt_at",
                tuple(ids),
            ).fetchall()
        else:
            rows = self._db.execute(
                "SELECT d.delivery_id, d.message_id, m.team, m.contact_id, m.level, d.channel, d.address, "
                "d.attempts, m.purpose FROM deliveries d JOIN messages m USING (message_id) "
                "WHERE d.status = 'pending' AND d.next_attempt_at <= ? ORDER BY d.next_attempt_at LIMIT ?",
                (_ts(now), limit + len(exclude)),
            ).fetchall()
        rows = [r for r in rows if r[0] not in exclude][:limit]
        by_message = self._alerts_of_messages(self._db, {int(r[1]) for r in rows})
        due: list[DueDelivery] = []
        for delivery_id, message_id, team, contact, level, channel, address, attempts, purpose in rows:
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
                    by_message.get(int(message_id), ()),
                    str(purpose),
                )
            )
            if len(due) >= limit:
                break
        return due

    def claim_deliveries(
        self, now: datetime, holder: str, lease_s: float, exclude: set[int], limit: int = 500
    ) -> list[DueDelivery]:
        """Claim due deliveries for `holder` until `now + lease_s`: those nobody holds a live claim on (a claim
        whose lease ran out, its holder killed or stuck, is taken over). `exclude`: this instance's own deliveries
        still in flight, never claimed twice. One transaction, so two instances never claim the same delivery."""
        claimable = self._db.execute(_CLAIMABLE, (_ts(now), _ts(now), len(exclude) + 1)).fetchall()
        if all(int(r[0]) in exclude for r in claimable):
            return []  # the usual case, every tick: nothing to claim, no write transaction (no lock)
        with self._tx() as db:
            rows = db.execute(
                "SELECT delivery_id, claimed_by, lease_until FROM deliveries WHERE status = 'pending' "
                "AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_attempt_at "
                "LIMIT ?",
                (_ts(now), _ts(now), limit + len(exclude)),
            ).fetchall()
            chosen = [r for r in rows if int(r[0]) not in exclude][:limit]
            ids = [int(r[0]) for r in chosen]
            if not ids:
                return []
            db.executemany(
                "UPDATE deliveries SET claimed_by = ?, lease_until = ? WHERE delivery_id = ?",
                [(holder, _ts(now) + lease_s, i) for i in ids],
            )
            # a live claim of another instance that ran out: that instance may have sent the message before it
            # stopped, so this send may repeat it (the at most one repeat a failover costs): audited, with its alerts
            taken = [r for r in chosen if r[1] is not None and r[1] != holder and r[2] is not None]
            if taken:
                alert_ids = [
                    str(a[0])
                    for r in taken
                    for a in db.execute(
                        "SELECT ma.alert_id FROM message_alerts ma JOIN deliveries d USING (message_id) "
                        "WHERE d.delivery_id = ?",
                        (int(r[0]),),
                    ).fetchall()
                ]
                previous = sorted({str(r[1]) for r in taken})
                detail = f"{len(taken)} deliveries whose lease ran out, from {', '.join(previous)} to {holder}"
                self._audit(db, now, "system", "delivery_taken_over", alert_ids, detail)
        wanted = set(ids)
        return [d for d in self.due_deliveries(now, set(), limit=limit, ids=ids) if d.delivery_id in wanted]

    def renew_claims(self, holder: str, now: datetime, lease_s: float) -> int:
        """Extend the leases of `holder`'s pending claims (its sends in flight): a slow send is not taken over."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE deliveries SET lease_until = ? WHERE claimed_by = ? AND status = 'pending' "
                "AND lease_until IS NOT NULL",
                (_ts(now) + lease_s, holder),
            )
            return int(cur.rowcount or 0)

    def release_claims(self, holder: str) -> None:
        """Give up `holder`'s claims at once (a clean stop): another instance takes them without waiting."""
        with self._tx() as db:
            db.execute(
                "UPDATE deliveries SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = ? "
                "AND status = 'pending'",
                (holder,),
            )
            db.execute("DELETE FROM leases WHERE holder = ?", (holder,))

    def acquire_lease(self, name: str, holder: str, now: datetime, lease_s: float) -> bool:
        """Take or renew the lease `name` for `holder` until `now + lease_s`; True if `holder` holds it now. A
        lease another holder let run out is taken over."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE "
                "SET holder = excluded.holder, expires_at = excluded.expires_at "
                "WHERE leases.holder = excluded.holder OR leases.expires_at <= ?",
                (name, holder, _ts(now) + lease_s, _ts(now)),
            )
            row = db.execute("SELECT holder FROM leases WHERE name = ?", (name,)).fetchone()
        return row is not None and row[0] == holder

    def lease_holder(self, name: str, now: datetime) -> str | None:
        row = self._db.execute(
            "SELECT holder FROM leases WHERE name = ? AND expires_at > ?", (name, _ts(now))
        ).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def _alerts_of_messages(db: Db, message_ids: set[int]) -> dict[int, tuple[AlertRaised, ...]]:
        """The alerts of each message, in one query per 500 messages."""
        found: dict[int, list[AlertRaised]] = {}
        for chunk in _chunks(sorted(message_ids)):
            rows = db.execute(
                "SELECT ma.message_id, a.payload FROM message_alerts ma JOIN alerts a USING (alert_id) "  # noqa: S608 (placeholders)
                f"WHERE ma.message_id IN ({','.join('?' * len(chunk))}) ORDER BY ma.message_id, ma.alert_id",
                tuple(chunk),
            ).fetchall()
            for message_id, payload in rows:
                found.setdefault(int(message_id), []).append(decode_alert(bytes(payload)))
        return {m: tuple(a) for m, a in found.items()}

    def _message_alerts(self, message_id: int) -> tuple[AlertRaised, ...]:
        rows = self._db.execute(
            "SELECT a.payload FROM message_alerts ma JOIN alerts a USING (alert_id) WHERE ma.message_id = ?",
            (message_id,),
        ).fetchall()
        return tuple(decode_alert(bytes(r[0])) for r in rows)

    def record_results(self, results: Sequence[DeliveryResult], timing: Timing) -> None:
        """Apply finished attempts in one transaction: accepted ones are done, refused ones wait to retry.

        A handful of statements per batch, not per result: on PostgreSQL each statement is a round trip."""
        from notify.core import retry_delay

        if not results:
            return
        first: dict[int, DeliveryResult] = {}
        for result in results:  # one result per delivery (the first), in the order they came
            first.setdefault(result.delivery_id, result)
        with self._tx() as db:
            rows: list[Sequence[object]] = []
            for chunk in _chunks(list(first)):
                rows += db.execute(
                    "SELECT d.delivery_id, d.message_id, d.channel, d.attempts, m.team, m.contact_id, m.level, "  # noqa: S608 (placeholders)
                    "m.purpose FROM deliveries d JOIN messages m USING (message_id) WHERE d.status = 'pending' "
                    f"AND d.delivery_id IN ({','.join('?' * len(chunk))})",
                    tuple(chunk),
                ).fetchall()
            by_message = self._alerts_of_messages(db, {int(r[1]) for r in rows})  # type: ignore[call-overload]
            sent: set[int] = set()
            order = {delivery_id: n for n, delivery_id in enumerate(first)}
            for delivery_id, message_id, channel, attempts, team, contact, level, purpose in sorted(
                rows,
                key=lambda r: order[int(r[0])],  # type: ignore[call-overload]
            ):
                result = first[int(delivery_id)]  # type: ignore[call-overload]
                attempts = int(attempts) + 1  # type: ignore[call-overload]
                alerts = by_message.get(int(message_id), ())  # type: ignore[call-overload]
                team, contact, channel = str(team), str(contact), str(channel)
                level = int(level)  # type: ignore[call-overload]
                if result.error is None:
                    db.later(
                        "UPDATE deliveries SET status = 'done', attempts = ?, delivered_at = ?, last_error = NULL, "
                        "lease_until = NULL WHERE delivery_id = ?",
                        (attempts, _ts(result.at), result.delivery_id),
                    )
                    for alert in alerts if purpose == "alert" else ():  # a reminder's event is `renotified`
                        event = lifecycle(
                            alert, "notified", result.at, team=team, channel=channel, recipient=contact, level=level
                        )
                        self._lifecycle(db, event)
                    sent.add(int(message_id))  # type: ignore[call-overload]
                else:
                    retry_at = _ts(result.at) + retry_delay(attempts, timing)
                    db.later(
                        "UPDATE deliveries SET attempts = ?, last_error = ?, next_attempt_at = ?, claimed_by = NULL, "
                        "lease_until = NULL WHERE delivery_id = ?",
                        (attempts, result.error[:1000], retry_at, result.delivery_id),
                    )
                    for alert in alerts:
                        event = lifecycle(
                            alert, "delivery_failed", result.at, team=team, channel=channel, recipient=contact,
                            level=level, error=result.error, attempt=attempts,
                        )  # fmt: skip
                        self._lifecycle(db, event)
            db.flush()
            for chunk in _chunks(sorted(sent)):  # a message is sent when none of its deliveries is pending
                db.execute(
                    "UPDATE messages SET status = 'sent' WHERE message_id IN "  # noqa: S608 (placeholders)
                    f"({','.join('?' * len(chunk))}) AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE "
                    "d.message_id = messages.message_id AND d.status = 'pending')",
                    tuple(chunk),
                )

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

    def alerts_page(
        self, team: str, page: int | None, size: int, message_id: int | None = None, filters: AlertFilter | None = None
    ) -> AlertPage:
        """Page `page` (1-based) of the team's open alerts (those matching `filters`); out of range gives the nearest
        page (the last one).

        Without a page, the one holding the first open alert of `message_id` (a message's link), else the first."""
        size = max(1, size)
        where, args = (filters or AlertFilter()).sql()
        with self._read() as db:
            total = int(db.execute(_COUNT_OPEN + where, (team, *args)).fetchone()[0])
            pages = max(1, -(-total // size))
            linked: frozenset[str] = frozenset()
            linked_open = 0
            if message_id is not None:
                linked = frozenset(r[0] for r in db.execute(_MESSAGE_IDS, (message_id,)).fetchall())
                first, linked_open = db.execute(_FIRST_LINKED.format(where=where), (team, *args, message_id)).fetchone()
                if page is None and first is not None:
                    page = int(first) // size + 1
            page = min(max(1, page or 1), pages)
            rows = db.execute(_OPEN_PAGE.format(where=where), (team, *args, size, (page - 1) * size)).fetchall()
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
            self._acknowledge(db, record, user, note, now)
        return "acknowledged"

    def _acknowledge(self, db: Db, record: AlertRecord, user: str, note: str | None,
                     now: datetime) -> None:  # fmt: skip
        alert_id = record.alert.alert_id
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
            record.alert, "acknowledged", now, team=record.team, actor=user, level=record.level, note=note or None
        )
        self._lifecycle(db, event)
        self._audit(db, now, user, "acknowledged", [alert_id], note or "")

    def resolve(
        self, alert_id: str, user: str, team: str | None, outcome: ResolutionOutcome, note: str | None, now: datetime,
        via: str = "page",
    ) -> str:  # fmt: skip
        """Close an alert with an outcome and a note: `resolved`, `already` (it was), or `not_found` (no such alert,
        or with `team`, not one of that team's). An alert nobody acknowledged is acknowledged by the same person
        first. Audited; an `alert.lifecycle` event `resolved` carries the outcome."""
        if outcome not in OUTCOMES:
            raise ValueError(f"{outcome!r} is not an outcome ({', '.join(OUTCOMES)})")
        with self._tx() as db:
            row = db.execute(
                f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE alert_id = ?",  # noqa: S608 (constant columns)
                (alert_id,),
            ).fetchone()
            if row is None or (team is not None and row[1] != team):
                why = "no such alert" if row is None else "not an alert of the user's team"
                self._audit(db, now, user, "resolve_refused", [alert_id], why)
                return "not_found"
            record = _record(row)
            if record.resolved_at is not None:
                return "already"
            if record.acked_at is None:
                self._acknowledge(db, record, user, note, now)
            db.execute(
                "UPDATE alerts SET resolved_by = ?, resolved_at = ?, outcome = ?, resolve_note = ? WHERE alert_id = ?",
                (user, _ts(now), outcome, note, alert_id),
            )
            event = lifecycle(
                record.alert, "resolved", now, team=record.team, actor=user, level=record.level, note=note or None,
                outcome=outcome,
            )  # fmt: skip
            self._lifecycle(db, event)
            detail = f"{OUTCOMES[outcome]} (via {via})" + (f": {note}" if note else "")
            self._audit(db, now, user, "resolved", [alert_id], detail)
        return "resolved"

    def unresolved(self, team: str, limit: int = 50) -> list[AlertRecord]:
        """The team's acknowledged alerts not yet resolved, the longest-acknowledged first."""
        rows = self._db.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE team = ? AND acked_at IS NOT NULL "  # noqa: S608 (constant columns)
            "AND resolved_at IS NULL ORDER BY acked_at LIMIT ?",
            (team, limit),
        ).fetchall()
        return [_record(r) for r in rows]

    def recently_resolved(self, team: str, limit: int = 20) -> list[AlertRecord]:
        rows = self._db.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE team = ? AND resolved_at IS NOT NULL "  # noqa: S608 (constant columns)
            "ORDER BY resolved_at DESC LIMIT ?",
            (team, limit),
        ).fetchall()
        return [_record(r) for r in rows]

    # -- reminders: acknowledged, not resolved in time --------------------------------------------------------

    def renotify_candidates(self, now: datetime, shortest_after_s: float) -> list[AlertRecord]:
        """Acknowledged, unresolved high and critical alerts whose acknowledgement (or last reminder) is at least
        `shortest_after_s` old (the caller decides with `notify.core.renotify_due`)."""
        rows = self._db.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE acked_at IS NOT NULL AND resolved_at IS NULL "  # noqa: S608 (constant columns)
            "AND severity IN ('high', 'critical') AND acked_at <= ? AND COALESCE(reminded_at, 0) <= ?",
            (_ts(now) - shortest_after_s, _ts(now) - shortest_after_s),
        ).fetchall()
        return [_record(r) for r in rows]

    def remind(self, record: AlertRecord, contact: str, timing: Timing, now: datetime) -> bool:
        """Message `contact` again about an acknowledged alert not resolved in time. False if it was resolved, or
        reminded, meanwhile."""
        alert = record.alert
        with self._tx() as db:
            cur = db.execute(
                "UPDATE alerts SET reminded_at = ?, reminders = reminders + 1 WHERE alert_id = ? "
                "AND resolved_at IS NULL AND reminders = ?",
                (_ts(now), alert.alert_id, record.reminders),
            )
            if cur.rowcount != 1:
                return False
            acked = record.acked_at.isoformat(timespec="minutes") if record.acked_at else "?"
            note = f"acknowledged by {record.acked_by} at {acked}, not resolved: reminder {record.reminders + 1}"
            self._lifecycle(
                db,
                lifecycle(alert, "renotified", now, team=record.team, recipient=contact, level=record.level,
                          note=note, attempt=record.reminders + 1),
            )  # fmt: skip
            self._audit(db, now, "system", "renotified", [alert.alert_id], f"to {contact}: {note}")
            self._join_group(db, alert, record.team, contact, record.level, timing, now, immediately=True,
                             purpose="reminder")  # fmt: skip
        return True

    # -- audit ------------------------------------------------------------------------------------------------

    def audit(self, now: datetime, actor: str, action: str, alert_ids: Sequence[str] = (), detail: str = "") -> None:
        with self._tx() as db:
            self._audit(db, now, actor, action, alert_ids, detail)

    @staticmethod
    def _audit(db: Db, now: datetime, actor: str, action: str, alert_ids: Sequence[str], detail: str) -> None:
        db.later(
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
            'SELECT "user", team, csrf, expires_at FROM sessions WHERE token_hash = ? AND expires_at > ?',
            (token_hash, _ts(now)),
        ).fetchone()
        return Session(row[0], row[1], row[2], _dt(row[3])) if row else None

    def end_session(self, token_hash: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

    # -- lifecycle outbox -------------------------------------------------------------------------------------

    @staticmethod
    def _lifecycle(db: Db, event: AlertLifecycle) -> None:
        db.later(
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
            "unresolved": one(
                "SELECT COUNT(*) FROM alerts WHERE acked_at IS NOT NULL AND resolved_at IS NULL"
            ).fetchone()[0],
            "pending_deliveries": one("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'").fetchone()[0],
            "failing_deliveries": one(
                "SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND attempts > 0"
            ).fetchone()[0],
            "unpublished_lifecycle": one("SELECT COUNT(*) FROM lifecycle_outbox WHERE published = 0").fetchone()[0],
        }


_ALERT_COLUMNS = (
    "payload, team, chain, received_at, suppressed, level, level_started_at, acked_by, acked_at, ack_note, "
    "held_kind, held_by, held_until, held_note, resolved_by, resolved_at, outcome, resolve_note, reminded_at, reminders"
)
_SILENCE_COLUMNS = "silence_id, matchers, starts_at, ends_at, reason, author, created_at, expired_at, expired_by"
_CHANGE_COLUMNS = (
    "change_id, kind, team, contact, level, other, starts_at, ends_at, reason, author, created_at, cancelled_at, "
    "cancelled_by"
)
# Whether anything may be claimed (read without a transaction: a write transaction only when it is worth one).
_CLAIMABLE = (
    "SELECT delivery_id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ? "
    "AND (lease_until IS NULL OR lease_until <= ?) LIMIT ?"
)
_SET_HOLD = "UPDATE alerts SET held_kind = ?, held_by = ?, held_until = ?, held_note = ? WHERE alert_id = ?"
_CLEAR_HOLD = "UPDATE alerts SET held_kind = NULL, held_by = NULL, held_until = NULL WHERE alert_id = ?"
# The page order; the same expression as the index alerts_open_page, so a page is read from it without sorting.
_PAGE_ORDER = (
    "CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END, "
    "received_at DESC, alert_id"
)
_COUNT_OPEN = "SELECT COUNT(*) FROM alerts WHERE team = ? AND acked_at IS NULL"
_OPEN_PAGE = (
    f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE team = ? AND acked_at IS NULL {{where}} "  # noqa: S608 (constant text)
    f"ORDER BY {_PAGE_ORDER} LIMIT ? OFFSET ?"
)
# A hand-over's alerts: the team's alerts not resolved, those not acknowledged first, then in page order.
_HANDOVER = (
    f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE team = ? AND resolved_at IS NULL "  # noqa: S608 (constant text)
    f"ORDER BY acked_at IS NOT NULL, {_PAGE_ORDER} LIMIT ?"
)
_MESSAGE_IDS = "SELECT alert_id FROM message_alerts WHERE message_id = ?"
# The position (0-based, in page order) of a message's first open alert, and how many of its alerts are open.
_FIRST_LINKED = (
    "SELECT MIN(pos), COUNT(*) FROM (SELECT alert_id, ROW_NUMBER() OVER (ORDER BY "  # noqa: S608 (constant text)
    f"{_PAGE_ORDER}) - 1 AS pos FROM alerts WHERE team = ? AND acked_at IS NULL {{where}}) AS ranked "
    "WHERE alert_id IN (SELECT alert_id FROM message_alerts WHERE message_id = ?)"
)


def _chunks(values: Sequence[int] | Sequence[str], size: int = 500) -> Iterator[Sequence[int] | Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


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
    resolved_by, resolved_at, outcome, resolve_note, reminded_at, reminders = row[14:20]
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
        resolved_by=None if resolved_by is None else str(resolved_by),
        resolved_at=None if resolved_at is None else _dt(float(resolved_at)),  # type: ignore[arg-type]
        outcome=next((o for o in OUTCOMES if o == outcome), None),
        resolve_note=None if resolve_note is None else str(resolve_note),
        reminded_at=None if reminded_at is None else _dt(float(reminded_at)),  # type: ignore[arg-type]
        reminders=int(reminders or 0),  # type: ignore[call-overload]
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


def _change(row: Sequence[object]) -> RotaChange:
    change_id, kind, team, contact, level, other, starts, ends, reason, author, created, cancelled_at, by = row
    return RotaChange(
        change_id=str(change_id),
        kind="swap" if kind == "swap" else "override",
        team=str(team),
        contact=str(contact),
        starts_at=_dt(float(starts)),  # type: ignore[arg-type]
        ends_at=_dt(float(ends)),  # type: ignore[arg-type]
        reason=str(reason),
        author=str(author),
        created_at=_dt(float(created)),  # type: ignore[arg-type]
        level=int(level or 0),  # type: ignore[call-overload]
        other=None if other is None else str(other),
        cancelled_at=None if cancelled_at is None else _dt(float(cancelled_at)),  # type: ignore[arg-type]
        cancelled_by=None if by is None else str(by),
    )
