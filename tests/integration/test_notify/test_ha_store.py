"""The notifier's store on a real PostgreSQL server: the claim and lease tests of
tests/unit/test_notify/test_claims.py run again against it (each on a fresh database), and a day of the store's
work (take, group, send, fail and retry, acknowledge, resolve, sessions, silences, the page, hand-overs) gives the
same answers on PostgreSQL as on SQLite."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from notify.holds import Silence, matchers_of
from notify.store import DeliveryResult, NotifyStore
from tests.unit.test_notify.helpers import FakeClock, make_alert, rota
from tests.unit.test_notify.test_claims import (  # noqa: F401 (collected here again, on PostgreSQL)
    TIMING,
    test_a_delivery_is_claimed_by_one_instance_until_its_lease_runs_out,
    test_a_failed_attempt_gives_up_its_claim_for_the_retry,
    test_a_killed_instance_s_sends_are_taken_over_after_the_lease,
    test_a_late_result_after_a_takeover_is_recorded_once,
    test_a_stuck_instance_loses_its_coordinator_role,
    test_renewed_claims_are_not_taken_over,
    test_the_coordinator_lease,
    test_two_instances_message_each_alert_once,
)
from tests.unit.test_notify.test_claims import open_store as open_store

pytestmark = pytest.mark.integration


@pytest.fixture
def store_target(postgres: Any) -> tuple[str, str | None]:
    return postgres.new_database(), postgres.password


def _day(store: NotifyStore) -> dict[str, Any]:
    """Drive one store through the common paths; what came out, comparable across the two kinds of store."""
    clock = FakeClock()
    r = rota()
    alerts = [make_alert(i, subject=f"child-{i % 3}", severity=("high", "medium")[i % 2]) for i in range(8)]
    taken = store.take(alerts, r, TIMING, clock())
    again = store.take(alerts[:3], r, TIMING, clock())
    clock.advance(TIMING.group_window_s)
    released = store.release_due(clock(), lambda c: [("email", f"{c}@example.org")])
    due = store.claim_deliveries(clock(), "i1", 5.0, set())
    results = [DeliveryResult(d.delivery_id, None if n % 3 else "451 later", clock()) for n, d in enumerate(due)]
    store.record_results(results, TIMING)
    clock.advance(TIMING.retry_max_s)
    retried = store.claim_deliveries(clock(), "i1", 5.0, set())
    store.record_results([DeliveryResult(d.delivery_id, None, clock()) for d in retried], TIMING)
    first = taken[0]
    acked = [store.acknowledge(first, "dana", "front-door", "on it", clock()),
             store.acknowledge(first, "dana", "front-door", None, clock())]  # fmt: skip
    resolved = store.resolve(taken[1], "dana", "front-door", "contact_made", "spoke to school", clock())
    store.create_session("h" * 64, "dana", "front-door", "csrf", clock(), 3600)
    session = store.session("h" * 64, clock())
    silence = Silence("s1", matchers_of({"rule": ["repeat_missing"]}), clock(), clock() + timedelta(hours=1),
                      "drill", "dana", clock())  # fmt: skip
    store.create_silence(silence, via="test")
    held = store.take([make_alert(99, subject="child-9")], r, TIMING, clock())
    page = store.alerts_page("front-door", 1, 3, message_id=due[0].message_id)
    handover = store.duty_changed("front-door", ("day", "senior"), TIMING, clock())
    handover2 = store.duty_changed("front-door", ("senior", "head"), TIMING, clock())
    return {
        "taken": len(taken),
        "again": again,
        "released": released,
        "claimed": len(due),
        "retried": len(retried),
        "acked": acked,
        "resolved": resolved,
        "session": (session.user, session.team) if session else None,
        "silences": [s.silence_id for s in store.silences(clock())],
        "held": [store.alert(a).held_kind for a in held],  # type: ignore[union-attr]
        "page": (page.page, page.pages, page.total, len(page.records), page.linked_open),
        "handover": (handover, handover2),
        "counts": store.counts(),
        "states": sorted(e.state for e in store.lifecycle_events()),
        "next": store.next_send_at() is not None,
        "unresolved": [a.alert.alert_id for a in store.unresolved("front-door")],
        "audit": sorted(e.action for e in store.audit_trail()),
    }


def test_postgres_gives_the_answers_sqlite_gives(postgres: Any, tmp_path: Path) -> None:
    lite = NotifyStore(tmp_path / "notify.sqlite3")
    pg = NotifyStore(postgres.new_database(), password=postgres.password)
    try:
        expected, got = _day(lite), _day(pg)
    finally:
        lite.close()
        pg.close()
    assert got == expected
    assert expected["taken"] == 8 and expected["again"] == [] and expected["acked"] == ["acknowledged", "already"]


def test_instances_starting_together_create_the_schema_once(postgres: Any) -> None:
    import threading

    url = postgres.new_database()
    stores: list[NotifyStore] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            stores.append(NotifyStore(url, password=postgres.password))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == []
        assert {s.schema_version() for s in stores} == {len(__import__("notify.store").store.MIGRATIONS)}
    finally:
        for s in stores:
            s.close()


def test_a_wrong_password_is_a_clear_error(postgres: Any) -> None:
    import psycopg

    with pytest.raises(psycopg.OperationalError, match="password"):
        NotifyStore(postgres.url(), password="not-the-password")
