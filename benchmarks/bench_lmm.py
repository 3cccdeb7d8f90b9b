"""Speed of a correlated random-slopes fit: bayeshrink vs lme4 and statsmodels MixedLM.

    python benchmarks/bench_lmm.py            # 1,000,000 rows in 10,000 subjects
    python benchmarks/bench_lmm.py --quick    # 100,000 rows in 10,000 subjects
    python benchmarks/bench_lmm.py --rows 1000000 --groups 10000 --no-statsmodels

Sleepstudy-shaped data: Reaction = 251.4 + 10.47 Days + b0 + b1 Days + e, Days in 0..9,
(b0, b1) ~ N(0, sleepstudy's REML covariance), e ~ N(0, 25.6^2). Every library fits
``Reaction ~ Days + (Days | Subject)`` by REML on the same data in the same run and returns
the per-subject coefficients and their conditional SDs where it has them. lme4 runs through
Rscript when R with lme4 is installed (timed inside R around lmer() + coef() + ranef(condVar),
so reading the CSV is not counted); statsmodels is MixedLM with ``re_formula="~Days"``.
Ratios are printed against bayeshrink, with each fit's estimates so agreement can be seen.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from _data import run_rscript  # benchmarks/ is on sys.path when run as a script

import bayeshrink as bs

FORMULA = "Reaction ~ Days + (Days | Subject)"
# sleepstudy, lmer REML: VarCorr (Intercept) SD 24.74, Days SD 5.922, corr 0.066; sigma 25.59
COV = np.array([[612.09, 9.604], [9.604, 35.07]])


def make_sleep_like(n_rows: int, n_groups: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, size=n_rows, dtype=np.int32)
    days = rng.integers(0, 10, size=n_rows).astype(float)
    b = rng.multivariate_normal([0.0, 0.0], COV, size=n_groups)
    y = 251.4 + 10.47 * days + b[g, 0] + b[g, 1] * days + rng.normal(0, 25.59, size=n_rows)
    return pd.DataFrame({"Subject": g, "Days": days, "Reaction": y})


def time_bayeshrink(df, repeats: int = 3):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        fit = bs.fit(df, formula=FORMULA)
        out = (fit, fit.coef(), fit.ranef_sd())
        times.append(time.perf_counter() - t0)
    return min(times), out


def time_statsmodels(df):
    import statsmodels.formula.api as smf

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = smf.mixedlm("Reaction ~ Days", df, groups=df["Subject"], re_formula="~Days").fit(
            reml=True
        )
        re = res.random_effects
    return time.perf_counter() - t0, (res, re)


R_SCRIPT = r"""
suppressPackageStartupMessages(library(lme4))
d <- read.csv(commandArgs(TRUE)[1]); d$Subject <- factor(d$Subject)
t <- system.time({
  m <- lmer(Reaction ~ Days + (Days | Subject), data = d, REML = TRUE)
  cf <- coef(m)$Subject; re <- ranef(m, condVar = TRUE)
})
vc <- as.data.frame(VarCorr(m))
cat(t[["elapsed"]], fixef(m), vc$sdcor[1:3], sigma(m), "\n")
"""


def time_lme4(df):
    vals = run_rscript(df, R_SCRIPT)
    return None if vals is None else (vals[0], vals[1:])


def fmt(b0, b1, sd0, sd1, corr, sigma) -> str:
    return f"fixef=({b0:.4f}, {b1:.4f}) sd=({sd0:.4f}, {sd1:.4f}) corr={corr:.4f} sigma={sigma:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="100,000 rows")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--no-lme4", action="store_true")
    parser.add_argument("--no-statsmodels", action="store_true")
    args = parser.parse_args()
    n = args.rows or (100_000 if args.quick else 1_000_000)
    df = make_sleep_like(n, args.groups)
    print(f"{n:,} rows, {args.groups:,} subjects: {FORMULA}, REML + coef() + conditional SDs")

    t_bs, (fit, _coef, _sd) = time_bayeshrink(df)
    sd = fit.sd_re()
    print(
        f"  bayeshrink   {t_bs:8.3f} s   "
        + fmt(*fit.fixef, sd.iloc[0], sd.iloc[1], fit.corr_re().iloc[0, 1], fit.sigma)
    )
    if not args.no_lme4:
        r = time_lme4(df)
        if r is None:
            print("  lme4         (Rscript with lme4 not installed: skipped)")
        else:
            t_r, v = r
            print(f"  lme4         {t_r:8.3f} s   " + fmt(*v) + f"   ratio {t_r / t_bs:6.0f}x")
    if not args.no_statsmodels:
        t_sm, (res, _) = time_statsmodels(df)
        cov = res.cov_re.to_numpy()
        s0, s1 = np.sqrt(np.diag(cov))
        print(
            f"  statsmodels  {t_sm:8.3f} s   "
            + fmt(*res.fe_params, s0, s1, cov[0, 1] / (s0 * s1), np.sqrt(res.scale))
            + f"   ratio {t_sm / t_bs:6.0f}x"
        )


if __name__ == "__main__":
    main()
