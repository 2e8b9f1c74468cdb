"""Valid messages written by hand from event-contract.md (not generated from the models).

Each event type has a minimal example (required fields only) and a full one (every optional field set).
Functions return fresh dicts so a test may mutate them.
"""

from __future__ import annotations

import copy
import json
from typing import Any

CHILD = "5f2c" + "0123456789abcdef" * 3 + "9e11d0c7a3b1"
OTHER_CHILD = "c0ffee" + "ab" * 29
HOUSEHOLD = "ab" * 32
VICTIM = "1d" * 32
PERPETRATOR = "ee" * 32

# The contract's own example, with the elided child_id filled in to 64 lowercase hex characters.
CONTRACT_EXAMPLE_JSON = (
    '{"event_id": "0b9c1e52-4f7e-4a59-9a55-2f0f7c3d9e11", "event_type": "missing.reported",\n'
    ' "schema_version": 1, "la_code": "856", "agency_type": "police", "agency_code": "LEICS",\n'
    ' "occurred_at": "2025-03-01T21:15:00+00:00", "recorded_at": "2025-03-01T22:02:41+00:00",\n'
    f' "episode_id": "MP-2025-00417", "child_id": "{CHILD}", "looked_after": true,\n'
    ' "absence_type": "missing", "risk_level": "medium"}'
)

# Event types as listed in the contract's topic table.
CONTRACT_EVENT_TYPES = (
    "contact.received",
    "contact.decided",
    "missing.reported",
    "missing.found",
    "missing.return_interview",
    "domestic_incident.recorded",
    "cp_plan.started",
    "cp_plan.ended",
)


def _envelope(event_type: str, event_id: str, agency_type: str, agency_code: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": event_type,
        "schema_version": 1,
        "la_code": "383",
        "agency_type": agency_type,
        "agency_code": agency_code,
        "occurred_at": "2025-03-01T21:15:00+00:00",
        "recorded_at": "2025-03-01T23:02:41+01:00",  # 22:02:41Z: offsets count
    }


_MINIMAL: dict[str, dict[str, Any]] = {
    "contact.received": {
        **_envelope("contact.received", "7f1d9c2e-3a4b-4c5d-8e6f-1a2b3c4d5e01", "education", "LCC"),
        "contact_id": "CON-000123",
        "child_id": CHILD,
        "contact_source": "2A",
        "concerns": ["neglect"],
    },
    "contact.decided": {
        **_envelope("contact.decided", "7f1d9c2e-3a4b-4c5d-8e6f-1a2b3c4d5e02", "local_authority", "LCC"),
        "contact_id": "CON-000123",
        "child_id": CHILD,
        "outcome": "referral",
    },
    "missing.reported": json.loads(CONTRACT_EXAMPLE_JSON),
    "missing.found": {
        **_envelope("missing.found", "7f1d9c2e-3a4b-4c5d-8e6f-1a2b3c4d5e04", "police", "WYP"),
        "episode_id": "MP-2025-00417",
        "child_id": CHILD,
        "looked_after": False,
        "absence_type": "away",
        "risk_level": "no_apparent_risk",
    },
    "missing.return_interview": {
        **_envelope("missing.return_interview", "7f1d9c2e-3a4b-4c5d-8e6f-1a2b3c4d5e05", "local_authority", "LCC"),
        "episode_id": "MP-2025-00417",
        "child_id": CHILD,
        "looked_after": True,
        "absence_type": "missing",
        "risk_level": "high",
        "interview": "offered",
    },
    "domestic_incident.recorded": {
        **_envelope("domestic_incident.recorded", "7f1d9c2e-3a4b-4c5d-8e6f-1a2b3c4d5e06", "police", "WYP"),
        "incident_id": "WYP-DA-2025-7781",
        "household_id": HOUSEHOLD,
        "dash_risk": "standard",
        "is_crime": False,
        "children": [],
    },
    "cp_plan.started": {
        **_envelope("cp_plan.started", "7f1d9c2e-3a4b-4c5d-8e6f-1a2b3c4d5e07", "local_authority", "LCC"),
        "plan_id": "CPP-4410",
        "child_id": CHILD,
        "category": "NEG",
    },
    "cp_plan.ended": {
        **_envelope("cp_plan.ended", "7f1d9c2e-3a4b-4c5d-8e6f-1a2b3c4d5e08", "local_authority", "LCC"),
        "plan_id": "CPP-4410",
        "child_id": CHILD,
        "category": "MUL",
    },
}

_OPTIONAL: dict[str, dict[str, Any]] = {
    "contact.received": {
        "household_id": HOUSEHOLD,
        "route": "mash",
        "linked_incident_id": "WYP-DA-2025-7781",
        "concerns": ["domestic_abuse", "emotional_abuse"],
        "purge": False,
    },
    "contact.decided": {"primary_need": "N1"},
    "missing.reported": {},
    "missing.found": {},
    "missing.return_interview": {"interview": "completed"},
    "domestic_incident.recorded": {
        "victim_id": VICTIM,
        "perpetrator_id": PERPETRATOR,
        "dash_risk": "high",
        "dash_score": 15,
        "is_crime": True,
        "children": [
            {"child_id": CHILD, "present": True, "school_urn": "107985"},
            {"child_id": OTHER_CHILD, "present": False},
        ],
        "marac_referral": True,
    },
    "cp_plan.started": {"previous_plans": 1, "previous_plan_ended_at": "2023-06-30"},
    "cp_plan.ended": {"previous_plans": 0},
}

ALERT: dict[str, Any] = {
    "alert_id": "3fa85f6457174562",
    "event_type": "alert.raised",
    "schema_version": 1,
    "rule_id": "repeat_missing",
    "rule_version": 1,
    "severity": "high",
    "la_code": "856",
    "subject_type": "child",
    "subject_id": CHILD,
    "triggered_at": "2025-03-01T21:15:00+00:00",
    "raised_at": "2025-03-01T21:15:03+00:00",
    "threshold": 3,
    "count": 3,
    "window": "P90D",
    "evidence_event_ids": ["0b9c1e52-4f7e-4a59-9a55-2f0f7c3d9e11"],
    "summary": "Child 5f2c0123 has been reported missing 3 times in 90 days.",
}


def minimal(event_type: str) -> dict[str, Any]:
    """A valid event with only the contract's required fields."""
    return copy.deepcopy(_MINIMAL[event_type])


def full(event_type: str) -> dict[str, Any]:
    """A valid event with every optional field the contract lists set."""
    return {**minimal(event_type), **copy.deepcopy(_OPTIONAL[event_type])}


def all_examples() -> list[tuple[str, dict[str, Any]]]:
    """(label, event) for the minimal and the full example of every event type."""
    return [
        (f"{t}/{kind}", make(t)) for t in CONTRACT_EVENT_TYPES for kind, make in (("minimal", minimal), ("full", full))
    ]


def alert() -> dict[str, Any]:
    return copy.deepcopy(ALERT)
