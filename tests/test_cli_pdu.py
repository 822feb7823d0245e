"""`smsgw pdu decode|encode|count` prints the vectors' field names and AT+CMGS-ready PDUs."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.cli.pdu import parse_duration
from modem.pdu import SmsSubmit, decode_pdu, to_fields
from tests.pdu.test_vectors import PDUS, VALID


def run(*args: str, stdin: str | None = None) -> tuple[int, list[dict[str, Any]]]:
    result = CliRunner().invoke(main, ["pdu", *args], input=stdin)
    lines = [json.loads(line) for line in result.output.splitlines() if line.strip()]
    return result.exit_code, lines


def _by_id(vector_id: str) -> dict[str, Any]:
    (vector,) = [v for v in PDUS if v["id"] == vector_id]
    return vector


def test_decode_prints_vector_field_names() -> None:
    vector = _by_id("mm-pdu1")
    code, (fields,) = run("decode", vector["pdu"])
    assert code == 0
    for key in vector["expected_source_fields"]:
        assert fields[key] == vector["expected"][key]
    assert fields["kind"] == "deliver"
    assert fields["encoding"] == "gsm7"


def test_decode_every_valid_vector_matches_the_library() -> None:
    strict = [v for v in VALID if v["id"] != "smspdudecoder-truncated-ucs2"]
    code, lines = run("decode", "-", stdin="\n".join(v["pdu"] for v in strict) + "\n")
    assert code == 0
    assert lines == [to_fields(decode_pdu(v["pdu"])) for v in strict]


def test_invalid_pdu_prints_error_and_fails_after_reading_all_input() -> None:
    good = _by_id("mm-pdu3")["pdu"]
    # No address at all: nothing to repair (mm-invalid-insufficient-data now decodes leniently).
    bad = _by_id("mm-invalid-no-address")["pdu"]
    code, lines = run("decode", good, bad, good)
    assert code != 0
    assert len(lines) == 3
    assert lines[0]["text"] == lines[2]["text"] == "hellohello"
    assert set(lines[1]) == {"error"}
    assert "at octet" in lines[1]["error"]


def test_not_hex_is_an_error_line() -> None:
    code, lines = run("decode", "zz")
    assert code != 0
    assert lines == [{"error": "PDU is not hexadecimal"}]


def test_decode_stdin_skips_blank_lines() -> None:
    pdu = _by_id("mm-pdu3")["pdu"]
    code, lines = run("decode", "-", stdin=f"{pdu}\n\n  {pdu}  \n")
    assert code == 0
    assert [line["text"] for line in lines] == ["hellohello", "hellohello"]


def test_decode_no_smsc() -> None:
    vector = _by_id("mm-pdu3")
    tpdu_hex = vector["pdu"][2 + 2 * int(vector["pdu"][:2], 16) :]
    code, (fields,) = run("decode", "--no-smsc", tpdu_hex)
    assert code == 0
    assert fields["smsc"] is None
    assert fields["originator"] == "+18005551212"


def test_decode_prints_anomalies_and_strict_refuses() -> None:
    vector = _by_id("smspdudecoder-truncated-ucs2")
    code, (fields,) = run("decode", vector["pdu"])
    assert code == 0
    assert fields["truncated"] is True
    assert fields["text"].startswith(vector["expected"]["text_truncated_prefix"])
    assert [a["code"] for a in fields["anomalies"]] == ["user-data-short", "ucs2-odd-length"]
    assert fields["anomalies"][0]["octet"] == 28
    assert "at octet 28" in fields["anomalies"][0]["detail"]
    code, (fields,) = run("decode", "--strict", vector["pdu"])
    assert code != 0 and "TP-UDL 68" in fields["error"]
    code, (fields,) = run("decode", "--allow-truncated", vector["pdu"])  # old flag still works
    assert code == 0 and fields["truncated"] is True


def test_decode_a_well_formed_pdu_lists_no_anomalies() -> None:
    code, (fields,) = run("decode", _by_id("mm-pdu1")["pdu"])
    assert code == 0 and "anomalies" not in fields


def test_encode_prints_cmgs_ready_parts() -> None:
    code, (out,) = run("encode", "--to", "+15555551234", "--status-report", "hello")
    assert code == 0
    assert out["encoding"] == "gsm7"
    (part,) = out["parts"]
    # No --smsc: the PDU starts with the empty SMSC field 00, not counted in tpdu_length.
    assert part["pdu"].startswith("00")
    assert part["tpdu_length"] == len(part["pdu"]) // 2 - 1
    fields = to_fields(decode_pdu(part["pdu"]))
    assert fields["recipient"] == "+15555551234"
    assert fields["text"] == "hello"
    assert fields["srr"] is True
    assert fields["smsc"] is None


def test_encode_with_smsc_validity_and_ref16() -> None:
    text = "x" * 200
    code, out = run(
        "encode",
        "--to",
        "+447700900123",
        "--smsc",
        "+447802000332",
        "--validity",
        "1d",
        "--ref16",
        "--reference",
        "4660",
        text,
    )
    assert code == 0
    (result,) = out
    assert len(result["parts"]) == 2
    joined = ""
    for seq, part in enumerate(result["parts"], start=1):
        assert part["pdu"].startswith("0791448720003023")
        assert part["tpdu_length"] == len(part["pdu"]) // 2 - 8
        fields = to_fields(decode_pdu(part["pdu"]))
        assert fields["smsc"] == "+447802000332"
        assert fields["vp_relative"] == 167  # 12 h + 24 x 30 min = one day
        assert fields["concat"] == {"ref": 4660, "total": 2, "seq": seq, "ref_bits": 16}
        joined += fields["text"]
    assert joined == text


def test_encode_ucs2_and_flash() -> None:
    code, (out,) = run("encode", "--to", "0612345678", "--flash", "привет")
    assert code == 0
    assert out["encoding"] == "ucs2"
    pdu = decode_pdu(out["parts"][0]["pdu"])
    assert isinstance(pdu.tpdu, SmsSubmit)
    assert to_fields(pdu)["class"] == 0
    assert to_fields(pdu)["recipient"] == "0612345678"


def test_encode_rejects_bad_validity() -> None:
    result = CliRunner().invoke(
        main, ["pdu", "encode", "--to", "+1555", "--validity", "soon", "hi"]
    )
    assert result.exit_code == 2
    assert "--validity" in result.output


def test_count_prints_encoding_parts_and_characters() -> None:
    code, (out,) = run("count", "x" * 161)
    assert code == 0
    assert out == {
        "encoding": "gsm7",
        "parts": 2,
        "characters": 161,
        "units": 161,
        "remaining": 145,
    }
    code, (out,) = run("count", "😀é")
    assert out["encoding"] == "ucs2"
    assert out["characters"] == 2
    assert out["units"] == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1d", timedelta(days=1)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("30", timedelta(minutes=30)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "soon", "1x", "1d soon"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
