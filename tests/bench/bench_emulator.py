"""64 emulated modems exchanging SMS at zero radio delay: aggregate SMS/s and emulator CPU.

The emulator runs in a child process (as it would beside the gateway), the 64 AT clients in this
one, driven by a selector: each modem sends PDU-mode SMS to the next one round the ring
(AT+CMGS, prompt, PDU, +CMGS/OK) and receives the previous one's as +CMT (AT+CNMI=2,2).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import selectors
import time
from multiprocessing.connection import Connection

MODEMS = 64
SECONDS = 4.0
WARMUP = 0.5


def _serve(conn: Connection, modems: int, status_reports: bool) -> None:
    from modem.emulator import EmulatorPool

    with EmulatorPool(modems, seed=1) as pool:
        conn.send([(i.path, i.msisdn) for i in pool.info()])
        conn.recv()  # "start"
        start = resource.getrusage(resource.RUSAGE_SELF)
        conn.recv()  # "stop"
        end = resource.getrusage(resource.RUSAGE_SELF)
        stats = pool.stats()
        conn.send(
            {
                "cpu": (end.ru_utime - start.ru_utime) + (end.ru_stime - start.ru_stime),
                "submitted": stats.submitted,
                "reports": stats.reports,
            }
        )


class _Client:
    __slots__ = ("buf", "cmd", "fd", "pdu", "received", "reports", "sent", "state")

    def __init__(self, path: str, cmd: bytes, pdu: bytes) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.cmd = cmd
        self.pdu = pdu
        self.buf = b""
        self.state = 0  # 0 idle, 1 waiting for the prompt, 2 waiting for +CMGS/OK
        self.sent = 0
        self.received = 0
        self.reports = 0


def _setup(path: str, commands: list[bytes]) -> None:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        for cmd in commands:
            os.write(fd, cmd + b"\r")
            buf = b""
            deadline = time.monotonic() + 5
            while not buf.endswith(b"OK\r\n"):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path}: no OK for {cmd!r}: {buf!r}")
                buf += os.read(fd, 4096)
    finally:
        os.close(fd)


def run(
    modems: int = MODEMS, seconds: float = SECONDS, status_reports: bool = False
) -> dict[str, float]:
    from modem.pdu import build_submits, encode_pdu

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(child, modems, status_reports), daemon=True)
    proc.start()
    try:
        modems_info = parent.recv()
        clients = []
        cnmi = b"AT+CNMI=2,2,0,1,0" if status_reports else b"AT+CNMI=2,2,0,0,0"
        for i, (path, _msisdn) in enumerate(modems_info):
            peer = modems_info[(i + 1) % len(modems_info)][1]
            submit = build_submits(peer, f"bench {i}", status_report=status_reports)[0]
            encoded = encode_pdu(submit)
            _setup(path, [b"ATE0", b"AT+CMEE=1", cnmi])
            cmd = b"AT+CMGS=%d\r" % encoded.tpdu_length
            clients.append(_Client(path, cmd, encoded.hex.encode() + b"\x1a"))
        sel = selectors.DefaultSelector()
        for c in clients:
            sel.register(c.fd, selectors.EVENT_READ, c)
        parent.send("start")
        wall0 = time.monotonic()
        cpu0 = time.process_time()
        for c in clients:
            os.write(c.fd, c.cmd)
            c.state = 1
        counted_from = wall0 + WARMUP
        base_received = 0
        base_time = wall0
        base_set = False
        deadline = wall0 + seconds
        while True:
            now = time.monotonic()
            if not base_set and now >= counted_from:
                base_received = sum(c.received for c in clients)
                base_time = now
                base_set = True
            if now >= deadline:
                break
            for key, _ in sel.select(0.5):
                c = key.data
                data = os.read(c.fd, 65536)
                buf = c.buf + data
                c.received += buf.count(b"+CMT: ")
                c.reports += buf.count(b"+CDS: ")
                if c.state == 1:
                    if b"> " in buf:
                        os.write(c.fd, c.pdu)
                        c.state = 2
                        buf = buf[buf.index(b"> ") + 2 :]
                elif c.state == 2 and (b"OK\r\n" in buf or b"ERROR" in buf):
                    c.sent += 1
                    os.write(c.fd, c.cmd)
                    c.state = 1
                    buf = b""
                # keep only a possibly incomplete tail (never a counted marker)
                c.buf = buf[-5:]
        wall = time.monotonic() - base_time
        received = sum(c.received for c in clients) - base_received
        client_cpu = time.process_time() - cpu0
        parent.send("stop")
        server = parent.recv()
        for c in clients:
            os.close(c.fd)
        total_wall = time.monotonic() - wall0
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    return {
        "modems": float(modems),
        "sms_per_s": received / wall,
        "emulator_cpu_pct": 100.0 * server["cpu"] / total_wall,
        "emulator_cpu_us_per_sms": 1e6 * server["cpu"] / max(1, server["submitted"]),
        "client_cpu_pct": 100.0 * client_cpu / total_wall,
        "reports": float(server["reports"]),
    }


def main() -> None:
    for reports in (False, True):
        r = run(status_reports=reports)
        label = "with status reports" if reports else "plain"
        print(
            f"emulator {label}: {int(r['modems'])} modems, {r['sms_per_s']:.0f} SMS/s delivered, "
            f"emulator CPU {r['emulator_cpu_pct']:.0f}% of one core "
            f"({r['emulator_cpu_us_per_sms']:.0f} us/SMS incl. +CMGS round trips), "
            f"client CPU {r['client_cpu_pct']:.0f}%",
            flush=True,
        )


if __name__ == "__main__":
    main()
