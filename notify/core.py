"""The notifier's decisions as pure functions of (state, input, now): grouping, repeat suppression, escalation,
retry back-off and the lifecycle events that record each change. No I/O, no clock of its own.

- **Grouping.** Alerts for the same subject (a child or a household) going to the same contact at the same
  escalation level are one message. A group opened by a high or critical alert goes out `group_wait_s` after its
  first alert (alerts raised by one incident arrive together); a group of only medium and info alerts waits
  `group_window_s`, so a household's three medium alerts in a minute are one message. An urgent alert joining a
  waiting group brings the send forward.
- **Repeat suppression.** A medium or info alert for the same rule and subject as one already messaged to the same
  team within `repeat_interval_s` is recorded and shown on the acknowledgement page but not messaged again. High
  and critical alerts are always messaged. (Re-deliveries of the same `alert_id` are dropped before this.)
- **Escalation.** A high or critical alert not acknowledged `escalate_after_s` after its current level started goes
  to the next contact of the escalation chain captured when it was routed; the wait restarts at each level.
- **Re-notification.** A high or critical alert acknowledged but not resolved `renotify_after_s` after its
  acknowledgement (or after the last reminder) is messaged again, to whoever of its team is on duty now: an
  acknowledgement is a promise to act, and the reminder keeps it from being forgotten across a hand-over.
- **Resolution.** A manager closes an alert with an outcome (`OUTCOMES`) and a note; a resolved alert is never
  messaged, escalated or re-notified again. Resolving an alert nobody acknowledged acknowledges it in passing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.alerts import AlertLifecycle, AlertRaised, AlertState, ResolutionOutcome

URGENT: frozenset[str] = frozenset({"high", "critical"})
"""Severities that are never held for grouping beyond `group_wait_s`, never suppressed, and escalate."""

LIFECYCLE_NAMESPACE = uuid.UUID("5b0f3c0e-8f1d-4d3e-9a51-6a7c2f1e0b42")


@dataclass(frozen=True)
class Timing:
    """The notifier's time settings (seconds), taken from NotifySettings at the edge."""

    group_wait_s: float = 0.5
    group_window_s: float = 60.0
    repeat_interval_s: float = 24 * 3600.0
    escalate_after_s: float = 15 * 60.0
    retry_initial_s: float = 1.0
    retry_max_s: float = 300.0
    renotify_after_s: float = 4 * 3600.0


OUTCOMES: dict[ResolutionOutcome, str] = {
    "contact_made": "contact made",
    "strategy_discussion": "strategy discussion",
    "no_further_action": "no further action",
    "duplicate": "duplicate",
}
"""The outcomes an alert is resolved with, and how people read them."""


def outcome_of(text: str) -> ResolutionOutcome | None:
    """An outcome from its code or its words (`contact made`, `contact-made`), None when it is not one."""
    key = "_".join(text.strip().lower().replace("-", " ").split())
    return next((o for o in OUTCOMES if o == key), None)


def group_key(team: str, contact_id: str, level: int, subject_id: str) -> str:
    """Alerts sharing this key while a message is being collected become one message."""
    return f"{team}|{contact_id}|{level}|{subject_id}"


def send_at(severity: str, now: datetime, timing: Timing, current: datetime | None = None) -> datetime:
    """When a group's message goes out once an alert of `severity` joins it at `now` (`current`: the group's time)."""
    wait = timing.group_wait_s if severity in URGENT else timing.group_window_s
    candidate = now + timedelta(seconds=wait)
    return candidate if current is None else min(current, candidate)


def is_repeat(severity: str, last_messaged: datetime | None, now: datetime, timing: Timing) -> bool:
    """Whether a new alert repeats one (same team, rule, subject) messaged at `last_messaged`, and is held back."""
    if severity in URGENT or last_messaged is None:
        return False
    return now - last_messaged < timedelta(seconds=timing.repeat_interval_s)


@dataclass(frozen=True)
class EscalationState:
    """What escalation needs to know of one alert."""

    severity: str
    acknowledged: bool
    level: int
    level_started_at: datetime
    chain: tuple[str, ...]


def escalation_due(state: EscalationState, now: datetime, after_s: float) -> bool:
    """Whether the alert's current level has waited long enough without acknowledgement."""
    if state.acknowledged or state.severity not in URGENT:
        return False
    return now >= state.level_started_at + timedelta(seconds=after_s)


def next_contact(state: EscalationState) -> tuple[int, str] | None:
    """(level, contact id) the alert escalates to, or None when the chain is exhausted."""
    level = state.level + 1
    return (level, state.chain[level]) if level < len(state.chain) else None


def renotify_due(
    severity: str, acked_at: datetime | None, resolved: bool, last_reminder: datetime | None, now: datetime,
    after_s: float,
) -> bool:  # fmt: skip
    """Whether an acknowledged, unresolved high or critical alert is due a reminder now: `after_s` after its
    acknowledgement, then every `after_s` after the last reminder. `after_s` <= 0 turns reminders off."""
    if after_s <= 0 or resolved or acked_at is None or severity not in URGENT:
        return False
    since = last_reminder if last_reminder is not None and last_reminder > acked_at else acked_at
    return now >= since + timedelta(seconds=after_s)


def retry_delay(attempts: int, timing: Timing) -> float:
    """Back-off before the next attempt after `attempts` failed ones: doubling, capped; never gives up."""
    return float(min(timing.retry_initial_s * 2 ** max(attempts - 1, 0), timing.retry_max_s))


def lifecycle_event_id(alert_id: str, state: str, *parts: object) -> str:
    """Deterministic per change (alert, state, recipient, level, attempt): a retried write never counts twice."""
    return str(uuid.uuid5(LIFECYCLE_NAMESPACE, "|".join([alert_id, state, *(str(p) for p in parts)])))


def lifecycle(
    alert: AlertRaised,
    state: AlertState,
    at: datetime,
    *,
    team: str | None = None,
    channel: str | None = None,
    recipient: str | None = None,
    actor: str = "system",
    level: int = 0,
    note: str | None = None,
    error: str | None = None,
    attempt: int = 0,
    outcome: ResolutionOutcome | None = None,
) -> AlertLifecycle:
    """The `alert.lifecycle` event of one change of an alert's delivery state."""
    return AlertLifecycle(
        event_id=lifecycle_event_id(alert.alert_id, state, channel or "", recipient or "", actor, level, attempt),
        alert_id=alert.alert_id,
        state=state,
        occurred_at=at,
        rule_id=alert.rule_id,
        severity=alert.severity,
        la_code=alert.la_code,
        team=team,
        channel=channel,
        recipient=recipient,
        actor=actor,
        escalation_level=level,
        note=note,
        error=error[:1000] if error else None,
        outcome=outcome,
    )
