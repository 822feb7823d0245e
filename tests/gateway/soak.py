"""The gateway soak: the real daemon on emulated modems over real PTYs, all on one virtual clock
(tests.lockstep), sending batches, receiving SMS, status reports and webhooks at once while
faults drawn from a seeded generator hit it; then the emulated network judges.

Faults: modem hang, unplug and replug (sometimes into another USB port: discovered modems come
back under another /dev/serial/by-path name, their SIM bound again by ICCID), reboot, a URC
inside AT+CMGS, garbage bytes on the line, +CMS errors (temporary and permanent), PIN loss (the
SIM resets and asks for its PIN again), a modem dying inside AT+CMGS (rebooting, unplugged or
hung before it answers, after or before the network took the SMS), and steps of the host's
wall clock forward and back. The webhook receiver is a real HTTP server that now and then
answers 503. Time is virtual for everything (LockstepClock(virtual_loop=True)): it moves only
when the daemon's loop would block and the emulator has answered, so 30 minutes take as long as
their work, and a modem that does not answer is timed out at its deadline, in virtual seconds.

Some SIMs have their PIN enabled: their modems are configured ports (`[[modem]]`, by their
stable /dev/serial/by-id name, with the PIN), the others are found by hot-plug discovery.

The judge (`SoakResult.check_*`), from the network's own record:
- outbound: no part reached the network twice; every part sent/delivered/expired (or failed
  by a report) is in the network's record exactly once, from the SIM and with the TP-MR the store
  says; every part failed without a report is not in it; uncertain parts may or may not be;
  nothing is left accepted, queued or sending after the drain;
- reports: every part the network accepted ends in the state its status report(s) call for, the
  report rows are linked to it (a report for an uncertain part, whose TP-MR the gateway never
  learnt, is kept unmatched);
- inbound: every SMS injected (concatenated ones too, in any part order) is in the inbox exactly
  once, complete, from its sender to its SIM;
- webhooks: every event in the store was delivered, the receiver answered 2xx to exactly those
  event ids, each once, and each message's last status event names its final state.

Reproducible by seed (SMSGW_SOAK_SEED): the seed decides the plan of events and faults, the
emulator's identities and fault draws; thread timing can still reorder I/O, so two runs of one
seed do the same things, and the judge holds for each.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from gateway.accounts import create_account
from gateway.config import Config, ModemConfig, WebhookSettings
from gateway.daemon import Gateway
from modem.emulator import EmulatorPool, ReportOutcome
from modem.emulator.faults import CRASHES
from modem.emulator.storage import MtStorage
from modem.pdu import SmsSubmit, build_submits, decode_tpdu
from tests.emulated import free_port, serving
from tests.gateway.webhook_support import Receiver
from tests.lockstep import LockstepClock

DEFAULT_SEED = 16
PERSONALITIES = ("generic", "huawei", "sim800", "ec25", "sim7600", "generic", "zte", "m35")
FAULTS = (
    "hang",
    "unplug",
    "reboot",
    "urc_in_cmgs",
    "garbage",
    "cms_error",
    "pin_loss",
    "submit_crash",
    "clock_step",
)
# Answers that fail a part for good (TS 24.011 RP-cause 21 "short message transfer rejected");
# the rest are retried (38 network out of order, 42 congestion, 500 unknown error).
PERMANENT_CMS = 21
TEMPORARY_CMS = (38, 42, 500)
URC_LINES = ("+CREG: 1", "^RSSI:12", "+CGREG: 1", '+CMTI: "SM",1', "RING")
WORDS = (
    "parcel", "order", "delivery", "tomorrow", "between", "window", "driver", "code", "confirm",
    "invoice", "balance", "meeting", "clinic", "reminder", "table", "booking", "update", "thanks",
    "weather", "alert", "account", "ticket",
)  # fmt: skip
EMOJI = "😀🚚✅📦🙏"
# What the SMSC reports per recipient, drawn once per number (weights in percent).
OUTCOMES = (
    (ReportOutcome.DELIVERED, 84),
    (ReportOutcome.TEMPORARY_THEN_DELIVERED, 6),
    (ReportOutcome.PERMANENT_FAILURE, 4),
    (ReportOutcome.EXPIRED, 3),
    (ReportOutcome.NO_REPORT, 3),
)
FINAL_STATE = {
    ReportOutcome.DELIVERED: "delivered",
    ReportOutcome.TEMPORARY_THEN_DELIVERED: "delivered",
    ReportOutcome.PERMANENT_FAILURE: "failed",
    ReportOutcome.EXPIRED: "expired",
    ReportOutcome.NO_REPORT: "sent",
}
REPORTS_PER_OUTCOME = {
    ReportOutcome.DELIVERED: 1,
    ReportOutcome.TEMPORARY_THEN_DELIVERED: 2,
    ReportOutcome.PERMANENT_FAILURE: 1,
    ReportOutcome.EXPIRED: 1,
    ReportOutcome.NO_REPORT: 0,
}
REPORT_DELAY = 5.0  # virtual seconds from a submit to its status report


def seed_from_env() -> int:
    """SMSGW_SOAK_SEED, or the fixed default."""
    return int(os.environ.get("SMSGW_SOAK_SEED", DEFAULT_SEED))


@dataclass(frozen=True)
class SoakPlan:
    """How big and how hostile one run is; rates are per virtual minute."""

    modems: int
    minutes: float
    seed: int
    pin_modems: int  # the last ones: configured ports with a PIN-enabled SIM
    spare_ports: int = 4  # free USB ports a modem may be replugged into
    batches: float = 0.5  # batches per minute
    batch_size: tuple[int, int] = (20, 400)  # messages per batch, before scaling by modems/16
    inbound: float = 30.0  # inbound SMS per minute, before scaling
    faults: float = 4.0  # faults per minute over the whole pool, before scaling
    clock_steps: int = 4  # wall clock steps in the run (half of them back)
    drain_minutes: float = 20.0  # at most, after the last event
    deadline: float = 600.0  # real seconds for the whole run; fails instead of hanging

    @property
    def scale(self) -> float:
        return self.modems / 16


@dataclass
class Injected:
    """One SMS from the outside world."""

    msisdn: str
    sender: str
    text: str
    parts: int


@dataclass(frozen=True)
class Sent:
    """One SMS-SUBMIT in the network's record of the outside world."""

    sender: str
    destination: str
    mr: int
    seq: int
    reference: int | None  # the concatenation reference (None: a single part)
    total: int


