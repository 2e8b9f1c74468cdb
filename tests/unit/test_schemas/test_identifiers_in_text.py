"""Identifiers inside a field (`find_identifiers`, `mask_identifiers`): what each context finds, that random
tokens are left alone, and that the shortcut taken for ordinary source ids never hides an identifier."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.identifiers import (
    NHS_NUMBER,
    PERSON_NAME,
    POSTCODE,
    UPN,
    _fold,
    _scan,
    find_identifiers,
    mask_identifiers,
)
from tests.unit.test_schemas.reference import valid_nhs_numbers, valid_upns

SHORTCUT = settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def kinds(text: str, context: str = "code") -> list[str]:
    return [m.kind for m in find_identifiers(text, context=context)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("NHS9434765919", NHS_NUMBER),
        ("CT-943.476.5919", NHS_NUMBER),
        ("9 4 3 4 7 6 5 9 1 9", NHS_NUMBER),
        ("94-34-76-59-19", NHS_NUMBER),  # the whole value, hyphenated any way
        ("REF-\uff19\uff14\uff13\uff14\uff17\uff16\uff15\uff19\uff11\uff19", NHS_NUMBER),  # full-width digits
        ("UPN:A123456789012", UPN),
        ("HOME-LS1 4AP", POSTCODE),
        ("LS14AP", POSTCODE),
        ("JANE SMITH", PERSON_NAME),
        ("Smith, Jane", PERSON_NAME),
    ],
)
def test_identifiers_inside_a_code_field_are_found(value: str, kind: str) -> None:
    assert kinds(value) == [kind]


@pytest.mark.parametrize(
    "value",
    [
        "CPP-383-00001",
        "CON-2019-000123",
        "MPLS14AP",  # a postcode's shape glued to letters is not a postcode in a code
        "9434765910",  # the check digit is wrong
        "LCC-EDU",
        "3b319bc4df45a462753bda9c7a167cfc143200dd49a577b226ad32768b9a9717",  # a pseudonym
        "dc4a836a-e525-4c0c-ae66-d5bbe46f91f5",  # a UUID
        "",
    ],
)
def test_ordinary_codes_hold_no_identifier(value: str) -> None:
    assert kinds(value) == []


def test_masking_replaces_each_identifier_with_its_kind() -> None:
    masked, count = mask_identifiers("ref NHS9434765919 at LS1 4AP", context="opaque")
    assert masked == "ref NHS[masked: an NHS number] at [masked: a postcode]" and count == 2


def test_free_text_also_finds_addresses_phones_and_titled_names() -> None:
    assert kinds("Mrs Jones seen at 12 Acacia Avenue, mum on 0113 496 0000", context="text") == [
        PERSON_NAME,
        "a street address",
        "a phone number",
    ]


# The shortcut: a code field with fewer than ten digits, no word break and no inward code is not scanned. These
# strategies aim at its edges (nine or ten digits, digit-letter pairs, separators, Unicode digits) and check the
# answer is the full scan's.
_edgy_text = st.text(
    alphabet=st.sampled_from(list("0123456789ABDHLNSWZaxyz-_./ ,\u00b7\uff10\uff19\u0660\u00a0\u2007\t")),
    max_size=24,
)
_embedded = st.builds(
    lambda before, identifier, after: before + identifier + after,
    st.text(alphabet="ABCXYZ-_./0123", max_size=6),
    st.one_of(valid_nhs_numbers(), valid_upns(), st.sampled_from(["LS1 4AP", "LS14AP", "M1 1AE", "Jane Smith"])),
    st.text(alphabet="ABCXYZ-_./0123", max_size=6),
)


@SHORTCUT
@given(st.one_of(_edgy_text, _embedded, st.text(max_size=30)))
def test_the_shortcut_never_changes_the_answer(text: str) -> None:
    assert find_identifiers(text, context="code") == (_scan(text, _fold(text), "code") if text else [])


@SHORTCUT
@given(st.one_of(valid_nhs_numbers(), valid_upns()))
def test_an_identifier_inside_a_source_id_is_always_found(identifier: str) -> None:
    assert kinds(f"REF-{identifier}") in ([NHS_NUMBER], [UPN])
