"""SMS Everyone-compatible REST API at /api/<resource>: campaigns, delivery receipts, replies,
user settings, opt-outs, CRM lists and credits.

JSON in and out, HTTP Basic authentication with the sub-account's name and password. Resource
names, property names and Action values ignore case (the provider's ASP.NET front end binds
them so, and its clients send `action`, `Action` and `CampaignID` alike); a request body is
read as strict JSON, then (up to 64 KiB) as JSON5 for what Json.NET also accepts, such as the
trailing comma in the spec's own CRM delete example. Errors are {"Message": text, "Code": n}
with the spec's codes where it lists one and ours (README, Compatibility) where it does not:
HTTP 401/403 for credentials, 400/413/404/405 for requests that are not API calls at all, and
HTTP 200 for everything an API call can answer, as the provider's clients expect.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import json5
from aiohttp import web

from gateway.numbers import InvalidNumberError, normalize
from gateway.recurrence import resolve_local
from gateway.service import (
    AccountDisabledError,
    BatchClosedError,
    EmptyTextError,
    GatewayService,
    InsufficientCreditsError,
    InvalidRecipientError,
    InvalidRequestError,
    LongTextNotAllowedError,
    Outgoing,
    RateLimitedError,
    TextTooLongError,
    TopUpNotAllowedError,
    UnicodeNotAllowedError,
    UnknownAccountError,
)
from gateway.store import StoreUnavailableError
from gateway.webhooks import WebhookEvent, WebhookKind, WebhookRequest, register_format

log = logging.getLogger(__name__)

READER = "smseveryone"  # whose "since the last check" /api/replies keeps
REFERENCE = "Reference"  # the customer's campaign reference, in batch and message extra
CAMPAIGN = "CampaignId"  # the campaign (batch) id, in each message's extra (for webhooks)
WEBHOOK_FORMAT = "smseveryone"  # GatewayService.set_webhook(..., format=WEBHOOK_FORMAT)
MAX_BODY = 8 * 1024 * 1024  # bytes: about 500,000 destinations
LENIENT_MAX = 64 * 1024  # bodies up to this size may be JSON5 (pure-Python parser)
MAX_MESSAGE = 2000  # characters, as the spec says
MAX_TEXT = 200  # characters of a Reference, Description, Originator ...
MAX_DAYS = 3660
UNLIMITED_CREDITS = 2147483647  # what an account without a limit reports
_SCHEDULE = re.compile(r"\d{12}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

# Code -> (Message, HTTP status). The spec lists -111, -117, -202, -129 and -130.
ERRORS: dict[int, tuple[str, int]] = {
    -100: ("Authorization has been denied for this request.", 401),
    -101: ("Invalid username or password", 401),
    -102: ("Account disabled", 403),
    -103: ("Invalid JSON", 400),
    -104: ("Request body too large", 413),
    -105: ("No HTTP resource was found that matches the request URI", 404),
    -106: ("The requested resource only supports http method 'POST'", 405),
    -107: ("Invalid Action", 200),
    -108: ("Invalid value", 200),  # "Invalid value for <Field>"
    -111: ("No valid destination number(s) specified", 200),
    -112: ("Originator is not one of the account's numbers", 200),
    -113: ("TimeScheduled is in the past", 200),
    -114: ("Campaign not found", 200),
    -115: ("CampaignId not specified", 200),
    -116: ("Campaign message text longer than 2000 characters", 200),
    -117: ("Campaign message text not specified", 200),
    -118: ("Unicode messages are not enabled on this account", 200),
    -119: ("Messages longer than one SMS are not enabled on this account", 200),
    -120: ("Campaign has finished or was deleted", 200),
    -121: ("CRM list not found", 200),
    -122: ("CrmId not specified", 200),
    -123: ("Description not specified", 200),
    -124: ("A CRM list with that description already exists", 200),
    -125: ("No valid number(s) specified", 200),
    -129: ("Not allowed to add credits", 200),
    -130: ("Invalid amount of credits to add", 200),
    -202: ("Insufficient credits available to start campaign", 200),
    -429: ("Too many requests", 429),  # with Retry-After: a rate limit or wrong-password backoff
    -500: ("Internal error", 500),
    -503: ("Service temporarily unavailable; try again", 503),  # with Retry-After: disk full
}


class ApiError(Exception):
    """An answer {"Message", "Code"} with the code's HTTP status."""

    def __init__(self, code: int, message: str | None = None, retry_after: str = "") -> None:
        text, status = ERRORS[code]
        super().__init__(message or text)
        self.code = code
        self.message = message or text
        self.status = status
        self.retry_after = retry_after


