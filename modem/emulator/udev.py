"""udev's names for emulated modems: the /dev/serial/by-id and /dev/serial/by-path links a USB
modem gets on a real box, kept in a directory of the caller's choosing.

by-id names the stick (vendor, model and serial, the IMEI here): it is the same whichever USB
port the modem is plugged into. by-path names the USB port: a modem moved to another port gets
another by-path name and, like every replug, another tty. Links appear when a modem is plugged
in and vanish when it is pulled, so the gateway's hot-plug discovery sees what it would see on
the box. Loop-thread only, like the modems.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

BY_ID = "by-id"
BY_PATH = "by-path"


class SerialLinks:
    """by-id and by-path symlinks to each plugged modem's PTY; one modem per USB port."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        for sub in (BY_ID, BY_PATH):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._ports: dict[str, int] = {}  # USB port -> index of the modem in it (or on its way)

    @staticmethod
    def by_id_name(personality: str, imei: str) -> str:
        """The stick's by-id link name (udev: usb-<vendor>_<model>_<serial>-if<NN>-port0)."""
        return f"usb-smsgw-emulator_{personality}_{imei}-if00-port0"

    @staticmethod
    def by_path_name(port: str) -> str:
        """The by-path link name of USB port `port` (e.g. "1.3": hub port 3 of root port 1)."""
        return f"platform-emulator-usb-0:{port}:1.0-port0"

    def by_id(self, personality: str, imei: str) -> Path:
        """Where the stick's by-id link is while it is plugged in."""
        return self.root / BY_ID / self.by_id_name(personality, imei)

    def by_path(self, port: str) -> Path:
        """Where USB port `port`'s by-path link is while a modem is plugged into it."""
        return self.root / BY_PATH / self.by_path_name(port)

    def holder(self, port: str) -> int | None:
        """The index of the modem in USB port `port` (or about to be plugged into it)."""
        return self._ports.get(port)

    def claim(self, index: int, port: str) -> None:
        """Reserve USB port `port` for modem `index`, freeing the one it had; ValueError if
        another modem holds it."""
        holder = self._ports.get(port)
        if holder is not None and holder != index:
            raise ValueError(f"USB port {port} already holds modem {holder}")
        for taken in [p for p, i in self._ports.items() if i == index]:
            del self._ports[taken]
        self._ports[port] = index

    def plug(self, by_id_name: str, port: str, device: str) -> None:
        """The modem appeared on `device`: make its by-id and by-path links."""
        _link(self.root / BY_ID / by_id_name, device)
        _link(self.by_path(port), device)

    def unplug(self, by_id_name: str, port: str) -> None:
        """The modem was pulled: its links vanish."""
        for path in (self.root / BY_ID / by_id_name, self.by_path(port)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _link(path: Path, device: str) -> None:
    """Point `path` at `device` atomically (a reader never sees it missing or half made); the
    new link is made beside the watched directory, so a scan never lists it under a temporary
    name."""
    temporary = path.parent.parent / f".{path.parent.name}-{path.name}.new"
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    os.symlink(device, temporary)
    os.replace(temporary, path)
