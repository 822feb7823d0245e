"""`smsgw contacts`: an UltraSMS-only client cannot make a contact group through its API, so the
owner makes groups and imports contacts here; the API then sends to them."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from api.app import build_app
from gateway.cli import main
from gateway.service import GatewayService
from gateway.store import Store

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
CSV = """Phone,Name,Last_Name,Group
07700900123,Ann,Lee,
+447700900124,Bo,,VIP
hello,Nobody,,
07700900123,Ann again,,
"""


def _run(*args: str, data_dir: Path, ok: bool = True, stdin: str | None = None) -> str:
    result = CliRunner().invoke(main, [*args, "--data-dir", str(data_dir)], input=stdin)
    assert (result.exit_code == 0) is ok, result.output
    return result.output


def test_groups_made_and_contacts_imported_here_are_what_ultrasms_sends_to(
    tmp_path: Path,
) -> None:
    creds = json.loads(_run("accounts", "create", "shop", "--dial-code", "44", data_dir=tmp_path))
    assert json.loads(_run("contacts", "add-group", "shop", "Customers", data_dir=tmp_path)) == {
        "id": 1, "name": "Customers"}  # fmt: skip
    again = _run("contacts", "add-group", "shop", "Customers", data_dir=tmp_path, ok=False)
    assert "already has a contact group 'Customers'" in again
    assert "a group needs a name" in _run("contacts", "add-group", "shop", " ", data_dir=tmp_path,
                                          ok=False)  # fmt: skip

    # A header row in any case; a national number takes the account's dial code; a row's own
    # group wins over --group; a repeat of a number in one group is saved once.
    out = _run("contacts", "import", "shop", "-", "--group", "Customers", data_dir=tmp_path,
               stdin=CSV)  # fmt: skip
    assert json.loads(out) == {"saved": 2, "rejected": ["hello"]}
    # No header: the number first, a name second; the default group is created.
    out = _run("contacts", "import", "shop", "-", data_dir=tmp_path, stdin="447700900200,Cy\n")
    assert json.loads(out) == {"saved": 1, "rejected": []}

    groups = json.loads(_run("contacts", "groups", "shop", "--json", data_dir=tmp_path))
    assert {(g["name"], g["count"]) for g in groups} == {
        ("Customers", 1), ("VIP", 1), ("default", 1)}  # fmt: skip
    listed = json.loads(_run("contacts", "list", "shop", "--group", "Customers", "--json",
                             data_dir=tmp_path))  # fmt: skip
    assert [(c["number"], c["first_name"], c["last_name"], c["opted_out"]) for c in listed] == [
        ("+447700900123", "Ann", "Lee", False)]  # fmt: skip
    missing = _run("contacts", "list", "shop", "--group", "Nope", data_dir=tmp_path, ok=False)
    assert "no contact group 'Nope'" in missing
    assert "no account 'ghost'" in _run("contacts", "groups", "ghost", data_dir=tmp_path, ok=False)

    store = Store.open(tmp_path)
    store.bind_sim(iccid="8944000000000000011", imsi="234150000000011", msisdn="+447700900001",
                   now=T0)  # fmt: skip
    service = GatewayService(store, wall=lambda: T0)

    async def ultrasms() -> None:
        async with TestClient(TestServer(build_app(service))) as client:

            async def call(name: str, **params: str) -> object:
                r = await client.get(f"/apis/{name}/", params={"apikey": creds["api_key"],
                                                                **params})  # fmt: skip
                return json.loads(await r.text())

            assert await call("addcontact", group="Customers", number="447700900777") == 0
            assert await call("addcontact", group="Nope", number="447700900778") == -5
            for to in ("447700900123", "447700900777", "447700900124"):
                assert (
                    await call(
                        "smscontact",
                        **{"from": "447700900001", "to": to, "message": "Your order shipped"},
                    )
                    == 0
                )
            assert (
                await call(
                    "smscontact", **{"from": "447700900001", "to": "447700900999", "message": "hi"}
                )
                == -6
            )  # not a contact

    try:
        asyncio.run(ultrasms())
        sent = {row["recipient"] for row in store.list_messages(1)}
    finally:
        store.close()
    assert sent == {"+447700900123", "+447700900777", "+447700900124"}

    assert json.loads(_run("contacts", "delete-group", "shop", "VIP", data_dir=tmp_path)) == {
        "deleted": "VIP"}  # fmt: skip
    groups = json.loads(_run("contacts", "groups", "shop", "--json", data_dir=tmp_path))
    assert {g["name"] for g in groups} == {"Customers", "default"}


def test_a_data_dir_that_does_not_exist_yet_is_made_a_directory(tmp_path: Path) -> None:
    # It used to become the SQLite file itself: `smsgw demo --data-dir new` left a file `new`.
    fresh = tmp_path / "new" / "box"
    _run("accounts", "create", "shop", data_dir=fresh)
    assert fresh.is_dir() and (fresh / "smsgw.sqlite3").is_file()
    assert "shop" in _run("accounts", "list", data_dir=fresh)
    # ... and the daemon's (`smsgw serve --data-dir`) too.
    from gateway.cli.daemon import _load

    served = tmp_path / "served"
    (tmp_path / "smsgw.toml").write_text("")
    assert _load(tmp_path / "smsgw.toml", served).data_dir == served
    assert served.is_dir()
