"""Full Bayes at scale: bayeshrink's sufficient-statistics model vs bambi's row-level model.

    python benchmarks/bench_bayes.py                          # bambi beside it at 20k and 50k rows
    python benchmarks/bench_bayes.py --compare 100000:10000   # bambi at 100k rows (slow)

Both fit y ~ 1 + (1 | g), 4 chains x (1000 tune + 1000 draws), on the same data in the same
run; wall time includes building and compiling the model. ESS per second is the bulk ESS divided
by that wall time, for the group effects (median and minimum over groups) and for tau.

bambi (its default model, priors and sampler, in a child process with a time limit) expands the
group factor into a dense rows x groups matrix: at 1,000,000 rows x 10,000 groups that alone is
74.5 GiB, and at 100,000 rows x 10,000 groups it did not finish within 1,500 s here (2 cores,
nothing else running), where bayeshrink took 10.5 s. The comparison therefore runs at 20,000
and 50,000 rows (10 rows per group, as in the large runs); --compare chooses other sizes.
bayeshrink then runs alone at 100k and 1M rows in 10,000 groups.
"""

from __future__ import annotations

import argparse
import time

import arviz as az
import numpy as np
import pandas as pd
from _data import make_data  # benchmarks/ is on sys.path when run as a script

import bayeshrink as bs

DRAWS, TUNE, CHAINS = 1000, 1000, 4


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


BAMBI_CHILD = """
import json, sys, time, warnings
import arviz as az, numpy as np, pandas as pd
df = pd.read_parquet(sys.argv[1])
warnings.simplefilter("ignore")
import bambi as bmb
t0 = time.perf_counter()
model = bmb.Model("y ~ 1 + (1|g)", df.assign(g=df["g"].astype(str)))
idata = model.fit(draws=int(sys.argv[2]), tune=int(sys.argv[3]), chains=int(sys.argv[4]),
                  random_seed=1, progressbar=False)
seconds = time.perf_counter() - t0
ess_g = az.ess(idata, var_names=["1|g"])["1|g"].values.ravel()
ess_t = float(az.ess(idata, var_names=["1|g_sigma"])["1|g_sigma"].values)
print(json.dumps({"seconds": seconds, "ess_g": ess_g.tolist(), "ess_t": ess_t,
                  "tau_mean": float(idata["posterior"]["1|g_sigma"].mean()),
                  "divergences": int(idata["sample_stats"]["diverging"].sum())}))
"""


def run_bambi(df: pd.DataFrame, timeout: float) -> dict | str:
    """bambi's default y ~ 1 + (1|g) model and sampler, in a child process with a time limit."""
    import importlib.util
    import json
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    if importlib.util.find_spec("bambi") is None:
        return "not installed (pip install bambi): skipped"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.parquet"
        df.to_parquet(path)
        try:
            proc = subprocess.run(
                [sys.executable, "-c", BAMBI_CHILD, str(path), str(DRAWS), str(TUNE), str(CHAINS)],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return f"did not finish within {timeout:.0f} s (stopped)"
    if proc.returncode != 0:
        return "failed: " + " ".join(proc.stderr.strip().splitlines()[-1:])
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    ess_g = np.asarray(r["ess_g"])
    return {
        "seconds": r["seconds"],
        "ess_group_median": float(np.median(ess_g)),
        "ess_group_min": float(np.min(ess_g)),
        "ess_tau": r["ess_t"],
        "per_s_group_median": float(np.median(ess_g)) / r["seconds"],
        "per_s_group_min": float(np.min(ess_g)) / r["seconds"],
        "per_s_tau": r["ess_t"] / r["seconds"],
        "tau_mean": r["tau_mean"],
        "divergences": r["divergences"],
    }


def show(name: str, r: dict) -> None:
    print(
        f"  {name:<11} {r['seconds']:7.1f} s   ESS group effects median "
        f"{r['ess_group_median']:7.0f}"
        f" (min {r['ess_group_min']:6.0f})  tau {r['ess_tau']:6.0f}   ESS/s: groups "
        f"{r['per_s_group_median']:8.1f} (min {r['per_s_group_min']:7.1f})  tau "
        f"{r['per_s_tau']:7.1f}   E(tau|y) {r['tau_mean']:.4f}  divergences {r['divergences']}"
    )


def compare_at(n_rows: int, n_groups: int, timeout: float) -> None:
    df = make_data(n_rows, n_groups)
    print(f"\n{n_rows:,} rows, {n_groups:,} groups")
    ours = run_bayeshrink(df)
    show("bayeshrink", ours)
    theirs = run_bambi(df, timeout)
    if isinstance(theirs, str):
        print(f"  bambi       {theirs}")
        return
    show("bambi", theirs)
    print(
        f"  ratio (bayeshrink / bambi ESS per second): group effects median "
        f"{ours['per_s_group_median'] / theirs['per_s_group_median']:.1f}x, min "
        f"{ours['per_s_group_min'] / theirs['per_s_group_min']:.1f}x, tau "
        f"{ours['per_s_tau'] / theirs['per_s_tau']:.1f}x; wall time "
        f"{theirs['seconds'] / ours['seconds']:.1f}x shorter"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the 1M-row run")
    parser.add_argument(
        "--compare",
        nargs="*",
        default=["20000:2000", "50000:5000"],
        metavar="ROWS:GROUPS",
        help="sizes at which bambi runs beside bayeshrink (default: 20000:2000 50000:5000; "
        "100000:10000 did not finish here)",
    )
    parser.add_argument(
        "--timeout", type=float, default=1200.0, help="time limit for each bambi run, seconds"
    )
    args = parser.parse_args()
    print(
        f"y ~ 1 + (1 | g), {CHAINS} chains x ({TUNE} tune + {DRAWS} draws), wall time incl. "
        "compilation"
    )
    # bambi's row-level model with its default sampler (PyMC's NUTS) is compared where it can
    # finish, with 10 rows per group as in the large runs.
    for size in args.compare:
        rows, groups = (int(v) for v in size.split(":"))
        compare_at(rows, groups, args.timeout)
    sizes = [100_000] if args.quick else [100_000, 1_000_000]
    for n_rows in sizes:
        df = make_data(n_rows, 10_000)
        print(f"\n{n_rows:,} rows, 10,000 groups (bayeshrink only)")
        show("bayeshrink", run_bayeshrink(df))
    gib = 1_000_000 * 10_000 * 8 / 2**30
    print(
        f"\nbambi at 1,000,000 rows x 10,000 groups: not run; its dense group matrix alone "
        f"needs {gib:.1f} GiB."
    )


if __name__ == "__main__":
    main()
