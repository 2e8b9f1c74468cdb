"""Several notifier instances on one store, with an injected clock: a delivery is claimed by one instance at a
time, a killed instance's claims and coordinator lease are taken over when their lease runs out (not before), and
each alert is messaged once in the normal case, at most twice when its sender died in flight.

The tests use the `store_target` fixture: a SQLite file here; tests/integration/test_notify/test_ha_store.py runs
the same tests against a real PostgreSQL server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from notify.core import Timing
from notify.engine import LinkConfig, Notifier
from notify.store import DeliveryResult, NotifyStore
from tests.unit.test_notify.helpers import FakeClock, RecordingChannel, make_alert, rota

TIMING = Timing(group_wait_s=0.5, group_window_s=60, repeat_interval_s=3600, escalate_after_s=900,
                retry_initial_s=2, retry_max_s=60)  # fmt: skip
LEASE_S = 5.0

StoreFactory = Callable[[], NotifyStore]


@pytest.fixture
def store_target(tmp_path: Path) -> tuple[str, str | None]:
    """Where the shared store is, and its password (None for SQLite)."""
    return str(tmp_path / "notify.sqlite3"), None


@pytest.fixture
def open_store(store_target: tuple[str, str | None]) -> Iterator[StoreFactory]:
    opened: list[NotifyStore] = []

    def make() -> NotifyStore:
        target, password = store_target
        store = NotifyStore(target, password=password)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


class Instance:
    """One notifier instance: its own store connection, channel and instance id, on the shared clock."""

    def __init__(self, name: str, store: NotifyStore, clock: FakeClock) -> None:
        self.email = RecordingChannel()
        self.console = RecordingChannel()
        self.hook = RecordingChannel()
        self.notifier = Notifier(
            store=store, rota=rota(), clock=clock, timing=TIMING, instance=name, lease_s=LEASE_S, heartbeat_s=1.0,
            channels={"email": self.email, "console": self.console, "webhook-teams": self.hook},
            links=LinkConfig("http://127.0.0.1:8470", b"s" * 32, 3600),
        )  # fmt: skip

    def tick(self) -> None:
        async def once() -> None:
            await self.notifier.tick()
            await self.notifier.drain()

        asyncio.run(once())

    def sent_alert_ids(self) -> list[str]:
        return [a.alert_id for ch in (self.email, self.console, self.hook) for m, _ in ch.sent for a in m.alerts]


def _release(store: NotifyStore, clock: FakeClock, n: int) -> list[str]:
    """Take `n` urgent alerts (one per child: one message each) and release their groups."""
    ids = store.take([make_alert(i, subject=f"child-{i}") for i in range(n)], rota(), TIMING, clock())
    clock.advance(TIMING.group_wait_s)
    store.release_due(clock(), lambda contact: [("email", f"{contact}@example.org")])
    return ids


def test_a_delivery_is_claimed_by_one_instance_until_its_lease_runs_out(open_store: StoreFactory) -> None:
    clock = FakeClock()
    a, b = open_store(), open_store()
    _release(a, clock, 3)
    mine = a.claim_deliveries(clock(), "a", LEASE_S, set())
    assert len(mine) == 3
    assert b.claim_deliveries(clock(), "b", LEASE_S, set()) == []  # a's claims are live
    clock.advance(LEASE_S - 0.1)
    assert b.claim_deliveries(clock(), "b", LEASE_S, set()) == []
    clock.advance(0.1)  # a's lease ran out (a was killed, or is stuck): b takes the deliveries over
    taken = b.claim_deliveries(clock(), "b", LEASE_S, set())
    assert sorted(d.delivery_id for d in taken) == sorted(d.delivery_id for d in mine)
    assert a.claim_deliveries(clock(), "a", LEASE_S, set()) == []  # and a cannot take them back


def test_renewed_claims_are_not_taken_over(open_store: StoreFactory) -> None:
    clock = FakeClock()
    a, b = open_store(), open_store()
    _release(a, clock, 2)
    assert len(a.claim_deliveries(clock(), "a", LEASE_S, set())) == 2
    clock.advance(LEASE_S - 1)
    assert a.renew_claims("a", clock(), LEASE_S) == 2  # a slow send, still in flight
    clock.advance(LEASE_S - 1)
    assert b.claim_deliveries(clock(), "b", LEASE_S, set()) == []
    assert b.renew_claims("b", clock(), LEASE_S) == 0  # b holds nothing to renew


def test_a_late_result_after_a_takeover_is_recorded_once(open_store: StoreFactory) -> None:
    clock = FakeClock()
    a, b = open_store(), open_store()
    (alert_id,) = _release(a, clock, 1)
    (first,) = a.claim_deliveries(clock(), "a", LEASE_S, set())
    clock.advance(LEASE_S)
    (second,) = b.claim_deliveries(clock(), "b", LEASE_S, set())
    assert second.delivery_id == first.delivery_id
    b.record_results([DeliveryResult(second.delivery_id, None, clock())], TIMING)
    a.record_results([DeliveryResult(first.delivery_id, None, clock())], TIMING)  # a's send finished after all
    notified = [e for e in a.lifecycle_events(alert_id) if e.state == "notified"]
    assert len(notified) == 1
    assert a.counts()["pending_deliveries"] == 0


def test_a_failed_attempt_gives_up_its_claim_for_the_retry(open_store: StoreFactory) -> None:
    clock = FakeClock()
    a, b = open_store(), open_store()
    _release(a, clock, 1)
    (due,) = a.claim_deliveries(clock(), "a", LEASE_S, set())
    a.record_results([DeliveryResult(due.delivery_id, "451 try again later", clock())], TIMING)
    clock.advance(TIMING.retry_initial_s)  # the retry is due: whichever instance looks first sends it
    (retry,) = b.claim_deliveries(clock(), "b", LEASE_S, set())
    assert retry.delivery_id == due.delivery_id and retry.attempts == 1


def test_the_coordinator_lease(open_store: StoreFactory) -> None:
    clock = FakeClock()
    a, b = open_store(), open_store()
    assert a.acquire_lease("coordinator", "a", clock(), LEASE_S)
    assert not b.acquire_lease("coordinator", "b", clock(), LEASE_S)
    clock.advance(LEASE_S - 1)
    assert a.acquire_lease("coordinator", "a", clock(), LEASE_S)  # renewed
    clock.advance(LEASE_S - 1)
    assert not b.acquire_lease("coordinator", "b", clock(), LEASE_S)
    assert b.lease_holder("coordinator", clock()) == "a"
    clock.advance(1)  # a stopped renewing (killed): b takes over
    assert b.acquire_lease("coordinator", "b", clock(), LEASE_S)
    assert not a.acquire_lease("coordinator", "a", clock(), LEASE_S)
    b.release_claims("b")  # a clean stop gives the lease up at once
    assert a.acquire_lease("coordinator", "a", clock(), LEASE_S)


def test_two_instances_message_each_alert_once(open_store: StoreFactory) -> None:
    clock = FakeClock()
    a, b = Instance("a", open_store(), clock), Instance("b", open_store(), clock)
    ids = a.notifier.take([make_alert(i, subject=f"child-{i}") for i in range(20)])
    b.notifier.take([make_alert(i, subject=f"child-{i}") for i in range(20)])  # a re-read after a rebalance
    clock.advance(1)
    for _ in range(3):
        a.tick()
        b.tick()
        clock.advance(0.5)
    sent = a.sent_alert_ids() + b.sent_alert_ids()
    assert sorted(sent) == sorted(ids)  # every alert once, from one instance or the other
    assert [a.notifier.coordinator, b.notifier.coordinator] == [True, False]
    assert not [e for e in a.notifier.store.audit_trail() if e.action == "delivery_taken_over"]


def test_a_killed_instance_s_sends_are_taken_over_after_the_lease(open_store: StoreFactory) -> None:
    """`a` claims the deliveries and dies before recording anything: `b` sends them once the lease has run out,
    not before. Whether `a`'s sends left it is unknown: at most one duplicate per alert."""
    clock = FakeClock()
    store_a = open_store()
    a, b = Instance("a", store_a, clock), Instance("b", open_store(), clock)
    ids = a.notifier.take([make_alert(i, subject=f"child-{i}") for i in range(5)])
    clock.advance(1)
    store_a.release_due(clock(), a.notifier.channels_of)
    claimed = store_a.claim_deliveries(clock(), "a", LEASE_S, set())  # a's tick, then SIGKILL
    assert len(claimed) == 5
    b.tick()
    assert b.sent_alert_ids() == []  # a's claims are live: nobody sends twice while a might still be sending
    assert b.notifier.coordinator  # the coordinator lease was free
    clock.advance(LEASE_S)
    b.tick()
    assert sorted(b.sent_alert_ids()) == sorted(ids)
    clock.advance(LEASE_S)
    b.tick()
    assert sorted(b.sent_alert_ids()) == sorted(ids)  # once each
    assert b.notifier.store.counts()["pending_deliveries"] == 0
    (takeover,) = [e for e in b.notifier.store.audit_trail() if e.action == "delivery_taken_over"]
    assert sorted(takeover.alert_ids) == sorted(ids)  # the alerts a failover may have repeated, named
    assert takeover.detail == "5 deliveries whose lease ran out, from a to b"


