"""An emulated modem: the firmware (ModemCore) and its PTY (EmulatedModem).

`ModemCore` is the modem's firmware: bytes in through `feed()`, bytes out through the `write`
callback, time through the injected scheduler; its commands live in `modem.emulator.commands`
and see it only through the `modem.emulator.firmware.Firmware` protocol, which it implements.
`EmulatedModem` puts it on a pseudo-terminal (`os.openpty`) driven by an asyncio loop, so a
client opens `/dev/pts/N` like a USB modem.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import select
import tty
from collections.abc import Callable
from dataclasses import dataclass

from modem.emulator.clock import Handle, Scheduler
from modem.emulator.commands import HANDLERS, SENT, split_command_line
from modem.emulator.errors import (
    CME_TEXT,
    AtError,
    CmeError,
    CmsError,
    PlainError,
    UnsupportedError,
)
from modem.emulator.faults import Fault, FaultState, SubmitCrash
from modem.emulator.firmware import Answer, Personality
from modem.emulator.network import Network, SimCard, SubmitRejectedError
from modem.emulator.personalities import GENERIC
from modem.emulator.sms import message_class
from modem.emulator.storage import MtStorage, Storage
from modem.emulator.udev import SerialLinks

CTRL_Z = 0x1A
ESC = 0x1B
_HEXDIGITS = frozenset(b"0123456789abcdefABCDEF")

# SMS commands (TS 27.005) answer +CMS ERROR; SIMCom rejects them until "SMS Ready".
_SMS_COMMANDS = frozenset(
    {"+CMGF", "+CPMS", "+CMGS", "+CMGL", "+CMGR", "+CMGD", "+CMGW", "+CMSS", "+CNMI", "+CSCA"}
    | {"+CSMP", "+CSMS", "+CNMA"}
)
# Commands that need the SIM unlocked (TS 27.007 8.3).
_SIM_COMMANDS = _SMS_COMMANDS | {"+CIMI", "+CNUM", "+CUSD", "+COPS"}


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
    faults: tuple[str, ...] = ()  # switched on now (one-shot faults never show)
    plugged: bool = True
    usb_port: str = ""  # the USB port it is (or will be, while unplugged) plugged into


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
        self._sim_timer: Handle | None = None  # a SIM reset (PIN_LOSS) waiting to end
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
        # How the PTY layer pulls the plug for a SUBMIT_CRASH (None: a bare core reboots).
        self.on_unplug: Callable[[float], object] | None = None
        self.reset_settings()

    # -- power and settings ---------------------------------------------------------------------
    def reset_settings(self) -> None:
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
        self.cgreg_n = 0
        self.cops_format = 0
        self.cfun = 1
        self.ussd_mode = self.p.ussd_mode_default

    def power_on(self) -> None:
        """Boot: settings to defaults, SIM locked if its PIN is enabled, boot URCs on the clock."""
        self.powered = True
        self._generation += 1
        self.reset_settings()
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
        self._end_sim_reset()  # a power cycle reads the SIM afresh
        self.pin_state = self.sim_lock_state()
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
        self.update_registration()

    def power_off(self) -> None:
        """Lose power (unplug): nothing answers, the network holds messages."""
        self.powered = False
        for h in self._boot_timers:
            h.cancel()
        self._boot_timers = []
        self._end_sim_reset()
        # A dead modem times nothing out: what waits for +CNMA is for power-up to deal with.
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        self.set_noise(False)
        self.registered_stat = 0

    def reboot(self) -> None:
        """A spontaneous reset: boot URCs arrive mid-session and every setting is lost."""
        self.power_off()
        self.power_on()

    def lose_sim(self, seconds: float) -> None:
        """The SIM resets under the running modem (PIN_LOSS): +CPIN: NOT READY and off the
        network; after `seconds` it is back in the state its PIN calls for (SIM PIN if enabled:
        the PIN must be entered again), with a +CPIN URC. The modem keeps its own settings."""
        if not self.powered:
            return
        self._end_sim_reset()
        self.pin_state = "NOT READY"
        self._urc("+CPIN: NOT READY")
        self.update_registration()
        generation = self._generation

        def back() -> None:
            self._sim_timer = None
            if generation != self._generation or not self.powered:
                return
            self.pin_state = self.sim_lock_state()
            self._urc(f"+CPIN: {self.pin_state}")
            self.update_registration()
            self._flush()

        self._sim_timer = self.scheduler.call_later(seconds, back)

    def _end_sim_reset(self) -> None:
        if self._sim_timer is not None:
            self._sim_timer.cancel()
            self._sim_timer = None

    def sim_lock_state(self) -> str:
        """The +CPIN state the SIM's attempt counters call for."""
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
    def update_registration(self) -> None:
        """Recompute registration (after +CFUN, +CPIN, faults), with a +CREG URC if due."""
        if not self.powered or self.cfun != 1 or self.pin_state != "READY":
            stat = 0
        elif self.faults.deregistered_stat is not None:
            stat = self.faults.deregistered_stat
        else:
            stat = 1
        if stat != self.registered_stat:
            self.registered_stat = stat
            if self.creg_n >= 1 and self.powered:
                self.urc_soon(self.creg_line(unsolicited=True))  # after the command's OK
            if self.cgreg_n >= 1 and self.powered:
                self.urc_soon(self.cgreg_line(unsolicited=True))
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

    def creg_line(self, unsolicited: bool = False) -> str:
        """The +CREG answer (or URC) for the current state."""
        return self._registration_line("+CREG", self.creg_n, unsolicited)

    def cgreg_line(self, unsolicited: bool = False) -> str:
        """The +CGREG answer (or URC): the emulated network attaches for packet data wherever
        it registers, so the state is +CREG's (TS 27.007 10.1.20)."""
        return self._registration_line("+CGREG", self.cgreg_n, unsolicited)

    def _registration_line(self, command: str, n: int, unsolicited: bool) -> str:
        stat = self.registered_stat
        loc = ',"00A1","0000B2C3"' if n == 2 and stat in (1, 5) else ""
        if unsolicited:
            return f"{command}: {stat}{loc}"
        return f"{command}: {n},{stat}{loc}"

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

    def release_held_indications(self, *, deliver: bool) -> None:
        """Leaving +CNMI <mode>=0: send the held indications after the answer, or drop them."""
        if deliver:
            self._reserved_urcs.extend(self._mode0_urcs)
        self._mode0_urcs.clear()

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
        generation = self._generation
        while buf:
            if self._generation != generation or not self.powered or self.faults.hang:
                return  # it died on a command (SUBMIT_CRASH): the rest was never read
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
            for name, kind, args in split_command_line(text):
                if self._busy_left and name not in ("E", "+CMEE"):
                    self._busy_left -= 1
                    raise CmeError(515)
                answer = self._execute(name, kind, args)
                if self._prompt is not None or self._busy or answer is SENT:
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
        handler = HANDLERS.get(name)
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
        if self.pin_state == "NOT READY":
            raise CmeError(10)  # SIM not inserted: the card does not answer while it resets
        if self.pin_state == "BLOCKED":
            raise CmeError(13)

    def _need_pin(self, sms: bool) -> None:
        if self.pin_state == "NOT READY":
            raise CmsError(310) if sms else CmeError(10)
        if self.pin_state == "BLOCKED":
            raise CmsError(310) if sms else CmeError(13)
        if self.pin_state == "SIM PUK":
            raise CmsError(316) if sms else CmeError(12)
        raise CmsError(311) if sms else CmeError(11)

    def refuse_commands(self, count: int) -> None:
        """Answer the next `count` commands with +CME ERROR: 515 (still busy)."""
        self._busy_left = count

    # -- text helpers ---------------------------------------------------------------------------
    def charset_text(self, s: str) -> str:
        """A string parameter in the current +CSCS character set (quirk 22)."""
        if self.cscs == "UCS2":
            return s.encode("utf-16-be").hex().upper()
        return s

    def storage(self, name: str) -> Storage:
        """A message memory by name; +CMS ERROR: 302 if this modem has none by that name."""
        store = self.storages.get(name.upper())
        if store is None:
            raise CmsError(302)
        return store

    # -- SMS prompt -----------------------------------------------------------------------------
    def start_prompt(self, purpose: str, length: int, dest: str = "") -> Answer:
        """Send the `> ` prompt and read a PDU (or text) of `length` octets for cmgs or cmgw."""
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
                    self.finish_send(tpdu)

            self.scheduler.call_later(delay, later)
        else:
            self.finish_send(tpdu)

    def finish_send(self, tpdu: bytes, *, prefix: str = "+CMGS") -> None:
        """Submit a TPDU to the network and write the answer (`prefix: <mr>` or an error)."""
        was_busy = self._busy
        self._busy = False
        crash, self.faults.submit_crash = self.faults.submit_crash, None
        if crash is not None:
            self._crash_in_submit(tpdu, crash)
            return
        try:
            if not self.registered:
                raise CmsError(331)
            f = self.faults
            if f.cms_error_rate and self.fault_rng.random() < f.cms_error_rate:
                raise CmsError(f.cms_error_code)
            mr = self._submit(tpdu)
            self._answer([f"{prefix}: {mr}"], "OK")
        except CmsError as exc:
            self._answer([], self._error_text(exc))
        if was_busy:
            pending, self._pending_input = self._pending_input, b""
            if pending:
                self.feed(pending)
            else:
                self._flush()

    def _submit(self, tpdu: bytes) -> int:
        """Hand an SMS-SUBMIT to the network; its TP-MR, or CmsError if refused."""
        # The modem stamps TP-MR itself (TS 27.005 3.5.1); the SMSC only routes.
        mr = self.sim.next_reference
        tpdu = tpdu[:1] + bytes((mr,)) + tpdu[2:] if len(tpdu) > 2 else tpdu
        try:
            mr = self.network.submit(self, tpdu)
        except SubmitRejectedError as exc:
            raise CmsError(exc.code) from None
        self.sent += 1
        return mr

    def _crash_in_submit(self, tpdu: bytes, crash: SubmitCrash) -> None:
        """An armed SUBMIT_CRASH goes off: the SMS reaches the network (or not), and the modem
        dies before it answers; nothing the host typed meanwhile is read."""
        if crash.sent and self.registered:
            with contextlib.suppress(CmsError):
                self._submit(tpdu)
        self._pending_input = b""
        self._out.clear()
        if crash.how == "hang":
            self.faults.hang = True
            generation = self._generation

            def wake() -> None:
                if generation == self._generation:
                    self.clear_fault(Fault.HANG)

            self.scheduler.call_later(crash.seconds, wake)
        elif crash.how == "unplug" and self.on_unplug is not None:
            self.on_unplug(crash.seconds)
        else:
            self.reboot()

    def _store_submit(self, smsc: bytes, tpdu: bytes) -> None:
        store = self.storage(self.cpms[1])
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

    @property
    def unacknowledged(self) -> int:
        """How many +CMT/+CDS sent to the host still wait for its +CNMA."""
        return len(self._ack_pending)

    def acknowledge(self, *, negative: bool = False) -> bool:
        """+CNMA: confirm the oldest unacknowledged +CMT/+CDS (RP-ACK), or with `negative`
        refuse it (+CNMA=2, RP-ERROR: the SMSC keeps it and sends it again NACK_RETRY seconds
        later); False if none was waiting."""
        if not self._ack_pending:
            return False
        kind, tpdu = self._ack_pending.pop(0)
        if not self._ack_pending and self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        msisdn = self.sim.identity.msisdn
        if negative:
            self.network.hold(msisdn, kind, tpdu)
            self.scheduler.call_later(NACK_RETRY, lambda: self.network.retry(msisdn))
        else:
            self.scheduler.call_later(0, lambda: self.network.retry(msisdn))
        return True

    def _ack_timeout(self) -> None:
        """No +CNMA in time: TS 27.005 3.4.4 (+CNMA) says routing to the TE stops (<mt>=<ds>=0)."""
        self._ack_timer = None
        if not self._ack_pending:
            return
        self.cnmi[1] = 0
        self.cnmi[3] = 0
        pending, self._ack_pending = self._ack_pending, []
        msisdn = self.sim.identity.msisdn
        refused = []
        for kind, tpdu in pending:
            # The network re-sends unacknowledged messages; with routing off they get stored,
            # and what the modem cannot take (memory full) stays with the SMSC.
            taken = self.receive_sms(tpdu) if kind == "sms" else self.receive_status_report(tpdu)
            if not taken:
                refused.append((kind, tpdu))
        for kind, tpdu in reversed(refused):
            self.network.hold(msisdn, kind, tpdu)  # to the front, in their order
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
        elif fault is Fault.PIN_LOSS:
            self.lose_sim(float(params.get("seconds", 2.0)))
        elif fault is Fault.SLOW_RADIO:
            f.slow_radio = float(params.get("seconds", 5.0))
        elif fault is Fault.CMS_ERROR:
            f.cms_error_code = int(params.get("code", 500))
            f.cms_error_rate = float(params.get("rate", 1.0))
        elif fault is Fault.DEREGISTER:
            f.deregistered_stat = int(params.get("stat", 0))
            self.update_registration()
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
        elif fault is Fault.SUBMIT_CRASH:
            f.submit_crash = SubmitCrash(
                str(params.get("how", "reboot")),
                bool(int(params.get("sent", 1))),
                float(params.get("seconds", 5.0)),
            )
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
            self.update_registration()
        elif fault is Fault.STORAGE_FULL:
            f.storage_full = False
            for store in self.storages.values():
                store.clamp = None
            self.network.retry(self.sim.identity.msisdn)  # SMMA: "memory available"
        elif fault is Fault.GARBAGE:
            f.garbage_rate = 0.0
        elif fault is Fault.URC_MID_ANSWER:
            f.urc_rate = 0.0
        elif fault is Fault.SUBMIT_CRASH:
            f.submit_crash = None
        self._flush()

    def clear_all_faults(self) -> None:
        """Back to a healthy modem."""
        for fault in Fault:
            if fault not in (Fault.UNPLUG, Fault.REBOOT, Fault.PIN_LOSS):
                self.clear_fault(fault)


