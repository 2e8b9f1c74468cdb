"""The alerts page's filters (severity, rule, pseudonym prefix) in the store and the query, and the evidence
timeline's order and its fallback when the store cannot be read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from notify.core import Timing
from notify.evidence import Evidence, StoreEvidence, timeline
from notify.store import AlertFilter, NotifyStore
from notify.web import ViewQuery
from tests.unit.test_notify.helpers import FakeClock, make_alert, rota

T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)


def test_filters_narrow_the_open_alerts_and_their_pages(tmp_path: Path) -> None:
    store = NotifyStore(tmp_path / "notify.sqlite3")
    try:
        alerts = [
            make_alert(i, severity=sev, rule_id=rule, subject=f"c{i}")
            for i, (sev, rule) in enumerate(
                [("high", "repeat_missing"), ("high", "high_risk_missing"), ("medium", "repeat_missing")] * 3
            )
        ]
        store.take(alerts, rota(), Timing(), FakeClock()())
        assert store.alerts_page("front-door", 1, 2).total == 9
        high = store.alerts_page("front-door", 2, 2, filters=AlertFilter(severity="high"))
        assert (high.total, high.pages, high.page, len(high.records)) == (6, 3, 2, 2)
        both = store.alerts_page("front-door", 1, 10, filters=AlertFilter(severity="high", rule="repeat_missing"))
        assert {r.alert.alert_id for r in both.records} == {alerts[i].alert_id for i in (0, 3, 6)}
        target = alerts[4]
        found = store.alerts_page("front-door", None, 10, filters=AlertFilter(subject_prefix=target.subject_id[:6]))
        assert [r.alert.alert_id for r in found.records] == [target.alert_id]
        whole = store.alerts_page("front-door", None, 10, filters=AlertFilter(subject_prefix=target.subject_id))
        assert whole.total == 1
        assert store.alerts_page("front-door", 1, 10, filters=AlertFilter(subject_prefix="ffffffff")).total == 0
    finally:
        store.close()


def test_the_query_keeps_only_well_formed_filters() -> None:
    view = ViewQuery.parse({"severity": "high", "rule": "repeat_missing", "q": " ABCDEF12 "})
    assert (view.severity, view.rule, view.q) == ("high", "repeat_missing", "abcdef12")
    assert view.filter_params() == {"severity": "high", "rule": "repeat_missing", "q": "abcdef12"}
    bad = ViewQuery.parse({"severity": "urgent", "rule": "DROP TABLE", "q": "abc"})  # q: at least 4 hex
    assert (bad.severity, bad.rule, bad.q) == ("", "", "")
    assert not bad.filters.active and bad.filter_params() == {}
    assert ViewQuery.parse({"q": "xyz12345"}).q == ""


def test_the_timeline_is_in_time_order_with_unknown_ids_last() -> None:
    def ev(event_id: str, days: int) -> Evidence:
        return Evidence(event_id, "missing.reported", T0 - timedelta(days=days), "police", "WYP")

    found = {"b": ev("b", 10), "a": ev("a", 3)}
    assert [(i, e is not None) for i, e in timeline(["a", "x", "b"], found)] == [("b", True), ("a", True),
                                                                                ("x", False)]  # fmt: skip


def test_an_unreachable_store_gives_no_evidence_and_is_tried_again() -> None:
    calls: list[int] = []

    class Broken:
        def query(self, *args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            raise OSError("connection refused\nmore")

    source = StoreEvidence(lambda: Broken(), "safeguard")
    assert source.lookup(["a"]) == {}
    assert source.lookup(["a"]) == {}
    assert len(calls) == 2
    assert source.lookup([]) == {} and len(calls) == 2
