"""Simulated near-boundary data sets for tests/test_lmm_properties.py (run once; output committed).

Many groups, few rows each, tau/sigma between 0.01 and 0.1: the REML optimum of the random
intercept (or slope) variance is inside but close to 0, where an optimiser in theta can stop on a
false boundary. The cases kept are those where an earlier version of the estimator, or lme4's
default optimiser, stopped short; `make_near_boundary_references.R` fits them with lme4.

    python tests/reference/make_near_boundary_data.py   # writes lmm_near_boundary.csv.gz
"""

from pathlib import Path

import numpy as np
import pandas as pd

CASES = (100, 164, 181, 184)
SCALES = (1.0, 100.0, 0.01)


def simulate(s: int) -> pd.DataFrame:
    rng = np.random.default_rng(s)
    J = int(rng.integers(100, 1500))
    n = int(rng.integers(2, 5)) + (2 if s % 4 == 0 else 0)
    ratio = float(rng.uniform(0.01, 0.1))
    g = np.repeat(np.arange(J), n)
    x = rng.normal(size=J * n) * SCALES[s % 3]
    slope = s % 4 == 0
    u0 = rng.normal(0, ratio, J)[g]
    u1 = rng.normal(0, ratio / abs(SCALES[s % 3]), J)[g]
    y = 1 + 0.5 * x + u0 + (u1 * x if slope else 0) + rng.normal(size=J * n)
    formula = "y ~ x + (x | g)" if slope else "y ~ x + (1 | g)"
    return pd.DataFrame({"case": s, "formula": formula, "g": [f"g{k}" for k in g], "x": x, "y": y})


if __name__ == "__main__":
    out = Path(__file__).with_name("lmm_near_boundary.csv.gz")
    pd.concat([simulate(s) for s in CASES]).to_csv(out, index=False, float_format="%.17g")
