"""SMS-DELIVER TPDUs from the outside world, built with `modem.pdu` (the slow, rich path)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from modem.pdu import Address, SmsDeliver, build_data_submits, build_submits


def deliver_parts(
    text: str | None,
    sender: str,
    *,
    scts_epoch: float,
    data: bytes | None = None,
    reference: int = 0x42,
    ref16: bool = False,
    message_class: int | None = None,
    order: Sequence[int] | None = None,
) -> list[bytes]:
    """The SMS-DELIVER TPDUs of one message, in `order` (part indexes from 0) if given.

    `sender` may be an international number ("+49..."), a national one, or alphanumeric text
    ("MyBank"); text containing characters outside GSM 7-bit (emoji...) goes out as UCS-2, and
    `data` instead of `text` sends 8-bit data. Parts longer than one SMS get a concatenation
    header with an 8-bit or (ref16) 16-bit reference.
    """
    if (text is None) == (data is None):
        raise ValueError("give exactly one of text and data")
    if text is not None:
        submits = build_submits(
            sender, text, reference=reference, ref16=ref16, message_class=message_class
        )
    else:
        assert data is not None
        submits = build_data_submits(
            sender, data, reference=reference, ref16=ref16, message_class=message_class
        )
    originator = Address.parse(sender)
    scts = dt.datetime.fromtimestamp(int(scts_epoch), dt.UTC)
    tpdus = [
        SmsDeliver(
            originator=originator,
            scts=scts,
            user_data=s.user_data,
            dcs=s.dcs,
            protocol_identifier=s.protocol_identifier,
        ).encode()
        for s in submits
    ]
    if order is not None:
        if sorted(order) != list(range(len(tpdus))):
            raise ValueError(f"order must be a permutation of 0..{len(tpdus) - 1}")
        tpdus = [tpdus[i] for i in order]
    return tpdus
