"""Outgoing webhooks: the outbox rows the store writes with each change, URL rules, signing,
and the sender against real local receivers (hang, 500, redirects, huge bodies, order)."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from aiohttp import web

from gateway.accounts import create_account
from gateway.config import WebhookSettings
from gateway.models import PartState, WebhookKind
from gateway.service import GatewayService, InvalidRequestError, InvalidWebhookUrlError
from gateway.store import Store
from gateway.webhooks import (
    WebhookEvent,
    WebhookRequest,
    WebhookUrlError,
    WebhookWorker,
    backoff_delay,
    check_url,
    redact_url,
    register_format,
    sign,
    verify_signature,
)
from tests.gateway.webhook_support import ManualClock, Receiver, signature_ok

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
S = PartState
FAST = WebhookSettings(timeout=2.0, connect_timeout=1.0, backoff_first=5, backoff_cap=60)


def _setup(store: Store, clock: ManualClock | None = None) -> tuple[GatewayService, int]:
    wall = clock.wall if clock is not None else (lambda: T0)
    service = GatewayService(store, wall=wall)
    account = create_account(store, "shop", now=T0, credits=100).account_id
    return service, account


def _message(store: Store, account: int, recipient: str = "+15005550000", parts: int = 1) -> int:
    return store.accept_message(
        account_id=account, recipient=recipient, body="hi", encoding="gsm7", parts=parts,
        extra={"campaign": "spring"}, now=T0,
    ).message_id  # fmt: skip


def _advance(store: Store, message_id: int, *steps: PartState, report: int | None = None) -> None:
    (part,) = store.parts(message_id)
    current = PartState(part["state"])
    for target in steps:
        fields = {"report_status": report} if target is S.DELIVERED and report is not None else {}
        store.transition_part(part["id"], current, target, now=T0, fields=fields)
        current = target


def _events(store: Store) -> list[dict[str, object]]:
    rows = store.conn.execute("SELECT * FROM webhook_events ORDER BY id").fetchall()
    return [{**dict(r), "data": json.loads(r["payload"])} for r in rows]


# -- the outbox rows ----------------------------------------------------------------------


def test_status_changes_are_queued_only_for_subscribed_accounts(store: Store) -> None:
    service, account = _setup(store)
    quiet = _message(store, account)
    _advance(store, quiet, S.SENDING)
    assert _events(store) == []  # no subscription, no row

    service.set_webhook(account, WebhookKind.STATUS, "https://example.com/status?token=abc")
    mid = _message(store, account)
    _advance(store, mid, S.SENDING, S.SENT, S.DELIVERED, report=0)
    events = _events(store)
    assert [(e["data"]["previous_state"], e["data"]["state"]) for e in events] == [  # type: ignore[index]
        ("queued", "sending"), ("sending", "sent"), ("sent", "delivered"),
    ]  # fmt: skip
    last = events[-1]
    assert last["order_key"] == f"message:{mid}"
    assert last["state"] == "pending"
    assert str(last["event_id"]).startswith("evt_")
    data = last["data"]
    assert data["tp_status"] == 0 and data["part_state"] == "delivered"  # type: ignore[index]
    assert data["recipient"] == "+15005550000"  # type: ignore[index]
    assert data["extra"] == {"campaign": "spring"}  # type: ignore[index]
    assert len({e["event_id"] for e in events}) == 3


def test_a_report_settling_one_part_of_several_is_an_event_too(store: Store) -> None:
    service, account = _setup(store)
    service.set_webhook(account, "status", "http://127.0.0.1:9/x")
    mid = _message(store, account, parts=2)
    first, second = store.parts(mid)
    for part in (first, second):
        store.transition_part(part["id"], S.QUEUED, S.SENDING, now=T0)
        store.transition_part(part["id"], S.SENDING, S.SENT, now=T0, fields={"tp_mr": 1})
    before = len(_events(store))
    store.transition_part(first["id"], S.SENT, S.DELIVERED, now=T0, fields={"report_status": 0})
    (event,) = _events(store)[before:]
    data = event["data"]
    # The message is still `sent` (its other part is not delivered): a part-level event.
    assert (data["state"], data["previous_state"]) == ("sent", "sent")  # type: ignore[index]
    assert (data["part_id"], data["part_state"], data["tp_status"]) == (  # type: ignore[index]
        first["id"], "delivered", 0,
    )  # fmt: skip


def test_a_rolled_back_change_leaves_no_event(store: Store) -> None:
    service, account = _setup(store)
    service.set_webhook(account, "status", "http://127.0.0.1:9/x")
    mid = _message(store, account)
    (part,) = store.parts(mid)
    if store.dialect == "sqlite":
        store.conn.execute("CREATE TRIGGER boom BEFORE INSERT ON webhook_events BEGIN"
                           " SELECT RAISE(ABORT, 'disk full'); END")  # fmt: skip
        failure: type[Exception] = sqlite3.IntegrityError
    else:
        store.conn.execute("CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS"
                           " $$ BEGIN RAISE EXCEPTION 'disk full'; END $$")  # fmt: skip
        store.conn.execute("CREATE TRIGGER boom BEFORE INSERT ON webhook_events"
                           " FOR EACH ROW EXECUTE FUNCTION boom()")  # fmt: skip
        failure = psycopg.errors.RaiseException
    with pytest.raises(failure, match="disk full"):
        store.transition_part(part["id"], S.QUEUED, S.SENDING, now=T0)
    # Same transaction: the part did not move either.
    assert store.parts(mid)[0]["state"] == "queued"
    store.conn.execute(
        "DROP TRIGGER boom" + ("" if store.dialect == "sqlite" else " ON webhook_events")
    )
    store.transition_part(part["id"], S.QUEUED, S.SENDING, now=T0)
    assert len(_events(store)) == 1


def test_scheduled_promotion_and_cancellation_are_status_events(store: Store) -> None:
    service, account = _setup(store)
    service.set_webhook(account, "status", "http://127.0.0.1:9/x")
    later = store.accept_message(
        account_id=account, recipient="+1555", body="x", encoding="gsm7", parts=1,
        send_at=T0 + timedelta(hours=1), now=T0,
    ).message_id  # fmt: skip
    store.promote_due(T0 + timedelta(hours=2))
    other = _message(store, account)
    store.cancel_message(other, now=T0)
    changes = [(e["data"]["message_id"], e["data"]["state"]) for e in _events(store)]  # type: ignore[index]
    assert changes == [(later, "queued"), (other, "cancelled")]


def test_replies_carry_the_conversation_they_answer(store: Store) -> None:
    service, account = _setup(store)
    service.set_webhook(account, "reply", "http://127.0.0.1:9/in")
    mid = _message(store, account, recipient="+15551230001")
    inbound = store.insert_inbound(
        {"account_id": account, "originator": "+15551230001", "recipient": "+15550009999",
         "body": "yes please", "encoding": "gsm7", "parts_received": 2, "parts_total": 2,
         "complete": 1},
        [], now=T0,
    )  # fmt: skip
    (event,) = _events(store)
    assert event["kind"] == "reply"
    assert event["order_key"] == f"reply:{account}:+15551230001"
    assert event["data"] == {
        "inbound_id": inbound, "from": "+15551230001", "to": "+15550009999",
        "text": "yes please", "encoding": "gsm7", "received_at": "2026-11-22T09:00:00.000000+00:00",
        "parts": 2, "complete": True, "replied_to_message_id": mid,
        "replied_to_extra": {"campaign": "spring"},
    }  # fmt: skip
    # An OTP left in the account's own inbox is not a reply from a phone.
    service.generate_otp(account, None)
    assert len(_events(store)) == 1


def test_bad_urls_kinds_and_formats_are_refused(store: Store) -> None:
    service, account = _setup(store)
    bad = ["ftp://example.com/x", "example.com/hook", "http://", "javascript:alert(1)",
           "https://example.com:99999/", "https://exa mple.com/", "http://h/#frag", ""]  # fmt: skip
    for url in bad:
        with pytest.raises(InvalidWebhookUrlError):
            service.set_webhook(account, "reply", url)
    with pytest.raises(InvalidRequestError, match="unknown webhook kind"):
        service.set_webhook(account, "bounce", "https://example.com/")
    with pytest.raises(InvalidRequestError, match="unknown webhook format"):
        service.set_webhook(account, "reply", "https://example.com/", format="nope")
    assert service.webhooks(account) == {}


def test_check_url_and_redaction() -> None:
    assert check_url("https://Hooks.Example.com/a?b=c") == "hooks.example.com:443"
    assert check_url("http://10.0.0.5:8080/sms") == "10.0.0.5:8080"
    with pytest.raises(WebhookUrlError, match="http:// or https://"):
        check_url("file:///etc/passwd")
    assert redact_url("https://user:pw@h.example:8443/p/q?token=s3cret") == (
        "https://h.example:8443/p/q?…"
    )


def test_signature_scheme_and_replay_window() -> None:
    request = WebhookRequest("POST", "https://h/x", body=b'{"id":"evt_1"}')
    value = sign("whsec_k", 1_800_000_000, request)
    assert value.startswith("v1=")
    assert verify_signature("whsec_k", "1800000000", value, request.body, now=1_800_000_100)
    assert not verify_signature("whsec_k", "1800000000", value, request.body, now=1_800_000_400)
    assert not verify_signature("whsec_x", "1800000000", value, request.body, now=1_800_000_000)
    assert not verify_signature("whsec_k", "1800000001", value, request.body, now=1_800_000_000)


def test_backoff_is_capped_exponential_with_jitter() -> None:
    settings = WebhookSettings(backoff_first=5, backoff_cap=600)
    rng = random.Random(1)
    delays = [backoff_delay(n, settings, rng) for n in range(1, 12)]
    assert 2.5 <= delays[0] <= 5
    assert 5 <= delays[1] <= 10
    assert all(300 <= d <= 600 for d in delays[8:])  # capped
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered


# -- the sender against real receivers ----------------------------------------------------


@asynccontextmanager
async def _worker(
    store: Store, clock: ManualClock, settings: WebhookSettings = FAST
) -> AsyncIterator[WebhookWorker]:
    worker = WebhookWorker(store, settings, clock=clock.clock(), rng=random.Random(7))
    store.on_webhook_enqueued = worker.wake
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await task
        store.on_webhook_enqueued = None


async def _run_until(worker: WebhookWorker, clock: ManualClock, seconds: float, step: float = 1):
    """Step virtual time, letting the sender settle after each step."""
    await worker.quiet()
    for _ in range(int(seconds / step)):
        clock.advance(step)
        await worker.quiet()


async def test_delivers_signed_v1_json(store: Store) -> None:
    clock = ManualClock(T0)
    service, account = _setup(store, clock)
    async with Receiver() as receiver, _worker(store, clock) as worker:
        service.set_webhook(account, "status", receiver.url("/status?token=abc"))
        mid = _message(store, account)
        _advance(store, mid, S.SENDING)
        await receiver.wait_for(1)
        await worker.quiet()
    (seen,) = receiver.seen
    secret = service.webhook_secret(account)
    assert seen.method == "POST" and seen.path == "/status" and seen.query == "token=abc"
    assert seen.headers["Content-Type"] == "application/json"
    assert signature_ok(secret, seen.headers, seen.body)
    assert seen.headers["X-Smsgw-Timestamp"] == str(int(T0.timestamp()))
    body = seen.json()
    assert body["id"] == seen.headers["X-Smsgw-Event-Id"]
    assert body["type"] == "status" and body["account_id"] == account
    assert (body["data"]["message_id"], body["data"]["state"]) == (mid, "sending")
    (row,) = store.list_webhook_events(account_id=account)
    assert (row["state"], row["attempts"], row["last_status"]) == ("delivered", 1, 200)
    assert service.webhook_counts() == {"pending": 0, "delivered": 1, "failed": 0}


async def test_500_is_retried_with_backoff_then_delivered(store: Store) -> None:
    clock = ManualClock(T0)
    service, account = _setup(store, clock)

    async def flaky(request: web.Request, receiver: Receiver) -> web.StreamResponse:
        if len(receiver.seen) <= 2:
            return web.Response(status=500, text="database is down")
        return web.Response(text="ok")

    async with Receiver(flaky) as receiver, _worker(store, clock) as worker:
        service.set_webhook(account, "status", receiver.url())
        _advance(store, _message(store, account), S.SENDING)
        await receiver.wait_for(1)
        await worker.quiet()
        (row,) = store.list_webhook_events(account_id=account)
        assert (row["state"], row["attempts"], row["last_status"]) == ("pending", 1, 500)
        assert row["last_error"] == "HTTP 500: database is down"
        due = datetime.fromisoformat(row["next_attempt_at"]) - clock.now
        assert timedelta(seconds=2.5) <= due <= timedelta(seconds=5)
        await _run_until(worker, clock, 30)
    assert len(receiver.seen) == 3
    assert len({s.headers["X-Smsgw-Event-Id"] for s in receiver.seen}) == 1  # same event id
    (row,) = store.list_webhook_events(account_id=account)
    assert (row["state"], row["attempts"], row["last_status"], row["last_error"]) == (
        "delivered", 3, 200, "",
    )  # fmt: skip


async def test_a_retry_put_off_before_the_clock_went_back_is_not_held_for_the_step(
    store: Store,
) -> None:
    clock = ManualClock(T0)
    service, account = _setup(store, clock)

    async def once_down(request: web.Request, receiver: Receiver) -> web.StreamResponse:
        return web.Response(status=503 if len(receiver.seen) == 1 else 200)

    async with Receiver(once_down) as receiver, _worker(store, clock) as worker:
        service.set_webhook(account, "status", receiver.url())
        _advance(store, _message(store, account), S.SENDING)
        await receiver.wait_for(1)
        await worker.quiet()  # put off for a few seconds...
        clock.now -= timedelta(hours=2)  # ...then NTP steps the wall clock back two hours
        await _run_until(worker, clock, FAST.backoff_cap + FAST.poll_interval)
    (row,) = store.list_webhook_events(account_id=account)
    assert (row["state"], row["attempts"]) == ("delivered", 2)
    assert len(receiver.seen) == 2


async def test_given_up_after_the_window_and_the_next_event_goes(store: Store) -> None:
    clock = ManualClock(T0)
    service, account = _setup(store, clock)
    failing = True

    async def down(request: web.Request, receiver: Receiver) -> web.StreamResponse:
        return web.Response(status=503 if failing else 200)

    settings = replace(FAST, retry_window=60)
    async with Receiver(down) as receiver, _worker(store, clock, settings) as worker:
        service.set_webhook(account, "status", receiver.url())
        mid = _message(store, account)
        _advance(store, mid, S.SENDING, S.SENT)  # two events, in order
        await _run_until(worker, clock, 90)
        first, second = sorted(store.list_webhook_events(account_id=account), key=lambda r: r["id"])
        assert first["state"] == "failed" and first["attempts"] >= 3
        assert first["last_error"] == "HTTP 503"
        # The second was held back until the first was given up, then tried in its turn.
        assert second["attempts"] >= 1
        tried = [s.json()["data"]["state"] for s in receiver.seen]
        assert tried.index("sent") > max(i for i, t in enumerate(tried) if t == "sending")
        failing = False
        assert service.retry_webhooks(account) == 2
        await _run_until(worker, clock, 60)
    assert service.webhook_counts()["delivered"] == 2


async def test_a_hanging_receiver_times_out(store: Store) -> None:
    clock = ManualClock(T0)
    service, account = _setup(store, clock)
    release = asyncio.Event()

    async def hang(request: web.Request, receiver: Receiver) -> web.StreamResponse:
        await release.wait()
        return web.Response(text="late")

    settings = replace(FAST, timeout=0.2)
    async with Receiver(hang) as receiver, _worker(store, clock, settings) as worker:
        service.set_webhook(account, "status", receiver.url())
        _advance(store, _message(store, account), S.SENDING)
        await receiver.wait_for(1)
        await worker.quiet()
        release.set()
    (row,) = store.list_webhook_events(account_id=account)
    assert (row["state"], row["attempts"], row["last_status"]) == ("pending", 1, None)
    assert row["last_error"] == "no answer within 0.2 s"


async def test_redirects_to_another_host_are_refused_same_host_followed(store: Store) -> None:
    clock = ManualClock(T0)
    service, account = _setup(store, clock)
    async with Receiver(host="127.0.0.2") as elsewhere:

        async def redirect(request: web.Request, receiver: Receiver) -> web.StreamResponse:
            if request.path == "/moved":
                raise web.HTTPTemporaryRedirect("/new-home")
            if request.path == "/away":
                raise web.HTTPFound(elsewhere.url("/steal"))
            return web.Response(text="ok")

        async with Receiver(redirect) as receiver, _worker(store, clock) as worker:
            service.set_webhook(account, "status", receiver.url("/away"))
            service.set_webhook(account, "reply", receiver.url("/moved"))
            _advance(store, _message(store, account), S.SENDING)
            service.fire_test_webhook(account, "reply")
            await receiver.wait_for(3)
            await worker.quiet()
    assert elsewhere.seen == []  # never contacted
    by_kind = {r["kind"]: r for r in store.list_webhook_events(account_id=account)}
    assert by_kind["status"]["state"] == "pending"
    assert by_kind["status"]["last_error"] == "redirect to another host refused (302)"
    assert by_kind["reply"]["state"] == "delivered"
    moved, followed = (s for s in receiver.seen if s.path in ("/moved", "/new-home"))
    assert followed.path == "/new-home" and followed.method == "POST"
    assert followed.body == moved.body and followed.body  # the same request again
    assert followed.json()["data"]["test"] is True


async def test_a_huge_body_is_cut_off(store: Store) -> None:
    clock = ManualClock(T0)
    service, account = _setup(store, clock)
    written = 0
    stopped = asyncio.Event()

    async def firehose(request: web.Request, receiver: Receiver) -> web.StreamResponse:
        nonlocal written
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b"x" * 65536
        try:
            while written < 100 * 1024 * 1024:
                await response.write(chunk)
                written += len(chunk)
        except (ConnectionError, RuntimeError):
            pass
        finally:
            stopped.set()
        return response

    async with Receiver(firehose) as receiver, _worker(store, clock) as worker:
        service.set_webhook(account, "status", receiver.url())
        _advance(store, _message(store, account), S.SENDING)
        await receiver.wait_for(1)
        await stopped.wait()
        await worker.quiet()
    (row,) = store.list_webhook_events(account_id=account)
    assert (row["state"], row["last_status"]) == ("delivered", 200)
    assert written < 16 * 1024 * 1024  # the sender hung up long before 100 MB


async def test_order_per_message_and_a_stuck_host_does_not_hold_others(store: Store) -> None:
    clock = ManualClock(T0)
    service, account = _setup(store, clock)
    other = create_account(store, "other", now=T0).account_id
    release = asyncio.Event()

    async def stuck(request: web.Request, receiver: Receiver) -> web.StreamResponse:
        await release.wait()
        return web.Response()

    settings = replace(FAST, per_host=2, timeout=30)
    async with (
        Receiver(stuck) as slow,
        Receiver(host="127.0.0.2") as fast,
        _worker(store, clock, settings) as worker,
    ):
        service.set_webhook(account, "status", slow.url())
        service.set_webhook(other, "status", fast.url())
        for _ in range(5):  # five messages of the stuck account: at most 2 requests in flight
            _advance(store, _message(store, account), S.SENDING)
        messages = [_message(store, other) for _ in range(10)]
        for mid in messages:
            _advance(store, mid, S.SENDING, S.SENT, S.DELIVERED, report=0)
        await fast.wait_for(30)
        assert len(slow.seen) == 2
        release.set()
        await slow.wait_for(5)
        await worker.quiet()
    for mid in messages:
        states = [
            s.json()["data"]["state"] for s in fast.seen if s.json()["data"]["message_id"] == mid
        ]
        assert states == ["sending", "sent", "delivered"]


def test_removing_a_subscription_fails_its_pending_events(store: Store) -> None:
    service, account = _setup(store)
    service.set_webhook(account, "status", "http://127.0.0.1:9/never")
    service.set_webhook(account, "reply", "http://127.0.0.1:9/in")
    _advance(store, _message(store, account), S.SENDING)
    service.fire_test_webhook(account, "reply")
    assert service.delete_webhook(account, "status")
    assert not service.delete_webhook(account, "status")
    rows = {r["kind"]: r for r in store.list_webhook_events(account_id=account)}
    assert rows["status"]["state"] == "failed"
    assert rows["status"]["last_error"] == "the account's status webhook was removed"
    assert rows["reply"]["state"] == "pending"  # the other kind is untouched


async def test_followers_wait_with_their_backing_off_predecessor(store: Store) -> None:
    clock = ManualClock(T0)
    service, account = _setup(store, clock)

    async def down(request: web.Request, receiver: Receiver) -> web.StreamResponse:
        return web.Response(status=500)

    async with Receiver(down) as receiver, _worker(store, clock) as worker:
        service.set_webhook(account, "status", receiver.url())
        _advance(store, _message(store, account), S.SENDING, S.SENT, S.DELIVERED)
        await receiver.wait_for(1)
        await worker.quiet()
    head, *followers = sorted(store.list_webhook_events(account_id=account), key=lambda r: r["id"])
    assert head["attempts"] == 1
    assert all(f["attempts"] == 0 for f in followers)
    # Not due before the head's next attempt: the due query does not even read them meanwhile.
    assert {f["next_attempt_at"] for f in followers} == {head["next_attempt_at"]}
    assert store.due_webhook_events(clock.now, 10) == []


async def test_a_registered_get_format_and_a_skipping_one(store: Store) -> None:
    clock = ManualClock(T0)
    service, account = _setup(store, clock)

    def query_format(event: WebhookEvent, url: str) -> WebhookRequest | None:
        if event.data.get("state") == "sending":
            return None  # this provider only reports sent and later
        return WebhookRequest("GET", f"{url}?id={event.data['message_id']}&s={event.data['state']}")

    register_format("querytest", query_format)
    async with Receiver() as receiver, _worker(store, clock) as worker:
        service.set_webhook(account, "status", receiver.url("/cb"), format="querytest")
        mid = _message(store, account)
        _advance(store, mid, S.SENDING, S.SENT)
        await receiver.wait_for(1)
        await worker.quiet()
    (seen,) = receiver.seen
    assert (seen.method, seen.query) == ("GET", f"id={mid}&s=sent")
    # Without a body the request target is what is signed.
    secret = service.webhook_secret(account)
    request = WebhookRequest("GET", f"http://x/cb?{seen.query}")
    assert seen.headers["X-Smsgw-Signature"] == sign(
        secret, int(seen.headers["X-Smsgw-Timestamp"]), request
    )
    rows = sorted(store.list_webhook_events(account_id=account), key=lambda r: r["id"])
    assert [r["state"] for r in rows] == ["delivered", "delivered"]
    assert rows[0]["last_error"] == "nothing to send in format 'querytest'"


async def test_try_webhook_sends_one_test_event_now(store: Store) -> None:
    service, account = _setup(store)
    async with Receiver() as receiver:
        service.set_webhook(account, "reply", receiver.url())
        result = await service.try_webhook(account, "reply")
    assert (result.ok, result.status) == (True, 200)
    (seen,) = receiver.seen
    assert seen.json()["data"]["test"] is True
    assert store.list_webhook_events(account_id=account) == []  # nothing queued


def test_webhook_settings_from_toml(tmp_path: Path) -> None:
    from gateway.config import ConfigError, load

    path = tmp_path / "smsgw.toml"
    path.write_text(
        "[webhooks]\ntimeout = 3\nretry_window = 3600\nper_host = 2\nverify_tls = false\n"
    )
    settings = load(path).webhooks
    assert (settings.timeout, settings.retry_window, settings.per_host) == (3.0, 3600.0, 2)
    assert settings.verify_tls is False
    assert settings.backoff_cap == 600.0  # the rest keep their defaults
    assert load(None).webhooks == WebhookSettings()
    for bad, message in (
        ("timeout = 0", "webhooks.timeout must be positive"),
        ("per_host = 'four'", "per_host has the wrong type"),
        ("retries = 3", r"unknown \[webhooks\] key\(s\): retries"),
        ("backoff_first = 60\nbackoff_cap = 10", "backoff_cap must be at least backoff_first"),
    ):
        path.write_text(f"[webhooks]\n{bad}\n")
        with pytest.raises(ConfigError, match=message):
            load(path)


def test_attempt_records_skip_the_fsync_and_the_next_commit_is_full_again(store: Store) -> None:
    from gateway.store import WebhookAttempt
    from gateway.webhooks import WebhookState

    service, account = _setup(store)
    service.set_webhook(account, "status", "http://127.0.0.1:9/x")
    _advance(store, _message(store, account), S.SENDING)
    (row,) = store.list_webhook_events()
    if store.dialect == "sqlite":
        seen: list[int] = []
        store.conn.set_trace_callback(lambda sql: seen.append(sql.startswith("PRAGMA synchronous")))
        store.record_webhook_attempts([WebhookAttempt(row["id"], WebhookState.DELIVERED, T0)])
        store.conn.set_trace_callback(None)
        assert sum(seen) == 2  # NORMAL for this transaction, FULL again after it
        assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    else:
        # SET LOCAL: off for the attempts' transaction only, on again for the next commit
        store.record_webhook_attempts([WebhookAttempt(row["id"], WebhookState.DELIVERED, T0)])
        assert store.conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
    assert store.list_webhook_events()[0]["state"] == "delivered"
