"""The owner's CLI for the Zoom Connect credentials: --email, tokens, URL-sending tokens and
templates; each works against the service the API uses."""

import json
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from gateway.cli import main
from gateway.service import GatewayService, UnknownAccountError
from gateway.store import Store


def _run(*args: str, data_dir: Path, ok: bool = True) -> str:
    result = CliRunner().invoke(main, [*args, "--data-dir", str(data_dir)], catch_exceptions=False)
    assert (result.exit_code == 0) is ok, result.output
    return result.output


def _service(data_dir: Path) -> tuple[Store, GatewayService]:
    store = Store.open(data_dir)
    return store, GatewayService(store, wall=lambda: datetime.now(UTC))


def test_email_token_send_token_and_templates(tmp_path: Path) -> None:
    creds = json.loads(_run("accounts", "create", "shop", "--email", "Shop@Example.com",
                            "--dial-code", "27", data_dir=tmp_path))  # fmt: skip
    assert creds["email"] == "Shop@Example.com"
    out = _run("accounts", "create", "copy", "--email", "shop@example.com", data_dir=tmp_path,
               ok=False)  # fmt: skip
    assert "already has the email" in out

    store, service = _service(tmp_path)
    try:
        assert service.account_by_email_token("shop@example.com", creds["token"])["id"] == 1
    finally:
        store.close()

    fresh = json.loads(_run("accounts", "token", "shop", data_dir=tmp_path))
    send = json.loads(_run("accounts", "send-token", "shop", data_dir=tmp_path))
    store, service = _service(tmp_path)
    try:
        assert service.account_by_email_token("shop@example.com", fresh["token"])["id"] == 1
        for stale in (creds["token"], send["send_token"]):
            try:
                service.account_by_email_token("shop@example.com", stale)
            except UnknownAccountError:
                pass
            else:
                raise AssertionError("an old or URL-sending token opened the REST API")
        assert service.account_by_send_token(send["send_token"])["id"] == 1
    finally:
        store.close()

    added = json.loads(_run("templates", "add", "shop", "Welcome", "Hi {name}!", data_dir=tmp_path))
    assert added == {"templateId": 1, "name": "Welcome"}
    listed = json.loads(_run("templates", "list", "shop", "--json", data_dir=tmp_path))
    assert [(t["id"], t["name"], t["data"]) for t in listed] == [(1, "Welcome", "Hi {name}!")]
    assert json.loads(_run("templates", "delete", "shop", "1", data_dir=tmp_path)) == {
        "deleted": 1}  # fmt: skip
    assert "no template 1" in _run("templates", "delete", "shop", "1", data_dir=tmp_path, ok=False)
    assert "no account" in _run("templates", "list", "nobody", data_dir=tmp_path, ok=False)
