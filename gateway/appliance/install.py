"""`smsgw install`: the user, config, data dir, systemd unit and udev rules, idempotently.

Every step first looks at what is there and only acts when something is missing or differs, so
running it twice changes nothing the second time. `root` puts every path under another
directory (tests, image builds); commands then get the tools' own --root options, and reloading
the running udev/systemd is skipped because they are not that root's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SERVICE_NAME = "smsgw.service"
RULES_NAME = "90-smsgw.rules"
USER = "smsgw"
CONFIG_PATH = Path("etc/smsgw/smsgw.toml")
DATA_DIR = Path("var/lib/smsgw")
UNIT_PATH = Path("etc/systemd/system") / SERVICE_NAME
RULES_PATH = Path("etc/udev/rules.d") / RULES_NAME
WANTS_LINK = Path("etc/systemd/system/multi-user.target.wants") / SERVICE_NAME
TEMPLATE_EXEC = "/usr/local/bin/smsgw"
# ProtectHome= and PrivateTmp= hide these from the service: its ExecStart cannot live there.
HIDDEN_FROM_SERVICE = ("/home/", "/root/", "/run/user/", "/tmp/", "/var/tmp/")

CONFIG_TEMPLATE = """\
# smsgw configuration (read by `smsgw serve`; see gateway/config.py for every key).
# Restart after editing: sudo systemctl restart smsgw

# Where the SQLite database lives. Under systemd the unit's StateDirectory (/var/lib/smsgw, the
# only place the service may write) is used: the unit sets SMSGW_DATA_DIR, which wins.
data_dir = "/var/lib/smsgw"

# Directories watched for modems (hot-plug). /dev/smsgw holds the links the udev rules make for
# known modems; /dev/serial/by-id catches the rest (each port there is probed with AT).
discover = ["/dev/smsgw", "/dev/serial/by-id"]

# Default seconds between two SMS from one SIM (1-60); per-SIM limits live in the database.
throttle_interval = 1.0

# Reply sent to HELP (empty: no reply).
help_reply = ""

# DEBUG, INFO, WARNING or ERROR. INFO never logs message bodies or full phone numbers.
log_level = "INFO"

[http]
# The HTTP APIs. 0.0.0.0 serves the LAN; 127.0.0.1 only this box (e.g. behind a proxy).
host = "0.0.0.0"
port = 8080

[metrics]
# GET /metrics (Prometheus) is open to the LAN; set a token to require
# "Authorization: Bearer <token>" (Prometheus: authorization.credentials).
# token = ""

# Modems on fixed ports, in addition to hot-plug (a path, or socket://host:port for a modem
# behind a serial server). Give the SIM PIN here if the SIM asks for one.
# [[modem]]
# port = "/dev/smsgw/huawei-0123456789-if02"
# pin = "1234"
"""


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a command printed and how it ended."""

    returncode: int
    stdout: str = ""


Runner = Callable[[Sequence[str]], CommandResult]


def run_command(argv: Sequence[str]) -> CommandResult:
    """Run a command, capturing its output (missing tool: returncode 127)."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=120)
    except FileNotFoundError:
        return CommandResult(127, "")
    return CommandResult(proc.returncode, proc.stdout + proc.stderr)


@dataclass(frozen=True, slots=True)
class Step:
    """One thing install does (or found already done)."""

    description: str
    needed: bool
    action: Callable[[], None] | None = field(default=None, compare=False)


class InstallError(RuntimeError):
    """A step failed; the message says which and why."""


def asset(name: str) -> Path:
    """Path of a shipped file (systemd/smsgw.service, udev/90-smsgw.rules)."""
    here = Path(__file__).resolve().parents[2]
    for candidate in (
        here / name,  # a source checkout / editable install
        Path(sys.prefix) / "share" / "smsgw" / Path(name).name,  # a wheel's data files
    ):
        if candidate.is_file():
            return candidate
    raise InstallError(f"cannot find {name} (looked next to the package and in share/smsgw)")


def smsgw_executable() -> str:
    """Absolute path of the smsgw command this installation runs."""
    beside = Path(sys.executable).with_name("smsgw")  # the venv or prefix we run from
    found = str(beside) if beside.exists() else shutil.which("smsgw") or str(beside)
    return os.path.abspath(found)


def systemd_quote(executable: str) -> str:
    """`executable` as the first word of a systemd command line (ExecStart=)."""
    # systemd expands %-specifiers on the whole line and splits it at blanks, so a venv under
    # "/srv/my venv" or "/opt/100%" must be quoted and escaped to reach exec() unchanged
    # ($VARIABLES are expanded in the arguments only, never in the executable's path).
    escaped = executable.replace("%", "%%")
    if not any(c.isspace() or c in "\"'\\" for c in escaped):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_unit(template: str, executable: str) -> str:
    """The unit with ExecStart pointing at this installation's smsgw."""
    exec_start = f"ExecStart={systemd_quote(executable)} "
    return template.replace(f"ExecStart={TEMPLATE_EXEC} ", exec_start)


