"""`smsgw contacts`: an account's contact groups and contacts, the lists UltraSMS `smscontact`,
`addcontact` and `smsgroup` and BestSMS `contact_groups` send to. UltraSMS has no call that
makes a group (its own web panel does), so the box's owner makes them here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

import click

from gateway.cli.common import account_id, data_dir_option, json_option, now, open_store, show
from gateway.contacts import DEFAULT_GROUP, ContactError, read_csv
from gateway.service import GatewayService, ServiceError
from gateway.store import Store


@click.group("contacts")
def contacts_group() -> None:
    """Contact groups and contacts of an account."""


def _service(store: Store) -> GatewayService:
    return GatewayService(store, wall=now)


def _group_id(store: Store, account: int, name: str) -> int:
    found = _service(store).contacts.group_id(account, name)
    if found is None:
        raise click.ClickException(f"no contact group {name!r} (smsgw contacts groups)")
    return found


@contacts_group.command("groups")
@data_dir_option
@json_option
@click.argument("account")
def contacts_groups(data_dir: Path, as_json: bool, account: str) -> None:
    """Every contact group of ACCOUNT with its size."""
    with open_store(data_dir) as store:
        rows = _service(store).contact_groups(account_id(store, account))
    show(rows, ["id", "name", "count"], as_json, "contact groups")


@contacts_group.command("add-group")
@data_dir_option
@click.argument("account")
@click.argument("name")
def contacts_add_group(data_dir: Path, account: str, name: str) -> None:
    """Make an empty contact group NAME for ACCOUNT (UltraSMS `addcontact` needs one)."""
    with open_store(data_dir) as store:
        try:
            group = _service(store).create_contact_group(account_id(store, account), name)
        except ServiceError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps({"id": group, "name": name.strip()}))


@contacts_group.command("delete-group")
@data_dir_option
@click.argument("account")
@click.argument("name")
def contacts_delete_group(data_dir: Path, account: str, name: str) -> None:
    """Delete contact group NAME of ACCOUNT with its contacts."""
    with open_store(data_dir) as store:
        owner = account_id(store, account)
        _service(store).delete_contact_group(owner, _group_id(store, owner, name))
    click.echo(json.dumps({"deleted": name}))


@contacts_group.command("import")
@data_dir_option
@click.option("--group", default=DEFAULT_GROUP, show_default=True,
              help="For rows that name no group of their own (created when missing).")  # fmt: skip
@click.argument("account")
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
def contacts_import(data_dir: Path, group: str, account: str, file: TextIO) -> None:
    """Save the contacts of a CSV FILE (- for stdin) to ACCOUNT: a header row naming the
    columns (number or phone; first_name or name, last_name, email, group), or no header and
    the number first, a name second. Numbers without a country code take the account's dial
    code. Prints how many were saved and the rows that hold no phone number."""
    try:
        contacts = read_csv(file)
    except ContactError as exc:
        raise click.ClickException(str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{file.name} is not UTF-8 text ({exc.reason})") from exc
    with open_store(data_dir) as store:
        owner = account_id(store, account)
        try:
            saved = _service(store).import_contacts(owner, contacts, default_group=group)
        except ServiceError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps({"saved": len(saved.contact_ids), "rejected": list(saved.rejected)}))


@contacts_group.command("list")
@data_dir_option
@json_option
@click.option("--group", default=None, help="Only this group's contacts.")
@click.option("--limit", default=100, show_default=True)
@click.argument("account")
def contacts_list(
    data_dir: Path, as_json: bool, group: str | None, limit: int, account: str
) -> None:
    """Contacts of ACCOUNT, newest first (opted_out: the number texted STOP)."""
    with open_store(data_dir) as store:
        owner = account_id(store, account)
        group_id = None if group is None else _group_id(store, owner, group)
        try:
            _, rows = _service(store).contact_page(owner, group_id=group_id, limit=limit)
        except ServiceError as exc:
            raise click.ClickException(str(exc)) from exc
    for row in rows:
        row["opted_out"] = bool(row["opted_out"])
    columns = ["id", "number", "first_name", "last_name", "email", "group_name", "opted_out"]
    show(rows, columns, as_json, "contacts")
