"""Rules files: TOML and YAML overrides, clear errors naming file, rule and key, and `describe_catalogue`."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.errors import ConfigError
from streams.rules import (
    Catalogue,
    CatalogueRow,
    Duration,
    RulesFileError,
    catalogue_from_mapping,
    describe_catalogue,
    load_catalogue,
)
from streams.rules.definitions.repeat_missing import LookedAfterThresholds, RepeatMissingParams

EXAMPLE_TOML = """\
[repeat_missing]
threshold = 3
window = "P12M"
[repeat_missing.looked_after]
threshold = 4
[repeat_domestic_abuse]
window = "P6M"
[high_risk_missing]
enabled = false
"""

EXAMPLE_YAML = """\
repeat_missing:
  threshold: 3
  window: P12M
  looked_after:
    threshold: 4
repeat_domestic_abuse:
  window: P6M
high_risk_missing:
  enabled: false
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _problems(tmp_path: Path, text: str, name: str = "rules.toml") -> list[str]:
    path = _write(tmp_path, name, text)
    with pytest.raises(RulesFileError) as caught:
        load_catalogue(path)
    return [problem.replace(str(path), name) for problem in caught.value.problems]


def test_toml_overrides(tmp_path: Path) -> None:
    catalogue = load_catalogue(_write(tmp_path, "rules.toml", EXAMPLE_TOML))
    assert catalogue.params["repeat_missing"] == RepeatMissingParams(
        threshold=3, window=Duration(months=12), looked_after=LookedAfterThresholds(threshold=4)
    )
    assert catalogue.params["repeat_domestic_abuse"].window == Duration(months=6)  # type: ignore[attr-defined]
    assert catalogue.params["high_risk_missing"].enabled is False
    assert catalogue.params["marac_repeat"] == Catalogue.default().params["marac_repeat"]


def test_yaml_gives_the_same_catalogue(tmp_path: Path) -> None:
    from_toml = load_catalogue(_write(tmp_path, "rules.toml", EXAMPLE_TOML))
    for name in ("rules.yaml", "rules.yml"):
        from_yaml = load_catalogue(_write(tmp_path, name, EXAMPLE_YAML))
        assert dict(from_yaml.params) == dict(from_toml.params)
        assert from_yaml.overridden == from_toml.overridden


def test_empty_files_give_the_defaults(tmp_path: Path) -> None:
    defaults = dict(Catalogue.default().params)
    assert dict(load_catalogue(_write(tmp_path, "rules.toml", "")).params) == defaults
    assert dict(load_catalogue(_write(tmp_path, "rules.yaml", "")).params) == defaults


def test_deadline_settings(tmp_path: Path) -> None:
    catalogue = load_catalogue(_write(tmp_path, "rules.toml", '[deadlines]\nallowed_lateness = "PT5M"\n'))
    assert catalogue.deadlines.allowed_lateness == Duration(minutes=5)
    assert catalogue.deadlines.live_horizon == Duration(days=1)
    assert Catalogue.default().deadlines.allowed_lateness == Duration(minutes=10)


def test_bad_duration_names_file_rule_and_key(tmp_path: Path) -> None:
    assert _problems(tmp_path, '[repeat_missing]\nwindow = "P90"\n') == [
        "rules.toml: repeat_missing.window: 'P90' is not an ISO 8601 duration such as P90D"
    ]


def test_unknown_rule_lists_the_valid_ones(tmp_path: Path) -> None:
    [problem] = _problems(tmp_path, "[repeat_mising]\nthreshold = 3\n")
    assert problem.startswith(
        "rules.toml: unknown rule 'repeat_mising'; valid rules: repeat_missing, high_risk_missing,"
    )
    assert problem.endswith("marac_repeat (and [deadlines])")


