"""Pure parts of the acknowledgement page: which notes are refused (and what the refusal says), and how the
alerts page reads its query."""

from __future__ import annotations

import pytest

from notify.web import ViewQuery, _error_text, identifier_kinds


def full_width(text: str) -> str:
    """`text` with its ASCII digits as full-width digits (U+FF10…U+FF19)."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in text)


@pytest.mark.parametrize(
    ("note", "kind"),
    [
        ("NHS 943 476 5919", "an NHS number"),
        ("NHS9434765919", "an NHS number"),
        ("943.476.5919", "an NHS number"),
        (full_width("9434765919"), "an NHS number"),
        (full_width("nhs 943 476 5919 seen"), "an NHS number"),
        ("visited Jane at 12 Acacia Avenue", "a street address"),
        ("Mrs Jones seen at home", "a person's name"),
        ("UPN A123456789012", "a Unique Pupil Number (UPN)"),
        ("family moved to LS1 4AP", "a postcode"),
        ("mum on 0113 496 0000", "a phone number"),
    ],
)
def test_identifying_notes_name_the_kind_found(note: str, kind: str) -> None:
    assert kind in identifier_kinds(note)


def test_a_note_with_a_name_and_an_address_names_both_kinds_once() -> None:
    kinds = identifier_kinds("Mr John Smith, 12 Acacia Avenue and 14 Acacia Avenue")
    assert kinds == ["a person's name", "a street address"]


@pytest.mark.parametrize(
    "note",
    [
        "strategy discussion booked for Monday",
        "contact made with school",
        "called the police, two officers attended at 10:30",
        "",
        "seen; pseudonym 3f" + "a" * 62 + " checked",
    ],
)
def test_ordinary_notes_are_accepted(note: str) -> None:
    assert identifier_kinds(note) == []


def test_the_refusal_names_the_kinds_without_the_value() -> None:
    view = ViewQuery.parse({"error": "note", "kinds": "nhs,address"})
    text = _error_text(view)
    assert "an NHS number and a street address" in text and "must not identify anyone" in text
    assert "an identifier" in _error_text(ViewQuery.parse({"error": "note", "kinds": "9434765919"}))


@pytest.mark.parametrize(
    ("query", "page", "message"),
    [
        ({}, None, None),
        ({"page": "3"}, 3, None),
        ({"page": "0"}, 0, None),
        ({"page": "-1"}, None, None),
        ({"page": "abc"}, None, None),
        ({"page": "\u0663"}, None, None),  # an Arabic-Indic digit: not a page number
        ({"page": "9" * 40}, None, None),
        ({"page": "2", "m": "17"}, 2, 17),
        ({"m": "1e9"}, None, None),
    ],
)
def test_the_query_is_validated(query: dict[str, str], page: int | None, message: int | None) -> None:
    view = ViewQuery.parse(query)
    assert (view.page, view.message) == (page, message)


def test_unknown_errors_and_malformed_ids_are_dropped() -> None:
    view = ViewQuery.parse({"error": "<script>", "acked": "not-an-id", "kinds": "nhs,<b>"})
    assert (view.error, view.acked, view.kinds) == ("", "", ("nhs",))
