"""`smsgw doctor`: find what keeps the appliance from sending, and say how to fix each thing."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

from gateway.appliance.discovery import scan_ports
from gateway.appliance.install import (
    RULES_PATH,
    USER,
    CommandResult,
    Runner,
    group_id,
    group_members,
    passwd_entry,
    run_command,
)
from gateway.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load
from gateway.store import DATABASE_NAME, Store
from modem.at.commands import READ_PIN
from modem.at.parsers import parse_cpin
from modem.client import ClientConfig, ModemClient, Timeouts
from modem.errors import ModemError

MIN_FREE_BYTES = 200 * 1024 * 1024
MIN_FREE_FRACTION = 0.05
MIN_SIGNAL_DBM = -109  # +CSQ 2: below it sends mostly fail with CMS 38/42 (as gateway.pool)
PROBE_TIMEOUT = 60.0
SQLITE_HEADER = b"SQLite format 3\x00"


class Status(StrEnum):
    """How one check came out."""

    OK = "ok"
    WARN = "warn"
    PROBLEM = "problem"


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's result, with the fix when something is wrong."""

    check: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True, slots=True)
class ModemHealth:
    """What a short AT session told about one modem."""

    port: str
    pin_state: str | None = None
    signal_dbm: int | None = None
    registered: bool | None = None
    error: str = ""


ModemProber = Callable[[str], Awaitable[ModemHealth]]


class DiskUsage(NamedTuple):
    """shutil.disk_usage's answer."""

    total: int
    used: int
    free: int


async def probe_health(port: str) -> ModemHealth:
    """Open `port` without initialising, ask PIN state, signal and registration, close."""
    config = ClientConfig(scan_on_start=False, timeouts=Timeouts(command=5.0))
    client = ModemClient(port, config=config)
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await client.open(initialise=False)
            pin = parse_cpin((await client.execute(READ_PIN)).lines)
            signal = await client.signal()
            registration = await client.registration()
    except (ModemError, OSError, TimeoutError) as exc:
        return ModemHealth(port, error=str(exc) or type(exc).__name__)
    finally:
        await client.close()
    return ModemHealth(port, pin, signal.dbm, registration.registered)


