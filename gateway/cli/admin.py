"""`smsgw admin`: the dashboard's admin password."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gateway.cli.common import data_dir_option, now, open_store
from gateway.service import MIN_ADMIN_PASSWORD, GatewayService, InvalidRequestError
from gateway.store import DATABASE_NAME


@click.group("admin")
def admin_group() -> None:
    """The web dashboard's admin login."""


def ask_password() -> str:
    """Ask twice on the terminal, hidden."""
    return str(
        click.prompt(
            f"Dashboard admin password (at least {MIN_ADMIN_PASSWORD} characters)",
            hide_input=True,
            confirmation_prompt=True,
        )
    )


def read_password(from_stdin: bool) -> str:
    """The new password: one line of stdin, or asked on the terminal."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("no password on stdin")
        return password
    if not sys.stdin.isatty():
        raise click.ClickException(
            "no terminal to ask on: pipe the password in with --password-stdin"
        )
    return ask_password()


def store_admin_password(data_dir: Path, password: str) -> None:
    """Set the password in the data directory's database (logging out every session)."""
    with open_store(data_dir) as store:
        try:
            GatewayService(store, wall=now).set_admin_password(password)
        except InvalidRequestError as exc:
            raise click.ClickException(str(exc)) from exc


def has_admin_password(data_dir: Path) -> bool:
    """Whether the database in `data_dir` has an admin password (no database: no)."""
    if not (data_dir / DATABASE_NAME).exists():
        return False
    with open_store(data_dir) as store:
        return GatewayService(store, wall=now).has_admin_password()


@admin_group.command("set-password")
@data_dir_option
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin (scripts).")
def set_password(data_dir: Path, password_stdin: bool) -> None:
    """Set the password of the dashboard at http://<box>:8080/ (ends every open session)."""
    store_admin_password(data_dir, read_password(password_stdin))
    click.echo("dashboard admin password set; every open session is logged out")
