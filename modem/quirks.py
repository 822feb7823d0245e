"""Vendor profiles as data: how the driver adapts to one modem family (see QUIRKS.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from modem.at.parsers import CnmiSupport

CnmiValues = tuple[int, int, int, int, int]

# <mode>=2 buffer in TA when busy; <mt>=1 +CMTI; <bm>=2 +CBM or 0; <ds>=1 +CDS inline, 2 +CDSI.
DEFAULT_CNMI_CHAIN: tuple[CnmiValues, ...] = (
    (2, 1, 2, 1, 0),
    (2, 1, 0, 2, 0),
    (2, 1, 0, 1, 0),
)


@dataclass(frozen=True, slots=True)
class VendorProfile:
    """What one modem family needs; every field documents the quirk it answers."""

    name: str
    # Matched against AT+CGMI / AT+CGMM (case-insensitive regexes) and USB vendor ids.
    manufacturer_pattern: str = r"$^"
    model_pattern: str = r".*"
    usb_vendors: tuple[str, ...] = ()
    # Extra commands after the standard init; failures are logged and ignored.
    init_commands: tuple[str, ...] = ()
    # CNMI values to try in order (filtered by AT+CNMI=?); after the last one: polling.
    cnmi_chain: tuple[CnmiValues, ...] = DEFAULT_CNMI_CHAIN
    # +CDSI storage as announced -> storage the report really sits in (Quectel EC25/EG25).
    status_report_storage: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # First valid message index (0 on Quectel/Huawei): indications with index < base are bogus.
    index_base: int = 1
    # Command that makes AT+CUSD take plain text (Huawei defaults to ^USSDMODE=1).
    ussd_mode_command: str | None = None
    # Send the USSD string as packed 7-bit hex (old Huawei firmwares without ^USSDMODE).
    ussd_packed: bool = False
    # URCs that announce SMS readiness at boot (exact text, upper-case).
    readiness_urcs: tuple[str, ...] = ()
    # AT+CPIN? is answered without a final OK (Wavecom, Sierra SL8084).
    cpin_without_ok: bool = False
    # +CME ERROR codes that mean "busy, retry later" right after start-up.
    transient_cme: frozenset[int] = frozenset({14, 515})
    # Commands to read the ICCID, tried in order.
    iccid_commands: tuple[str, ...] = ("+CCID", "+ICCID", "^ICCID?", "+QCCID")


GENERIC = VendorProfile(name="generic", manufacturer_pattern=r".*")

HUAWEI = VendorProfile(
    name="huawei",
    manufacturer_pattern=r"huawei",
    usb_vendors=("12d1",),
    # ^CURC=0 stops the ^RSSI/^MODE/^BOOT/^SRVST flood (gammu atgen.c, MM huawei plugin).
    init_commands=("^CURC=0",),
    index_base=0,
    ussd_mode_command="^USSDMODE=0",
    iccid_commands=("^ICCID?", "+CCID", "+ICCID"),
)

ZTE = VendorProfile(
    name="zte",
    manufacturer_pattern=r"\bzte\b",
    usb_vendors=("19d2",),
    iccid_commands=("+ZGETICCID", "+CCID", "+ICCID"),
)

QUALCOMM = VendorProfile(
    name="qualcomm",
    manufacturer_pattern=r"qualcomm",
    usb_vendors=("05c6",),
    # <ds>=1 advertised but rejected on many Qualcomm firmwares (MM mm-broadband-modem.c).
    cnmi_chain=((2, 1, 0, 2, 0), (2, 1, 2, 1, 0), (2, 1, 0, 1, 0)),
)

QUECTEL = VendorProfile(
    name="quectel",
    manufacturer_pattern=r"quectel",
    usb_vendors=("2c7c",),
    # EC25/EG25 store <ds>=2 reports in SR but announce +CDSI: "SM",n (chan_quectel PR #75):
    # prefer inline +CDS, and read SR when a report is announced as SM anyway.
    cnmi_chain=((2, 1, 0, 1, 0), (2, 1, 2, 1, 0), (2, 1, 0, 2, 0)),
    status_report_storage=MappingProxyType({"SM": "SR", "ME": "SR"}),
    index_base=0,
    readiness_urcs=("+QIND: SMS DONE",),
    iccid_commands=("+QCCID", "+CCID", "+ICCID"),
)

SIMCOM = VendorProfile(
    name="simcom",
    manufacturer_pattern=r"simcom",
    usb_vendors=("1e0e",),
    # SMS commands answer ERROR until "SMS Ready" (SIM800) / "SMS DONE" (SIM7600).
    readiness_urcs=("SMS READY", "SMS DONE"),
    iccid_commands=("+CCID", "+CICCID", "+ICCID"),
)

WAVECOM = VendorProfile(
    name="wavecom",
    manufacturer_pattern=r"wavecom",
    usb_vendors=("114f",),
    cpin_without_ok=True,
)

SIERRA = VendorProfile(
    name="sierra",
    manufacturer_pattern=r"sierra",
    usb_vendors=("1199",),
    cpin_without_ok=True,
)

CINTERION = VendorProfile(
    name="cinterion",
    manufacturer_pattern=r"cinterion|siemens",
    usb_vendors=("1e2d", "0681"),
    # TC35/MC35: reports via +CDSI with <bfr>=1 (smstools3 hardwarecomp, Kannel modems.conf).
    cnmi_chain=((2, 1, 0, 2, 1), (2, 1, 0, 1, 1), (1, 1, 0, 2, 1)),
    readiness_urcs=("^SYSSTART",),
)

UBLOX = VendorProfile(
    name="ublox",
    manufacturer_pattern=r"u-?blox",
    usb_vendors=("1546",),
)

TELIT = VendorProfile(
    name="telit",
    manufacturer_pattern=r"telit",
    usb_vendors=("1bc7",),
)

PROFILES: tuple[VendorProfile, ...] = (
    HUAWEI,
    ZTE,
    QUALCOMM,
    QUECTEL,
    SIMCOM,
    WAVECOM,
    SIERRA,
    CINTERION,
    UBLOX,
    TELIT,
)


def select_profile(
    manufacturer: str | None = None, model: str | None = None, usb_id: str | None = None
) -> VendorProfile:
    """The profile for a modem from its +CGMI/+CGMM answers or USB `VID:PID`."""
    maker = (manufacturer or "").strip().lower()
    mdl = (model or "").strip().lower()
    for profile in PROFILES:
        if (
            maker
            and re.search(profile.manufacturer_pattern, maker, re.IGNORECASE)
            and re.search(profile.model_pattern, mdl, re.IGNORECASE)
        ):
            return profile
    # Some firmwares put the vendor in the model string only ("SIMCOM_SIM800L").
    for profile in PROFILES:
        if mdl and re.search(profile.manufacturer_pattern, mdl, re.IGNORECASE):
            return profile
    if usb_id:
        vendor = usb_id.lower().split(":", 1)[0]
        for profile in PROFILES:
            if vendor in profile.usb_vendors:
                return profile
    return GENERIC


def cnmi_candidates(profile: VendorProfile, support: CnmiSupport | None) -> list[CnmiValues]:
    """CNMI settings to try, best first; empty means poll the storages instead."""
    chain = list(profile.cnmi_chain)
    if support is None:
        return chain
    out = [values for values in chain if support.allows(values)]
    # Last resort before polling: +CMTI only, without reports (e.g. "+CNMI: (1),(1),(0),(0),(0)").
    for mode in (2, 1, 3):
        minimal: CnmiValues = (mode, 1, 0, 0, 0)
        if support.allows(minimal) and minimal not in out:
            out.append(minimal)
            break
    return out


def report_storage(profile: VendorProfile, announced: str | None) -> str | None:
    """The storage a +CDSI-announced status report must be read from."""
    if announced is None:
        return None
    return profile.status_report_storage.get(announced.upper(), announced.upper())


def choose_storages(
    offered: Sequence[Sequence[str]],
) -> tuple[str, str, str]:
    """Preferred <mem1>,<mem2>,<mem3> from AT+CPMS=? (all three set explicitly, quirk 12/13)."""

    def pick(options: Sequence[str], prefer: Sequence[str]) -> str:
        for name in prefer:
            if name in options:
                return name
        return options[0] if options else "SM"

    mem1 = pick(offered[0] if offered else (), ("SM", "ME", "MT"))
    mem2 = pick(offered[1] if len(offered) > 1 else (), ("SM", "ME", "MT"))
    mem3 = pick(offered[2] if len(offered) > 2 else (), ("SM", "ME", "MT"))
    return mem1, mem2, mem3


def readable_storages(offered: Sequence[Sequence[str]]) -> tuple[str, ...]:
    """Storages to scan for stored messages: every <mem1> option except broadcast/combined ones."""
    names = offered[0] if offered else ("SM",)
    return tuple(n for n in names if n not in ("BM", "MT", "TA", "BROADCAST"))
