"""BestSMSGateway-compatible API at /api_v1: one URL, `action` selects the call, JSON answers.

Every answer is HTTP 200 (the provider's PHP samples treat any other status as a transport
failure); a failure is the object {"error": text, "error_code": "N"} with the spec's codes:
1 sub_account missing, 2 sub_account_pass missing, 3 action missing, 4 wrong name/password,
5 sub-account disabled, 6 invalid action, 7 missing parameter, 8 incorrect parameter,
9 confusing (contradictory or repeated) parameters, 10 no record found, 11 operation failed.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import BodyPartReader, web

from api.forms import FieldError, FieldProblem, FormFields, decode_pairs
from gateway.contacts import ContactError, ContactInput
from gateway.numbers import InvalidNumberError, normalize
from gateway.recurrence import resolve_local
from gateway.service import (
    AccountDisabledError,
    GatewayService,
    InsufficientCreditsError,
    InvalidRecipientError,
    InvalidRequestError,
    Outgoing,
    RateLimitedError,
    UnknownAccountError,
)
from gateway.store import MessageQuery, StoreUnavailableError

log = logging.getLogger(__name__)

# Numbers repeat (contacts, groups, our SIMs): phonenumbers parsing is a send's costliest step.
_normalize = functools.lru_cache(maxsize=8192)(normalize)

Handler = Callable[["Params", dict[str, Any], GatewayService], Awaitable[dict[str, Any]]]

MAX_VALUE = 2000  # characters of an ordinary parameter
BIG_VALUES = {"recipients", "contacts", "phone_numbers", "sms_ids", "contact_ids", "message"}
MAX_BIG_VALUE = 500_000
MAX_PER_PAGE = 300
MAX_BODY = 1024 * 1024
DEFAULT_PER_PAGE = 100

ERRORS = {
    1: "sub_account not supplied",
    2: "sub_account_pass not supplied",
    3: "action not supplied",
    4: "Incorrect sub_account name or password",
    5: "The sub-account is currently disabled",
    6: "Invalid action",
    7: "missing request parameter",
    8: "incorrect request parameter",
    9: "confusing request parameters",
    10: "no record found.",
    11: "operation failed",
}
INSUFFICIENT_CREDIT = "insufficient credit"  # the spec's sample failure, with its code "1"

# fetch_sms status codes (spec table) from the message's rolled-up state; see status_of().
STATUS_MSG = {
    -4: "UNDELIVERABLE",
    -3: "EXPIRED",
    -2: "REJECTED",
    -1: "FAILED",
    0: "PENDING",
    1: "SENT",
    2: "DELIVERED",
}
STAGES = {
    "pending": ("accepted", "queued", "sending"),
    "sent": ("sent", "delivered"),
    "failed": ("failed", "expired", "cancelled", "uncertain"),
}
_SENDER_ID = re.compile(r"^(?:\+?[0-9]{3,14}|(?=.*[^0-9+])[A-Za-z0-9 .&'_-]{3,11})$")
_DIAL_CODE = re.compile(r"^\+?[0-9]{1,4}$")
_BATCH_ID = re.compile(r"^([0-9]{1,18})_([0-9]{1,18})_([0-9]{1,18})$")
_DATE_FORMATS = (
    ("%Y-%m-%d %H:%M", True),
    ("%Y-%m-%d %H:%M:%S", True),
    ("%Y-%m-%d", False),
    ("%d-%m-%Y %H:%M", True),
    ("%d-%m-%Y", False),
)


class BestSmsError(Exception):
    """A failure answered as {"error", "error_code"}."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(detail or ERRORS[code])
        self.code = code
        self.text = detail or ERRORS[code]


