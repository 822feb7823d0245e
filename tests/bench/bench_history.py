"""Reading history on a big account: one page of the provider dialects' message list
(`query_messages`: BestSMS fetch_sms and friends, each row with its SIM, first send time,
report status, errors and contact), of /v1 (`list_messages`) and of the dashboard's search
on that account (`search_messages`), among 20,000 two-part messages. Target: a page costs
what its rows cost, not what the account holds (under 50 ms on SQLite for 500 rows; the store
runs on the daemon's event loop)."""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime

from gateway.store import BatchRows, MessageQuery, Store
from gateway.store.operator import MessageSearch

NOW = datetime(2026, 12, 3, tzinfo=UTC)
MESSAGES = 20_000
RUNS = 7


def _filled() -> tuple[Store, int]:
    store = Store.open(tempfile.mkdtemp(prefix="smsgw-bench-history-"))
    account = store.insert_account(
        {"sub_account": "big", "password_hash": "x", "api_key": "k", "token": "t",
         "credits": 10**9},
        now=NOW,
    )  # fmt: skip
    for batch in range(MESSAGES // 1000):
        rows = [
            {"account_id": account, "recipient": f"+1555{batch:02d}{i:05d}", "body": "hi",
             "encoding": "gsm7", "parts": 2, "charge": 2}
            for i in range(1000)
        ]  # fmt: skip
        batch_row = {"account_id": account, "sender": "", "rotate": 1, "extra": "{}"}
        store.accept_batches([BatchRows(batch_row, rows, 2000)], now=NOW)
    return store, account


def _ms(call: object) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def main() -> None:
    store, account = _filled()
    try:
        for size in (100, 500):
            dialects = _ms(lambda n=size: store.query_messages(account, MessageQuery(), limit=n,
                                                               offset=0))  # fmt: skip
            native = _ms(lambda n=size: store.list_messages(account, limit=n))
            dashboard = _ms(
                lambda n=size: store.search_messages(MessageSearch(account_id=account), limit=n)
            )
            print(
                f"  page of {size:3} among {MESSAGES:,}: query_messages {dialects:6.1f} ms,"
                f" list_messages {native:6.1f} ms, search_messages {dashboard:6.1f} ms"
                f" (median of {RUNS})",
                flush=True,
            )
    finally:
        store.close()


if __name__ == "__main__":
    main()
