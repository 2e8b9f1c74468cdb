"""The notifier's work loop without Kafka: take alerts, release groups, send, retry, escalate.

`Notifier.tick()` does whatever is due at the injected clock's now; deliveries run in worker threads (the
channels block) and their results are written back in one transaction at the next tick, so a burst of a
thousand messages costs a handful of commits. Tests drive it with a fake clock: `take`, `tick`, `drain`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from notify.channels import Channel, DeliveryError
from notify.core import Timing, escalation_due, next_contact, renotify_due
from notify.cover import Gap, chain_at, coverage, summary
from notify.messages import Outgoing, ordered
from notify.rota import Rota
from notify.security import sign_link
from notify.store import DeliveryResult, DueDelivery, NotifyStore
from safeguard.clock import Clock
from schemas.alerts import AlertRaised

log = logging.getLogger(__name__)

COORDINATOR = "coordinator"


def new_instance_id(name: str = "") -> str:
    """An id for this process's claims: new at each start, so a restarted instance never mistakes an earlier
    process's claims for its own."""
    return f"{name or socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class LinkConfig:
    base_url: str
    secret: bytes
    ttl_s: float


@dataclass
class EngineStats:
    taken: int = 0
    duplicates: int = 0
    released: int = 0
    delivered: int = 0
    failed_attempts: int = 0
    escalated: int = 0
    released_holds: int = 0
    reminded: int = 0
    handovers: int = 0