def _invalid(field: str) -> ApiError:
    return ApiError(-108, f"Invalid value for {field}")


# -- request bodies -----------------------------------------------------------------------------


class Fields:
    """A JSON object read as Json.NET binds one: names ignore case, numbers pass for strings
    and digit strings for numbers."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = {str(k).lower(): v for k, v in data.items()}

    def has(self, name: str) -> bool:
        """Whether the field is present and not null."""
        return self._data.get(name.lower()) is not None

    def text(self, name: str, *, limit: int = MAX_TEXT, code: int | None = None) -> str | None:
        """A string (a number is read as its digits); None when absent or null."""
        value = self._data.get(name.lower())
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, str | int | float)
            or (isinstance(value, float) and not math.isfinite(value))
        ):
            raise ApiError(code) if code is not None else _invalid(name)
        text = value if isinstance(value, str) else _number_text(value)
        if len(text) > limit or "\x00" in text:
            raise ApiError(code) if code is not None else _invalid(name)
        return text

    def integer(self, name: str, *, code: int | None = None) -> int | None:
        """An integer (also as a digit string or an integral float); None when absent."""
        value = self._data.get(name.lower())
        if value is None:
            return None
        number = _as_int(value)
        if number is None:
            raise ApiError(code) if code is not None else _invalid(name)
        return number

    def flag(self, name: str) -> bool:
        """A boolean (true/false, "true"/"false", 1/0); False when absent."""
        value = self._data.get(name.lower())
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
            return value.strip().lower() in ("true", "1")
        raise _invalid(name)

    def items(self, name: str, *, code: int | None = None) -> list[Any] | None:
        """A list (a string is a comma-separated one); None when absent."""
        value = self._data.get(name.lower())
        if value is None:
            return None
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            return value
        raise ApiError(code) if code is not None else _invalid(name)

    def raw(self, name: str) -> Any:
        """The value as sent."""
        return self._data.get(name.lower())


def _number_text(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None  # SQLite's INTEGER
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**63 else None
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d{1,18}\s*", value):
        return int(value)
    return None


async def read_fields(request: web.Request) -> Fields:
    """The request body as a JSON object (an empty body is {}); ApiError -103/-104."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(-104)
    data = bytearray()
    async for chunk in request.content.iter_chunked(256 * 1024):
        data.extend(chunk)
        if len(data) > MAX_BODY:
            raise ApiError(-104)
    return Fields(parse_body(bytes(data)))


def parse_body(data: bytes) -> dict[str, Any]:
    """A body's JSON object: strict JSON, else (small bodies) JSON5; ApiError -103."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(-103, "Invalid JSON: the body is not UTF-8") from None
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        if len(data) > LENIENT_MAX:
            raise ApiError(-103) from None
        try:
            value = json5.loads(text)
        except (ValueError, RecursionError, TypeError, IndexError, OverflowError):
            raise ApiError(-103) from None
    if not isinstance(value, dict):
        raise ApiError(-103, "Invalid JSON: the body must be a JSON object")
    return value


# -- what every call shares -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated account and the service."""

    account: dict[str, Any]
    service: GatewayService

    @property
    def id(self) -> int:
        """The account id."""
        return int(self.account["id"])

    @property
    def dial_code(self) -> str:
        """The account's default dial code (national numbers)."""
        return str(self.account["default_dial_code"] or "")

    @property
    def zone(self) -> tzinfo:
        """The account's timezone: TimeScheduled is read and timestamps are shown in it."""
        return self.service.account_zone(self.account)

    def local(self, stamp: str | None, *, sep: str = "T") -> str:
        """A stored UTC time as the account's wall time, ISO-8601 without a zone."""
        if not stamp:
            return ""
        moment = datetime.fromisoformat(stamp).astimezone(self.zone)
        return moment.replace(tzinfo=None).isoformat(sep=sep, timespec="seconds")

    def wall(self, naive: datetime) -> datetime:
        """A wall time in the account's zone as an instant (DST gaps move forward)."""
        zone = self.zone
        if isinstance(zone, ZoneInfo):
            return resolve_local(naive, zone)
        return naive.replace(tzinfo=zone)


