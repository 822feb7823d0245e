"""udev/90-smsgw.rules checked by udev's own rule engine (`udevadm test`) on synthetic modems."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.appliance.udevsim import (
    FakePort,
    UdevResult,
    rule_problems,
    run_udev_test,
    udev_version,
    udevadm_verify,
)

RULES = Path(__file__).resolve().parents[2] / "udev" / "90-smsgw.rules"


def _run(tmp_path: Path, port: FakePort, rules: Path = RULES) -> UdevResult:
    result = run_udev_test(rules, port, tmp_path)
    assert result.returncode == 0, result.log
    return result


# (model, vendor, product, AT interface, tty, expected link prefix)
AT_PORTS = [
    ("Huawei E1750", "12d1", "1001", 2, "ttyUSB2", "huawei"),
    ("ZTE MF626", "19d2", "0031", 3, "ttyUSB3", "zte"),
    ("Quectel EC25", "2c7c", "0125", 2, "ttyUSB2", "quectel"),
    ("SIMCom SIM7600", "1e0e", "9001", 2, "ttyUSB2", "simcom"),
    ("Sierra MC7455", "1199", "9071", 3, "ttyUSB3", "sierra"),
    ("Telit LE910C1", "1bc7", "1031", 1, "ttyUSB1", "telit"),
    ("u-blox SARA-U2", "1546", "1102", 0, "ttyACM0", "ublox"),
    ("Option iCON 225", "0af0", "6971", 0, "ttyUSB0", "option"),
    ("Wavecom Fastrack", "114f", "1234", 0, "ttyACM0", "wavecom"),
]


@pytest.mark.parametrize(("model", "vid", "pid", "iface", "tty", "vendor"), AT_PORTS)
def test_at_port_gets_stable_link_group_and_mm_ignore(
    tmp_path: Path, model: str, vid: str, pid: str, iface: int, tty: str, vendor: str
) -> None:
    result = _run(tmp_path, FakePort(vid, pid, iface, serial="SN42", tty=tty))
    assert result.links == [f"/dev/smsgw/{vendor}-SN42-if{iface:02x}"], model
    assert result.properties["ID_MM_DEVICE_IGNORE"] == "1"
    log = result.log
    assert "90-smsgw.rules" in log
    assert any(line.endswith("GROUP 20") for line in log.splitlines()), "group dialout"
    assert any(line.endswith("MODE 0660") for line in log.splitlines())
    assert rule_problems(result, RULES.name) == []


def test_huawei_pcui_port_is_found_by_interface_class(tmp_path: Path) -> None:
    # E3372 in stick mode: an unlisted product id, the PCUI port is ff/02/02 on interface 2.
    port = FakePort("12d1", "1506", 2, serial="E3372", if_subclass="02", if_protocol="02")
    assert _run(tmp_path, port).links == ["/dev/smsgw/huawei-E3372-if02"]


def test_option_hso_control_port(tmp_path: Path) -> None:
    port = FakePort("0af0", "d033", 3, serial="GT1", tty="ttyHS3", hsotype="Control")
    assert _run(tmp_path, port).links == ["/dev/smsgw/option-GT1-if03"]


def test_other_ports_of_a_managed_modem_are_hidden_from_modemmanager_but_not_linked(
    tmp_path: Path,
) -> None:
    # Quectel EC25 interface 0 is the DIAG port: never an AT port, still kept from ModemManager.
    result = _run(tmp_path, FakePort("2c7c", "0125", 0, tty="ttyUSB0"))
    assert result.links == []
    assert result.properties["ID_MM_DEVICE_IGNORE"] == "1"
    assert "GROUP 20" not in result.log


def test_modem_without_serial_is_named_by_usb_path(tmp_path: Path) -> None:
    result = _run(tmp_path, FakePort("19d2", "0117", 2, serial=None, tty="ttyUSB2"))
    (link,) = result.links
    assert link.startswith("/dev/smsgw/zte-pci-0000_00_14_0-usb-")
    assert link.endswith("-if02")


def test_other_vendors_are_left_alone(tmp_path: Path) -> None:
    # An FTDI USB-serial adapter (0403): not ours, ModemManager may have it.
    result = _run(tmp_path, FakePort("0403", "6001", 0, tty="ttyUSB0"))
    assert result.links == []
    assert "ID_MM_DEVICE_IGNORE" not in result.properties


def test_the_checker_catches_a_broken_rule(tmp_path: Path) -> None:
    broken = tmp_path / "broken.rules"
    broken.write_text(RULES.read_text().replace('SYMLINK+="smsgw/', 'SYMLNK+="smsgw/'))
    work = tmp_path / "work"
    work.mkdir()
    result = _run(work, FakePort("2c7c", "0125", 2, tty="ttyUSB2"), broken)
    assert result.links == []
    assert any("Invalid key 'SYMLNK'" in p for p in rule_problems(result, "broken.rules"))


def test_udevadm_verify_where_this_udev_has_it() -> None:
    result = udevadm_verify(RULES)
    if result is None:
        # udev 252 (Debian 12) predates `udevadm verify`: the synthetic-device runs above are
        # udev's own check of every rule here.
        assert udev_version() < 254
    else:
        assert result.returncode == 0, result.stdout + result.stderr
