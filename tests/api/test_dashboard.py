"""The dashboard over HTTP (no browser): login, sessions, CSRF, escaping, SIM settings, /metrics
behind a token."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from api.app import build_app
from api.dashboard.auth import LoginGuard
from gateway.accounts import create_account
from gateway.contacts import ContactInput
from gateway.models import PartState, ThrottlePolicy
from gateway.pool import SimPool
from gateway.service import GatewayService
from gateway.store import Store

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
EVIL = "<script>alert('x')</script>"
CONTACT = "+15005550000"
PAGES = ["/", "/fragments/overview", "/messages", "/inbox", "/sims", "/accounts"]


class Env:
    """A store with one account, one SIM in a pool, a service and a login guard that records."""

    def __init__(self, tmp_path: Path) -> None:
        self.store = Store.open(tmp_path)
        self.account = create_account(self.store, "shop", now=T0, credits=50).account_id
        self.sim = self.store.bind_sim(
            iccid="8944000000000000031", imsi=None, msisdn="+447700900031", now=T0
        )
        self.pool = SimPool()
        self.pool.upsert(self.sim, "+447700900031", ThrottlePolicy())
        self.clock = [T0]
        self.service = GatewayService(self.store, wall=lambda: self.clock[0], pool=self.pool)
        self.service.set_admin_password(PASSWORD)
        self.delays: list[float] = []
        self.mono = [0.0]

        async def sleep(seconds: float) -> None:
            self.delays.append(seconds)

        self.guard = LoginGuard(clock=lambda: self.mono[0], sleep=sleep)


def run(tmp_path: Path, scenario: Callable[[TestClient, Env], Awaitable[None]], **app: Any) -> None:
    env = Env(tmp_path)

    async def main() -> None:
        server = TestServer(build_app(env.service, login_guard=env.guard, **app))
        async with TestClient(server) as client:
            await scenario(client, env)

    try:
        asyncio.run(main())
    finally:
        env.store.close()


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None, html[:500]
    return match.group(1)


async def log_in(client: TestClient, password: str = PASSWORD) -> Any:
    form = await client.get("/login")
    token = csrf_of(await form.text())
    return await client.post(
        "/login",
        data={"csrf": token, "password": password, "next": "/sims"},
        allow_redirects=False,
    )


def test_every_page_needs_a_login_and_a_wrong_password_is_refused_ever_slower(
    tmp_path: Path,
) -> None:
    async def scenario(client: TestClient, env: Env) -> None:
        for path in PAGES:
            r = await client.get(path, allow_redirects=False)
            assert r.status == 303 and r.headers["Location"].startswith("/login?next=")
        r = await client.get("/fragments/overview", headers={"X-Requested-With": "smsgw-refresh"})
        assert r.status == 401  # the refresh script sends the browser to the login page
        for _ in range(5):
            r = await log_in(client, "wrong password")
            assert r.status == 401
            page = await r.text()
            assert "Wrong password." in page
            assert 'name="next" value="/sims"' in page  # the next try still goes there
            assert "smsgw_session" not in r.cookies
        assert env.delays == [0.5, 1.0, 2.0, 4.0, 8.0]  # each failure answers later
        r = await log_in(client)  # even the right password waits out the lock
        assert r.status == 429
        assert "Too many wrong passwords" in await r.text()
        assert int(r.headers["Retry-After"]) >= 8
        env.mono[0] += 9.0
        r = await log_in(client)
        assert r.status == 303 and r.headers["Location"] == "/sims"
        cookie = r.headers.getall("Set-Cookie")
        session = next(c for c in cookie if c.startswith("smsgw_session="))
        assert "HttpOnly" in session and "SameSite=Strict" in session and "Path=/" in session
        for path in PAGES:
            r = await client.get(path)
            assert r.status == 200, path
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
            assert r.headers["X-Frame-Options"] == "DENY"
        await log_in(client, "wrong again")
        assert env.delays[-1] == 0.5  # a success started the count afresh

    run(tmp_path, scenario)


def test_login_without_its_csrf_token_is_refused(tmp_path: Path) -> None:
    async def scenario(client: TestClient, env: Env) -> None:
        await client.get("/login")  # sets the login cookie
        r = await client.post("/login", data={"password": PASSWORD}, allow_redirects=False)
        assert r.status == 403
        assert "CSRF token is missing or wrong" in await r.text()
        r = await client.post(
            "/login", data={"password": PASSWORD, "csrf": "forged"}, allow_redirects=False
        )
        assert r.status == 403
        assert env.delays == []  # not even a password check

    run(tmp_path, scenario)


def test_every_form_needs_the_sessions_csrf_token(tmp_path: Path) -> None:
    async def scenario(client: TestClient, env: Env) -> None:
        assert (await log_in(client)).status == 303
        page = await (await client.get("/sims")).text()
        token = csrf_of(page)
        forms = re.findall(r'<form method="post"[^>]*>\s*<input type="hidden" name="csrf"', page)
        assert len(forms) == page.count('<form method="post"')  # every POST form has it
        limits = {
            "number": "+447700900031",
            "interval": "9",
            "per_minute": "",
            "per_hour": "",
            "per_day": "",
            "recipients_per_day": "",
        }
        for data in (limits, {**limits, "csrf": "x" * len(token)}, {**limits, "csrf": ""}):
            r = await client.post(f"/sims/{env.sim}", data=data, allow_redirects=False)
            assert r.status == 403
            assert "CSRF" in await r.text()
        assert env.pool.get(env.sim).throttle.policy.interval == 1.0  # nothing changed
        for path, data in (
            ("/messages", {"account": "1", "to": CONTACT, "text": "hi"}),
            (f"/accounts/{env.account}/credits", {"delta": "10"}),
            ("/logout", {}),
        ):
            r = await client.post(path, data=data, allow_redirects=False)
            assert r.status == 403, path
        assert env.store.count_by_state("messages") == {}
        assert env.store.account(env.account)["credits"] == 50
        r = await client.post(
            f"/sims/{env.sim}", data={**limits, "csrf": token}, allow_redirects=False
        )
        assert r.status == 303
        assert env.pool.get(env.sim).throttle.policy.interval == 9.0  # in the running pool

    run(tmp_path, scenario)


def test_sim_form_sets_number_and_caps_and_explains_bad_input(tmp_path: Path) -> None:
    async def scenario(client: TestClient, env: Env) -> None:
        await log_in(client)
        token = csrf_of(await (await client.get("/sims")).text())
        form = {
            "csrf": token,
            "number": "+44 7700 900099",
            "interval": "2.5",
            "per_minute": "3",
            "per_hour": "",
            "per_day": "500",
            "recipients_per_day": "",
        }
        r = await client.post(f"/sims/{env.sim}", data=form, allow_redirects=False)
        assert r.status == 303
        assert env.pool.get(env.sim).throttle.policy == ThrottlePolicy(
            interval=2.5, per_minute=3, per_day=500
        )
        assert env.pool.get(env.sim).msisdn == "+447700900099"
        page = await (await client.get(r.headers["Location"])).text()
        assert "SIM settings saved" in page and 'value="2.5"' in page
        for bad, message in (
            ({"interval": "0.2"}, "1-60 seconds"),
            ({"interval": "fast"}, "a number from 1 to 60"),
            ({"per_hour": "lots"}, "a whole number"),
            ({"number": "not a number"}, "not a phone number"),
        ):
            r = await client.post(f"/sims/{env.sim}", data={**form, **bad})
            assert r.status == 400
            assert message in await r.text()
        assert env.pool.get(env.sim).throttle.policy.interval == 2.5

    run(tmp_path, scenario)


def test_a_new_password_ends_the_session_and_logout_ends_it_too(tmp_path: Path) -> None:
    async def scenario(client: TestClient, env: Env) -> None:
        await log_in(client)
        assert (await client.get("/", allow_redirects=False)).status == 200
        env.service.set_admin_password("another long password")  # e.g. from the CLI
        assert (await client.get("/", allow_redirects=False)).status == 303
        assert (await log_in(client, "another long password")).status == 303
        token = csrf_of(await (await client.get("/")).text())
        copied = client.session.cookie_jar.filter_cookies(client.make_url("/"))["smsgw_session"]
        r = await client.post("/logout", data={"csrf": token}, allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/login"
        assert (await client.get("/", allow_redirects=False)).status == 303
        # A copy of the cookie taken before the logout is dead too.
        r = await client.get("/", allow_redirects=False, cookies={"smsgw_session": copied.value})
        assert r.status == 303

    run(tmp_path, scenario)


def test_every_page_escapes_message_text_and_contact_names(tmp_path: Path) -> None:
    async def scenario(client: TestClient, env: Env) -> None:
        env.service.contacts.save(
            env.account,
            [ContactInput(CONTACT, first_name=EVIL, last_name="<b>bold</b>")],
            dial_code="",
        )
        await log_in(client)
        token = csrf_of(await (await client.get("/messages")).text())
        r = await client.post(
            "/messages",
            allow_redirects=False,
            data={"csrf": token, "account": str(env.account), "to": CONTACT, "text": EVIL},
        )
        assert r.status == 303
        message_page = r.headers["Location"].split("?")[0]
        message_id = int(message_page.rsplit("/", 1)[1])
        (part,) = env.store.parts(message_id)
        env.store.transition_part(
            part["id"], PartState.QUEUED, PartState.FAILED, now=T0, fields={"error": EVIL}
        )
        env.store.insert_inbound(
            {
                "account_id": env.account,
                "sim_id": env.sim,
                "originator": CONTACT,
                "body": EVIL,
                "encoding": "gsm7",
                "parts_received": 1,
                "parts_total": 1,
                "complete": 1,
            },
            [],
            now=T0,
        )
        shown = 0
        for path in [
            *PAGES,
            message_page,
            f"/fragments/messages/{message_id}",
            "/messages?q=<script>",
        ]:
            r = await client.get(path)
            assert r.status == 200, path
            html = await r.text()
            assert "<script>alert" not in html, path
            assert "<b>bold" not in html, path
            assert html.count("<script") == html.count('<script src="/static/dashboard.js"')
            shown += html.count("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;")
        assert shown >= 6  # the text and the name did appear, escaped

    run(tmp_path, scenario)


def test_sending_from_the_ui_is_the_apis_submit_with_its_errors(tmp_path: Path) -> None:
    async def scenario(client: TestClient, env: Env) -> None:
        await log_in(client)
        token = csrf_of(await (await client.get("/messages")).text())
        base = {"csrf": token, "account": str(env.account)}
        r = await client.post("/messages", data={**base, "to": "nonsense", "text": "hi"})
        assert r.status == 400 and "no valid recipient" in await r.text()
        r = await client.post("/messages", data={**base, "to": CONTACT, "text": ""})
        assert r.status == 400 and "message text is empty" in await r.text()
        r = await client.post(
            "/messages", allow_redirects=False, data={**base, "to": CONTACT, "text": "Hello 👋"}
        )
        assert r.status == 303
        (message,) = env.store.list_messages(env.account)
        assert (message["recipient"], message["body"], message["state"]) == (
            CONTACT,
            "Hello 👋",
            "queued",
        )
        assert env.store.account(env.account)["credits"] == 49  # charged like any send
        page = await (await client.get(r.headers["Location"])).text()
        assert "Message accepted." in page and 'id="state">queued<' in page
        listing = await (await client.get("/messages", params={"state": "queued"})).text()
        assert f'data-id="{message["id"]}"' in listing
        empty = await (await client.get("/messages", params={"state": "delivered"})).text()
        assert "No message matches." in empty

    run(tmp_path, scenario)


def test_credits_are_topped_up_from_the_accounts_page(tmp_path: Path) -> None:
    async def scenario(client: TestClient, env: Env) -> None:
        await log_in(client)
        page = await (await client.get("/accounts")).text()
        assert "The webhook sender is not part of this build." in page
        token = csrf_of(page)
        r = await client.post(
            f"/accounts/{env.account}/credits",
            data={"csrf": token, "delta": "25"},
            allow_redirects=False,
        )
        assert r.status == 303
        assert env.store.account(env.account)["credits"] == 75
        r = await client.post(
            f"/accounts/{env.account}/credits", data={"csrf": token, "delta": "many"}
        )
        assert r.status == 400 and "a whole number" in await r.text()

    run(tmp_path, scenario)


def test_metrics_need_the_bearer_token_when_one_is_configured(tmp_path: Path) -> None:
    async def scenario(client: TestClient, env: Env) -> None:
        r = await client.get("/metrics")
        assert r.status == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        r = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert r.status == 401
        r = await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        assert "smsgw_sim_parts_sent_total" in await r.text()

    run(tmp_path, scenario, metrics_token="s3cret")


def test_the_login_only_sends_the_browser_back_to_this_site(tmp_path: Path) -> None:
    async def scenario(client: TestClient, env: Env) -> None:
        for given, expected in (
            ("/messages?state=failed", "/messages?state=failed"),
            ("//evil.example/", "/"),
            ("/\\evil.example", "/"),
            ("https://evil.example", "/"),
            ("/x\r\nSet-Cookie: a=b", "/"),
        ):
            client.session.cookie_jar.clear()
            token = csrf_of(await (await client.get("/login")).text())
            r = await client.post(
                "/login",
                allow_redirects=False,
                data={"csrf": token, "password": PASSWORD, "next": given},
            )
            assert r.status == 303 and r.headers["Location"] == expected, given

    run(tmp_path, scenario)
