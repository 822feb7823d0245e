"""Emulated GSM network and modems on PTYs, so everything runs without hardware.

Quick start
-----------
>>> from modem.emulator import EmulatorPool
>>> with EmulatorPool(["generic", "huawei"], seed=7) as pool:    # doctest: +SKIP
...     a, b = pool.info()              # PTY paths, MSISDN, IMSI, ICCID, IMEI, personality
...     # open a.path with pyserial / python-gammu / the smsgw driver and talk AT to it
...     pool.inject_sms(b.msisdn, "hello from outside 😀", sender="MyBank")
...     pool.set_fault(0, "cms_error", code=42, rate=0.5)
...     pool.advance(5)                 # virtual time: boot URCs, report delays, slow radio

Pieces
------
- `network.Network`: an SMSC routing SMS-SUBMITs by MSISDN between emulated SIMs; every other
  number is "the outside world" (recorded in `Network.outside`). Status reports after
  `report_delay` virtual seconds. TP-MR is stamped per SIM, incrementing modulo 256 (the start
  value is seeded so wrap-around shows up). Messages a modem cannot take (powered off,
  deregistered, memory full, unacknowledged +CMT) are held and re-sent when it can (SMMA).
- `device.ModemCore`: the AT firmware (27.007/27.005 subset below); `device.EmulatedModem`
  puts it on a PTY (`os.openpty`, raw mode) served by an asyncio loop.
- `firmware.Firmware`: the protocol AT handlers (`commands`) and personality hooks are written
  against, so they never import `device`; `firmware.Personality` is the vendor data type.
- `personalities`: generic, huawei, sim800, sim7600, ec25, m35, wavecom, sierra, zte, cinterion
  -- data plus small hooks; each names the transcripts it models (the replay tests hold it to
  them).
- `pool.EmulatorPool`: network + modems on one loop in a background thread, thread-safe blocking
  facade (`call`, `acall` for asyncio callers). `clock="manual"` (default) is a virtual clock
  that only moves in `advance()`, so tests never sleep; `clock="real"` for the CLI and demos.
- `udev.SerialLinks`: the /dev/serial/by-id (per stick) and by-path (per USB port) links udev
  would make, in a directory given as `EmulatorPool(links=...)`, so hot-plug discovery can watch
  modems come and go, and move to other USB ports.
- `inbound.deliver_parts`: SMS-DELIVERs from the outside world (built with `modem.pdu`): single,
  concatenated with 8/16-bit references and any part order, UCS-2 (emoji), 8-bit data,
  alphanumeric senders, class 0.

AT commands
-----------
AT, ATE0/1, ATZ, AT&F, ATI, ATV/Q/X/&C/&D (accepted), ATD (NO CARRIER), +CMEE, +CPIN?/= (3
wrong PINs -> SIM PUK, 10 wrong PUKs -> blocked), +CLCK="SC", +CGMI/+CGMM/+CGMR/+CGSN (and
+GMI/+GMM/+GMR/+GSN), +CIMI, +CCID and vendor forms (^ICCID, +QCCID, +CICCID, +ZGETICCID),
+CNUM, +CSQ, +CREG?/= and +CGREG?/= (URCs for n>=1), +COPS, +CCLK, +CFUN (0/1/4, =1,1 reboots),
+CMGF, +CSCS (GSM/IRA/UCS2: string answers hex-encoded in UCS2), +CSCA, +CSMP, +CSMS, +CPMS
(SM, ME, MT, SR with capacities; always three pairs), +CNMI (=? and every mode: +CMTI, +CMT,
+CDS, +CDSI; <mode> 0 buffers in the TA, 1 discards while the link is reserved, 2 buffers until
the answer ends, 3 sends in-band, even inside AT+CMGS), +CNMA (needed after +CMT/+CDS when
+CSMS=1; without it routing stops after 15 s as TS 27.005 says), +CMGS (PDU mode with the
prompt; text mode for single-part GSM text), +CMGW, +CMSS, +CMGL, +CMGR, +CMGD (with
<delflag>), +CUSD (*100# balance, *101# own number; answer as a +CUSD URC), +CLAC. Unknown
commands: ERROR (or the personality's COMMAND NOT SUPPORT). Errors: +CME ERROR (27.007 9.2) /
+CMS ERROR (27.005 3.2.5) per +CMEE.

Magic destination numbers
-------------------------
Like the test numbers cloud SMS providers publish, sending to these makes the SMSC misbehave:

=================  ==========================================================================
+15005550000       accepted, status report "delivered" (TP-ST 0x00)
+15005550001       accepted, status report "permanent failure" (TP-ST 0x41)
+15005550002       accepted, report "temporary failure" (0x20), later a second one "delivered"
+15005550003       accepted, status report "validity period expired" (TP-ST 0x46)
+15005550004       accepted, never any status report
+15005551NNN       rejected: the modem answers +CMS ERROR: NNN (e.g. +15005551500 -> 500,
                   +15005551038 -> 38 network out of order, +15005551042 -> 42 congestion)
=================  ==========================================================================

Emulated SIMs get MSISDNs +447700900001..+447700900899 (Ofcom's drama range), IMSIs on the test
network 001/01, and the SMSC is +447700900000. National numbers ("07700900123") are read as +44.
Any other number is the outside world: delivered, recorded, report "delivered" if requested
(`Network.report_outcome` may decide another `ReportOutcome` per destination).

Faults (`Fault`, switchable at run time: `pool.set_fault(i, name, **params)` / `clear_fault`)
----------------------------------------------------------------------------------------------
hang, unplug(seconds, port) (PTY closes, reappears under a new path with the same SIM, in another
USB port if given), reboot (boot URCs mid-session, settings lost), pin_loss(seconds) (the SIM
resets: +CPIN: NOT READY, off the network, then +CPIN: SIM PIN again if its PIN is enabled; the
modem keeps its settings), submit_crash(how, sent, seconds) (the next AT+CMGS is never answered:
the modem reboots, is unplugged or hangs right after taking the PDU, after the network accepted
it if sent=1), slow_radio(seconds), cms_error(code, rate), deregister(stat),
storage_full (no more +CMTI; the SMSC holds messages until memory frees up), garbage(rate,
length), urc_mid_answer(rate, line). One-off injections: `inject_urc(i, line, where)` with
where = now | answer (inside the next answer) | cmgs (right after the next `> ` prompt), and
`inject_garbage(i, data)`.

Command line
------------
`smsgw emulator run --modems 4 --personality huawei --personality sim800 --seed 7` prints the
pool as JSON (PTY path, MSISDN, IMSI, ICCID, IMEI, personality per modem) and keeps running on
real time until SIGINT/SIGTERM, `quit` or `--duration SECONDS` (EOF on stdin only ends the control
lines); control lines on stdin (or `--control SOCKET` + `smsgw emulator send SOCKET LINE`)
inject SMS and faults: `inject 0 MyBank hello`, `fault 1 cms_error code=42 rate=0.5`,
`fault 2 unplug seconds=5`, `clear 1 cms_error`, `urc 0 cmgs +CMTI: "SM",3`, `outside`,
`stats`, `info`, `quit` (full list in gateway/cli/emulator.py). One JSON line answers each.

Determinism
-----------
Same seed -> same MSISDNs/IMSIs/ICCIDs/IMEIs/PINs, same first TP-MR per SIM, same fault
sequence (each modem draws fault decisions from its own seeded generator, in command order),
same idle-URC noise, same timestamps (virtual time starts at 2026-01-01T00:00:00Z).
"""

