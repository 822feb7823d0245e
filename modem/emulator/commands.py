"""The AT command handlers of the emulated modem (TS 27.007 / 27.005 subset) and line parsing.

A handler takes (modem, kind, args) -- the modem as a `firmware.Firmware`, kind "exec", "read",
"test" or "set" -- and returns the information lines and the final result code, or raises an
AtError. Personalities override handlers with hooks (modem.emulator.personalities).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import replace

from modem.emulator.errors import CmeError, CmsError, PlainError
from modem.emulator.firmware import Answer, Firmware, Handler
from modem.emulator.network import SimCard, SimIdentity
from modem.emulator.storage import Stored

_CMGL_STAT_TEXT = ("REC UNREAD", "REC READ", "STO UNSENT", "STO SENT", "ALL")


def split_command_line(body: str) -> Iterator[tuple[str, str, str]]:
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


HANDLERS: dict[str, Handler] = {}


def _handler(*names: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for name in names:
            HANDLERS[name] = fn
        return fn

    return register


_OK: Answer = ((), "OK")
SENT: Answer = ((), None)  # the handler has written its own answer already


# -- basic commands (V.250) ----------------------------------------------------------------------
@_handler("E")
def _e(m: Firmware, kind: str, args: str) -> Answer:
    m.echo = args not in ("", "0")
    return _OK


@_handler("V", "Q", "X", "&C", "&D", "&W", "L", "M", "H", "&K", "&S")
def _ignored(m: Firmware, kind: str, args: str) -> Answer:
    return _OK


@_handler("Z", "&F")
def _reset(m: Firmware, kind: str, args: str) -> Answer:
    cfun = m.cfun
    m.reset_settings()
    m.cfun = cfun
    return _OK


@_handler("&V")
def _profile(m: Firmware, kind: str, args: str) -> Answer:
    line = f"E: {int(m.echo)}; Q: 0; V: 1; X: 1; &C: 1; &D: 2; S0: 0; +CMEE: {m.cmee};"
    return ((line, f"+CMGF: {m.cmgf}; +CNMI: {','.join(map(str, m.cnmi))};"), "OK")


@_handler("+CCLK")
def _cclk(m: Firmware, kind: str, args: str) -> Answer:
    if kind == "read":
        now = dt.datetime.fromtimestamp(int(m.scheduler.now()), dt.UTC)
        return ((f'+CCLK: "{now.strftime("%y/%m/%d,%H:%M:%S")}+00"',), "OK")
    return _OK


@_handler("I")
def _ati(m: Firmware, kind: str, args: str) -> Answer:
    return ((m.p.manufacturer, m.p.model, f"Revision: {m.p.revision}"), "OK")


@_handler("D")
def _dial(m: Firmware, kind: str, args: str) -> Answer:
    if not m.registered:
        raise CmeError(30)
    return ((), "NO CARRIER")


@_handler("S0", "S3", "S4", "S5", "S7")
def _sreg(m: Firmware, kind: str, args: str) -> Answer:
    if kind == "read":
        return (("013",), "OK")
    return _OK


# -- identification (TS 27.007 5) ----------------------------------------------------------------
@_handler("+CGMI", "+GMI")
def _cgmi(m: Firmware, kind: str, args: str) -> Answer:
    return _OK if kind == "test" else ((m.p.manufacturer,), "OK")


@_handler("+CGMM", "+GMM")
def _cgmm(m: Firmware, kind: str, args: str) -> Answer:
    return _OK if kind == "test" else ((m.p.model,), "OK")


@_handler("+CGMR", "+GMR")
def _cgmr(m: Firmware, kind: str, args: str) -> Answer:
    return _OK if kind == "test" else ((m.p.revision,), "OK")


@_handler("+CGSN", "+GSN")
def _cgsn(m: Firmware, kind: str, args: str) -> Answer:
    return _OK if kind == "test" else ((m.imei,), "OK")


@_handler("+CIMI")
def _cimi(m: Firmware, kind: str, args: str) -> Answer:
    return _OK if kind == "test" else ((m.sim.identity.imsi,), "OK")


@_handler("+CNUM")
def _cnum(m: Firmware, kind: str, args: str) -> Answer:
    if kind == "test":
        return _OK
    number = m.charset_text(m.sim.identity.msisdn)
    return ((f'+CNUM: "","{number}",145',), "OK")


@_handler("+CMEE")
def _cmee(m: Firmware, kind: str, args: str) -> Answer:
    if kind == "test":
        return (("+CMEE: (0-2)",), "OK")
    if kind == "read":
        return ((f"+CMEE: {m.cmee}",), "OK")
    m.cmee = _int(args or "0", (0, 1, 2), code=4)
    return _OK


@_handler("+CLAC")
def _clac(m: Firmware, kind: str, args: str) -> Answer:
    names = sorted(set(HANDLERS) | set(m.p.hooks) | set(m.p.iccid_commands))
    return (tuple(n for n in names if n[0] in "+^&"), "OK")


# -- SIM (TS 27.007 8.3) -------------------------------------------------------------------------
@_handler("+CPIN")
def _cpin(m: Firmware, kind: str, args: str) -> Answer:
    if kind == "test":
        return _OK
    if m.pin_state == "NOT READY":
        raise CmeError(10)  # the SIM resets and does not answer (27.007 9.2: SIM not inserted)
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
            m.pin_state = m.sim_lock_state()
            raise CmeError(16)
    # SIM PUK: AT+CPIN="<puk>","<new pin>"
    elif params[0] == sim.identity.puk and len(params) > 1 and params[1].isdigit():
        sim.identity = _replace_pin(sim, params[1])
        sim.pin_attempts_left = 3
        sim.puk_attempts_left = 10
        m.pin_state = "READY"
    else:
        sim.puk_attempts_left -= 1
        m.pin_state = m.sim_lock_state()
        raise CmeError(16)
    m.update_registration()
    return _OK


def _replace_pin(sim: SimCard, pin: str) -> SimIdentity:

    return replace(sim.identity, pin=pin)


@_handler("+CLCK")
def _clck(m: Firmware, kind: str, args: str) -> Answer:
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
def _csq(m: Firmware, kind: str, args: str) -> Answer:
    if kind == "test":
        return (("+CSQ: (0-31,99),(0-7,99)",), "OK")
    rssi = 20 if m.registered else 99
    return ((f"+CSQ: {rssi},99",), "OK")


@_handler("+CREG")
def _creg(m: Firmware, kind: str, args: str) -> Answer:
    if kind == "test":
        return (("+CREG: (0-2)",), "OK")
    if kind == "read":
        return ((m.creg_line(),), "OK")
    m.creg_n = _int(args or "0", (0, 1, 2), code=4)
    return _OK


# Gammu's GetNetworkInfo fails outright when +CGREG=2 and =1 are both refused (python-gammu
# 3.5 against the generic personality): every modem smsgw targets is GSM/GPRS and has it.
@_handler("+CGREG")
def _cgreg(m: Firmware, kind: str, args: str) -> Answer:
    if kind == "test":
        return (("+CGREG: (0-2)",), "OK")
    if kind == "read":
        return ((m.cgreg_line(),), "OK")
    m.cgreg_n = _int(args or "0", (0, 1, 2), code=4)
    return _OK


@_handler("+CGATT")
def _cgatt(m: Firmware, kind: str, args: str) -> Answer:
    # Attached for packet data wherever registered (gammu asks before reading +CGREG); a
    # detach request is accepted and changes nothing, as SMS over GSM does not need it.
    if kind == "test":
        return (("+CGATT: (0,1)",), "OK")
    if kind == "read":
        return ((f"+CGATT: {int(m.registered)}",), "OK")
    _int(args, (0, 1), code=4)
    return _OK


@_handler("+COPS")
def _cops(m: Firmware, kind: str, args: str) -> Answer:
    name = m.charset_text("smsgw emulated")
    if kind == "test":
        return ((f'+COPS: (2,"{name}","smsgw","00101",0),,(0-4),(0-2)',), "OK")
    if kind == "read":
        if not m.registered:
            return (("+COPS: 0",), "OK")
        oper = (name, m.charset_text("smsgw"), "00101")[m.cops_format]
        return ((f'+COPS: 0,{m.cops_format},"{oper}",0',), "OK")
    p = _params(args)
    _int(p[0] if p else "0", (0, 1, 2, 3, 4), code=4)
    if len(p) > 1 and p[1]:  # the name format of later reads (gammu reads MCC+MNC with 2)
        m.cops_format = _int(p[1], (0, 1, 2), code=4)
    return _OK


@_handler("+CFUN")
def _cfun(m: Firmware, kind: str, args: str) -> Answer:
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
        m.refuse_commands(m.p.busy_after_cfun)
    m.update_registration()
    return _OK


@_handler("+CUSD")
def _cusd(m: Firmware, kind: str, args: str) -> Answer:
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
        line = f'+CUSD: 0,"{m.charset_text(text)}",{dcs}'
    m.urc_soon(line)
    return _OK


# -- SMS configuration (TS 27.005 3) -------------------------------------------------------------
@_handler("+CMGF")
def _cmgf(m: Firmware, kind: str, args: str) -> Answer:
    if kind == "test":
        return (("+CMGF: (0,1)",), "OK")
    if kind == "read":
        return ((f"+CMGF: {m.cmgf}",), "OK")
    m.cmgf = _int(args or "0", (0, 1), code=4)
    return _OK


@_handler("+CSCS")
def _cscs(m: Firmware, kind: str, args: str) -> Answer:
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
def _csca(m: Firmware, kind: str, args: str) -> Answer:
    if kind == "test":
        return _OK
    if kind == "read":
        toa = 145 if m.csca.startswith("+") else 129
        return ((f'+CSCA: "{m.charset_text(m.csca)}",{toa}',), "OK")
    p = _params(args)
    value = p[0]
    if m.cscs == "UCS2" and value and all(c in "0123456789ABCDEFabcdef" for c in value):
        value = bytes.fromhex(value).decode("utf-16-be", "replace")
    m.csca = value
    return _OK


@_handler("+CSMP")
def _csmp(m: Firmware, kind: str, args: str) -> Answer:
    if kind == "read":
        return ((f"+CSMP: {m.csmp}",), "OK")
    if kind == "set":
        m.csmp = args
    return _OK


@_handler("+CSMS")
def _csms(m: Firmware, kind: str, args: str) -> Answer:
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
def _cpms(m: Firmware, kind: str, args: str) -> Answer:
    if kind == "test":
        return ((m.p.cpms_test,), "OK")
    sep = ", " if m.p.cpms_read_spaces else ","
    if kind == "read":
        parts = []
        for name in m.cpms:
            s = m.storage(name)
            parts.append(f'"{name}"{sep}{s.used()}{sep}{s.capacity}')
        return (("+CPMS: " + sep.join(parts),), "OK")
    wanted = [x.upper() for x in _params(args) if x]
    allowed = m.p.cpms_allowed
    if not wanted or len(wanted) > 3:
        raise CmsError(302)
    if allowed is not None and len(wanted) > len(allowed):
        raise PlainError()  # more memories than this modem has parameters (Wavecom: two)
    for i, name in enumerate(wanted):
        m.storage(name)
        if allowed is not None and name not in allowed[i]:
            raise PlainError()  # Wavecom: AT+CPMS="SM","SM","SR" -> ERROR (wavecom-...-1800.txt)
    m.cpms[: len(wanted)] = wanted
    pairs = []
    shown = m.cpms if m.p.cpms_allowed is None else m.cpms[: len(m.p.cpms_allowed)]
    for name in shown:  # always three pairs, even when fewer storages were set (quirk 13)
        s = m.storage(name)
        pairs.append(f"{s.used()},{s.capacity}")
    return (("+CPMS: " + ",".join(pairs),), "OK")


@_handler("+CNMI")
def _cnmi(m: Firmware, kind: str, args: str) -> Answer:
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
    if new[0] in (1, 2, 3):
        # <bfr>=0: flush the TA buffer to the TE after the OK; 1: clear it (27.005 3.4.1).
        m.release_held_indications(deliver=new[4] == 0)
    return _OK


@_handler("+CNMA")
def _cnma(m: Firmware, kind: str, args: str) -> Answer:
    if kind == "test":
        return (("+CNMA: (0-2)",), "OK")
    # TS 27.005 3.4.4, PDU mode: <n> 0/1 = RP-ACK, 2 = RP-ERROR (the SMSC keeps the message
    # and sends it again); text mode takes no parameters.
    n = _params(args)[0] if kind == "set" else "0"
    if n not in ("0", "1", "2") or (kind == "set" and m.cmgf == 1):
        raise CmsError(303)
    if not m.acknowledge(negative=n == "2"):
        raise CmsError(340)  # no +CNMA acknowledgement expected
    return _OK


# -- SMS traffic (TS 27.005 3.5 / 4) -------------------------------------------------------------
@_handler("+CMGS")
def _cmgs(m: Firmware, kind: str, args: str) -> Answer:
    if kind == "test":
        return _OK
    if kind != "set":
        raise CmsError(304)
    p = _params(args)
    if m.cmgf == 1:
        return m.start_prompt("cmgs", 0, p[0])
    try:
        length = int(p[0])
    except ValueError:
        raise CmsError(304) from None
    if not 7 <= length <= 175:
        raise CmsError(304)
    return m.start_prompt("cmgs", length)


@_handler("+CMGW")
def _cmgw(m: Firmware, kind: str, args: str) -> Answer:
    if kind == "test":
        return _OK
    p = _params(args)
    if m.cmgf == 1:
        return m.start_prompt("cmgw", 0, p[0])
    try:
        length = int(p[0])
    except ValueError:
        raise CmsError(304) from None
    return m.start_prompt("cmgw", length)


@_handler("+CMSS")
def _cmss(m: Firmware, kind: str, args: str) -> Answer:
    if kind == "test":
        return _OK
    p = _params(args)
    index = _int(p[0], code=321)
    store = m.storage(m.cpms[1])
    stored = store.get(index) if store.valid(index) else None
    if stored is None:
        raise CmsError(321)
    pdu = bytes.fromhex(stored.hex)
    tpdu = pdu[pdu[0] + 1 :]
    stored.stat = 3
    m.finish_send(tpdu, prefix="+CMSS")
    return SENT


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


def _text_entry(s: Stored, index: int | None) -> list[str]:
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


def _cmgl_line(index: int, s: Stored, text_mode: bool) -> list[str]:
    if text_mode:
        return _text_entry(s, index)
    return [f"+CMGL: {index},{s.stat},,{s.length}", s.hex]


@_handler("+CMGL")
def _cmgl(m: Firmware, kind: str, args: str) -> Answer:
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
    store = m.storage(m.cpms[0])
    lines: list[str] = []
    for index, s in store.items():
        if stat in (4, s.stat):
            lines.extend(_cmgl_line(index, s, m.cmgf == 1))
            if s.stat == 0:
                s.stat = 1
    return (tuple(lines), "OK")


@_handler("+CMGR")
def _cmgr(m: Firmware, kind: str, args: str) -> Answer:
    if kind == "test":
        return _OK
    index = _int(_params(args)[0] if args else "", code=321)
    store = m.storage(m.cpms[0])
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
def _cmgd(m: Firmware, kind: str, args: str) -> Answer:
    if kind == "test":
        return (("+CMGD: (),(0-4)",), "OK")
    p = _params(args)
    store = m.storage(m.cpms[0])
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
