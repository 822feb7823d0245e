"""The mailbox (Zoom Connect messages/all) on each backend: every filter, alone and combined,
answers what a model of the same messages says, newest first across both directions, and every
way of paging it gives back exactly that list; per-outcome totals for statistics likewise."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.models import TERMINAL_STATES, PartState
from gateway.store import MailboxQuery, Store
from gateway.store.base import utc_iso

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
S = PartState
SIM_NUMBERS = ("+27820000001", "+27820000002")
NUMBERS = ("+27830000000", "+27830000001", "+27830000002", "+27830000003")
OUTCOMES = ("delivered", "sent", "failed", "opted_out", "scheduled", "refunded", "uncertain")
OPTED_OUT = "recipient opted out (STOP)"
# How an outbound message gets where it is: its parts' states in turn (cancel: cancelled by the
# client), the error of a part failed before the network, and the outcome the mailbox says.
PATHS: list[tuple[tuple[S, ...] | str, str, str]] = [
    ((S.SENDING, S.SENT, S.DELIVERED), "", "delivered"),
    ((S.SENDING, S.SENT), "", "sent"),
    ((S.SENDING, S.SENT, S.FAILED), "", "failed"),
    ((S.FAILED,), OPTED_OUT, "opted_out"),
    ((), "", "scheduled"),  # queued, or accepted for a later send time
    ("cancel", "", "refunded"),
    ((S.SENDING, S.UNCERTAIN), "", "uncertain"),
    ((S.SENDING,), "", "scheduled"),  # AT+CMGS on the wire
    ((S.SENDING, S.SENT, S.EXPIRED), "", "failed"),  # reached the network, then expired
    ((S.FAILED,), "+CMS ERROR: 500", "refunded"),  # refused before the network
    ((S.EXPIRED,), "", "refunded"),  # its validity ran out in the queue
]


@dataclass
class Entry:
    """What the mailbox should say of one message, worked out as the test made it."""

    kind: str
    id: int
    at: str
    from_number: str
    to_number: str
    body: str
    extra: dict[str, Any]
    outcome: str | None = None
    replied_to: int | None = None
    deleted: bool = False
    read: bool = False
    received_at: str | None = None
    contact_id: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Box:
    """The account under test, its model, and another account's messages beside it."""

    store: Store
    account: int
    noise: int
    entries: list[Entry]


def _walk(
    store: Store, message_id: int, sim: int, states: tuple[S, ...], error: str, at: datetime
) -> None:
    """Every part of a message through `states`, a step at a time (a failed part fails the
    parts still waiting: those are skipped)."""
    for state in states:
        for seq in range(len(store.parts(message_id))):
            part = store.parts(message_id)[seq]  # afresh: failing one part fails the rest
            current = S(part["state"])
            if current in TERMINAL_STATES:
                continue
            fields: dict[str, Any] = {}
            if state is S.SENDING:
                fields = {"sim_id": sim}
            if state is S.SENT:
                fields = {"tp_mr": 1, "sent_at": utc_iso(at)}
            if state is S.FAILED and error:
                fields = {"error": error}
            store.transition_part(part["id"], current, state, now=at, fields=fields)


