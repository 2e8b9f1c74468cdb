"""A partition clock reading exactly a deadline fires it; a reading one microsecond earlier does not.

rules.md: a deadline rule fires once the clock is *at or past* the deadline. Held at both levels where the
comparison is made: the engine (`advance`, each rule's `due`) and the processor (the per-partition deadline
index, a heap popped while its head is at or before the clock, in `_fire_due`), for both deadline rules,
with their default deadline and with a partnership's own. Times carry microseconds, so nothing here is
satisfied by a comparison that happens to be made in whole seconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from schemas.events import MissingFound
from schemas.topics import CONTACTS, MISSING_EPISODES
from streams.processor import RuleProcessor
from streams.rules import (
    Catalogue,
    DaObligation,
    advance,
    catalogue_from_mapping,
    next_deadline,
    obligations_from_incident,
)
from tests.unit.test_streams.factories import (
    CHILD,
    DEFAULTS,
    RAISED_AT,
    contact_received,
    day,
    incident,
    missing_found,
    missing_reported,
    run,
)

MISSING = MISSING_EPISODES.name
OBLIGATIONS = "safeguard-da-obligations"  # the repartition topic: not a clock topic, as in the worker
TICK = timedelta(microseconds=1)
T = day(0) + timedelta(microseconds=123_457)
"""An incident or a find at an odd microsecond."""


def _child(n: int) -> str:
    """A valid pseudonym per number: the other children whose events move a partition's clock."""
    return f"{n:064x}"


def _obligation(child: str = CHILD, at: datetime = T, incident_id: str = "DI-1") -> DaObligation:
    [obligation] = obligations_from_incident(incident(at, incident_id=incident_id, children=[(child, True)]))
    return obligation


def _fired(alerts: Any, rule_id: str) -> list[tuple[str, datetime]]:
    return [(a.subject_id, a.triggered_at) for a in alerts if a.rule_id == rule_id]


# --- the engine: `advance` with the clock exactly at the deadline -------------------------------------------------


def _found() -> MissingFound:
    return missing_found(T, episode="MP-1")


RETURN_INTERVIEW, DA_CONTACT = "return_interview_overdue", "da_contact_overdue"
ENGINE_CASES = [
    pytest.param(RETURN_INTERVIEW, MISSING, _found, DEFAULTS, T + timedelta(hours=72), id="return-interview-72h"),
    pytest.param(
        RETURN_INTERVIEW,
        MISSING,
        _found,
        catalogue_from_mapping({RETURN_INTERVIEW: {"deadline": "PT36H30M"}}, source="t"),
        T + timedelta(hours=36, minutes=30),
        id="return-interview-override",
    ),
    pytest.param(DA_CONTACT, CONTACTS.name, _obligation, DEFAULTS, T + timedelta(hours=24), id="da-contact-24h"),
    pytest.param(
        DA_CONTACT,
        CONTACTS.name,
        _obligation,
        catalogue_from_mapping({DA_CONTACT: {"deadline": "P2DT5S"}}, source="t"),
        T + timedelta(days=2, seconds=5),
        id="da-contact-override",
    ),
]


@pytest.mark.parametrize(("rule_id", "clock_topic", "opening", "catalogue", "deadline"), ENGINE_CASES)
def test_the_engine_fires_at_the_deadline_exactly_and_not_a_microsecond_before(
    rule_id: str, clock_topic: str, opening: Any, catalogue: Catalogue, deadline: datetime
) -> None:
    state, _ = run([opening()], catalogue)
    assert state is not None
    assert next_deadline(state, catalogue, clock_topic=clock_topic) == deadline

    early = advance(state.copy(), deadline - TICK, RAISED_AT, catalogue, clock_topic=clock_topic)
    assert _fired(early.alerts, rule_id) == [], "fired a microsecond before its deadline"
    assert next_deadline(early.state, catalogue, clock_topic=clock_topic) == deadline, "still open"

    exact = advance(early.state, deadline, RAISED_AT, catalogue, clock_topic=clock_topic)
    assert _fired(exact.alerts, rule_id) == [(CHILD, deadline)], "a clock exactly at the deadline must fire it"
    assert next_deadline(exact.state, catalogue, clock_topic=clock_topic) is None


# --- the processor: the deadline index (a heap per partition clock) ----------------------------------------------


def _processor(catalogue: Catalogue = DEFAULTS) -> RuleProcessor:
    return RuleProcessor(catalogue, children={}, households={}, partition_of=lambda _: 0)


def test_the_missing_clock_exactly_at_each_deadline_fires_it_and_only_it() -> None:
    """Three children found an hour apart on one partition; another child's events move that partition's clock to
    a microsecond before each deadline, then onto it."""
    processor = _processor()
    found = {CHILD: T, _child(1): T + timedelta(hours=1), _child(2): T + timedelta(hours=2)}
    for n, (child, at) in enumerate(found.items()):
        processor.apply(
            missing_found(at, episode=f"MP-{n}", child=child), topic=MISSING, partition=0, raised_at=RAISED_AT
        )
    deadlines = {child: at + timedelta(hours=72) for child, at in found.items()}
    assert processor.pending_deadlines == 3

    mover = iter(range(100, 200))

    def clock_at(moment: datetime) -> list[tuple[str, datetime]]:
        event = missing_reported(moment, child=_child(next(mover)))
        step = processor.apply(event, topic=MISSING, partition=0, raised_at=RAISED_AT)
        assert processor.clocks[(MISSING, 0)].reading == moment
        return _fired(step.alerts, RETURN_INTERVIEW)

    for child in found:
        assert clock_at(deadlines[child] - TICK) == [], "fired a microsecond before the deadline"
        assert clock_at(deadlines[child]) == [(child, deadlines[child])], "the clock exactly at the deadline"
    assert processor.pending_deadlines == 0


