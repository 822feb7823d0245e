"""Delivery reports: status mapping and matching across TP-MR wrap-around and SIMs."""

from datetime import UTC, datetime, timedelta

import pytest

from gateway.inbox import Keyword, classify
from gateway.models import PartState
from gateway.reports import SentPart, match_report, same_number, state_for_status
from gateway.store import Store

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (0x00, PartState.DELIVERED),
        (0x02, PartState.DELIVERED),
        (0x20, None),  # congestion, still trying
        (0x30, None),
        (0x41, PartState.FAILED),  # incompatible destination
        (0x46, PartState.EXPIRED),
        (0x62, PartState.FAILED),  # no response from SME, SC stopped trying
        (0x80, PartState.FAILED),
    ],
)
def test_status_mapping(status: int, state: PartState | None) -> None:
    assert state_for_status(status) is state


def test_status_out_of_range() -> None:
    with pytest.raises(ValueError, match="TP-ST"):
        state_for_status(256)


def test_numbers_match_across_spellings() -> None:
    assert same_number("+447700900123", "07700900123")
    assert same_number("+447700900123", "447700900123")
    assert not same_number("+447700900123", "+447700900124")
    assert same_number("Vodafone", "VODAFONE")


def test_match_picks_same_sim_mr_and_number_newest_first() -> None:
    # TP-MR 7 used three times: on SIM 1 to A (old, wrapped), SIM 2 to A, SIM 1 to A (newest)
    parts = [
        SentPart(1, sim_id=1, tp_mr=7, recipient="+15551230001", sent_at=T0 - timedelta(hours=5)),
        SentPart(2, sim_id=2, tp_mr=7, recipient="+15551230001", sent_at=T0),
        SentPart(3, sim_id=1, tp_mr=7, recipient="+15551230001", sent_at=T0 - timedelta(minutes=1)),
        SentPart(4, sim_id=1, tp_mr=7, recipient="+15551239999", sent_at=T0),
    ]
    got = match_report(
        parts, sim_id=1, tp_mr=7, recipient="15551230001", received_at=T0 + timedelta(seconds=5)
    )
    assert got is not None
    assert got.part_id == 3
    # beyond the window nothing matches
    assert (
        match_report(
            parts, sim_id=1, tp_mr=7, recipient="+15551230001", received_at=T0 + timedelta(days=4)
        )
        is None
    )


def test_a_report_stamped_before_its_send_is_still_its_own() -> None:
    # The host's clock was stepped back an hour between the send and the report: the report
    # cannot have come first, so the part sent "later" is still the one it is for.
    parts = [SentPart(1, sim_id=1, tp_mr=7, recipient="+15551230001", sent_at=T0)]
    got = match_report(
        parts, sim_id=1, tp_mr=7, recipient="+15551230001", received_at=T0 - timedelta(hours=1)
    )
    assert got is not None and got.part_id == 1


def test_a_part_waiting_for_its_verdict_goes_before_a_settled_one() -> None:
    # TP-MR 7 to the same number twice, the settled send stamped later (the clock went back
    # between the two sends): the report is for the one still waiting.
    parts = [
        SentPart(1, sim_id=1, tp_mr=7, recipient="+15551230001", sent_at=T0, waiting=False),
        SentPart(2, sim_id=1, tp_mr=7, recipient="+15551230001", sent_at=T0 - timedelta(hours=1)),
    ]
    got = match_report(
        parts, sim_id=1, tp_mr=7, recipient="+15551230001", received_at=T0 - timedelta(minutes=59)
    )
    assert got is not None and got.part_id == 2


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("STOP", Keyword.OPT_OUT),
        ("  stop \n", Keyword.OPT_OUT),
        ("Unsubscribe.", Keyword.OPT_OUT),
        ("stopall", Keyword.OPT_OUT),
        ("Quit", Keyword.OPT_OUT),
        ("START", Keyword.OPT_IN),
        ("unstop", Keyword.OPT_IN),
        ("help", Keyword.HELP),
        ("stop it please", None),
        ("", None),
    ],
)
def test_keywords(body: str, keyword: Keyword | None) -> None:
    assert classify(body) is keyword


