"""`smsgw doctor` on a fake filesystem root with fake commands and modem probes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from gateway.appliance.doctor import DiskUsage, Doctor, Finding, ModemHealth, Status
from gateway.appliance.install import RULES_PATH, CommandResult, asset
from gateway.cli import main
from gateway.store import DATABASE_NAME, Store

GB = 1024**3
PORT_LINK = "dev/smsgw/quectel-SN1-if02"


def healthy_root(tmp_path: Path) -> Path:
    """What `smsgw install` and a plugged-in modem leave behind."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\nsmsgw:x:999:995::/var/lib/smsgw:/usr/sbin/nologin\n"
    )
    (root / "etc/group").write_text("root:x:0:\ndialout:x:20:smsgw\nsmsgw:x:995:\n")
    (root / "dev/smsgw").mkdir(parents=True)
    (root / "dev/ttyUSB2").write_text("")
    (root / PORT_LINK).symlink_to(root / "dev/ttyUSB2")
    (root / "var/lib/smsgw").mkdir(parents=True)
    return root


class Commands:
    """Fake systemctl/udevadm/timedatectl: answers by the command's first words."""

    def __init__(self, answers: dict[str, str] | None = None) -> None:
        self.answers = {
            "systemctl is-active ModemManager": "inactive",
            "systemctl is-active smsgw": "inactive",
            "timedatectl show": "yes",
            "udevadm info": "DEVNAME=/dev/ttyUSB2\nID_MM_DEVICE_IGNORE=1",
            **(answers or {}),
        }
        self.seen: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> CommandResult:
        self.seen.append(list(argv))
        line = " ".join(argv)
        for prefix, answer in self.answers.items():
            if line.startswith(prefix):
                return CommandResult(0, answer + "\n")
        return CommandResult(127)


def good_modem(port: str) -> ModemHealth:
    return ModemHealth(port, pin_state="READY", signal_dbm=-71, registered=True)


def run_doctor(root: Path, probes: list[str] | None = None, **overrides: object) -> list[Finding]:
    probes = [] if probes is None else probes

    async def probe(port: str) -> ModemHealth:
        probes.append(port)
        maker = overrides.get("modem", good_modem)
        return maker(port)  # type: ignore[operator, no-any-return]

    doctor = Doctor(
        root=root,
        config_path=Path("/etc/smsgw/smsgw.toml"),
        runner=overrides.get("commands", Commands()),  # type: ignore[arg-type]
        probe=probe,
        disk_usage=overrides.get("disk", lambda _: DiskUsage(32 * GB, 8 * GB, 24 * GB)),  # type: ignore[arg-type]
        use_commands=True,
    )
    return asyncio.run(doctor.run())


def problems(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings if f.status is Status.PROBLEM}


def test_healthy_appliance_has_no_problems(tmp_path: Path) -> None:
    root = healthy_root(tmp_path)
    store = Store.open(root / "var/lib/smsgw")
    store.close()
    files = sorted(p.name for p in (root / "var/lib/smsgw").iterdir())
    findings = run_doctor(root)
    assert problems(findings) == {}
    checks = {f.check for f in findings}
    assert {"config", "user", "ports", "modemmanager", "clock", "disk", "database"} <= checks
    modem = [f.detail for f in findings if f.check == f"modem {root / PORT_LINK}"]
    assert modem == [
        "SIM ready (no PIN needed or already entered)",
        "signal -71 dBm",
        "registered on the network",
    ]
    assert any("passes the integrity check" in f.detail for f in findings)
    # Checking created no -wal/-shm files (root-owned ones would lock the service out).
    assert sorted(p.name for p in (root / "var/lib/smsgw").iterdir()) == files
    assert DATABASE_NAME in files


def test_missing_user_and_dialout(tmp_path: Path) -> None:
    root = healthy_root(tmp_path)
    (root / "etc/group").write_text("root:x:0:\ndialout:x:20:\nsmsgw:x:995:\n")
    found = problems(run_doctor(root))
    assert "usermod --append --groups dialout smsgw" in found["user"].fix
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    assert problems(run_doctor(root))["user"].fix == "sudo smsgw install"


def test_no_ports(tmp_path: Path) -> None:
    root = healthy_root(tmp_path)
    (root / PORT_LINK).unlink()
    found = problems(run_doctor(root))
    assert "no modem ports" in found["ports"].detail
    assert "usb_modeswitch" in found["ports"].fix


