"""Speed of the one-way REML fit with BLUPs: bayeshrink vs statsmodels MixedLM (and lme4).

    python benchmarks/bench_fit.py            # 100k and 1M rows, 10,000 groups
    python benchmarks/bench_fit.py --quick    # 100k rows only

Each library fits y ~ 1 + (1 | g) by REML on the same data in the same run and returns the BLUPs.
lme4 runs through Rscript when R with lme4 is installed (its time is measured inside R around
lmer() + coef(), so reading the CSV is not counted). Ratios are printed against bayeshrink.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from _data import make_data, run_rscript  # benchmarks/ is on sys.path when run as a script

import bayeshrink as bs


def best_of(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def time_bayeshrink(df):
    def run():
        fit = bs.fit(df, y="y", group="g", method="reml")
        return fit, fit.table()

    return best_of(run, 5)


def time_statsmodels(df):
    import statsmodels.formula.api as smf

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = smf.mixedlm("y ~ 1", df, groups=df["g"]).fit(reml=True)
            re = res.random_effects
        return res, re

    return best_of(run, 1)


R_SCRIPT = r"""
suppressPackageStartupMessages(library(lme4))
d <- read.csv(commandArgs(TRUE)[1]); d$g <- factor(d$g)
t <- system.time({ m <- lmer(y ~ 1 + (1 | g), data = d, REML = TRUE); b <- coef(m)$g })
cat(t[["elapsed"]], sigma(m), as.data.frame(VarCorr(m))$sdcor[1], "\n")
"""


def time_lme4(df):
    vals = run_rscript(df, R_SCRIPT)
    return None if vals is None else tuple(vals)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="100k rows only")
    parser.add_argument("--no-lme4", action="store_true")
    args = parser.parse_args()
    sizes = [100_000] if args.quick else [100_000, 1_000_000]
    n_groups = 10_000
    bs_times = {}
    for n in sizes:
        df = make_data(n, n_groups)
        print(f"\n{n:,} rows, {n_groups:,} groups: y ~ 1 + (1 | g), REML + BLUPs")
        t_bs, (fit, _table) = time_bayeshrink(df)
        bs_times[n] = t_bs
        print(f"  bayeshrink   {t_bs * 1e3:9.1f} ms   tau={fit.tau:.6f} sigma={fit.sigma:.6f}")
        t_sm, (res, _) = time_statsmodels(df)
        sm_tau = float(np.sqrt(res.cov_re.iloc[0, 0]))
        print(
            f"  statsmodels  {t_sm * 1e3:9.1f} ms   tau={sm_tau:.6f} "
            f"sigma={np.sqrt(res.scale):.6f}   ratio {t_sm / t_bs:7.0f}x slower"
        )
        if not args.no_lme4:
            r = time_lme4(df)
            if r is None:
                print("  lme4         (Rscript with lme4 not installed: skipped)")
            else:
                t_r, r_sigma, r_tau = r
                print(
                    f"  lme4         {t_r * 1e3:9.1f} ms   tau={r_tau:.6f} sigma={r_sigma:.6f}"
                    f"   ratio {t_r / t_bs:7.0f}x slower"
                )
    if len(bs_times) == 2:
        a, b = bs_times[100_000], bs_times[1_000_000]
        print(
            f"\nbayeshrink scaling: 1M / 100k rows = {b / a:.1f}x time for 10x rows "
            "(linear growth would be ~10x; fixed per-group cost makes it less)"
        )


if __name__ == "__main__":
    main()
