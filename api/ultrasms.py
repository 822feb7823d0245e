"""UltraSMSScript-compatible API at /apis/<name>/ (with SMSit's generateOTP and validateOtp).

Each call answers HTTP 200 with JSON: a bare number for a return code or an id (0, -1, ...,
the group SMS id, the balance), an array of contacts for getcontacts, and objects for the two
delivery reports. Codes are checked in the order the spec lists them, except that the API key
(-1) and API access (-20) come first: nothing else can be judged for an unknown caller. A
value that is undecodable, over-long or given twice with different values counts as an
invalid value of that parameter (or the call's "other error" code).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import BodyPartReader, web

from api.forms import FieldError, FormFields, decode_pairs
from gateway.contacts import (
    AlreadySubscribedError,
    AppointmentStatus,
    ContactError,
    ContactNotFoundError,
    DuplicateAppointmentError,
    UnknownGroupError,
)
from gateway.numbers import InvalidNumberError, normalize
from gateway.otp import OtpOutcome
from gateway.recurrence import Recurrence, RepeatUnit, resolve_local
from gateway.service import (
    AccountDisabledError,
    GatewayService,
    InsufficientCreditsError,
    InvalidRequestError,
    Outgoing,
    RateLimitedError,
    UnknownAccountError,
)
from gateway.store import StoreUnavailableError

log = logging.getLogger(__name__)

# Numbers repeat (contacts, our SIMs): phonenumbers parsing is the costliest step of a send.
_normalize = functools.lru_cache(maxsize=8192)(normalize)

MAX_VALUE = 2000
MAX_MESSAGE = 1530
MAX_BODY = 1024 * 1024
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
UNLIMITED_BALANCE = 2147483647  # what getcreditbalance reports for an account without a limit
_DIGITS = re.compile(r"^\+?[0-9]{3,15}$")
_ALPHA_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9]{1,11}$")
_DATE = "%d-%m-%Y %H:%M"

Json = int | list[Any] | dict[str, Any]


class ReturnCodeError(Exception):
    """A return code answered as a bare JSON number."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value


class BadParamError(Exception):
    """A parameter value that cannot be used at all (encoding, repetition, length)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class Params(FormFields):
    """Query and form fields together."""

    def get(self, name: str, limit: int = MAX_VALUE) -> str | None:
        """Stripped value of `name` (case-insensitive); None when absent or blank."""
        try:
            raw = self.raw(name)
        except FieldError:
            raise BadParamError(name) from None
        if raw is None:
            return None
        value = raw.strip()
        if len(value) > limit:
            raise BadParamError(name)
        return value or None


async def read_params(request: web.Request) -> Params | None:
    """Query string plus a urlencoded or multipart body, strictly UTF-8; None if unreadable."""
    pairs = decode_pairs(request.rel_url.raw_query_string.encode("latin-1", "replace"))
    if request.method == "POST" and request.body_exists:
        if request.content_type == "multipart/form-data":
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
                            return None
                    try:
                        pairs.append((part.name, bytes(data).decode()))
                    except UnicodeDecodeError:
                        pairs.append((part.name, None))
            except Exception:  # any malformed multipart (bad headers, boundary, charset)
                return None
        else:
            pairs.extend(decode_pairs(await request.read()))
    return Params(pairs)


# -- shared checks ----------------------------------------------------------------------------


def _flag(raw: str | None, code: int) -> bool:
    if raw is None:
        return False
    if raw not in ("0", "1"):
        raise ReturnCodeError(code)
    return raw == "1"


def _zone(account: dict[str, Any], service: GatewayService) -> tzinfo:
    return service.account_zone(account)


def _when(raw: str, zone: tzinfo, code: int) -> datetime:
    try:
        wall = datetime.strptime(raw, _DATE)
    except ValueError:
        raise ReturnCodeError(code) from None
    return resolve_local(wall, zone) if isinstance(zone, ZoneInfo) else wall.replace(tzinfo=zone)


def _own_number(raw: str, account: dict[str, Any], service: GatewayService) -> str | None:
    """The account's SIM whose number is `raw`, as E.164."""
    try:
        number = _normalize(raw, service.dial_code(account))
    except InvalidNumberError:
        return None
    for sim in service.sender_numbers(account["id"]):
        if sim["msisdn"] and sim["msisdn"] == number:
            return number
    return None