class Params(FormFields):
    """Query and form fields together; a name given twice with different values is confusing
    (9), an undecodable or over-long value incorrect (8)."""

    def __init__(self, pairs: list[tuple[str, str | None]]) -> None:
        super().__init__(pairs, fold_case=False)

    def get(self, name: str) -> str | None:
        """The value of `name` stripped of surrounding blanks; None when absent or blank."""
        try:
            raw = self.raw(name)
        except FieldError as exc:
            code = 9 if exc.problem is FieldProblem.REPEATED else 8
            text = "was given more than once" if code == 9 else "is not valid UTF-8"
            raise BestSmsError(code, f"{name} {text}") from None
        if raw is None:
            return None
        value = raw.strip()
        limit = MAX_BIG_VALUE if name in BIG_VALUES else MAX_VALUE
        if len(value) > limit:
            raise BestSmsError(8, f"{name} is too long")
        return value or None


async def read_params(request: web.Request) -> Params:
    """Parse the query string and a urlencoded or multipart body, strictly as UTF-8."""
    pairs = decode_pairs(request.rel_url.raw_query_string.encode("latin-1", "replace"))
    if request.method == "POST" and request.body_exists:
        ctype = request.content_type
        if ctype == "multipart/form-data":
            try:
                reader = await request.multipart()
                size = 0
                while (part := await reader.next()) is not None:
                    if not isinstance(part, BodyPartReader) or part.name is None:
                        continue
                    data = bytearray()
                    while chunk := await part.read_chunk():
                        data.extend(chunk)
                        size += len(chunk)
                        if size > MAX_BODY:
                            raise BestSmsError(8, "request body too large")
                    try:
                        pairs.append((part.name, bytes(data).decode()))
                    except UnicodeDecodeError:
                        pairs.append((part.name, None))
            except BestSmsError:
                raise
            except Exception as exc:  # any malformed multipart (headers, boundary, charset)
                raise BestSmsError(8, "malformed multipart body") from exc
        else:
            pairs.extend(decode_pairs(await request.read()))
    return Params(pairs)


def _error(exc: BestSmsError, *, numeric: bool = False) -> web.Response:
    if numeric:  # save_contacts' own sample: {"error_code":4,"error":"..."}
        return web.json_response({"error_code": exc.code, "error": exc.text})
    return web.json_response({"error": exc.text, "error_code": str(exc.code)})


async def api_v1(service: GatewayService, request: web.Request) -> web.Response:
    """GET/POST /api_v1: authenticate, dispatch on `action`, render the result or the error."""
    action = ""
    address = request.remote or ""
    try:
        service.admit(address)
        if (request.content_length or 0) > MAX_BODY:
            raise BestSmsError(8, "request body too large")
        try:
            params = await read_params(request)
        except web.HTTPRequestEntityTooLarge:
            raise BestSmsError(8, "request body too large") from None
        sub_account = params.get("sub_account")
        if sub_account is None:
            raise BestSmsError(1)
        password = params.get("sub_account_pass")
        if password is None:
            raise BestSmsError(2)
        action = params.get("action") or ""
        if not action:
            raise BestSmsError(3)
        try:
            account = service.account_by_credentials(sub_account, password)
        except AccountDisabledError:
            raise BestSmsError(5) from None
        except UnknownAccountError:
            service.auth_failed(address, "sub-account password")
            raise BestSmsError(4) from None
        service.auth_succeeded(address)
        service.admit_account(account["id"])
        handler = ACTIONS.get(action)
        if handler is None:
            raise BestSmsError(6)
        return web.json_response(await handler(params, account, service))
    except BestSmsError as exc:
        if exc.code == 4 and action == "save_contacts":
            exc.text += "."
        return _error(exc, numeric=action == "save_contacts")
    except InsufficientCreditsError:
        return _error(BestSmsError(1, INSUFFICIENT_CREDIT), numeric=action == "save_contacts")
    except RateLimitedError as exc:
        # HTTP 200 like every answer (the PHP samples call anything else a transport failure),
        # the spec's "operation failed" code, and the wait in the text and in Retry-After.
        response = _error(BestSmsError(11, str(exc)), numeric=action == "save_contacts")
        response.headers["Retry-After"] = exc.retry_after_header
        return response
    except StoreUnavailableError as exc:  # the spec's only server-side failure: 11
        log.warning("api_v1 %s: store unavailable (%s)", action[:40], exc)
        return _error(BestSmsError(11), numeric=action == "save_contacts")
    except Exception:
        log.exception("api_v1 %s failed", action[:40])
        return _error(BestSmsError(11), numeric=action == "save_contacts")


