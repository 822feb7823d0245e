"""Options and helpers the command groups share."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from gateway.config import DEFAULT_CONFIG_PATH, DEFAULT_DATA_DIR, ConfigError, load
from gateway.store import DATABASE_NAME, Store
from gateway.store.daemonlock import LOCK_SUFFIX


def data_directory(path: Path) -> Path:
    """`path` as a data directory: made when it does not exist yet, so the database becomes
    path/smsgw.sqlite3. Store.open takes a path that is no directory for the SQLite file
    itself, and `smsgw demo --data-dir new` left a file named `new` where a directory was
    meant. A path that cannot be made is left for Store.open to report."""
    if not path.exists():
        with suppress(OSError):
            path.mkdir(parents=True)
    return path


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    envvar="SMSGW_DATA_DIR",
    default=DEFAULT_DATA_DIR,
    show_default=True,
    callback=lambda ctx, param, value: (
        value
        if ctx.get_parameter_source(str(param.name)) is click.core.ParameterSource.DEFAULT
        else data_directory(value)
    ),  # /var/lib/smsgw is `smsgw install`'s to make, with its owner
)
json_option = click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    envvar="SMSGW_CONFIG",
    default=DEFAULT_CONFIG_PATH,
    show_default=True,
)


def configured_database_url() -> str:
    """The database_url the daemon would use (SMSGW_DATABASE_URL, else the config file's:
    SMSGW_CONFIG or /etc/smsgw/smsgw.toml); "" for the SQLite file in the data directory."""
    # A fleet box names its PostgreSQL in smsgw.toml: a command reading only the environment
    # would quietly make and use an empty SQLite file beside the fleet instead.
    path = Path(os.environ.get("SMSGW_CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        return load(path).database_url
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(
            f"cannot read {path} (it may name the fleet's database_url): {exc.strerror}; "
            "run as root or the smsgw group, or set SMSGW_DATABASE_URL"
        ) from exc


@contextmanager
def open_store(data_dir: Path, *, configured: bool = True) -> Iterator[Store]:
    """The store the daemon would use (`configured_database_url()`, else the SQLite file in
    `data_dir`; only that file when not `configured`), closed when the block ends."""
    store = Store.open((configured_database_url() if configured else "") or data_dir)
    try:
        yield store
    finally:
        store.close()
        _give_to_directory_owner(data_dir)


def _give_to_directory_owner(data_dir: Path) -> None:
    """`sudo smsgw ...` on a fresh box would leave a database only root may write, and the
    service (user smsgw) locked out of it: files root just made go to the directory's owner
    (the daemon lock file too, made by a migration: the service could only open it read-only)."""
    if os.geteuid() != 0 or not data_dir.is_dir():
        return
    owner = data_dir.stat()
    if owner.st_uid == 0:
        return
    for name in (DATABASE_NAME, DATABASE_NAME + "-wal", DATABASE_NAME + "-shm",
                 DATABASE_NAME + LOCK_SUFFIX):  # fmt: skip
        path = data_dir / name
        if path.exists() and path.stat().st_uid == 0:
            os.chown(path, owner.st_uid, owner.st_gid)


def now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


def account_id(store: Store, name: str) -> int:
    """The id of account `name`, or a click error naming the command that lists them."""
    account = store.account_by_name(name)
    if account is None:
        raise click.ClickException(f"no account {name!r} (smsgw accounts list)")
    return int(account["id"])


def show(rows: list[dict[str, Any]], columns: list[str], as_json: bool, title: str) -> None:
    """Print rows as JSON (every field), a table on a terminal, or tab-separated lines when
    piped; no form ever cuts a value."""
    if as_json:
        click.echo(json.dumps(rows, default=str))
        return
    if not sys.stdout.isatty():
        click.echo(tsv(rows, columns), nl=False)
        return
    click.echo(table(rows, columns, title, width=shutil.get_terminal_size().columns), nl=False)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def tsv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A header line then one line per row, fields split by tabs (tabs and line breaks inside a
    value escaped as \\t, \\n), for `cut`, `awk -F'\\t'` and `column -t -s$'\\t'`."""

    def field(value: Any) -> str:
        text = _cell(value).replace("\\", "\\\\")
        return text.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")

    lines = ["\t".join(columns)]
    lines += ["\t".join(field(row.get(c)) for c in columns) for row in rows]
    return "\n".join(lines) + "\n"


# Free text (bodies, errors) wraps inside its column, at least this wide.
_TEXT_MIN_WIDTH = 24


def table(rows: list[dict[str, Any]], columns: list[str], title: str, *, width: int) -> str:
    """A rich table no narrower than its values need: a column of single words (numbers,
    ICCIDs, ports, times) never wraps or truncates; one with free text wraps between words.
    When the terminal is too narrow the lines are longer than it, never cut."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    grid = Table(title=title)
    needed = 1  # the left border; each column adds its padding and right border
    for i, column in enumerate(columns):
        values = [line[i] for line in cells]
        if any(" " in v or "\n" in v for v in values):
            longest = max((len(v) for v in values), default=0)
            room = max(len(column), min(longest, _TEXT_MIN_WIDTH))
            grid.add_column(column, overflow="fold", min_width=room)
        else:
            room = max([len(column), *map(len, values)])
            grid.add_column(column, no_wrap=True, min_width=room)
        needed += room + 3
    for line in cells:
        grid.add_row(*line)
    out = io.StringIO()
    console = Console(file=out, width=max(width, needed), force_terminal=True)
    console.print(grid)
    return out.getvalue()
