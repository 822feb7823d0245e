"""Inbound messages: STOP-style opt-outs, START-style opt-ins and HELP keywords."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from gateway.store import Store, StoreUnavailableError
from modem.pdu import Address, Reassembler, SmsDeliver, decode_pdu
from modem.pdu.fields import anomalies_json

log = logging.getLogger(__name__)


class Keyword(StrEnum):
    """What an inbound message asks of the gateway."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


_KEYWORDS: dict[str, Keyword] = {
    **dict.fromkeys(("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"), Keyword.OPT_OUT),
    **dict.fromkeys(("START", "UNSTOP"), Keyword.OPT_IN),
    "HELP": Keyword.HELP,
}


def classify(body: str) -> Keyword | None:
    """Return the keyword an inbound body consists of, if any (" stop. " counts, "stop it" not)."""
    word = body.strip().strip(".!").strip().upper()
    return _KEYWORDS.get(word)


@dataclass(frozen=True, slots=True)
class InboundResult:
    """What happened to one received part."""

    duplicate: bool = False
    inbound_id: int | None = None  # set when the part completed a message
    keyword: Keyword | None = None


class Inbox:
    """Stores inbound parts as they arrive, reassembles them, and applies opt-out keywords.

    Parts are durable before reassembly, so a restart rebuilds the half-received messages from
    the store (`restore`); one reassembler per SIM, since a message never spans two SIMs.
    """

    def __init__(self, store: Store, *, on_message: Callable[[int], None] | None = None) -> None:
        self.store = store
        self.on_message = on_message  # called with each new inbound id (webhooks, waiters)
        self._reassemblers: dict[int | None, Reassembler] = {}
        # (sim, originator, reference, total) -> stored part ids, duplicates included
        self._part_ids: dict[tuple[int | None, str, int, int], list[int]] = {}
        # Messages reassembled from durable parts whose own commit was refused (disk full, DB
        # locked): stored on the next receive or housekeeping round, never dropped.
        self._unstored: list[Callable[[], InboundResult]] = []

    def restore(self) -> int:
        """Reload parts stored before a restart; return how many were pending."""
        rows = self.store.pending_inbound_parts()
        for row in rows:
            deliver = decode_pdu(row["pdu"]).tpdu
            if isinstance(deliver, SmsDeliver):
                self._add(
                    row["sim_id"], deliver, row["id"], datetime.fromisoformat(row["received_at"])
                )
        return len(rows)

    def receive(self, sim_id: int | None, pdu_hex: str, *, now: datetime) -> InboundResult:
        """Handle one SMS-DELIVER (hex with SMSC) from a modem: store, reassemble, act."""
        self.store_pending()
        deliver = decode_pdu(pdu_hex).tpdu
        if not isinstance(deliver, SmsDeliver):
            raise ValueError(f"expected an SMS-DELIVER, got {type(deliver).__name__}")
        concat = deliver.user_data.header.concatenation if deliver.user_data.header else None
        part_id = self.store.add_inbound_part(
            sim_id=sim_id,
            originator=str(deliver.originator),
            reference=concat.reference if concat else None,
            total=concat.total if concat else 1,
            seq=concat.sequence if concat else 1,
            pdu=pdu_hex.upper(),
            now=now,
            anomalies=anomalies_json(deliver.anomalies),
        )
        if part_id is None:
            return InboundResult(duplicate=True)
        if deliver.anomalies:
            # What was repaired (no number, no body): the PDU is kept in inbound_parts.
            codes = ", ".join(str(a.code) for a in deliver.anomalies)
            log.warning("inbound part %d decoded with repairs: %s", part_id, codes)
        return self._add(sim_id, deliver, part_id, now)

    def _add(
        self, sim_id: int | None, deliver: SmsDeliver, part_id: int, now: datetime
    ) -> InboundResult:
        concat = deliver.user_data.header.concatenation if deliver.user_data.header else None
        key = (
            sim_id,
            str(deliver.originator),
            concat.reference if concat else -1,
            concat.total if concat else 1,
        )
        self._part_ids.setdefault(key, []).append(part_id)
        reassembler = self._reassemblers.setdefault(sim_id, Reassembler())
        message = reassembler.add(deliver, now=now)
        if message is None:
            return InboundResult()
        part_ids = self._part_ids.pop(key)
        store = functools.partial(
            self._store_message,
            sim_id, originator=message.originator, text=message.text, data=message.data,
            encoding=message.encoding.value, received=len(message.parts),
            total=len(message.parts), scts=message.scts, part_ids=part_ids, now=now,
        )  # fmt: skip
        try:
            return store()
        except StoreUnavailableError:
            self._unstored.append(store)  # its parts are durable: only the message waits
            raise

    def store_pending(self) -> int:
        """Store the messages whose commit was refused earlier; return how many now are."""
        stored = 0
        while self._unstored:
            self._unstored[0]()
            self._unstored.pop(0)
            stored += 1
        if stored:
            log.info("%d reassembled inbound message(s) stored after the store came back", stored)
        return stored

    def expire(self, now: datetime, max_age: timedelta) -> list[int]:
        """Surface messages still missing parts after max_age; return their inbound ids."""
        self.store_pending()
        ids: list[int] = []
        for sim_id, reassembler in self._reassemblers.items():
            for msg in reassembler.expire(now, max_age):
                key = (sim_id, str(msg.originator), msg.reference, msg.total)
                part_ids = self._part_ids.pop(key, [])
                store = functools.partial(
                    self._store_message,
                    sim_id, originator=msg.originator, text=msg.text, data=msg.data,
                    encoding=msg.encoding.value, received=len(msg.parts), total=msg.total,
                    scts=msg.parts[0].scts, part_ids=part_ids, now=now,
                )  # fmt: skip
                try:
                    result = store()
                except StoreUnavailableError:
                    self._unstored.append(store)
                    continue
                if result.inbound_id is not None:  # else another box stored it
                    ids.append(result.inbound_id)
        return ids

    def _store_message(
        self,
        sim_id: int | None,
        *,
        originator: Address,
        text: str | None,
        data: bytes | None,
        encoding: str,
        received: int,
        total: int,
        scts: datetime,
        part_ids: list[int],
        now: datetime,
    ) -> InboundResult:
        account_id = self.store.account_for_inbound(sim_id, str(originator))
        sim = self.store.sim(sim_id) if sim_id is not None else None
        body = text if text is not None else (data or b"").hex()
        inbound_id = self.store.insert_inbound(
            {
                "account_id": account_id,
                "sim_id": sim_id,
                "originator": str(originator),
                "recipient": sim["msisdn"] if sim else "",
                "body": body,
                "encoding": encoding,
                "parts_received": received,
                "parts_total": total,
                "complete": int(received == total),
                "scts": scts.isoformat(),
            },
            part_ids,
            now=now,
        )
        if inbound_id is None:
            # Its parts were made a message meanwhile by another box (fleet mode: both had
            # them pending, restored at start, or the SIM moved between its parts).
            log.info("inbound from ...%s: stored elsewhere already", str(originator)[-3:])
            return InboundResult(duplicate=True)
        if self.on_message is not None:
            self.on_message(inbound_id)
        keyword = classify(body) if text is not None and received == total else None
        if keyword in (Keyword.OPT_OUT, Keyword.OPT_IN) and account_id is not None:
            self.store.set_opt_out(
                account_id, str(originator), keyword is Keyword.OPT_OUT,
                keyword=body.strip().upper(), now=now,
            )  # fmt: skip
            # Log the fact, never the number in full or the body, at INFO.
            log.info("inbound %d: %s from ...%s", inbound_id, keyword.value, str(originator)[-3:])
        return InboundResult(inbound_id=inbound_id, keyword=keyword)