def authenticate(
    request: web.Request, service: GatewayService, address: str = ""
) -> dict[str, Any]:
    """The account named by the Basic credentials; ApiError -100/-101/-102."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        raise ApiError(-100)
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ApiError(-100) from None
    username, colon, password = decoded.partition(":")
    if not colon or not username:
        raise ApiError(-100)
    try:
        return service.account_by_credentials(username, password)
    except AccountDisabledError:
        raise ApiError(-102) from None
    except UnknownAccountError:
        service.auth_failed(address, "sub-account password")
        raise ApiError(-101) from None


def _msisdn(number: str) -> str:
    """How the API shows numbers: international, without + or 00."""
    return number.lstrip("+")


def _numbers(values: Sequence[Any]) -> list[str]:
    """Raw destinations as the service takes them (strings; a JSON number is its digits);
    anything else (null, true, a list) is no number and left out."""
    return [
        value if isinstance(value, str) else str(value)
        for value in values
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    ]


def _e164(values: Sequence[Any], dial_code: str) -> list[str]:
    """The values that are phone numbers, as E.164."""
    valid = []
    for value in _numbers(values):
        try:
            valid.append(normalize(value, dial_code))
        except InvalidNumberError:
            continue
    return valid


def _campaign_id(fields: Fields) -> int:
    campaign = fields.integer("CampaignId")
    if campaign is None:
        raise ApiError(-115)
    return campaign


def _schedule(fields: Fields, caller: Caller) -> datetime | None:
    """TimeScheduled (YYYYMMDDHHMM, the account's wall time) as an instant."""
    raw = fields.text("TimeScheduled")
    if raw is None or not raw.strip():
        return None
    if not _SCHEDULE.fullmatch(raw.strip()):
        raise _invalid("TimeScheduled")
    try:
        naive = datetime.strptime(raw.strip(), "%Y%m%d%H%M")
    except ValueError:
        raise _invalid("TimeScheduled") from None
    return caller.wall(naive)


def _originator(fields: Fields, caller: Caller) -> tuple[str, bool]:
    """(sender, rotate): one of the account's SIM numbers, or (absent/empty) all of them."""
    raw = fields.text("Originator")
    if raw is None or not raw.strip():
        return "", True
    try:
        number = normalize(raw, caller.dial_code)
    except InvalidNumberError:
        raise ApiError(-112) from None
    for sim in caller.service.sender_numbers(caller.id):
        if sim["msisdn"] and sim["msisdn"] == number:
            return number, False
    raise ApiError(-112)


def _text_errors(exc: InvalidRequestError, default: ApiError) -> ApiError:
    """The dialect's code for a text or destination the service refused."""
    for kind, code in (
        (EmptyTextError, -117),
        (TextTooLongError, -116),
        (UnicodeNotAllowedError, -118),
        (LongTextNotAllowedError, -119),
        (InvalidRecipientError, -111),
        (BatchClosedError, -120),
    ):
        if isinstance(exc, kind):
            return ApiError(code)
    return default


# -- /api/campaign --------------------------------------------------------------------------------


async def campaign(fields: Fields, caller: Caller) -> dict[str, Any]:
    """create / delete / modify / pause / unpause / status."""
    action = (fields.text("Action") or "").strip().lower()
    handler = _CAMPAIGN_ACTIONS.get(action)
    if handler is None:
        raise ApiError(-107)
    return await handler(fields, caller)


async def campaign_create(fields: Fields, caller: Caller) -> dict[str, Any]:
    """Send or schedule a text to Destinations and/or CRM lists; with the Reference of a
    campaign still scheduled for the same time, add the numbers to it."""
    message = fields.text("Message", limit=MAX_BODY, code=-117)  # a long one is -116
    if message is None or not message.strip():
        raise ApiError(-117)
    if len(message) > MAX_MESSAGE:
        raise ApiError(-116)
    sender, rotate = _originator(fields, caller)
    send_at = _schedule(fields, caller)
    reference = fields.text("Reference")
    reference = reference.strip() if reference is not None and reference.strip() else None
    raw_destinations = fields.items("Destinations", code=-111) or []
    destinations = _numbers(raw_destinations)
    crm_ids = [_as_int(v) for v in (fields.items("CrmIds") or [])]
    if any(c is None for c in crm_ids):
        raise _invalid("CrmIds")
    for crm_id in crm_ids:
        assert crm_id is not None
        if caller.service.contacts.group_by_id(caller.id, crm_id) is None:
            raise ApiError(-121)
    if crm_ids:
        members = caller.service.contacts.members(caller.id, [c for c in crm_ids if c])
        destinations.extend(m["number"] for m in members)
    if not destinations:
        raise ApiError(-111)
    into = _scheduled_campaign(caller, reference, send_at) if reference else None
    message_extra = {REFERENCE: reference} if reference else {}
    batch_extra: dict[str, Any] = {"api": "smseveryone"}
    if reference:
        batch_extra[REFERENCE] = reference
    if crm_ids:
        batch_extra["CrmIds"] = crm_ids
    items = [Outgoing(d, message, send_at, message_extra) for d in destinations]
    try:
        result = await caller.service.submit_batch_durably(
            caller.id, items, sender=sender, rotate=rotate, extra=batch_extra, into=into,
            id_key=CAMPAIGN, max_characters=MAX_MESSAGE,
        )  # fmt: skip
    except InsufficientCreditsError:
        raise ApiError(-202) from None
    except InvalidRequestError as exc:  # no recipient at all is a plain InvalidRequestError
        raise _text_errors(exc, ApiError(-111)) from None
    count = len(result.message_ids)
    log.info("account %d: campaign %d, %d message(s)%s", caller.id, result.batch_id, count,
             " added" if into is not None else "")  # fmt: skip
    return {
        "Code": 0,
        "CampaignId": result.batch_id,
        "Messages": count,
        "Segments": result.units_charged // count if count else 0,
        "Credits": result.units_charged,
    }


def _scheduled_campaign(caller: Caller, reference: str, send_at: datetime | None) -> int | None:
    """The account's newest campaign with this Reference that is still scheduled (nothing of
    it due yet) for the same time: the spec's "add more numbers to an existing scheduled
    campaign". The added numbers get the request's own Message (normally the same text)."""
    if send_at is None or send_at <= caller.service.wall():
        return None
    stamp = send_at.astimezone(UTC).isoformat(timespec="microseconds")
    for batch in caller.service.find_batches(caller.id, REFERENCE, reference):
        if batch["state"] not in ("active", "paused") or batch["template"]:
            continue
        states = caller.service.batch_states(caller.id, batch["id"]) or {}
        if set(states) != {"accepted"}:
            continue
        (newest,) = caller.service.list_messages(caller.id, batch_id=batch["id"], limit=1)
        if newest["send_at"] == stamp:
            return int(batch["id"])
    return None


def _own_campaign(fields: Fields, caller: Caller) -> dict[str, Any]:
    batch = caller.service.batch_info(caller.id, _campaign_id(fields))
    if batch is None:
        raise ApiError(-114)
    return batch


def campaign_status_of(caller: Caller, batch: Mapping[str, Any]) -> str:
    """Deleted, Paused, Scheduled (waiting for its time), Running or Completed."""
    if batch["state"] == "cancelled":
        return "Deleted"
    if batch["state"] == "paused":
        return "Paused"
    states = caller.service.batch_states(caller.id, batch["id"]) or {}
    if states.get("queued") or states.get("sending"):
        return "Running"
    if states.get("accepted") or (batch["template"] and batch["state"] == "active"):
        return "Scheduled"
    return "Completed"


async def campaign_delete(fields: Fields, caller: Caller) -> dict[str, Any]:
    """Cancel what has not gone; unsent parts are refunded."""
    batch = _own_campaign(fields, caller)
    if batch["state"] != "cancelled":
        refunded = caller.service.cancel_batch(caller.id, batch["id"])
        log.info("account %d: campaign %d deleted, %d part(s) refunded", caller.id, batch["id"],
                 refunded)  # fmt: skip
    return {"Message": "Deleted", "Code": 0}


async def campaign_pause(fields: Fields, caller: Caller) -> dict[str, Any]:
    """Hold what has not gone yet."""
    batch = _own_campaign(fields, caller)
    if campaign_status_of(caller, batch) in ("Deleted", "Completed"):
        raise ApiError(-120)
    caller.service.pause_batch(caller.id, batch["id"])
    return {"Message": "Paused", "Code": 0}


async def campaign_unpause(fields: Fields, caller: Caller) -> dict[str, Any]:
    """Let it go on; what was due meanwhile goes at once."""
    batch = _own_campaign(fields, caller)
    if batch["state"] not in ("active", "paused"):
        raise ApiError(-120)
    caller.service.resume_batch(caller.id, batch["id"])
    return {"Message": "Unpaused", "Code": 0}


async def campaign_status(fields: Fields, caller: Caller) -> dict[str, Any]:
    """Paused, Scheduled, Running, Deleted or Completed."""
    return {"Message": campaign_status_of(caller, _own_campaign(fields, caller)), "Code": 0}


async def campaign_modify(fields: Fields, caller: Caller) -> dict[str, Any]:
    """New text, originator and/or time for every message not sent yet."""
    batch = _own_campaign(fields, caller)
    if campaign_status_of(caller, batch) in ("Deleted", "Completed"):
        raise ApiError(-120)
    message = fields.text("Message", limit=MAX_BODY, code=-117)  # a long one is -116
    if message is not None and not message.strip():
        raise ApiError(-117)
    if message is not None and len(message) > MAX_MESSAGE:
        raise ApiError(-116)
    sender: str | None = None
    rotate: bool | None = None
    if fields.has("Originator"):
        sender, rotate = _originator(fields, caller)
    send_at = _schedule(fields, caller)
    if send_at is not None and send_at <= caller.service.wall():
        raise ApiError(-113)
    try:
        changed = caller.service.modify_batch(
            caller.id, batch["id"], text=message, send_at=send_at, sender=sender, rotate=rotate,
            unsent=True, max_characters=MAX_MESSAGE,
        )  # fmt: skip
    except InsufficientCreditsError:
        raise ApiError(-202) from None
    except InvalidRequestError as exc:
        raise _text_errors(exc, _invalid("Message")) from None
    rows = caller.service.list_messages(caller.id, batch_id=batch["id"], limit=1)
    segments = int(rows[0]["units"]) if rows else 0
    return {
        "Code": 0,
        "CampaignId": batch["id"],
        "Messages": changed,
        "Segments": segments,
        "Credits": changed * segments,
    }


_CAMPAIGN_ACTIONS: dict[str, Callable[[Fields, Caller], Awaitable[dict[str, Any]]]] = {
    "create": campaign_create,
    "delete": campaign_delete,
    "modify": campaign_modify,
    "pause": campaign_pause,
    "unpause": campaign_unpause,
    "status": campaign_status,
}


# -- /api/DRStatus --------------------------------------------------------------------------------

DELIVERED, NOT_DELIVERED = 1, 2
OPTED_OUT_CODE = 2001  # washed against the opt-out list at sending time
NOT_SENT_CODE = 2000  # failed before reaching the network for another reason
CMS_BASE = 1000  # 1000 + N: the modem answered +CMS ERROR: N


def receipt(row: Mapping[str, Any]) -> tuple[int, int] | None:
    """(DeliveryReceiptStatusId, Code) of one message, or None while no final word came."""
    state = row["state"]
    if state == "delivered":
        return DELIVERED, 0
    if state == "expired":
        status = row.get("report_status")
        return NOT_DELIVERED, int(status) if status is not None else 0x46
    if state != "failed":
        return None  # scheduled, queued, sending, sent (awaiting a report), cancelled, uncertain
    if row.get("report_status") is not None:
        return NOT_DELIVERED, int(row["report_status"])  # TP-ST, as the network said it
    if row.get("cms_error") is not None:
        return NOT_DELIVERED, CMS_BASE + int(row["cms_error"])
    errors = f"{row.get('part_errors') or ''} {row.get('error') or ''}"
    return NOT_DELIVERED, OPTED_OUT_CODE if "opted out" in errors else NOT_SENT_CODE


async def drstatus(fields: Fields, caller: Caller) -> dict[str, Any]:
    """Receipts of every number of a campaign (or of one Destination) that has one."""
    campaign_id = _campaign_id(fields)
    destination = fields.text("Destination")
    recipient = None
    if destination is not None and destination.strip():
        try:
            recipient = normalize(destination, caller.dial_code)
        except InvalidNumberError:
            raise ApiError(-111) from None
    rows = caller.service.batch_delivery(caller.id, campaign_id, recipient) or []
    destinations = []
    for row in rows:
        got = receipt(row)
        if got is None:
            continue
        destinations.append(
            {
                "Destination": _msisdn(row["recipient"]),
                "TimeStamp": caller.local(row["done_at"]),
                "Status": {"DeliveryReceiptStatusId": got[0], "Code": got[1]},
            }
        )
    return {"CampaignId": campaign_id, "Count": len(destinations), "Destinations": destinations}


# -- /api/replies ---------------------------------------------------------------------------------


def reference_of(replied_to: Mapping[str, Any] | None) -> str:
    """ReferenceId of a reply: the Reference of the campaign it answers, else that campaign's
    id, else "" (it answers nothing sent through this API). The same for the REST replies and
    the webhook, which only sees the answered message's extra."""
    if replied_to is None:
        return ""
    extra = replied_to.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra or "{}")
    reference = extra.get(REFERENCE)
    if reference:
        return str(reference)
    campaign_id = extra.get(CAMPAIGN)  # set on every message of an SMS Everyone campaign
    return str(campaign_id) if campaign_id else ""


