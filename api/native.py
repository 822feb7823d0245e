"""Our own JSON API at /v1: messages, batches, inbox, SIMs, webhooks and health, with an OpenAPI
document."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from aiohttp import web

from gateway.contacts import ContactInput
from gateway.models import PartState, WebhookKind
from gateway.numbers import mask, mask_iccid
from gateway.service import (
    GatewayService,
    InsufficientCreditsError,
    InvalidRecipientError,
    InvalidRequestError,
    RateLimitedError,
    Rejected,
    ServiceError,
    UnknownAccountError,
)
from gateway.store import StoreUnavailableError
from gateway.webhooks import signature_scheme

log = logging.getLogger(__name__)

SERVICE = web.AppKey("service", GatewayService)
ACCOUNT = web.RequestKey("account_id", int)
# The account row the request was authenticated with (a send plans with it, not a second read).
ACCOUNT_ROW = web.RequestKey("account", dict[str, Any])
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_BODY = 1024 * 1024  # a /v1 request body (a batch of ~20,000 recipients fits)
RETRY_AFTER_SECONDS = 5  # after a 503: the disk or the lock usually frees within seconds

_STATUS = {
    UnknownAccountError: 401,
    InsufficientCreditsError: 402,
    InvalidRequestError: 400,
}


def _error(status: int, code: str, message: str, **detail: Any) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **detail}}, status=status)


def _rejected(rejected: Sequence[Rejected]) -> list[dict[str, str]]:
    return [{"to": r.recipient, "reason": r.reason} for r in rejected]


@web.middleware
async def errors_and_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate by API key (except public paths) and render every error as JSON."""
    service = request.app[SERVICE]
    address = request.remote or ""
    try:
        service.admit(address)
        # Refused before reading: sub-apps share the root app's client_max_size.
        if (request.content_length or 0) > MAX_BODY:
            return _error(413, "body_too_large", f"request body over {MAX_BODY} bytes")
        if request.path.rstrip("/") not in ("/v1/health", "/v1/openapi.json"):
            header = request.headers.get("Authorization", "")
            key = (
                header[7:] if header.startswith("Bearer ") else request.headers.get("X-API-Key", "")
            )
            try:
                account = service.authenticate_account(key.strip())
            except UnknownAccountError:
                service.auth_failed(address, "API key")
                raise
            request[ACCOUNT] = int(account["id"])
            request[ACCOUNT_ROW] = account
            service.auth_succeeded(address)
            service.admit_account(request[ACCOUNT])
        return await handler(request)
    except RateLimitedError as exc:
        response = _error(429, exc.code, str(exc))
        response.headers["Retry-After"] = exc.retry_after_header
        return response
    except web.HTTPRequestEntityTooLarge:  # a chunked body past the root app's client_max_size
        return _error(413, "body_too_large", f"request body over {MAX_BODY} bytes")
    except InvalidRecipientError as exc:  # every recipient refused: say which and why
        return _error(400, exc.code, str(exc), rejected=_rejected(exc.rejected))
    except ServiceError as exc:
        return _error(_STATUS.get(type(exc), 400), exc.code, str(exc))
    except StoreUnavailableError as exc:  # disk full, database locked: nothing was accepted
        log.warning("%s %s: store unavailable (%s)", request.method, request.path, exc)
        response = _error(
            503, "temporarily_unavailable", "the gateway cannot store requests now; try again"
        )
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    except web.HTTPMethodNotAllowed as exc:  # aiohttp's own answer would be text/plain
        response = _error(405, "method_not_allowed", f"{request.method} is not allowed here")
        response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        return response
    except web.HTTPNotFound:
        return _error(404, "not_found", f"no such resource: {request.path}")
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return _error(500, "internal", "internal error; the request was logged")


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidRequestError("body must be a JSON object")
    return body


