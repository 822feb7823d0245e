"""GatewayService.submit: validation, dedup, credits, scheduling and cancellation."""

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import pytest

from gateway.accounts import create_account
from gateway.models import PartState
from gateway.service import (
    GatewayService,
    InsufficientCreditsError,
    InvalidRequestError,
    UnknownAccountError,
)
from gateway.store import Store, StoreUnavailableError
from tests.storefaults import fill_disk

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.fixture
def env(store_url: str):
    store = Store.open(store_url)
    now = [T0]
    account = create_account(store, "shop", now=T0, credits=10, default_dial_code="44")
    yield store, GatewayService(store, wall=lambda: now[0]), account.account_id, now
    store.close()


def _credits(store: Store, account: int) -> int:
    return store.account(account)["credits"]


def test_submit_dedups_normalises_and_charges_per_part(env) -> None:
    store, service, account, _ = env
    text = "€" * 100  # extension characters: 200 septets -> 2 parts of GSM-7
    result = service.submit(
        account, ["07700 900123", "+447700900123", "bogus", "+15551230001"], text
    )
    assert len(result.message_ids) == 2  # the two spellings of one number are one recipient
    assert result.units_per_message == 2
    assert result.units_charged == 4
    assert result.encoding == "gsm7"
    assert [r.recipient for r in result.rejected] == ["bogus"]
    assert _credits(store, account) == 6
    recipients = [store.message(i)["recipient"] for i in result.message_ids]
    assert recipients == ["+447700900123", "+15551230001"]
    assert result.batch_id is not None


def test_not_enough_credits_accepts_nothing(env) -> None:
    store, service, account, _ = env
    with pytest.raises(InsufficientCreditsError, match="12 credits needed, 10 available"):
        service.submit(account, [f"+1555123000{i}" for i in range(6)], "x" * 200)
    assert store.count_by_state("messages") == {}
    assert _credits(store, account) == 10


@pytest.mark.parametrize(
    ("recipients", "text", "message"),
    [
        (["+15551230001"], "", "empty"),
        (["nope"], "hi", "no valid recipient"),
        (["+15551230001"], "x" * 1531, "longer than 1530"),
    ],
)
def test_invalid_requests(env, recipients, text, message) -> None:
    _, service, account, _ = env
    with pytest.raises(InvalidRequestError, match=message):
        service.submit(account, recipients, text)


def test_unknown_or_disabled_account(env) -> None:
    store, service, account, _ = env
    with pytest.raises(UnknownAccountError):
        service.submit(999, ["+15551230001"], "hi")
    store.conn.execute("UPDATE accounts SET api_enabled = 0 WHERE id = ?", (account,))
    with pytest.raises(UnknownAccountError):
        service.submit(account, ["+15551230001"], "hi")


def test_scheduled_message_waits_then_queues(env) -> None:
    store, service, account, now = env
    result = service.submit(account, ["+15551230001"], "later", send_at=T0 + timedelta(hours=2))
    (mid,) = result.message_ids
    assert store.message(mid)["state"] == "accepted"
    assert service.due_messages(10) == []
    now[0] = T0 + timedelta(hours=2)
    assert store.promote_due(now[0]) == 1
    assert [m["id"] for m in service.due_messages(10)] == [mid]


def test_cancel_refunds_unsent_parts_only(env) -> None:
    store, service, account, _ = env
    (mid,) = service.submit(account, ["+15551230001"], "y" * 300).message_ids  # 2 parts
    assert _credits(store, account) == 8
    first = store.parts(mid)[0]["id"]
    store.transition_part(first, PartState.QUEUED, PartState.SENDING, now=T0)
    store.transition_part(first, PartState.SENDING, PartState.SENT, now=T0, fields={"tp_mr": 1})
    assert service.cancel(account, mid) == 1
    assert [p["state"] for p in store.parts(mid)] == ["sent", "cancelled"]
    assert _credits(store, account) == 9
    assert service.cancel(account, mid) == 0
    with pytest.raises(InvalidRequestError):
        service.cancel(account + 1, mid)


def test_part_rejected_by_the_network_is_refunded(env) -> None:
    store, service, account, _ = env
    (mid,) = service.submit(account, ["+15551230001"], "hi").message_ids
    (part,) = store.parts(mid)
    store.transition_part(part["id"], PartState.QUEUED, PartState.SENDING, now=T0)
    store.transition_part(
        part["id"], PartState.SENDING, PartState.FAILED, now=T0, fields={"cms_error": 21}
    )
    assert _credits(store, account) == 10
    reasons = [r[0] for r in store.conn.execute("SELECT reason FROM credits_ledger ORDER BY id")]
    assert reasons == ["send", "refund: failed"]


