"""A real full disk: the data directory on a 4 MB tmpfs (needs root to mount; `make test-slow`).
The injected-fault tests in test_store_unavailable.py cover the same paths in `make test`."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.accounts import create_account
from gateway.service import GatewayService, Outgoing
from gateway.store import Store, StoreUnavailableError

pytestmark = pytest.mark.slow

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "data"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, stdin=subprocess.DEVNULL)


def _fill(directory: Path) -> Path:
    """Write a junk file until the file system says ENOSPC."""
    junk = directory / "junk"
    with junk.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
            os.fsync(out.fileno())
    with junk.open("ab") as out:
        with pytest.raises(OSError) as full:
            out.write(b"\0" * 65536)
            out.flush()
            os.fsync(out.fileno())
        assert full.value.errno == errno.ENOSPC
    return junk


def test_a_real_full_disk_refuses_whole_batches_and_recovers(small_disk: Path) -> None:
    store = Store.open(small_disk)
    try:
        account = create_account(store, "shop", now=T0, unlimited=True).account_id
        service = GatewayService(store, wall=lambda: T0)
        accepted = [
            service.submit_batch(account, [Outgoing(f"+1202555{i:04d}", f"before {i}")])
            for i in range(20)
        ]
        junk = _fill(small_disk)
        refused = 0
        for _ in range(2000):  # the WAL reuses its space for a while, then a commit must grow
            try:
                accepted.append(
                    service.submit_batch(
                        account, [Outgoing(f"+1303555{j:04d}", "x" * 150) for j in range(50)]
                    )
                )
            except StoreUnavailableError:
                refused += 1
                break
        assert refused == 1, "the disk never filled"
        count = store.conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        assert count == sum(len(a.message_ids) for a in accepted)  # nothing half-accepted
        junk.unlink()  # space returns
        again = service.submit_batch(account, [Outgoing("+12025559999", "after")])
        assert store.message(again.message_ids[0])["state"] == "queued"
        assert store.integrity_check() == []
        bodies = {r[0] for r in store.conn.execute("SELECT body FROM messages")}
        assert {f"before {i}" for i in range(20)} | {"after"} <= bodies
    finally:
        store.close()