def _entry(colon_file: Path, name: str, fields: int) -> list[str] | None:
    """The fields of `name`'s line (at least `fields` of them) in /etc/group or /etc/passwd."""
    try:
        lines = colon_file.read_text().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        entry = line.split(":")
        if len(entry) >= fields and entry[0] == name:
            return entry
    return None


def group_members(group_file: Path, group: str) -> set[str] | None:
    """Members of `group` in an /etc/group file (None: no such group)."""
    entry = _entry(group_file, group, 4)
    return None if entry is None else {m for m in entry[3].split(",") if m}


def group_id(group_file: Path, group: str) -> int | None:
    """The id of `group` in an /etc/group file."""
    entry = _entry(group_file, group, 3)
    return None if entry is None else int(entry[2])


def passwd_entry(passwd_file: Path, user: str) -> tuple[int, int] | None:
    """(uid, gid) of `user` in an /etc/passwd file."""
    entry = _entry(passwd_file, user, 4)
    return None if entry is None else (int(entry[2]), int(entry[3]))


@dataclass
class Installer:
    """Works out the steps for `root` and carries them out."""

    root: Path = Path("/")
    user: str = USER
    executable: str = field(default_factory=smsgw_executable)
    runner: Runner = run_command
    start: bool = True

    @property
    def live(self) -> bool:
        """Whether we install onto the running system (reloads and starts make sense)."""
        return self.root.resolve() == Path("/")

    def path(self, relative: Path) -> Path:
        """`relative` under the install root."""
        return self.root / relative

    def _root_args(self) -> list[str]:
        return [] if self.live else ["--root", str(self.root.resolve())]

    def _run(self, argv: Sequence[str]) -> None:
        result = self.runner(argv)
        if result.returncode != 0:
            raise InstallError(f"{' '.join(argv)} failed ({result.returncode}): {result.stdout}")

    def _run_all(self, *commands: Sequence[str]) -> None:
        for argv in commands:
            self._run(argv)

    def _write(
        self, target: Path, content: str, mode: int, *, group: str | None = None
    ) -> Callable[[], None]:
        def write() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".smsgw-new")
            tmp.write_text(content)
            tmp.chmod(mode)
            # The service user reads its config through the group (the file may hold SIM PINs).
            gid = group_id(self.path(Path("etc/group")), group) if group else None
            if gid is not None and os.geteuid() == 0:
                os.chown(tmp, 0, gid)
            tmp.replace(target)

        return write

    def plan(self) -> list[Step]:
        """Every step, with whether it still needs doing."""
        hidden = next((d for d in HIDDEN_FROM_SERVICE if self.executable.startswith(d)), None)
        if hidden is not None and self.live:
            raise InstallError(
                f"{self.executable} is under {hidden}, which the service cannot see "
                "(ProtectHome/PrivateTmp): install smsgw system-wide, e.g. "
                "python3 -m venv /opt/smsgw && /opt/smsgw/bin/pip install smsgw, "
                "then run /opt/smsgw/bin/smsgw install"
            )
        steps: list[Step] = []
        etc = self.path(Path("etc"))
        entry = passwd_entry(etc / "passwd", self.user)
        useradd = [
            "useradd", *self._root_args(), "--system", "--user-group",
            "--home-dir", "/" + str(DATA_DIR), "--no-create-home",
            "--shell", "/usr/sbin/nologin", "--groups", "dialout",
            "--comment", "smsgw SMS gateway", self.user,
        ]  # fmt: skip
        if entry is None:
            steps.append(
                Step(
                    f"create system user {self.user} in group dialout: {' '.join(useradd)}",
                    True,
                    lambda: self._run(useradd),
                )
            )
        else:
            dialout = group_members(etc / "group", "dialout")
            usermod = ["usermod", *self._root_args(), "--append", "--groups", "dialout", self.user]
            steps.append(
                Step(
                    f"user {self.user} in group dialout: {' '.join(usermod)}",
                    dialout is None or self.user not in dialout,
                    lambda: self._run(usermod),
                )
            )
        config = self.path(CONFIG_PATH)
        steps.append(
            Step(
                f"write {'/' + str(CONFIG_PATH)} (commented defaults, root:{self.user} 0640; "
                "an existing one is kept)",
                not config.exists(),
                self._write(config, CONFIG_TEMPLATE, 0o640, group=self.user),
            )
        )
        data = self.path(DATA_DIR)
        steps.append(
            Step(
                f"create data directory {'/' + str(DATA_DIR)} owned by {self.user}, mode 0750",
                not data.is_dir(),
                self._make_data_dir,
            )
        )
        unit = render_unit(asset("systemd/" + SERVICE_NAME).read_text(), self.executable)
        unit_path = self.path(UNIT_PATH)
        unit_changed = not unit_path.is_file() or unit_path.read_text() != unit
        steps.append(
            Step(
                f"install {'/' + str(UNIT_PATH)} (ExecStart={self.executable} serve)",
                unit_changed,
                self._write(unit_path, unit, 0o644),
            )
        )
        rules = asset("udev/" + RULES_NAME).read_text()
        rules_path = self.path(RULES_PATH)
        rules_changed = not rules_path.is_file() or rules_path.read_text() != rules
        steps.append(
            Step(
                f"install {'/' + str(RULES_PATH)}",
                rules_changed,
                self._write(rules_path, rules, 0o644),
            )
        )
        if self.live:
            reload_udev = ["udevadm", "control", "--reload-rules"]
            trigger = ["udevadm", "trigger", "--action=change",
                       "--subsystem-match=tty", "--subsystem-match=usb"]  # fmt: skip
            # ModemManager may already hold a modem it probed before the rules existed.
            release = ["systemctl", "try-restart", "ModemManager.service"]
            steps.append(
                Step(
                    f"reload udev: {' '.join(reload_udev)}; {' '.join(trigger)}; "
                    f"{' '.join(release)}",
                    rules_changed,
                    lambda: self._run_all(reload_udev, trigger, release),
                )
            )
            daemon_reload = ["systemctl", "daemon-reload"]
            steps.append(
                Step(
                    "reload systemd: systemctl daemon-reload",
                    unit_changed,
                    lambda: self._run(daemon_reload),
                )
            )
        enable = ["systemctl", *self._root_args(), "enable", SERVICE_NAME]
        if self.live and self.start:
            enable.insert(-1, "--now")
        steps.append(
            Step(
                f"enable the service: {' '.join(enable)}",
                not os.path.lexists(self.path(WANTS_LINK)),
                lambda: self._run(enable),
            )
        )
        if self.live and self.start:
            restart = ["systemctl", "try-restart", SERVICE_NAME]
            steps.append(
                Step(
                    "restart the running service with the new unit: systemctl try-restart",
                    unit_changed and os.path.lexists(self.path(WANTS_LINK)),
                    lambda: self._run(restart),
                )
            )
        return steps

    def _make_data_dir(self) -> None:
        data = self.path(DATA_DIR)
        data.mkdir(parents=True, exist_ok=True)
        data.chmod(0o750)
        entry = passwd_entry(self.path(Path("etc/passwd")), self.user)
        if entry is not None and os.geteuid() == 0:
            os.chown(data, *entry)

    def apply(self, steps: Sequence[Step] | None = None) -> list[Step]:
        """Carry out the needed steps in order; return the ones done."""
        done = []
        for step in self.plan() if steps is None else steps:
            if step.needed and step.action is not None:
                step.action()
                done.append(step)
        return done
