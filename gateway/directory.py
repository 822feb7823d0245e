"""Contacts, groups and templates addressed by id: create, read, update, delete, and a contact's
memberships of several groups (numbers kept in E.164)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from gateway.accounts import box_dial_code
from gateway.contacts import MAX_NAME, ContactError
from gateway.numbers import normalize
from gateway.store import Store

MAX_TEMPLATE = 1530  # as long as a message may be


class NotFoundError(ContactError):
    """No contact, group or template of that id for this account."""


class NameTakenError(ContactError):
    """The account already has a group of that name."""


def _check(**values: str) -> None:
    for name, value in values.items():
        if len(value) > MAX_NAME:
            raise ContactError(f"{name} longer than {MAX_NAME} characters")


class Directory:
    """Contacts, groups and templates of every account by id; the store does the SQL."""

    def __init__(self, store: Store, *, wall: Callable[[], datetime]) -> None:
        self.store = store
        self.wall = wall

    def dial_code(self, account: dict[str, Any]) -> str:
        """What a national (leading 0) number of the account takes: its own dial code, else
        the country of the box's SIMs (as for sends)."""
        return str(account["default_dial_code"] or box_dial_code(self.store, int(account["id"])))

    # -- contacts ---------------------------------------------------------------------------

    def create_contact(
        self,
        account: dict[str, Any],
        number: str,
        *,
        first_name: str = "",
        last_name: str = "",
        title: str = "",
    ) -> dict[str, Any]:
        """A new contact outside any group (raises InvalidNumberError or ContactError)."""
        _check(first_name=first_name, last_name=last_name, title=title)
        e164 = normalize(number, self.dial_code(account))
        contact_id = self.store.insert_contact(
            int(account["id"]),
            {"number": e164, "first_name": first_name, "last_name": last_name,
             "extra": {"title": title} if title else {}},
            now=self.wall(),
        )  # fmt: skip
        return self.contact(account, contact_id)

    def contact(self, account: dict[str, Any], contact_id: int) -> dict[str, Any]:
        """One contact of the account."""
        row = self.store.contact(int(account["id"]), contact_id)
        if row is None:
            raise NotFoundError(f"no contact {contact_id}")
        return row

    def contacts(
        self, account: dict[str, Any], *, limit: int | None = None, offset: int = 0
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total, one page oldest first) of the account's contacts."""
        return self.store.all_contacts(int(account["id"]), limit=limit, offset=offset)

    def update_contact(
        self,
        account: dict[str, Any],
        contact_id: int,
        *,
        number: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        title: str | None = None,
    ) -> dict[str, Any]:
        """Change the given fields of a contact."""
        fields: dict[str, Any] = {}
        if number is not None:
            fields["number"] = normalize(number, self.dial_code(account))
        for name, value in (("first_name", first_name), ("last_name", last_name)):
            if value is not None:
                _check(**{name: value})
                fields[name] = value
        if title is not None:
            _check(title=title)
            fields["extra"] = {"title": title}
        if not self.store.update_contact(int(account["id"]), contact_id, fields):
            raise NotFoundError(f"no contact {contact_id}")
        return self.contact(account, contact_id)

    def delete_contact(self, account: dict[str, Any], contact_id: int) -> None:
        """Delete a contact (out of every group)."""
        if not self.store.delete_contacts(int(account["id"]), [contact_id]):
            raise NotFoundError(f"no contact {contact_id}")

    # -- groups -----------------------------------------------------------------------------

    def create_group(self, account: dict[str, Any], name: str) -> dict[str, Any]:
        """A new, empty group."""
        name = name.strip()
        if not name:
            raise ContactError("a group needs a name")
        _check(name=name)
        group_id = self.store.insert_group(int(account["id"]), name)
        if group_id is None:
            raise NameTakenError(f"a group named {name!r} already exists")
        return self.group(account, group_id)

    def group(self, account: dict[str, Any], group_id: int) -> dict[str, Any]:
        """One group of the account."""
        row = self.store.group(int(account["id"]), group_id)
        if row is None:
            raise NotFoundError(f"no group {group_id}")
        return row

    def groups(
        self, account: dict[str, Any], *, limit: int | None = None, offset: int = 0
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total, one page oldest first) of the account's groups."""
        return self.store.all_groups(int(account["id"]), limit=limit, offset=offset)

    def rename_group(self, account: dict[str, Any], group_id: int, name: str) -> dict[str, Any]:
        """Give a group another name."""
        name = name.strip()
        if not name:
            raise ContactError("a group needs a name")
        _check(name=name)
        outcome = self.store.rename_group(int(account["id"]), group_id, name)
        if outcome is None:
            raise NameTakenError(f"a group named {name!r} already exists")
        if not outcome:
            raise NotFoundError(f"no group {group_id}")
        return self.group(account, group_id)

    def delete_group(self, account: dict[str, Any], group_id: int) -> None:
        """Delete a group; its contacts stay."""
        if not self.store.delete_group(int(account["id"]), group_id):
            raise NotFoundError(f"no group {group_id}")

    def add_to_group(self, account: dict[str, Any], contact_id: int, group_id: int) -> None:
        """Put a contact into a group (already there is fine)."""
        self.contact(account, contact_id)
        self.group(account, group_id)
        self.store.add_membership(int(account["id"]), group_id, contact_id)

    def remove_from_group(self, account: dict[str, Any], contact_id: int, group_id: int) -> None:
        """Take a contact out of a group (not in it is fine)."""
        self.contact(account, contact_id)
        self.group(account, group_id)
        self.store.remove_membership(int(account["id"]), group_id, contact_id)

    def group_ids_of(self, account: dict[str, Any], contact_id: int) -> list[int]:
        """Every group the contact is in."""
        return self.store.group_ids_of(int(account["id"]), contact_id)

    def members(self, account: dict[str, Any], group_id: int) -> list[int]:
        """Ids of the contacts in a group."""
        self.group(account, group_id)
        return self.store.group_member_ids(int(account["id"]), group_id)

    # -- templates --------------------------------------------------------------------------

    def create_template(self, account_id: int, name: str, data: str) -> int:
        """Store a message template; return its id."""
        name = name.strip()
        if not name or not data:
            raise ContactError("a template needs a name and a text")
        _check(name=name)
        if len(data) > MAX_TEMPLATE:
            raise ContactError(f"template longer than {MAX_TEMPLATE} characters")
        return self.store.insert_template(account_id, name, data, now=self.wall())

    def template(self, account_id: int, template_id: int) -> dict[str, Any]:
        """One template of the account."""
        row = self.store.template(account_id, template_id)
        if row is None:
            raise NotFoundError(f"no template {template_id}")
        return row

    def templates(
        self, account_id: int, *, limit: int | None = None, offset: int = 0
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total, one page oldest first) of the account's templates."""
        return self.store.templates(account_id, limit=limit, offset=offset)

    def delete_template(self, account_id: int, template_id: int) -> None:
        """Delete a template."""
        if not self.store.delete_template(account_id, template_id):
            raise NotFoundError(f"no template {template_id}")
