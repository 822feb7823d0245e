"""Options and helpers the command groups share."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from gateway.config import DEFAULT_DATA_DIR
from gateway.store import Store

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    envvar="SMSGW_DATA_DIR",
    default=DEFAULT_DATA_DIR,
    show_default=True,
)
json_option = click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")


@contextmanager
def open_store(data_dir: Path) -> Iterator[Store]:
    """The store in `data_dir`, closed when the block ends."""
    store = Store.open(data_dir)
    try:
        yield store
    finally:
        store.close()


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
    """Print rows as JSON or as a table."""
    if as_json:
        click.echo(json.dumps([{c: r.get(c) for c in columns} for r in rows]))
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    Console().print(table)
