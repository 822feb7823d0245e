"""Every JSON request example of the SMS Everyone spec, sent with curl to a running `smsgw
demo` as written, but for the demo's SIM numbers as Originator, the ids the demo gave out, and
2030 for 2020 (so the scheduled examples are still in the future)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.test_php_samples import Demo
from tests.api.test_smseveryone import example

# (caption of the request example, resource, the answer's Code we expect, or None: no Code)
REQUESTS: list[tuple[str, str, int | None]] = [
    ("CREATE - To create a list", "crm", None),
    ("Send a message to one recipient", "campaign", 0),
    ("Send a message to two recipients", "campaign", 0),
    ("Schedule a message to five", "campaign", 0),
    ("Add 5 more numbers", "campaign", 0),
    ("Send an SMS to a stored list", "campaign", 0),
    ("To check the status of a campaign", "campaign", 0),
    ("To modify the message text", "campaign", 0),
    ("You can attempt to pause a campaign", "campaign", 0),
    ("To unpause a campaign", "campaign", 0),
    ("Checking for delivery status of all", "DRStatus", None),
    ("Checking for delivery status of just", "DRStatus", None),
    ("To test replies without us flagging", "replies", None),
    ("To retrieve all replies on your account", "replies", None),
    ("To check replies for the last 2 days", "replies", None),
    ("To check replies for a date range.", "replies", None),
    ("To opt out (unsubscribe) the numbers", "optouts", 0),
    ("To opt the number 61400123456 back in", "optouts", 0),
    ("To retrieve a list of all opted out", "optouts", None),
    ("LIST - To retrieve a list of all", "crm", None),
    ("DETAILS - To retrieve all", "crm", None),
    ("APPEND - To add 2 more", "crm", 0),
    ("REMOVE - To remove a number", "crm", 0),
    ("DELETE - To delete the above list.", "crm", 0),
    ("To cancel/delete a campaign", "campaign", 0),
    ("To add 1000 credits to an account:", "credits", -129),  # the demo is not approved
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    running = Demo(tmp_path_factory.mktemp("demo"), modems=2)
    try:
        yield running
    finally:
        running.close()


def curl(demo: Demo, resource: str, body: str) -> tuple[int, Any]:
    binary = shutil.which("curl")
    assert binary is not None, "curl is missing: `make test` installs it"
    result = subprocess.run(
        [binary, "-sS", "--max-time", "10", "-X", "POST", f"{demo.base}/api/{resource}",
         "-u", f"demo:{demo.account['password']}", "-H", "Content-Type: application/json",
         "--data-binary", "@-", "-w", "\n%{http_code}"],
        input=body.encode(), capture_output=True, timeout=20, check=True,
    )  # fmt: skip
    text, _, status = result.stdout.decode().rpartition("\n")
    return int(status), json.loads(text)


def test_every_request_example_with_curl(demo: Demo) -> None:
    sims = [s.lstrip("+") for s in demo.sims]
    ids: dict[str, str] = {}
    answers = []
    for caption, resource, code in REQUESTS:
        _, found = example(caption)
        body = (
            found.text.replace("61400190499", sims[0]).replace("61400111222", sims[1])
            .replace('"2020', '"2030')
        )  # fmt: skip
        for old, new in ids.items():  # whole numbers only: 1234 is not in 1234567
            body = re.sub(rf"(?<!\d){old}(?!\d)", new, body)
        status, answer = curl(demo, resource, body)
        assert status == 200, (caption, answer)
        if code is None:
            assert "Code" not in answer or answer["Code"] == 0, (caption, answer)
        else:
            assert answer["Code"] == code, (caption, answer)
        answers.append(answer)
        if caption.startswith("CREATE"):
            for placeholder in ("4398", "1234", "14456"):
                ids[placeholder] = str(answer["CrmId"])
        if caption.startswith("Schedule"):
            for placeholder in ("11967218", "111626243", "11967215"):
                ids[placeholder] = str(answer["CampaignId"])
    created = {a["CampaignId"] for a in answers[1:6]}
    assert len(created) == 4  # "add 5 more numbers" went into the scheduled campaign
    assert answers[6] == {"Message": "Scheduled", "Code": 0}
    assert answers[7]["Messages"] == 10  # modified: the ten numbers still scheduled
    assert answers[-2] == {"Message": "Deleted", "Code": 0}
