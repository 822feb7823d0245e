"""The HTTP API over a copy of a prepared database, on an event loop of its own: for the
hypothesis fuzz tests, whose examples run synchronously."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from api.app import build_app
from gateway.service import GatewayService
from gateway.store import DATABASE_NAME, Store


@contextmanager
def served_copy(
    db: Path, tmp_path: Path, now: datetime
) -> Iterator[tuple[asyncio.AbstractEventLoop, TestClient]]:
    """Serve a copy of `db` (in `tmp_path`) at the fixed time `now`; yields the loop to run
    requests on and the client; closes both and the store at the end."""
    shutil.copy(db, tmp_path / DATABASE_NAME)
    store = Store.open(tmp_path)
    loop = asyncio.new_event_loop()

    async def start() -> TestClient:
        client = TestClient(TestServer(build_app(GatewayService(store, wall=lambda: now))))
        await client.start_server()
        return client

    try:
        client = loop.run_until_complete(start())
        try:
            yield loop, client
        finally:
            loop.run_until_complete(client.close())
    finally:
        loop.close()
        store.close()
