"""An emulated modem: an AT command interpreter (ModemCore) and its PTY (EmulatedModem).

`ModemCore` is the modem's firmware: bytes in through `feed()`, bytes out through the `write`
callback, time through the injected scheduler. `EmulatedModem` puts it on a pseudo-terminal
(`os.openpty`) driven by an asyncio loop, so a client opens `/dev/pts/N` like a USB modem.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import os
import random
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from modem.emulator.clock import Handle, Scheduler
from modem.emulator.faults import Fault, FaultState
from modem.emulator.network import Network, SimCard, SimIdentity, SubmitRejectedError
from modem.emulator.personalities import GENERIC, Answer, Personality
from modem.emulator.sms import message_class

CTRL_Z = 0x1A
ESC = 0x1B
_HEXDIGITS = frozenset(b"0123456789abcdefABCDEF")

# TS 27.007 9.2 +CME ERROR texts used with AT+CMEE=2.
CME_TEXT = {
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    14: "SIM busy",
    16: "incorrect password",
    21: "invalid index",
    24: "text string too long",
    30: "no network service",
    50: "incorrect parameters",
    100: "unknown",
    515: "please wait, init or command processing in progress",
}
# SMS commands (TS 27.005) answer +CMS ERROR; SIMCom rejects them until "SMS Ready".
_SMS_COMMANDS = frozenset(
    {"+CMGF", "+CPMS", "+CMGS", "+CMGL", "+CMGR", "+CMGD", "+CMGW", "+CMSS", "+CNMI", "+CSCA"}
    | {"+CSMP", "+CSMS", "+CNMA"}
)
# Commands that need the SIM unlocked (TS 27.007 8.3).
_SIM_COMMANDS = _SMS_COMMANDS | {"+CIMI", "+CNUM", "+CUSD", "+COPS"}
_CMGL_STAT_TEXT = ("REC UNREAD", "REC READ", "STO UNSENT", "STO SENT", "ALL")


class AtError(Exception):
    """Base for errors that end a command line."""


class CmeError(AtError):
    """+CME ERROR: <code> (TS 27.007 9.2)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class CmsError(AtError):
    """+CMS ERROR: <code> (TS 27.005 3.2.5)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class PlainError(AtError):
    """A bare ERROR whatever +CMEE says (unknown command, SMS not ready)."""


class UnsupportedError(AtError):
    """An unknown command: the personality's final code (ERROR / COMMAND NOT SUPPORT)."""


class _Stored:
    __slots__ = ("hex", "length", "stat")

    def __init__(self, stat: int, hexpdu: str, length: int) -> None:
        self.stat = stat
        self.hex = hexpdu
        self.length = length


class Storage:
    """One message memory (TS 27.005 <mem>) with fixed capacity and a first index."""

    def __init__(self, name: str, capacity: int, base: int) -> None:
        self.name = name
        self.capacity = capacity
        self.base = base
        self.slots: dict[int, _Stored] = {}
        self.clamp: int | None = None  # the storage-full fault: "capacity" frozen at this count

    def used(self) -> int:
        """Messages stored."""
        return len(self.slots)

    def is_full(self) -> bool:
        """No free slot (or the storage-full fault is on)."""
        limit = self.capacity if self.clamp is None else min(self.clamp, self.capacity)
        return len(self.slots) >= limit

    def valid(self, index: int) -> bool:
        """Is the index inside this storage?"""
        return self.base <= index < self.base + self.capacity

    def put(self, stat: int, hexpdu: str, length: int) -> int | None:
        """Store at the lowest free index; None when full."""
        if self.is_full():
            return None
        for i in range(self.base, self.base + self.capacity):
            if i not in self.slots:
                self.slots[i] = _Stored(stat, hexpdu, length)
                return i
        return None

    def get(self, index: int) -> _Stored | None:
        """The message at index, if any."""
        return self.slots.get(index)

    def place(self, index: int, stat: int, hexpdu: str) -> None:
        """Put a PDU (SMSC field included, as +CMGR shows it) at a given index (test set-up)."""
        if not self.valid(index):
            raise ValueError(f"index {index} outside {self.name}")
        pdu = bytes.fromhex(hexpdu)
        self.slots[index] = _Stored(stat, hexpdu.upper(), len(pdu) - 1 - pdu[0])

    def delete(self, index: int) -> None:
        """Free the slot."""
        self.slots.pop(index, None)

    def items(self) -> list[tuple[int, _Stored]]:
        """Stored messages in index order."""
        return sorted(self.slots.items())


class MtStorage(Storage):
    """'MT': SM and ME seen as one memory, SM indexes first (TS 27.005 3.2.2)."""

    def __init__(self, sm: Storage, me: Storage, base: int) -> None:
        super().__init__("MT", sm.capacity + me.capacity, base)
        self.sm = sm
        self.me = me

    def _locate(self, index: int) -> tuple[Storage, int]:
        if index < self.base + self.sm.capacity:
            return self.sm, index
        return self.me, index - self.sm.capacity

    def used(self) -> int:
        return self.sm.used() + self.me.used()

    def is_full(self) -> bool:
        return self.sm.is_full() and self.me.is_full()

    def put(self, stat: int, hexpdu: str, length: int) -> int | None:
        i = self.sm.put(stat, hexpdu, length)
        if i is not None:
            return i
        j = self.me.put(stat, hexpdu, length)
        return None if j is None else j + self.sm.capacity

    def get(self, index: int) -> _Stored | None:
        store, local = self._locate(index)
        return store.get(local)

    def delete(self, index: int) -> None:
        store, local = self._locate(index)
        store.delete(local)

    def items(self) -> list[tuple[int, _Stored]]:
        me = [(i + self.sm.capacity, s) for i, s in self.me.items()]
        return self.sm.items() + me


@dataclass(frozen=True)
class ModemInfo:
    """What a test or the CLI needs to know about one emulated modem."""

    index: int
    path: str
    personality: str
    msisdn: str
    imsi: str
    iccid: str
    imei: str


def _split_command_line(body: str) -> Iterator[tuple[str, str, str]]:
    """Split what follows 'AT' into (name, kind, args): kind exec|read|test|set."""
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c in "; ":
            i += 1
            continue
        if c in "+^$%*":
            j = i + 1
            while j < n and (body[j].isalnum() or body[j] in "_-"):
                j += 1
            name = body[i:j].upper()
            if body.startswith("=?", j):
                yield name, "test", ""
                i = j + 2
            elif body.startswith("?", j):
                yield name, "read", ""
                i = j + 1
            elif body.startswith("=", j):
                k, quoted = j + 1, False
                while k < n and (quoted or body[k] != ";"):
                    if body[k] == '"':
                        quoted = not quoted
                    k += 1
                yield name, "set", body[j + 1 : k]
                i = k
            else:
                yield name, "exec", ""
                i = j
            continue
        if c in "Dd":  # dial: the rest of the line is the dial string
            yield "D", "set", body[i + 1 :]
            return
        if c == "&" and i + 1 < n:
            name, j = "&" + body[i + 1].upper(), i + 2
        else:
            name, j = c.upper(), i + 1
        if name == "S":  # S-register: Sn=v or Sn?
            k = j
            while k < n and body[k].isdigit():
                k += 1
            name, j = "S" + body[j:k], k
            if body.startswith("=", j):
                k = j + 1
                while k < n and body[k].isdigit():
                    k += 1
                yield name, "set", body[j + 1 : k]
                i = k
                continue
            if body.startswith("?", j):
                yield name, "read", ""
                i = j + 1
                continue
        k = j
        while k < n and body[k].isdigit():
            k += 1
        yield name, "exec" if k == j else "set", body[j:k]
        i = k


