"""A recurring series in fleet mode: every box's dispatcher reads the same due series, and each
occurrence is run exactly once (claimed and accepted in one transaction); a run that fails
midway leaves nothing of it, to run whole later."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from gateway.accounts import create_account
from gateway.recurrence import Recurrence, RepeatUnit
from gateway.scheduler import run_due_series
from gateway.service import GatewayService
from gateway.store import Store, StoreUnavailableError

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
RECIPIENTS = ["+15551230001", "+15551230002", "+15551230003"]


def _series(store: Store) -> tuple[int, int]:
    """A daily series of RECIPIENTS from T0 + 1 h; (account, batch)."""
    account = create_account(store, "shop", now=T0, credits=100).account_id
    result = GatewayService(store, wall=lambda: T0).submit(
        account, RECIPIENTS, "Standup at 10", send_at=T0 + timedelta(hours=1),
        recurrence=Recurrence(RepeatUnit.DAILY, 1, date(2026, 11, 30)),
    )  # fmt: skip
    assert result.batch_id is not None
    return account, result.batch_id


def _occurrences(store: Store) -> list[tuple[str, str]]:
    rows = store.conn.execute("SELECT recipient, extra FROM messages ORDER BY id").fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def test_two_boxes_reading_the_same_due_series_run_it_once(
    store: Store, other: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = store, other
    account, batch = _series(a)
    due = T0 + timedelta(hours=1, minutes=1)
    read = a.due_series

    def read_then_b_runs(now: datetime) -> list[dict[str, object]]:
        rows = read(now)
        assert [r["id"] for r in rows] == [batch]  # box A has read it due...
        assert len(run_due_series(b, now)) == len(RECIPIENTS)  # ...and box B runs it now
        return rows

    monkeypatch.setattr(a, "due_series", read_then_b_runs)
    assert run_due_series(a, due) == []  # A's claim of the same occurrence found it gone
    assert [r for r, _ in _occurrences(a)] == RECIPIENTS  # one run's messages, not two
    assert (a.batch(batch)["runs"], a.account(account)["credits"]) == (1, 100 - 3)  # type: ignore[index]
    monkeypatch.undo()
    # The next day's occurrence is due once more, for whichever box reads it first.
    assert len(run_due_series(a, due + timedelta(days=1))) == len(RECIPIENTS)
    assert run_due_series(b, due + timedelta(days=1)) == []


def test_a_run_failing_midway_leaves_nothing_and_runs_whole_later(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = store
    account, batch = _series(a)
    due = T0 + timedelta(hours=1, minutes=1)
    insert = a._insert_message
    calls = [0]

    def refused_at_the_second(**fields: object) -> object:
        calls[0] += 1
        if calls[0] == 2:
            raise StoreUnavailableError("disk full")
        return insert(**fields)  # type: ignore[arg-type]

    monkeypatch.setattr(a, "_insert_message", refused_at_the_second)
    with pytest.raises(StoreUnavailableError):
        run_due_series(a, due)
    assert _occurrences(a) == []
    assert (a.batch(batch)["runs"], a.account(account)["credits"]) == (0, 100)  # type: ignore[index]
    monkeypatch.undo()
    assert len(run_due_series(a, due)) == len(RECIPIENTS)  # the next tick: whole, once
    assert [r for r, _ in _occurrences(a)] == RECIPIENTS


def test_an_occurrence_without_credits_passes_once_with_its_error(
    store: Store,
    other: Store,
) -> None:
    a, b = store, other
    account, batch = _series(a)
    a.conn.execute("UPDATE accounts SET credits = 2 WHERE id = ?", (account,))
    due = T0 + timedelta(hours=1, minutes=1)
    assert run_due_series(a, due) == []
    assert run_due_series(b, due) == []  # already passed: not skipped (nor run) twice
    row = a.batch(batch)
    assert (row["runs"], row["error"]) == (1, "insufficient credits")  # type: ignore[index]
    assert _occurrences(a) == []
