"""The store, on SQLite and on PostgreSQL: migrations, SIM binding, durable acceptance and crash
recovery."""

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.models import PartState, TransitionError
from gateway.store import BatchRows, StaleStateError, Store
from gateway.store.migrations import MIGRATIONS, current_version

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
S = PartState


def _account(store: Store, credits: int = 100) -> int:
    return store.insert_account(
        {
            "sub_account": "demo",
            "password_hash": "x",
            "api_key": "k",
            "token": "t",
            "credits": credits,
        },
        now=NOW,
    )


def test_open_migrates_and_is_durable(store: Store) -> None:
    assert current_version(store.conn) == len(MIGRATIONS)
    if store.dialect == "sqlite":
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    else:
        # whatever the server's default, a COMMIT waits for the WAL flush
        assert store.conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
    assert {
        "accounts",
        "sims",
        "messages",
        "parts",
        "inbound",
        "delivery_reports",
        "contacts",
        "opt_outs",
        "otps",
        "credits_ledger",
    } <= set(store.table_names())
    assert store.integrity_check() == []


def test_listed_messages_page_newest_first_each_with_the_number_it_went_from(
    store: Store,
) -> None:
    account = _account(store)
    known = store.bind_sim(iccid="8944000000000000011", imsi="001010000000011",
                           msisdn="+447700900001", now=NOW)  # fmt: skip
    unknown = store.bind_sim(iccid="8944000000000000012", imsi="001010000000012", now=NOW)
    ids = []
    for i in range(5):
        m = store.accept_message(
            account_id=account, recipient=f"+1555000000{i}", body="x", encoding="gsm7", parts=1,
            now=NOW,
        )  # fmt: skip
        ids.append(m.message_id)
        if i in (1, 3):
            sim = known if i == 1 else unknown
            store.transition_part(m.part_ids[0], S.QUEUED, S.SENDING, now=NOW,
                                  fields={"sim_id": sim})  # fmt: skip
    store.transition_part(store.parts(ids[1])[0]["id"], S.SENDING, S.SENT, now=NOW)

    def listed(limit: int, offset: int = 0, state: str | None = None) -> list[tuple[int, Any]]:
        rows = store.list_messages(account, state=state, limit=limit, offset=offset)
        return [(m["id"], m["sent_from"]) for m in rows]

    # Not taken: NULL; taken by a SIM whose number is unknown: ''.
    assert listed(limit=2, offset=1) == [(ids[3], ""), (ids[2], None)]
    assert listed(limit=10) == [(ids[4], None), (ids[3], ""), (ids[2], None),
                                (ids[1], "+447700900001"), (ids[0], None)]  # fmt: skip
    assert listed(10, state="sent") == [(ids[1], "+447700900001")]
    assert store.message_with_sim(ids[1])["sent_from"] == "+447700900001"  # type: ignore[index]
    assert store.message_with_sim(ids[4])["sent_from"] is None  # type: ignore[index]
    assert store.message_with_sim(ids[4] + 1) is None


def test_reopen_is_idempotent(store_url: str) -> None:
    Store.open(store_url).close()
    again = Store.open(store_url)
    assert current_version(again.conn) == len(MIGRATIONS)
    again.close()


def test_newer_schema_is_refused(store_url: str) -> None:
    s = Store.open(store_url)
    if s.dialect == "sqlite":
        s.conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    else:
        s.conn.execute("UPDATE smsgw_schema SET version = ?", (len(MIGRATIONS) + 1,))
    s.close()
    with pytest.raises(RuntimeError, match="newer than this smsgw"):
        Store.open(store_url)


def test_sim_binding_is_by_iccid_not_port(store: Store) -> None:
    first = store.bind_sim(iccid="8944500102198304826", imsi="234150000000001", now=NOW)
    # same card seen again (e.g. replugged into another USB port) keeps its row and counters
    store.conn.execute("UPDATE sims SET sent_count = 7 WHERE id = ?", (first,))
    again = store.bind_sim(
        iccid="8944500102198304826",
        imsi="234150000000001",
        msisdn="+447700900001",
        now=NOW + timedelta(minutes=5),
    )
    assert again == first
    row = store.sim(first)
    assert row is not None
    assert row["sent_count"] == 7
    assert row["msisdn"] == "+447700900001"
    # IMSI is the fallback when a modem cannot read the ICCID
    by_imsi = store.bind_sim(iccid=None, imsi="234150000000002", now=NOW)
    assert by_imsi != first
    assert store.bind_sim(iccid=None, imsi="234150000000002", now=NOW) == by_imsi
    with pytest.raises(ValueError, match="ICCID or IMSI"):
        store.bind_sim(iccid=None, imsi=None, now=NOW)


