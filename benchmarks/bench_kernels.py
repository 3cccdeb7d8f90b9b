"""The per-row kernels alone (bayeshrink/bayes/kernels.py): log-likelihood and predictive
draws of 1,000 draws x 100,000 rows (10,000 groups) into memory already touched, against
numpy's Generator.standard_normal for the same number of normals. CPU seconds, best of 3,
on one thread and on all of numba's threads.

    python benchmarks/bench_kernels.py
"""

from __future__ import annotations

import time

import numba
import numpy as np

from bayeshrink.bayes.kernels import kernels


def best(f, n: int = 3) -> tuple[float, float]:
    """(best wall, best CPU) seconds of ``f()``."""
    wall, cpu = [], []
    for _ in range(n):
        w, c = time.perf_counter(), time.process_time()
        f()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return min(wall), min(cpu)


def main() -> None:
    k = kernels()
    rng = np.random.default_rng(0)
    D, N, J = 1000, 100_000, 10_000
    theta = rng.standard_normal((D, J))
    codes = rng.integers(0, J, N)
    y = rng.standard_normal(N)
    sigma = np.ones(D)
    ll, pp, none = np.zeros((D, N)), np.zeros((D, N)), np.empty((0, 0))
    seed = np.uint64(1)
    for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        numba.set_num_threads(threads)
        print(f"{threads} thread(s), {D * N:,} values each (wall s, CPU s)")
        for name, f in (
            ("log-likelihood", lambda: k["oneway"](theta, codes, y, sigma, seed, 0, ll, none)),
            ("predictive draws", lambda: k["oneway"](theta, codes, y, sigma, seed, 0, none, pp)),
            ("both in one pass", lambda: k["oneway"](theta, codes, y, sigma, seed, 0, ll, pp)),
        ):
            w, c = best(f)
            print(f"  {name:<18} {w:6.3f} {c:6.3f}")
    w, c = best(lambda: rng.standard_normal(out=pp))
    print(f"numpy standard_normal alone (one thread): {w:6.3f} {c:6.3f}")


if __name__ == "__main__":
    main()