def _fill(store: Store, account: int, sims: list[int]) -> list[Entry]:
    """33 outbound messages, two a minute (ties in time), each way to each outcome three
    times, then 14 inbound ones arriving on the same minutes as some of them: replies,
    strangers, a reply before any message to that number."""
    entries: list[Entry] = []
    for k in range(3 * len(PATHS)):
        created = T0 + timedelta(minutes=k // 2)
        path, error, outcome = PATHS[k % len(PATHS)]
        send_at = created + timedelta(days=2) if path == () and k % 2 else None
        extra = {"campaign": ("spring", "autumn")[k % 2], "dataField": f"r{k % 5}"}
        if k % 6 == 5:
            extra = {}  # no campaign at all
        to = NUMBERS[k % 3]
        accepted = store.accept_message(
            account_id=account, recipient=to, body=f"{'Promo' if k % 4 == 0 else 'Note'} {k}",
            encoding="gsm7", parts=1 + k % 2, send_at=send_at, extra=extra, now=created,
        )  # fmt: skip
        mid = accepted.message_id
        done = created + timedelta(seconds=30)
        if path == "cancel":
            store.cancel_message(mid, now=done)
        else:
            assert isinstance(path, tuple)
            _walk(store, mid, sims[k % 2], path, error, done)
        # The SIM's number once a part was handed to one; '' before (or never).
        sent_from = SIM_NUMBERS[k % 2] if S.SENDING in path else ""
        at = utc_iso(send_at if send_at is not None else created)
        meta = {"created_at": utc_iso(created), "parts": 1 + k % 2}
        body = f"{'Promo' if k % 4 == 0 else 'Note'} {k}"
        entries.append(Entry("out", mid, at, sent_from, to, body, extra, outcome=outcome,
                             meta=meta))  # fmt: skip
    for j in range(14):
        received = T0 + timedelta(minutes=j)
        if j % 4 == 3:
            originator = f"+2784000000{j % 10}"  # a stranger
        elif j == 0:
            originator = NUMBERS[3]  # a number the account never sent to
        else:
            originator = NUMBERS[j % 3]
        sim_number = SIM_NUMBERS[j % 2]
        inbound_id = store.insert_inbound(
            {"account_id": account, "sim_id": sims[j % 2], "originator": originator,
             "recipient": sim_number, "body": f"{'promo' if j % 5 == 0 else 'Reply'} {j}",
             "encoding": "gsm7", "parts_received": 1, "parts_total": 1, "complete": 1},
            [], now=received, notify=False,
        )  # fmt: skip
        assert inbound_id is not None
        stamp = utc_iso(received)
        earlier = [
            e
            for e in entries
            if e.kind == "out" and e.to_number == originator and e.meta["created_at"] <= stamp
        ]
        answered = max(earlier, key=lambda e: e.id) if earlier else None
        entries.append(
            Entry("in", inbound_id, stamp, originator, sim_number,
                  f"{'promo' if j % 5 == 0 else 'Reply'} {j}",
                  answered.extra if answered is not None else {},
                  replied_to=answered.id if answered is not None else None, received_at=stamp)
        )  # fmt: skip
    # Flags: some read, some deleted, of both directions.
    for n, e in enumerate(entries):
        if n % 5 == 1:
            store.set_mailbox_flags(e.kind, e.id, read=True)
            e.read = True
        if n % 7 == 2:
            store.set_mailbox_flags(e.kind, e.id, deleted=True)
            e.deleted = True
    return entries


@pytest.fixture
def box(store: Store) -> Box:
    sims = [
        store.bind_sim(iccid=f"892700000000000001{k}", imsi=None, msisdn=number, now=T0)
        for k, number in enumerate(SIM_NUMBERS)
    ]
    ids = [
        store.insert_account(
            {"sub_account": name, "password_hash": "x", "api_key": f"k{name}", "token": name},
            now=T0,
        )
        for name in ("noise", "acme")
    ]
    noise, account = ids
    _fill(store, noise, sims)  # the same numbers, the same times: never shown
    for n in range(60):
        # Inbound ids past the outbound ones: at the same time, the order of ids alone would
        # put a reply before the message sent that minute.
        store.insert_inbound(
            {"account_id": noise, "sim_id": sims[0], "originator": f"+2785{n:07d}",
             "recipient": SIM_NUMBERS[0], "body": "noise", "encoding": "gsm7",
             "parts_received": 1, "parts_total": 1, "complete": 1},
            [], now=T0, notify=False,
        )  # fmt: skip
    entries = _fill(store, account, sims)
    (contact,) = store.save_contacts(account, [{"group_id": None, "number": NUMBERS[1]}], now=T0)
    store.save_contacts(noise, [{"group_id": None, "number": NUMBERS[2]}], now=T0)
    for e in entries:
        if (e.to_number if e.kind == "out" else e.from_number) == NUMBERS[1]:
            e.contact_id = contact
    return Box(store, account, noise, entries)


def _matches(e: Entry, q: MailboxQuery) -> bool:
    checks = [
        q.kind is None or e.kind == q.kind,
        q.outcomes is None or e.outcome in q.outcomes,
        q.sent_from is None or (e.kind == "out" and e.at >= utc_iso(q.sent_from)),
        q.sent_to is None or (e.kind == "out" and e.at < utc_iso(q.sent_to)),
        q.received_from is None or (e.kind == "in" and e.at >= utc_iso(q.received_from)),
        q.received_to is None or (e.kind == "in" and e.at < utc_iso(q.received_to)),
        q.from_number is None or e.from_number == q.from_number,
        q.to_number is None or e.to_number == q.to_number,
        q.text is None or q.text.lower() in e.body.lower(),
        all(e.extra.get(key) == value for key, value in q.extra),
        q.deleted is None or e.deleted == q.deleted,
        q.read is None or e.read == q.read,
        q.replied_to is None or e.replied_to == q.replied_to,
    ]
    return all(checks)


def _expected(box: Box, q: MailboxQuery) -> list[Entry]:
    found = [e for e in box.entries if _matches(e, q)]
    return sorted(found, key=lambda e: (e.at, e.kind, e.id), reverse=True)


def _queries(box: Box) -> list[MailboxQuery]:
    replied = next(e.replied_to for e in box.entries if e.replied_to is not None)
    return [
        MailboxQuery(),
        MailboxQuery(kind="out"),
        MailboxQuery(kind="in"),
        *(MailboxQuery(outcomes=(o,)) for o in OUTCOMES),
        MailboxQuery(outcomes=("failed", "opted_out", "refunded")),
        MailboxQuery(outcomes=()),
        MailboxQuery(sent_from=T0 + timedelta(minutes=3), sent_to=T0 + timedelta(minutes=8)),
        MailboxQuery(sent_from=T0 + timedelta(days=1)),  # the ones scheduled for later
        MailboxQuery(received_from=T0 + timedelta(minutes=4)),
        MailboxQuery(received_to=T0 + timedelta(minutes=4)),
        MailboxQuery(from_number=SIM_NUMBERS[1]),  # outbound from that SIM
        MailboxQuery(from_number=NUMBERS[1]),  # inbound from that number
        MailboxQuery(to_number=NUMBERS[2]),
        MailboxQuery(to_number=SIM_NUMBERS[0]),
        MailboxQuery(text="promo"),
        MailboxQuery(text="%"),  # a LIKE wildcard matches itself only
        MailboxQuery(extra=(("campaign", "spring"),)),  # replies take their message's
        MailboxQuery(extra=(("campaign", "autumn"), ("dataField", "r3"))),
        MailboxQuery(deleted=False),
        MailboxQuery(deleted=True),
        MailboxQuery(read=True),
        MailboxQuery(read=False, deleted=False),
        MailboxQuery(replied_to=replied),
        MailboxQuery(replied_to=0),
        MailboxQuery(kind="in", extra=(("campaign", "autumn"),), read=False),
        MailboxQuery(kind="out", outcomes=("delivered", "sent"), from_number=SIM_NUMBERS[0]),
        MailboxQuery(kind="sideways"),
    ]


def test_every_filter_answers_the_model_newest_first(box: Box) -> None:
    for q in _queries(box):
        expected = _expected(box, q)
        total, rows = box.store.mailbox(box.account, q, limit=1000, offset=0)
        assert total == len(expected), q
        assert [(r["kind"], r["id"]) for r in rows] == [(e.kind, e.id) for e in expected], q
        for row, e in zip(rows, expected, strict=True):
            seen = {
                "from_number": row["from_number"],
                "to_number": row["to_number"],
                "body": row["body"],
                "outcome": row["outcome"],
                "extra": json.loads(row["extra"]),
                "replied_to": row["replied_to"],
                "deleted": bool(row["deleted"]),
                "read": bool(row["is_read"]),
                "received_at": row["received_at"],
                "contact_id": row["contact_id"],
            }
            assert seen == {
                "from_number": e.from_number,
                "to_number": e.to_number,
                "body": e.body,
                "outcome": e.outcome,
                "extra": e.extra,
                "replied_to": e.replied_to,
                "deleted": e.deleted,
                "read": e.read,
                "received_at": e.received_at,
                "contact_id": e.contact_id,
            }, (q, e)
            # The list's row is the message's own view, column for column.
            assert box.store.mailbox_entry(box.account, e.kind, e.id) == row


def test_pages_of_every_size_put_together_are_the_whole_list(box: Box) -> None:
    for q in _queries(box):
        expected = [(e.kind, e.id) for e in _expected(box, q)]
        for size in (1, 2, 3, 7, 50):
            pages: list[tuple[str, int]] = []
            offset = 0
            while True:
                total, rows = box.store.mailbox(box.account, q, limit=size, offset=offset)
                assert total == len(expected), (q, size, offset)
                assert len(rows) == min(size, max(0, len(expected) - offset)), (q, size, offset)
                if not rows:
                    break
                pages += [(r["kind"], r["id"]) for r in rows]
                offset += size
            assert pages == expected, (q, size)


def test_another_accounts_messages_are_never_in_the_mailbox(box: Box) -> None:
    noise = box.noise
    total, rows = box.store.mailbox(box.account, MailboxQuery(), limit=1000, offset=0)
    assert total == len(box.entries)
    assert {r["account_id"] for r in rows} == {box.account}
    assert (
        box.store.mailbox(noise, MailboxQuery(), limit=1000, offset=0)[0] == len(box.entries) + 60
    )
    some = next(e for e in box.entries if e.kind == "in")
    assert box.store.mailbox_entry(noise, "in", some.id) is None


def test_outcome_totals_count_every_outcome_per_campaign(box: Box) -> None:
    rows = box.store.outcome_totals(
        [box.account], start=T0, end=T0 + timedelta(days=30), extra_key="campaign"
    )
    expected: dict[tuple[str | None, str], list[int]] = {}
    for e in box.entries:
        if e.kind == "out":
            bucket = expected.setdefault((e.extra.get("campaign"), str(e.outcome)), [0, 0])
            bucket[0] += 1
            bucket[1] += e.meta["parts"]
    assert {(r["label"], r["outcome"]): [r["messages"], r["parts"]] for r in rows} == expected
    only = box.store.outcome_totals(
        [box.account], start=T0, end=T0 + timedelta(days=30), extra_key="campaign",
        extra_value="spring",
    )  # fmt: skip
    assert {(r["label"], r["outcome"]) for r in only} == {
        key for key in expected if key[0] == "spring"
    }
