"""Hot-plug: watch /dev/smsgw and /dev/serial/by-id, probe new ports, let vanished ones go.

udev (udev/90-smsgw.rules) names each known modem's AT port /dev/smsgw/<vendor>-<serial>-if<NN>
and removes the link when the stick is pulled; /dev/serial/by-id covers everything else. The
poller lists those directories (cheap, and it also catches what happened while the daemon was
down); pyudev, where installed, only wakes it early. A new port is probed (AT, then the SIM's
ICCID) and handed to the gateway as a worker; the worker binds the SIM by ICCID, so a SIM that
moved to another USB port comes back as the same SIM with its counters, throttle state and
queued messages. Two AT ports of one modem (Huawei's PPP and PCUI ports both answer AT) show
the same ICCID: only the first is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from modem.client import ClientConfig, ModemClient, Timeouts
from modem.errors import ModemError

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
REPROBE_SECONDS = 60.0  # a port that did not answer AT (still booting, not a modem) is retried
PROBE_TIMEOUT = 45.0


class PortRole(StrEnum):
    """What discovery decided about one port."""

    WORKER = "worker"  # a modem's AT port, supervised by a worker
    DUPLICATE = "duplicate"  # another AT port of a SIM that already has a worker
    SILENT = "silent"  # did not answer AT / had no SIM identity; probed again later
    ALIAS = "alias"  # another name of a device already handled under its first name
    FIXED = "fixed"  # configured by hand; its worker is not ours to start or stop


@dataclass(slots=True)
class KnownPort:
    """A port discovery has seen, and what it made of it."""

    path: str
    device: str
    role: PortRole
    sim_key: str | None = None
    probed_at: float = 0.0


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What one rescan changed."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    uncertain_parts: tuple[int, ...] = ()


class Workers(Protocol):
    """What discovery needs from the gateway (gateway.daemon.Gateway)."""

    def start_worker(self, port: str, *, pin: str | None = None) -> Any:
        """Start supervising a modem on `port`."""
        ...

    async def remove_worker(self, port: str) -> list[int]:
        """Stop supervising `port`; return the parts made UNCERTAIN by its loss."""
        ...


Prober = Callable[[str], Awaitable[str | None]]


def scan_ports(dirs: Iterable[Path | str], *, unique: bool = True) -> dict[str, str]:
    """Every port link in `dirs` -> the device node it points at, in directory order.

    With `unique` the first directory that names a device wins (/dev/smsgw before
    /dev/serial/by-id), so one tty is listed once; dangling links (a stick being pulled) are
    skipped.
    """
    found: dict[str, str] = {}
    devices: set[str] = set()
    for directory in dirs:
        try:
            names = sorted(os.listdir(directory))
        except OSError:  # not there (no modem ever plugged in), or not a directory
            continue
        for name in names:
            path = os.path.join(directory, name)
            device = os.path.realpath(path)
            if (unique and device in devices) or not os.path.exists(device):
                continue
            devices.add(device)
            found[path] = device
    return found


def scan_all_ports(dirs: Iterable[Path | str]) -> dict[str, str]:
    """Every name of every port (discovery keeps one per device itself)."""
    return scan_ports(dirs, unique=False)


async def probe_port(port: str) -> str | None:
    """Open `port`, wake the modem with AT and read its SIM's ICCID (IMSI as a fallback).

    None when nothing answers like a modem with a SIM: GPS receivers and diagnostic ports in
    /dev/serial/by-id end up here.
    """
    config = ClientConfig(
        scan_on_start=False,
        wakeup_attempts=3,
        timeouts=Timeouts(command=3.0, wakeup=1.0),
    )
    client = ModemClient(port, config=config)
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await client.open(initialise=False)
            identity = await client.identity()
    except (ModemError, OSError, TimeoutError) as exc:
        log.info("%s: not a usable modem port (%s)", port, exc)
        return None
    finally:
        await client.close()
    key = identity.iccid or (f"imsi:{identity.imsi}" if identity.imsi else None)
    if key is None:
        log.info("%s: answers AT but reports no SIM identity", port)
    return key


class UdevWakeup:
    """Wakes the poller when udev reports a tty event (needs pyudev; a no-op without it)."""

    def __init__(self, monitor: Any | None = None) -> None:
        self.monitor = monitor
        self.event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def create(cls) -> UdevWakeup:
        """A wake-up on udev's netlink monitor if pyudev is installed, else an idle one."""
        try:
            import pyudev  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            return cls(None)
        try:
            monitor = pyudev.Monitor.from_netlink(pyudev.Context())
            monitor.filter_by("tty")
            monitor.start()
        except (OSError, ValueError) as exc:  # no netlink in this sandbox: polling alone
            log.info("udev monitor unavailable (%s); polling only", exc)
            return cls(None)
        return cls(monitor)

    def start(self) -> None:
        """Watch the monitor's socket from the running loop."""
        if self.monitor is None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.monitor.fileno(), self._readable)

    def _readable(self) -> None:
        # Drain every queued uevent; their content does not matter, only that something changed.
        while self.monitor is not None and self.monitor.poll(timeout=0) is not None:
            pass
        self.event.set()

    def stop(self) -> None:
        """Stop watching."""
        if self.monitor is not None and self._loop is not None:
            self._loop.remove_reader(self.monitor.fileno())
            self._loop = None


