"""One running daemon per SQLite database: a second `serve` (or demo) on the same data directory
is refused before its crash recovery could turn the first one's part on the wire uncertain; the
lock goes with the process (kill -9 included), is not inherited by its children, and the
store-only commands (backup, ...) never need it; a migration takes it while it changes the
schema (refused beside a daemon, and no daemon starts mid-migration); a holder that could not
write its pid (a lock file left root's) is still named, or the file's owner is."""

import asyncio
import logging
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.accounts import create_account
from gateway.cli import main
from gateway.config import Config
from gateway.daemon import serve
from gateway.service import GatewayService
from gateway.store import DATABASE_NAME, DaemonLock, DatabaseInUseError, Store
from gateway.store.daemonlock import lock_path
from gateway.store.migrations import MIGRATIONS, migrate
from modem.at.commands import send_pdu
from modem.emulator import EmulatorPool
from modem.pdu import SmsSubmit, encode_pdu
from tests.emulated import SubmitSpy, serving
from tests.gateway.watch import StoreWatch

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 60.0  # a real child process on a busy 2-core box: start-up, not a timing target


async def _second_daemon(emu: EmulatorPool, data_dir: Path) -> tuple[str, list[str], str]:
    config = Config(data_dir=data_dir, discover=())
    (info,) = emu.info()
    async with serving(config, [info.path], frontends=[]) as first:
        store = first.store
        (worker,) = first.workers.values()
        sim = worker.sim_id
        assert sim is not None
        account = create_account(store, "a", now=datetime.now(UTC), credits=10).account_id
        store.grant_sim(account, sim)
        started: asyncio.Queue[SmsSubmit] = asyncio.Queue()
        first.outbox.senders[sim] = SubmitSpy(first.outbox.senders[sim], started)
        # The radio is slow: the modem holds the PDU and has not answered +CMGS yet.
        emu.set_fault(0, "slow_radio", seconds=30)
        before = emu.call(lambda: emu.core(0).bytes_in)
        (message,) = first.service.submit(account, ["+15005550000"], "on the wire").message_ids
        encoded = encode_pdu(await asyncio.wait_for(started.get(), DEADLINE))
        command = send_pdu(encoded.tpdu_length, encoded.hex)
        written = before + len(command.encode()) + len(command.encode_body())
        await asyncio.get_running_loop().run_in_executor(None, emu.wait_for_input, 0, written)
        assert [p["state"] for p in store.parts(message)] == ["sending"]
        with pytest.raises(DatabaseInUseError) as refused:
            # Without the lock it would start (and run until stopped): bounded, to fail fast.
            await asyncio.wait_for(serve(config, stop=asyncio.Event(), frontends=[]), 10)
        during = [p["state"] for p in store.parts(message)]
        emu.advance(30)  # the radio answers: the first daemon goes on as if nothing happened
        watch = StoreWatch(first)
        await watch.until(lambda: store.parts(message)[0]["state"] in ("sent", "delivered"))
    return str(refused.value), during, str(os.getpid())


def test_a_second_daemon_on_the_data_dir_is_refused_and_the_first_keeps_its_part_on_the_wire(
    tmp_path: Path,
) -> None:
    with EmulatorPool(["generic"], seed=5) as emu:
        message, during, pid = asyncio.run(
            asyncio.wait_for(_second_daemon(emu, tmp_path), DEADLINE)
        )
    assert message == f"{tmp_path / DATABASE_NAME} is in use by another running smsgw (pid {pid})"
    assert during == ["sending"]  # not turned uncertain by the second one's crash recovery
    # The first one's clean stop let the lock go: the next daemon takes it at once.
    DaemonLock.take(tmp_path / DATABASE_NAME).release()


