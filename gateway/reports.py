"""Delivery-report matching: TP-ST to part state, and (SIM, TP-MR, recipient, time) to the part."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.models import ALLOWED_TRANSITIONS, PartState
from gateway.store import Store
from gateway.telemetry import Telemetry
from modem.pdu import SmsStatusReport

log = logging.getLogger(__name__)

# A TP-MR is 8 bits and repeats every 256 sends per SIM, so a report only matches a part sent by
# the same SIM to the same number within this window (either side of the report: the host's
# clock may have been stepped back since the send), one still waiting for its verdict first.
MATCH_WINDOW = timedelta(days=3)
VALIDITY_EXPIRED = 0x46  # TS 23.040 9.2.3.15: "SM Validity Period Expired"


def state_for_status(status: int) -> PartState | None:
    """Map TP-ST (TS 23.040 9.2.3.15) to a part state; None while the SMSC is still trying."""
    if not 0 <= status <= 0xFF:
        raise ValueError(f"TP-ST out of range: {status}")
    if status <= 0x1F:  # short message transaction completed (delivered, forwarded, replaced)
        return PartState.DELIVERED
    if status <= 0x3F:  # temporary error, SC still trying
        return None
    if status == VALIDITY_EXPIRED:
        return PartState.EXPIRED
    # 0x40-0x5F permanent error; 0x60-0x7F temporary error, SC stopped trying; reserved values
    # above are treated as "SC stopped trying" as 23.040 asks for unknown codes.
    return PartState.FAILED


def same_number(a: str, b: str) -> bool:
    """Compare two numbers as a report may spell them (with or without '+' or national prefix)."""
    da = "".join(c for c in a if c.isdigit())
    db = "".join(c for c in b if c.isdigit())
    if not da or not db:
        return a.strip().lower() == b.strip().lower()
    # A report's TP-RA may drop the country code (TON national) or keep it; 9 trailing digits
    # distinguish subscribers inside every national numbering plan we know.
    tail = min(len(da), len(db), 9)
    return da[-tail:] == db[-tail:]


@dataclass(frozen=True, slots=True)
class SentPart:
    """A part the network accepted, as a report-matching candidate."""

    part_id: int
    sim_id: int
    tp_mr: int
    recipient: str
    sent_at: datetime
    waiting: bool = True  # no final verdict yet (a settled part cannot take another one)


def match_report(
    candidates: Sequence[SentPart],
    *,
    sim_id: int,
    tp_mr: int,
    recipient: str,
    received_at: datetime,
) -> SentPart | None:
    """Pick the part a status report belongs to: same SIM, TP-MR and number, sent within
    MATCH_WINDOW of the report; one still waiting for its verdict before a settled one, then
    the newest. A send stamped after the report is not ruled out: the report cannot come
    before its send, so the host's wall clock was stepped back in between (NTP, an RTC-less
    box setting its date), and the part is still the one it is for."""
    best: SentPart | None = None
    for part in candidates:
        if part.sim_id != sim_id or part.tp_mr != tp_mr:
            continue
        if abs(received_at - part.sent_at) > MATCH_WINDOW:
            continue
        if not same_number(part.recipient, recipient):
            continue
        if best is None or (part.waiting, part.sent_at) > (best.waiting, best.sent_at):
            best = part
    return best


@dataclass(frozen=True, slots=True)
class ReportResult:
    """What one status report did."""

    report_id: int
    part_id: int | None
    state: PartState | None  # the part's new state; None if still trying or unmatched


class ReportMatcher:
    """Applies SMS-STATUS-REPORTs from a SIM to the parts it sent."""

    def __init__(
        self,
        store: Store,
        *,
        on_settled: Callable[[int, PartState], None] | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.store = store
        self.on_settled = on_settled  # called with (part id, new state) (webhooks, waiters)
        self.telemetry = telemetry

    def apply(self, sim_id: int, report: SmsStatusReport, *, now: datetime) -> ReportResult:
        """Store the report, find its part and settle the part's state."""
        recipient = str(report.recipient)
        rows = self.store.report_candidates(sim_id, report.message_reference, now - MATCH_WINDOW)
        states = {r["id"]: PartState(r["state"]) for r in rows}
        candidates = [
            SentPart(
                r["id"], sim_id, r["tp_mr"], r["recipient"], _parse(r["sending_at"]),
                waiting=r["state"] == PartState.SENT.value,
            )
            for r in rows
        ]  # fmt: skip
        match = match_report(
            candidates, sim_id=sim_id, tp_mr=report.message_reference, recipient=recipient,
            received_at=now,
        )  # fmt: skip
        report_id = self.store.insert_delivery_report(
            {
                "sim_id": sim_id,
                "tp_mr": report.message_reference,
                "recipient": recipient,
                "status": report.status,
                "scts": report.scts.isoformat(),
                "discharge_time": report.discharge_time.isoformat(),
                "part_id": match.part_id if match else None,
            },
            now=now,
        )
        if match is None:
            # Often the report simply overtook our own record of the +CMGS answer (the network
            # can be faster than the store): reconcile() picks it up once the part is recorded.
            log.debug(
                "status report %d (TP-MR %d) matches no sent part yet",
                report_id,
                report.message_reference,
            )
            return ReportResult(report_id, None, None)
        state = self._settle(match.part_id, states[match.part_id], report.status, now)
        if state is not None and self.telemetry is not None:
            self.telemetry.report_matched(match.sent_at, now)
        return ReportResult(report_id, match.part_id, state)

    def reconcile(self, part_id: int, *, now: datetime) -> list[ReportResult]:
        """Apply reports that arrived before the part's TP-MR was recorded; call after SENT."""
        part = self.store.part_with_recipient(part_id)
        if part is None or part["tp_mr"] is None or part["sim_id"] is None:
            return []
        sending_at = _parse(part["sending_at"])
        results = []
        for report in self.store.unmatched_reports(part["sim_id"], part["tp_mr"], sending_at):
            if not same_number(report["recipient"], part["recipient"]):
                continue
            self.store.link_report(report["id"], part_id)
            latest = self.store.part_with_recipient(part_id) or part
            state = self._settle(part_id, PartState(latest["state"]), report["status"], now)
            if state is not None and self.telemetry is not None:
                self.telemetry.report_matched(sending_at, now)
            results.append(ReportResult(report["id"], part_id, state))
        return results

    def _settle(
        self, part_id: int, current: PartState, status: int, now: datetime
    ) -> PartState | None:
        target = state_for_status(status)
        if target is None:
            return None
        if target not in ALLOWED_TRANSITIONS[current]:
            # A second report for a settled part (SMSC retransmission): keep the first verdict.
            return None
        self.store.transition_part(
            part_id, current, target, now=now, fields={"report_status": status}
        )
        if self.on_settled is not None:
            self.on_settled(part_id, target)
        return target


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)