def _int_query(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidRequestError(f"{name} must be an integer") from None


def _message_view(row: dict[str, Any]) -> dict[str, Any]:
    view = {
        "id": row["id"],
        "to": row["recipient"],
        "from": row["sender"] or None,  # the sender the client asked for
        "sent_from": row["sent_from"] or None,  # the number of the SIM that took it
        "text": row["body"],
        "encoding": row["encoding"],
        "parts": row["units"],
        "state": row["state"],
        "batch_id": row["batch_id"],
        "send_at": row["send_at"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "error": row["error"] or None,
    }
    if "parts" in row and isinstance(row["parts"], list):
        view["part_details"] = [
            {
                "seq": p["seq"],
                "state": p["state"],
                "sim_id": p["sim_id"],
                "tp_mr": p["tp_mr"],
                "attempts": p["attempts"],
                "error": p["error"] or None,
                "sent_at": p["sent_at"],
                "done_at": p["done_at"],
            }
            for p in row["parts"]
        ]
    return view


def _send_at(body: dict[str, Any]) -> datetime | None:
    """The optional `send_at` of a request body: ISO 8601 with a UTC offset."""
    if body.get("send_at") is None:
        return None
    try:
        send_at = datetime.fromisoformat(str(body["send_at"]))
    except ValueError:
        raise InvalidRequestError("'send_at' must be ISO 8601 with an offset") from None
    if send_at.tzinfo is None:
        raise InvalidRequestError("'send_at' needs a UTC offset")
    return send_at


async def submit(request: web.Request) -> web.Response:
    """POST /v1/messages."""
    body = await _json_body(request)
    to = body.get("to")
    recipients = [to] if isinstance(to, str) else to
    if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
        raise InvalidRequestError("'to' must be a number or a list of numbers")
    text = body.get("text")
    if not isinstance(text, str):
        raise InvalidRequestError("'text' must be a string")
    send_at = _send_at(body)
    result = await request.app[SERVICE].submit_durably(
        request[ACCOUNT],
        recipients,
        text,
        sender=str(body.get("from") or ""),
        send_at=send_at,
        flash=bool(body.get("flash", False)),
        status_report=bool(body.get("status_report", True)),
        rotate=bool(body.get("rotate", True)),
        account=request[ACCOUNT_ROW],
    )
    return web.json_response(
        {
            "message_ids": list(result.message_ids),
            "batch_id": result.batch_id,
            "encoding": result.encoding,
            "parts_per_message": result.units_per_message,
            "credits_charged": result.units_charged,
            "rejected": _rejected(result.rejected),
        },
        status=201,
    )


async def list_messages(request: web.Request) -> web.Response:
    """GET /v1/messages?state=&batch_id=&limit=&offset=."""
    batch = request.query.get("batch_id")
    rows = request.app[SERVICE].list_messages(
        request[ACCOUNT],
        state=request.query.get("state"),
        batch_id=_int_query(request, "batch_id", 0) if batch else None,
        limit=_int_query(request, "limit", 50),
        offset=_int_query(request, "offset", 0),
    )
    return web.json_response({"messages": [_message_view(r) for r in rows]})


def _message_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound() from None


async def get_message(request: web.Request) -> web.Response:
    """GET /v1/messages/{id}."""
    row = request.app[SERVICE].message(request[ACCOUNT], _message_id(request))
    if row is None:
        return _error(404, "not_found", "no such message")
    return web.json_response(_message_view(row))


async def cancel_message(request: web.Request) -> web.Response:
    """DELETE /v1/messages/{id}: cancel what has not been sent, refunding it."""
    refunded = request.app[SERVICE].cancel(request[ACCOUNT], _message_id(request))
    return web.json_response({"cancelled_parts": refunded})


async def inbox(request: web.Request) -> web.Response:
    """GET /v1/inbox."""
    rows = request.app[SERVICE].inbox(
        request[ACCOUNT],
        limit=_int_query(request, "limit", 50),
        offset=_int_query(request, "offset", 0),
    )
    return web.json_response(
        {
            "messages": [
                {
                    "id": r["id"],
                    "from": r["originator"],
                    "to": r["recipient"],
                    "text": r["body"],
                    "encoding": r["encoding"],
                    "complete": bool(r["complete"]),
                    "parts_received": r["parts_received"],
                    "parts_total": r["parts_total"],
                    "received_at": r["received_at"],
                    # What the decoder repaired in the PDUs ({seq, code, octet, detail} each).
                    "anomalies": json.loads(r["anomalies"]),
                }
                for r in rows
            ]
        }
    )


async def sims(request: web.Request) -> web.Response:
    """GET /v1/sims."""
    return web.json_response(
        {
            "sims": [
                {
                    "id": s["id"],
                    "iccid": s["iccid"],
                    "msisdn": s["msisdn"] or None,
                    "state": s["state"],
                    "modem": {"imei": s["imei"], "model": s["model"], "port": s["last_port"]}
                    if s["imei"]
                    else None,
                    "sent": s["sent_count"],
                    "received": s["received_count"],
                    "box": s["box"],  # fleet mode: the box sending through it now
                }
                for s in request.app[SERVICE].sims()
            ]
        }
    )


async def health(request: web.Request) -> web.Response:
    """GET /v1/health (no authentication: numbers and ICCIDs masked): 200 when ready, else 503."""
    report = request.app[SERVICE].health()
    body = {
        "status": "ready" if report.ready else "not_ready",
        "problems": list(report.problems),
        "database": "unavailable"
        if report.database_error
        else ("ok" if report.database_ok else "corrupt"),
        "modems_ready": report.modems_ready,
        "modems_expected": len(report.modems),
        "modems": [
            {
                "port": m.port,
                "state": str(m.state),
                "registration": m.registration,
                "iccid": mask_iccid(m.iccid) if m.iccid else None,
                "number": mask(m.number) if m.number else None,
                "signal_dbm": m.signal_dbm,
                "model": m.model,
                "error": m.last_error or None,
            }
            for m in report.modems
        ],
        "sims_present": report.sims_present,
        "sims_total": report.sims_total,
        "messages": report.messages,
    }
    return web.json_response(body, status=200 if report.ready else 503)


async def openapi(request: web.Request) -> web.Response:
    """GET /v1/openapi.json."""
    return web.json_response(OPENAPI)


def _batch_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound() from None


async def get_batch(request: web.Request) -> web.Response:
    """GET /v1/batches/{id}: the batch and how many of its messages are in each state."""
    service = request.app[SERVICE]
    batch = service.batch_info(request[ACCOUNT], _batch_id(request))
    if batch is None:
        return _error(404, "not_found", "no such batch")
    return web.json_response(
        {
            "id": batch["id"],
            "state": batch["state"],
            "send_at": batch["send_at"],
            "next_run": batch["next_run"],
            "runs": batch["runs"],
            "recurrence": json.loads(batch["recurrence"]) if batch["recurrence"] else None,
            "messages": service.batch_states(request[ACCOUNT], batch["id"]),
        }
    )


async def control_batch(request: web.Request) -> web.Response:
    """POST /v1/batches/{id}/pause | /resume; DELETE /v1/batches/{id} cancels (refunds)."""
    service = request.app[SERVICE]
    batch_id = _batch_id(request)
    action = request.match_info.get("action", "cancel")
    if action == "pause":
        service.pause_batch(request[ACCOUNT], batch_id)
        return web.json_response({"id": batch_id, "state": "paused"})
    if action == "resume":
        service.resume_batch(request[ACCOUNT], batch_id)
        return web.json_response({"id": batch_id, "state": "active"})
    refunded = service.cancel_batch(request[ACCOUNT], batch_id)
    return web.json_response({"id": batch_id, "state": "cancelled", "cancelled_parts": refunded})


async def modify_batch(request: web.Request) -> web.Response:
    """PATCH /v1/batches/{id}: {"text"?, "send_at"?} for messages still scheduled."""
    body = await _json_body(request)
    text = body.get("text")
    if text is not None and not isinstance(text, str):
        raise InvalidRequestError("'text' must be a string")
    send_at = _send_at(body)
    if text is None and send_at is None:
        raise InvalidRequestError("give 'text' and/or 'send_at'")
    changed = request.app[SERVICE].modify_batch(
        request[ACCOUNT], _batch_id(request), text=text, send_at=send_at
    )
    return web.json_response({"id": _batch_id(request), "messages_changed": changed})


async def modems(request: web.Request) -> web.Response:
    """GET /v1/modems: every modem seen, by IMEI."""
    rows = request.app[SERVICE].store.list_modems()
    return web.json_response(
        {
            "modems": [
                {
                    "id": m["id"],
                    "imei": m["imei"],
                    "manufacturer": m["manufacturer"],
                    "model": m["model"],
                    "port": m["last_port"],
                    "state": m["state"],
                    "last_seen": m["last_seen"],
                }
                for m in rows
            ]
        }
    )


async def contacts(request: web.Request) -> web.Response:
    """GET /v1/contacts[?group=&limit=&offset=]."""
    book = request.app[SERVICE].contacts
    account = request[ACCOUNT]
    group = request.query.get("group")
    group_ids = None
    if group is not None:
        gid = book.group_id(account, group)
        if gid is None:
            return _error(404, "not_found", f"no contact group {group!r}")
        group_ids = [gid]
    limit = _int_query(request, "limit", 50)
    if not 1 <= limit <= 500:
        raise InvalidRequestError("limit must be 1-500")
    total, rows = book.search(
        account, group_ids=group_ids, limit=limit, offset=_int_query(request, "offset", 0)
    )
    return web.json_response(
        {
            "total": total,
            "contacts": [
                {
                    "id": r["id"],
                    "number": r["number"],
                    "first_name": r["first_name"],
                    "last_name": r["last_name"],
                    "email": r["email"],
                    "group_id": r["group_id"],
                }
                for r in rows
            ],
        }
    )


async def add_contacts(request: web.Request) -> web.Response:
    """POST /v1/contacts: {"contacts": [{"number", "first_name", "last_name", "email",
    "group"}]}; numbers with a leading 0 take the account's dial code."""
    body = await _json_body(request)
    items = body.get("contacts")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InvalidRequestError("'contacts' must be a list of objects")
    service = request.app[SERVICE]
    account = service.store.account(request[ACCOUNT])
    try:
        inputs = [
            ContactInput(
                number=str(i["number"]),
                first_name=str(i.get("first_name", "")),
                last_name=str(i.get("last_name", "")),
                email=str(i.get("email", "")),
                group=str(i["group"]) if i.get("group") else None,
            )
            for i in items
        ]
    except KeyError:
        raise InvalidRequestError("every contact needs a 'number'") from None
    try:
        result = service.contacts.save(
            request[ACCOUNT], inputs, dial_code=service.dial_code(account) if account else ""
        )
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from exc
    return web.json_response(
        {"saved": list(result.contact_ids), "rejected": list(result.rejected)}, status=201
    )


async def groups(request: web.Request) -> web.Response:
    """GET /v1/groups: contact groups with their sizes."""
    rows = request.app[SERVICE].contacts.groups(request[ACCOUNT])
    return web.json_response({"groups": [{"name": n, "contacts": c} for n, c in rows]})


def _webhooks_view(service: GatewayService, account: int) -> dict[str, Any]:
    subscriptions = service.webhooks(account)
    view: dict[str, Any] = {}
    for kind in WebhookKind:
        sub = subscriptions.get(kind)
        view[kind.value] = (
            {"url": sub.url, "format": sub.format, "updated_at": sub.updated_at.isoformat()}
            if sub is not None
            else None
        )
    return {
        "webhooks": view,
        "secret": service.webhook_secret(account),
        "signature": signature_scheme(),
    }


async def get_webhooks(request: web.Request) -> web.Response:
    """GET /v1/webhooks: the URL per event type, the signing secret and how it signs."""
    return web.json_response(_webhooks_view(request.app[SERVICE], request[ACCOUNT]))


async def put_webhooks(request: web.Request) -> web.Response:
    """PUT /v1/webhooks: {"reply"?: URL|null, "status"?: URL|null, "rotate_secret"?: bool};
    the types named are set (null removes), the others are left as they are."""
    body = await _json_body(request)
    kinds = {k.value for k in WebhookKind}
    unknown = sorted(set(body) - kinds - {"rotate_secret"})
    if unknown:
        raise InvalidRequestError(f"unknown field(s): {', '.join(unknown)}")
    urls: dict[WebhookKind | str, str | None] = {}
    for kind in kinds & set(body):
        value = body[kind]
        if value is not None and not isinstance(value, str):
            raise InvalidRequestError(f"'{kind}' must be a URL or null")
        urls[kind] = value
    rotate = body.get("rotate_secret", False)
    if not isinstance(rotate, bool):
        raise InvalidRequestError("'rotate_secret' must be true or false")
    service = request.app[SERVICE]
    service.set_webhooks(request[ACCOUNT], urls, format="v1")
    if rotate:
        service.rotate_webhook_secret(request[ACCOUNT])
    return web.json_response(_webhooks_view(service, request[ACCOUNT]))


async def fire_test(request: web.Request) -> web.Response:
    """POST /v1/webhooks/test {"type": "reply"|"status"}: queue a test event (202)."""
    body = await _json_body(request)
    kind = body.get("type")
    if not isinstance(kind, str):
        raise InvalidRequestError("'type' must be 'reply' or 'status'")
    event_id = request.app[SERVICE].fire_test_webhook(request[ACCOUNT], kind)
    return web.json_response({"event_id": event_id}, status=202)


def _event_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["event_id"],
        "type": row["kind"],
        "state": row["state"],
        "attempts": row["attempts"],
        "last_status": row["last_status"],
        "last_error": row["last_error"] or None,
        "created_at": row["created_at"],
        "last_attempt_at": row["last_attempt_at"],
        "next_attempt_at": row["next_attempt_at"] if row["state"] == "pending" else None,
        "delivered_at": row["delivered_at"],
        "data": json.loads(row["payload"]),
    }


async def webhook_events(request: web.Request) -> web.Response:
    """GET /v1/webhooks/events?state=&limit=&offset=: deliveries and their outcome."""
    rows = request.app[SERVICE].webhook_events(
        request[ACCOUNT],
        state=request.query.get("state"),
        limit=_int_query(request, "limit", 50),
        offset=_int_query(request, "offset", 0),
    )
    return web.json_response({"events": [_event_view(r) for r in rows]})


async def retry_webhook_event(request: web.Request) -> web.Response:
    """POST /v1/webhooks/events/{id}/retry: send one event again now."""
    event_id = request.match_info["id"]
    if not request.app[SERVICE].retry_webhooks(request[ACCOUNT], [event_id]):
        return _error(404, "not_found", "no such webhook event")
    return web.json_response({"id": event_id, "state": "pending"})


def build(service: GatewayService) -> web.Application:
    """The /v1 sub-application."""
    app = web.Application(middlewares=[errors_and_auth])
    app[SERVICE] = service
    app.router.add_post("/messages", submit)
    app.router.add_get("/messages", list_messages)
    app.router.add_get("/messages/{id}", get_message)
    app.router.add_delete("/messages/{id}", cancel_message)
    app.router.add_get("/batches/{id}", get_batch)
    app.router.add_post("/batches/{id}/{action:pause|resume}", control_batch)
    app.router.add_delete("/batches/{id}", control_batch)
    app.router.add_patch("/batches/{id}", modify_batch)
    app.router.add_get("/modems", modems)
    app.router.add_get("/contacts", contacts)
    app.router.add_post("/contacts", add_contacts)
    app.router.add_get("/groups", groups)
    app.router.add_get("/inbox", inbox)
    app.router.add_get("/sims", sims)
    app.router.add_get("/webhooks", get_webhooks)
    app.router.add_put("/webhooks", put_webhooks)
    app.router.add_post("/webhooks/test", fire_test)
    app.router.add_get("/webhooks/events", webhook_events)
    app.router.add_post("/webhooks/events/{id}/retry", retry_webhook_event)
    app.router.add_get("/health", health)
    app.router.add_get("/openapi.json", openapi)
    return app


_ERROR = {"$ref": "#/components/schemas/Error"}
_MESSAGE = {"$ref": "#/components/schemas/Message"}
OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "smsgw native API", "version": "1"},
    "servers": [{"url": "/v1"}],
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        },
        "schemas": {
            "Error": {
                "type": "object",
                "properties": {
                    "error": {
                        "type": "object",
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "rejected": {
                                "description": "with code invalid_recipient: each recipient"
                                " refused, and why",
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Rejected"},
                            },
                        },
                    }
                },
            },
            "Rejected": {
                "type": "object",
                "properties": {"to": {"type": "string"}, "reason": {"type": "string"}},
            },
            "WebhookUrls": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "reply": {"type": ["string", "null"], "format": "uri"},
                    "status": {"type": ["string", "null"], "format": "uri"},
                    "rotate_secret": {"type": "boolean", "default": False},
                },
            },
            "WebhookEvent": {
                "type": "object",
                "description": "The body of a v1 webhook POST, signed as README describes",
                "required": ["id", "type", "account_id", "created_at", "data"],
                "properties": {
                    "id": {"type": "string", "description": "stable across retries"},
                    "type": {"type": "string", "enum": ["reply", "status"]},
                    "account_id": {"type": "integer"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "data": {"type": "object"},
                },
            },
            "Message": {
                "type": "object",
                "description": "An outbound message, as GET /messages lists it (GET /messages/{id}"
                " adds part_details)",
                "properties": {
                    "id": {"type": "integer"},
                    "to": {"type": "string", "description": "the recipient, E.164"},
                    "from": {
                        "type": ["string", "null"],
                        "description": "the sender the client asked for (Submit's from); null:"
                        " none, any SIM may send it",
                    },
                    "sent_from": {
                        "type": ["string", "null"],
                        "description": "the number (E.164) of the SIM that took its first part;"
                        " once a part has gone out the rest go from that SIM too. null until a"
                        " SIM has taken it, or when that SIM's number is unknown",
                    },
                    "text": {"type": "string"},
                    "encoding": {"type": "string", "description": "the alphabet, e.g. gsm7, ucs2"},
                    "parts": {"type": "integer", "description": "SMS parts (credits) it takes"},
                    "state": {"type": "string", "enum": [s.value for s in PartState]},
                    "batch_id": {"type": ["integer", "null"]},
                    "send_at": {"type": ["string", "null"], "format": "date-time"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time"},
                    "error": {"type": ["string", "null"]},
                    "part_details": {
                        "type": "array",
                        "description": "GET /messages/{id} only: each part in order",
                        "items": {
                            "type": "object",
                            "properties": {
                                "seq": {"type": "integer"},
                                "state": {"type": "string", "enum": [s.value for s in PartState]},
                                "sim_id": {"type": ["integer", "null"]},
                                "tp_mr": {"type": ["integer", "null"]},
                                "attempts": {"type": "integer"},
                                "error": {"type": ["string", "null"]},
                                "sent_at": {"type": ["string", "null"], "format": "date-time"},
                                "done_at": {"type": ["string", "null"], "format": "date-time"},
                            },
                        },
                    },
                },
            },
            "Submit": {
                "type": "object",
                "required": ["to", "text"],
                "properties": {
                    "to": {
                        "oneOf": [
                            {"type": "string"},
                            {"type": "array", "items": {"type": "string"}},
                        ]
                    },
                    "text": {"type": "string", "maxLength": 1530},
                    "from": {"type": "string", "description": "sender long code (a SIM's number)"},
                    "send_at": {"type": "string", "format": "date-time"},
                    "flash": {"type": "boolean"},
                    "status_report": {"type": "boolean", "default": True},
                    "rotate": {
                        "type": "boolean",
                        "default": True,
                        "description": "false: every recipient from one SIM (without `from`, the"
                        " one with the most headroom)",
                    },
                },
            },
        },
    },
    "security": [{"bearer": []}, {"apiKey": []}],
    # What smsgw POSTs to the URLs set with PUT /webhooks (OpenAPI 3.1 webhooks).
    "webhooks": {
        kind: {
            "post": {
                "summary": summary,
                "parameters": [
                    {"name": h, "in": "header", "required": True, "schema": {"type": "string"}}
                    for h in ("X-Smsgw-Event-Id", "X-Smsgw-Timestamp", "X-Smsgw-Signature")
                ],
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/WebhookEvent"}
                        }
                    }
                },
                "responses": {"2XX": {"description": "received (anything else is retried)"}},
            }
        }
        for kind, summary in (
            ("reply", "An inbound message for the account (data: inbound_id, from, to, text...)"),
            ("status", "A message's state changed (data: message_id, state, previous_state...)"),
        )
    },
    "paths": {
        "/messages": {
            "post": {
                "summary": "Accept a message for one or more recipients (durable on 201)",
                "requestBody": {
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Submit"}}
                    }
                },
                "responses": {
                    "201": {
                        "description": "accepted; `rejected` lists the recipients that are not"
                        " phone numbers (a national number needs the account's dial code)"
                    },
                    "400": {
                        "description": "invalid; code invalid_recipient when no recipient is a"
                        " phone number",
                        "content": {"application/json": {"schema": _ERROR}},
                    },
                    "401": {"description": "bad API key"},
                    "402": {"description": "not enough credits"},
                },
            },
            "get": {
                "summary": "List messages, newest first",
                "parameters": [
                    {"name": n, "in": "query", "schema": {"type": t}}
                    for n, t in (
                        ("state", "string"),
                        ("batch_id", "integer"),
                        ("limit", "integer"),
                        ("offset", "integer"),
                    )
                ],
                "responses": {
                    "200": {
                        "description": "messages",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "messages": {"type": "array", "items": _MESSAGE},
                                    },
                                }
                            }
                        },
                    }
                },
            },
        },
        "/messages/{id}": {
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "get": {
                "summary": "One message with its parts",
                "responses": {
                    "200": {
                        "description": "message",
                        "content": {"application/json": {"schema": _MESSAGE}},
                    },
                    "404": {"description": "unknown"},
                },
            },
            "delete": {
                "summary": "Cancel unsent parts (refunded)",
                "responses": {"200": {"description": "cancelled"}},
            },
        },
        "/batches/{id}": {
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "get": {
                "summary": "A batch or recurring series and its messages per state",
                "responses": {"200": {"description": "batch"}, "404": {"description": "unknown"}},
            },
            "delete": {
                "summary": "Cancel the batch (future runs stop, unsent parts refunded)",
                "responses": {"200": {"description": "cancelled"}},
            },
        },
        "/batches/{id}/pause": {
            "post": {
                "summary": "Hold the batch's unsent messages",
                "responses": {"200": {"description": "paused"}},
            }
        },
        "/batches/{id}/resume": {
            "post": {
                "summary": "Let a paused batch send again",
                "responses": {"200": {"description": "active"}},
            }
        },
        "/modems": {
            "get": {
                "summary": "Modems seen, by IMEI",
                "responses": {"200": {"description": "modems"}},
            }
        },
        "/contacts": {
            "get": {
                "summary": "Contacts, newest first",
                "responses": {"200": {"description": "contacts"}},
            },
            "post": {
                "summary": "Save contacts (into their groups)",
                "responses": {"201": {"description": "saved"}},
            },
        },
        "/groups": {
            "get": {
                "summary": "Contact groups and their sizes",
                "responses": {"200": {"description": "groups"}},
            }
        },
        "/inbox": {
            "get": {
                "summary": "Inbound messages, newest first",
                "responses": {"200": {"description": "messages"}},
            }
        },
        "/sims": {
            "get": {
                "summary": "SIMs (long codes) and their modems",
                "responses": {"200": {"description": "sims"}},
            }
        },
        "/webhooks": {
            "get": {
                "summary": "Webhook URL per event type, the signing secret and the scheme",
                "responses": {"200": {"description": "webhooks"}},
            },
            "put": {
                "summary": "Set (URL) or remove (null) the types named; rotate the secret",
                "requestBody": {
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/WebhookUrls"}}
                    }
                },
                "responses": {
                    "200": {"description": "webhooks"},
                    "400": {
                        "description": "a URL that is not http/https, or no host",
                        "content": {"application/json": {"schema": _ERROR}},
                    },
                },
            },
        },
        "/webhooks/test": {
            "post": {
                "summary": "Queue a test event (data.test = true) for a type's URL",
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["type"],
                                "properties": {
                                    "type": {"type": "string", "enum": ["reply", "status"]}
                                },
                            }
                        }
                    }
                },
                "responses": {
                    "202": {"description": "queued: its event id"},
                    "400": {"description": "no URL for that type"},
                },
            }
        },
        "/webhooks/events": {
            "get": {
                "summary": "Webhook events, newest first: attempts, last HTTP status and error",
                "parameters": [
                    {"name": n, "in": "query", "schema": {"type": t}}
                    for n, t in (("state", "string"), ("limit", "integer"), ("offset", "integer"))
                ],
                "responses": {"200": {"description": "events"}},
            }
        },
        "/webhooks/events/{id}/retry": {
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "post": {
                "summary": "Send one event again now (a fresh retry window)",
                "responses": {"200": {"description": "pending"}, "404": {"description": "unknown"}},
            },
        },
        "/health": {
            "get": {
                "summary": "Readiness: every expected modem registered, database sound",
                "security": [],
                "responses": {
                    "200": {"description": "ready (status: ready)"},
                    "503": {
                        "description": "not ready (status: not_ready): a modem still "
                        "connecting or unregistered, no modem at all, or the database corrupt "
                        "or unavailable (`database`: unavailable while it refuses reads, or "
                        "another process holds its write lock); `problems` says which"
                    },
                },
            }
        },
    },
}
