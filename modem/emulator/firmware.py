"""What AT handlers and personality hooks see of a modem: the Firmware protocol and its types.

This module sits below `commands` (the generic handlers), `personalities` (vendor data and hooks)
and `device` (ModemCore, which implements Firmware), so none of them imports another back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Protocol

from modem.emulator.clock import Scheduler
from modem.emulator.network import Network, SimCard
from modem.emulator.storage import Storage

# Information lines and the final result code (None: the modem sends no final code, Wavecom +CPIN).
Answer = tuple[tuple[str, ...], str | None]

_ALL_STORES = '("SM","ME","MT","SR")'
# Every value TS 27.005 3.4.1 allows for <mode>,<mt>,<bm>,<ds>,<bfr>.
_CNMI_ALL = ((0, 1, 2, 3), (0, 1, 2, 3), (0, 1, 2, 3), (0, 1, 2), (0, 1))


class Firmware(Protocol):
    """The modem as a command handler or a hook sees it: settings, identities and a few actions."""

    # Settings the host changes with AT commands (power-up values from reset_settings()).
    echo: bool
    cmee: int
    cmgf: int
    cscs: str
    csca: str
    csmp: str
    csms: int
    cpms: list[str]
    cnmi: list[int]
    creg_n: int
    cgreg_n: int
    cops_format: int  # +COPS <format>: 0 long, 1 short alphanumeric, 2 numeric
    cfun: int
    ussd_mode: int
    pin_state: str  # READY | SIM PIN | SIM PUK | BLOCKED | NOT READY (the SIM resets)

    @property
    def p(self) -> Personality:
        """The vendor personality this modem plays."""

    @property
    def sim(self) -> SimCard:
        """The SIM in the slot (its state is mutable: PIN attempts, identity after a PUK)."""

    @property
    def imei(self) -> str:
        """The modem's IMEI."""

    @property
    def scheduler(self) -> Scheduler:
        """The clock the modem defers work on."""

    @property
    def network(self) -> Network:
        """The emulated network the modem is attached to."""

    @property
    def registered(self) -> bool:
        """Registered home or roaming."""

    @property
    def noise_enabled(self) -> bool:
        """The personality's idle URCs are switched on."""

    def reset_settings(self) -> None:
        """Power-up / AT&F values for every setting."""

    def reboot(self) -> None:
        """Restart: boot URCs again and every setting lost."""

    def sim_lock_state(self) -> str:
        """The +CPIN state the SIM's attempt counters call for."""

    def update_registration(self) -> None:
        """Recompute the registration state (after +CFUN, +CPIN...), with a +CREG URC if due."""

    def creg_line(self, unsolicited: bool = False) -> str:
        """The +CREG answer (or URC) for the current state."""

    def cgreg_line(self, unsolicited: bool = False) -> str:
        """The +CGREG (GPRS registration) answer (or URC) for the current state."""

    def charset_text(self, s: str) -> str:
        """A string parameter in the current +CSCS character set."""

    def storage(self, name: str) -> Storage:
        """A message memory by name; +CMS ERROR: 302 if this modem has none by that name."""

    def start_prompt(self, purpose: str, length: int, dest: str = "") -> Answer:
        """Send the `> ` prompt and read a PDU (or text) of `length` octets for cmgs or cmgw."""

    def finish_send(self, tpdu: bytes, *, prefix: str = "+CMGS") -> None:
        """Submit a TPDU to the network and write the answer (`prefix: <mr>` or an error)."""

    def urc_soon(self, line: str) -> None:
        """A URC right after the current answer."""

    def set_noise(self, on: bool) -> None:
        """Switch the personality's idle URCs on or off."""

    def refuse_commands(self, count: int) -> None:
        """Answer the next `count` commands with +CME ERROR: 515 (still busy)."""

    def acknowledge(self, *, negative: bool = False) -> bool:
        """+CNMA: confirm (or refuse) the oldest unacknowledged +CMT/+CDS; False if none was."""

    def release_held_indications(self, *, deliver: bool) -> None:
        """Leaving +CNMI <mode>=0: send the held indications after the answer, or drop them."""


# hook(modem, kind, args): kind is "exec" | "read" | "test" | "set"; None falls back to the generic.
Hook = Callable[[Firmware, str, str], Answer | None]
# handler(modem, kind, args): information lines and final code, or raises an AtError.
Handler = Callable[[Firmware, str, str], Answer]


@dataclass(frozen=True)
class Personality:
    """A vendor's answers and habits, as data."""

    name: str
    manufacturer: str
    model: str
    revision: str
    transcripts: tuple[str, ...] = ()
    index_base: int = 1  # first message index (0 on Quectel and Huawei, quirk 15)
    storages: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType({"SM": 30, "ME": 100, "SR": 50})
    )
    has_mt: bool = True  # "MT" = SM and ME together (TS 27.005 3.2.2)
    cpms_test: str = f"+CPMS: {_ALL_STORES},{_ALL_STORES},{_ALL_STORES}"
    cpms_default: tuple[str, str, str] = ("SM", "SM", "SM")
    # Storages accepted per +CPMS parameter (None: any storage anywhere, three parameters).
    cpms_allowed: tuple[tuple[str, ...], ...] | None = None
    cpms_read_spaces: bool = False  # ZTE: +CPMS: "ME", 0, 50 (quirk 4)
    report_store: str = "SR"  # where <ds>=2 status reports are stored
    report_label: str | None = None  # Quectel EC25 announces +CDSI: "SM",n for an SR report
    cnmi_ranges: tuple[tuple[int, ...], ...] = _CNMI_ALL
    cnmi_test: str = "+CNMI: (0-3),(0-3),(0-3),(0-2),(0,1)"
    cnmi_default: tuple[int, int, int, int, int] = (1, 1, 0, 0, 0)
    cscs_test: str = '+CSCS: ("GSM","IRA","UCS2")'
    prompt: bytes = b"\r\n> "
    unsupported: str = "ERROR"  # final code for an unknown command (Huawei: COMMAND NOT SUPPORT)
    cpin_final: str | None = "OK"  # Wavecom/Sierra send +CPIN: READY without OK (quirk 3)
    urc_prefix: bytes = b"\r\n"  # before ^-URCs: Huawei sends "^RSSI:14\r\n" bare
    boot_urcs: tuple[tuple[float, str], ...] = ()  # (seconds after the previous one, line)
    sms_ready_gate: bool = False  # SIMCom: SMS commands answer ERROR until the last boot URC
    noise: tuple[str, ...] = ()  # idle URCs sent every noise_interval seconds
    noise_interval: float = 10.0
    iccid_commands: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({"+CCID": "+CCID: {iccid}"})
    )
    ussd_mode_default: int = 0  # Huawei ^USSDMODE=1 at power-up makes +CUSD fail (quirk 23)
    busy_after_cfun: int = 0  # Wavecom: +CME ERROR: 515 for the next N commands after +CFUN=1
    sim_busy_seconds: float = 0.0  # ZTE/Qualcomm: +CME ERROR: 14 (SIM busy) right after boot
    unknown_cme: int | None = None  # Quectel M35: unknown commands give +CME ERROR: 100
    ussd_ucs2_hex: bool = False  # Quectel M35: +CUSD text in UCS2 hex although DCS is 15
    hooks: Mapping[str, Hook] = field(default_factory=lambda: MappingProxyType({}))

    def with_model(self, model: str, **changes: object) -> Personality:
        """A variant of this personality (another model of the same family)."""
        return replace(self, model=model, **changes)  # type: ignore[arg-type]
