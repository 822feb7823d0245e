"""`smsgw templates`: message templates of an account (Zoom Connect templates/...)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from gateway.cli.common import account_id, data_dir_option, json_option, now, open_store, show
from gateway.contacts import ContactError
from gateway.directory import Directory, NotFoundError


@click.group("templates")
def templates_group() -> None:
    """Manage message templates."""


@templates_group.command("add")
@data_dir_option
@click.argument("account")
@click.argument("name")
@click.argument("text")
def templates_add(data_dir: Path, account: str, name: str, text: str) -> None:
    """Store a template NAME with TEXT for ACCOUNT; prints its id."""
    with open_store(data_dir) as store:
        try:
            template_id = Directory(store, wall=now).create_template(
                account_id(store, account), name, text
            )
        except ContactError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps({"templateId": template_id, "name": name}))


@templates_group.command("list")
@data_dir_option
@json_option
@click.argument("account")
def templates_list(data_dir: Path, as_json: bool, account: str) -> None:
    """Every template of ACCOUNT."""
    with open_store(data_dir) as store:
        _, rows = Directory(store, wall=now).templates(account_id(store, account))
    show(rows, ["id", "name", "data", "created_at"], as_json, "templates")


@templates_group.command("delete")
@data_dir_option
@click.argument("account")
@click.argument("template_id", type=int)
def templates_delete(data_dir: Path, account: str, template_id: int) -> None:
    """Delete template TEMPLATE_ID of ACCOUNT."""
    with open_store(data_dir) as store:
        try:
            Directory(store, wall=now).delete_template(account_id(store, account), template_id)
        except NotFoundError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps({"deleted": template_id}))
