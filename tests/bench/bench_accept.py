"""The accept path against its yardstick, side by side with wrk at 32 connections: BestSMS
send_sms and /v1/messages on `smsgw demo` (durable: answered after the commit), and a bare
aiohttp handler that only parses the same form (tests/bench/bare_form.py). Target (issue 16):
the gateway at >= half the bare handler's req/s, p99 < 20 ms. Needs wrk (Debian `wrk`); without
it this bench says so and skips."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tests.api.test_php_samples import Demo

CONNECTIONS = 32
THREADS = 2
SECONDS = 10

# wrk's Lua: a fresh recipient per request (the gateway dedupes nothing across requests, but
# numbers vary as in real traffic); BODY is filled in per run.
SCRIPT = """
counter = 0
request = function()
  counter = counter + 1
  local body = string.format(BODY, counter %% 10000)
  return wrk.format("POST", PATH, HEADERS, body)
end
"""


def _lua(path: str, body: str, headers: dict[str, str]) -> str:
    lua_headers = "{" + ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items()) + "}"
    return f'PATH = "{path}"\nBODY = [[{body}]]\nHEADERS = {lua_headers}\n' + SCRIPT.replace(
        "%%", "%"
    )


def _wrk(base: str, path: str, body: str, headers: dict[str, str]) -> tuple[float, float, str]:
    """Run wrk; return (req/s, p99 ms, non-2xx note)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_lua(path, body, headers))
    try:
        out = subprocess.run(
            ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency",
             "-s", script.name, base + path],
            capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL,
        ).stdout  # fmt: skip
    finally:
        os.unlink(script.name)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99_raw = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99_raw is not None, out
    p99 = float(p99_raw.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99_raw.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, p99, f"  ({errors.group(1)} non-2xx)" if errors else ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bare() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.bare_form", str(port)], cwd=root,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "/", timeout=1)
        except urllib.error.HTTPError:
            return proc, base  # 404 or 405: it is up
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise TimeoutError("bare aiohttp server did not start")


def _line(name: str, rate: float, p99: float, note: str, yardstick: float | None) -> None:
    ratio = f"  {rate / yardstick:5.0%} of bare" if yardstick else ""
    print(f"{name:24} {rate:8.0f} req/s  p99 {p99:6.1f} ms{ratio}{note}", flush=True)


def main() -> None:
    if shutil.which("wrk") is None:
        print("SKIPPED: wrk is not installed (apt-get install wrk); no accept-path numbers")
        return
    load = os.getloadavg()[0]
    print(f"(load average {load:.2f} on {os.cpu_count()} CPUs; wrk -t{THREADS} "
          f"-c{CONNECTIONS} -d{SECONDS}s: server, client and modems share the box)")  # fmt: skip
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    proc, bare = _bare()
    try:
        body = "sub_account=demo&sub_account_pass=x&action=send_sms&message=Order+shipped" \
               "&recipients=%%2B1202555%04d"  # fmt: skip
        bare_rate, p99, note = _wrk(bare, "/api_v1", body, form)
        _line("bare aiohttp form", bare_rate, p99, note, None)
    finally:
        proc.terminate()
        proc.wait()
    with tempfile.TemporaryDirectory() as data:
        demo = Demo(Path(data), modems=3)
        try:
            password = urllib.parse.quote_plus(demo.account["password"])
            body = f"sub_account=demo&sub_account_pass={password}&action=send_sms" \
                   "&message=Order+shipped&recipients=%%2B1202555%04d"  # fmt: skip
            _line("BestSMS send_sms", *_wrk(demo.base, "/api_v1", body, form), bare_rate)
            key = demo.account["api_key"]
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
            body = '{"to": "+1202555%04d", "text": "Order shipped"}'
            _line("/v1/messages (JSON)", *_wrk(demo.base, "/v1/messages", body, headers), bare_rate)
        finally:
            demo.close()


if __name__ == "__main__":
    main()