def _recurrence(
    params: Params, zone: tzinfo, codes: tuple[int, int, int, int], other: int
) -> tuple[Recurrence | None, datetime | None]:
    """recurring/repeat/frequency/enddate with the call's codes for each (in spec order)."""
    c_recurring, c_repeat, c_frequency, c_enddate = codes
    recurring = _flag(params.get("recurring"), c_recurring)
    repeat = params.get("repeat")
    unit = None
    if repeat is not None:
        unit = next((u for u in RepeatUnit if u.value.lower() == repeat.lower()), None)
        if unit is None:
            raise ReturnCodeError(c_repeat)
    elif recurring:
        raise ReturnCodeError(c_repeat)
    frequency = params.get("frequency")
    every = None
    if frequency is not None:
        if not frequency.isdigit() or not 1 <= int(frequency) <= 30:
            raise ReturnCodeError(c_frequency)
        every = int(frequency)
    elif recurring:
        raise ReturnCodeError(c_frequency)
    enddate = params.get("enddate")
    if recurring and enddate is None:
        raise ReturnCodeError(c_enddate)
    if not recurring:
        return None, None
    assert unit is not None and every is not None and enddate is not None
    end = _when(enddate, zone, other)
    return Recurrence(unit, every, end.astimezone(zone).date()), end


def _alphasender(params: Params) -> None:
    # A GSM modem cannot choose its originator: the network shows the SIM's number, so an
    # alphanumeric sender ID is never permitted here (the spec's -7 covers "no permission").
    if params.get("alphasender") is not None:
        raise ReturnCodeError(-7)


# -- calls ------------------------------------------------------------------------------------

Call = Callable[[Params, dict[str, Any], GatewayService], Awaitable[Json]]


async def addcontact(params: Params, account: dict[str, Any], service: GatewayService) -> Json:
    """addcontact: subscribe a number to an existing group."""
    number, group = params.get("number"), params.get("group")
    if number is None and group is None:
        raise ReturnCodeError(-3)
    if number is None:
        raise ReturnCodeError(-2)
    if group is None:
        raise ReturnCodeError(-4)
    if service.contacts.group_id(account["id"], group) is None:
        raise ReturnCodeError(-5)
    if not _DIGITS.match(number):
        raise ReturnCodeError(-6)
    bday = params.get("bday") or ""
    if bday:
        try:
            datetime.strptime(bday, "%Y-%m-%d")
        except ValueError:
            raise ReturnCodeError(-6) from None
    try:
        service.contacts.subscribe(
            account["id"], group, number, name=params.get("name") or "",
            email=params.get("email") or "", birthday=bday,
        )  # fmt: skip
    except AlreadySubscribedError:
        raise ReturnCodeError(-7) from None
    except UnknownGroupError:
        raise ReturnCodeError(-5) from None
    except (ContactError, InvalidNumberError):
        raise ReturnCodeError(-6) from None
    return 0


def _contact_view(row: Mapping[str, Any], zone: tzinfo) -> dict[str, Any]:
    extra = json.loads(row["extra"] or "{}")
    name = " ".join(p for p in (row["first_name"], row["last_name"]) if p)
    return {
        "id": row["id"],
        "name": name,
        "email": row["email"],
        "phone_number": row["number"].lstrip("+"),
        "group": row["group_name"] or "",
        "source": int(extra.get("source", 0)),
        "subscribed": 1 if row["opted_out"] else 0,
        "bday": str(extra.get("bday", "")),
        "created": datetime.fromisoformat(row["created_at"])
        .astimezone(zone)
        .strftime("%Y-%m-%d %H:%M:%S"),
    }


