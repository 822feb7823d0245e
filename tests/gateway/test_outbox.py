"""The outbox sends part by part, durably, at the SIM's pace (virtual clock, fake modem)."""

import asyncio
import heapq
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.accounts import create_account
from gateway.models import PartState, ThrottlePolicy
from gateway.outbox import Clock, Outbox, OutcomeKind, SendOutcome
from gateway.pool import SimPool
from gateway.store import Store
from modem.pdu import SmsSubmit, decode_pdu, encode_pdu

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
BODY = "The quick brown fox jumps over the lazy dog {with braces}. " * 3  # 2 parts of GSM-7


@dataclass
class VirtualClock:
    t: float = 0.0

    def monotonic(self) -> float:
        return self.t

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.t)

    async def sleep(self, delay: float) -> None:
        self.t += max(delay, 0.0)
        await asyncio.sleep(0)

    def clock(self) -> Clock:
        return Clock(self.monotonic, self.wall, self.sleep)


@dataclass
class FakeModem:
    clock: VirtualClock
    outcomes: list[SendOutcome] = field(default_factory=list)
    sent: list[tuple[float, str, int]] = field(default_factory=list)
    next_mr: int = 250

    async def send_submit(self, recipient: str, submit: SmsSubmit) -> SendOutcome:
        encoded = encode_pdu(submit)
        self.sent.append((self.clock.t, encoded.hex, encoded.tpdu_length))
        if self.outcomes:
            return self.outcomes.pop(0)
        mr = self.next_mr
        self.next_mr = (self.next_mr + 1) % 256
        return SendOutcome(OutcomeKind.SENT, tp_mr=mr)


@pytest.fixture
def env(store_url: str):
    store = Store.open(store_url)
    account = create_account(store, "acct", now=T0, credits=100)
    sim = store.bind_sim(iccid="89440000000000000001", imsi=None, msisdn="+447700900001", now=T0)
    pool = SimPool()
    pool.upsert(sim, "+447700900001", ThrottlePolicy(interval=2.0))
    vclock = VirtualClock()
    modem = FakeModem(vclock)
    outbox = Outbox(store, pool, {sim: modem}, vclock.clock())
    yield store, account.account_id, sim, modem, outbox, vclock
    store.close()


def _accept(store: Store, account: int, body: str, parts: int) -> int:
    return store.accept_message(
        account_id=account,
        recipient="+447700900777",
        body=body,
        encoding="gsm7",
        parts=parts,
        now=T0,
    ).message_id


def test_multipart_message_goes_out_paced_with_one_reference(env) -> None:
    store, account, sim, modem, outbox, _ = env
    mid = _accept(store, account, BODY, 2)
    state = asyncio.run(outbox.send_message(mid, allowed_sims=[sim]))
    assert state is PartState.SENT
    parts = store.parts(mid)
    assert [(p["state"], p["tp_mr"], p["sim_id"]) for p in parts] == [
        ("sent", 250, sim),
        ("sent", 251, sim),
    ]
    times = [t for t, _, _ in modem.sent]
    assert times[1] - times[0] >= 2.0  # one SMS every 2 s on this long code
    decoded = [decode_pdu(pdu).tpdu for _, pdu, _ in modem.sent]
    assert all(isinstance(d, SmsSubmit) for d in decoded)
    concats = [d.user_data.header.concatenation for d in decoded]  # type: ignore[union-attr]
    assert {c.reference for c in concats} == {concats[0].reference}
    assert [(c.sequence, c.total) for c in concats] == [(1, 2), (2, 2)]
    assert all(d.status_report_request for d in decoded)  # type: ignore[union-attr]
    assert "".join(d.user_data.text or "" for d in decoded) == BODY  # type: ignore[union-attr]
    for _, pdu, length in modem.sent:
        smsc_octets = int(pdu[:2], 16) + 1
        assert length == len(pdu) // 2 - smsc_octets  # AT+CMGS length excludes the SMSC field


