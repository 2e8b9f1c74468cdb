"""Independent reference implementations of the NHS number and UPN checks, written from the published algorithms.

They deliberately share no code with schemas/identifiers.py, so a test comparing the two finds a slip in either.
"""

from __future__ import annotations

from hypothesis import strategies as st


def nhs_check_digit(first_nine: str) -> int | None:
    """NHS Digital modulus 11: weights 10..2 over digits 1..9; 11 - (sum mod 11); 11 -> 0; 10 -> no valid number."""
    weighted = sum(int(d) * (10 - i) for i, d in enumerate(first_nine))
    check = 11 - (weighted % 11)
    return {11: 0, 10: None}.get(check, check)


UPN_CHECK_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"  # DfE table: remainder 0..22, no I, O or S


def upn_check_letter(last_twelve: str) -> str:
    """DfE UPN check letter: characters 2..13 weighted 2..13, a letter in position 13 counts as its table index."""
    total = 0
    for weight, char in zip(range(2, 14), last_twelve, strict=True):
        total += weight * (int(char) if char.isdigit() else UPN_CHECK_LETTERS.index(char))
    return UPN_CHECK_LETTERS[total % 23]


nine_digits = st.text(alphabet="0123456789", min_size=9, max_size=9)


def valid_nhs_numbers() -> st.SearchStrategy[str]:
    return nine_digits.filter(lambda s: nhs_check_digit(s) is not None).map(lambda s: s + str(nhs_check_digit(s)))


def valid_upns() -> st.SearchStrategy[str]:
    permanent_or_temporary = st.one_of(
        st.text(alphabet="0123456789", min_size=12, max_size=12),
        st.builds(
            lambda d, c: d + c,
            st.text(alphabet="0123456789", min_size=11, max_size=11),
            st.sampled_from(UPN_CHECK_LETTERS),
        ),
    )
    return permanent_or_temporary.map(lambda rest: upn_check_letter(rest) + rest)