async def getcontacts(params: Params, account: dict[str, Any], service: GatewayService) -> Json:
    """getcontacts: search and page through contacts."""
    filters: dict[str, Any] = {}
    group = params.get("group")
    if group is not None:
        group_id = service.contacts.group_id(account["id"], group)
        if group_id is None:
            raise ReturnCodeError(-2)
        filters["group_ids"] = [group_id]
    source = params.get("source")
    if source is not None:
        if source not in ("0", "1", "2", "3"):
            raise ReturnCodeError(-3)
        filters["source"] = int(source)
    subscribed = params.get("subscribed")
    if subscribed is not None:
        if subscribed not in ("0", "1"):
            raise ReturnCodeError(-4)
        filters["subscribed"] = subscribed == "0"
    sortby = params.get("sortby")
    if sortby is not None and sortby not in ("name", "phone_number", "created"):
        raise ReturnCodeError(-5)
    sortdir = params.get("sortdir")
    if sortdir is not None and sortdir.lower() not in ("asc", "desc"):
        raise ReturnCodeError(-6)
    limit_raw, page_raw = params.get("limit"), params.get("page")
    if limit_raw is not None and not (limit_raw.isdigit() and 1 <= int(limit_raw) <= MAX_LIMIT):
        raise ReturnCodeError(-7)
    if page_raw is not None and not (page_raw.isdigit() and 1 <= int(page_raw) <= 10**6):
        raise ReturnCodeError(-7)
    limit = int(limit_raw or DEFAULT_LIMIT)
    page = int(page_raw or 1)
    for name in ("name", "email"):
        value = params.get(name)
        if value is not None:
            filters[name] = value
    number = params.get("number")
    if number is not None:
        filters["number_like"] = number.lstrip("+")
    _, rows = service.contacts.search(
        account["id"],
        **filters,
        order=sortby or "created",
        descending=(sortdir or "desc").lower() == "desc",
        limit=limit,
        offset=(page - 1) * limit,
    )
    if not rows:
        raise ReturnCodeError(-7)
    zone = _zone(account, service)
    return [_contact_view(r, zone) for r in rows]


def _sender_and_message(
    params: Params, account: dict[str, Any], service: GatewayService
) -> tuple[str, str]:
    """`from` (one of the account's long codes) and `message`, with the spec's codes -2/-3/-4
    in its order; shared by smsgroup and smscontact."""
    sender_raw = params.get("from")
    if sender_raw is None:
        raise ReturnCodeError(-2)
    sender = _own_number(sender_raw, account, service)
    if sender is None:
        raise ReturnCodeError(-3)
    message = params.get("message", limit=MAX_MESSAGE)
    if message is None:
        raise ReturnCodeError(-4)
    return sender, message


async def smsgroup(params: Params, account: dict[str, Any], service: GatewayService) -> Json:
    """smsgroup: send now (the group SMS id) or schedule (0) a text to a group."""
    sender, message = _sender_and_message(params, account, service)
    group = params.get("to")
    if group is None:
        raise ReturnCodeError(-5)
    group_id = service.contacts.group_id(account["id"], group)
    if group_id is None:
        raise ReturnCodeError(-6)
    _alphasender(params)
    rotate = _flag(params.get("rotate"), -8)
    throttle = params.get("throttle")
    if throttle is not None and throttle not in ("1", "2", "3", "4", "5", "6"):
        raise ReturnCodeError(-9)
    zone = _zone(account, service)
    recurrence, _ = _recurrence(params, zone, (-10, -11, -12, -13), -16)
    sendondate = params.get("sendondate")
    send_at = _when(sendondate, zone, -16) if sendondate is not None else None
    members = [
        m["number"]
        for m in service.contacts.members(account["id"], [group_id])
        if not m["opted_out"]
    ]
    _check_credits(service, account, message, len(members), -14)
    if not members:
        raise ReturnCodeError(-15)
    now = service.wall()
    try:
        if recurrence is not None:
            series = service.submit(
                account["id"], members, message, sender="" if rotate else sender,
                send_at=send_at or now, rotate=rotate, recurrence=recurrence,
            )  # fmt: skip
            if series.batch_id is not None:
                service.set_batch_throttle(account["id"], series.batch_id, float(throttle or 1))
            return 0
        result = await service.submit_batch_durably(
            account["id"],
            [Outgoing(m, message, send_at) for m in members],
            sender="" if rotate else sender,
            rotate=rotate,
            throttle=float(throttle or 1),
            extra={"group": group},
        )
    except InsufficientCreditsError:
        raise ReturnCodeError(-14) from None
    except InvalidRequestError:
        raise ReturnCodeError(-16) from None
    return 0 if send_at is not None and send_at > now else result.batch_id