@dataclass
class SoakResult:
    """Everything the judge needs, taken once the drain ended."""

    plan: SoakPlan
    real_seconds: float
    virtual_seconds: float
    outside: list[Sent]
    outcomes: dict[str, ReportOutcome]
    parts: list[dict[str, Any]]
    reports: list[dict[str, Any]]
    inbound: list[dict[str, Any]]
    injected: list[Injected]
    sim_numbers: dict[int, str]
    events: list[dict[str, Any]]
    answered: list[tuple[str, int]]  # (event id, HTTP status) per request the receiver got
    messages: dict[int, str]  # message id -> final state
    faults: Counter[str]
    history: list[str]
    accepted: int
    undrained: list[str]

    # -- the judge --------------------------------------------------------------------------
    def _network(self) -> Counter[tuple[str, int]]:
        return Counter((o.destination, o.seq) for o in self.outside)

    def check_outbound(self) -> None:
        """Never twice; sent means in the record once, from its SIM, with its TP-MR; failed
        without a report means not in it; nothing left in flight."""
        record = self._network()
        twice = [key for key, n in record.items() if n > 1]
        assert not twice, f"{len(twice)} part(s) reached the network twice: {twice[:5]}"
        by_key = {(o.destination, o.seq): (o.sender, o.mr) for o in self.outside}
        stored = {(p["recipient"], p["seq"]) for p in self.parts}
        phantom = [key for key in record if key not in stored]
        assert not phantom, f"the network got parts nobody accepted: {phantom[:5]}"
        problems = []
        for p in self.parts:
            key = (p["recipient"], p["seq"])
            n = record[key]
            state = p["state"]
            if state in ("sent", "delivered", "expired") or (
                state == "failed" and p["report_status"] is not None
            ):
                if n != 1:
                    problems.append(f"part {p['id']} {state} but {n} time(s) in the record")
                elif by_key[key] != (self.sim_numbers.get(p["sim_id"]), p["tp_mr"]):
                    problems.append(f"part {p['id']} {state}: store {p['sim_id']}/{p['tp_mr']}"
                                    f" but network {by_key[key]}")  # fmt: skip
            elif state == "failed":
                if n != 0:
                    problems.append(f"part {p['id']} failed ({p['error']}) but it was sent")
            elif state != "uncertain":
                problems.append(f"part {p['id']} still {state} after the drain")
        assert not problems, f"{len(problems)} problem(s): {problems[:8]}"
        assert not self.undrained, f"the drain did not end: {self.undrained}"

    def check_concatenation(self) -> None:
        """The parts of a long message that reached its recipient can be joined: one SIM, one
        concatenation reference and count (a phone reassembles by sender and reference)."""
        by_message: dict[str, set[tuple[str, int | None, int]]] = defaultdict(set)
        for o in self.outside:
            by_message[o.destination].add((o.sender, o.reference, o.total))
        torn = {dest: sorted(map(str, got)) for dest, got in by_message.items() if len(got) > 1}
        assert not torn, f"{len(torn)} message(s) torn apart: {list(torn.items())[:4]}"

    def check_reports(self) -> None:
        """Every part the network took ends as its report(s) say, reports linked to it."""
        record = {(o.destination, o.seq): (o.sender, o.mr) for o in self.outside}
        rows: dict[tuple[int | None, int, str], list[dict[str, Any]]] = defaultdict(list)
        for r in self.reports:
            rows[(r["sim_id"], r["tp_mr"], r["recipient"])].append(r)
        numbers = {number: sim for sim, number in self.sim_numbers.items()}
        problems = []
        for p in self.parts:
            key = (p["recipient"], p["seq"])
            if key not in record or not p["status_report"]:
                continue
            sender, mr = record[key]
            outcome = self.outcomes[p["recipient"]]
            got = rows.get((numbers.get(sender), mr, p["recipient"]), [])
            want = REPORTS_PER_OUTCOME[outcome]
            statuses = sorted({r["status"] for r in got})  # a report sent again may be kept twice
            if len(statuses) != want:
                problems.append(f"part {p['id']}: {want} report(s) sent, stored {statuses}")
                continue
            if p["state"] == "uncertain":
                if any(r["part_id"] is not None for r in got):
                    problems.append(f"part {p['id']} uncertain but a report names it")
                continue
            if p["state"] != FINAL_STATE[outcome]:
                problems.append(f"part {p['id']} {p['state']}, its report says "
                                f"{FINAL_STATE[outcome]}")  # fmt: skip
            if any(r["part_id"] != p["id"] for r in got):
                problems.append(
                    f"part {p['id']}: report(s) linked to {[r['part_id'] for r in got]}"
                )
        assert not problems, f"{len(problems)} problem(s): {problems[:8]}"

    def check_inbound(self) -> None:
        """Each injected SMS exactly once in the inbox, complete, from its sender to its SIM."""
        want = Counter((i.msisdn, i.sender, i.text) for i in self.injected)
        got = Counter((r["recipient"], r["originator"], r["body"]) for r in self.inbound)
        missing = want - got
        extra = got - want
        assert not missing, f"{sum(missing.values())} inbound SMS lost: {list(missing)[:3]}"
        assert not extra, f"{sum(extra.values())} inbound SMS too many: {list(extra)[:3]}"
        torn = [r["id"] for r in self.inbound if not r["complete"]]
        assert not torn, f"inbound stored incomplete: {torn[:5]}"

    def check_webhooks(self) -> None:
        """Every stored event delivered; the receiver said 2xx to exactly those, once each."""
        states = Counter(e["state"] for e in self.events)
        assert states == Counter(delivered=len(self.events)), states
        ok = Counter(event for event, status in self.answered if 200 <= status < 300)
        stored = {e["event_id"] for e in self.events}
        assert set(ok) == stored, (
            f"{len(stored - set(ok))} event(s) never delivered, {len(set(ok) - stored)} unknown"
        )
        twice = [event for event, n in ok.items() if n > 1]
        assert not twice, f"{len(twice)} event(s) delivered twice: {twice[:5]}"
        last: dict[int, tuple[int, str]] = {}
        for e in self.events:
            if e["kind"] != "status":
                continue
            data = json.loads(e["payload"])
            mid = data["message_id"]
            if mid not in last or e["id"] > last[mid][0]:
                last[mid] = (e["id"], data["state"])
        wrong = [(m, s, self.messages[m]) for m, (_, s) in last.items() if self.messages[m] != s]
        assert not wrong, (
            f"{len(wrong)} message(s) whose last event is not their state: {wrong[:5]}"
        )

    def summary(self) -> str:
        """One line of counts for the closing note."""
        states = Counter(p["state"] for p in self.parts)
        record = self._network()
        uncertain_sent = sum(
            1
            for p in self.parts
            if p["state"] == "uncertain" and record[(p["recipient"], p["seq"])]
        )
        matched = sum(1 for r in self.reports if r["part_id"] is not None)
        again = len(self.reports) - len({(r["sim_id"], r["tp_mr"], r["recipient"], r["status"])
                                         for r in self.reports})  # fmt: skip
        retried = sum(1 for _, status in self.answered if not 200 <= status < 300)
        faults = ",".join(f"{k}={v}" for k, v in sorted(self.faults.items()))
        drain = self.virtual_seconds / 60 - self.plan.minutes
        return (
            f"soak seed={self.plan.seed} modems={self.plan.modems}"
            f" virtual={self.plan.minutes:g}min+{drain:.1f}min drain"
            f" real={self.real_seconds:.0f}s |"
            f" accepted={self.accepted} messages, {len(self.parts)} parts;"
            f" network={sum(record.values())} parts;"
            f" delivered={states['delivered']} sent={states['sent']} failed={states['failed']}"
            f" expired={states['expired']} uncertain={states['uncertain']}"
            f" (of which sent={uncertain_sent}) |"
            f" inbound={len(self.injected)} SMS"
            f" ({sum(i.parts for i in self.injected)} parts) stored={len(self.inbound)} |"
            f" reports={len(self.reports)} matched={matched}"
            f" (the rest for uncertain parts) kept twice={again} |"
            f" webhooks={len(self.events)} delivered, {retried} refused attempts |"
            f" faults {faults}"
        )


