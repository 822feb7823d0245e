"""The outbox sends part by part, durably, at the SIM's pace (virtual clock, fake modem)."""

import asyncio
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
def env(tmp_path: Path):
    store = Store.open(tmp_path)
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


def test_interrupted_send_is_uncertain_and_stops_the_message(env) -> None:
    store, account, sim, modem, outbox, _ = env
    modem.outcomes.append(SendOutcome(OutcomeKind.UNKNOWN, error="port closed during AT+CMGS"))
    mid = _accept(store, account, BODY, 2)
    assert asyncio.run(outbox.send_message(mid, allowed_sims=[sim])) is PartState.UNCERTAIN
    assert [p["state"] for p in store.parts(mid)] == ["uncertain", "queued"]
    assert len(modem.sent) == 1  # part 2 is not sent after part 1 went missing


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