@dataclass
class Doctor:
    """Runs every check against `root` (a fake root in tests)."""

    root: Path = Path("/")
    config_path: Path = DEFAULT_CONFIG_PATH
    user: str = USER
    runner: Runner = run_command
    probe: ModemProber = probe_health
    disk_usage: Callable[[str], Any] = shutil.disk_usage
    # Ask systemctl/udevadm/timedatectl? Default: only about the running system (root "/").
    use_commands: bool | None = None
    findings: list[Finding] = field(default_factory=list)

    def under_root(self, path: Path | str) -> Path:
        """An absolute system path inside `root`."""
        return self.root / Path(path).relative_to("/") if Path(path).is_absolute() else Path(path)

    def _add(self, check: str, status: Status, detail: str, fix: str = "") -> None:
        self.findings.append(Finding(check, status, detail, fix))

    @property
    def live(self) -> bool:
        """Whether we look at the running system (commands and udev answer for it)."""
        return self.root.resolve() == Path("/")

    def _command(self, argv: Sequence[str]) -> CommandResult:
        use = self.live if self.use_commands is None else self.use_commands
        return self.runner(argv) if use else CommandResult(127, "")

    # -- the checks -------------------------------------------------------------------------------

    def load_config(self) -> Config | None:
        """Read the config file; a broken one is the first problem to fix."""
        path = self.under_root(self.config_path)
        try:
            config = load(path if path.exists() else None)
        except ConfigError as exc:
            self._add("config", Status.PROBLEM, str(exc), f"fix {self.config_path} and rerun")
            return None
        where = str(self.config_path) if path.exists() else "none (defaults)"
        self._add("config", Status.OK, f"config file: {where}")
        return config

    def check_modemmanager(self, ports: Sequence[str]) -> None:
        """ModemManager would probe our ttys and read or delete SMS: it must ignore them."""
        installed = any(
            self.under_root(p).exists() for p in ("/usr/sbin/ModemManager", "/sbin/ModemManager")
        )
        if not installed:
            self._add("modemmanager", Status.OK, "ModemManager is not installed")
            return
        active = self._command(["systemctl", "is-active", "ModemManager"]).stdout.strip()
        rules = self.under_root("/" + str(RULES_PATH))
        if not rules.is_file() or "ID_MM_DEVICE_IGNORE" not in rules.read_text():
            self._add(
                "modemmanager",
                Status.PROBLEM,
                f"ModemManager is installed ({active or 'state unknown'}) and nothing tells it "
                f"to leave our modems alone (no /{RULES_PATH})",
                "sudo smsgw install   (installs the udev rules), or "
                "sudo systemctl disable --now ModemManager",
            )
            return
        if active != "active":
            self._add("modemmanager", Status.OK, "ModemManager installed but not running")
            return
        grabbed = []
        for port in ports:
            props = self._command(["udevadm", "info", "--query=property", f"--name={port}"])
            if props.returncode == 0 and "ID_MM_DEVICE_IGNORE=1" not in props.stdout.split():
                grabbed.append(port)
        if grabbed:
            self._add(
                "modemmanager",
                Status.PROBLEM,
                f"ModemManager is running and may use {', '.join(grabbed)} "
                "(not an ID_MM_DEVICE_IGNORE modem family)",
                "sudo systemctl disable --now ModemManager, or add a udev rule with "
                'ENV{ID_MM_DEVICE_IGNORE}="1" for this modem and run '
                "sudo udevadm control --reload-rules && sudo udevadm trigger",
            )
        else:
            self._add("modemmanager", Status.OK, "ModemManager runs but ignores our modems")

    def check_dialout(self) -> None:
        """The service user must be able to open the ttys (group dialout)."""
        etc = self.under_root("/etc")
        entry = passwd_entry(etc / "passwd", self.user)
        if entry is None:
            self._add("user", Status.PROBLEM, f"no user {self.user}", "sudo smsgw install")
            return
        members = group_members(etc / "group", "dialout") or set()
        dialout_gid = group_id(etc / "group", "dialout")
        if self.user in members or entry[1] == dialout_gid:
            self._add("user", Status.OK, f"{self.user} is in group dialout")
        else:
            self._add(
                "user",
                Status.PROBLEM,
                f"{self.user} is not in group dialout: it cannot open the modem ports",
                f"sudo usermod --append --groups dialout {self.user} && "
                "sudo systemctl restart smsgw",
            )

    def find_ports(self, config: Config) -> list[str]:
        """Modem ports: the configured ones and what hot-plug would see."""
        found = list(scan_ports([self.under_root(d) for d in config.discover]))
        for modem in config.modems:
            if modem.port.startswith("socket://") or self.under_root(modem.port).exists():
                found.append(str(self.under_root(modem.port)))
            else:
                self._add(
                    "ports",
                    Status.PROBLEM,
                    f"configured modem port {modem.port} does not exist",
                    f"plug the modem in, or fix [[modem]] port in {self.config_path}",
                )
        if found:
            self._add("ports", Status.OK, f"{len(found)} modem port(s): {', '.join(found)}")
        else:
            self._add(
                "ports",
                Status.PROBLEM,
                "no modem ports in " + ", ".join(config.discover),
                "plug a modem in; `lsusb` must list it. A Huawei/ZTE stick seen only as a CD-ROM "
                "or network card (HiLink) needs usb_modeswitch to switch it to modem mode",
            )
        for port in found:
            self._check_permissions(port)
        return found

    def _check_permissions(self, port: str) -> None:
        if port.startswith("socket://"):
            return
        try:
            st = os.stat(port)
        except OSError:
            return
        dialout = group_id(self.under_root("/etc/group"), "dialout")
        if dialout is not None and (st.st_gid != dialout or not st.st_mode & stat.S_IRWXG):
            self._add(
                "ports",
                Status.WARN,
                f"{port} is not read/writable by group dialout",
                "sudo smsgw install (udev rules set GROUP=dialout MODE=0660), then replug",
            )

    async def check_modems(self, ports: Sequence[str]) -> None:
        """SIM PIN state, signal and registration of each modem."""
        if self._command(["systemctl", "is-active", "smsgw"]).stdout.strip() == "active":
            self._add(
                "modems",
                Status.OK,
                "smsgw is running and owns the ports: see GET /v1/health and /v1/sims "
                "(stop it to let doctor talk to the modems)",
            )
            return
        for port in ports:
            health = await self.probe(port)
            self._judge_modem(health)

    def _judge_modem(self, h: ModemHealth) -> None:
        name = f"modem {h.port}"
        if h.error:
            self._add(
                name, Status.PROBLEM, f"no AT answer: {h.error}",
                "is another program using the port (ModemManager, a terminal)? Replug the "
                "modem; a Huawei that hangs needs a power cycle",
            )  # fmt: skip
            return
        if h.pin_state != "READY":
            fixes = {
                "SIM PIN": f'add pin = "...." under the [[modem]] with port = "{h.port}" in '
                f"{self.config_path}",
                "SIM PUK": "the SIM is blocked: unblock it with its PUK in a phone",
            }
            self._add(
                name, Status.PROBLEM, f"SIM state {h.pin_state or 'unknown (no SIM?)'}",
                fixes.get(h.pin_state or "", "check that a SIM is inserted and seated"),
            )  # fmt: skip
            return
        self._add(name, Status.OK, "SIM ready (no PIN needed or already entered)")
        if h.signal_dbm is None or h.signal_dbm < MIN_SIGNAL_DBM:
            level = "unknown" if h.signal_dbm is None else f"{h.signal_dbm} dBm"
            self._add(
                name, Status.PROBLEM, f"signal too weak ({level})",
                "move the modem away from the box (USB extension cable) or fit an antenna",
            )  # fmt: skip
        else:
            self._add(name, Status.OK, f"signal {h.signal_dbm} dBm")
        if h.registered:
            self._add(name, Status.OK, "registered on the network")
        else:
            self._add(
                name, Status.PROBLEM, "not registered on the network",
                "check the SIM is active and has credit, and that there is coverage; "
                "`smsgw modem at PORT AT+COPS=?` lists the networks in reach",
            )  # fmt: skip

    def check_clock(self) -> None:
        """Scheduled sends and report matching use wall time: the clock must be synchronised."""
        answer = self._command(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
        synced: bool | None = None
        if answer.returncode == 0 and answer.stdout.strip() in ("yes", "no"):
            synced = answer.stdout.strip() == "yes"
        elif self.under_root("/run/systemd/timesync/synchronized").exists():
            synced = True
        if synced:
            self._add("clock", Status.OK, "system clock is NTP-synchronised")
        else:
            self._add(
                "clock", Status.PROBLEM if synced is False else Status.WARN,
                "system clock is not known to be synchronised (scheduled sends and delivery "
                "report matching use it)",
                "sudo timedatectl set-ntp true (a Raspberry Pi has no RTC: it needs network "
                "time after every boot)",
            )  # fmt: skip

    def check_disk(self, config: Config) -> None:
        """The store needs room: a full disk fails every accept."""
        where = self.under_root(config.data_dir)
        while not where.exists() and where != where.parent:
            where = where.parent
        usage = self.disk_usage(str(where))
        free_mb = usage.free // (1024 * 1024)
        if usage.free < MIN_FREE_BYTES or usage.free < usage.total * MIN_FREE_FRACTION:
            self._add(
                "disk", Status.PROBLEM, f"only {free_mb} MB free under {config.data_dir}",
                f"free space on the file system holding {config.data_dir}",
            )  # fmt: skip
        else:
            self._add("disk", Status.OK, f"{free_mb} MB free under {config.data_dir}")

    def check_database(self, config: Config) -> None:
        """SQLite's own integrity check on the store."""
        path = self.under_root(config.data_dir) / DATABASE_NAME
        if not path.exists():
            self._add("database", Status.OK, f"no database yet at {path} (made at first start)")
            return
        with path.open("rb") as f:
            header = f.read(16)
        problems = [] if header == SQLITE_HEADER else ["not an SQLite database (bad file header)"]
        if not problems:
            problems = Store.check_file(path)
        if problems:
            self._add(
                "database", Status.PROBLEM, "integrity check failed: " + "; ".join(problems[:3]),
                f"stop smsgw, keep a copy of {path}, then `sqlite3 {path} .recover | sqlite3 "
                "fixed.sqlite3` and move fixed.sqlite3 in its place (or restore a backup)",
            )  # fmt: skip
        else:
            self._add("database", Status.OK, f"{path} passes the integrity check")

    async def run(self) -> list[Finding]:
        """Every check, in the order a person would fix things."""
        self.findings = []
        config = self.load_config()
        if config is None:
            return self.findings
        self.check_dialout()
        ports = self.find_ports(config)
        self.check_modemmanager(ports)
        await self.check_modems(ports)
        self.check_clock()
        self.check_disk(config)
        self.check_database(config)
        return self.findings