# -- value parsing ----------------------------------------------------------------------------


def _flag(params: Params, name: str, allowed: tuple[int, ...] = (0, 1)) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) not in allowed:
        raise BestSmsError(8, f"{name} must be one of {', '.join(map(str, allowed))}")
    return int(raw)


def _page(params: Params) -> tuple[int, int]:
    per_page, page = DEFAULT_PER_PAGE, 1
    raw = params.get("perpage")
    if raw is not None:
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PER_PAGE:
            raise BestSmsError(8, f"perpage must be 1-{MAX_PER_PAGE}")
        per_page = int(raw)
    raw = params.get("p")
    if raw is not None:
        if not raw.isdigit() or not 1 <= int(raw) <= 10**9:
            raise BestSmsError(8, "p must be a page number from 1")
        page = int(raw)
    return per_page, page


def _ids(params: Params, name: str) -> tuple[int, ...] | None:
    raw = params.get(name)
    if raw is None:
        return None
    items = [x.strip() for x in raw.split(",") if x.strip()]
    if not items or not all(x.isdigit() and len(x) <= 18 for x in items):
        raise BestSmsError(8, f"{name} must be comma-separated numbers")
    return tuple(int(x) for x in items)


def _zone(account: dict[str, Any], service: GatewayService) -> tzinfo:
    return service.account_zone(account)


def _offset_zone(params: Params, account: dict[str, Any], service: GatewayService) -> tzinfo:
    raw = params.get("timezone_offset")
    if raw is None:
        return _zone(account, service)
    try:
        hours = float(raw)
    except ValueError:
        raise BestSmsError(8, "timezone_offset must be hours, e.g. +1") from None
    if not math.isfinite(hours) or not -12 <= hours <= 14:
        raise BestSmsError(8, "timezone_offset must be between -12 and +14")
    return timezone(timedelta(minutes=round(hours * 60)))


def _localize(wall: datetime, zone: tzinfo) -> datetime:
    if isinstance(zone, ZoneInfo):
        return resolve_local(wall, zone)
    return wall.replace(tzinfo=zone)


def _parse_date(raw: str, name: str, zone: tzinfo, *, end: bool = False) -> datetime:
    for fmt, has_time in _DATE_FORMATS:
        try:
            wall = datetime.strptime(raw, fmt)
        except ValueError:
            continue
        if not has_time and end:
            wall = wall.replace(hour=23, minute=59, second=59)
        return _localize(wall, zone)
    raise BestSmsError(8, f"{name} must look like 2016-04-22 13:45 or 28-04-2016")


def _send_at(raw: str, zone: tzinfo, now: datetime) -> datetime:
    try:
        clock = datetime.strptime(raw, "%H:%M").time()
    except ValueError:
        return _parse_date(raw, "send_at", zone)
    today = now.astimezone(zone).date()
    return _localize(datetime.combine(today, clock), zone)


def _tz_hours(zone: tzinfo, now: datetime) -> str:
    offset = now.astimezone(zone).utcoffset() or timedelta(0)
    hours = offset.total_seconds() / 3600
    return str(int(hours)) if hours == int(hours) else f"{hours:g}"


def _epoch(stamp: str | None) -> str:
    return str(int(datetime.fromisoformat(stamp).timestamp())) if stamp else "0"


def _local(stamp: str | None, zone: tzinfo) -> str:
    if not stamp:
        return ""
    return datetime.fromisoformat(stamp).astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _digits(number: str) -> str:
    return number[1:] if number.startswith("+") else number


def _batch_token(account_id: int, batch_id: int | None, created_at: str | None) -> str:
    if batch_id is None:
        return ""
    return f"{account_id}_{batch_id}_{_epoch(created_at)}"


