"""Inbox: parts stored as they arrive, reassembled out of order, STOP/START applied."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.accounts import create_account
from gateway.inbox import Inbox, Keyword
from gateway.store import Store
from modem.pdu import Address, SmsDeliver, UserData, build_submits, encode_pdu

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
SENDER = "+447700900555"


def _delivers(text: str, *, reference: int = 7, ref16: bool = False) -> list[str]:
    """SMS-DELIVER PDUs (with SMSC) for `text`, as the network would hand them to our SIM."""
    out = []
    for submit in build_submits(
        Address.parse("+447700900001"), text, reference=reference, ref16=ref16
    ):
        deliver = SmsDeliver(
            originator=Address.parse(SENDER), scts=T0, user_data=submit.user_data, dcs=submit.dcs
        )
        out.append(encode_pdu(deliver, Address.parse("+447785016005")).hex)
    return out


@pytest.fixture
def env(store_url: str):
    store = Store.open(store_url)
    account = create_account(store, "acct", now=T0).account_id
    sim = store.bind_sim(iccid="8944000000000000001", imsi=None, msisdn="+447700900001", now=T0)
    store.grant_sim(account, sim)
    yield store, account, sim
    store.close()


def test_out_of_order_concatenated_message_with_emoji(env) -> None:
    store, account, sim = env
    text = "Héllo 👋 " * 20  # UCS-2, surrogate pairs, 3 parts
    pdus = _delivers(text, ref16=True)
    assert len(pdus) == 3
    inbox = Inbox(store)
    results = [inbox.receive(sim, pdus[i], now=T0) for i in (2, 0, 2, 1)]
    assert results[2].duplicate  # the same part again is dropped
    done = results[3]
    assert done.inbound_id is not None
    row = store.inbound(done.inbound_id)
    assert row is not None
    assert row["body"] == text
    assert (row["account_id"], row["sim_id"], row["originator"]) == (account, sim, SENDER)
    assert (row["parts_received"], row["parts_total"], row["complete"]) == (3, 3, 1)
    assert store.pending_inbound_parts() == []
    assert store.sim(sim)["received_count"] == 1


def test_half_received_message_survives_restart_and_is_surfaced(env) -> None:
    store, _, sim = env
    text = "x" * 300  # 2 parts of GSM-7
    first, second = _delivers(text)
    Inbox(store).receive(sim, first, now=T0)
    restarted = Inbox(store)
    assert restarted.restore() == 1
    # with the second part, the restored first part completes the message
    result = restarted.receive(sim, second, now=T0 + timedelta(seconds=30))
    assert result.inbound_id is not None
    assert store.inbound(result.inbound_id)["body"] == text

    lonely = Inbox(store)
    (only,) = _delivers("y" * 200, reference=9)[:1]
    lonely.receive(sim, only, now=T0)
    assert lonely.expire(T0 + timedelta(hours=1), timedelta(hours=2)) == []
    (surfaced,) = lonely.expire(T0 + timedelta(hours=3), timedelta(hours=2))
    row = store.inbound(surfaced)
    assert (row["complete"], row["parts_received"], row["parts_total"]) == (0, 1, 2)
    assert row["body"] == "y" * 153  # what arrived is kept, not dropped


def test_stop_and_start_keywords_toggle_opt_out(env) -> None:
    store, account, sim = env
    inbox = Inbox(store)
    (stop,) = _delivers(" Stop ")
    assert inbox.receive(sim, stop, now=T0).keyword is Keyword.OPT_OUT
    assert store.is_opted_out(account, SENDER)
    (start,) = _delivers("START")
    assert inbox.receive(sim, start, now=T0 + timedelta(minutes=1)).keyword is Keyword.OPT_IN
    assert not store.is_opted_out(account, SENDER)


def test_a_status_report_is_not_an_inbound_message(env) -> None:
    store, _, sim = env
    report = "0006D60B911326880736F4111011719551401110117195714000"
    with pytest.raises(ValueError, match="SMS-DELIVER"):
        Inbox(store).receive(sim, "00" + report[2:], now=T0)


def test_reply_goes_to_the_account_that_wrote_to_that_number(tmp_path: Path) -> None:
    from gateway.models import PartState

    store = Store.open(tmp_path)
    try:
        first = create_account(store, "first", now=T0).account_id
        second = create_account(store, "second", now=T0).account_id
        sim = store.bind_sim(iccid="8944000000000000002", imsi=None, now=T0)
        (unknown,) = _delivers("who is this?")
        row = store.inbound(Inbox(store).receive(sim, unknown, now=T0).inbound_id)
        assert row["account_id"] == first  # nobody wrote to them: the appliance's first account
        m = store.accept_message(
            account_id=second, recipient=SENDER, body="hi", encoding="gsm7", parts=1, now=T0
        )
        store.transition_part(
            m.part_ids[0], PartState.QUEUED, PartState.SENDING, now=T0, fields={"sim_id": sim}
        )
        (reply,) = _delivers("yes please", reference=8)
        row = store.inbound(Inbox(store).receive(sim, reply, now=T0).inbound_id)
        assert row["account_id"] == second
    finally:
        store.close()


def test_a_malformed_deliver_is_received_with_its_anomalies_stored(env) -> None:
    # A DELIVER from an 11-digit sender, then broken the two ways other stacks accept: the
    # TP-OA length counts the F filler (12 instead of 11) and TP-UDL announces 20 septets where
    # 11 follow. Refusing it would lose the message; it is stored with what was repaired.
    store, account, sim = env
    deliver = SmsDeliver(
        originator=Address.parse("+44770090055"), scts=T0, user_data=UserData(text="hello there")
    )
    raw = bytearray.fromhex(encode_pdu(deliver, Address.parse("+447785016005")).hex)
    oa = raw[0] + 2  # after the SMSC field and the first octet
    udl = oa + 2 + 6 + 2 + 7  # TP-OA (length, TOA, 6 octets), PID, DCS, SCTS
    assert (raw[oa], raw[udl]) == (11, 11)
    raw[oa], raw[udl] = 12, 20
    bad = raw.hex().upper()
    inbox = Inbox(store)
    result = inbox.receive(sim, bad, now=T0)
    assert result.inbound_id is not None
    row = store.inbound(result.inbound_id)
    assert row is not None
    assert (row["body"], row["originator"], row["account_id"]) == (
        "hello there",
        "+44770090055",
        account,
    )
    assert json.loads(row["anomalies"]) == [
        {
            "seq": 1,
            "code": "address-filler-counted",
            "octet": oa,
            "detail": "TP-OA address length 12 counts 1 F filler semi-octet(s) as digits"
            f" at octet {oa}",
        },
        {
            "seq": 1,
            "code": "user-data-short",
            "octet": udl,
            "detail": f"TP-UDL 20 needs 18 octets of user data but 10 are present at octet {udl}",
        },
    ]
    (part,) = store.conn.execute("SELECT pdu, anomalies FROM inbound_parts").fetchall()
    assert part["pdu"] == bad  # the PDU as received is kept too
    assert [a["code"] for a in json.loads(part["anomalies"])] == [
        "address-filler-counted",
        "user-data-short",
    ]


def test_a_well_formed_message_has_no_anomalies(env) -> None:
    store, _, sim = env
    (pdu,) = _delivers("fine")
    result = Inbox(store).receive(sim, pdu, now=T0)
    assert result.inbound_id is not None
    assert json.loads(store.inbound(result.inbound_id)["anomalies"]) == []
