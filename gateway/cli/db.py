"""`smsgw db`: schema version and online backups of the database file."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click
from rich.progress import Progress

from gateway.cli.common import data_dir_option, open_store
from gateway.store import Store
from gateway.store.migrations import MIGRATIONS


@click.group("db")
def db_group() -> None:
    """The database file."""


@db_group.command("migrate")
@data_dir_option
def db_migrate(data_dir: Path) -> None:
    """Bring the schema up to date (the daemon does this at start too)."""
    with open_store(data_dir) as store:
        version = store.schema_version()
    click.echo(f"schema version {version} of {len(MIGRATIONS)}")


@db_group.command("backup")
@data_dir_option
@click.argument("destination", type=click.Path(path_type=Path, dir_okay=False))
def db_backup(data_dir: Path, destination: Path) -> None:
    """Copy the live database to DESTINATION (safe while the daemon runs)."""
    if destination.exists():
        raise click.ClickException(f"{destination} exists; not overwriting it")
    # No bar when piped: nobody sees it, and rich's refresh thread outlives the command briefly.
    bar = Progress(transient=True, disable=not sys.stdout.isatty())
    with open_store(data_dir) as store, bar as progress:
        task = progress.add_task("backup", total=None)
        update: Callable[[int, int], None] = lambda done, total: progress.update(  # noqa: E731
            task, completed=done, total=total
        )
        store.backup(destination, update)
    problems = Store.check_file(destination)
    if problems:
        raise click.ClickException(f"backup failed its integrity check: {problems}")
    click.echo(f"backup written to {destination}")
