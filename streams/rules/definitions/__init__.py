"""The rule catalogue of rules.md, one module per rule, in the order of its table."""

from __future__ import annotations

from typing import Any

from streams.rules.definition import RuleDefinition
from streams.rules.definitions import (
    da_contact_overdue,
    domestic_abuse_child_present,
    high_risk_missing,
    marac_repeat,
    multi_agency_concern,
    re_referral,
    repeat_cp_plan,
    repeat_domestic_abuse,
    repeat_missing,
    return_interview_overdue,
)

RULES: tuple[RuleDefinition[Any], ...] = (
    # The built-in rules: what `Catalogue.default()` runs. The engine and the worker read a catalogue's own
    # `rules`, never this tuple, so a partnership (or a test) can run any set of rules.
    repeat_missing.RULE,
    high_risk_missing.RULE,
    return_interview_overdue.RULE,
    repeat_cp_plan.RULE,
    re_referral.RULE,
    multi_agency_concern.RULE,
    domestic_abuse_child_present.RULE,
    da_contact_overdue.RULE,
    repeat_domestic_abuse.RULE,
    marac_repeat.RULE,
)


def rules_by_id(rules: tuple[RuleDefinition[Any], ...]) -> dict[str, RuleDefinition[Any]]:
    by_id: dict[str, RuleDefinition[Any]] = {}
    for rule in rules:
        if rule.rule_id in by_id:
            raise ValueError(f"duplicate rule id {rule.rule_id!r} in the catalogue")
        by_id[rule.rule_id] = rule
    return by_id


RULES_BY_ID: dict[str, RuleDefinition[Any]] = rules_by_id(RULES)

__all__ = ["RULES", "RULES_BY_ID", "rules_by_id"]
