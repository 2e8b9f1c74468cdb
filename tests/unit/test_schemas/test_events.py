"""Valid events from event-contract.md are accepted, round-trip through the codec, and land on the right topic."""

from __future__ import annotations

import json
import typing
from datetime import UTC, date, datetime
from typing import Any

import pytest

from schemas import (
    ALERTS,
    CONTACTS,
    CP_PLANS,
    DEAD_LETTER,
    DOMESTIC_INCIDENTS,
    EVENT_MODELS,
    EVENT_TOPICS,
    MISSING_EPISODES,
    REFERRAL_OUTCOMES,
    TOPICS,
    AlertRaised,
    ContactReceived,
    DeadLetter,
    DomesticIncidentRecorded,
    Envelope,
    InvalidEvent,
    MissingReported,
    dead_letter_from_file,
    dead_letter_from_kafka,
    decode_alert,
    decode_dead_letter,
    decode_event,
    encode,
    message_key,
    placement_issues,
    to_json_obj,
    topic_for,
    topic_named,
    validate_event,
)
from schemas.topics import DEFAULT_PARTITIONS
from schemas.types import (
    AbsenceType,
    AgencyType,
    Concern,
    ContactSource,
    DashRisk,
    InterviewStep,
    Outcome,
    PlanCategory,
    PrimaryNeed,
    RiskLevel,
    Route,
    Severity,
    SubjectType,
)
from tests.unit.test_schemas.examples import (
    CHILD,
    CONTRACT_EVENT_TYPES,
    CONTRACT_EXAMPLE_JSON,
    HOUSEHOLD,
    alert,
    all_examples,
    full,
    minimal,
)

EXAMPLES = all_examples()
EXAMPLE_IDS = [label for label, _ in EXAMPLES]

ENVELOPE_REQUIRED = {
    "event_id",
    "event_type",
    "schema_version",
    "la_code",
    "agency_type",
    "agency_code",
    "occurred_at",
    "recorded_at",
}
_MISSING_REQUIRED = {"episode_id", "child_id", "looked_after", "absence_type", "risk_level"}
_PLAN_REQUIRED = {"plan_id", "child_id", "category"}
_PLAN_OPTIONAL = {"previous_plans", "previous_plan_ended_at"}
# (required payload fields, optional payload fields), as the contract's payload tables say.
CONTRACT_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "contact.received": (
        {"contact_id", "child_id", "contact_source", "concerns"},
        {"household_id", "route", "linked_incident_id"},
    ),
    "contact.decided": ({"contact_id", "child_id", "outcome"}, {"primary_need"}),
    "missing.reported": (_MISSING_REQUIRED, set()),
    "missing.found": (_MISSING_REQUIRED, set()),
    "missing.return_interview": (_MISSING_REQUIRED | {"interview"}, set()),
    "domestic_incident.recorded": (
        {"incident_id", "household_id", "dash_risk", "is_crime", "children"},
        {"victim_id", "perpetrator_id", "dash_score", "marac_referral"},
    ),
    "cp_plan.started": (_PLAN_REQUIRED, _PLAN_OPTIONAL),
    "cp_plan.ended": (_PLAN_REQUIRED, _PLAN_OPTIONAL),
}

# The contract's topic table: event type -> (topic, message key field).
CONTRACT_TOPICS: dict[str, tuple[str, str]] = {
    "contact.received": ("safeguarding.contacts.v1", "child_id"),
    "contact.decided": ("safeguarding.contacts.v1", "child_id"),
    "missing.reported": ("safeguarding.missing-episodes.v1", "child_id"),
    "missing.found": ("safeguarding.missing-episodes.v1", "child_id"),
    "missing.return_interview": ("safeguarding.missing-episodes.v1", "child_id"),
    "domestic_incident.recorded": ("safeguarding.domestic-incidents.v1", "household_id"),
    "cp_plan.started": ("safeguarding.cp-plans.v1", "child_id"),
    "cp_plan.ended": ("safeguarding.cp-plans.v1", "child_id"),
    "alert.raised": ("safeguarding.alerts.v1", "alert_id"),
    "quality.finding": ("safeguarding.quality-findings.v1", "event_id"),
}


def _decoded(event: dict[str, Any]) -> Envelope:
    return decode_event(json.dumps(event).encode("utf-8"))


# --- every event type of the contract is accepted --------------------------------------------------------------


def test_the_models_cover_exactly_the_contracts_event_types() -> None:
    assert set(EVENT_MODELS) == set(CONTRACT_EVENT_TYPES)


@pytest.mark.parametrize(("label", "event"), EXAMPLES, ids=EXAMPLE_IDS)
def test_valid_example_is_accepted(label: str, event: dict[str, Any]) -> None:
    decoded = _decoded(event)
    assert type(decoded) is EVENT_MODELS[event["event_type"]]
    assert decoded.event_type == event["event_type"]
    assert validate_event(event) == decoded


