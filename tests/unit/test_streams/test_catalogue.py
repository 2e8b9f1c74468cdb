"""The catalogue as data: every rule of rules.md once, self-describing, frozen params, and pure modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

import streams.rules
from schemas.events import EVENT_MODELS
from streams.rules import RULES, RULES_BY_ID, Catalogue

RULES_MD_IDS = [
    "repeat_missing",
    "high_risk_missing",
    "return_interview_overdue",
    "repeat_cp_plan",
    "re_referral",
    "multi_agency_concern",
    "domestic_abuse_child_present",
    "da_contact_overdue",
    "repeat_domestic_abuse",
    "marac_repeat",
]
HOUSEHOLD_RULES = {"domestic_abuse_child_present", "repeat_domestic_abuse", "marac_repeat"}
PACKAGE = Path(streams.rules.__file__).parent


def test_every_rule_of_rules_md_once_in_its_order() -> None:
    assert [rule.rule_id for rule in RULES] == RULES_MD_IDS
    assert list(RULES_BY_ID) == RULES_MD_IDS


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.rule_id)
def test_rules_describe_themselves(rule: streams.rules.RuleDefinition) -> None:  # type: ignore[type-arg]
    assert rule.version >= 1
    assert rule.description and rule.source
    assert rule.subject_type == ("household" if rule.rule_id in HOUSEHOLD_RULES else "child")
    assert rule.input_event_types <= {*EVENT_MODELS, "da_obligation"}
    params = rule.default_params()
    assert params.enabled is True
    with pytest.raises(ValidationError):
        params.enabled = False  # type: ignore[misc]


def test_deadline_rules_name_the_topic_whose_clock_drives_them() -> None:
    deadlines = {rule.rule_id: rule.deadline.clock_topic for rule in RULES if rule.deadline}
    assert deadlines == {
        "return_interview_overdue": "safeguarding.missing-episodes.v1",
        "da_contact_overdue": "safeguarding.contacts.v1",
    }


def test_catalogue_refuses_wrong_params() -> None:
    defaults = Catalogue.default()
    with pytest.raises(TypeError):
        defaults.with_params("repeat_missing", defaults.params["marac_repeat"])
    with pytest.raises(ValueError, match="missing"):
        Catalogue({})


def test_horizons_with_defaults() -> None:
    # Every rule's window + cooldown (P180D, P24M, P60D, PT72H, PT24H), less those another one covers at every
    # moment: P24M and P180D remain (months and days do not compare: neither covers the other).
    assert {str(d) for d in Catalogue.default().horizon("child")} == {"P180D", "P24M"}
    assert {str(d) for d in Catalogue.default().horizon("household")} == {"P24M"}


FORBIDDEN_IMPORTS = {"faust", "mode", "kafka", "aiokafka", "clickhouse_connect", "chdb", "os", "socket", "time"}


@pytest.mark.parametrize("module", sorted(PACKAGE.rglob("*.py")), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_rule_modules_are_pure(module: Path) -> None:
    tree = ast.parse(module.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.Attribute) and node.attr in {"now", "utcnow", "today"}:
            pytest.fail(f"{module.name} reads the wall clock (.{node.attr})")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {"open", "print"}:
            pytest.fail(f"{module.name} does I/O ({node.func.id})")
    assert not imported & FORBIDDEN_IMPORTS
    # config.py is the one module that reads a file (through pathlib), at start-up.
    if module.name != "config.py":
        assert "pathlib" not in imported and "yaml" not in imported and "tomllib" not in imported
