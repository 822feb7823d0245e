"""What the fleet tests share: a modem that takes every submit after a fixed radio time."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

from gateway.outbox import OutcomeKind, SendOutcome
from modem.pdu import SmsSubmit
from tests.vloop import VirtualTimeLoop


@dataclass
class FakeModem:
    """Records (virtual time, recipient) per AT+CMGS and answers SENT after `radio` seconds."""

    loop: VirtualTimeLoop
    radio: float = 0.2  # seconds an AT+CMGS takes
    sent: list[tuple[float, str]] = field(default_factory=list)
    mr: itertools.count[int] = field(default_factory=itertools.count)

    async def send_submit(self, recipient: str, submit: SmsSubmit) -> SendOutcome:
        self.sent.append((self.loop.time(), recipient))
        await asyncio.sleep(self.radio)
        return SendOutcome(OutcomeKind.SENT, tp_mr=next(self.mr) % 256)
