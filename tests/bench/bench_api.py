"""Provider API throughput: BestSMS send_sms and UltraSMS smscontact against `smsgw demo`.

The daemon runs in its own process on emulated modems (the messages really queue and go out);
this process is the client. Prints requests/s and latency percentiles (target >= 1,000 req/s
and p99 < 50 ms).
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import tempfile
import time
import urllib.parse
from pathlib import Path

from tests.api.test_php_samples import Demo

REQUESTS = 3000
CONCURRENCY = 8
WARMUP = 500


class _Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough HTTP for the benchmark (a full
    client library would cost the client more CPU than the server spends per request)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def request(self, method: str, path: str, form: dict[str, str]) -> tuple[int, bytes]:
        body = urllib.parse.urlencode(form).encode()
        if method == "GET":
            head = f"GET {path}?{body.decode()} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
            self.writer.write(head)
        else:
            head = (
                f"POST {path} HTTP/1.1\r\nHost: bench\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            self.writer.write(head + body)
        header = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header.split(b" ", 2)[1])
        length = int(re.search(rb"(?i)content-length: *(\d+)", header).group(1))  # type: ignore[union-attr]
        return status, await self.reader.readexactly(length)


async def _blast(
    base: str, method: str, path: str, payloads: list[dict[str, str]]
) -> tuple[float, list[float]]:
    host, port = urllib.parse.urlsplit(base).hostname, urllib.parse.urlsplit(base).port
    latencies: list[float] = []
    queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    for p in payloads:
        queue.put_nowait(p)

    async def worker() -> None:
        connection = _Connection(*await asyncio.open_connection(host, port))
        try:
            while not queue.empty():
                payload = queue.get_nowait()
                start = time.perf_counter()
                status, text = await connection.request(method, path, payload)
                latencies.append(time.perf_counter() - start)
                if status != 200 or b'"error"' in text or text.startswith(b"-"):
                    raise RuntimeError(f"request failed: {status} {text[:100]!r}")
        finally:
            connection.writer.close()
            await connection.writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - started, latencies


def _report(name: str, elapsed: float, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p50 = ordered[len(ordered) // 2] * 1000
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1000
    print(
        f"{name:12} {len(latencies) / elapsed:8.0f} req/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms"
        f"  mean {statistics.fmean(latencies) * 1000:6.1f} ms  ({len(latencies)} requests,"
        f" {CONCURRENCY} concurrent)",
        flush=True,
    )


async def _run(demo: Demo) -> None:
    auth = {"sub_account": "demo", "sub_account_pass": demo.account["password"]}
    send = [
        {**auth, "action": "send_sms", "message": f"Order {i} has shipped",
         "recipients": f"+1202555{i % 10000:04d}"}
        for i in range(WARMUP + REQUESTS)
    ]  # fmt: skip
    await _blast(demo.base, "POST", "/api_v1", send[:WARMUP])
    _report("send_sms", *await _blast(demo.base, "POST", "/api_v1", send[WARMUP:]))

    saved = demo.get("/api_v1", {
        **auth, "action": "save_contacts", "group_name": "Bench",
        "phone_numbers": ",".join(f"+1303555{i:04d}" for i in range(100))})  # fmt: skip
    assert saved["total"] == "100"
    sim = demo.sims[0].lstrip("+")
    contact = [
        {"apikey": demo.account["api_key"], "from": sim, "to": f"1303555{i % 100:04d}",
         "message": f"Ticket {i}"}
        for i in range(WARMUP + REQUESTS)
    ]  # fmt: skip
    await _blast(demo.base, "GET", "/apis/smscontact/", contact[:WARMUP])
    _report("smscontact", *await _blast(demo.base, "GET", "/apis/smscontact/", contact[WARMUP:]))


def main() -> None:
    load = os.getloadavg()[0]
    print(f"(load average {load:.2f} on {os.cpu_count()} CPUs: other work slows these numbers)")
    with tempfile.TemporaryDirectory() as data:
        demo = Demo(Path(data), modems=3)
        try:
            asyncio.run(_run(demo))
        finally:
            demo.close()


if __name__ == "__main__":
    main()
