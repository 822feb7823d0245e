"""Inbound messages in fleet mode: a box restored at start the half-received parts of every SIM
(another box's among them); whichever box stores the message first, from those parts, stores it
once: never a second copy (nor a second reply webhook) from the other box's memory."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from gateway.accounts import create_account
from gateway.inbox import Inbox
from gateway.store import Store
from tests.gateway.test_inbox import T0, _delivers

TEXT = "A reply that takes two parts, stored once whichever box ends it. " * 4
LATER = T0 + timedelta(days=1)


@pytest.fixture
def boxes(store_url: str) -> Iterator[tuple[Store, Store, int]]:
    """Box A's and box B's connections to one store, and a SIM on box B."""
    a, b = Store.open(store_url), Store.open(store_url)
    account = create_account(a, "acct", now=T0).account_id
    sim = a.bind_sim(iccid="8944000000000000001", imsi=None, msisdn="+447700900001", now=T0)
    a.grant_sim(account, sim)
    yield a, b, sim
    a.close()
    b.close()


def _inbound(store: Store) -> list[tuple[int, int]]:
    rows = store.conn.execute("SELECT parts_received, complete FROM inbound ORDER BY id")
    return [(int(r[0]), int(r[1])) for r in rows]


def test_the_rest_arriving_on_the_sims_box_is_not_surfaced_again_by_the_other(
    boxes: tuple[Store, Store, int],
) -> None:
    a, b, sim = boxes
    pdus = _delivers(TEXT)
    assert len(pdus) == 2
    b_inbox = Inbox(b)
    b_inbox.receive(sim, pdus[0], now=T0)
    a_inbox = Inbox(a)  # box A (re)starts meanwhile: it restores the part as pending
    assert a_inbox.restore() == 1
    for pdu in pdus[1:]:
        done = b_inbox.receive(sim, pdu, now=T0)
    assert done.inbound_id is not None
    assert a_inbox.expire(LATER, timedelta(hours=1)) == []  # its copy of part 1: stored already
    assert _inbound(a) == [(2, 1)]


def test_an_incomplete_message_both_boxes_hold_is_surfaced_once(
    boxes: tuple[Store, Store, int],
) -> None:
    a, b, sim = boxes
    b_inbox = Inbox(b)
    b_inbox.receive(sim, _delivers(TEXT)[0], now=T0)
    a_inbox = Inbox(a)
    assert a_inbox.restore() == 1
    assert len(b_inbox.expire(LATER, timedelta(hours=1))) == 1
    assert a_inbox.expire(LATER, timedelta(hours=1)) == []
    assert _inbound(a) == [(1, 0)]