def test_modemmanager_without_our_rules_or_grabbing_a_port(tmp_path: Path) -> None:
    root = healthy_root(tmp_path)
    (root / "usr/sbin").mkdir(parents=True)
    (root / "usr/sbin/ModemManager").write_text("")
    running = Commands({"systemctl is-active ModemManager": "active"})
    found = problems(run_doctor(root, commands=running))
    assert "nothing tells it to leave our modems alone" in found["modemmanager"].detail
    assert "smsgw install" in found["modemmanager"].fix

    (root / RULES_PATH).parent.mkdir(parents=True)
    (root / RULES_PATH).write_text(asset("udev/90-smsgw.rules").read_text())
    assert "modemmanager" not in problems(run_doctor(root, commands=running))
    grabbing = Commands(
        {"systemctl is-active ModemManager": "active", "udevadm info": "DEVNAME=/dev/ttyUSB2"}
    )
    found = problems(run_doctor(root, commands=grabbing))
    assert "may use" in found["modemmanager"].detail
    assert "ID_MM_DEVICE_IGNORE" in found["modemmanager"].fix


def test_sim_pin_weak_signal_and_no_registration(tmp_path: Path) -> None:
    root = healthy_root(tmp_path)
    port = str(root / PORT_LINK)
    found = problems(run_doctor(root, modem=lambda p: ModemHealth(p, pin_state="SIM PIN")))
    assert found[f"modem {port}"].detail == "SIM state SIM PIN"
    assert "pin = " in found[f"modem {port}"].fix

    findings = run_doctor(root, modem=lambda p: ModemHealth(p, "READY", -111, False))
    details = [f.detail for f in findings if f.status is Status.PROBLEM]
    assert details == ["signal too weak (-111 dBm)", "not registered on the network"]

    found = problems(run_doctor(root, modem=lambda p: ModemHealth(p, error="no answer to AT")))
    assert "no AT answer" in found[f"modem {port}"].detail


def test_running_daemon_owns_the_ports(tmp_path: Path) -> None:
    root = healthy_root(tmp_path)
    probes: list[str] = []
    findings = run_doctor(root, probes, commands=Commands({"systemctl is-active smsgw": "active"}))
    assert probes == []  # never opens a port the daemon is using
    assert any(f.check == "modems" and "owns the ports" in f.detail for f in findings)


def test_clock_disk_and_database(tmp_path: Path) -> None:
    root = healthy_root(tmp_path)
    (root / "var/lib/smsgw" / DATABASE_NAME).write_bytes(b"this is not a database" * 100)
    found = problems(
        run_doctor(
            root,
            commands=Commands({"timedatectl show": "no"}),
            disk=lambda _: DiskUsage(32 * GB, 32 * GB - 50 * 1024**2, 50 * 1024**2),
        )
    )
    assert "timedatectl set-ntp true" in found["clock"].fix
    assert found["disk"].detail == "only 50 MB free under /var/lib/smsgw"
    assert found["database"].detail.endswith("not an SQLite database (bad file header)")
    assert ".recover" in found["database"].fix


def test_corrupted_database_page_is_found(tmp_path: Path) -> None:
    root = healthy_root(tmp_path)
    store = Store.open(root / "var/lib/smsgw")
    for i in range(200):
        store.bind_sim(iccid=f"8944{i:015d}", imsi=None, now=datetime.now(UTC))
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    db = root / "var/lib/smsgw" / DATABASE_NAME
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) > 3 * page
    for start in range(page, len(data), page):  # torn writes: every b-tree page header but 1
        data[start : start + 8] = b"\xff" * 8
    db.write_bytes(bytes(data))
    assert "database" in problems(run_doctor(root))


def test_cli_prints_each_problem_with_its_fix_and_exits_1(tmp_path: Path) -> None:
    root = healthy_root(tmp_path)
    (root / PORT_LINK).unlink()
    result = CliRunner().invoke(main, ["doctor", "--root", str(root)])
    assert result.exit_code == 1
    assert "[FAIL] ports: no modem ports" in result.output
    assert "       fix: plug a modem in" in result.output
    assert result.output.rstrip().endswith("problem(s) found")
