"""`smsgw modem probe|send|listen|ussd|at` against emulated modems (JSON out)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from gateway.cli import main
from modem.emulator import MAGIC_DELIVERED, EmulatorPool


@pytest.fixture
def pool() -> Iterator[EmulatorPool]:
    with EmulatorPool(["huawei", "generic"], seed=4) as p:
        p.boot()
        yield p


def run(*args: str) -> tuple[int, list[dict[str, object]]]:
    result = CliRunner().invoke(main, ["modem", *args], catch_exceptions=False)
    docs = [json.loads(line) for line in result.output.splitlines() if line.strip()]
    return result.exit_code, docs


def test_probe(pool: EmulatorPool) -> None:
    info = pool.info()[0]
    code, (doc,) = run("probe", info.path)
    assert code == 0
    assert doc["identity"]["imsi"] == info.imsi  # type: ignore[index]
    assert doc["identity"]["iccid"] == info.iccid  # type: ignore[index]
    assert doc["profile"] == "huawei"
    assert doc["registration"]["registered"] is True  # type: ignore[index]
    assert doc["registration"]["lac"] is not None  # type: ignore[index]
    assert doc["smsc"]["number"] == "+447700900000"  # type: ignore[index]
    assert doc["cnmi"] == [2, 1, 2, 1, 0] and doc["cnmi_mode"] == "indications"
    assert isinstance(doc["storage_usage"], list) and doc["storages_offered"]


def test_send_and_wait_for_reports(pool: EmulatorPool) -> None:
    code, (doc,) = run("send", pool.path(0), MAGIC_DELIVERED, "two parts " * 20, "--wait")
    assert code == 0
    parts = doc["parts"]
    assert [p["status"] for p in parts] == ["sent", "sent"]  # type: ignore[index,union-attr]
    mrs = sorted(p["message_reference"] for p in parts)  # type: ignore[index,union-attr]
    reports = doc["reports"]
    assert sorted(r["message_reference"] for r in reports) == mrs  # type: ignore[index,union-attr]
    assert all(r["delivery_status"] == "completed" for r in reports)  # type: ignore[index,union-attr]


def test_send_failure_exit_code(pool: EmulatorPool) -> None:
    code, (doc,) = run("send", pool.path(0), "+15005551500", "rejected", "--no-status-report")
    assert code == 1
    assert doc["parts"][0]["cms_code"] == 500  # type: ignore[index]


def test_listen_reassembles(pool: EmulatorPool) -> None:
    msisdn = pool.info()[0].msisdn
    text = "out of order, reassembled by listen. " * 8
    pool.inject_sms(msisdn, text, order=[1, 0])
    code, docs = run("listen", pool.path(0), "--count", "1", "--duration", "10")
    assert code == 0
    assert docs == [
        {
            "type": "sms",
            "originator": "+4915112345678",
            "scts": docs[0]["scts"],
            "text": text,
            "data": None,
            "parts": 2,
            "encoding": "gsm7",
        }
    ]


def test_ussd(pool: EmulatorPool) -> None:
    code, (doc,) = run("ussd", pool.path(0), "*101#")
    assert code == 0 and doc["text"] == f"Your number is {pool.info()[0].msisdn}."


def test_raw_at(pool: EmulatorPool) -> None:
    code, (doc,) = run("at", pool.path(0), "AT+CGMM")
    assert code == 0 and doc == {
        "command": "AT+CGMM",
        "lines": ["E1752"],
        "result": "OK",
        "ok": True,
    }
    code, (doc,) = run("at", pool.path(0), "AT+NOPE")
    assert code == 1 and doc["result"] == "COMMAND NOT SUPPORT"


def test_unreachable_port_is_a_json_error() -> None:
    code, (doc,) = run("at", "/dev/does-not-exist", "AT")
    assert code == 2 and doc["error"] == "ModemGone"
