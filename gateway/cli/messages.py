"""`smsgw send|outbox|inbox`: queue messages and list an account's traffic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.progress import Progress

from gateway.cli.common import account_id, data_dir_option, json_option, now, open_store, show
from gateway.service import GatewayService, ServiceError

CHUNK = 500  # recipients accepted per transaction by `smsgw send --file`


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
    with open_store(data_dir) as store:
        service = GatewayService(store, wall=now)
        account = account_id(store, account_name)
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
    with open_store(data_dir) as store:
        service = GatewayService(store, wall=now)
        try:
            rows = service.list_messages(account_id(store, account_name), state=state, limit=limit)
        except ServiceError as exc:
            raise click.ClickException(str(exc)) from exc
    columns = ["id", "recipient", "state", "units", "encoding", "created_at", "error"]
    show(rows, columns, as_json, "outbox")


@click.command("inbox")
@data_dir_option
@click.option("--account", "account_name", required=True)
@click.option("--limit", default=50, show_default=True)
@json_option
def inbox_command(data_dir: Path, account_name: str, limit: int, as_json: bool) -> None:
    """Recent inbound messages of an account."""
    with open_store(data_dir) as store:
        rows = store.list_inbound(account_id(store, account_name), limit=limit)
    columns = ["id", "originator", "recipient", "body", "complete", "received_at"]
    show(rows, columns, as_json, "inbox")
