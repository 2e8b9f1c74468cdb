"""The machine-readable contract: JSON Schema for every event type, the alert and the dead letter."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from schemas.alerts import AlertLifecycle, AlertRaised
from schemas.deadletter import DeadLetter
from schemas.events import EVENT_MODELS
from schemas.quality import QualityFinding

SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    **EVENT_MODELS,
    "alert.raised": AlertRaised,
    "alert.lifecycle": AlertLifecycle,
    "dead_letter": DeadLetter,
    "quality.finding": QualityFinding,
}


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of one message type, with a stable $id."""
    schema = SCHEMA_MODELS[name].model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:safeguarding:schema:{name}:v1",
        **schema,
    }


def render_all() -> dict[str, str]:
    """File name → file text for schemas/json/, deterministic so a test can compare it with the committed files."""
    return {
        f"{name}.schema.json": json.dumps(json_schema(name), indent=2, sort_keys=True) + "\n" for name in SCHEMA_MODELS
    }