def test_the_contacts_clock_exactly_at_the_deadline_fires_an_obligation() -> None:
    """The obligation arrives on the repartition topic; the contacts partition's clock decides."""
    processor = _processor()
    deadline = T + timedelta(hours=24)
    processor.apply(_obligation(), topic=OBLIGATIONS, partition=0, raised_at=RAISED_AT)
    early = processor.apply(
        contact_received(deadline - TICK, child=_child(1)), topic=CONTACTS.name, partition=0, raised_at=RAISED_AT
    )
    assert _fired(early.alerts, DA_CONTACT) == []
    exact = processor.apply(
        contact_received(deadline, child=_child(2)), topic=CONTACTS.name, partition=0, raised_at=RAISED_AT
    )
    assert _fired(exact.alerts, DA_CONTACT) == [(CHILD, deadline)]


@pytest.mark.parametrize(("clock_before_deadline", "fires"), [(TICK, False), (timedelta(0), True)])
def test_an_obligation_whose_deadline_the_clock_already_reads_exactly_fires_on_arrival(
    clock_before_deadline: timedelta, fires: bool
) -> None:
    """The contacts clock got to the deadline before the obligation did (the repartition lags): it fires at once."""
    processor = _processor()
    deadline = T + timedelta(hours=24)
    moved = contact_received(deadline - clock_before_deadline, child=_child(1))
    assert processor.apply(moved, topic=CONTACTS.name, partition=0, raised_at=RAISED_AT).alerts == []
    step = processor.apply(_obligation(), topic=OBLIGATIONS, partition=0, raised_at=RAISED_AT)
    assert _fired(step.alerts, DA_CONTACT) == ([(CHILD, deadline)] if fires else [])


def test_an_overridden_deadline_fires_exactly_on_the_contacts_clock() -> None:
    catalogue = catalogue_from_mapping({DA_CONTACT: {"deadline": "PT90M"}}, source="t")
    processor = _processor(catalogue)
    deadline = T + timedelta(minutes=90)
    processor.apply(_obligation(), topic=OBLIGATIONS, partition=0, raised_at=RAISED_AT)
    early = processor.apply(
        contact_received(deadline - TICK, child=_child(1)), topic=CONTACTS.name, partition=0, raised_at=RAISED_AT
    )
    assert _fired(early.alerts, DA_CONTACT) == []
    exact = processor.apply(
        contact_received(deadline, child=_child(2)), topic=CONTACTS.name, partition=0, raised_at=RAISED_AT
    )
    assert _fired(exact.alerts, DA_CONTACT) == [(CHILD, deadline)]


def test_the_live_clock_reaching_the_deadline_exactly_fires_it() -> None:
    """On the timer: a caught-up partition's clock is the wall clock minus the allowed lateness (10 minutes)."""
    processor = _processor()
    deadline = T + timedelta(hours=72)
    processor.apply(missing_found(T, episode="MP-1"), topic=MISSING, partition=0, raised_at=RAISED_AT)
    recent = missing_reported(deadline - timedelta(hours=1), child=_child(1))  # keeps the partition live
    assert processor.apply(recent, topic=MISSING, partition=0, raised_at=RAISED_AT).alerts == []
    lateness = DEFAULTS.deadlines.allowed_lateness.exact

    def live() -> Any:
        return lambda topic, partition: True

    assert processor.tick(deadline + lateness - TICK, caught_up=live()) == []
    assert processor.clocks[(MISSING, 0)].reading == deadline - TICK
    fired = processor.tick(deadline + lateness, caught_up=live())
    assert processor.clocks[(MISSING, 0)].reading == deadline
    assert _fired(fired, RETURN_INTERVIEW) == [(CHILD, deadline)]


def test_a_restarted_processor_fires_exactly_at_the_deadline_from_the_rebuilt_index() -> None:
    """After a restart the heap is rebuilt from the tables: the same boundary holds."""
    children: dict[str, Any] = {}
    before = RuleProcessor(DEFAULTS, children=children, households={}, partition_of=lambda _: 0)
    before.apply(missing_found(T, episode="MP-1"), topic=MISSING, partition=0, raised_at=RAISED_AT)
    before.flush()
    after = RuleProcessor(DEFAULTS, children=children, households={}, partition_of=lambda _: 0)
    deadline = T + timedelta(hours=72)
    early = after.apply(
        missing_reported(deadline - TICK, child=_child(1)), topic=MISSING, partition=0, raised_at=RAISED_AT
    )
    assert _fired(early.alerts, RETURN_INTERVIEW) == []
    exact = after.apply(missing_reported(deadline, child=_child(2)), topic=MISSING, partition=0, raised_at=RAISED_AT)
    assert _fired(exact.alerts, RETURN_INTERVIEW) == [(CHILD, deadline)]
