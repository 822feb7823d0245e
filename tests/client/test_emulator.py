"""ModemClient against the emulated modems on real PTYs, for every vendor personality.

Waiting is on events from the client (bounded by named timeouts), and virtual emulator time only
moves through `pool.advance()`: nothing sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import pytest

from modem import quirks
from modem.at.urc import SimIndication
from modem.client import (
    ClientConfig,
    ClientEvent,
    Inbound,
    InboundSms,
    InboundStatusReport,
    ModemClient,
    ModemRebooted,
    PartResult,
    SubmitStatus,
    Timeouts,
)
from modem.emulator import MAGIC_CMS_ERROR_PREFIX, MAGIC_DELIVERED, EmulatorPool
from modem.emulator.device import NACK_RETRY
from modem.emulator.sms import build_status_report
from modem.errors import ModemGone, ModemTimeout
from modem.pdu import Reassembler, SmsSubmit, decode_tpdu

PERSONALITIES = ["generic", "huawei", "sim800", "sim7600", "ec25", "wavecom", "zte"]
EXPECTED_PROFILE = {
    "generic": "generic",
    "huawei": "huawei",
    "sim800": "simcom",
    "sim7600": "simcom",
    "ec25": "quectel",
    "wavecom": "wavecom",
    "zte": "zte",
}
OUTSIDE = "+4915112345678"
EVENT_TIMEOUT = 5.0

TIMEOUTS = Timeouts(
    command=2.0,
    wakeup=0.2,
    prompt=2.0,
    submit=2.0,
    cpin_no_ok=0.1,
    readiness=5.0,
    transient_retry=0.05,
    ussd=3.0,
    drain_quiet=0.05,
    lock=10.0,
    scan_interval=3600.0,
    keepalive=3600.0,
    close=2.0,
)


@dataclass
class Rig:
    """An emulated network with the client on modem 0 and everything it handed over."""

    pool: EmulatorPool
    client: ModemClient
    inbound: list[Inbound] = field(default_factory=list)
    events: asyncio.Queue[ClientEvent] = field(default_factory=asyncio.Queue)

    @property
    def msisdn(self) -> str:
        return self.pool.info()[0].msisdn

    async def wait_for(
        self, predicate: Callable[[ClientEvent], bool], what: str, count: int = 1
    ) -> list[ClientEvent]:
        """Events matching `predicate`, waiting for each at most EVENT_TIMEOUT."""
        found: list[ClientEvent] = []
        while len(found) < count:
            try:
                async with asyncio.timeout(EVENT_TIMEOUT):
                    event = await self.events.get()
            except TimeoutError:
                raise AssertionError(
                    f"timed out waiting for {what} ({len(found)}/{count})"
                ) from None
            if predicate(event):
                found.append(event)
        return found

    async def reports(self, count: int) -> list[InboundStatusReport]:
        got = await self.wait_for(
            lambda e: isinstance(e, InboundStatusReport), "status reports", count
        )
        return [e for e in got if isinstance(e, InboundStatusReport)]

    async def messages(self, count: int) -> list[InboundSms]:
        got = await self.wait_for(lambda e: isinstance(e, InboundSms), "inbound SMS", count)
        return [e for e in got if isinstance(e, InboundSms)]


async def open_client(
    rig_pool: EmulatorPool, index: int, rig: Rig | None, **kw: object
) -> ModemClient:
    async def handler(item: Inbound) -> bool:
        if rig is not None:
            rig.inbound.append(item)
        return True

    kw.setdefault("timeouts", TIMEOUTS)
    client = ModemClient(
        rig_pool.path(index),
        config=ClientConfig(**kw),
        on_inbound=handler,  # type: ignore[arg-type]
    )
    if rig is not None:
        client.add_listener(rig.events.put_nowait)
    await client.open()
    return client


@asynccontextmanager
async def rig(personality: str = "generic", *, seed: int = 1, **kw: object) -> AsyncIterator[Rig]:
    with EmulatorPool([personality, "generic"], seed=seed) as pool:
        pool.boot()
        holder = Rig(pool, None)  # type: ignore[arg-type]
        holder.client = await open_client(pool, 0, holder, **kw)
        try:
            yield holder
        finally:
            await holder.client.close()


def outside_texts(pool: EmulatorPool) -> list[str | None]:
    """Text of every SMS-SUBMIT the network let out, in order."""
    out = []
    for sms in pool.outside():
        tpdu = decode_tpdu(sms.tpdu)
        assert isinstance(tpdu, SmsSubmit)
        out.append(tpdu.user_data.text)
    return out


# --- probe, send, receive, USSD for every personality ----------------------------------------


@pytest.mark.parametrize("personality", PERSONALITIES)
async def test_probe(personality: str) -> None:
    async with rig(personality) as r:
        info = r.pool.info()[0]
        ident = await r.client.identity()
        assert r.client.profile.name == EXPECTED_PROFILE[personality]
        assert (ident.imei, ident.imsi, ident.iccid) == (info.imei, info.imsi, info.iccid)
        assert (await r.client.registration()).registered
        assert (await r.client.signal()).rssi is not None
        assert (await r.client.smsc()).number == "+447700900000"
        assert r.client.cnmi is not None
        assert len(await r.client.storage_usage()) >= 2


@pytest.mark.parametrize("personality", PERSONALITIES)
@pytest.mark.parametrize(
    ("text", "parts"),
    [("hello from smsgw", 1), ("GSM-7 long " * 20, 2), ("Grüße aus Kyjiw: Привіт! " * 5, 2)],
    ids=["gsm7-single", "gsm7-multi", "ucs2-multi"],
)
async def test_send_with_reports_matched_per_part(personality: str, text: str, parts: int) -> None:
    async with rig(personality) as r:
        results = await r.client.send_sms(OUTSIDE, text, status_report=True)
        assert len(results) == parts
        assert all(p.status is SubmitStatus.SENT for p in results)
        mrs = [p.message_reference for p in results]
        assert len(set(mrs)) == parts
        reports = await r.reports(parts)
        assert sorted(rep.report.message_reference for rep in reports) == sorted(mrs)  # type: ignore[type-var]
        assert all(rep.report.status == 0 for rep in reports)
        # The network's own record: the text arrived, each part with the MR we were told.
        outside = r.pool.outside()
        assert [o.message_reference for o in outside] == mrs
        await r.client.wait_idle()
        usage = await r.client.storage_usage()
        assert all(u.used == 0 for u in usage)  # stored reports were deleted once handed over


@pytest.mark.parametrize("personality", PERSONALITIES)
async def test_receive_single_and_out_of_order_concatenated(personality: str) -> None:
    async with rig(personality) as r:
        r.pool.inject_sms(r.msisdn, "single one", sender="+4915100000001")
        (single,) = await r.messages(1)
        assert single.deliver.user_data.text == "single one"
        text = "Part of a long message, sent out of order. " * 9
        n = r.pool.inject_sms(r.msisdn, text, sender="MyBank", order=[2, 0, 1], reference=0x77)
        assert n == 3
        got = await r.messages(3)
        joiner = Reassembler()
        whole = None
        for sms in got:
            whole = joiner.add(sms.deliver, now=datetime.now(UTC)) or whole
        assert whole is not None and whole.text == text
        await r.client.wait_idle()
        assert all(u.used == 0 for u in await r.client.storage_usage())


@pytest.mark.parametrize("personality", PERSONALITIES)
async def test_ussd(personality: str) -> None:
    async with rig(personality) as r:
        answer = await r.client.ussd("*100#")
        assert answer.text is not None and answer.text.startswith("Your balance is")


@pytest.mark.parametrize("personality", ["generic", "ec25", "huawei"])
async def test_stored_status_reports_via_cdsi(personality: str) -> None:
    base = quirks.select_profile({"ec25": "Quectel", "huawei": "huawei"}.get(personality, ""))
    profile = replace(base, cnmi_chain=((2, 1, 0, 2, 0),))
    async with rig(personality, profile=profile) as r:
        assert r.client.cnmi == (2, 1, 0, 2, 0)
        (part,) = await r.client.send_sms(OUTSIDE, "report me via +CDSI")
        (report,) = await r.reports(1)
        assert report.report.message_reference == part.message_reference
        assert report.storage == "SR" and report.index is not None


async def test_reports_for_magic_numbers() -> None:
    async with rig() as r:
        (ok,) = await r.client.send_sms(MAGIC_DELIVERED, "x")
        (rep,) = await r.reports(1)
        assert rep.report.message_reference == ok.message_reference and rep.report.status == 0
        (failed,) = await r.client.send_sms(MAGIC_CMS_ERROR_PREFIX + "042", "x")
        assert failed.status is SubmitStatus.FAILED and failed.cms_code == 42


# --- recovery from every emulator fault --------------------------------------------------------


async def test_cms_error_fault() -> None:
    async with rig() as r:
        r.pool.set_fault(0, "cms_error", code=500, rate=1.0)
        (part,) = await r.client.send_sms(OUTSIDE, "x")
        assert part.status is SubmitStatus.FAILED and part.cms_code == 500
        r.pool.clear_fault(0, "cms_error")
        (part,) = await r.client.send_sms(OUTSIDE, "y")
        assert part.status is SubmitStatus.SENT


async def test_deregistered_sends_fail_with_reason() -> None:
    async with rig() as r:
        r.pool.set_fault(0, "deregister", stat=0)
        (part,) = await r.client.send_sms(OUTSIDE, "x")
        assert part.status is SubmitStatus.FAILED and part.cms_code == 331
        assert not (await r.client.registration()).registered


async def test_urcs_inside_cmgs_and_answers() -> None:
    async with rig("huawei") as r:
        r.pool.set_fault(0, "urc_mid_answer", rate=1.0, line="^RSSI:12")
        r.pool.inject_urc(0, "RING", "cmgs")
        results = await r.client.send_sms(OUTSIDE, "through the noise " * 10)
        assert [p.status for p in results] == [SubmitStatus.SENT, SubmitStatus.SENT]
        assert (await r.client.signal()).rssi is not None
        await r.reports(2)


async def test_garbage_fault() -> None:
    async with rig(seed=5) as r:
        r.pool.set_fault(0, "garbage", rate=1.0, length=8)
        for i in range(5):
            (part,) = await r.client.send_sms(OUTSIDE, f"garbled line {i}")
            assert part.status is SubmitStatus.SENT
        assert (await r.client.registration()).registered
        r.pool.inject_sms(r.msisdn, "still readable")
        (sms,) = await r.messages(1)
        assert sms.deliver.user_data.text == "still readable"


async def test_slow_radio_gives_unknown_and_the_network_agrees() -> None:
    async with rig(timeouts=replace(TIMEOUTS, submit=0.3)) as r:
        r.pool.set_fault(0, "slow_radio", seconds=30)
        (part,) = await r.client.send_sms(OUTSIDE, "maybe sent")
        assert part.status is SubmitStatus.UNKNOWN
        r.pool.advance(30)  # the modem finishes the submit; its late answer must be drained
        r.pool.clear_fault(0, "slow_radio")
        (part2,) = await r.client.send_sms(OUTSIDE, "surely sent")
        assert part2.status is SubmitStatus.SENT
        texts = outside_texts(r.pool)
        assert texts == ["maybe sent", "surely sent"]  # "unknown" was right not to say "failed"


async def test_hang_then_modem_gone_then_reopen() -> None:
    fast = replace(TIMEOUTS, command=0.2, wakeup=0.1)
    async with rig(timeouts=fast, max_timeouts=2) as r:
        r.pool.set_fault(0, "hang")
        with pytest.raises(ModemTimeout):
            await r.client.signal()
        with pytest.raises(ModemGone):
            await r.client.signal()
        assert not r.client.alive
        await r.client.close()  # the supervisor closes (releasing the port lock) before reopening
        r.pool.clear_fault(0, "hang")
        again = await open_client(r.pool, 0, None, timeouts=fast)
        try:
            assert (await again.signal()).rssi is not None
        finally:
            await again.close()


async def test_unplug_and_replug() -> None:
    async with rig() as r:
        new_path = r.pool.unplug(0, seconds=2.0)
        await r.wait_for(lambda e: type(e).__name__ == "ModemLost", "ModemLost")
        assert not r.client.alive
        with pytest.raises(ModemGone):
            await r.client.send_sms(OUTSIDE, "x")
        r.pool.advance(2.0)
        assert r.pool.path(0) == new_path
        again = await open_client(r.pool, 0, None)
        try:
            (part,) = await again.send_sms(OUTSIDE, "after replug")
            assert part.status is SubmitStatus.SENT
        finally:
            await again.close()


@pytest.mark.parametrize("personality", ["generic", "sim800", "ec25", "huawei"])
async def test_reboot_mid_session_reinitialises(personality: str) -> None:
    async with rig(personality) as r:
        r.pool.set_fault(0, "reboot")
        r.pool.advance(10)  # boot URCs, if the personality has any
        if personality in ("generic", "huawei"):
            await r.client.signal()  # no boot URC: the echo coming back gives it away
        await r.wait_for(lambda e: isinstance(e, ModemRebooted), "ModemRebooted")
        (part,) = await r.client.send_sms(OUTSIDE, "after reboot")
        assert part.status is SubmitStatus.SENT
        (rep,) = await r.reports(1)  # indications were set up again
        assert rep.report.message_reference == part.message_reference


async def test_a_sim_that_asks_for_its_pin_again_is_unlocked_again() -> None:
    with EmulatorPool(["sim7600"], seed=3, pin_enabled=True) as pool:
        pool.boot()
        pin = pool.call(lambda: pool.core(0).sim.identity.pin)
        r = Rig(pool, None)  # type: ignore[arg-type]
        r.client = await open_client(pool, 0, r, pin=pin)
        try:
            pool.set_fault(0, "pin_loss", seconds=2)  # a loose contact: the SIM resets
            pool.advance(2)
            await r.wait_for(
                lambda e: isinstance(e, SimIndication) and e.state == "SIM PIN", "+CPIN: SIM PIN"
            )
            await r.client.wait_idle()
            assert pool.call(lambda: pool.core(0).pin_state) == "READY"
            pool.advance(5)  # SMS DONE, registration
            (part,) = await r.client.send_sms(OUTSIDE, "after the SIM came back")
            assert part.status is SubmitStatus.SENT
            assert await r.client.ensure_unlocked() is False  # nothing to do now
        finally:
            await r.client.close()


async def test_routing_the_modem_dropped_after_a_late_cnma_is_put_back() -> None:
    with EmulatorPool(["generic"], seed=1) as pool:
        pool.boot()
        msisdn = pool.info()[0].msisdn
        arrived, gate = asyncio.Event(), asyncio.Event()
        got: dict[str, Inbound] = {}
        events: asyncio.Queue[str] = asyncio.Queue()

        async def slow_store(item: Inbound) -> bool:
            if isinstance(item, InboundStatusReport):
                arrived.set()
                await gate.wait()  # the store takes longer than the modem waits for +CNMA
                return True
            text = item.deliver.user_data.text or ""
            got[text] = item
            events.put_nowait(text)
            return True

        client = ModemClient(
            pool.path(0),
            config=ClientConfig(timeouts=replace(TIMEOUTS, routing_check=0.5)),
            on_inbound=slow_store,
        )
        await client.open()
        try:
            assert client.ack_required  # +CSMS=1: every +CDS wants its +CNMA
            (part,) = await client.send_sms(OUTSIDE, "report me")
            assert part.status is SubmitStatus.SENT
            await asyncio.wait_for(arrived.wait(), EVENT_TIMEOUT)  # its +CDS
            pool.advance(16)  # no +CNMA in time: the modem stops routing (27.005 3.4.4)
            assert pool.call(lambda: pool.core(0).cnmi[1::2]) == [0, 0]
            gate.set()  # the late +CNMA fails: nothing waits for it any more
            pool.inject_sms(msisdn, "second")  # stored without a word to us
            while "second" not in got:
                await asyncio.wait_for(events.get(), EVENT_TIMEOUT)
            assert tuple(pool.call(lambda: list(pool.core(0).cnmi))) == client.cnmi
            pool.inject_sms(msisdn, "third")
            while "third" not in got:  # indicated again (+CMTI), read at once
                await asyncio.wait_for(events.get(), EVENT_TIMEOUT)
            assert list(got) == ["second", "third"]
        finally:
            await client.close()


def _send_report(pool: EmulatorPool, mr: int) -> None:
    """The SMSC sends modem 0 a status report now (routed as +CDS with <ds>=1)."""

    def send() -> None:
        network = pool.core(0).network
        recipient = bytes.fromhex("0B915141321546F8")  # +15142351648
        report = build_status_report(mr, recipient, network.scts(), network.scts(), 0)
        network.send_report(pool.info()[0].msisdn, report)

    pool.call(send)


def _routing(pool: EmulatorPool) -> list[int]:
    return pool.call(lambda: pool.core(0).cnmi[1::2])


@dataclass
class _Reports:
    """The status reports a client handed over, by TP-MR, in order."""

    got: list[int] = field(default_factory=list)
    arrived: asyncio.Queue[int] = field(default_factory=asyncio.Queue)

    async def store(self, item: Inbound) -> bool:
        if isinstance(item, InboundStatusReport):
            self.got.append(item.report.message_reference)
            self.arrived.put_nowait(item.report.message_reference)
        return True

    async def next(self) -> int:
        return await asyncio.wait_for(self.arrived.get(), EVENT_TIMEOUT)


async def test_a_cds_left_unacknowledged_by_the_previous_host_does_not_stop_routing() -> None:
    # A daemon killed (kill -9) with +CSMS=1 on: a +CDS it never acknowledged, or one the modem
    # wrote while nobody had the port open (the next open flushes it), waits for a +CNMA the new
    # host cannot give. Unresolved, the modem's timer sets <mt>=<ds>=0 (TS 27.005 3.4.4) and
    # new messages are stored silently until the next periodic look, minutes later.
    with EmulatorPool(["generic"], seed=1) as pool:
        pool.boot()
        reports = _Reports()
        config = ClientConfig(timeouts=TIMEOUTS)
        before = ModemClient(pool.path(0), config=config, on_inbound=reports.store)
        await before.open()
        await before.close()  # the port closes; the modem keeps +CSMS=1 and its +CNMI
        _send_report(pool, 7)  # written to a port nobody holds
        client = ModemClient(pool.path(0), config=config, on_inbound=reports.store)
        await client.open()
        try:
            assert client.ack_required
            await client.wait_idle()
            assert reports.got == []  # flushed at open: never seen
            pool.advance(16)  # past the modem's +CNMA timer
            assert _routing(pool) == [1, 1]  # still routed to us
            assert await reports.next() == 7  # refused at start-up, so the SMSC sent it again
            _send_report(pool, 8)
            assert await reports.next() == 8
            await client.wait_idle()
            pool.advance(16)
            assert _routing(pool) == [1, 1]
            assert pool.call(lambda: pool.core(0).unacknowledged) == 0
            assert reports.got == [7, 8]  # each once
        finally:
            await client.close()


async def test_a_cds_during_initialisation_is_acknowledged() -> None:
    # The modem still has the previous host's +CSMS=1 and routing: a +CDS can arrive before
    # this client has read +CSMS back, and still wants its +CNMA.
    with EmulatorPool(["generic"], seed=1) as pool:
        pool.boot()
        reports = _Reports()
        config = ClientConfig(timeouts=TIMEOUTS)
        before = ModemClient(pool.path(0), config=config, on_inbound=reports.store)
        await before.open()
        await before.close()
        sent: list[str] = []

        def on_command(line: str, _seconds: float) -> None:
            if line.startswith("AT+CPMS=") and not sent:
                sent.append(line)
                _send_report(pool, 9)  # while the client sets the modem up

        client = ModemClient(
            pool.path(0), config=config, on_inbound=reports.store, on_command=on_command
        )
        await client.open()
        try:
            assert sent
            assert await reports.next() == 9
            await client.wait_idle()
            pool.advance(16)
            assert _routing(pool) == [1, 1]  # it was acknowledged in time
            pool.advance(NACK_RETRY)
            await client.wait_idle()
            assert reports.got == [9]  # and neither refused nor sent again
            assert pool.call(lambda: pool.core(0).unacknowledged) == 0
        finally:
            await client.close()


async def test_storage_full_then_recovery_by_scan() -> None:
    async with rig() as r:
        r.pool.set_fault(0, "storage_full")
        r.pool.inject_sms(r.msisdn, "held by the SMSC")
        await r.client.wait_idle()
        assert r.inbound == []
        r.pool.clear_fault(0, "storage_full")  # SMMA: the SMSC delivers now
        (sms,) = await r.messages(1)
        assert sms.deliver.user_data.text == "held by the SMSC"


async def test_messages_waiting_at_start_are_scanned() -> None:
    with EmulatorPool(["generic"], seed=2) as pool:
        pool.boot()
        pool.inject_sms(pool.info()[0].msisdn, "arrived while we were away")
        holder = Rig(pool, None)  # type: ignore[arg-type]
        holder.client = await open_client(pool, 0, holder, scan_on_start=True)
        try:
            (sms,) = await holder.messages(1)
            assert sms.deliver.user_data.text == "arrived while we were away"
            assert sms.index is not None
        finally:
            await holder.client.close()


def test_part_results_are_plain_data() -> None:
    result = PartResult(1, 1, SubmitStatus.SENT, 5, OUTSIDE, datetime.now(UTC))
    assert result.status.value == "sent"


async def test_socket_transport_to_an_emulated_modem() -> None:
    """socket://host:port: a TCP bridge to the modem's PTY (like ser2net on a remote box)."""
    import os
    import tty

    with EmulatorPool(["generic"], seed=3) as pool:
        pool.boot()
        fd = os.open(pool.path(0), os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(fd)
        loop = asyncio.get_running_loop()
        writers: list[asyncio.StreamWriter] = []

        def pty_readable() -> None:
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                return
            for w in writers:
                w.write(data)

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            try:
                while data := await reader.read(4096):
                    os.write(fd, data)
            finally:
                writers.remove(writer)
                writer.close()

        loop.add_reader(fd, pty_readable)
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            client = ModemClient(
                f"socket://127.0.0.1:{port}", config=ClientConfig(timeouts=TIMEOUTS)
            )
            await client.open()
            try:
                ident = await client.identity()
                assert ident.imsi == pool.info()[0].imsi
                (part,) = await client.send_sms(OUTSIDE, "over TCP")
                assert part.status is SubmitStatus.SENT
            finally:
                await client.close()
        finally:
            server.close()
            await server.wait_closed()
            loop.remove_reader(fd)
            os.close(fd)


async def test_a_routed_report_that_cannot_be_stored_is_refused_and_routing_stays_on() -> None:
    # A full disk (the handler fails): unacknowledged, the modem would turn routing off after
    # its +CNMA timer (TS 27.005 3.4.4) and later messages would wait for the storage scan.
    # Refused with +CNMA=2 instead, the SMSC sends it again and it is stored once.
    with EmulatorPool(["generic"], seed=1) as pool:
        pool.boot()
        reports = _Reports()
        failures = [RuntimeError("database or disk is full")]
        failed = asyncio.Event()

        async def store(item: Inbound) -> bool:
            if failures:
                failed.set()
                raise failures.pop()
            return await reports.store(item)

        client = ModemClient(pool.path(0), config=ClientConfig(timeouts=TIMEOUTS),
                             on_inbound=store)  # fmt: skip
        await client.open()
        try:
            assert client.ack_required
            await client.wait_idle()
            _send_report(pool, 9)
            await asyncio.wait_for(failed.wait(), EVENT_TIMEOUT)
            await client.wait_idle()  # its +CNMA=2 answered
            assert pool.call(lambda: pool.core(0).unacknowledged) == 0
            pool.advance(16)  # past the modem's +CNMA timer and the SMSC's retry
            assert _routing(pool) == [1, 1]
            assert await reports.next() == 9  # sent again by the SMSC, stored this time
            _send_report(pool, 10)
            assert await reports.next() == 10  # still routed to us, at once
            await client.wait_idle()
            assert pool.call(lambda: pool.core(0).unacknowledged) == 0
            assert reports.got == [9, 10]
        finally:
            await client.close()