def _batch_filter(params: Params, account: dict[str, Any], service: GatewayService) -> int | None:
    raw = params.get("batch_id")
    if raw is None:
        return None
    if raw.isdigit() and len(raw) <= 18:
        return int(raw)
    match = _BATCH_ID.match(raw)
    if match is None:
        raise BestSmsError(8, "batch_id must be a batch_id returned by send_sms")
    # Only the exact token send_sms returned matches (account, batch and its creation time);
    # anything else matches nothing (batch ids start at 1).
    batch = service.batch_info(account["id"], int(match.group(2)))
    if batch is None or _epoch(batch["created_at"]) != match.group(3):
        return 0
    return int(batch["id"])


def _message_query(
    params: Params, account: dict[str, Any], service: GatewayService
) -> MessageQuery:
    zone = _zone(account, service)
    stage = params.get("stage")
    if stage is not None and stage.lower() not in STAGES:
        raise BestSmsError(8, "stage must be pending, sent or failed")
    flash = _flag(params, "type")
    recipient = params.get("recipient")
    if recipient is not None:
        try:
            recipient = _normalize(recipient, service.dial_code(account))
        except InvalidNumberError:
            raise BestSmsError(8, "recipient is not a phone number") from None
    start_raw, end_raw = params.get("start_date"), params.get("end_date")
    start = _parse_date(start_raw, "start_date", zone) if start_raw else None
    end = _parse_date(end_raw, "end_date", zone, end=True) if end_raw else None
    if start is not None and end is not None and start > end:
        raise BestSmsError(9, "start_date is after end_date")
    sender = params.get("sender_id")
    if sender is not None and sender.lstrip("+").isdigit():
        sender = "+" + sender.lstrip("+")
    terms = tuple(_search_terms(params.get("search_term")))
    return MessageQuery(
        batch_id=_batch_filter(params, account, service),
        ids=_ids(params, "sms_ids"),
        states=STAGES[stage.lower()] if stage is not None else None,
        flash=None if flash is None else bool(flash),
        recipient=recipient,
        sender=sender,
        terms=terms,
        start=start,
        end=end,
    )


def _search_terms(raw: str | None) -> list[str]:
    # A national number ("08094309926") matches the stored international one by its digits.
    return [t.lstrip("0") if t.isdigit() else t for t in (raw or "").split()][:10]


def status_of(row: dict[str, Any]) -> tuple[int, str]:
    """The spec's status code and an `info` text for a message row.

    accepted/queued/sending -> 0 PENDING; sent -> 1 SENT; delivered -> 2 DELIVERED;
    expired -> -3 EXPIRED; failed after a network report -> -4 UNDELIVERABLE; refused by the
    network at submission (+CMS ERROR) -> -2 REJECTED; any other failure, a stop (cancelled)
    and an uncertain send -> -1 FAILED, the info saying which.
    """
    state = row["state"]
    errors = row.get("part_errors") or row.get("error") or ""
    match state:
        case "accepted":
            return 0, "Scheduled"
        case "queued" | "sending":
            return 0, "Queued for sending"
        case "sent":
            return 1, "Accepted by the network, awaiting a delivery report"
        case "delivered":
            return 2, "Message delivered to handset"
        case "expired":
            return -3, "Validity period expired before delivery"
        case "cancelled":
            return -1, "Stopped before sending; credits refunded"
        case "uncertain":
            return -1, (
                "UNCERTAIN: the modem was interrupted while sending; the message may or may"
                " not have reached the network and is not resent automatically"
            )
    if row.get("report_status") is not None:
        return -4, f"Undeliverable (network report TP-ST 0x{int(row['report_status']):02X})"
    if row.get("cms_error") is not None:
        return -2, f"Rejected by the network (+CMS ERROR {int(row['cms_error'])})"
    return -1, errors or "Sending failed"