def test_recurring_series_materialises_each_run_in_local_time(env) -> None:
    from datetime import date
    from zoneinfo import ZoneInfo

    from gateway.recurrence import Recurrence, RepeatUnit
    from gateway.scheduler import run_due_series

    store, service, account, _ = env
    store.conn.execute("UPDATE accounts SET timezone = 'Europe/London' WHERE id = ?", (account,))
    london = ZoneInfo("Europe/London")
    first = datetime(2026, 3, 27, 9, 0, tzinfo=london)  # two days before the clocks go forward
    result = service.submit(
        account,
        ["+15551230001", "+15551230002"],
        "Standup at 9",
        send_at=first,
        recurrence=Recurrence(RepeatUnit.DAILY, 1, date(2026, 3, 29)),
    )
    assert result.message_ids == ()
    assert result.units_charged == 0  # each run is charged when it is accepted
    fired: list[str] = []
    moment = first.astimezone(UTC) - timedelta(minutes=1)
    while moment < datetime(2026, 3, 31, tzinfo=UTC):
        ids = run_due_series(store, moment)
        if ids:
            fired.append(moment.astimezone(UTC).strftime("%d %H:%M"))
            assert len(ids) == 2
        moment += timedelta(minutes=15)
    # 09:00 local each day: 09:00 UTC (GMT) then 08:00 UTC after the spring-forward
    assert fired == ["27 09:14", "28 09:14", "29 08:14"]
    batch = store.batch(result.batch_id)
    assert (batch["state"], batch["runs"]) == ("done", 3)
    assert _credits(store, account) == 10 - 6


def test_pause_resume_cancel_batch(env) -> None:
    store, service, account, _ = env
    result = service.submit(account, ["+15551230001", "+15551230002"], "x")
    service.pause_batch(account, result.batch_id)
    assert service.due_messages(10) == []  # a paused batch holds its queued messages
    service.resume_batch(account, result.batch_id)
    assert len(service.due_messages(10)) == 2
    assert service.cancel_batch(account, result.batch_id) == 2
    assert _credits(store, account) == 10
    with pytest.raises(InvalidRequestError, match="finished or cancelled"):
        service.resume_batch(account, result.batch_id)
    with pytest.raises(InvalidRequestError):
        service.pause_batch(account + 1, result.batch_id)


def test_modify_a_scheduled_batch_recharges_the_difference(env) -> None:
    store, service, account, now = env
    later = T0 + timedelta(hours=3)
    result = service.submit(
        account, ["+15551230001", "+15551230002"], "short", send_at=T0 + timedelta(hours=2)
    )
    assert _credits(store, account) == 8
    changed = service.modify_batch(account, result.batch_id, text="y" * 200, send_at=later)
    assert changed == 2
    assert _credits(store, account) == 6  # now 2 parts each: 2 more credits
    for mid in result.message_ids:
        message = store.message(mid)
        assert (message["body"], message["units"]) == ("y" * 200, 2)
        assert [p["state"] for p in store.parts(mid)] == ["accepted", "accepted"]
        assert datetime.fromisoformat(message["send_at"]) == later
    service.modify_batch(account, result.batch_id, text="ok")
    assert _credits(store, account) == 8  # shorter again: refunded
    with pytest.raises(InvalidRequestError, match="in the past"):
        service.modify_batch(account, result.batch_id, send_at=T0 - timedelta(minutes=1))
    with pytest.raises(InsufficientCreditsError):
        service.modify_batch(account, result.batch_id, text="z" * 1500)  # 10 parts x 2
    now[0] = later
    store.promote_due(later)
    assert service.modify_batch(account, result.batch_id, text="too late") == 0  # already due


def test_modify_unsent_reschedules_due_messages_and_leaves_sent_ones(env) -> None:
    store, service, account, now = env
    result = service.submit(account, ["+15551230001", "+15551230002", "+15551230003"], "go")
    first = store.parts(result.message_ids[0])[0]
    store.transition_part(first["id"], PartState.QUEUED, PartState.SENDING, now=T0)
    store.transition_part(first["id"], PartState.SENDING, PartState.SENT, now=T0)
    later = T0 + timedelta(hours=1)
    assert service.modify_batch(account, result.batch_id, text="y" * 200, send_at=later) == 0
    changed = service.modify_batch(
        account, result.batch_id, text="y" * 200, send_at=later, sender="+15550000000",
        rotate=False, unsent=True,
    )  # fmt: skip
    assert changed == 2
    sent, *rest = (store.message(m) for m in result.message_ids)
    assert (sent["body"], sent["state"], sent["units"]) == ("go", "sent", 1)
    for message in rest:
        assert (message["body"], message["state"], message["units"]) == ("y" * 200, "accepted", 2)
        assert message["sender"] == "+15550000000"
    assert store.batch(result.batch_id)["rotate"] == 0
    assert _credits(store, account) == 10 - 3 - 2  # two messages went from 1 part to 2
    now[0] = later
    assert store.promote_due(later) == 2


