"""The BestSMSGateway spec's own PHP cURL samples, run by php-cli against a running `smsgw demo`.

The samples are read from the spec text itself; only the base URL, the credentials and the ids
they refer to are substituted. php-cli and php-curl come from `make test` (APT_PACKAGES), so a
missing php fails this test instead of skipping it.
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT.parent / "shared" / "specs"
STARTUP = 60.0


def find_spec(name: str) -> Path:
    """A spec from the shared inputs (next to the repo, like the vectors)."""
    for base in (SPECS, Path("/work/shared/specs")):
        if (base / name).exists():
            return base / name
    raise FileNotFoundError(name)


class Demo:
    """`smsgw demo` in a child process on a free port, with a fresh data directory."""

    def __init__(self, data_dir: Path, modems: int = 1) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        smsgw = Path(sys.executable).with_name("smsgw")
        self.proc = subprocess.Popen(
            [str(smsgw), "demo", "--modems", str(modems), "--port", str(self.port),
             "--data-dir", str(data_dir)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=ROOT,
            env={"PYTHONUNBUFFERED": "1", "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()
        self.account: dict[str, str] = {}
        self.sims: list[str] = []
        self.control = ""  # the socket `smsgw emulator send` talks to
        ready = False
        # Wait on the demo's own output: the account it prints, then its one "ready:" line
        # (every modem registered).
        while not self.account or not ready:
            try:
                line = self.lines.get(timeout=STARTUP)
            except queue.Empty:
                self.close()
                raise TimeoutError("smsgw demo did not come up") from None
            if line.startswith("demo account: "):
                self.account = json.loads(line.removeprefix("demo account: "))
            elif line.startswith("control: "):
                self.control = line.removeprefix("control: ").split()[0]
            elif "SIM number " in line:
                self.sims.append(line.split("SIM number ")[1].strip())
            elif line == f"ready: {modems}/{modems} modems registered":
                ready = True

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET a path with a query string; the decoded JSON answer."""
        url = f"{self.base}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    def inbox(self) -> list[dict[str, Any]]:
        """The demo account's inbox over the native API."""
        request = urllib.request.Request(
            f"{self.base}/v1/inbox", headers={"Authorization": f"Bearer {self.account['api_key']}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return list(json.loads(response.read())["messages"])

    def close(self) -> None:
        """SIGINT, as Ctrl-C would; the daemon shuts down cleanly."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    running = Demo(tmp_path_factory.mktemp("demo"))
    try:
        yield running
    finally:
        running.close()


def php_samples() -> list[str]:
    """Every `<?php ... ?>` sample in the BestSMSGateway spec, in order."""
    return re.findall(r"<\?php.*?\?>", find_spec("bestsmsgateway-api-v1.txt").read_text(), re.S)


def run_php(demo: Demo, sample: str, **ids: str) -> str:
    """Run one sample with the demo's URL and credentials (and the given ids) substituted."""
    php = shutil.which("php")
    assert php is not None, "php-cli is missing: `make test` installs php-cli and php-curl"
    code = (
        sample.replace("http://bestsmsgateway.com/api_v1", f"{demo.base}/api_v1")
        .replace("'001_mysub1'", f"'{demo.account['sub_account']}'")
        .replace("'pa55w0Rd'", f"'{demo.account['password']}'")
        .replace("'pa55w0R'", f"'{demo.account['password']}'")  # a typo in some samples
    )
    for old, new in ids.items():
        code = code.replace(old, new)
    # The spec's text lost the samples' line breaks, so a `//` comment would swallow the rest
    # of the script: end each comment where the next statement starts (` $` or ` );`).
    code = re.sub(r"(?<!:)//.*?(?=\s\$|\s\);)", "", code)
    result = subprocess.run(
        [php, "-d", "display_errors=stderr"], input=code, capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_php_sample_prints_what_the_spec_says(demo: Demo) -> None:
    samples = php_samples()
    actions = [re.search(r"'action'=>'(\w+)'", s).group(1) for s in samples]  # type: ignore[union-attr]
    assert actions == ["send_sms", "fetch_sms", "account_info", "stop_sms", "save_contacts",
                       "fetch_contacts", "get_contact_groups", "delete_contacts"]  # fmt: skip
    by_action = dict(zip(actions, samples, strict=True))
    auth = {"sub_account": "demo", "sub_account_pass": demo.account["password"]}

    assert run_php(demo, by_action["send_sms"]) == "SMS sent to 2 recipient(s)."

    # A scheduled batch for the samples that take a batch_id (so stop_sms has work to stop).
    later = demo.get("/api_v1", {**auth, "action": "send_sms", "send_at": "2099-01-01 10:00",
                                 "message": "Hello, there will be a meeting today by 12 noon.",
                                 "recipients": "08086689567,2348094309926"})  # fmt: skip
    batch = later["batch_id"]
    listing = run_php(demo, by_action["fetch_sms"], **{"1_1_1437039374": batch})
    assert listing == (
        "2 SMS records, page 1 of 1<br/> <ol>"
        "<li>To: 2348094309926<br/> Hello, there will be a meeting today by 12 noon.</li>"
        "<li>To: 448086689567<br/> Hello, there will be a meeting today by 12 noon.</li></ol>"
    )
    assert run_php(demo, by_action["account_info"]) == "Balance: unlimited"
    stopped = run_php(demo, by_action["stop_sms"], **{"1_1_1437039374": batch})
    assert stopped == "2 messages stopped"

    assert run_php(demo, by_action["save_contacts"]) == "2 contact(s) has been saved."
    # The sample searches "ibukun" in "My Customers", but its own data saved Ibukun under the
    # group_name of his JSON record ("Client"): so the listing is empty, as the spec implies.
    assert run_php(demo, by_action["fetch_contacts"]) == (
        "0 Contacts in total, page 1 of 0<br/> <ol></ol>"
    )
    assert run_php(demo, by_action["fetch_contacts"], **{"'My Customers'": "'Client'"}) == (
        "1 Contacts in total, page 1 of 1<br/> <ol><li>+448086689567<br/> Ibukun Oladipo"
        " (Client)</li></ol>"
    )
    # The get_contact_groups sample prints a `balance` its answer does not have (a bug in the
    # sample); what matters is that the request succeeded: no error text, no HTTP error.
    assert run_php(demo, by_action["get_contact_groups"]) == "Balance: "
    groups = demo.get("/api_v1", {**auth, "action": "get_contact_groups"})
    assert groups == {"contact_groups": {"Client": "1", "My Customers": "1"}}

    contacts = demo.get("/api_v1", {**auth, "action": "fetch_contacts"})["records"]
    ids = ",".join(c["contact_id"] for c in contacts)
    assert run_php(demo, by_action["delete_contacts"], **{"'5,7'": f"'{ids}'"}) == (
        "Total deleted contacts: 2"
    )
    # Unchanged ids that do not exist get the spec's error text.
    assert run_php(demo, by_action["delete_contacts"]) == "no record found."


def test_every_get_example_url_answers(demo: Demo) -> None:
    text = find_spec("bestsmsgateway-api-v1.txt").read_text()
    urls = re.findall(r"^http://bestsmsgateway\.com/api_v1\?\S+$", text, re.M)
    assert len(urls) == 8
    for url in urls:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        query.update(sub_account="demo", sub_account_pass=demo.account["password"])
        answer = demo.get("/api_v1", query)
        if query["action"] in ("stop_sms", "delete_contacts"):  # ids from the spec's own account
            assert answer == {"error": "no record found.", "error_code": "10"}, url
        else:
            assert "error" not in answer, (url, answer)