def _check_credits(
    service: GatewayService, account: dict[str, Any], text: str, recipients: int, code: int
) -> None:
    if not service.can_afford(account["id"], text, recipients):
        raise ReturnCodeError(code)


async def getbulksmsdeliveryreport(
    params: Params, account: dict[str, Any], service: GatewayService
) -> Json:
    """getbulksmsdeliveryreport: delivered and failed counts of a group SMS."""
    raw = params.get("groupsmsid")
    if raw is None:
        raise ReturnCodeError(-2)
    if not raw.isdigit() or len(raw) > 18:
        raise ReturnCodeError(-3)
    states = service.batch_states(account["id"], int(raw))
    if states is None:
        raise ReturnCodeError(-3)
    return {
        "successful": states.get("delivered", 0),
        "failed": sum(states.get(s, 0) for s in ("failed", "expired", "cancelled")),
    }


async def smscontact(params: Params, account: dict[str, Any], service: GatewayService) -> Json:
    """smscontact: send or schedule a text to one contact (or several, comma-separated)."""
    sender, message = _sender_and_message(params, account, service)
    to = params.get("to")
    if to is None:
        raise ReturnCodeError(-5)
    # Spec -6: "The contact number passed in is either invalid, does not exist in your contact
    # list, or has unsubscribed." Of several (comma-separated, our extension) one such number
    # fails the whole call: nothing is sent to the others either, so nothing goes unnoticed.
    dial = service.dial_code(account)  # tolerated: a leading 0 in the account's own country
    numbers: list[str] = []
    for raw in [t.strip() for t in to.split(",") if t.strip()][:1000]:
        if not _DIGITS.match(raw):
            raise ReturnCodeError(-6)
        try:
            number = _normalize(raw, dial)
        except InvalidNumberError:
            raise ReturnCodeError(-6) from None
        if service.contacts.find(account["id"], number) is None:
            raise ReturnCodeError(-6)
        if service.contacts.opted_out(account["id"], number):
            raise ReturnCodeError(-6)
        numbers.append(number)
    if not numbers:
        raise ReturnCodeError(-6)
    _alphasender(params)
    zone = _zone(account, service)
    recurrence, _ = _recurrence(params, zone, (-8, -9, -10, -11), -16)
    sendondate = params.get("sendondate")
    send_at = _when(sendondate, zone, -16) if sendondate is not None else None
    _check_credits(service, account, message, len(numbers), -12)
    try:
        if recurrence is not None:
            service.submit(
                account["id"], numbers, message, sender=sender,
                send_at=send_at or service.wall(), rotate=False, recurrence=recurrence,
            )  # fmt: skip
        else:
            await service.submit_batch_durably(
                account["id"],
                [Outgoing(n, message, send_at) for n in numbers],
                sender=sender,
                rotate=False,
            )
    except InsufficientCreditsError:
        raise ReturnCodeError(-12) from None
    except InvalidRequestError:
        raise ReturnCodeError(-16) from None
    return 0


# UltraSMS (Twilio-style) words for our lifecycle; "uncertain" is said as it is.
_SMS_STATUS = {
    "accepted": "scheduled",
    "queued": "queued",
    "sending": "sending",
    "sent": "sent",
    "delivered": "delivered",
    "expired": "undelivered",
    "cancelled": "canceled",
    "uncertain": "uncertain",
}


