"""The lockstep clock: sleepers wake in order at their virtual times, the network's clock moves
with them, and nothing moves while the gateway says a send is under way."""

import asyncio

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
