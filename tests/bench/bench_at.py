"""AT driver benchmarks: send_sms() -> first byte of AT+CMGS, AT round trips/s vs the emulator,
and the sans-I/O session's parsing rate."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable

from modem.at import Session
from modem.at import commands as cmds
from modem.client import ClientConfig, ModemClient, Timeouts
from modem.emulator import EmulatorPool
from modem.transport import AsyncioTransport, open_transport

SENDS = 300
ROUND_TRIPS = 3000
PARSE_LINES = 200_000


class _Stamp:
    """Wraps a transport; remembers when the first byte of an AT+CMGS was written."""

    def __init__(self, inner: AsyncioTransport) -> None:
        self.inner = inner
        self.cmgs_at: float | None = None

    def write(self, data: bytes) -> None:
        if self.cmgs_at is None and data.startswith(b"AT+CMGS="):
            self.cmgs_at = time.perf_counter()
        self.inner.write(data)

    def close(self) -> None:
        self.inner.close()

    async def wait_closed(self) -> None:
        await self.inner.wait_closed()

    @property
    def is_closing(self) -> bool:
        return self.inner.is_closing


async def _bench(path: str) -> dict[str, float]:
    stamp: list[_Stamp] = []

    async def factory(
        on_data: Callable[[bytes], None], on_lost: Callable[[Exception | None], None]
    ) -> _Stamp:
        wrapped = _Stamp(await open_transport(path, on_data, on_lost))
        stamp.append(wrapped)
        return wrapped

    config = ClientConfig(
        scan_on_start=False, timeouts=Timeouts(keepalive=3600.0, scan_interval=3600.0)
    )
    client = ModemClient(transport_factory=factory, config=config)
    await client.open()
    try:
        latencies = []
        for i in range(SENDS):
            stamp[0].cmgs_at = None
            start = time.perf_counter()
            parts = await client.send_sms("+4915112345678", f"bench {i}", status_report=False)
            assert parts[0].message_reference is not None
            sent_at = stamp[0].cmgs_at
            assert sent_at is not None
            latencies.append(sent_at - start)
        start = time.perf_counter()
        for _ in range(ROUND_TRIPS):
            await client.execute(cmds.AT)
        rate = ROUND_TRIPS / (time.perf_counter() - start)
    finally:
        await client.close()
    latencies.sort()
    return {
        "cmgs_first_byte_median_us": statistics.median(latencies) * 1e6,
        "cmgs_first_byte_p99_us": latencies[int(len(latencies) * 0.99) - 1] * 1e6,
        "at_round_trips_per_s": rate,
    }


def _parse_rate() -> float:
    """Lines per second through framer + session (a +CSQ answer repeated)."""
    session = Session()
    chunk = b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n"
    start = time.perf_counter()
    for _ in range(PARSE_LINES // 2):
        session.send(cmds.SIGNAL)
        session.receive_data(chunk)
        while session.next_event() is not None:
            pass
    return PARSE_LINES / (time.perf_counter() - start)


def main() -> None:
    with EmulatorPool(["generic"], seed=1) as pool:
        pool.boot()
        numbers = asyncio.run(_bench(pool.path(0)))
    median = numbers["cmgs_first_byte_median_us"]
    p99 = numbers["cmgs_first_byte_p99_us"]
    print(f"send_sms() -> first byte of AT+CMGS: median {median:.0f} us, p99 {p99:.0f} us")
    print(f"AT round trips vs emulator (zero delay): {numbers['at_round_trips_per_s']:.0f}/s")
    print(f"sans-I/O framer+session: {_parse_rate():.0f} lines/s")


if __name__ == "__main__":
    main()
