"""`smsgw contacts`: an account's contact groups and contacts, the lists UltraSMS `smscontact`,
`addcontact` and `smsgroup` and BestSMS `contact_groups` send to. UltraSMS has no call that
makes a group (its own web panel does), so the box's owner makes them here."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, TextIO

import click

from gateway.cli.common import account_id, data_dir_option, json_option, now, open_store, show
from gateway.contacts import DEFAULT_GROUP, ContactBook, ContactError, ContactInput
from gateway.service import GatewayService
from gateway.store import Store

# A CSV's header names (lower case) for each field; the first row is a header when one of
# its cells names the number.
_FIELDS = {
    "number": ("number", "phone", "phone_number", "mobile", "msisdn"),
    "first_name": ("first_name", "firstname", "name"),
    "last_name": ("last_name", "lastname", "surname"),
    "email": ("email", "e-mail"),
    "group": ("group", "group_name"),
}


@click.group("contacts")
def contacts_group() -> None:
    """Contact groups and contacts of an account."""


def _book(store: Store) -> ContactBook:
    return ContactBook(store, wall=now)


def _group_id(store: Store, account: int, name: str) -> int:
    found = _book(store).group_id(account, name)
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
        rows = _book(store).group_rows(account_id(store, account))
    show(rows, ["id", "name", "count"], as_json, "contact groups")


@contacts_group.command("add-group")
@data_dir_option
@click.argument("account")
@click.argument("name")
def contacts_add_group(data_dir: Path, account: str, name: str) -> None:
    """Make an empty contact group NAME for ACCOUNT (UltraSMS `addcontact` needs one)."""
    name = name.strip()
    if not name:
        raise click.ClickException("a group needs a name")
    with open_store(data_dir) as store:
        try:
            group = _book(store).create_group(account_id(store, account), name)
        except ContactError as exc:
            raise click.ClickException(str(exc)) from exc
    if group is None:
        raise click.ClickException(f"{account} already has a contact group {name!r}")
    click.echo(json.dumps({"id": group, "name": name}))


@contacts_group.command("delete-group")
@data_dir_option
@click.argument("account")
@click.argument("name")
def contacts_delete_group(data_dir: Path, account: str, name: str) -> None:
    """Delete contact group NAME of ACCOUNT with its contacts."""
    with open_store(data_dir) as store:
        owner = account_id(store, account)
        _book(store).delete_group(owner, _group_id(store, owner, name))
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
    contacts = _read_csv(file)
    with open_store(data_dir) as store:
        owner = store.account_by_name(account)
        if owner is None:
            raise click.ClickException(f"no account {account!r} (smsgw accounts list)")
        dial = GatewayService(store, wall=now).dial_code(owner)
        try:
            saved = _book(store).save(int(owner["id"]), contacts, dial_code=dial,
                                      default_group=group)  # fmt: skip
        except ContactError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps({"saved": len(saved.contact_ids), "rejected": list(saved.rejected)}))


def _read_csv(file: TextIO) -> list[ContactInput]:
    rows = [row for row in csv.reader(file) if any(cell.strip() for cell in row)]
    if not rows:
        return []
    head = [cell.strip().lower() for cell in rows[0]]
    if any(name in head for name in _FIELDS["number"]):
        where = {
            field: next((head.index(n) for n in names if n in head), None)
            for field, names in _FIELDS.items()
        }
        body = rows[1:]
    else:
        where = {"number": 0, "first_name": 1, "last_name": None, "email": None, "group": None}
        body = rows

    def cell(row: list[str], field: str) -> str:
        at = where[field]
        return row[at].strip() if at is not None and at < len(row) else ""

    contacts: list[ContactInput] = []
    for row in body:
        values: dict[str, Any] = {f: cell(row, f) for f in _FIELDS}
        values["group"] = values["group"] or None
        contacts.append(ContactInput(**values))
    return contacts


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
        groups = None if group is None else [_group_id(store, owner, group)]
        _, rows = _book(store).search(owner, group_ids=groups, limit=limit)
    for row in rows:
        row["opted_out"] = bool(row["opted_out"])
    columns = ["id", "number", "first_name", "last_name", "email", "group_name", "opted_out"]
    show(rows, columns, as_json, "contacts")
