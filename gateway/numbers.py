"""Recipient numbers as clients type them, normalised to E.164 with phonenumbers."""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable

import phonenumbers

from gateway.mcc import region_of_imsi

_SEPARATORS = re.compile(r"[\s\-().\u00a0/]")
MAX_SHORT_CODE_DIGITS = 6
_NON_GEOGRAPHIC = "001"  # phonenumbers' region of country codes that belong to no country


class InvalidNumberError(ValueError):
    """A recipient that cannot be a phone number."""


class NoDialCodeError(InvalidNumberError):
    """A national number (leading 0) while no default dial code is known."""


def normalize(raw: str, default_dial_code: str = "") -> str:
    """Return `raw` as E.164 (+CC...); a leading 0 takes the default dial code; short codes stay."""
    number = _SEPARATORS.sub("", raw.strip())
    if number.startswith("00"):
        number = "+" + number[2:]
    if not number or not number.lstrip("+").isdigit():
        raise InvalidNumberError(f"not a phone number: {_mask(raw)}")
    if not number.startswith("+"):
        if len(number) <= MAX_SHORT_CODE_DIGITS:
            if not number.isascii():  # "¹²" passes isdigit() but no PDU can carry it
                raise InvalidNumberError(f"not a phone number: {_mask(raw)}")
            return number  # operator short code, sent as a national number
        if number.startswith("0"):
            code = default_dial_code.strip().lstrip("+")
            if not code.isdigit():
                raise NoDialCodeError(
                    f"{_mask(raw)} is national (leading 0) but no default dial code is known"
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


@functools.lru_cache(maxsize=1024)  # asked at every send of an account without a dial code
def sim_dial_code(msisdn: str | None, imsi: str | None) -> str:
    """The country calling code (digits) of a SIM: from its number when that is international,
    else from the country of its IMSI's network (MCC); '' when neither tells."""
    number = _SEPARATORS.sub("", msisdn or "")
    if number.startswith("00"):
        number = "+" + number[2:]
    if number.startswith("+"):
        try:
            parsed = phonenumbers.parse(number, None)
        except phonenumbers.NumberParseException:
            parsed = None
        country = parsed.country_code if parsed is not None else None
        if (
            parsed is not None
            and country is not None
            and phonenumbers.is_possible_number(parsed)
            # +882/+883 (global IoT and satellite SIMs) and the like belong to no country
            and phonenumbers.region_code_for_country_code(country) != _NON_GEOGRAPHIC
        ):
            return str(country)
    region = region_of_imsi(imsi)
    code = phonenumbers.country_code_for_region(region) if region else 0
    return str(code) if code else ""


def sims_dial_code(sims: Iterable[tuple[str | None, str | None]]) -> str:
    """The dial code of most of these (msisdn, imsi) SIMs; a tie goes to the first SIM's
    country, and '' means no SIM tells its country."""
    codes = [code for msisdn, imsi in sims if (code := sim_dial_code(msisdn, imsi))]
    if not codes:
        return ""
    counts = Counter(codes)
    most = max(counts.values())
    return next(code for code in codes if counts[code] == most)


def _mask(raw: str) -> str:
    """Hide all but the last three digits, so errors can be logged."""
    return "*" * max(len(raw) - 3, 0) + raw[-3:]


def mask(number: str) -> str:
    """A number as it may appear in INFO logs."""
    return _mask(number)
