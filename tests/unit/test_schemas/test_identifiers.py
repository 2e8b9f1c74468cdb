"""The raw-identifier guard: NHS numbers, UPNs and names are recognised; pseudonyms are not mistaken for them."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.identifiers import is_nhs_number, is_pseudonym, is_upn, looks_like_name, raw_identifier_kind
from tests.unit.test_schemas.reference import (
    UPN_CHECK_LETTERS,
    nhs_check_digit,
    nine_digits,
    upn_check_letter,
    valid_nhs_numbers,
    valid_upns,
)

FAST = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# --- NHS numbers ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["9434765919", "4010232137", "943 476 5919", "943-476-5919", " 401 023 2137 "])
def test_known_valid_nhs_numbers(number: str) -> None:
    assert is_nhs_number(number)
    assert raw_identifier_kind(number) == "an NHS number"


@pytest.mark.parametrize(
    "number",
    [
        "9434765910",  # wrong check digit
        "9434765918",
        "4010232138",
        "943476591",  # nine digits
        "94347659190",  # eleven digits
        "943476591X",
        "",
        "abcdefghij",
        "²²²²²²²²²²",  # Unicode digits that int() refuses: False, not a crash
    ],
)
def test_invalid_nhs_numbers(number: str) -> None:
    assert not is_nhs_number(number)


def test_check_digit_ten_is_never_valid() -> None:
    prefixes = [p for p in (f"{n:09d}" for n in range(100_000_000, 100_000_200)) if nhs_check_digit(p) is None]
    assert prefixes, "the range must hold prefixes whose check digit would be 10"
    for prefix in prefixes:
        assert not any(is_nhs_number(prefix + str(d)) for d in range(10))


@FAST
@given(nine_digits, st.sampled_from("0123456789"))
def test_nhs_number_agrees_with_the_reference(first_nine: str, last: str) -> None:
    assert is_nhs_number(first_nine + last) == (nhs_check_digit(first_nine) == int(last))


@FAST
@given(
    valid_nhs_numbers(), st.sampled_from(["{}{}{} {}{}{} {}{}{}{}", "{}{}{}-{}{}{}-{}{}{}{}", "{}{}{}{}{}{}{}{}{}{}"])
)
def test_valid_nhs_numbers_in_any_usual_layout(number: str, layout: str) -> None:
    assert is_nhs_number(layout.format(*number))


# --- UPNs ----------------------------------------------------------------------------------------------------------


def test_upn_worked_examples() -> None:
    # 1*2 + 2*3 + ... + 2*13 over "123456789012" = 368 = 16 * 23, remainder 0 -> A
    assert upn_check_letter("123456789012") == "A"
    assert is_upn("A123456789012")
    # temporary UPN: final letter A counts 0, so 342; 342 mod 23 = 20 -> X
    assert upn_check_letter("12345678901A") == "X"
    assert is_upn("X12345678901A")
    assert raw_identifier_kind("X12345678901A") == "a Unique Pupil Number (UPN)"


@pytest.mark.parametrize(
    "value",
    [
        "B123456789012",  # wrong check letter
        "Y12345678901A",
        "A12345678901",  # 12 characters
        "A1234567890123",  # 14 characters
        "I123456789012",  # I, O and S are never check letters
        "O123456789012",
        "S123456789012",
        "X12345678901I",  # nor temporary letters
        "A1234567890A2",  # a letter only in the last position
        "A²²²²²²²²²²²²",
        "",
    ],
)
def test_invalid_upns(value: str) -> None:
    assert not is_upn(value)


def test_upn_case_and_surrounding_space_do_not_hide_it() -> None:
    assert is_upn("a123456789012") and is_upn(" A123456789012 ") and is_upn("x12345678901a")


@FAST
@given(valid_upns())
def test_generated_upns_are_recognised(upn: str) -> None:
    assert is_upn(upn)
    wrong = next(c for c in UPN_CHECK_LETTERS if c != upn[0])
    assert not is_upn(wrong + upn[1:])


@FAST
@given(st.text(alphabet=UPN_CHECK_LETTERS + "0123456789IOS", min_size=13, max_size=13))
def test_upn_agrees_with_the_reference(value: str) -> None:
    shaped = value[0] in UPN_CHECK_LETTERS and value[1:12].isdigit() and value[12] in UPN_CHECK_LETTERS + "0123456789"
    assert is_upn(value) == (shaped and upn_check_letter(value[1:]) == value[0])


# --- names ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Jane Smith", "Mary-Ann O'Neil", "Sean O\u2019Brien", "Ronald McDonald", "Zoë Smith", "Anna Maria Jones"]
)
def test_names_are_recognised(name: str) -> None:
    assert looks_like_name(name)
    assert raw_identifier_kind(name) == "a person's name"


@pytest.mark.parametrize(
    "value", ["Jane", "jane smith", "JANE SMITH", "MP-2025-00417", "WYP-DA-2025-7781", "CPP 4410", "NHS Trust", ""]
)
def test_non_names(value: str) -> None:
    assert not looks_like_name(value)


# --- pseudonyms ----------------------------------------------------------------------------------------------------


def test_pseudonym_format() -> None:
    assert is_pseudonym("0" * 64)
    assert is_pseudonym("ab" * 32)
    assert not is_pseudonym("AB" * 32)  # lowercase only
    assert not is_pseudonym("a" * 63)
    assert not is_pseudonym("a" * 65)
    assert not is_pseudonym("g" * 64)
    assert not is_pseudonym("a" * 64 + "\n")  # `$` in a Python regex also matches before a final newline


@FAST
@given(st.binary(min_size=1, max_size=40), st.sampled_from(["9434765919", "A123456789012", "Jane Smith"]))
def test_hmac_pseudonyms_are_pseudonyms_and_not_raw_identifiers(key: bytes, source_id: str) -> None:
    pseudonym = hmac.new(key, source_id.encode(), hashlib.sha256).hexdigest()
    assert is_pseudonym(pseudonym)
    assert raw_identifier_kind(pseudonym) is None
