"""GatewayService: the one facade that the CLI and every API dialect call."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.models import PartState
from gateway.numbers import InvalidNumberError, normalize
from gateway.recurrence import Recurrence
from gateway.store import Store, utc_iso
from modem.pdu import count

log = logging.getLogger(__name__)

MAX_BODY_CHARACTERS = 1530  # 10 parts of GSM-7; longer texts are refused, not truncated


class ServiceError(Exception):
    """A request the gateway refuses; `code` is stable for API dialects to map."""

    code = "error"


class UnknownAccountError(ServiceError):
    """No such account, or API access is off."""

    code = "unknown_account"


class InsufficientCreditsError(ServiceError):
    """The account cannot pay for every part it asked for."""

    code = "insufficient_credits"


class InvalidRequestError(ServiceError):
    """Missing or malformed parameters."""

    code = "invalid_request"


@dataclass(frozen=True, slots=True)
class Rejected:
    """One recipient that was not accepted, and why."""

    recipient: str
    reason: str


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What submit() accepted: durable before this is returned."""

    message_ids: tuple[int, ...]
    batch_id: int | None
    units_per_message: int
    units_charged: int
    encoding: str
    rejected: tuple[Rejected, ...] = field(default_factory=tuple)


class GatewayService:
    """Validates and accepts work, answers queries; the daemon's workers do the sending."""

    def __init__(self, store: Store, *, wall: Callable[[], datetime]) -> None:
        self.store = store
        self.wall = wall

    def _account(self, account_id: int) -> dict[str, Any]:
        account = self.store.account(account_id)
        if account is None or not account["api_enabled"]:
            raise UnknownAccountError(f"no active account {account_id}")
        return account

    def submit(
        self,
        account_id: int,
        recipients: Sequence[str],
        text: str,
        *,
        sender: str = "",
        send_at: datetime | None = None,
        flash: bool = False,
        status_report: bool = True,
        rotate: bool = True,
        extra: dict[str, Any] | None = None,
        recurrence: Recurrence | None = None,
    ) -> SubmitResult:
        """Accept one text for one or more recipients, charging credits per part.

        With `recurrence`, `send_at` is the first occurrence and nothing is charged now: each
        occurrence is accepted (and charged) when it comes, in the account's timezone.
        """
        account = self._account(account_id)
        if not text:
            raise InvalidRequestError("message text is empty")
        if len(text) > MAX_BODY_CHARACTERS:
            raise InvalidRequestError(f"message longer than {MAX_BODY_CHARACTERS} characters")
        numbers: list[str] = []
        rejected: list[Rejected] = []
        for raw in recipients:
            try:
                number = normalize(raw, account["default_dial_code"])
            except InvalidNumberError as exc:
                rejected.append(Rejected(raw, str(exc)))
                continue
            if number not in numbers:  # duplicates are sent once
                numbers.append(number)
        if not numbers:
            raise InvalidRequestError(
                "no valid recipient" + (f": {rejected[0].reason}" if rejected else "")
            )
        cost = count(text)
        total = cost.parts * len(numbers)
        if recurrence is not None:
            return self._submit_series(
                account, numbers, text, units=cost.parts, encoding=cost.encoding.value,
                rejected=tuple(rejected), sender=sender, send_at=send_at, flash=flash,
                status_report=status_report, rotate=rotate, extra=extra, recurrence=recurrence,
            )  # fmt: skip
        if not account["unlimited"] and account["credits"] < total:
            raise InsufficientCreditsError(
                f"{total} credits needed, {account['credits']} available"
            )
        now = self.wall()
        batch_id = None
        if len(numbers) > 1 or send_at is not None:
            batch_id = self.store.insert_batch(
                {
                    "account_id": account_id,
                    "sender": sender,
                    "rotate": int(rotate),
                    "send_at": utc_iso(send_at) if send_at is not None else None,
                },
                now=now,
            )
        ids = []
        for number in numbers:
            accepted = self.store.accept_message(
                account_id=account_id,
                recipient=number,
                body=text,
                encoding=cost.encoding.value,
                parts=cost.parts,
                sender=sender,
                batch_id=batch_id,
                send_at=send_at,
                status_report=status_report,
                flash=flash,
                charge=cost.parts,
                extra=extra,
                now=now,
            )
            ids.append(accepted.message_id)
        log.info(
            "account %d: accepted %d message(s), %d part(s) each", account_id, len(ids), cost.parts
        )
        return SubmitResult(
            tuple(ids), batch_id, cost.parts, total, cost.encoding.value, tuple(rejected)
        )

    def _submit_series(
        self,
        account: dict[str, Any],
        numbers: list[str],
        text: str,
        *,
        units: int,
        encoding: str,
        rejected: tuple[Rejected, ...],
        sender: str,
        send_at: datetime | None,
        flash: bool,
        status_report: bool,
        rotate: bool,
        extra: dict[str, Any] | None,
        recurrence: Recurrence,
    ) -> SubmitResult:
        if send_at is None:
            raise InvalidRequestError("a recurring send needs its first date and time")
        try:
            zone = ZoneInfo(account["timezone"] or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo("UTC")
        start_local = send_at.astimezone(zone).replace(tzinfo=None)
        if send_at.astimezone(zone).date() > recurrence.until:
            raise InvalidRequestError("the end date is before the first send")
        template = {
            "recipients": numbers,
            "text": text,
            "sender": sender,
            "flash": flash,
            "status_report": status_report,
            "extra": extra or {},
        }
        batch_id = self.store.insert_batch(
            {
                "account_id": account["id"],
                "sender": sender,
                "rotate": int(rotate),
                "send_at": utc_iso(send_at),
                "recurrence": json.dumps(
                    {
                        "unit": recurrence.unit.value,
                        "frequency": recurrence.frequency,
                        "until": recurrence.until.isoformat(),
                    }
                ),
                "template": json.dumps(template),
                "timezone": zone.key,
                "start_local": start_local.isoformat(),
                "next_run": utc_iso(send_at),
            },
            now=self.wall(),
        )
        return SubmitResult((), batch_id, units, 0, encoding, rejected)

    # -- batch control ----------------------------------------------------------------------

    def _own_batch(self, account_id: int, batch_id: int) -> dict[str, Any]:
        batch = self.store.batch(batch_id)
        if batch is None or batch["account_id"] != account_id:
            raise InvalidRequestError(f"no batch {batch_id}")
        return batch

    def pause_batch(self, account_id: int, batch_id: int) -> None:
        """Hold a batch's unsent messages (and a series' future runs) until resumed."""
        if self._own_batch(account_id, batch_id)["state"] not in ("active", "paused"):
            raise InvalidRequestError(f"batch {batch_id} is finished or cancelled")
        self.store.set_batch_state(batch_id, "paused")

    def resume_batch(self, account_id: int, batch_id: int) -> None:
        """Let a paused batch send again."""
        if self._own_batch(account_id, batch_id)["state"] not in ("active", "paused"):
            raise InvalidRequestError(f"batch {batch_id} is finished or cancelled")
        self.store.set_batch_state(batch_id, "active")

    def cancel_batch(self, account_id: int, batch_id: int) -> int:
        """Cancel a batch: future runs stop and unsent parts are refunded; returns their count."""
        self._own_batch(account_id, batch_id)
        self.store.set_batch_state(batch_id, "cancelled")
        return sum(
            self.store.cancel_message(mid, now=self.wall())
            for mid in self.store.batch_message_ids(batch_id)
        )

    def message(self, account_id: int, message_id: int) -> dict[str, Any] | None:
        """One message of an account, with its parts."""
        row = self.store.message(message_id)
        if row is None or row["account_id"] != account_id:
            return None
        row["parts"] = self.store.parts(message_id)
        return row

    def cancel(self, account_id: int, message_id: int) -> int:
        """Cancel the parts not yet on the wire and refund them; return how many were refunded."""
        row = self.store.message(message_id)
        if row is None or row["account_id"] != account_id:
            raise InvalidRequestError(f"no message {message_id}")
        return self.store.cancel_message(message_id, now=self.wall())

    def counts(self) -> dict[str, int]:
        """Messages per state, for health pages and metrics."""
        return self.store.count_by_state("messages")

    def due_messages(self, limit: int) -> list[dict[str, Any]]:
        """Messages whose queued parts may be sent now."""
        return self.store.due_messages(self.wall(), limit)

    def is_terminal(self, message_id: int) -> bool:
        """Whether a message has no part left to send or settle."""
        row = self.store.message(message_id)
        return row is not None and PartState(row["state"]) in {
            PartState.DELIVERED,
            PartState.FAILED,
            PartState.EXPIRED,
            PartState.CANCELLED,
        }

    # -- queries for the APIs ---------------------------------------------------------------

    def authenticate(self, api_key: str) -> int:
        """Return the account id for an API key, or raise UnknownAccountError."""
        account = self.store.account_by_api_key(api_key) if api_key else None
        if account is None or not account["api_enabled"]:
            raise UnknownAccountError("unknown or disabled API key")
        return int(account["id"])

    def list_messages(
        self,
        account_id: int,
        *,
        state: str | None = None,
        batch_id: int | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """An account's messages, newest first."""
        if state is not None and state not in {s.value for s in PartState}:
            raise InvalidRequestError(f"unknown state {state!r}")
        if not 1 <= limit <= 500 or offset < 0:
            raise InvalidRequestError("limit must be 1-500 and offset >= 0")
        return self.store.list_messages(
            account_id, state=state, batch_id=batch_id, limit=limit, offset=offset
        )

    def inbox(self, account_id: int, *, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        """An account's inbound messages, newest first."""
        if not 1 <= limit <= 500 or offset < 0:
            raise InvalidRequestError("limit must be 1-500 and offset >= 0")
        return self.store.list_inbound(account_id, limit=limit, offset=offset)

    def sims(self) -> list[dict[str, Any]]:
        """Every SIM the gateway has seen, with its modem."""
        return self.store.list_sims()

    def health(self) -> dict[str, Any]:
        """Liveness summary: database sound, SIMs present, message counts."""
        sims = self.store.list_sims()
        return {
            "database": "ok" if not self.store.integrity_check() else "corrupt",
            "sims_present": sum(1 for s in sims if s["state"] == "present"),
            "sims_total": len(sims),
            "messages": self.counts(),
        }