def test_cancel_batch_is_one_commit_and_refunds_exactly(env) -> None:
    store, service, account, _ = env
    result = service.submit(account, [f"+1555123000{i}" for i in range(4)], "x" * 200)
    part = store.parts(result.message_ids[0])[0]  # one part of the first message goes out
    store.transition_part(part["id"], PartState.QUEUED, PartState.SENDING, now=T0)
    store.transition_part(part["id"], PartState.SENDING, PartState.SENT, now=T0)
    assert _credits(store, account) == 2
    assert service.cancel_batch(account, result.batch_id) == 7
    assert _credits(store, account) == 9  # the part that left stays paid for
    states = [store.message(m)["state"] for m in result.message_ids]
    assert states == ["cancelled", "cancelled", "cancelled", "cancelled"]
    assert [p["state"] for p in store.parts(result.message_ids[0])] == ["sent", "cancelled"]
    ledger = store.conn.execute(
        "SELECT SUM(delta) FROM credits_ledger WHERE account_id = ?", (account,)
    ).fetchone()[0]
    assert ledger == -1 and service.cancel_batch(account, result.batch_id) == 0


def test_account_policy_is_enforced_on_every_send_path(env) -> None:
    from gateway.service import (
        InvalidRecipientError,
        LongTextNotAllowedError,
        Outgoing,
        UnicodeNotAllowedError,
    )

    _, service, account, _ = env
    service.set_account_policy(account, allow_unicode=False, allow_long=False,
                               allow_international=False)  # fmt: skip
    with pytest.raises(UnicodeNotAllowedError):
        service.submit(account, ["+447700900123"], "hi 😀")
    with pytest.raises(LongTextNotAllowedError):
        service.submit_batch(account, [Outgoing("+447700900123", "x" * 161)])
    with pytest.raises(InvalidRecipientError, match="international"):
        service.submit_batch(account, [Outgoing("+15551230001", "hi")])
    result = service.submit_batch(account, [Outgoing("07700900123", "hi"),
                                            Outgoing("+15551230001", "hi")])  # fmt: skip
    assert len(result.message_ids) == 1 and result.rejected[0].recipient == "+15551230001"
    assert service.account_policy(account).allow_topup is False


def test_top_up_needs_approval_and_goes_through_the_ledger(env) -> None:
    from gateway.service import TopUpNotAllowedError

    _, service, account, _ = env
    with pytest.raises(TopUpNotAllowedError):
        service.top_up(account, 5)
    service.set_account_policy(account, allow_topup=True)
    with pytest.raises(InvalidRequestError):
        service.top_up(account, 0)
    assert service.top_up(account, 5) == 15


def test_replies_since_the_last_check_and_what_they_answer(env) -> None:
    store, service, account, _ = env
    result = service.submit(account, ["+15551230001"], "Coming?", extra={"Reference": "r1"})
    part = store.parts(result.message_ids[0])[0]
    store.transition_part(part["id"], PartState.QUEUED, PartState.SENDING, now=T0)

    def inbound(sender: str, text: str, minutes: int) -> int:
        return store.insert_inbound(
            {"account_id": account, "originator": sender, "body": text, "encoding": "gsm7",
             "parts_received": 1, "parts_total": 1, "complete": 1},
            [], now=T0 + timedelta(minutes=minutes),
        )  # fmt: skip

    inbound("+15551230001", "Yes", 1)
    inbound("+15559999999", "Who is this?", 2)
    peek = service.replies(account, "test", since_last=True, mark=False)
    got = service.replies(account, "test", since_last=True, mark=True)
    assert [r["body"] for r in got] == [r["body"] for r in peek] == ["Yes", "Who is this?"]
    assert got[0]["replied_to"]["id"] == result.message_ids[0]
    assert got[1]["replied_to"] is None
    assert service.replies(account, "test", since_last=True, mark=True) == []
    assert len(service.replies(account, "other reader", since_last=True, mark=True)) == 2
    inbound("+15551230001", "Really yes", 3)
    assert [r["body"] for r in service.replies(account, "test", since_last=True, mark=True)] == [
        "Really yes"
    ]
    start, end = T0 + timedelta(minutes=2), T0 + timedelta(minutes=3)
    window = service.replies(account, "test", since_last=False, mark=False, start=start, end=end)
    assert [r["body"] for r in window] == ["Who is this?"]


