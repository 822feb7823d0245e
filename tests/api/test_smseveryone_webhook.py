"""The SMS Everyone replies webhook: the spec's HTTP GET, built from a reply event's data alone
(a pure function: no engine, no network)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from api.smseveryone import reply_webhook_url

REPLY = {
    "inbound_id": 9,
    "from": "+61402756334",
    "to": "+61429848254",
    "text": "Hello",
    "received_at": "2020-07-27T00:01:10+00:00",
    "parts": 1,
    "replied_to_message_id": 41,
    "replied_to_extra": {"Reference": "4255525", "CampaignId": 12},
}


def query(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def test_the_spec_example_string() -> None:
    url = reply_webhook_url(REPLY, "http://yourwebsite.aspx?username=xyz&password=xyz")
    assert url == (
        "http://yourwebsite.aspx?username=xyz&password=xyz&originator=61402756334"
        "&recipient=61429848254&reference=4255525&message_text=Hello"
    )  # the spec's "Example HTTP GET String", byte for byte


def test_reference_falls_back_to_the_campaign_then_nothing() -> None:
    no_reference = {**REPLY, "replied_to_extra": {"CampaignId": 12}}
    assert dict(query(reply_webhook_url(no_reference, "https://h/r")))["reference"] == "12"
    unrelated = {**REPLY, "replied_to_message_id": None, "replied_to_extra": {}}
    assert dict(query(reply_webhook_url(unrelated, "https://h/r")))["reference"] == ""


def test_text_is_encoded_and_the_subscriber_query_kept() -> None:
    reply = {**REPLY, "text": "Can we make it 8pm? 😀 & more=yes", "to": ""}
    url = reply_webhook_url(reply, "https://example.com/sms/in?key=a%20b&originator=stale")
    assert url.startswith("https://example.com/sms/in?")
    assert query(url) == [
        ("key", "a b"),
        ("originator", "61402756334"),  # ours, not a stale one left in the URL
        ("recipient", ""),
        ("reference", "4255525"),
        ("message_text", "Can we make it 8pm? 😀 & more=yes"),
    ]


def test_the_format_is_registered_and_sends_only_replies() -> None:
    from datetime import UTC, datetime

    from api.smseveryone import WEBHOOK_FORMAT, webhook_request
    from gateway.webhooks import WebhookEvent, WebhookKind, format_names

    assert WEBHOOK_FORMAT in format_names()
    at = datetime(2020, 7, 27, tzinfo=UTC)
    reply = WebhookEvent("evt_1", WebhookKind.REPLY, 1, at, REPLY)
    request = webhook_request(reply, "http://yourwebsite.aspx?username=xyz&password=xyz")
    assert request is not None
    assert (request.method, request.body, request.headers) == ("GET", b"", ())
    assert request.url.endswith("&reference=4255525&message_text=Hello")
    status = WebhookEvent("evt_2", WebhookKind.STATUS, 1, at, {"message_id": 1, "state": "sent"})
    assert webhook_request(status, "http://example.com/dr") is None  # no such webhook there