def test_temporary_error_requeues_with_backoff(env) -> None:
    store, account, sim, modem, outbox, _ = env
    modem.outcomes.append(SendOutcome(OutcomeKind.TEMPORARY, error="+CMS ERROR: 42", cms_error=42))
    mid = _accept(store, account, "hello", 1)
    assert asyncio.run(outbox.send_message(mid, allowed_sims=[sim])) is PartState.QUEUED
    (part,) = store.parts(mid)
    assert part["state"] == "queued"
    assert part["attempts"] == 1
    assert part["cms_error"] == 42
    assert part["next_attempt_at"] > part["sending_at"]
    assert asyncio.run(outbox.send_message(mid, allowed_sims=[sim])) is PartState.SENT
    assert store.parts(mid)[0]["attempts"] == 2


def test_a_part_sent_again_after_a_restart_keeps_its_message_reference(env) -> None:
    store, account, sim, modem, outbox, vclock = env
    modem.outcomes += [
        SendOutcome(OutcomeKind.SENT, tp_mr=1),
        SendOutcome(OutcomeKind.TEMPORARY, error="+CMS ERROR: 42", cms_error=42),
    ]
    mid = _accept(store, account, BODY, 2)
    assert asyncio.run(outbox.send_message(mid, allowed_sims=[sim])) is PartState.QUEUED
    assert len(modem.sent) == 2
    vclock.t += 60.0
    restarted = Outbox(store, outbox.pool, {sim: modem}, vclock.clock())
    between = _accept(store, account, BODY, 2)  # another long message goes first
    assert asyncio.run(restarted.send_message(between, allowed_sims=[sim])) is PartState.SENT
    assert asyncio.run(restarted.send_message(mid, allowed_sims=[sim])) is PartState.SENT
    sent = modem.sent[:2] + modem.sent[4:]
    decoded = [decode_pdu(pdu).tpdu for _, pdu, _ in sent]
    concats = [d.user_data.header.concatenation for d in decoded]  # type: ignore[union-attr]
    assert [(c.reference, c.sequence) for c in concats] == [
        (concats[0].reference, 1), (concats[0].reference, 2), (concats[0].reference, 2),
    ]  # fmt: skip


def test_a_message_started_on_one_sim_is_not_finished_on_another(env) -> None:
    store, account, sim, modem, outbox, vclock = env
    other = store.bind_sim(iccid="89440000000000000002", imsi=None, now=T0)
    outbox.pool.upsert(other, "+447700900002", ThrottlePolicy())
    outbox.senders[other] = FakeModem(vclock)
    modem.outcomes += [
        SendOutcome(OutcomeKind.SENT, tp_mr=1),
        SendOutcome(OutcomeKind.TEMPORARY, error="+CMS ERROR: 42", cms_error=42),
    ]
    mid = _accept(store, account, BODY, 2)
    assert asyncio.run(outbox.send_message(mid, allowed_sims=[sim])) is PartState.QUEUED
    vclock.t += 60.0
    state = asyncio.run(outbox.send_message(mid, allowed_sims=[other], sender_sim=other))
    assert state is PartState.QUEUED  # part 2 waits for the SIM part 1 went from
    assert outbox.senders[other].sent == []  # type: ignore[attr-defined]


def test_interrupted_send_is_uncertain_and_stops_the_message(env) -> None:
    store, account, sim, modem, outbox, _ = env
    modem.outcomes.append(SendOutcome(OutcomeKind.UNKNOWN, error="port closed during AT+CMGS"))
    mid = _accept(store, account, BODY, 2)
    assert asyncio.run(outbox.send_message(mid, allowed_sims=[sim])) is PartState.FAILED
    # Part 2 is not sent after part 1 went missing, nor left queued for ever: failed unsent.
    assert [(p["state"], p["error"]) for p in store.parts(mid)] == [
        ("uncertain", "port closed during AT+CMGS"), ("failed", "not sent: part 1 uncertain"),
    ]  # fmt: skip
    assert len(modem.sent) == 1


