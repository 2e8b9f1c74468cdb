"""Valid events written by hand from event-contract.md, for producer tests."""

from __future__ import annotations

import json
from typing import Any

CHILD = "5f2c" + "0" * 58 + "e1"
HOUSEHOLD = "ab" * 32


def missing_reported(**overrides: Any) -> dict[str, Any]:
    event = {
        "event_id": "0b9c1e52-4f7e-4a59-9a55-2f0f7c3d9e11",
        "event_type": "missing.reported",
        "schema_version": 1,
        "la_code": "856",
        "agency_type": "police",
        "agency_code": "LEICS",
        "occurred_at": "2025-03-01T21:15:00+00:00",
        "recorded_at": "2025-03-01T22:02:41+00:00",
        "episode_id": "MP-2025-00417",
        "child_id": CHILD,
        "looked_after": True,
        "absence_type": "missing",
        "risk_level": "medium",
    }
    event.update(overrides)
    return event


def domestic_incident(**overrides: Any) -> dict[str, Any]:
    event = {
        "event_id": "6a1f0e3c-9d5b-4c1e-8f2a-7b3c4d5e6f70",
        "event_type": "domestic_incident.recorded",
        "schema_version": 1,
        "la_code": "383",
        "agency_type": "police",
        "agency_code": "WYP",
        "occurred_at": "2025-03-02T01:10:00+00:00",
        "recorded_at": "2025-03-02T03:00:00+00:00",
        "incident_id": "WYP-DA-88121",
        "household_id": HOUSEHOLD,
        "dash_risk": "high",
        "dash_score": 15,
        "is_crime": True,
        "children": [{"child_id": CHILD, "present": True}],
        "marac_referral": True,
    }
    event.update(overrides)
    return event


def jsonl(*events: dict[str, Any]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)