def _local_date(fields: Fields, name: str, caller: Caller) -> datetime | None:
    raw = fields.text(name)
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()[:10]  # a date, or the date of a date and time
    if not _DATE.fullmatch(raw):
        raise _invalid(name)
    try:
        day = datetime.strptime(raw, "%Y-%m-%d")
    except ValueError:
        raise _invalid(name) from None
    return day


async def replies(fields: Fields, caller: Caller) -> dict[str, Any]:
    """Replies since the last check (then counted as retrieved, unless Test), or for the last
    Days (from midnight, the account's time) or DateStart..DateEnd (whole days, inclusive)."""
    test = fields.flag("Test")
    days = fields.integer("Days")
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise _invalid("Days")
    first = _local_date(fields, "DateStart", caller)
    last = _local_date(fields, "DateEnd", caller)
    start = end = None
    if days is not None:
        today = caller.service.wall().astimezone(caller.zone).replace(tzinfo=None)
        midnight = today.replace(hour=0, minute=0, second=0, microsecond=0)
        start = caller.wall(midnight - timedelta(days=days - 1))
    if first is not None:
        start = max(filter(None, (start, caller.wall(first))))
    if last is not None:
        end = caller.wall(last + timedelta(days=1))
    since_last = days is None and first is None and last is None
    rows = caller.service.replies(
        caller.id, READER, since_last=since_last, mark=since_last and not test, start=start,
        end=end,
    )  # fmt: skip
    messages = [
        {
            "Received": caller.local(row["received_at"]),
            "Originator": _msisdn(row["originator"]),
            "Recipient": _msisdn(row["recipient"] or ""),
            "MessageText": row["body"],
            "ReferenceId": reference_of(row["replied_to"]),
        }
        for row in rows
    ]
    return {"Count": len(messages), "Messages": messages}


