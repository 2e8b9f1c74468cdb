"""The stored form of a state: version 2 round-trips exactly, version 1 is upgraded and carries on, newer is refused."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import events as contract
from schemas.topics import CONTACTS, MISSING_EPISODES
from streams.rules import (
    STATE_VERSION,
    Catalogue,
    DaObligation,
    RuleInput,
    StateVersionError,
    advance,
    decode_state,
    encode_state,
    evaluate,
)
from streams.rules.state import SubjectState
from tests.unit.test_streams.factories import CHILD, RAISED_AT, run
from tests.unit.test_streams.test_arrival_order import mixed_history

FIXTURE = Path(__file__).parent / "fixtures" / "state_v1.json"
CASES: list[dict[str, Any]] = json.loads(FIXTURE.read_text(encoding="utf-8"))["cases"]
DEFAULTS = Catalogue.default()


def _input(entry: dict[str, Any]) -> RuleInput:
    model = DaObligation if entry["type"] == "DaObligation" else getattr(contract, entry["type"])
    item: RuleInput = model.model_validate(entry["json"])
    return item


@pytest.mark.parametrize("case", CASES, ids=lambda case: case["subject"][1][:8])
def test_a_version_1_state_is_upgraded_and_the_rules_carry_on_as_before(case: dict[str, Any]) -> None:
    subject_type, subject_id = case["subject"]
    state = decode_state(subject_type, subject_id, json.dumps(case["state_v1"]).encode())
    # Upgraded once, it is stored as version 2 and reads back the same.
    state = decode_state(subject_type, subject_id, encode_state(state))
    alerts: list[str] = []
    for entry in case["later_inputs"]:
        result = evaluate(state, _input(entry), RAISED_AT, DEFAULTS)
        state, alerts = result.state, alerts + [a.alert_id for a in result.alerts]
    clock = datetime.fromisoformat(case["clock"])
    for topic in (MISSING_EPISODES.name, CONTACTS.name):
        alerts += [a.alert_id for a in advance(state, clock, RAISED_AT, DEFAULTS, clock_topic=topic).alerts]
    assert alerts == case["expected_alert_ids"]


def test_the_fixture_covers_every_part_of_a_state_and_raises_alerts() -> None:
    held = {key for case in CASES for key, value in case["state_v1"].items() if value}
    assert held >= {"seen", "missing_reports", "return_interviews", "plans", "referrals", "contacts", "da_contacts"}
    assert held >= {"incidents", "alerts"}
    assert sum(len(case["expected_alert_ids"]) for case in CASES) > 10


def test_version_2_is_much_smaller_than_version_1() -> None:
    v1 = sum(len(json.dumps(case["state_v1"], separators=(",", ":"))) for case in CASES)
    v2 = sum(
        len(encode_state(decode_state(*case["subject"], case["state_v1"])))  # a decoded v1 dict is accepted too
        for case in CASES
    )
    assert v2 * 2 < v1


def test_a_state_from_a_newer_worker_is_refused_with_what_to_do() -> None:
    state, _ = run([])
    stored = msgpack.packb([STATE_VERSION + 1, None], use_bin_type=True)
    with pytest.raises(StateVersionError, match=r"newer worker \(state version 3\).*Finish the upgrade"):
        decode_state("child", CHILD, stored)
    assert state is None


@pytest.mark.parametrize(
    "stored",
    [b"\xc1", b"{not json", msgpack.packb({"v": 2}), msgpack.packb([]), b'{"subject_type": "child"}'],
    ids=["not msgpack", "not json", "a map", "empty", "v1 of another subject"],
)
def test_bytes_that_are_no_state_are_refused_clearly(stored: bytes) -> None:
    with pytest.raises(StateVersionError, match="state"):
        decode_state("child", CHILD, stored)


def test_ids_that_are_not_canonical_are_kept_exactly() -> None:
    state = SubjectState("child", CHILD)
    state.add_seen("ABCDEF00-0000-0000-0000-000000000001", datetime.fromisoformat("2025-01-01T00:00:00+00:00"))
    state.add_seen("not-a-uuid", datetime.fromisoformat("2025-01-02T00:00:00.000001+00:00"))
    assert decode_state("child", CHILD, encode_state(state)) == state


@settings(max_examples=60, deadline=None)
@given(mixed_history(), st.integers(min_value=0, max_value=3))
def test_any_history_round_trips_and_decoded_states_behave_the_same(events: list[RuleInput], split: int) -> None:
    """Stop anywhere, store and read back: the rest of the history raises exactly what it would have."""
    cut = min(split, len(events))
    kept, _ = run(events[:cut])
    straight, straight_alerts = run(events[cut:], state=None if kept is None else kept.copy())
    restored = None if kept is None else decode_state("child", CHILD, encode_state(kept))
    assert restored == kept
    again, again_alerts = run(events[cut:], state=restored)
    assert again == straight
    assert [a.alert_id for a in again_alerts] == [a.alert_id for a in straight_alerts]
    if again is not None:
        later = max(e.occurred_at for e in events) + timedelta(days=30)
        a = advance(again.copy(), later, RAISED_AT, DEFAULTS, clock_topic=MISSING_EPISODES.name).alerts
        b = advance(straight.copy(), later, RAISED_AT, DEFAULTS, clock_topic=MISSING_EPISODES.name).alerts
        assert [x.alert_id for x in a] == [x.alert_id for x in b]


def test_holds_any_answers_from_the_layout_as_a_full_decode_would() -> None:
    from streams.rules.codec import holds_any
    from tests.unit.test_streams.factories import contact_received, day, missing_found, missing_reported

    kinds = DEFAULTS.deadline_reads("child")
    assert "return_interviews" in kinds
    contacts_only, _ = run([contact_received(day(0))])
    with_duty, _ = run([missing_reported(day(0), episode="MP-1"), missing_found(day(1), episode="MP-1")])
    assert contacts_only is not None and with_duty is not None
    for state in (contacts_only, with_duty):
        stored = encode_state(state)
        assert holds_any(stored, kinds) == any(getattr(state, kind) for kind in kinds)
    assert holds_any(encode_state(with_duty), kinds)
    assert not holds_any(encode_state(contacts_only), kinds)
    assert not holds_any(encode_state(with_duty), ())
    # What the layout cannot answer is left to decode_state (which upgrades or refuses it).
    assert holds_any(b'{"subject_type": "child"}', kinds)
    assert holds_any({"subject_type": "child"}, kinds)
    assert holds_any(b"\xc1 not msgpack", kinds)
    assert holds_any(msgpack.packb([STATE_VERSION + 1]), kinds)
