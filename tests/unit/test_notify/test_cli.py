"""`safeguard notify` commands and the notify settings: check-rota, who-is-on-duty, hash-password, users."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from notify.security import verify_password
from safeguard.notify_cli import notify
from safeguard.settings import NotifySettings, Settings, load_settings
from schemas.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = str(REPO / "examples" / "rota.toml")


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(notify, list(args), obj=Settings(_env_file=None), input=stdin)
    return result.exit_code, result.output


def test_check_rota_prints_the_shifts_of_a_good_file() -> None:
    code, out = invoke("check-rota", EXAMPLE)
    assert code == 0 and "ok — timezone Europe/London, fallback team emergency-duty" in out
    assert "mon,tue,wed,thu 17:00-08:30" in out and "edt → edt-manager → head-of-service" in out


def test_check_rota_exits_2_with_every_problem(tmp_path: Path) -> None:
    from safeguard.cli import cli

    bad = tmp_path / "rota.toml"
    bad.write_text('fallback_team = "x"\n[contacts.a]\nname = "A"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["notify", "check-rota", str(bad)])
    assert result.exit_code == 2
    assert "teams: must be a list of teams" in result.output and "a: has no channel" in result.output


def test_who_is_on_duty_across_the_spring_clock_change() -> None:
    # Monday 31 March 2025, the first weekday in BST: 08:29 local is still the EDT's night, 08:30 the front door.
    code, out = invoke("who-is-on-duty", "--rota", EXAMPLE, "--at", "2025-03-31T08:29", "--rule", "re_referral")
    assert code == 0 and "(BST): team emergency-duty" in out
    code, out = invoke(
        "who-is-on-duty", "--rota", EXAMPLE, "--at", "2025-03-31T07:30:00+00:00", "--rule", "re_referral"
    )
    assert code == 0 and "08:30:00+01:00 (BST): team front-door" in out and "primary: Front Door duty manager" in out
    code, out = invoke("who-is-on-duty", "--rota", EXAMPLE, "--at", "yesterday")
    assert code == 2 and "is not an ISO time" in out


def test_hash_password_reads_stdin_and_makes_a_users_entry() -> None:
    code, out = invoke("hash-password", "--user", "dana", "--team", "front-door", stdin="a long enough secret\n")
    assert code == 0
    entry = json.loads(out.strip().removeprefix("SAFEGUARD_NOTIFY__USERS='").removesuffix("'"))
    assert entry["dana"]["team"] == "front-door"
    assert verify_password("a long enough secret", entry["dana"]["password_hash"])
    code, out = invoke("hash-password", stdin="short\n")
    assert code == 2 and "at least 12 characters" in out


def test_users_come_from_the_environment_as_json_and_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    from notify.security import hash_password

    hashed = hash_password("a long enough secret", n=2**10)
    monkeypatch.setenv("SAFEGUARD_NOTIFY__USERS", json.dumps({"dana": {"password_hash": hashed, "team": "front-door"}}))
    monkeypatch.setenv("SAFEGUARD_NOTIFY__LINK_SECRET", "l" * 40)
    settings = load_settings(_env_file=None)
    assert settings.notify.users["dana"].team == "front-door"
    shown = json.dumps(settings.redacted())
    assert hashed not in shown and "l" * 40 not in shown


def test_a_password_instead_of_a_hash_or_a_short_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEGUARD_NOTIFY__USERS", json.dumps({"dana": {"password_hash": "hunter2", "team": "x"}}))
    with pytest.raises(ConfigError, match="SAFEGUARD_NOTIFY__USERS__DANA__PASSWORD_HASH"):
        load_settings(_env_file=None)
    monkeypatch.delenv("SAFEGUARD_NOTIFY__USERS")
    monkeypatch.setenv("SAFEGUARD_NOTIFY__LINK_SECRET", "short")
    with pytest.raises(ConfigError, match="at least 32 characters"):
        load_settings(_env_file=None)


def test_a_user_of_a_team_not_in_the_rota_is_a_config_error() -> None:
    from notify.rota import load_rota
    from notify.security import hash_password
    from notify.service import web_users

    settings = NotifySettings(users={"eve": {"password_hash": hash_password("x" * 12, n=2**10), "team": "nowhere"}})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="user 'eve' is in team 'nowhere', which is not a team of"):
        web_users(settings, load_rota(EXAMPLE))


def test_the_service_refuses_a_rota_whose_contacts_it_cannot_reach() -> None:
    from notify.channels import ConsoleChannel
    from notify.service import NotifierService
    from tests.unit.test_notify.helpers import rota

    with pytest.raises(
        ConfigError, match=r"no enabled channel: day, senior, night, night-lead, hook \(enabled: console\)"
    ):
        NotifierService(NotifySettings(), {}, rota(), channels={"console": ConsoleChannel()})


def test_audit_prints_the_trail_newest_first(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from notify.store import NotifyStore

    store = NotifyStore(tmp_path / "notify.sqlite3")
    at = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
    store.audit(at, "dana", "login", (), "team front-door")
    store.audit(at, "dana", "viewed", [f"{i:032x}" for i in range(5)], "team front-door")
    store.close()
    settings = Settings(_env_file=None, notify=NotifySettings(data_dir=tmp_path))
    result = CliRunner().invoke(notify, ["audit"], obj=settings)
    lines = result.output.splitlines()
    assert result.exit_code == 0 and len(lines) == 2
    assert "viewed" in lines[0] and "5 alerts" in lines[0] and lines[0].count(",") == 3 and "login" in lines[1]
    full = CliRunner().invoke(notify, ["audit", "--full", "--user", "dana"], obj=settings).output.splitlines()
    assert full[0].count(",") == 4