async def getcontactsmsdeliveryreport(
    params: Params, account: dict[str, Any], service: GatewayService
) -> Json:
    """getcontactsmsdeliveryreport: status of the latest message to a number."""
    raw = params.get("number")
    if raw is None:
        raise ReturnCodeError(-2)
    if not _DIGITS.match(raw):
        raise ReturnCodeError(-3)
    try:
        number = normalize(raw)
    except InvalidNumberError:
        raise ReturnCodeError(-3) from None
    row = service.last_message_to(account["id"], number)
    if row is None:
        raise ReturnCodeError(-3)
    state = row["state"]
    errormsg = ""
    if state == "failed":
        status = "undelivered" if row.get("report_status") is not None else "failed"
        errormsg = row.get("part_errors") or row.get("error") or "sending failed"
        if row.get("report_status") is not None:
            errormsg = (
                f"network report: permanent failure (TP-ST 0x{int(row['report_status']):02X})"
            )
    else:
        status = _SMS_STATUS[state]
        if state == "expired":
            errormsg = "validity period expired before delivery"
        elif state == "uncertain":
            errormsg = "interrupted while sending: it may or may not have reached the network"
        elif state == "cancelled":
            errormsg = "stopped before sending"
    return {"smsstatus": status, "errormsg": errormsg}


async def getcreditbalance(
    params: Params, account: dict[str, Any], service: GatewayService
) -> Json:
    """getcreditbalance: type 1 SMS credits; type 2 voice, which a modem appliance has none of."""
    kind = params.get("type")
    if kind not in ("1", "2"):
        raise ReturnCodeError(-2)
    if kind == "2":
        return 0
    balance = service.credit_balance(account["id"])
    return UNLIMITED_BALANCE if balance is None else balance


async def addappointment(params: Params, account: dict[str, Any], service: GatewayService) -> Json:
    """addappointment: book a contact at a date and time with a status."""
    number = params.get("number")
    if number is None:
        raise ReturnCodeError(-2)
    if not number.isdigit():
        raise ReturnCodeError(-3)
    apptdate = params.get("apptdate")
    if apptdate is None:
        raise ReturnCodeError(-4)
    status = params.get("status")
    if status is None:
        raise ReturnCodeError(-5)
    if status not in ("0", "1", "2", "3"):
        raise ReturnCodeError(-6)
    try:
        e164 = normalize(number)
    except InvalidNumberError:
        raise ReturnCodeError(-7) from None
    if service.contacts.find(account["id"], e164) is None:
        raise ReturnCodeError(-7)
    starts_at = _when(apptdate, _zone(account, service), -9)
    try:
        service.contacts.add_appointment(
            account["id"], e164, starts_at, AppointmentStatus(int(status))
        )
    except ContactNotFoundError:
        raise ReturnCodeError(-7) from None
    except DuplicateAppointmentError:
        raise ReturnCodeError(-8) from None
    except (ContactError, InvalidNumberError):
        raise ReturnCodeError(-9) from None
    return 0


async def generateotp(params: Params, account: dict[str, Any], service: GatewayService) -> Json:
    """generateOTP: text a fresh code to `number`, or without one leave it in the inbox."""
    number = params.get("number") or params.get("to") or params.get("phone")
    sender_raw = params.get("from")
    sender = _own_number(sender_raw, account, service) if sender_raw else None
    if number is not None and not _DIGITS.match(number):
        raise ReturnCodeError(-16)
    try:
        service.generate_otp(account["id"], number, sender=sender or "")
    except InsufficientCreditsError:
        raise ReturnCodeError(-2) from None
    except (InvalidRequestError, InvalidNumberError):
        raise ReturnCodeError(-16) from None
    return 0


