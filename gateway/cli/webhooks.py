"""`smsgw webhooks`: the outbox of outgoing webhooks: list, retry, purge, test fire."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import click

from gateway.cli.common import account_id, data_dir_option, json_option, now, open_store, show
from gateway.models import WebhookKind, WebhookState
from gateway.service import GatewayService, ServiceError
from gateway.webhooks import redact_url

account_option = click.option("--account", "account_name", help="Only this account's events.")


@click.group("webhooks")
def webhooks_group() -> None:
    """Outgoing webhooks: what is pending, failed or delivered."""


@webhooks_group.command("list")
@data_dir_option
@account_option
@click.option("--state", type=click.Choice([s.value for s in WebhookState]))
@click.option("--limit", default=50, show_default=True)
@json_option
def webhooks_list(
    data_dir: Path, account_name: str | None, state: str | None, limit: int, as_json: bool
) -> None:
    """Webhook events, newest first, with attempts, last HTTP status and last error."""
    with open_store(data_dir) as store:
        service = GatewayService(store, wall=now)
        account = account_id(store, account_name) if account_name else None
        try:
            rows = service.webhook_events(account, state=state, limit=limit)
        except ServiceError as exc:
            raise click.ClickException(str(exc)) from exc
    for row in rows:
        row["next_attempt_at"] = row["next_attempt_at"] if row["state"] == "pending" else None
    columns = ["event_id", "account_id", "kind", "state", "attempts", "last_status",
               "last_error", "created_at", "next_attempt_at"]  # fmt: skip
    show(rows, columns, as_json, "webhook events")


@webhooks_group.command("retry")
@data_dir_option
@account_option
@click.argument("event_ids", nargs=-1)
def webhooks_retry(data_dir: Path, account_name: str | None, event_ids: tuple[str, ...]) -> None:
    """Send events again now, with a fresh retry window: the EVENT_IDS given (a delivered one
    too), or else every one not delivered (failed, or waiting out its backoff)."""
    with open_store(data_dir) as store:
        service = GatewayService(store, wall=now)
        account = account_id(store, account_name) if account_name else None
        count = service.retry_webhooks(account, list(event_ids) if event_ids else None)
    click.echo(json.dumps({"retried": count}))
    if event_ids and count < len(event_ids):
        raise click.ClickException(f"{len(event_ids) - count} event id(s) not found")


@webhooks_group.command("purge")
@data_dir_option
@account_option
@click.option("--failed", is_flag=True, help="Failed (given-up) events go too.")
@click.option(
    "--older-than", "days", type=float, default=None, help="Only events this many days old."
)
def webhooks_purge(
    data_dir: Path, account_name: str | None, failed: bool, days: float | None
) -> None:
    """Delete delivered (and with --failed, failed) events; pending ones are never purged."""
    with open_store(data_dir) as store:
        service = GatewayService(store, wall=now)
        account = account_id(store, account_name) if account_name else None
        older = timedelta(days=days) if days is not None else None
        count = service.purge_webhooks(account, failed=failed, older_than=older)
    click.echo(json.dumps({"purged": count}))


@webhooks_group.command("test")
@data_dir_option
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice([k.value for k in WebhookKind]),
    default=WebhookKind.STATUS.value,
    show_default=True,
)
@click.option("--queue", is_flag=True, help="Queue it for the daemon instead of sending it now.")
def webhooks_test(data_dir: Path, name: str, kind: str, queue: bool) -> None:
    """Fire a test event (data.test = true) at account NAME's webhook: sent right now from
    here (exit status 1 unless it answered 2xx), or with --queue through the daemon's outbox."""
    with open_store(data_dir) as store:
        service = GatewayService(store, wall=now)
        account = account_id(store, name)
        try:
            if queue:
                click.echo(json.dumps({"event_id": service.fire_test_webhook(account, kind)}))
                return
            subscription = service.webhooks(account).get(WebhookKind(kind))
            url = subscription.url if subscription is not None else ""
            result = asyncio.run(service.try_webhook(account, kind))
        except ServiceError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(
        json.dumps(
            {
                "url": redact_url(url),
                "ok": result.ok,
                "status": result.status,
                "error": result.error or None,
            }
        )
    )
    if not result.ok:
        raise SystemExit(1)
