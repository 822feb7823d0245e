"""GatewayService: the one facade that the CLI and every API dialect call."""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import math
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.accounts import (
    box_dial_code,
    hash_password,
    is_digest,
    secret_digest,
    verify_password,
)
from gateway.config import WebhookSettings
from gateway.contacts import (
    DEFAULT_GROUP,
    ContactBook,
    ContactError,
    ContactInput,
    SaveResult,
)
from gateway.directory import Directory
from gateway.mailbox import Mailbox
from gateway.models import ModemState, PartState, ThrottlePolicy, WebhookKind, WebhookState
from gateway.numbers import InvalidNumberError, NoDialCodeError, mask, normalize
from gateway.operator import (
    QUEUE_STATES,
    HourCount,
    LiveModem,
    ModemStatus,
    Overview,
    SimStatus,
    hour_floor,
    modem_statuses,
    sim_statuses,
    throughput,
)
from gateway.otp import IssuedOtp, OtpBook, OtpOutcome
from gateway.pool import SimPool, policy_of
from gateway.ratelimit import RateLimiter
from gateway.recurrence import Recurrence
from gateway.store import (
    SIM_LIMIT_COLUMNS,
    BatchRows,
    InboxSearch,
    MessageQuery,
    MessageSearch,
    Staged,
    Store,
    is_unavailable,
    utc_iso,
)
from gateway.store.webhooks import new_event_id
from gateway.teams import TeamBook
from gateway.telemetry import Telemetry
from gateway.webhooks import (
    DeliveryResult,
    WebhookSubscription,
    WebhookUrlError,
    check_url,
    deliver_once,
    format_names,
    redact_url,
    sample_data,
    sample_event,
)
from modem.pdu import Alphabet, MessageCount, PduError, count, segment

log = logging.getLogger(__name__)

MAX_BODY_CHARACTERS = 1530  # 10 parts of GSM-7; longer texts are refused, not truncated
MAX_TOP_UP = 10_000_000  # credits one API top-up may add
MAX_REPLIES = 10_000  # inbound messages one replies() call returns (the next call goes on)

# Passwords already verified against a given scrypt hash (process-wide, keyed digests only).
_CACHE_KEY = secrets.token_bytes(32)
_VERIFIED: dict[tuple[int, str], bytes] = {}
_VERIFIED_MAX = 10_000
# Recipients repeat (contacts, groups): parsing a number with phonenumbers costs ~0.1 ms.
_normalize = functools.lru_cache(maxsize=8192)(normalize)
# Texts repeat too (bulk sends, analysis calls); counting is pure, so its answers can be kept.
_count = functools.lru_cache(maxsize=4096)(count)
_segment = functools.lru_cache(maxsize=1024)(segment)


def _encodable_cost(text: str) -> MessageCount:
    """count(text), refusing text no alphabet can carry (a lone surrogate from JSON "\\ud800")."""
    try:
        return _count(text)
    except PduError as exc:
        raise InvalidRequestError(f"message cannot be encoded: {exc}") from None


