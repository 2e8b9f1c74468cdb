"""Rota parsing, validation and routing, including shift boundaries on the nights the clocks change."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from notify.rota import RotaError, load_rota, parse_rota
from tests.unit.test_notify.helpers import ROTA_TOML, rota

REPO = Path(__file__).resolve().parents[3]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def who(at: datetime, la_code: str = "383", severity: str = "high", rule: str = "repeat_missing") -> str:
    duty = rota().route(la_code, rule, severity, at)
    return f"{duty.team.name}:{duty.chain[0]}"


# -- routing ------------------------------------------------------------------------------------------------------


def test_routes_by_la_code_and_time_of_day() -> None:
    assert who(utc(2025, 6, 2, 10, 0)) == "front-door:day"  # Monday 11:00 BST
    assert who(utc(2025, 6, 2, 22, 0)) == "edt:night"  # Monday 23:00 BST: front door off duty
    assert who(utc(2025, 6, 7, 10, 0)) == "edt:night"  # Saturday: front door works weekdays only
    assert who(utc(2025, 6, 2, 10, 0), la_code="999") == "edt:night"  # no team for that LA: fallback


def test_routes_by_severity() -> None:
    assert who(utc(2025, 6, 2, 10, 0), la_code="856", severity="critical") == "leicester:hook"
    assert who(utc(2025, 6, 2, 10, 0), la_code="856", severity="medium") == "edt:night"


def test_routes_by_rule() -> None:
    text = ROTA_TOML.replace('name = "front-door"\nla_codes = ["383"]', 'name = "front-door"\nla_codes = ["383"]\n'
                             'rules = ["high_risk_missing"]')  # fmt: skip
    r = parse_rota(text)
    at = utc(2025, 6, 2, 10, 0)
    assert r.route("383", "high_risk_missing", "critical", at).team.name == "front-door"
    assert r.route("383", "re_referral", "medium", at).team.name == "edt"


def test_shift_boundary_is_half_open_in_local_time() -> None:
    # Summer (BST = UTC+1): the front door starts at 08:00 local = 07:00 UTC and ends at 20:00 local = 19:00 UTC.
    assert who(utc(2025, 6, 2, 6, 59)) == "edt:night"
    assert who(utc(2025, 6, 2, 7, 0)) == "front-door:day"
    assert who(utc(2025, 6, 2, 18, 59)) == "front-door:day"
    assert who(utc(2025, 6, 2, 19, 0)) == "edt:night"
    # Winter (GMT = UTC): the same shifts, an hour later in UTC.
    assert who(utc(2025, 1, 6, 7, 59)) == "edt:night"
    assert who(utc(2025, 1, 6, 8, 0)) == "front-door:day"


def test_spring_forward_night_shift_ends_at_local_time() -> None:
    """Sunday 30 March 2025: clocks go from 01:00 GMT to 02:00 BST. A 20:00-08:00 shift lasts 11 hours."""
    r = rota()
    night = r.team_duty("edt", utc(2025, 3, 29, 20, 0))  # Saturday 20:00 GMT
    assert night is not None and night.shift.start == 20 * 60
    assert r.team_duty("edt", utc(2025, 3, 30, 0, 59)).shift is night.shift  # type: ignore[union-attr] # 00:59 GMT
    assert r.team_duty("edt", utc(2025, 3, 30, 1, 0)).shift is night.shift  # type: ignore[union-attr] # 02:00 BST
    # 06:59 UTC is 07:59 BST: still the night shift; 07:00 UTC is 08:00 BST: the weekend day shift.
    assert r.team_duty("edt", utc(2025, 3, 30, 6, 59)).shift is night.shift  # type: ignore[union-attr]
    day = r.team_duty("edt", utc(2025, 3, 30, 7, 0))
    assert day is not None and day.shift.start == 8 * 60 and day.chain == ("night", "night-lead", "head")
    # On Monday the front door takes over at 08:00 BST = 07:00 UTC.
    assert who(utc(2025, 3, 31, 6, 59)) == "edt:night"
    assert who(utc(2025, 3, 31, 7, 0)) == "front-door:day"


def test_fall_back_night_shift_covers_the_repeated_hour() -> None:
    """Sunday 26 October 2025: clocks go from 02:00 BST back to 01:00 GMT. The night shift lasts 13 hours."""
    r = rota()
    night = r.team_duty("edt", utc(2025, 10, 25, 19, 0))  # Saturday 20:00 BST
    assert night is not None and night.shift.start == 20 * 60
    for instant in (utc(2025, 10, 26, 0, 30), utc(2025, 10, 26, 1, 30)):  # 01:30 BST, then 01:30 GMT
        assert r.team_duty("edt", instant).shift is night.shift  # type: ignore[union-attr]
    assert r.team_duty("edt", utc(2025, 10, 26, 7, 59)).shift is night.shift  # type: ignore[union-attr] # 07:59 GMT
    assert r.team_duty("edt", utc(2025, 10, 26, 8, 0)).shift.start == 8 * 60  # type: ignore[union-attr] # 08:00 GMT
    # Monday after: the front door starts at 08:00 GMT = 08:00 UTC, no longer 07:00 UTC.
    assert who(utc(2025, 10, 27, 7, 30)) == "edt:night"
    assert who(utc(2025, 10, 27, 8, 0)) == "front-door:day"


def test_fallback_covers_every_minute_of_a_dst_week() -> None:
    r = rota()
    start = utc(2025, 3, 27, 0, 0).timestamp()
    for minute in range(0, 7 * 24 * 60, 7):
        duty = r.route("999", "repeat_missing", "medium", datetime.fromtimestamp(start + minute * 60, UTC))
        assert duty.team.name == "edt"


def test_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        rota().route("383", "repeat_missing", "high", datetime(2025, 6, 2, 10, 0))


def test_example_rota_is_valid() -> None:
    r = load_rota(REPO / "examples" / "rota.toml")
    assert r.fallback_team == "emergency-duty"
    assert r.route("383", "high_risk_missing", "critical", utc(2025, 6, 2, 10, 0)).team.name == "missing"


def test_yaml_rota_routes_like_toml(tmp_path: Path) -> None:
    path = tmp_path / "rota.yaml"
    path.write_text(
        """
