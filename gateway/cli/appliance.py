"""`smsgw install` and `smsgw doctor`: thin shells over gateway.appliance."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import click

from gateway.appliance.doctor import Doctor, Status
from gateway.appliance.install import DATA_DIR, USER, Installer, InstallError, smsgw_executable
from gateway.cli.admin import has_admin_password, read_password, store_admin_password
from gateway.cli.common import config_option

_MARK = {Status.OK: " ok ", Status.WARN: "warn", Status.PROBLEM: "FAIL"}


@click.command("install")
@click.option("--dry-run", is_flag=True, help="Print what would be done; change nothing.")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/"),
    show_default=True,
    help="Install into this directory tree instead of the running system.",
)
@click.option("--user", default=USER, show_default=True, help="The service user.")
@click.option("--no-start", is_flag=True, help="Enable the service but do not start it.")
@click.option(
    "--admin-password-stdin", is_flag=True, help="Read the dashboard admin password from stdin."
)
@click.option(
    "--executable",
    help="The smsgw the unit's ExecStart runs (default: this installation's, "
    "e.g. /opt/smsgw/bin/smsgw; image builds name the one inside the image).",
)
def install_command(  # noqa: PLR0917 - one parameter per click option
    dry_run: bool,
    root: Path,
    user: str,
    no_start: bool,
    admin_password_stdin: bool,
    executable: str | None,
) -> None:
    """Install smsgw as a service: user, /etc/smsgw/smsgw.toml, data dir, unit, udev rules,
    and the dashboard's admin password (asked for on a terminal)."""
    installer = Installer(
        root=root, user=user, start=not no_start, executable=executable or smsgw_executable()
    )
    if not dry_run and installer.live and os.geteuid() != 0:
        raise click.ClickException("installing onto this system needs root: sudo smsgw install")
    try:
        steps = installer.plan()
        for step in steps:
            if not step.needed:
                click.echo(f"already done: {step.description}")
            elif dry_run:
                click.echo(f"would: {step.description}")
        if not dry_run:
            for step in installer.apply(steps):
                click.echo(f"done: {step.description}")
    except InstallError as exc:
        raise click.ClickException(str(exc)) from exc
    password_set = _offer_admin_password(installer.path(DATA_DIR), dry_run, admin_password_stdin)
    if not any(step.needed for step in steps) and not password_set:
        click.echo("nothing to do: smsgw is installed")


def _offer_admin_password(data_dir: Path, dry_run: bool, from_stdin: bool) -> bool:
    """Set the dashboard password when none is (asked on a terminal, else from stdin if told);
    without either, say how to set it later. True when it was set now."""
    if dry_run:
        click.echo("would: offer to set the dashboard admin password (smsgw admin set-password)")
        return False
    if has_admin_password(data_dir):
        click.echo("already done: the dashboard admin password is set")
        return False
    if not from_stdin and not sys.stdin.isatty():
        click.echo("next: set the dashboard admin password: sudo smsgw admin set-password")
        return False
    store_admin_password(data_dir, read_password(from_stdin))
    click.echo("done: dashboard admin password set (change it with smsgw admin set-password)")
    return True


@click.command("doctor")
@config_option
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/"),
    show_default=True,
    help="Check this directory tree instead of the running system.",
)
@click.option("--user", default=USER, show_default=True, help="The service user.")
@click.option("--json", "as_json", is_flag=True, help="Findings as JSON lines.")
def doctor_command(config_path: Path, root: Path, user: str, as_json: bool) -> None:
    """Check the appliance and print each problem with its fix (exit 1 on any problem)."""
    doctor = Doctor(root=root, config_path=config_path, user=user)
    findings = asyncio.run(doctor.run())
    for f in findings:
        if as_json:
            click.echo(json.dumps({"check": f.check, "status": f.status.value,
                                   "detail": f.detail, "fix": f.fix}))  # fmt: skip
            continue
        click.echo(f"[{_MARK[f.status]}] {f.check}: {f.detail}")
        if f.fix:
            click.echo(f"       fix: {f.fix}")
    problems = sum(1 for f in findings if f.status is Status.PROBLEM)
    if not as_json:
        click.echo(f"{problems} problem(s) found" if problems else "no problems found")
    if problems:
        raise SystemExit(1)
