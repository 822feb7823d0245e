"""Zoom Connect from the outside: a `requests`-only SDK-style script (URL-parameter auth, JSON
bodies, `null` on GET) and curl with each auth form, against a running `smsgw demo`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modem.emulator import MAGIC_DELIVERED
from tests.api.test_php_samples import ROOT, Demo

SCRIPT = Path(__file__).parent / "clients" / "zoomconnect_sdk.py"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    running = Demo(tmp_path_factory.mktemp("zoomdemo"))
    try:
        yield running
    finally:
        running.close()


def test_sdk_script_drives_contacts_groups_send_and_report(demo: Demo) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), f"{demo.base}/app/", demo.account["email"],
         demo.account["token"], MAGIC_DELIVERED],
        capture_output=True, text=True, timeout=90, cwd=ROOT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    contact = out["contact"]
    assert contact == {"contactId": contact["contactId"], "contactNumber": MAGIC_DELIVERED,
                       "firstName": "Dlamini", "lastName": "Thandi", "title": "Ms",
                       "links": []}  # fmt: skip
    assert contact in out["contacts"]
    assert out["group"]["name"] == "SDK customers"
    assert out["analysis"]["messageEncoding"] == "GSM7"
    assert out["analysis"]["numberOfMessages"] == 1
    assert out["sent"]["error"] is None
    message = out["message"]
    assert message["messageId"] == out["sent"]["messageId"]
    assert message["messageStatus"] == "DELIVERED"  # the emulated network's status report
    assert (message["toNumber"], message["campaign"], message["userDataField"]) == (
        MAGIC_DELIVERED,
        "sdk",
        "order-1",
    )
    assert message["fromNumber"] in demo.sims
    assert message["dateTimeSent"] is not None
    assert message["contact"] == {"contactId": contact["contactId"], "links": []}
    assert [m["messageId"] for m in out["report"]["webServiceMessages"]] == [message["messageId"]]
    assert out["missing"] == {"status": 404, "code": 7}
    assert out["balance_before"] == out["balance_after"] == 2147483647.0  # demo is unlimited


@pytest.mark.parametrize("form", ["headers", "basic", "url"])
def test_curl_each_auth_form(demo: Demo, form: str) -> None:
    email, token = demo.account["email"], demo.account["token"]
    url = f"{demo.base}/app/api/rest/v1/account/balance"
    args = {
        "headers": ["-H", f"email: {email}", "-H", f"token: {token}", url],
        "basic": ["-u", f"{email}:{token}", url],
        "url": [f"{url}?email={email}&token={token}"],
    }[form]
    done = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True,
                          text=True, timeout=30, check=True, stdin=subprocess.DEVNULL)  # fmt: skip
    body, status = done.stdout.rsplit("\n", 1)
    assert (status, json.loads(body)) == ("200", {"creditBalance": 2147483647.0, "links": []})
    done = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", url], capture_output=True,
                          text=True, timeout=30, check=True)  # fmt: skip
    assert done.stdout.rsplit("\n", 1)[1] == "401"