def _params(args: str) -> list[str]:
    """Comma-separated parameters with quotes removed ('"SM", 1' -> ['SM', '1'])."""
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in args:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return out


def _int(value: str, allowed: range | tuple[int, ...] | None = None, code: int = 50) -> int:
    try:
        v = int(value)
    except ValueError:
        raise CmeError(code) from None
    if allowed is not None and v not in allowed:
        raise CmeError(code)
    return v


class ModemCore:
    """The firmware of one emulated modem: AT in, answers and URCs out. Loop-thread only."""

    def __init__(
        self,
        *,
        network: Network,
        sim: SimCard,
        personality: Personality = GENERIC,
        scheduler: Scheduler,
        write: Callable[[bytes], None],
        rng_seed: str = "0",
    ) -> None:
        self.network = network
        self.sim = sim
        self.p = personality
        self.scheduler = scheduler
        self._write = write
        self.imei = sim.identity.imei
        self.faults = FaultState()
        self.fault_rng = random.Random(f"{rng_seed}:faults")
        self.noise_rng = random.Random(f"{rng_seed}:noise")
        base = personality.index_base
        self.storages: dict[str, Storage] = {
            name: Storage(name, cap, base) for name, cap in personality.storages.items()
        }
        if personality.has_mt and "SM" in self.storages and "ME" in self.storages:
            self.storages["MT"] = MtStorage(self.storages["SM"], self.storages["ME"], base)
        self._out: list[bytes] = []
        self._inbuf = b""
        self._pending_input = b""
        self._prompt: str | None = None
        self._prompt_buf: list[bytes] = []
        self._prompt_len = 0
        self._prompt_dest = ""
        self._busy = False
        self._reserved_urcs: list[bytes] = []
        self._mode0_urcs: list[bytes] = []
        self._inject_answer: list[str] = []
        self._inject_prompt: list[str] = []
        self._ack_pending: list[tuple[str, bytes]] = []  # (kind, tpdu) sent and awaiting +CNMA
        self._ack_timer: Handle | None = None
        self._noise_timer: Handle | None = None
        self._boot_timers: list[Handle] = []
        self._busy_left = 0
        self._sim_busy_until = 0.0
        self._generation = 0  # power cycles: work scheduled before one is dropped after it
        self.powered = False
        self.sms_ready = False
        self.registered_stat = 0
        self.pin_state = "READY"
        self.noise_enabled = False
        self.ussd_mode = personality.ussd_mode_default
        self.sent = 0
        self.received = 0
        self.bytes_in = 0  # everything the host wrote, even while hung (tests wait on it)
        self._reset_settings()

    # -- power and settings ---------------------------------------------------------------------
    def _reset_settings(self) -> None:
        """Power-up / AT&F values: echo on, like real modems (quirk 1)."""
        self.echo = True
        self.cmee = 0
        self.cmgf = 0
        self.cscs = "GSM"
        self.csca = self.network.smsc
        self.csmp = "17,167,0,0"
        self.csms = 0
        self.cpms = list(self.p.cpms_default)
        self.cnmi = list(self.p.cnmi_default)
        self.creg_n = 0
        self.cfun = 1
        self.ussd_mode = self.p.ussd_mode_default

    def power_on(self) -> None:
        """Boot: settings to defaults, SIM locked if its PIN is enabled, boot URCs on the clock."""
        self.powered = True
        self._generation += 1
        self._reset_settings()
        self._prompt = None
        self._busy = False
        self._inbuf = b""
        self._pending_input = b""
        self._reserved_urcs.clear()
        self._mode0_urcs.clear()
        # Unacknowledged +CMT/+CDS were never confirmed to the SMSC: a real one sends them again
        # (so the host may see a duplicate). Off by default: Network.resend_unacknowledged.
        if self.network.resend_unacknowledged:
            for kind, tpdu in reversed(self._ack_pending):
                self.network.hold(self.sim.identity.msisdn, kind, tpdu)
        self._ack_pending.clear()
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        self.pin_state = self._sim_lock_state()
        self.sms_ready = not self.p.sms_ready_gate
        self._sim_busy_until = self.scheduler.now() + self.p.sim_busy_seconds
        self.set_noise(bool(self.p.noise))
        for h in self._boot_timers:
            h.cancel()
        self._boot_timers = []
        delay = 0.0
        steps = self.p.boot_urcs
        for n, (gap, line) in enumerate(steps):
            delay += gap
            step = functools.partial(self._boot_step, line, n == len(steps) - 1)
            self._boot_timers.append(self.scheduler.call_later(delay, step))
        self._update_registration()

    def power_off(self) -> None:
        """Lose power (unplug): nothing answers, the network holds messages."""
        self.powered = False
        for h in self._boot_timers:
            h.cancel()
        self._boot_timers = []
        self.set_noise(False)
        self.registered_stat = 0

    def reboot(self) -> None:
        """A spontaneous reset: boot URCs arrive mid-session and every setting is lost."""
        self.power_off()
        self.power_on()

    def _sim_lock_state(self) -> str:
        if self.sim.puk_attempts_left <= 0:
            return "BLOCKED"
        if self.sim.pin_attempts_left <= 0:
            return "SIM PUK"
        return "SIM PIN" if self.sim.pin_enabled else "READY"

    def _boot_step(self, line: str, last: bool) -> None:
        if not self.powered:
            return
        if line == "+CPIN: READY" and self.pin_state != "READY":
            line = f"+CPIN: {self.pin_state}"
        self._urc(line)
        if last:
            self.sms_ready = True
        self._flush()

    def set_noise(self, on: bool) -> None:
        """Switch the personality's idle URCs (Huawei ^RSSI/^MODE..., ZTE +ZUSIMR) on or off."""
        self.noise_enabled = on and bool(self.p.noise)
        if self._noise_timer is not None:
            self._noise_timer.cancel()
            self._noise_timer = None
        if self.noise_enabled:
            self._noise_timer = self.scheduler.call_later(self.p.noise_interval, self._noise_tick)

    def _noise_tick(self) -> None:
        self._noise_timer = None
        if not (self.noise_enabled and self.powered):
            return
        self._urc(self.noise_rng.choice(self.p.noise))
        self._flush()
        self._noise_timer = self.scheduler.call_later(self.p.noise_interval, self._noise_tick)

    # -- registration ---------------------------------------------------------------------------
    def _update_registration(self) -> None:
        if not self.powered or self.cfun != 1 or self.pin_state != "READY":
            stat = 0
        elif self.faults.deregistered_stat is not None:
            stat = self.faults.deregistered_stat
        else:
            stat = 1
        if stat != self.registered_stat:
            self.registered_stat = stat
            if self.creg_n >= 1 and self.powered:
                self.urc_soon(self._creg_line(unsolicited=True))  # after the command's OK
            if stat in (1, 5):
                self.scheduler.call_later(0, lambda: self.network.retry(self.sim.identity.msisdn))

    @property
    def ready(self) -> bool:
        """Booted: SMS commands work ("SMS Ready" seen) and the SIM is no longer busy."""
        return self.powered and self.sms_ready and self.scheduler.now() >= self._sim_busy_until

    @property
    def registered(self) -> bool:
        """Home (1) or roaming (5)."""
        return self.registered_stat in (1, 5)

    def _creg_line(self, unsolicited: bool = False) -> str:
        stat = self.registered_stat
        loc = ',"00A1","0000B2C3"' if self.creg_n == 2 and stat in (1, 5) else ""
        if unsolicited:
            return f"+CREG: {stat}{loc}"
        return f"+CREG: {self.creg_n},{stat}{loc}"

    # -- output ---------------------------------------------------------------------------------
    def _flush(self) -> None:
        if not self._out:
            return
        data = b"".join(self._out)
        self._out.clear()
        if self.faults.hang or not self.powered:
            return
        self._write(data)

    def _urc(self, line: str) -> None:
        """An unsolicited line, sent now (not an SMS indication: those go through _indicate)."""
        prefix = self.p.urc_prefix if line.startswith("^") else b"\r\n"
        self._out.append(prefix + line.encode("latin-1") + b"\r\n")

    def _indicate(self, text: str) -> None:
        """An SMS indication (+CMTI/+CMT/+CDS/+CDSI), routed per +CNMI <mode> (TS 27.005 3.4.1)."""
        data = b"\r\n" + text.encode("latin-1") + b"\r\n"
        mode = self.cnmi[0]
        if mode == 0:
            self._mode0_urcs.append(data)
        elif self._prompt is not None or self._busy:
            if mode == 3:
                self._out.append(data)  # in-band: may land inside an AT+CMGS exchange
            elif mode == 2:
                self._reserved_urcs.append(data)
            # mode 1: discarded while the link is reserved (the message itself is stored)
        else:
            self._out.append(data)

    def inject_urc(self, line: str, where: str = "now") -> None:
        """A URC: 'now', inside the next 'answer', or right after the next 'cmgs' prompt."""
        if where == "now":
            self._urc(line)
            self._flush()
        elif where == "answer":
            self._inject_answer.append(line)
        elif where == "cmgs":
            self._inject_prompt.append(line)
        else:
            raise ValueError(f"where must be now, answer or cmgs, not {where!r}")

    def urc_soon(self, line: str) -> None:
        """A URC right after the current answer (+CUSD follows the OK of AT+CUSD)."""

        def send() -> None:
            self._urc(line)
            self._flush()

        self.scheduler.call_later(0, send)

    def inject_garbage(self, data: bytes) -> None:
        """Raw bytes on the line, now."""
        self._out.append(data)
        self._flush()

    def _garbage(self) -> None:
        f = self.faults
        if f.garbage_rate and self.fault_rng.random() < f.garbage_rate:
            junk = bytes(self.fault_rng.choice(_GARBAGE_ALPHABET) for _ in range(f.garbage_length))
            self._out.append(junk)

    def _mid_urc(self) -> str | None:
        if self._inject_answer:
            return self._inject_answer.pop(0)
        f = self.faults
        if f.urc_rate and self.fault_rng.random() < f.urc_rate:
            return f.urc_line
        return None

    def _answer(self, lines: list[str], final: str | None) -> None:
        self._garbage()
        out = self._out
        mid = self._mid_urc() if (self._inject_answer or self.faults.urc_rate) else None
        if lines:
            if mid is not None:
                out.append(b"\r\n" + lines[0].encode("latin-1") + b"\r\n")
                out.append(self.p.urc_prefix + mid.encode("latin-1") + b"\r\n")
                rest = lines[1:]
                if rest:
                    out.append(b"\r\n".join(x.encode("latin-1") for x in rest) + b"\r\n")
            else:
                out.append(b"\r\n" + "\r\n".join(lines).encode("latin-1") + b"\r\n")
        elif mid is not None:
            out.append(self.p.urc_prefix + mid.encode("latin-1") + b"\r\n")
        if final is not None:
            out.append(b"\r\n" + final.encode("latin-1") + b"\r\n")
        if self._reserved_urcs and self._prompt is None and not self._busy:
            out.extend(self._reserved_urcs)
            self._reserved_urcs.clear()

    def _error_text(self, exc: AtError) -> str:
        if isinstance(exc, CmeError):
            if self.cmee == 0:
                return "ERROR"
            if self.cmee == 2:
                return f"+CME ERROR: {CME_TEXT.get(exc.code, exc.code)}"
            return f"+CME ERROR: {exc.code}"
        if isinstance(exc, CmsError):
            return "ERROR" if self.cmee == 0 else f"+CMS ERROR: {exc.code}"
        if isinstance(exc, UnsupportedError):
            return self.p.unsupported
        return "ERROR"

    # -- input ----------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Bytes from the host."""
        self.bytes_in += len(data)
        if not self.powered or self.faults.hang:
            return
        if self._busy:
            self._pending_input += data
            return
        buf = self._inbuf + data if self._inbuf else data
        while buf:
            if self._prompt is not None:
                cut = -1
                for term in (CTRL_Z, ESC):
                    k = buf.find(term)
                    if k >= 0 and (cut < 0 or k < cut):
                        cut = k
                if cut < 0:
                    self._prompt_buf.append(buf)
                    if self.echo:
                        self._out.append(buf)
                    buf = b""
                    break
                chunk = buf[:cut]
                if self.echo and chunk:
                    self._out.append(chunk)
                self._prompt_buf.append(chunk)
                term = buf[cut]
                buf = buf[cut + 1 :]
                self._end_prompt(term)
                if self._is_busy():
                    self._pending_input = buf
                    buf = b""
                    break
                continue
            k = buf.find(b"\r")
            if k < 0:
                break
            line = buf[:k]
            buf = buf[k + 1 :]
            self._line(line)
            if self._is_busy():
                self._pending_input = buf
                buf = b""
                break
        self._inbuf = buf
        if len(self._inbuf) > 4096:  # runaway garbage without CR: drop it like a small UART buffer
            self._inbuf = b""
        self._flush()

    def _is_busy(self) -> bool:
        return self._busy  # a call, so mypy does not narrow it away across _line()/_end_prompt()

    def _line(self, raw: bytes) -> None:
        raw = raw.lstrip(b"\n\x00 ")
        if not raw:
            return
        if self.echo:
            self._out.append(raw + b"\r")
        if raw[:2] not in (b"AT", b"at", b"At", b"aT"):
            return  # real modems ignore lines that do not start with AT
        text = raw[2:].decode("latin-1")
        lines: list[str] = []
        final: str | None = "OK"
        try:
            for name, kind, args in _split_command_line(text):
                if self._busy_left and name not in ("E", "+CMEE"):
                    self._busy_left -= 1
                    raise CmeError(515)
                answer = self._execute(name, kind, args)
                if self._prompt is not None or self._busy or answer is _SENT:
                    return  # AT+CMGS/+CMGW: the answer comes after the PDU (or later)
                lines.extend(answer[0])
                final = answer[1]
                if final is None or final != "OK":
                    break
        except AtError as exc:
            final = self._error_text(exc)
        except (ValueError, IndexError, KeyError, UnicodeError):
            # Malformed parameters a handler did not anticipate: answer like firmware does,
            # never let one bad line take the modem (or the loop) down.
            final = "ERROR"
        self._answer(lines, final)

    def _execute(self, name: str, kind: str, args: str) -> Answer:
        hook = self.p.hooks.get(name)
        if hook is not None:
            result = hook(self, kind, args)
            if result is not None:
                return result
        if name in self.p.iccid_commands:
            self._need_sim_present()
            return ((self.p.iccid_commands[name].format(iccid=self.sim.identity.iccid),), "OK")
        handler = _HANDLERS.get(name)
        if handler is None:
            if self.p.unknown_cme is not None:
                raise CmeError(self.p.unknown_cme)
            raise UnsupportedError()
        if name in _SIM_COMMANDS:
            if self.p.sms_ready_gate and not self.sms_ready and name in _SMS_COMMANDS:
                raise PlainError()  # SIM800L before "SMS Ready" (simcom-sim800.txt)
            if self.pin_state != "READY":
                self._need_pin(sms=name in _SMS_COMMANDS)
            if self.scheduler.now() < self._sim_busy_until:
                raise CmeError(14)  # SIM busy just after boot (quirk 11): hosts retry
        return handler(self, kind, args)

    def _need_sim_present(self) -> None:
        if self.pin_state == "BLOCKED":
            raise CmeError(13)

    def _need_pin(self, sms: bool) -> None:
        if self.pin_state == "BLOCKED":
            raise CmsError(310) if sms else CmeError(13)
        if self.pin_state == "SIM PUK":
            raise CmsError(316) if sms else CmeError(12)
        raise CmsError(311) if sms else CmeError(11)

    # -- text helpers ---------------------------------------------------------------------------
    def _text(self, s: str) -> str:
        """A string parameter in the current +CSCS character set (quirk 22)."""
        if self.cscs == "UCS2":
            return s.encode("utf-16-be").hex().upper()
        return s

    def _storage(self, name: str) -> Storage:
        store = self.storages.get(name.upper())
        if store is None:
            raise CmsError(302)
        return store

    # -- SMS prompt -----------------------------------------------------------------------------
    def _start_prompt(self, purpose: str, length: int, dest: str = "") -> Answer:
        self._prompt = purpose
        self._prompt_len = length
        self._prompt_dest = dest
        self._prompt_buf = []
        self._out.append(self.p.prompt)
        if self._inject_prompt:
            self._out.append(b"\r\n" + self._inject_prompt.pop(0).encode("latin-1") + b"\r\n")
        elif self.faults.urc_rate and self.fault_rng.random() < self.faults.urc_rate:
            self._out.append(b"\r\n" + self.faults.urc_line.encode("latin-1") + b"\r\n")
        return ((), None)

    def _end_prompt(self, term: int) -> None:
        purpose = self._prompt
        self._prompt = None
        body = b"".join(self._prompt_buf)
        self._prompt_buf = []
        if term == ESC:
            self._answer([], "OK")
            return
        try:
            if self.cmgf == 1:
                tpdu = self._text_submit(body)
                smsc = b""
            else:
                hexdata = bytes(c for c in body if c in _HEXDIGITS)
                if len(hexdata) != len(body.strip(b"\r\n \t")):
                    raise CmsError(304)
                pdu = bytes.fromhex(hexdata.decode("ascii"))
                if not pdu:
                    raise CmsError(304)
                sca = pdu[0]
                smsc = pdu[: sca + 1]
                tpdu = pdu[sca + 1 :]
                if len(tpdu) != self._prompt_len:
                    raise CmsError(304)
        except (CmsError, ValueError) as exc:  # PduError is a ValueError too
            code = exc.code if isinstance(exc, CmsError) else 304
            self._answer([], self._error_text(CmsError(code)))
            return
        if purpose == "cmgw":
            try:
                self._store_submit(smsc, tpdu)
            except CmsError as exc:
                self._answer([], self._error_text(exc))
            return
        delay = self.faults.slow_radio
        if delay > 0:
            self._busy = True
            generation = self._generation

            def later() -> None:
                if generation == self._generation:  # not if the modem was power-cycled since
                    self._finish_send(tpdu)

            self.scheduler.call_later(delay, later)
        else:
            self._finish_send(tpdu)

    def _finish_send(self, tpdu: bytes, *, prefix: str = "+CMGS") -> None:
        was_busy = self._busy
        self._busy = False
        try:
            if not self.registered:
                raise CmsError(331)
            f = self.faults
            if f.cms_error_rate and self.fault_rng.random() < f.cms_error_rate:
                raise CmsError(f.cms_error_code)
            # The modem stamps TP-MR itself (TS 27.005 3.5.1); the SMSC only routes.
            mr = self.sim.next_reference
            tpdu = tpdu[:1] + bytes((mr,)) + tpdu[2:] if len(tpdu) > 2 else tpdu
            try:
                mr = self.network.submit(self, tpdu)
            except SubmitRejectedError as exc:
                raise CmsError(exc.code) from None
            self.sent += 1
            self._answer([f"{prefix}: {mr}"], "OK")
        except CmsError as exc:
            self._answer([], self._error_text(exc))
        if was_busy:
            pending, self._pending_input = self._pending_input, b""
            if pending:
                self.feed(pending)
            else:
                self._flush()

    def _store_submit(self, smsc: bytes, tpdu: bytes) -> None:
        store = self._storage(self.cpms[1])
        index = store.put(2, (smsc + tpdu).hex().upper() or "00", len(tpdu))
        if index is None:
            self._answer([], self._error_text(CmsError(322)))
        else:
            self._answer([f"+CMGW: {index}"], "OK")

    def _text_submit(self, body: bytes) -> bytes:
        from modem.pdu import Address, build_submits  # text mode is rare: import lazily

        text = body.decode("latin-1")
        parts = build_submits(Address.parse(self._prompt_dest), text)
        if len(parts) != 1:
            raise CmsError(304)
        return parts[0].encode()

    # -- mobile-terminated ----------------------------------------------------------------------
    def receive_sms(self, tpdu: bytes) -> bool:
        """An SMS-DELIVER from the network: +CMT, or store and +CMTI, per +CNMI <mt>."""
        if not (self.powered and self.registered):
            return False
        cls = message_class(tpdu[2 + 1 + (tpdu[1] + 1) // 2 + 1]) if len(tpdu) > 8 else None
        mt = self.cnmi[1]
        hexpdu = self.network.smsc_field.hex().upper() + tpdu.hex().upper()
        direct = (mt == 2 and cls != 2) or (mt == 3 and cls == 3)
        # <mode>=1 discards indications while the link is reserved: store instead of losing it.
        reserved_drop = self.cnmi[0] == 1 and (self._prompt is not None or self._busy)
        if direct and self.cnmi[0] != 0 and not self.faults.hang and not reserved_drop:
            if self.csms == 1 and self._ack_pending:
                return False  # one unacknowledged +CMT at a time; the SMSC retries
            self._indicate(f"+CMT: ,{len(tpdu)}\r\n{hexpdu}")
            self.received += 1
            self._await_ack("sms", tpdu)
            self._flush()
            return True
        store = self.storages.get(self.cpms[2])
        if store is None:
            return False
        index = store.put(0, hexpdu, len(tpdu))
        if index is None:
            return False  # memory full: no +CMTI, the SMSC holds the message (quirk table)
        self.received += 1
        if mt in (1, 2, 3):
            self._indicate(f'+CMTI: "{store.name}",{index}')
        self._flush()
        return True

    def receive_status_report(self, tpdu: bytes) -> bool:
        """An SMS-STATUS-REPORT: +CDS (ds=1), stored with +CDSI (ds=2), or stored silently."""
        if not (self.powered and self.registered):
            return False
        ds = self.cnmi[3]
        hexpdu = self.network.smsc_field.hex().upper() + tpdu.hex().upper()
        reserved_drop = self.cnmi[0] == 1 and (self._prompt is not None or self._busy)
        if ds == 1 and self.cnmi[0] != 0 and not self.faults.hang and not reserved_drop:
            if self.csms == 1 and self._ack_pending:
                return False
            self._indicate(f"+CDS: {len(tpdu)}\r\n{hexpdu}")
            self._await_ack("report", tpdu)
            self._flush()
            return True
        store = self.storages.get(self.p.report_store) or self.storages.get(self.cpms[2])
        if store is None:
            return True  # no memory for reports at all (E3372 without SR, ds!=1): dropped
        index = store.put(0, hexpdu, len(tpdu))
        if index is None:
            return False
        if ds == 2:
            label = self.p.report_label or store.name
            self._indicate(f'+CDSI: "{label}",{index}')
        self._flush()
        return True

    def _await_ack(self, kind: str, tpdu: bytes) -> None:
        if self.csms != 1:
            return
        self._ack_pending.append((kind, tpdu))
        if self._ack_timer is None:
            self._ack_timer = self.scheduler.call_later(ACK_TIMEOUT, self._ack_timeout)

    def _ack_timeout(self) -> None:
        """No +CNMA in time: TS 27.005 3.4.1 says routing to the TE stops (<mt>=<ds>=0)."""
        self._ack_timer = None
        if not self._ack_pending:
            return
        self.cnmi[1] = 0
        self.cnmi[3] = 0
        pending, self._ack_pending = self._ack_pending, []
        for kind, tpdu in pending:
            # The network re-sends unacknowledged messages; with routing off they get stored.
            if kind == "sms":
                self.receive_sms(tpdu)
            else:
                self.receive_status_report(tpdu)
        self._flush()

    # -- faults ---------------------------------------------------------------------------------
    def set_fault(self, fault: Fault | str, **params: float | int | str) -> None:
        """Switch a fault on (or trigger a one-shot one)."""
        fault = Fault(fault)
        f = self.faults
        if fault is Fault.HANG:
            f.hang = True
        elif fault is Fault.REBOOT:
            self.reboot()
        elif fault is Fault.SLOW_RADIO:
            f.slow_radio = float(params.get("seconds", 5.0))
        elif fault is Fault.CMS_ERROR:
            f.cms_error_code = int(params.get("code", 500))
            f.cms_error_rate = float(params.get("rate", 1.0))
        elif fault is Fault.DEREGISTER:
            f.deregistered_stat = int(params.get("stat", 0))
            self._update_registration()
        elif fault is Fault.STORAGE_FULL:
            f.storage_full = True
            for store in self.storages.values():
                store.clamp = store.used()
        elif fault is Fault.GARBAGE:
            f.garbage_rate = float(params.get("rate", 1.0))
            f.garbage_length = int(params.get("length", 8))
        elif fault is Fault.URC_MID_ANSWER:
            f.urc_rate = float(params.get("rate", 1.0))
            f.urc_line = str(params.get("line", "+CREG: 1"))
        else:
            raise ValueError(f"{fault} is handled by the PTY layer (EmulatedModem)")
        self._flush()

    def clear_fault(self, fault: Fault | str) -> None:
        """Switch a fault off."""
        fault = Fault(fault)
        f = self.faults
        if fault is Fault.HANG:
            f.hang = False
        elif fault is Fault.SLOW_RADIO:
            f.slow_radio = 0.0
        elif fault is Fault.CMS_ERROR:
            f.cms_error_rate = 0.0
        elif fault is Fault.DEREGISTER:
            f.deregistered_stat = None
            self._update_registration()
        elif fault is Fault.STORAGE_FULL:
            f.storage_full = False
            for store in self.storages.values():
                store.clamp = None
            self.network.retry(self.sim.identity.msisdn)  # SMMA: "memory available"
        elif fault is Fault.GARBAGE:
            f.garbage_rate = 0.0
        elif fault is Fault.URC_MID_ANSWER:
            f.urc_rate = 0.0
        self._flush()

    def clear_all_faults(self) -> None:
        """Back to a healthy modem."""
        for fault in Fault:
            if fault not in (Fault.UNPLUG, Fault.REBOOT):
                self.clear_fault(fault)


ACK_TIMEOUT = 15.0  # seconds a +CMT/+CDS may wait for +CNMA when +CSMS=1
_GARBAGE_ALPHABET = bytes(b for b in range(1, 256) if b not in (0x0D, 0x0A))

Handler = Callable[[ModemCore, str, str], Answer]
_HANDLERS: dict[str, Handler] = {}


def _handler(*names: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for name in names:
            _HANDLERS[name] = fn
        return fn

    return register


_OK: Answer = ((), "OK")
_SENT: Answer = ((), None)  # the handler has written its own answer already


# -- basic commands (V.250) ----------------------------------------------------------------------
@_handler("E")
def _e(m: ModemCore, kind: str, args: str) -> Answer:
    m.echo = args not in ("", "0")
    return _OK


@_handler("V", "Q", "X", "&C", "&D", "&W", "L", "M", "H", "&K", "&S")
def _ignored(m: ModemCore, kind: str, args: str) -> Answer:
    return _OK


@_handler("Z", "&F")
def _reset(m: ModemCore, kind: str, args: str) -> Answer:
    cfun = m.cfun
    m._reset_settings()
    m.cfun = cfun
    return _OK


@_handler("&V")
def _profile(m: ModemCore, kind: str, args: str) -> Answer:
    line = f"E: {int(m.echo)}; Q: 0; V: 1; X: 1; &C: 1; &D: 2; S0: 0; +CMEE: {m.cmee};"
    return ((line, f"+CMGF: {m.cmgf}; +CNMI: {','.join(map(str, m.cnmi))};"), "OK")


@_handler("+CCLK")
def _cclk(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "read":
        now = dt.datetime.fromtimestamp(int(m.scheduler.now()), dt.UTC)
        return ((f'+CCLK: "{now.strftime("%y/%m/%d,%H:%M:%S")}+00"',), "OK")
    return _OK


@_handler("I")
def _ati(m: ModemCore, kind: str, args: str) -> Answer:
    return ((m.p.manufacturer, m.p.model, f"Revision: {m.p.revision}"), "OK")


@_handler("D")
def _dial(m: ModemCore, kind: str, args: str) -> Answer:
    if not m.registered:
        raise CmeError(30)
    return ((), "NO CARRIER")


@_handler("S0", "S3", "S4", "S5", "S7")
def _sreg(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "read":
        return (("013",), "OK")
    return _OK


# -- identification (TS 27.007 5) ----------------------------------------------------------------
@_handler("+CGMI", "+GMI")
def _cgmi(m: ModemCore, kind: str, args: str) -> Answer:
    return _OK if kind == "test" else ((m.p.manufacturer,), "OK")


@_handler("+CGMM", "+GMM")
def _cgmm(m: ModemCore, kind: str, args: str) -> Answer:
    return _OK if kind == "test" else ((m.p.model,), "OK")


@_handler("+CGMR", "+GMR")
def _cgmr(m: ModemCore, kind: str, args: str) -> Answer:
    return _OK if kind == "test" else ((m.p.revision,), "OK")


@_handler("+CGSN", "+GSN")
def _cgsn(m: ModemCore, kind: str, args: str) -> Answer:
    return _OK if kind == "test" else ((m.imei,), "OK")


@_handler("+CIMI")
def _cimi(m: ModemCore, kind: str, args: str) -> Answer:
    return _OK if kind == "test" else ((m.sim.identity.imsi,), "OK")


@_handler("+CNUM")
def _cnum(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "test":
        return _OK
    number = m._text(m.sim.identity.msisdn)
    return ((f'+CNUM: "","{number}",145',), "OK")


@_handler("+CMEE")
def _cmee(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "test":
        return (("+CMEE: (0-2)",), "OK")
    if kind == "read":
        return ((f"+CMEE: {m.cmee}",), "OK")
    m.cmee = _int(args or "0", (0, 1, 2), code=4)
    return _OK


@_handler("+CLAC")
def _clac(m: ModemCore, kind: str, args: str) -> Answer:
    names = sorted(set(_HANDLERS) | set(m.p.hooks) | set(m.p.iccid_commands))
    return (tuple(n for n in names if n[0] in "+^&"), "OK")


# -- SIM (TS 27.007 8.3) -------------------------------------------------------------------------
@_handler("+CPIN")
def _cpin(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "test":
        return _OK
    if kind == "read":
        if m.pin_state == "BLOCKED":
            raise CmeError(13)
        return ((f"+CPIN: {m.pin_state}",), m.p.cpin_final)
    params = _params(args)
    sim = m.sim
    if m.pin_state == "READY":
        raise CmeError(3)
    if m.pin_state == "BLOCKED":
        raise CmeError(13)
    if m.pin_state == "SIM PIN":
        if params[0] == sim.identity.pin:
            sim.pin_attempts_left = 3
            m.pin_state = "READY"
        else:
            sim.pin_attempts_left -= 1
            m.pin_state = m._sim_lock_state()
            raise CmeError(16)
    # SIM PUK: AT+CPIN="<puk>","<new pin>"
    elif params[0] == sim.identity.puk and len(params) > 1 and params[1].isdigit():
        sim.identity = _replace_pin(sim, params[1])
        sim.pin_attempts_left = 3
        sim.puk_attempts_left = 10
        m.pin_state = "READY"
    else:
        sim.puk_attempts_left -= 1
        m.pin_state = m._sim_lock_state()
        raise CmeError(16)
    m._update_registration()
    return _OK


def _replace_pin(sim: SimCard, pin: str) -> SimIdentity:
    from dataclasses import replace

    return replace(sim.identity, pin=pin)


@_handler("+CLCK")
def _clck(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "test":
        return (('+CLCK: ("SC")',), "OK")
    p = _params(args)
    if not p or p[0].upper() != "SC":
        raise CmeError(4)
    mode = _int(p[1] if len(p) > 1 else "", (0, 1, 2))
    if mode == 2:
        return ((f"+CLCK: {int(m.sim.pin_enabled)}",), "OK")
    if len(p) < 3 or p[2] != m.sim.identity.pin:
        raise CmeError(16)
    m.sim.pin_enabled = mode == 1
    return _OK


# -- network (TS 27.007 7) -----------------------------------------------------------------------
@_handler("+CSQ")
def _csq(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "test":
        return (("+CSQ: (0-31,99),(0-7,99)",), "OK")
    rssi = 20 if m.registered else 99
    return ((f"+CSQ: {rssi},99",), "OK")


@_handler("+CREG")
def _creg(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "test":
        return (("+CREG: (0-2)",), "OK")
    if kind == "read":
        return ((m._creg_line(),), "OK")
    m.creg_n = _int(args or "0", (0, 1, 2), code=4)
    return _OK


@_handler("+COPS")
def _cops(m: ModemCore, kind: str, args: str) -> Answer:
    name = m._text("smsgw emulated")
    if kind == "test":
        return ((f'+COPS: (2,"{name}","smsgw","00101",0),,(0-4),(0-2)',), "OK")
    if kind == "read":
        if not m.registered:
            return (("+COPS: 0",), "OK")
        return ((f'+COPS: 0,0,"{name}",0',), "OK")
    return _OK


@_handler("+CFUN")
def _cfun(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "test":
        return (("+CFUN: (0,1,4),(0-1)",), "OK")
    if kind == "read":
        return ((f"+CFUN: {m.cfun}",), "OK")
    p = _params(args)
    fun = _int(p[0], (0, 1, 4), code=4)
    if len(p) > 1 and p[1] == "1":
        m.scheduler.call_later(0, m.reboot)  # OK first, then the modem restarts
        return _OK
    m.cfun = fun
    if fun == 1:
        m._busy_left = m.p.busy_after_cfun
    m._update_registration()
    return _OK


@_handler("+CUSD")
def _cusd(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "test":
        return (("+CUSD: (0-2)",), "OK")
    if kind == "read":
        return (("+CUSD: 1",), "OK")
    p = _params(args)
    if p[0] == "2" or len(p) < 2:
        return _OK
    if m.ussd_mode != 0:
        raise PlainError()  # Huawei with ^USSDMODE=1 (huawei-e1752.txt)
    if not m.registered:
        raise CmeError(30)
    code = p[1]
    balance = m.sim.balance_cents
    if code == "*100#":
        text = f"Your balance is {balance // 100}.{balance % 100:02d} EUR."
    elif code in ("*101#", "*135#"):
        text = f"Your number is {m.sim.identity.msisdn}."
    else:
        m.urc_soon("+CUSD: 4")
        return _OK
    if m.p.ussd_ucs2_hex:  # UCS2 hex whatever +CSCS says, DCS still 15 (quectel-m35.txt)
        line = f'+CUSD: 0,"{text.encode("utf-16-be").hex().upper()}",15'
    else:
        dcs = 72 if m.cscs == "UCS2" else 15
        line = f'+CUSD: 0,"{m._text(text)}",{dcs}'
    m.urc_soon(line)
    return _OK


# -- SMS configuration (TS 27.005 3) -------------------------------------------------------------
@_handler("+CMGF")
def _cmgf(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "test":
        return (("+CMGF: (0,1)",), "OK")
    if kind == "read":
        return ((f"+CMGF: {m.cmgf}",), "OK")
    m.cmgf = _int(args or "0", (0, 1), code=4)
    return _OK


@_handler("+CSCS")
def _cscs(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "test":
        return ((m.p.cscs_test,), "OK")
    if kind == "read":
        return ((f'+CSCS: "{m.cscs}"',), "OK")
    value = _params(args)[0].upper()
    if value not in ("GSM", "IRA", "UCS2"):
        raise CmeError(4)
    m.cscs = value
    return _OK


@_handler("+CSCA")
def _csca(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "test":
        return _OK
    if kind == "read":
        toa = 145 if m.csca.startswith("+") else 129
        return ((f'+CSCA: "{m._text(m.csca)}",{toa}',), "OK")
    p = _params(args)
    value = p[0]
    if m.cscs == "UCS2" and value and all(c in "0123456789ABCDEFabcdef" for c in value):
        value = bytes.fromhex(value).decode("utf-16-be", "replace")
    m.csca = value
    return _OK


@_handler("+CSMP")
def _csmp(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "read":
        return ((f"+CSMP: {m.csmp}",), "OK")
    if kind == "set":
        m.csmp = args
    return _OK


@_handler("+CSMS")
def _csms(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "test":
        return (("+CSMS: (0,1)",), "OK")
    if kind == "read":
        return ((f"+CSMS: {m.csms},1,1,1",), "OK")
    value = _params(args)[0]
    if value not in ("0", "1"):
        raise CmsError(303)
    m.csms = int(value)
    return (("+CSMS: 1,1,1",), "OK")


@_handler("+CPMS")
def _cpms(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "test":
        return ((m.p.cpms_test,), "OK")
    sep = ", " if m.p.cpms_read_spaces else ","
    if kind == "read":
        parts = []
        for name in m.cpms:
            s = m._storage(name)
            parts.append(f'"{name}"{sep}{s.used()}{sep}{s.capacity}')
        return (("+CPMS: " + sep.join(parts),), "OK")
    wanted = [x.upper() for x in _params(args) if x]
    allowed = m.p.cpms_allowed
    if not wanted or len(wanted) > 3:
        raise CmsError(302)
    if allowed is not None and len(wanted) > len(allowed):
        raise PlainError()  # more memories than this modem has parameters (Wavecom: two)
    for i, name in enumerate(wanted):
        m._storage(name)
        if allowed is not None and name not in allowed[i]:
            raise PlainError()  # Wavecom: AT+CPMS="SM","SM","SR" -> ERROR (wavecom-...-1800.txt)
    m.cpms[: len(wanted)] = wanted
    pairs = []
    shown = m.cpms if m.p.cpms_allowed is None else m.cpms[: len(m.p.cpms_allowed)]
    for name in shown:  # always three pairs, even when fewer storages were set (quirk 13)
        s = m._storage(name)
        pairs.append(f"{s.used()},{s.capacity}")
    return (("+CPMS: " + ",".join(pairs),), "OK")


@_handler("+CNMI")
def _cnmi(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "test":
        return ((m.p.cnmi_test,), "OK")
    if kind == "read":
        return (("+CNMI: " + ",".join(map(str, m.cnmi)),), "OK")
    values = _params(args)
    new = list(m.cnmi)
    for i, v in enumerate(values[:5]):
        if v == "":
            continue
        if not v.isdigit() or int(v) not in m.p.cnmi_ranges[i]:
            raise CmsError(303)
        new[i] = int(v)
    m.cnmi = new
    if new[0] in (1, 2, 3) and m._mode0_urcs:
        if new[4] == 0:  # <bfr>=0: flush the TA buffer to the TE, after the OK (27.005 3.4.1)
            m._reserved_urcs.extend(m._mode0_urcs)
        m._mode0_urcs.clear()
    return _OK


@_handler("+CNMA")
def _cnma(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "test":
        return (("+CNMA: (0-2)",), "OK")
    if not m._ack_pending:
        raise CmsError(340)  # no +CNMA acknowledgement expected
    m._ack_pending.pop(0)
    if not m._ack_pending and m._ack_timer is not None:
        m._ack_timer.cancel()
        m._ack_timer = None
    m.scheduler.call_later(0, lambda: m.network.retry(m.sim.identity.msisdn))
    return _OK


# -- SMS traffic (TS 27.005 3.5 / 4) -------------------------------------------------------------
@_handler("+CMGS")
def _cmgs(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "test":
        return _OK
    if kind != "set":
        raise CmsError(304)
    p = _params(args)
    if m.cmgf == 1:
        return m._start_prompt("cmgs", 0, p[0])
    try:
        length = int(p[0])
    except ValueError:
        raise CmsError(304) from None
    if not 7 <= length <= 175:
        raise CmsError(304)
    return m._start_prompt("cmgs", length)


@_handler("+CMGW")
def _cmgw(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "test":
        return _OK
    p = _params(args)
    if m.cmgf == 1:
        return m._start_prompt("cmgw", 0, p[0])
    try:
        length = int(p[0])
    except ValueError:
        raise CmsError(304) from None
    return m._start_prompt("cmgw", length)


@_handler("+CMSS")
def _cmss(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "test":
        return _OK
    p = _params(args)
    index = _int(p[0], code=321)
    store = m._storage(m.cpms[1])
    stored = store.get(index) if store.valid(index) else None
    if stored is None:
        raise CmsError(321)
    pdu = bytes.fromhex(stored.hex)
    tpdu = pdu[pdu[0] + 1 :]
    stored.stat = 3
    m._finish_send(tpdu, prefix="+CMSS")
    return _SENT


def _text_time(when: dt.datetime) -> str:
    """TS 27.005 text-mode time: "yy/MM/dd,hh:mm:ss+zz" (zz in quarter hours)."""
    offset = when.utcoffset() or dt.timedelta(0)
    quarters = int(offset.total_seconds()) // 900
    return when.strftime("%y/%m/%d,%H:%M:%S") + f"{'-' if quarters < 0 else '+'}{abs(quarters):02d}"


def _text_body(user_data: object) -> str:
    """GSM text as is; UCS-2 text and 8-bit data as hex, as modems show them in text mode."""
    from modem.pdu import UserData

    if not isinstance(user_data, UserData):
        return ""
    if user_data.data is not None:
        return user_data.data.hex().upper()
    text = user_data.text or ""
    if text.isascii():
        return text
    return text.encode("utf-16-be").hex().upper()


def _text_entry(s: _Stored, index: int | None) -> list[str]:
    """A stored PDU rendered for text mode (+CMGL when index is given, else +CMGR)."""
    from modem.pdu import PduError, SmsDeliver, SmsStatusReport, SmsSubmit, decode_pdu

    head = f"+CMGL: {index}," if index is not None else "+CMGR: "
    stat = f'"{_CMGL_STAT_TEXT[s.stat]}"'
    try:
        tpdu = decode_pdu(s.hex).tpdu
    except PduError:
        return [f"{head}{stat}", s.hex]
    if isinstance(tpdu, SmsDeliver):
        line = f'{head}{stat},"{tpdu.originator}",,"{_text_time(tpdu.scts)}"'
        return [line, _text_body(tpdu.user_data)]
    if isinstance(tpdu, SmsSubmit):
        return [f'{head}{stat},"{tpdu.destination}",', _text_body(tpdu.user_data)]
    assert isinstance(tpdu, SmsStatusReport)
    ra = tpdu.recipient
    toa = 145 if str(ra).startswith("+") else 129
    times = f'"{_text_time(tpdu.scts)}","{_text_time(tpdu.discharge_time)}"'
    return [f'{head}{stat},6,{tpdu.message_reference},"{ra}",{toa},{times},{tpdu.status}']


def _cmgl_line(index: int, s: _Stored, text_mode: bool) -> list[str]:
    if text_mode:
        return _text_entry(s, index)
    return [f"+CMGL: {index},{s.stat},,{s.length}", s.hex]


@_handler("+CMGL")
def _cmgl(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "test":
        if m.cmgf == 1:
            return (('+CMGL: ("REC UNREAD","REC READ","STO UNSENT","STO SENT","ALL")',), "OK")
        return (("+CMGL: (0-4)",), "OK")
    p = _params(args) if args else []
    if m.cmgf == 1:
        want = p[0].upper() if p else "REC UNREAD"
        if want not in _CMGL_STAT_TEXT:
            raise CmsError(302)
        stat = _CMGL_STAT_TEXT.index(want)
    else:
        stat = int(p[0]) if p and p[0].isdigit() else 0
        if stat not in range(5):
            raise CmsError(302)
    store = m._storage(m.cpms[0])
    lines: list[str] = []
    for index, s in store.items():
        if stat in (4, s.stat):
            lines.extend(_cmgl_line(index, s, m.cmgf == 1))
            if s.stat == 0:
                s.stat = 1
    return (tuple(lines), "OK")


@_handler("+CMGR")
def _cmgr(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "test":
        return _OK
    index = _int(_params(args)[0] if args else "", code=321)
    store = m._storage(m.cpms[0])
    if not store.valid(index):
        raise CmsError(321)
    s = store.get(index)
    if s is None:
        return _OK  # empty slot: just OK (EC25 in quectel-ec25.txt, SIM800)
    lines = _text_entry(s, None) if m.cmgf == 1 else [f"+CMGR: {s.stat},,{s.length}", s.hex]
    if s.stat == 0:
        s.stat = 1
    return (tuple(lines), "OK")


@_handler("+CMGD")
def _cmgd(m: ModemCore, kind: str, args: str) -> Answer:
    if kind == "test":
        return (("+CMGD: (),(0-4)",), "OK")
    p = _params(args)
    store = m._storage(m.cpms[0])
    flag = _int(p[1], range(5), code=302) if len(p) > 1 and p[1] else 0
    if flag == 0:
        index = _int(p[0], code=321)
        if not store.valid(index):
            raise CmsError(321)
        store.delete(index)
    else:
        doomed = {1: (1,), 2: (1, 3), 3: (1, 2, 3), 4: (0, 1, 2, 3)}[flag]
        for index, s in store.items():
            if s.stat in doomed:
                store.delete(index)
    m.scheduler.call_later(0, lambda: m.network.retry(m.sim.identity.msisdn))  # SMMA
    return _OK


class EmulatedModem:
    """A ModemCore on a pseudo-terminal, served by an asyncio loop (call from the loop thread)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        index: int,
        network: Network,
        sim: SimCard,
        personality: Personality = GENERIC,
        scheduler: Scheduler,
        rng_seed: str = "0",
    ) -> None:
        self.loop = loop
        self.index = index
        self.sim = sim
        self.network = network
        self.scheduler = scheduler
        self.core = ModemCore(
            network=network,
            sim=sim,
            personality=personality,
            scheduler=scheduler,
            write=self._write,
            rng_seed=rng_seed,
        )
        self.personality = personality
        self._fds: tuple[int, int] | None = None
        self._outbuf = bytearray()
        self._writer_on = False
        self.path = ""
        self.plugged = False
        self.replugs = 0
        self.on_input: Callable[[], None] | None = None
        self._pending: tuple[int, int, Handle] | None = None  # PTY waiting to be "plugged in"
        self._open()
        network.attach(self.core)
        self.core.power_on()

    def info(self) -> ModemInfo:
        """Path and identities."""
        ident = self.sim.identity
        return ModemInfo(
            self.index,
            self.path,
            self.personality.name,
            ident.msisdn,
            ident.imsi,
            ident.iccid,
            ident.imei,
        )

    def _new_pty(self) -> tuple[int, int, str]:
        master, slave = os.openpty()
        tty.setraw(slave)  # raw from the start, so a plain os.open() client gets bytes as sent
        os.set_blocking(master, False)
        return master, slave, os.ttyname(slave)

    def _open(self) -> None:
        master, slave, path = self._new_pty()
        self._attach_fds(master, slave, path)

    def _attach_fds(self, master: int, slave: int, path: str) -> None:
        self._fds = (master, slave)
        self.path = path
        self.plugged = True
        self.loop.add_reader(master, self._readable)

    def _close_fds(self) -> None:
        if self._fds is None:
            return
        master, slave = self._fds
        self._fds = None
        self.loop.remove_reader(master)
        if self._writer_on:
            self.loop.remove_writer(master)
            self._writer_on = False
        self._outbuf.clear()
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _readable(self) -> None:
        if self._fds is None:
            return
        try:
            data = os.read(self._fds[0], 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # EIO when no process holds the slave: nothing to read
        if data:
            self.core.feed(data)
            if self.on_input is not None:
                self.on_input()

    def _write(self, data: bytes) -> None:
        if self._fds is None:
            return
        if self._outbuf:
            self._outbuf += data
            return
        try:
            n = os.write(self._fds[0], data)
        except BlockingIOError:
            n = 0
        except OSError:
            return
        if n < len(data):
            self._outbuf += data[n:]
            if not self._writer_on:
                self.loop.add_writer(self._fds[0], self._writable)
                self._writer_on = True

    def _writable(self) -> None:
        if self._fds is None:
            return
        try:
            n = os.write(self._fds[0], self._outbuf)
        except BlockingIOError:
            return
        except OSError:
            self._outbuf.clear()
            n = 0
        del self._outbuf[:n]
        if not self._outbuf and self._writer_on:
            self.loop.remove_writer(self._fds[0])
            self._writer_on = False

    def unplug(self, seconds: float = 0.0) -> str:
        """Pull the USB plug: the PTY closes; after `seconds` a new PTY (new path) appears.

        The replacement PTY is allocated before the old one closes so the kernel cannot hand the
        same /dev/pts number back. Returns the path the modem will reappear under.
        """
        self._drop_pending_replug()
        master, slave, path = self._new_pty()
        self.core.power_off()
        self._close_fds()
        self.plugged = False
        self.path = ""

        def replug() -> None:
            self._pending = None
            self._attach_fds(master, slave, path)
            self.replugs += 1
            self.core.power_on()

        handle = self.scheduler.call_later(seconds, replug)
        self._pending = (master, slave, handle)
        return path

    def _drop_pending_replug(self) -> None:
        if self._pending is None:
            return
        master, slave, handle = self._pending
        self._pending = None
        handle.cancel()
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def set_fault(self, fault: Fault | str, **params: float | int | str) -> None:
        """Switch a fault on (UNPLUG takes `seconds`)."""
        if Fault(fault) is Fault.UNPLUG:
            self.unplug(float(params.get("seconds", 0.0)))
        else:
            self.core.set_fault(fault, **params)

    def clear_fault(self, fault: Fault | str) -> None:
        """Switch a fault off."""
        if Fault(fault) is not Fault.UNPLUG:
            self.core.clear_fault(fault)

    def close(self) -> None:
        """Power off and close the PTY."""
        self.core.power_off()
        self.network.detach(self.core)
        self._drop_pending_replug()
        self._close_fds()
