"""Seeded soak: sends and receives with emulator faults interleaved at random, through a small
supervisor that reopens the client when the modem is gone.

Invariants: every inbound message reaches the caller exactly once; every outbound part is sent
with a TP-MR, failed with a reason, or unknown -- and the network's own record agrees; every status
report the network produced reaches the caller exactly once.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace

import pytest

from modem.client import (
    ClientConfig,
    Inbound,
    InboundSms,
    InboundStatusReport,
    ModemClient,
    ModemMemory,
    PartResult,
    SubmitStatus,
    Timeouts,
)
from modem.emulator import MAGIC_DELIVERED, MAGIC_NO_REPORT, EmulatorPool
from modem.errors import ModemError, ModemGone
from modem.pdu import SmsSubmit, decode_tpdu

OUTSIDE = "+4915112345678"
REJECTED = "+15005551042"
TIMEOUTS = Timeouts(
    command=0.5,
    wakeup=0.1,
    prompt=0.5,
    submit=0.3,
    cpin_no_ok=0.1,
    readiness=3.0,
    transient_retry=0.02,
    ussd=1.0,
    drain_quiet=0.02,
    lock=10.0,
    scan_interval=1.0,  # periodic scans drain reports stored silently (hang, lost +CNMA)
    keepalive=3600.0,
    close=2.0,
)
TRANSIENT = ("garbage", "urc_mid_answer", "cms_error", "slow_radio", "storage_full", "hang")


@dataclass
class Soak:
    pool: EmulatorPool
    rng: random.Random
    received: Counter[str] = field(default_factory=Counter)
    reports: Counter[tuple[int, str]] = field(default_factory=Counter)
    sent: list[tuple[str, str, list[PartResult]]] = field(default_factory=list)
    injected: list[str] = field(default_factory=list)
    memory: ModemMemory = field(default_factory=ModemMemory)
    active: dict[str, int] = field(default_factory=dict)  # fault -> steps left
    client: ModemClient | None = None
    reconnects: int = 0
    # Reports the emulated modem dropped: sent as +CDS, not yet acknowledged, then the modem
    # lost power (the emulator forgets them instead of handing them back to its SMSC).
    dropped_reports: int = 0

    async def handler(self, item: Inbound) -> bool:
        if isinstance(item, InboundSms):
            self.received[item.deliver.user_data.text or ""] += 1
        elif isinstance(item, InboundStatusReport):
            self.reports[(item.report.message_reference, str(item.report.recipient))] += 1
        return True

    async def connect(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None
        if not self.pool.path(0):
            self.pool.advance(2.0)  # unplugged: wait (virtually) for it to come back
        self.pool.boot()  # let boot URCs ("SMS Ready") of a replugged/rebooted modem pass
        client = ModemClient(
            self.pool.path(0),
            config=ClientConfig(timeouts=TIMEOUTS, max_timeouts=2, scan_on_start=True),
            on_inbound=self.handler,
            memory=self.memory,
        )
        await client.open()
        self.client = client
        self.reconnects += 1

    def fault(self) -> None:
        kind = self.rng.choice([*TRANSIENT, "reboot", "unplug"])
        if kind in ("reboot", "unplug"):
            core = self.pool.core(0)
            pending = self.pool.call(lambda: [k for k, _ in core._ack_pending])
            self.dropped_reports += pending.count("report")
        if kind == "reboot":
            self.pool.set_fault(0, "reboot")
            self.pool.advance(10.0)
        elif kind == "unplug":
            self.pool.unplug(0, seconds=2.0)
        elif kind not in self.active:
            params: dict[str, float | int | str] = {
                "garbage": {"rate": 0.5, "length": 6},
                "urc_mid_answer": {"rate": 0.5, "line": "+CREG: 1"},
                "cms_error": {"code": 500, "rate": 0.5},
                "slow_radio": {"seconds": 30.0},
            }.get(kind, {})  # type: ignore[assignment]
            self.pool.set_fault(0, kind, **params)
            self.active[kind] = self.rng.randint(1, 6)

    def tick_faults(self) -> None:
        for kind in list(self.active):
            self.active[kind] -= 1
            if self.active[kind] <= 0:
                del self.active[kind]
                self.pool.clear_fault(0, kind)
                if kind == "slow_radio":
                    self.pool.advance(30.0)  # let the slow submits finish

    async def step(self, n: int) -> None:
        self.tick_faults()
        if self.client is None or not self.client.alive:
            if "hang" in self.active:
                return  # the supervisor backs off while the modem does not answer
            await self.connect()
        assert self.client is not None
        roll = self.rng.random()
        if roll < 0.45:
            dest = self.rng.choice([OUTSIDE, OUTSIDE, MAGIC_DELIVERED, MAGIC_NO_REPORT, REJECTED])
            text = f"out {n} " + ("long " * self.rng.choice([0, 0, 0, 40]))
            try:
                parts = await self.client.send_sms(dest, text, status_report=True)
            except ModemGone:
                parts = []  # not attempted: the modem was already gone
            self.sent.append((dest, text, parts))
        elif roll < 0.9:
            text = f"in {n}"
            self.pool.inject_sms(self.pool.info()[0].msisdn, text, sender="+4915100000007")
            self.injected.append(text)
        else:
            self.fault()

    async def finish(self) -> None:
        for kind in list(self.active):
            self.pool.clear_fault(0, kind)
        self.active.clear()
        self.pool.advance(60.0)
        await self.connect()  # a fresh client scans every storage at start
        assert self.client is not None
        msisdn = self.pool.info()[0].msisdn
        core = self.pool.core(0)
        for _ in range(50):
            await self.client.wait_idle()
            await self.client.scan()
            await self.client.wait_idle()
            # Every delete frees a slot and the SMSC hands over what it held (SMMA): go on
            # until the network holds nothing and the modem stores nothing.
            held = self.pool.call(lambda: self.pool.network.held(msisdn))
            stored = self.pool.call(lambda: sum(s.used() for s in core.storages.values()))
            if held == 0 and stored == 0:
                break
            self.pool.advance(1.0)
        await self.client.close()


async def run_soak(steps: int, seed: int, personality: str = "generic") -> Soak:
    with EmulatorPool([personality], seed=seed) as pool:
        pool.boot()
        soak = Soak(pool, random.Random(seed))
        try:
            for n in range(steps):
                try:
                    await soak.step(n)
                except ModemError:
                    if soak.client is not None:
                        await soak.client.close()
                        soak.client = None
            await soak.finish()
        finally:
            if soak.client is not None:
                await soak.client.close()
        check(soak)
        return soak


def check(soak: Soak) -> None:
    # Inbound: exactly once.
    assert set(soak.received) == set(soak.injected)
    assert all(count == 1 for count in soak.received.values()), soak.received.most_common(3)
    # Outbound: every part accounted for, and the network agrees.
    record: Counter[tuple[int, str, str]] = Counter()
    for out in soak.pool.outside():
        tpdu = decode_tpdu(out.tpdu)
        assert isinstance(tpdu, SmsSubmit)
        record[(out.message_reference, out.destination, tpdu.user_data.text or "")] += 1
    network_texts: Counter[str] = Counter()
    for (_, _, text), n in record.items():
        network_texts[text] += n
    statuses: Counter[SubmitStatus] = Counter()
    for dest, _text, parts in soak.sent:
        for part in parts:
            statuses[part.status] += 1
            if part.status is SubmitStatus.SENT:
                assert part.message_reference is not None
            else:
                assert part.reason
            if dest == REJECTED:
                assert part.status is not SubmitStatus.SENT
    sent_parts = sum(1 for _, _, parts in soak.sent for p in parts if p.status is SubmitStatus.SENT)
    unknown = sum(1 for _, _, ps in soak.sent for p in ps if p.status is SubmitStatus.UNKNOWN)
    total_out = sum(record.values())
    # Every SENT part is in the network's record; UNKNOWN ones may or may not be.
    assert sent_parts <= total_out <= sent_parts + unknown
    for dest, _text, parts in soak.sent:
        for part in parts:
            if part.status is SubmitStatus.SENT and dest != REJECTED:
                assert any(mr == part.message_reference and d == dest for (mr, d, _) in record), (
                    dest,
                    part,
                )
    # Reports: one per accepted submit that asks for one, each handed over exactly once.
    record_reports: Counter[tuple[int, str]] = Counter()
    for (mr, dest, _), n in record.items():
        if dest in (OUTSIDE, MAGIC_DELIVERED):
            record_reports[(mr, dest)] += n
    expected_reports = sum(record_reports.values())
    assert all(n <= record_reports[key] for key, n in soak.reports.items())  # never twice
    got = sum(soak.reports.values())
    assert expected_reports - soak.dropped_reports <= got <= expected_reports
    assert statuses[SubmitStatus.SENT] > 0


async def test_soak_short() -> None:
    soak = await run_soak(steps=150, seed=11)
    assert soak.reconnects >= 1 and soak.injected and soak.sent


SOAK_PERSONALITIES = ["generic", "generic", "huawei", "ec25", "sim800", "wavecom", "zte", "sim7600"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("seed", "personality"),
    list(enumerate(SOAK_PERSONALITIES, start=1)),
)
async def test_soak_1000(seed: int, personality: str) -> None:
    soak = await run_soak(steps=1000, seed=seed, personality=personality)
    assert len(soak.injected) > 300 and len(soak.sent) > 300


def test_soak_timeouts_are_short_but_named() -> None:
    assert replace(TIMEOUTS).submit < TIMEOUTS.command