# -- /api/RetrieveUserSettings, /api/credits ------------------------------------------------------


def _credits(caller: Caller) -> int:
    balance = caller.service.credit_balance(caller.id)
    return UNLIMITED_CREDITS if balance is None else balance


async def user_settings(fields: Fields, caller: Caller) -> dict[str, Any]:
    """UserId, AllowUnicode, AllowInternational, Credits."""
    policy = caller.service.account_policy(caller.id)
    return {
        "UserId": caller.id,
        "AllowUnicode": policy.allow_unicode,
        "AllowInternational": policy.allow_international,
        "Credits": _credits(caller),
        "Code": 0,
    }


async def credits(fields: Fields, caller: Caller) -> dict[str, Any]:
    """Action add: top the (approved) account up."""
    if (fields.text("Action") or "").strip().lower() != "add":
        raise ApiError(-107)
    amount = _as_int(fields.raw("Credits"))
    if not caller.service.account_policy(caller.id).allow_topup:
        raise ApiError(-129)
    if amount is None or amount < 1:
        raise ApiError(-130)
    try:
        balance = caller.service.top_up(caller.id, amount)
    except TopUpNotAllowedError:
        raise ApiError(-129) from None
    except InvalidRequestError:
        raise ApiError(-130) from None
    return {"Credits": UNLIMITED_CREDITS if balance is None else balance, "Code": 0}


