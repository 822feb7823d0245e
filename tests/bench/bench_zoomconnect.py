"""Zoom Connect throughput against `smsgw demo` (its own process, emulated modems):

* send-bulk with 10,000 messages accepted (durable, answered) in under 1 s;
* messages/analyse/full at >= 2,000 req/s over loopback keep-alive connections, driven by wrk
  when it is installed (Debian `wrk`), else by a small asyncio client.

Prints the numbers; the targets are printed next to them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

from tests.api.test_php_samples import Demo

BULK = 10_000
BULK_TRIALS = 3
ANALYSE_SECONDS = 10
CONCURRENCY = 16
TEXTS = [
    "Your order has shipped and will arrive tomorrow",
    "Price: 5€ for the first month, then 10€",
    "Meeting moved to 15:00 😀",
    "x" * 200,
]


async def _request(
    host: str, port: int, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode() + body)
        header = await reader.readuntil(b"\r\n\r\n")
        status = int(header.split(b" ", 2)[1])
        length = int(re.search(rb"(?i)content-length: *(\d+)", header).group(1))  # type: ignore[union-attr]
        return status, await reader.readexactly(length)
    finally:
        writer.close()
        await writer.wait_closed()


def _bulk(demo: Demo, auth: dict[str, str]) -> None:
    url = urllib.parse.urlsplit(demo.base)
    assert url.hostname is not None and url.port is not None
    times = []
    for trial in range(BULK_TRIALS):
        body = json.dumps(
            {
                "sendSmsRequests": [
                    {"recipientNumber": f"+1303{trial}{i:06d}", "message": f"Ticket {i} ready",
                     "campaign": "bench", "dataField": str(i)}
                    for i in range(BULK)
                ],
                "defaultDateToSend": "203001010000",  # scheduled: the modems stay out of it
            }
        ).encode()  # fmt: skip
        started = time.perf_counter()
        headers = {**auth, "Content-Type": "application/json"}
        path = "/app/api/rest/v1/sms/send-bulk"
        status, answer = asyncio.run(_request(url.hostname, url.port, "POST", path, headers, body))
        elapsed = time.perf_counter() - started
        responses = json.loads(answer)["sendSmsResponses"]
        if status != 200 or sum(1 for r in responses if r["messageId"]) != BULK:
            raise RuntimeError(f"send-bulk failed: {status} {answer[:200]!r}")
        times.append(elapsed)
        print(f"send-bulk    {BULK} messages ({len(body) / 1e6:.1f} MB) accepted in"
              f" {elapsed * 1000:6.0f} ms", flush=True)  # fmt: skip
    print(f"send-bulk    median {statistics.median(times) * 1000:.0f} ms (target < 1000 ms)",
          flush=True)  # fmt: skip


def _wrk(demo: Demo, auth: dict[str, str], wrk: str) -> None:
    bodies = [json.dumps({"message": t, "recipientNumber": "+447700900123"}) for t in TEXTS]
    script = "\n".join(
        [
            'wrk.method = "POST"',
            'wrk.headers["Content-Type"] = "application/json"',
            *(f'wrk.headers["{k}"] = "{v}"' for k, v in auth.items()),
            "local bodies = {" + ", ".join(json.dumps(b) for b in bodies) + "}",
            "local n = 0",
            "request = function()",
            "  n = n + 1",
            "  return wrk.format(nil, nil, nil, bodies[(n % #bodies) + 1])",
            "end",
            "done = function(summary, latency, requests)",
            '  io.write(string.format("non2xx %d\\n", summary.errors.status))',
            "end",
        ]
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            [wrk, "-t2", f"-c{CONCURRENCY}", f"-d{ANALYSE_SECONDS}s", "--latency", "-s", f.name,
             f"{demo.base}/app/api/rest/v1/messages/analyse/full"],
            capture_output=True, text=True, timeout=ANALYSE_SECONDS + 30, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(f.name)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = int(re.search(r"non2xx (\d+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+(\S+)", out)
    print(f"analyse/full {rate:8.0f} req/s  p99 {p99.group(1) if p99 else '?'}  ({errors} non-2xx,"
          f" wrk {CONCURRENCY} connections, {ANALYSE_SECONDS} s; target >= 2000 req/s)",
          flush=True)  # fmt: skip
    if errors:
        raise RuntimeError(f"{errors} analyse/full requests failed")


async def _python_client(demo: Demo, auth: dict[str, str]) -> None:
    url = urllib.parse.urlsplit(demo.base)
    bodies = [json.dumps({"message": t, "recipientNumber": "+447700900123"}).encode()
              for t in TEXTS]  # fmt: skip
    head = (
        "POST /app/api/rest/v1/messages/analyse/full HTTP/1.1\r\nHost: bench\r\n"
        "Content-Type: application/json\r\n" + "".join(f"{k}: {v}\r\n" for k, v in auth.items())
    )
    done = 0
    stop_at = time.perf_counter() + ANALYSE_SECONDS

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        try:
            while time.perf_counter() < stop_at:
                body = bodies[done % len(bodies)]
                writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
                header = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", header).group(1))  # type: ignore[union-attr]
                await reader.readexactly(length)
                if not header.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(header.decode())
                done += 1
        finally:
            writer.close()
            await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    rate = done / (time.perf_counter() - started)
    print(
        f"analyse/full {rate:8.0f} req/s  (asyncio client, {CONCURRENCY} connections: the"
        " client shares the CPUs; install wrk for the real number; target >= 2000)",
        flush=True,
    )


def main() -> None:
    load = os.getloadavg()[0]
    print(f"(load average {load:.2f} on {os.cpu_count()} CPUs: other work slows these numbers)")
    with tempfile.TemporaryDirectory() as data:
        demo = Demo(Path(data), modems=3)
        try:
            auth = {"email": demo.account["email"], "token": demo.account["token"]}
            _bulk(demo, auth)
            wrk = shutil.which("wrk")
            if wrk:
                _wrk(demo, auth, wrk)
            else:
                asyncio.run(_python_client(demo, auth))
        finally:
            demo.close()


if __name__ == "__main__":
    main()
