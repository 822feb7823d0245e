"""Crash trials (make test-slow): a gateway sending a 2,000-message batch over 4 emulated modems is
SIGKILLed at seeded random moments; after every restart nothing accepted is lost and nothing is
sent twice. The emulated network runs in its own process and is the judge.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pytest

from gateway.accounts import create_account
from gateway.service import GatewayService
from gateway.store import Store

pytestmark = pytest.mark.slow

MESSAGES = 2000
TRIALS = 20
SEED = 20261122
ROOT = Path(__file__).resolve().parents[2]


class Emulator:
    """`smsgw emulator run` in a child process, driven over its stdin line protocol."""

    def __init__(self, modems: int, seed: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "emulator", "run", "--modems", str(modems),
             "--seed", str(seed), "--report-delay", "0"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        self.info = self._read_json()

    def _read_json(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("emulator exited")
        return json.loads(line)

    def command(self, line: str) -> Any:
        stdin: IO[str] | None = self.proc.stdin
        assert stdin is not None
        stdin.write(line + "\n")
        stdin.flush()
        return self._read_json()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _modems(info: Any) -> list[dict[str, Any]]:
    return list(info["modems"] if isinstance(info, dict) else info)


def _start_gateway(
    data_dir: Path, config: Path, ports: list[str], log: Path | None = None
) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config),
            "--data-dir", str(data_dir)]  # fmt: skip
    for port in ports:
        args += ["--port", port]
    if log is None:
        return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def _settled(data_dir: Path) -> Counter[str]:
    store = Store.open(data_dir)
    try:
        return Counter(store.count_by_state("messages"))
    finally:
        store.close()


def test_kill_9_never_loses_or_duplicates(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    emulator = Emulator(4, SEED)
    try:
        modems = _modems(emulator.info)
        ports = [m["path"] for m in modems]
        data_dir = tmp_path / "data"
        config = tmp_path / "smsgw.toml"
        config.write_text('[http]\nhost = "127.0.0.1"\nport = 0\n')
        store = Store.open(data_dir)
        now = datetime.now(UTC)
        account = create_account(store, "bulk", now=now, unlimited=True).account_id
        for m in modems:  # pacing for the trial: 4 SIMs x 20 SMS/s, so every kill lands mid-batch
            sim = store.bind_sim(iccid=m["iccid"], imsi=m["imsi"], now=now)
            store.conn.execute("UPDATE sims SET throttle_interval = 0.05 WHERE id = ?", (sim,))
        accepted = GatewayService(store, wall=lambda: datetime.now(UTC)).submit(
            account, [f"+1555{i:07d}" for i in range(MESSAGES)], "Crash trial message"
        )
        store.close()
        assert len(accepted.message_ids) == MESSAGES

        killed_mid_batch = 0
        for _ in range(TRIALS):
            gateway = _start_gateway(data_dir, config, ports)
            # The moment of the crash is the random variable under test, not a wait for a state.
            try:
                gateway.wait(timeout=rng.uniform(1.0, 3.0))
            except subprocess.TimeoutExpired:
                os.kill(gateway.pid, signal.SIGKILL)
                gateway.wait(timeout=10)
            states = _settled(data_dir)
            assert sum(states.values()) == MESSAGES  # nothing accepted is ever lost
            killed_mid_batch += states["queued"] > 0
        # The trials really crashed the gateway while it was sending, not before or after.
        assert killed_mid_batch >= TRIALS // 2

        # A last, uninterrupted run drains the queue.
        gateway = _start_gateway(data_dir, config, ports, log=tmp_path / "final.log")
        for _ in range(120):  # up to 2 minutes of polling the store, one look per second
            states = _settled(data_dir)
            if states["queued"] == 0 and states["sending"] == 0 and states["accepted"] == 0:
                break
            try:
                gateway.wait(timeout=1.0)
                pytest.fail(f"gateway exited early:\n{(tmp_path / 'final.log').read_text()}")
            except subprocess.TimeoutExpired:
                pass
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=30)  # SIGTERM finishes the AT command in flight, then exits

        states = _settled(data_dir)
        assert sum(states.values()) == MESSAGES
        assert set(states) <= {"sent", "delivered", "failed", "uncertain"}, states

        outside = emulator.command("outside")
        records = outside["messages"]
        per_recipient = Counter(r["destination"] for r in records)
        assert max(per_recipient.values()) == 1, "a message reached the network twice"

        store = Store.open(data_dir)
        try:
            rows = store.conn.execute("SELECT recipient, state FROM messages").fetchall()
        finally:
            store.close()
        for recipient, state in rows:
            if state in ("sent", "delivered"):
                assert per_recipient[recipient] == 1, (recipient, state)
            elif state == "failed":
                assert per_recipient[recipient] == 0, (recipient, state)
            # uncertain: 0 or 1 at the network, never more (checked above), and reported as such
        assert states["uncertain"] <= 4 * TRIALS  # at most one part on the wire per SIM per crash
        print(f"crash trials: {killed_mid_batch} kills mid-batch, final {dict(states)}")
    finally:
        emulator.close()
