import hashlib
import hmac

import pytest
from click.testing import CliRunner

from producers.pseudonymise import Pseudonymiser, normalise
from safeguard.cli import cli
from schemas.errors import ConfigError, PseudonymKeyMissing
from schemas.identifiers import is_pseudonym

KEY = "partnership-shared-secret-0001"


def test_pseudonym_is_keyed_hmac_sha256_of_the_normalised_identifier() -> None:
    expected = hmac.new(KEY.encode(), b"9434765919", hashlib.sha256).hexdigest()
    assert Pseudonymiser.from_secret(KEY).pseudonym("943 476 5919") == expected
    assert is_pseudonym(expected)


def test_normalisation_makes_formatting_irrelevant() -> None:
    p = Pseudonymiser.from_secret(KEY)
    assert p.pseudonym(" 943-476-5919 ") == p.pseudonym("9434765919")
    assert p.pseudonym("a123") == p.pseudonym("A123")
    assert normalise(" ab-c d ") == "ABCD"


def test_different_keys_give_unlinkable_pseudonyms() -> None:
    a = Pseudonymiser.from_secret(KEY).pseudonym("9434765919")
    b = Pseudonymiser.from_secret(KEY + "x").pseudonym("9434765919")
    assert a != b


def test_missing_or_short_key_is_a_clear_error() -> None:
    with pytest.raises(PseudonymKeyMissing, match="SAFEGUARD_PSEUDONYM_KEY"):
        Pseudonymiser.from_secret(None)
    with pytest.raises(ConfigError, match="too short"):
        Pseudonymiser.from_secret("short")


def test_key_never_shown() -> None:
    assert KEY not in repr(Pseudonymiser.from_secret(KEY))


def test_empty_identifier_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        Pseudonymiser.from_secret(KEY).pseudonym("  ")


def test_cli_values_stdin_and_csv(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEGUARD_PSEUDONYM_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    p = Pseudonymiser.from_secret(KEY)
    runner = CliRunner()
    result = runner.invoke(cli, ["pseudonymise", "9434765919", "H-1"])
    assert result.exit_code == 0, result.output
    assert result.output.split() == [p.pseudonym("9434765919"), p.pseudonym("H-1")]

    result = runner.invoke(cli, ["pseudonymise"], input="9434765919\n\nH-1\n")
    assert result.output.split() == [p.pseudonym("9434765919"), p.pseudonym("H-1")]

    src = tmp_path / "in.csv"
    src.write_text("child_id,note\n9434765919,keep\n,empty stays empty\n")
    out = tmp_path / "out.csv"
    result = runner.invoke(cli, ["pseudonymise", "--csv", str(src), "--columns", "child_id", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines() == ["child_id,note", f"{p.pseudonym('9434765919')},keep", ",empty stays empty"]

    result = runner.invoke(cli, ["pseudonymise", "--csv", str(src), "--columns", "nhs"])
    assert result.exit_code == 2 and "no column nhs" in result.output


def test_cli_without_key_says_what_to_set(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["pseudonymise", "x"])
    assert result.exit_code == 2
    assert "SAFEGUARD_PSEUDONYM_KEY" in result.output
    assert "Traceback" not in result.output
