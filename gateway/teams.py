"""Teams: an account and the sub-accounts it created (users), their profiles, credit transfers
between them and URL-sending tokens."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.accounts import hash_password, secret_digest
from gateway.store import Store

MAX_FIELD = 100  # longer names, numbers and passwords are refused, not truncated
MIN_PASSWORD = 8


class TeamError(ValueError):
    """A team operation the book refuses (a client error)."""


class NotInTeamError(TeamError):
    """The user named is not the caller nor one of its sub-accounts."""


class NotAdminError(TeamError):
    """Only the team's administrator may do that."""


class EmailTakenError(TeamError):
    """Another account already has that email address."""


class TeamCreditsError(TeamError):
    """The paying account lacks the credits."""


@dataclass(frozen=True, slots=True)
class NewUser:
    """A sub-account as a client asks for it."""

    email: str
    password: str
    first_name: str
    last_name: str
    contact_number: str
    company: str = ""
    credits: int = 0


def _check(**values: str) -> None:
    for name, value in values.items():
        if len(value) > MAX_FIELD:
            raise TeamError(f"{name} longer than {MAX_FIELD} characters")


def _check_email(email: str) -> None:
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in email):
        raise TeamError("invalid email address")


class TeamBook:
    """Users of each team; the store does the SQL, this does the rules."""

    def __init__(self, store: Store, *, wall: Callable[[], datetime]) -> None:
        self.store = store
        self.wall = wall

    def is_admin(self, account: dict[str, Any]) -> bool:
        """An account nobody created administers its team (itself and its sub-accounts)."""
        return account.get("parent_id") is None

    def members(self, account: dict[str, Any]) -> list[dict[str, Any]]:
        """Users the account may see and manage: itself first, then its sub-accounts."""
        if not self.is_admin(account):
            return [account]
        return self.store.team(int(account["id"]))

    def member(self, account: dict[str, Any], user_id: int) -> dict[str, Any]:
        """One user of the account's team."""
        for row in self.members(account):
            if int(row["id"]) == user_id:
                return row
        raise NotInTeamError(f"no user {user_id} in this team")

    def find(self, account: dict[str, Any], email: str) -> list[dict[str, Any]]:
        """Users of the team with that email address (case-insensitive)."""
        wanted = email.strip().casefold()
        return [r for r in self.members(account) if str(r["email"]).casefold() == wanted]

    def create(self, account: dict[str, Any], user: NewUser) -> dict[str, Any]:
        """Create a sub-account (name = its email) paid `credits` from the creator's."""
        if not self.is_admin(account):
            raise NotAdminError("only the team's administrator can create users")
        for name in ("email", "password", "first_name", "last_name", "contact_number"):
            if not getattr(user, name).strip():
                raise TeamError(f"{name} is required")
        _check(email=user.email, password=user.password, first_name=user.first_name,
               last_name=user.last_name, contact_number=user.contact_number,
               company=user.company)  # fmt: skip
        _check_email(user.email)
        if len(user.password) < MIN_PASSWORD:
            raise TeamError(f"password shorter than {MIN_PASSWORD} characters")
        if user.credits < 0:
            raise TeamError("creditBalance cannot be negative")
        email = user.email.strip()
        if self.store.accounts_by_email(email) or self.store.account_by_name(email):
            raise EmailTakenError("email address already in use")
        fields = {
            "sub_account": email,
            "email": email,
            "password_hash": hash_password(user.password),
            "api_key": secret_digest(secrets.token_hex(20)),
            "token": secret_digest(secrets.token_hex(16)),
            "first_name": user.first_name.strip(),
            "last_name": user.last_name.strip(),
            "contact_number": user.contact_number.strip(),
            "company": user.company.strip(),
            "default_dial_code": account["default_dial_code"],
            "timezone": account["timezone"],
        }
        new_id = self.store.insert_sub_account(
            int(account["id"]), fields, user.credits, now=self.wall()
        )
        if new_id is None:
            raise TeamCreditsError(f"{user.credits} credits needed to fund the new user")
        row = self.store.account(new_id)
        assert row is not None
        return row

    def update(
        self,
        account: dict[str, Any],
        user_id: int,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        contact_number: str | None = None,
        password: str | None = None,
    ) -> dict[str, Any]:
        """Change a team user's names, contact number and/or password."""
        self.member(account, user_id)
        fields: dict[str, Any] = {}
        for name, value in (("first_name", first_name), ("last_name", last_name),
                            ("contact_number", contact_number)):  # fmt: skip
            if value is not None:
                _check(**{name: value})
                fields[name] = value.strip()
        if password is not None:
            _check(password=password)
            if len(password) < MIN_PASSWORD:
                raise TeamError(f"password shorter than {MIN_PASSWORD} characters")
            fields["password_hash"] = hash_password(password)
        self.store.update_profile(user_id, fields)
        row = self.store.account(user_id)
        assert row is not None
        return row

    def transfer(
        self, account: dict[str, Any], source_email: str, target_email: str, units: int
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Move credits between two users of the team; (source, target) after the move."""
        if units < 1:
            raise TeamError("the number of credits to transfer must be at least 1")
        if (
            not self.is_admin(account)
            and source_email.casefold() != str(account["email"]).casefold()
        ):
            raise NotAdminError(
                "a user that is not the administrator can only give its own credits"
            )
        source = self._one(account, source_email, "transferFromEmailAddress")
        target = self._one(account, target_email, "transferToEmailAddress")
        if source["id"] == target["id"]:
            raise TeamError("cannot transfer credits to the same user")
        if not self.store.transfer_credits(
            int(source["id"]), int(target["id"]), units, now=self.wall()
        ):
            raise TeamCreditsError(f"{units} credits needed, {source['credits']} available")
        after = self.store.account(int(source["id"])), self.store.account(int(target["id"]))
        assert after[0] is not None and after[1] is not None
        return after[0], after[1]

    def _one(self, account: dict[str, Any], email: str, what: str) -> dict[str, Any]:
        if not email.strip():
            raise TeamError(f"{what} is required")
        found = self.find(self._admin(account), email)
        if not found:
            raise NotInTeamError(f"no user {email!r} in this team")
        return found[0]

    def _admin(self, account: dict[str, Any]) -> dict[str, Any]:
        if self.is_admin(account):
            return account
        parent = self.store.account(int(account["parent_id"]))
        return parent if parent is not None else account

    def issue_send_token(self, account_id: int) -> str:
        """A new URL-sending token for the account (only its digest is kept; the old one stops
        working)."""
        token = secrets.token_hex(16)
        self.store.set_send_token(account_id, secret_digest(token))
        return token

    def issue_token(self, account_id: int) -> str:
        """A new REST token for the account (the old one stops working)."""
        token = secrets.token_hex(16)
        self.store.set_token(account_id, secret_digest(token))
        return token
