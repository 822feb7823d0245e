"""Contacts, contact groups, opt-outs and appointments of an account (numbers kept in E.164)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

from gateway.numbers import InvalidNumberError, normalize
from gateway.store import Store

DEFAULT_GROUP = "default"
MAX_NAME = 100  # longer names, emails and group names are refused, not truncated
# A CSV's header names (lower case) for each field; the first row is a header when one of
# its cells names the number.
CSV_FIELDS = {
    "number": ("number", "phone", "phone_number", "mobile", "msisdn"),
    "first_name": ("first_name", "firstname", "name"),
    "last_name": ("last_name", "lastname", "surname"),
    "email": ("email", "e-mail"),
    "group": ("group", "group_name"),
}


class ContactError(ValueError):
    """A contact operation the book refuses."""


class UnknownGroupError(ContactError):
    """The group named does not exist for this account."""


class AlreadySubscribedError(ContactError):
    """The number is already in that group."""


class ContactNotFoundError(ContactError):
    """No contact has that number."""


class DuplicateAppointmentError(ContactError):
    """That number already has an appointment at that time."""


class ContactSource(IntEnum):
    """How a contact signed up (UltraSMSScript's `source` values)."""

    IMPORT = 0
    SMS = 1
    WEB_WIDGET = 2
    KIOSK = 3


class AppointmentStatus(IntEnum):
    """UltraSMSScript's appointment states."""

    UNCONFIRMED = 0
    CONFIRMED = 1
    CANCELLED = 2
    RESCHEDULED = 3


@dataclass(frozen=True, slots=True)
class ContactInput:
    """One contact as a client sends it (number not yet normalised)."""

    number: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    group: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SaveResult:
    """Which contacts were saved (ids) and which numbers were not phone numbers."""

    contact_ids: tuple[int, ...]
    rejected: tuple[str, ...]


class ContactBook:
    """Contacts of every account; the store does the SQL, this does the rules."""

    def __init__(self, store: Store, *, wall: Callable[[], datetime]) -> None:
        self.store = store
        self.wall = wall

    def save(
        self,
        account_id: int,
        contacts: Sequence[ContactInput],
        *,
        dial_code: str,
        default_group: str = DEFAULT_GROUP,
    ) -> SaveResult:
        """Save contacts into their own group, else `default_group` (groups are created)."""
        _check_lengths(default_group)
        rows: list[dict[str, Any]] = []
        rejected: list[str] = []
        seen: set[tuple[int, str]] = set()
        groups: dict[str, int] = {}
        for c in contacts:
            _check_lengths(c.first_name, c.last_name, c.email, c.group or "")
            try:
                number = normalize(c.number, dial_code)
            except InvalidNumberError:
                rejected.append(c.number)
                continue
            name = c.group or default_group
            if name not in groups:
                groups[name] = self.store.ensure_contact_group(account_id, name)
            key = (groups[name], number)
            if key in seen:
                continue
            seen.add(key)
            rows.append(
                {
                    "group_id": groups[name],
                    "number": number,
                    "first_name": c.first_name,
                    "last_name": c.last_name,
                    "email": c.email,
                    "extra": dict(c.extra),
                }
            )
        ids = self.store.save_contacts(account_id, rows, now=self.wall()) if rows else []
        return SaveResult(tuple(ids), tuple(rejected))

    def subscribe(
        self,
        account_id: int,
        group: str,
        number: str,
        *,
        name: str = "",
        email: str = "",
        birthday: str = "",
        source: ContactSource = ContactSource.IMPORT,
    ) -> int:
        """Add a number to an existing group (UltraSMS addcontact); return the contact id."""
        _check_lengths(name, email, group)
        group_id = self.store.contact_group_id(account_id, group)
        if group_id is None:
            raise UnknownGroupError(f"no contact group {group!r}")
        e164 = normalize(number)
        total, _ = self.store.search_contacts(
            account_id, group_ids=[group_id], number=e164, limit=0
        )
        if total:
            raise AlreadySubscribedError(f"number is already subscribed for {group}")
        extra: dict[str, Any] = {"source": int(source)}
        if birthday:
            extra["bday"] = birthday
        (contact_id,) = self.store.save_contacts(
            account_id,
            [{"group_id": group_id, "number": e164, "first_name": name, "email": email,
              "extra": extra}],
            now=self.wall(),
        )  # fmt: skip
        return contact_id

    def search(self, account_id: int, **filters: Any) -> tuple[int, list[dict[str, Any]]]:
        """(total, page) of contacts matching Store.search_contacts' filters."""
        return self.store.search_contacts(account_id, **filters)

    def group_id(self, account_id: int, name: str) -> int | None:
        """Id of a group by its exact name."""
        return self.store.contact_group_id(account_id, name)

    def groups(self, account_id: int) -> list[tuple[str, int]]:
        """Every group of an account with its size."""
        return self.store.contact_group_counts(account_id)

    def members(self, account_id: int, group_ids: Sequence[int]) -> list[dict[str, Any]]:
        """Contacts of the given groups, each number once (first saved wins), opted-out kept
        but flagged."""
        _, rows = self.store.search_contacts(
            account_id, group_ids=group_ids, order="created", descending=False
        )
        unique: dict[str, dict[str, Any]] = {}
        for row in rows:
            unique.setdefault(row["number"], row)
        return list(unique.values())

    def find(self, account_id: int, number: str) -> dict[str, Any] | None:
        """The first contact saved with that (E.164) number."""
        _, rows = self.store.search_contacts(
            account_id, number=number, order="created", descending=False, limit=1
        )
        return rows[0] if rows else None

    def opted_out(self, account_id: int, number: str) -> bool:
        """Whether the number sent STOP to this account."""
        return self.store.is_opted_out(account_id, number)

    def opt_outs(self, account_id: int) -> list[dict[str, Any]]:
        """Opted-out numbers (number, keyword: what they texted, '' if set by an API; and
        created_at), oldest first."""
        return self.store.list_opt_outs(account_id)

    def set_opted_out(
        self,
        account_id: int,
        numbers: Sequence[str],
        opted_out: bool,
        *,
        dial_code: str,
        keyword: str = "",
    ) -> tuple[int, tuple[str, ...]]:
        """Opt numbers out (or back in); (how many changed, the ones that are no number)."""
        valid, rejected = _numbers(numbers, dial_code)
        if not valid:
            return 0, rejected
        changed = self.store.set_opt_outs(
            account_id, valid, opted_out, keyword=keyword, now=self.wall()
        )
        return changed, rejected

    def group_rows(self, account_id: int) -> list[dict[str, Any]]:
        """Every group (id, name, count), by id."""
        return self.store.contact_groups(account_id)

    def group_by_id(self, account_id: int, group_id: int) -> dict[str, Any] | None:
        """One group of the account (id, name)."""
        return self.store.contact_group(account_id, group_id)

    def create_group(self, account_id: int, name: str) -> int | None:
        """A new group's id; None when one of that name exists."""
        _check_lengths(name)
        return self.store.create_contact_group(account_id, name)

    def delete_group(self, account_id: int, group_id: int) -> bool:
        """Delete a group with its contacts; False when it does not exist."""
        return self.store.delete_contact_group(account_id, group_id)

    def add_numbers(
        self, account_id: int, group_id: int, numbers: Sequence[str], *, dial_code: str
    ) -> tuple[int, tuple[str, ...]]:
        """Add numbers to a group; (how many were new to it, the ones that are no number)."""
        valid, rejected = _numbers(numbers, dial_code)
        added = self.store.add_group_numbers(account_id, group_id, valid, now=self.wall())
        return added, rejected

    def remove_numbers(
        self, account_id: int, group_id: int, numbers: Sequence[str], *, dial_code: str
    ) -> tuple[int, tuple[str, ...]]:
        """Remove numbers from a group; (how many went, the ones that are no number)."""
        valid, rejected = _numbers(numbers, dial_code)
        return self.store.remove_group_numbers(account_id, group_id, valid), rejected

    def delete(self, account_id: int, contact_ids: Sequence[int]) -> int:
        """Delete contacts by id; return how many went."""
        return self.store.delete_contacts(account_id, contact_ids)

    def add_appointment(
        self, account_id: int, number: str, starts_at: datetime, status: AppointmentStatus
    ) -> int:
        """Book an appointment for an existing contact; return its id."""
        e164 = normalize(number)
        contact = self.find(account_id, e164)
        if contact is None:
            raise ContactNotFoundError("no contact with that number")
        appointment_id = self.store.add_appointment(
            account_id,
            contact_id=contact["id"],
            number=e164,
            starts_at=starts_at,
            status=int(status),
            now=self.wall(),
        )
        if appointment_id is None:
            raise DuplicateAppointmentError("appointment already exists for that time")
        return appointment_id


def read_csv(lines: Iterable[str]) -> list[ContactInput]:
    """The contacts of a CSV (`smsgw contacts import`, the dashboard's upload): a header row
    naming the columns (CSV_FIELDS), or no header and the number first, a name second."""
    try:
        rows = [row for row in csv.reader(lines) if any(cell.strip() for cell in row)]
    except csv.Error as exc:  # e.g. a field over csv.field_size_limit(): not a contact list
        raise ContactError(f"not a CSV file ({exc})") from exc
    if not rows:
        return []
    head = [cell.strip().lower() for cell in rows[0]]
    if any(name in head for name in CSV_FIELDS["number"]):
        where = {
            name: next((head.index(n) for n in names if n in head), None)
            for name, names in CSV_FIELDS.items()
        }
        body = rows[1:]
    else:
        where = {"number": 0, "first_name": 1, "last_name": None, "email": None, "group": None}
        body = rows

    def cell(row: list[str], name: str) -> str:
        at = where[name]
        return row[at].strip() if at is not None and at < len(row) else ""

    contacts: list[ContactInput] = []
    for row in body:
        values: dict[str, Any] = {name: cell(row, name) for name in CSV_FIELDS}
        values["group"] = values["group"] or None
        contacts.append(ContactInput(**values))
    return contacts


def _numbers(numbers: Sequence[str], dial_code: str) -> tuple[list[str], tuple[str, ...]]:
    """E.164 of the numbers that are numbers, and those that are not."""
    valid: list[str] = []
    rejected: list[str] = []
    for raw in numbers:
        try:
            valid.append(normalize(raw, dial_code))
        except InvalidNumberError:
            rejected.append(raw)
    return valid, tuple(rejected)


def _check_lengths(*values: str) -> None:
    for value in values:
        if len(value) > MAX_NAME:
            raise ContactError(f"value longer than {MAX_NAME} characters")
