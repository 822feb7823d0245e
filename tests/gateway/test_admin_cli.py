"""The owner's CLI: accounts, send, outbox, sims, modems, db, over one data directory."""

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.store import Store


def _run(*args: str, data_dir: Path) -> str:
    result = CliRunner().invoke(main, [*args, "--data-dir", str(data_dir)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout  # notes go to stderr


def test_owner_workflow(tmp_path: Path) -> None:
    creds = json.loads(
        _run("accounts", "create", "shop", "--credits", "5", "--dial-code", "44", data_dir=tmp_path)
    )
    assert set(creds) == {"sub_account", "password", "api_key", "email", "token", "unlimited",
                          "credits", "default_dial_code"}  # fmt: skip
    assert (creds["unlimited"], creds["credits"], creds["default_dial_code"]) == (False, 5, "44")
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("07700900001\n\n+15551230002\nnot-a-number\n")
    sent = json.loads(
        _run("send", "--account", "shop", "--file", str(numbers), "Hello there", data_dir=tmp_path)
    )
    assert len(sent["message_ids"]) == 2
    assert sent["rejected"][0]["to"] == "not-a-number"
    outbox = json.loads(_run("outbox", "--account", "shop", "--json", data_dir=tmp_path))
    assert sorted(m["recipient"] for m in outbox) == ["+15551230002", "+447700900001"]
    assert {m["state"] for m in outbox} == {"queued"}
    credits = json.loads(_run("accounts", "credits", "shop", "--add", "10", data_dir=tmp_path))
    assert credits == {"sub_account": "shop", "credits": 13}  # 5 - 2 + 10

    store = Store.open(tmp_path)
    store.bind_sim(iccid="8944000000000000009", imsi=None, now=datetime.now(UTC))
    store.close()
    _run("sims", "set-number", "8944000000000000009", "+447700900099", data_dir=tmp_path)
    limits = json.loads(
        _run(
            "sims",
            "set-limits",
            "8944000000000000009",
            "--interval",
            "6",
            "--per-hour",
            "100",
            data_dir=tmp_path,
        )
    )
    assert limits["throttle_interval"] == 6
    (sim,) = json.loads(_run("sims", "list", "--json", data_dir=tmp_path))
    assert (sim["msisdn"], sim["throttle_interval"]) == ("+447700900099", 6.0)

    backup = tmp_path / "backup.sqlite3"
    assert "backup written" in _run("db", "backup", str(backup), data_dir=tmp_path)
    copy = Store.open(backup)
    assert copy.count_by_state("messages") == {"queued": 2}
    copy.close()


def test_errors_are_clear(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main, ["send", "--account", "nobody", "--to", "+1", "hi", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code != 0
    assert "no account 'nobody'" in result.output
    result = runner.invoke(main, ["sims", "set-number", "123", "+1", "--data-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "no SIM with ICCID 123" in result.output
    result = runner.invoke(
        main, ["sims", "set-limits", "123", "--interval", "0.1", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code != 0  # below the 1 s floor of the provider specs


def _fails(*args: str, data_dir: Path) -> str:
    result = CliRunner().invoke(main, [*args, "--data-dir", str(data_dir)])
    assert result.exit_code != 0
    return result.output


def test_a_new_account_is_unlimited_with_the_sims_country(tmp_path: Path) -> None:
    fresh = json.loads(_run("accounts", "create", "early", data_dir=tmp_path))
    assert (fresh["unlimited"], fresh["default_dial_code"]) == (True, None)  # no SIM seen yet
    store = Store.open(tmp_path)
    store.bind_sim(iccid="8944000000000000001", imsi="234150000000001", now=datetime.now(UTC))
    store.close()
    later = json.loads(_run("accounts", "create", "later", data_dir=tmp_path))
    assert (later["unlimited"], later["default_dial_code"]) == (True, "44")
    (early, _) = json.loads(_run("accounts", "list", "--json", data_dir=tmp_path))
    assert (early["default_dial_code"], early["dial_code"]) == ("", "44")  # decided at send time
    sent = json.loads(_run("send", "--account", "early", "--to", "07700900123", "hi",
                           data_dir=tmp_path))  # fmt: skip
    assert (len(sent["message_ids"]), sent["rejected"]) == (1, [])
    assert "not a country calling code" in _fails(
        "accounts", "create", "bad", "--dial-code", "999", data_dir=tmp_path
    )
    assert "exists" in _fails("accounts", "create", "later", data_dir=tmp_path)


def test_grant_and_revoke_sims(tmp_path: Path) -> None:
    a, b = "8944000000000000001", "8944000000000000002"
    store = Store.open(tmp_path)
    for iccid in (a, b):
        store.bind_sim(iccid=iccid, imsi=None, now=datetime.now(UTC))
    store.close()
    _run("accounts", "create", "shop", data_dir=tmp_path)
    assert "no SIM with ICCID 8900" in _fails("accounts", "grant", "shop", a, "8900",
                                              data_dir=tmp_path)  # fmt: skip
    assert json.loads(_run("accounts", "list", "--json", data_dir=tmp_path))[0]["sims"] == []
    granted = json.loads(_run("accounts", "grant", "shop", a, b, data_dir=tmp_path))
    assert granted == {"sub_account": "shop", "sims": [a, b]}
    assert json.loads(_run("accounts", "revoke", "shop", a, data_dir=tmp_path))["sims"] == [b]
    # Taking the last one would let the account use every SIM: only when asked for.
    assert "--allow-all" in _fails("accounts", "revoke", "shop", b, data_dir=tmp_path)
    assert json.loads(_run("accounts", "list", "--json", data_dir=tmp_path))[0]["sims"] == [b]
    result = CliRunner().invoke(
        main, ["accounts", "revoke", "shop", b, "--allow-all", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"sub_account": "shop", "sims": []}
    assert "may use every SIM" in result.stderr


def test_commands_with_piped_output_start_no_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A progress bar's refresh thread may still be alive when the command returns (the leak
    # check caught it under load): piped, there is no bar and so no thread at all.
    _run("accounts", "create", "shop", "--credits", "2", data_dir=tmp_path)
    started: list[str] = []
    original = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        started.append(thread.name)
        original(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("+15551230001\n+15551230002\n")
    _run("send", "--account", "shop", "--file", str(numbers), "hi", data_dir=tmp_path)
    assert "backup written" in _run("db", "backup", str(tmp_path / "b.sqlite3"), data_dir=tmp_path)
    assert started == []


def test_account_policy(tmp_path: Path) -> None:
    _run("accounts", "create", "shop", data_dir=tmp_path)
    shown = json.loads(_run("accounts", "policy", "shop", data_dir=tmp_path))
    assert shown == {"sub_account": "shop", "allow_unicode": True, "allow_long": True,
                     "allow_international": True, "allow_topup": False}  # fmt: skip
    changed = json.loads(
        _run("accounts", "policy", "shop", "--no-unicode", "--topup", data_dir=tmp_path)
    )
    assert (changed["allow_unicode"], changed["allow_long"], changed["allow_topup"]) == (
        False, True, True)  # fmt: skip


def test_a_reply_url_in_the_sms_everyone_format(tmp_path: Path) -> None:
    _run("accounts", "create", "shop", data_dir=tmp_path)
    url = "http://example.com/sms.aspx?username=xyz&password=xyz"
    shown = json.loads(
        _run("accounts", "webhooks", "shop", "--on-reply", url, "--format", "smseveryone",
             data_dir=tmp_path)
    )  # fmt: skip
    assert shown["webhooks"]["reply"] == {"url": url, "format": "smseveryone"}
