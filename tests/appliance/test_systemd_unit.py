"""systemd/smsgw.service: systemd's own checks (`systemd-analyze verify` and `security`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.appliance import sdnotify
from gateway.appliance.install import asset, render_unit, smsgw_executable

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "smsgw.service"
MAX_EXPOSURE = 2.0  # systemd-analyze security: 0 = locked down ... 10 = unprotected


def parse_unit(text: str) -> dict[str, list[str]]:
    """Section.Key -> every value (keys such as DeviceAllow= repeat)."""
    values: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        values.setdefault(f"{section}.{key}", []).append(value)
    return values


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        raise RuntimeError("systemd-analyze is missing: `make apt` installs the systemd package")
    return found


def rendered(tmp_path: Path, text: str | None = None) -> Path:
    """The unit as `smsgw install` writes it (ExecStart must exist for verify)."""
    target = tmp_path / "smsgw.service"
    target.write_text(render_unit(text or UNIT.read_text(), smsgw_executable()))
    return target


def verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [systemd_analyze(), "verify", str(path)],
        capture_output=True, text=True, check=False, cwd=path.parent, timeout=60,
    )  # fmt: skip


def test_unit_declares_notify_watchdog_user_and_directories() -> None:
    unit = parse_unit(UNIT.read_text())
    one = {k: v[-1] for k, v in unit.items()}
    assert one["Service.Type"] == "notify"
    assert one["Service.Restart"] == "on-failure"
    assert one["Service.User"] == "smsgw" and one["Service.SupplementaryGroups"] == "dialout"
    assert one["Service.StateDirectory"] == "smsgw"
    assert one["Service.ConfigurationDirectory"] == "smsgw"
    assert one["Service.LogsDirectory"] == "smsgw"
    assert one["Service.StandardOutput"] == "journal"
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert one[f"Service.{key}"] == "yes"
    assert one["Service.ProtectSystem"] == "strict"
    assert one["Service.DevicePolicy"] == "closed"
    assert set(unit["Service.DeviceAllow"]) >= {"char-ttyUSB rw", "char-ttyACM rw"}
    assert one["Service.RestrictAddressFamilies"].split() == [
        "AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK",
    ]  # fmt: skip
    assert unit["Service.SystemCallFilter"][0] == "@system-service"
    assert "serve" in one["Service.ExecStart"].split()


def test_daemon_pings_well_inside_watchdogsec(monkeypatch: pytest.MonkeyPatch) -> None:
    seconds = int(parse_unit(UNIT.read_text())["Service.WatchdogSec"][-1])
    monkeypatch.setenv("WATCHDOG_USEC", str(seconds * 1_000_000))
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    period = sdnotify.watchdog_period()
    assert period is not None and period * 4 == seconds


def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    result = verify(rendered(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "" and result.stdout.strip() == ""


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("Restart=on-failure", "Restartt=on-failure")
    result = verify(rendered(tmp_path, broken))
    assert "Unknown key 'Restartt'" in result.stderr  # what the clean test would trip over


def test_security_exposure_is_low(tmp_path: Path) -> None:
    unit = rendered(tmp_path)
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=true",
         f"--threshold={int(MAX_EXPOSURE * 10)}", str(unit)],
        capture_output=True, text=True, check=False, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    match = re.search(r"Overall exposure level for smsgw\.service: ([0-9.]+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE
    assert result.returncode == 0


def test_install_ships_this_unit() -> None:
    assert asset("systemd/smsgw.service").read_text() == UNIT.read_text()