class Notify:
    """A fake systemd $NOTIFY_SOCKET: what a child daemon says once it serves (READY=1)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(DEADLINE)

    def ready(self) -> None:
        """Return at the next READY=1 (raise TimeoutError after DEADLINE)."""
        while not self.sock.recv(4096).startswith(b"READY=1"):
            pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[Notify]:
    listening = Notify(tmp_path / "notify")
    yield listening
    listening.close()


def _serve_args(tmp_path: Path) -> list[str]:
    config = tmp_path / "smsgw.toml"
    config.write_text('discover = []\n[http]\nhost = "127.0.0.1"\nport = 0\n')
    return [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config),
            "--data-dir", str(tmp_path / "data")]  # fmt: skip


def _start(tmp_path: Path, notify: Notify, log: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "PYTHONUNBUFFERED": "1"}
    with (tmp_path / log).open("wb") as out:  # the child keeps its own copy of the descriptor
        daemon = subprocess.Popen(
            _serve_args(tmp_path), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        notify.ready()
    except BaseException:
        daemon.kill()
        daemon.wait()
        raise
    return daemon


def test_serve_refuses_in_one_line_beside_a_running_daemon_and_starts_at_once_after_kill_9(
    tmp_path: Path, notify: Notify
) -> None:
    """Real `smsgw serve` processes: a second one exits 1 with one Error: line naming the
    first one's pid; `smsgw db backup` runs beside the daemon; once the first is SIGKILLed
    (no clean stop, no chance to unlock) the next one serves at once."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    database = data_dir / DATABASE_NAME
    first = _start(tmp_path, notify, "first.log")
    try:
        second = subprocess.run(
            _serve_args(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=DEADLINE,
            env={**os.environ, "NOTIFY_SOCKET": ""}, check=False,
        )  # fmt: skip
        assert second.returncode == 1
        assert second.stdout == ""
        assert second.stderr == (
            f"Error: {database} is in use by another running smsgw (pid {first.pid})\n"
        )
        assert first.poll() is None  # the first one runs on

        # A store-only command runs beside the daemon (which really holds the lock).
        with pytest.raises(DatabaseInUseError):
            DaemonLock.take(database)
        backup = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "db", "backup", "--data-dir", str(data_dir),
             str(tmp_path / "backup.sqlite3")],
            cwd=ROOT, capture_output=True, text=True, timeout=DEADLINE, check=False,
        )  # fmt: skip
        assert backup.returncode == 0, backup.stderr
        assert Store.check_file(tmp_path / "backup.sqlite3") == []
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=DEADLINE)
    assert first.returncode == -signal.SIGKILL

    third = _start(tmp_path, notify, "third.log")  # READY=1: not refused, no wait for a lease
    third.send_signal(signal.SIGTERM)
    assert third.wait(timeout=DEADLINE) == 0
    assert lock_path(database).read_text() == f"{third.pid}\n"


def test_the_cli_says_a_data_dir_in_use_in_one_line(tmp_path: Path) -> None:
    database = tmp_path / DATABASE_NAME
    held = DaemonLock.take(database)
    try:
        result = CliRunner().invoke(main, ["serve", "--data-dir", str(tmp_path)])
    finally:
        held.release()
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {database} is in use by another running smsgw (pid {os.getpid()})\n"
    )


def test_demo_on_a_data_dir_in_use_is_refused_before_it_resets_the_dashboard_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def reached(*args: object, **kwargs: object) -> None:
        raise AssertionError("the demo went on to start its daemon")

    monkeypatch.setattr("gateway.cli.daemon.serve", reached)
    store = Store.open(tmp_path)
    try:
        GatewayService(store, wall=lambda: datetime.now(UTC)).set_admin_password("running-one")
        held = DaemonLock.take(store.path or tmp_path)
        try:
            result = CliRunner().invoke(main, ["demo", "--data-dir", str(tmp_path), "--port", "0"])
        finally:
            held.release()
        service = GatewayService(store, wall=lambda: datetime.now(UTC))
        kept = service.check_admin_password("running-one")
    finally:
        store.close()
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {tmp_path / DATABASE_NAME} is in use by another")
    assert result.output.count("\n") == 1
    assert kept


