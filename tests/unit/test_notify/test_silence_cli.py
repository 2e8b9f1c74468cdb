"""`safeguard notify silence add|list|expire`: checked values (every problem at once), the store and the audit
trail shared with the page."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from notify.store import NotifyStore
from safeguard.notify_cli import notify
from safeguard.settings import NotifySettings, Settings
from tests.unit.test_notify.helpers import pseudonym

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = str(REPO / "examples" / "rota.toml")


def invoke(tmp_path: Path, *args: str) -> tuple[int, str]:
    settings = Settings(_env_file=None, notify=NotifySettings(data_dir=tmp_path, rota_file=Path(EXAMPLE)))
    result = CliRunner().invoke(notify, ["silence", *args], obj=settings)
    return result.exit_code, result.output


def test_add_list_and_expire_a_silence(tmp_path: Path) -> None:
    child = pseudonym("child-1")
    code, out = invoke(
        tmp_path, "add", "--rule", "repeat_missing,high_risk_missing", "--severity", "medium", "--severity", "high",
        "--team", "front-door", "--subject", child, "--duration", "2h", "--reason", "planned residential trip",
        "--author", "ops-dana",
    )  # fmt: skip
    assert code == 0, out
    silence_id = out.split()[1].rstrip(":")
    assert "rule=high_risk_missing|repeat_missing severity=high|medium team=front-door subject=" in out
    code, out = invoke(tmp_path, "list")
    assert code == 0 and silence_id in out and "active" in out and "(ops-dana: planned residential trip)" in out
    code, out = invoke(tmp_path, "expire", silence_id, "--author", "ops-eve")
    assert code == 0 and f"silence {silence_id} expired" in out
    assert invoke(tmp_path, "list")[1].strip() == "no silences"
    code, out = invoke(tmp_path, "list", "--all")
    assert code == 0 and "expired by ops-eve" in out
    code, out = invoke(tmp_path, "expire", silence_id, "--author", "ops-eve")
    assert code == 1 and "already over" in out
    code, out = invoke(tmp_path, "expire", "abcdefabcdef", "--author", "ops-eve")
    assert code == 1 and "no silence abcdefabcdef" in out
    store = NotifyStore(tmp_path / "notify.sqlite3")
    try:
        trail = [(e.actor, e.action) for e in store.audit_trail()]
    finally:
        store.close()
    assert trail == [("ops-eve", "silence_expired"), ("ops-dana", "silence_created")]


def test_add_reports_every_problem_and_makes_nothing(tmp_path: Path) -> None:
    code, out = invoke(
        tmp_path, "add", "--rule", "repeat_mising", "--la-code", "38", "--team", "night-owls",
        "--subject", "9434765919",
        "--start", "2025-06-02T10:00", "--end", "2025-06-01T10:00", "--reason", "Mrs Jones asked", "--author", "dana",
    )  # fmt: skip
    assert code == 2 and "no silence was made" in out
    for problem in ("unknown rule 'repeat_mising'", "'38' is not a three-digit LA code", "'night-owls' is not a team",
                    "is not a pseudonym", "the end must be after the start", "a person's name"):  # fmt: skip
        assert problem in out, out
    assert not (tmp_path / "notify.sqlite3").exists()
    code, out = invoke(tmp_path, "add", "--rule", "repeat_missing", "--reason", "r", "--author", "a")
    assert code == 2 and "exactly one of --end and --duration" in out
    code, out = invoke(
        tmp_path, "add", "--rule", "repeat_missing", "--duration", "soon", "--reason", "r", "--author", "a"
    )
    assert code == 2 and "is not a duration" in out
    code, out = invoke(tmp_path, "add", "--duration", "1h", "--reason", "r", "--author", "a")
    assert code == 2 and "at least one matcher" in out


def test_list_without_state_says_so(tmp_path: Path) -> None:
    code, out = invoke(tmp_path / "none", "list")
    assert code == 1 and "no notifier state" in out