async def validateotp(params: Params, account: dict[str, Any], service: GatewayService) -> Json:
    """validateOtp: 0 when the code is live and right (it is then used up), else -2."""
    code = params.get("otp")
    if code is None or len(code) > 32:
        raise ReturnCodeError(-2)
    number = params.get("number")
    outcome = service.validate_otp(account["id"], code, number=number)
    return 0 if outcome is OtpOutcome.VALID else -2


# name -> (call, the code for an unusable value of each parameter, the call's fallback code)
CALLS: dict[str, tuple[Call, dict[str, int], int]] = {
    "addcontact": (addcontact, {"number": -6, "group": -5}, -6),
    "getcontacts": (
        getcontacts,
        {"group": -2, "source": -3, "subscribed": -4, "sortby": -5, "sortdir": -6},
        -7,
    ),
    "smsgroup": (
        smsgroup,
        {
            "from": -3,
            "to": -6,
            "alphasender": -7,
            "rotate": -8,
            "throttle": -9,
            "recurring": -10,
            "repeat": -11,
            "frequency": -12,
            "enddate": -16,
        },
        -16,
    ),
    "getbulksmsdeliveryreport": (getbulksmsdeliveryreport, {}, -3),
    "smscontact": (
        smscontact,
        {
            "from": -3,
            "to": -6,
            "alphasender": -7,
            "recurring": -8,
            "repeat": -9,
            "frequency": -10,
            "enddate": -16,
        },
        -16,
    ),
    "getcontactsmsdeliveryreport": (getcontactsmsdeliveryreport, {}, -3),
    "getcreditbalance": (getcreditbalance, {}, -2),
    "addappointment": (addappointment, {"number": -3, "status": -6}, -9),
    "generateotp": (generateotp, {}, -16),
    "validateotp": (validateotp, {}, -2),
}


async def apis(service: GatewayService, request: web.Request) -> web.Response:
    """GET/POST /apis/<name>/: authenticate by apikey, run the call, answer its JSON."""
    name = request.match_info["name"].lower()
    entry = CALLS.get(name)
    if entry is None:
        raise web.HTTPNotFound(text="-1", content_type="application/json")
    call, invalid, other = entry
    address = request.remote or ""
    retry_after = ""
    try:
        service.admit(address)
        if (request.content_length or 0) > MAX_BODY:
            raise ReturnCodeError(other)
        try:
            params = await read_params(request)
        except web.HTTPRequestEntityTooLarge:
            raise ReturnCodeError(other) from None
        if params is None:
            raise ReturnCodeError(other)
        try:
            key = params.get("apikey", limit=200)
        except BadParamError:
            raise ReturnCodeError(-1) from None
        if key is None:
            raise ReturnCodeError(-1)
        try:
            account = service.account_by_key(key)
        except AccountDisabledError:
            raise ReturnCodeError(-20) from None
        except UnknownAccountError:
            service.auth_failed(address, "API key")
            raise ReturnCodeError(-1) from None
        service.auth_succeeded(address)
        service.admit_account(account["id"])
        try:
            result = await call(params, account, service)
        except BadParamError as exc:
            raise ReturnCodeError(invalid.get(exc.name, other)) from None
    except ReturnCodeError as code:
        result = code.value
    except RateLimitedError as exc:  # the call's "Other error." code, the wait in Retry-After
        result = other
        retry_after = exc.retry_after_header
    except StoreUnavailableError as exc:  # each call's "Other error." code is its server failure
        log.warning("/apis/%s: store unavailable (%s)", name, exc)
        result = other
    except Exception:
        log.exception("/apis/%s failed", name)
        result = other
    response = web.json_response(result)
    if retry_after:
        response.headers["Retry-After"] = retry_after
    return response


def install(app: web.Application, service: GatewayService) -> None:
    """Add /apis/<name> and /apis/<name>/ (GET and POST) to the application."""
    handler = functools.partial(apis, service)
    for path in ("/apis/{name}", "/apis/{name}/"):
        app.router.add_route("GET", path, handler)
        app.router.add_route("POST", path, handler)