@functools.cache
def _dummy_hash() -> str:
    """A scrypt hash no password matches, to verify against for unknown sub-account names."""
    return hash_password(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class Rejected:
    """One recipient that was not accepted, and why."""

    recipient: str
    reason: str
    needs_dial_code: bool = False  # national (leading 0) while no dial code is known


class ServiceError(Exception):
    """A request the gateway refuses; `code` is stable for API dialects to map."""

    code = "error"


class UnknownAccountError(ServiceError):
    """No such account, or API access is off."""

    code = "unknown_account"


class AccountDisabledError(UnknownAccountError):
    """The account exists but its API access is switched off."""

    code = "account_disabled"


class InsufficientCreditsError(ServiceError):
    """The account cannot pay for every part it asked for."""

    code = "insufficient_credits"


class InvalidRequestError(ServiceError):
    """Missing or malformed parameters."""

    code = "invalid_request"


class InvalidWebhookUrlError(InvalidRequestError):
    """A webhook URL the sender will not call (not http/https, no host, ...)."""

    code = "invalid_webhook_url"


class RateLimitedError(ServiceError):
    """Too many requests from this account or address (or too many wrong secrets) for now."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str:
        """Whole seconds for an HTTP Retry-After header (at least 1)."""
        return str(max(1, math.ceil(self.retry_after)))


def _webhook_kind(kind: WebhookKind | str) -> WebhookKind:
    try:
        return WebhookKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in WebhookKind)
        raise InvalidRequestError(f"unknown webhook kind {kind!r} (known: {known})") from None


class InvalidRecipientError(InvalidRequestError):
    """No recipient of the request is a phone number the gateway can send to."""

    code = "invalid_recipient"

    def __init__(self, message: str, rejected: Sequence[Rejected]) -> None:
        super().__init__(message)
        self.rejected = tuple(rejected)


class EmptyTextError(InvalidRequestError):
    """The message text is empty."""

    code = "empty_text"


class TextTooLongError(InvalidRequestError):
    """The message text has more characters than the API allows."""

    code = "text_too_long"


class UnicodeNotAllowedError(InvalidRequestError):
    """The text needs UCS-2 and the account may only send GSM-7 texts."""

    code = "unicode_not_allowed"


class LongTextNotAllowedError(InvalidRequestError):
    """The text needs more than one SMS and the account may only send single-part texts."""

    code = "long_text_not_allowed"


class BatchClosedError(InvalidRequestError):
    """The batch is finished or cancelled: nothing about it can change any more."""

    code = "batch_closed"


class TopUpNotAllowedError(ServiceError):
    """The account is not approved to top itself up through an API."""

    code = "topup_not_allowed"


@dataclass(frozen=True, slots=True)
class AccountPolicy:
    """What an account may send (all allowed by default) and whether it may top itself up."""

    allow_unicode: bool = True
    allow_long: bool = True
    allow_international: bool = True
    allow_topup: bool = False

    @classmethod
    def of(cls, account: dict[str, Any]) -> AccountPolicy:
        """The policy stored on an account row."""
        return cls(
            bool(account.get("allow_unicode", 1)),
            bool(account.get("allow_long", 1)),
            bool(account.get("allow_international", 1)),
            bool(account.get("allow_topup", 0)),
        )


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What submit() accepted: durable before this is returned."""

    message_ids: tuple[int, ...]
    batch_id: int | None
    units_per_message: int
    units_charged: int
    encoding: str
    rejected: tuple[Rejected, ...] = field(default_factory=tuple)


ADMIN_PASSWORD_SETTING = "admin_password_hash"
SESSION_KEY_SETTING = "dashboard_session_key"
MIN_ADMIN_PASSWORD = 8
MAX_PAGE = 200


class GatewayService:
    """Validates and accepts work, answers queries; the daemon's workers do the sending."""

    def __init__(
        self,
        store: Store,
        *,
        wall: Callable[[], datetime],
        pool: SimPool | None = None,
        telemetry: Telemetry | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.wall = wall
        # Inside the daemon: the live SIM pool (its clock is `monotonic`), and what the workers
        # know (set by the daemon); a CLI process has neither and shows what the store holds.
        self.pool = pool
        self.monotonic = monotonic
        # Without a daemon (live_modems None) no modem is expected, and health is never ready.
        self.live_modems: Callable[[], Sequence[LiveModem]] | None = None
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        # Provider dialects (issue 7): contacts and OTPs, and the password-check cache.
        self.contacts = ContactBook(store, wall=wall)
        self.otps = OtpBook(store, wall=wall)
        # Zoom Connect-style teams, contacts/groups/templates by id, and the two-way mailbox.
        self.teams = TeamBook(store, wall=wall)
        self.directory = Directory(store, wall=wall)
        self.mailbox = Mailbox(store, wall=wall)
        self._group: list[tuple[_BatchPlan, asyncio.Future[BatchResult]]] = []
        # The group commit runs in the store's accept thread, on its own connection, when the
        # store can open one (else inline, on the loop); one group at a time.
        self.commit_in_thread = True
        self._committing = False
        # Called after new work is accepted, so the dispatcher starts it without waiting for
        # its next tick (the daemon wires it to Dispatcher.wake), with True when the schedule
        # changed (what is due now must be promoted at once, not at the next full tick).
        self.on_accepted: Callable[[bool], None] | None = None
        # The HTTP front-end's rate limits and login backoff (the daemon sets them from
        # [limits]); None: unlimited (the CLI, tests of other things).
        self.limiter: RateLimiter | None = None
        # The daemon checks the database's integrity off the event loop now and then and
        # leaves the last result here; None: health runs the check itself (the CLI, tests).
        self.integrity_problems: Callable[[], list[str]] | None = None

    def _accepted(self, schedule: bool = False) -> None:
        if self.on_accepted is not None:
            self.on_accepted(schedule)

    def _account(self, account_id: int, row: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The active account `account_id`: `row` when the caller has just read it (to
        authenticate the same request: one read per request), else from the store."""
        account = dict(row) if row is not None else self.store.account(account_id)
        if account is None or account["id"] != account_id or not account["api_enabled"]:
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
        parts, encoding = _text_cost(text, AccountPolicy.of(account), MAX_BODY_CHARACTERS)
        dial = self.dial_code(account)
        sender = self._own_sender(account, sender, dial)
        numbers: dict[str, None] = {}  # insertion-ordered set: duplicates are sent once
        rejected: list[Rejected] = []
        for raw in recipients:
            try:
                number = _normalize(raw, dial)
            except InvalidNumberError as exc:
                rejected.append(Rejected(raw, str(exc), isinstance(exc, NoDialCodeError)))
                continue
            numbers[number] = None
        if not numbers:
            _no_valid_recipient(rejected)
        total = parts * len(numbers)
        if recurrence is not None:
            return self._submit_series(
                account, list(numbers), text, units=parts, encoding=encoding,
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
                encoding=encoding,
                parts=parts,
                sender=sender,
                batch_id=batch_id,
                send_at=send_at,
                status_report=status_report,
                flash=flash,
                charge=parts,
                extra=extra,
                now=now,
            )
            ids.append(accepted.message_id)
        log.info("account %d: accepted %d message(s), %d part(s) each", account_id, len(ids), parts)
        self._accepted()
        return SubmitResult(tuple(ids), batch_id, parts, total, encoding, tuple(rejected))

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
            raise BatchClosedError(f"batch {batch_id} is finished or cancelled")
        self.store.set_batch_state(batch_id, "paused")

    def resume_batch(self, account_id: int, batch_id: int) -> None:
        """Let a paused batch send again (what was due meanwhile goes at once)."""
        if self._own_batch(account_id, batch_id)["state"] not in ("active", "paused"):
            raise BatchClosedError(f"batch {batch_id} is finished or cancelled")
        self.store.set_batch_state(batch_id, "active")
        self._accepted(schedule=True)  # what fell due while it was paused goes at once

    def modify_batch(
        self,
        account_id: int,
        batch_id: int,
        *,
        text: str | None = None,
        send_at: datetime | None = None,
        sender: str | None = None,
        rotate: bool | None = None,
        unsent: bool = False,
        max_characters: int = MAX_BODY_CHARACTERS,
    ) -> int:
        """Change the text, send time and/or sender of a scheduled batch (or a series' next
        runs); messages already due (with `unsent`: already started) or sent are not touched.
        Returns how many messages changed."""
        batch = self._own_batch(account_id, batch_id)
        if batch["state"] not in ("active", "paused"):
            raise BatchClosedError(f"batch {batch_id} is finished or cancelled")
        policy = AccountPolicy.of(self._account(account_id))
        cost = _text_cost(text, policy, max_characters) if text is not None else None
        if send_at is not None and send_at <= self.wall():
            raise InvalidRequestError("the new send time is in the past")
        if batch["template"] is not None:  # a recurring series: change what future runs send
            self.store.update_series(
                batch_id,
                text=text,
                next_run=send_at,
            )
            return 0
        changed = self.store.modify_scheduled(
            batch_id,
            body=text,
            encoding=cost[1] if cost is not None else None,
            units=cost[0] if cost is not None else None,
            send_at=send_at,
            now=self.wall(),
            sender=sender,
            rotate=rotate,
            unsent=unsent,
        )
        if changed is None:
            raise InsufficientCreditsError("not enough credits for the longer text")
        self._accepted(schedule=True)
        return changed

    def cancel_batch(self, account_id: int, batch_id: int) -> int:
        """Cancel a batch: future runs stop and unsent parts are refunded; returns their count."""
        self._own_batch(account_id, batch_id)
        self.store.set_batch_state(batch_id, "cancelled")
        return self.store.cancel_batch_messages(batch_id, now=self.wall())

    def message(self, account_id: int, message_id: int) -> dict[str, Any] | None:
        """One message of an account, with its parts and `sent_from` (its SIM's number)."""
        row = self.store.message_with_sim(message_id)
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

    # -- rate limits and login backoff (issue 16) ------------------------------------------

    def admit(self, address: str) -> None:
        """Let a request from `address` in, or raise RateLimitedError (address limit, or the
        backoff of its wrong secrets)."""
        if self.limiter is not None and (wait := self.limiter.admit_address(address)) > 0:
            raise RateLimitedError(f"too many requests; retry in {math.ceil(wait)} s", wait)

    def admit_account(self, account_id: int) -> None:
        """Let an authenticated request of `account_id` in, or raise RateLimitedError."""
        if self.limiter is not None and (wait := self.limiter.admit_account(account_id)) > 0:
            raise RateLimitedError(f"too many requests; retry in {math.ceil(wait)} s", wait)

    def auth_failed(self, address: str, what: str) -> None:
        """A wrong `what` (password, API key) came from `address`: logged without the secret,
        and the address slowed down once it keeps trying."""
        delay = self.limiter.auth_failed(address) if self.limiter is not None else 0.0
        log.warning("wrong %s from %s%s", what, address or "?",
                    f"; it waits {delay:.0f} s" if delay else "")  # fmt: skip

    def auth_succeeded(self, address: str) -> None:
        """A right secret from `address`: its earlier failures are forgiven."""
        if self.limiter is not None:
            self.limiter.auth_succeeded(address)

    # -- queries for the APIs ---------------------------------------------------------------

    def authenticate(self, api_key: str) -> int:
        """Return the account id for an API key, or raise UnknownAccountError."""
        return int(self.authenticate_account(api_key)["id"])

    def authenticate_account(self, api_key: str) -> dict[str, Any]:
        """The active account an API key belongs to, as read now (a request passes it on to
        submit instead of reading it twice), or UnknownAccountError."""
        account = self._account_for_key(api_key)
        if account is None or not account["api_enabled"]:
            raise UnknownAccountError("unknown or disabled API key")
        return account

    def list_messages(
        self,
        account_id: int,
        *,
        state: str | None = None,
        batch_id: int | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """An account's messages, newest first, each with `sent_from` (its SIM's number)."""
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
        """Every SIM the gateway has seen, with its modem; `box`: in fleet mode the box holding
        its live lease (its state is then `present`, else `gone`: no box sends through it),
        otherwise None."""
        rows = self.store.list_sims()
        leases = self.sim_boxes()
        if leases is None:
            return [{**row, "box": None} for row in rows]
        return [
            {**row, "box": leases.get(row["id"]),
             "state": "present" if row["id"] in leases else "gone"}
            for row in rows
        ]  # fmt: skip

    def sim_boxes(self) -> dict[int, str] | None:
        """Fleet mode: each SIM leased right now and the box holding it (None: one box only)."""
        if self.store.dialect != "postgresql":
            return None
        return {sim: holder.box_id for sim, holder in self.store.live_leases(self.wall()).items()}

    def health(self) -> HealthReport:
        """Readiness: database sound and every expected modem registered; SIMs and counts."""
        modems = tuple(self.live_modems() if self.live_modems is not None else ())
        try:
            sims = self.store.list_sims()
            # A full integrity_check reads the whole file: seconds on a large database on an SD
            # card, too long for the loop of a daemon whose health a monitor polls.
            problems = (
                self.integrity_problems()
                if self.integrity_problems is not None
                else self.store.integrity_check()
            )
            database_ok = not problems
            messages = self.counts()
            locked = self.store.write_locked()
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            # The database refuses reads (I/O error, no file descriptor left): say so.
            return HealthReport(False, modems, 0, 0, {}, database_error=str(exc))
        return HealthReport(
            database_ok=database_ok,
            modems=modems,
            sims_present=sum(1 for s in sims if s["state"] == "present"),
            sims_total=len(sims),
            messages=messages,
            database_error="locked by another process: writes refused" if locked else "",
        )

    # -- the operator's view (dashboard, /metrics, smsgw top) ---------------------------------

    def sim_statuses(self) -> tuple[SimStatus, ...]:
        """Every SIM with its limits, counters and (in the daemon) live radio and throttle."""
        return sim_statuses(
            self.store.list_sims(), self.pool, self.monotonic(), leases=self.sim_boxes()
        )

    def modem_statuses(self) -> tuple[ModemStatus, ...]:
        """Every modem seen, up or down."""
        live = self.live_modems() if self.live_modems is not None else None
        return modem_statuses(self.store.list_modems(), live)

    def queue_depth(self) -> dict[str, int]:
        """Messages waiting for a verdict, per state (zeros included)."""
        return self.store.queue_depth(QUEUE_STATES)

    def overview(self, *, zone: tzinfo | None = None) -> Overview:
        """The box at a glance; "today" starts at midnight in `zone` (default: the box's)."""
        now = self.wall()
        local = now.astimezone(zone) if zone is not None else now.astimezone()
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        utc_now = now.astimezone(UTC)
        since = hour_floor(utc_now) - timedelta(hours=23)
        return Overview(
            generated_at=now,
            modems=self.modem_statuses(),
            sims=self.sim_statuses(),
            queue=self.queue_depth(),
            sent_today=self.store.parts_sent_since(midnight),
            failed_today=self.store.parts_failed_since(midnight),
            received_today=self.store.inbound_since(midnight),
            throughput=throughput(self.store.hourly_counts(since), utc_now),
        )

    def hourly(self) -> tuple[HourCount, ...]:
        """The last 24 hours of traffic, hour by hour."""
        utc_now = self.wall().astimezone(UTC)
        since = hour_floor(utc_now) - timedelta(hours=23)
        return throughput(self.store.hourly_counts(since), utc_now)

    def search_messages(self, query: MessageSearch, *, limit: int = 50) -> list[dict[str, Any]]:
        """Every account's messages matching `query`, newest first (the operator sees all)."""
        if query.state is not None and query.state not in {s.value for s in PartState}:
            raise InvalidRequestError(f"unknown state {query.state!r}")
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequestError(f"limit must be 1-{MAX_PAGE}")
        return self.store.search_messages(query, limit=limit)

    def message_detail(self, message_id: int) -> dict[str, Any] | None:
        """Any account's message with its parts (TP-MR, SIM) and status reports."""
        return self.store.message_detail(message_id)

    def search_inbox(self, query: InboxSearch, *, limit: int = 50) -> list[dict[str, Any]]:
        """Every account's inbound messages matching `query`, newest first."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequestError(f"limit must be 1-{MAX_PAGE}")
        return self.store.search_inbound(query, limit=limit)

    def accounts(self) -> list[dict[str, Any]]:
        """Every sub-account, without secrets."""
        return self.store.list_accounts()

    def add_credits(self, account_id: int, delta: int, reason: str = "manual top-up") -> int:
        """Top up (or take back) an account's credits through the ledger; the new balance."""
        if self.store.account(account_id) is None:
            raise InvalidRequestError(f"no account {account_id}")
        if delta == 0 or abs(delta) > 10_000_000:
            raise InvalidRequestError("give a non-zero number of credits (at most 10,000,000)")
        return self.store.add_credits(account_id, delta, reason, now=self.wall())

    def _any_account(self, account_id: int) -> dict[str, Any]:
        """An account the operator manages (enabled or not)."""
        account = self.store.account(account_id)
        if account is None:
            raise UnknownAccountError(f"no account {account_id}")
        return account

    def contact_groups(self, account_id: int) -> list[dict[str, Any]]:
        """Every contact group of an account (id, name, count), oldest first."""
        self._any_account(account_id)
        return self.contacts.group_rows(account_id)

    def contact_group(self, account_id: int, group_id: int) -> dict[str, Any] | None:
        """One contact group of an account (id, name), or None."""
        return self.contacts.group_by_id(account_id, group_id)

    def create_contact_group(self, account_id: int, name: str) -> int:
        """A new, empty contact group (UltraSMS `addcontact` needs one); its id."""
        account = self._any_account(account_id)
        name = name.strip()
        if not name:
            raise InvalidRequestError("a group needs a name")
        try:
            group_id = self.contacts.create_group(account_id, name)
        except ContactError as exc:
            raise InvalidRequestError(str(exc)) from exc
        if group_id is None:
            raise InvalidRequestError(
                f"{account['sub_account']} already has a contact group {name!r}"
            )
        return group_id

    def delete_contact_group(self, account_id: int, group_id: int) -> bool:
        """Delete a contact group with its contacts; False when it does not exist."""
        self._any_account(account_id)
        return self.contacts.delete_group(account_id, group_id)

    def contact_page(
        self, account_id: int, *, group_id: int | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total, one page) of an account's contacts, of one group or all, newest first."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequestError(f"limit must be 1-{MAX_PAGE}")
        self._any_account(account_id)
        groups = None if group_id is None else [group_id]
        return self.contacts.search(account_id, group_ids=groups, limit=limit, offset=offset)

    def import_contacts(
        self, account_id: int, contacts: Sequence[ContactInput], *, default_group: str = ""
    ) -> SaveResult:
        """Save contacts (`smsgw contacts import`, the dashboard's upload): national numbers
        take the account's dial code; rows without a group go to `default_group`."""
        account = self._any_account(account_id)
        try:
            return self.contacts.save(
                account_id,
                contacts,
                dial_code=self.dial_code(account),
                default_group=default_group.strip() or DEFAULT_GROUP,
            )
        except ContactError as exc:
            raise InvalidRequestError(str(exc)) from exc

    def sim_by_iccid(self, iccid: str) -> dict[str, Any] | None:
        """One SIM row by ICCID."""
        return self.store.sim_by_iccid(iccid)

    def set_sim_limits(
        self, sim_id: int, changes: Mapping[str, float | int | None]
    ) -> ThrottlePolicy:
        """Change a SIM's throttle interval and/or caps (None: no cap); the running pool uses
        the new limits from the SIM's next send. Returns the SIM's whole policy now."""
        if not changes or not set(changes) <= SIM_LIMIT_COLUMNS:
            raise InvalidRequestError(f"limits are among {', '.join(sorted(SIM_LIMIT_COLUMNS))}")
        clean: dict[str, float | int | None] = {}
        for column, value in changes.items():
            if column == "throttle_interval":
                if value is None or not 1 <= float(value) <= 60:
                    raise InvalidRequestError("the throttle interval is 1-60 seconds")
                clean[column] = float(value)
            elif value is None:
                clean[column] = None
            elif (isinstance(value, float) and not value.is_integer()) or int(value) < 1:
                raise InvalidRequestError(f"{column} must be a whole number of at least 1")
            else:
                clean[column] = int(value)
        if not self.store.set_sim_limits(sim_id, clean):
            raise InvalidRequestError(f"no SIM {sim_id}")
        row = self.store.sim(sim_id) or {}
        policy = policy_of(row)
        if self.pool is not None and sim_id in self.pool.sim_ids():
            self.pool.set_policy(sim_id, policy)
        log.info("SIM %d: limits changed: %s", sim_id, clean)
        return policy

    def set_sim_number(self, sim_id: int, number: str) -> str:
        """Set a SIM's long code (E.164; "" clears it), in the store and the running pool."""
        msisdn = ""
        if number.strip():
            try:
                msisdn = normalize(number)
            except InvalidNumberError as exc:
                raise InvalidRequestError(str(exc)) from exc
            other = self.store.sim_by_number(msisdn)
            if other is not None and int(other["id"]) != sim_id:
                raise InvalidRequestError(f"SIM {other['id']} already has that number")
        if not self.store.set_sim_number(sim_id, msisdn):
            raise InvalidRequestError(f"no SIM {sim_id}")
        if self.pool is not None and sim_id in self.pool.sim_ids():
            self.pool.set_number(sim_id, msisdn)
        log.info("SIM %d: number set to ...%s", sim_id, mask(msisdn)[-3:] if msisdn else "")
        return msisdn

    def reload_sim_settings(self) -> int:
        """Bring the running pool in line with numbers and limits changed in the store by
        another process (`smsgw sims set-limits`); return how many SIMs changed."""
        if self.pool is None:
            return 0
        changed = 0
        for sim_id in self.pool.sim_ids():
            row = self.store.sim(sim_id)
            if row is None:
                continue
            pooled = self.pool.get(sim_id)
            policy = policy_of(row)
            if pooled.throttle.policy != policy or pooled.msisdn != (row["msisdn"] or ""):
                self.pool.set_policy(sim_id, policy)
                self.pool.set_number(sim_id, row["msisdn"] or "")
                changed += 1
        return changed

    # -- the dashboard's admin password ------------------------------------------------------

    def has_admin_password(self) -> bool:
        """Whether `smsgw admin set-password` (or install) has set one."""
        return self.store.setting(ADMIN_PASSWORD_SETTING) is not None

    def set_admin_password(self, password: str) -> None:
        """Set the dashboard's admin password (scrypt); every open session is logged out."""
        if len(password) < MIN_ADMIN_PASSWORD:
            raise InvalidRequestError(
                f"the admin password needs at least {MIN_ADMIN_PASSWORD} characters"
            )
        self.store.set_settings(
            {
                ADMIN_PASSWORD_SETTING: hash_password(password),
                SESSION_KEY_SETTING: secrets.token_hex(32),
            },
            now=self.wall(),
        )
        log.info("dashboard admin password changed; existing sessions end")

    def check_admin_password(self, password: str) -> bool:
        """Whether `password` is the admin password (False while none is set)."""
        encoded = self.store.setting(ADMIN_PASSWORD_SETTING)
        return encoded is not None and verify_password(password, encoded)

    def session_key(self) -> bytes:
        """The key dashboard sessions are signed with (made on first use; a new password
        replaces it, which ends every session)."""
        value = self.store.setting(SESSION_KEY_SETTING)
        if value is None:
            value = self.store.setting_if_absent(
                SESSION_KEY_SETTING, secrets.token_hex(32), now=self.wall()
            )
        return bytes.fromhex(value)

    # -- outgoing webhooks (issue 11) ---------------------------------------------------------

    def set_webhook(
        self, account_id: int, kind: WebhookKind | str, url: str, *, format: str = "v1"
    ) -> None:
        """Send the account's `kind` events to `url` in `format` (a registered format, or the
        one the subscription already has); a bad URL raises InvalidWebhookUrlError."""
        self._account(account_id)
        which = _webhook_kind(kind)
        try:
            host = check_url(url)
        except WebhookUrlError as exc:
            raise InvalidWebhookUrlError(str(exc)) from exc
        current = self.store.webhook_subscription(account_id, which)
        if format not in format_names() and (current is None or current["format"] != format):
            raise InvalidRequestError(
                f"unknown webhook format {format!r} (known: {', '.join(format_names())})"
            )
        self.store.set_webhook_subscription(account_id, which, url, host, format, now=self.wall())
        log.info("account %d: %s webhook -> %s (%s)", account_id, which, redact_url(url), format)

    def set_webhooks(
        self,
        account_id: int,
        urls: Mapping[WebhookKind | str, str | None],
        *,
        format: str | None = None,
    ) -> None:
        """Set (a URL) or remove (None) several kinds at once; every URL is checked before
        anything changes, so one bad URL changes nothing. `format=None` keeps each
        subscription's format (v1 for a new one)."""
        self._account(account_id)
        wanted = {_webhook_kind(kind): url for kind, url in urls.items()}
        for kind, url in wanted.items():
            if url is not None:
                try:
                    check_url(url)
                except WebhookUrlError as exc:
                    raise InvalidWebhookUrlError(f"{kind} webhook: {exc}") from exc
        for kind, url in wanted.items():
            if url is None:
                self.delete_webhook(account_id, kind)
                continue
            current = self.store.webhook_subscription(account_id, kind)
            keep = current["format"] if current is not None else "v1"
            self.set_webhook(account_id, kind, url, format=format or keep)

    def webhooks(self, account_id: int) -> dict[WebhookKind, WebhookSubscription]:
        """The account's webhook subscriptions, by kind (kinds without one are left out)."""
        return {
            WebhookKind(r["kind"]): WebhookSubscription(
                WebhookKind(r["kind"]),
                r["url"],
                r["format"],
                datetime.fromisoformat(r["updated_at"]),
            )
            for r in self.store.webhook_subscriptions(account_id)
        }

    def delete_webhook(self, account_id: int, kind: WebhookKind | str) -> bool:
        """Stop sending the account's `kind` events; False if there was no subscription."""
        which = _webhook_kind(kind)
        deleted = self.store.delete_webhook_subscription(account_id, which, now=self.wall())
        if deleted:
            log.info("account %d: %s webhook removed", account_id, which)
        return deleted

    def webhook_secret(self, account_id: int) -> str:
        """The account's signing secret for X-Smsgw-Signature (made on first use)."""
        self._account(account_id)
        return self.store.webhook_secret(account_id, now=self.wall())

    def rotate_webhook_secret(self, account_id: int) -> str:
        """A new signing secret for the account (attempts from now on are signed with it)."""
        self._account(account_id)
        return self.store.rotate_webhook_secret(account_id, now=self.wall())

    def webhook_counts(self) -> dict[str, int]:
        """Webhook events per delivery state: `pending`, `failed`, `delivered` (metrics)."""
        return self.store.webhook_counts()

    def webhook_events(
        self,
        account_id: int | None,
        *,
        state: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Webhook events (of one account, or all), newest first, with attempts, the last HTTP
        status and the last error."""
        if state is not None and state not in {s.value for s in WebhookState}:
            raise InvalidRequestError(f"unknown webhook state {state!r}")
        if not 1 <= limit <= 500 or offset < 0:
            raise InvalidRequestError("limit must be 1-500 and offset >= 0")
        return self.store.list_webhook_events(
            account_id=account_id, state=WebhookState(state) if state else None, limit=limit,
            offset=offset,
        )  # fmt: skip

    def retry_webhooks(self, account_id: int | None, event_ids: Sequence[str] | None = None) -> int:
        """Send events again now with a fresh retry window: the given ones, or every one not
        delivered yet; returns how many."""
        return self.store.retry_webhook_events(
            now=self.wall(), account_id=account_id,
            event_ids=list(event_ids) if event_ids is not None else None,
        )  # fmt: skip

    def purge_webhooks(
        self, account_id: int | None, *, failed: bool = False, older_than: timedelta | None = None
    ) -> int:
        """Delete delivered (and with `failed`, given-up) events, optionally only older ones;
        pending events are never purged. Returns how many went."""
        states = (
            (WebhookState.DELIVERED, WebhookState.FAILED) if failed else (WebhookState.DELIVERED,)
        )
        before = self.wall() - older_than if older_than is not None else None
        return self.store.purge_webhook_events(states=states, before=before, account_id=account_id)

    def fire_test_webhook(self, account_id: int, kind: WebhookKind | str) -> str:
        """Queue a test event (`"test": true` in its data) to the account's `kind` webhook;
        returns its event id. It is delivered, retried and recorded like any event."""
        which = _webhook_kind(kind)
        if self.store.webhook_subscription(account_id, which) is None:
            raise InvalidRequestError(f"no {which} webhook is set for this account")
        now = self.wall()
        stamp = utc_iso(now)
        return self.store.enqueue_webhook(account_id, which, sample_data(which, stamp), now=now)

    async def try_webhook(
        self, account_id: int, kind: WebhookKind | str, settings: WebhookSettings | None = None
    ) -> DeliveryResult:
        """One test event sent right now, outside the outbox (nothing stored or retried)."""
        which = _webhook_kind(kind)
        subscription = self.store.webhook_subscription(account_id, which)
        if subscription is None:
            raise InvalidRequestError(f"no {which} webhook is set for this account")
        event = sample_event(which, account_id, self.wall(), new_event_id())
        return await deliver_once(
            event, subscription["url"], subscription["format"], self.webhook_secret(account_id),
            settings,
        )  # fmt: skip

    # -- provider dialects (issue 7): BestSMS / UltraSMS / SMSit ------------------------------

    def account_by_credentials(self, sub_account: str, password: str) -> dict[str, Any]:
        """The account for a sub-account name and password (scrypt, cached per process)."""
        account = self.store.account_by_name(sub_account) if sub_account else None
        if account is None:
            # The same scrypt as for a wrong password: the answer's time does not tell which
            # sub-account names exist.
            verify_password(password, _dummy_hash())
            raise UnknownAccountError("incorrect sub-account name or password")
        if not self._password_ok(account, password):
            raise UnknownAccountError("incorrect sub-account name or password")
        if not account["api_enabled"]:
            raise AccountDisabledError("API access is disabled for this account")
        return account

    def _password_ok(self, account: dict[str, Any], password: str) -> bool:
        # scrypt costs ~50 ms by design; a keyed digest of a password already verified against
        # the current hash lets repeat requests through in microseconds (still constant-time).
        probe = hmac.digest(_CACHE_KEY, password.encode(), "sha256")
        key = (int(account["id"]), str(account["password_hash"]))
        cached = _VERIFIED.get(key)
        if cached is not None:
            return hmac.compare_digest(cached, probe)
        if not verify_password(password, account["password_hash"]):
            return False
        if len(_VERIFIED) >= _VERIFIED_MAX:
            _VERIFIED.clear()
        _VERIFIED[key] = probe
        return True

    def _account_for_key(self, api_key: str) -> dict[str, Any] | None:
        """The account whose stored key is the digest of `api_key` (or, for rows written
        before keys were hashed, `api_key` itself), compared in constant time."""
        if not api_key:
            return None
        digest = secret_digest(api_key)
        account = self.store.account_by_api_key(digest)
        if account is not None and hmac.compare_digest(str(account["api_key"]), digest):
            return account
        legacy = self.store.account_by_api_key(api_key)
        if (
            legacy is not None
            and not is_digest(str(legacy["api_key"]))  # a digest is not a key
            and hmac.compare_digest(str(legacy["api_key"]), api_key)
        ):
            return legacy
        return None

    def account_by_key(self, api_key: str) -> dict[str, Any]:
        """The account for an API key, telling unknown keys from disabled accounts."""
        account = self._account_for_key(api_key)
        if account is None:
            raise UnknownAccountError("unknown API key")
        if not account["api_enabled"]:
            raise AccountDisabledError("API access is disabled for this account")
        return account

    def account_by_email_token(self, email: str, token: str) -> dict[str, Any]:
        """The account for an email address and REST token (the token's digest compared in
        constant time), telling unknown credentials from disabled accounts."""
        if not email or not token:
            raise UnknownAccountError("email and token are required")
        digest = secret_digest(token)
        found = None
        for account in self.store.accounts_by_email(email):
            if hmac.compare_digest(str(account["token"]), digest):
                found = account
        if found is None:
            raise UnknownAccountError("incorrect email address or token")
        if not found["api_enabled"]:
            raise AccountDisabledError("API access is disabled for this account")
        return found

    def account_by_send_token(self, token: str) -> dict[str, Any]:
        """The account for a URL-sending token (it may only send)."""
        account = self.store.account_by_send_token(secret_digest(token)) if token else None
        if account is None or not hmac.compare_digest(
            str(account["send_token"]), secret_digest(token)
        ):
            raise UnknownAccountError("unknown URL-sending token")
        if not account["api_enabled"]:
            raise AccountDisabledError("API access is disabled for this account")
        return account

    def analyse(self, text: str) -> Analysis:
        """How `text` would be sent: the same count() and limits that submit applies."""
        try:
            cost = _count(text)
            seg = _segment(text)
        except PduError as exc:  # a lone surrogate cannot be encoded at all
            raise InvalidRequestError(f"message cannot be encoded: {exc}") from None
        within = 0 < len(text) <= MAX_BODY_CHARACTERS
        return Analysis(cost.encoding, cost.parts, cost.units, cost.characters, within,
                        cost.parts, seg.segments)  # fmt: skip

    def account_zone(self, account: dict[str, Any]) -> tzinfo:
        """The account's timezone (UTC when unset or unknown)."""
        try:
            return ZoneInfo(account["timezone"] or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            return UTC

    def dial_code(self, account: dict[str, Any]) -> str:
        """The dial code a national (leading 0) number of this account takes: its own, else
        the country of the SIMs it may send from as known at this moment ('' if none tells)."""
        return str(account["default_dial_code"] or box_dial_code(self.store, int(account["id"])))

    def _own_sender(self, account: dict[str, Any], sender: str, dial: str) -> str:
        """`sender` as the E.164 number of a SIM the account may send from ('' for none)."""
        if not sender:
            return ""
        try:
            number = _normalize(sender, dial)
        except InvalidNumberError:
            number = ""
        if number and any(s["msisdn"] == number for s in self.sender_numbers(account["id"])):
            return number
        raise InvalidRequestError(
            f"'from' {mask(sender)} is not the number of a SIM this account may send from"
        )

    def sender_numbers(self, account_id: int) -> list[dict[str, Any]]:
        """SIMs (long codes) an account may send from, with their numbers."""
        return self.store.account_sim_numbers(account_id)

    def submit_batch(
        self,
        account_id: int,
        items: Sequence[Outgoing],
        *,
        sender: str = "",
        flash: bool = False,
        rotate: bool = True,
        throttle: float | None = None,
        dial_code: str | None = None,
        extra: dict[str, Any] | None = None,
        into: int | None = None,
        id_key: str | None = None,
        max_characters: int = MAX_BODY_CHARACTERS,
    ) -> BatchResult:
        """Accept messages (each its own text and time) as one batch, atomically, charging
        per part; duplicate recipients go once (the first wins). `into` adds them to an open
        batch of the account (recipients it already has are skipped); `id_key` stores the
        batch id in each message's extra under that key; `max_characters` is the dialect's
        limit on a text."""
        plan = self._plan_batch(account_id, items, sender=sender, flash=flash, rotate=rotate,
                                throttle=throttle, dial_code=dial_code, extra=extra, into=into,
                                id_key=id_key, max_characters=max_characters)  # fmt: skip
        now = self.wall()
        (accepted,) = self.store.accept_batches([plan.rows], now=now)
        if accepted is None:
            raise self._refused(plan)
        return plan.result(*accepted, now)

    async def submit_batch_durably(
        self,
        account_id: int,
        items: Sequence[Outgoing],
        *,
        sender: str = "",
        flash: bool = False,
        rotate: bool = True,
        throttle: float | None = None,
        dial_code: str | None = None,
        extra: dict[str, Any] | None = None,
        unique: bool = True,
        per_minute: int | None = None,
        into: int | None = None,
        id_key: str | None = None,
        max_characters: int = MAX_BODY_CHARACTERS,
        account: Mapping[str, Any] | None = None,
    ) -> BatchResult:
        """submit_batch for request handlers: batches accepted in the same moment share one
        transaction (one fsync), and each caller resumes only once that commit is durable.

        unique=False keeps every item (several texts to one number); `per_minute` paces the
        whole batch, across every SIM, on top of each SIM's own limits; `account` is the row
        the request was just authenticated with (it is not read again).
        """
        if per_minute is not None and not 1 <= per_minute <= 6000:
            raise InvalidRequestError("a batch rate is 1-6000 messages per minute")
        plan = self._plan_batch(account_id, items, sender=sender, flash=flash, rotate=rotate,
                                throttle=throttle, dial_code=dial_code, extra=extra,
                                unique=unique, per_minute=per_minute, into=into, id_key=id_key,
                                max_characters=max_characters, account=account)  # fmt: skip
        return await self._join_group(plan)

    async def submit_durably(
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
        account: Mapping[str, Any] | None = None,
    ) -> SubmitResult:
        """submit() for request handlers (/v1): one batch, atomic, in the group commit that
        several requests share (one fsync), answered once that commit is durable; `account`
        is the row the request was just authenticated with (it is not read again)."""
        items = [Outgoing(r, text, send_at=send_at) for r in recipients]
        plan = self._plan_batch(account_id, items, sender=sender, flash=flash, rotate=rotate,
                                throttle=None, dial_code=None, extra=None,
                                status_report=status_report, batch_send_at=send_at,
                                account=account)  # fmt: skip
        first = plan.rows.messages[0]  # one text: every row has its parts and encoding
        result = await self._join_group(plan)
        return SubmitResult(result.message_ids, result.batch_id, first["parts"],
                            result.units_charged, first["encoding"], result.rejected)  # fmt: skip

    async def _join_group(self, plan: _BatchPlan) -> BatchResult:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[BatchResult] = loop.create_future()
        self._group.append((plan, future))
        if len(self._group) == 1 and not self.committing:
            # Two turns of the loop: handlers already woken by this turn's I/O join the group.
            # While a group is committing, the next one gathers until that commit returns.
            loop.call_soon(loop.call_soon, self._commit_group)
        return await future

    @property
    def committing(self) -> bool:
        """Whether a group commit is running in its thread right now."""
        return self._committing

    def _refused(self, plan: _BatchPlan) -> ServiceError:
        """Why accept_batches skipped a planned batch."""
        if plan.rows.into is not None:
            batch = self.store.batch(plan.rows.into)
            if batch is None or batch["state"] not in ("active", "paused"):
                return BatchClosedError(f"batch {plan.rows.into} is finished or cancelled")
        return InsufficientCreditsError(f"{plan.units} credits needed")

    def _commit_group(self) -> None:
        if self._committing or not self._group:
            return  # a running commit starts the next group itself when it returns
        group, self._group = self._group, []
        now = self.wall()
        committer = self.store.accept_thread() if self.commit_in_thread else None
        try:
            # The inserts run here, on the loop (Python work: a thread would only fight over
            # the GIL for it), on the store's accept connection when it has one.
            staged = self.store.stage_batches([plan.rows for plan, _ in group], now=now)
            if committer is None:
                results = staged.commit()
        except Exception as exc:
            self._settle(group, now, exc)
            return
        if committer is None:
            self._settle(group, now, results)
            return
        # The COMMIT, its fsync (and a WAL checkpoint now and then), runs in the accept
        # thread without the GIL: the loop goes on reading, authenticating and planning the
        # next requests, which gather into the next group. Nobody of this group is answered
        # before its COMMIT has returned.
        try:
            done = asyncio.get_running_loop().run_in_executor(committer, staged.commit)
        except RuntimeError as exc:  # the store is closing: nobody is left to commit it
            staged.abort()
            self._settle(group, now, exc)
            return
        self._committing = True
        done.add_done_callback(functools.partial(self._group_committed, group, now, staged))

    def _group_committed(
        self,
        group: list[tuple[_BatchPlan, asyncio.Future[BatchResult]]],
        now: datetime,
        staged: Staged[list[tuple[int, list[int]] | None]],
        done: asyncio.Future[list[tuple[int, list[int]] | None]],
    ) -> None:
        self._committing = False
        if done.cancelled():  # never ran (shutting down): nothing of it was committed
            staged.abort()
            for _, future in group:
                future.cancel()
        elif (exc := done.exception()) is not None:
            self._settle(group, now, exc)
        else:
            self._settle(group, now, done.result())
        if self._group:  # they gathered while this one committed: they have waited already
            self._commit_group()

    def _settle(
        self,
        group: list[tuple[_BatchPlan, asyncio.Future[BatchResult]]],
        now: datetime,
        outcome: Sequence[tuple[int, list[int]] | None] | BaseException,
    ) -> None:
        """Answer every request of a committed group (or tell each why it failed)."""
        if isinstance(outcome, BaseException):
            for _, future in group:
                if not future.done():
                    future.set_exception(outcome)
            return
        self._accepted()
        for (plan, future), accepted in zip(group, outcome, strict=True):
            if future.done():
                continue  # the caller went away; what it asked for is accepted all the same
            if accepted is None:
                future.set_exception(self._refused(plan))
            else:
                future.set_result(plan.result(*accepted, now))

    def _plan_batch(
        self,
        account_id: int,
        items: Sequence[Outgoing],
        *,
        sender: str,
        flash: bool,
        rotate: bool,
        throttle: float | None,
        dial_code: str | None,
        extra: dict[str, Any] | None,
        unique: bool = True,
        per_minute: int | None = None,
        into: int | None = None,
        id_key: str | None = None,
        max_characters: int = MAX_BODY_CHARACTERS,
        status_report: bool = True,
        batch_send_at: datetime | None = None,
        account: Mapping[str, Any] | None = None,
    ) -> _BatchPlan:
        account = self._account(account_id, account)
        policy = AccountPolicy.of(account)
        # The account's dial code costs a query of its SIMs when it has none of its own: asked
        # only when a number turns out national, a sender is given or home is checked.
        own = _Lazy(lambda: self.dial_code(account))
        dial = own if dial_code is None else _Lazy.known_as(dial_code)
        if sender:
            sender = self._own_sender(account, sender, dial())
        home = None if policy.allow_international else "+" + own().strip().lstrip("+")
        if into is not None:
            open_batch = self._own_batch(account_id, into)
            if open_batch["state"] not in ("active", "paused") or open_batch["template"]:
                raise BatchClosedError(f"batch {into} is finished or cancelled")
        seen: set[str] = self.store.batch_recipients(into) if into is not None else set()
        rows: list[dict[str, Any]] = []
        rejected: list[Rejected] = []
        costs: dict[str, tuple[int, str]] = {}  # a campaign's texts repeat: count each once
        total = 0
        for item in items:
            cost = costs.get(item.text)
            if cost is None:
                cost = costs[item.text] = _text_cost(item.text, policy, max_characters)
            try:
                number = _normalize(item.recipient, dial.value)
            except NoDialCodeError as exc:
                if dial.known:
                    rejected.append(Rejected(item.recipient, str(exc), True))
                    continue
                try:  # national: now the dial code is worth its query
                    number = _normalize(item.recipient, dial())
                except InvalidNumberError as again:
                    rejected.append(
                        Rejected(item.recipient, str(again), isinstance(again, NoDialCodeError))
                    )
                    continue
            except InvalidNumberError as exc:
                rejected.append(Rejected(item.recipient, str(exc)))
                continue
            if unique:
                if number in seen:
                    continue
                seen.add(number)
            if home is not None and not _is_home(number, home):
                rejected.append(Rejected(item.recipient, "international sending is not enabled"))
                continue
            parts, encoding = cost
            total += parts
            rows.append(
                {
                    "account_id": account_id,
                    "recipient": number,
                    "body": item.text,
                    "encoding": encoding,
                    "parts": parts,
                    "sender": sender,
                    "send_at": item.send_at,
                    "status_report": status_report,
                    "flash": flash,
                    "charge": parts,
                    # Shared, not copied: the store serialises one extra per batch, not per row.
                    "extra": item.extra if item.extra is not None else _NO_EXTRA,
                }
            )
        if not rows:
            _no_valid_recipient(rejected)
        if not account["unlimited"] and account["credits"] < total:
            raise InsufficientCreditsError(
                f"{total} credits needed, {account['credits']} available"
            )
        batch = {
            "account_id": account_id,
            "sender": sender,
            "rotate": int(rotate),
            "throttle_interval": throttle,
            "batch_gap": 60.0 / per_minute if per_minute else None,
            "extra": json.dumps(extra or {}),
        }
        if batch_send_at is not None:  # /v1: one time for the whole batch, shown with it
            batch["send_at"] = utc_iso(batch_send_at)
        return _BatchPlan(BatchRows(batch, rows, total, into, id_key), total, tuple(rejected))

    def query_messages(
        self, account_id: int, query: MessageQuery, *, limit: int, offset: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total, page) of an account's messages matching `query`, newest first."""
        return self.store.query_messages(account_id, query, limit=limit, offset=offset)

    def stop_messages(self, account_id: int, query: MessageQuery) -> int | None:
        """Cancel what has not left of the matching messages (refunded), and future runs of a
        matching series; None when nothing matches, else how many messages were stopped."""
        matching = self.store.matching_messages(account_id, query)
        series = self.store.batch(query.batch_id) if query.batch_id is not None else None
        if series is not None and series["account_id"] != account_id:
            series = None
        if not matching and series is None:
            return None
        if series is not None and series["state"] in ("active", "paused"):
            self.store.set_batch_state(series["id"], "cancelled")
        now = self.wall()
        return sum(1 for m in matching if self.store.cancel_message(m["id"], now=now))

    def delete_messages(self, account_id: int, query: MessageQuery) -> int | None:
        """Stop then delete the matching messages (not one on the wire right now); None when
        nothing matches."""
        matching = self.store.matching_messages(account_id, query)
        if not matching:
            return None
        now = self.wall()
        for m in matching:
            self.store.cancel_message(m["id"], now=now)
        return self.store.delete_messages([m["id"] for m in matching])

    def total_units(self, account_id: int, query: MessageQuery) -> int:
        """Credits (parts) the matching messages used."""
        return sum(int(m["units"]) for m in self.store.matching_messages(account_id, query))

    def set_batch_throttle(self, account_id: int, batch_id: int, seconds: float) -> None:
        """Pace a batch (and every run of a series) at one SMS per `seconds` per SIM."""
        if self.batch_info(account_id, batch_id) is None:
            raise InvalidRequestError(f"no batch {batch_id}")
        if not 1 <= seconds <= 60:
            raise InvalidRequestError("a batch throttle is 1-60 seconds")
        self.store.set_batch_throttle(batch_id, seconds)

    def batch_info(self, account_id: int, batch_id: int) -> dict[str, Any] | None:
        """One batch of the account, or None."""
        batch = self.store.batch(batch_id)
        return batch if batch is not None and batch["account_id"] == account_id else None

    def batch_states(self, account_id: int, batch_id: int) -> dict[str, int] | None:
        """How many of a batch's messages are in each state; None if not the account's."""
        batch = self.store.batch(batch_id)
        if batch is None or batch["account_id"] != account_id:
            return None
        return self.store.message_states_of_batch(batch_id)

    def last_message_to(self, account_id: int, number: str) -> dict[str, Any] | None:
        """The most recent message an account sent to a number (E.164)."""
        return self.store.last_message_to(account_id, number)

    def can_afford(self, account_id: int, text: str, recipients: int) -> bool:
        """Whether the account's credits cover `text` to that many recipients."""
        account = self._account(account_id)
        return bool(account["unlimited"]) or count(text).parts * recipients <= account["credits"]

    def credit_balance(self, account_id: int) -> int | None:
        """Credits left; None when the account is unlimited."""
        account = self._account(account_id)
        return None if account["unlimited"] else int(account["credits"])

    # -- campaigns, replies and account policy (SMS Everyone and the like) --------------------

    def account_policy(self, account_id: int) -> AccountPolicy:
        """What the account may send, and whether it may top itself up."""
        return AccountPolicy.of(self._account(account_id))

    def set_account_policy(self, account_id: int, **flags: bool) -> AccountPolicy:
        """Change some of allow_unicode, allow_long, allow_international, allow_topup."""
        account = self.store.account(account_id)
        if account is None:
            raise UnknownAccountError(f"no account {account_id}")
        self.store.set_account_policy(account_id, flags)
        return AccountPolicy.of(self.store.account(account_id) or account)

    def top_up(self, account_id: int, credits: int) -> int | None:
        """Add credits to an approved account (through the ledger); the new balance, None when
        the account is unlimited. Raises TopUpNotAllowedError, InvalidRequestError."""
        account = self._account(account_id)
        if not AccountPolicy.of(account).allow_topup:
            raise TopUpNotAllowedError("this account may not top itself up")
        if not 1 <= credits <= MAX_TOP_UP:
            raise InvalidRequestError(f"a top-up is 1-{MAX_TOP_UP} credits")
        balance = self.store.add_credits(account_id, credits, "top-up by API", now=self.wall())
        log.info("account %d: topped up by %d credit(s)", account_id, credits)
        return None if account["unlimited"] else balance

    def find_batches(self, account_id: int, key: str, value: Any) -> list[dict[str, Any]]:
        """The account's batches whose extra has `key` = `value` (a dialect's own campaign
        reference), newest first."""
        return self.store.find_batches(account_id, key, value)

    def batch_recipient_count(self, account_id: int, batch_id: int) -> int:
        """How many messages a batch of the account has."""
        return sum((self.batch_states(account_id, batch_id) or {}).values())

    def batch_delivery(
        self, account_id: int, batch_id: int, recipient: str | None = None
    ) -> list[dict[str, Any]] | None:
        """Per message of the account's batch (or its message to `recipient`): recipient,
        state, settling time, report status, +CMS ERROR, errors; None if not the account's."""
        if self.batch_info(account_id, batch_id) is None:
            return None
        return self.store.batch_delivery(batch_id, recipient)

    def replies(
        self,
        account_id: int,
        reader: str,
        *,
        since_last: bool,
        mark: bool,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = MAX_REPLIES,
    ) -> list[dict[str, Any]]:
        """Inbound messages of the account, oldest first, each with `replied_to`: the
        account's message it answers (the last one sent to that number before it came), or
        None. `since_last`: only those `reader` has not been handed yet (with `mark`, they
        count as handed now); otherwise every one received in [start, end)."""
        after = self.store.read_marker(account_id, reader) if since_last else 0
        rows = self.store.inbound_page(
            account_id, after_id=after, start=start, end=end, limit=limit
        )
        for row in rows:
            row["replied_to"] = self.store.message_replied_to(
                account_id, row["originator"], datetime.fromisoformat(row["received_at"])
            )
        if since_last and mark and rows:
            self.store.advance_read_marker(account_id, reader, rows[-1]["id"], now=self.wall())
        return rows

    def generate_otp(self, account_id: int, number: str | None, *, sender: str = "") -> IssuedOtp:
        """Issue a code: texted to `number` (charged like any SMS), or without a number left in
        the account's own inbox (charged one credit); raises InsufficientCreditsError."""
        account = self._account(account_id)
        if number is None:
            issued = self.otps.new_code("")
            if not self.store.charge_credits(account_id, 1, "otp", now=self.wall()):
                raise InsufficientCreditsError("1 credit needed for an OTP")
            self.store.insert_inbound(
                {
                    "account_id": account_id,
                    "originator": "smsgw-otp",
                    "body": issued.text,
                    "encoding": "gsm7",
                    "parts_received": 1,
                    "parts_total": 1,
                    "complete": 1,
                },
                [],
                now=self.wall(),
                notify=False,  # the account's own code, not a reply from a phone
            )
            self.otps.record(account_id, issued, message_id=None)
            return issued
        e164 = normalize(number, self.dial_code(account))
        issued = self.otps.new_code(e164)
        result = self.submit(account_id, [e164], issued.text, sender=sender)
        self.otps.record(account_id, issued, message_id=result.message_ids[0])
        return issued

    def validate_otp(self, account_id: int, code: str, *, number: str | None = None) -> OtpOutcome:
        """Check (and consume) a code issued to this account (for that number, if given)."""
        account = self._account(account_id)
        e164 = None
        if number is not None:
            try:
                e164 = normalize(number, self.dial_code(account))
            except InvalidNumberError:
                return OtpOutcome.INVALID
        return self.otps.validate(account_id, code, number=e164)


def _no_valid_recipient(rejected: Sequence[Rejected]) -> NoReturn:
    if not rejected:
        raise InvalidRequestError("no recipient given")
    raise InvalidRecipientError(f"no valid recipient: {rejected[0].reason}", rejected)


@dataclass(frozen=True, slots=True)
class HealthReport:
    """What GET /v1/health shows; `ready` only when nothing is in `problems`."""

    database_ok: bool
    modems: tuple[LiveModem, ...]  # every expected modem, as its worker sees it
    sims_present: int
    sims_total: int
    messages: dict[str, int]
    # Why the database cannot be used now (refused reads, or writes refused for another
    # process's lock); "" when it can.
    database_error: str = ""

    @property
    def problems(self) -> tuple[str, ...]:
        """Why the gateway is not ready, one line per reason (empty: ready)."""
        if self.database_error:
            out = [f"database unavailable: {self.database_error}"]
        else:
            out = [] if self.database_ok else ["database corrupt"]
        if not self.modems:
            out.append("no modem configured or discovered")
        for m in self.modems:
            if m.ready:
                continue
            why = f"{m.port}: {m.state}"
            if m.state == ModemState.REGISTERING:
                why += f" ({m.registration or 'registration not read yet'})"
            out.append(why + (f": {m.last_error}" if m.last_error else ""))
        return tuple(out)

    @property
    def ready(self) -> bool:
        """The database is sound and every expected modem is registered on a network."""
        return not self.problems

    @property
    def modems_ready(self) -> int:
        """How many of the expected modems are ready."""
        return sum(1 for m in self.modems if m.ready)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message of a batch: its recipient as typed, its text and its own send time."""

    recipient: str
    text: str
    send_at: datetime | None = None
    extra: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class _BatchPlan:
    """A validated batch waiting for its transaction."""

    rows: BatchRows
    units: int
    rejected: tuple[Rejected, ...]

    def result(self, batch_id: int, ids: Sequence[int], now: datetime) -> BatchResult:
        log.debug("account %d: batch %d of %d message(s)", self.rows.batch["account_id"],
                  batch_id, len(ids))  # fmt: skip
        return BatchResult(batch_id, now, tuple(ids), self.units, self.rejected)


_NO_EXTRA: dict[str, Any] = {}


class _Lazy:
    """A string worked out on first call (a dial code that may cost a query); `value` is ""
    until then."""

    __slots__ = ("_make", "known", "value")

    def __init__(self, make: Callable[[], str]) -> None:
        self._make = make
        self.known = False
        self.value = ""

    @classmethod
    def known_as(cls, value: str) -> _Lazy:
        """One whose value is given."""
        lazy = cls(lambda: value)
        lazy.known, lazy.value = True, value
        return lazy

    def __call__(self) -> str:
        if not self.known:
            self.value, self.known = self._make(), True
        return self.value


def _text_cost(text: str, policy: AccountPolicy, max_characters: int) -> tuple[int, str]:
    """(parts, encoding) of a text, or the reason the account may not send it."""
    if not text:
        raise EmptyTextError("message text is empty")
    if len(text) > max_characters:
        raise TextTooLongError(f"message longer than {max_characters} characters")
    cost = _encodable_cost(text)
    if cost.encoding.value == "ucs2" and not policy.allow_unicode:
        raise UnicodeNotAllowedError("the text needs unicode (UCS-2), not enabled for the account")
    if cost.parts > 1 and not policy.allow_long:
        raise LongTextNotAllowedError(
            f"the text needs {cost.parts} SMS; the account may only send single-SMS texts"
        )
    return cost.parts, cost.encoding.value


def _is_home(number: str, home: str) -> bool:
    """Whether an E.164 number is in the account's own country (its dial code); short codes are
    national by nature, and while no dial code is known every number counts as home."""
    return home == "+" or not number.startswith("+") or number.startswith(home)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What submit_batch() accepted: durable before this is returned."""

    batch_id: int
    created_at: datetime
    message_ids: tuple[int, ...]
    units_charged: int
    rejected: tuple[Rejected, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Analysis:
    """How a text would go: alphabet, parts, length in units (septets or UTF-16 code units,
    as counted against 160/153 and 70/67), characters, whether submit accepts it, the credits
    it costs per recipient and the text of each part."""

    encoding: Alphabet
    parts: int
    length: int
    characters: int
    within_limit: bool
    credits: int
    segments: tuple[str, ...]
