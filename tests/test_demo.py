"""`smsgw demo` as a stranger runs it: stdin closed, stdout piped, waiting on its `ready:` line;
a reply injected on its control socket reaches the inbox and the reply webhook."""

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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from gateway.cli import main
from gateway.store.base import sqlite_path
from gateway.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from tests.api.test_php_samples import Demo

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


def _webhook_receiver() -> tuple[ThreadingHTTPServer, queue.Queue[tuple[dict[str, str], bytes]]]:
    """A local HTTP server that answers 204 and queues each POST (headers, body)."""
    posts: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            posts.put((dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test reads the queue."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True).start()
    return server, posts


def test_a_reply_injected_on_the_demos_control_socket_reaches_inbox_and_webhook(
    tmp_path: Path,
) -> None:
    server, posts = _webhook_receiver()
    demo = Demo(tmp_path / "data")  # stdin closed: the socket does not need it
    try:
        # Beside the demo's SQLite file (here "data" itself, as that directory did not exist).
        assert demo.control == str(sqlite_path(tmp_path / "data")) + ".control.sock"
        request = urllib.request.Request(
            f"{demo.base}/v1/webhooks", method="PUT",
            data=json.dumps({"reply": f"http://127.0.0.1:{server.server_port}/in"}).encode(),
            headers={"Authorization": f"Bearer {demo.account['api_key']}",
                     "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            secret = json.loads(response.read())["secret"]

        sent = CliRunner().invoke(
            main, ["emulator", "send", demo.control, "inject", "0", "+15551230009", "YES please"]
        )
        assert sent.exit_code == 0, sent.output
        assert json.loads(sent.output) == {"ok": True, "parts": 1}
        while True:  # the welcome text may come first, if it was stored after the PUT
            headers, body = posts.get(timeout=STARTUP)
            event = json.loads(body)
            if event["data"].get("text") == "YES please":
                break
        assert event["type"] == "reply"
        assert (event["data"]["from"], event["data"]["to"]) == ("+15551230009", demo.sims[0])
        assert verify_signature(secret, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], body)
        assert ("+15551230009", "YES please") in [(m["from"], m["text"]) for m in demo.inbox()]

        bad = CliRunner().invoke(main, ["emulator", "send", demo.control, "inject", "9", "+1", "x"])
        assert bad.exit_code == 1 and "out of range" in json.loads(bad.output)["error"]
        # `quit` on the socket ends the demo as Ctrl-C does, and takes the socket with it.
        bye = CliRunner().invoke(main, ["emulator", "send", demo.control, "quit"])
        assert json.loads(bye.output) == {"ok": True, "bye": True}
        assert demo.proc.wait(timeout=STARTUP) == 0
        assert not Path(demo.control).exists()
    finally:
        demo.close()
        server.shutdown()
        server.server_close()