from modem.emulator.clock import LoopClock, ManualClock, Scheduler
from modem.emulator.device import EmulatedModem, ModemCore, ModemInfo
from modem.emulator.faults import Fault
from modem.emulator.firmware import Personality
from modem.emulator.network import (
    MAGIC_CMS_ERROR_PREFIX,
    MAGIC_DELIVERED,
    MAGIC_EXPIRED,
    MAGIC_NO_REPORT,
    MAGIC_PERMANENT_FAILURE,
    MAGIC_TEMPORARY_THEN_DELIVERED,
    Network,
    OutboundSms,
    ReportOutcome,
    SimIdentity,
    make_identities,
)
from modem.emulator.personalities import PERSONALITIES, get_personality
from modem.emulator.pool import EmulatorPool
from modem.emulator.udev import SerialLinks

__all__ = [
    "MAGIC_CMS_ERROR_PREFIX",
    "MAGIC_DELIVERED",
    "MAGIC_EXPIRED",
    "MAGIC_NO_REPORT",
    "MAGIC_PERMANENT_FAILURE",
    "MAGIC_TEMPORARY_THEN_DELIVERED",
    "PERSONALITIES",
    "EmulatedModem",
    "EmulatorPool",
    "Fault",
    "LoopClock",
    "ManualClock",
    "ModemCore",
    "ModemInfo",
    "Network",
    "OutboundSms",
    "Personality",
    "ReportOutcome",
    "Scheduler",
    "SerialLinks",
    "SimIdentity",
    "get_personality",
    "make_identities",
]
