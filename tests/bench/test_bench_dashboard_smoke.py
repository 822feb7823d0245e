"""Keep the dashboard benchmark honest: its generated box is what the overview then counts, and
every view it times answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.bench import bench_dashboard


def test_generated_box_is_counted_by_the_overview_and_every_view_answers(tmp_path: Path) -> None:
    box = bench_dashboard.generate(tmp_path, 3000)
    try:
        overview = box.service.overview()
        assert len(overview.sims) == bench_dashboard.SIMS
        assert overview.queue["queued"] == box.queued > 0
        assert overview.sent_today == box.sent_today
        assert sum(h.sent for h in overview.throughput) > 0
        assert all(s.state == "ready" for s in overview.sims)
        results = asyncio.run(bench_dashboard.measure(box, rounds=1))
    finally:
        box.store.close()
    assert len(results) == 7
    assert all(len(samples) == 1 and samples[0] > 0 for samples in results.values())