def test_an_account_resending_uncertain_parts_keeps_the_rest_for_the_resend(env) -> None:
    store, account, sim, modem, outbox, _ = env
    store.conn.execute("UPDATE accounts SET resend_uncertain = 1 WHERE id = ?", (account,))
    modem.outcomes.append(SendOutcome(OutcomeKind.UNKNOWN, error="port closed during AT+CMGS"))
    mid = _accept(store, account, BODY, 2)
    assert asyncio.run(outbox.send_message(mid, allowed_sims=[sim])) is PartState.UNCERTAIN
    assert [p["state"] for p in store.parts(mid)] == ["uncertain", "queued"]
    assert len(modem.sent) == 1


def test_a_part_failed_for_good_fails_the_rest_of_its_message_unsent(env) -> None:
    store, account, sim, modem, outbox, _ = env
    credits = store.account(account)["credits"]
    modem.outcomes += [
        SendOutcome(OutcomeKind.SENT, tp_mr=1),
        SendOutcome(OutcomeKind.PERMANENT, error="+CMS ERROR: 21", cms_error=21),
    ]
    mid = store.accept_message(
        account_id=account, recipient="+447700900777", body=BODY * 2 + "x" * 160,
        encoding="gsm7", parts=4, charge=4, now=T0,
    ).message_id  # fmt: skip
    assert asyncio.run(outbox.send_message(mid, allowed_sims=[sim])) is PartState.FAILED
    assert [(p["state"], p["error"]) for p in store.parts(mid)] == [
        ("sent", ""), ("failed", "+CMS ERROR: 21"),
        ("failed", "not sent: part 2 failed"), ("failed", "not sent: part 2 failed"),
    ]  # fmt: skip
    assert len(modem.sent) == 2
    assert store.account(account)["credits"] == credits - 4 + 3  # the unsent parts refunded


def test_permanent_error_fails_the_part(env) -> None:
    store, account, sim, modem, outbox, _ = env
    modem.outcomes.append(SendOutcome(OutcomeKind.PERMANENT, error="+CMS ERROR: 21", cms_error=21))
    mid = _accept(store, account, "hello", 1)
    assert asyncio.run(outbox.send_message(mid, allowed_sims=[sim])) is PartState.FAILED
    assert store.message(mid)["state"] == "failed"


@pytest.mark.parametrize(
    ("code", "temporary"),
    [
        (None, True),
        (38, True),
        (42, True),
        (500, True),
        (515, True),
        (1, False),
        (21, False),
        (0xC3, False),
        (304, False),
    ],
)
def test_cms_error_classification(code: int | None, temporary: bool) -> None:
    from gateway.outbox import is_temporary_cms

    assert is_temporary_cms(code) is temporary


@dataclass
class SchedulingClock:
    """Virtual time for concurrent tasks: each sleep ends at its own deadline, in order (time
    jumps to the earliest one once every task is waiting)."""

    t: float = 0.0
    sleepers: list[tuple[float, int, asyncio.Future[None]]] = field(default_factory=list)
    order: "itertools.count[int]" = field(default_factory=itertools.count)

    def monotonic(self) -> float:
        return self.t

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.t)

    def sleep(self, delay: float) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self.sleepers, (self.t + max(delay, 0.0), next(self.order), future))
        return future

    async def drive(self, work: asyncio.Future[object]) -> None:
        while not work.done():
            for _ in range(50):  # let every task run until it waits (no real I/O here)
                await asyncio.sleep(0)
            if self.sleepers and not work.done():
                deadline, _, future = heapq.heappop(self.sleepers)
                self.t = max(self.t, deadline)
                future.set_result(None)

    def clock(self) -> Clock:
        return Clock(self.monotonic, self.wall, self.sleep)


