"""Pure reassembly of concatenated SMS-DELIVER parts (time is passed in, never read)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from modem.pdu import gsm7
from modem.pdu.address import Address
from modem.pdu.dcs import Alphabet
from modem.pdu.tpdu import SmsDeliver, SmsSubmit, UserData
from modem.pdu.ucs2 import encode_ucs2

__all__ = ["IncompleteMessage", "ReassembledMessage", "Reassembler", "join_parts"]

PartKey = tuple[Address, int, int]


@dataclass(frozen=True, slots=True)
class ReassembledMessage:
    """A whole message: its parts in sequence order and the joined text or data."""

    originator: Address
    parts: tuple[SmsDeliver, ...]
    text: str | None
    data: bytes | None
    encoding: Alphabet
    reference: int | None
    first_received: datetime

    @property
    def scts(self) -> datetime:
        """Service centre time stamp of the first part."""
        return self.parts[0].scts


@dataclass(frozen=True, slots=True)
class IncompleteMessage:
    """Parts that did not complete in time, handed back (text joined, gaps closed up)."""

    originator: Address
    reference: int
    total: int
    parts: tuple[SmsDeliver, ...]
    missing: tuple[int, ...]
    text: str | None
    data: bytes | None
    encoding: Alphabet
    first_received: datetime


@dataclass(slots=True)
class _Pending:
    first_received: datetime
    parts: dict[int, SmsDeliver] = field(default_factory=dict)


def _shifts(user_data: UserData) -> tuple[int, int]:
    header = user_data.header
    if header is None:
        return 0, 0
    return header.locking_shift or 0, header.single_shift or 0


def _raw(part: SmsDeliver | SmsSubmit, alphabet: Alphabet) -> bytes:
    user_data = part.user_data
    if user_data.raw is not None:
        return user_data.raw
    if alphabet is Alphabet.GSM7:
        locking, single = _shifts(user_data)
        return gsm7.encode_septets(user_data.text or "", locking, single)
    if alphabet is Alphabet.UCS2:
        return encode_ucs2(user_data.text or "")
    return user_data.data or b""


def join_parts(
    parts: Sequence[SmsDeliver] | Sequence[SmsSubmit],
) -> tuple[str | None, bytes | None, Alphabet]:
    """Join consecutive parts' raw user data, then decode once (torn characters survive)."""
    alphabets = {p.dcs.alphabet if not p.dcs.compressed else Alphabet.DATA_8BIT for p in parts}
    first = parts[0]
    alphabet = first.dcs.alphabet if not first.dcs.compressed else Alphabet.DATA_8BIT
    if len(alphabets) > 1:
        # Mixed alphabets cannot tear a character between them: join per-part texts.
        texts = [p.user_data.text or "" for p in parts]
        return "".join(texts), None, alphabet
    if alphabet is Alphabet.GSM7:
        shifts = {_shifts(p.user_data) for p in parts}
        if len(shifts) == 1:
            locking, single = shifts.pop()
            raw = b"".join(_raw(p, alphabet) for p in parts)
            return gsm7.decode_septets(raw, locking, single), None, alphabet
        out: list[str] = []
        carry = b""
        for p in parts:
            locking, single = _shifts(p.user_data)
            raw = carry + _raw(p, alphabet)
            carry = b""
            stripped = raw.rstrip(b"\x1b")
            if (len(raw) - len(stripped)) % 2:
                carry, raw = b"\x1b", raw[:-1]
            out.append(gsm7.decode_septets(raw, locking, single))
        return "".join(out), None, alphabet
    raw = b"".join(_raw(p, alphabet) for p in parts)
    if alphabet is Alphabet.UCS2:
        # A sender that really tore a pair must not cost the whole message: a lone surrogate
        # left after joining shows as U+FFFD, visibly, instead of raising.
        return raw[: len(raw) & ~1].decode("utf-16-be", errors="replace"), None, alphabet
    return None, raw, alphabet


def _runs(parts: dict[int, SmsDeliver]) -> list[list[SmsDeliver]]:
    runs: list[list[SmsDeliver]] = []
    previous = -1
    for seq in sorted(parts):
        if seq != previous + 1 or not runs:
            runs.append([])
        runs[-1].append(parts[seq])
        previous = seq
    return runs


class Reassembler:
    """Collects concatenated parts keyed by (originator, reference, total) -- not by SMSC."""

    def __init__(self) -> None:
        self._pending: dict[PartKey, _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, sms: SmsDeliver, *, now: datetime) -> ReassembledMessage | None:
        """Add a part; returns the whole message once every part is in, else None."""
        header = sms.user_data.header
        concat = header.concatenation if header is not None else None
        if concat is None or concat.total == 1:
            text, data, alphabet = join_parts([sms])
            return ReassembledMessage(
                sms.originator,
                (sms,),
                text,
                data,
                alphabet,
                None if concat is None else concat.reference,
                now,
            )
        key = (sms.originator, concat.reference, concat.total)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending(now)
        # A repeated part (SMSC retransmission) keeps the copy that arrived first.
        pending.parts.setdefault(concat.sequence, sms)
        if len(pending.parts) < concat.total:
            return None
        del self._pending[key]
        ordered = tuple(pending.parts[i] for i in range(1, concat.total + 1))
        text, data, alphabet = join_parts(ordered)
        return ReassembledMessage(
            sms.originator, ordered, text, data, alphabet, concat.reference, pending.first_received
        )

    def expire(self, now: datetime, max_age: timedelta) -> list[IncompleteMessage]:
        """Remove and hand back messages whose first part is at least max_age old."""
        out: list[IncompleteMessage] = []
        for key, pending in list(self._pending.items()):
            if now - pending.first_received < max_age:
                continue
            del self._pending[key]
            originator, reference, total = key
            texts: list[str] = []
            datas: list[bytes] = []
            alphabet = Alphabet.GSM7
            for run in _runs(pending.parts):
                text, data, alphabet = join_parts(run)
                if text is not None:
                    texts.append(text)
                if data is not None:
                    datas.append(data)
            out.append(
                IncompleteMessage(
                    originator=originator,
                    reference=reference,
                    total=total,
                    parts=tuple(pending.parts[s] for s in sorted(pending.parts)),
                    missing=tuple(s for s in range(1, total + 1) if s not in pending.parts),
                    text="".join(texts) if texts else None,
                    data=b"".join(datas) if datas else None,
                    encoding=alphabet,
                    first_received=pending.first_received,
                )
            )
        return out
