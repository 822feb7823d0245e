"""Run `udevadm test` against synthetic USB modems: a fake /sys in a private mount namespace.

udev 252 has no `udevadm verify` (v254+), and a container has no USB modems, so this builds the
sysfs tree a USB modem's tty would have (usb_device -> usb_interface -> usb-serial port -> tty),
bind-mounts it over /sys and our rules over the rules directories (in `unshare -m`, so the host
sees nothing), and runs udev's own rule engine on it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

PCI = "devices/pci0000:00/0000:00:14.0"


@dataclass(frozen=True, slots=True)
class FakePort:
    """One tty of a synthetic USB modem."""

    vendor: str
    product: str
    interface: int
    serial: str | None = "0123456789"
    if_class: str = "ff"
    if_subclass: str = "ff"
    if_protocol: str = "ff"
    tty: str = "ttyUSB0"
    bus_port: str = "1-1"
    hsotype: str | None = None


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _link(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_symlink():
        os.symlink(target, path)


def build_sysfs(root: Path, port: FakePort) -> str:
    """Create the sysfs tree of `port` under `root` (mounted on /sys later); return its devpath."""
    for sub in ("bus/usb", "bus/usb-serial", "class/tty"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "bus/pci").mkdir(parents=True, exist_ok=True)
    pci = root / PCI
    _write(pci / "uevent", "DRIVER=xhci_hcd\nPCI_SLOT_NAME=0000:00:14.0\n")
    _link(pci / "subsystem", "/sys/bus/pci")
    hub = pci / "usb1"
    _write(hub / "uevent", "DEVTYPE=usb_device\nDRIVER=usb\n")
    _link(hub / "subsystem", "/sys/bus/usb")
    usbdev = hub / port.bus_port
    _write(usbdev / "idVendor", port.vendor + "\n")
    _write(usbdev / "idProduct", port.product + "\n")
    _write(usbdev / "bcdDevice", "0100\n")
    _write(usbdev / "manufacturer", "Synthetic\n")
    _write(usbdev / "product", "Test modem\n")
    _write(usbdev / "busnum", "1\n")
    _write(usbdev / "devnum", "2\n")
    if port.serial is not None:
        _write(usbdev / "serial", port.serial + "\n")
    _write(usbdev / "uevent", "DEVTYPE=usb_device\nDRIVER=usb\n")
    _link(usbdev / "subsystem", "/sys/bus/usb")
    iface = usbdev / f"{port.bus_port}:1.{port.interface}"
    _write(iface / "bInterfaceNumber", f"{port.interface:02x}\n")
    _write(iface / "bInterfaceClass", port.if_class + "\n")
    _write(iface / "bInterfaceSubClass", port.if_subclass + "\n")
    _write(iface / "bInterfaceProtocol", port.if_protocol + "\n")
    _write(iface / "bAlternateSetting", " 0\n")
    _write(iface / "uevent", "DEVTYPE=usb_interface\nDRIVER=option\n")
    _link(iface / "subsystem", "/sys/bus/usb")
    serial_port = iface / port.tty
    _write(serial_port / "uevent", "DRIVER=option1\n")
    _link(serial_port / "subsystem", "/sys/bus/usb-serial")
    tty = serial_port / "tty" / port.tty
    number = int(re.sub(r"\D", "", port.tty) or 0)
    _write(tty / "dev", f"188:{number}\n")
    _write(tty / "uevent", f"MAJOR=188\nMINOR={number}\nDEVNAME={port.tty}\n")
    if port.hsotype is not None:
        _write(tty / "hsotype", port.hsotype + "\n")
    _link(tty / "subsystem", "/sys/class/tty")
    return "/" + str(tty.relative_to(root))


@dataclass(frozen=True, slots=True)
class UdevResult:
    """What udev's rule engine decided for one synthetic device."""

    properties: dict[str, str]
    log: str
    returncode: int

    @property
    def links(self) -> list[str]:
        """The /dev symlinks udev would create."""
        return self.properties.get("DEVLINKS", "").split()


def udevadm() -> str:
    """Path of udevadm (the udev package); raises with the fix when it is missing."""
    found = shutil.which("udevadm") or (
        "/usr/bin/udevadm" if os.path.exists("/usr/bin/udevadm") else None
    )
    if found is None:
        raise RuntimeError("udevadm is missing: `make apt` installs the udev package")
    return found


def run_udev_test(rules: Path, port: FakePort, workdir: Path) -> UdevResult:
    """`udevadm test --action=add` of `port` with only `rules` loaded."""
    sysroot = workdir / "sys"
    devpath = build_sysfs(sysroot, port)
    rules_dir = workdir / "rules.d"
    rules_dir.mkdir(exist_ok=True)
    shutil.copy(rules, rules_dir / rules.name)
    empty = workdir / "empty"
    empty.mkdir(exist_ok=True)
    devdir = workdir / "dev"
    devdir.mkdir(exist_ok=True)
    script = "\n".join(
        [
            "set -e",
            f"mount --bind {sysroot} /sys",
            f"mount --bind {rules_dir} /etc/udev/rules.d",
            *(
                f"[ -d {d} ] && mount --bind {empty} {d}"
                for d in ("/usr/lib/udev/rules.d", "/lib/udev/rules.d")
            ),
            # udevadm test really writes links and its database: keep them in the namespace.
            f"mount --bind {devdir} /dev",
            "mount -t tmpfs tmpfs /run",
            f"SYSTEMD_DEVICE_VERIFY_SYSFS=0 exec {udevadm()} test --action=add {devpath}",
        ]
    )
    # `[ -d x ] && mount` returns 1 when x is absent: wrap each in `|| true` under set -e.
    script = re.sub(r"^(\[ -d .*)$", r"\1 || true", script, flags=re.M)
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = proc.stdout + proc.stderr
    properties: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key):
            properties[key] = value
    return UdevResult(properties, output, proc.returncode)


def rule_problems(result: UdevResult, rules_name: str) -> list[str]:
    """Lines where udev complains about our rules file (syntax errors, unknown keys)."""
    bad = re.compile(r"invalid|unknown|error|failed to|ignoring", re.I)
    return [line for line in result.log.splitlines() if rules_name in line and bad.search(line)]


def udev_version() -> int:
    """udev's version number (252 on Debian 12)."""
    out = subprocess.run([udevadm(), "--version"], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def udevadm_verify(rules: Path) -> subprocess.CompletedProcess[str] | None:
    """`udevadm verify` of a rules file (udev 254+); None on an older udev without the verb."""
    if udev_version() < 254:
        return None
    return subprocess.run(
        [udevadm(), "verify", "--resolve-names=never", str(rules)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
