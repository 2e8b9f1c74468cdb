"""The catalogue is the only registry: a rule added in a test runs over an existing history, alone or with the rest."""

from __future__ import annotations

from pydantic import Field

from schemas.topics import CONTACTS
from streams.processor import RuleProcessor
from streams.rules import RULES, Catalogue, RuleParams, evaluate
from streams.rules.builders import count_rule
from streams.rules.definition import PositiveDuration, window_retention
from streams.rules.durations import Duration
from tests.unit.test_streams.factories import RAISED_AT, contact_received, day


class PoliceContactsParams(RuleParams):
    threshold: int = Field(default=2, ge=1)
    window: PositiveDuration = Field(default=Duration(days=7))


TOY = count_rule(
    rule_id="police_contacts_in_a_week",
    version=1,
    description="A toy rule written in a test: two police contacts for a child within 7 days.",
    source="tests",
    subject_type="child",
    params_model=PoliceContactsParams,
    reads="contacts",  # an existing history kind: nothing else to declare
    on="contact.received",
    counts=lambda contact, params: contact.agency_type == "police",
    distinct=lambda contact: contact.event_id,
    severity="info",
    summary=lambda window, count, params: "Police contacts in a week.",
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


def test_a_rule_over_an_existing_history_is_only_its_own_module() -> None:
    """Nothing outside the rule's declaration changes: no history kind, no registry, no cooldown or retention code."""
    catalogue = Catalogue.of((*RULES, TOY))
    assert catalogue.history("child") == Catalogue.default().history("child")  # the contacts kept already
    assert catalogue.rule(TOY.rule_id) is TOY and catalogue.rules[:-1] == RULES
    params = catalogue.params_for(TOY)
    assert TOY.cooldown(params) == params.window  # derived by the builder (rules.md: the window)
    assert TOY.retention(params) == window_retention(params.window, params.window)
    assert TOY.reads == frozenset({"contacts"}) and TOY.input_event_types == frozenset({"contact.received"})