def _record(row: dict[str, Any], zone: tzinfo) -> dict[str, Any]:
    extra = json.loads(row["extra"] or "{}")
    code, info = status_of(row)
    first = extra.get("firstname", row.get("contact_first_name"))
    last = extra.get("lastname", row.get("contact_last_name"))
    group = extra.get("group_name", row.get("contact_group"))
    scheduled = row["send_at"] or row["created_at"]
    account = str(row["account_id"])
    reached = row.get("first_sent_at") is not None
    return {
        "sms_id": str(row["id"]),
        "sender": _digits(row.get("sim_msisdn") or ""),
        "recipient": _digits(row["recipient"]),
        "message": row["body"],
        "sub_account_id": account,
        "user_id": account,
        "time_scheduled": _epoch(scheduled),
        "batch_id": _batch_token(row["account_id"], row["batch_id"], row.get("batch_created_at")),
        "status": str(code),
        "type": str(row["flash"]),
        "units": str(row["units"]),
        "reference": "",
        "time_submitted": _epoch(row["created_at"]),
        "time_sent": _epoch(row.get("first_sent_at")),
        "units_confirmed": "1" if reached else "0",
        "locked": "1" if row["state"] == "sending" else "0",
        "info": info,
        "firstname": None if first is None else str(first),
        "lastname": None if last is None else str(last),
        "group_name": None if group is None else str(group),
        "status_msg": STATUS_MSG[code],
        "submitted_at": _local(row["created_at"], zone),
        "scheduled_to": _local(scheduled, zone),
        "sent_at": _local(row.get("first_sent_at"), zone),
        "extra_data": str(extra.get("extra_data", "")),
    }