def test_unknown_keys_list_the_valid_ones(tmp_path: Path) -> None:
    assert _problems(tmp_path, "[repeat_missing]\ntreshold = 4\n") == [
        "rules.toml: repeat_missing.treshold: unknown key; valid keys: "
        "cooldown, count_away, enabled, looked_after, threshold, window"
    ]
    assert _problems(tmp_path, "[repeat_missing.looked_after]\ncount = 4\n") == [
        "rules.toml: repeat_missing.looked_after.count: unknown key; valid keys: threshold, window"
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[repeat_missing]\nthreshold = "3"\n', "repeat_missing.threshold: expected a whole number (got '3')"),
        ("[repeat_missing]\nthreshold = 2.5\n", "repeat_missing.threshold: expected a whole number (got 2.5)"),
        ("[repeat_missing]\nthreshold = 0\n", "repeat_missing.threshold: must be at least 1 (got 0)"),
        ('[high_risk_missing]\nenabled = "no"\n', "high_risk_missing.enabled: expected true or false (got 'no')"),
        ("[repeat_missing]\nlooked_after = 4\n", "repeat_missing.looked_after: expected a table of settings (got 4)"),
        ('[marac_repeat]\nwindow = "P0D"\n', "marac_repeat.window: must be longer than zero (got 'P0D')"),
        ("[marac_repeat]\nwindow = 90\n", "marac_repeat.window: 90 is not an ISO 8601 duration such as P90D"),
        (
            '[deadlines]\nallowed_lateness = "P1M"\n',
            "deadlines.allowed_lateness: must be a fixed length of time (days, hours, minutes), not months or years "
            "(got 'P1M')",
        ),
        ("repeat_missing = 3\n", "repeat_missing: expected a table of settings, got 3"),
    ],
)
def test_type_errors(tmp_path: Path, text: str, problem: str) -> None:
    assert _problems(tmp_path, text) == [f"rules.toml: {problem}"]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    problems = _problems(tmp_path, '[repeat_missing]\nwindow = "P90"\nthreshold = 0\n[nope]\n')
    assert len(problems) == 3


def test_yaml_errors_name_the_file_too(tmp_path: Path) -> None:
    assert _problems(tmp_path, "repeat_missing:\n  window: P90\n", name="rules.yaml") == [
        "rules.yaml: repeat_missing.window: 'P90' is not an ISO 8601 duration such as P90D"
    ]
    assert _problems(tmp_path, "- repeat_missing\n", name="rules.yaml") == [
        "rules.yaml: expected rule ids mapped to their settings, got ['repeat_missing']"
    ]
    [broken] = _problems(tmp_path, "repeat_missing: [\n", name="rules.yaml")
    assert broken.startswith("rules.yaml: not valid YAML:")


def test_file_problems(tmp_path: Path) -> None:
    [syntax] = _problems(tmp_path, "[repeat_missing\n")
    assert syntax.startswith("rules.toml: not valid TOML:")
    assert _problems(tmp_path, "", name="rules.json") == ["rules.json: a rules file must end in .toml, .yaml or .yml"]
    with pytest.raises(RulesFileError, match="cannot read the rules file"):
        load_catalogue(tmp_path / "missing.toml")


def test_errors_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        catalogue_from_mapping({"nope": {}}, source="rules.toml")


def test_describe_catalogue(tmp_path: Path) -> None:
    path = _write(tmp_path, "rules.toml", EXAMPLE_TOML)
    rows = describe_catalogue(load_catalogue(path))
    repeat_missing = {row.setting: (row.value, row.source) for row in rows if row.rule_id == "repeat_missing"}
    file = str(path)
    assert repeat_missing == {
        "enabled": ("true", "default"),
        "threshold": ("3", file),
        "window": ("P12M", file),
        "cooldown": ("P12M", "default"),  # the window, by rules.md
        "count_away": ("false", "default"),
        "looked_after.threshold": ("4", file),
        "looked_after.window": ("P12M", "default"),
    }
    assert CatalogueRow("high_risk_missing", "enabled", "false", file) in rows
    assert CatalogueRow("high_risk_missing", "cooldown", "none", "default") in rows
    assert CatalogueRow("repeat_cp_plan", "cooldown", "P24M", "default") in rows
    assert CatalogueRow("deadlines", "allowed_lateness", "PT10M", "default") in rows
    assert CatalogueRow("deadlines", "live_horizon", "P1D", "default") in rows
    assert {row.rule_id for row in rows} >= {"marac_repeat", "da_contact_overdue"}


def test_describe_defaults_matches_rules_md() -> None:
    values = {(row.rule_id, row.setting): row.value for row in describe_catalogue(Catalogue.default())}
    assert all(row.source == "default" for row in describe_catalogue(Catalogue.default()))
    expected = {
        ("repeat_missing", "threshold"): "3",
        ("repeat_missing", "window"): "P90D",
        ("repeat_missing", "cooldown"): "P90D",
        ("repeat_missing", "count_away"): "false",
        ("return_interview_overdue", "deadline"): "PT72H",
        ("repeat_cp_plan", "lookback"): "P24M",
        ("repeat_cp_plan", "alert_on_any_previous"): "true",
        ("re_referral", "window"): "P12M",
        ("multi_agency_concern", "threshold"): "3",
        ("multi_agency_concern", "window"): "P30D",
        ("da_contact_overdue", "deadline"): "PT24H",
        ("repeat_domestic_abuse", "threshold"): "3",
        ("repeat_domestic_abuse", "window"): "P12M",
        ("marac_repeat", "window"): "P12M",
    }
    assert {key: values[key] for key in expected} == expected