# -- /api/optouts ---------------------------------------------------------------------------------


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


async def optouts(fields: Fields, caller: Caller) -> dict[str, Any]:
    """add / delete numbers (Originator) or list every opted-out number."""
    action = (fields.text("Action") or "").strip().lower()
    contacts = caller.service.contacts
    if action == "list":
        rows = contacts.opt_outs(caller.id)
        return {
            "Count": len(rows),
            "OptOut": [
                {
                    "Added": caller.local(row["created_at"], sep=" "),
                    "Originator": _msisdn(row["number"]),
                    "MessageText": row["keyword"],
                    "Reason": "Reply" if row["keyword"] else "Client",
                }
                for row in rows
            ],
        }
    if action not in ("add", "delete"):
        raise ApiError(-107)
    numbers = _e164(fields.items("Originator", code=-125) or [], caller.dial_code)
    if not numbers:
        raise ApiError(-125)
    changed, _ = contacts.set_opted_out(
        caller.id, numbers, action == "add", dial_code=caller.dial_code
    )
    if action == "add":
        return {"Message": "Origins added", "Code": 0}
    return {"Message": f"Deleted {_plural(changed, 'OptOut number')}", "Code": 0}


# -- /api/crm -------------------------------------------------------------------------------------


def _records(fields: Fields) -> list[Any]:
    """Every number of Records: [{"Number": "a,b"}, ...] (plain strings pass too)."""
    numbers: list[Any] = []
    for record in fields.items("Records", code=-125) or []:
        value = Fields(record).raw("Number") if isinstance(record, dict) else record
        if isinstance(value, str):
            numbers.extend(v.strip() for v in value.split(",") if v.strip())
        elif value is not None:
            numbers.append(value)
    return numbers


