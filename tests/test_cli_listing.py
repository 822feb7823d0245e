"""Every listing command of `smsgw` answers --json, and no table or piped listing cuts a
number, an ICCID or a port, however narrow the terminal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from gateway.accounts import create_account
from gateway.cli import main
from gateway.cli.common import table, tsv
from gateway.models import WebhookKind
from gateway.store import Store

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
ICCID = "89440000000000000077"  # 20 digits
IMSI = "234150000000077"
MSISDN = "+447700900077"
PORT = "/dev/serial/by-id/usb-HUAWEI_Technology_HUAWEI_Mobile-if00-port0"
IMEI = "350000000000077"
# Every command that lists things; test_every_listing_command_is_covered keeps this honest.
LISTINGS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("accounts", "list"): (),
    ("sims", "list"): (),
    ("modems",): (),
    ("outbox",): ("--account", "shop"),
    ("inbox",): ("--account", "shop"),
    ("emulator", "personalities"): (),
    ("webhooks", "list"): (),
    ("templates", "list"): ("shop",),
    ("contacts", "groups"): ("shop",),
    ("contacts", "list"): ("shop",),
}


def _world(directory: Path) -> None:
    store = Store.open(directory)
    try:
        account = create_account(store, "shop", now=T0).account_id
        sim = store.bind_sim(iccid=ICCID, imsi=IMSI, msisdn=MSISDN, now=T0)
        store.bind_modem(imei=IMEI, manufacturer="huawei", model="E3372", revision="1",
                         port=PORT, sim_id=sim, now=T0)  # fmt: skip
        store.accept_message(account_id=account, recipient="+447700900123", body="hello there",
                             encoding="gsm7", parts=1, now=T0)  # fmt: skip
        store.insert_inbound(
            {"account_id": account, "sim_id": sim, "originator": "+15551230001",
             "recipient": MSISDN, "body": "a reply\twith a tab", "encoding": "gsm7",
             "parts_received": 1, "parts_total": 1, "complete": 1},
            [], now=T0,
        )  # fmt: skip
        store.set_webhook_subscription(account, WebhookKind.STATUS, "https://crm.example/dlr",
                                       "crm.example:443", "v1", now=T0)  # fmt: skip
        store.enqueue_webhook(account, WebhookKind.STATUS, {"message_id": 1}, now=T0)
        store.insert_template(account, "Welcome", "Welcome to the shop!\tTabbed", now=T0)
        group = store.ensure_contact_group(account, "Regulars")
        store.save_contacts(account, [{"group_id": group, "number": "+447700900124",
                                       "first_name": "Ann", "last_name": "Lee", "email": "",
                                       "extra": {}}], now=T0)  # fmt: skip
    finally:
        store.close()


def _invoke(*args: str, data_dir: Path | None = None) -> str:
    extra = ["--data-dir", str(data_dir)] if data_dir is not None else []
    result = CliRunner().invoke(main, [*args, *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_every_listing_command_is_covered() -> None:
    """Commands named like listings, and those taking --json, are the ones tested here."""
    found: set[tuple[str, ...]] = set()

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, (*path, name))
        elif path[-1] in ("list", "personalities", "modems", "outbox", "inbox") or any(
            p.name == "as_json" for p in command.params
        ):
            found.add(path)

    walk(main, ())
    assert found - {("doctor",)} == set(LISTINGS)  # doctor's --json: tests/appliance


@pytest.mark.parametrize("command", sorted(LISTINGS), ids=" ".join)
def test_listing_as_json(tmp_path: Path, command: tuple[str, ...]) -> None:
    _world(tmp_path)
    takes_data_dir = command != ("emulator", "personalities")
    out = _invoke(*command, *LISTINGS[command], "--json",
                  data_dir=tmp_path if takes_data_dir else None)  # fmt: skip
    rows: list[dict[str, Any]] = json.loads(out)
    assert isinstance(rows, list) and rows
    first = rows[0]
    match command:
        case ("accounts", "list"):
            assert first["sub_account"] == "shop"
            assert (first["unlimited"], first["dial_code"], first["sims"]) == (True, "44", [])
            assert not {"password_hash", "api_key", "token"} & set(first)
        case ("sims", "list"):
            assert (first["iccid"], first["imsi"], first["msisdn"]) == (ICCID, IMSI, MSISDN)
            assert (first["last_port"], first["imei"]) == (PORT, IMEI)
            assert first["box"] is None  # SQLite: one box, no leases
        case ("modems",):
            assert (first["imei"], first["last_port"], first["state"]) == (IMEI, PORT, "ready")
        case ("outbox",):
            assert (first["recipient"], first["state"], first["body"]) == (
                "+447700900123", "queued", "hello there"
            )  # fmt: skip
        case ("inbox",):
            assert (first["originator"], first["body"]) == ("+15551230001", "a reply\twith a tab")
        case ("webhooks", "list"):
            assert (first["kind"], first["state"], first["attempts"]) == ("status", "pending", 0)
            assert first["event_id"].startswith("evt_")
        case ("templates", "list"):
            assert (first["name"], first["data"]) == ("Welcome", "Welcome to the shop!\tTabbed")
        case ("contacts", "groups"):
            assert (first["name"], first["count"]) == ("Regulars", 1)
        case ("contacts", "list"):
            assert (first["number"], first["first_name"], first["group_name"]) == (
                "+447700900124", "Ann", "Regulars")  # fmt: skip
            assert first["opted_out"] is False
        case ("emulator", "personalities"):
            by_name = {r["name"]: r for r in rows}
            assert "huawei-e1752.txt" in by_name["huawei"]["transcripts"]


def test_piped_listings_are_tab_separated_and_whole(tmp_path: Path) -> None:
    _world(tmp_path)
    lines = _invoke("sims", "list", data_dir=tmp_path).splitlines()
    header, row = (line.split("\t") for line in lines)
    sim = dict(zip(header, row, strict=True))
    assert (sim["iccid"], sim["msisdn"], sim["last_port"]) == (ICCID, MSISDN, PORT)
    assert sim["box"] == ""  # the column is there, empty on SQLite
    inbox = _invoke("inbox", "--account", "shop", data_dir=tmp_path).splitlines()
    assert len(inbox) == 2  # a tab inside a body is escaped, not a new field or line
    assert inbox[1].split("\t")[3] == "a reply\\twith a tab"


def test_sims_list_piped_through_cat_on_a_narrow_terminal(tmp_path: Path) -> None:
    _world(tmp_path)
    smsgw = Path(sys.executable).with_name("smsgw")
    env = {**os.environ, "COLUMNS": "40", "LINES": "10"}
    out = subprocess.run(
        f"'{smsgw}' sims list --data-dir '{tmp_path}' </dev/null | cat",
        shell=True, env=env, capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    for value in (ICCID, IMSI, MSISDN, PORT):
        assert value in out
    assert "…" not in out


def test_a_terminal_table_never_cuts_identifiers_however_narrow() -> None:
    rows = [
        {"iccid": ICCID, "msisdn": MSISDN, "last_port": PORT, "error": None},
        {"iccid": "8901", "msisdn": "", "last_port": "COM3",
         "error": "+CMS ERROR: 38 network out of order, try again later"},
    ]  # fmt: skip
    columns = ["iccid", "msisdn", "last_port", "error"]
    plain = re.sub(r"\x1b\[[0-9;]*m", "", table(rows, columns, "SIMs", width=40))
    for value in (ICCID, MSISDN, PORT):
        assert value in plain  # on one line, whole
    assert "…" not in plain
    assert "ERROR: 38 network" in plain and "out of order, try again" in plain  # wraps at words
    roomy = re.sub(r"\x1b\[[0-9;]*m", "", table(rows, columns, "SIMs", width=300))
    assert "+CMS ERROR: 38 network out of order, try again later" in roomy
    assert tsv(rows, columns).splitlines()[1].split("\t") == [ICCID, MSISDN, PORT, ""]
