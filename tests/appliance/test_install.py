"""`smsgw install` on a fake filesystem root: what it plans, what it writes, and idempotence."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway import config as config_module
from gateway.appliance.install import (
    CONFIG_PATH,
    CONFIG_TEMPLATE,
    DATA_DIR,
    RULES_PATH,
    UNIT_PATH,
    WANTS_LINK,
    CommandResult,
    Installer,
    InstallError,
    asset,
    render_unit,
    systemd_quote,
)
from gateway.cli import main
from gateway.config import Config

REPO = Path(__file__).resolve().parents[2]


def fake_root(tmp_path: Path) -> Path:
    """A root with the accounts files of a fresh Debian: root, and group dialout."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\ndialout:x:20:\n")
    return root


class FakeSystem:
    """Records commands; useradd/usermod/systemctl enable change the fake root like the tools."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.commands: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> CommandResult:
        argv = list(argv)
        self.commands.append(argv)
        if argv[0] == "useradd":
            user = argv[-1]
            with (self.root / "etc/passwd").open("a") as f:
                f.write(f"{user}:x:999:995::/var/lib/smsgw:/usr/sbin/nologin\n")
            group = (self.root / "etc/group").read_text()
            group = group.replace("dialout:x:20:\n", f"dialout:x:20:{user}\n")
            (self.root / "etc/group").write_text(group + f"{user}:x:995:\n")
        elif argv[0] == "systemctl" and "enable" in argv:
            link = self.root / WANTS_LINK
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/" + str(UNIT_PATH))
        return CommandResult(0)


class Calls:
    """A runner that only records."""

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> CommandResult:
        self.seen.append(list(argv))
        return CommandResult(0)


def _tree(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            key = str(path.relative_to(root))
            out[key] = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
    return out


def test_dry_run_prints_every_step_and_changes_nothing(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    before = _tree(root)
    result = CliRunner().invoke(main, ["install", "--dry-run", "--root", str(root)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(line.startswith("would: ") for line in lines), lines
    text = result.output
    assert f"useradd --root {root.resolve()} --system" in text
    assert "--groups dialout" in text and "--shell /usr/sbin/nologin" in text
    for path in (CONFIG_PATH, DATA_DIR, UNIT_PATH, RULES_PATH):
        assert "/" + str(path) in text
    assert f"systemctl --root {root.resolve()} enable smsgw.service" in text
    assert _tree(root) == before
    assert not (root / "var").exists()


def test_install_writes_everything_and_a_second_run_does_nothing(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    system = FakeSystem(root)
    installer = Installer(root=root, runner=system, executable="/opt/smsgw/bin/smsgw")
    done = installer.apply()
    assert len(done) == 6  # user, config, data dir, unit, rules, enable
    assert [c[0] for c in system.commands] == ["useradd", "systemctl"]

    unit = (root / UNIT_PATH).read_text()
    assert "\nExecStart=/opt/smsgw/bin/smsgw serve --config /etc/smsgw/smsgw.toml\n" in unit
    assert unit == render_unit(asset("systemd/smsgw.service").read_text(), "/opt/smsgw/bin/smsgw")
    assert (root / RULES_PATH).read_text() == (REPO / "udev/90-smsgw.rules").read_text()
    assert (root / CONFIG_PATH).stat().st_mode & 0o777 == 0o640
    assert (root / DATA_DIR).is_dir() and (root / DATA_DIR).stat().st_mode & 0o777 == 0o750
    assert os.path.lexists(root / WANTS_LINK)
    if os.geteuid() == 0:
        assert (root / CONFIG_PATH).stat().st_gid == 995  # root:smsgw
        assert (root / DATA_DIR).stat().st_uid == 999

    snapshot = _tree(root)
    again = Installer(root=root, runner=system, executable="/opt/smsgw/bin/smsgw")
    assert [s for s in again.plan() if s.needed] == []
    assert again.apply() == []
    assert len(system.commands) == 2
    assert _tree(root) == snapshot


@pytest.mark.parametrize(
    ("path", "word"),
    [
        ("/opt/smsgw/bin/smsgw", "/opt/smsgw/bin/smsgw"),
        ("/srv/my venv/bin/smsgw", '"/srv/my venv/bin/smsgw"'),
        ("/opt/100%/bin/smsgw", "/opt/100%%/bin/smsgw"),
        ("/opt/$HOME/bin/smsgw", "/opt/$HOME/bin/smsgw"),  # never expanded in argv[0]
        ('/opt/a "b"\\c/smsgw', '"/opt/a \\"b\\"\\\\c/smsgw"'),
    ],
)
def test_the_executable_reaches_execstart_as_one_unexpanded_word(path: str, word: str) -> None:
    assert systemd_quote(path) == word
    unit = render_unit(asset("systemd/smsgw.service").read_text(), path)
    assert f"\nExecStart={word} serve --config /etc/smsgw/smsgw.toml\n" in unit


def test_existing_config_is_kept_and_changed_files_are_replaced(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    system = FakeSystem(root)
    Installer(root=root, runner=system, executable="/usr/bin/smsgw").apply()
    (root / CONFIG_PATH).write_text('log_level = "DEBUG"\n')  # the owner's edit
    (root / RULES_PATH).write_text("# an old version\n")
    moved = Installer(root=root, runner=system, executable="/opt/smsgw/bin/smsgw")
    needed = [s.description for s in moved.plan() if s.needed]
    assert len(needed) == 2  # the rules, and the unit (another executable path)
    assert any(str(RULES_PATH) in d for d in needed)
    moved.apply()
    assert (root / CONFIG_PATH).read_text() == 'log_level = "DEBUG"\n'
    assert (root / RULES_PATH).read_text() == (REPO / "udev/90-smsgw.rules").read_text()


def test_user_outside_dialout_is_added(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    with (root / "etc/passwd").open("a") as f:
        f.write("smsgw:x:999:995::/var/lib/smsgw:/usr/sbin/nologin\n")
    system = FakeSystem(root)
    Installer(root=root, runner=system, executable="/usr/bin/smsgw").apply()
    assert system.commands[0] == [
        "usermod", "--root", str(root.resolve()), "--append", "--groups", "dialout", "smsgw",
    ]  # fmt: skip


def test_on_the_live_system_udev_and_systemd_are_reloaded() -> None:
    calls = Calls()
    # The executable is injected: the checkout running the tests may live anywhere (/tmp too).
    installer = Installer(root=Path("/"), runner=calls, executable="/opt/smsgw/bin/smsgw")
    steps = {s.description.split(":")[0]: s for s in installer.plan()}
    assert "reload udev" in steps and "reload systemd" in steps
    assert "udevadm control --reload-rules" in steps["reload udev"].description
    assert "--now" in steps["enable the service"].description
    assert calls.seen == []  # planning runs nothing


def test_config_template_has_the_keys_config_reads_with_their_defaults(tmp_path: Path) -> None:
    path = tmp_path / "smsgw.toml"
    path.write_text(CONFIG_TEMPLATE)
    assert config_module.load(path) == Config()
    table = tomllib.loads(CONFIG_TEMPLATE)
    assert set(table) == {
        "data_dir", "discover", "throttle_interval", "help_reply", "log_level", "http",
        "metrics",
    }  # fmt: skip
    # The commented [[modem]] example is valid once uncommented.
    example = CONFIG_TEMPLATE.replace("# [[modem]]", "[[modem]]")
    example = example.replace("# port = ", "port = ").replace("# pin = ", "pin = ")
    path.write_text(example)
    (modem,) = config_module.load(path).modems
    assert (modem.port, modem.pin) == ("/dev/smsgw/huawei-0123456789-if02", "1234")


@pytest.mark.parametrize(
    "executable", ["/home/pi/venv/bin/smsgw", "/tmp/smsgw-clone/.venv/bin/smsgw"]
)
def test_an_executable_the_service_cannot_see_is_refused(executable: str) -> None:
    calls = Calls()
    installer = Installer(root=Path("/"), runner=calls, executable=executable)
    with pytest.raises(InstallError, match="ProtectHome/PrivateTmp"):
        installer.plan()
    assert calls.seen == []


def test_the_executable_can_be_named_on_the_command_line(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    args = ["install", "--dry-run", "--root", str(root), "--executable", "/opt/img/bin/smsgw"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "(ExecStart=/opt/img/bin/smsgw serve)" in result.output