@dataclass
class _Modem:
    index: int
    msisdn: str
    iccid: str
    pin: bool
    hung: bool = False
    unplugged_until: float | None = None


@dataclass
class _Soak:
    plan: SoakPlan
    emu: EmulatorPool
    clock: LockstepClock
    gateway: Gateway
    http: aiohttp.ClientSession
    base: str
    keys: list[str]
    rng: random.Random
    modems: list[_Modem]
    deadline: float  # time.monotonic() by which the run must be over (a hang fails, not waits)
    start: float = 0.0  # virtual time the run began
    injected: list[Injected] = field(default_factory=list)
    outcomes: dict[str, ReportOutcome] = field(default_factory=dict)
    recipients: list[str] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    history: list[str] = field(default_factory=list)  # what was done when (post-mortems)
    accepted: int = 0
    # Virtual-time actions: (when, seq, action)
    timers: list[tuple[float, int, Callable[[], None]]] = field(default_factory=list)
    seq: Any = field(default_factory=itertools.count)
    deck: list[str] = field(default_factory=list)
    numbers: Any = field(default_factory=lambda: itertools.count(1))
    references: Counter[str] = field(default_factory=Counter)

    # -- time ---------------------------------------------------------------------------------
    def now(self) -> float:
        return self.clock.monotonic()

    def later(self, seconds: float, action: Callable[[], None]) -> None:
        heapq.heappush(self.timers, (self.now() + seconds, next(self.seq), action))

    def run_timers(self) -> None:
        while self.timers and self.timers[0][0] <= self.now():
            _, _, action = heapq.heappop(self.timers)
            action()

    # -- outbound -----------------------------------------------------------------------------
    def text(self, kind: str) -> str:
        words = " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(3, 70)))
        if kind == "ucs2":
            return f"{words[:120]} {self.rng.choice(EMOJI)}"
        if kind == "long":
            return " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(40, 90)))
        return words[:150]

    def recipient(self) -> str:
        number = f"+1555{next(self.numbers):07d}"
        outcomes = [outcome for outcome, _ in OUTCOMES]
        self.outcomes[number] = self.rng.choices(outcomes, [w for _, w in OUTCOMES])[0]
        self.recipients.append(number)
        return number

    async def batch(self) -> None:
        low, high = self.plan.batch_size
        size = max(1, int(self.rng.randint(low, high) * self.plan.scale))
        kind = self.rng.choices(["short", "long", "ucs2"], [60, 25, 15])[0]
        numbers = [self.recipient() for _ in range(size)]
        key = self.rng.choice(self.keys)
        body = {"to": numbers, "text": self.text(kind)}
        async with self.http.post(
            f"{self.base}/messages", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as r:
            answer = await r.json()
            assert r.status == 201, answer
        self.accepted += len(answer["message_ids"])
        self.note(f"batch of {size} ({kind}): messages {answer['message_ids'][0]}..")

    # -- inbound ------------------------------------------------------------------------------
    def inbound(self) -> None:
        modem = self.rng.choice(self.modems)
        if self.recipients and self.rng.random() < 0.5:
            sender = self.rng.choice(self.recipients)  # a reply to something we sent
        else:
            sender = f"+4915{self.rng.randrange(10**8):08d}"
        kind = self.rng.choices(["short", "long", "ucs2"], [70, 20, 10])[0]
        text = f"in{len(self.injected)} {self.text(kind)}"
        ref16 = self.rng.random() < 0.3
        parts = len(build_submits(sender, text, ref16=ref16))
        order = None
        if parts > 1:
            order = list(range(parts))
            self.rng.shuffle(order)
        ref = self.references[sender]
        self.references[sender] += 1
        self.emu.inject_sms(
            modem.msisdn, text, sender=sender, reference=ref % 256,
            ref16=ref16, order=order,
        )  # fmt: skip
        self.injected.append(Injected(modem.msisdn, sender, text, parts))

    # -- faults -------------------------------------------------------------------------------
    def note(self, what: str) -> None:
        self.history.append(f"{self.now() - self.start:8.1f} {what}")

    def draw(self) -> str:
        if not self.deck:
            self.deck = list(FAULTS)
            self.rng.shuffle(self.deck)
        return self.deck.pop()

    def fault(self) -> None:
        kind = self.draw()
        if kind == "clock_step":
            if self.faults["clock_step"] >= self.plan.clock_steps:
                return
            back = self.faults["clock_step"] % 2 == 1
            seconds = self.rng.uniform(30.0, 7200.0)
            self.clock.step_wall(-seconds if back else seconds)
            self.faults["clock_step"] += 1
            self.note(f"wall clock stepped {'back' if back else 'forward'} {seconds:.0f} s")
            return
        present = [m for m in self.modems if m.unplugged_until is None and not m.hung]
        if not present:
            return
        modem = self.rng.choice(present)
        i = modem.index
        self.faults[kind] += 1
        self.note(f"{kind} on modem {i}")
        if kind == "hang":
            modem.hung = True
            self.emu.set_fault(i, "hang")

            def unhang() -> None:
                modem.hung = False
                self.emu.clear_fault(i, "hang")

            self.later(self.rng.uniform(5.0, 90.0), unhang)
        elif kind == "unplug":
            seconds = self.rng.uniform(2.0, 40.0)
            port = None
            if self.rng.random() < 0.5:
                port = self.free_port()
            self.emu.unplug(i, seconds, port=port)
            self.note(f"  for {seconds:.0f} s, back in USB port {port or 'the same'}")
            modem.unplugged_until = self.now() + seconds

            def replugged() -> None:
                modem.unplugged_until = None

            self.later(seconds, replugged)
        elif kind == "reboot":
            self.emu.set_fault(i, "reboot")
        elif kind == "urc_in_cmgs":
            self.emu.inject_urc(i, self.rng.choice(URC_LINES), where="cmgs")
            if self.rng.random() < 0.5:
                self.emu.set_fault(i, "urc_mid_answer", rate=0.3, line=self.rng.choice(URC_LINES))
                self.later(self.rng.uniform(10.0, 60.0),
                           lambda: self.emu.clear_fault(i, "urc_mid_answer"))  # fmt: skip
        elif kind == "garbage":
            junk = bytes(self.rng.randrange(1, 256) for _ in range(self.rng.randint(1, 24)))
            self.emu.inject_garbage(i, junk.replace(b"\r", b"").replace(b"\n", b""))
            self.emu.set_fault(i, "garbage", rate=0.2, length=self.rng.randint(1, 12))
            self.later(self.rng.uniform(10.0, 60.0), lambda: self.emu.clear_fault(i, "garbage"))
        elif kind == "cms_error":
            permanent = self.rng.random() < 0.2
            code = PERMANENT_CMS if permanent else self.rng.choice(TEMPORARY_CMS)
            rate = 0.3 if permanent else self.rng.uniform(0.3, 1.0)
            self.emu.set_fault(i, "cms_error", code=code, rate=rate)
            self.later(self.rng.uniform(10.0, 60.0), lambda: self.emu.clear_fault(i, "cms_error"))
        elif kind == "pin_loss":
            self.emu.set_fault(i, "pin_loss", seconds=self.rng.uniform(1.0, 10.0))
        elif kind == "submit_crash":
            how, sent = self.rng.choice(CRASHES), int(self.rng.random() < 0.5)
            seconds = self.rng.uniform(2.0, 30.0)
            self.emu.set_fault(i, "submit_crash", how=how, sent=sent, seconds=seconds)
            self.note(f"  on its next AT+CMGS: {how}, {'after' if sent else 'before'} the network")

    def free_port(self) -> str | None:
        links = self.emu.links
        assert links is not None
        ports = [f"1.{n}" for n in range(1, self.plan.modems + self.plan.spare_ports + 1)]
        free = self.emu.call(lambda: [p for p in ports if links.holder(p) is None])
        return self.rng.choice(free) if free else None

    def heal(self) -> None:
        """The drain: every fault off (replugs still on their way come in on their own)."""
        self.timers.clear()
        for m in self.modems:
            m.hung = False
            self.emu.call(self.emu.modems[m.index].core.clear_all_faults)

    # -- the run ------------------------------------------------------------------------------
    async def tick(self) -> None:
        await self.clock.sleep(1.0)
        if time.monotonic() > self.deadline:
            raise TimeoutError(f"soak over its real-time deadline; still busy: {self.busy()}")
        self.run_timers()

    async def drive(self) -> None:
        plan = self.plan
        per_second = 1 / 60
        # Counted in ticks, not read off the clock: an HTTP request that let virtual time move
        # (the accept path's fsync) must not change how many draws the plan makes.
        for _ in range(round(plan.minutes * 60)):
            await self.tick()
            if self.rng.random() < plan.batches * per_second:
                await self.batch()
            for _ in range(_poisson(self.rng, plan.inbound * plan.scale * per_second)):
                self.inbound()
            for _ in range(_poisson(self.rng, plan.faults * plan.scale * per_second)):
                self.fault()

    async def drain(self) -> list[str]:
        """Heal and wait until nothing moves: return what still does after drain_minutes."""
        self.heal()
        end = self.now() + self.plan.drain_minutes * 60
        quiet = 0
        reasons: list[str] = []
        while self.now() < end:
            await self.tick()
            reasons = self.busy()
            quiet = 0 if reasons else quiet + 1
            if quiet >= 30:
                return []
        return reasons

    def busy(self) -> list[str]:
        store = self.gateway.store
        reasons = []
        flight = store.conn.execute(
            "SELECT state, COUNT(*) FROM parts WHERE state IN ('accepted', 'queued', 'sending')"
            " GROUP BY state"
        ).fetchall()
        reasons += [f"{n} part(s) {state}" for state, n in flight]
        pending = self.gateway.service.webhook_counts()["pending"]
        if pending:
            reasons.append(f"{pending} webhook event(s) pending")
        held = self.emu.call(lambda: sum(self.emu.network.held(m.msisdn) for m in self.modems))
        if held:
            reasons.append(f"{held} message(s) held at the SMSC")
        left = self.emu.call(lambda: _left_on_modems(self.emu))
        if left:
            reasons.append(f"left on modems: {', '.join(left)}")
        not_ready = [w.port for w in self.gateway.workers.values() if not w.ready.is_set()]
        if len(self.gateway.workers) != len(self.modems) or not_ready:
            reasons.append(f"{len(self.gateway.workers)} worker(s), not ready: {not_ready}")
        return reasons


def _left_on_modems(emu: EmulatorPool) -> list[str]:
    """What each modem still stores, e.g. "3:ec25 SR=2 report" (emulator thread only)."""
    left = []
    for modem in emu.modems:
        for name, storage in modem.core.storages.items():
            if isinstance(storage, MtStorage) or not storage.used():
                continue
            kinds = Counter(_kind(stored.hex) for _, stored in storage.items())
            what = " ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
            left.append(f"{modem.index}:{modem.personality.name} {name}: {what}")
    return left


def _kind(hexpdu: str) -> str:
    pdu = bytes.fromhex(hexpdu)
    mti = pdu[pdu[0] + 1] & 0x03 if len(pdu) > pdu[0] + 1 else -1
    return {0: "deliver", 1: "submit", 2: "report"}.get(mti, "?")


def _poisson(rng: random.Random, mean: float) -> int:
    """Events in one second at `mean` per second."""
    n, p, limit = 0, 1.0, pow(2.718281828459045, -mean)
    while True:
        p *= rng.random()
        if p <= limit:
            return n
        n += 1


def _flaky(rng: random.Random, log: list[tuple[str, int]]) -> Callable[..., Awaitable[Any]]:
    """A receiver that answers 503 to one request in 20 (a deploy, an overloaded proxy)."""

    async def answer(request: web.Request, receiver: Receiver) -> web.StreamResponse:
        status = 503 if rng.random() < 0.05 else 200
        log.append((request.headers.get("X-Smsgw-Event-Id", ""), status))
        return web.Response(status=status, text="ok" if status == 200 else "busy")

    return answer


def run_soak(plan: SoakPlan, tmp_path: Path) -> SoakResult:
    """One run; raises if it cannot finish within plan.deadline real seconds."""
    rng = random.Random(plan.seed)
    personalities = [PERSONALITIES[i % len(PERSONALITIES)] for i in range(plan.modems)]
    links = tmp_path / "dev-serial"
    started = time.monotonic()
    with EmulatorPool(
        0, seed=plan.seed, report_delay=REPORT_DELAY, resend_unacknowledged=True, links=links
    ) as emu:
        for i, name in enumerate(personalities):
            emu.add_modem(name, pin_enabled=i >= plan.modems - plan.pin_modems)
        clock = LockstepClock(emu, virtual_loop=True)
        start = clock.monotonic()
        result = clock.run(_run(plan, emu, clock, rng, tmp_path, started + plan.deadline))
        result.real_seconds = time.monotonic() - started
        result.virtual_seconds = clock.monotonic() - start
        return result


async def _run(
    plan: SoakPlan,
    emu: EmulatorPool,
    clock: LockstepClock,
    rng: random.Random,
    tmp_path: Path,
    deadline: float,
) -> SoakResult:
    infos = emu.info()
    pins = {i: emu.call(lambda i=i: emu.core(i).sim.identity.pin) for i in range(plan.modems)}
    first_pin = plan.modems - plan.pin_modems
    http_port = free_port()
    assert emu.links is not None
    config = Config(
        data_dir=tmp_path / "data",
        http_host="127.0.0.1",
        http_port=http_port,
        modems=tuple(
            ModemConfig(str(emu.by_id(i)), pins[i]) for i in range(first_pin, plan.modems)
        ),
        discover=(str(emu.links.root / "by-path"),),
        webhooks=WebhookSettings(backoff_first=2.0, backoff_cap=60.0, poll_interval=5.0),
    )
    (tmp_path / "data").mkdir()
    answered: list[tuple[str, int]] = []
    outcomes: dict[str, ReportOutcome] = {}  # read on the emulator's thread: only ever added to
    emu.network.report_outcome = lambda dest: outcomes.get(dest, ReportOutcome.DELIVERED)
    async with (
        Receiver(behaviour=_flaky(random.Random(plan.seed + 1), answered)) as receiver,
        serving(config, [], lockstep=clock, modems_ready=False) as gateway,
        # A connection per request: the API closes keep-alive connections idle for 15 s, and a
        # batch minutes later would race that close on a pooled one.
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
    ):
        base = f"http://127.0.0.1:{http_port}/v1"
        keys = []
        for name, hooks in (("shop", ("status", "reply")), ("clinic", ("status",))):
            creds = create_account(gateway.store, name, now=clock.wall(), unlimited=True)
            keys.append(creds.api_key)
            async with http.put(
                f"{base}/webhooks",
                json={kind: receiver.url(f"/{name}/{kind}") for kind in hooks},
                headers={"Authorization": f"Bearer {creds.api_key}"},
            ) as r:
                assert r.status == 200, await r.text()
        modems = [_Modem(i.index, i.msisdn, i.iccid, pin=i.index >= first_pin) for i in infos]
        soak = _Soak(
            plan, emu, clock, gateway, http, base, keys, rng, modems, deadline, outcomes=outcomes
        )
        while len(gateway.workers) < plan.modems or not all(
            w.ready.is_set() for w in gateway.workers.values()
        ):
            await soak.tick()
        soak.start = soak.now()
        await soak.drive()
        undrained = await soak.drain()
        store = gateway.store
        parts = [
            dict(r)
            for r in store.conn.execute(
                "SELECT p.*, m.recipient, m.status_report FROM parts p"
                " JOIN messages m ON m.id = p.message_id ORDER BY p.id"
            )
        ]
        result = SoakResult(
            plan=plan,
            real_seconds=0.0,
            virtual_seconds=0.0,
            outside=[
                _record(o.sender, o.destination, o.message_reference, o.tpdu) for o in emu.outside()
            ],
            outcomes=dict(outcomes),
            parts=parts,
            reports=[dict(r) for r in store.conn.execute("SELECT * FROM delivery_reports")],
            inbound=[dict(r) for r in store.conn.execute("SELECT * FROM inbound")],
            injected=soak.injected,
            sim_numbers={int(r["id"]): r["msisdn"] for r in store.list_sims()},
            events=[dict(r) for r in store.conn.execute("SELECT * FROM webhook_events")],
            answered=answered,
            messages={
                int(r[0]): r[1] for r in store.conn.execute("SELECT id, state FROM messages")
            },
            faults=soak.faults,
            history=soak.history,
            accepted=soak.accepted,
            undrained=undrained,
        )
        return result


def _record(sender: str, destination: str, mr: int, tpdu: bytes) -> Sent:
    submit = decode_tpdu(tpdu)
    assert isinstance(submit, SmsSubmit)
    header = submit.user_data.header
    concat = header.concatenation if header is not None else None
    if concat is None:
        return Sent(sender, destination, mr, 1, None, 1)
    return Sent(sender, destination, mr, concat.sequence, concat.reference, concat.total)