def test_report_matcher_settles_the_right_part(store_url: str) -> None:
    from gateway.accounts import create_account
    from gateway.reports import ReportMatcher
    from gateway.store import Store
    from modem.pdu import Address, SmsStatusReport

    store = Store.open(store_url)
    try:
        acct = create_account(store, "a", now=T0).account_id
        sim1 = store.bind_sim(iccid="1", imsi=None, now=T0)
        sim2 = store.bind_sim(iccid="2", imsi=None, now=T0)
        ids = []
        for sim in (sim1, sim2):  # the same TP-MR on two SIMs to the same number
            m = store.accept_message(
                account_id=acct,
                recipient="+15551230001",
                body="x",
                encoding="gsm7",
                parts=1,
                now=T0,
            )
            (part,) = m.part_ids
            store.transition_part(
                part, PartState.QUEUED, PartState.SENDING, now=T0, fields={"sim_id": sim}
            )
            store.transition_part(
                part, PartState.SENDING, PartState.SENT, now=T0, fields={"tp_mr": 200}
            )
            ids.append((m.message_id, part))

        def report(status: int) -> SmsStatusReport:
            return SmsStatusReport(
                message_reference=200,
                recipient=Address.parse("+15551230001"),
                scts=T0,
                discharge_time=T0,
                status=status,
            )

        matcher = ReportMatcher(store)
        later = T0 + timedelta(seconds=20)
        trying = matcher.apply(sim2, report(0x21), now=later)
        assert (trying.part_id, trying.state) == (ids[1][1], None)
        done = matcher.apply(sim2, report(0x00), now=later)
        assert (done.part_id, done.state) == (ids[1][1], PartState.DELIVERED)
        assert store.message(ids[1][0])["state"] == "delivered"
        assert store.message(ids[0][0])["state"] == "sent"  # SIM 1's part is untouched
        again = matcher.apply(sim2, report(0x41), now=later)
        assert again.state is None  # a late contradicting report does not undo delivery
        stray = matcher.apply(
            sim1,
            SmsStatusReport(
                message_reference=5,
                recipient=Address.parse("+15551230001"),
                scts=T0,
                discharge_time=T0,
                status=0,
            ),
            now=later,
        )
        assert stray.part_id is None
        assert store.conn.execute("SELECT COUNT(*) FROM delivery_reports").fetchone()[0] == 4
    finally:
        store.close()


def _part_on_the_wire(store: Store) -> tuple[int, int, int]:
    """(SIM, message, part): one part of a new message, `sending` on a new SIM."""
    from gateway.accounts import create_account

    acct = create_account(store, "a", now=T0).account_id
    sim = store.bind_sim(iccid="1", imsi=None, now=T0)
    m = store.accept_message(
        account_id=acct, recipient="+15551230001", body="x", encoding="gsm7", parts=1, now=T0
    )
    (part,) = m.part_ids
    store.transition_part(part, PartState.QUEUED, PartState.SENDING, now=T0, fields={"sim_id": sim})
    return sim, m.message_id, part


def test_a_report_after_the_clock_stepped_back_settles_its_part(store_url: str) -> None:
    from gateway.reports import ReportMatcher
    from modem.pdu import Address, SmsStatusReport

    store = Store.open(store_url)
    try:
        sim, message_id, part = _part_on_the_wire(store)
        store.transition_part(part, PartState.SENDING, PartState.SENT, now=T0, fields={"tp_mr": 9})
        report = SmsStatusReport(
            message_reference=9,
            recipient=Address.parse("+15551230001"),
            scts=T0,
            discharge_time=T0,
            status=0,
        )
        stepped_back = T0 - timedelta(hours=2) + timedelta(seconds=5)
        result = ReportMatcher(store).apply(sim, report, now=stepped_back)
        assert (result.part_id, result.state) == (part, PartState.DELIVERED)
        assert store.message(message_id)["state"] == "delivered"
    finally:
        store.close()


def test_report_that_overtakes_the_cmgs_answer_is_reconciled(store_url: str) -> None:
    from gateway.reports import ReportMatcher
    from modem.pdu import Address, SmsStatusReport

    store = Store.open(store_url)
    try:
        sim, message_id, part = _part_on_the_wire(store)
        settled: list[tuple[int, PartState]] = []
        matcher = ReportMatcher(store, on_settled=lambda p, s: settled.append((p, s)))
        # +CDS handled before the outbox recorded "+CMGS: 77"
        early = matcher.apply(
            sim,
            SmsStatusReport(
                message_reference=77,
                recipient=Address.parse("+15551230001"),
                scts=T0,
                discharge_time=T0,
                status=0,
            ),
            now=T0 + timedelta(milliseconds=5),
        )
        assert early.part_id is None
        store.transition_part(
            part,
            PartState.SENDING,
            PartState.SENT,
            now=T0 + timedelta(milliseconds=9),
            fields={"tp_mr": 77},
        )
        (result,) = matcher.reconcile(part, now=T0 + timedelta(milliseconds=10))
        assert (result.report_id, result.part_id, result.state) == (
            early.report_id,
            part,
            PartState.DELIVERED,
        )
        assert settled == [(part, PartState.DELIVERED)]
        assert store.message(message_id)["state"] == "delivered"
        assert matcher.reconcile(part, now=T0) == []  # linked reports are not applied twice
    finally:
        store.close()
