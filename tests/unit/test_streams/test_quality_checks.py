"""The data-quality checks of rules.md (schemas/quality.py): each national rule at its boundaries, each able to fail;
the worker's view of its rule state (streams/rules/quality.py) deciding as the importer's history does; the
processor holding back what a check says must not feed the rules, and the value checks of a dead-lettered record."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from producers.history.quality import ImportHistory, QualityGate
from schemas.codec import encode
from schemas.events import AgencyEvent, Envelope
from schemas.quality import (
    CHECKS,
    CHECKS_BY_ID,
    EpisodeSpan,
    PlanSpan,
    decode_quality_finding,
    feeds,
    finding,
    finding_id,
    finding_of_fields,
    history_breaches,
    value_breaches,
)
from streams.processor import RuleProcessor
from streams.rules import Catalogue, evaluate
from streams.rules.quality import StateHistory, check_dead_lettered, check_input
from streams.rules.state import SubjectState
from tests.unit.test_streams.factories import (
    CHILD,
    RAISED_AT,
    day,
    missing_found,
    missing_reported,
    plan_ended,
    plan_started,
)

SECOND = timedelta(seconds=1)


class History:
    """A hand-made history: the plans and episodes seen so far."""

    def __init__(self, plans: tuple[PlanSpan, ...] = (), episodes: tuple[EpisodeSpan, ...] = ()) -> None:
        self._plans, self._episodes = plans, episodes

    def plans(self) -> tuple[PlanSpan, ...]:
        return self._plans

    def episodes(self) -> tuple[EpisodeSpan, ...]:
        return self._episodes


def rules(history: History, event: Envelope) -> set[str]:
    return {b.check.rule_id for b in history_breaches(history, event)}


def test_every_national_rule_of_rules_md_has_one_small_check() -> None:
    assert set(CHECKS_BY_ID) == {"8925", "8840", "8935", "8940", "8905", "8910", "8866", "1006", "567", "574"}
    for check in CHECKS:
        assert (check.history is None) != (check.value is None), check.rule_id
        assert check.event_types and check.name and check.description
    assert {c.rule_id for c in CHECKS if not c.feeds} == {"8925", "567", "1006"}


# --- plans ------------------------------------------------------------------------------------------------------


def test_8925_a_plan_ending_before_it_starts_whichever_arrives_second() -> None:
    started = History((PlanSpan("P1", day(10), None),))
    assert rules(started, plan_ended(day(10) - SECOND, plan_id="P1")) == {"8925"}
    assert "8925" not in rules(started, plan_ended(day(10), plan_id="P1"))
    assert rules(started, plan_ended(day(11), plan_id="P1")) == set()
    ended_first = History((PlanSpan("P1", None, day(9)),))
    assert rules(ended_first, plan_started(day(10), plan_id="P1")) == {"8925"}
    assert rules(History((PlanSpan("P2", day(10), None),)), plan_ended(day(9), plan_id="P1")) == set()
    [breach] = history_breaches(started, plan_ended(day(9), plan_id="P1"))
    assert breach.message == "the plan ends (2025-01-10) before it starts (2025-01-11)"


def test_8840_a_plan_ending_on_its_own_day_in_england() -> None:
    # 23:30 UTC on 1 June is 00:30 on 2 June in England: the same local day as 10:00 UTC on 2 June.
    start = datetime(2025, 6, 1, 23, 30, tzinfo=UTC)
    history = History((PlanSpan("P1", start, None),))
    assert rules(history, plan_ended(datetime(2025, 6, 2, 10, tzinfo=UTC), plan_id="P1")) == {"8840"}
    assert rules(history, plan_ended(start, plan_id="P1")) == {"8840"}
    assert rules(history, plan_ended(datetime(2025, 6, 2, 23, tzinfo=UTC), plan_id="P1")) == set()  # 00:00 on 3rd
    assert rules(History(), plan_ended(start, plan_id="P1")) == set(), "no start seen: nothing to compare"


def test_8935_a_second_open_plan() -> None:
    open_plan = History((PlanSpan("P1", day(10), None),))
    assert rules(open_plan, plan_started(day(20), plan_id="P2")) == {"8935"}
    assert rules(open_plan, plan_started(day(10), plan_id="P2")) == {"8935"}, "started the same instant"
    assert rules(open_plan, plan_started(day(10) - SECOND, plan_id="P2")) == set(), "the other starts later"
    assert rules(open_plan, plan_started(day(12), plan_id="P1")) == set(), "the same plan again"
    assert rules(History((PlanSpan("P1", day(10), day(15)),)), plan_started(day(20), plan_id="P2")) == set()


def test_8940_overlapping_plans() -> None:
    closed = History((PlanSpan("P1", day(10), day(20)),))
    assert rules(closed, plan_started(day(15), plan_id="P2")) == {"8940"}
    assert rules(closed, plan_started(day(20), plan_id="P2")) == set(), "a plan may start the day another ends"
    assert rules(closed, plan_started(day(10), plan_id="P2")) == set(), "strictly inside only"
    # The end shows another plan started inside this one (its start was flagged 8935 when the first was open).
    inside = History((PlanSpan("P1", day(10), None), PlanSpan("P2", day(15), None)))
    assert rules(inside, plan_ended(day(20), plan_id="P1")) == {"8940"}
    assert rules(inside, plan_ended(day(15), plan_id="P1")) == set()


# --- missing episodes -------------------------------------------------------------------------------------------


def test_567_found_before_reported_whichever_arrives_second() -> None:
    reported = History(episodes=(EpisodeSpan("E1", day(5), None),))
    assert rules(reported, missing_found(day(5) - SECOND, episode="E1")) == {"567"}
    assert rules(reported, missing_found(day(5), episode="E1")) == set()
    found_first = History(episodes=(EpisodeSpan("E1", None, day(4)),))
    assert rules(found_first, missing_reported(day(5), episode="E1")) == {"567"}
    assert rules(found_first, missing_reported(day(4), episode="E1")) == set()


def test_574_overlapping_missing_episodes() -> None:
    closed = History(episodes=(EpisodeSpan("E1", day(5), day(7)),))
    assert rules(closed, missing_reported(day(6), episode="E2")) == {"574"}
    assert rules(closed, missing_reported(day(7), episode="E2")) == set(), "reported again the moment it is found"
    assert rules(History(episodes=(EpisodeSpan("E1", day(5), None),)), missing_reported(day(6), episode="E2")) == set()
    inside = History(episodes=(EpisodeSpan("E1", day(5), None), EpisodeSpan("E2", day(6), None)))
    assert rules(inside, missing_found(day(7), episode="E1")) == {"574"}
    assert rules(inside, missing_found(day(6), episode="E1")) == set()


# --- value checks -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "rule_id"),
    [
        ({"event_type": "cp_plan.started", "category": "NGE"}, "8905"),
        ({"event_type": "cp_plan.ended", "category": "neg"}, "8910"),
        ({"event_type": "contact.received", "contact_source": "11"}, "8866"),
        ({"event_type": "missing.reported", "absence_type": "M"}, "1006"),
        ({"event_type": "missing.found"}, "1006"),
    ],
)
def test_a_code_not_in_the_list_is_flagged(fields: dict[str, Any], rule_id: str) -> None:
    assert [b.check.rule_id for b in value_breaches(fields)] == [rule_id]


@pytest.mark.parametrize(
    "fields",
    [
        {"event_type": "cp_plan.started", "category": "MUL"},
        {"event_type": "cp_plan.ended", "category": "NEG"},
        {"event_type": "contact.received", "contact_source": "10"},
        {"event_type": "missing.return_interview", "absence_type": "away"},
        {"event_type": "contact.decided", "outcome": "whatever"},
        {"category": "NGE"},
    ],
)
def test_a_code_in_the_list_or_a_field_not_checked_passes(fields: dict[str, Any]) -> None:
    assert value_breaches(fields) == []


def test_a_value_that_is_not_a_code_is_never_repeated() -> None:
    [breach] = value_breaches({"event_type": "contact.received", "contact_source": "9434765919"})
    assert "9434765919" not in breach.message and "10 characters" in breach.message
    [short] = value_breaches({"event_type": "contact.received", "contact_source": "1X"})
    assert short.message == "contact_source '1X' is not a referral source code (1A ... 10)"


# --- findings ---------------------------------------------------------------------------------------------------


def test_a_finding_is_one_per_rule_and_event_whoever_finds_it() -> None:
    ended = plan_ended(day(9), plan_id="P1")
    breaches = history_breaches(History((PlanSpan("P1", day(10), None),)), ended)
    assert not feeds(breaches)
    by_importer = finding(breaches[0], ended, fed=False, found_by="importer", found_at=RAISED_AT)
    by_worker = finding(breaches[0], ended, fed=False, found_by="worker", found_at=RAISED_AT + SECOND)
    assert by_importer.finding_id == by_worker.finding_id == finding_id("8925", ended.event_id)
    assert finding_id("8840", ended.event_id) != by_importer.finding_id
    assert (by_worker.child_id, by_worker.la_code, by_worker.checked_event_type) == (CHILD, "383", "cp_plan.ended")
    assert decode_quality_finding(encode(by_worker)) == by_worker


def test_a_finding_of_raw_fields_keeps_only_what_has_the_contracts_shape() -> None:
    fields = {"event_type": "cp_plan.started", "category": "X", "child_id": "9434765919", "la_code": "Leeds"}
    [breach] = value_breaches(fields)
    made = finding_of_fields(breach, fields, event_id="e", fed=False, found_by="worker", found_at=RAISED_AT)
    assert (made.child_id, made.la_code, made.occurred_at) == (None, None, None)
    assert "9434765919" not in encode(made).decode()


def test_a_bad_finding_message_is_a_contract_error() -> None:
    from schemas.errors import DecodeError, InvalidEvent

    with pytest.raises(DecodeError):
        decode_quality_finding(b"[]")
    with pytest.raises(InvalidEvent):
        decode_quality_finding(b'{"rule_id": "8925"}')


# --- the worker's state and the importer's history decide alike -------------------------------------------------

HISTORY: list[AgencyEvent] = [
    plan_started(day(0), plan_id="P1"),
    plan_started(day(30), plan_id="P2"),  # 8935: P1 still open
    plan_ended(day(40), plan_id="P1"),  # 8940: P2 started inside P1
    plan_ended(day(29), plan_id="P2"),  # 8925: P2 ends before it starts (held)
    plan_started(day(50), plan_id="P3"),  # 8935: P2 is still open, its impossible end held back
    plan_ended(day(50, 3), plan_id="P3"),  # 8840
    missing_reported(day(60), episode="E1"),
    missing_found(day(62), episode="E1"),
    missing_reported(day(61), episode="E2"),  # 574
    missing_found(day(59), episode="E2"),  # 567 (held)
]
EXPECTED = [set(), {"8935"}, {"8940"}, {"8925"}, {"8935"}, {"8840"}, set(), set(), {"574"}, {"567"}]


def test_the_worker_state_and_the_importer_history_flag_the_same_events() -> None:
    catalogue = Catalogue.default()
    state: SubjectState | None = None
    gate = QualityGate(RAISED_AT)
    worker: list[set[str]] = []
    importer: list[set[str]] = []
    for event in HISTORY:
        current = state or SubjectState.empty("child", CHILD)
        checked = check_input(current, event, RAISED_AT)
        worker.append({f.rule_id for f in checked.findings})
        if checked.feeds:
            state = evaluate(current, event, RAISED_AT, catalogue).state
        found, _ = gate.check(event)
        importer.append({f.rule_id for f in found})
    assert worker == importer == EXPECTED
    assert state is not None
    assert {p.plan_id: p.ended_at for p in StateHistory(state).plans()}["P2"] is None, "the held end was not fed"


def test_an_event_already_applied_or_a_purge_is_not_checked_again() -> None:
    catalogue = Catalogue.default()
    first, second = plan_started(day(0), plan_id="P1"), plan_started(day(5), plan_id="P2")
    state = evaluate(None, first, RAISED_AT, catalogue).state
    state = evaluate(state, second, RAISED_AT, catalogue).state
    assert check_input(state, second, RAISED_AT).findings == []
    purge = plan_started(day(6), plan_id="P3", purge=True)
    assert check_input(state, purge, RAISED_AT).findings == []
    assert [f.rule_id for f in check_input(state, plan_started(day(6), plan_id="P3"), RAISED_AT).findings] == ["8935"]


def test_import_history_keeps_the_earliest_start_and_end() -> None:
    history = ImportHistory()
    for event in (
        plan_started(day(5), plan_id="P"),
        plan_started(day(3), plan_id="P"),
        plan_ended(day(9), plan_id="P"),
    ):
        history.feed(event)
    assert list(history.plans()) == [PlanSpan("P", day(3), day(9))]


# --- the processor ----------------------------------------------------------------------------------------------


def processor() -> RuleProcessor:
    return RuleProcessor(Catalogue.default(), children={}, households={}, partition_of=lambda _: 0)


def apply(p: RuleProcessor, event: AgencyEvent) -> Any:
    topic = "safeguarding.cp-plans.v1" if event.event_type.startswith("cp_plan") else "safeguarding.missing-episodes.v1"
    return p.apply(event, topic=topic, partition=0, raised_at=RAISED_AT)


def test_the_processor_holds_back_an_impossible_end_and_feeds_a_flagged_overlap() -> None:
    p = processor()
    apply(p, plan_started(day(0), plan_id="P1"))
    p.flush()
    before = dict(p.tables["child"])
    held = plan_ended(day(-1), plan_id="P1")
    step = apply(p, held)
    assert step.held and step.outcome is None and step.alerts == []
    assert [(f.rule_id, f.fed, f.found_by, f.event_id) for f in step.findings] == [
        ("8925", False, "worker", held.event_id)
    ]
    assert p.pending_writes == 0 and p.flush() == 0 and dict(p.tables["child"]) == before
    again = apply(p, held)
    assert [f.finding_id for f in again.findings] == [f.finding_id for f in step.findings], "the same finding again"
    second = plan_started(day(3), plan_id="P2")
    overlap = apply(p, second)
    assert not overlap.held and overlap.outcome == "applied"
    assert [(f.rule_id, f.fed) for f in overlap.findings] == [("8935", True)]
    assert apply(p, second).findings == [], "a duplicate is not flagged twice"


# --- a dead-lettered record ---------------------------------------------------------------------------------------


def record(**fields: Any) -> bytes:
    base = plan_started(day(0), plan_id="P1").model_dump(mode="json")
    return json.dumps({**base, **fields}).encode()


def test_a_dead_lettered_record_with_a_code_not_in_the_list_is_flagged_by_its_national_rule() -> None:
    value = record(category="NGE")
    [found] = check_dead_lettered(value, RAISED_AT)
    assert (found.rule_id, found.fed, found.found_by, found.child_id) == ("8905", False, "worker", CHILD)
    assert found.event_id == json.loads(value)["event_id"]
    [source] = check_dead_lettered(
        json.dumps({"event_type": "contact.received", "event_id": found.event_id, "contact_source": "99"}).encode(),
        RAISED_AT,
    )
    assert source.rule_id == "8866"


@pytest.mark.parametrize(
    "value",
    [None, b"", b"not json", b"[1]", record(event_id="not-a-uuid", category="NGE"), record(category="NEG"), b"{" * 500],
)
def test_a_dead_lettered_record_that_names_no_event_or_breaks_no_list_gives_no_finding(value: bytes | None) -> None:
    assert check_dead_lettered(value, RAISED_AT) == []


def test_a_raw_identifier_in_a_dead_lettered_record_is_not_kept() -> None:
    [found] = check_dead_lettered(record(category="NGE", child_id="9434765919", la_code="Leeds"), RAISED_AT)
    assert (found.child_id, found.la_code) == (None, None)
    assert "9434765919" not in encode(found).decode()