@dataclass
class Notifier:
    """Rota, store and channels together. All methods run on one event loop thread."""

    store: NotifyStore
    rota: Rota
    channels: Mapping[str, Channel]
    links: LinkConfig
    clock: Clock
    timing: Timing = field(default_factory=Timing)
    concurrency: int = 8
    stats: EngineStats = field(default_factory=EngineStats)
    duty_check_s: float = 30.0  # how often duty is looked at for hand-overs
    coverage_every_s: float = 24 * 3600.0  # the coverage check: at the first tick, then this often
    coverage_days: int = 14
    # Several instances on one store (see docs/notifier.md, "High availability"): each claims the deliveries it
    # sends for `lease_s`, renewed every `heartbeat_s` while they are in flight; the coordinator lease (hand-overs,
    # coverage check, publishing lifecycle events) goes to one instance at a time.
    instance: str = field(default_factory=lambda: new_instance_id())
    lease_s: float = 5.0
    heartbeat_s: float = 1.0

    def __post_init__(self) -> None:
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._results: list[DeliveryResult] = []
        self._limit = asyncio.Semaphore(self.concurrency)
        # the channels' own threads: Kafka polls and flushes in the default executor never hold a send back
        self._senders = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="notify-send")
        self._next_duty_check: datetime | None = None
        self._next_coverage: datetime | None = None
        self.gaps: list[Gap] = []  # the last coverage check's findings
        self._next_heartbeat: datetime | None = None
        self.coordinator = False  # this instance holds the coordinator lease

    def close(self) -> None:
        """Stop the sender threads (after `drain`)."""
        self._senders.shutdown(wait=True, cancel_futures=True)

    # -- intake -----------------------------------------------------------------------------------------------

    def take(self, alerts: list[AlertRaised]) -> list[str]:
        """Record alerts durably (one transaction); returns the new ids. Duplicates by alert_id are dropped."""
        if not alerts:
            return []
        new = self.store.take(alerts, self.rota, self.timing, self.clock())
        self.stats.taken += len(new)
        self.stats.duplicates += len(alerts) - len(new)
        return new

    # -- the periodic work ------------------------------------------------------------------------------------

    async def tick(self) -> None:
        """Do what is due now: write back finished deliveries, release alerts whose silence or inhibition ended,
        escalate, release groups, start deliveries."""
        self._apply_results()
        now = self.clock()
        self._heartbeat(now)
        self.stats.released_holds += self.store.release_held(now, self.rota, self.timing)
        self._escalate(now)
        self._remind(now)
        if self.coordinator:
            self._duty(now)
            self._coverage(now)
        self.stats.released += self.store.release_due(now, self.channels_of)
        self._start_deliveries(now)

    async def drain(self) -> None:
        """Wait for every delivery in flight and write the results back (tests; shutdown)."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
        self._apply_results()

    def next_due(self) -> datetime | None:
        """When something is next due (a group to release, a retry, a hold ending); escalations are checked every
        tick."""
        return self.store.next_send_at()

    def channels_of(self, contact_id: str) -> list[tuple[str, str]]:
        """The (channel, address) pairs a contact is messaged on: those of the rota the service has enabled.

        A contact none of whose channels is enabled gets the console, so no message is silently dropped."""
        contact = self.rota.contacts.get(contact_id)
        wanted = contact.channels() if contact is not None else []
        usable = [(c, a) for c, a in wanted if c in self.channels]
        if usable:
            return usable
        log.warning("contact %s has no enabled channel; using the console", contact_id)
        return [("console", contact_id)] if "console" in self.channels else [(next(iter(self.channels)), contact_id)]

    def _heartbeat(self, now: datetime) -> None:
        """Every `heartbeat_s`: keep the claims of the sends in flight, and take or keep the coordinator lease."""
        if self._next_heartbeat is not None and now < self._next_heartbeat:
            return
        self._next_heartbeat = now + timedelta(seconds=self.heartbeat_s)
        if self._in_flight:
            self.store.renew_claims(self.instance, now, self.lease_s)
        was = self.coordinator
        self.coordinator = self.store.acquire_lease(COORDINATOR, self.instance, now, self.lease_s)
        if self.coordinator and not was:
            log.info("notifier %s: coordinator (hand-overs, coverage check, lifecycle publishing)", self.instance)

    def release(self) -> None:
        """Give up this instance's claims and leases (a clean stop, after `drain`): another takes over at once."""
        self.store.release_claims(self.instance)
        self.coordinator = False

    def _escalate(self, now: datetime) -> None:
        after = {t.name: t.escalate_after_s or self.timing.escalate_after_s for t in self.rota.teams}
        shortest = min([self.timing.escalate_after_s, *after.values()])
        for record in self.store.escalation_candidates(now, shortest):
            wait = after.get(record.team, self.timing.escalate_after_s)
            if not escalation_due(record.escalation(), now, wait):
                continue
            target = next_contact(record.escalation())
            if target is None:
                log.warning("alert %s: not acknowledged and no one left to escalate to", record.alert.alert_id)
                self.store.escalation_exhausted(record.alert.alert_id, now)
                continue
            level, contact = target
            if self.store.escalate(record, level, contact, self.timing, now):
                self.stats.escalated += 1
                log.info("alert %s escalated to level %d (%s)", record.alert.alert_id, level, contact)

    def _remind(self, now: datetime) -> None:
        """Acknowledged high and critical alerts not resolved in time: message whoever of the team is on duty now
        (the primary; the contact the alert last went to when the team has nobody on duty)."""
        after = self.timing.renotify_after_s
        if after <= 0:
            return
        for record in self.store.renotify_candidates(now, after):
            alert = record.alert
            if not renotify_due(alert.severity, record.acked_at, record.resolved, record.reminded_at, now, after):
                continue
            on_duty = chain_at(self.rota, record.team, self.store.active_changes(now), now)
            contact = on_duty[0] if on_duty else record.chain[min(record.level, len(record.chain) - 1)]
            if self.store.remind(record, contact, self.timing, now):
                self.stats.reminded += 1
                log.info("alert %s: acknowledged, not resolved; reminder to %s", record.alert.alert_id, contact)

    def _duty(self, now: datetime) -> None:
        """Hand-overs: when a team's duty passes to someone new (a shift starts, an override or swap begins or
        ends), the incoming manager gets the team's alerts not yet resolved."""
        if self._next_duty_check is not None and now < self._next_duty_check:
            return
        self._next_duty_check = now + timedelta(seconds=self.duty_check_s)
        changes = self.store.active_changes(now)
        for team in self.rota.teams:
            incoming = self.store.duty_changed(team.name, chain_at(self.rota, team.name, changes, now), self.timing,
                                               now)  # fmt: skip
            if incoming is not None:
                self.stats.handovers += 1
                log.info("team %s: duty passed to %s; hand-over message with the open alerts", team.name, incoming)

    def _coverage(self, now: datetime) -> None:
        """The coverage check at the first tick and then daily: every gap of the next `coverage_days` days is
        logged as a warning (one line per team and kind) and audited."""
        if self._next_coverage is not None and now < self._next_coverage:
            return
        self._next_coverage = now + timedelta(seconds=self.coverage_every_s)
        self.check_coverage(now)

    def check_coverage(self, now: datetime) -> list[Gap]:
        """Run the coverage check now (also after a rota reload or a change of overrides)."""
        self.gaps = coverage(self.rota, self.store.active_changes(now), now, days=self.coverage_days,
                             channels=self.channels)  # fmt: skip
        lines = summary(self.rota, self.gaps, days=self.coverage_days)
        for line in lines:
            log.warning("%s", line)
        detail = "; ".join(lines) if lines else f"every team covered for the next {self.coverage_days} days"
        self.store.audit(now, "system", "coverage_checked", (), detail)
        return self.gaps

    def reload_rota(self, rota: Rota) -> None:
        """Use a new rota from the next tick (checked by the caller); alerts already routed keep their chains."""
        self.rota = rota
        self._next_duty_check = None
        self.check_coverage(self.clock())

    # -- deliveries -------------------------------------------------------------------------------------------

    def _start_deliveries(self, now: datetime) -> None:
        room = max(self.concurrency * 64 - len(self._in_flight), 0)
        if not room:
            return
        busy = set(self._in_flight) | {r.delivery_id for r in self._results}
        for due in self.store.claim_deliveries(now, self.instance, self.lease_s, busy, limit=room):
            task = asyncio.ensure_future(self._deliver(due))
            self._in_flight[due.delivery_id] = task

    def outgoing(self, due: DueDelivery, now: datetime) -> Outgoing:
        contact = self.rota.contacts.get(due.contact_id)
        token = sign_link(self.links.secret, due.team, due.message_id, now + timedelta(seconds=self.links.ttl_s))
        return Outgoing(
            message_id=due.message_id,
            team=due.team,
            contact_name=contact.name if contact else due.contact_id,
            level=due.level,
            alerts=ordered(due.alerts),
            link=f"{self.links.base_url.rstrip('/')}/l/{token}",
            timezone=self.rota.timezone,
            reminder=due.purpose == "reminder",
            handover=due.purpose == "handover",
        )

    async def _deliver(self, due: DueDelivery) -> None:
        error: str | None = None
        try:
            async with self._limit:
                channel = self.channels.get(due.channel)
                if channel is None:
                    raise DeliveryError(f"the {due.channel} channel is not enabled")
                message = self.outgoing(due, self.clock())
                await asyncio.get_running_loop().run_in_executor(self._senders, channel.send, message, due.address)
        except DeliveryError as exc:
            error = str(exc)
        except Exception as exc:  # a bug in a channel must not lose the message: it is retried like a refusal
            log.exception("delivery %d on %s failed unexpectedly", due.delivery_id, due.channel)
            error = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            self._in_flight.pop(due.delivery_id, None)
        if error is None:
            self.stats.delivered += 1
        else:
            self.stats.failed_attempts += 1
            log.warning(
                "delivery of message %d to %s on %s failed (attempt %d), will retry: %s",
                due.message_id, due.contact_id, due.channel, due.attempts + 1, error,
            )  # fmt: skip
        self._results.append(DeliveryResult(due.delivery_id, error, self.clock()))

    def _apply_results(self) -> None:
        results, self._results = self._results, []
        self.store.record_results(results, self.timing)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)
