"""EmulatorPool: a network and N emulated modems on one asyncio loop in a background thread.

Every public method is thread-safe and blocking (it runs on the loop and waits, with a timeout),
so plain pytest tests, blocking clients such as python-gammu and asyncio code can all use it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from modem.emulator.clock import LoopClock, ManualClock, Scheduler
from modem.emulator.device import EmulatedModem, ModemCore, ModemInfo
from modem.emulator.faults import Fault
from modem.emulator.firmware import Personality
from modem.emulator.network import Network, NetworkStats, OutboundSms, SimCard, make_identities
from modem.emulator.personalities import GENERIC, get_personality
from modem.emulator.udev import SerialLinks

T = TypeVar("T")
CALL_TIMEOUT = 10.0


class EmulatorPool:
    """A running emulated network with modems on PTYs.

    clock="manual" (the default) gives virtual time that moves only through `advance()`: nothing
    in the emulator ever waits on the wall clock, so tests never sleep. clock="real" uses the
    loop's time (for the CLI and demos); `time_scale` speeds it up. With `links`, that
    directory gets the by-id/ and by-path/ links udev would make (modem.emulator.udev).
    """

    def __init__(
        self,
        modems: int | Sequence[str | Personality] = 0,
        *,
        seed: int | str = 0,
        clock: str = "manual",
        time_scale: float = 1.0,
        report_delay: float = 0.0,
        delivery_delay: float = 0.0,
        pin_enabled: bool = False,
        max_modems: int = 64,
        resend_unacknowledged: bool = False,
        links: str | Path | None = None,
    ) -> None:
        self.seed = seed
        self.links = SerialLinks(links) if links is not None else None
        self._clock_kind = clock
        self._time_scale = time_scale
        self._pin_enabled = pin_enabled
        self._identities = make_identities(seed, max(max_modems, _count(modems)))
        self._input_cond = threading.Condition()
        self._input_waiters = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="smsgw-emulator", daemon=True)
        self._started = threading.Event()
        self._thread.start()
        self._started.wait(CALL_TIMEOUT)
        self.clock: Scheduler = self.call(self._make_clock)
        self.network = Network(
            scheduler=self.clock,
            report_delay=report_delay,
            delivery_delay=delivery_delay,
            resend_unacknowledged=resend_unacknowledged,
        )
        self.modems: list[EmulatedModem] = []
        if isinstance(modems, int):
            kinds: Sequence[str | Personality] = [GENERIC] * modems
        else:
            kinds = modems
        for kind in kinds:
            self.add_modem(kind)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._started.set)
        self._loop.run_forever()

    def _make_clock(self) -> Scheduler:
        if self._clock_kind == "manual":
            return ManualClock(self._loop.call_soon)
        if self._clock_kind == "real":
            return LoopClock(self._loop, self._time_scale)
        raise ValueError(f"clock must be 'manual' or 'real', not {self._clock_kind!r}")

    # -- running things on the loop -------------------------------------------------------------
    def _submit(self, fn: Callable[..., T], *args: object) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future

    def call(self, fn: Callable[..., T], *args: object, timeout: float = CALL_TIMEOUT) -> T:
        """Run fn(*args) on the emulator's loop thread and return its result."""
        if threading.current_thread() is self._thread:
            return fn(*args)
        return self._submit(fn, *args).result(timeout)

    async def acall(self, fn: Callable[..., T], *args: object) -> T:
        """The same, awaited from asyncio code on another loop (no executor threads)."""
        return await asyncio.wait_for(asyncio.wrap_future(self._submit(fn, *args)), CALL_TIMEOUT)

    async def aadvance(self, seconds: float) -> None:
        """advance() for asyncio callers."""
        clock = self.clock
        if not isinstance(clock, ManualClock):
            raise TypeError("advance() needs clock='manual'")
        await self.acall(clock.advance, seconds)
        for _ in range(3):
            await self.acall(lambda: None)

    def sync(self) -> None:
        """Wait until everything already queued on the loop (zero-delay work) has run, bytes the
        host already wrote to a modem included."""
        self.call(self._pull_input)
        for _ in range(3):
            self.call(lambda: None)

    def _pull_input(self) -> None:
        for modem in self.modems:
            modem.pull_input()

    # -- modems ---------------------------------------------------------------------------------
    def add_modem(
        self, personality: str | Personality = GENERIC, *, pin_enabled: bool | None = None
    ) -> EmulatedModem:
        """Plug in one more modem with the next SIM of the seeded sequence (its PIN enabled as
        the pool's `pin_enabled` says, unless given), into USB port 1.<n>."""
        p = get_personality(personality) if isinstance(personality, str) else personality
        index = len(self.modems)
        if index >= len(self._identities):
            self._identities = make_identities(self.seed, index + 1)
        pin = self._pin_enabled if pin_enabled is None else pin_enabled
        sim = SimCard(self._identities[index], pin_enabled=pin)
        sim.next_reference = _first_reference(self.seed, index)

        def make() -> EmulatedModem:
            return EmulatedModem(
                self._loop,
                index=index,
                network=self.network,
                sim=sim,
                personality=p,
                scheduler=self.clock,
                rng_seed=f"{self.seed}:{index}",
                links=self.links,
            )

        modem = self.call(make)
        modem.on_input = self._input_arrived
        self.modems.append(modem)
        return modem

    def _input_arrived(self) -> None:
        if self._input_waiters:
            with self._input_cond:
                self._input_cond.notify_all()

    def wait_for_input(self, index: int, total: int, timeout: float = CALL_TIMEOUT) -> None:
        """Block until modem `index` has read `total` bytes from its host in all (even hung)."""
        core = self.modems[index].core
        with self._input_cond:
            self._input_waiters += 1
            try:
                if not self._input_cond.wait_for(lambda: core.bytes_in >= total, timeout):
                    raise TimeoutError(f"modem {index} read {core.bytes_in} of {total} bytes")
            finally:
                self._input_waiters -= 1

    def info(self) -> list[ModemInfo]:
        """Path and identities of every modem (paths change after an unplug)."""
        return self.call(lambda: [m.info() for m in self.modems])

    def path(self, index: int) -> str:
        """Current PTY path of modem `index` ('' while unplugged)."""
        return self.call(lambda: self.modems[index].path)

    def core(self, index: int) -> ModemCore:
        """The firmware object (touch it only through call())."""
        return self.modems[index].core

    # -- time -----------------------------------------------------------------------------------
    def advance(self, seconds: float) -> int:
        """Move virtual time forward (manual clock only), then let zero-delay work settle."""
        clock = self.clock
        if not isinstance(clock, ManualClock):
            raise TypeError("advance() needs clock='manual'")
        ran = self.call(clock.advance, seconds)
        self.sync()
        return ran

    def boot(self) -> None:
        """Advance virtual time until every modem is ready (boot URCs done, SIM not busy)."""
        for _ in range(100):
            if all(self.call(lambda m=m: m.core.ready) for m in self.modems):
                return
            self.advance(1.0)
        raise TimeoutError("modems did not finish booting")

    # -- faults ---------------------------------------------------------------------------------
    def set_fault(self, index: int, fault: Fault | str, **params: float | int | str) -> None:
        """Switch a fault on for one modem."""
        self.call(lambda: self.modems[index].set_fault(fault, **params))

    def clear_fault(self, index: int, fault: Fault | str) -> None:
        """Switch a fault off for one modem."""
        self.call(lambda: self.modems[index].clear_fault(fault))

    def unplug(self, index: int, seconds: float = 0.0, *, port: str | None = None) -> str:
        """Unplug a modem (to come back in USB port `port` if given); returns the new path it
        will reappear under."""
        return self.call(lambda: self.modems[index].unplug(seconds, port=port))

    def by_id(self, index: int) -> Path:
        """Where modem `index`'s /dev/serial/by-id link is while it is plugged in (needs
        `links`): the stable name an operator configures a port by."""
        if self.links is None:
            raise ValueError("EmulatorPool(links=...) keeps no udev links")
        modem = self.modems[index]
        return self.links.by_id(modem.personality.name, modem.sim.identity.imei)

    def inject_urc(self, index: int, line: str, where: str = "now") -> None:
        """A URC now, inside the next answer ('answer') or after the next prompt ('cmgs')."""
        self.call(lambda: self.modems[index].core.inject_urc(line, where))

    def inject_garbage(self, index: int, data: bytes) -> None:
        """Raw bytes on one modem's line."""
        self.call(lambda: self.modems[index].core.inject_garbage(data))

    # -- the outside world ----------------------------------------------------------------------
    def inject_tpdus(self, msisdn: str, tpdus: Sequence[bytes]) -> None:
        """Deliver SMS-DELIVER TPDUs from the outside world, in the order given."""
        self.call(self.network.inject_tpdus, msisdn, list(tpdus))
        self.sync()

    def inject_sms(
        self,
        msisdn: str,
        text: str | None,
        sender: str = "+4915112345678",
        *,
        data: bytes | None = None,
        reference: int = 0x42,
        ref16: bool = False,
        message_class: int | None = None,
        order: Sequence[int] | None = None,
    ) -> int:
        """Deliver a message from the outside world; returns the number of parts.

        See modem.emulator.inbound.deliver_parts for the options (UCS-2, 8-bit data, 16-bit
        references, out-of-order parts, class 0, alphanumeric senders).
        """
        from modem.emulator.inbound import deliver_parts

        def build() -> list[bytes]:
            return deliver_parts(
                text,
                sender,
                scts_epoch=self.clock.now(),
                data=data,
                reference=reference,
                ref16=ref16,
                message_class=message_class,
                order=order,
            )

        parts = self.call(build)
        self.inject_tpdus(msisdn, parts)
        return len(parts)

    def outside(self) -> list[OutboundSms]:
        """Everything sent to numbers outside the emulated network so far."""
        return self.call(lambda: list(self.network.outside))

    def stats(self) -> NetworkStats:
        """Network counters."""
        return self.call(lambda: NetworkStats(**vars(self.network.stats)))

    # -- shutdown -------------------------------------------------------------------------------
    def close(self) -> None:
        """Close every PTY and stop the loop thread."""
        if not self._thread.is_alive():
            return

        def shutdown() -> None:
            for m in self.modems:
                m.close()

        try:
            self.call(shutdown)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(CALL_TIMEOUT)
            self._loop.close()

    def __enter__(self) -> EmulatorPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _count(modems: int | Sequence[str | Personality]) -> int:
    return modems if isinstance(modems, int) else len(modems)


def _first_reference(seed: int | str, index: int) -> int:
    """A seeded starting TP-MR per SIM, so wrap-around at 255 shows up in ordinary runs."""
    import random

    return random.Random(f"smsgw-emulator:{seed}:{index}:mr").randrange(256)
