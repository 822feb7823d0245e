"""`smsgw accounts`: sub-accounts, their credentials and credits."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from gateway.accounts import create_account
from gateway.cli.common import account_id, data_dir_option, json_option, now, open_store, show
from gateway.store import Store


@click.group("accounts")
def accounts_group() -> None:
    """Manage sub-accounts."""


@accounts_group.command("create")
@click.argument("name")
@data_dir_option
@click.option("--email", default="")
@click.option("--credits", default=0, show_default=True)
@click.option("--unlimited", is_flag=True)
@click.option("--dial-code", default="", help="Default dial code for numbers with a leading 0.")
def accounts_create(  # noqa: PLR0917 - one parameter per click option
    name: str, data_dir: Path, email: str, credits: int, unlimited: bool, dial_code: str
) -> None:
    """Create a sub-account and print its credentials (shown once) as JSON."""
    store = Store.open(data_dir)
    try:
        c = create_account(
            store, name, now=datetime.now(UTC), email=email, credits=credits,
            unlimited=unlimited, default_dial_code=dial_code,
        )  # fmt: skip
    except Exception as exc:  # sqlite3.IntegrityError for a taken name
        raise click.ClickException(f"cannot create account {name!r}: {exc}") from exc
    finally:
        store.close()
    click.echo(
        json.dumps(
            {
                "sub_account": c.sub_account,
                "password": c.password,
                "api_key": c.api_key,
                "email": c.email,
                "token": c.token,
            }
        )
    )


@accounts_group.command("list")
@data_dir_option
@json_option
def accounts_list(data_dir: Path, as_json: bool) -> None:
    """Every sub-account (no secrets)."""
    with open_store(data_dir) as store:
        rows = store.list_accounts()
    show(rows, ["id", "sub_account", "email", "credits", "unlimited", "api_enabled"], as_json,
          "accounts")  # fmt: skip


@accounts_group.command("credits")
@data_dir_option
@click.argument("name")
@click.option("--add", "delta", type=int, default=0, help="Top up (negative: take back).")
def accounts_credits(data_dir: Path, name: str, delta: int) -> None:
    """Show or change an account's credit balance (recorded in the ledger)."""
    with open_store(data_dir) as store:
        account = account_id(store, name)
        if delta:
            balance = store.add_credits(account, delta, "manual top-up", now=now())
        else:
            balance = int((store.account(account) or {}).get("credits", 0))
    click.echo(json.dumps({"sub_account": name, "credits": balance}))
