"""Token buckets and the login backoff, on a virtual clock."""

import pytest

from gateway.config import ConfigError, load
from gateway.ratelimit import AuthBackoff, LimitSettings, RateLimiter, TokenBuckets


def test_a_bucket_lets_a_burst_through_then_the_sustained_rate() -> None:
    buckets = TokenBuckets(rate=2.0, burst=3)
    assert [buckets.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", 0.0) == pytest.approx(0.5)  # one token every 0.5 s
    assert buckets.take("b", 0.0) == 0.0  # keys do not share a bucket
    assert buckets.take("a", 0.5) == 0.0
    assert buckets.take("a", 0.5) > 0
    assert buckets.take("a", -100.0) > 0  # a clock stepping back refills nothing
    assert TokenBuckets(rate=0.0, burst=1).take("a", 0.0) == 0.0  # rate 0: no limit


def test_failed_logins_back_off_doubling_and_a_success_forgives() -> None:
    backoff = AuthBackoff(free=2, first=1.0, cap=4.0)
    assert [backoff.failed("ip", 0.0) for _ in range(2)] == [0.0, 0.0]
    assert backoff.blocked("ip", 0.0) == 0.0
    assert [backoff.failed("ip", 10.0) for _ in range(4)] == [1.0, 2.0, 4.0, 4.0]  # capped
    assert backoff.blocked("ip", 11.0) == pytest.approx(3.0)
    assert backoff.blocked("other", 11.0) == 0.0
    backoff.succeeded("ip")
    assert backoff.blocked("ip", 11.0) == 0.0


def test_the_limiter_checks_backoff_before_the_address_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(
        LimitSettings(ip_rate=1.0, ip_burst=1, auth_free_failures=0), lambda: now[0]
    )
    assert limiter.admit_address("ip") == 0.0
    assert limiter.admit_address("ip") == pytest.approx(1.0)
    assert limiter.auth_failed("ip") == 1.0
    now[0] = 0.5
    assert limiter.admit_address("ip") == pytest.approx(0.5)


def test_limits_from_toml(tmp_path) -> None:
    path = tmp_path / "smsgw.toml"
    path.write_text("[limits]\naccount_rate = 2\naccount_burst = 5\nauth_backoff_cap = 60\n")
    limits = load(path).limits
    assert (limits.account_rate, limits.account_burst, limits.auth_backoff_cap) == (2.0, 5, 60.0)
    assert load(None).limits == LimitSettings()
    path.write_text("[limits]\naccount_burst = 0\n")
    with pytest.raises(ConfigError, match="burst"):
        load(path)
    path.write_text("[limits]\nper_minute = 3\n")
    with pytest.raises(ConfigError, match="per_minute"):
        load(path)


def test_an_unknown_sub_account_costs_the_same_scrypt_as_a_wrong_password(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    import gateway.service as service_module
    from gateway.accounts import create_account
    from gateway.service import GatewayService, UnknownAccountError
    from gateway.store import Store

    now = datetime(2026, 11, 22, tzinfo=UTC)
    store = Store.open(store_url)
    try:
        create_account(store, "shop", now=now)
        service = GatewayService(store, wall=lambda: now)
        verified: list[str] = []
        real = service_module.verify_password

        def counting(password: str, encoded: str) -> bool:
            verified.append(encoded.split("$", maxsplit=1)[0])
            return real(password, encoded)

        monkeypatch.setattr(service_module, "verify_password", counting)
        for name in ("shop", "nobody"):
            with pytest.raises(UnknownAccountError):
                service.account_by_credentials(name, "guess")
        assert verified == ["scrypt", "scrypt"]  # one scrypt each, known name or not
    finally:
        store.close()