def test_the_lock_is_not_inherited_by_a_child_process(tmp_path: Path) -> None:
    """A child the daemon starts (the committer, with or without close_fds) never holds the
    lock: once the daemon lets go, the next one takes it while that child still runs."""
    database = tmp_path / DATABASE_NAME
    held = DaemonLock.take(database)
    assert held.fd is not None and not os.get_inheritable(held.fd)
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=False,
    )  # fmt: skip
    try:
        # Running its own code: its exec (which closes close-on-exec fds) is over.
        assert child.stdout is not None and child.stdout.readline() == b"up\n"
        held.release()
        DaemonLock.take(database).release()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=DEADLINE)
        assert child.stdout is not None
        child.stdout.close()


def test_the_store_alone_takes_no_lock_and_a_daemon_s_store_lets_it_go_at_close(
    tmp_path: Path,
) -> None:
    beside = Store.open(tmp_path)  # what backup, accounts, top... open
    daemon = Store.open(tmp_path, daemon=True)
    try:
        with pytest.raises(DatabaseInUseError):
            Store.open(tmp_path, daemon=True)
        also = Store.open(tmp_path)
        also.close()
    finally:
        daemon.close()
        beside.close()
    Store.open(f"sqlite:///{tmp_path / DATABASE_NAME}", daemon=True).close()


# What a newer smsgw brings: one migration more than the running daemon knows.
NEWER_MIGRATION = "CREATE TABLE newer_smsgw (id INTEGER PRIMARY KEY);"


def _schema_version(database: Path) -> int:
    conn = sqlite3.connect(database)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=DEADLINE, env={**os.environ, "NOTIFY_SOCKET": ""}, check=False,
    )  # fmt: skip


def test_a_migration_is_refused_beside_a_running_daemon_and_no_daemon_starts_during_one(
    tmp_path: Path, notify: Notify, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real `smsgw serve` runs: `db migrate` with nothing to do runs beside it; a newer
    smsgw's (one migration more) is refused in one line, the schema untouched; once the daemon
    is stopped it migrates, and a `smsgw serve` started in the middle of it is refused."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    database = data_dir / DATABASE_NAME
    known = len(MIGRATIONS)
    daemon = _start(tmp_path, notify, "daemon.log")
    try:
        same = _run(["db", "migrate", "--data-dir", str(data_dir)])
        assert (same.returncode, same.stderr) == (0, "")
        assert same.stdout == f"schema version {known} of {known}\n"
        with pytest.raises(DatabaseInUseError):
            DaemonLock.take(database)  # the daemon really holds the lock meanwhile

        monkeypatch.setattr("gateway.store.base.MIGRATIONS", (*MIGRATIONS, NEWER_MIGRATION))
        newer = CliRunner().invoke(main, ["db", "migrate", "--data-dir", str(data_dir)])
        assert newer.exit_code == 1
        assert newer.output == (
            f"Error: {database} is in use by another running smsgw (pid {daemon.pid}):"
            f" stop it before this smsgw migrates the schema (version {known} to {known + 1})\n"
        )
        assert _schema_version(database) == known
        # ... but its backup, the step before the restart that migrates, runs beside the
        # daemon and copies the schema as it is.
        saved = tmp_path / "before-upgrade.sqlite3"
        backup = CliRunner().invoke(main, ["db", "backup", "--data-dir", str(data_dir), str(saved)])
        assert backup.exit_code == 0, backup.output
        assert (_schema_version(saved), Store.check_file(saved)) == (known, [])
        assert _schema_version(database) == known
        assert daemon.poll() is None  # it runs on, on the schema it knows
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=DEADLINE)
    assert daemon.returncode == 0

    during: list[subprocess.CompletedProcess[str]] = []

    def migrating(conn: sqlite3.Connection, migrations: tuple[str, ...]) -> list[int]:
        during.append(_run(_serve_args(tmp_path)[3:]))  # `smsgw serve`, as systemd would
        return migrate(conn, migrations)

    monkeypatch.setattr("gateway.store.base.migrate", migrating)
    done = CliRunner().invoke(main, ["db", "migrate", "--data-dir", str(data_dir)])
    assert done.exit_code == 0, done.output
    assert _schema_version(database) == known + 1
    (started,) = during
    assert started.returncode == 1
    assert started.stderr == (
        f"Error: {database} is in use by another running smsgw (pid {os.getpid()})\n"
    )
    DaemonLock.take(database).release()  # and let go once migrated


