"""`smsgw send|outbox|inbox|sims|modems|db` and `accounts list|credits`: thin shells over the store
and GatewayService, for the owner of the box."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from gateway.config import DEFAULT_DATA_DIR
from gateway.daemon_cli import accounts_group
from gateway.migrations import MIGRATIONS, current_version
from gateway.service import GatewayService, ServiceError
from gateway.store import Store

CHUNK = 500  # recipients accepted per transaction by `smsgw send --file`

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    envvar="SMSGW_DATA_DIR",
    default=DEFAULT_DATA_DIR,
    show_default=True,
)
json_option = click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")


@contextmanager
def _store(data_dir: Path) -> Iterator[Store]:
    store = Store.open(data_dir)
    try:
        yield store
    finally:
        store.close()


def _now() -> datetime:
    return datetime.now(UTC)


def _account_id(store: Store, name: str) -> int:
    account = store.account_by_name(name)
    if account is None:
        raise click.ClickException(f"no account {name!r} (smsgw accounts list)")
    return int(account["id"])


def _show(rows: list[dict[str, Any]], columns: list[str], as_json: bool, title: str) -> None:
    if as_json:
        click.echo(json.dumps([{c: r.get(c) for c in columns} for r in rows]))
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    Console().print(table)


@click.command("send")
@data_dir_option
@click.option("--account", "account_name", required=True)
@click.option("--to", "recipients", multiple=True, help="Recipient (repeatable).")
@click.option("--file", "numbers_file", type=click.File("r"), help="One recipient per line.")
@click.option("--from", "sender", default="", help="Sender long code (a SIM's number).")
@click.argument("text")
def send_command(  # noqa: PLR0917 - one parameter per click option
    data_dir: Path,
    account_name: str,
    recipients: tuple[str, ...],
    numbers_file: Any,
    sender: str,
    text: str,
) -> None:
    """Queue TEXT for the recipients (the running daemon sends it); prints the ids as JSON."""
    numbers = list(recipients)
    if numbers_file is not None:
        numbers += [line.strip() for line in numbers_file if line.strip()]
    if not numbers:
        raise click.UsageError("give --to or --file")
    with _store(data_dir) as store:
        service = GatewayService(store, wall=_now)
        account = _account_id(store, account_name)
        ids: list[int] = []
        rejected: list[dict[str, str]] = []
        with Progress(transient=True, disable=len(numbers) <= CHUNK) as progress:
            task = progress.add_task("accepting", total=len(numbers))
            for start in range(0, len(numbers), CHUNK):
                chunk = numbers[start : start + CHUNK]
                try:
                    result = service.submit(account, chunk, text, sender=sender)
                except ServiceError as exc:
                    raise click.ClickException(f"{exc} ({len(ids)} accepted before)") from exc
                ids += result.message_ids
                rejected += [{"to": r.recipient, "reason": r.reason} for r in result.rejected]
                progress.advance(task, len(chunk))
    click.echo(json.dumps({"message_ids": ids, "rejected": rejected}))


@click.command("outbox")
@data_dir_option
@click.option("--account", "account_name", required=True)
@click.option("--state", default=None)
@click.option("--limit", default=50, show_default=True)
@json_option
def outbox_command(
    data_dir: Path, account_name: str, state: str | None, limit: int, as_json: bool
) -> None:
    """Recent outbound messages of an account."""
    with _store(data_dir) as store:
        service = GatewayService(store, wall=_now)
        try:
            rows = service.list_messages(_account_id(store, account_name), state=state, limit=limit)
        except ServiceError as exc:
            raise click.ClickException(str(exc)) from exc
    columns = ["id", "recipient", "state", "units", "encoding", "created_at", "error"]
    _show(rows, columns, as_json, "outbox")


@click.command("inbox")
@data_dir_option
@click.option("--account", "account_name", required=True)
@click.option("--limit", default=50, show_default=True)
@json_option
def inbox_command(data_dir: Path, account_name: str, limit: int, as_json: bool) -> None:
    """Recent inbound messages of an account."""
    with _store(data_dir) as store:
        rows = store.list_inbound(_account_id(store, account_name), limit=limit)
    columns = ["id", "originator", "recipient", "body", "complete", "received_at"]
    _show(rows, columns, as_json, "inbox")


@click.group("sims")
def sims_group() -> None:
    """SIMs (long codes), bound by ICCID."""


@sims_group.command("list")
@data_dir_option
@json_option
def sims_list(data_dir: Path, as_json: bool) -> None:
    """Every SIM the gateway has seen, with counters and limits."""
    with _store(data_dir) as store:
        rows = store.list_sims()
    columns = ["id", "iccid", "imsi", "msisdn", "state", "throttle_interval", "sent_count",
               "failed_count", "received_count", "last_port"]  # fmt: skip
    _show(rows, columns, as_json, "SIMs")


@sims_group.command("set-number")
@data_dir_option
@click.argument("iccid")
@click.argument("number")
def sims_set_number(data_dir: Path, iccid: str, number: str) -> None:
    """Set the phone number of a SIM that does not know its own (+CNUM empty)."""
    with _store(data_dir) as store:
        if not store.set_sim_number(iccid, number):
            raise click.ClickException(f"no SIM with ICCID {iccid}")
    click.echo(f"SIM {iccid}: number set; the daemon uses it from the SIM's next connection")


@sims_group.command("set-limits")
@data_dir_option
@click.argument("iccid")
@click.option("--interval", type=click.FloatRange(1, 60), help="Seconds between SMS.")
@click.option("--per-minute", type=click.IntRange(1), default=None)
@click.option("--per-hour", type=click.IntRange(1), default=None)
@click.option("--per-day", type=click.IntRange(1), default=None)
@click.option("--recipients-per-day", type=click.IntRange(1), default=None)
def sims_set_limits(  # noqa: PLR0917 - one parameter per click option
    data_dir: Path,
    iccid: str,
    interval: float | None,
    per_minute: int | None,
    per_hour: int | None,
    per_day: int | None,
    recipients_per_day: int | None,
) -> None:
    """Slow a SIM down or cap it (operators block SIMs that send too fast)."""
    limits = {
        "throttle_interval": interval,
        "cap_per_minute": per_minute,
        "cap_per_hour": per_hour,
        "cap_per_day": per_day,
        "cap_recipients_per_day": recipients_per_day,
    }
    chosen = {k: v for k, v in limits.items() if v is not None}
    if not chosen:
        raise click.UsageError("give at least one limit")
    with _store(data_dir) as store:
        if not store.set_sim_limits(iccid, chosen):
            raise click.ClickException(f"no SIM with ICCID {iccid}")
    click.echo(json.dumps({"iccid": iccid, **chosen}))


@click.command("modems")
@data_dir_option
@json_option
def modems_command(data_dir: Path, as_json: bool) -> None:
    """Every modem seen, by IMEI, with its last port."""
    with _store(data_dir) as store:
        rows = store.list_modems()
    _show(rows, ["id", "imei", "manufacturer", "model", "last_port", "state", "last_seen"],
          as_json, "modems")  # fmt: skip


@click.group("db")
def db_group() -> None:
    """The database file."""


@db_group.command("migrate")
@data_dir_option
def db_migrate(data_dir: Path) -> None:
    """Bring the schema up to date (the daemon does this at start too)."""
    with _store(data_dir) as store:
        version = current_version(store.conn)
    click.echo(f"schema version {version} of {len(MIGRATIONS)}")


@db_group.command("backup")
@data_dir_option
@click.argument("destination", type=click.Path(path_type=Path, dir_okay=False))
def db_backup(data_dir: Path, destination: Path) -> None:
    """Copy the live database to DESTINATION (safe while the daemon runs)."""
    if destination.exists():
        raise click.ClickException(f"{destination} exists; not overwriting it")
    with _store(data_dir) as store, Progress(transient=True) as progress:
        task = progress.add_task("backup", total=None)
        update: Callable[[int, int], None] = lambda done, total: progress.update(  # noqa: E731
            task, completed=done, total=total
        )
        store.backup(destination, update)
    problems = Store.check_file(destination)
    if problems:
        raise click.ClickException(f"backup failed its integrity check: {problems}")
    click.echo(f"backup written to {destination}")


@accounts_group.command("list")
@data_dir_option
@json_option
def accounts_list(data_dir: Path, as_json: bool) -> None:
    """Every sub-account (no secrets)."""
    with _store(data_dir) as store:
        rows = store.list_accounts()
    _show(rows, ["id", "sub_account", "email", "credits", "unlimited", "api_enabled"], as_json,
          "accounts")  # fmt: skip


@accounts_group.command("credits")
@data_dir_option
@click.argument("name")
@click.option("--add", "delta", type=int, default=0, help="Top up (negative: take back).")
def accounts_credits(data_dir: Path, name: str, delta: int) -> None:
    """Show or change an account's credit balance (recorded in the ledger)."""
    with _store(data_dir) as store:
        account = _account_id(store, name)
        if delta:
            balance = store.add_credits(account, delta, "manual top-up", now=_now())
        else:
            balance = int((store.account(account) or {}).get("credits", 0))
    click.echo(json.dumps({"sub_account": name, "credits": balance}))
