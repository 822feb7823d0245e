"""systemd/smsgw.service: systemd's own checks (`systemd-analyze verify` and `security`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.appliance import sdnotify
from gateway.appliance.install import asset, render_unit
from gateway.leases import EXIT_BOX_TAKEN

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


def stub_executable(tmp_path: Path, directory: str = "opt/smsgw/bin") -> str:
    """An executable standing in for smsgw (verify checks that ExecStart's exists); injected,
    so the result does not depend on where the checkout and its venv live."""
    path = tmp_path / directory / "smsgw"
    path.parent.mkdir(parents=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def rendered(tmp_path: Path, text: str | None = None, executable: str | None = None) -> Path:
    """The unit as `smsgw install` writes it."""
    target = tmp_path / "smsgw.service"
    exe = executable or stub_executable(tmp_path)
    target.write_text(render_unit(text or UNIT.read_text(), exe))
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
    # A daemon whose box_id another took stops with its own status: not restarted into it.
    assert one["Service.RestartPreventExitStatus"] == str(EXIT_BOX_TAKEN)
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


def test_an_executable_under_a_path_with_blanks_and_percent_signs_verifies(
    tmp_path: Path,
) -> None:
    # e.g. a venv in "/srv/SMS gateway" or "/opt/100%": unquoted, systemd would split the
    # first and expand the second as a specifier (verify then finds no such executable).
    exe = stub_executable(tmp_path, "srv/SMS gateway/100%d $HOME/bin")
    unit = rendered(tmp_path, executable=exe)
    assert '"' in unit.read_text() and "%%d" in unit.read_text()
    result = verify(unit)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


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