def test_bulk_promote_cancel_and_reschedule_tell_the_webhook_outbox(env) -> None:
    import json

    store, service, account, now = env
    service.set_webhook(account, "status", "http://example.com/status")
    result = service.submit(
        account, ["+15551230001", "+15551230002"], "x", send_at=T0 + timedelta(minutes=5)
    )
    now[0] = T0 + timedelta(minutes=5)
    assert store.promote_due(now[0]) == 2
    later = T0 + timedelta(hours=1)
    assert service.modify_batch(account, result.batch_id, send_at=later, unsent=True) == 2
    service.cancel_batch(account, result.batch_id)
    changes = [
        (data["message_id"], data["previous_state"], data["state"])
        for (payload,) in store.conn.execute("SELECT payload FROM webhook_events ORDER BY id")
        for data in [json.loads(payload)]
    ]
    first, second = result.message_ids
    assert changes == [
        (first, "accepted", "queued"), (second, "accepted", "queued"),
        (first, "queued", "accepted"), (second, "queued", "accepted"),
        (first, "accepted", "cancelled"), (second, "accepted", "cancelled"),
    ]  # fmt: skip


# -- the group commit: off the loop, answered after it, refused as one ----------------------


class _HeldCommit:
    """The accept connection, its COMMITs held until released (as a slow fsync would)."""

    def __init__(self, conn: object) -> None:
        self._conn = conn
        self.entered = threading.Event()
        self.release = threading.Event()
        self.commits: list[str] = []  # the thread each COMMIT ran in

    def _hold(self, sql: str) -> None:
        if sql.endswith("COMMIT"):
            self.commits.append(threading.current_thread().name)
            self.entered.set()
            if not self.release.wait(timeout=5):  # on the loop this would block it: fail
                raise TimeoutError("the COMMIT was never released")

    def execute(self, sql: str, *args: object) -> object:
        self._hold(sql)
        return self._conn.execute(sql, *args)  # type: ignore[attr-defined]

    def commit(self, *, notify: bool = False) -> None:  # PostgreSQL's COMMIT (PgConnection)
        self._hold("COMMIT")
        self._conn.commit(notify=notify)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


def test_the_group_commit_runs_off_the_loop_and_answers_only_after_it(env, store_url) -> None:
    store, service, account, _ = env
    assert store.open_accept_connection()
    accept = store._accept
    held = _HeldCommit(accept.conn)
    accept.conn = held
    if accept._pg is not None:
        accept._pg = held

    async def main() -> None:
        loop = asyncio.get_running_loop()
        first = [asyncio.ensure_future(service.submit_durably(account, [f"+44770090000{i}"], "a"))
                 for i in range(2)]  # fmt: skip
        assert await loop.run_in_executor(None, held.entered.wait, 5)
        # COMMIT is under way in its thread: nobody is answered, nothing is durable yet ...
        assert not any(f.done() for f in first)
        outside = Store.open(store_url)
        try:
            assert outside.count_by_state("messages") == {}
        finally:
            outside.close()
        # ... and the loop goes on: reads on the store, a request planned for the next group
        assert service.credit_balance(account) == 10
        later = asyncio.ensure_future(service.submit_durably(account, ["+447700900009"], "b"))
        await asyncio.sleep(0)
        assert not later.done() and len(held.commits) == 1
        held.release.set()
        results = await asyncio.gather(*first, later)
        assert len({r.message_ids[0] for r in results}) == 3
        assert len({r.batch_id for r in results}) == 3  # one batch per request

    asyncio.run(main())
    assert held.commits == ["smsgw-accept_0"] * 2  # two groups: the first two, then the third
    assert store.count_by_state("messages") == {"queued": 3}
    assert _credits(store, account) == 7


def test_a_refused_group_commit_fails_every_request_of_it_and_keeps_the_earlier(
    tmp_path,
) -> None:
    store = Store.open(tmp_path)
    try:
        account = create_account(store, "shop", now=T0, credits=10).account_id
        service = GatewayService(store, wall=lambda: T0)

        async def send(n: int, text: str) -> list[object]:
            return await asyncio.gather(
                *(service.submit_durably(account, [f"+1202555000{i}"], text) for i in range(n)),
                return_exceptions=True,
            )

        (before,) = asyncio.run(send(1, "before"))
        disk = fill_disk(store)
        disk.full = True
        refused = asyncio.run(send(4, "while full"))
        assert all(isinstance(r, StoreUnavailableError) for r in refused), refused
        assert disk.refused == 1  # the four shared one COMMIT
        assert store.list_messages(account) == [store.message_with_sim(before.message_ids[0])]
        assert _credits(store, account) == 9
        disk.full = False
        accepted = asyncio.run(send(4, "after"))
        assert len({r.message_ids[0] for r in accepted}) == 4  # type: ignore[attr-defined]
        assert _credits(store, account) == 5
    finally:
        store.close()
