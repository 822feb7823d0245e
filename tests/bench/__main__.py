"""`make bench`: run every benchmark module under tests/bench and print its numbers."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import tests.bench as bench_pkg


def main() -> int:
    names = sorted(
        m.name for m in pkgutil.iter_modules(bench_pkg.__path__) if m.name.startswith("bench_")
    )
    selected = sys.argv[1:] or names
    for name in selected:
        module = importlib.import_module(f"tests.bench.{name}")
        print(f"== {name}", flush=True)
        module.main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
