"""Keep the PostgreSQL-vs-SQLite benchmark honest: wrk's report is read right, and one short
round per backend accepts through the API and observes every ping's first AT+CMGS."""

from __future__ import annotations

import asyncio

import pytest

from tests.bench import bench_postgres

# wrk 4.2 --latency, verbatim (against a server answering 404).
WRK_OUT = """Running 1s test @ http://127.0.0.1:18765/nonexistent
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.31ms    1.37ms  11.95ms   90.85%
    Req/Sec     1.75k   249.43     2.17k    60.00%
  Latency Distribution
     50%  910.00us
     75%    1.53ms
     90%    2.55ms
     99%    7.70ms
  1747 requests in 1.00s, 0.87MB read
  Non-2xx or 3xx responses: 1747
Requests/sec:   1741.42
Transfer/sec:      0.86MB
"""


def test_wrk_report_is_parsed_with_its_units_and_refusals() -> None:
    result = bench_postgres.parse_wrk(WRK_OUT)
    assert result == bench_postgres.Wrk(
        rate=1741.42, p50_ms=0.91, p99_ms=7.70, requests=1747, non_2xx=1747, socket_errors=0
    )


def test_percentile_is_nearest_rank() -> None:
    samples = [float(n) for n in range(100, 0, -1)]
    assert bench_postgres.percentile(samples, 50) == 50.0
    assert bench_postgres.percentile(samples, 99) == 99.0
    assert bench_postgres.percentile([3.0], 99) == 3.0


@pytest.mark.parametrize("backend", bench_postgres.BACKENDS)
def test_one_short_round_accepts_and_times_every_ping(backend: str, pg_url: str) -> None:
    url = pg_url if backend == "postgresql" else ""
    result = asyncio.run(bench_postgres.run_round(backend, url, pings=2, seconds=1))
    assert result.backend == backend
    assert len(result.first_at_ms) == 2 and all(ms >= 0 for ms in result.first_at_ms)
    assert result.accept.requests > 0 and result.accept.rate > 0
    assert result.accept.non_2xx == result.accept.socket_errors == 0


def test_one_short_cross_box_round_times_every_ping(pg_url: str) -> None:
    """Accepted on one daemon, sent by the other: every ping's first AT+CMGS is observed."""
    samples = asyncio.run(bench_postgres.run_cross_box(pg_url, pings=3))
    assert len(samples) == 3 and all(ms >= 0 for ms in samples)
