"""Coverage of a new group's prediction interval (``fit.predict(..., interval="prediction")``).

    python benchmarks/coverage_new_group.py oneway 10000
    python benchmarks/coverage_new_group.py slopes 1500

Each replication simulates data with known parameters (30 groups of 10; one-way: y = 2 + b_j + e,
tau = sigma = 1; slopes: y = 2 + 0.5 x + b0_j + b1_j x + e, SDs 1 and 0.3, x uniform on [0, 1]),
fits the model, and draws one observation of a new group: the interval counts a hit when it
covers it. Prints the coverage with its Monte Carlo SE, counting vcov(beta) and not.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pandas as pd

import bayeshrink as bs


def run(reps: int, seed: int, model: str, J: int = 30, n: int = 10) -> None:
    tau, sigma, mu, slope, tau_s = 1.0, 1.0, 2.0, 0.5, 0.3
    rng = np.random.default_rng(seed)
    hits = np.zeros(reps, bool)
    hits_plug = np.zeros(reps, bool)
    g = np.repeat([f"g{j:02d}" for j in range(J)], n)
    gi = np.repeat(np.arange(J), n)
    for r in range(reps):
        if model == "oneway":
            y = mu + rng.normal(0, tau, J)[gi] + rng.normal(0, sigma, J * n)
            f = bs.fit({"y": y, "g": g}, y="y", group="g")
            new = pd.DataFrame({"g": ["new"]})
            y_new = mu + rng.normal(0, tau) + rng.normal(0, sigma)
        else:
            x = rng.uniform(0, 1, J * n)
            b = rng.normal(0, 1, (J, 2)) * [tau, tau_s]
            y = mu + slope * x + b[gi, 0] + b[gi, 1] * x + rng.normal(0, sigma, J * n)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                f = bs.fit(pd.DataFrame({"y": y, "x": x, "g": g}), formula="y ~ x + (x | g)")
            xn = rng.uniform(0, 1)
            new = pd.DataFrame({"g": ["new"], "x": [xn]})
            bn = rng.normal(0, 1, 2) * [tau, tau_s]
            y_new = mu + slope * xn + bn[0] + bn[1] * xn + rng.normal(0, sigma)
        for out, counted in ((hits, True), (hits_plug, False)):
            p = f.predict(
                new, allow_new_levels=True, interval="prediction", fixef_uncertainty=counted
            ).iloc[0]
            out[r] = p["lo"] <= y_new <= p["hi"]
    for name, h in (("counting vcov(beta)", hits), ("beta plugged in", hits_plug)):
        c = h.mean()
        mcse = np.sqrt(c * (1 - c) / reps)
        print(f"{model} {name}: coverage {c:.4f} (MCSE {mcse:.4f}), {reps} reps")


if __name__ == "__main__":
    model = sys.argv[1] if len(sys.argv) > 1 else "oneway"
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    t = time.time()
    run(reps, 1, model)
    print(f"{time.time() - t:.0f} s")
