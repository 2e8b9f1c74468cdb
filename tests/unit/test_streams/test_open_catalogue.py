"""The catalogue is the only registry: a rule added in a test runs over an existing history, alone or with the rest."""

from __future__ import annotations

from pydantic import Field

from schemas.events import ContactReceived
from schemas.topics import CONTACTS
from streams.processor import RuleProcessor
from streams.rules import RULES, Catalogue, Finding, RuleDefinition, RuleInput, RuleParams, evaluate
from streams.rules.definition import PositiveDuration, window_retention, windows_through
from streams.rules.durations import Duration
from streams.rules.state import SubjectState
from tests.unit.test_streams.factories import RAISED_AT, contact_received, day


class PoliceContactsParams(RuleParams):
    threshold: int = Field(default=2, ge=1)
    window: PositiveDuration = Field(default=Duration(days=7))


def _evaluate(state: SubjectState, item: RuleInput, params: PoliceContactsParams) -> list[Finding]:
    if not isinstance(item, ContactReceived):
        return []
    trigger = next((c for c in state.contacts if c.event_id == item.event_id), None)
    if trigger is None:
        return []
    findings = []
    for end, in_window in windows_through(state.contacts, trigger, params.window):
        police = [c for c in in_window if c.agency_type == "police"]
        if len(police) >= params.threshold:
            findings.append(
                Finding(
                    triggered_at=end,
                    evidence_event_ids=tuple(c.event_id for c in police),
                    severity="info",
                    la_code=police[-1].la_code,
                    summary="Police contacts in a week.",
                    threshold=params.threshold,
                    count=len(police),
                    window=params.window,
                )
            )
    return findings


TOY = RuleDefinition(
    rule_id="police_contacts_in_a_week",
    version=1,
    description="A toy rule written in a test: two police contacts for a child within 7 days.",
    source="tests",
    subject_type="child",
    input_event_types=frozenset({"contact.received"}),
    params_model=PoliceContactsParams,
    reads=frozenset({"contacts"}),  # an existing history kind: nothing else to declare
    evaluate=_evaluate,
    cooldown=lambda params: params.window,
    retention=lambda params: window_retention(params.window, params.window),
)

HISTORY = [contact_received(day(0), agency_type="police"), contact_received(day(3), agency_type="police")]


def _run(catalogue: Catalogue) -> list[str]:
    state = None
    raised: list[str] = []
    for event in HISTORY:
        result = evaluate(state, event, RAISED_AT, catalogue)
        state, raised = result.state, raised + [alert.rule_id for alert in result.alerts]
    return raised


def test_the_engine_runs_a_catalogue_of_one_toy_rule() -> None:
    assert _run(Catalogue.of((TOY,))) == ["police_contacts_in_a_week"]


def test_a_toy_rule_runs_beside_the_built_in_ones_and_only_it_fires_here() -> None:
    assert _run(Catalogue.default()) == []
    assert _run(Catalogue.of((*RULES, TOY))) == ["police_contacts_in_a_week"]


def test_the_worker_step_reads_the_catalogue_not_the_built_in_rules() -> None:
    processor = RuleProcessor(Catalogue.of((TOY,)), children={}, households={}, partition_of=lambda _: 0)
    fired = [
        alert.rule_id
        for event in HISTORY
        for alert in processor.apply(event, topic=CONTACTS.name, partition=0, raised_at=RAISED_AT).alerts
    ]
    assert fired == ["police_contacts_in_a_week"]
    assert processor.catalogue.clock_topics("child") == ()  # no deadline rule in this catalogue: no clocks
