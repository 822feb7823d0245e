"""Rotation and throttle judged by the emulated network's own clock: 4 SIMs, 400 messages.

The daemon and the emulated modems talk over real PTYs; time is one virtual clock for both (the
gateway's throttle sleeps on it, the network stamps each submit with it), so the network's
record is judged exactly, with no allowance for how loaded the machine is, at the real default
pace of one SMS per second per SIM.
"""

import asyncio
import itertools
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from gateway.accounts import create_account
from gateway.config import Config
from gateway.models import ThrottlePolicy
from gateway.pool import HealthPolicy, SimAvailability
from modem.emulator import EmulatorPool
from tests.emulated import parts_sent, serving
from tests.lockstep import LockstepClock

THROTTLE = ThrottlePolicy().interval  # the pace of a SIM nobody configured: 1 s
MESSAGES = 400
DEADLINE = 90.0  # seconds of wall time for the whole scenario; fails instead of hanging


@dataclass(frozen=True)
class Outcome:
    """What the network saw (virtual seconds since the start, per sender) and the gateway did."""

    sends: dict[str, list[float]]
    attempts: int  # AT+CMGS tried, failed ones included
    sick: SimAvailability | None  # where the failing SIM stands at the end


async def _scenario(
    emu: EmulatorPool, clock: LockstepClock, tmp_path: Path, sick: int | None
) -> tuple[int, SimAvailability | None]:
    ports = [i.path for i in emu.info()]
    config = Config(data_dir=tmp_path, http_host="127.0.0.1", http_port=0)
    async with serving(config, ports, frontends=[], lockstep=clock) as gateway:
        if sick is not None:
            emu.set_fault(sick, "cms_error", code=38, rate=1.0)  # network out of order, always
        # Wake when the last part is recorded sent (the outbox's own hook), not by polling.
        all_sent = parts_sent(gateway, MESSAGES)
        store = gateway.store
        account = create_account(store, "bulk", now=clock.wall(), unlimited=True)
        numbers = [f"+1555{i:07d}" for i in range(MESSAGES)]
        result = gateway.service.submit(account.account_id, numbers, "Sale!")
        await all_sent.wait()  # bounded by DEADLINE around the whole scenario
        attempts = sum(p["attempts"] for m in result.message_ids for p in store.parts(m))
        if sick is None:
            return attempts, None
        pooled = gateway.pool.by_number(emu.info()[sick].msisdn)
        assert pooled is not None
        return attempts, gateway.pool.availability(pooled.sim_id, clock.monotonic())


def _run(tmp_path: Path, sick: int | None = None) -> Outcome:
    with EmulatorPool(["generic"] * 4, seed=4, report_delay=0.0) as emu:
        clock = LockstepClock(emu)
        start = clock.monotonic()
        attempts, availability = clock.run(
            asyncio.wait_for(_scenario(emu, clock, tmp_path, sick), DEADLINE)
        )
        sends: dict[str, list[float]] = defaultdict(list)
        for record in emu.outside():
            sends[record.sender].append(record.time - start)
        for times in sends.values():
            times.sort()
        return Outcome(dict(sends), attempts, availability)


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


def test_400_messages_spread_evenly_at_the_throttle(tmp_path: Path) -> None:
    outcome = _run(tmp_path)
    sends = outcome.sends
    assert len(sends) == 4
    for sim, times in sends.items():
        gaps = _gaps(times)
        # The network's timestamps, not ours: no SIM ever sent twice within its throttle...
        assert min(gaps) >= THROTTLE, (sim, min(gaps))
        # ...and none idled: the pace is the throttle's, not a stall's.
        assert max(gaps) == THROTTLE, (sim, max(gaps))
    # Even: every SIM sent its quarter, all four from the batch's first second to its last.
    assert {len(times) for times in sends.values()} == {MESSAGES // 4}
    start = min(times[0] for times in sends.values())
    last = start + (MESSAGES // 4 - 1) * THROTTLE
    assert {(times[0], times[-1]) for times in sends.values()} == {(start, last)}
    assert outcome.attempts == MESSAGES  # nothing was tried twice


def test_a_failing_sim_leaves_rotation_and_the_others_send_its_messages(tmp_path: Path) -> None:
    outcome = _run(tmp_path, sick=3)
    sends = outcome.sends
    assert sum(len(times) for times in sends.values()) == MESSAGES  # every message went out
    assert len(sends) == 3  # ...through the three healthy SIMs only
    for sim, times in sends.items():
        assert min(_gaps(times)) >= THROTTLE, (sim, min(_gaps(times)))  # still at the throttle
    counts = [len(times) for times in sends.values()]
    assert max(counts) - min(counts) <= 1  # ...sharing its load evenly
    # It left rotation: three errors cooled it for a minute, three more when it came back cooled
    # it for two, and it is still cooling when the batch is done (kept in rotation, it would
    # have been tried for a quarter of the batch, each message up to five times).
    errors_to_cool = HealthPolicy().errors_to_cool
    assert outcome.attempts - MESSAGES == 2 * errors_to_cool
    assert outcome.sick is SimAvailability.COOLING
