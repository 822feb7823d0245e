"""Recipient numbers as clients type them, normalised to E.164 with phonenumbers."""

from __future__ import annotations

import re

import phonenumbers

_SEPARATORS = re.compile(r"[\s\-().\u00a0/]")
MAX_SHORT_CODE_DIGITS = 6


class InvalidNumberError(ValueError):
    """A recipient that cannot be a phone number."""


def normalize(raw: str, default_dial_code: str = "") -> str:
    """Return `raw` as E.164 (+CC...); a leading 0 takes the default dial code; short codes stay."""
    number = _SEPARATORS.sub("", raw.strip())
    if number.startswith("00"):
        number = "+" + number[2:]
    if not number or not number.lstrip("+").isdigit():
        raise InvalidNumberError(f"not a phone number: {_mask(raw)}")
    if not number.startswith("+"):
        if len(number) <= MAX_SHORT_CODE_DIGITS:
            return number  # operator short code, sent as a national number
        if number.startswith("0"):
            code = default_dial_code.strip().lstrip("+")
            if not code.isdigit():
                raise InvalidNumberError(
                    f"{_mask(raw)} is national but no default dial code is set"
                )
            number = f"+{code}{number.lstrip('0')}"
        else:
            number = "+" + number
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumberError(f"not a phone number: {_mask(raw)} ({exc})") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidNumberError(f"impossible number for its country: {_mask(raw)}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _mask(raw: str) -> str:
    """Hide all but the last three digits, so errors can be logged."""
    return "*" * max(len(raw) - 3, 0) + raw[-3:]


def mask(number: str) -> str:
    """A number as it may appear in INFO logs."""
    return _mask(number)