def test_the_contracts_own_example_decodes() -> None:
    event = decode_event(CONTRACT_EXAMPLE_JSON.encode("utf-8"))
    assert isinstance(event, MissingReported)
    assert event.child_id == CHILD and len(event.child_id) == 64
    assert event.event_id == "0b9c1e52-4f7e-4a59-9a55-2f0f7c3d9e11"
    assert (event.la_code, event.agency_type, event.agency_code) == ("856", "police", "LEICS")
    assert event.occurred_at == datetime(2025, 3, 1, 21, 15, tzinfo=UTC)
    assert event.recorded_at == datetime(2025, 3, 1, 22, 2, 41, tzinfo=UTC)
    assert (event.episode_id, event.looked_after, event.absence_type, event.risk_level) == (
        "MP-2025-00417",
        True,
        "missing",
        "medium",
    )
    assert event.purge is False


def test_decode_accepts_str_as_well_as_bytes() -> None:
    assert decode_event(CONTRACT_EXAMPLE_JSON) == decode_event(CONTRACT_EXAMPLE_JSON.encode("utf-8"))


@pytest.mark.parametrize("event_type", CONTRACT_EVENT_TYPES)
def test_required_and_optional_fields_are_the_contracts(event_type: str) -> None:
    required, optional = CONTRACT_FIELDS[event_type]
    fields = EVENT_MODELS[event_type].model_fields
    assert {n for n, f in fields.items() if f.is_required()} == ENVELOPE_REQUIRED | required
    assert {n for n, f in fields.items() if not f.is_required()} == {"purge"} | optional


@pytest.mark.parametrize(
    ("code_list", "contract"),
    [
        (AgencyType, "police health education local_authority other"),
        (ContactSource, "1A 1B 1C 1D 2A 2B 3A 3B 3C 3D 3E 3F 4 5A 5B 5C 5D 6 7 8 9 10"),
        (
            Concern,
            "domestic_abuse neglect physical_abuse emotional_abuse sexual_abuse exploitation missing "
            "mental_health other",
        ),
        (Route, "front_door mash duty_and_advice early_help"),
        (Outcome, "nfa advice early_help referral strategy_discussion"),
        (PrimaryNeed, "N0 N1 N2 N3 N4 N5 N6 N7 N8 N9"),
        (AbsenceType, "missing away"),
        (RiskLevel, "no_apparent_risk low medium high"),
        (InterviewStep, "offered accepted declined completed"),
        (DashRisk, "standard medium high"),
        (PlanCategory, "NEG PHY SAB EMO MUL"),
        (Severity, "info medium high critical"),
        (SubjectType, "child household"),
    ],
)
def test_code_lists_are_the_contracts(code_list: Any, contract: str) -> None:
    assert list(typing.get_args(code_list)) == contract.split()


def test_referral_outcomes() -> None:
    assert frozenset({"referral", "strategy_discussion"}) == REFERRAL_OUTCOMES


# --- defaults and field rules from the contract --------------------------------------------------------------------


def test_purge_defaults_to_false_and_can_be_set() -> None:
    for event_type in CONTRACT_EVENT_TYPES:
        event = minimal(event_type)
        assert "purge" not in event
        assert _decoded(event).purge is False
        assert _decoded({**event, "purge": True}).purge is True


def test_marac_referral_defaults_to_false() -> None:
    event = _decoded(minimal("domestic_incident.recorded"))
    assert isinstance(event, DomesticIncidentRecorded)
    assert event.marac_referral is False and event.children == []


def test_domestic_incident_children_and_optional_fields() -> None:
    event = _decoded(full("domestic_incident.recorded"))
    assert isinstance(event, DomesticIncidentRecorded)
    assert [(c.child_id, c.present, c.school_urn) for c in event.children] == [
        (CHILD, True, "107985"),
        (full("domestic_incident.recorded")["children"][1]["child_id"], False, None),
    ]
    assert event.dash_score == 15 and event.marac_referral is True


@pytest.mark.parametrize("score", [0, 1, 13, 14, 27])
def test_dash_score_in_range(score: int) -> None:
    _decoded({**minimal("domestic_incident.recorded"), "dash_score": score})


@pytest.mark.parametrize("score", [-1, 28])
def test_dash_score_out_of_range(score: int) -> None:
    with pytest.raises(InvalidEvent) as err:
        _decoded({**minimal("domestic_incident.recorded"), "dash_score": score})
    assert [i.field for i in err.value.issues] == ["dash_score"]


