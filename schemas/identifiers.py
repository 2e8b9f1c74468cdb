"""Pseudonyms and the guard against raw identifiers (NHS numbers, UPNs, names) entering the stream."""

from __future__ import annotations

import itertools
import re

PSEUDONYM_PATTERN = r"^[0-9a-f]{64}$"
_PSEUDONYM_RE = re.compile(PSEUDONYM_PATTERN)
_SEPARATORS = re.compile(r"[\s-]")
_UPN_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"  # A-Z without I, O and S, as the DfE check letter table
_NAME_PUNCTUATION = "'\u2019-"


def is_pseudonym(value: str) -> bool:
    return bool(_PSEUDONYM_RE.fullmatch(value))  # not match(): `$` also matches before a final newline


def is_nhs_number(value: str) -> bool:
    """True for a 10-digit NHS number (spaces or hyphens allowed) whose modulus-11 check digit is valid."""
    digits = _SEPARATORS.sub("", value)
    if len(digits) != 10 or not digits.isdecimal():  # isdigit() accepts '²', which int() refuses
        return False
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(digits[9])


def is_upn(value: str) -> bool:
    """True for a 13-character Unique Pupil Number with a valid DfE check letter (permanent or temporary)."""
    upn = value.strip().upper()
    if len(upn) != 13 or upn[0] not in _UPN_LETTERS or not upn[1:12].isdecimal():
        return False
    last = upn[12]
    if last.isdecimal():
        last_value = int(last)
    elif last in _UPN_LETTERS:
        last_value = _UPN_LETTERS.index(last)
    else:
        return False
    values = [int(c) for c in upn[1:12]] + [last_value]
    total = sum(v * w for v, w in zip(values, range(2, 14), strict=True))
    return _UPN_LETTERS[total % 23] == upn[0]


def looks_like_name(value: str) -> bool:
    """Two or more capitalised words of letters only: 'Jane Smith', "Mary-Ann O'Neil", 'Zoë McDonald'."""
    words = value.split()
    return len(words) >= 2 and all(_is_name_word(w) for w in words)


def _is_name_word(word: str) -> bool:
    """A capital, then letters, apostrophes or hyphens, with no two capitals in a row (so not 'NHS' or 'JANE')."""
    return (
        len(word) >= 2
        and word[0].isupper()
        and all(c.isalpha() or c in _NAME_PUNCTUATION for c in word)
        and not any(a.isupper() and b.isupper() for a, b in itertools.pairwise(word))
    )


def raw_identifier_kind(value: str) -> str | None:
    """Name the kind of raw personal identifier `value` looks like, or None."""
    if is_nhs_number(value):
        return "an NHS number"
    if is_upn(value):
        return "a Unique Pupil Number (UPN)"
    if looks_like_name(value):
        return "a person's name"
    return None
