"""Silences and inhibition in the work loop (store, engine, injected clock, recording channels): held alerts are
recorded and shown, never dropped, messaged when the hold ends if still open; audit rows; the rota's `[[inhibit]]`
checks; the store's schema migration."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from notify.holds import Silence, matchers_of
from notify.rota import RotaError, parse_rota
from notify.store import SCHEMA, SCHEMA_VERSION, NotifyStore, StoreVersionError
from schemas.codec import encode
from tests.unit.test_notify.helpers import ROTA_TOML, make_alert, pseudonym
from tests.unit.test_notify.test_engine import Rig

INHIBIT = """
[[inhibit]]
name = "high-risk-holds-repeat"
source_rules = ["high_risk_missing"]
target_rules = ["repeat_missing"]
hours = 24
"""


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path / "notify.sqlite3")
    r.notifier.rota = parse_rota(ROTA_TOML + INHIBIT, source="test-rota.toml")
    yield r
    r.store.close()


def add_silence(rig: Rig, hours: float = 2, start_in_s: float = 0, **given: list[str]) -> Silence:
    now = rig.clock()
    start = now + timedelta(seconds=start_in_s)
    s = Silence(f"{len(rig.store.silences(now)) + 1:012x}", matchers_of(given), start, start + timedelta(hours=hours),
                "planned school residential", "dana", now)  # fmt: skip
    rig.store.create_silence(s, "test")
    return s


def addresses(rig: Rig) -> list[str]:
    return [a for _, a in rig.email.sent]


# -- silences ---------------------------------------------------------------------------------------------------


def test_a_silenced_alert_is_recorded_and_shown_then_messaged_when_the_silence_ends(rig: Rig) -> None:
    s = add_silence(rig, hours=2, rule=["repeat_missing"], team=["front-door"])
    alert = make_alert(1)  # high, repeat_missing, front door
    rig.notifier.take([alert])
    rig.run(60)
    assert rig.email.sent == []
    [record] = rig.store.open_alerts("front-door")
    assert (record.held_kind, record.held_by, record.held_until) == ("silence", s.silence_id, s.ends_at)
    assert s.silence_id in (record.held_note or "")
    raised = rig.store.lifecycle_events(alert.alert_id)[0]
    assert raised.state == "raised" and raised.note and f"silenced by silence {s.silence_id}" in raised.note
    assert next(e.action for e in rig.store.audit_trail() if e.action != "coverage_checked") == "held_silence"
    rig.run(2 * 3600 - 60 - 1)  # one second before the end: still held, and no escalation meanwhile
    assert rig.email.sent == [] and rig.store.open_alerts("front-door")[0].level == 0
    rig.run(1)  # the end
    rig.run(0.5)  # the group's short wait
    assert addresses(rig) == ["day@example.org"]
    assert not rig.store.open_alerts("front-door")[0].held
    assert rig.store.audit_trail()[0].action == "hold_released"
    rig.run(899)  # escalation counts from the release, not from when the alert arrived
    assert addresses(rig) == ["day@example.org"]
    rig.run(1)
    assert addresses(rig) == ["day@example.org", "senior@example.org"]


def test_an_alert_acknowledged_while_silenced_is_not_messaged(rig: Rig) -> None:
    add_silence(rig, hours=1, subject=[pseudonym("child-1")])
    alert = make_alert(1)
    rig.notifier.take([alert])
    assert rig.store.acknowledge(alert.alert_id, "dana", "front-door", "seen on the page", rig.clock()) == (
        "acknowledged"
    )
    rig.run(3600)
    rig.run(1)
    assert rig.email.sent == []
    assert rig.store.counts()["held"] == 0


def test_only_alerts_matching_every_matcher_while_active_are_held(rig: Rig) -> None:
    add_silence(rig, hours=1, start_in_s=60, rule=["repeat_missing"], severity=["medium"])
    rig.notifier.take([make_alert(1, severity="medium")])  # before the start: messaged
    rig.run(60)  # the silence starts now (and the medium group's window is over)
    rig.notifier.take([make_alert(2, severity="high", subject="child-2")])  # another severity: messaged
    rig.notifier.take([make_alert(3, severity="medium", subject="child-3")])  # held
    rig.run(61)
    assert sorted(addresses(rig)) == ["day@example.org", "day@example.org"]
    held = [r for r in rig.store.open_alerts("front-door") if r.held]
    assert [r.alert.alert_id for r in held] == [make_alert(3).alert_id]


def test_expiring_a_silence_early_messages_the_open_alerts_it_held(rig: Rig) -> None:
    s = add_silence(rig, hours=8, la=["383"])
    alert = make_alert(1)
    rig.notifier.take([alert])
    rig.run(600)
    assert rig.email.sent == []
    assert rig.store.expire_silence(s.silence_id, "eve", rig.clock(), "test", team="front-door") == "not_yours"
    assert rig.store.expire_silence(s.silence_id, "eve", rig.clock(), "test") == "expired"
    audit = rig.store.audit_trail()[0]
    assert (audit.actor, audit.action, audit.alert_ids) == ("eve", "silence_expired", (alert.alert_id,))
    assert rig.store.expire_silence(s.silence_id, "eve", rig.clock(), "test") == "ended"
    assert rig.store.expire_silence("ffffffffffff", "eve", rig.clock(), "test") == "not_found"
    rig.run(0)
    rig.run(0.5)
    assert addresses(rig) == ["day@example.org"]
    assert rig.store.silences(rig.clock()) == []
    [ended] = rig.store.silences(rig.clock(), ended_within_s=60)
    assert ended.status(rig.clock()) == "expired" and ended.expired_by == "eve"


def test_an_alert_still_matching_another_silence_stays_held_and_names_it(rig: Rig) -> None:
    first = add_silence(rig, hours=1, rule=["repeat_missing"])
    rig.notifier.take([make_alert(1)])
    second = add_silence(rig, hours=3, team=["front-door"], severity=["high"])  # made after the alert arrived
    rig.run(3600)
    [record] = rig.store.open_alerts("front-door")
    assert record.held_by == second.silence_id != first.silence_id
    assert rig.email.sent == []
    rig.run(2 * 3600)
    rig.run(0.5)
    assert addresses(rig) == ["day@example.org"]


def test_making_a_silence_is_audited(rig: Rig) -> None:
    s = add_silence(rig, rule=["repeat_missing"], subject=[pseudonym("child-1")])
    entry = rig.store.audit_trail()[0]
    assert (entry.actor, entry.action) == ("dana", "silence_created")
    assert s.silence_id in entry.detail and "rule=repeat_missing" in entry.detail and "via test" in entry.detail
    assert rig.store.silence(s.silence_id) == s


# -- inhibition ---------------------------------------------------------------------------------------------------


def test_a_childs_high_risk_alert_holds_back_their_repeat_missing_until_acknowledged(rig: Rig) -> None:
    source = make_alert(1, rule_id="high_risk_missing", severity="critical")
    target = make_alert(2, rule_id="repeat_missing", severity="high")
    other_child = make_alert(3, rule_id="repeat_missing", severity="high", subject="child-2")
    rig.notifier.take([target, source, other_child])  # one batch, the target first: the source still holds it
    rig.run(0.5)
    assert sorted(len(m.alerts) for m, _ in rig.email.sent) == [1, 1]  # the source, and the other child's
    held = rig.store.alert(target.alert_id)
    assert held is not None and (held.held_kind, held.held_by) == ("inhibition", source.alert_id)
    assert f"high_risk_missing alert {source.alert_id}" in (held.held_note or "")
    rig.run(600)
    rig.store.acknowledge(source.alert_id, "dana", "front-door", None, rig.clock())
    rig.run(0)
    rig.run(0.5)
    assert [m.alerts[0].alert_id for m, _ in rig.email.sent][-1] == target.alert_id
    assert rig.store.counts()["held"] == 0


def test_an_inhibited_alert_is_messaged_when_the_window_ends(rig: Rig) -> None:
    source = make_alert(1, rule_id="high_risk_missing", severity="high")
    rig.notifier.take([source])
    rig.run(3600)
    target = make_alert(2, rule_id="repeat_missing", severity="medium")
    rig.notifier.take([target])
    rig.run(23 * 3600 - 1)  # 24 h after the source was taken, less a second
    sent = [a.alert_id for m, _ in rig.email.sent for a in m.alerts]
    assert target.alert_id not in sent
    rig.run(1)
    rig.run(60)  # a medium group's window
    sent = [a.alert_id for m, _ in rig.email.sent for a in m.alerts]
    assert target.alert_id in sent


def test_a_silenced_source_inhibits_nothing(rig: Rig) -> None:
    add_silence(rig, hours=4, rule=["high_risk_missing"])
    source = make_alert(1, rule_id="high_risk_missing", severity="critical")
    target = make_alert(2, rule_id="repeat_missing", severity="high")
    rig.notifier.take([source, target])
    rig.run(0.5)
    assert [a.alert_id for m, _ in rig.email.sent for a in m.alerts] == [target.alert_id]


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ('[[inhibit]]\nsource_rules = ["high_risk_missing"]\nhours = 24\n', "target_rules: is required"),
        ('[[inhibit]]\nsource_rules = ["nope"]\ntarget_rules = ["repeat_missing"]\nhours = 1\n', "unknown rule 'nope'"),
        ('[[inhibit]]\nsource_rules = ["*"]\ntarget_rules = ["repeat_missing"]\nhours = 1\n', '"*" is not allowed'),
        ('[[inhibit]]\nsource_rules = ["repeat_missing"]\ntarget_rules = ["repeat_missing"]\nhours = 1\n',
         "cannot be both source and target"),
        ('[[inhibit]]\nsource_rules = ["high_risk_missing"]\ntarget_rules = ["repeat_missing"]\n',
         "hours: is required"),
        ('[[inhibit]]\nsource_rules = ["high_risk_missing"]\ntarget_rules = ["repeat_missing"]\nhours = 200\n',
         "at most 168 hours"),
        ('[[inhibit]]\nsource_rules = ["high_risk_missing"]\ntarget_rules = ["repeat_missing"]\nhours = 1\n'
         'equal = ["child"]\n', "'child' is not one of subject, la, team"),
        ('[[inhibit]]\nsource_rules = ["high_risk_missing"]\ntarget_rules = ["repeat_missing"]\nhours = 1\n'
         'target_severities = ["urgent"]\n', "'urgent' is not one of"),
        ('[[inhibit]]\nsource_rules = ["high_risk_missing"]\ntarget_rules = ["repeat_missing"]\nhours = 1\n'
         "for = 3\n", "inhibit[0]: unknown key 'for'"),
        ('inhibit = "yes"\n', "must be a list of tables"),
    ],
)  # fmt: skip
def test_bad_inhibition_rules_are_refused_when_the_rota_loads(section: str, problem: str) -> None:
    text = section + ROTA_TOML if section.startswith("inhibit =") else ROTA_TOML + section
    with pytest.raises(RotaError) as caught:
        parse_rota(text, source="r.toml")
    assert any(problem in p and p.startswith("r.toml: ") for p in caught.value.problems), caught.value.problems


def test_inhibition_rules_are_read_with_their_defaults() -> None:
    extra = INHIBIT + '\n[[inhibit]]\nsource_rules = ["high_risk_missing"]\n'
    extra += 'target_rules = ["return_interview_overdue"]\n'
    extra += 'hours = 1.5\nequal = ["subject", "la"]\nsource_severities = ["critical"]\n'
    first, second = parse_rota(ROTA_TOML + extra).inhibitions
    assert first.name == "high-risk-holds-repeat" and first.window == timedelta(hours=24)
    assert first.equal == ("subject",) and first.target_severities == {"info", "medium", "high", "critical"}
    assert second.name == "inhibit[1]" and second.window == timedelta(minutes=90)
    assert second.equal == ("subject", "la") and second.source_severities == {"critical"}


# -- the store's schema ---------------------------------------------------------------------------------------------


def test_a_database_of_the_previous_version_is_migrated_and_keeps_its_alerts(tmp_path: Path) -> None:
    path = tmp_path / "notify.sqlite3"
    alert = make_alert(1)
    db = sqlite3.connect(path)
    db.executescript(SCHEMA)  # version 0: no silences, no held columns
    db.execute(
        "INSERT INTO alerts (alert_id, payload, rule_id, severity, subject_id, team, chain, received_at, "
        "level_started_at) VALUES (?, ?, ?, ?, ?, 'front-door', '[\"day\"]', 0, 0)",
        (alert.alert_id, encode(alert), alert.rule_id, alert.severity, alert.subject_id),
    )
    db.commit()
    db.close()
    store = NotifyStore(path)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        record = store.alert(alert.alert_id)
        assert record is not None and record.alert == alert and not record.held
        assert store.silences(alert.raised_at) == []
    finally:
        store.close()
    NotifyStore(path).close()  # opening again migrates nothing


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notify.sqlite3"
    NotifyStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreVersionError, match="newer than this notifier"):
        NotifyStore(path)
