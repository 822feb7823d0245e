"""`smsgw db`: schema version, online backups of the database file, and moving a box's
database into a fleet's PostgreSQL (`db copy`)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.progress import Progress

from gateway.cli.common import configured_database_url, data_dir_option, open_store
from gateway.config import DATABASE_SCHEMES
from gateway.store import Store
from gateway.store.base import is_postgres_url, sqlite_path
from gateway.store.migrations import MIGRATIONS


@click.group("db")
def db_group() -> None:
    """The database file."""


database_url_option = click.option(
    "--database-url",
    envvar="SMSGW_DATABASE_URL",
    help="postgresql://… or sqlite:///path (default: the config's database_url, else the SQLite "
    "file in --data-dir).",
)


@db_group.command("migrate")
@data_dir_option
@database_url_option
def db_migrate(data_dir: Path, database_url: str | None) -> None:
    """Bring the schema up to date (the daemon does this at start too).

    \b
    SQLite: refused while a daemon runs on the file (the older smsgw, not yet restarted
    after an upgrade: stop it, migrate, start it); a daemon starting meanwhile is refused
    until the migration is over. With nothing to migrate it runs beside the daemon.
    PostgreSQL: nothing is refused. Each migration is applied once for the fleet under an
    advisory lock (a box starting meanwhile waits for it), but daemons already running on
    other boxes go on beside it: stop them first. The boxes whose daemon has not stopped
    cleanly are `SELECT box_id, pid, heartbeat_at FROM fleet_boxes WHERE left_at IS NULL`.
    """
    store = Store.open(database_url) if database_url else None
    with open_store(data_dir) if store is None else _closing(store) as opened:
        version = opened.schema_version()
    click.echo(f"schema version {version} of {len(MIGRATIONS)}")


@contextmanager
def _closing(store: Store) -> Iterator[Store]:
    try:
        yield store
    finally:
        store.close()


@db_group.command("copy")
@click.argument("source")
@click.argument("target")
def db_copy(source: str, target: str) -> None:
    """Copy every row of SOURCE into TARGET, a new database (both migrated first), in one
    transaction: `smsgw db copy sqlite:///var/lib/smsgw/smsgw.sqlite3 postgresql://…` moves a
    box into a fleet. Stop the daemon first: rows it writes meanwhile would not follow."""
    for url in (source, target):
        if not url.startswith(DATABASE_SCHEMES):
            raise click.ClickException(f"{url!r}: give sqlite:///path or postgresql://…")
    if source.startswith("sqlite://") and not sqlite_path(source).exists():
        raise click.ClickException(f"no database at {sqlite_path(source)}")
    with _closing(Store.open(source)) as src, _closing(Store.open(target)) as dst:
        try:
            copied = src.copy_to(dst)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    total = sum(copied.values())
    click.echo(f"copied {total} rows in {sum(1 for n in copied.values() if n)} tables")


@db_group.command("backup")
@data_dir_option
@click.argument("destination", type=click.Path(path_type=Path, dir_okay=False))
def db_backup(data_dir: Path, destination: Path) -> None:
    """Copy the live database to DESTINATION (safe while the daemon runs; the file as it is,
    not migrated, so a newly installed smsgw backs up before the daemon's restart)."""
    if destination.exists():
        raise click.ClickException(f"{destination} exists; not overwriting it")
    url = configured_database_url()
    if is_postgres_url(url):
        raise click.ClickException("backup copies an SQLite database; use pg_dump for PostgreSQL")
    # No bar when piped: nobody sees it, and rich's refresh thread outlives the command briefly.
    bar = Progress(transient=True, disable=not sys.stdout.isatty())
    with bar as progress:
        task = progress.add_task("backup", total=None)
        update: Callable[[int, int], None] = lambda done, total: progress.update(  # noqa: E731
            task, completed=done, total=total
        )
        Store.backup_file(sqlite_path(url or data_dir), destination, update)
    problems = Store.check_file(destination)
    if problems:
        raise click.ClickException(f"backup failed its integrity check: {problems}")
    click.echo(f"backup written to {destination}")
