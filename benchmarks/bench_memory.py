"""Time and memory of the one-way fit on many small groups: 1M groups of 3 (3M rows).

    python benchmarks/bench_memory.py            # peak RSS growth (resource.getrusage)
    python benchmarks/bench_memory.py --trace    # peak of Python allocations (tracemalloc)

The estimator evaluates its criterion through classes of equal group size, so memory grows
O(groups) (the per-group statistics), not O(groups x grid points).
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np
import pandas as pd

import bayeshrink as bs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trace", action="store_true", help="measure with tracemalloc")
    parser.add_argument("--groups", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(args.groups), args.size)
    y = rng.normal(0, 1, args.groups)[g] + rng.normal(0, 2, g.size)
    df = pd.DataFrame({"g": g, "y": y})
    if args.trace:
        tracemalloc.start()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    fit = bs.fit(df, y="y", group="g")
    elapsed = time.perf_counter() - t0
    if args.trace:
        growth = tracemalloc.get_traced_memory()[1] / 2**20
        what = "tracemalloc peak"
    else:
        growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        what = "peak RSS growth"
    print(
        f"{args.groups:,} groups of {args.size}: bs.fit {elapsed:.2f} s, {what} {growth:.0f} MiB"
        f"   (tau={fit.tau:.6f}, sigma={fit.sigma:.6f})"
    )


if __name__ == "__main__":
    main()
