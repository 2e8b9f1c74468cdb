"""Property tests of intake and the codec on hostile input: an event or a dead letter, never an exception.

Random bytes, mutated valid events (any field set to any JSON value, deep nesting, long lists, long strings,
identifiers planted anywhere), any key and any record timestamp. For every input, `check_record` answers with an
accepted event or a dead letter, the dead letter can always be encoded within the broker's default message size,
and it carries none of the identifiers planted in the input. The sink's mapping of the same record never raises.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import encode
from schemas.deadletter import DeadLetter
from schemas.events import EVENT_MODELS
from schemas.topics import EVENT_TOPICS, topic_for
from sinks.records import Message, rows_for_message
from streams.intake import check_record
from tests.unit.test_schemas import examples as ex

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
AT = datetime(2025, 3, 2, 8, 0, tzinfo=UTC)
PLANTED = ("9434765919", "M383123450012", "JANE SMITH", "LS1 4AP")
"""Identifiers the strategies plant in messages: a dead letter must never carry one."""

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(
    json_scalars | st.sampled_from(PLANTED),
    lambda inner: st.lists(inner, max_size=60) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=200,
)


@st.composite
def mutated_events(draw: st.DrawFn) -> tuple[str, bytes, bytes | None]:
    """A valid event of any type with some fields replaced, removed or added; its topic, bytes and key."""
    event_type = draw(st.sampled_from(sorted(EVENT_MODELS)))
    event: dict[str, Any] = draw(st.sampled_from([ex.minimal, ex.full]))(event_type)
    for _ in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["set", "drop", "add", "identifier"]))
        field = draw(st.sampled_from(sorted(event)))
        if action == "set":
            event[field] = draw(json_values)
        elif action == "drop":
            event.pop(field, None)
        elif action == "add":
            event[draw(st.text(max_size=12) | st.sampled_from(PLANTED))] = draw(json_values)
        else:
            wrap = draw(st.sampled_from(["{}", "NHS{}", "X-{}", "UPN:{}", "{} ", "a {} b"]))
            event[field] = wrap.format(draw(st.sampled_from(PLANTED)))
    nesting = draw(st.integers(0, 3))
    body = json.dumps(event, ensure_ascii=draw(st.booleans()))
    if nesting == 3:
        body = "[" * draw(st.integers(1, 5000)) + body
    key_source = event.get("household_id") if event_type.startswith("domestic") else event.get("child_id")
    key = draw(st.sampled_from([None, str(key_source).encode(), b"9434765919", draw(st.binary(max_size=40))]))
    return topic_for(event_type).name, body.encode("utf-8", "surrogatepass"), key


topics = st.sampled_from([t.name for t in EVENT_TOPICS])
record_times = st.one_of(
    st.none(),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)),
)


def _check(topic: str, value: bytes | None, key: bytes | None, timestamp: datetime | None) -> None:
    outcome = check_record(topic=topic, partition=1, offset=9, key=key, value=value, at=AT, timestamp=timestamp)
    if isinstance(outcome, DeadLetter):
        wire = encode(outcome)
        assert len(wire) < 1_000_000, "a dead letter always fits the broker's default message size"
        text = wire.decode("utf-8") + outcome.original().decode("utf-8", "replace")
        for identifier in PLANTED:
            assert identifier not in text, f"{identifier!r} in a dead letter: {outcome.reason_code}"
        assert outcome.reason_code and outcome.error
    else:
        assert outcome.event_type in EVENT_MODELS
    ms = int(timestamp.timestamp() * 1000) if timestamp is not None else 0
    rows = rows_for_message(Message(topic, 1, 9, key, value, ms), AT)
    assert rows, "every message gives at least one row"


@FUZZ
@given(topics, st.binary(max_size=2000) | st.none(), st.binary(max_size=50) | st.none(), record_times)
def test_random_bytes_give_a_dead_letter_never_an_exception(
    topic: str, value: bytes | None, key: bytes | None, timestamp: datetime | None
) -> None:
    _check(topic, value, key, timestamp)


@FUZZ
@given(mutated_events(), record_times, st.booleans())
def test_mutated_events_give_an_event_or_a_dead_letter_never_an_exception(
    mutated: tuple[str, bytes, bytes | None], timestamp: datetime | None, other_topic: bool
) -> None:
    topic, value, key = mutated
    _check(EVENT_TOPICS[0].name if other_topic else topic, value, key, timestamp)


@FUZZ
@given(st.integers(60, 400_000), st.sampled_from(["[", '{"a":', '"', "9434765919 "]))
def test_oversized_and_deep_messages_are_dead_letters_that_fit(size: int, unit: str) -> None:
    _check(EVENT_TOPICS[1].name, (unit * (size // len(unit))).encode(), b"k", AT - timedelta(seconds=1))
