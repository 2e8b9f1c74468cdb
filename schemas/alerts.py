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


AlertState = Literal["raised", "notified", "delivery_failed", "acknowledged", "escalated", "renotified", "resolved"]
"""The life of an alert after the rule fired: each change is one `alert.lifecycle` event."""

ResolutionOutcome = Literal["contact_made", "strategy_discussion", "no_further_action", "duplicate"]
"""How a manager closed an alert (`resolved` events): the child or family was contacted, a strategy discussion was
held or arranged, no further action was needed, or the alert duplicated another."""


class AlertLifecycle(ContractModel):
    """A change of an alert's delivery state, on safeguarding.alert-lifecycle.v1 (keyed by `alert_id`).

    Written by the notifier (the service that delivers alerts to on-duty managers) so that the sink
    can store it and the Alerts dashboard can show time to acknowledge. `event_id` is deterministic
    where the change is (for example uuid5 of alert id, state, contact and attempt), so a retry
    never counts twice. `actor` is a user name for acknowledgements and resolutions, `system` otherwise; `note`
    is the manager's acknowledgement or resolution note and must carry no identifying detail. `renotified`: an
    acknowledged high or critical alert not resolved in time was messaged again; `resolved` carries `outcome`.
    """

    event_id: Annotated[str, Field(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
    event_type: Literal["alert.lifecycle"] = "alert.lifecycle"
    schema_version: Literal[1] = 1
    alert_id: Annotated[str, Field(pattern=r"^[0-9a-f]{16,64}$")]
    state: AlertState
    occurred_at: Timestamp
    rule_id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    severity: Severity
    la_code: LaCode
    team: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    channel: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    recipient: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    actor: Annotated[str, Field(min_length=1, max_length=100)] = "system"
    escalation_level: Annotated[int, Field(ge=0)] = 0
    note: Annotated[str, Field(max_length=1000)] | None = None
    error: Annotated[str, Field(max_length=1000)] | None = None
    outcome: ResolutionOutcome | None = None
