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


def run_rscript(df: pd.DataFrame, script: str) -> list[float] | None:
    """Write ``df`` to a temporary CSV, run the R ``script`` on it (the CSV's path is its first
    argument) and return the numbers it prints; None when Rscript is not installed or R fails
    (which is said)."""
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        csv, path = Path(tmp) / "d.csv", Path(tmp) / "fit.R"
        df.to_csv(csv, index=False)
        path.write_text(script)
        proc = subprocess.run(["Rscript", str(path), str(csv)], capture_output=True, text=True)
        if proc.returncode != 0:
            print("  lme4 failed:", proc.stderr.strip().splitlines()[-1:])
            return None
        return [float(v) for v in proc.stdout.split()]
