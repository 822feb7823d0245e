"""Zoom Connect analyse/*: every answer agrees with the SMS-SUBMIT PDUs the outbox builds for the
same text (parts, alphabet, length read back from each PDU's TP-UDL), at the 160/153 and 70/67
boundaries, for GSM-7, its extension table, national-language characters and emoji."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.service import GatewayService
from gateway.store import Store
from modem.pdu import Alphabet, SmsSubmit, build_submits
from tests.api.test_zoomconnect import World, build_world, run, zc

RECIPIENT = "+27825551234"
ENCODING = {Alphabet.GSM7: "GSM7", Alphabet.UCS2: "UNICODE"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("analyseworld"))


@dataclass(frozen=True)
class Wire:
    """What the PDUs of a text carry, read from their bytes."""

    parts: int
    encoding: str
    length: int  # septets (GSM-7) or UTF-16 code units (UCS-2) of text, headers excluded
    texts: tuple[str, ...]


def on_the_wire(text: str) -> Wire:
    """Build the submits exactly as Outbox.send_message does and measure their encodings."""
    submits = build_submits(RECIPIENT, text, reference=1, status_report=True)
    length = 0
    texts = []
    for submit in submits:
        tpdu = submit.encode()
        da_digits = tpdu[2]
        pos = 2 + 2 + (da_digits + 1) // 2 + 2  # first, MR, DA (length, type, digits), PID, DCS
        assert tpdu[0] & 0x18 == 0  # no validity period field
        udl = tpdu[pos]
        header = tpdu[pos + 1] + 1 if tpdu[0] & 0x40 else 0
        if submit.dcs.alphabet is Alphabet.GSM7:
            length += udl - math.ceil(header * 8 / 7)
        else:
            length += (udl - header) // 2
        decoded = SmsSubmit.decode(tpdu)
        assert decoded.user_data.text is not None
        texts.append(decoded.user_data.text)
    alphabets = {s.dcs.alphabet for s in submits}
    assert len(alphabets) == 1
    return Wire(len(submits), ENCODING[alphabets.pop()], length, tuple(texts))


CASES = [
    # GSM-7: 160 in one part, 153 per part when concatenated.
    ("gsm7-160", "a" * 160, 1, "GSM7"),
    ("gsm7-161", "a" * 161, 2, "GSM7"),
    ("gsm7-306", "a" * 306, 2, "GSM7"),
    ("gsm7-307", "a" * 307, 3, "GSM7"),
    # Extension table: each of €[]{}^~|\ is an escape plus a septet.
    ("ext-80", "€" * 80, 1, "GSM7"),
    ("ext-80+1", "€" * 80 + "a", 2, "GSM7"),
    ("ext-159+1", "a" * 159 + "€", 2, "GSM7"),
    ("ext-torn", "a" * 152 + "€" + "a" * 10, 2, "GSM7"),  # the pair is not split at 153
    ("ext-mix", "{[~|^]}\\" * 19, 2, "GSM7"),  # 304 septets: 153 + 151
    # National-language characters (Turkish, Spanish, Portuguese shift tables): the sender uses
    # the default alphabet only, so they go as UCS-2, 70 in one part and 67 per part.
    ("national-70", "ş" * 70, 1, "UNICODE"),
    ("national-71", "ş" * 71, 2, "UNICODE"),
    ("national-134", "ğ" * 134, 2, "UNICODE"),
    ("national-135", "á" * 135, 3, "UNICODE"),
    ("national-mixed", "Olá, ação " * 7, 1, "UNICODE"),
    # Emoji: two UTF-16 code units each, and a pair is never split.
    ("emoji-35", "😀" * 35, 1, "UNICODE"),
    ("emoji-35+1", "😀" * 35 + "a", 2, "UNICODE"),
    ("emoji-torn", "a" * 66 + "😀" + "b" * 5, 2, "UNICODE"),
    ("emoji-67", "a" * 65 + "😀" + "b" * 67, 2, "UNICODE"),
    ("emoji-68", "a" * 65 + "😀" + "b" * 68, 3, "UNICODE"),
]


@pytest.mark.parametrize(("name", "text", "parts", "encoding"), CASES, ids=[c[0] for c in CASES])
def test_analyse_agrees_with_what_is_sent(
    world: World, tmp_path: Path, name: str, text: str, parts: int, encoding: str
) -> None:
    wire = on_the_wire(text)
    assert (wire.parts, wire.encoding) == (parts, encoding)  # the case is what it says
    assert "".join(wire.texts) == text

    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        body = {"message": text, "recipientNumber": RECIPIENT}

        async def ask(call: str) -> Any:
            status, answer = await zc(client, "POST", f"messages/analyse/{call}", body,
                                      token=world.token)  # fmt: skip
            assert status == 200, answer
            return answer

        full = await ask("full")
        assert full == {
            "messageEncoding": wire.encoding,
            "messageLength": wire.length,
            "numberOfMessages": wire.parts,
            "messageCreditCost": float(wire.parts),
            "messageLengthWithinMaximumAllowed": True,
            "characterAnalysis": [list(t) for t in wire.texts],
        }
        assert await ask("message-encoding") == wire.encoding
        assert await ask("message-length") == wire.length
        assert await ask("number-of-messages") == wire.parts
        assert await ask("message-credit-cost") == float(wire.parts)
        assert await ask("message-length-within-max-allowed") is True
        # ... and sending it stores and charges exactly that.
        status, sent = await zc(client, "POST", "sms/send", body, token=world.token)
        assert status == 200
        row = store.message(int(sent["messageId"]) // 2)
        assert (row["units"], len(store.parts(row["id"]))) == (wire.parts, wire.parts)
        assert {"gsm7": "GSM7", "ucs2": "UNICODE"}[row["encoding"]] == wire.encoding
        _, balance = await zc(client, "GET", "account/balance", token=world.token)
        assert balance["creditBalance"] == 100.0 - wire.parts

    run(world, tmp_path, scenario)
