"""Vendor profiles: selection from +CGMI/+CGMM/USB ids, CNMI fallback chain, storage choices."""

from __future__ import annotations

import pytest

from modem import quirks
from modem.at.parsers import parse_cnmi_test, parse_cpms_test


@pytest.mark.parametrize(
    ("manufacturer", "model", "usb", "name"),
    [
        ("huawei", "E1752", None, "huawei"),
        ("ZTE INCORPORATED", "K3565-Z", None, "zte"),
        ("ZTE CORPORATION", "MF180", None, "zte"),
        ("QUALCOMM INCORPORATED", "M6280", None, "qualcomm"),
        ("Quectel", "EC25", None, "quectel"),
        ("SIMCOM INCORPORATED", "SIMCOM_SIM7600G-H", None, "simcom"),
        ("", "SIMCOM_SIM7000G", None, "simcom"),
        ("WAVECOM MODEM", "MULTIBAND  900E  1800", None, "wavecom"),
        ("Sierra Wireless, Incorporated", "MC8775", None, "sierra"),
        ("SIEMENS", "MC35i", None, "cinterion"),
        ("u-blox", "SARA-G450", None, "ublox"),
        (None, None, "12d1:1001", "huawei"),
        (None, None, "2C7C:0125", "quectel"),
        ("smsgw", "Emulated GSM Modem", None, "generic"),
        (None, None, None, "generic"),
    ],
)
def test_profile_selection(
    manufacturer: str | None, model: str | None, usb: str | None, name: str
) -> None:
    assert quirks.select_profile(manufacturer, model, usb).name == name


def test_profiles_carry_the_documented_quirks() -> None:
    assert quirks.WAVECOM.cpin_without_ok
    assert quirks.HUAWEI.ussd_mode_command == "^USSDMODE=0"
    assert quirks.QUECTEL.index_base == 0
    assert quirks.report_storage(quirks.QUECTEL, "SM") == "SR"
    assert quirks.report_storage(quirks.GENERIC, "sm") == "SM"
    assert quirks.report_storage(quirks.GENERIC, None) is None
    assert "SMS READY" in quirks.SIMCOM.readiness_urcs


def test_cnmi_chain_follows_the_test_answer() -> None:
    everything = parse_cnmi_test(["+CNMI: (0-3),(0-3),(0-3),(0-2),(0,1)"])
    assert quirks.cnmi_candidates(quirks.GENERIC, everything)[:3] == [
        (2, 1, 2, 1, 0),
        (2, 1, 0, 2, 0),
        (2, 1, 0, 1, 0),
    ]
    # gammu at-cnmi/01: bm only 0/2, ds only 0/1 -> 2,1,0,2,0 is dropped.
    limited = parse_cnmi_test(["+CNMI: (2),(0-1,3),(0,2),(0-1),(0)"])
    assert quirks.cnmi_candidates(quirks.GENERIC, limited) == [
        (2, 1, 2, 1, 0),
        (2, 1, 0, 1, 0),
        (2, 1, 0, 0, 0),
    ]
    # no reports at all, mode 1 only: +CMTI only, then polling.
    bare = parse_cnmi_test(["+CNMI: (1),(0,1),(0),(0),(0)"])
    assert quirks.cnmi_candidates(quirks.GENERIC, bare) == [(1, 1, 0, 0, 0)]
    nothing = parse_cnmi_test(["+CNMI: (0),(0),(0),(0),(0)"])
    assert quirks.cnmi_candidates(quirks.GENERIC, nothing) == []
    assert quirks.cnmi_candidates(quirks.QUECTEL, None)[0] == (2, 1, 0, 1, 0)


def test_storage_choice_and_scan_list() -> None:
    wavecom = parse_cpms_test(['+CPMS: (("SM","BM","SR"),("SM"))'])
    assert quirks.choose_storages(wavecom) == ("SM", "SM", "SM")
    assert quirks.readable_storages(wavecom) == ("SM", "SR")
    cinterion = parse_cpms_test(['+CPMS: ("ME","MT"),("ME","SM","MT"),("SM","MT")'])
    assert quirks.choose_storages(cinterion) == ("ME", "SM", "SM")
    assert quirks.choose_storages(()) == ("SM", "SM", "SM")
    assert quirks.readable_storages(()) == ("SM",)
