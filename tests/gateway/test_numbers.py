"""Recipient normalisation."""

import pytest

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
