"""Segmentation against /work/shared/vectors/splits.jsonl (python-messaging, AOSP, ModemManager)."""

from __future__ import annotations

from typing import Any

import pytest

from modem.pdu import (
    SmsSubmit,
    build_submits,
    count,
    decode_pdu,
    encode_pdu,
    join_parts,
    segment,
)
from tests.pdu.test_vectors import load

SPLITS = load("splits.jsonl")


@pytest.mark.parametrize("vector", SPLITS, ids=[v["id"] for v in SPLITS])
def test_split_matches_expectation(vector: dict[str, Any]) -> None:
    seg = segment(vector["text"])
    assert str(seg.encoding) == vector["encoding"]
    assert seg.parts == vector["parts"]
    if "segments" in vector:
        assert list(seg.segments) == vector["segments"]
    assert "".join(seg.segments) == vector["text"]


@pytest.mark.parametrize("vector", SPLITS, ids=[v["id"] for v in SPLITS])
def test_count_agrees_with_the_split(vector: dict[str, Any]) -> None:
    result = count(vector["text"])
    assert str(result.encoding) == vector["encoding"]
    assert result.parts == vector["parts"]
    assert result.characters == len(vector["text"])
    assert result.remaining >= 0


@pytest.mark.parametrize("vector", SPLITS, ids=[v["id"] for v in SPLITS])
def test_built_parts_encode_within_limits_and_join_back(vector: dict[str, Any]) -> None:
    submits = build_submits("+15555551234", vector["text"], reference=0x42)
    assert len(submits) == vector["parts"]
    decoded: list[SmsSubmit] = []
    for seq, submit in enumerate(submits, start=1):
        encoded = encode_pdu(submit)
        tpdu = decode_pdu(encoded.hex).tpdu
        assert isinstance(tpdu, SmsSubmit)
        assert tpdu == submit
        assert _user_data_octets(tpdu) <= 140
        assert encoded.tpdu_length == len(tpdu.encode())
        concat = tpdu.user_data.header.concatenation if tpdu.user_data.header else None
        if len(submits) > 1:
            assert concat is not None
            assert (concat.reference, concat.total, concat.sequence) == (0x42, len(submits), seq)
        else:
            assert concat is None
        decoded.append(tpdu)
    text, _, encoding = join_parts(decoded)
    assert text == vector["text"]
    assert str(encoding) == vector["encoding"]


def _user_data_octets(tpdu: SmsSubmit) -> int:
    encoded = tpdu.encode()
    # first octet, MR, DA (2 + digits), PID, DCS, no VP, then UDL: the rest is user data.
    da_len = 2 + (len(tpdu.destination.number) + 1) // 2
    return len(encoded) - (2 + da_len + 2 + 1)


def test_escape_never_ends_a_part() -> None:
    # 152 plain septets then a euro sign: the escape would be septet 153 -- it moves whole.
    seg = segment("x" * 152 + "€" + "y" * 10)
    assert seg.segments[0] == "x" * 152
    assert seg.segments[1].startswith("€")
    assert seg.units[0] == 152


def test_surrogate_pair_never_ends_a_part() -> None:
    seg = segment("a" * 66 + "😀" + "b" * 10)
    assert seg.segments[0] == "a" * 66
    assert seg.segments[1].startswith("😀")


def test_16bit_reference_parts_are_one_unit_shorter() -> None:
    assert segment("x" * 161, ref16=True).units[0] == 152
    assert segment("x" * 161).units[0] == 153
    assert segment("я" * 71, ref16=True).units[0] == 66
    assert segment("я" * 71).units[0] == 67


def test_count_reports_remaining_in_last_part() -> None:
    result = count("x" * 161)
    assert (result.parts, result.units, result.remaining) == (2, 161, 153 - 8)
    assert count("").remaining == 160
    assert count("€").units == 2
    assert count("😀").units == 2
    assert count("😀").remaining == 68