def test_a_stuck_instance_loses_its_coordinator_role(open_store: StoreFactory) -> None:
    clock = FakeClock()
    a, b = Instance("a", open_store(), clock), Instance("b", open_store(), clock)
    a.tick()
    b.tick()
    assert (a.notifier.coordinator, b.notifier.coordinator) == (True, False)
    clock.now += timedelta(seconds=LEASE_S)  # a ticks no more
    b.tick()
    assert b.notifier.coordinator
    a.tick()
    assert not a.notifier.coordinator


def test_the_shared_store_settings(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from notify.service import check_shared, open_store
    from safeguard.settings import NotifySettings
    from schemas.errors import ConfigError

    with pytest.raises(ValidationError, match="must not hold the password"):
        NotifySettings(store_url="postgresql://u:secret@db.example/notify")
    with pytest.raises(ValidationError, match="postgresql:// URL"):
        NotifySettings(store_url="sqlite:///notify.sqlite3")
    assert NotifySettings(store_url="  ").store_url is None  # compose passes an unset variable as empty
    shared = NotifySettings(store_url="postgresql://u@db.example:5432/notify", store_password="pw")
    with pytest.raises(ConfigError, match="LINK_SECRET"):
        check_shared(shared)
    check_shared(shared.model_copy(update={"link_secret": "k" * 32}))
    store = open_store(NotifySettings(data_dir=tmp_path / "notify"))  # unset: SQLite in data_dir
    try:
        assert not store.postgres and (tmp_path / "notify" / "notify.sqlite3").exists()
    finally:
        store.close()
