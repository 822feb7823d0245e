"""modem.pdu against the independent vectors in /work/shared/vectors/pdus.jsonl (the oracle)."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from modem.pdu import (
    Anomaly,
    AnomalyCode,
    PduError,
    Reassembler,
    SmsDeliver,
    SmsSubmit,
    build_submits,
    decode_pdu,
    encode_pdu,
    join_parts,
    to_fields,
)

VECTORS_DIR = Path(__file__).resolve().parents[3] / "shared" / "vectors"
if not VECTORS_DIR.is_dir():  # the repo may be cloned elsewhere; the shared inputs stay put
    VECTORS_DIR = Path("/work/shared/vectors")


def load(name: str) -> list[dict[str, Any]]:
    """The vectors of one .jsonl file, in file order."""
    with (VECTORS_DIR / name).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


PDUS = load("pdus.jsonl")
VALID = [v for v in PDUS if v["kind"] != "invalid"]
INVALID = [v for v in PDUS if v["kind"] == "invalid"]

# Fields of a vector we deliberately do not reproduce, with the reason, per vector id.
DISAGREE: dict[str, dict[str, str]] = {
    "cts-createfrompdu-1": {
        "status": "SMS-DELIVER has no TP-ST; the CTS test asserts Android's getStatus(), which "
        "returns 0 for any message that is not a status report. Asserted below instead: "
        "to_fields() has no status key for a deliver.",
    },
}

# Vectors whose bytes we decode but do not write back identically, and why. Every other valid
# vector must re-encode to exactly its original hex.
NON_CANONICAL: dict[str, str] = {
    "mm-multipart-1": "sender left non-zero fill bits after the UDH; we write zero fill bits",
    "mm-multipart-2": "sender left non-zero fill bits after the UDH; we write zero fill bits",
    "gsmmodem-dec-concat-1of1": "non-zero fill bits after the UDH",
    "smslib-jumpstyle-1": "non-zero fill bits after the UDH",
    "smslib-jumpstyle-2": "non-zero fill bits after the UDH",
    "smslib-jumpstyle-3": "non-zero fill bits after the UDH",
    "gsmmodem-dec-sr-zte-broken": "SMSC TOA 0x97 has reserved NPI 7, which we read as unknown",
    "messaging-deliver-howareyou": "time zone octet 0x08 is minus zero; we write +00 (0x00)",
    "aosp-cingular-mwi-set": "odd-length OA padded with 0 instead of F",
    "smslib-status-report-1": "non-BCD time zone 0xE1 is read as UTC and written as 0x00",
    "smslib-status-report-2": "non-BCD time zone 0xE1 is read as UTC and written as 0x00",
    "smspdudecoder-truncated-ucs2": "user data is shorter than TP-UDL; re-encoded as it is",
    "gammu-at-sms-02": "non-zero spare bits after the last septet",
    "gammu-at-sms-14": "octets after the last septet TP-UDL counts",
    "gammu-at-sms-36": "TP-PI 00 followed by a spare octet; we write no TP-PI when it is empty",
    "gammu-at-sms-39": "octets after the last septet TP-UDL counts",
}

_TWINS = {
    "scts_utc": ("scts", "utc"),
    "scts_epoch_ms": ("scts", "epoch_ms"),
    "scts_local_naive": ("scts", "local_naive"),
    "discharge_utc": ("discharge_time", "utc"),
    "discharge_epoch_ms": ("discharge_time", "epoch_ms"),
    "discharge_local_naive": ("discharge_time", "local_naive"),
}


def field_value(fields: dict[str, Any], key: str) -> Any:
    """A vector field from to_fields() output, deriving the timestamp twins from the ISO value."""
    if key in _TWINS:
        base, form = _TWINS[key]
        when = datetime.fromisoformat(fields[base])
        if form == "utc":
            return when.astimezone(UTC).replace(tzinfo=None).isoformat()
        if form == "epoch_ms":
            return int(when.timestamp() * 1000)
        return when.replace(tzinfo=None).isoformat()
    return fields.get(key, "<missing>")


def _decode(vector: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return to_fields(decode_pdu(vector["pdu"], vector["smsc_included"], **kwargs))


def _check(vector: dict[str, Any], fields: dict[str, Any], keys: list[str]) -> None:
    skip = DISAGREE.get(vector["id"], {})
    expected = vector["expected"]
    for key in keys:
        if key in skip:
            continue
        assert field_value(fields, key) == expected[key], (vector["id"], key)


STRICT_VALID = [v for v in VALID if v["id"] != "smspdudecoder-truncated-ucs2"]


@pytest.mark.parametrize("vector", STRICT_VALID, ids=[v["id"] for v in STRICT_VALID])
def test_vector_decodes_to_its_source_fields(vector: dict[str, Any]) -> None:
    fields = _decode(vector)
    assert fields["kind"] == vector["kind"]
    _check(vector, fields, vector["expected_source_fields"])


@pytest.mark.parametrize("vector", STRICT_VALID, ids=[v["id"] for v in STRICT_VALID])
def test_vector_decodes_to_its_derived_fields(vector: dict[str, Any]) -> None:
    _check(vector, _decode(vector), vector["expected_derived_fields"])


# Vectors the source marks invalid that are exactly one of the repairs lenient decoding makes
# (modem.pdu.AnomalyCode): decoded, the repair listed, and still refused with strict=True.
LENIENT_INVALID: dict[str, str] = {
    # TP-UDL 0x0B (11 septets = 10 octets) but only 9 octets follow. python-gsmmodem and
    # python-gammu both decode it as "hellohello" (the 10 septets that are there); on receive a
    # refusal would lose the message, so it is decoded and flagged.
    "mm-invalid-insufficient-data": "user-data-short",
}


@pytest.mark.parametrize("vector", INVALID, ids=[v["id"] for v in INVALID])
def test_invalid_vector_raises_pdu_error_naming_the_octet(vector: dict[str, Any]) -> None:
    with pytest.raises(PduError) as info:
        decode_pdu(vector["pdu"], vector["smsc_included"], strict=True)
    assert info.value.octet is not None
    assert f"at octet {info.value.octet}" in str(info.value)
    if vector["id"] in LENIENT_INVALID:
        return
    with pytest.raises(PduError) as info:
        decode_pdu(vector["pdu"], vector["smsc_included"])
    assert info.value.octet is not None


def test_invalid_vector_with_short_user_data_is_decoded_leniently() -> None:
    (vector,) = [v for v in PDUS if v["id"] == "mm-invalid-insufficient-data"]
    pdu = decode_pdu(vector["pdu"])
    assert isinstance(pdu.tpdu, SmsDeliver)
    assert pdu.tpdu.user_data.text == "hellohello" and pdu.tpdu.user_data.truncated
    assert str(pdu.tpdu.originator) == "+18005551212"
    assert pdu.tpdu.anomalies == (
        Anomaly(
            AnomalyCode.USER_DATA_SHORT,
            26,  # SMSC field (8), FO, TP-OA (8), PID, DCS, SCTS (7): then TP-UDL
            "TP-UDL 11 needs 10 octets of user data but 9 are present at octet 26",
        ),
    )
    assert [str(a.code) for a in pdu.tpdu.anomalies] == list(LENIENT_INVALID.values())


def test_deliver_has_no_status_field() -> None:
    # cts-createfrompdu-1 expects status 0 (Android's getStatus() on a non-report); TP-ST only
    # exists in SMS-STATUS-REPORT, so our deliver fields carry none.
    (vector,) = [v for v in PDUS if v["id"] == "cts-createfrompdu-1"]
    assert "status" not in _decode(vector)


def test_truncated_ucs2_is_decoded_with_its_anomalies_and_refused_when_strict() -> None:
    # The vector says "decide: reject or flag as truncated". On receive a refusal loses the
    # message, so it is decoded (as python-gammu and python-gsmmodem do: the 8 whole characters),
    # flagged truncated, and both repairs are listed; strict decoding still refuses it.
    (vector,) = [v for v in PDUS if v["id"] == "smspdudecoder-truncated-ucs2"]
    with pytest.raises(PduError, match="TP-UDL 68"):
        decode_pdu(vector["pdu"], strict=True)
    fields = _decode(vector)
    expected = vector["expected"]
    assert fields["truncated"] is expected["truncated"] is True
    assert fields["text"].startswith(expected["text_truncated_prefix"])
    _check(vector, fields, vector["expected_derived_fields"])
    assert fields["anomalies"] == [
        {
            "code": "user-data-short",
            "octet": 28,  # the TP-UDL octet
            "detail": "TP-UDL 68 needs 68 octets of user data but 17 are present at octet 28",
        },
        {
            "code": "ucs2-odd-length",
            "octet": 45,  # the last octet, which is dropped
            "detail": "UCS-2 user data has an odd length (17 octets; the last is dropped)"
            " at octet 45",
        },
    ]


# Valid vectors that still carry something lenient decoding notes: gammu's real PDUs 14 (a
# submit whose DCS says GSM 7-bit over UCS-2 octets, 18 octets for 18 septets) and 39 (30 octets
# of padding after 53 septets), both with octets TP-UDL does not count; and the truncated UCS-2.
NOTED_VALID: dict[str, list[str]] = {
    "gammu-at-sms-14": ["data-beyond-udl"],
    "gammu-at-sms-39": ["data-beyond-udl"],
    "smspdudecoder-truncated-ucs2": ["user-data-short", "ucs2-odd-length"],
}


def test_well_formed_vectors_carry_no_anomalies() -> None:
    for vector in VALID:
        pdu = decode_pdu(vector["pdu"], vector["smsc_included"])
        codes = [str(a.code) for a in pdu.tpdu.anomalies]
        assert codes == NOTED_VALID.get(vector["id"], []), vector["id"]


def test_octets_beyond_tp_udl_of_a_real_pdu_are_ignored_like_gammu_does() -> None:
    (vector,) = [v for v in PDUS if v["id"] == "gammu-at-sms-39"]
    pdu = decode_pdu(vector["pdu"])
    assert isinstance(pdu.tpdu, SmsDeliver)
    assert pdu.tpdu.user_data.text == vector["expected"]["text"]
    assert pdu.tpdu.anomalies == (
        Anomaly(
            AnomalyCode.DATA_BEYOND_UDL,
            70,  # TP-UDL at 22, 47 octets of user data at 23-69
            "30 octet(s) after the 47 of user data TP-UDL 53 counts (ignored) at octet 70",
        ),
    )
    with pytest.raises(PduError, match="30 octet"):
        decode_pdu(vector["pdu"], strict=True)


@pytest.mark.parametrize("vector", VALID, ids=[v["id"] for v in VALID])
def test_vector_reencodes(vector: dict[str, Any]) -> None:
    pdu = decode_pdu(vector["pdu"], vector["smsc_included"])
    encoded = encode_pdu(pdu.tpdu, pdu.smsc)
    again = decode_pdu(encoded.hex)
    if vector["id"] == "smspdudecoder-truncated-ucs2":
        # What arrived is re-encoded whole, so the copy is no longer truncated.
        assert isinstance(pdu.tpdu, SmsDeliver)
        assert isinstance(again.tpdu, SmsDeliver)
        assert again.tpdu.user_data.text == pdu.tpdu.user_data.text
        assert pdu.tpdu.user_data.truncated and not again.tpdu.user_data.truncated
    else:
        assert again == pdu
    if vector["id"] not in NON_CANONICAL:
        assert encoded.hex == vector["pdu"]
        assert encoded.tpdu_length == len(vector["pdu"]) // 2 - 1 - int(vector["pdu"][:2], 16)
    else:
        assert encoded.hex != vector["pdu"], "vector is canonical now: drop it from the list"


def _groups() -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for vector in VALID:
        if "group" in vector:
            groups[vector["group"]["id"]].append(vector)
    return dict(groups)


GROUPS = _groups()


@pytest.mark.parametrize("group_id", sorted(GROUPS))
def test_group_is_complete_in_the_vectors(group_id: str) -> None:
    parts = GROUPS[group_id]
    assert sorted(v["group"]["part"] for v in parts) == list(range(1, parts[0]["group"]["of"] + 1))


@pytest.mark.parametrize("group_id", sorted(GROUPS))
@pytest.mark.parametrize("order", ["in-order", "reversed"])
def test_group_reassembles_to_full_text(group_id: str, order: str) -> None:
    parts = sorted(GROUPS[group_id], key=lambda v: v["group"]["part"])
    first = parts[0]
    tpdus = [decode_pdu(v["pdu"], v["smsc_included"]).tpdu for v in parts]
    if order == "reversed":
        tpdus.reverse()
    if all(isinstance(t, SmsDeliver) for t in tpdus):
        reassembler = Reassembler()
        now = datetime(2026, 1, 1, tzinfo=UTC)
        results = []
        for i, tpdu in enumerate(tpdus):
            assert isinstance(tpdu, SmsDeliver)
            results.append(reassembler.add(tpdu, now=now + timedelta(seconds=i)))
        assert results[:-1] == [None] * (len(tpdus) - 1)
        message = results[-1]
        assert message is not None
        assert len(reassembler) == 0
        text, data = message.text, message.data
    else:
        assert all(isinstance(t, SmsSubmit) for t in tpdus)
        ordered = sorted(tpdus, key=lambda t: t.user_data.header.concatenation.sequence)  # type: ignore[union-attr]
        text, data, _ = join_parts(ordered)
    if "full_text" in first["group"]:
        assert text == first["group"]["full_text"]
    else:
        # 8-bit groups (WAP push) have no full_text: the data is the parts' data in order.
        assert data is not None
        assert data.hex().upper() == "".join(v["expected"]["data_hex"] for v in parts)


def test_parts_from_different_smsc_addresses_still_join() -> None:
    # mm-multipart parts 1 and 2 arrived via different SMSC addresses (F5 vs F6).
    parts = GROUPS["mm-multipart"]
    pdus = [decode_pdu(v["pdu"]) for v in parts]
    assert pdus[0].smsc != pdus[1].smsc
    reassembler = Reassembler()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert isinstance(pdus[0].tpdu, SmsDeliver)
    assert isinstance(pdus[1].tpdu, SmsDeliver)
    assert reassembler.add(pdus[0].tpdu, now=now) is None
    assert reassembler.add(pdus[1].tpdu, now=now) is not None


def test_turkish_single_shift_vector_needs_the_shift_table() -> None:
    # smslib-text-6 carries IEI 0x24 (Turkish single shift): without it ı ğ ş would be wrong.
    (vector,) = [v for v in PDUS if v["id"] == "smslib-text-6"]
    pdu = decode_pdu(vector["pdu"])
    assert isinstance(pdu.tpdu, SmsDeliver)
    header = pdu.tpdu.user_data.header
    assert header is not None
    assert header.single_shift == 1
    assert pdu.tpdu.user_data.text is not None
    assert pdu.tpdu.user_data.text.endswith("ığşüö")


# Submit vectors that our encoder (build_submits) legitimately writes differently, and why.
ENCODER_DIFFERS: dict[str, str] = {
    "gammu-at-sms-02": "sender left non-zero spare bits after the last septet",
    "gammu-at-sms-15": "class 1 written as DCS 0xF1 (group 1111); we write the general 0x11",
    "gammu-at-sms-28": "class 1 written as DCS 0xF1 (group 1111); we write the general 0x11",
    "gammu-at-sms-16": "sender used UCS-2 for '123456'; the cheapest alphabet is GSM 7-bit",
    "gammu-at-sms-19": "sender added an empty UDH and DCS 0xF1; we add neither",
}
_FULL_TEXT = {
    v["group"]["id"]: v["group"]["full_text"]
    for v in VALID
    if "group" in v and "full_text" in v["group"]
}
SUBMITS_WITH_TEXT = [v for v in VALID if v["kind"] == "submit" and "text" in v["expected"]]


@pytest.mark.parametrize("vector", SUBMITS_WITH_TEXT, ids=[v["id"] for v in SUBMITS_WITH_TEXT])
def test_build_submits_reproduces_submit_vector(vector: dict[str, Any]) -> None:
    # Encoder oracle: from the vector's fields alone, build_submits must choose the same
    # alphabet, part split, UDH and flags as the independent encoder that wrote the PDU.
    pdu = decode_pdu(vector["pdu"])
    tpdu = pdu.tpdu
    assert isinstance(tpdu, SmsSubmit)
    header = tpdu.user_data.header
    concat = header.concatenation if header is not None else None
    group = vector.get("group")
    text = _FULL_TEXT[group["id"]] if group else tpdu.user_data.text
    assert text is not None
    parts = build_submits(
        tpdu.destination,
        text,
        reference=concat.reference if concat else 0,
        ref16=bool(concat and concat.ref_bits == 16),
        status_report=tpdu.status_report_request,
        validity=tpdu.validity,
        message_class=tpdu.dcs.message_class,
        protocol_identifier=tpdu.protocol_identifier,
    )
    assert len(parts) == (concat.total if concat else 1)
    part = dataclasses.replace(
        parts[concat.sequence - 1 if concat else 0],
        message_reference=tpdu.message_reference,
        reject_duplicates=tpdu.reject_duplicates,
        reply_path=tpdu.reply_path,
    )
    encoded = encode_pdu(part, pdu.smsc).hex
    if vector["id"] in ENCODER_DIFFERS:
        assert encoded != vector["pdu"], "encoder matches now: drop it from ENCODER_DIFFERS"
        assert to_fields(decode_pdu(encoded))["text"] == vector["expected"]["text"]
    else:
        assert encoded == vector["pdu"]
