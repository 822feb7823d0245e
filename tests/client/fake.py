"""A scripted fake modem behind a fake transport: answers commands from rules, splits and delays
its output over loop iterations (never wall-clock time), can drop answers, echo, and inject URCs."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from modem.pdu import Address, SmsDeliver, SmsStatusReport, UserData, encode_pdu
from modem.pdu.dcs import DataCodingScheme

Reply = bytes | str | Callable[[re.Match[str]], bytes | str | None] | None
PROMPT = "<PROMPT>"


def lines(*texts: str) -> str:
    """V.250 framing: each line as CR LF text CR LF."""
    return "".join(f"\r\n{t}\r\n" for t in texts)


OK = lines("OK")
ERROR = lines("ERROR")


def deliver_pdu(text: str, sender: str = "+4915112345678") -> str:
    """Hex of an SMS-DELIVER with an SMSC field, as +CMGR/+CMGL/+CMT show it."""
    from datetime import UTC, datetime

    tpdu = SmsDeliver(
        originator=Address.parse(sender),
        scts=datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
        user_data=UserData(text=text),
        dcs=DataCodingScheme(0),
    )
    return encode_pdu(tpdu, Address.parse("+4917000000")).hex


def report_pdu(mr: int, status: int = 0, recipient: str = "+4915199999999") -> str:
    """Hex of an SMS-STATUS-REPORT with an SMSC field."""
    from datetime import UTC, datetime

    when = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    tpdu = SmsStatusReport(
        message_reference=mr,
        recipient=Address.parse(recipient),
        scts=when,
        discharge_time=when,
        status=status,
    )
    return encode_pdu(tpdu, Address.parse("+4917000000")).hex


@dataclass
class FakeModem:
    """A generic modem; override answers with `on(pattern, reply)` (latest rule wins)."""

    seed: int = 0
    split: bool = True  # deliver answers in random chunks, one per loop iteration
    echo: bool = False
    prompt: str = "\r\n> "
    manufacturer: str = "FakeCom"
    model: str = "FM-1"
    storages: dict[str, dict[int, tuple[int, str]]] = field(
        default_factory=lambda: {"SM": {}, "ME": {}, "SR": {}}
    )
    cnmi: str = "0,0,0,0,0"
    concat: bool = True  # accepts "AT+CPMS=..;+CMGR=n" (V.250 concatenation)
    next_mr: int = 10
    csms_service: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.rules: list[tuple[re.Pattern[str], Reply]] = []
        self.written: list[str] = []  # command lines, bodies ("<body>") and "<ESC>"
        self.submitted: list[str] = []
        self.hung = False
        self.drop_next: set[str] = set()  # command prefixes whose next answer is swallowed
        self.mem1 = "SM"
        self.transport: FakeTransport | None = None
        self._in_body = False
        self._buf = ""
        self._install_defaults()

    # --- scripting -------------------------------------------------------------------------------

    def on(self, pattern: str, reply: Reply) -> None:
        """Answer commands matching `pattern` (full match, after "AT") with `reply`."""
        self.rules.insert(0, (re.compile(pattern, re.IGNORECASE), reply))

    def send(self, data: bytes | str) -> None:
        """Unsolicited output (URCs, garbage)."""
        if self.transport is not None:
            self.transport.deliver(data.encode() if isinstance(data, str) else data)

    def commands(self) -> list[str]:
        """Command lines written so far (no bodies/escapes)."""
        return [w for w in self.written if w.upper().startswith("AT")]

    def _install_defaults(self) -> None:
        self.on(r"|E0|E1|\+CMEE=\d|\+CSCS=.*|\+CMGF=0|\+COPS=3,0|\^CURC=0|\+CNMA", OK)
        self.on(r"\+CGMI", lambda m: lines(self.manufacturer, "OK"))
        self.on(r"\+CGMM", lambda m: lines(self.model, "OK"))
        self.on(r"\+CGMR", lines("1.0", "OK"))
        self.on(r"\+CGSN", lines("356938035643809", "OK"))
        self.on(r"\+CIMI", lines("262011234567890", "OK"))
        self.on(r"\+CCID", lines('+CCID: "89490200001234567890"', "OK"))
        self.on(r"\+CNUM", OK)
        self.on(r"\+CPIN\?", lines("+CPIN: READY", "OK"))
        self.on(r"\+CMEE\?", lines("+CMEE: 1", "OK"))
        self.on(r"\+CSQ", lines("+CSQ: 20,0", "OK"))
        self.on(r"\+CREG\?", lines('+CREG: 0,1,"5E25","605F"', "OK"))
        self.on(r"\+COPS\?", lines('+COPS: 0,0,"Fake Net",7', "OK"))
        self.on(r"\+CSCA\?", lines('+CSCA: "+4917000000",145', "OK"))
        self.on(r"\+CSMS\?", lambda m: lines(f"+CSMS: {self.csms_service},1,1,1", "OK"))
        self.on(r"\+CPMS=(.*)", self._cpms)
        self.on(
            r"\+CPMS=\?", lines('+CPMS: ("SM","ME","SR"),("SM","ME","SR"),("SM","ME","SR")', "OK")
        )
        self.on(r"\+CPMS\?", lines('+CPMS: "SM",0,30,"SM",0,30,"SM",0,30', "OK"))
        self.on(r"\+CNMI=\?", lines("+CNMI: (0-3),(0-3),(0,2),(0-2),(0,1)", "OK"))
        self.on(r"\+CNMI=([\d,]+)", self._set_cnmi)
        self.on(r"\+CNMI\?", lambda m: lines(f"+CNMI: {self.cnmi}", "OK"))
        self.on(r"\+CMGL=4", self._cmgl)
        self.on(r"\+CMGR=(\d+)", self._cmgr)
        self.on(r"\+CMGD=(\d+)", self._cmgd)
        self.on(r"\+CMGS=\d+", PROMPT)
        self.on(r"\+CUSD=1,.*", lambda m: OK + lines('+CUSD: 0,"Balance 1.00 EUR",15'))
        self.on(r"\+CUSD=2", OK)

    def _cpms(self, m: re.Match[str]) -> str:
        names = [n.strip('"') for n in m.group(1).split(",")]
        if names[0] not in self.storages:
            return ERROR
        self.mem1 = names[0]
        return lines("+CPMS: 0,30,0,30,0,30", "OK")

    def _set_cnmi(self, m: re.Match[str]) -> str:
        self.cnmi = m.group(1)
        return OK

    def _cmgl(self, m: re.Match[str]) -> str:
        out = []
        for index, (stat, pdu) in sorted(self.storages[self.mem1].items()):
            out += [f"+CMGL: {index},{stat},,{len(pdu) // 2 - 1}", pdu]
        return lines(*out, "OK")

    def _cmgr(self, m: re.Match[str]) -> str:
        entry = self.storages[self.mem1].get(int(m.group(1)))
        if entry is None:
            return OK
        stat, pdu = entry
        return lines(f"+CMGR: {stat},,{len(pdu) // 2 - 1}", pdu, "OK")

    def _cmgd(self, m: re.Match[str]) -> str:
        self.storages[self.mem1].pop(int(m.group(1)), None)
        return OK

    def submit_ok(self, body: str) -> str:
        """Default answer to a PDU: the next TP-MR."""
        mr = self.next_mr
        self.next_mr = (self.next_mr + 1) % 256
        return lines(f"+CMGS: {mr}", "OK")

    # --- the wire --------------------------------------------------------------------------------

    def received(self, data: bytes) -> None:
        for ch in data.decode("ascii", "replace"):
            if ch == "\x1b":
                self.written.append("<ESC>")
                self._buf = ""
                self._in_body = False
            elif self._in_body and ch == "\x1a":
                body, self._buf, self._in_body = self._buf, "", False
                self.written.append(f"<{body}>")
                self.submitted.append(body)
                if not self.hung:
                    self._answer_body(body)
            elif ch == "\r" and not self._in_body:
                line, self._buf = self._buf.strip(), ""
                if line:
                    self.written.append(line)
                    if not self.hung:
                        self._answer(line)
            else:
                self._buf += ch

    def _answer_body(self, body: str) -> None:
        reply = self.body_reply(body)
        if reply:
            self.send(reply)

    def body_reply(self, body: str) -> str | None:
        """Override point: what the modem answers to a PDU (default: +CMGS: <mr> OK)."""
        return self.submit_ok(body)

    def _answer(self, line: str) -> None:
        if self.echo:
            self.send(line + "\r\r\n")
        text = line[2:] if line[:2].upper() == "AT" else line
        for prefix in list(self.drop_next):
            if text.upper().startswith(prefix.upper()):
                self.drop_next.discard(prefix)
                return
        if ";" in text:
            self._answer_concatenated(text.split(";"))
            return
        self._answer_one(text)

    def _answer_concatenated(self, parts: list[str]) -> None:
        if not self.concat:
            self.send(ERROR)
            return
        out = ""
        for n, part in enumerate(parts):
            reply = self._reply(part)
            if reply is None or reply == PROMPT:
                self.send(ERROR)
                return
            if not reply.endswith(OK):
                self.send(out + reply)  # an error ends the line
                return
            out += reply if n == len(parts) - 1 else reply[: -len(OK)]
        self.send(out)

    def _reply(self, text: str) -> str | None:
        for pattern, reply in self.rules:
            m = pattern.fullmatch(text)
            if m is not None:
                out = reply(m) if callable(reply) else reply
                return out.decode() if isinstance(out, bytes) else out
        return ERROR

    def _answer_one(self, text: str) -> None:
        for pattern, reply in self.rules:
            m = pattern.fullmatch(text)
            if m is None:
                continue
            out = reply(m) if callable(reply) else reply
            if out == PROMPT:
                self._in_body = True
                self.send(self.prompt)
            elif out:
                self.send(out)
            return
        self.send(ERROR)


class FakeTransport:
    """ByteTransport stand-in: writes go to the FakeModem, its output arrives via call_soon."""

    def __init__(
        self,
        modem: FakeModem,
        on_data: Callable[[bytes], None],
        on_lost: Callable[[Exception | None], None],
    ) -> None:
        self.modem = modem
        self._on_data = on_data
        self._on_lost = on_lost
        self._closing = False
        self._closed = asyncio.get_running_loop().create_future()
        self._queue: list[bytes] = []
        self._scheduled = False
        modem.transport = self

    def write(self, data: bytes) -> None:
        assert not self._closing, "write after close"
        self.modem.received(data)

    def deliver(self, data: bytes) -> None:
        """Queue modem output; split into random chunks, one chunk per loop iteration."""
        if self.modem.split:
            i = 0
            while i < len(data):
                n = self.modem.rng.randint(1, 16)
                self._queue.append(data[i : i + n])
                i += n
        else:
            self._queue.append(data)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._pump)

    def _pump(self) -> None:
        self._scheduled = False
        if self._closing or not self._queue:
            return
        chunk = self._queue.pop(0)
        self._on_data(chunk)
        if self._queue and not self._closing:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._pump)

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._queue.clear()

        def lost() -> None:
            self._closed.set_result(None)
            self._on_lost(None)

        asyncio.get_running_loop().call_soon(lost)

    def unplug(self) -> None:
        """The device vanished: the port reports loss."""
        self.close()

    async def wait_closed(self) -> None:
        self.close()
        await self._closed

    @property
    def is_closing(self) -> bool:
        return self._closing


def factory(modem: FakeModem) -> Callable[..., object]:
    """A ModemClient transport_factory for `modem`."""

    async def make(
        on_data: Callable[[bytes], None], on_lost: Callable[[Exception | None], None]
    ) -> FakeTransport:
        return FakeTransport(modem, on_data, on_lost)

    return make