def test_a_migration_run_by_root_leaves_the_lock_file_to_the_data_dir_s_owner(
    tmp_path: Path,
) -> None:
    """`sudo smsgw db migrate` on a fresh box makes the lock file: the service's user (the data
    directory's owner) must be able to open it for writing, as it does the database."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if os.geteuid() == 0:
        os.chown(data_dir, 65534, 65534)  # the service's user (here: nobody)
    result = CliRunner().invoke(main, ["db", "migrate", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    owner = data_dir.stat().st_uid
    assert lock_path(data_dir / DATABASE_NAME).stat().st_uid == owner
    assert (data_dir / DATABASE_NAME).stat().st_uid == owner


NOBODY = 65534


def _gone_pid() -> int:
    """The pid of a process that has ended (what a `sudo smsgw serve` long stopped left)."""
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait(timeout=DEADLINE)
    return child.pid


@contextmanager
def _held_read_only(lock: Path) -> Iterator[int]:
    """Another process holding the lock through a read-only fd (so it wrote no pid there)."""
    script = (
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY);"
        " fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline() == b"locked\n"
        yield child.pid
    finally:
        child.stdin.close()
        child.wait(timeout=DEADLINE)
        child.stdout.close()


def test_a_holder_that_wrote_no_pid_is_named_from_the_kernel_s_lock_table(tmp_path: Path) -> None:
    database = tmp_path / DATABASE_NAME
    lock = lock_path(database)
    lock.write_text(f"{_gone_pid()}\n")  # stale: not the holder's
    with _held_read_only(lock) as holder, pytest.raises(DatabaseInUseError) as refused:
        DaemonLock.take(database)
    assert str(refused.value) == f"{database} is in use by another running smsgw (pid {holder})"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user may enter (tmp_path's parents are root's only, for root)."""
    path = Path(tempfile.mkdtemp(prefix="smsgw-lock-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@contextmanager
def _as_a_user_it_is_read_only_to(path: Path) -> Iterator[str]:
    """Run the block as a user who may read `path` but not write it (root: as nobody; anyone
    else: as its owner, the file made 0444); yield that user's name."""
    path.chmod(0o444)
    if os.geteuid() != 0:
        yield pwd.getpwuid(os.geteuid()).pw_name
        return
    os.seteuid(NOBODY)
    try:
        yield pwd.getpwuid(NOBODY).pw_name
    finally:
        os.seteuid(0)


def test_without_the_lock_table_a_lock_file_read_only_to_its_daemon_is_named_with_its_owner(
    shared_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Under the unit (ProcSubset=pid hides /proc/locks) a daemon that could open the lock
    file only read-only wrote no pid: it says so at start, and a refused one names the file,
    its owner and the fix, not the stale pid left in it."""
    monkeypatch.setattr("gateway.store.daemonlock.PROC_LOCKS", shared_dir / "hidden")
    database = shared_dir / DATABASE_NAME
    lock = lock_path(database)
    stale = _gone_pid()
    lock.write_text(f"{stale}\n")
    owner = pwd.getpwuid(lock.stat().st_uid).pw_name
    with (
        _as_a_user_it_is_read_only_to(lock) as me,
        caplog.at_level(logging.WARNING, "gateway.store.daemonlock"),
    ):
        running = DaemonLock.take(database)  # it locks all the same
        try:
            with pytest.raises(DatabaseInUseError) as refused:
                DaemonLock.take(database)
        finally:
            running.release()
    hint = f"{lock} (owned by {owner}) is read-only to {me}: chown it to {me}"
    assert str(refused.value) == (
        f"{database} is in use by another running smsgw (pid not known: {hint})"
    )
    assert caplog.messages == [f"this daemon's pid not written: {hint}"]
    assert lock.read_text() == f"{stale}\n"