def _crm_group(fields: Fields, caller: Caller) -> dict[str, Any]:
    crm_id = fields.integer("CrmId")
    if crm_id is None:
        raise ApiError(-122)
    group = caller.service.contacts.group_by_id(caller.id, crm_id)
    if group is None:
        raise ApiError(-121)
    return group


async def crm(fields: Fields, caller: Caller) -> dict[str, Any]:
    """list / details / create / append / remove / delete contact lists (contact groups)."""
    action = (fields.text("Action") or "").strip().lower()
    contacts = caller.service.contacts
    if action == "list":
        groups = [
            {"CrmId": g["id"], "Description": g["name"], "Count": g["count"], "ParentGroup": 0,
             "ActiveCampaign": 0, "Deleted": ""}
            for g in contacts.group_rows(caller.id)
        ]  # fmt: skip
        return {"Count": len(groups), "Groups": groups}
    if action == "details":
        group = _crm_group(fields, caller)
        members = contacts.members(caller.id, [group["id"]])
        return {
            "CrmId": group["id"],
            "Description": group["name"],
            "Count": len(members),
            "Records": [{"Number": _msisdn(m["number"])} for m in members],
        }
    if action == "create":
        description = fields.text("Description", limit=100)
        if description is None or not description.strip():
            raise ApiError(-123)
        numbers = _e164(_records(fields), caller.dial_code)
        group_id = contacts.create_group(caller.id, description.strip())
        if group_id is None:
            raise ApiError(-124)
        contacts.add_numbers(caller.id, group_id, numbers, dial_code=caller.dial_code)
        return {"CrmId": group_id, "Message": "CRM created"}
    if action in ("append", "remove"):
        group = _crm_group(fields, caller)
        numbers = _e164(_records(fields), caller.dial_code)
        if not numbers:
            raise ApiError(-125)
        if action == "append":
            added, _ = contacts.add_numbers(
                caller.id, group["id"], numbers, dial_code=caller.dial_code
            )
            return {"Message": f"Added {_plural(added, 'number')}", "Code": 0}
        removed, _ = contacts.remove_numbers(
            caller.id, group["id"], numbers, dial_code=caller.dial_code
        )
        return {"Message": f"Removed {_plural(removed, 'number')}", "Code": 0}
    if action == "delete":
        group = _crm_group(fields, caller)
        contacts.delete_group(caller.id, group["id"])
        return {"Message": "Deleted", "Code": 0}
    raise ApiError(-107)


# -- the replies webhook (HTTP GET to the customer's URL) ----------------------------------------


