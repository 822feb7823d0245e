"""Suite-wide test plumbing.

* `async def` tests run on a fresh event loop each, with a hard time limit (no plugin needed).
* Every test fails if it leaves asyncio tasks, live timers, open file descriptors (ports, PTYs,
  sockets, files) or threads behind. Mark a test `allow_leaks` to opt out (say why).
* `postgres` is a throwaway PostgreSQL cluster for the session (tests/postgres.py); `pg_url` a
  fresh database on it; `store_url` is parametrised over both store backends (an SQLite data
  directory, a PostgreSQL database), so a store test written once runs on both.
* The runner's own SMSGW_* settings (an operator's SMSGW_DATA_DIR, hardware-test ports) are
  hidden from every test and the subprocesses it starts; a test that needs one sets it.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.store import Store
from tests.postgres import Cluster

ASYNC_TEST_TIMEOUT = 60.0
_FD_DIR = "/proc/self/fd"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_leaks: skip the task/timer/fd/thread leak check")


def _open_fds() -> dict[int, str]:
    if not os.path.isdir(_FD_DIR):
        return {}
    out: dict[int, str] = {}
    for name in os.listdir(_FD_DIR):
        try:
            out[int(name)] = os.readlink(f"{_FD_DIR}/{name}")
        except OSError:
            continue  # the fd listdir itself used, already closed
    return out


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """A PostgreSQL server for the whole session, started on first use."""
    cluster = Cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(postgres: Cluster) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database, dropped after the test."""
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path, postgres: Cluster) -> Iterator[str]:
    """What `Store.open` takes, once per backend: a data directory, then a PostgreSQL URL.

    Asks for `postgres` even on SQLite so the session's server (its admin connection) is up
    before the leak check counts this test's descriptors."""
    if request.param == "sqlite":
        yield str(tmp_path)
        return
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A Store on `store_url` (each backend in turn), closed after the test."""
    s = Store.open(store_url)
    yield s
    s.close()


@pytest.fixture
def other(store_url: str, store: Store) -> Iterator[Store]:
    """A second connection to the same database: another box."""
    s = Store.open(store_url)
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _no_smsgw_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see the defaults, whatever the shell running them exports."""
    for name in list(os.environ):
        if name.startswith("SMSGW_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if it leaves file descriptors or threads behind."""
    if request.node.get_closest_marker("allow_leaks"):
        yield
        return
    fds = _open_fds()
    threads = set(threading.enumerate())
    yield
    leaked_fds = {fd: path for fd, path in _open_fds().items() if fds.get(fd) != path}
    leaked_threads = [t for t in threading.enumerate() if t not in threads and t.is_alive()]
    problems = []
    if leaked_fds:
        problems.append(f"open file descriptors: {leaked_fds}")
    if leaked_threads:
        problems.append(f"threads still running: {[t.name for t in leaked_threads]}")
    if problems:
        pytest.fail("test leaked " + "; ".join(problems), pytrace=False)


def _live_timers(loop: asyncio.AbstractEventLoop) -> list[Any]:
    scheduled = getattr(loop, "_scheduled", [])
    return [h for h in scheduled if not h.cancelled()]


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests on a fresh loop; fail on leftover tasks or timers."""
    func = pyfuncitem.obj
    if not inspect.iscoroutinefunction(func):
        return None
    if pyfuncitem.get_closest_marker("asyncio") is not None:
        return None  # leave it to pytest-asyncio if a test asks for it explicitly
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    loop = asyncio.new_event_loop()
    leftovers: list[str] = []
    try:
        asyncio.set_event_loop(loop)

        async def main() -> None:
            async with asyncio.timeout(ASYNC_TEST_TIMEOUT):
                await func(**kwargs)
            # Let callbacks already due run (e.g. transports reporting connection_lost).
            for _ in range(3):
                await asyncio.sleep(0)

        loop.run_until_complete(main())
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        timers = _live_timers(loop)
        if tasks:
            leftovers.append(f"tasks: {[t.get_name() + ' ' + repr(t.get_coro()) for t in tasks]}")
        if timers and not pyfuncitem.get_closest_marker("allow_leaks"):
            leftovers.append(f"timers: {timers}")
    finally:
        _shutdown(loop)
        asyncio.set_event_loop(None)
    if leftovers and not pyfuncitem.get_closest_marker("allow_leaks"):
        pytest.fail("test left behind " + "; ".join(leftovers), pytrace=False)
    return True


def _shutdown(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