def _contacts_json(raw: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        raise BestSmsError(8, "contacts must be a JSON array of contacts") from None
    if not isinstance(data, list) or not all(isinstance(c, dict) for c in data):
        raise BestSmsError(8, "contacts must be a JSON array of contacts")
    for c in data:
        phone = c.get("phone")
        if not isinstance(phone, str | int) or isinstance(phone, bool) or not str(phone).strip():
            raise BestSmsError(8, "every contact needs a 'phone'")
        for key, value in c.items():
            if value is not None and not isinstance(value, str | int | float):
                raise BestSmsError(8, f"contact field {str(key)[:20]} must be a string")
    return data


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _numbers(raw: str | None) -> list[str]:
    return [n.strip() for n in (raw or "").split(",") if n.strip()]


def _groups(
    params: Params, name: str, account: dict[str, Any], service: GatewayService
) -> list[int]:
    raw = params.get(name)
    if raw is None:
        return []
    ids = []
    for group in [g.strip() for g in raw.split(",") if g.strip()]:
        group_id = service.contacts.group_id(account["id"], group)
        if group_id is None:
            raise BestSmsError(8, f"{name}: no contact group named {group[:40]}")
        ids.append(group_id)
    return ids


# -- actions ----------------------------------------------------------------------------------


async def send_sms(
    params: Params, account: dict[str, Any], service: GatewayService
) -> dict[str, Any]:
    """send_sms: recipients, groups and JSON contacts (with overrides) as one batch."""
    now = service.wall()
    message = params.get("message")
    recipients = _numbers(params.get("recipients"))
    contacts_raw = params.get("contacts")
    contacts = _contacts_json(contacts_raw) if contacts_raw else []
    flash = _flag(params, "type") or 0
    _flag(params, "unicode")  # accepted: the text's own characters choose GSM-7 or UCS-2
    _flag(params, "route", (0, 1, 2))  # accepted: a modem has one route, the SIM's network
    sender_id = params.get("sender_id")
    if sender_id is not None and not _SENDER_ID.match(sender_id):
        raise BestSmsError(8, "sender_id must be 3-11 characters or 3-14 digits")
    sender_id = sender_id or account["default_sender"] or None  # the spec's fallback
    dial = params.get("default_dial_code")
    if dial is not None and not _DIAL_CODE.match(dial):
        raise BestSmsError(8, "default_dial_code must be a dial code such as 234")
    given_dial = dial.lstrip("+") if dial else None
    own_dial: list[str] = []

    def dial_code() -> str:
        # The account's own costs a query of its SIMs when it has none: asked only if needed.
        if given_dial is not None:
            return given_dial
        if not own_dial:
            own_dial.append(service.dial_code(account).lstrip("+"))
        return own_dial[0]

    zone = _offset_zone(params, account, service)
    send_at_raw = params.get("send_at")
    send_at = _send_at(send_at_raw, zone, now) if send_at_raw else None
    include = _groups(params, "contact_groups", account, service)
    exclude = _groups(params, "ignore_groups", account, service)
    if set(include) & set(exclude):
        raise BestSmsError(9, "a group is both in contact_groups and ignore_groups")
    save_as = params.get("save_as")
    if save_as is not None and len(save_as) > 100:
        raise BestSmsError(8, "save_as is too long")
    if message is None and not (
        contacts and all(_text(c.get("override_message")) for c in contacts)
    ):
        raise BestSmsError(7, "missing request parameter: message")
    if not recipients and not include and not contacts:
        raise BestSmsError(7, "missing request parameter: recipients")

    def number(raw: str) -> str | None:
        try:
            return _normalize(raw, dial_code())
        except InvalidNumberError:
            return None

    excluded = (
        {m["number"] for m in service.contacts.members(account["id"], exclude)}
        if exclude
        else set()
    )
    items: list[Outgoing] = []
    base_extra = {"sender_id": sender_id} if sender_id else {}
    for raw in recipients:
        items.append(Outgoing(raw, message or "", send_at, dict(base_extra)))
    for member in service.contacts.members(account["id"], include) if include else []:
        extra = {**base_extra, "firstname": member["first_name"], "lastname": member["last_name"],
                 "group_name": member["group_name"]}  # fmt: skip
        items.append(Outgoing(member["number"], message or "", send_at, extra))
    for c in contacts:
        when = send_at
        override_at = _text(c.get("override_date_time"))
        if override_at:
            when = _send_at(override_at, zone, now)
        extra = dict(base_extra)
        for key in ("firstname", "lastname", "group_name", "extra_data"):
            if _text(c.get(key)):
                extra[key] = _text(c.get(key))
        items.append(
            Outgoing(
                _text(c["phone"]), _text(c.get("override_message")) or message or "", when, extra
            )
        )
    if excluded:
        items = [i for i in items if number(i.recipient) not in excluded]
    if not items:
        raise BestSmsError(8, "no recipient left after ignore_groups")
    if any(len(i.text) > 1530 for i in items):
        raise BestSmsError(8, "message is longer than 1530 characters")
    sender, rotate = "", True
    if sender_id is not None:
        own = number(sender_id) if sender_id.lstrip("+").isdigit() else None
        for sim in service.sender_numbers(account["id"]):
            if own is not None and sim["msisdn"] == own:
                sender, rotate = own, False  # one of the account's SIMs: send from it
    try:
        result = await service.submit_batch_durably(
            account["id"], items, sender=sender, flash=bool(flash), rotate=rotate,
            dial_code=given_dial, account=account,
        )  # fmt: skip
    except InvalidRecipientError as exc:
        # Spec: the answer's `total` is "the total number of recipient numbers that are
        # successfully parsed", so some bad numbers are told by a smaller total; when none is
        # good the request fails with 8 "incorrect request parameter".
        hint = (
            " (a number with a leading 0 needs default_dial_code)"
            if any(r.needs_dial_code for r in exc.rejected)
            else ""
        )
        raise BestSmsError(8, f"incorrect request parameter: no valid recipient{hint}") from None
    except InvalidRequestError as exc:
        reason = str(exc).split(":")[0]  # the service's detail may quote a (masked) number
        raise BestSmsError(8, f"incorrect request parameter: {reason}") from None
    if save_as:
        service.contacts.save(
            account["id"],
            [ContactInput(i.recipient, group=save_as) for i in items],
            dial_code=dial_code(),
        )
    created = result.created_at.isoformat()
    return {
        "batch_id": _batch_token(account["id"], result.batch_id, created),
        "total": str(len(result.message_ids)),
    }


async def fetch_sms(
    params: Params, account: dict[str, Any], service: GatewayService
) -> dict[str, Any]:
    """fetch_sms: filtered, paginated records with the spec's status codes."""
    per_page, page = _page(params)
    query = _message_query(params, account, service)
    zone = _zone(account, service)
    offset = (page - 1) * per_page
    total, rows = service.query_messages(account["id"], query, limit=per_page, offset=offset)
    filter_echo = {"sub_account_id": str(account["id"])}
    for name in ("batch_id", "sms_id", "sms_ids", "type", "recipient", "search_term",
                 "sender_id", "stage", "start_date", "end_date", "p"):  # fmt: skip
        filter_echo[name] = params.get(name) or ""
    return {
        "total": total,
        "totalpages": math.ceil(total / per_page),
        "p": page,
        "perpage": per_page,
        "timezone_offset": _tz_hours(zone, service.wall()),
        "records": [_record(r, zone) for r in rows],
        "filter": {**filter_echo, "perpage": per_page, "offset": offset},
    }


async def account_info(
    params: Params, account: dict[str, Any], service: GatewayService
) -> dict[str, Any]:
    """account_info: balance ("unlimited" when no limit is set) and defaults."""
    account_id = str(account["id"])
    return {
        "sub_account_id": account_id,
        "sub_account": account["sub_account"],
        "user_id": account_id,
        "balance": "unlimited" if account["unlimited"] else str(account["credits"]),
        "notification_email": account["email"],
        "default_dial_code": service.dial_code(account).lstrip("+"),
        "timezone_offset": _tz_hours(_zone(account, service), service.wall()),
        "default_sender_id": account["default_sender"],
    }


def _required_filter(
    params: Params, account: dict[str, Any], service: GatewayService
) -> MessageQuery:
    query = _message_query(params, account, service)
    # search_term is not one of these actions' filters: alone it would match far too much.
    if dataclasses.replace(query, terms=()).is_empty():
        raise BestSmsError(
            7, "missing request parameter: a filter (batch_id, sms_ids, stage, type, recipient,"
            " sender_id, start_date or end_date) is required"
        )  # fmt: skip
    return query


async def stop_sms(
    params: Params, account: dict[str, Any], service: GatewayService
) -> dict[str, Any]:
    """stop_sms: cancel unsent matching messages (refunded)."""
    stopped = service.stop_messages(account["id"], _required_filter(params, account, service))
    if stopped is None:
        raise BestSmsError(10)
    return {"total": str(stopped)}


async def delete_sms(
    params: Params, account: dict[str, Any], service: GatewayService
) -> dict[str, Any]:
    """delete_sms: stop, then delete the matching records."""
    deleted = service.delete_messages(account["id"], _required_filter(params, account, service))
    if deleted is None:
        raise BestSmsError(10)
    return {"total": str(deleted)}


async def get_total_units(
    params: Params, account: dict[str, Any], service: GatewayService
) -> dict[str, Any]:
    """get_total_units: credits the matching messages used."""
    return {
        "total": str(service.total_units(account["id"], _required_filter(params, account, service)))
    }


async def save_contacts(
    params: Params, account: dict[str, Any], service: GatewayService
) -> dict[str, Any]:
    """save_contacts: phone_numbers and/or contacts (JSON, or comma-separated numbers)."""
    group = params.get("group_name")
    if group is not None and len(group) > 100:
        raise BestSmsError(8, "group_name is too long")
    inputs = [ContactInput(n) for n in _numbers(params.get("phone_numbers"))]
    raw = params.get("contacts")
    if raw is not None:
        if raw.startswith("["):
            for c in _contacts_json(raw):
                inputs.append(
                    ContactInput(
                        _text(c["phone"]),
                        first_name=_text(c.get("firstname")),
                        last_name=_text(c.get("lastname")),
                        email=_text(c.get("email")),
                        group=_text(c.get("group_name")) or None,
                    )
                )
        else:  # the spec's own GET example passes plain numbers here
            inputs.extend(ContactInput(n) for n in _numbers(raw))
    if not inputs:
        raise BestSmsError(7, "missing request parameter: phone_numbers or contacts")
    try:
        result = service.contacts.save(
            account["id"],
            inputs,
            dial_code=service.dial_code(account),
            default_group=group or "default",
        )
    except ContactError as exc:
        raise BestSmsError(8, f"incorrect request parameter: {exc}") from None
    if not result.contact_ids:
        raise BestSmsError(8, "incorrect request parameter: no valid phone number")
    return {"total": str(len(result.contact_ids))}


def _contact_filter(
    params: Params, account: dict[str, Any], service: GatewayService
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    group = params.get("group_name")
    if group is not None:
        group_id = service.contacts.group_id(account["id"], group)
        found["group_ids"] = [group_id] if group_id is not None else []
    ids = _ids(params, "contact_ids")
    if ids is not None:
        found["ids"] = ids
    terms = _search_terms(params.get("search_term"))
    if terms:
        found["terms"] = terms
    return found


async def fetch_contacts(
    params: Params, account: dict[str, Any], service: GatewayService
) -> dict[str, Any]:
    """fetch_contacts: filtered, paginated contacts (listed under "records" and "contacts")."""
    per_page, page = _page(params)
    filters = _contact_filter(params, account, service)
    offset = (page - 1) * per_page
    total, rows = service.contacts.search(account["id"], **filters, limit=per_page, offset=offset)
    account_id = str(account["id"])
    records = [
        {
            "contact_id": str(r["id"]),
            "user_id": account_id,
            "sub_account_id": account_id,
            "phone": _digits(r["number"]),
            "firstname": r["first_name"],
            "lastname": r["last_name"],
            "group_name": r["group_name"] or "",
            "time": _epoch(r["created_at"]),
        }
        for r in rows
    ]
    return {
        "filter": {
            "user_id": account_id,
            "sub_account_id": account_id,
            "perpage": per_page,
            "group_name": params.get("group_name"),
            "search_term": params.get("search_term"),
            "offset": offset,
        },
        "total": total,
        "p": page,
        "totalpages": math.ceil(total / per_page),
        "records": records,
        # The provider's PHP sample reads `contacts`, its sample answer shows `records`.
        "contacts": records,
    }


async def get_contact_groups(
    params: Params, account: dict[str, Any], service: GatewayService
) -> dict[str, Any]:
    """get_contact_groups: group name -> number of contacts (as a string)."""
    return {"contact_groups": {name: str(n) for name, n in service.contacts.groups(account["id"])}}


async def delete_contacts(
    params: Params, account: dict[str, Any], service: GatewayService
) -> dict[str, Any]:
    """delete_contacts: every contact matching all the given filters (one is required)."""
    filters = _contact_filter(params, account, service)
    if not filters:
        raise BestSmsError(7, "No contact_ids supplied to be deleted")
    _, rows = service.contacts.search(account["id"], **filters)
    if not rows:
        raise BestSmsError(10)
    return {"total": str(service.contacts.delete(account["id"], [r["id"] for r in rows]))}


ACTIONS: dict[str, Handler] = {
    "send_sms": send_sms,
    "fetch_sms": fetch_sms,
    "account_info": account_info,
    "stop_sms": stop_sms,
    "delete_sms": delete_sms,
    "get_total_units": get_total_units,
    "save_contacts": save_contacts,
    "fetch_contacts": fetch_contacts,
    "get_contact_groups": get_contact_groups,
    "delete_contacts": delete_contacts,
}


def install(app: web.Application, service: GatewayService) -> None:
    """Add /api_v1 (GET and POST, with or without a trailing slash) to the application."""
    handler = functools.partial(api_v1, service)
    for path in ("/api_v1", "/api_v1/"):
        app.router.add_route("GET", path, handler)
        app.router.add_route("POST", path, handler)
