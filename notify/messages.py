"""What a message says, for every channel: pure rendering of a group of alerts (no I/O).

A message names the rule, severity, summary and pseudonym of each alert and carries the signed link to the
acknowledgement page. Nothing else about the child or household is known here, so nothing else can leak.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from schemas.alerts import AlertRaised

SEVERITY_ORDER = {"info": 0, "medium": 1, "high": 2, "critical": 3}


@dataclass(frozen=True)
class Outgoing:
    """One message to one contact about a group of alerts."""

    message_id: int
    team: str
    contact_name: str
    level: int
    alerts: tuple[AlertRaised, ...]
    link: str
    timezone: str = "Europe/London"
    reminder: bool = False  # acknowledged alerts not resolved in time
    handover: bool = False  # to a manager coming on duty: the team's alerts not yet resolved (maybe none)

    @property
    def highest(self) -> str:
        return max((a.severity for a in self.alerts), key=SEVERITY_ORDER.__getitem__, default="info")

    @property
    def subject(self) -> str:
        if self.handover:
            n = len(self.alerts)
            return f"[HAND-OVER] Team {self.team}: {n} open alert{'' if n == 1 else 's'}"
        first = self.alerts[0]
        who = f"{first.subject_type} {first.subject_id[:12]}"
        prefix = f"[{self.highest.upper()}]" + (f" [ESCALATED, level {self.level}]" if self.level else "")
        if self.reminder:
            prefix = f"[{self.highest.upper()}] [NOT RESOLVED]"
        if len(self.alerts) == 1:
            return f"{prefix} Safeguarding alert: {first.rule_id} for {who}"
        return f"{prefix} {len(self.alerts)} safeguarding alerts for {who}"

    def lines(self) -> list[str]:
        """One line per alert: severity, rule, summary."""
        return [f"- {a.severity.upper()} {a.rule_id}: {a.summary}" for a in self.alerts]

    def text(self) -> str:
        """The plain-text body (email, console)."""
        zone = ZoneInfo(self.timezone)
        if self.handover:
            return self._handover_text(zone)
        first = self.alerts[0]
        head = (
            f"Escalated to you (level {self.level}): not acknowledged in time.\n\n"
            if self.level
            else "You are on duty for these alerts.\n\n"
        )
        if self.reminder:
            head = (
                "Reminder: these alerts were acknowledged but are not resolved yet. Act on them, or resolve them "
                "with an outcome on the page.\n\n"
            )
        body = [
            head + f"Team: {self.team}",
            f"Subject: {first.subject_type} {first.subject_id} (pseudonym; look it up in the case system)",
            "",
        ]
        for a in self.alerts:
            when = a.triggered_at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
            body.append(f"{a.severity.upper()}  {a.rule_id} (triggered {when})")
            body.append(f"  {a.summary}")
            body.append(f"  evidence: {', '.join(a.evidence_event_ids)}")
            body.append(f"  alert id: {a.alert_id}")
        body += ["", f"Acknowledge (log in first; the link expires): {self.link}", ""]
        return "\n".join(body)

    def _handover_text(self, zone: ZoneInfo) -> str:
        lines = [
            f"You are now on duty for team {self.team}.",
            f"Open alerts handed over: {len(self.alerts)} (not acknowledged first, then acknowledged but not "
            "resolved; subjects are pseudonyms).",
            "",
        ]
        for a in self.alerts:
            when = a.triggered_at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
            who = f"{a.subject_type} {a.subject_id[:12]}"
            lines.append(f"{a.severity.upper()}  {a.rule_id} for {who} (triggered {when})")
            lines.append(f"  {a.summary}")
            lines.append(f"  alert id: {a.alert_id}")
        if not self.alerts:
            lines.append("Nothing is open.")
        lines += ["", f"The team's alerts (log in first; the link expires): {self.link}", ""]
        return "\n".join(lines)


def slack_payload(msg: Outgoing) -> dict[str, Any]:
    """Slack-compatible incoming-webhook JSON (also accepted by Mattermost and Rocket.Chat)."""
    text = f"*{msg.subject}*\n" + "\n".join(msg.lines()) + f"\n<{msg.link}|Open and acknowledge>"
    return {"text": text}


def teams_payload(msg: Outgoing) -> dict[str, Any]:
    """Microsoft Teams workflow webhook JSON: a message with one Adaptive Card."""
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "text": msg.subject, "wrap": True},
            *({"type": "TextBlock", "text": line, "wrap": True} for line in msg.lines()),
        ],
        "actions": [{"type": "Action.OpenUrl", "title": "Open and acknowledge", "url": msg.link}],
    }
    return {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
    }


def ordered(alerts: Sequence[AlertRaised]) -> tuple[AlertRaised, ...]:
    """Most severe first, then by trigger time: the order a manager reads them in."""
    return tuple(sorted(alerts, key=lambda a: (-SEVERITY_ORDER[a.severity], a.triggered_at, a.alert_id)))
