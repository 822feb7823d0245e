"""Same seed, same emulated world: identities, TP-MRs, fault decisions, noise."""

from __future__ import annotations

from dataclasses import asdict

from modem.emulator import EmulatorPool, make_identities
from modem.emulator.network import luhn_digit
from tests.emulator.ptyclient import client, submit_pdu


def _run(seed: int) -> tuple[list[dict[str, object]], list[bytes], bytes, bytes]:
    with EmulatorPool(["generic", "huawei"], seed=seed) as pool:
        infos = [{k: v for k, v in asdict(i).items() if k != "path"} for i in pool.info()]
        with client(pool, 0) as c, client(pool, 1) as h:
            pool.set_fault(0, "cms_error", code=42, rate=0.5)
            hexpdu, length = submit_pdu("+447911123456", "x")
            answers = [c.send_pdu(hexpdu, length) for _ in range(16)]
            pool.set_fault(0, "garbage", rate=1.0, length=12)
            garbage = c.command("AT")
            pool.advance(60)  # Huawei idle URCs
            noise = h.command("AT+CGMI")
        return infos, answers, garbage, noise


def test_same_seed_same_identities_fault_sequence_and_noise() -> None:
    first = _run(1234)
    second = _run(1234)
    assert first == second
    _, answers, _, noise = first
    assert b"+CMS ERROR: 42" in b"".join(answers) and b"+CMGS: " in b"".join(answers)
    assert noise.count(b"^") >= 5  # the Huawei noise really was there to compare


def test_other_seed_other_world() -> None:
    first = _run(1)
    other = _run(2)
    assert first[0] != other[0]
    assert first[1] != other[1] or first[2] != other[2]


def test_identities_are_well_formed() -> None:
    ids = make_identities("x", 50)
    assert len({i.msisdn for i in ids}) == 50
    for ident in ids:
        assert ident.msisdn.startswith("+447700900") and len(ident.msisdn) == 13
        assert ident.imsi.startswith("00101") and len(ident.imsi) == 15
        assert len(ident.imei) == 15 and luhn_digit(ident.imei[:-1]) == ident.imei[-1]
        assert len(ident.iccid) == 19 and luhn_digit(ident.iccid[:-1]) == ident.iccid[-1]
    assert make_identities("x", 50) == ids
    assert make_identities("x", 10) == ids[:10]  # growing a pool keeps the first SIMs
