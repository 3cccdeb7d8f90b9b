"""What one simulated replication costs, per interval method, and the batch fit against the
one-at-a-time fit it replaces.

    PYTHONPATH=$PWD python benchmarks/bench_study.py

Each figure is CPU time in this process (no worker pool): drawing the sufficient statistics,
the REML fit and the interval, per replication of a 50-group design (1,000 replications for the
analytic methods, fewer for the bootstrap).
"""

from __future__ import annotations

import time

import numpy as np

import bayeshrink as bs
from bayeshrink.batchfit import fit_batch
from bayeshrink.data import GroupStats
from bayeshrink.estimate import estimate
from bayeshrink.study import DEFAULT_INTERVALS


def per_replication(design, name: str, replications: int) -> float:
    t0 = time.process_time()
    bs.simulation_study(
        design,
        estimators=["blup-reml"],
        intervals={name: DEFAULT_INTERVALS[name]},
        replications=replications,
        random_seed=1,
        progress=False,
        workers=1,
        n_boot=200,
    )
    return (time.process_time() - t0) / replications


def main() -> None:
    design = bs.Design(groups=50, size=5, ratio=0.25)
    print(f"{design.label()}: ms per replication (draw + REML fit + interval)")
    for name in DEFAULT_INTERVALS:
        reps = 50 if name == "bootstrap" else 1000
        print(f"  {name:<16} {1e3 * per_replication(design, name, reps):8.3f}")
    t0 = time.process_time()
    bs.simulation_study(
        design,
        estimators=["blup-reml"],
        intervals=["cond", "pred", "morris", "kass-steffey", "robust"],
        replications=1000,
        random_seed=1,
        progress=False,
        workers=1,
    )
    print(f"5 analytic intervals, 1,000 replications: {time.process_time() - t0:.2f} s")

    rng = np.random.default_rng(0)
    n = np.full(50, 5)
    means = rng.normal(0, 0.5, (2000, 50)) + rng.normal(size=(2000, 50)) / np.sqrt(5)
    ssw = rng.chisquare(200, 2000)
    t0 = time.process_time()
    fit_batch(means, n=n, ssw=ssw)
    batch = (time.process_time() - t0) / 2000
    t0 = time.process_time()
    for b in range(200):
        estimate(
            GroupStats.from_arrays(
                labels=range(50), mean=means[b], n=n, ssw=np.r_[ssw[b], np.zeros(49)]
            )
        )
    scalar = (time.process_time() - t0) / 200
    print(
        f"REML fit of 50 groups: batch {1e3 * batch:.3f} ms, one at a time {1e3 * scalar:.3f} ms"
        f" ({scalar / batch:.1f}x)"
    )


if __name__ == "__main__":
    main()