fallback_team: all
contacts:
  a: {name: A, email: a@example.org}
  b: {name: B, console: true}
teams:
  - name: all
    shifts:
      - {days: daily, start: 08:00, end: 18:00, primary: a, escalation: [b]}
      - {days: daily, start: 18:00, end: 08:00, primary: b}
""",
        encoding="utf-8",
    )
    r = load_rota(path)
    assert r.route("383", "re_referral", "medium", utc(2025, 1, 6, 17, 59)).chain == ("a", "b")
    assert r.route("383", "re_referral", "medium", utc(2025, 1, 6, 18, 0)).chain == ("b",)


# -- bad rota files -----------------------------------------------------------------------------------------------

GOOD_HEAD = """
fallback_team = "all"
[contacts.a]
name = "A"
email = "a@example.org"
"""


def all_day(extra: str = "", shift: str = 'days = "daily"\nstart = "00:00"\nend = "24:00"\nprimary = "a"') -> str:
    return GOOD_HEAD + f'[[teams]]\nname = "all"\n{extra}\n[[teams.shifts]]\n{shift}\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not = [valid", "not valid TOML"),
        (GOOD_HEAD, "teams: must be a list of teams"),
        (all_day().replace('fallback_team = "all"', ""), "fallback_team: is required"),
        (all_day().replace('fallback_team = "all"', 'fallback_team = "nobody"'), "'nobody' is not one of the teams"),
        (all_day("colour = 1"), "teams.all: unknown key 'colour'"),
        (all_day('rules = ["repeat_mising"]'), "unknown rule 'repeat_mising'"),
        (all_day('la_codes = ["38"]'), "'38' is not a three-digit LA code"),
        (all_day('severities = ["urgent"]'), "'urgent' is not one of info, medium, high, critical"),
        (all_day(shift='days = "daily"\nstart = "25:00"\nend = "24:00"\nprimary = "a"'), 'must be a time "HH:MM"'),
        (all_day(shift='days = "daily"\nstart = "08:00"\nend = "08:00"\nprimary = "a"'), "start equals end"),
        (all_day(shift='days = ["moonday"]\nstart = "00:00"\nend = "24:00"\nprimary = "a"'), "'moonday' is not a day"),
        (all_day(shift='days = "daily"\nstart = "00:00"\nend = "24:00"\nprimary = "zed"'), "'zed' is not a contact"),
        (
            all_day(shift='days = "daily"\nstart = "00:00"\nend = "24:00"\nprimary = "a"\nescalation = ["a"]'),
            "names a contact twice",
        ),
        (
            all_day(shift='days = "weekdays"\nstart = "00:00"\nend = "24:00"\nprimary = "a"'),
            "nobody is on duty from Saturday 00:00 to Monday 00:00",
        ),
        (
            all_day() + '[[teams.shifts]]\ndays = ["wed"]\nstart = "22:00"\nend = "06:00"\nprimary = "a"\n',
            "overlaps teams.all.shifts[0] (mon,tue,wed,thu,fri,sat,sun 00:00-24:00) at Wednesday 22:00",
        ),
        (all_day().replace('email = "a@example.org"', 'email = "not an address"'), "is not an email address"),
        (all_day().replace('email = "a@example.org"', 'webhook = "ftp://x"'), "must be an http:// or https:// URL"),
        (all_day().replace('email = "a@example.org"', ""), "contacts.a: has no channel"),
        ('timezone = "Europe/Londn"\n' + all_day(), "'Europe/Londn' is not a known timezone"),
        (all_day('la_codes = ["383"]'), "the fallback team takes every alert"),
    ],
)
def test_bad_rota_is_rejected_with_a_clear_error(text: str, expected: str) -> None:
    with pytest.raises(RotaError) as caught:
        parse_rota(text, source="bad.toml")
    assert expected in str(caught.value)
    assert all(line.startswith("bad.toml: ") for line in caught.value.problems)


def test_every_problem_is_reported_at_once() -> None:
    text = all_day('rules = ["nope"]\nseverities = ["loud"]')
    with pytest.raises(RotaError) as caught:
        parse_rota(text, source="bad.toml")
    problems = caught.value.problems
    assert len(problems) == 3
    assert "unknown rule 'nope'" in problems[0] and "'loud' is not one of" in problems[1]
    assert "the fallback team takes every alert" in problems[2]


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(RotaError, match="no such file"):
        load_rota(tmp_path / "missing.toml")
    other = tmp_path / "rota.json"
    other.write_text("{}", encoding="utf-8")
    with pytest.raises(RotaError, match=r"unknown format '\.json'"):
        load_rota(other)
    bad_yaml = tmp_path / "rota.yml"
    bad_yaml.write_text("teams: [unclosed", encoding="utf-8")
    with pytest.raises(RotaError, match="not valid YAML"):
        load_rota(bad_yaml)
