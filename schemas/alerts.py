"""`alert.raised` on safeguarding.alerts.v1: what the stream processors tell on-duty managers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.events import ContractModel
from schemas.types import IsoDuration, LaCode, Pseudonym, Severity, SubjectType, Timestamp


class AlertRaised(ContractModel):
    """A threshold rule of the catalogue (rules.md) held for a child or a household."""

    alert_id: Annotated[
        str,
        Field(
            pattern=r"^[0-9a-f]{16,64}$",
            description="Deterministic from (rule, subject, triggering evidence): replays yield the same id.",
        ),
    ]
    event_type: Literal["alert.raised"] = "alert.raised"
    schema_version: Literal[1] = 1
    rule_id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    rule_version: Annotated[int, Field(ge=1)]
    severity: Severity
    la_code: LaCode
    subject_type: SubjectType
    subject_id: Pseudonym
    triggered_at: Timestamp
    raised_at: Timestamp
    threshold: Annotated[int, Field(ge=1)] | None = None
    count: Annotated[int, Field(ge=0)] | None = None
    window: IsoDuration | None = None
    evidence_event_ids: Annotated[list[str], Field(min_length=1)]
    summary: Annotated[str, Field(min_length=1, max_length=500)]