def test_previous_plan_ended_at_is_a_date() -> None:
    event = _decoded(full("cp_plan.started"))
    assert event.previous_plan_ended_at == date(2023, 6, 30)  # type: ignore[attr-defined]
    with pytest.raises(InvalidEvent):
        _decoded({**minimal("cp_plan.started"), "previous_plans": -1})


def test_concerns_need_at_least_one() -> None:
    with pytest.raises(InvalidEvent) as err:
        _decoded({**minimal("contact.received"), "concerns": []})
    assert [i.field for i in err.value.issues] == ["concerns"]


def test_interview_belongs_only_to_return_interview() -> None:
    with pytest.raises(InvalidEvent) as err:
        _decoded({**minimal("missing.reported"), "interview": "offered"})
    assert [(i.field, i.code) for i in err.value.issues] == [("interview", "unknown_field")]


@pytest.mark.parametrize("la_code", ["383", "856"])
def test_la_codes_from_the_contract(la_code: str) -> None:
    assert _decoded({**minimal("contact.decided"), "la_code": la_code}).la_code == la_code


def test_recorded_at_may_equal_occurred_at() -> None:
    event = minimal("cp_plan.ended")
    _decoded({**event, "recorded_at": event["occurred_at"]})


def test_recorded_at_is_compared_as_an_instant_not_as_text() -> None:
    # 21:30+01:00 is 20:30Z, before 21:15Z, although the text sorts after it.
    event = {**minimal("contact.decided"), "recorded_at": "2025-03-01T21:30:00+01:00"}
    with pytest.raises(InvalidEvent) as err:
        _decoded(event)
    assert [i.field for i in err.value.issues] == ["recorded_at"]


# --- codec round trip ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("label", "event"), EXAMPLES, ids=EXAMPLE_IDS)
def test_encode_decode_round_trip(label: str, event: dict[str, Any]) -> None:
    decoded = _decoded(event)
    wire = encode(decoded)
    assert isinstance(wire, bytes)
    wire.decode("utf-8")
    assert decode_event(wire) == decoded
    assert json.loads(wire) == to_json_obj(decoded)
    assert b"\n" not in wire and b": " not in wire  # compact: one event per message, one line per file


def test_encode_leaves_unset_optional_fields_out() -> None:
    obj = json.loads(encode(_decoded(minimal("contact.received"))))
    assert not {"household_id", "route", "linked_incident_id"} & obj.keys()
    assert obj["purge"] is False  # a default is a value, not "unset"


def test_encode_keeps_the_instant_of_timestamps() -> None:
    event = _decoded(minimal("contact.received"))  # recorded_at carries a +01:00 offset
    obj = json.loads(encode(event))
    assert datetime.fromisoformat(obj["recorded_at"]) == datetime(2025, 3, 1, 22, 2, 41, tzinfo=UTC)


def test_event_id_is_kept_as_canonical_uuid() -> None:
    event = {**minimal("cp_plan.started"), "event_id": "0B9C1E52-4F7E-4A59-9A55-2F0F7C3D9E11"}
    assert _decoded(event).event_id == "0b9c1e52-4f7e-4a59-9a55-2f0f7c3d9e11"


def test_models_are_frozen() -> None:
    event = _decoded(minimal("contact.received"))
    assert isinstance(event, ContactReceived)
    with pytest.raises(ValueError, match="frozen"):
        event.child_id = HOUSEHOLD  # type: ignore[misc]


def test_alert_round_trip() -> None:
    raised = decode_alert(json.dumps(alert()))
    assert isinstance(raised, AlertRaised)
    assert decode_alert(encode(raised)) == raised
    assert (raised.window, raised.severity, raised.subject_type) == ("P90D", "high", "child")


def test_alert_event_type_and_version_default() -> None:
    obj = alert()
    del obj["event_type"], obj["schema_version"]
    raised = decode_alert(json.dumps(obj))
    assert (raised.event_type, raised.schema_version) == ("alert.raised", 1)


def test_dead_letter_round_trip() -> None:
    at = datetime(2025, 3, 2, 9, 0, tzinfo=UTC)
    original = b'{"event_id": "0b9c1e52-4f7e-4a59-9a55-2f0f7c3d9e11", "event_type": "missing.lost"}'
    kafka = dead_letter_from_kafka(
        topic=MISSING_EPISODES.name,
        partition=3,
        offset=41,
        key=CHILD.encode(),
        value=original,
        reason_code="unknown_event_type",
        error="field `event_type`: ...",
        at=at,
    )
    assert isinstance(kafka, DeadLetter)
    assert decode_dead_letter(encode(kafka)) == kafka
    assert kafka.original() == original
    assert (kafka.claimed_event_id, kafka.claimed_event_type) == (
        "0b9c1e52-4f7e-4a59-9a55-2f0f7c3d9e11",
        "missing.lost",
    )
    again = dead_letter_from_kafka(
        topic=MISSING_EPISODES.name,
        partition=3,
        offset=41,
        key=None,
        value=original,
        reason_code="x",
        error="y",
        at=at,
    )
    assert again.dead_letter_id == kafka.dead_letter_id  # fixed by (topic, partition, offset): replays dedupe
    from_file = dead_letter_from_file(
        file="events.jsonl", line=7, original=b"\xff not utf-8", reason_code="undecodable", error="e", at=at
    )
    assert decode_dead_letter(encode(from_file)).original() == b"\xff not utf-8"
    assert from_file.claimed_event_id is None


