"""Full Bayes at scale: bayeshrink's sufficient-statistics model vs bambi's row-level model.

    python benchmarks/bench_bayes.py            # 100k rows (both), then 1M rows (bayeshrink)
    python benchmarks/bench_bayes.py --quick    # 100k rows only

Both fit y ~ 1 + (1 | g) with 10,000 groups, 4 chains x (1000 tune + 1000 draws), on the same
data in the same run. Wall time includes building and compiling the model. ESS per second is
the bulk ESS divided by that wall time, for the group effects (median and minimum over groups)
and for tau. bambi expands the group factor into a dense rows x groups matrix, so at 1,000,000
rows x 10,000 groups it would need 74.5 GiB: it runs at 100,000 rows only unless --bambi-1m.
"""

from __future__ import annotations

import argparse
import time
import warnings

import arviz as az
import numpy as np
import pandas as pd

import bayeshrink as bs

DRAWS, TUNE, CHAINS = 1000, 1000, 4


def make_data(n_rows: int, n_groups: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, size=n_rows)
    effects = rng.normal(0, 1.0, size=n_groups)
    y = 50.0 + effects[g] + rng.normal(0, 3.0, size=n_rows)
    return pd.DataFrame({"g": g, "y": y})


def ess_summary(idata, group_var: str, tau_var: str, seconds: float) -> dict:
    ess_g = az.ess(idata, var_names=[group_var])[group_var].values.ravel()
    ess_t = float(az.ess(idata, var_names=[tau_var])[tau_var].values)
    return {
        "seconds": seconds,
        "ess_group_median": float(np.median(ess_g)),
        "ess_group_min": float(np.min(ess_g)),
        "ess_tau": ess_t,
        "per_s_group_median": float(np.median(ess_g)) / seconds,
        "per_s_group_min": float(np.min(ess_g)) / seconds,
        "per_s_tau": ess_t / seconds,
    }


def run_bayeshrink(df: pd.DataFrame) -> dict:
    t0 = time.perf_counter()
    fit = bs.fit(df, y="y", group="g")
    model = bs.hierarchical_model(fit)
    idata = bs.sample(model, draws=DRAWS, tune=TUNE, chains=CHAINS, random_seed=1)
    seconds = time.perf_counter() - t0
    out = ess_summary(idata, "theta", "tau", seconds)
    out["tau_mean"] = float(idata["posterior"]["tau"].mean())
    out["divergences"] = bs.bayes.count_divergences(idata)
    return out


def run_bambi(df: pd.DataFrame) -> dict | None:
    try:
        import bambi as bmb
    except ImportError:
        return None
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = bmb.Model("y ~ 1 + (1|g)", df.assign(g=df["g"].astype(str)))
        idata = model.fit(draws=DRAWS, tune=TUNE, chains=CHAINS, random_seed=1, progressbar=False)
    seconds = time.perf_counter() - t0
    out = ess_summary(idata, "1|g", "1|g_sigma", seconds)
    out["tau_mean"] = float(idata["posterior"]["1|g_sigma"].mean())
    out["divergences"] = int(idata["sample_stats"]["diverging"].sum())
    return out


def show(name: str, r: dict) -> None:
    print(
        f"  {name:<11} {r['seconds']:7.1f} s   ESS group effects median "
        f"{r['ess_group_median']:7.0f}"
        f" (min {r['ess_group_min']:6.0f})  tau {r['ess_tau']:6.0f}   ESS/s: groups "
        f"{r['per_s_group_median']:8.1f} (min {r['per_s_group_min']:7.1f})  tau "
        f"{r['per_s_tau']:7.1f}   E(tau|y) {r['tau_mean']:.4f}  divergences {r['divergences']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="100k rows only")
    parser.add_argument("--bambi-1m", action="store_true", help="also try bambi at 1M rows")
    args = parser.parse_args()
    n_groups = 10_000
    print(f"y ~ 1 + (1 | g), {n_groups:,} groups, {CHAINS} chains x ({TUNE} tune + {DRAWS} draws)")
    for n_rows in [100_000] if args.quick else [100_000, 1_000_000]:
        df = make_data(n_rows, n_groups)
        print(f"\n{n_rows:,} rows")
        ours = run_bayeshrink(df)
        show("bayeshrink", ours)
        if n_rows > 100_000 and not args.bambi_1m:
            print(
                f"  bambi       not run: its dense {n_rows:,} x {n_groups:,} group matrix needs "
                f"{n_rows * n_groups * 8 / 2**30:.1f} GiB (see the 100,000-row comparison)"
            )
            continue
        theirs = run_bambi(df)
        if theirs is None:
            print("  bambi       not installed (pip install bambi): skipped")
            continue
        show("bambi", theirs)
        print(
            f"  ratio (bayeshrink / bambi ESS per second): group effects median "
            f"{ours['per_s_group_median'] / theirs['per_s_group_median']:.1f}x, min "
            f"{ours['per_s_group_min'] / theirs['per_s_group_min']:.1f}x, tau "
            f"{ours['per_s_tau'] / theirs['per_s_tau']:.1f}x; wall time "
            f"{theirs['seconds'] / ours['seconds']:.1f}x shorter"
        )


if __name__ == "__main__":
    main()
