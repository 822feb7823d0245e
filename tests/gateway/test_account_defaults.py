"""A new account sends at once: unlimited unless limited, and a national number takes the
country of the box's SIMs (from their numbers or IMSIs), known at creation or at the send."""

from datetime import UTC, datetime

import pytest

from gateway.accounts import box_dial_code, check_dial_code, create_account
from gateway.numbers import sim_dial_code, sims_dial_code
from gateway.service import (
    GatewayService,
    InsufficientCreditsError,
    InvalidRecipientError,
    InvalidRequestError,
)
from gateway.store import Store

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("msisdn", "imsi", "code"),
    [
        ("+447700900001", None, "44"),  # the number says it
        ("0044 7700 900001", "310150123456789", "44"),  # ...and wins over the IMSI
        ("", "234150000000001", "44"),  # MCC 234: United Kingdom
        ("07700900001", "62130123456789", "234"),  # national number, MCC 621: Nigeria
        ("", "310260000000001", "1"),  # MCC 310: United States
        ("", "001010000000001", ""),  # test network: no country
        ("+883510001234", "901990000000001", ""),  # global IoT SIM: no country either
        ("", "", ""),
        (None, None, ""),
    ],
)
def test_a_sims_country(msisdn: str | None, imsi: str | None, code: str) -> None:
    assert sim_dial_code(msisdn, imsi) == code


def test_the_box_takes_the_country_of_most_of_its_sims() -> None:
    assert sims_dial_code([("+15551230000", None), ("", "23401"), ("+447700900001", None)]) == "44"
    assert sims_dial_code([("", "00101"), ("+15551230000", None), ("", "23415")]) == "1"  # tie
    assert sims_dial_code([("", "00101")]) == ""


def test_a_dial_code_given_must_be_a_country_code() -> None:
    assert check_dial_code("+234") == "234"
    for bad in ("999", "4444", "abc", "+"):
        with pytest.raises(ValueError, match="not a country calling code"):
            check_dial_code(bad)


def test_a_new_account_is_unlimited_and_takes_the_sims_country(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        store.bind_sim(iccid="8944000000000000001", imsi="234150000000001", now=T0)
        fresh = create_account(store, "fresh", now=T0)
        limited = create_account(store, "limited", now=T0, credits=2, default_dial_code="+1")
        assert (fresh.unlimited, fresh.default_dial_code) == (True, "44")
        assert (limited.unlimited, limited.credits, limited.default_dial_code) == (False, 2, "1")
        service = GatewayService(store, wall=lambda: T0)
        result = service.submit(fresh.account_id, ["07700 900123"] * 3 + ["+15551230001"], "hi")
        assert [store.message(m)["recipient"] for m in result.message_ids] == [
            "+447700900123",
            "+15551230001",
        ]
        assert store.account(fresh.account_id)["credits"] == 0  # unlimited: nothing charged
        with pytest.raises(InsufficientCreditsError):
            service.submit(
                limited.account_id, ["+15551230001"] * 1 + ["+15551230002"] * 2, "x" * 161
            )
    finally:
        store.close()


def test_without_a_known_country_a_national_number_is_refused_until_a_sim_tells_it(
    store_url: str,
) -> None:
    store = Store.open(store_url)
    try:
        account = create_account(store, "early", now=T0)  # a fresh box: no SIM seen yet
        assert account.default_dial_code == ""
        service = GatewayService(store, wall=lambda: T0)
        with pytest.raises(InvalidRecipientError) as refused:
            service.submit(account.account_id, ["07700900123"], "hello")
        (rejected,) = refused.value.rejected
        assert (rejected.recipient, rejected.needs_dial_code) == ("07700900123", True)
        partial = service.submit(account.account_id, ["07700900123", "+15551230001"], "hello")
        assert len(partial.message_ids) == 1
        assert [r.recipient for r in partial.rejected] == ["07700900123"]

        # The daemon meets its first SIM, a Nigerian one: the account follows it at once.
        store.bind_sim(iccid="8923400000000000001", imsi="621300000000001", now=T0)
        (mid,) = service.submit(account.account_id, ["0803 123 4567"], "hello").message_ids
        assert store.message(mid)["recipient"] == "+2348031234567"
        assert store.account(account.account_id)["default_dial_code"] == ""  # still decided late
    finally:
        store.close()


def test_the_send_time_country_is_that_of_the_accounts_own_sims(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        store.bind_sim(iccid="8944000000000000001", imsi=None, msisdn="+447700900001", now=T0)
        store.bind_sim(iccid="8944000000000000002", imsi=None, msisdn="+447700900002", now=T0)
        us = store.bind_sim(iccid="8901000000000000003", imsi=None, msisdn="+12025550003", now=T0)
        account = create_account(store, "us-shop", now=T0, default_dial_code="").account_id
        assert box_dial_code(store) == "44"
        store.grant_sim(account, us)
        assert box_dial_code(store, account) == "1"
        (mid,) = (
            GatewayService(store, wall=lambda: T0)
            .submit(account, ["0 202 555 0123"], "hi")
            .message_ids
        )
        assert store.message(mid)["recipient"] == "+12025550123"
    finally:
        store.close()


def test_from_must_be_a_sim_the_account_may_send_from(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        store.bind_sim(iccid="8944000000000000001", imsi=None, msisdn="+447700900001", now=T0)
        other = store.bind_sim(iccid="8944000000000000002", imsi=None, msisdn="+447700900002",
                               now=T0)  # fmt: skip
        account = create_account(store, "shop", now=T0).account_id
        service = GatewayService(store, wall=lambda: T0)
        (mid,) = service.submit(account, ["+15551230001"], "hi", sender="07700 900001").message_ids
        assert store.message(mid)["sender"] == "+447700900001"  # national, the SIMs' country
        store.grant_sim(account, other)
        with pytest.raises(InvalidRequestError, match="not the number of a SIM this account"):
            service.submit(account, ["+15551230001"], "hi", sender="+447700900001")
        with pytest.raises(InvalidRequestError, match="not the number of a SIM this account"):
            service.submit(account, ["+15551230001"], "hi", sender="+15550000000")
    finally:
        store.close()