# --- topic registry ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("event_type", "topic_and_key"), CONTRACT_TOPICS.items())
def test_topic_and_key_per_the_contract_table(event_type: str, topic_and_key: tuple[str, str]) -> None:
    topic, key_field = topic_and_key
    spec = topic_for(event_type)
    assert (spec.name, spec.key_field) == (topic, key_field)
    assert spec.accepts(event_type)
    assert topic_named(topic) is spec


def test_registry_lists_the_contracts_topics() -> None:
    assert [t.name for t in TOPICS] == [
        "safeguarding.contacts.v1",
        "safeguarding.missing-episodes.v1",
        "safeguarding.domestic-incidents.v1",
        "safeguarding.cp-plans.v1",
        "safeguarding.alerts.v1",
        "safeguarding.alert-lifecycle.v1",
        "safeguarding.dead-letter.v1",
        "safeguarding.quality-findings.v1",
    ]
    assert EVENT_TOPICS == (CONTACTS, MISSING_EPISODES, DOMESTIC_INCIDENTS, CP_PLANS)
    assert sorted(t for spec in EVENT_TOPICS for t in spec.event_types) == sorted(CONTRACT_EVENT_TYPES)
    assert DEAD_LETTER.key_field is None  # keyed by the source key, whatever it was


def test_alerts_are_compacted_and_the_rest_kept() -> None:
    assert ALERTS.cleanup_policy == "compact"
    for spec in (*EVENT_TOPICS, DEAD_LETTER):
        assert spec.cleanup_policy == "delete"
        assert spec.retention_ms == -1  # "long (years)": never deleted by age


def test_partitions_default_to_six() -> None:
    assert DEFAULT_PARTITIONS == 6
    assert all(spec.partitions == 6 for spec in TOPICS)


def test_unknown_names_raise_key_error() -> None:
    with pytest.raises(KeyError):
        topic_for("missing.lost")
    with pytest.raises(KeyError):
        topic_named("safeguarding.contacts.v2")


@pytest.mark.parametrize("event_type", CONTRACT_EVENT_TYPES)
def test_message_key_is_the_key_field(event_type: str) -> None:
    event = _decoded(full(event_type))
    expected = HOUSEHOLD if event_type == "domestic_incident.recorded" else CHILD
    assert message_key(event) == expected


@pytest.mark.parametrize("event_type", CONTRACT_EVENT_TYPES)
def test_placement_correct(event_type: str) -> None:
    event = _decoded(full(event_type))
    assert placement_issues(topic_for(event_type), event, message_key(event).encode("utf-8")) == []


def test_placement_wrong_topic() -> None:
    event = _decoded(minimal("missing.reported"))
    issues = placement_issues(CONTACTS, event, CHILD.encode())
    assert [(i.field, i.code) for i in issues] == [("event_type", "wrong_topic")]
    assert CONTACTS.name in issues[0].rule and MISSING_EPISODES.name in issues[0].rule


def test_placement_wrong_key() -> None:
    event = _decoded(full("domestic_incident.recorded"))
    issues = placement_issues(DOMESTIC_INCIDENTS, event, CHILD.encode())  # keyed by a child, not the household
    assert [i.code for i in issues] == ["key_mismatch"]
    assert "household_id" in issues[0].rule and HOUSEHOLD in issues[0].rule and CHILD in issues[0].rule


def test_placement_missing_key() -> None:
    event = _decoded(minimal("contact.received"))
    issues = placement_issues(CONTACTS, event, None)
    assert [i.code for i in issues] == ["key_mismatch"]
    assert "no key" in issues[0].rule and "child_id" in issues[0].rule


def test_placement_key_that_is_not_utf8() -> None:
    event = _decoded(minimal("contact.received"))
    assert [i.code for i in placement_issues(CONTACTS, event, b"\xff\xfe")] == ["key_mismatch"]


def test_placement_of_a_valid_event_on_each_other_topic_is_wrong() -> None:
    event = _decoded(minimal("contact.received"))
    assert isinstance(event, ContactReceived)
    for spec in TOPICS:
        codes = [i.code for i in placement_issues(spec, event, CHILD.encode())]
        assert codes == ([] if spec is CONTACTS else ["wrong_topic"])