ACK_TIMEOUT = 15.0  # seconds a +CMT/+CDS may wait for +CNMA when +CSMS=1
NACK_RETRY = 5.0  # seconds the SMSC waits before sending a refused (+CNMA=2) message again
_GARBAGE_ALPHABET = bytes(b for b in range(1, 256) if b not in (0x0D, 0x0A))


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
        links: SerialLinks | None = None,
        usb_port: str = "",
    ) -> None:
        self.loop = loop
        self.index = index
        self.links = links
        self.usb_port = usb_port or f"1.{index + 1}"
        if links is not None:
            links.claim(index, self.usb_port)
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
        self.core.on_unplug = self.unplug
        network.attach(self.core)
        self.core.power_on()

    def info(self) -> ModemInfo:
        """Path, identities and the faults switched on."""
        ident = self.sim.identity
        return ModemInfo(
            self.index,
            self.path,
            self.personality.name,
            ident.msisdn,
            ident.imsi,
            ident.iccid,
            ident.imei,
            tuple(self.core.faults.active()),
            self.plugged,
            self.usb_port,
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
        if self.links is not None:
            self.links.plug(self.by_id_name, self.usb_port, path)

    @property
    def by_id_name(self) -> str:
        """The name udev gives this stick under /dev/serial/by-id (see udev.SerialLinks)."""
        return SerialLinks.by_id_name(self.personality.name, self.sim.identity.imei)

    def _close_fds(self) -> None:
        if self._fds is None:
            return
        if self.links is not None:
            self.links.unplug(self.by_id_name, self.usb_port)
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

    def pull_input(self) -> None:
        """Make what the host already wrote readable now: the kernel hands PTY bytes on in a
        work item of its own, which poll(2) on the tty waits for (epoll does not)."""
        if self._fds is None:
            return
        poller = select.poll()
        poller.register(self._fds[0], select.POLLIN)
        poller.poll(0)

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

    def unplug(self, seconds: float = 0.0, *, port: str | None = None) -> str:
        """Pull the USB plug: the PTY closes; after `seconds` a new PTY (new path) appears, in
        USB port `port` if given (reserved now; ValueError if another modem holds it).

        The replacement PTY is allocated before the old one closes so the kernel cannot hand the
        same /dev/pts number back. Returns the path the modem will reappear under.
        """
        if port is not None and self.links is not None:
            self.links.claim(self.index, port)  # first: a taken port changes nothing
        self._drop_pending_replug()
        master, slave, path = self._new_pty()
        self.core.power_off()
        self._close_fds()
        self.plugged = False
        self.path = ""

        def replug() -> None:
            self._pending = None
            if port is not None:
                self.usb_port = port
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
        """Switch a fault on (UNPLUG takes `seconds` and `port`)."""
        if Fault(fault) is Fault.UNPLUG:
            port = params.get("port")
            self.unplug(float(params.get("seconds", 0.0)), port=None if port is None else str(port))
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
