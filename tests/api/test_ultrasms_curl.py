"""Every example URL of the UltraSMSScript and SMSit specs, run with curl against `smsgw demo`.

The URLs are read from the specs; their placeholders (APIKEY, GROUPNAME, FROMNUMBER, ...) get
the demo's values, and each call must succeed (no negative return code).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.test_php_samples import Demo, find_spec

CONTACT = "447481340516"  # the spec's UK example number


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    running = Demo(tmp_path_factory.mktemp("demo"))
    try:
        yield running
    finally:
        running.close()


def example_urls(spec: str) -> list[str]:
    """The spec's example calls, in order."""
    text = find_spec(spec).read_text()
    return re.findall(r"(https?://\S+/apis/\w+/\?\S+?)(?=\s|\||$)", text)


def curl(url: str) -> Any:
    binary = shutil.which("curl")
    assert binary is not None, "curl is missing: `make test` installs it"
    result = subprocess.run([binary, "-sS", "--max-time", "10", url], capture_output=True,
                            text=True, timeout=20, check=True)  # fmt: skip
    return json.loads(result.stdout)


def test_every_example_url_succeeds(demo: Demo) -> None:
    # The group the examples send to must exist first (the spec: "must be a valid group name
    # that already exists"); Mark is the SMSit getcontacts example's contact.
    saved = demo.get("/api_v1", {
        "sub_account": "demo", "sub_account_pass": demo.account["password"],
        "action": "save_contacts", "group_name": "Customers",
        "contacts": json.dumps([{"phone": "447700900123", "firstname": "Mark"}])})  # fmt: skip
    assert saved == {"total": "1"}
    values = {
        "APIKEY": demo.account["api_key"],
        "GROUPNAME": "Customers",
        "PHONENUMBER": CONTACT,
        "NAME": "Jimmy",
        "EMAIL": "jimmy@example.com",
        "BDAY": "1990-01-31",
        "FROMNUMBER": demo.sims[0].lstrip("+"),
        "MESSAGE": urllib.parse.quote("Hello from curl"),
        "CONTACTNUMBER": CONTACT,
        "NUMBER": CONTACT,
        "TYPE": "1",
        "STATUS": "1",
    }
    ultra = example_urls("ultrasmsscript-api.txt")
    smsit = example_urls("smsit-decentralized-api.txt")
    assert len(ultra) == 8 and len(smsit) == 8
    answers: dict[str, list[Any]] = {}
    for spec_urls, appointment in ((ultra, "20-03-2027 19:30"), (smsit, "21-03-2027 19:30")):
        for example in spec_urls:
            parts = urllib.parse.urlsplit(example)
            call = parts.path.strip("/").split("/")[-1]
            local = dict(values, APPTDATE=urllib.parse.quote(appointment))
            if answers.get("smsgroup"):
                local["GROUPSMSID"] = str(answers["smsgroup"][-1])
            if call == "validateOtp":
                # generateOTP without a number leaves the code in the account's inbox
                (code,) = re.findall(r"\d{6}", demo.inbox()[0]["text"])
                local["OTP"] = code
            query = re.sub(r"=([A-Z]+)(?=&|$)", lambda m, v=local: "=" + v[m.group(1)],
                           parts.query)  # fmt: skip
            answer = curl(f"{demo.base}{parts.path}?{query}")
            answers.setdefault(call, []).append(answer)
            assert not (isinstance(answer, int) and answer < 0), (example, answer)
    assert answers["addcontact"] == [0]
    assert [c["name"] for c in answers["getcontacts"][0]] == ["Jimmy"]
    assert [c["name"] for c in answers["getcontacts"][1]] == ["Mark"]
    assert all(isinstance(i, int) and i > 0 for i in answers["smsgroup"])
    assert answers["smscontact"] == [0]
    assert all(set(r) == {"successful", "failed"} for r in answers["getbulksmsdeliveryreport"])
    assert all(set(r) == {"smsstatus", "errormsg"} for r in answers["getcontactsmsdeliveryreport"])
    assert answers["addappointment"] == [0, 0]
    assert (answers["generateOTP"], answers["validateOtp"]) == ([0], [0])
