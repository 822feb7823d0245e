"""A Zoom Connect client written the way the provider's SDKs are: `requests` only, the email
and token as URL parameters, JSON bodies (`null` when a call has none).

Run as a script it drives contacts -> groups -> send -> report against a base URL and prints
one JSON summary line:

    python zoomconnect_sdk.py http://box:8080/app/ EMAIL TOKEN NUMBER
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import requests


class ZoomConnectError(Exception):
    """A non-2xx answer, with the API's error body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


class ZoomConnect:
    """The REST v1 calls this script needs, as an SDK wraps them."""

    def __init__(self, base_url: str, email: str, token: str, timeout: float = 10.0) -> None:
        self.base = base_url.rstrip("/") + "/api/rest/v1/"
        self.auth = {"email": email, "token": token}
        self.session = requests.Session()
        self.timeout = timeout

    def do(
        self, method: str, path: str, req: Any = None, param: dict[str, Any] | None = None
    ) -> Any:
        response = self.session.request(
            method,
            self.base + path,
            params={**self.auth, **(param or {})},
            data=json.dumps(req),  # None goes as the JSON literal null, as the SDKs send it
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            timeout=self.timeout,
        )
        body = response.json() if response.text else None
        if not response.ok:
            raise ZoomConnectError(response.status_code, body)
        return body

    def get_account_balance(self) -> Any:
        return self.do("GET", "account/balance")

    def create_contact(self, first_name: str, last_name: str, number: str, title: str) -> Any:
        return self.do(
            "POST",
            "contacts/create",
            {
                "firstName": first_name,
                "lastName": last_name,
                "contactNumber": number,
                "title": title,
            },
        )

    def get_contacts_all(self) -> Any:
        return self.do("GET", "contacts/all")

    def create_group(self, name: str) -> Any:
        return self.do("POST", "groups/create", {"name": name, "links": None})

    def add_contact_to_group(self, contact_id: str, group_id: str) -> Any:
        return self.do("GET", f"contacts/{contact_id}/addToGroup/{group_id}")

    def get_group(self, group_id: str) -> Any:
        return self.do("GET", f"groups/{group_id}")

    def send_sms(
        self,
        number: str,
        message: str,
        campaign: str | None = None,
        data_field: str | None = None,
        date_to_send: str | None = None,
    ) -> Any:
        return self.do(
            "POST",
            "sms/send",
            {
                "recipientNumber": number,
                "message": message,
                "campaign": campaign,
                "dataField": data_field,
                "dateToSend": date_to_send,
            },
        )

    def get_message(self, message_id: str) -> Any:
        return self.do("GET", f"messages/{message_id}")

    def get_messages(self, **filters: Any) -> Any:
        return self.do("GET", "messages/all", param=filters)

    def analyse(self, message: str, number: str) -> Any:
        return self.do(
            "POST", "messages/analyse/full", {"message": message, "recipientNumber": number}
        )


def main(base: str, email: str, token: str, number: str) -> dict[str, Any]:
    """contacts -> groups -> send -> report; what each step answered."""
    zc = ZoomConnect(base, email, token)
    before = zc.get_account_balance()["creditBalance"]
    contact = zc.create_contact("Dlamini", "Thandi", number, "Ms")
    group = zc.create_group("SDK customers")
    zc.add_contact_to_group(contact["contactId"], group["groupId"])
    contacts = zc.get_contacts_all()["webServiceContacts"]
    text = "Your order has shipped"
    analysis = zc.analyse(text, contact["contactNumber"])
    sent = zc.send_sms(contact["contactNumber"], text, campaign="sdk", data_field="order-1")
    # A report is polled (the SDKs have no push): bounded, then give up.
    deadline = time.monotonic() + 60
    message = zc.get_message(sent["messageId"])
    while message["messageStatus"] not in ("DELIVERED", "FAILED") and time.monotonic() < deadline:
        time.sleep(0.2)
        message = zc.get_message(sent["messageId"])
    report = zc.get_messages(campaign="sdk", type="OUTBOUND")
    try:
        zc.get_message("999999998")
        missing: Any = None
    except ZoomConnectError as exc:
        missing = {"status": exc.status, "code": exc.body["code"]}
    return {
        "balance_before": before,
        "balance_after": zc.get_account_balance()["creditBalance"],
        "contact": contact,
        "group": zc.get_group(group["groupId"]),
        "contacts": contacts,
        "analysis": analysis,
        "sent": sent,
        "message": message,
        "report": report,
        "missing": missing,
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:5])))
