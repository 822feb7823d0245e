"""The lockstep clock: sleepers wake in order at their virtual times, the network's clock moves
with them, and nothing moves while the gateway says a send is under way."""

import asyncio
import contextlib
import os
import termios
import time

from modem.emulator import EmulatorPool
from tests.lockstep import LockstepClock


def test_sleepers_wake_in_order_and_the_network_clock_moves_with_them() -> None:
    with EmulatorPool(0) as emu:
        clock = LockstepClock(emu)
        start = clock.monotonic()
        woke: list[tuple[float, float]] = []

        async def sleeper(delay: float) -> None:
            await clock.sleep(delay)
            woke.append((delay, clock.monotonic() - start))

        async def main() -> None:
            await asyncio.gather(sleeper(3.0), sleeper(1.0), sleeper(2.0), sleeper(1.0))

        clock.run(main())
        assert woke == [(1.0, 1.0), (1.0, 1.0), (2.0, 2.0), (3.0, 3.0)]
        assert emu.clock.now() - start == 3.0  # what the network stamps submits with
        assert clock.wall().timestamp() == emu.clock.now()


def test_time_stands_still_while_held_although_the_loop_is_idle() -> None:
    with EmulatorPool(0) as emu:
        clock = LockstepClock(emu)
        start = clock.monotonic()
        on_wire = True
        clock.hold_while(lambda: on_wire)
        seen: list[float] = []

        def answer() -> None:  # the modem's reply, a real event some real time later
            nonlocal on_wire
            seen.append(clock.monotonic() - start)
            on_wire = False

        async def main() -> None:
            asyncio.get_running_loop().call_later(0.05, answer)
            await clock.sleep(1.0)
            seen.append(clock.monotonic() - start)

        clock.run(main())
        assert seen == [0.0, 1.0]


def test_a_wall_clock_step_moves_neither_monotonic_time_nor_the_network() -> None:
    with EmulatorPool(0) as emu:
        clock = LockstepClock(emu)
        start, network = clock.monotonic(), emu.clock.now()
        clock.step_wall(-3600.0)
        assert clock.wall().timestamp() == network - 3600.0
        assert (clock.monotonic(), emu.clock.now()) == (start, network)
        clock.step_wall(7200.5)
        assert clock.wall().timestamp() == network + 3600.5


def test_a_virtual_loop_times_out_only_a_modem_that_does_not_answer() -> None:
    with EmulatorPool(1) as emu:
        emu.boot()
        clock = LockstepClock(emu, virtual_loop=True)
        fd = os.open(emu.path(0), os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)

        async def ask(timeout: float) -> tuple[bytes, float]:
            loop = asyncio.get_running_loop()
            got: asyncio.Queue[bytes] = asyncio.Queue()
            loop.add_reader(fd, lambda: got.put_nowait(os.read(fd, 1024)))
            start = loop.time()
            try:
                os.write(fd, b"AT\r")
                answer = b""
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        while not answer.endswith(b"OK\r\n"):
                            answer += await got.get()
                return answer, loop.time() - start
            finally:
                loop.remove_reader(fd)

        async def main() -> list[tuple[bytes, float]]:
            seen = [await ask(5.0)]
            emu.set_fault(0, "hang")
            seen.append(await ask(5.0))
            await asyncio.sleep(3600.0)  # an hour of the loop's own clock passes at once
            return seen

        try:
            start, began = clock.monotonic(), time.monotonic()
            answered, swallowed = clock.run(main())
        finally:
            os.close(fd)
        assert answered == (b"AT\r\r\nOK\r\n", 0.0)  # answered: no virtual time went by
        assert swallowed == (b"", 5.0)  # hung: timed out at the deadline, in virtual seconds
        assert clock.monotonic() - start == 3605.0
        assert time.monotonic() - began < 5.0  # and none of it was waited for


def test_a_virtual_loop_wakes_for_the_emulators_own_timers() -> None:
    with EmulatorPool(["sim800"]) as emu:
        emu.boot()
        clock = LockstepClock(emu, virtual_loop=True)
        fd = os.open(emu.path(0), os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        termios.tcflush(fd, termios.TCIFLUSH)  # the first boot's URCs, written before we looked

        async def main() -> tuple[bytes, float]:
            loop = asyncio.get_running_loop()
            got: asyncio.Queue[bytes] = asyncio.Queue()
            loop.add_reader(fd, lambda: got.put_nowait(os.read(fd, 1024)))
            start = loop.time()
            try:
                emu.set_fault(0, "reboot")  # its RDY comes 0.5 s later, on the emulator's timer
                seen = b""
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(60.0):
                        while b"RDY" not in seen:
                            seen += await got.get()
                return seen, loop.time() - start
            finally:
                loop.remove_reader(fd)

        try:
            seen, took = clock.run(main())
        finally:
            os.close(fd)
        assert b"RDY" in seen
        assert took == 0.5  # not the 60 s timeout the loop would have jumped to


def test_a_virtual_loop_waits_for_work_it_handed_to_a_thread() -> None:
    with EmulatorPool(0) as emu:
        clock = LockstepClock(emu, virtual_loop=True)
        start = clock.monotonic()

        async def main() -> str:
            ticker = asyncio.create_task(asyncio.sleep(3600.0))  # a timer that could come due
            try:
                async with asyncio.timeout(1.0):  # an fsync's few real milliseconds: no timeout
                    return await asyncio.to_thread(lambda: time.sleep(0.05) or "committed")
            finally:
                ticker.cancel()

        assert clock.run(main()) == "committed"
        assert clock.monotonic() == start
