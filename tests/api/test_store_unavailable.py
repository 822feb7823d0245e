"""Disk full or database locked: every dialect answers its own "try later", loses nothing, and
takes requests again once the store can write."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import build_app
from gateway.accounts import secret_digest
from gateway.service import GatewayService
from gateway.store import DATABASE_NAME, Store
from gateway.store.postgres import WRITER_LOCK
from tests.api.test_bestsms import NAME, T0, World, build_world
from tests.storefaults import fill_disk, refuse_statements

ZOOM_EMAIL, ZOOM_TOKEN = "example@gmail.com", "zoom-token-of-b"  # the world's main account
SIM = "447700900001"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("world"))


@dataclass(frozen=True)
class Dialect:
    """How one dialect sends, and what it answers when the store refuses."""

    name: str
    send: Callable[[TestClient, World, str], Awaitable[tuple[int, Any, str]]]
    accepted: Callable[[int, Any], bool]
    unavailable: Callable[[int, Any, str], bool]


async def _v1(client: TestClient, world: World, text: str) -> tuple[int, Any, str]:
    r = await client.post(
        "/v1/messages",
        json={"to": "+447700900123", "text": text},
        headers={"Authorization": f"Bearer {world.api_key}"},
    )
    return r.status, await r.json(), r.headers.get("Retry-After", "")


async def _bestsms(client: TestClient, world: World, text: str) -> tuple[int, Any, str]:
    r = await client.post("/api_v1", data={
        "sub_account": NAME, "sub_account_pass": world.password, "action": "send_sms",
        "message": text, "recipients": "+447700900123"})  # fmt: skip
    return r.status, json.loads(await r.text()), ""


async def _ultrasms(client: TestClient, world: World, text: str) -> tuple[int, Any, str]:
    r = await client.post("/apis/smsgroup/", data={
        "apikey": world.api_key, "from": SIM, "to": "My Customers", "message": text})  # fmt: skip
    return r.status, json.loads(await r.text()), ""


async def _zoom(client: TestClient, world: World, text: str) -> tuple[int, Any, str]:
    r = await client.post(
        "/app/api/rest/v1/sms/send",
        json={"recipientNumber": "+447700900123", "message": text},
        headers={"email": ZOOM_EMAIL, "token": ZOOM_TOKEN},
    )
    return r.status, json.loads(await r.text()), r.headers.get("Retry-After", "")


async def _everyone(client: TestClient, world: World, text: str) -> tuple[int, Any, str]:
    r = await client.post(
        "/api/campaign",
        json={"Action": "Create", "Message": text, "Destinations": ["447700900123"]},
        headers={"Authorization": aiohttp.encode_basic_auth(NAME, world.password)},
    )
    return r.status, json.loads(await r.text()), r.headers.get("Retry-After", "")


DIALECTS = [
    Dialect(
        "v1",
        _v1,
        lambda status, body: status == 201 and len(body["message_ids"]) == 1,
        lambda status, body, retry: (
            status == 503
            and body["error"]["code"] == "temporarily_unavailable"
            and bool(body["error"]["message"])
            and retry == "5"
        ),
    ),
    Dialect(
        "bestsms",
        _bestsms,
        lambda status, body: status == 200 and "error" not in body,
        # The spec's only server-side failure: 11 "operation failed" (HTTP 200, as every answer)
        lambda status, body, _: (
            status == 200 and body == {"error": "operation failed", "error_code": "11"}
        ),
    ),
    Dialect(
        "ultrasms",
        _ultrasms,
        lambda status, body: status == 200 and isinstance(body, int) and body > 0,
        lambda status, body, _: status == 200 and body == -16,  # smsgroup's "Other error."
    ),
    Dialect(
        "zoomconnect",
        _zoom,
        lambda status, body: status == 200 and body["error"] is None,
        # The spec names no server failure: its error shape, with 503 and our code 16
        lambda status, body, retry: (
            status == 503
            and (body["status"], body["code"]) == ("SERVICE_UNAVAILABLE", 16)
            and retry == "5"
        ),
    ),
    Dialect(
        "smseveryone",
        _everyone,
        lambda status, body: status == 200 and body["Code"] == 0 and body["Messages"] == 1,
        lambda status, body, retry: (
            status == 503 and body["Code"] == -503 and bool(body["Message"]) and retry == "5"
        ),
    ),
]


def _run(
    world: World,
    tmp_path: Path,
    scenario: Callable[[TestClient, Store], Awaitable[None]],
    *,
    busy_timeout_ms: int = 1000,
    pg_url: str | None = None,
) -> None:
    tmp_path.mkdir(parents=True, exist_ok=True)
    shutil.copy(world.db, tmp_path / DATABASE_NAME)
    store = Store.open(tmp_path, busy_timeout_ms=busy_timeout_ms)
    if pg_url is not None:  # the same world on PostgreSQL (fleet mode)
        fleet = Store.open(pg_url, busy_timeout_ms=busy_timeout_ms)
        store.copy_to(fleet)
        store.close()
        store = fleet
    store.conn.execute("UPDATE accounts SET token = ? WHERE id = 1", (secret_digest(ZOOM_TOKEN),))
    service = GatewayService(store, wall=lambda: T0)

    async def main() -> None:
        # A client that gives up after 3 s: a handler stuck behind the lock would fail here.
        timeout = aiohttp.ClientTimeout(total=3)
        async with TestClient(TestServer(build_app(service)), timeout=timeout) as client:
            await scenario(client, store)

    try:
        asyncio.run(main())
    finally:
        store.close()


def _messages(store: Store) -> list[tuple[int, str, str]]:
    rows = store.conn.execute("SELECT id, body, state FROM messages ORDER BY id").fetchall()
    return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_disk_full_answers_unavailable_keeps_what_was_accepted_and_recovers(
    world: World, tmp_path: Path, dialect: Dialect
) -> None:
    async def scenario(client: TestClient, store: Store) -> None:
        status, body, _ = await dialect.send(client, world, "before")
        assert dialect.accepted(status, body), body
        before = _messages(store)
        credits = store.account(1)["credits"]
        disk = fill_disk(store)
        disk.full = True
        status, body, retry = await dialect.send(client, world, "while full")
        assert dialect.unavailable(status, body, retry), (status, body, retry)
        assert disk.refused >= 1
        assert _messages(store) == before  # nothing lost, nothing half-accepted
        assert store.account(1)["credits"] == credits  # nobody charged for a refusal
        disk.full = False  # space returns
        status, body, _ = await dialect.send(client, world, "after")
        assert dialect.accepted(status, body), body
        assert [b for _, b, _ in _messages(store)].count("after") >= 1
        assert _messages(store)[: len(before)] == before

    _run(world, tmp_path, scenario)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_a_database_locked_by_another_process_is_answered_in_time(
    world: World, tmp_path: Path, dialect: Dialect
) -> None:
    async def scenario(client: TestClient, store: Store) -> None:
        outside = sqlite3.connect(tmp_path / DATABASE_NAME, isolation_level=None)
        try:
            outside.execute("BEGIN IMMEDIATE")  # `sqlite3 smsgw.sqlite3` left in a write
            status, body, retry = await dialect.send(client, world, "while locked")
            assert dialect.unavailable(status, body, retry), (status, body, retry)
            r = await client.get("/v1/health")  # the rest of the gateway still answers
            assert r.status in (200, 503)
            assert "status" in await r.json()
        finally:
            outside.execute("ROLLBACK")
            outside.close()
        status, body, _ = await dialect.send(client, world, "after the lock")
        assert dialect.accepted(status, body), body

    # The lock is held "30 s": the store gives up after 50 ms, not after the client does.
    _run(world, tmp_path, scenario, busy_timeout_ms=50)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_another_box_holding_the_fleet_writer_lock_is_answered_in_time(
    world: World, tmp_path: Path, dialect: Dialect, pg_url: str
) -> None:
    """PostgreSQL: another box's transaction holds the fleet-wide writer lock (stuck): the
    store gives up after its lock timeout and every dialect answers its own try-later."""

    async def scenario(client: TestClient, store: Store) -> None:
        before = _messages(store)
        outside = psycopg.connect(pg_url, autocommit=True)
        try:
            outside.execute(f"BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK})".encode())
            status, body, retry = await dialect.send(client, world, "while locked")
            assert dialect.unavailable(status, body, retry), (status, body, retry)
            r = await client.get("/v1/health")  # the rest of the gateway still answers
            assert r.status in (200, 503)
        finally:
            outside.execute("ROLLBACK")
            outside.close()
        assert _messages(store) == before
        status, body, _ = await dialect.send(client, world, "after the lock")
        assert dialect.accepted(status, body), body

    _run(world, tmp_path, scenario, busy_timeout_ms=50, pg_url=pg_url)


ADMIN_PASSWORD = "correct horse battery"
PAGES = ["/", "/fragments/overview", "/messages", "/inbox", "/sims", "/accounts"]


async def _log_in(client: TestClient, world: World) -> tuple[str, list[str]]:
    """Log the client in to the dashboard; return a form's CSRF token and the pages to see (one
    message's page among them)."""
    status, body, _ = await _v1(client, world, "before")
    assert status == 201, body
    pages = [*PAGES, f"/messages/{body['message_ids'][0]}"]
    form = await (await client.get("/login")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token is not None
    r = await client.post(
        "/login", data={"csrf": token.group(1), "password": ADMIN_PASSWORD, "next": "/messages"}
    )
    assert r.status == 200, await r.text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', await r.text())
    assert csrf is not None
    return csrf.group(1), pages


async def _store_down_page(r: aiohttp.ClientResponse) -> bool:
    said = "cannot be used right now" in await r.text()
    return r.status == 503 and said and r.headers.get("Retry-After") == "5"


async def _health(client: TestClient) -> tuple[int, dict[str, Any]]:
    r = await client.get("/v1/health")
    return r.status, await r.json()


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match is not None, f"{name} not in /metrics"
    return float(match.group(1))


@pytest.mark.parametrize("code", [10, 14], ids=["io-error", "no-fd"])
def test_the_dashboard_metrics_and_health_say_the_store_is_down_not_a_traceback(
    world: World, tmp_path: Path, code: int, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(client: TestClient, store: Store) -> None:
        GatewayService(store, wall=lambda: T0).set_admin_password(ADMIN_PASSWORD)
        csrf, pages = await _log_in(client, world)
        fault = refuse_statements(store, code)
        fault.down = True  # the SD card fails reads, or no descriptor is left
        for path in pages:
            r = await client.get(path)
            assert await _store_down_page(r), path
        sent = {"csrf": csrf, "account": "1", "to": "+447700900123", "text": "hi"}
        credits = {"csrf": csrf, "delta": "5"}
        for path, data in [("/messages", sent), ("/accounts/1/credits", credits)]:
            r = await client.post(path, data=data)
            assert await _store_down_page(r), path
        r = await client.get("/login")  # even the login form (it asks whether a password is set)
        assert await _store_down_page(r)
        r = await client.get("/metrics")
        metrics = await r.text()
        assert r.status == 200
        assert _metric(metrics, "smsgw_store_up") == 0
        assert "process_open_fds" in metrics  # what needs no store is still there
        assert "smsgw_queue_messages" not in metrics
        status, health = await _health(client)
        assert status == 503 and health["status"] == "not_ready"
        assert health["database"] == "unavailable"
        assert health["problems"][0].startswith("database unavailable: ")
        assert fault.refused > 0
        fault.down = False
        for path in pages:
            r = await client.get(path)
            assert r.status == 200, path
        metrics = await (await client.get("/metrics")).text()
        assert _metric(metrics, "smsgw_store_up") == 1
        assert "smsgw_queue_messages" in metrics
        assert (await _health(client))[1]["database"] == "ok"

    _run(world, tmp_path, scenario)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert not [r for r in caplog.records if r.exc_info]


def test_while_another_process_holds_the_write_lock_pages_read_and_writes_say_try_later(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(client: TestClient, store: Store) -> None:
        GatewayService(store, wall=lambda: T0).set_admin_password(ADMIN_PASSWORD)
        csrf, pages = await _log_in(client, world)
        outside = sqlite3.connect(tmp_path / DATABASE_NAME, isolation_level=None)
        try:
            outside.execute("BEGIN IMMEDIATE")  # a script left in a write, for "30 s"
            for path in pages:  # reads go on in WAL mode
                assert (await client.get(path)).status == 200, path
            data = {"csrf": csrf, "account": "1", "to": "+447700900123", "text": "while locked"}
            r = await client.post("/messages", data=data)
            assert await _store_down_page(r)
            metrics = await (await client.get("/metrics")).text()
            assert _metric(metrics, "smsgw_store_write_locked") == 1
            assert _metric(metrics, "smsgw_store_lock_refusals_total") >= 1
            status, health = await _health(client)
            assert status == 503 and health["database"] == "unavailable"
            assert "locked by another process" in health["problems"][0]
        finally:
            outside.execute("ROLLBACK")
            outside.close()
        assert (await _health(client))[1]["database"] == "ok"  # seen going, nothing else wrote
        metrics = await (await client.get("/metrics")).text()
        assert _metric(metrics, "smsgw_store_write_locked") == 0
        r = await client.post("/messages", data=data, allow_redirects=False)
        assert r.status == 303  # accepted once the lock is gone
        assert [b for _, b, _ in _messages(store)].count("while locked") == 1

    _run(world, tmp_path, scenario, busy_timeout_ms=50)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_a_refused_group_commit_answers_each_request_in_its_dialect(
    world: World, tmp_path: Path, dialect: Dialect
) -> None:
    """Requests that arrive together share one COMMIT (in the accept thread); when the disk
    refuses it, every one of them gets the dialect's "try later", and then they go through."""

    async def scenario(client: TestClient, store: Store) -> None:
        status, body, _ = await dialect.send(client, world, "before")
        assert dialect.accepted(status, body), body
        before = _messages(store)
        credits = store.account(1)["credits"]
        disk = fill_disk(store)
        disk.full = True
        answers = await asyncio.gather(
            *(dialect.send(client, world, f"full {i}") for i in range(6))
        )
        assert all(dialect.unavailable(*a) for a in answers), answers
        assert 1 <= disk.refused < 6  # several requests per refused COMMIT
        assert _messages(store) == before
        assert store.account(1)["credits"] == credits
        disk.full = False
        answers = await asyncio.gather(*(dialect.send(client, world, f"ok {i}") for i in range(6)))
        assert all(dialect.accepted(s, b) for s, b, _ in answers), answers
        bodies = [b for _, b, _ in _messages(store)]
        assert {b for b in bodies if b.startswith("ok ")} == {f"ok {i}" for i in range(6)}

    _run(world, tmp_path, scenario)
