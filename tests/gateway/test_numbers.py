"""Recipient normalisation."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.numbers import InvalidNumberError, mask, normalize


@pytest.mark.parametrize(
    ("raw", "dial", "expected"),
    [
        ("+44 7700 900123", "", "+447700900123"),
        ("07700-900-123", "44", "+447700900123"),
        ("07700900123", "+44", "+447700900123"),
        ("0044 7700 900123", "", "+447700900123"),
        ("447700900123", "1", "+447700900123"),  # no leading zero: already international
        ("(555) 123-0001", "", "+5551230001"),
        ("88888", "", "88888"),  # short code
    ],
)
def test_normalize(raw: str, dial: str, expected: str) -> None:
    assert normalize(raw, dial) == expected


@pytest.mark.parametrize(
    ("raw", "dial", "message"),
    [
        ("07700900123", "", "no default dial code"),
        ("hello", "44", "not a phone number"),
        ("", "44", "not a phone number"),
        ("+44 12", "", "impossible number"),
        ("+999123456789", "", "not a phone number|impossible"),
        ("¹²", "", "not a phone number"),  # isdigit() says yes; no PDU address can hold it
    ],
)
def test_rejects(raw: str, dial: str, message: str) -> None:
    with pytest.raises(InvalidNumberError, match=message):
        normalize(raw, dial)


def test_errors_do_not_leak_the_full_number() -> None:
    with pytest.raises(InvalidNumberError) as info:
        normalize("07700900123", "")
    assert "07700900123" not in str(info.value)
    assert mask("+447700900123") == "**********123"


def _reference(number: str) -> str | None:
    """phonenumbers' own verdict on "+digits", the slow way (None: not a possible number)."""
    import phonenumbers

    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _ours(number: str) -> str | None:
    try:
        return normalize(number)
    except InvalidNumberError:
        return None


_CODES = sorted(__import__("phonenumbers").COUNTRY_CODE_TO_REGION_CODE)


@settings(max_examples=3000, deadline=None, database=None)
@given(
    code=st.sampled_from(_CODES),
    national=st.text(alphabet="0123456789", min_size=0, max_size=14),
)
def test_the_fast_path_agrees_with_phonenumbers(code: int, national: str) -> None:
    number = f"+{code}{national}"
    assert _ours(number) == _reference(number), number


@pytest.mark.parametrize(
    "number",
    ["+61400123456", "+6140012345", "+15005550000", "+11005550000", "+390612345678",
     "+4407700900123", "+5491123456789", "+541115123456", "+8613800138000", "+80012345678"],
)  # fmt: skip
def test_fast_path_edge_cases_agree(number: str) -> None:
    assert _ours(number) == _reference(number)
