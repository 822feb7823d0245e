"""The gateway soak (tests.gateway.soak): a short run on every `make test`, the full one (16
modems, 30 virtual minutes) in the slow suite. SMSGW_SOAK_SEED picks the seed."""

from __future__ import annotations

import contextlib

import pytest

from tests.gateway.soak import SoakPlan, SoakResult, run_soak, seed_from_env

SHORT = SoakPlan(
    modems=4, minutes=2.0, seed=seed_from_env(), pin_modems=1, batches=2.0, inbound=60.0,
    faults=40.0, clock_steps=2, deadline=120.0,
)  # fmt: skip
FULL = SoakPlan(modems=16, minutes=30.0, seed=seed_from_env(), pin_modems=4, deadline=900.0)


def _soak(plan: SoakPlan, request: pytest.FixtureRequest) -> SoakResult:
    result = run_soak(plan, request.getfixturevalue("tmp_path_factory").mktemp("soak"))
    # The counts go to the terminal even under output capture (the lead quotes them).
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\n{result.summary()}", flush=True)
    return result


@pytest.fixture(scope="module")
def short(request: pytest.FixtureRequest) -> SoakResult:
    return _soak(SHORT, request)


@pytest.fixture(scope="module")
def full(request: pytest.FixtureRequest) -> SoakResult:
    return _soak(FULL, request)


def test_short_soak_sends_each_part_at_most_once_and_accounts_for_every_one(
    short: SoakResult,
) -> None:
    short.check_outbound()


def test_short_soak_sends_long_messages_whole(short: SoakResult) -> None:
    short.check_concatenation()


def test_short_soak_matches_every_status_report_to_its_part(short: SoakResult) -> None:
    short.check_reports()


def test_short_soak_stores_every_inbound_sms_exactly_once(short: SoakResult) -> None:
    short.check_inbound()


def test_short_soak_delivers_every_webhook_event(short: SoakResult) -> None:
    short.check_webhooks()


def test_short_soak_saw_every_fault(short: SoakResult) -> None:
    assert set(short.faults) == {
        "hang", "unplug", "reboot", "urc_in_cmgs", "garbage", "cms_error", "pin_loss",
        "submit_crash", "clock_step",
    }  # fmt: skip


@pytest.mark.slow
def test_soak_sends_each_part_at_most_once_and_accounts_for_every_one(full: SoakResult) -> None:
    full.check_outbound()


@pytest.mark.slow
def test_soak_sends_long_messages_whole(full: SoakResult) -> None:
    full.check_concatenation()


@pytest.mark.slow
def test_soak_matches_every_status_report_to_its_part(full: SoakResult) -> None:
    full.check_reports()


@pytest.mark.slow
def test_soak_stores_every_inbound_sms_exactly_once(full: SoakResult) -> None:
    full.check_inbound()


@pytest.mark.slow
def test_soak_delivers_every_webhook_event(full: SoakResult) -> None:
    full.check_webhooks()