@dataclass
class Discovery:
    """Keeps the gateway's workers in step with the modem ports that exist."""

    workers: Workers
    dirs: Sequence[Path | str]
    probe: Prober = probe_port
    scan: Callable[[Sequence[Path | str]], dict[str, str]] = scan_all_ports
    monotonic: Callable[[], float] = field(default_factory=lambda: asyncio.get_running_loop().time)
    poll_seconds: float = POLL_SECONDS
    reprobe_seconds: float = REPROBE_SECONDS
    fixed: Sequence[str] = ()
    wakeup: UdevWakeup | None = None
    known: dict[str, KnownPort] = field(default_factory=dict)

    @classmethod
    def for_gateway(
        cls, workers: Workers, dirs: Sequence[Path | str], *, fixed: Sequence[str] = ()
    ) -> Discovery:
        """Discovery with the real prober, the loop's clock and a udev wake-up if available."""
        return cls(workers, dirs, fixed=fixed, wakeup=UdevWakeup.create())

    def _fixed_devices(self) -> set[str]:
        return {os.path.realpath(p) for p in self.fixed if not p.startswith("socket://")}

    def _sims_in_use(self) -> set[str]:
        return {k.sim_key for k in self.known.values() if k.role is PortRole.WORKER and k.sim_key}

    async def rescan(self) -> ScanResult:
        """Compare the ports that exist with the ones we know; act on the difference."""
        present = self.scan(self.dirs)
        removed: list[str] = []
        uncertain: list[int] = []
        # Removals first: a SIM moved to another port must be let go before it is taken again.
        for path, port in list(self.known.items()):
            if path not in self.known or present.get(path) == port.device:
                continue
            del self.known[path]
            # Other names of the same tty (a by-id link when udev dropped the /dev/smsgw one)
            # are looked at afresh below.
            for alias in [k for k, v in self.known.items() if v.role is PortRole.ALIAS]:
                if self.known[alias].device == port.device:
                    del self.known[alias]
            if port.role is PortRole.WORKER:
                uncertain.extend(await self.workers.remove_worker(path))
                removed.append(path)
                log.info("%s: modem gone", path)
                # Other AT ports of the same SIM may take over: let them be probed again.
                for other in self.known.values():
                    if other.role is PortRole.DUPLICATE and other.sim_key == port.sim_key:
                        other.role, other.probed_at = PortRole.SILENT, float("-inf")
        added: list[str] = []
        ignored: list[str] = []
        fixed = self._fixed_devices()
        now = self.monotonic()
        for path, device in present.items():
            seen = self.known.get(path)
            if seen is not None and not (
                seen.role is PortRole.SILENT and now - seen.probed_at >= self.reprobe_seconds
            ):
                continue
            if device in fixed:
                self.known[path] = KnownPort(path, device, PortRole.FIXED)
                continue
            if seen is None and any(
                k.device == device and k.role is not PortRole.ALIAS for k in self.known.values()
            ):
                # One tty, two names (/dev/smsgw and /dev/serial/by-id): keep the one in use.
                self.known[path] = KnownPort(path, device, PortRole.ALIAS)
                continue
            key = await self.probe(path)
            if key is None:
                self.known[path] = KnownPort(path, device, PortRole.SILENT, probed_at=now)
                ignored.append(path)
            elif key in self._sims_in_use():
                self.known[path] = KnownPort(path, device, PortRole.DUPLICATE, key, now)
                ignored.append(path)
                log.info("%s: another AT port of a SIM already in use", path)
            else:
                self.known[path] = KnownPort(path, device, PortRole.WORKER, key, now)
                self.workers.start_worker(path)
                added.append(path)
                log.info("%s: new modem", path)
        return ScanResult(tuple(added), tuple(removed), tuple(ignored), tuple(uncertain))

    async def run(self, stop: asyncio.Event) -> None:
        """Rescan every poll_seconds (sooner on a udev event) until `stop` is set."""
        if self.wakeup is not None:
            self.wakeup.start()
        try:
            while not stop.is_set():
                if self.wakeup is not None:
                    # Cleared before the scan: a uevent that lands during it triggers another.
                    self.wakeup.event.clear()
                try:
                    await self.rescan()
                except Exception:  # a bug here must not end hot-plug for good
                    log.exception("hot-plug rescan failed")
                await self._wait(stop)
        finally:
            if self.wakeup is not None:
                self.wakeup.stop()

    async def _wait(self, stop: asyncio.Event) -> None:
        waits = [asyncio.ensure_future(stop.wait())]
        if self.wakeup is not None:
            waits.append(asyncio.ensure_future(self.wakeup.event.wait()))
        try:
            await asyncio.wait(waits, timeout=self.poll_seconds, return_when="FIRST_COMPLETED")
        finally:
            for w in waits:
                w.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*waits, return_exceptions=True)
