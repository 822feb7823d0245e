"""Recipient numbers as clients type them, normalised to E.164 with phonenumbers."""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, region_code_for_country_code

from gateway.mcc import region_of_imsi

_SEPARATORS = re.compile(r"[\s\-().\u00a0/]")
MAX_SHORT_CODE_DIGITS = 6
_NON_GEOGRAPHIC = "001"  # phonenumbers' region of country codes that belong to no country
# The fast path covers what bulk sends are made of: "+", a country code, a national number.
_FAST_DIGITS = range(8, 16)


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
    fast = _fast_e164(number)
    if fast is not None:
        return fast
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumberError(f"not a phone number: {_mask(raw)} ({exc})") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidNumberError(f"impossible number for its country: {_mask(raw)}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What phonenumbers would do with `+<cc><national>` for one country calling code."""

    national_prefix: re.Pattern[str] | None
    transforms: bool  # the national prefix may rewrite the number (e.g. Argentina's 15)
    lengths: frozenset[int]  # possible national lengths, local-only ones included


@functools.cache
def _plan(country_code: int) -> _Plan:
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(
        country_code, region_code_for_country_code(country_code)
    )
    assert metadata is not None  # a key of COUNTRY_CODE_TO_REGION_CODE always has metadata
    general = metadata.general_desc
    assert general is not None  # every region's metadata has a general description
    lengths = {n for n in (*general.possible_length, *general.possible_length_local_only) if n > 0}
    prefix = metadata.national_prefix_for_parsing
    return _Plan(
        re.compile(prefix) if prefix else None,
        bool(metadata.national_prefix_transform_rule),
        frozenset(lengths),
    )


def _fast_e164(number: str) -> str | None:
    """`number` ("+" and digits) checked as phonenumbers' parse + is_possible_number would,
    without its generic text scanning (~10x faster: bulk campaigns parse 100,000 numbers); None
    when the number needs the full treatment (a national prefix or leading zero after the
    country code, an unusual length). The result is the input: E.164 of "+digits" is itself."""
    digits = number[1:]
    if len(digits) not in _FAST_DIGITS or digits[0] == "0":
        return None
    for size in (1, 2, 3):
        country_code = int(digits[:size])
        if country_code in COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    national = digits[size:]
    if national.startswith("0"):
        return None  # Italian-style leading zeros and national prefixes: let phonenumbers decide
    plan = _plan(country_code)
    if plan.national_prefix is not None:
        match = plan.national_prefix.match(national)
        if match is not None and (match.end() > 0 or plan.transforms):
            return None  # phonenumbers might strip or rewrite a national prefix here
    if len(national) not in plan.lengths:
        raise InvalidNumberError(f"impossible number for its country: {_mask(number)}")
    return number


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


def mask_iccid(iccid: str) -> str:
    """An ICCID as an unauthenticated page may show it: the last five digits (four and the Luhn
    check digit) tell the SIMs of one box apart, the rest would identify the card to a stranger
    (a SIM-swap request quotes the full ICCID)."""
    return "*" * max(len(iccid) - 5, 0) + iccid[-5:]