def test_accept_charges_credits_in_the_same_transaction(store: Store) -> None:
    account = _account(store, credits=10)
    accepted = store.accept_message(
        account_id=account,
        recipient="+447700900123",
        body="hi",
        encoding="gsm7",
        parts=3,
        charge=3,
        now=NOW,
    )
    assert len(accepted.part_ids) == 3
    assert [p["state"] for p in store.parts(accepted.message_id)] == ["queued"] * 3
    acct = store.account(account)
    assert acct is not None
    assert acct["credits"] == 7
    ledger = store.conn.execute("SELECT delta, message_id FROM credits_ledger").fetchall()
    assert [tuple(r) for r in ledger] == [(-3, accepted.message_id)]


def test_scheduled_message_waits_as_accepted(store: Store) -> None:
    account = _account(store)
    accepted = store.accept_message(
        account_id=account,
        recipient="+1",
        body="later",
        encoding="gsm7",
        parts=1,
        send_at=NOW + timedelta(hours=1),
        now=NOW,
    )
    assert store.message(accepted.message_id)["state"] == "accepted"  # type: ignore[index]


def test_transitions_are_checked_and_compare_and_set(store: Store) -> None:
    account = _account(store)
    m = store.accept_message(
        account_id=account, recipient="+1", body="x", encoding="gsm7", parts=2, now=NOW
    )
    p1, p2 = m.part_ids
    assert store.transition_part(p1, S.QUEUED, S.SENDING, now=NOW) == S.QUEUED
    assert store.transition_part(p1, S.SENDING, S.SENT, now=NOW, fields={"tp_mr": 42}) == S.QUEUED
    with pytest.raises(StaleStateError):
        store.transition_part(p1, S.SENDING, S.SENT, now=NOW)  # already sent: no double record
    with pytest.raises(TransitionError):
        store.transition_part(p1, S.SENT, S.QUEUED, now=NOW)
    store.transition_part(p2, S.QUEUED, S.SENDING, now=NOW)
    assert store.transition_part(p2, S.SENDING, S.SENT, now=NOW, fields={"tp_mr": 43}) == S.SENT
    assert store.transition_part(p1, S.SENT, S.DELIVERED, now=NOW) == S.SENT
    assert store.transition_part(p2, S.SENT, S.DELIVERED, now=NOW) == S.DELIVERED
    assert store.message(m.message_id)["state"] == "delivered"  # type: ignore[index]
    assert [p["tp_mr"] for p in store.parts(m.message_id)] == [42, 43]


def test_crash_recovery_marks_in_flight_parts_uncertain(store: Store) -> None:
    account = _account(store)
    m = store.accept_message(
        account_id=account, recipient="+1", body="x", encoding="gsm7", parts=2, now=NOW, charge=2
    )
    store.transition_part(m.part_ids[0], S.QUEUED, S.SENDING, now=NOW)
    assert store.recover_after_crash(now=NOW) == [m.part_ids[0]]
    # Part 1 may or may not have gone; part 2 cannot make a whole message any more and its
    # message is not due: failed unsent and refunded, not left queued for ever.
    parts = store.parts(m.message_id)
    assert [(p["state"], p["error"]) for p in parts] == [
        ("uncertain", "interrupted during AT+CMGS"), ("failed", "not sent: part 1 uncertain"),
    ]  # fmt: skip
    assert store.message(m.message_id)["state"] == "failed"  # type: ignore[index]
    assert store.account(account)["credits"] == 99  # type: ignore[index]
    assert store.recover_after_crash(now=NOW) == []
    assert store.requeue_uncertain(now=NOW) == []  # not without the account's opt-in


@pytest.mark.parametrize(("verdict", "state"), [(S.FAILED, "failed"), (S.EXPIRED, "expired")])
def test_a_report_ending_part_1_while_part_2_waits_fails_part_2_unsent(
    store: Store, verdict: PartState, state: str
) -> None:
    account = _account(store)
    m = store.accept_message(
        account_id=account, recipient="+1", body="x", encoding="gsm7", parts=2, now=NOW, charge=2
    )
    p1, p2 = m.part_ids
    store.transition_part(p1, S.QUEUED, S.SENDING, now=NOW)
    store.transition_part(p1, S.SENDING, S.SENT, now=NOW, fields={"tp_mr": 7})
    store.transition_part(p2, S.QUEUED, S.SENDING, now=NOW)
    store.transition_part(p2, S.SENDING, S.QUEUED, now=NOW, fields={"error": "congestion"})
    # part 2 waits for its retry; the network reports part 1 undeliverable meanwhile
    assert store.transition_part(p1, S.SENT, verdict, now=NOW) == S.FAILED
    assert [(p["state"], p["error"]) for p in store.parts(m.message_id)] == [
        (state, ""), ("failed", f"not sent: part 1 {state}"),
    ]  # fmt: skip
    assert store.account(account)["credits"] == 99  # type: ignore[index]


