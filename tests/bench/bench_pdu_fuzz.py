"""Fuzz soak for `make bench`: >= 100k random and mutated PDUs raise nothing but PduError."""

from __future__ import annotations

import time

from tests.pdu.fuzz_pdu import run_fuzz

CASES = 120_000
SEED = 20261122


def main() -> None:
    """Run the fuzz target and print how many cases ran and how fast."""
    start = time.perf_counter()
    stats = run_fuzz(CASES, seed=SEED)
    elapsed = time.perf_counter() - start
    print(
        f"pdu fuzz: {stats.cases} cases (seed {SEED}): {stats.decoded} decoded, "
        f"{stats.rejected} PduError, 0 other exceptions; "
        f"{stats.cases / elapsed:,.0f} cases/s in {elapsed:.1f} s"
    )


if __name__ == "__main__":
    main()
