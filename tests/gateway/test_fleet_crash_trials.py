"""Fleet crash trials (make test-slow): two gateways share one PostgreSQL store, each with its own
four emulated modems; box A is SIGKILLed at seeded random moments while both send one
2,000-message batch. Its SIMs' leases expire (or its next incarnation takes them over), its
in-flight parts end `uncertain`, nothing accepted is lost and nothing reaches the network twice.
The emulated network runs in its own process and is the judge.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.accounts import create_account
from gateway.service import GatewayService
from gateway.store import Store
from tests.gateway.test_crash_trials import ROOT, Emulator, _modems
from tests.postgres import Cluster

pytestmark = pytest.mark.slow

MESSAGES = 2000
TRIALS = 12
SEED = 20261203
LEASE_TTL = 3.0
# 8 SIMs x 5 SMS/s: the batch outlasts the trials, so every kill lands mid-batch.
THROTTLE = 0.2


def _config(path: Path, url: str, box: str) -> Path:
    path.write_text(
        f'database_url = "{url}"\nbox_id = "{box}"\nlease_ttl = {LEASE_TTL}\n'
        '[http]\nhost = "127.0.0.1"\nport = 0\n'
    )
    return path


def _start(config: Path, data_dir: Path, ports: list[str], log: Path) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config),
            "--data-dir", str(data_dir)]  # fmt: skip
    for port in ports:
        args += ["--port", port]
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def _look(url: str, read: Callable[[Store], object]) -> object:
    store = Store.open(url)
    try:
        return read(store)
    finally:
        store.close()


def _states(url: str) -> Counter[str]:
    return Counter(_look(url, lambda s: s.count_by_state("messages")))  # type: ignore[arg-type]


def _sending_on(url: str, sims: list[int]) -> set[int]:
    marks = ", ".join("?" * len(sims))

    def read(store: Store) -> set[int]:
        rows = store.conn.execute(
            f"SELECT id FROM parts WHERE state = 'sending' AND sim_id IN ({marks})", sims
        ).fetchall()
        return {int(r[0]) for r in rows}

    return _look(url, read)  # type: ignore[return-value]


def _part_states(url: str, part_ids: set[int]) -> dict[int, str]:
    def read(store: Store) -> dict[int, str]:
        rows = store.conn.execute("SELECT id, state FROM parts").fetchall()
        return {int(r[0]): str(r[1]) for r in rows if int(r[0]) in part_ids}

    return _look(url, read)  # type: ignore[return-value]


def _poll(done: Callable[[], bool], gateway: subprocess.Popen[bytes], rounds: int) -> bool:
    """Look at the store about once a second (paced by waiting on the live gateway process)."""
    for _ in range(rounds):
        if done():
            return True
        try:
            gateway.wait(timeout=1.0)
            pytest.fail("box B exited during the trials")
        except subprocess.TimeoutExpired:
            pass
    return done()


def test_kill_9_of_one_box_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path, postgres: Cluster
) -> None:
    rng = random.Random(SEED)
    url = postgres.create_database()
    emulator = Emulator(8, SEED)
    gateways: list[subprocess.Popen[bytes]] = []
    try:
        modems = _modems(emulator.info)
        ports = [m["path"] for m in modems]
        store = Store.open(url)
        now = datetime.now(UTC)
        account = create_account(store, "bulk", now=now, unlimited=True).account_id
        sims = []
        for m in modems:
            sim = store.bind_sim(iccid=m["iccid"], imsi=m["imsi"], now=now)
            store.conn.execute(
                "UPDATE sims SET throttle_interval = ? WHERE id = ?", (THROTTLE, sim)
            )
            sims.append(sim)
        accepted = GatewayService(store, wall=lambda: datetime.now(UTC)).submit(
            account, [f"+1555{i:07d}" for i in range(MESSAGES)], "Fleet crash trial"
        )
        store.close()
        assert len(accepted.message_ids) == MESSAGES
        a_sims = sims[:4]
        for index in range(4):  # A's AT+CMGS take half a second: kills land mid-send often
            assert emulator.command(f"fault {index} slow_radio seconds=0.5")["ok"]
        a_numbers = {m["msisdn"] for m in modems[:4]}
        b_numbers = {m["msisdn"] for m in modems[4:]}

        config_a = _config(tmp_path / "a.toml", url, "box-a")
        config_b = _config(tmp_path / "b.toml", url, "box-b")
        box_b = _start(config_b, tmp_path / "b", ports[4:], tmp_path / "b.log")
        gateways.append(box_b)

        in_flight: set[int] = set()  # A's parts on the wire when it was killed
        killed_mid_batch = expired_waits = 0
        for trial in range(TRIALS):
            box_a = _start(config_a, tmp_path / "a", ports[:4], tmp_path / "a.log")
            # The moment of the crash is the random variable under test, not a wait for a state.
            try:
                box_a.wait(timeout=rng.uniform(2.0, 4.0))
                pytest.fail(f"box A exited by itself:\n{(tmp_path / 'a.log').read_text()}")
            except subprocess.TimeoutExpired:
                os.kill(box_a.pid, signal.SIGKILL)
                box_a.wait(timeout=10)
            states = _states(url)
            assert sum(states.values()) == MESSAGES  # nothing accepted is ever lost
            killed_mid_batch += states["queued"] > 0
            on_wire = _sending_on(url, a_sims)
            in_flight |= on_wire
            if trial % 2 == 0:
                # Left dead: its leases expire, and box B turns its in-flight parts uncertain
                # (and takes over its claimed messages) without A ever coming back.
                def settled(parts: set[int] = on_wire) -> bool:
                    live = _look(url, lambda s: s.live_leases(datetime.now(UTC)))
                    states = set(_part_states(url, parts).values())
                    return not set(a_sims) & set(live) and states <= {"uncertain"}  # type: ignore[arg-type]

                assert _poll(settled, box_b, 30), _part_states(url, on_wire)
                expired_waits += 1
            # Otherwise A restarts at once, and its next incarnation takes its own leases over.
        assert killed_mid_batch >= TRIALS // 2  # the kills really landed mid-batch
        assert expired_waits == TRIALS // 2  # half of them were settled by the other box

        box_a = _start(config_a, tmp_path / "a", ports[:4], tmp_path / "a.log")
        gateways.append(box_a)

        def drained() -> bool:
            states = _states(url)
            return not (states["queued"] or states["sending"] or states["accepted"])

        assert _poll(drained, box_b, 240), _states(url)
        for gateway in gateways:
            gateway.send_signal(signal.SIGTERM)
        for gateway in gateways:
            assert gateway.wait(timeout=30) == 0  # SIGTERM finishes the AT command in flight

        states = _states(url)
        assert sum(states.values()) == MESSAGES
        assert set(states) <= {"sent", "delivered", "failed", "uncertain"}, states
        # Every part that was on the wire at a kill ended uncertain: never resent silently.
        assert in_flight and set(_part_states(url, in_flight).values()) == {"uncertain"}

        records = emulator.command("outside")["messages"]
        per_recipient = Counter(r["destination"] for r in records)
        assert max(per_recipient.values()) == 1, "a message reached the network twice"
        senders = Counter(r["sender"] for r in records)
        assert set(senders) <= a_numbers | b_numbers
        # Both boxes sent a share of the one batch.
        assert sum(senders[n] for n in a_numbers) > 0
        assert sum(senders[n] for n in b_numbers) > 0

        def rows(store: Store) -> list[tuple[str, str]]:
            return [(str(r[0]), str(r[1])) for r in store.conn.execute(
                "SELECT recipient, state FROM messages").fetchall()]  # fmt: skip

        for recipient, state in _look(url, rows):  # type: ignore[attr-defined]
            if state in ("sent", "delivered"):
                assert per_recipient[recipient] == 1, (recipient, state)
            elif state == "failed":
                assert per_recipient[recipient] == 0, (recipient, state)
            # uncertain: 0 or 1 at the network, never more (checked above), and reported as such
        by_a = sum(senders[n] for n in a_numbers)
        by_b = sum(senders[n] for n in b_numbers)
        print(
            f"fleet crash trials: {TRIALS} kills of box A ({killed_mid_batch} mid-batch,"
            f" {expired_waits} settled by box B after lease expiry), {len(in_flight)} in-flight"
            f" parts all uncertain, final {dict(states)}, network: A {by_a} B {by_b}"
        )
    finally:
        for gateway in gateways:
            if gateway.poll() is None:
                gateway.kill()
                gateway.wait(timeout=10)
        emulator.close()
        postgres.drop_database(url)
