"""The notifier's work loop without Kafka: take alerts, release groups, send, retry, escalate.

`Notifier.tick()` does whatever is due at the injected clock's now; deliveries run in worker threads (the
channels block) and their results are written back in one transaction at the next tick, so a burst of a
thousand messages costs a handful of commits. Tests drive it with a fake clock: `take`, `tick`, `drain`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from notify.channels import Channel, DeliveryError
from notify.core import Timing, escalation_due, next_contact
from notify.messages import Outgoing, ordered
from notify.rota import Rota
from notify.security import sign_link
from notify.store import DeliveryResult, DueDelivery, NotifyStore
from safeguard.clock import Clock
from schemas.alerts import AlertRaised

log = logging.getLogger(__name__)


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

    def __post_init__(self) -> None:
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._results: list[DeliveryResult] = []
        self._limit = asyncio.Semaphore(self.concurrency)
        # the channels' own threads: Kafka polls and flushes in the default executor never hold a send back
        self._senders = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="notify-send")

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
        self.stats.released_holds += self.store.release_held(now, self.rota, self.timing)
        self._escalate(now)
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

    # -- deliveries -------------------------------------------------------------------------------------------

    def _start_deliveries(self, now: datetime) -> None:
        room = max(self.concurrency * 64 - len(self._in_flight), 0)
        if not room:
            return
        busy = set(self._in_flight) | {r.delivery_id for r in self._results}
        for due in self.store.due_deliveries(now, busy, limit=room):
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
