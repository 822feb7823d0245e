"""Dashboard pages: overview, messages (and one message), inbox, SIMs, accounts, an account's
contacts, login."""

from __future__ import annotations

import io
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
import jinja2
from aiohttp import web

from api.dashboard import auth
from api.dashboard.charts import throughput_svg
from gateway.contacts import DEFAULT_GROUP, ContactError, read_csv
from gateway.models import TERMINAL_STATES, PartState
from gateway.service import GatewayService, ServiceError
from gateway.store import InboxSearch, MessageSearch, is_unavailable

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
JINJA = web.AppKey("dashboard_jinja", jinja2.Environment)
SESSION = web.RequestKey("dashboard_session", auth.Session)
PAGE = 50
WebhookCounts = Callable[[], Mapping[str, int]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Fixed notices a redirect may ask for (`?ok=`): never text from the query itself.
NOTICES = {
    "sim": "SIM settings saved; the running pool uses them from the SIM's next SMS.",
    "credits": "Credits updated.",
    "sent": "Message accepted.",
    "group-added": "Contact group added.",
    "group-deleted": "Contact group deleted with its contacts.",
}
CSRF_REFUSED = "The form's CSRF token is missing or wrong: reload the page and try again."
STORE_DOWN = (
    "The gateway's database cannot be used right now (disk full, an I/O error, or locked by"
    " another process such as a backup): nothing was changed. Try again in a few seconds."
)
RETRY_AFTER_SECONDS = 5
# The root app's client_max_size (api/app.py) bounds every form; aiohttp refuses past it.
TOO_LARGE = (
    "The upload is larger than the gateway takes in one request (1 MiB, some 20,000 contacts):"
    " split the file and upload the parts one after another. Nothing was changed."
)
UNREADABLE = "The form could not be read (not UTF-8, or a broken upload): nothing was changed."
NOT_UTF8 = (
    'The file is not UTF-8 text: save it from the spreadsheet as "CSV UTF-8" and upload it'
    " again. Nothing was saved."
)
SHOWN_REJECTED = 50  # rejected rows listed after an import (the count covers them all)
LIMIT_FIELDS = (
    ("throttle_interval", "Seconds between SMS", "interval"),
    ("cap_per_minute", "Per minute", "per_minute"),
    ("cap_per_hour", "Per hour", "per_hour"),
    ("cap_per_day", "Per day", "per_day"),
    ("cap_recipients_per_day", "Recipients per day", "recipients_per_day"),
)
# TS 23.040 9.2.3.15 TP-ST ranges, for the report column.
_REPORT_KINDS = ((0x1F, "delivered"), (0x3F, "SC still trying"), (0x7F, "failed"))


def report_text(status: int | None) -> str:
    """A TP-ST as hex and what it means."""
    if status is None:
        return ""
    if status == 0x46:
        return "0x46 validity period expired"
    kind = next((k for top, k in _REPORT_KINDS if status <= top), "reserved")
    return f"0x{status:02X} {kind}"


def when(stamp: str | None) -> str:
    """A stored UTC time as the box's local time, to the second."""
    if not stamp:
        return ""
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def local_path(target: str) -> str:
    """`target` if it is a path on this site, else "/": a login link must not send the browser
    elsewhere ("//host" and "/\\host" are other hosts to a browser)."""
    if not target.startswith("/") or target[1:2] in ("/", "\\") or any(c in target for c in "\r\n"):
        return "/"
    return target


def redirect(target: str) -> web.Response:
    """303 See Other: after a POST the browser GETs the result (a reload never re-posts)."""
    return web.Response(status=303, headers={"Location": target})


def signal_bars(dbm: int | None) -> int:
    """0-4 bars for a signal in dBm (as phones draw them)."""
    if dbm is None:
        return 0
    return sum(1 for floor in (-109, -101, -93, -85) if dbm >= floor)


class Dashboard:
    """The pages, holding the service, the login guard and the optional webhook counts."""

    def __init__(
        self,
        service: GatewayService,
        *,
        guard: auth.LoginGuard | None = None,
        webhook_counts: WebhookCounts | None = None,
        refresh_ms: int = 2000,
    ) -> None:
        self.service = service
        self.guard = guard or auth.LoginGuard()
        self.webhook_counts = webhook_counts
        self.refresh_ms = refresh_ms
        # Sessions logged out (nonce -> expiry): a copied cookie dies with the logout too, for
        # as long as this daemon runs (a new admin password ends every session for good).
        self._revoked: dict[str, int] = {}

    # -- plumbing ---------------------------------------------------------------------------

    def _now(self) -> float:
        return self.service.wall().timestamp()

    def _session(self, request: web.Request) -> auth.Session | None:
        session = auth.read_session(
            self.service.session_key(), request.cookies.get(auth.SESSION_COOKIE), self._now()
        )
        if session is None or session.nonce in self._revoked:
            return None
        return session

    def store_guarded(self, handler: Handler) -> Handler:
        """Wrap a handler: a store that refuses (disk full, locked, I/O error) answers a 503
        page saying so, not a traceback."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                log.warning(
                    "dashboard: %s %s: store unavailable (%s)", request.method, request.path, exc
                )
                response = self._render(
                    request, "error.html", {"error": STORE_DOWN, "title": "Unavailable"},
                    status=503,
                )  # fmt: skip
                response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
                return response

        return wrapped

    def page(
        self, handler: Handler, *, back: Callable[[web.Request], str] | None = None
    ) -> Handler:
        """Wrap a handler: a valid session is needed (else the login page, or 401 for the
        live-refresh script); a POST must carry the session's CSRF token. `back`: the page a
        refused POST links back to (else its own path)."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            session = self._session(request)
            if session is None:
                if request.headers.get("X-Requested-With") == "smsgw-refresh":
                    raise web.HTTPUnauthorized(text="log in again")
                target = request.path_qs if request.method == "GET" else "/"
                return redirect("/login?" + urlencode({"next": target}))
            request[SESSION] = session
            if request.method == "POST":
                link = {"back": back(request)} if back is not None else {}
                try:
                    form = await request.post()
                except web.HTTPRequestEntityTooLarge:
                    log.warning("dashboard: %s %s: body too large", request.method, request.path)
                    return self._render(request, "error.html",
                                        {"error": TOO_LARGE, "title": "Too large", **link},
                                        status=413)  # fmt: skip
                except ValueError:  # a field not in its charset, a broken multipart body
                    log.warning("dashboard: %s %s: unreadable form", request.method, request.path)
                    return self._render(request, "error.html", {"error": UNREADABLE, **link},
                                        status=400)  # fmt: skip
                if not auth.token_matches(session.csrf, form.get("csrf")):
                    log.warning(
                        "dashboard: %s %s without a valid CSRF token refused",
                        request.method,
                        request.path,
                    )
                    return self._render(request, "error.html", {"error": CSRF_REFUSED, **link},
                                        status=403)  # fmt: skip
            return await handler(request)

        return self.store_guarded(wrapped)

    def _render(
        self, request: web.Request, template: str, context: dict[str, Any], *, status: int = 200
    ) -> web.Response:
        session = request.get(SESSION)
        base = {
            "csrf": session.csrf if session is not None else "",
            "path": request.path,
            "refresh_ms": self.refresh_ms,
            "notice": NOTICES.get(request.query.get("ok", "")),
        }
        response = aiohttp_jinja2.render_template(
            template, request, {**base, **context}, app_key=JINJA, status=status
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    # -- login ------------------------------------------------------------------------------

    async def login_form(
        self,
        request: web.Request,
        *,
        error: str = "",
        status: int = 200,
        retry_after: float = 0.0,
        nxt: str | None = None,
    ) -> web.Response:
        """GET /login: the form, with a fresh CSRF token in a cookie of its own."""
        token = request.cookies.get(auth.LOGIN_COOKIE) or ""
        if len(token) < 20:
            token = secrets.token_urlsafe(24)
        nxt = request.query.get("next", "/") if nxt is None else nxt
        response = self._render(
            request,
            "login.html",
            {
                "login_csrf": token,
                "next": local_path(nxt),
                "error": error,
                "no_password": not self.service.has_admin_password(),
            },
            status=status,
        )
        if retry_after:
            response.headers["Retry-After"] = str(int(retry_after) + 1)
        auth.set_cookie(response, auth.LOGIN_COOKIE, token, 3600)
        return response

    async def login(self, request: web.Request) -> web.StreamResponse:
        """POST /login: the admin password; failures answer slowly, then not at all."""
        form = await request.post()
        client = request.remote or "?"
        given_next = form.get("next")
        nxt = local_path(given_next if isinstance(given_next, str) else "/")
        cookie = request.cookies.get(auth.LOGIN_COOKIE) or ""
        if not cookie or not auth.token_matches(cookie, form.get("csrf")):
            log.warning("dashboard: login without a valid CSRF token refused (%s)", client)
            return await self.login_form(request, error=CSRF_REFUSED, status=403, nxt=nxt)
        locked = self.guard.locked_for(client)
        if locked > 0:
            return await self.login_form(
                request, error=f"Too many wrong passwords: wait {int(locked) + 1} s.",
                status=429, retry_after=locked, nxt=nxt,
            )  # fmt: skip
        password = form.get("password")
        # The check is synchronous (scrypt): parallel attempts are counted one after another,
        # so a client gets at most `lock_after` checks before it is locked out.
        if not isinstance(password, str) or not self.service.check_admin_password(password):
            log.warning("dashboard: wrong admin password from %s", client)
            await self.guard.failed(client)
            return await self.login_form(request, error="Wrong password.", status=401, nxt=nxt)
        self.guard.succeeded(client)
        log.info("dashboard: admin logged in from %s", client)
        _, cookie_value = auth.new_session(self.service.session_key(), self._now())
        response = redirect(nxt)
        auth.set_cookie(response, auth.SESSION_COOKIE, cookie_value, auth.SESSION_SECONDS)
        response.del_cookie(auth.LOGIN_COOKIE, path="/")
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        """POST /logout."""
        session = request[SESSION]
        now = self._now()
        self._revoked = {n: e for n, e in self._revoked.items() if e > now}
        self._revoked[session.nonce] = session.expires
        response = redirect("/login")
        response.del_cookie(auth.SESSION_COOKIE, path="/")
        return response

    # -- overview ---------------------------------------------------------------------------

    def _overview_context(self) -> dict[str, Any]:
        started = time.perf_counter()
        overview = self.service.overview()
        webhooks = self.webhook_counts() if self.webhook_counts is not None else None
        return {
            "o": overview,
            "chart": throughput_svg(overview.throughput),
            "webhooks": webhooks,
            "bars": signal_bars,
            "render_ms": (time.perf_counter() - started) * 1000,
        }

    async def overview(self, request: web.Request) -> web.Response:
        """GET /."""
        return self._render(request, "overview.html", self._overview_context())

    async def overview_fragment(self, request: web.Request) -> web.Response:
        """GET /fragments/overview: the live part of the overview."""
        return self._render(request, "_overview.html", self._overview_context())

    # -- messages ---------------------------------------------------------------------------

    def _int(self, request: web.Request, name: str) -> int | None:
        raw = request.query.get(name, "").strip()
        return int(raw) if raw.isdigit() else None

    def _messages_context(self, request: web.Request) -> dict[str, Any]:
        state = request.query.get("state") or None
        search = MessageSearch(
            state=state if state in {s.value for s in PartState} else None,
            sim_id=self._int(request, "sim"),
            account_id=self._int(request, "account"),
            text=request.query.get("q", "").strip()[:100],
            before_id=self._int(request, "before"),
        )
        rows = self.service.search_messages(search, limit=PAGE)
        older = None
        if len(rows) == PAGE:
            params = {k: v for k, v in request.query.items() if k != "before"}
            older = "/messages?" + urlencode({**params, "before": rows[-1]["id"]})
        return {
            "rows": rows,
            "search": search,
            "states": [s.value for s in PartState],
            "sims": self.service.sim_statuses(),
            "accounts": self.service.accounts(),
            "older": older,
        }

    async def messages(self, request: web.Request) -> web.Response:
        """GET /messages: search and filters, and a form to send one."""
        return self._render(request, "messages.html", self._messages_context(request))

    async def send(self, request: web.Request) -> web.StreamResponse:
        """POST /messages: send a text from an account (the same submit the APIs use)."""
        form = await request.post()
        to, text = str(form.get("to", "")), str(form.get("text", ""))
        try:
            account = int(str(form.get("account", "")))
            result = self.service.submit(account, [to], text)
        except (ValueError, ServiceError) as exc:
            error = str(exc) if isinstance(exc, ServiceError) else "choose an account"
            context = self._messages_context(request)
            context.update(error=error, form={"to": to, "text": text})
            return self._render(request, "messages.html", context, status=400)
        if not result.message_ids:
            context = self._messages_context(request)
            context.update(
                error="; ".join(r.reason for r in result.rejected), form={"to": to, "text": text}
            )
            return self._render(request, "messages.html", context, status=400)
        return redirect(f"/messages/{result.message_ids[0]}?ok=sent")

    def _message_context(self, request: web.Request) -> dict[str, Any]:
        try:
            message_id = int(request.match_info["id"])
        except ValueError:
            raise web.HTTPNotFound() from None
        message = self.service.message_detail(message_id)
        if message is None:
            raise web.HTTPNotFound(text="no such message")
        return {
            "m": message,
            "final": PartState(message["state"]) in TERMINAL_STATES,
            "report_text": report_text,
        }

    async def message(self, request: web.Request) -> web.Response:
        """GET /messages/{id}: its parts (SIM, TP-MR, attempts) and status reports."""
        return self._render(request, "message.html", self._message_context(request))

    async def message_fragment(self, request: web.Request) -> web.Response:
        """GET /fragments/messages/{id}: the live part of one message."""
        return self._render(request, "_message.html", self._message_context(request))

    # -- inbox ------------------------------------------------------------------------------

    async def inbox(self, request: web.Request) -> web.Response:
        """GET /inbox: every account's inbound messages."""
        search = InboxSearch(
            account_id=self._int(request, "account"),
            sim_id=self._int(request, "sim"),
            text=request.query.get("q", "").strip()[:100],
            before_id=self._int(request, "before"),
        )
        rows = self.service.search_inbox(search, limit=PAGE)
        older = None
        if len(rows) == PAGE:
            params = {k: v for k, v in request.query.items() if k != "before"}
            older = "/inbox?" + urlencode({**params, "before": rows[-1]["id"]})
        return self._render(
            request,
            "inbox.html",
            {
                "rows": rows,
                "search": search,
                "sims": self.service.sim_statuses(),
                "accounts": self.service.accounts(),
                "older": older,
            },
        )

    # -- SIMs -------------------------------------------------------------------------------

    def _sims_context(self) -> dict[str, Any]:
        return {"sims": self.service.sim_statuses(), "fields": LIMIT_FIELDS, "bars": signal_bars}

    async def sims(self, request: web.Request) -> web.Response:
        """GET /sims: numbers, throttle and caps, one form per SIM."""
        return self._render(request, "sims.html", self._sims_context())

    async def update_sim(self, request: web.Request) -> web.StreamResponse:
        """POST /sims/{id}: the same service calls as `smsgw sims set-number|set-limits`."""
        form = await request.post()
        try:
            sim_id = int(request.match_info["id"])
        except ValueError:
            raise web.HTTPNotFound() from None
        try:
            limits: dict[str, float | int | None] = {}
            for column, label, name in LIMIT_FIELDS:
                raw = str(form.get(name, "")).strip()
                if column == "throttle_interval":
                    limits[column] = float(raw)
                elif not raw:
                    limits[column] = None
                elif raw.isdigit():
                    limits[column] = int(raw)
                else:
                    raise ServiceError(f"{label}: a whole number, or empty for no cap")
            current = next((s for s in self.service.sim_statuses() if s.sim_id == sim_id), None)
            if current is None:
                raise web.HTTPNotFound(text="no such SIM")
            number = str(form.get("number", "")).strip()
            if number != current.msisdn:
                self.service.set_sim_number(sim_id, number)
            self.service.set_sim_limits(sim_id, limits)
        except ValueError:
            return self._sim_error(request, sim_id, "Seconds between SMS: a number from 1 to 60")
        except ServiceError as exc:
            return self._sim_error(request, sim_id, str(exc))
        return redirect(f"/sims?ok=sim#sim-{sim_id}")

    def _sim_error(self, request: web.Request, sim_id: int, error: str) -> web.Response:
        context = self._sims_context()
        context.update(error=error, error_sim=sim_id)
        return self._render(request, "sims.html", context, status=400)

    # -- accounts ---------------------------------------------------------------------------

    async def accounts(self, request: web.Request) -> web.Response:
        """GET /accounts: credits, API access and webhook deliveries."""
        webhooks = self.webhook_counts() if self.webhook_counts is not None else None
        return self._render(
            request, "accounts.html", {"accounts": self.service.accounts(), "webhooks": webhooks}
        )

    async def add_credits(self, request: web.Request) -> web.StreamResponse:
        """POST /accounts/{id}/credits."""
        form = await request.post()
        try:
            account_id = int(request.match_info["id"])
            delta = int(str(form.get("delta", "")).strip())
            self.service.add_credits(account_id, delta)
        except (ValueError, ServiceError) as exc:
            error = str(exc) if isinstance(exc, ServiceError) else "credits: a whole number"
            webhooks = self.webhook_counts() if self.webhook_counts is not None else None
            return self._render(
                request,
                "accounts.html",
                {"accounts": self.service.accounts(), "webhooks": webhooks, "error": error},
                status=400,
            )
        return redirect("/accounts?ok=credits")

    # -- contacts ---------------------------------------------------------------------------

    def _chosen_account(self, raw: str, accounts: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The account `raw` names (the first one when it names none); 404 for an unknown id."""
        if not raw:
            return accounts[0] if accounts else None
        account = next((a for a in accounts if str(a["id"]) == raw), None)
        if account is None:
            raise web.HTTPNotFound(text="no such account")
        return account

    def _contacts_context(
        self, request: web.Request, account_raw: str, group_id: int | None
    ) -> dict[str, Any]:
        accounts = self.service.accounts()
        account = self._chosen_account(account_raw, accounts)
        context: dict[str, Any] = {
            "accounts": accounts,
            "account": account,
            "groups": [],
            "group": None,
            "rows": [],
            "total": 0,
            "newer": None,
            "older": None,
            "default_group": DEFAULT_GROUP,
        }
        if account is None:
            return context
        groups = self.service.contact_groups(account["id"])
        group = None
        if group_id is not None:
            group = next((g for g in groups if g["id"] == group_id), None)
            if group is None:
                raise web.HTTPNotFound(text="no such contact group")
        page = max(self._int(request, "page") or 1, 1)
        total, rows = self.service.contact_page(
            account["id"], group_id=group_id, limit=PAGE, offset=(page - 1) * PAGE
        )

        def at(n: int) -> str:
            return contacts_url(account["id"], group_id, page=n)

        context.update(
            groups=groups,
            group=group,
            rows=rows,
            total=total,
            newer=at(page - 1) if page > 1 else None,
            older=at(page + 1) if page * PAGE < total else None,
            default_group=group["name"] if group is not None else DEFAULT_GROUP,
        )
        return context

    async def contacts(self, request: web.Request) -> web.Response:
        """GET /contacts?account=&group=&page=: an account's contact groups, their contacts
        (newest first), and forms to add or delete a group and import a CSV."""
        context = self._contacts_context(
            request, request.query.get("account", "").strip(), self._int(request, "group")
        )
        return self._render(request, "contacts.html", context)

    def _contacts_error(
        self, request: web.Request, form: str, error: str, group_id: int | None = None
    ) -> web.Response:
        context = self._contacts_context(request, request.match_info["account"], group_id)
        context.update(error=error, error_form=form)
        return self._render(request, "contacts.html", context, status=400)

    def _account_id(self, request: web.Request) -> int:
        """The account a contacts POST names in its path (404 when there is no such one)."""
        raw = request.match_info["account"]
        if not raw.isdigit() or not any(a["id"] == int(raw) for a in self.service.accounts()):
            raise web.HTTPNotFound(text="no such account")
        return int(raw)

    async def add_group(self, request: web.Request) -> web.StreamResponse:
        """POST /contacts/{account}/groups: the same service call as `smsgw contacts
        add-group`."""
        account_id = self._account_id(request)
        form = await request.post()
        try:
            group_id = self.service.create_contact_group(account_id, str(form.get("name", "")))
        except ServiceError as exc:
            return self._contacts_error(request, "group", str(exc))
        return redirect(contacts_url(account_id, group_id, ok="group-added"))

    async def delete_group(self, request: web.Request) -> web.StreamResponse:
        """POST /contacts/{account}/groups/{group}/delete: first a page asking to confirm
        (how many contacts go with it), then, with confirm=yes, the deletion."""
        account_id = self._account_id(request)
        raw = request.match_info["group"]
        group = self.service.contact_group(account_id, int(raw)) if raw.isdigit() else None
        if group is None:
            raise web.HTTPNotFound(text="no such contact group")
        form = await request.post()
        if form.get("confirm") != "yes":
            size = next(
                (g["count"] for g in self.service.contact_groups(account_id)
                 if g["id"] == group["id"]), 0,
            )  # fmt: skip
            return self._render(
                request,
                "contact_group_delete.html",
                {
                    "account_id": account_id,
                    "group": group,
                    "size": size,
                    "cancel": contacts_url(account_id, group["id"]),
                },
            )
        self.service.delete_contact_group(account_id, group["id"])
        log.info("dashboard: contact group %d of account %d deleted", group["id"], account_id)
        return redirect(contacts_url(account_id, ok="group-deleted"))

    async def import_contacts(self, request: web.Request) -> web.StreamResponse:
        """POST /contacts/{account}/import: a CSV read as `smsgw contacts import` reads it;
        the page then says how many were saved and lists the rows that hold no number."""
        account_id = self._account_id(request)
        form = await request.post()
        group = str(form.get("group", "")).strip() or DEFAULT_GROUP
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return self._contacts_error(request, "import", "Choose a CSV file to upload.")
        try:
            text = upload.file.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            return self._contacts_error(request, "import", NOT_UTF8)
        finally:
            upload.file.close()
        try:
            contacts = read_csv(io.StringIO(text, newline=""))
        except ContactError as exc:
            return self._contacts_error(request, "import", f"{exc}: nothing was saved.")
        if not contacts:
            return self._contacts_error(
                request, "import", "The file holds no contacts (no row after the header)."
            )
        try:
            result = self.service.import_contacts(account_id, contacts, default_group=group)
        except ServiceError as exc:
            return self._contacts_error(request, "import", f"{exc}: nothing was saved.")
        log.info(
            "dashboard: %d contacts imported to account %d (%d rows rejected)",
            len(result.contact_ids), account_id, len(result.rejected),
        )  # fmt: skip
        shown = next(
            (g["id"] for g in self.service.contact_groups(account_id) if g["name"] == group), None
        )
        context = self._contacts_context(request, str(account_id), shown)
        context.update(imported=result, shown_rejected=SHOWN_REJECTED)
        return self._render(request, "contacts.html", context)


def contacts_url(
    account_id: int, group_id: int | None = None, *, page: int = 1, ok: str | None = None
) -> str:
    """The contacts page of an account (one group of it, one page of that)."""
    params: dict[str, Any] = {"account": account_id}
    if group_id is not None:
        params["group"] = group_id
    if page > 1:
        params["page"] = page
    if ok is not None:
        params["ok"] = ok
    return "/contacts?" + urlencode(params)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No inline script may run, no other site may frame the pages, nothing leaks in Referer."""
    response = await handler(request)
    if request.path.startswith(("/v1", "/api_v1", "/apis", "/metrics")):
        return response
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


def install(
    app: web.Application,
    service: GatewayService,
    *,
    guard: auth.LoginGuard | None = None,
    webhook_counts: WebhookCounts | None = None,
    refresh_ms: int = 2000,
) -> Dashboard:
    """Add the dashboard's routes, templates and static files to the root application."""
    dashboard = Dashboard(
        service, guard=guard, webhook_counts=webhook_counts, refresh_ms=refresh_ms
    )
    env = aiohttp_jinja2.setup(
        app,
        app_key=JINJA,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = when
    app.middlewares.append(security_headers)
    page = dashboard.page
    app.router.add_get("/", page(dashboard.overview))
    app.router.add_get("/fragments/overview", page(dashboard.overview_fragment))
    app.router.add_get("/messages", page(dashboard.messages))
    app.router.add_post("/messages", page(dashboard.send))
    app.router.add_get("/messages/{id}", page(dashboard.message))
    app.router.add_get("/fragments/messages/{id}", page(dashboard.message_fragment))
    app.router.add_get("/inbox", page(dashboard.inbox))
    app.router.add_get("/sims", page(dashboard.sims))
    # A refused POST links back to the page its form is on: the POST-only paths answer 405.
    app.router.add_post("/sims/{id}", page(dashboard.update_sim, back=lambda _: "/sims"))
    app.router.add_get("/accounts", page(dashboard.accounts))
    app.router.add_post(
        "/accounts/{id}/credits", page(dashboard.add_credits, back=lambda _: "/accounts")
    )

    def back(request: web.Request) -> str:
        return contacts_url(int(request.match_info["account"]))

    app.router.add_get("/contacts", page(dashboard.contacts))
    app.router.add_post(r"/contacts/{account:\d+}/groups", page(dashboard.add_group, back=back))
    app.router.add_post(
        r"/contacts/{account:\d+}/groups/{group:\d+}/delete",
        page(dashboard.delete_group, back=back),
    )
    app.router.add_post(
        r"/contacts/{account:\d+}/import", page(dashboard.import_contacts, back=back)
    )
    app.router.add_get("/login", dashboard.store_guarded(dashboard.login_form))
    app.router.add_post("/login", dashboard.store_guarded(dashboard.login))
    app.router.add_post("/logout", page(dashboard.logout, back=lambda _: "/"))
    app.router.add_static("/static/", HERE / "static", append_version=False)
    return dashboard
