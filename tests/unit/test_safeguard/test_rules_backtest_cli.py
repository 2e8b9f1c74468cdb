"""`safeguard rules backtest` with a JSONL source: the report, the summary, the period options, and the exit codes
for a bad rules file, an empty period, an unreadable source and rejected lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from safeguard.cli import cli
from schemas.codec import encode
from schemas.events import AgencyEvent
from tests.unit.test_streams.backtest_history import CHILDREN, PROPOSED_TOML, history


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, list[AgencyEvent]]:
    events = history()
    source = tmp_path / "history.jsonl"
    source.write_bytes(b"".join(encode(e) + b"\n" for e in events))
    rules = tmp_path / "proposed.toml"
    rules.write_text(PROPOSED_TOML)
    return source, rules, events


def _backtest(*args: str) -> Result:
    return CliRunner().invoke(cli, ["rules", "backtest", *args])


def test_a_jsonl_history_gives_a_report_and_a_summary(files: tuple[Path, Path, list[AgencyEvent]]) -> None:
    source, rules, events = files
    out = source.parent / "report" / "backtest.html"
    result = _backtest("--rules", str(rules), "--source", str(source), "--out", str(out))
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert 'data-table="gained"' in page and 'data-table="lost"' not in page  # none lost: "None."
    assert all(CHILDREN[n] in page for n in "AFWZ")
    assert f"{len(events)} events replayed" in result.output
    [line] = [line for line in result.output.splitlines() if "repeat_missing" in line]
    counts = [cell for cell in line.split() if cell.isdigit()]
    assert counts == ["1", "5", "0", "1", "4", "0"]  # current, proposed, same, changed, gained, lost
    assert f"wrote {out}" in result.output


def test_from_and_to_are_local_dates_with_to_inclusive(files: tuple[Path, Path, list[AgencyEvent]]) -> None:
    source, rules, _ = files
    out = source.parent / "backtest.html"
    # F alerts on day 170 (2025-06-20), W on day 105 (2025-04-16); A (Feb) and Z (July) are outside.
    result = _backtest("--rules", str(rules), "--source", str(source), "--out", str(out), "--from", "2025-04-11",
                       "--to", "2025-06-20")  # fmt: skip
    assert result.exit_code == 0, result.output
    page = out.read_text()
    gained = page.split('data-table="gained"', 1)[1].split("</table>", 1)[0]
    assert CHILDREN["F"] in gained and CHILDREN["W"] in gained
    assert CHILDREN["A"] not in gained and CHILDREN["Z"] not in gained
    assert "Period: 2025-04-11 00:00 to 2025-06-21 00:00 (Europe/London)" in page


def test_rejected_lines_are_listed_and_exit_1_with_the_report_written(
    files: tuple[Path, Path, list[AgencyEvent]],
) -> None:
    source, rules, _ = files
    with source.open("ab") as fh:
        fh.write(b'{"event_type": "missing.reported", "child_id": "9434765919"}\n')
    out = source.parent / "backtest.html"
    result = _backtest("--rules", str(rules), "--source", str(source), "--out", str(out))
    assert result.exit_code == 1, result.output
    assert out.is_file()
    assert "rejected line 19:" in result.output
    assert "9434765919" not in result.output  # the reason is masked like a dead letter's


def test_a_bad_rules_file_is_refused_with_every_problem(files: tuple[Path, Path, list[AgencyEvent]]) -> None:
    source, rules, _ = files
    rules.write_text('[repeat_missing]\nthreshold = "two"\n[no_such_rule]\nx = 1\n')
    result = _backtest("--rules", str(rules), "--source", str(source))
    assert result.exit_code == 2
    assert "repeat_missing.threshold" in result.output and "unknown rule 'no_such_rule'" in result.output


def test_an_empty_period_is_refused_with_what_the_source_holds(files: tuple[Path, Path, list[AgencyEvent]]) -> None:
    source, rules, _ = files
    result = _backtest("--rules", str(rules), "--source", str(source), "--from", "2030-01-01", "--to", "2030-12-31")
    assert result.exit_code == 2
    assert (
        "no events between 2030-01-01" in result.output and "the history holds events from 2025-01-06" in result.output
    )
    result = _backtest("--rules", str(rules), "--source", str(source), "--from", "2025-03-01", "--to", "2025-02-01")
    assert result.exit_code == 2 and "--to is before --from" in result.output


def test_an_unreadable_source_is_refused(files: tuple[Path, Path, list[AgencyEvent]], tmp_path: Path) -> None:
    _, rules, _ = files
    result = _backtest("--rules", str(rules), "--source", str(tmp_path / "missing.jsonl"))
    assert result.exit_code == 2 and "is neither `store` nor a file" in result.output
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    result = _backtest("--rules", str(rules), "--source", str(empty))
    assert result.exit_code == 2 and "the source holds no events" in result.output
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(b"\x00\xff not json\n")
    result = _backtest("--rules", str(rules), "--source", str(garbage))
    assert (
        result.exit_code == 2 and "the source holds no events" in result.output and "rejected line 1" in result.output
    )
