"""Delivery-report matching: TP-ST to part state, and (SIM, TP-MR, recipient, time) to the part."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.models import PartState

# A TP-MR is 8 bits and repeats every 256 sends per SIM, so a report only matches a part sent by
# the same SIM to the same number within this window, newest first.
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


def match_report(
    candidates: Sequence[SentPart],
    *,
    sim_id: int,
    tp_mr: int,
    recipient: str,
    received_at: datetime,
) -> SentPart | None:
    """Pick the part a status report belongs to: the newest matching send before the report."""
    best: SentPart | None = None
    for part in candidates:
        if part.sim_id != sim_id or part.tp_mr != tp_mr:
            continue
        if not part.sent_at <= received_at <= part.sent_at + MATCH_WINDOW:
            continue
        if not same_number(part.recipient, recipient):
            continue
        if best is None or part.sent_at > best.sent_at:
            best = part
    return best