def test_a_batch_gap_paces_the_whole_batch_across_sims(tmp_path: Path) -> None:
    """batch_gap (Zoom Connect messagesPerMinute) spaces a batch's sends on every SIM together,
    on top of each SIM's own interval; other messages are not held to it."""
    store = Store.open(tmp_path)
    try:
        account = create_account(store, "acct", now=T0, credits=100).account_id
        vclock = SchedulingClock()
        pool = SimPool()
        modems = {}
        for n in (1, 2):
            sim = store.bind_sim(iccid=f"8944000000000000010{n}", imsi=None,
                                 msisdn=f"+44770090010{n}", now=T0)  # fmt: skip
            pool.upsert(sim, f"+44770090010{n}", ThrottlePolicy(interval=1.0))
            modems[sim] = FakeModem(vclock)  # type: ignore[arg-type]
        outbox = Outbox(store, pool, dict(modems), vclock.clock())
        batch = store.insert_batch({"account_id": account, "batch_gap": 5.0}, now=T0)
        ids = [
            store.accept_message(account_id=account, recipient=f"+44770090077{i}", body="hi",
                                 encoding="gsm7", parts=1, batch_id=batch, now=T0).message_id
            for i in range(4)
        ]  # fmt: skip
        loose = _accept(store, account, "not in the batch", 1)
        sims = list(modems)

        async def main() -> None:
            # Two SIMs send the batch at once, as the dispatcher's per-SIM loops would.
            async def loop(sim: int, mine: list[int]) -> None:
                for message_id in mine:
                    # As the dispatcher does: a SIM not ready yet is tried again next tick.
                    while store.message(message_id)["state"] == "queued":
                        await outbox.send_message(message_id, allowed_sims=[sim])
                        if store.message(message_id)["state"] == "queued":
                            await vclock.sleep(0.5)

            both = asyncio.gather(loop(sims[0], ids[0::2]), loop(sims[1], ids[1::2]))
            await vclock.drive(both)
            loose_send = asyncio.ensure_future(loop(sims[0], [loose]))
            await vclock.drive(loose_send)

        asyncio.run(main())
        times = sorted(t for m in modems.values() for t, _, _ in m.sent)
        assert times[:4] == [0.0, 5.0, 10.0, 15.0]  # one every 5 s for the batch, either SIM
        assert times[4] == 16.0  # the loose message waits only for its SIM's own 1 s
    finally:
        store.close()


def _batch_message(store: Store, account: int, body: str = "hello") -> tuple[int, int]:
    batch = store.insert_batch({"account_id": account, "sender": "", "rotate": 1}, now=T0)
    mid = store.accept_message(
        account_id=account, recipient="+447700900777", body=body, encoding="gsm7", parts=1,
        batch_id=batch, now=T0,
    ).message_id  # fmt: skip
    return batch, mid


def test_a_batch_paused_while_its_message_waits_for_the_throttle_holds_it(env) -> None:
    store, account, sim, modem, outbox, vclock = env
    outbox.pool.record_send(sim, account, "+447700900001", vclock.t)  # the SIM just sent
    batch, mid = _batch_message(store, account)

    async def scenario() -> PartState:
        task = asyncio.create_task(outbox.send_message(mid, allowed_sims=[sim]))
        await asyncio.sleep(0)  # the send loop now waits out the throttle (2 s)
        store.set_batch_state(batch, "paused")
        return await task

    assert asyncio.run(scenario()) is PartState.QUEUED
    assert modem.sent == [] and store.parts(mid)[0]["state"] == "queued"
    store.set_batch_state(batch, "active")
    assert asyncio.run(outbox.send_message(mid, allowed_sims=[sim])) is PartState.SENT


def test_a_message_modified_while_it_waits_is_not_sent_with_the_old_text(env) -> None:
    store, account, sim, modem, outbox, vclock = env
    outbox.pool.record_send(sim, account, "+447700900001", vclock.t)
    batch, mid = _batch_message(store, account, "old text")

    async def scenario() -> PartState:
        task = asyncio.create_task(outbox.send_message(mid, allowed_sims=[sim]))
        await asyncio.sleep(0)
        changed = store.modify_scheduled(
            batch, body="new text", encoding="gsm7", units=1, send_at=None, now=T0, unsent=True
        )
        assert changed == 1
        return await task

    assert asyncio.run(scenario()) is PartState.QUEUED  # its parts changed under it: left
    assert modem.sent == []
    assert asyncio.run(outbox.send_message(mid, allowed_sims=[sim])) is PartState.SENT
    ((_, pdu, _),) = modem.sent
    assert decode_pdu(pdu).tpdu.user_data.text == "new text"  # type: ignore[union-attr]
