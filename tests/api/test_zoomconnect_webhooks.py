"""Zoom Connect webhook formatting (pure functions over the engine's event data): replies as the
spec's example forwards them, delivery reports as status + messageId."""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime

import pytest

from api.zoomconnect import (
    WEBHOOK_FORMAT,
    format_webhook,
    reply_params,
    report_params,
    webhook_post,
)
from gateway.webhooks import WebhookEvent, WebhookKind, format_names

REPLY = {
    "inbound_id": 62283,
    "from": "+27725551234",
    "to": "+27820000001",
    "text": "REPLY",
    "received_at": "2014-04-28T20:55:31.000000+00:00",
    "parts": 1,
    "replied_to_message_id": 60606,
    "replied_to_extra": {"campaign": "shoe campaign", "dataField": "custom"},
}


def test_reply_fields_as_the_spec_example() -> None:
    assert reply_params(REPLY) == [
        ("from", "+27725551234"),
        ("repliedToMessageId", "121212"),  # sent message 60606 is messageId 2 * 60606
        ("messageId", "124567"),  # received message 62283 is 2 * 62283 + 1
        ("message", "REPLY"),
        ("date", "201404282055"),  # yyyyMMddHHmm
        ("campaign", "shoe campaign"),
        ("dataField", "custom"),
    ]


def test_reply_to_nothing_we_sent() -> None:
    params = dict(reply_params({**REPLY, "replied_to_message_id": None, "replied_to_extra": {}}))
    assert (params["repliedToMessageId"], params["campaign"], params["dataField"]) == ("", "", "")


def test_reply_post_carries_the_values_in_the_url_and_the_body() -> None:
    method, url, body = webhook_post("http://yourserver.com/receive-sms.php", reply_params(REPLY))
    assert method == "POST"
    assert url == (
        "http://yourserver.com/receive-sms.php?from=%2B27725551234&repliedToMessageId=121212"
        "&messageId=124567&message=REPLY&date=201404282055&campaign=shoe+campaign"
        "&dataField=custom"
    )
    assert urllib.parse.parse_qsl(body.decode()) == reply_params(REPLY)
    # A URL that has a query of its own keeps it.
    _, url, _ = webhook_post("http://x.example/hook?key=1", [("status", "DELIVERED")])
    assert url == "http://x.example/hook?key=1&status=DELIVERED"


def test_reply_text_survives_any_characters() -> None:
    text = "Ja 👍 & = ? % +27"
    _, url, body = webhook_post("http://x.example/r", reply_params({**REPLY, "text": text}))
    assert dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))["message"] == text
    assert dict(urllib.parse.parse_qsl(body.decode()))["message"] == text


STATUS = {
    "message_id": 20062106,
    "previous_state": "sent",
    "recipient": "+15005550000",
    "sender": "+27820000001",
    "part_id": 9,
    "tp_status": 0,
    "error": None,
    "at": "2026-11-22T09:01:00+00:00",
    "extra": {"campaign": "c"},
}


@pytest.mark.parametrize(
    ("state", "previous", "error", "expected"),
    [
        ("delivered", "sent", None, "DELIVERED"),
        ("failed", "sent", "Undeliverable (network report TP-ST 0x41)", "FAILED"),
        ("expired", "sent", None, "FAILED"),
        ("failed", "sending", "+CMS ERROR: 21", "FAILED_REFUNDED"),  # never reached the network
        ("failed", "queued", "recipient opted out (STOP)", "FAILED_OPTOUT"),
        ("cancelled", "queued", None, "FAILED_REFUNDED"),
    ],
)
def test_delivery_report_status(state: str, previous: str, error: str | None,
                                expected: str) -> None:  # fmt: skip
    params = report_params({**STATUS, "state": state, "previous_state": previous, "error": error})
    assert params == [("status", expected), ("messageId", "40124212")]


@pytest.mark.parametrize("state", ["queued", "sending", "sent", "uncertain", "accepted"])
def test_changes_that_are_no_delivery_report(state: str) -> None:
    assert report_params({**STATUS, "state": state}) is None


def test_a_later_part_of_a_settled_message_is_no_second_report() -> None:
    # Part 1 failed (the message failed: reported); part 2's report leaves it failed.
    assert report_params({**STATUS, "state": "failed", "previous_state": "failed",
                          "tp_status": 0}) is None  # fmt: skip


def test_the_engine_formatter() -> None:
    created = datetime(2014, 4, 28, 20, 55, tzinfo=UTC)
    reply = WebhookEvent("evt_1", WebhookKind.REPLY, 1, created, REPLY)
    request = format_webhook(reply, "http://yourserver.com/receive-sms.php")
    assert request is not None
    assert (request.method, request.headers) == (
        "POST",
        (("Content-Type", "application/x-www-form-urlencoded"),),
    )
    assert request.url.startswith("http://yourserver.com/receive-sms.php?from=%2B27725551234&")
    assert urllib.parse.parse_qsl(request.body.decode()) == reply_params(REPLY)
    settled = WebhookEvent("evt_2", WebhookKind.STATUS, 1, created,
                           {**STATUS, "state": "delivered"})  # fmt: skip
    request = format_webhook(settled, "http://yourserver.com/delivery/report.php")
    assert request is not None
    assert request.url == (
        "http://yourserver.com/delivery/report.php?status=DELIVERED&messageId=40124212"
    )
    on_its_way = WebhookEvent("evt_3", WebhookKind.STATUS, 1, created, {**STATUS, "state": "sent"})
    assert format_webhook(on_its_way, "http://yourserver.com/delivery/report.php") is None
    assert WEBHOOK_FORMAT in format_names()  # registered when the dialect is imported