def reply_webhook_url(data: Mapping[str, Any], url: str) -> str:
    """The spec's GET for one reply: the subscriber URL (which keeps the username and password
    the customer's endpoint expects: the box only holds a hash of the account's password) with
    originator, recipient, reference and message_text added to its query."""
    parts = urlsplit(url)
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k not in ("originator", "recipient", "reference", "message_text")
    ]
    query += [
        ("originator", _msisdn(str(data.get("from") or ""))),
        ("recipient", _msisdn(str(data.get("to") or ""))),
        ("reference", reference_of({"extra": data.get("replied_to_extra") or {}})),
        ("message_text", str(data.get("text") or "")),
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def webhook_request(event: WebhookEvent, url: str) -> WebhookRequest | None:
    """The `smseveryone` webhook format: the spec's GET for a reply. The provider has no
    status webhook, so a status event sends nothing (it counts as delivered)."""
    if event.kind is not WebhookKind.REPLY:
        return None
    return WebhookRequest("GET", reply_webhook_url(event.data, url))


# Registered on import too: a process that only sets subscriptions (the CLI) knows the name.
register_format(WEBHOOK_FORMAT, webhook_request)


# -- routing --------------------------------------------------------------------------------------

Resource = Callable[[Fields, Caller], Awaitable[dict[str, Any]]]

RESOURCES: dict[str, Resource] = {
    "campaign": campaign,
    "drstatus": drstatus,
    "replies": replies,
    "retrieveusersettings": user_settings,
    "optouts": optouts,
    "crm": crm,
    "credits": credits,
}


def _answer(body: Mapping[str, Any], status: int = 200) -> web.Response:
    response = web.json_response(
        body, status=status, dumps=functools.partial(json.dumps, ensure_ascii=False)
    )
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="SMS Everyone"'
    if status == 405:
        response.headers["Allow"] = "POST"
    return response


def _error(exc: ApiError) -> web.Response:
    response = _answer({"Message": exc.message, "Code": exc.code}, exc.status)
    if exc.retry_after:
        response.headers["Retry-After"] = exc.retry_after
    return response


async def api(service: GatewayService, request: web.Request) -> web.Response:
    """POST /api/<resource>: authenticate, read the JSON body, answer the resource's JSON."""
    name = request.match_info.get("name", "").strip("/").lower()
    address = request.remote or ""
    try:
        service.admit(address)
        resource = RESOURCES.get(name)
        if resource is None:
            raise ApiError(-105)
        if request.method != "POST":
            raise ApiError(-106)
        account = authenticate(request, service, address)
        service.auth_succeeded(address)
        service.admit_account(account["id"])
        caller = Caller(account, service)
        # RetrieveUserSettings needs no body: whatever is sent is not read.
        fields = Fields({}) if name == "retrieveusersettings" else await read_fields(request)
        return _answer(await resource(fields, caller))
    except ApiError as exc:
        # The code and the text only: they name fields, never numbers or message bodies.
        log.info("/api/%s: %s (%d)", name[:40], exc.message, exc.code)
        return _error(exc)
    except RateLimitedError as exc:
        return _error(ApiError(-429, str(exc), retry_after=exc.retry_after_header))
    except StoreUnavailableError as exc:  # disk full, database locked: nothing was accepted
        log.warning("/api/%s: store unavailable (%s)", name[:40], exc)
        return _error(ApiError(-503, retry_after="5"))
    except Exception:
        log.exception("/api/%s failed", name[:40])
        return _error(ApiError(-500))


def install(app: web.Application, service: GatewayService) -> None:
    """Add /api/<resource> (any case, trailing slash optional) to the application; anything
    else under /api/ answers the dialect's 404 (/api_v1 and /apis/ are other dialects')."""
    register_format(WEBHOOK_FORMAT, webhook_request)
    handler = functools.partial(api, service)
    prefix = "/{prefix:[Aa][Pp][Ii]}"  # IIS paths ignore case: /API/Campaign works there too
    app.router.add_route("*", prefix + "/{name}", handler)
    app.router.add_route("*", prefix + "/{name}/", handler)
    # Deeper paths are no resource of this dialect; /api/rest/... is Zoom Connect's.
    app.router.add_route("*", prefix + "/{name:(?![Rr][Ee][Ss][Tt]/)[^/]+}/{tail:.*}", _not_found)


async def _not_found(request: web.Request) -> web.Response:
    return _error(ApiError(-105))
