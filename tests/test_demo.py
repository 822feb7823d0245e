"""`smsgw demo` as a stranger runs it: stdin closed, stdout piped, waiting on its `ready:` line."""

from __future__ import annotations

import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

STARTUP = 60.0  # seconds for the demo to print its ready line; fails instead of hanging
MODEMS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _health(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:  # 503 carries the same JSON body
        return exc.code, json.loads(exc.read())


def test_demo_prints_one_ready_line_and_health_then_lists_every_modem_ready(
    tmp_path: Path,
) -> None:
    port = _free_port()
    smsgw = Path(sys.executable).with_name("smsgw")
    with (tmp_path / "demo.log").open("w") as log:
        proc = subprocess.Popen(
            [str(smsgw), "demo", "--modems", str(MODEMS), "--port", str(port),
             "--data-dir", str(tmp_path / "data")],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True,
        )  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    reader = threading.Thread(target=drain, name="demo-stdout")
    reader.start()
    out: list[str] = []
    try:
        deadline = time.monotonic() + STARTUP
        while not out or not out[-1].startswith("ready: "):
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                line = None
            if line is None:  # the deadline passed, or the demo ended
                log_text = (tmp_path / "demo.log").read_text()
                raise AssertionError("no ready line in:\n" + "\n".join(out) + "\n" + log_text)
            out.append(line)
        assert out[-1] == f"ready: {MODEMS}/{MODEMS} modems registered"
        # It comes after the credentials block and the examples, which end with the Ctrl-C hint.
        assert any(line.startswith("demo account: ") for line in out)
        assert "Ctrl-C stops the demo." in out
        emulated = {
            line.split(" on ")[1].split()[0]: line.split("SIM number ")[1]
            for line in out
            if line.startswith("emulated modem ")
        }
        assert len(emulated) == MODEMS

        status, body = _health(port)
        assert (status, body["status"], body["problems"]) == (200, "ready", [])
        assert (body["modems_ready"], body["modems_expected"]) == (MODEMS, MODEMS)
        modems = {m["port"]: m for m in body["modems"]}
        assert set(modems) == set(emulated)
        for path, msisdn in emulated.items():
            m = modems[path]
            assert (m["state"], m["registration"]) == ("ready", "home")
            assert m["iccid"] and m["signal_dbm"] is not None
            assert m["number"] != msisdn and m["number"].endswith(msisdn[-3:])
    finally:
        proc.send_signal(signal.SIGINT)  # as Ctrl-C
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(timeout=15)
        assert proc.stdout is not None
        proc.stdout.close()
    while (line := lines.get_nowait()) is not None:
        out.append(line)
    assert sum(1 for line in out if line.startswith("ready: ")) == 1
    assert proc.returncode == 0
    # The dashboard password the demo prints is set before the HTTP front-end looks for one.
    assert "no dashboard admin password" not in (tmp_path / "demo.log").read_text()
