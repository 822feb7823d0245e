"""The dashboard over HTTP (no browser): login, sessions, CSRF, escaping, SIM settings, an
account's contacts (groups, CSV import), /metrics behind a token."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData
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
PAGES = ["/", "/fragments/overview", "/messages", "/inbox", "/sims", "/accounts", "/contacts"]
# `smsgw contacts import`'s own sample (tests/gateway/test_contacts_cli.py).
CSV = """Phone,Name,Last_Name,Group
07700900123,Ann,Lee,
+447700900124,Bo,,VIP
hello,Nobody,,
07700900123,Ann again,,
"""


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
            text = await r.text()
            assert "CSRF" in text
            assert '<a href="/sims" id="back">' in text  # the form's page, not the POST path
        assert env.pool.get(env.sim).throttle.policy.interval == 1.0  # nothing changed
        for path, data, back in (
            ("/messages", {"account": "1", "to": CONTACT, "text": "hi"}, "/messages"),
            (f"/accounts/{env.account}/credits", {"delta": "10"}, "/accounts"),
            ("/logout", {}, "/"),
        ):
            r = await client.post(path, data=data, allow_redirects=False)
            assert r.status == 403, path
            assert f'<a href="{back}" id="back">' in await r.text(), path
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


def upload(token: str, data: bytes | None, *, group: str = "", filename: str = "c.csv") -> FormData:
    """The import form as a browser sends it (data None: no file chosen)."""
    form = FormData()
    form.add_field("csrf", token)
    form.add_field("group", group)
    if data is None:  # a browser sends an empty part with an empty file name
        form.add_field("file", b"", filename="", content_type="application/octet-stream")
    else:
        form.add_field("file", data, filename=filename, content_type="text/csv")
    return form


def test_contact_groups_are_added_and_deleted_after_a_confirmation(tmp_path: Path) -> None:
    async def scenario(client: TestClient, env: Env) -> None:
        await log_in(client)
        accounts = await (await client.get("/accounts")).text()
        assert f'href="/contacts?account={env.account}"' in accounts
        page = await (await client.get("/contacts")).text()  # the nav's link: first account
        assert "Contacts of shop" in page and "No contact group yet." in page
        token = csrf_of(page)
        groups = f"/contacts/{env.account}/groups"
        r = await client.post(
            groups, data={"csrf": token, "name": " Customers "}, allow_redirects=False
        )
        assert r.status == 303
        (group,) = env.service.contact_groups(env.account)
        assert (group["name"], group["count"]) == ("Customers", 0)
        assert (
            r.headers["Location"]
            == f"/contacts?account={env.account}&group={group['id']}&ok=group-added"
        )
        page = await (await client.get(r.headers["Location"])).text()
        assert "Contact group added." in page and "Contacts in Customers" in page
        for name, message in (
            ("Customers", "shop already has a contact group &#39;Customers&#39;"),
            ("   ", "a group needs a name"),
            ("x" * 101, "value longer than 100 characters"),
        ):
            r = await client.post(groups, data={"csrf": token, "name": name})
            assert r.status == 400, name
            assert 'id="group-error"' in (html := await r.text()) and message in html, name
        assert len(env.service.contact_groups(env.account)) == 1

        env.service.contacts.save(
            env.account,
            [
                ContactInput(CONTACT, group="Customers"),
                ContactInput("+15005550001", group="Customers"),
            ],
            dial_code="",
        )
        delete = f"/contacts/{env.account}/groups/{group['id']}/delete"
        r = await client.post(delete, data={"csrf": token})  # first: are you sure?
        assert r.status == 200
        html = await r.text()
        assert "Its 2 contacts go with it" in html and 'name="confirm" value="yes"' in html
        assert len(env.service.contact_groups(env.account)) == 1  # nothing deleted yet
        r = await client.post(delete, data={"csrf": token, "confirm": "yes"}, allow_redirects=False)
        assert r.status == 303
        assert env.service.contact_groups(env.account) == []
        assert env.service.contact_page(env.account)[0] == 0  # its contacts went with it
        page = await (await client.get(r.headers["Location"])).text()
        assert "Contact group deleted with its contacts." in page
        r = await client.post(delete, data={"csrf": token, "confirm": "yes"})
        assert r.status == 404
        assert (await client.get("/contacts?account=99")).status == 404
        assert (
            await client.post("/contacts/99/groups", data={"csrf": token, "name": "A"})
        ).status == 404
        assert (await client.get(f"/contacts?account={env.account}&group=99")).status == 404

    run(tmp_path, scenario)


def test_every_contacts_form_needs_the_sessions_csrf_token(tmp_path: Path) -> None:
    async def scenario(client: TestClient, env: Env) -> None:
        await log_in(client)
        group = env.service.create_contact_group(env.account, "Customers")
        page = await (await client.get("/contacts")).text()
        token = csrf_of(page)
        forms = re.findall(r'<form method="post"[^>]*>\s*<input type="hidden" name="csrf"', page)
        assert len(forms) == page.count('<form method="post"') == 4  # logout, delete, add, import
        base = f"/contacts/{env.account}"
        for path, data in (
            (f"{base}/groups", {"name": "Other"}),
            (f"{base}/groups/{group}/delete", {"confirm": "yes"}),
            (f"{base}/groups/{group}/delete", {"confirm": "yes", "csrf": "x" * len(token)}),
        ):
            r = await client.post(path, data=data, allow_redirects=False)
            assert r.status == 403, path
            html = await r.text()
            assert "CSRF" in html and f'href="/contacts?account={env.account}" id="back"' in html
        form = upload("forged", CSV.encode())
        r = await client.post(f"{base}/import", data=form, allow_redirects=False)
        assert r.status == 403
        assert [g["name"] for g in env.service.contact_groups(env.account)] == ["Customers"]
        assert env.service.contact_page(env.account)[0] == 0

    run(tmp_path, scenario)


def test_a_csv_upload_imports_as_the_cli_does_and_lists_newest_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(client: TestClient, env: Env) -> None:
        await log_in(client)
        env.service.create_contact_group(env.account, "Customers")
        token = csrf_of(await (await client.get("/contacts")).text())
        r = await client.post(
            f"/contacts/{env.account}/import",
            data=upload(token, ("\ufeff" + CSV).encode(), group="Customers"),  # Excel's BOM
        )
        assert r.status == 200
        html = await r.text()
        # A national number took the account's dial code (the box's SIMs: 44); a row's own
        # group wins over the form's; a repeat of a number in one group is saved once.
        assert '<span id="import-saved">2</span> contacts saved' in html
        assert '<ul id="import-rejected"><li><code>hello</code></li></ul>' in html
        assert "Contacts in Customers" in html and "+447700900123" in html
        groups = {g["name"]: g["count"] for g in env.service.contact_groups(env.account)}
        assert groups == {"Customers": 1, "VIP": 1}
        _, (ann,) = env.service.contact_page(env.account, group_id=1)
        assert (ann["number"], ann["first_name"], ann["last_name"]) == (
            "+447700900123",
            "Ann",
            "Lee",
        )
        # No header, no group given: the number first, a name second, into "default".
        r = await client.post(
            f"/contacts/{env.account}/import", data=upload(token, b"447700900200,Cy\r\n")
        )
        assert '<span id="import-saved">1</span> contacts saved.' in await r.text()
        assert "default" in {g["name"] for g in env.service.contact_groups(env.account)}

        env.service.contacts.set_opted_out(env.account, ["+447700900124"], True, dial_code="")
        env.service.contacts.save(
            env.account,
            [ContactInput(f"+1500555{n:04d}", first_name=f"N{n}", group="Many") for n in range(60)],
            dial_code="",
        )
        many = next(g["id"] for g in env.service.contact_groups(env.account) if g["name"] == "Many")
        page = await (await client.get(f"/contacts?account={env.account}&group={many}")).text()
        assert page.count('class="contact-row"') == 50
        assert page.index("+15005550059") < page.index("+15005550010")  # newest first
        assert "+15005550009" not in page
        older = re.search(r'href="([^"]+)" id="older"', page)
        assert older is not None
        page2 = await (await client.get(older.group(1).replace("&amp;", "&"))).text()
        assert page2.count('class="contact-row"') == 10 and "+15005550000" in page2
        assert 'id="newer"' in page2 and 'id="older"' not in page2
        every = await (await client.get(f"/contacts?account={env.account}&page=2")).text()
        assert every.count('class="contact-row"') == 63 - 50  # every group: 1 + 1 + 1 + 60
        vip = await (await client.get(f"/contacts?account={env.account}&group=2")).text()
        assert '<span class="badge bad">opted out</span>' in vip

    with caplog.at_level(logging.INFO):
        run(tmp_path, scenario)
    assert "2 contacts imported to account 1 (1 rows rejected)" in caplog.text
    assert "7700900" not in caplog.text  # no number logged


def test_bad_uploads_and_names_answer_a_message_and_change_nothing(tmp_path: Path) -> None:
    async def scenario(client: TestClient, env: Env) -> None:
        await log_in(client)
        token = csrf_of(await (await client.get("/contacts")).text())
        path = f"/contacts/{env.account}/import"
        for data, status, message in (
            (None, 400, "Choose a CSV file to upload."),
            ("Name,Phone\nAnn,+447700900123\n".encode("utf-16"), 400, "The file is not UTF-8 text"),
            ("+447700900123,Zoë\n".encode("latin-1"), 400, "The file is not UTF-8 text"),
            (b"", 400, "The file holds no contacts"),
            (b"phone,name\n\n", 400, "The file holds no contacts"),
            (f"+447700900123,{'x' * 101}\n".encode(), 400,
             "value longer than 100 characters: nothing was saved."),
            (b'+447700900123,"' + b"x" * 200_000 + b'"\n', 400, "not a CSV file (field larger"),
            (b"+447700900123,Ann\n" * 70_000, 413, "larger than the gateway takes in one request"),
        ):  # fmt: skip
            r = await client.post(path, data=upload(token, data))
            assert r.status == status, message
            html = await r.text()
            assert message in html, html[:2000]
        r = await client.post(path, data=upload(token, CSV.encode(), group="y" * 101))
        assert r.status == 400 and "value longer than 100 characters" in await r.text()
        assert env.service.contact_groups(env.account) == []
        assert env.service.contact_page(env.account)[0] == 0
        # A form field that is not UTF-8 (no browser sends one): refused, not a traceback.
        r = await client.post(
            f"/contacts/{env.account}/groups",
            data=f"csrf={token}&name=".encode() + b"\xff\xfe",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status == 400 and "The form could not be read" in await r.text()

    run(tmp_path, scenario)
