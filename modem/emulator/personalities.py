"""Vendor personalities: the generic modem's answers changed by data and a few small hooks.

Each personality names the transcripts in /work/shared/transcripts it models (`transcripts`); the
replay tests hold it to their shape. Quirk numbers refer to /work/shared/QUIRKS.md. The
`Personality` dataclass and the `Hook` type live in `modem.emulator.firmware`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from modem.emulator.firmware import Answer, Firmware, Hook, Personality


def _answer(*lines: str, final: str | None = "OK") -> Answer:
    return (tuple(lines), final)


# -- hooks -------------------------------------------------------------------------------------
def _huawei_ussdmode(modem: Firmware, kind: str, args: str) -> Answer | None:
    if kind == "set" and args.strip() in ("0", "1"):
        modem.ussd_mode = int(args)
        return _answer()
    if kind == "read":
        return _answer(f"^USSDMODE: {modem.ussd_mode}")
    if kind == "test":
        return _answer("^USSDMODE: (0-1)")
    return None


def _huawei_curc(modem: Firmware, kind: str, args: str) -> Answer | None:
    if kind == "set" and args.strip() in ("0", "1"):
        modem.set_noise(args.strip() == "1")
        return _answer()
    if kind == "read":
        return _answer(f"^CURC: {int(modem.noise_enabled)}")
    return None


def _huawei_cmms(modem: Firmware, kind: str, args: str) -> Answer | None:
    from modem.emulator.errors import CmsError

    raise CmsError(500)  # E1752 11.126 rejects AT+CMMS=2 (huawei-e1752.txt)


def _wavecom_cgmr(modem: Firmware, kind: str, args: str) -> Answer | None:
    return ((), "ERROR")  # python-gsmmodem's Wavecom profile (wavecom-multiband-900e-1800.txt)


def _zte_cfun_read(modem: Firmware, kind: str, args: str) -> Answer | None:
    # K3565-Z answers the READ form with the TEST syntax (quirk 25).
    if kind == "read":
        return _answer("+CFUN: (0-1,4-7),(0-1)")
    return None


def _zte_zpas(modem: Firmware, kind: str, args: str) -> Answer | None:
    if kind == "read":
        return _answer('+BEARTYPE: "UMTS","CS_PS"')
    return None


def _zte_cvhu(modem: Firmware, kind: str, args: str) -> Answer | None:
    return _answer("+CVHU: (0-1)")


def _wavecom_wind(modem: Firmware, kind: str, args: str) -> Answer | None:
    if kind == "read":
        return _answer("+WIND: 0")
    if kind == "set":
        return _answer()
    return None


def _simcom_profile(modem: Firmware, kind: str, args: str) -> Answer | None:
    # The AT&V layout of a SIM7600G-H (simcom-sim7600.txt, LilyGo #340), live values filled in.
    e, cmee = int(modem.echo), modem.cmee
    return _answer(
        f"&C: 2; &D: 2; &E: {e}; &F: 0; &S: 0; &W: 0; E: {e}; L: 0; M: 0; Q: 0; V: 1;",
        "X: 1; Z: 0; \\Q: 3; \\S: 0; \\V: 0; O: 0; S0: 0; S2: 43; S3: 13; S4: 10;",
        "S5: 8; S6: 2; S7: 0; S8: 2; S9: 6; S10: 14; S11: 95; S30: 0; S103: 1;",
        "S104: 1; +FCLASS: 0; +ICF: 3,3; +IFC: 0,0; +IPR: 115200; +DR: 0;",
        f"+DS: 0,0,2048,6; +CMEE: {cmee}; +WS46: 25; +CFUN: {modem.cfun}; +IPREX: 115200;",
        "+SSIMSTAT: 0; CNSDP: 2; +CNSMOD: 0;",
        "+CNLSA: 0; +CEXTEPLMN: 1; +CSQFMT: 1; +AUTOCSQ: 0,0; +CSQDELTA: 5;",
        f"+CPSI: 0; +CMGSI: 2; +CMGRMI:CI: 0; ^MODE: 0; +CMGF: {modem.cmgf};",
    )


GENERIC = Personality(
    name="generic",
    manufacturer="smsgw",
    model="Emulated GSM Modem",
    revision="emulator-1.0",
)

HUAWEI = Personality(
    name="huawei",
    manufacturer="huawei",
    model="E1752",
    revision="11.126.13.00.00",
    transcripts=(
        "huawei-e1752.txt",
        "huawei-e1750.txt",
        "huawei-e303.txt",
        "huawei-e3131.txt",
        "huawei-e3372.txt",
    ),
    index_base=0,
    storages=MappingProxyType({"SM": 50, "ME": 23, "SR": 50}),
    cpms_test='+CPMS: ("ME","MT","SM","SR"),("ME","MT","SM","SR"),("ME","MT","SM","SR")',
    cnmi_test="+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)",
    cnmi_ranges=((0, 1, 2), (0, 1, 2, 3), (0, 2), (0, 1, 2), (0, 1)),
    cscs_test='+CSCS: ("IRA","UCS2","GSM")',
    unsupported="COMMAND NOT SUPPORT",
    urc_prefix=b"",
    noise=("^RSSI:14", "^MODE:5,4", "^SRVST:0", "^RSSI:10", "^BOOT:35323129,0,0,0,26"),
    noise_interval=3.0,
    iccid_commands=MappingProxyType({"^ICCID": "^ICCID: {iccid}"}),
    ussd_mode_default=1,
    hooks=MappingProxyType(
        {"^USSDMODE": _huawei_ussdmode, "^CURC": _huawei_curc, "+CMMS": _huawei_cmms}
    ),
)

SIM800 = Personality(
    name="sim800",
    manufacturer="SIMCOM_Ltd",
    model="SIMCOM_SIM800L",
    revision="Revision:1418B05SIM800L24",
    transcripts=("simcom-sim800.txt",),
    storages=MappingProxyType({"SM": 30, "ME": 50, "SR": 30}),
    prompt=b"\r\n>",
    boot_urcs=((0.5, "RDY"), (1.0, "+CPIN: READY"), (2.0, "Call Ready"), (1.0, "SMS Ready")),
    sms_ready_gate=True,
    cnmi_default=(2, 1, 0, 0, 0),
)

SIM7600 = Personality(
    name="sim7600",
    manufacturer="SIMCOM INCORPORATED",
    model="SIMCOM_SIM7600G-H",
    revision="LE20B04SIM7600G22",
    transcripts=("simcom-sim7600.txt",),
    storages=MappingProxyType({"SM": 30, "ME": 180, "SR": 30}),
    prompt=b"\r\n>",
    boot_urcs=((0.5, "RDY"), (1.0, "+CPIN: READY"), (2.0, "SMS DONE"), (1.0, "PB DONE")),
    sms_ready_gate=True,
    iccid_commands=MappingProxyType({"+CICCID": "+ICCID: {iccid}", "+CCID": "+CCID: {iccid}"}),
    hooks=MappingProxyType({"&V": _simcom_profile}),
)

QUECTEL_EC25 = Personality(
    name="ec25",
    manufacturer="Quectel",
    model="EC25",
    revision="EC25EFAR06A10M4G",
    transcripts=("quectel-ec25.txt", "quectel-ec21.txt"),
    index_base=0,
    storages=MappingProxyType({"SM": 50, "ME": 255, "SR": 50}),
    report_label="SM",
    boot_urcs=((0.5, "RDY"), (1.0, "+CPIN: READY"), (0.5, "+QUSIM: 1"), (2.0, "+QIND: SMS DONE")),
    iccid_commands=MappingProxyType({"+QCCID": "+QCCID: {iccid}", "+CCID": "+CCID: {iccid}"}),
)

WAVECOM = Personality(
    name="wavecom",
    manufacturer=" WAVECOM MODEM",
    model=" MULTIBAND  900E  1800 ",
    revision="641b09gg.Q2403A 1320676 061804 14:38",
    transcripts=("wavecom-multiband-900e-1800.txt",),
    storages=MappingProxyType({"SM": 50, "SR": 50}),
    has_mt=False,
    cpms_test='+CPMS: (("SM","BM","SR"),("SM"))',
    cpin_final=None,
    busy_after_cfun=2,
    cpms_allowed=(("SM", "BM", "SR"), ("SM",)),
    hooks=MappingProxyType({"+WIND": _wavecom_wind, "+CGMR": _wavecom_cgmr}),
)


def _sierra_cops(modem: Firmware, kind: str, args: str) -> Answer | None:
    if kind == "test":  # the empty last list closed with ",)" (sierra-wireless.txt, AirCard 881)
        return _answer('+COPS: (2,"smsgw emulated","smsgw","00101",0),,(0,1,2,3,4),)')
    return None


def _sierra_creg(modem: Firmware, kind: str, args: str) -> Answer | None:
    if kind == "read" and modem.creg_n == 1 and modem.registered:
        return _answer("+CREG: 1,1,84CD,00D30173")  # unquoted hex LAC/CI (USBConnect Mercury)
    return None


def _sierra_cmer(modem: Firmware, kind: str, args: str) -> Answer | None:
    if kind == "test":
        return _answer("+CMER: 1,0,0,(0-1),0")  # bare values instead of ranges (EM7345)
    return _answer()


ZTE = Personality(
    name="zte",
    manufacturer="ZTE INCORPORATED",
    model="K3565-Z",
    revision="BD_P673A2V1.0.0B09",
    transcripts=("zte-k3565z.txt", "zte-mf180.txt", "zte-mf626.txt"),
    storages=MappingProxyType({"SM": 50, "ME": 100, "SR": 100}),
    cpms_read_spaces=True,
    sim_busy_seconds=2.0,  # qualcomm-m6280-zte.txt: AT+CSCA? -> +CME ERROR: 14, then the answer
    noise=("+ZUSIMR:2",),
    noise_interval=5.0,
    iccid_commands=MappingProxyType({"+ZGETICCID": "+ZGETICCID: {iccid}"}),
    hooks=MappingProxyType({"+CFUN": _zte_cfun_read, "+ZPAS": _zte_zpas, "+CVHU": _zte_cvhu}),
)

SIERRA = replace(
    WAVECOM,
    name="sierra",
    manufacturer="Sierra Wireless, Incorporated",
    model="MC8775",
    revision="K2_0_7_35AP C:/WS/FW/K2_0_7_35AP/MSM6280/SRC 2008/06/19 18:49:01",
    transcripts=("sierra-wireless.txt",),
    cscs_test='+CSCS: ("IRA","GSM","UCS2","PCCP437")',
    busy_after_cfun=0,
    hooks=MappingProxyType({"+COPS": _sierra_cops, "+CREG": _sierra_creg, "+CMER": _sierra_cmer}),
)

QUECTEL_M35 = Personality(
    name="m35",
    manufacturer="Quectel_Ltd",
    model="Quectel_M35",
    revision="M35AR01A09",
    transcripts=("quectel-m35.txt",),
    storages=MappingProxyType({"SM": 30, "ME": 50, "SR": 30}),
    unknown_cme=100,
    ussd_ucs2_hex=True,
    boot_urcs=((0.5, "RDY"), (1.0, "+CPIN: READY"), (2.0, "Call Ready"), (1.0, "SMS Ready")),
)


def _cinterion_ati(modem: Firmware, kind: str, args: str) -> Answer | None:
    if args == "5":
        return _answer()  # MC35i: ATI5 is just OK (siemens-cinterion.txt)
    return None


def _cinterion_test(answer: str) -> Hook:
    def hook(modem: Firmware, kind: str, args: str) -> Answer | None:
        return _answer(answer) if kind == "test" else _answer()

    return hook


def _cinterion_creg(modem: Firmware, kind: str, args: str) -> Answer | None:
    if kind == "read" and modem.creg_n == 0 and modem.registered:
        return _answer('+CREG: 0,1,"5E25","605F"')  # location shown although n=0 (quirk 25)
    return None


CINTERION = Personality(
    name="cinterion",
    manufacturer="SIEMENS",
    model="MC35i",
    revision="REVISION 02.00",
    transcripts=("siemens-cinterion.txt",),
    storages=MappingProxyType({"SM": 20, "ME": 25}),
    cpms_test='+CPMS: ("MT","SM","ME"),("MT","SM","ME"),("MT","SM")',
    cpms_allowed=(("MT", "SM", "ME"), ("MT", "SM", "ME"), ("MT", "SM")),  # mem3 cannot be ME
    boot_urcs=((0.5, "^SYSSTART"),),  # Cinterion's ready URC (vendor AT manual)
    hooks=MappingProxyType(
        {
            "I": _cinterion_ati,
            "+CREG": _cinterion_creg,
            "+CMER": _cinterion_test("+CMER: (0-3),(0),(0),(0-1),(0-1)"),
            "+CGDCONT": _cinterion_test('+CGDCONT: (1-17,101-116),"IP",,,(0),(0-4)'),
            "+WS46": _cinterion_test("+WS46: (12,22,25,28,29)"),
        }
    ),
)

PERSONALITIES: Mapping[str, Personality] = MappingProxyType(
    {
        p.name: p
        for p in (
            GENERIC,
            HUAWEI,
            SIM800,
            SIM7600,
            QUECTEL_EC25,
            QUECTEL_M35,
            WAVECOM,
            SIERRA,
            ZTE,
            CINTERION,
        )
    }
)


def get_personality(name: str) -> Personality:
    """Look a personality up by name; raise KeyError listing the known names."""
    try:
        return PERSONALITIES[name.lower()]
    except KeyError:
        raise KeyError(f"unknown personality {name!r}; known: {', '.join(PERSONALITIES)}") from None
