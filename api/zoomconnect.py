"""Zoom Connect (SMS Messenger) REST API v1 at /app/api/rest/v1/... and /api/rest/v1/...

Clients authenticate with their account's email address and REST token: `email` and `token`
request headers, HTTP Basic (email:token), or `email`/`token` URL parameters; `sms/send-url/
{token}` takes an account's URL-sending token instead. Bodies are JSON (a `null` or empty body is
no body); answers are JSON, errors one shape: `{"status", "code", "message", "developerMessage",
"moreInfoUrl"}` with the HTTP status it names (README, Compatibility).

Message ids are strings: a sent message `n` of the store is `2n`, a received one `2n + 1`, so
both directions share one id space (`messages/{messageId}`) and stay numeric.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web

from api.forms import FieldError, FieldProblem, FormFields, decode_pairs
from gateway.contacts import ContactError
from gateway.directory import NameTakenError, NotFoundError
from gateway.mailbox import MailboxError
from gateway.numbers import InvalidNumberError, normalize
from gateway.recurrence import resolve_local
from gateway.service import (
    MAX_BODY_CHARACTERS,
    AccountDisabledError,
    GatewayService,
    InsufficientCreditsError,
    InvalidRequestError,
    Outgoing,
    RateLimitedError,
    ServiceError,
    UnknownAccountError,
)
from gateway.store import MailboxQuery, StoreUnavailableError
from gateway.teams import (
    EmailTakenError,
    NewUser,
    NotAdminError,
    NotInTeamError,
    TeamCreditsError,
    TeamError,
)
from gateway.webhooks import WebhookEvent, WebhookKind, WebhookRequest, register_format
from modem.pdu import Alphabet

log = logging.getLogger(__name__)

PREFIXES = ("/app/api/rest/v1", "/api/rest/v1")
MAX_BODY = 16 * 1024 * 1024  # a 10,000-message send-bulk is ~1.5 MB; the app-wide limit is 1 MB
MAX_BULK = 20_000
MAX_VALUE = 2000
MAX_ID = 2**62
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
UNLIMITED_BALANCE = 2147483647.0  # creditBalance of an account without a limit
ENCODINGS = {Alphabet.GSM7: "GSM7", Alphabet.UCS2: "UNICODE", Alphabet.DATA_8BIT: "BINARY"}
_normalize = functools.lru_cache(maxsize=8192)(normalize)

# Zoom Connect messageStatus <-> the mailbox's dialect-neutral outcomes.
STATUS_OF_OUTCOME = {
    "scheduled": "SCHEDULED",
    "uncertain": "UNKNOWN",
    "sent": "SENT",
    "delivered": "DELIVERED",
    "failed": "FAILED",
    "refunded": "FAILED_REFUNDED",
    "opted_out": "FAILED_OPTOUT",
}
OUTCOME_OF_STATUS = {v: k for k, v in STATUS_OF_OUTCOME.items()}


# -- errors -----------------------------------------------------------------------------------


class ErrorCode:
    """The `code` of an error body (README: Compatibility, Zoom Connect)."""

    INVALID_REQUEST = 1
    INVALID_NUMBER = 2  # the spec's "2 - Invalid mobile number"
    EMPTY_MESSAGE = 3  # the spec's "3 - Message cannot be empty"
    MESSAGE_TOO_LONG = 4
    INVALID_DATE = 5
    INSUFFICIENT_CREDITS = 6
    NOT_FOUND = 7
    ALREADY_EXISTS = 8
    UNAUTHORIZED = 10
    ACCOUNT_DISABLED = 11
    FORBIDDEN = 12
    METHOD_NOT_ALLOWED = 13
    BODY_TOO_LARGE = 14
    TOO_MANY_REQUESTS = 15  # with Retry-After: a rate limit, or the backoff of wrong tokens
    UNAVAILABLE = 16  # with Retry-After: the store cannot write now (disk full, locked)
    INTERNAL = 99


_REASONS = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_SERVER_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


class ZoomError(Exception):
    """An error answered as the dialect's JSON error body."""

    def __init__(
        self, status: int, code: int, message: str, developer: str = "", retry_after: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.developer = developer or message
        self.retry_after = retry_after


def bad(code: int, message: str, developer: str = "") -> ZoomError:
    """A 400 with that code."""
    return ZoomError(400, code, message, developer)


def error_body(exc: ZoomError) -> dict[str, Any]:
    """The one error shape (the spec's RestErrorDTO)."""
    return {
        "status": _REASONS.get(exc.status, str(exc.status)),
        "code": exc.code,
        "message": exc.message,
        "developerMessage": exc.developer,
        "moreInfoUrl": None,
    }


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def _empty() -> web.Response:
    return web.Response(status=200)


# -- request values ---------------------------------------------------------------------------


class Body:
    """A JSON object body looked up case-insensitively (clients vary in field-name case)."""

    def __init__(self, raw: Any, what: str = "request body") -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise bad(ErrorCode.INVALID_REQUEST, f"the {what} must be a JSON object")
        self._values = {str(k).lower(): v for k, v in raw.items()}

    def raw(self, name: str) -> Any:
        """The value as sent (None when absent)."""
        return self._values.get(name.lower())

    def text(self, name: str, limit: int = MAX_VALUE) -> str | None:
        """A string field; numbers are taken as their text; None when absent or null."""
        value = self._values.get(name.lower())
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise bad(ErrorCode.INVALID_REQUEST, f"{name} must be a string")
        text = value if isinstance(value, str) else _number_text(value)
        if len(text) > limit:
            raise bad(ErrorCode.INVALID_REQUEST, f"{name} is longer than {limit} characters")
        return text

    def integer(self, name: str) -> int | None:
        """An integer field; numeric strings ("5") and integral numbers (5.0) are accepted."""
        return _integer(self._values.get(name.lower()), name)


class Query(FormFields):
    """URL (and form) parameters, case-insensitive; repeats must agree."""

    def text(self, name: str, limit: int = MAX_VALUE) -> str | None:
        """A parameter's value; None when absent or blank."""
        try:
            value = self.raw(name)
        except FieldError as exc:
            text = "is given twice with different values"
            if exc.problem is FieldProblem.NOT_UTF8:
                text = "is not valid UTF-8"
            raise bad(ErrorCode.INVALID_REQUEST, f"{name} {text}") from None
        if value is None:
            return None
        if len(value) > limit:
            raise bad(ErrorCode.INVALID_REQUEST, f"{name} is longer than {limit} characters")
        return value if value.strip() else None

    def integer(self, name: str) -> int | None:
        """An integer parameter."""
        return _integer(self.text(name, 40), name)

    def flag(self, name: str) -> bool | None:
        """A boolean parameter: true/false (also 1/0, yes/no)."""
        value = self.text(name, 10)
        if value is None:
            return None
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise bad(ErrorCode.INVALID_REQUEST, f"{name} must be true or false")


def _number_text(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return str(int(value))
    return str(value)


def _integer(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise bad(ErrorCode.INVALID_REQUEST, f"{name} must be a number")
    if isinstance(value, int):
        number = value
    elif (isinstance(value, float) and math.isfinite(value) and value.is_integer()) or (
        isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]{1,18}\s*", value)
    ):
        number = int(value)
    elif isinstance(value, str) and not value.strip():
        return None
    else:
        raise bad(ErrorCode.INVALID_REQUEST, f"{name} must be a whole number")
    if abs(number) > MAX_ID:
        raise bad(ErrorCode.INVALID_REQUEST, f"{name} is out of range")
    return number


# -- dates ------------------------------------------------------------------------------------

_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also says yes to "¹"
_COMPACT = re.compile(r"^([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})?$")
_ISO = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?"
    r"(Z|[+-][0-9]{2}:?[0-9]{2})?$"
)


def _local(wall: datetime, zone: tzinfo) -> datetime:
    return resolve_local(wall, zone) if isinstance(zone, ZoneInfo) else wall.replace(tzinfo=zone)


def parse_send_time(raw: Any, zone: tzinfo, name: str = "dateToSend") -> datetime | None:
    """A dateToSend: yyyyMMddHHmm (the spec's), yyyyMMddHHmmss, ISO-8601 (naive = the
    account's timezone) or Unix milliseconds; None for absent or empty."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool):
        raise bad(ErrorCode.INVALID_DATE, f"{name} is not a date")
    try:
        if isinstance(raw, int | float):
            if not math.isfinite(raw) or not 0 <= raw < 1e14:
                raise ValueError(raw)
            return datetime.fromtimestamp(raw / 1000, UTC)
        if not isinstance(raw, str):
            raise ValueError(raw)
        text = raw.strip()
        compact = _COMPACT.match(text)
        if compact:
            parts = [int(p) for p in compact.groups() if p is not None]
            return _local(datetime(*parts), zone)  # type: ignore[arg-type]
        if _DIGITS.fullmatch(text) and len(text) == 13:
            return datetime.fromtimestamp(int(text) / 1000, UTC)
        if _ISO.match(text):
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
            return moment if moment.tzinfo is not None else _local(moment, zone)
    except (ValueError, OverflowError, OSError):
        pass
    raise bad(
        ErrorCode.INVALID_DATE,
        f"{name} is not a date (yyyyMMddHHmm)",
        f"{name} must be yyyyMMddHHmm, ISO-8601 or Unix milliseconds",
    )


def parse_day(raw: str | None, zone: tzinfo, pattern: str, name: str) -> datetime | None:
    """A day parameter (`%d-%m-%Y` or `%Y%m%d`) as the start of that day in the zone."""
    if raw is None:
        return None
    try:
        day = datetime.strptime(raw.strip(), pattern)
    except ValueError:
        human = pattern.replace("%d", "dd").replace("%m", "MM").replace("%Y", "yyyy")
        raise bad(ErrorCode.INVALID_DATE, f"{name} must be a date ({human})") from None
    return _local(day, zone)


def iso(stamp: str | None, zone: tzinfo) -> str | None:
    """A stored UTC time in the account's timezone, ISO-8601 to the second."""
    if not stamp:
        return None
    return datetime.fromisoformat(stamp).astimezone(zone).isoformat(timespec="seconds")


def compact_time(stamp: str, zone: tzinfo = UTC) -> str:
    """yyyyMMddHHmm, as the spec's webhook examples write dates."""
    return datetime.fromisoformat(stamp).astimezone(zone).strftime("%Y%m%d%H%M")


# -- ids --------------------------------------------------------------------------------------


def message_ref(kind: str, entry_id: int) -> str:
    """The messageId of a sent ("out") or received ("in") message."""
    return str(2 * entry_id + (1 if kind == "in" else 0))


def parse_message_ref(raw: str) -> tuple[str, int]:
    """(kind, store id) of a messageId; NOT_FOUND for anything that is not one of ours."""
    text = raw.strip()
    if not _DIGITS.fullmatch(text) or len(text) > 18 or int(text) < 2:
        raise ZoomError(404, ErrorCode.NOT_FOUND, f"no message {raw[:40]}")
    number = int(text)
    return ("in" if number % 2 else "out"), number // 2


def _path_id(raw: str, what: str) -> int:
    text = raw.strip()
    if not _DIGITS.fullmatch(text) or len(text) > 18 or int(text) < 1:
        raise ZoomError(404, ErrorCode.NOT_FOUND, f"no {what} {raw[:40]}")
    return int(text)


def _typed_id(raw: str, what: str) -> int:
    """An int64 path id (userId, templateId): a non-number is a bad request, as the spec types
    them as integers."""
    text = raw.strip()
    if not re.fullmatch(r"[+-]?[0-9]{1,18}", text):
        raise bad(ErrorCode.INVALID_REQUEST, f"{what} must be a number")
    value = int(text)
    if value < 1:
        raise ZoomError(404, ErrorCode.NOT_FOUND, f"no {what} {value}")
    return value


# -- the request context ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    """One authenticated request: its account, path values, parameters and JSON body."""

    service: GatewayService
    account: dict[str, Any]
    path: Mapping[str, str]
    query: Query
    body: Any
    method: str

    @property
    def account_id(self) -> int:
        """The caller's account id."""
        return int(self.account["id"])

    @property
    def zone(self) -> tzinfo:
        """The caller's timezone."""
        return self.service.account_zone(self.account)

    def json(self, what: str = "request body") -> Body:
        """The body as an object (null and no body are an empty one)."""
        return Body(self.body, what)


Handler = Callable[[Call], Awaitable[web.Response]]


def _balance(account: Mapping[str, Any]) -> float:
    return UNLIMITED_BALANCE if account["unlimited"] else float(account["credits"])


def _number(raw: str | None, call: Call) -> str:
    if raw is None or not raw.strip():
        raise bad(ErrorCode.INVALID_NUMBER, "Invalid mobile number", "recipientNumber is required")
    try:
        return _normalize(raw, call.service.dial_code(call.account))
    except InvalidNumberError as exc:
        raise bad(ErrorCode.INVALID_NUMBER, "Invalid mobile number", str(exc)) from None


def _page(query: Query, *, paged_by_default: bool) -> tuple[int | None, int, int]:
    """(limit or None for everything, offset, page) from page/pageSize (pages start at 1)."""
    page = query.integer("page")
    size = query.integer("pageSize")
    if page is None and size is None and not paged_by_default:
        return None, 0, 1
    page = 1 if page is None else page
    size = DEFAULT_PAGE_SIZE if size is None else size
    if page < 1:
        raise bad(ErrorCode.INVALID_REQUEST, "page starts at 1")
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise bad(ErrorCode.INVALID_REQUEST, f"pageSize must be 1-{MAX_PAGE_SIZE}")
    if (page - 1) * size > MAX_ID:
        raise bad(ErrorCode.INVALID_REQUEST, "page is out of range")
    return size, (page - 1) * size, page


# -- views ------------------------------------------------------------------------------------


def user_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """A WebServiceUser (the password is never shown)."""
    return {
        "userId": int(row["id"]),
        "firstName": row["first_name"],
        "lastName": row["last_name"],
        "emailAddress": row["email"],
        "contactNumber": row["contact_number"],
        "company": row["company"],
        "creditBalance": _balance(row),
        "password": None,
    }


def contact_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """A WebServiceContact."""
    extra = json.loads(row["extra"] or "{}")
    return {
        "contactId": str(row["id"]),
        "contactNumber": row["number"],
        "firstName": row["first_name"],
        "lastName": row["last_name"],
        "title": str(extra.get("title", "")),
        "links": [],
    }


def group_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """A WebServiceGroup."""
    return {"groupId": str(row["id"]), "name": row["name"], "links": []}


def template_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """A WebServiceTemplate."""
    return {"templateId": int(row["id"]), "name": row["name"], "data": row["data"], "links": []}


def message_view(row: Mapping[str, Any], zone: tzinfo) -> dict[str, Any]:
    """A WebServiceMessage of either direction."""
    extra = json.loads(row["extra"] or "{}")
    outbound = row["kind"] == "out"
    replied = row["replied_to"]
    return {
        "messageId": message_ref(row["kind"], int(row["id"])),
        "messageType": "OUTBOUND" if outbound else "INBOUND",
        "fromNumber": row["from_number"] or None,
        "toNumber": row["to_number"] or None,
        "message": row["body"],
        "campaign": extra.get("campaign"),
        "userDataField": extra.get("dataField"),
        "messageStatus": STATUS_OF_OUTCOME.get(row["outcome"]) if outbound else None,
        "creditCost": float(row["parts"]) if outbound else 0.0,
        "numberOfMessages": int(row["parts"]),
        "dateTimeScheduled": iso(row["send_at"], zone) if outbound else None,
        "dateTimeSent": iso(row["sent_at"], zone),
        "dateTimeReceived": iso(row["received_at"], zone),
        "read": bool(row["is_read"]),
        "deleted": bool(row["deleted"]),
        "contact": (
            {"contactId": str(row["contact_id"]), "links": []}
            if row["contact_id"] is not None
            else None
        ),
        "repliedToMessage": (
            {"messageId": message_ref("out", int(replied)), "links": []}
            if replied is not None
            else None
        ),
        "links": [],
    }


# -- account ----------------------------------------------------------------------------------


async def balance(call: Call) -> web.Response:
    """GET account/balance."""
    return _json({"creditBalance": _balance(call.account), "links": []})


_STAT_KEYS = ("sent", "delivered", "failed", "failedOptout", "failedRefunded", "total")
_STAT_OF_OUTCOME = {
    "sent": "sent",
    "uncertain": "sent",
    "delivered": "delivered",
    "failed": "failed",
    "opted_out": "failedOptout",
    "refunded": "failedRefunded",
}


def _add_stats(into: dict[str, float], outcome: str, value: float, *, with_refunds: bool) -> None:
    key = _STAT_OF_OUTCOME.get(outcome)
    if key is None or (key in ("failedOptout", "failedRefunded") and not with_refunds):
        return  # scheduled messages are not sent yet
    into[key] += value
    into["total"] += value


async def statistics(call: Call) -> web.Response:
    """GET account/statistics: per user and campaign, messages (or credits) by outcome."""
    q = call.query
    zone = call.zone
    today = call.service.wall().astimezone(zone)
    start = parse_day(q.text("from"), zone, "%d-%m-%Y", "from") or _local(
        datetime(today.year, today.month, 1), zone
    )
    last = parse_day(q.text("to"), zone, "%d-%m-%Y", "to") or _local(
        datetime(today.year, today.month, today.day), zone
    )
    end_wall = datetime(last.year, last.month, last.day) + timedelta(days=1)
    end = _local(end_wall, zone)
    if end <= start:
        raise bad(ErrorCode.INVALID_DATE, "from is after to")
    credits = bool(q.flag("calculateCreditValue"))
    refunds = bool(q.flag("includeRefundedAndOptout"))
    campaign = q.text("campaign")
    email = q.text("userEmailAddress")
    users = call.service.teams.members(call.account)
    if email is not None:
        users = call.service.teams.find(call.account, email)
        if not users:
            raise ZoomError(404, ErrorCode.NOT_FOUND, f"no user {email!r} in this team")
    rows = call.service.mailbox.outcome_totals(
        [int(u["id"]) for u in users], start=start, end=end, label_key="campaign", label=campaign
    )

    def zero() -> dict[str, float]:
        return dict.fromkeys(_STAT_KEYS, 0.0)

    grand = zero()
    per_user: dict[int, dict[str, float]] = {int(u["id"]): zero() for u in users}
    per_campaign: dict[int, dict[str, dict[str, float]]] = {int(u["id"]): {} for u in users}
    for row in rows:
        value = float(row["parts"] if credits else row["messages"])
        uid = int(row["account_id"])
        _add_stats(grand, row["outcome"], value, with_refunds=refunds)
        _add_stats(per_user[uid], row["outcome"], value, with_refunds=refunds)
        if row["label"] is not None:
            bucket = per_campaign[uid].setdefault(str(row["label"]), zero())
            _add_stats(bucket, row["outcome"], value, with_refunds=refunds)
    return _json(
        {
            "from": start.isoformat(timespec="seconds"),
            "to": (end - timedelta(seconds=1)).isoformat(timespec="seconds"),
            "showingCreditValue": credits,
            "grandTotal": grand,
            "users": [
                {
                    "user": user_view(u),
                    "total": per_user[int(u["id"])],
                    "campaigns": [
                        {"campaign": name, "statistics": stats}
                        for name, stats in sorted(per_campaign[int(u["id"])].items())
                    ],
                }
                for u in users
            ],
        }
    )


async def transfer(call: Call) -> web.Response:
    """POST account/transfer: credits between two users of the team; the receiving user."""
    body = call.json()
    units = body.integer("numberOfCreditsToTransfer")
    if units is None:
        raise bad(ErrorCode.INVALID_REQUEST, "numberOfCreditsToTransfer is required")
    _, target = call.service.teams.transfer(
        call.account,
        body.text("transferFromEmailAddress") or "",
        body.text("transferToEmailAddress") or "",
        units,
    )
    return _json(user_view(target))


async def user_search(call: Call) -> web.Response:
    """GET account/user?searchEmail=: the team's users with that email address."""
    email = call.query.text("searchEmail") or call.query.text("emailAddress")
    if email is None:
        raise bad(ErrorCode.INVALID_REQUEST, "searchEmail is required")
    found = call.service.teams.find(call.account, email)
    return _json({"webServiceUserList": [user_view(u) for u in found]})


async def user_create(call: Call) -> web.Response:
    """PUT account/user: a new sub-account in the team."""
    body = call.json()
    credits = body.raw("creditBalance")
    if isinstance(credits, float) and math.isfinite(credits) and credits.is_integer():
        credits = int(credits)
    units = _integer(credits, "creditBalance") or 0
    row = call.service.teams.create(
        call.account,
        NewUser(
            email=body.text("emailAddress") or "",
            password=body.text("password") or "",
            first_name=body.text("firstName") or "",
            last_name=body.text("lastName") or "",
            contact_number=body.text("contactNumber") or "",
            company=body.text("company") or "",
            credits=units,
        ),
    )
    return _json(user_view(row))


async def user_get(call: Call) -> web.Response:
    """GET account/user/{userId}."""
    return _json(user_view(call.service.teams.member(call.account, _typed_id(
        call.path["userId"], "userId"))))  # fmt: skip


async def user_update(call: Call) -> web.Response:
    """POST account/user/{userId}: first name, last name, contact number and password."""
    user_id = _typed_id(call.path["userId"], "userId")
    body = call.json()
    row = call.service.teams.update(
        call.account,
        user_id,
        first_name=body.text("firstName"),
        last_name=body.text("lastName"),
        contact_number=body.text("contactNumber"),
        password=body.text("password") or None,
    )
    return _json(user_view(row))


# -- sms --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendRequest:
    """One validated message of sms/send, send-bulk or the URL forms."""

    number: str
    text: str
    send_at: datetime | None
    extra: dict[str, str]


def _message_text(raw: str | None) -> str:
    """The checks submit() applies to a text, without counting it (send-bulk checks 10,000 at
    a time); analyse/* answers from the count itself."""
    if raw is None or not raw.strip():
        raise bad(ErrorCode.EMPTY_MESSAGE, "Message cannot be empty")
    if len(raw) > MAX_BODY_CHARACTERS:
        raise bad(ErrorCode.MESSAGE_TOO_LONG, "Message is too long",
                  f"{len(raw)} characters, at most {MAX_BODY_CHARACTERS}")  # fmt: skip
    try:
        raw.encode()
    except UnicodeEncodeError:  # a lone surrogate: no alphabet can carry it
        raise bad(ErrorCode.MESSAGE_TOO_LONG, "Message cannot be sent",
                  "the message holds a lone UTF-16 surrogate") from None  # fmt: skip
    return raw


def _send_request(
    *,
    number: str | None,
    text: str | None,
    when: Any,
    campaign: str | None,
    data_field: str | None,
    call: Call,
    default_when: datetime | None = None,
    check_number: bool = True,
) -> SendRequest:
    if check_number:
        recipient = _number(number, call)
    elif number is None or not number.strip():
        raise bad(ErrorCode.INVALID_NUMBER, "Invalid mobile number")
    else:
        recipient = number.strip()  # the service normalises it (once) with the rest
    message = _message_text(text)
    send_at = parse_send_time(when, call.zone) or default_when
    if send_at is not None and send_at <= call.service.wall():
        send_at = None  # a time in the past sends at once
    extra = {}
    if campaign:
        extra["campaign"] = campaign
    if data_field:
        extra["dataField"] = data_field
    return SendRequest(recipient, message, send_at, extra)


async def _submit(
    call: Call, requests: list[SendRequest], per_minute: int | None = None
) -> list[int | None]:
    """Accept the messages as one batch: each one's id, or None where its number is invalid."""
    try:
        result = await call.service.submit_batch_durably(
            call.account_id,
            [Outgoing(r.number, r.text, r.send_at, r.extra) for r in requests],
            unique=False,
            per_minute=per_minute,
        )
    except InsufficientCreditsError as exc:
        raise bad(ErrorCode.INSUFFICIENT_CREDITS, "Insufficient credits", str(exc)) from None
    except InvalidRequestError as exc:
        if str(exc).startswith("no valid recipient"):
            return [None] * len(requests)
        raise
    # Kept in order, a rejected item is the next of `rejected` (same number as typed).
    ids = iter(result.message_ids)
    rejected = [r.recipient for r in result.rejected]
    out: list[int | None] = []
    for request in requests:
        if rejected and rejected[0] == request.number:
            rejected.pop(0)
            out.append(None)
        else:
            out.append(next(ids))
    return out


async def _submit_one(call: Call, request: SendRequest) -> int:
    (message_id,) = await _submit(call, [request])
    if message_id is None:
        raise bad(ErrorCode.INVALID_NUMBER, "Invalid mobile number")
    return message_id


def _example_time(call: Call) -> str:
    return call.service.wall().astimezone(call.zone).strftime("%Y%m%d%H%M")


def _example_send(call: Call) -> dict[str, Any]:
    return {
        "recipientNumber": "+15005550000",
        "message": "Hello from SMS Messenger",
        "dateToSend": _example_time(call),
        "campaign": "my campaign",
        "dataField": "my reference",
    }


async def send_example(call: Call) -> web.Response:
    """GET sms/send: an example of the body to POST."""
    return _json(_example_send(call))


async def send_bulk_example(call: Call) -> web.Response:
    """GET sms/send-bulk: an example of the body to POST."""
    second = {**_example_send(call), "recipientNumber": "+15005550002", "dateToSend": None}
    return _json(
        {
            "sendSmsRequests": [_example_send(call), second],
            "defaultDateToSend": _example_time(call),
            "messagesPerMinute": 0,
        }
    )


async def send(call: Call) -> web.Response:
    """POST sms/send: one message; {"messageId", "error"}."""
    body = call.json()
    request = _send_request(
        number=body.text("recipientNumber", 100),
        text=body.text("message", MAX_MESSAGE_FIELD),
        when=body.raw("dateToSend"),
        campaign=body.text("campaign"),
        data_field=body.text("dataField"),
        call=call,
    )
    message_id = await _submit_one(call, request)
    return _json({"messageId": message_ref("out", message_id), "error": None})


async def send_bulk(call: Call) -> web.Response:
    """POST sms/send-bulk: many messages as one batch; one {"messageId", "error"} each, in
    order (an invalid one gets its error and no id; the valid ones are sent)."""
    body = call.json()
    items = body.raw("sendSmsRequests")
    if not isinstance(items, list):
        raise bad(ErrorCode.INVALID_REQUEST, "sendSmsRequests must be a list")
    if len(items) > MAX_BULK:
        raise bad(ErrorCode.INVALID_REQUEST, f"at most {MAX_BULK} messages per request")
    default_when = parse_send_time(body.raw("defaultDateToSend"), call.zone, "defaultDateToSend")
    rate = body.integer("messagesPerMinute")
    if rate is not None and rate < 0:
        raise bad(ErrorCode.INVALID_REQUEST, "messagesPerMinute cannot be negative")
    if rate is not None and rate > 6000:
        raise bad(ErrorCode.INVALID_REQUEST, "messagesPerMinute is at most 6000")
    answers: list[dict[str, Any]] = []
    valid: list[SendRequest] = []
    slots: list[int] = []
    for item in items:
        try:
            one = Body(item, "send request")
            request = _send_request(
                number=one.text("recipientNumber", 100),
                text=one.text("message", MAX_MESSAGE_FIELD),
                when=one.raw("dateToSend"),
                campaign=one.text("campaign"),
                data_field=one.text("dataField"),
                call=call,
                default_when=default_when,
                check_number=False,
            )
        except ZoomError as exc:
            answers.append({"messageId": None, "error": exc.message})
            continue
        slots.append(len(answers))
        answers.append({"messageId": None, "error": None})
        valid.append(request)
    if valid:
        ids = await _submit(call, valid, rate or None)
        for slot, message_id in zip(slots, ids, strict=True):
            if message_id is None:
                answers[slot]["error"] = "Invalid mobile number"
            else:
                answers[slot]["messageId"] = message_ref("out", message_id)
    return _json({"sendSmsResponses": answers})


async def send_url_parameters(call: Call) -> web.Response:
    """GET/POST sms/send-url-parameters (and send-url/{token}): the messageId as a string."""
    q = call.query
    request = _send_request(
        number=q.text("recipientNumber", 100),
        text=q.text("message", MAX_MESSAGE_FIELD),
        when=q.text("dateToSend", 40),
        campaign=q.text("campaign"),
        data_field=q.text("dataField"),
        call=call,
    )
    message_id = await _submit_one(call, request)
    return _json(message_ref("out", message_id))


# -- contacts and groups ----------------------------------------------------------------------


def _contact_fields(body: Body) -> dict[str, str | None]:
    return {
        "number": body.text("contactNumber", 100),
        "first_name": body.text("firstName"),
        "last_name": body.text("lastName"),
        "title": body.text("title"),
    }


async def contacts_all(call: Call) -> web.Response:
    """GET contacts/all (every contact, or one page with page/pageSize)."""
    limit, offset, _ = _page(call.query, paged_by_default=False)
    _, rows = call.service.directory.contacts(call.account, limit=limit, offset=offset)
    return _json({"webServiceContacts": [contact_view(r) for r in rows], "links": []})


async def contact_create(call: Call) -> web.Response:
    """POST contacts/create."""
    fields = _contact_fields(call.json())
    number = fields.pop("number")
    if number is None or not number.strip():
        raise bad(ErrorCode.INVALID_NUMBER, "Invalid mobile number", "contactNumber is required")
    row = call.service.directory.create_contact(
        call.account, number, **{k: v or "" for k, v in fields.items()}
    )
    return _json(contact_view(row))


async def contact_get(call: Call) -> web.Response:
    """GET contacts/{contactId}."""
    contact_id = _path_id(call.path["contactId"], "contact")
    return _json(contact_view(call.service.directory.contact(call.account, contact_id)))


async def contact_update(call: Call) -> web.Response:
    """POST contacts/{contactId}: the fields given (not null) change."""
    contact_id = _path_id(call.path["contactId"], "contact")
    fields = _contact_fields(call.json())
    if fields["number"] is not None and not fields["number"].strip():
        fields["number"] = None
    row = call.service.directory.update_contact(call.account, contact_id, **fields)
    return _json(contact_view(row))


async def contact_delete(call: Call) -> web.Response:
    """DELETE contacts/{contactId}."""
    call.service.directory.delete_contact(call.account, _path_id(call.path["contactId"], "contact"))
    return _empty()


async def membership_add(call: Call) -> web.Response:
    """contacts/{contactId}/addToGroup/{groupId} and groups/{groupId}/addContact/{contactId}."""
    call.service.directory.add_to_group(
        call.account, _path_id(call.path["contactId"], "contact"),
        _path_id(call.path["groupId"], "group"),
    )  # fmt: skip
    return _empty()


async def membership_remove(call: Call) -> web.Response:
    """contacts/{contactId}/addFromGroup/{groupId} (the spec's name for removing) and
    groups/{groupId}/removeContact/{contactId}."""
    call.service.directory.remove_from_group(
        call.account, _path_id(call.path["contactId"], "contact"),
        _path_id(call.path["groupId"], "group"),
    )  # fmt: skip
    return _empty()


async def groups_all(call: Call) -> web.Response:
    """GET groups/all."""
    limit, offset, _ = _page(call.query, paged_by_default=False)
    _, rows = call.service.directory.groups(call.account, limit=limit, offset=offset)
    return _json({"webServiceGroups": [group_view(r) for r in rows], "links": []})


async def group_create(call: Call) -> web.Response:
    """POST groups/create."""
    name = call.json().text("name", 100)
    return _json(group_view(call.service.directory.create_group(call.account, name or "")))


async def group_get(call: Call) -> web.Response:
    """GET groups/{groupId}."""
    group_id = _path_id(call.path["groupId"], "group")
    return _json(group_view(call.service.directory.group(call.account, group_id)))


async def group_update(call: Call) -> web.Response:
    """POST groups/{groupId}: a new name."""
    group_id = _path_id(call.path["groupId"], "group")
    name = call.json().text("name", 100)
    if name is None:
        return _json(group_view(call.service.directory.group(call.account, group_id)))
    return _json(group_view(call.service.directory.rename_group(call.account, group_id, name)))


async def group_delete(call: Call) -> web.Response:
    """DELETE groups/{groupId}: the group goes, its contacts stay."""
    call.service.directory.delete_group(call.account, _path_id(call.path["groupId"], "group"))
    return _empty()


# -- messages ---------------------------------------------------------------------------------


def _filter_number(raw: str | None, call: Call) -> str | None:
    if raw is None:
        return None
    try:
        return _normalize(raw, call.service.dial_code(call.account))
    except InvalidNumberError:
        return raw.strip()  # matches nothing it should not


async def messages_all(call: Call) -> web.Response:
    """GET messages/all: both directions, newest first, paginated, with the spec's filters."""
    q = call.query
    zone = call.zone
    limit, offset, page = _page(q, paged_by_default=True)
    assert limit is not None
    kind = q.text("type", 20)
    if kind is not None and kind.upper() not in ("OUTBOUND", "INBOUND"):
        raise bad(ErrorCode.INVALID_REQUEST, "type must be OUTBOUND or INBOUND")
    status = q.text("status", 40)
    if status is not None and status.upper() not in OUTCOME_OF_STATUS:
        raise bad(ErrorCode.INVALID_REQUEST, f"unknown status {status[:40]!r}")

    def day(name: str, end: bool) -> datetime | None:
        start = parse_day(q.text(name, 20), zone, "%Y%m%d", name)
        if start is None or not end:
            return start
        return _local(start.replace(tzinfo=None) + timedelta(days=1), zone)

    replies_to = q.text("repliesToMessageId", 40)
    replied: int | None = None
    if replies_to is not None:
        try:
            rkind, rid = parse_message_ref(replies_to)
        except ZoomError:
            rkind, rid = "in", 0
        replied = rid if rkind == "out" else 0  # a received message is nobody's reply target
    extra = tuple(
        (key, value)
        for key, value in (("campaign", q.text("campaign")), ("dataField", q.text("dataField")))
        if value is not None
    )
    query = MailboxQuery(
        kind=None if kind is None else ("out" if kind.upper() == "OUTBOUND" else "in"),
        outcomes=None if status is None else (OUTCOME_OF_STATUS[status.upper()],),
        sent_from=day("fromDateTimeSent", False),
        sent_to=day("toDateTimeSent", True),
        received_from=day("fromDateTimeReceived", False),
        received_to=day("toDateTimeReceived", True),
        from_number=_filter_number(q.text("fromNumber", 100), call),
        to_number=_filter_number(q.text("toNumber", 100), call),
        text=q.text("message"),
        extra=extra,
        deleted=q.flag("deleted"),
        read=q.flag("read"),
        replied_to=replied,
    )
    total, rows = call.service.mailbox.query(call.account_id, query, limit=limit, offset=offset)
    return _json(
        {
            "webServiceMessages": [message_view(r, zone) for r in rows],
            "page": page,
            "pageSize": limit,
            "elements": len(rows),
            "totalElements": total,
            "totalPages": (total + limit - 1) // limit,
            "links": [],
        }
    )


def _entry(call: Call) -> tuple[str, int]:
    return parse_message_ref(call.path["messageId"])


async def message_get(call: Call) -> web.Response:
    """GET messages/{messageId}."""
    kind, entry_id = _entry(call)
    return _json(message_view(call.service.mailbox.entry(call.account_id, kind, entry_id),
                              call.zone))  # fmt: skip


async def message_delete(call: Call) -> web.Response:
    """DELETE messages/{messageId}: flagged deleted (unsent parts stopped and refunded)."""
    kind, entry_id = _entry(call)
    call.service.mailbox.delete(call.account_id, kind, entry_id)
    return _empty()


async def mark_read(call: Call) -> web.Response:
    """PUT/POST messages/{messageId}/markRead."""
    kind, entry_id = _entry(call)
    row = call.service.mailbox.mark_read(call.account_id, kind, entry_id, True)
    return _json(message_view(row, call.zone))


async def mark_unread(call: Call) -> web.Response:
    """PUT/POST messages/{messageId}/markUnread."""
    kind, entry_id = _entry(call)
    row = call.service.mailbox.mark_read(call.account_id, kind, entry_id, False)
    return _json(message_view(row, call.zone))


def _analyse(call: Call) -> Any:
    body = call.json()
    text = body.text("message", MAX_MESSAGE_FIELD)
    if text is None or text == "":
        raise bad(ErrorCode.EMPTY_MESSAGE, "Message cannot be empty")
    number = body.text("recipientNumber", 100)
    if number is not None and number.strip():
        _number(number, call)
    try:
        return call.service.analyse(text)
    except InvalidRequestError as exc:
        raise bad(ErrorCode.MESSAGE_TOO_LONG, "Message cannot be sent", str(exc)) from None


async def analyse_full(call: Call) -> web.Response:
    """POST messages/analyse/full: everything the other five answer, and each part's text."""
    a = _analyse(call)
    return _json(
        {
            "messageEncoding": ENCODINGS[a.encoding],
            "messageLength": a.length,
            "numberOfMessages": a.parts,
            "messageCreditCost": float(a.credits),
            "messageLengthWithinMaximumAllowed": a.within_limit,
            "characterAnalysis": [list(part) for part in a.segments],
        }
    )


async def analyse_credit_cost(call: Call) -> web.Response:
    """POST messages/analyse/message-credit-cost."""
    return _json(float(_analyse(call).credits))


async def analyse_encoding(call: Call) -> web.Response:
    """POST messages/analyse/message-encoding."""
    return _json(ENCODINGS[_analyse(call).encoding])


async def analyse_length(call: Call) -> web.Response:
    """POST messages/analyse/message-length."""
    return _json(_analyse(call).length)


async def analyse_within_max(call: Call) -> web.Response:
    """POST messages/analyse/message-length-within-max-allowed."""
    return _json(_analyse(call).within_limit)


async def analyse_parts(call: Call) -> web.Response:
    """POST messages/analyse/number-of-messages."""
    return _json(_analyse(call).parts)


# -- templates --------------------------------------------------------------------------------


async def templates_all(call: Call) -> web.Response:
    """GET templates/all."""
    limit, offset, _ = _page(call.query, paged_by_default=False)
    _, rows = call.service.directory.templates(call.account_id, limit=limit, offset=offset)
    return _json({"webServiceTemplates": [template_view(r) for r in rows], "links": []})


async def template_get(call: Call) -> web.Response:
    """GET templates/{templateId}."""
    template_id = _typed_id(call.path["templateId"], "templateId")
    return _json(template_view(call.service.directory.template(call.account_id, template_id)))


async def template_delete(call: Call) -> web.Response:
    """DELETE templates/{templateId}."""
    template_id = _typed_id(call.path["templateId"], "templateId")
    call.service.directory.delete_template(call.account_id, template_id)
    return _empty()


# -- routing ----------------------------------------------------------------------------------

_SEG = r"([^/]+)"
MAX_MESSAGE_FIELD = 100_000  # longer than any message may be: "too long" is answered as code 4

# (methods, path under the prefix, handler); a literal path (contacts/all) wins over the
# {value} path it looks like (contacts/{contactId}).
ROUTES: list[tuple[frozenset[str], str, Handler]] = [
    (frozenset({"GET"}), "account/balance", balance),
    (frozenset({"GET"}), "account/statistics", statistics),
    (frozenset({"POST"}), "account/transfer", transfer),
    (frozenset({"GET"}), "account/user", user_search),
    (frozenset({"PUT"}), "account/user", user_create),
    (frozenset({"GET"}), "account/user/{userId}", user_get),
    (frozenset({"POST"}), "account/user/{userId}", user_update),
    (frozenset({"GET"}), "sms/send", send_example),
    (frozenset({"POST"}), "sms/send", send),
    (frozenset({"GET"}), "sms/send-bulk", send_bulk_example),
    (frozenset({"POST"}), "sms/send-bulk", send_bulk),
    (frozenset({"GET", "POST"}), "sms/send-url-parameters", send_url_parameters),
    (frozenset({"GET", "POST"}), "sms/send-url/{token}", send_url_parameters),
    (frozenset({"GET"}), "contacts/all", contacts_all),
    (frozenset({"POST"}), "contacts/create", contact_create),
    (frozenset({"GET"}), "contacts/{contactId}", contact_get),
    (frozenset({"POST"}), "contacts/{contactId}", contact_update),
    (frozenset({"DELETE"}), "contacts/{contactId}", contact_delete),
    (frozenset({"GET", "POST"}), "contacts/{contactId}/addFromGroup/{groupId}", membership_remove),
    (frozenset({"GET", "POST"}), "contacts/{contactId}/addToGroup/{groupId}", membership_add),
    (frozenset({"GET"}), "groups/all", groups_all),
    (frozenset({"POST"}), "groups/create", group_create),
    (frozenset({"GET"}), "groups/{groupId}", group_get),
    (frozenset({"POST"}), "groups/{groupId}", group_update),
    (frozenset({"DELETE"}), "groups/{groupId}", group_delete),
    (frozenset({"GET", "POST"}), "groups/{groupId}/addContact/{contactId}", membership_add),
    (frozenset({"GET", "POST"}), "groups/{groupId}/removeContact/{contactId}", membership_remove),
    (frozenset({"GET"}), "messages/all", messages_all),
    (frozenset({"POST"}), "messages/analyse/full", analyse_full),
    (frozenset({"POST"}), "messages/analyse/message-credit-cost", analyse_credit_cost),
    (frozenset({"POST"}), "messages/analyse/message-encoding", analyse_encoding),
    (frozenset({"POST"}), "messages/analyse/message-length", analyse_length),
    (
        frozenset({"POST"}),
        "messages/analyse/message-length-within-max-allowed",
        analyse_within_max,
    ),
    (frozenset({"POST"}), "messages/analyse/number-of-messages", analyse_parts),
    (frozenset({"GET"}), "messages/{messageId}", message_get),
    (frozenset({"DELETE"}), "messages/{messageId}", message_delete),
    (frozenset({"PUT", "POST"}), "messages/{messageId}/markRead", mark_read),
    (frozenset({"PUT", "POST"}), "messages/{messageId}/markUnread", mark_unread),
    (frozenset({"GET"}), "templates/all", templates_all),
    (frozenset({"GET"}), "templates/{templateId}", template_get),
    (frozenset({"DELETE"}), "templates/{templateId}", template_delete),
]

_LITERAL: dict[str, dict[str, Handler]] = {}
_PATTERNS: list[tuple[re.Pattern[str], tuple[str, ...], dict[str, Handler]]] = []
for _methods, _path, _handler in ROUTES:
    if "{" not in _path:
        _LITERAL.setdefault(_path, {}).update(dict.fromkeys(_methods, _handler))
        continue
    _names = tuple(re.findall(r"\{(\w+)\}", _path))
    _regex = re.compile("^" + re.sub(r"\\\{\w+\\\}", _SEG, re.escape(_path)) + "$")
    for _pattern, _, _by_method in _PATTERNS:
        if _pattern.pattern == _regex.pattern:
            _by_method.update(dict.fromkeys(_methods, _handler))
            break
    else:
        _PATTERNS.append((_regex, _names, dict.fromkeys(_methods, _handler)))


def _not_allowed(method: str, allowed: Mapping[str, Handler]) -> ZoomError:
    return ZoomError(
        405, ErrorCode.METHOD_NOT_ALLOWED, f"{method} is not allowed here",
        f"allowed: {', '.join(sorted(allowed))}",
    )  # fmt: skip


def resolve(tail: str, method: str) -> tuple[Handler, dict[str, str]]:
    """The handler for a path under the prefix and a method; 404 or 405 as JSON errors."""
    path = tail.strip("/")
    literal = _LITERAL.get(path)
    if literal is not None:
        if method not in literal:
            raise _not_allowed(method, literal)
        return literal[method], {}
    for pattern, names, by_method in _PATTERNS:
        match = pattern.match(path)
        if match is None:
            continue
        if method not in by_method:
            raise _not_allowed(method, by_method)
        return by_method[method], dict(zip(names, match.groups(), strict=True))
    raise ZoomError(404, ErrorCode.NOT_FOUND, "no such endpoint", f"/api/rest/v1/{path[:200]}")


# -- authentication and the request pipeline --------------------------------------------------


def _credentials(request: web.Request, query: Query) -> tuple[str, str]:
    """(email, token) from the headers, HTTP Basic or URL parameters, in that order."""
    email = request.headers.get("email", "").strip()
    token = request.headers.get("token", "").strip()
    if email and token:
        return email, token
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() == "basic" and encoded.strip():
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ZoomError(401, ErrorCode.UNAUTHORIZED, "invalid Basic credentials") from None
        user, colon, password = decoded.partition(":")
        if colon:
            return user.strip(), password.strip()
    return (query.text("email", 320) or "").strip(), (query.text("token", 200) or "").strip()


def _authenticate(
    service: GatewayService, email: str, token: str, address: str = ""
) -> dict[str, Any]:
    if not email or not token:
        raise ZoomError(
            401, ErrorCode.UNAUTHORIZED, "authentication required",
            "send your email address and API token as the email and token headers, with HTTP"
            " Basic, or as email and token URL parameters",
        )  # fmt: skip
    try:
        return service.account_by_email_token(email, token)
    except AccountDisabledError:
        raise ZoomError(403, ErrorCode.ACCOUNT_DISABLED, "API access is disabled") from None
    except UnknownAccountError:
        service.auth_failed(address, "REST token")
        raise ZoomError(401, ErrorCode.UNAUTHORIZED, "incorrect email address or token") from None


async def _read_body(request: web.Request) -> bytes:
    if not request.body_exists:
        return b""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ZoomError(413, ErrorCode.BODY_TOO_LARGE, f"body over {MAX_BODY} bytes")
    data = bytearray()
    # Read the stream ourselves: the application-wide limit (1 MB) is too small for send-bulk.
    async for chunk in request.content.iter_chunked(1 << 16):
        data.extend(chunk)
        if len(data) > MAX_BODY:
            raise ZoomError(413, ErrorCode.BODY_TOO_LARGE, f"body over {MAX_BODY} bytes")
    return bytes(data)


def _decode_json(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise bad(ErrorCode.INVALID_REQUEST, "the body is not valid JSON") from None


_FORM = "application/x-www-form-urlencoded"


async def dispatch(service: GatewayService, request: web.Request) -> web.Response:
    """Every request under the prefixes: route, authenticate, read, run, answer."""
    address = request.remote or ""
    try:
        service.admit(address)
        handler, path = resolve(request.match_info["tail"], request.method)
        pairs = decode_pairs(request.rel_url.raw_query_string.encode("latin-1", "replace"))
        raw = await _read_body(request)
        body: Any = None
        if handler is send_url_parameters:
            if raw and request.content_type == _FORM:
                pairs.extend(decode_pairs(raw))
        elif raw:
            body = _decode_json(raw)
        query = Query(pairs)
        if "token" in path:
            try:
                account = service.account_by_send_token(path["token"].strip())
            except AccountDisabledError:
                raise ZoomError(403, ErrorCode.ACCOUNT_DISABLED, "API access is disabled") from None
            except UnknownAccountError:
                service.auth_failed(address, "URL-sending token")
                raise ZoomError(401, ErrorCode.UNAUTHORIZED, "unknown URL-sending token") from None
        else:
            account = _authenticate(service, *_credentials(request, query), address)
        service.auth_succeeded(address)
        service.admit_account(account["id"])
        return await handler(Call(service, account, path, query, body, request.method))
    except ZoomError as exc:
        return _error(exc, request)
    except RateLimitedError as exc:
        limited = ZoomError(429, ErrorCode.TOO_MANY_REQUESTS, str(exc),
                            retry_after=exc.retry_after_header)  # fmt: skip
        return _error(limited, request)
    except StoreUnavailableError as exc:  # disk full, database locked: nothing was accepted
        unavailable = ZoomError(503, ErrorCode.UNAVAILABLE, "temporarily unavailable; try again",
                                str(exc), retry_after="5")  # fmt: skip
        return _error(unavailable, request)
    except InvalidNumberError as exc:
        return _error(bad(ErrorCode.INVALID_NUMBER, "Invalid mobile number", str(exc)), request)
    except (NotFoundError, MailboxError, NotInTeamError) as exc:
        return _error(ZoomError(404, ErrorCode.NOT_FOUND, str(exc)), request)
    except (NameTakenError, EmailTakenError) as exc:
        return _error(bad(ErrorCode.ALREADY_EXISTS, str(exc)), request)
    except NotAdminError as exc:
        return _error(ZoomError(403, ErrorCode.FORBIDDEN, str(exc)), request)
    except TeamCreditsError as exc:
        return _error(bad(ErrorCode.INSUFFICIENT_CREDITS, "Insufficient credits", str(exc)),
                      request)  # fmt: skip
    except InsufficientCreditsError as exc:
        return _error(bad(ErrorCode.INSUFFICIENT_CREDITS, "Insufficient credits", str(exc)),
                      request)  # fmt: skip
    except (TeamError, ContactError, InvalidRequestError) as exc:
        return _error(bad(ErrorCode.INVALID_REQUEST, str(exc)), request)
    except ServiceError as exc:
        return _error(bad(ErrorCode.INVALID_REQUEST, str(exc)), request)
    except Exception:
        log.exception("zoomconnect %s %s failed", request.method, request.path)
        return _error(ZoomError(500, ErrorCode.INTERNAL, "internal error"), request)


def _error(exc: ZoomError, request: web.Request) -> web.Response:
    if exc.status == 503:  # the store refused for now (disk full, locked): expected, retried
        log.warning("zoomconnect %s %s: %s", request.method, request.path, exc.message)
    elif exc.status >= 500:
        log.error("zoomconnect %s %s: %s", request.method, request.path, exc.message)
    else:
        log.info("zoomconnect %s %s: %d %s", request.method, request.path, exc.status,
                 exc.message)  # fmt: skip
    headers = {"WWW-Authenticate": 'Basic realm="SMS Messenger"'} if exc.status == 401 else {}
    if exc.retry_after:
        headers["Retry-After"] = exc.retry_after
    return _json(error_body(exc), exc.status, headers or None)


# -- webhooks (pure formatters; the engine sends what they return) ----------------------------

_DLR_STATUS = {
    "delivered": "DELIVERED",
    "failed": "FAILED",
    "expired": "FAILED",
    "cancelled": "FAILED_REFUNDED",
}


def reply_params(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A reply as the spec's example forwards it (`date` is yyyyMMddHHmm, UTC)."""
    extra = data.get("replied_to_extra") or {}
    replied = data.get("replied_to_message_id")
    return [
        ("from", str(data.get("from", ""))),
        ("repliedToMessageId", message_ref("out", int(replied)) if replied is not None else ""),
        ("messageId", message_ref("in", int(data["inbound_id"]))),
        ("message", str(data.get("text", ""))),
        ("date", compact_time(str(data["received_at"]))),
        ("campaign", str(extra.get("campaign", ""))),
        ("dataField", str(extra.get("dataField", ""))),
    ]


def report_params(data: Mapping[str, Any]) -> list[tuple[str, str]] | None:
    """A delivery report (`status`, `messageId`) once a message is settled; None for changes
    that are no delivery report (queued, sent, a part of a message that is still on its way)."""
    state = str(data.get("state", ""))
    status = _DLR_STATUS.get(state)
    if status is None or data.get("previous_state") == state:
        return None  # not settled, or already settled (a later part's report changes nothing)
    if state == "failed" and "opted out" in str(data.get("error") or ""):
        status = "FAILED_OPTOUT"
    elif state == "failed" and data.get("previous_state") in ("accepted", "queued", "sending"):
        status = "FAILED_REFUNDED"  # never reached the network: its credits were given back
    return [("status", status), ("messageId", message_ref("out", int(data["message_id"])))]


def webhook_post(url: str, params: list[tuple[str, str]]) -> tuple[str, str, bytes]:
    """(method, url, body) of a forward: POST, the values both in the URL (as the spec's
    examples show them) and as a form body (what a POST handler reads)."""
    encoded = urlencode(params)
    joiner = "&" if "?" in url else "?"
    return "POST", f"{url}{joiner}{encoded}", encoded.encode()


WEBHOOK_FORMAT = "zoomconnect"


def format_webhook(event: WebhookEvent, url: str) -> WebhookRequest | None:
    """The engine's formatter: a reply or a delivery report the way Zoom Connect forwards them
    (None for a status change that is no delivery report)."""
    if event.kind is WebhookKind.REPLY:
        params: list[tuple[str, str]] | None = reply_params(event.data)
    else:
        params = report_params(event.data)
    if params is None:
        return None
    method, target, body = webhook_post(url, params)
    return WebhookRequest(method, target, (("Content-Type", _FORM),), body)


# Known to every process that loads the HTTP front-end (the daemon, and the CLI when it sets a
# subscription in this format), not only once an app is built.
register_format(WEBHOOK_FORMAT, format_webhook)


# -- mounting ---------------------------------------------------------------------------------


def install(app: web.Application, service: GatewayService) -> None:
    """Serve the dialect under /app/api/rest/v1/ and /api/rest/v1/ (every method), and its
    webhook format."""
    register_format(WEBHOOK_FORMAT, format_webhook)
    handler = functools.partial(dispatch, service)
    for prefix in PREFIXES:
        # [\s\S]: a path value may hold any character, a newline (%0A) too.
        app.router.add_route("*", prefix + "/{tail:[\\s\\S]*}", handler)
