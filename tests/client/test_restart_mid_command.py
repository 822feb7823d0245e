"""A modem that restarts while AT+CMGS is in flight: the client ends the command at the boot URC
that proves it, not at its 60 s timeout; the part is unknown (the network may have taken it);
the modem is set up again and the next message goes out. Huawei's periodic `^BOOT` ends nothing.

Real boot sequences from /work/shared/transcripts are replayed by a scripted modem on a virtual
loop (tests.vloop); the emulated modems run on one virtual clock with the client
(LockstepClock(virtual_loop=True)), with the driver's real timeouts. Nothing sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import pytest

from gateway.outbox import OutcomeKind
from gateway.worker import outcome_of
from modem.client import (
    ClientConfig,
    ClientEvent,
    ModemClient,
    ModemRebooted,
    PartResult,
    SubmitStatus,
    Timeouts,
)
from modem.emulator import EmulatorPool
from modem.pdu import SmsSubmit, decode_tpdu
from tests.at.transcript import section_lines
from tests.client.fake import OK, PROMPT, FakeModem, factory, lines
from tests.lockstep import LockstepClock
from tests.vloop import run as run_virtual

T = TypeVar("T")
OUTSIDE = "+4915112345678"
SUBMIT = Timeouts().submit  # the driver's own: 60 s for the network's answer to AT+CMGS
BOUND = 600.0  # virtual seconds a scenario may take at most: fails instead of hanging

# What real modems print on a restart (the transcripts name their sources).
BOOTS = {
    "sim7600": section_lines("simcom-sim7600.txt", "esp-protocols #789"),  # RDY first
    "sim800": section_lines("simcom-sim800.txt", "boot"),  # no RDY (none while auto-bauding)
}
E1752_BOOT = next(
    line
    for line in section_lines("huawei-e1752.txt", "modem reset in the middle")
    if line.startswith("^BOOT")
)


@dataclass(frozen=True)
class Outcome:
    """One part sent into a restart (or a ^BOOT), and what followed."""

    part: PartResult
    took: float  # virtual seconds from send_sms to its result
    rebooted: int  # ModemRebooted events
    stats: dict[str, int]
    after: PartResult  # the next message


# --- replayed transcripts against a scripted modem --------------------------------------------


def _scripted(
    modem: FakeModem, script: Callable[[asyncio.AbstractEventLoop], None] | None = None
) -> Outcome:
    """Open a client on `modem`; its first PDU is answered by `script` (on the virtual loop),
    unless None (the modem's own rules then script the exchange)."""

    async def scenario() -> Outcome:
        loop = asyncio.get_running_loop()
        client = ModemClient(
            transport_factory=factory(modem),  # type: ignore[arg-type]
            config=ClientConfig(scan_on_start=False),  # the driver's real timeouts
        )
        events: list[ClientEvent] = []
        await client.open()
        try:
            client.add_listener(events.append)
            first = script

            def body_reply(body: str) -> str | None:
                nonlocal first
                if first is None:
                    return modem.submit_ok(body)
                first(loop)
                first = None
                return None

            modem.body_reply = body_reply  # type: ignore[method-assign]
            started = loop.time()
            (part,) = await client.send_sms(OUTSIDE, "into the restart")
            took = loop.time() - started
            await client.wait_idle()
            (after,) = await client.send_sms(OUTSIDE, "after it")
            rebooted = sum(isinstance(e, ModemRebooted) for e in events)
            return Outcome(part, took, rebooted, dict(client.stats), after)
        finally:
            await client.close()

    return run_virtual(asyncio.wait_for(scenario(), BOUND))


@pytest.mark.parametrize(("name", "proof"), [("sim7600", "RDY"), ("sim800", "Call Ready")])
def test_a_replayed_boot_ends_cmgs_at_the_line_that_proves_the_restart(
    name: str, proof: str
) -> None:
    modem = FakeModem()
    boot = BOOTS[name]

    def restart(loop: asyncio.AbstractEventLoop) -> None:
        # The modem took the PDU and restarted: no answer, its settings gone, a boot URC a
        # second, the first two seconds on.
        modem.cnmi = "0,0,0,0,0"
        for n, line in enumerate(boot):
            loop.call_later(2.0 + n, modem.send, lines(line))

    out = _scripted(modem, restart)
    assert out.part.status is SubmitStatus.UNKNOWN  # it may have reached the network
    assert out.part.reason is not None and f"restarted ({proof})" in out.part.reason
    assert out.took == pytest.approx(2.0 + boot.index(proof))  # not SUBMIT (60 s)
    assert out.stats["timeouts"] == 0
    assert out.rebooted == 1 and out.stats["reboots"] == 1  # set up again, once
    assert modem.cnmi == "2,1,2,1,0"
    assert modem.commands().count("AT+CMGF=0") == 2  # the initialisation ran a second time
    assert out.after.status is SubmitStatus.SENT


def test_a_restart_before_the_prompt_fails_the_part_surely_unsent() -> None:
    modem = FakeModem()

    def no_prompt(_m: object) -> None:
        # AT+CMGS taken, then the modem restarts before its "> ": the PDU never leaves us.
        modem.cnmi = "0,0,0,0,0"
        asyncio.get_running_loop().call_later(1.0, modem.send, lines(BOOTS["sim7600"][0]))
        modem.on(r"\+CMGS=\d+", PROMPT)  # the next one is answered again

    modem.on(r"\+CMGS=\d+", no_prompt)
    out = _scripted(modem)
    assert out.part.status is SubmitStatus.FAILED  # nothing was handed over: safe to retry
    assert outcome_of(out.part).kind is OutcomeKind.TEMPORARY  # the outbox queues it again
    assert out.part.reason is not None and "restarted (RDY)" in out.part.reason
    assert out.took == pytest.approx(1.0)  # not the prompt's 10 s
    assert out.rebooted == 1
    assert len(modem.submitted) == 1 and out.after.status is SubmitStatus.SENT


def test_a_replayed_huawei_boot_urc_mid_cmgs_ends_nothing() -> None:
    modem = FakeModem(manufacturer="huawei")
    modem.on(r"\^USSDMODE=0", OK)

    def periodic(loop: asyncio.AbstractEventLoop) -> None:
        # E1752: ^BOOT twice while the network takes its time, then the answer.
        loop.call_later(2.0, modem.send, lines(E1752_BOOT))
        loop.call_later(4.0, modem.send, lines(E1752_BOOT))
        loop.call_later(5.0, modem.send, modem.submit_ok(""))

    out = _scripted(modem, periodic)
    assert out.part.status is SubmitStatus.SENT
    assert out.took == pytest.approx(5.0)
    assert out.rebooted == 0 and out.stats["reboots"] == 0
    assert modem.commands().count("AT+CMGF=0") == 1
    assert out.after.status is SubmitStatus.SENT


# --- emulated modems on the lockstep clock -----------------------------------------------------


def _on_lockstep(
    personality: str, scenario: Callable[[EmulatorPool, ModemClient], Awaitable[T]]
) -> T:
    with EmulatorPool([personality], seed=5) as emu:
        emu.boot()
        clock = LockstepClock(emu, virtual_loop=True)

        async def main() -> T:
            client = ModemClient(emu.path(0), config=ClientConfig())  # real timeouts
            await client.open()
            try:
                return await scenario(emu, client)
            finally:
                await client.close()

        return clock.run(asyncio.wait_for(main(), BOUND))


def _texts(emu: EmulatorPool) -> list[str | None]:
    out = []
    for sms in emu.outside():
        tpdu = decode_tpdu(sms.tpdu)
        assert isinstance(tpdu, SmsSubmit)
        out.append(tpdu.user_data.text)
    return out


async def _send_into(emu: EmulatorPool, client: ModemClient, fault: Callable[[], None]) -> Outcome:
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[ClientEvent] = asyncio.Queue()
    client.add_listener(events.put_nowait)
    fault()
    started = loop.time()
    (part,) = await client.send_sms(OUTSIDE, "into the restart")
    took = loop.time() - started
    await client.wait_idle()
    (after,) = await client.send_sms(OUTSIDE, "after it")
    rebooted = 0
    while not events.empty():
        rebooted += isinstance(events.get_nowait(), ModemRebooted)
    return Outcome(part, took, rebooted, dict(client.stats), after)


# The first boot URC comes this long after the restart (modem.emulator.personalities).
FIRST_BOOT_URC = 0.5


@pytest.mark.parametrize("sent", [1, 0], ids=["network-took-it", "network-never-saw-it"])
@pytest.mark.parametrize("personality", ["sim800", "sim7600", "ec25", "m35", "cinterion"])
def test_an_emulated_reboot_inside_cmgs_ends_it_at_the_boot_urc(
    personality: str, sent: int
) -> None:
    async def scenario(emu: EmulatorPool, client: ModemClient) -> tuple[Outcome, list[str | None]]:
        out = await _send_into(
            emu, client, lambda: emu.set_fault(0, "submit_crash", how="reboot", sent=sent)
        )
        return out, _texts(emu)

    out, texts = _on_lockstep(personality, scenario)
    assert out.part.status is SubmitStatus.UNKNOWN  # never "failed": it may be out there
    assert out.took == pytest.approx(FIRST_BOOT_URC, abs=0.01)  # SUBMIT (60 s) before
    assert out.stats["timeouts"] == 0
    assert out.rebooted == 1 and out.stats["reboots"] == 1
    assert out.after.status is SubmitStatus.SENT
    # The network's own record: the first part once if it got it, never twice; the next one.
    assert texts == (["into the restart"] if sent else []) + ["after it"]


def test_a_modem_silent_on_restart_is_still_only_noticed_at_the_timeout() -> None:
    """The generic modem prints no boot URC: nothing proves the restart before the timeout
    (its echo, back on, gives it away at the next command)."""

    async def scenario(emu: EmulatorPool, client: ModemClient) -> Outcome:
        return await _send_into(
            emu, client, lambda: emu.set_fault(0, "submit_crash", how="reboot", sent=1)
        )

    out = _on_lockstep("generic", scenario)
    assert out.part.status is SubmitStatus.UNKNOWN
    assert out.took == pytest.approx(SUBMIT, abs=0.01)
    assert out.stats["timeouts"] == 1


def test_emulated_huawei_periodic_boot_inside_cmgs_ends_nothing() -> None:
    async def scenario(emu: EmulatorPool, client: ModemClient) -> Outcome:
        def slow_with_boots() -> None:
            emu.set_fault(0, "slow_radio", seconds=20)

            def arm() -> None:
                core = emu.core(0)
                for at in (5.0, 10.0, 15.0):
                    core.scheduler.call_later(at, lambda: core.inject_urc(E1752_BOOT))

            emu.call(arm)

        return await _send_into(emu, client, slow_with_boots)

    out = _on_lockstep("huawei", scenario)
    assert out.part.status is SubmitStatus.SENT
    assert out.took == pytest.approx(20.0, abs=0.01)
    assert out.rebooted == 0 and out.stats["reboots"] == 0
