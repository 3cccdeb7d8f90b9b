"""The benchmarks' data: one-way normal data, y = 50 + u_g + e with u ~ N(0, 1), e ~ N(0, 3^2)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_data(n_rows: int, n_groups: int, seed: int = 0) -> pd.DataFrame:
    """``n_rows`` rows in ``n_groups`` groups (integer labels, uniform at random)."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, size=n_rows, dtype=np.int32)
    effects = rng.normal(0, 1.0, size=n_groups)
    return pd.DataFrame({"g": g, "y": 50.0 + effects[g] + rng.normal(0, 3.0, size=n_rows)})