def test_crash_recovery_keeps_the_rest_for_an_account_that_resends_uncertain_parts(
    store: Store,
) -> None:
    account = _account(store)
    store.conn.execute("UPDATE accounts SET resend_uncertain = 1 WHERE id = ?", (account,))
    m = store.accept_message(
        account_id=account, recipient="+1", body="x", encoding="gsm7", parts=2, now=NOW
    )
    store.transition_part(m.part_ids[0], S.QUEUED, S.SENDING, now=NOW)
    assert store.recover_after_crash(now=NOW) == [m.part_ids[0]]
    assert [p["state"] for p in store.parts(m.message_id)] == ["uncertain", "queued"]
    assert store.message(m.message_id)["state"] == "uncertain"  # type: ignore[index]
    assert store.requeue_uncertain(now=NOW) == [m.part_ids[0]]
    assert [p["state"] for p in store.parts(m.message_id)] == ["queued", "queued"]


_WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from gateway.store import Store
    store = Store.open(sys.argv[1])
    now = datetime(2026, 11, 22, tzinfo=UTC)
    acct = store.insert_account({"sub_account": "a", "password_hash": "x", "api_key": "k",
                                 "token": "t"}, now=now)
    n = 0
    while True:
        m = store.accept_message(account_id=acct, recipient="+1", body=f"m{n}",
                                 encoding="gsm7", parts=2, now=now)
        # the API answers only after accept_message returned: this line is that answer
        print(m.message_id, flush=True)
        n += 1
    """
)


def test_accepted_messages_survive_kill_9(store_url: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, store_url],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert proc.stdout is not None
    answered = [int(proc.stdout.readline()) for _ in range(200)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    answered += [int(line) for line in proc.stdout.read().split()]
    store = Store.open(store_url)
    try:
        assert store.integrity_check() == []
        ids = {int(r[0]) for r in store.conn.execute("SELECT id FROM messages")}
        assert set(answered) <= ids
        # every durable message has all of its parts (no half-written acceptance)
        counts = store.conn.execute(
            "SELECT COUNT(*) FROM messages m WHERE (SELECT COUNT(*) FROM parts p"
            " WHERE p.message_id = m.id) != 2"
        ).fetchone()[0]
        assert counts == 0
    finally:
        store.close()


def test_sticky_routes_are_rebuilt_from_the_last_sends(store: Store) -> None:
    account = _account(store)
    sims = [store.bind_sim(iccid=f"894400000000000000{i}", imsi=None, now=NOW) for i in (1, 2)]
    for minutes, sim, recipient in ((1, sims[0], "+1"), (2, sims[1], "+1"), (3, sims[0], "+2")):
        m = store.accept_message(
            account_id=account, recipient=recipient, body="x", encoding="gsm7", parts=1, now=NOW
        )
        store.transition_part(
            m.part_ids[0],
            S.QUEUED,
            S.SENDING,
            now=NOW + timedelta(minutes=minutes),
            fields={"sim_id": sim},
        )
    routes = store.last_sims_by_recipient(NOW)
    assert routes == {(account, "+1"): sims[1], (account, "+2"): sims[0]}
    assert store.last_sims_by_recipient(NOW + timedelta(minutes=10)) == {}


def test_accept_batches_in_bulk_into_an_open_batch_with_its_id_in_extra(store: Store) -> None:
    import json

    from gateway.store import BatchRows

    account = _account(store, credits=10)
    shared = {"Reference": "r1"}

    def rows(*numbers: str, parts: int = 1) -> list[dict[str, object]]:
        return [
            {"account_id": account, "recipient": n, "body": "hi", "encoding": "gsm7",
             "parts": parts, "charge": parts, "extra": shared, "send_at": NOW + timedelta(hours=1)}
            for n in numbers
        ]  # fmt: skip

    batch = {"account_id": account, "sender": "", "rotate": 1, "extra": "{}"}
    ((batch_id, ids),) = store.accept_batches(
        [BatchRows(batch, rows("+15550001", "+15550002", parts=2), 4, id_key="CampaignId")],
        now=NOW,
    )
    assert ids == [1, 2]
    more = store.accept_batches([BatchRows(batch, rows("+15550003"), 1, into=batch_id)], now=NOW)
    assert more == [(batch_id, [3])]
    extras = [json.loads(store.message(i)["extra"]) for i in (1, 2, 3)]
    assert extras == [{"Reference": "r1", "CampaignId": batch_id}] * 2 + [{"Reference": "r1"}]
    assert [len(store.parts(i)) for i in (1, 2, 3)] == [2, 2, 1]
    assert {p["state"] for i in (1, 2, 3) for p in store.parts(i)} == {"accepted"}
    assert store.account(account)["credits"] == 5
    ledger = store.conn.execute(
        "SELECT delta, message_id FROM credits_ledger ORDER BY id"
    ).fetchall()
    assert [tuple(r) for r in ledger] == [(-2, 1), (-2, 2), (-1, 3)]
    # a cancelled batch takes no more; an account short of credits gets nothing
    store.set_batch_state(batch_id, "cancelled")
    assert store.accept_batches(
        [BatchRows(batch, rows("+15550004"), 1, into=batch_id)], now=NOW
    ) == [None]
    assert store.accept_batches([BatchRows(batch, rows("+15550005"), 6)], now=NOW) == [None]
    assert store.batch_recipients(batch_id) == {"+15550001", "+15550002", "+15550003"}
    assert store.promote_due(NOW + timedelta(hours=2)) == 0  # cancelled batches stay put


def _batch_rows(account: int, *numbers: str, charge: int = 1) -> BatchRows:
    rows = [
        {"account_id": account, "recipient": n, "body": "hi", "encoding": "gsm7", "parts": 1,
         "charge": charge}
        for n in numbers
    ]  # fmt: skip
    batch = {"account_id": account, "sender": "", "rotate": 1, "extra": "{}"}
    return BatchRows(batch, rows, charge * len(numbers))


def test_a_group_of_batches_is_one_transaction_spending_exactly_what_is_there(
    store: Store,
) -> None:
    account = _account(store, credits=3)
    group = [_batch_rows(account, "+15550011", "+15550012"), _batch_rows(account, "+15550021"),
             _batch_rows(account, "+15550031"), _batch_rows(9999, "+15550041")]  # fmt: skip
    results = store.accept_batches(group, now=NOW)
    # 2 + 1 credits: the third batch finds none left in the same transaction, the fourth
    # belongs to no account
    assert results[2:] == [None, None]
    (b1, ids1), (b2, ids2) = results[0], results[1]  # type: ignore[misc]
    assert b1 != b2 and ids1 == [ids1[0], ids1[0] + 1] and ids2 == [ids1[0] + 2]
    assert store.account(account)["credits"] == 0
    assert [m["recipient"] for m in store.list_messages(account, limit=10)] == [
        "+15550021", "+15550012", "+15550011",
    ]  # fmt: skip


def test_rows_given_their_ids_leave_room_for_rows_that_take_one(store: Store) -> None:
    """A group commit numbers its batches and messages itself; later inserts that let the
    database pick an id (PostgreSQL: from the identity sequence) must not collide."""
    account = _account(store)
    ((b1, (m1,)),) = store.accept_batches([_batch_rows(account, "+15550001")], now=NOW)
    b2 = store.insert_batch({"account_id": account, "sender": ""}, now=NOW)
    m2 = store.accept_message(
        account_id=account, recipient="+15550002", body="hi", encoding="gsm7", parts=1, now=NOW
    ).message_id
    ((b3, (m3, m4)),) = store.accept_batches(
        [_batch_rows(account, "+15550003", "+15550004")], now=NOW
    )
    b5 = store.insert_batch({"account_id": account, "sender": ""}, now=NOW)
    m5 = store.accept_message(
        account_id=account, recipient="+15550005", body="hi", encoding="gsm7", parts=1, now=NOW
    ).message_id
    assert b1 < b2 < b3 < b5 and m1 < m2 < m3 < m4 < m5


def test_a_staged_transaction_is_committed_by_another_thread(store_url: str) -> None:
    import threading

    store = Store.open(store_url)
    try:
        account = _account(store, credits=5)
        assert store.open_accept_connection()
        staged = store.stage_batches([_batch_rows(account, "+15550001")], now=NOW)
        # Written, not committed: the store's own connection does not see it yet
        assert store.list_messages(account, limit=10) == []
        results: list[object] = []
        committer = threading.Thread(target=lambda: results.append(staged.commit()))
        committer.start()
        committer.join(timeout=10)
        assert len(results) == 1 and results[0] == [(1, [1])]
        assert [m["recipient"] for m in store.list_messages(account, limit=10)] == ["+15550001"]
        assert store.account(account)["credits"] == 4
        # the accept connection is free again: the next group goes in, and one aborted
        # leaves nothing behind
        store.stage_batches([_batch_rows(account, "+15550002")], now=NOW).abort()
        ((_, (third,)),) = store.accept_batches([_batch_rows(account, "+15550003")], now=NOW)
        assert store.message(third)["recipient"] == "+15550003"  # type: ignore[index]
        assert [m["recipient"] for m in store.list_messages(account, limit=10)] == [
            "+15550003", "+15550001",
        ]  # fmt: skip
        again = Store.open(store_url)  # durable: another connection reads them
        try:
            assert again.account(account)["credits"] == 3
        finally:
            again.close()
    finally:
        store.close()
