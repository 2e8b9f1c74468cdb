"""`safeguard gateway add-agency | add-key | revoke-key | list`: one command gives an agency its scope and key."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.principals import load_principals
from safeguard.cli import cli


def test_add_agency_prints_the_key_once_and_stores_only_its_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "principals.toml"
    monkeypatch.setenv("SAFEGUARD_GATEWAY__PRINCIPALS_FILE", str(path))
    runner = CliRunner()
    added = runner.invoke(
        cli,
        ["gateway", "add-agency", "ltht-ed", "--agency-type", "health", "--agency-code", "LTHT",
         "--event-type", "contact.received"],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    [key] = re.findall(r"sgk_[0-9a-f]+_[A-Za-z0-9_-]+", added.output)
    assert key not in path.read_text()
    principal = load_principals(path).by_name["ltht-ed"]
    assert (principal.agency_type, principal.agency_codes, principal.la_codes) == ("health", ("LTHT",), ("383",))
    assert principal.event_types == ("contact.received",)
    assert load_principals(path).check_key(key).principal == principal

    again = runner.invoke(cli, ["gateway", "add-agency", "ltht-ed", "--agency-type", "health", "--agency-code", "X"])
    assert again.exit_code == 2
    assert "already exists" in again.output

    rotated = runner.invoke(cli, ["gateway", "add-key", "ltht-ed"])
    assert rotated.exit_code == 0
    first_id = principal.keys[0].id
    revoked = runner.invoke(cli, ["gateway", "revoke-key", "ltht-ed", first_id])
    assert revoked.exit_code == 0, revoked.output
    assert "revoked" in (load_principals(path).check_key(key).refusal or "")
    listed = json.loads(runner.invoke(cli, ["gateway", "list"]).output)
    assert [k["revoked"] is not None for k in listed[0]["keys"]] == [True, False]


def test_a_bad_scope_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEGUARD_GATEWAY__PRINCIPALS_FILE", str(tmp_path / "p.toml"))
    result = CliRunner().invoke(
        cli, ["gateway", "add-agency", "x", "--agency-type", "police", "--agency-code", "WYP", "--event-type", "nope"]
    )
    assert result.exit_code == 2
    assert "unknown event types ['nope']" in result.output
    assert not (tmp_path / "p.toml").exists()
