"""`streams.intake` for re-routed copies: the origin headers, and `check_rerouted` (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.codec import encode
from schemas.deadletter import DeadLetter
from schemas.topics import CONTACTS, MISSING_EPISODES
from streams.intake import REASON_MISROUTED, Origin, check_record, check_rerouted
from streams.tables import murmur2_partition
from tests.unit.test_streams.factories import CHILD, day, missing_reported

AT = datetime(2026, 11, 23, 12, tzinfo=UTC)
HOME = murmur2_partition(CHILD.encode(), 6)
ORIGIN = Origin(MISSING_EPISODES.name, (HOME + 1) % 6, 17)
REROUTE_TOPIC = "app-rerouted-" + MISSING_EPISODES.name


def _check(
    value: bytes, *, headers: object = None, partition: int = HOME, key: bytes | None = CHILD.encode()
) -> object:
    return check_rerouted(
        contract_topic=MISSING_EPISODES.name,
        topic=REROUTE_TOPIC,
        partition=partition,
        offset=3,
        key=key,
        value=value,
        headers=ORIGIN.headers() if headers is None else headers,
        partition_of=lambda k: murmur2_partition(k, 6),
        at=AT,
    )


def test_origin_headers_round_trip_as_lists_and_mappings() -> None:
    assert Origin.from_headers(ORIGIN.headers()) == ORIGIN
    assert Origin.from_headers(dict(ORIGIN.headers())) == ORIGIN
    assert Origin.from_headers(tuple(ORIGIN.headers())) == ORIGIN


@pytest.mark.parametrize(
    "headers",
    [
        None,
        [],
        ORIGIN.headers()[:2],
        [*ORIGIN.headers()[:2], ("safeguard-origin-offset", b"x")],
        [*ORIGIN.headers()[:2], ("safeguard-origin-offset", b"-1")],
        [("safeguard-origin-topic", b"\xff"), *ORIGIN.headers()[1:]],
        [("safeguard-origin-topic", "not bytes"), *ORIGIN.headers()[1:]],
        [(1, 2, 3)],
        "garbage",
        42,
    ],
)
def test_incomplete_or_garbled_origin_headers_name_no_origin(headers: object) -> None:
    assert Origin.from_headers(headers) is None


def test_a_rerouted_copy_is_the_event_it_was_at_its_origin() -> None:
    event = missing_reported(day(0))
    assert _check(encode(event)) == event


def test_an_invalid_copy_is_dead_lettered_as_at_its_origin_with_the_same_id() -> None:
    outcome = _check(b"{not json")
    at_origin = check_record(
        topic=ORIGIN.topic,
        partition=ORIGIN.partition,
        offset=ORIGIN.offset,
        key=CHILD.encode(),
        value=b"{not json",
        at=AT,
    )
    assert isinstance(outcome, DeadLetter) and isinstance(at_origin, DeadLetter)
    assert outcome.model_dump() == at_origin.model_dump()


@pytest.mark.parametrize(
    "headers",
    [[], [("safeguard-origin-topic", CONTACTS.name.encode()), *ORIGIN.headers()[1:]]],
    ids=["no-origin", "origin-on-another-topic"],
)
def test_a_record_without_a_matching_origin_is_misrouted_and_named_by_where_it_was_read(headers: object) -> None:
    outcome = _check(encode(missing_reported(day(0))), headers=headers)
    assert isinstance(outcome, DeadLetter)
    assert (outcome.reason_code, outcome.source_topic, outcome.source_offset) == (REASON_MISROUTED, REROUTE_TOPIC, 3)


def test_a_copy_off_its_keys_partition_is_misrouted_never_rerouted_again() -> None:
    outcome = _check(encode(missing_reported(day(0))), partition=(HOME + 2) % 6)
    assert isinstance(outcome, DeadLetter)
    assert (outcome.reason_code, outcome.source_topic, outcome.source_partition, outcome.source_offset) == (
        REASON_MISROUTED,
        ORIGIN.topic,
        ORIGIN.partition,
        ORIGIN.offset,
    )
    assert f"belongs on partition {HOME}" in outcome.error


def test_a_copy_with_the_wrong_key_is_a_key_mismatch() -> None:
    outcome = _check(encode(missing_reported(day(0))), key=b"someone-else")
    assert isinstance(outcome, DeadLetter) and outcome.reason_code == "key_mismatch"
    outcome = _check(encode(missing_reported(day(0))), key=None)
    assert isinstance(outcome, DeadLetter) and outcome.reason_code == "key_mismatch"
