"""The operator's commands: `smsgw admin set-password`, install offering it, `smsgw top`."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.accounts import create_account
from gateway.cli import main
from gateway.cli.appliance import _offer_admin_password
from gateway.models import PartState
from gateway.service import GatewayService
from gateway.store import Store
from tests.appliance.test_install import fake_root
from tests.gateway.test_operator_view import T0, _send


def test_admin_set_password_cli_reads_stdin_and_refuses_without_a_terminal(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["admin", "set-password", "--data-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "--password-stdin" in result.output
    result = runner.invoke(
        main,
        ["admin", "set-password", "--password-stdin", "--data-dir", str(tmp_path)],
        input="a long passphrase\n",
    )
    assert result.exit_code == 0, result.output
    store = Store.open(tmp_path)
    try:
        assert GatewayService(store, wall=lambda: T0).check_admin_password("a long passphrase")
    finally:
        store.close()


def test_install_offers_the_admin_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = fake_root(tmp_path)
    result = CliRunner().invoke(main, ["install", "--dry-run", "--root", str(root)])
    assert "would: offer to set the dashboard admin password" in result.output
    data_dir = root / "var/lib/smsgw"
    data_dir.mkdir(parents=True)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # no terminal, no flag: only a hint
    assert not _offer_admin_password(data_dir, dry_run=False, from_stdin=False)
    assert "next: set the dashboard admin password" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("install time secret\n"))
    assert _offer_admin_password(data_dir, dry_run=False, from_stdin=True)
    assert not _offer_admin_password(data_dir, dry_run=False, from_stdin=False)
    assert "already done: the dashboard admin password is set" in capsys.readouterr().out
    store = Store.open(data_dir)
    try:
        assert GatewayService(store, wall=lambda: T0).check_admin_password("install time secret")
    finally:
        store.close()


def test_top_prints_one_frame_when_piped(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    account = create_account(store, "shop", now=T0).account_id
    sim = store.bind_sim(iccid="8944000000000000011", imsi=None, msisdn="+447700900011", now=T0)
    _send(store, account, sim, PartState.DELIVERED, datetime.now(UTC))
    store.record_radio(sim, signal_dbm=-71, registration="home", operator="Test Network", now=T0)
    store.close()
    result = CliRunner().invoke(main, ["top", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "+447700900011" in result.output
    assert "Test Network" in result.output and "-71 dBm" in result.output
    assert "1 sent" in result.output
